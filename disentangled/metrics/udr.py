"""Unsupervised Disentanglement Ranking (Duan et al., ICLR 2020), as disentanglement_lib computes it.

UDR scores a *set* of trained models against each other: a model whose latents are, up to
permutation and sign, the latents of the other models trained with the same
hyperparameters (other seeds) is taken to be disentangled. The reference's ``udr_sklearn``:

1. All models encode the same observations (one ``sample_observations(batch_size)`` per
   batch, fed to every model); each keeps its encoder means and the KL divergence to the
   prior of each latent, ``mean ½(μ² + e^{logvar} - logvar - 1)`` over the points.
2. Each model's codes are standardised (scikit-learn's ``StandardScaler``) and the latents
   with a KL of at most 0.01 are set to zero (this threshold is fixed in the reference).
3. For every ordered pair (i, j), i != j, a correlation matrix ``R [D_i, D_j]``: the
   absolute coefficients of ``Lasso(alpha=0.1)`` regressing model j's codes on model i's
   (``correlation_matrix="lasso"``), or the absolute Spearman correlations
   (``"spearman"``). With ``filter_low_kl`` only the latents whose KL exceeds
   ``kl_filter_threshold`` in model i (rows) and model j (columns) are kept.
4. The pair's score is the relative strength of ``R``: the mean, over columns and over rows,
   of ``max² / sum``, averaged (0/0 counts 0).
5. Model i's score is the median of the scores of the pairs (j, i), j != i.

Here the Lasso is solved from the Gram matrix of each model's codes (the same cyclic
coordinate descent, gap-safe screening and duality-gap stopping rule as scikit-learn 1.9's
``enet_coordinate_descent``, with the products ``XᵀX`` and ``XᵀY`` computed once), and the
Spearman matrix from ranks computed once per model (one matrix product instead of ``D²``
calls of ``scipy.stats.spearmanr``). Both agree with the reference's to about 1e-12.

Defined edge case (the reference fails with "zero-size array to reduction operation
maximum"): a model none of whose latents passes the KL filter is fully collapsed. Its pairs
have no matrix to score: they are NaN, the model's score is NaN with a reason, and the
other models' medians are taken over their remaining pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, ClassVar, Sequence

import numba
import numpy as np

from ..data.base import check_rng
from ..errors import ParameterError, check_choice, check_float
from .base import check_positive
from .utils import as_codes

CORRELATIONS = ("lasso", "spearman")
CODE_KL_THRESHOLD = 0.01  # the reference zeroes the codes of latents with KL <= 0.01, whatever kl_filter_threshold is
LASSO_ALPHA = 0.1
LASSO_TOL = 1e-4  # scikit-learn's Lasso defaults
LASSO_MAX_ITER = 1000


# ---------------------------------------------------------------------------------------
# The score of one correlation matrix


def relative_strength(matrix) -> float:
    """Relative strength of a non-negative matrix: ½ (mean over columns + mean over rows) of max² / sum.

    A row or column that sums to 0 (or holds NaN, as a Spearman correlation with a
    constant latent does) contributes 0, as ``numpy.nan_to_num`` makes it in the reference.
    The identity scores 1, a matrix of ones 1/n, zeros 0.
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ParameterError(f"udr: relative strength needs a non-empty 2-D matrix, got shape {m.shape}")

    def along(axis: int) -> float:
        # a sum that is 0 or NaN (then so is the max) gives 0, as nan_to_num(0/0) does
        top, total = np.max(m, axis=axis), np.sum(m, axis=axis)
        ratio = np.divide(top * top, total, out=np.zeros_like(total), where=total > 0)
        return float(np.mean(ratio))

    return (along(0) + along(1)) / 2.0


# ---------------------------------------------------------------------------------------
# Correlation matrices between two models' codes


def spearman_matrix(codes_a, codes_b) -> np.ndarray:
    """``|Spearman correlation|`` of every latent of ``codes_a`` with every latent of ``codes_b``: ``[D_a, D_b]``.

    Ranks with ties averaged, as ``scipy.stats.spearmanr``; a constant latent gives NaN.
    """
    return _spearman_from_ranks(_centred_ranks(np.asarray(codes_a)), _centred_ranks(np.asarray(codes_b)))


