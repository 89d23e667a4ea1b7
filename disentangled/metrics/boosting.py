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

import numba
import numpy as np

from ..errors import ParameterError, check_int

FEATURE_THRESHOLD = np.float32(1e-7)  # scikit-learn: values closer than this are not split apart
EPSILON = np.finfo(np.float64).eps  # nodes with impurity <= EPSILON become leaves
PROBA_EPS = np.finfo(np.float64).eps  # the prior's probabilities are clipped to [eps, 1 - eps]
# the vectorised split search serves depths with at most MASKED_SLOTS nodes per tree in stages
# of at least MASKED_TREES trees (classes); with fewer trees its loop is too short to pay
MASKED_SLOTS = 4
MASKED_TREES = 24


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
        raise ParameterError(f"boosted trees need at least 2 classes, got {k}")
    check_int("max_depth", max_depth, low=1, high=7)
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
        cnt, num, den = _leaf_sums(leaf_of, residual, target, num_nodes)
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
        return _apply(self.feature, self.threshold, xt)


@numba.njit(cache=True, nogil=True)
def _apply(feature, threshold, xt):
    t = feature.shape[0]
    n = xt.shape[1]
    leaf = np.zeros((t, n), dtype=np.int64)
    for tree in range(t):
        for i in range(n):
            node = 0
            while feature[tree, node] >= 0:
                node = 2 * node + (1 if xt[feature[tree, node], i] <= threshold[tree, node] else 2)
            leaf[tree, i] = node
    return leaf


class _TreeGrower:
    """Grows depth-limited least-squares regression trees on fixed features, many at once.

    Each feature is sorted once. At every depth one compiled pass per (feature, tree) walks
    the samples in that feature's order and keeps a running sum per node, so every
    candidate split of every node at that depth is scored in O(N) (:func:`_split_search`,
    and :func:`_root_split_search` for the roots); scikit-learn sorts each feature again in
    every node.
    """

    def __init__(self, x: np.ndarray, max_depth: int):
        self.x = x
        self.n, self.d = x.shape
        self.max_depth = int(max_depth)
        self.order = np.argsort(x, axis=0, kind="stable").T.copy()  # [D, N]
        self.sorted_x = np.take_along_axis(x.T, self.order, axis=1)  # [D, N] float32
        self.xt64 = x.T.astype(np.float64)  # [D, N]

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
        residual_t = np.ascontiguousarray(residual.T)
        parent = None  # (cnt, impurity, split mask, best feature) of the previous depth
        sums = None  # the nodes' sums of this depth, when routing the samples gave them
        for depth in range(self.max_depth + 1):
            first, slots = 2**depth - 1, 2**depth
            cnt, tot, tot_sq = sums if sums is not None else _node_sums(node, residual, first, slots)
            with np.errstate(divide="ignore", invalid="ignore"):
                impurity = tot_sq / cnt - (tot / cnt) ** 2
            if parent is not None:
                _add_importance(importance, parent, cnt, impurity)
            if depth == self.max_depth:
                break
            can_split = open_[:, first : first + slots] & (cnt >= 2) & (impurity > EPSILON)
            if not can_split.any():
                break
            slot_t = _active_slots(node, can_split, first)
            if depth == 0:  # one node per tree: a plain vector loop over the trees
                gains, thresholds = _root_split_search(
                    self.order, self.sorted_x, residual_t, can_split[:, 0], cnt[:, 0], tot[:, 0]
                )
            elif slots <= MASKED_SLOTS and t >= MASKED_TREES:
                gains, thresholds = _masked_split_search(self.order, self.sorted_x, residual_t, slot_t, cnt, tot)
            else:
                gains, thresholds = _split_search(self.order, self.sorted_x, residual_t, slot_t, cnt, tot)
            best_feat = _pick_feature(gains, tie_rng)
            best_thr = np.take_along_axis(thresholds, np.maximum(best_feat, 0)[None], axis=0)[0]
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
            sums = _route(node, slot_t, splits, best_feat, best_thr, self.xt64, residual_t)
        root_split = feature[:, 0] >= 0
        return node, _Nodes(feature, threshold, importance, root_split)


