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
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import metrics as M
from .errors import MissingFileError, ParameterError, check_choice
from .io import write_json_atomic

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
    """
    from .metrics.sampling import resolve_cache

    names = _metric_list(metrics, M.STUDY_METRICS)
    shared = resolve_cache(data, representation, cache)
    records = {}
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
        metric = M.get(name, **options)
        start = time.perf_counter()
        scores = metric.evaluate(data, representation, rng=np.random.RandomState(seed), cache=shared)
        record = {
            "metric": name,
            "scores": scores,
            "settings": {k: v for k, v in M.settings_of(metric).items() if not _execution_only(metric, k)},
            "seed": int(seed),
            "rng": "numpy.random.RandomState",
            "elapsed_s": round(time.perf_counter() - start, 3),
        }
        records[name] = record
        if on_result is not None:
            on_result(name, record)
    return records


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
    representation: str = "mean",
    metrics: Iterable[str] | None = None,
    seed_per_model: bool = False,
    force: bool = False,
    n_jobs: int | None = None,
    echo: Callable[[str], None] | None = None,
    settings: dict[str, dict] | None = None,
    device=None,
    seed_table: str = "unsupervised_study_v1",
) -> dict[str, dict]:
    """Score a finished run; write ``metrics/<representation>/<metric>.json``; skip done ones.

    ``settings`` overrides the study's settings per metric (recorded in each file).
    ``seed_table``: whose evaluation seeds (:data:`SEED_TABLES`), recorded in each file.
    ``device`` is where the encoder runs (default: the CPU; recorded as ``encoded_on``).
    """
    from . import __version__, data as data_module
    from .train.represent import Representation, load_model, resolve_device

    device = resolve_device(device)
    check_choice("representation", representation, REPRESENTATIONS)
    run_dir = Path(run_dir)
    names = _metric_list(metrics, M.STUDY_METRICS)
    out_dir = metrics_dir(run_dir, representation)
    done = {}
    for name in names:
        path = out_dir / f"{name}.json"
        if path.is_file() and not force:
            record = json.loads(path.read_text())
            if record.get("settings") == requested_settings(name, (settings or {}).get(name)):
                done[name] = record
                if echo:
                    echo(f"{name}: done already ({path})")
            elif echo:
                echo(f"{name}: {path} has other settings; computing again")
    todo = [n for n in names if n not in done]
    if not todo:
        return done
    model, config = load_model(run_dir)
    model_seed = int(getattr(config, "seed", 0))
    rep_seed = POSTPROCESS_SEEDS[representation]
    if seed_per_model:
        rep_seed = int(np.random.SeedSequence([rep_seed, model_seed]).generate_state(1)[0])
    rep = Representation(model, representation, seed=rep_seed, device=device)
    data = data_module.get(config.data.name, **config.data.options())
    seeds = {n: metric_seed(representation, n, model_seed=model_seed, seed_per_model=seed_per_model, table=seed_table)
             for n in todo}
    run_id = getattr(config, "run_id", None)

    def write(name: str, record: dict) -> None:
        record = {
            **record,
            "representation": representation,
            "representation_seed": rep_seed,
            "encoded_on": device.type,
            "seed_policy": "per_model" if seed_per_model else "study",
            **({"seed_table": seed_table} if seed_table != "unsupervised_study_v1" else {}),
            "run_id": run_id,
            "data": data.describe(),
            "package_version": __version__,
        }
        write_json_atomic(out_dir / f"{name}.json", record)
        done[name] = record
        if echo:
            shown = ", ".join(f"{k.split('.', 1)[1]}={v:.4g}" for k, v in list(record["scores"].items())[:4])
            echo(f"{name}: {shown} ({record['elapsed_s']:.1f} s)")

    evaluate_representation(
        data, rep, metrics=todo, seeds=seeds, representation_kind=representation, n_jobs=n_jobs, on_result=write, settings=settings
    )
    return {n: done[n] for n in names}


# ---------------------------------------------------------------------------------------
# a TorchScript encoder


class TorchScriptRepresentation:
    """``obs float32 [N, C, H, W] -> codes float32 [N, D]`` through a TorchScript encoder.

    The encoder's output is a tensor of codes or a tuple whose first element is (the mean).
    """

    deterministic = True

    def __init__(self, path: str | Path, *, batch_size: int = 256, deterministic: bool = True):
        import torch

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
        self.batch_size = int(batch_size)
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
