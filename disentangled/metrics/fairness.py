"""Unfairness of downstream classifiers (Locatello et al., "On the Fairness of Disentangled Representations", NeurIPS 2019).

As disentanglement_lib's ``fairness`` computes it: for each target factor i a
gradient-boosted classifier is fitted on ``num_train`` codes. For each other factor j (the
"sensitive" one), **one** set of ``num_test_points_per_class`` factor vectors is drawn and
reused for every value c of factor j (a paired design): factor j is set to c, the images are
rendered and encoded, and the predicted classes of factor i are counted, giving a table
``counts [n_i predicted classes, n_j sensitive values]``. Its unfairness is the total
variation distance between each sensitive group's distribution of predictions and the
pooled one, ``TV_c = ½ ||p(ŷ | s=c) - p(ŷ)||₁``, averaged over groups by group size
(``mean``) or maximised (``max``).

Keys (``P`` is ``mean_fairness`` or ``max_fairness``, written with dots here where the
reference writes colons): ``P.pred<i>.sens<j>`` for i != j; per target
``P.pred<i>.mean_sens`` / ``.max_sens``; per sensitive factor ``P.sens<j>.mean_pred`` /
``.max_pred``; and the eight totals ``P.<mean|max>_sens.<mean|max>_pred`` and
``P.<mean|max>_pred.<mean|max>_sens``. The paper's score is
``fairness.mean_fairness.mean_pred.mean_sens``.

The group distributions are computed in float32, as the reference computes them. The
classifiers' tie-breaking seeds are drawn from the metric's rng after every sample is drawn
(the reference's classifiers are unseeded), so the samples are the reference's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..errors import ParameterError, check_choice
from .base import check_positive, namespaced
from .predictors import BACKENDS, default_jobs, worker_pool
from .sampling import Encoder, resolve_cache, sample_codes
from .utils import as_codes, seed_from


def inter_group_fairness(counts) -> tuple[float, float]:
    """``(mean, max)`` total variation of each column's distribution from the pooled one.

    ``counts [predicted classes, sensitive groups]``; the mean weights each group by its size.
    """
    counts = np.asarray(counts)
    if counts.ndim != 2 or counts.shape[1] < 1 or np.any(counts.sum(axis=0) == 0):
        raise ParameterError(f"fairness: counts must be [classes, groups] with every group non-empty, got shape {counts.shape}")
    pooled = np.sum(counts, axis=1, dtype=np.float32)
    pooled /= pooled.sum()
    per_group = counts.sum(axis=0)
    distributions = counts.astype(np.float32)
    distributions /= per_group[None, :]
    total_variation = np.sum(np.abs(distributions - pooled[:, None]), axis=0) / 2.0
    weighted = total_variation * per_group
    weighted /= per_group.sum()
    return float(np.sum(weighted)), float(np.max(total_variation))


def fairness_scores_dict(matrix, prefix: str) -> dict[str, float]:
    """Every aggregate of a ``[target, sensitive]`` unfairness matrix (the diagonal is not used)."""
    m = np.asarray(matrix, dtype=np.float64)
    k = m.shape[0]
    if m.ndim != 2 or m.shape != (k, k) or k < 2:
        raise ParameterError(f"fairness: the unfairness matrix must be square with at least 2 factors, got shape {m.shape}")
    out: dict[str, float] = {}
    for i in range(k):
        for j in range(k):
            if i != j:
                out[f"{prefix}.pred{i}.sens{j}"] = float(m[i, j])
    off = ~np.eye(k, dtype=bool)
    rows = [m[i, off[i]] for i in range(k)]  # per target, over the sensitive factors
    cols = [m[off[:, j], j] for j in range(k)]  # per sensitive factor, over the targets
    row_mean, row_max = [float(np.mean(r)) for r in rows], [float(np.max(r)) for r in rows]
    col_mean, col_max = [float(np.mean(c)) for c in cols], [float(np.max(c)) for c in cols]
    for i in range(k):
        out[f"{prefix}.pred{i}.mean_sens"] = row_mean[i]
        out[f"{prefix}.pred{i}.max_sens"] = row_max[i]
        out[f"{prefix}.sens{i}.mean_pred"] = col_mean[i]
        out[f"{prefix}.sens{i}.max_pred"] = col_max[i]
    out[f"{prefix}.mean_sens.mean_pred"] = float(np.mean(col_mean))
    out[f"{prefix}.mean_sens.max_pred"] = float(np.mean(col_max))
    out[f"{prefix}.max_sens.mean_pred"] = float(np.max(col_mean))
    out[f"{prefix}.max_sens.max_pred"] = float(np.max(col_max))
    out[f"{prefix}.mean_pred.mean_sens"] = float(np.mean(row_mean))
    out[f"{prefix}.mean_pred.max_sens"] = float(np.mean(row_max))
    out[f"{prefix}.max_pred.mean_sens"] = float(np.max(row_mean))
    out[f"{prefix}.max_pred.max_sens"] = float(np.max(row_max))
    return out


def fit_predict(x_train, y_train, x_test, *, backend: str = "fast", seed: int = 0) -> np.ndarray:
    """Labels predicted for ``x_test`` by ``GradientBoostingClassifier()`` fitted on ``(x_train, y_train)``.

    A target with one value in the training sample gets the constant predictor.
    """
    from threadpoolctl import threadpool_limits

    values = np.unique(y_train)
    if values.size < 2:
        return np.full(x_test.shape[0], values[0], dtype=np.int64)
    with threadpool_limits(1):
        if backend == "fast":
            from .boosting import fit_gbt

            return np.asarray(fit_gbt(x_train, y_train, x_test, random_state=seed).predict_test, dtype=np.int64)
        from sklearn.ensemble import GradientBoostingClassifier

        model = GradientBoostingClassifier(random_state=seed).fit(x_train, y_train)
        return np.asarray(model.predict(x_test), dtype=np.int64)


def check_factors(metric: str, data, minimum: int = 2) -> None:
    """A task that intervenes on one factor while predicting another needs two factors."""
    if data.num_factors < minimum:
        raise ParameterError(
            f"{metric}: the data set must have at least {minimum} latent factors (one to predict, another to intervene on), "
            f"got {data.num_factors} ({getattr(data, 'name', type(data).__name__)}: {list(data.factor_names)}); "
            "choose a data set with several factors"
        )


@dataclass(frozen=True)
class Fairness:
    """Unfairness with the study's settings (``fairness_study_v1/metric_configs/fairness.gin``).

    10,000 training points, 100 test points per value of the sensitive factor, boosted trees.
    ``backend``: "fast" (default, this package's boosted trees) or "sklearn".
    """

    name: ClassVar[str] = "fairness"
    num_train: int = 10_000
    num_test_points_per_class: int = 100
    batch_size: int = 16
    backend: str = "fast"
    n_jobs: int | None = field(default=None, compare=False, metadata={"setting": False})

    def __post_init__(self):
        check_positive(self.name, num_train=self.num_train, num_test_points_per_class=self.num_test_points_per_class,
                       batch_size=self.batch_size)
        check_choice("fairness: backend", self.backend, BACKENDS)

    def evaluate(self, data, representation, *, rng, cache=None) -> dict[str, float]:
        check_factors(self.name, data)
        cache = resolve_cache(data, representation, cache)
        codes_train, factors_train = sample_codes(data, representation, self.num_train, rng=rng, batch_size=self.batch_size, cache=cache)
        codes_train = as_codes(codes_train, self.name)
        sizes = data.factor_sizes
        k = data.num_factors
        # every test sample, in the reference's order (the fits draw nothing, so they can wait)
        encoder = Encoder(data, representation, cache=cache)
        blocks: list[tuple[int, int]] = []  # (target i, sensitive j), each holding sizes[j] groups of points
        for i in range(k):
            for j in range(k):
                if i == j:
                    continue
                base = data.sample_factors(self.num_test_points_per_class, rng=rng)
                for c in range(sizes[j]):
                    intervened = base.copy()
                    intervened[:, j] = c
                    encoder.add(intervened, rng)
                blocks.append((i, j))
        codes_test = as_codes(encoder.codes(), self.name, name="codes_test")
        seeds = [seed_from(rng) for _ in range(k)]
        n = self.num_test_points_per_class
        starts, offset = {}, 0
        for i, j in blocks:
            starts[(i, j)] = offset
            offset += n * sizes[j]
        rows = {i: np.concatenate([np.arange(starts[(i, j)], starts[(i, j)] + n * sizes[j]) for j in range(k) if j != i])
                for i in range(k)}
        jobs = [(codes_train, factors_train[:, i], codes_test[rows[i]], self.backend, seeds[i]) for i in range(k)]
        n_jobs = self.n_jobs or default_jobs(codes_train.shape[0] * sum(sizes))
        if n_jobs > 1:
            from joblib import delayed

            predictions = worker_pool(min(n_jobs, k))(delayed(_predict_job)(*job) for job in jobs)
        else:
            predictions = [_predict_job(*job) for job in jobs]
        mean_fairness = np.zeros((k, k))
        max_fairness = np.zeros((k, k))
        for i in range(k):
            pred, pos = predictions[i], 0
            for j in range(k):
                if j == i:
                    continue
                counts = np.stack([np.bincount(pred[pos + c * n : pos + (c + 1) * n], minlength=sizes[i])[: sizes[i]]
                                   for c in range(sizes[j])], axis=1)
                pos += n * sizes[j]
                mean_fairness[i, j], max_fairness[i, j] = inter_group_fairness(counts)
        scores = {**fairness_scores_dict(mean_fairness, "mean_fairness"), **fairness_scores_dict(max_fairness, "max_fairness")}
        return namespaced(self.name, scores)


def _predict_job(x_train, y_train, x_test, backend, seed):
    return fit_predict(x_train, y_train, x_test, backend=backend, seed=seed)