def _centred_ranks(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import rankdata

    ranks = rankdata(codes, axis=0)
    ranks -= ranks.mean(axis=0)
    return ranks, np.sqrt(np.sum(ranks * ranks, axis=0))


def _spearman_from_ranks(a, b) -> np.ndarray:
    (ra, na), (rb, nb) = a, b
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = (ra.T @ rb) / np.outer(na, nb)
    return np.abs(np.clip(corr, -1.0, 1.0))


def lasso_matrix(codes_a, codes_b, *, alpha: float = LASSO_ALPHA) -> np.ndarray:
    """``|coefficients|`` of ``Lasso(alpha)`` regressing each latent of ``codes_b`` on ``codes_a``: ``[D_a, D_b]``.

    scikit-learn's Lasso (with an intercept: both sides are centred) solved from the Gram
    matrix; entry (k, l) is the weight of latent k of ``codes_a`` in predicting latent l of
    ``codes_b``.
    """
    return _lasso_from_gram(_gram(np.asarray(codes_a, dtype=np.float64)), np.asarray(codes_b, dtype=np.float64), alpha)


def _gram(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    centred = x - x.mean(axis=0)
    return centred, centred.T @ centred


def _lasso_from_gram(prepared, y: np.ndarray, alpha: float) -> np.ndarray:
    xc, gram = prepared
    yc = y - y.mean(axis=0)
    xy = np.ascontiguousarray(xc.T @ yc)  # [D_a, D_b]
    yy = np.einsum("ij,ij->j", yc, yc)
    coef = _coordinate_descent(np.ascontiguousarray(gram), xy, yy, alpha * xc.shape[0], LASSO_MAX_ITER, LASSO_TOL)
    return np.abs(coef)


@numba.njit(cache=True)
def _gap(w, q, h, yy, alpha):
    """Duality gap (scikit-learn's formulation A, no L2 term) and ||Xᵀ R||_inf from Gram quantities.

    With ``h = Q w`` and ``q = Xᵀ y``: ``Xᵀ R = q - h``, ``||R||² = yᵀy - 2 qᵀw + wᵀh``, ``Rᵀy = yᵀy - qᵀw``.
    """
    d = w.shape[0]
    dual_norm = 0.0
    qw = 0.0
    wh = 0.0
    l1 = 0.0
    for k in range(d):
        dual_norm = max(dual_norm, abs(q[k] - h[k]))
        qw += q[k] * w[k]
        wh += w[k] * h[k]
        l1 += abs(w[k])
    r_norm2 = yy - 2.0 * qw + wh
    ry = yy - qw
    primal = 0.5 * r_norm2 + alpha * l1
    scale = alpha / dual_norm if dual_norm > alpha else 1.0
    dual = -0.5 * scale * scale * r_norm2 + scale * ry
    return primal - dual, dual_norm


@numba.njit(cache=True)
def _screen(w, q, h, gram, alpha, gap, dual_norm, excluded, active):
    """Gap-safe screening: the latents whose weight is provably 0 at the optimum leave the active set."""
    d = w.shape[0]
    n_active = 0
    radius = np.sqrt(2.0 * gap) / alpha
    for j in range(d):
        if excluded[j]:
            continue
        theta = (q[j] - h[j]) / max(alpha, dual_norm)
        dj = (1.0 - abs(theta)) / np.sqrt(gram[j, j])
        if dj <= radius:
            active[n_active] = j
            n_active += 1
        else:
            if w[j] != 0.0:
                for k in range(d):
                    h[k] -= w[j] * gram[k, j]
                w[j] = 0.0
            excluded[j] = True
    return n_active


@numba.njit(cache=True)
def _coordinate_descent(gram, xy, yy, alpha, max_iter, tol):
    """Lasso weights ``[D_a, D_b]`` for every target column, by cyclic coordinate descent.

    The update order, the screening and the stopping rule (largest weight change relative
    to the largest weight below ``tol``, then a duality gap below ``tol * yᵀy``) are
    scikit-learn's ``enet_coordinate_descent`` with ``beta = 0``.
    """
    d, t = xy.shape
    out = np.zeros((d, t))
    for target in range(t):
        q = xy[:, target].copy()
        w = np.zeros(d)
        h = np.zeros(d)  # gram @ w
        tol_gap = tol * yy[target]
        if yy[target] == 0.0:
            continue  # a constant target: every weight is 0
        gap, dual_norm = _gap(w, q, h, yy[target], alpha)
        if gap <= tol_gap:
            continue
        excluded = np.zeros(d, dtype=np.bool_)
        active = np.empty(d, dtype=np.int64)
        for j in range(d):
            if gram[j, j] == 0.0:
                excluded[j] = True  # a zero column never enters
        n_active = _screen(w, q, h, gram, alpha, gap, dual_norm, excluded, active)
        for n_iter in range(max_iter):
            w_max = 0.0
            d_w_max = 0.0
            for f in range(n_active):
                j = active[f]
                if gram[j, j] == 0.0:
                    continue
                w_j = w[j]
                tmp = (q[j] - h[j]) + w_j * gram[j, j]
                if tmp > alpha:
                    w[j] = (tmp - alpha) / gram[j, j]
                elif tmp < -alpha:
                    w[j] = (tmp + alpha) / gram[j, j]
                else:
                    w[j] = 0.0
                if w[j] != w_j:
                    delta = w[j] - w_j
                    for k in range(d):
                        h[k] += delta * gram[k, j]
                d_w_max = max(d_w_max, abs(w[j] - w_j))
                w_max = max(w_max, abs(w[j]))
            if w_max == 0.0 or d_w_max / w_max <= tol or n_iter == max_iter - 1:
                gap, dual_norm = _gap(w, q, h, yy[target], alpha)
                if gap <= tol_gap:
                    break
                n_active = _screen(w, q, h, gram, alpha, gap, dual_norm, excluded, active)
        out[:, target] = w
    return out


# ---------------------------------------------------------------------------------------
# UDR of a set of models


def standardise_codes(codes: np.ndarray, kl: np.ndarray) -> np.ndarray:
    """Codes z-scored as ``StandardScaler`` does, latents with KL <= 0.01 set to 0 (the reference's step 2).

    Population variance; a latent whose variance is within rounding of 0 (scikit-learn's
    ``_is_constant_feature`` bound) is centred and left unscaled.
    """
    x = np.asarray(codes, dtype=np.float64)
    n = x.shape[0]
    mean = x.mean(axis=0)
    var = x.var(axis=0)
    eps = np.finfo(np.float64).eps
    constant = var <= n * eps * var + (n * mean * eps) ** 2
    scale = np.where(constant, 1.0, np.sqrt(var))
    return (x - mean) / scale * (kl > CODE_KL_THRESHOLD)


def udr_scores(
    codes: Sequence,
    kl: Sequence,
    *,
    correlation_matrix: str = "lasso",
    filter_low_kl: bool = True,
    kl_filter_threshold: float = 0.01,
    include_raw_correlations: bool = False,
) -> dict:
    """UDR of models whose codes ``codes[m] [N, D]`` of the same N observations and KL per latent ``kl[m] [D]`` are given.

    Returns ``model_scores`` (one per model, in order), ``pairwise_disentanglement_scores``
    (``[n, n]``, entry (i, j) the score of the pair regressing model j on model i, 0 on the
    diagonal as in the reference), ``raw_correlations`` (``[n, n, D, D]``, if asked) and
    ``reasons`` (model index -> why its score is NaN).
    """
    check_choice("udr: correlation_matrix", correlation_matrix, CORRELATIONS)
    check_float("udr: kl_filter_threshold", kl_filter_threshold, low=0)
    if len(codes) < 2 or len(codes) != len(kl):
        raise ParameterError(
            f"udr needs the codes and the KL vector of at least two models, got {len(codes)} code arrays and {len(kl)} KL vectors"
        )
    arrays = [as_codes(c, "udr", name=f"codes of model {m}") for m, c in enumerate(codes)]
    shape = arrays[0].shape
    for m, a in enumerate(arrays):
        if a.shape != shape:
            raise ParameterError(
                f"udr: every model must encode the same points with the same number of latents; model 0 gives {shape}, model {m} {a.shape}"
            )
    if shape[0] < 2:
        raise ParameterError(f"udr: needs at least 2 observations, got {shape[0]}")
    kls = []
    for m, v in enumerate(kl):
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        if v.shape != (shape[1],) or not np.all(np.isfinite(v)):
            raise ParameterError(f"udr: the KL vector of model {m} must hold {shape[1]} finite values, got {np.asarray(kl[m]).shape}")
        kls.append(v)
    n, d = len(arrays), shape[1]
    stacked = np.hstack([standardise_codes(a, v) for a, v in zip(arrays, kls)])  # [N, n * D]
    masks = [v > kl_filter_threshold for v in kls]
    # every pair's correlations from one product of the stacked codes (Lasso: their Gram
    # matrix; Spearman: their ranks'), so no pair touches the N points again
    if correlation_matrix == "lasso":
        centred = stacked - stacked.mean(axis=0)
        gram = centred.T @ centred
        diagonal = np.ascontiguousarray(np.diag(gram))
    else:
        spearman = _spearman_from_ranks(_centred_ranks(stacked), _centred_ranks(stacked))
    raw = np.zeros((n, n, d, d)) if include_raw_correlations else None
    pairwise = np.zeros((n, n))
    reasons: dict[int, str] = {}
    for m in range(n):
        if filter_low_kl and not masks[m].any():
            reasons[m] = (f"model {m} is fully collapsed: no latent has a KL divergence above "
                          f"kl_filter_threshold={kl_filter_threshold}, so it has no latents to compare")
    for i in range(n):
        rows = slice(i * d, (i + 1) * d)
        if correlation_matrix == "lasso":  # model i's latents regress every latent of every model at once
            weights = np.abs(_coordinate_descent(np.ascontiguousarray(gram[rows, rows]), np.ascontiguousarray(gram[rows]),
                                                 diagonal, LASSO_ALPHA * shape[0], LASSO_MAX_ITER, LASSO_TOL))
        for j in range(n):
            if i == j:
                continue
            cols = slice(j * d, (j + 1) * d)
            corr = weights[:, cols] if correlation_matrix == "lasso" else spearman[rows, cols]
            if raw is not None:
                raw[i, j] = corr
            if filter_low_kl:
                corr = corr[masks[i]][:, masks[j]]
            pairwise[i, j] = relative_strength(corr) if corr.size else np.nan
    scores = []
    for i in range(n):
        others = np.delete(pairwise[:, i], i)
        others = others[np.isfinite(others)]
        if i in reasons or others.size == 0:
            reasons.setdefault(i, f"model {i}: every other model is fully collapsed, so no pair can be scored")
            scores.append(float("nan"))
        else:
            scores.append(float(np.median(others)))
    out = {"model_scores": scores, "pairwise_disentanglement_scores": pairwise.tolist(), "reasons": reasons}
    if raw is not None:
        out["raw_correlations"] = raw.tolist()
    return out


def gaussian_kl(mean: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """KL divergence of each latent's posterior to the N(0, 1) prior, averaged over the points: ``[D]``."""
    mean = np.asarray(mean, dtype=np.float64)
    logvar = np.asarray(logvar, dtype=np.float64)
    return np.mean(0.5 * (np.square(mean) + np.exp(logvar) - logvar - 1.0), axis=0)


GaussianEncoder = Callable[[np.ndarray], tuple]  # observations -> (mean [N, D], logvar [N, D])


@dataclass(frozen=True)
class UDR:
    """UDR with the reference's settings (``config/tests/methods/udr/udr.gin``): 1,000 points in batches of 10, Lasso.

    ``evaluate(data, encoders, rng=...)`` scores a set of Gaussian encoders (observations ->
    ``(mean, logvar)``) against each other; ``score(codes, kl)`` does it from arrays.
    """

    name: ClassVar[str] = "udr"
    num_data_points: int = 1_000
    batch_size: int = 10
    correlation_matrix: str = "lasso"
    filter_low_kl: bool = True
    include_raw_correlations: bool = True
    kl_filter_threshold: float = 0.01
    encode_batch_size: int = field(default=256, compare=False, metadata={"setting": False})

    def __post_init__(self):
        check_positive(self.name, num_data_points=self.num_data_points, batch_size=self.batch_size)
        check_choice("udr: correlation_matrix", self.correlation_matrix, CORRELATIONS)
        check_float("udr: kl_filter_threshold", self.kl_filter_threshold, low=0)
        if self.num_data_points % self.batch_size:
            raise ParameterError(
                f"udr: num_data_points must be a multiple of batch_size ({self.batch_size}), got {self.num_data_points}; "
                "the reference samples whole batches"
            )

    def score(self, codes: Sequence, kl: Sequence) -> dict:
        return udr_scores(
            codes, kl, correlation_matrix=self.correlation_matrix, filter_low_kl=self.filter_low_kl,
            kl_filter_threshold=self.kl_filter_threshold, include_raw_correlations=self.include_raw_correlations,
        )

    def sample_observations(self, data, *, rng) -> np.ndarray:
        """The observations every model encodes, drawn batch by batch as the reference draws them."""
        check_rng(rng)
        batches = [data.sample_observations(self.batch_size, rng=rng) for _ in range(self.num_data_points // self.batch_size)]
        return np.concatenate(batches)

    def evaluate(self, data, encoders: Sequence[GaussianEncoder], *, rng) -> dict:
        if len(encoders) < 2:
            raise ParameterError(f"udr scores models against each other: give at least two encoders, got {len(encoders)}")
        observations = self.sample_observations(data, rng=rng)
        codes, kls = [], []
        for m, encoder in enumerate(encoders):
            means, logvars = [], []
            for lo in range(0, observations.shape[0], self.encode_batch_size):
                mean, logvar = encoder(observations[lo : lo + self.encode_batch_size])
                means.append(np.asarray(mean))
                logvars.append(np.asarray(logvar))
            mean, logvar = np.concatenate(means), np.concatenate(logvars)
            as_codes(mean, "udr", name=f"codes of model {m}")
            as_codes(logvar, "udr", name=f"log-variances of model {m}")
            codes.append(mean)
            kls.append(gaussian_kl(mean, logvar))
        return self.score(codes, kls)
