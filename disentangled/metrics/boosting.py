"""Gradient-boosted trees for the metrics: scikit-learn's classifier, re-implemented for speed.

DCI and the boosted-trees downstream task fit ``sklearn.ensemble.GradientBoostingClassifier()``
with its defaults (100 stages, learning rate 0.1, depth-3 regression trees with exact
splits, log-loss with one Newton step per leaf, prior initialisation). That estimator grows
every tree of every stage one node at a time and sorts each feature again in every node;
at the study's sizes it takes minutes per factor.

:func:`fit_gbt` reproduces the same algorithm with the same split rule and leaf values, but
sorts each code dimension once and grows all the trees of a stage (one per class) together
with array operations, level by level. It returns what the metrics need: the normalised
impurity importances and the predictions on the training and test points.

Agreement with scikit-learn: the same trees up to floating-point rounding in the split
search (running sums are accumulated in a different order), so a split whose proxy gain is
tied with another to ~1e-12 relative may go the other way; trees of depth 1 and 2 match
scikit-learn's to ~1e-15 in tests. Exact ties between features (the same partition of a small
node, or duplicated codes) are broken uniformly at random, as scikit-learn's random feature
order breaks them (the reference passes no seed, so it is random there too); here the
generator is seeded, so results are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FEATURE_THRESHOLD = np.float32(1e-7)  # scikit-learn: values closer than this are not split apart
EPSILON = np.finfo(np.float64).eps  # nodes with impurity <= EPSILON become leaves
PROBA_EPS = np.finfo(np.float64).eps  # the prior's probabilities are clipped to [eps, 1 - eps]


@dataclass(frozen=True)
class BoostedTreesResult:
    classes: np.ndarray  # the distinct training labels, sorted
    importances: np.ndarray  # [D], sums to 1 (or all zeros when no tree ever split)
    predict_train: np.ndarray  # predicted labels for the training points
    predict_test: np.ndarray | None  # predicted labels for the test points, if given


def fit_gbt(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray | None = None,
    *,
    n_estimators: int = 100,
    learning_rate: float = 0.1,
    max_depth: int = 3,
    random_state: int | np.random.Generator | None = 0,
) -> BoostedTreesResult:
    """Fit a boosted-trees classifier on ``x_train`` ``[N, D]``, ``y_train`` ``[N]`` (>= 2 classes).

    ``random_state`` only breaks exact ties between features, uniformly at random, as
    scikit-learn's random feature order does (duplicated codes share their importance).
    """
    tie_rng = random_state if isinstance(random_state, np.random.Generator) else np.random.default_rng(random_state)
    x = np.ascontiguousarray(x_train, dtype=np.float32)  # scikit-learn's trees work in float32
    classes, y = np.unique(np.asarray(y_train), return_inverse=True)
    y = y.reshape(-1)
    n, d = x.shape
    k = classes.size
    if k < 2:
        raise ValueError(f"boosted trees need at least 2 classes, got {k}")
    # test points as float64 [D, N]: float32 values compared with float64 thresholds, as scikit-learn does
    xt = None if x_test is None else np.ascontiguousarray(np.asarray(x_test, dtype=np.float32).T, dtype=np.float64)

    counts = np.bincount(y, minlength=k).astype(np.float64)
    prior = np.clip(counts / n, PROBA_EPS, 1 - PROBA_EPS)
    if k == 2:
        trees = 1
        raw = np.full((1, n), np.log(prior[1] / (1 - prior[1])))
        target = (y == 1).astype(np.float64)[None, :]
    else:
        trees = k
        log_prior = np.log(prior)
        raw = np.repeat((log_prior - log_prior.mean())[:, None], n, axis=1)
        target = np.zeros((k, n))
        target[y, np.arange(n)] = 1.0
    raw_test = None if xt is None else np.repeat(raw[:, :1], xt.shape[1], axis=1)
    newton_scale = 1.0 if k == 2 else (k - 1) / k

    grower = _TreeGrower(x, max_depth)
    importance_sum = np.zeros(d)
    relevant_trees = 0
    for _ in range(n_estimators):
        prob = _probabilities(raw, binary=(k == 2))
        residual = target - prob  # the negative gradient of the half log-loss
        leaf_of, nodes = grower.grow(residual, tie_rng)
        # Newton step per leaf: mean(residual) * scale / mean(p (1 - p))
        num_nodes = nodes.feature.shape[1]
        flat = leaf_of + (np.arange(trees) * num_nodes)[:, None]
        size = trees * num_nodes
        cnt = np.bincount(flat.ravel(), minlength=size).astype(np.float64)
        num = np.bincount(flat.ravel(), weights=residual.ravel(), minlength=size)
        p_leaf = target - residual
        den = np.bincount(flat.ravel(), weights=(p_leaf * (1 - p_leaf)).ravel(), minlength=size)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_num = num / cnt * newton_scale
            mean_den = den / cnt
            value = np.where(np.abs(mean_den) < 1e-150, 0.0, mean_num / mean_den)
        value = np.nan_to_num(value)  # flat [trees * num_nodes]
        raw += learning_rate * np.take(value, flat)
        if raw_test is not None:
            test_leaf = nodes.apply(xt)
            raw_test += learning_rate * np.take(value, test_leaf + (np.arange(trees) * num_nodes)[:, None])
        split = nodes.root_split
        relevant_trees += int(np.count_nonzero(split))
        importance_sum += nodes.importance.sum(axis=0)

    if relevant_trees == 0 or not np.any(importance_sum):
        importances = np.zeros(d)
    else:
        mean = importance_sum / relevant_trees
        importances = mean / mean.sum()
    return BoostedTreesResult(
        classes=classes,
        importances=importances,
        predict_train=classes[_decide(raw)],
        predict_test=None if raw_test is None else classes[_decide(raw_test)],
    )


def _probabilities(raw: np.ndarray, *, binary: bool) -> np.ndarray:
    if binary:
        return 1.0 / (1.0 + np.exp(-raw))
    shifted = raw - raw.max(axis=0, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=0, keepdims=True)


def _decide(raw: np.ndarray) -> np.ndarray:
    if raw.shape[0] == 1:
        return (raw[0] >= 0).astype(np.int64)
    return np.argmax(raw, axis=0)


@dataclass
class _Nodes:
    """The trees of one stage, heap-numbered (node i has children 2i+1, 2i+2)."""

    feature: np.ndarray  # [T, M] int, -1 for leaves
    threshold: np.ndarray  # [T, M] float64
    importance: np.ndarray  # [T, D] unnormalised impurity decrease per feature
    root_split: np.ndarray  # [T] bool: the tree has more than one node

    def apply(self, xt: np.ndarray) -> np.ndarray:
        """Leaf (heap index) of every point in every tree: ``[T, N]``; ``xt`` is float64 ``[D, N]``."""
        trees, m = self.feature.shape
        n = xt.shape[1]
        node = np.zeros((trees, n), dtype=np.int64)
        rows = np.arange(trees)[:, None] * m
        columns = np.arange(n)
        while True:
            flat = node + rows
            feat = np.take(self.feature, flat)
            internal = feat >= 0
            if not internal.any():
                return node
            values = np.take(xt, np.maximum(feat, 0) * n + columns)
            child = 2 * node + np.where(values <= np.take(self.threshold, flat), 1, 2)
            node = np.where(internal, child, node)


class _TreeGrower:
    """Grows depth-limited least-squares regression trees on fixed features, many at once.

    Each feature is sorted once. At depth 0 every tree scans the same sorted order; deeper,
    each tree's samples are grouped by node with a stable sort on the node index (which
    keeps them sorted by the feature within a node), so one running sum per tree gives the
    left-hand sums of every candidate split of every node. Trees are processed in small
    chunks so that the working arrays stay in the processor's cache.
    """

    chunk_elements = 40_000

    def __init__(self, x: np.ndarray, max_depth: int):
        self.x = x
        self.n, self.d = x.shape
        self.max_depth = int(max_depth)
        self.order = np.argsort(x, axis=0, kind="stable").T.copy()  # [D, N]
        self.sorted_x = np.take_along_axis(x.T, self.order, axis=1)  # [D, N] float32
        # sorted positions j after which a split is allowed at the root
        valid = self.sorted_x[:, 1:] > self.sorted_x[:, :-1] + FEATURE_THRESHOLD
        self.root_invalid = [np.flatnonzero(~valid[f]) for f in range(self.d)]
        self.has_ties = [bool(r.size) for r in self.root_invalid]
        self.xt64 = x.T.astype(np.float64)  # [D, N]
        left = np.arange(1, self.n + 1, dtype=np.float64)
        self.root_left_cnt = left
        self.root_right_cnt = self.n - left

    def grow(self, residual: np.ndarray, tie_rng: np.random.Generator):
        t, n = residual.shape
        d = self.d
        m = 2 ** (self.max_depth + 1) - 1
        feature = np.full((t, m), -1, dtype=np.int64)
        threshold = np.zeros((t, m))
        importance = np.zeros((t, d))
        node = np.zeros((t, n), dtype=np.int64)  # heap node of every sample
        open_ = np.zeros((t, m), dtype=bool)
        open_[:, 0] = True
        sq = residual * residual
        rows = np.arange(t)[:, None]
        chunk = max(1, self.chunk_elements // max(n, 1))
        parent = None  # (cnt, impurity, split mask, best feature) of the previous depth
        for depth in range(self.max_depth + 1):
            first, slots = 2**depth - 1, 2**depth
            key = np.where(node >= first, node - first, slots)  # samples in leaves above: "slots"
            cnt, tot, tot_sq = _slot_sums(key, residual, sq, slots)
            with np.errstate(divide="ignore", invalid="ignore"):
                impurity = tot_sq / cnt - (tot / cnt) ** 2
            if parent is not None:
                _add_importance(importance, parent, cnt, impurity)
            if depth == self.max_depth:
                break
            can_split = open_[:, first : first + slots] & (cnt >= 2) & (impurity > EPSILON)
            if not can_split.any():
                break
            # per-sample lookups of per-node values, as flat takes (fancy indexing is slow here)
            flat_slot = np.minimum(key, slots - 1) + rows * slots
            active = np.where((key < slots) & np.take(can_split, flat_slot), key, slots).astype(np.uint8)
            counts = np.where(can_split, cnt, 0).astype(np.int64)
            counts = np.concatenate([counts, n - counts.sum(axis=1, keepdims=True)], axis=1)
            gains = np.full((d, t, slots), -np.inf)
            positions = np.zeros((d, t, slots), dtype=np.int64)
            thresholds = np.zeros((d, t, slots))
            for lo in range(0, t, chunk):
                sl = slice(lo, min(t, lo + chunk))
                if not can_split[sl].any():
                    continue
                res_c = np.ascontiguousarray(residual[sl])
                for f in range(d):
                    if slots == 1:
                        gains[f, sl], positions[f, sl], thresholds[f, sl] = self._root_split(
                            f, res_c, tot[sl], can_split[sl, 0]
                        )
                    else:
                        gains[f, sl], positions[f, sl], thresholds[f, sl] = self._deep_split(
                            f, res_c, active[sl], slots, cnt[sl], tot[sl], counts[sl]
                        )
            best_feat = _pick_feature(gains, tie_rng)
            rows_t = np.arange(t)[:, None]
            cols_s = np.arange(slots)[None, :]
            best_thr = thresholds[np.maximum(best_feat, 0), rows_t, cols_s]
            splits = can_split & (best_feat >= 0)
            if not splits.any():
                break
            tt, ss = np.nonzero(splits)
            heap = first + ss
            feature[tt, heap] = best_feat[tt, ss]
            threshold[tt, heap] = best_thr[tt, ss]
            open_[tt, 2 * heap + 1] = True
            open_[tt, 2 * heap + 2] = True
            parent = (cnt, impurity, splits, best_feat)
            # route the samples of the split nodes to their children
            moving = (key < slots) & np.take(splits, flat_slot)
            f_of = np.maximum(np.take(best_feat, flat_slot), 0)
            values = np.take(self.xt64, f_of * n + np.arange(n))
            child = 2 * node + np.where(values <= np.take(best_thr, flat_slot), 1, 2)
            node = np.where(moving, child, node)
        root_split = feature[:, 0] >= 0
        return node, _Nodes(feature, threshold, importance, root_split)

    def _root_split(self, f, res, tot, can):
        """Best root split on feature ``f`` for a chunk of trees: ``(gain [c, 1], position [c, 1])``."""
        csum = np.cumsum(np.take(res, self.order[f], axis=1), axis=1)
        rs = tot - csum
        csum *= csum
        csum /= self.root_left_cnt
        rs *= rs
        with np.errstate(divide="ignore", invalid="ignore"):
            rs /= self.root_right_cnt
        csum += rs
        csum[:, -1] = -np.inf
        csum[:, self.root_invalid[f]] = -np.inf
        j = np.argmax(csum, axis=1)
        gain = csum[np.arange(csum.shape[0]), j]
        gain[~can] = -np.inf
        xs = self.sorted_x[f]
        thr = _midpoint(xs[j], xs[np.minimum(j + 1, len(xs) - 1)])
        return gain[:, None], j[:, None], thr[:, None]

    def _deep_split(self, f, res, active, slots, cnt, tot, counts):
        """Best split on feature ``f`` of every active node of a chunk of trees.

        ``active`` holds each sample's node slot (``slots`` for samples not being split),
        ``counts`` the number of samples per slot ``[c, slots+1]``. Returns
        ``(gain, position within the node, threshold)``, each ``[c, slots]``.
        """
        c, n = res.shape
        order = self.order[f]
        # by node, then by the feature (np.take along an axis is much faster than fancy indexing here)
        perm = np.argsort(np.take(active, order, axis=1), axis=1, kind="stable")
        rowoff = (np.arange(c) * n)[:, None]
        g = np.take(res, order[perm] + rowoff)
        starts = np.cumsum(counts, axis=1) - counts  # [c, slots+1]: where each node begins
        flat_counts = counts.ravel()
        csum = np.cumsum(g, axis=1)
        # running sums restarted at every node: subtract the running sum before its start
        base = np.where(starts > 0, np.take_along_axis(csum, np.maximum(starts - 1, 0), axis=1), 0.0)
        ls = csum
        ls -= np.repeat(base.ravel(), flat_counts).reshape(c, n)
        lc = np.arange(1, n + 1, dtype=np.float64) - np.repeat(starts.ravel(), flat_counts).reshape(c, n)
        tot_ext = np.concatenate([tot, np.zeros((c, 1))], axis=1)
        cnt_ext = np.concatenate([cnt, np.zeros((c, 1))], axis=1)
        rs = np.repeat(tot_ext.ravel(), flat_counts).reshape(c, n) - ls
        rc = np.repeat(cnt_ext.ravel(), flat_counts).reshape(c, n) - lc
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ls *= ls
            ls /= lc
            rs *= rs
            rs /= rc
        gain = ls
        gain += rs
        gflat = gain.ravel()
        # the last sample of a node leaves nothing on the right
        occupied = counts[:, :slots] > 0
        ends = (starts + counts - 1 + rowoff)[:, :slots][occupied]
        gflat[ends] = -np.inf
        if self.has_ties[f]:  # values closer than FEATURE_THRESHOLD are not split apart
            xsorted = self.sorted_x[f][perm]
            tied = np.zeros((c, n), dtype=bool)
            tied[:, :-1] = xsorted[:, 1:] <= xsorted[:, :-1] + FEATURE_THRESHOLD
            gain[tied] = -np.inf
        # first maximum of every node (scikit-learn keeps the first of equal gains)
        seg_starts = (starts + rowoff).ravel()
        nonempty = flat_counts > 0
        seg_max = np.full(c * (slots + 1), -np.inf)
        with np.errstate(invalid="ignore"):
            seg_max[nonempty] = np.maximum.reduceat(gflat, seg_starts[nonempty])
        seg_max = seg_max.reshape(c, slots + 1)
        seg_max[:, slots] = np.inf  # samples not being split never match
        best_gain = np.full((c, slots), -np.inf)
        best_pos = np.zeros((c, slots), dtype=np.int64)
        thr = np.zeros((c, slots))
        tt, ss = np.nonzero(np.isfinite(seg_max[:, :slots]))
        if tt.size:
            per_pos = np.repeat(seg_max.ravel(), flat_counts)
            cand = np.flatnonzero(gflat == per_pos)
            begin = seg_starts.reshape(c, slots + 1)[tt, ss]
            first = cand[np.searchsorted(cand, begin)]
            best_pos[tt, ss] = first - begin
            best_gain[tt, ss] = seg_max[tt, ss]
            xs = self.sorted_x[f]
            flat_perm = perm.ravel()
            thr[tt, ss] = _midpoint(xs[flat_perm[first]], xs[flat_perm[first + 1]])
        return best_gain, best_pos, thr


def _midpoint(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """scikit-learn's threshold: ``lo / 2 + hi / 2`` in float64, or ``lo`` if that rounds to ``hi``."""
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    thr = lo / 2.0 + hi / 2.0
    return np.where((thr == hi) | ~np.isfinite(thr), lo, thr)


