"""Evaluate anything: a trained run, saved codes, or a TorchScript encoder.

* :func:`evaluate_run` scores a finished training run's representation (``mean`` or
  ``sampled``) with the study's metrics and writes one JSON per metric into
  ``RUN_DIR/metrics/<representation>/<metric>.json`` (scores, settings, seed, timing);
  metrics already there are skipped, so it can be re-run after a crash.
* :func:`score_codes` scores saved codes and factors with the metrics that need only arrays.
* :func:`evaluate_encoder` scores a TorchScript encoder on a data set with any metric.

Seeds. By default every model is evaluated on the same sampled data, as in the study:
disentanglement_lib's ``dlib_reproduce`` draws one seed per (representation, metric
configuration) from ``RandomState(0)``, identically for every model, and so do we
(:data:`STUDY_SEEDS`, with ``numpy.random.RandomState`` as the generator, which makes the
drawn factors the reference's). Differences between models are then not confounded with
differences between evaluation samples. ``seed_per_model=True`` derives the seed from the
run's own seed instead, for studies of the metrics' sampling variance.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

import numpy as np

from . import metrics as M
from .errors import MissingFileError, ParameterError, check_choice, check_int
from .io import write_json_atomic
from .rundir import MetricKey

REPRESENTATIONS = ("mean", "sampled")

# dlib_reproduce: RandomState(0) draws the postprocessing seeds (mean, sampled), then one seed
# per (representation, metric config) with the configs sorted by file name. IRS is not in the
# study; its seeds are the next two draws of the same stream.
POSTPROCESS_SEEDS = {"mean": 2357136044, "sampled": 2546248239}
STUDY_SEEDS = {
    ("mean", "beta_vae"): 3071714933,
    ("mean", "dci"): 3626093760,
    ("mean", "downstream_boosted_trees"): 2588848963,
    ("mean", "downstream_logistic_regression"): 3684848379,
    ("mean", "factor_vae"): 2340255427,
    ("mean", "mig"): 3638918503,
    ("mean", "modularity_explicitness"): 1819583497,
    ("mean", "sap"): 2678185683,
    ("mean", "unsupervised"): 2774094101,
    ("sampled", "beta_vae"): 1650906866,
    ("sampled", "dci"): 1879422756,
    ("sampled", "downstream_boosted_trees"): 1277901399,
    ("sampled", "downstream_logistic_regression"): 3830135878,
    ("sampled", "factor_vae"): 243580376,
    ("sampled", "mig"): 4138900056,
    ("sampled", "modularity_explicitness"): 1171049868,
    ("sampled", "sap"): 1646868794,
    ("sampled", "unsupervised"): 2051556033,
    ("mean", "irs"): 3400433126,
    ("sampled", "irs"): 3488238119,
}

# the reference's metric configuration names and result keys
DLIB_METRIC_NAMES = {
    "beta_vae": "beta_vae_sklearn",
    "factor_vae": "factor_vae_metric",
    "mig": "mig",
    "dci": "dci",
    "sap": "sap_score",
    "modularity_explicitness": "modularity_explicitness",
    "unsupervised": "unsupervised",
    "downstream_logistic_regression": "downstream_task_logistic_regression",
    "downstream_boosted_trees": "downstream_task_boosted_trees",
    "irs": "irs",
    "fairness": "fairness",
    "strong_downstream": "strong_downstream_task",
    "reduced_downstream": "reduced_downstream_task",
    "unified": "unified_scores",
}
# metrics whose reference keys separate their parts with colons ("1000:mean_test_accuracy",
# "mean_fairness:pred0:sens1") where the project's keys use dots
COLON_KEYED = ("fairness", "strong_downstream", "reduced_downstream")
DLIB_KEY_NAMES = {"sap.sap_score": "SAP_score", "irs.irs": "IRS"}

# the follow-up studies' metrics that are not in the unsupervised study: seeded by the draws
# that follow IRS's, in this order (mean, then sampled, for each)
FOLLOWUP_METRICS = ("fairness", "strong_downstream", "reduced_downstream", "unified")


def reference_seeds(study_metrics: Iterable[str], others: Iterable[str] = ()) -> dict[tuple[str, str], int]:
    """The seeds ``dlib_reproduce`` gives a study whose metric configurations are ``study_metrics``.

    ``RandomState(0)`` draws the two postprocessing seeds, then one seed per
    (representation, metric configuration), the configurations sorted by the reference's
    file names; metrics outside the study (``others``) take the draws after those, in the
    order given.
    """
    rs = np.random.RandomState(0)
    rs.randint(2**32, size=len(REPRESENTATIONS))  # the postprocessing seeds
    ordered = sorted(study_metrics, key=lambda m: DLIB_METRIC_NAMES.get(m, m))
    seeds = {(r, m): int(rs.randint(2**32)) for r in REPRESENTATIONS for m in ordered}
    for m in others:
        for r in REPRESENTATIONS:
            seeds[(r, m)] = int(rs.randint(2**32))
    return seeds


# Seed tables a study can use (``evaluation.seed_table``). In fairness_study_v1 the reference
# adds fairness.gin to the nine metric configurations; since the seeds are drawn in file-name
# order, every configuration after "fairness" (mig, modularity_explicitness, sap_score,
# unsupervised, and all the sampled ones) gets another seed than in the unsupervised study:
# mean/fairness takes mean/mig's 3638918503, mean/mig becomes 1819583497, and so on.
SEED_TABLES = {
    "unsupervised_study_v1": reference_seeds(M.STUDY_METRICS, ("irs", *FOLLOWUP_METRICS)),  # STUDY_SEEDS and more
    "fairness_study_v1": reference_seeds(
        ("beta_vae", "dci", "downstream_boosted_trees", "downstream_logistic_regression", "factor_vae", "fairness", "mig",
         "modularity_explicitness", "sap", "unsupervised"),
        ("irs", "strong_downstream", "reduced_downstream", "unified"),
    ),
}

# what ``score_codes`` computes by default: the study's array-level metrics
CODES_METRICS = ("mig", "dci", "sap", "modularity_explicitness", "unsupervised")


def study_seed(representation: str, metric: str, table: str = "unsupervised_study_v1") -> int:
    """The seed the study uses for ``metric`` on ``representation``, the same for every model.

    ``table``: whose seeds (:data:`SEED_TABLES`); the unsupervised study's by default.
    """
    check_choice("seed_table", table, list(SEED_TABLES))
    key = (representation, metric)
    if key not in SEED_TABLES[table]:
        raise ParameterError(f"no study seed for metric {metric!r} on representation {representation!r}")
    return SEED_TABLES[table][key]


def metric_seed(representation: str, metric: str, *, model_seed: int | None = None, seed_per_model: bool = False,
                table: str = "unsupervised_study_v1") -> int:
    """The evaluation seed: the study's, or one derived from the model's seed as well."""
    base = study_seed(representation, metric, table)
    if not seed_per_model:
        return base
    if model_seed is None:
        raise ParameterError("seed_per_model needs the model's seed")
    return int(np.random.SeedSequence([base, int(model_seed)]).generate_state(1)[0])


SEED_SCHEMES = ("study", "per_model", "jmlr")
UNSWEPT_SEEDS = ("reference", "drawn")


@dataclass(frozen=True)
class EvaluationProtocol:
    """How often, at which sample sizes and with which seeds a run's metrics are computed.

    ``num_eval``: repetitions of every evaluation, each with its own seed. ``sample_sizes``:
    per metric, the ``num_train`` values to compute it at, each its own result (a swept
    metric is computed only at these sizes). ``seeds``:

    * ``study`` (default): the study's seed table, the same for every model; repetition k > 0
      and swept sizes mix (k, size) into the seed.
    * ``per_model``: those seeds mixed with the model's seed.
    * ``jmlr``: the reference's JMLR pipeline (``dlib_reproduce_jmlr``): one
      ``RandomState(random_seed)`` per model draws the model's training seed, then one seed
      per representation (sorted), then for each repetition, representation and metric
      (sorted by the reference's configuration names) one seed per sample size of a swept
      metric. The reference gives metrics it does not sweep no seed, so they keep the
      configuration's ``random_seed = 0`` in every repetition and for every model;
      ``unswept_seeds="reference"`` (default) keeps that, ``"drawn"`` gives each a seed of
      its own from ``SeedSequence([random_seed, repetition, ...])``, leaving the stream the
      swept metrics draw from as it is.
    """

    num_eval: int = 1
    sample_sizes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    seeds: str = "study"
    seed_table: str = "unsupervised_study_v1"
    unswept_seeds: str = "reference"

    def __post_init__(self):
        check_int("num_eval", self.num_eval, low=1, why="the number of repetitions of each evaluation")
        check_choice("seeds", self.seeds, SEED_SCHEMES)
        check_choice("seed_table", self.seed_table, list(SEED_TABLES))
        check_choice("unswept_seeds", self.unswept_seeds, UNSWEPT_SEEDS)
        sizes = {}
        for metric, values in dict(self.sample_sizes).items():
            M.get(metric)  # an unknown metric fails here, with close matches
            if isinstance(values, (int, str)) or not values:
                raise ParameterError(f"sample_sizes.{metric} must be a non-empty list of sample sizes (num_train "
                                     f"values), got {values!r}")
            for value in values:
                check_int(f"sample_sizes.{metric}", value, low=1, why="a number of training points (num_train)")
            sizes[metric] = tuple(sorted(set(int(v) for v in values)))
        object.__setattr__(self, "sample_sizes", sizes)

    def keys(self, representations: Iterable[str], metrics: Iterable[str]) -> list[MetricKey]:
        """Every evaluation, in the order the JMLR pipeline draws their seeds."""
        reps = sorted(set(representations))
        ordered = sorted(set(metrics), key=lambda m: DLIB_METRIC_NAMES.get(m, m))
        return [MetricKey(r, m, size, k) for k in range(self.num_eval) for r in reps for m in ordered
                for size in self.sample_sizes.get(m, (None,))]

    def settings(self, key: MetricKey, settings: Mapping | None = None) -> dict:
        """The metric's settings for ``key``: ``settings`` with the sample size bound to ``num_train``.

        Every metric has ``num_train``; where it is a list of sizes (the downstream tasks), a
        sample size makes it that one size. (The reference binds ``<config name>.num_train``,
        which names the configurable only for five of the study's nine configurations.)
        """
        out = dict(settings or {})
        if key.sample_size is not None:
            default = M.METRICS[key.metric].__dataclass_fields__["num_train"].default
            out["num_train"] = (key.sample_size,) if isinstance(default, tuple) else key.sample_size
        return out

    def model_seed(self, random_seed: int) -> int:
        """The JMLR pipeline's training seed for ``random_seed``: the first draw of its stream."""
        return int(np.random.RandomState(random_seed).randint(2**32))

    def seeds_for(self, keys: list[MetricKey], *, model_seed: int | None = None,
                  random_seed: int | None = None) -> tuple[dict[str, int], dict[MetricKey, int]]:
        """``(representation seeds, evaluation seeds)`` for a model.

        ``model_seed``: the run's seed (``per_model``); ``random_seed``: the JMLR pipeline's
        seed of the model (``jmlr``). ``keys`` must be all of the model's evaluations (as
        :meth:`keys` gives them), since in the JMLR stream each seed depends on those before.
        """
        reps = sorted({k.representation for k in keys})
        if self.seeds == "jmlr":
            if random_seed is None:
                raise ParameterError("seeds='jmlr' needs the model's random_seed (the JMLR pipeline's --random_seed)")
            stream = np.random.RandomState(random_seed)
            stream.randint(2**32)  # the model's training seed
            rep_seeds = {r: int(stream.randint(2**32)) for r in reps}
            out = {}
            for i, key in enumerate(keys):
                if key.sample_size is not None:
                    out[key] = int(stream.randint(2**32))
                elif self.unswept_seeds == "reference":
                    out[key] = 0
                else:
                    out[key] = int(np.random.SeedSequence([random_seed, key.repetition, i]).generate_state(1)[0])
            return rep_seeds, out
        per_model = self.seeds == "per_model"
        if per_model and model_seed is None:
            raise ParameterError("seeds='per_model' needs the model's seed")
        rep_seeds = {}
        for r in reps:
            rep_seeds[r] = POSTPROCESS_SEEDS[r]
            if per_model:
                rep_seeds[r] = int(np.random.SeedSequence([rep_seeds[r], int(model_seed)]).generate_state(1)[0])
        out = {}
        for key in keys:
            seed = metric_seed(key.representation, key.metric, model_seed=model_seed, seed_per_model=per_model,
                               table=self.seed_table)
            if key.repetition or key.sample_size is not None:
                seed = int(np.random.SeedSequence([seed, key.repetition, key.sample_size or 0]).generate_state(1)[0])
            out[key] = seed
        return rep_seeds, out

    def describe(self) -> dict:
        """What a results file records of the protocol (only what differs from the study's)."""
        out: dict = {"seed_policy": self.seeds}
        if self.seed_table != "unsupervised_study_v1":
            out["seed_table"] = self.seed_table
        if self.seeds == "jmlr":
            out["unswept_seeds"] = self.unswept_seeds
        return out


def to_dlib_keys(scores: dict[str, float]) -> dict[str, float]:
    """Project keys (``sap.sap_score``) -> the reference's (``sap_score.SAP_score``)."""
    out = {}
    for key, value in scores.items():
        metric, rest = key.split(".", 1)
        name = DLIB_METRIC_NAMES.get(metric, metric)
        if key in DLIB_KEY_NAMES:
            rest = DLIB_KEY_NAMES[key]
        elif metric in COLON_KEYED:
            rest = rest.replace(".", ":")
        elif metric.startswith("downstream_") and "." in rest:
            size, tail = rest.split(".", 1)
            rest = f"{size}:{tail}"
        out[f"{name}.{rest}"] = value
    return out


def _metric_list(metrics: Iterable[str] | None, default: Iterable[str]) -> list[str]:
    names = list(default if not metrics else metrics)
    for name in names:
        M.get(name)  # unknown names fail here, with close matches
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------------------
# saved codes


def load_codes(path: str | Path):
    """``(codes, factors, codes_test, factors_test)`` from an ``.npz`` file (test arrays optional)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file")
    with open(path, "rb") as fh:
        magic = fh.read(6)
    how = "save the arrays together with numpy.savez(path, codes=..., factors=...)"
    if magic.startswith(b"\x93NUMPY"):
        raise ParameterError(f"{path}: a single .npy array, not an .npz archive; {how}")
    if not magic.startswith(b"PK"):  # an .npz is a zip archive; numpy would talk of pickles here
        raise ParameterError(f"{path}: not a NumPy .npz archive (it is not a zip file); {how}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:  # a truncated archive, or arrays of objects
        raise ParameterError(f"{path}: not a readable .npz archive of numeric arrays ({err}); {how}") from err
    with archive as f:
        missing = [k for k in ("codes", "factors") if k not in f.files]
        if missing:
            raise ParameterError(f"{path}: needs arrays 'codes' [N, D] and 'factors' [N, K]; missing {missing}; it has {f.files}")
        codes, factors = f["codes"], f["factors"]
        has_test = "codes_test" in f.files or "factors_test" in f.files
        if has_test and not ("codes_test" in f.files and "factors_test" in f.files):
            raise ParameterError(f"{path}: give both 'codes_test' and 'factors_test', or neither")
        codes_test = f["codes_test"] if has_test else None
        factors_test = f["factors_test"] if has_test else None
    return codes, factors, codes_test, factors_test


def score_codes(
    codes,
    factors,
    codes_test=None,
    factors_test=None,
    *,
    metrics: Iterable[str] | None = None,
    fmt: str = "project",
    n_jobs: int | None = None,
) -> dict[str, float]:
    """Array-level metrics as the reference computes them from a training and a test sample.

    MIG, modularity, IRS and the unsupervised scores use the training arrays; DCI, SAP and
    explicitness are fitted on the training arrays and scored on the test arrays (without
    test arrays, the training arrays serve as both). ``fmt="dlib"`` gives the reference's
    keys.
    """
    check_choice("format", fmt, ("project", "dlib"))
    names = _metric_list(metrics, CODES_METRICS)
    for name in names:
        if name not in M.ARRAY_METRICS:
            raise ParameterError(
                f"metric {name!r} needs to sample from a data set and cannot be computed from saved codes; "
                f"array-level metrics: {', '.join(M.ARRAY_METRICS)}"
            )
    out: dict[str, float] = {}
    for name in names:
        settings = {"n_jobs": n_jobs} if "n_jobs" in {f for f in M.METRICS[name].__dataclass_fields__} else {}
        metric = M.get(name, **settings)
        if name in ("sap", "unified", "reduced_downstream"):  # their solvers' seeds come from an rng
            out.update(metric.score(codes, factors, codes_test, factors_test, rng=np.random.default_rng(0)))
        else:
            out.update(metric.score(codes, factors, codes_test, factors_test))
    return to_dlib_keys(out) if fmt == "dlib" else out


# ---------------------------------------------------------------------------------------
# any representation function on any data set


def evaluate_representation(
    data,
    representation: Callable,
    *,
    metrics: Iterable[str] | None = None,
    seeds: dict[str, int] | None = None,
    representation_kind: str = "mean",
    cache=None,
    n_jobs: int | None = None,
    on_result: Callable[[str, dict], None] | None = None,
    skip: Iterable[str] = (),
    settings: dict[str, dict] | None = None,
    seed_table: str = "unsupervised_study_v1",
) -> dict[str, dict]:
    """Score ``representation`` on ``data`` with each metric; one record per metric.

    One encoding cache is shared by all the metrics (when the data set and the
    representation are deterministic), so each distinct observation is encoded once;
    ``cache`` may be an ``EncodingCache`` to share with other calls, or False to disable it.
    ``settings`` overrides the study's settings per metric (``{"mig": {"num_train": 1000}}``).

    The metrics that fit classifiers in the worker pool (:class:`~disentangled.metrics.base.PooledMetric`)
    are started first and the others computed while the pool works; each metric's draws come
    from its own generator, so the order changes no score. ``on_result`` is called as each
    metric finishes; a record's ``elapsed_s`` is the time this process spent on the metric
    (for a pooled one: drawing its samples, then waiting for its fits).
    """
    from .metrics.base import PooledMetric
    from .metrics.sampling import resolve_cache

    names = _metric_list(metrics, M.STUDY_METRICS)
    shared = resolve_cache(data, representation, cache)
    chosen = []
    for name in names:
        if name in skip:
            continue
        seed = (seeds or {}).get(name)
        if seed is None:
            seed = study_seed(representation_kind, name, seed_table)
        fields = M.METRICS[name].__dataclass_fields__
        options = dict((settings or {}).get(name, {}))
        if n_jobs is not None and "n_jobs" in fields:
            options.setdefault("n_jobs", n_jobs)
        chosen.append((name, M.get(name, **options), int(seed)))

    records = {}

    def done(name, metric, seed, scores, elapsed):
        records[name] = {
            "metric": name,
            "scores": scores,
            "settings": {k: v for k, v in M.settings_of(metric).items() if not _execution_only(metric, k)},
            "seed": seed,
            "rng": "numpy.random.RandomState",
            "elapsed_s": round(elapsed, 3),
        }
        if on_result is not None:
            on_result(name, records[name])

    started = []
    for name, metric, seed in chosen:
        if isinstance(metric, PooledMetric):
            start = time.perf_counter()
            pending = metric.start(data, representation, rng=np.random.RandomState(seed), cache=shared)
            started.append((name, metric, seed, pending, time.perf_counter() - start))
    for name, metric, seed in chosen:
        if not isinstance(metric, PooledMetric):
            start = time.perf_counter()
            scores = metric.evaluate(data, representation, rng=np.random.RandomState(seed), cache=shared)
            done(name, metric, seed, scores, time.perf_counter() - start)
    for name, metric, seed, pending, spent in started:
        start = time.perf_counter()
        scores = pending.result()
        done(name, metric, seed, scores, spent + time.perf_counter() - start)
    return {name: records[name] for name, _, _ in chosen}


def requested_settings(name: str, overrides: dict | None = None) -> dict:
    """The settings recorded for ``name`` with ``overrides`` (execution-only options left out)."""
    metric = M.get(name, **(overrides or {}))
    return {k: v for k, v in M.settings_of(metric).items() if not _execution_only(metric, k)}


def _execution_only(metric, key: str) -> bool:
    field = metric.__dataclass_fields__[key]
    return field.metadata.get("setting", True) is False


# ---------------------------------------------------------------------------------------
# a trained run


def metrics_dir(run_dir: str | Path, representation: str) -> Path:
    from .rundir import RunDir

    return RunDir(run_dir).metrics_dir(representation)


def evaluate_run(
    run_dir: str | Path,
    *,
    representation: str | Iterable[str] = "mean",
    metrics: Iterable[str] | None = None,
    seed_per_model: bool = False,
    force: bool = False,
    n_jobs: int | None = None,
    echo: Callable[[str], None] | None = None,
    settings: dict[str, dict] | None = None,
    device=None,
    seed_table: str = "unsupervised_study_v1",
    protocol: EvaluationProtocol | None = None,
    random_seed: int | None = None,
) -> dict[str, dict]:
    """Score a finished run; write one file per evaluation (``RunDir.metric_path``); skip done ones.

    ``representation``: one or several. ``settings`` overrides the study's settings per
    metric (recorded in each file). ``protocol`` says how often, at which sample sizes and
    with which seeds (:class:`EvaluationProtocol`; default: once, with the study's seeds of
    ``seed_table``, mixed with the model's seed with ``seed_per_model``); ``random_seed`` is
    the model's JMLR pipeline seed for ``protocol.seeds == "jmlr"``. ``device`` is where the
    encoder runs (default: the CPU; recorded as ``encoded_on``). Returns the records by file
    stem (the metric's name, for an evaluation that is neither repeated nor swept).
    """
    from . import __version__, data as data_module
    from .metrics.sampling import resolve_cache
    from .rundir import RunDir
    from .train.represent import GaussianEncoder, Representation, load_model, resolve_device

    if protocol is None:
        protocol = EvaluationProtocol(seeds="per_model" if seed_per_model else "study", seed_table=seed_table)
    device = resolve_device(device)
    representations = [representation] if isinstance(representation, str) else list(representation)
    for rep in representations:
        check_choice("representation", rep, REPRESENTATIONS)
    run = RunDir(run_dir)
    names = _metric_list(metrics, M.STUDY_METRICS)
    keys = protocol.keys(representations, names)
    requested = {k: protocol.settings(k, (settings or {}).get(k.metric)) for k in keys}
    done = {}
    for key in keys:
        path = run.metric_path(key)
        if path.is_file() and not force:
            record = json.loads(path.read_text())
            if record.get("settings") == requested_settings(key.metric, requested[key]):
                done[key] = record
                if echo:
                    echo(f"{key.stem}: done already ({path})")
            elif echo:
                echo(f"{key.stem}: {path} has other settings; computing again")
    todo = [k for k in keys if k not in done]
    if todo:
        model, config = load_model(run.path)
        model_seed = int(getattr(config, "seed", 0))
        if protocol.seeds == "jmlr" and random_seed is not None and protocol.model_seed(random_seed) != model_seed:
            raise ParameterError(
                f"{run.path}: trained with seed {model_seed}, which is not the JMLR pipeline's model seed for "
                f"random_seed={random_seed} ({protocol.model_seed(random_seed)}); give the random_seed the run was "
                "planned with, or evaluate with another seed scheme")
        rep_seeds, seeds = protocol.seeds_for(keys, model_seed=model_seed, random_seed=random_seed)
        data = data_module.get(config.data.name, **config.data.options())
        run_id = getattr(config, "run_id", None)
        gaussian = GaussianEncoder(model, device=device)
        shared = None  # each distinct observation encoded once, for every metric and both representations
        for rep in representations:
            todo_here = [k for k in todo if k.representation == rep]
            if not todo_here:
                continue
            encoder = Representation(model, rep, seed=rep_seeds[rep], encoder=gaussian)
            shared = resolve_cache(data, encoder, shared)
            for key in todo_here:
                record = evaluate_representation(
                    data, encoder, metrics=[key.metric], seeds={key.metric: seeds[key]}, representation_kind=rep,
                    cache=shared, n_jobs=n_jobs, settings={key.metric: requested[key]})[key.metric]
                record = {
                    **record,
                    "representation": rep,
                    **({"sample_size": key.sample_size} if key.sample_size is not None else {}),
                    **({"repetition": key.repetition} if protocol.num_eval > 1 else {}),
                    "representation_seed": rep_seeds[rep],
                    "encoded_on": device.type,
                    **protocol.describe(),
                    **({"random_seed": random_seed} if protocol.seeds == "jmlr" else {}),
                    "run_id": run_id,
                    "data": data.describe(),
                    "package_version": __version__,
                }
                write_json_atomic(run.metric_path(key), record)
                done[key] = record
                if echo:
                    shown = ", ".join(f"{k.split('.', 1)[1]}={v:.4g}" for k, v in list(record["scores"].items())[:4])
                    echo(f"{key.stem}: {shown} ({record['elapsed_s']:.1f} s)")
    return {k.stem if len(representations) == 1 else f"{k.representation}/{k.stem}": done[k] for k in keys}


# ---------------------------------------------------------------------------------------
# a TorchScript encoder


class TorchScriptRepresentation:
    """``obs float32 [N, C, H, W] -> codes float32 [N, D]`` through a TorchScript encoder.

    The encoder's output is a tensor of codes or a tuple whose first element is (the mean).
    """

    deterministic = True

    def __init__(self, path: str | Path, *, batch_size: int | None = None, deterministic: bool = True):
        import torch

        from .train.represent import CPU_BATCH

        self.path = Path(path)
        if not self.path.is_file():
            raise MissingFileError(f"{self.path}: no such file")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, still the portable format
            try:
                self.module = torch.jit.load(str(self.path), map_location="cpu")
            except (RuntimeError, ValueError) as err:  # not a TorchScript archive
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ParameterError(f"{self.path}: not a TorchScript file ({first}); export the encoder with "
                                     "torch.jit.save(torch.jit.script(encoder), path)") from err
        self.module.eval()
        self.batch_size = int(batch_size or CPU_BATCH)  # it runs on the CPU
        self.deterministic = bool(deterministic)

    def __call__(self, observations: np.ndarray) -> np.ndarray:
        import torch

        x = torch.as_tensor(np.asarray(observations, dtype=np.float32))
        out = []
        with torch.no_grad():
            for start in range(0, x.shape[0], self.batch_size):
                y = self.module(x[start : start + self.batch_size])
                if isinstance(y, (tuple, list)):
                    y = y[0]
                if not isinstance(y, torch.Tensor):
                    raise ParameterError(f"{self.path}: the encoder must return a tensor or a tuple of tensors, got {type(y).__name__}")
                out.append(y.reshape(y.shape[0], -1).float())
        return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def evaluate_encoder(
    encoder: str | Path,
    dataset: str,
    *,
    dataset_options: dict | None = None,
    metrics: Iterable[str] | None = None,
    seed: int | None = None,
    cache: bool | None = None,
    n_jobs: int | None = None,
    echo: Callable[[str], None] | None = None,
    settings: dict[str, dict] | None = None,
) -> dict[str, dict]:
    """Score a TorchScript encoder on a registered data set (the study's seeds for ``mean``)."""
    from . import data as data_module

    data = data_module.get(dataset, **(dataset_options or {}))
    rep = TorchScriptRepresentation(encoder, deterministic=cache is not False)
    names = _metric_list(metrics, M.STUDY_METRICS)
    seeds = None if seed is None else {n: metric_seed("mean", n, model_seed=seed, seed_per_model=True) for n in names}

    def show(name, record):
        if echo:
            echo(f"{name}: done in {record['elapsed_s']:.1f} s")

    return evaluate_representation(
        data, rep, metrics=names, seeds=seeds, cache=cache, n_jobs=n_jobs, on_result=show, settings=settings
    )