@numba.njit(cache=True, nogil=True)
def _leaf_sums(leaf, residual, target, num_nodes):
    """Per (tree, node), flat ``[T * M]``: sample count, residual sum and sum of ``p (1 - p)``
    with ``p = target - residual`` as scikit-learn computes it (summed in sample order)."""
    t, n = leaf.shape
    cnt = np.zeros(t * num_nodes)
    num = np.zeros(t * num_nodes)
    den = np.zeros(t * num_nodes)
    for tree in range(t):
        for i in range(n):
            j = tree * num_nodes + leaf[tree, i]
            cnt[j] += 1.0
            num[j] += residual[tree, i]
            p = target[tree, i] - residual[tree, i]
            den[j] += p * (1.0 - p)
    return cnt, num, den


@numba.njit(cache=True, nogil=True)
def _node_sums(node, residual, first, slots):
    """Count, sum and sum of squares of the residuals in every node of one depth: ``[T, S]`` each."""
    t, n = node.shape
    cnt = np.zeros((t, slots))
    tot = np.zeros((t, slots))
    tot_sq = np.zeros((t, slots))
    for tree in range(t):
        for i in range(n):
            slot = node[tree, i] - first
            if 0 <= slot < slots:
                r = residual[tree, i]
                cnt[tree, slot] += 1.0
                tot[tree, slot] += r
                tot_sq[tree, slot] += r * r
    return cnt, tot, tot_sq


@numba.njit(cache=True, nogil=True)
def _active_slots(node, can_split, first):
    """Each sample's node at this depth, sample-major ``[N, T]`` int8 (compact: the split search
    reads one row per sample); -1 unless its node is being split. Depths up to 7 fit."""
    t, n = node.shape
    slots = can_split.shape[1]
    out = np.full((n, t), -1, dtype=np.int8)
    for tree in range(t):
        for i in range(n):
            slot = node[tree, i] - first
            if 0 <= slot < slots and can_split[tree, slot]:
                out[i, tree] = slot
    return out