def _pick_feature(gains: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Best feature per (tree, node) from gains ``[D, T, S]``; exact ties broken at random.

    -1 where no feature has a valid split.
    """
    best = gains.max(axis=0)
    tied = (gains == best[None]) & np.isfinite(best)[None]
    if gains.shape[0] == 1 or not np.any(tied.sum(axis=0) > 1):
        return np.where(np.isfinite(best), np.argmax(gains, axis=0), -1)
    priority = np.where(tied, rng.random(gains.shape), -1.0)
    return np.where(np.isfinite(best), np.argmax(priority, axis=0), -1)


def _slot_sums(key, residual, sq, slots):
    """Count, sum and sum of squares of the residuals of every (tree, slot)."""
    t = key.shape[0]
    size = slots + 1
    flat = (key + (np.arange(t) * size)[:, None]).ravel()
    cnt = np.bincount(flat, minlength=t * size).reshape(t, size)[:, :slots].astype(np.float64)
    tot = np.bincount(flat, weights=residual.ravel(), minlength=t * size).reshape(t, size)[:, :slots]
    tot_sq = np.bincount(flat, weights=sq.ravel(), minlength=t * size).reshape(t, size)[:, :slots]
    return cnt, tot, tot_sq


def _add_importance(importance, parent, cnt, impurity):
    """Add each split's weighted impurity decrease to its feature (scikit-learn's importances)."""
    p_cnt, p_imp, splits, best_feat = parent
    tt, ss = np.nonzero(splits)
    left, right = 2 * ss, 2 * ss + 1
    decrease = (
        p_cnt[tt, ss] * p_imp[tt, ss]
        - cnt[tt, left] * np.nan_to_num(impurity[tt, left])
        - cnt[tt, right] * np.nan_to_num(impurity[tt, right])
    )
    np.add.at(importance, (tt, best_feat[tt, ss]), decrease)