@numba.njit(cache=True, nogil=True)
def _route(node, slot_t, splits, best_feat, best_thr, xt64, residual_t):
    """Send the samples of the nodes just split to their children (in place); return the
    children's sums as :func:`_node_sums` gives them for the next depth (``[T, 2S]`` each).

    Each (tree, child) sum takes its samples in sample order, as :func:`_node_sums` does, so
    the sums are the same numbers; only samples of split nodes reach the next depth.
    """
    t, n = node.shape
    slots = 2 * splits.shape[1]
    cnt = np.zeros((t, slots))
    tot = np.zeros((t, slots))
    tot_sq = np.zeros((t, slots))
    for i in range(n):
        res_i = residual_t[i]
        for tree in range(t):
            slot = slot_t[i, tree]
            if slot >= 0 and splits[tree, slot]:
                right = 0 if xt64[best_feat[tree, slot], i] <= best_thr[tree, slot] else 1
                node[tree, i] = 2 * node[tree, i] + 1 + right
                child = 2 * slot + right
                r = res_i[tree]
                cnt[tree, child] += 1.0
                tot[tree, child] += r
                tot_sq[tree, child] += r * r
    return cnt, tot, tot_sq


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _split_search(order, sorted_x, residual_t, slot_t, cnt, tot):
    """Best split of every open node on every feature: ``(gain [D, T, S], threshold [D, T, S])``.

    ``order``/``sorted_x`` ``[D, N]``: each feature's sorting permutation and sorted float32
    values; ``residual_t`` ``[N, T]``: the residuals, sample-major; ``slot_t`` ``[N, T]``: each
    sample's node at this depth (-1 for samples of nodes not being split); ``cnt``/``tot``
    ``[T, S]``: count and residual sum per node. The gain is scikit-learn's Friedman-MSE
    proxy, ``(n_r s_l - n_l s_r)^2 / (n_l n_r)``, with the left sums accumulated sample by
    sample in the feature's order as scikit-learn does; a split lies between two consecutive
    distinct values of a node (more than ``FEATURE_THRESHOLD`` apart), at scikit-learn's
    midpoint; of equal gains the first (lowest threshold) is kept. -inf where a node has no
    valid split.
    """
    d, n = order.shape
    t, s = cnt.shape
    gain = np.full((d, t, s), -np.inf)
    thr = np.zeros((d, t, s))
    left_sum = np.zeros((t, s))
    left_cnt = np.zeros((t, s))
    last_x = np.zeros((t, s), dtype=np.float32)
    best = np.zeros((t, s))
    best_i = np.zeros((t, s), dtype=np.int64)
    best_lo = np.zeros((t, s), dtype=np.float32)
    eps = np.float32(1e-7)  # FEATURE_THRESHOLD
    for f in range(d):
        left_sum[:] = 0.0
        left_cnt[:] = 0.0
        best[:] = -np.inf
        best_i[:] = -1
        for i in range(n):
            sample = order[f, i]
            xv = sorted_x[f, i]
            slots_i = slot_t[sample]
            res_i = residual_t[sample]
            for tree in range(t):
                node = slots_i[tree]
                if node < 0:
                    continue
                lc = left_cnt[tree, node]
                ls = left_sum[tree, node]
                rc = cnt[tree, node] - lc
                diff = rc * ls - lc * (tot[tree, node] - ls)
                g = diff * diff / (lc * rc)  # inf/nan when lc == 0: never a candidate then
                if lc > 0.0 and xv > last_x[tree, node] + eps and g > best[tree, node]:
                    best[tree, node] = g
                    best_i[tree, node] = i
                    best_lo[tree, node] = last_x[tree, node]
                left_sum[tree, node] = ls + res_i[tree]
                left_cnt[tree, node] = lc + 1.0
                last_x[tree, node] = xv
        for tree in range(t):
            for node in range(s):
                if best_i[tree, node] >= 0:
                    gain[f, tree, node] = best[tree, node]
                    lo = np.float64(best_lo[tree, node])
                    hi = np.float64(sorted_x[f, best_i[tree, node]])
                    mid = lo / 2.0 + hi / 2.0
                    thr[f, tree, node] = lo if (mid == hi or not np.isfinite(mid)) else mid
    return gain, thr


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _masked_split_search(order, sorted_x, residual_t, slot_t, cnt, tot):
    """:func:`_split_search` vectorised over the trees, bit for bit (depths with few nodes).

    For each node slot ``k`` of the depth, one pass over the samples in each feature's order
    updates, in every tree at once, the state of that tree's node ``k``: trees whose sample
    lies in another node keep theirs (selects, no branches), so the compiler vectorises the
    loop over the trees; each pass does ``1 / S`` useful work per tree, which beats the
    scalar search's scattered updates for ``S <= MASKED_SLOTS`` and ``T >= MASKED_TREES``
    (measured; with fewer trees the compiled loop runs scalar). The terms are the same:
    the left count and sum run sample by sample in the feature's order, the proxy gain is
    ``(n_r s_l - n_l s_r)^2 / (n_l n_r)`` and the first of equal gains is kept. A sample is
    a candidate when its value exceeds the node's previous value plus ``FEATURE_THRESHOLD``
    (that float32 sum is kept, widened exactly to float64; +inf before the node's first
    sample, which is never a candidate), and the previous value at the best split, the
    threshold's lower end, is found afterwards by stepping back to the node's previous sample.
    """
    d, n = order.shape
    t, s = cnt.shape
    gain = np.full((d, t, s), -np.inf)
    thr = np.zeros((d, t, s))
    left_sum = np.zeros(t)
    left_cnt = np.zeros(t)
    best = np.zeros(t)
    best_i = np.zeros(t)
    last_up = np.zeros(t)
    node_cnt = np.zeros(t)
    node_tot = np.zeros(t)
    value = np.empty(n)
    value_up = np.empty(n)
    eps = np.float32(1e-7)  # FEATURE_THRESHOLD
    for f in range(d):
        for i in range(n):
            value[i] = np.float64(sorted_x[f, i])
            value_up[i] = np.float64(sorted_x[f, i] + eps)  # the float32 sum of the candidate rule
        for k in range(s):
            left_sum[:] = 0.0
            left_cnt[:] = 0.0
            best[:] = -np.inf
            best_i[:] = -1.0
            last_up[:] = np.inf
            node_cnt[:] = cnt[:, k]
            node_tot[:] = tot[:, k]
            for i in range(n):
                sample = order[f, i]
                _masked_step(value[i], value_up[i], np.float64(i), slot_t[sample], residual_t[sample], k,
                             left_sum, left_cnt, best, best_i, last_up, node_cnt, node_tot)
            for tree in range(t):
                p = int(best_i[tree])
                if p >= 0:
                    gain[f, tree, k] = best[tree]
                    j = p - 1
                    while slot_t[order[f, j], tree] != k:
                        j -= 1
                    lo = value[j]
                    hi = value[p]
                    mid = lo / 2.0 + hi / 2.0
                    thr[f, tree, k] = lo if (mid == hi or not np.isfinite(mid)) else mid
    return gain, thr


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _masked_step(xv, up, pos, slot, res, k, left_sum, left_cnt, best, best_i, last_up, cnt, tot):
    """One sample of :func:`_masked_split_search`, for node slot ``k`` of every tree.

    Few arrays on purpose: with more, the compiler's run-time overlap checks give up and the
    loop stays scalar.
    """
    for tree in range(slot.shape[0]):
        here = slot[tree] == k
        ls = left_sum[tree]
        lc = left_cnt[tree]
        rc = cnt[tree] - lc
        diff = rc * ls - lc * (tot[tree] - ls)
        g = diff * diff / (lc * rc)
        better = here & (xv > last_up[tree]) & (g > best[tree])
        best[tree] = g if better else best[tree]
        best_i[tree] = pos if better else best_i[tree]
        left_sum[tree] = ls + res[tree] if here else ls
        left_cnt[tree] = lc + 1.0 if here else lc
        last_up[tree] = up if here else last_up[tree]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _root_split_search(order, sorted_x, residual_t, active, cnt, tot):
    """:func:`_split_search` for the roots (depth 0), bit for bit: ``(gain [D, T, 1], threshold [D, T, 1])``.

    ``active`` ``[T]``: whether each tree's root is being split; ``cnt``/``tot`` ``[T]``: its
    count and residual sum. Every sample lies in the one node of every tree, so the node's
    left count before the ``i``-th sample is ``i`` and the previous value is the previous
    sample's in the feature's order, the same for all trees: whether position ``i`` is a
    candidate split (``i > 0`` and a gap wider than ``FEATURE_THRESHOLD``) is decided once
    per sample, and the per-tree work -- the proxy of every tree, the running maximum kept
    with selects, the running left sums -- is a branch-free loop over contiguous arrays that
    the compiler vectorises. The arithmetic is the same as :func:`_split_search`'s, term by
    term, so gains and thresholds are identical.
    """
    d, n = order.shape
    t = cnt.shape[0]
    gain = np.full((d, t, 1), -np.inf)
    thr = np.zeros((d, t, 1))
    c = cnt.copy()
    tt = tot.copy()
    left_sum = np.zeros(t)
    best = np.zeros(t)
    best_i = np.zeros(t, dtype=np.int64)
    eps = np.float32(1e-7)  # FEATURE_THRESHOLD
    for f in range(d):
        left_sum[:] = 0.0
        best[:] = -np.inf
        best_i[:] = -1
        prev = np.float32(0.0)
        for i in range(n):
            xv = sorted_x[f, i]
            res_i = residual_t[order[f, i]]
            if i > 0 and xv > prev + eps:
                lc = np.float64(i)
                for tree in range(t):
                    ls = left_sum[tree]
                    rc = c[tree] - lc
                    diff = rc * ls - lc * (tt[tree] - ls)
                    g = diff * diff / (lc * rc)
                    better = g > best[tree]
                    best[tree] = g if better else best[tree]
                    best_i[tree] = i if better else best_i[tree]
            for tree in range(t):
                left_sum[tree] += res_i[tree]
            prev = xv
        for tree in range(t):
            if active[tree] and best_i[tree] >= 0:
                gain[f, tree, 0] = best[tree]
                lo = np.float64(sorted_x[f, best_i[tree] - 1])
                hi = np.float64(sorted_x[f, best_i[tree]])
                mid = lo / 2.0 + hi / 2.0
                thr[f, tree, 0] = lo if (mid == hi or not np.isfinite(mid)) else mid
    return gain, thr


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
