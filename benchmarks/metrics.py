"""Speed of the metric suite: this package against disentanglement_lib, same inputs, same values.

The reference is imported from a throwaway environment given on the command line (it is
never a dependency of this project), for example one made with::

    python3 -m venv /tmp/refenv
    /tmp/refenv/bin/pip install disentanglement-lib==1.5 --no-deps
    python benchmarks/metrics.py --reference /tmp/refenv/lib/python3.11/site-packages

Only its pure-numpy metric modules are imported; ``gin`` and ``absl.logging`` are replaced by
small stand-ins when they are missing, and its gin-bound settings (discretiser, predictor,
FactorVAE's pruning threshold) are set to the study's values. Both sides draw from the same
data set with ``numpy.random.RandomState(seed)`` (the study's seed for the metric) and encode
with the same representation function, so both see the same samples; the table reports the
largest difference between the two sides' scores next to the times.

Representations: ``linear`` (default) is a cheap fixed code of the synthetic sprites (8x8
average pooling, a random linear map, tanh); ``conv`` is a trained encoder, the mean of a
finished training run given with ``--run``, loaded and called as ``disentangled evaluate``
calls it (``train.represent.Representation`` on the CPU), on the run's data set. A short run
is enough to have informative codes, for example (about 3 minutes on 2 cores)::

    disentangled train --out /tmp/convrun data.source=procedural train.steps=1500
    python benchmarks/metrics.py --reference PATH --representation conv --run /tmp/convrun

``--encode-batch`` sets the encoder's images per forward pass on both sides (default:
``train.represent.CPU_BATCH``): the representation function runs whatever a call hands it,
the reference's 16 or 64 images or our cache's 256, in passes of that many.

Our suite runs as ``disentangled evaluate`` runs it: one encoding cache shared by all the
metrics, per-factor classifiers in parallel in one pool of workers kept between the metrics. Thread pools are limited to one thread on both
sides by default (``--threads``) so that the comparison is of algorithms, not of BLAS
oversubscription.

The follow-up studies' scores (``--followups``: fairness, strong and reduced downstream tasks,
unified scores, and UDR with the Lasso and with Spearman correlations) are measured the same
way. UDR scores a set of models: ``--udr-models`` Gaussian encoders (the representation
rotated by fixed random orthogonal maps, log-variance -1) are scored against each other.
The reference's UDR module is not in the disentanglement-lib 1.5 release on PyPI; give
``--reference`` a checkout of the repository's source (the folder holding
``disentanglement_lib/``) to compare it, otherwise it is timed on our side only. The
reference's strong downstream task draws its interventions from numpy's global state, so
only its ordinary accuracies (the same samples on both sides) enter the difference column;
its unified scores need ``factor_names`` on the data set (only its test data set has them),
given here so that it runs.

Usage::

    python benchmarks/metrics.py --reference PATH [--sizes study|small] [--representation linear|conv --run RUN_DIR]
        [--encode-batch N] [--dataset synthetic|dsprites_full] [--metric NAME ...] [--followups] [--skip-reference]
        [--output results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import types
import warnings
from pathlib import Path

SIZES = {
    "study": {},
    "small": {
        "beta_vae": dict(num_train=1000, num_eval=500),
        "factor_vae": dict(num_train=1000, num_eval=500, num_variance_estimate=1000),
        "mig": dict(num_train=2000),
        "dci": dict(num_train=2000, num_test=1000),
        "sap": dict(num_train=2000, num_test=1000),
        "modularity_explicitness": dict(num_train=2000, num_test=1000),
        "unsupervised": dict(num_train=2000),
        "downstream_logistic_regression": dict(num_train=(10, 100, 1000), num_test=1000),
        "downstream_boosted_trees": dict(num_train=(10, 100, 1000), num_test=1000),
        "irs": dict(num_train=2000),
        "fairness": dict(num_train=2000, num_test_points_per_class=20),
        "strong_downstream": dict(num_train=(1000,), num_test=1000, n_experiment=2),
        "reduced_downstream": dict(num_train=(1000,), num_test=1000),
        "unified": dict(num_train=2000, num_test=1000),
        "udr": dict(num_data_points=1000),
        "udr_spearman": dict(num_data_points=1000),
    },
}
FOLLOWUPS = ("fairness", "strong_downstream", "reduced_downstream", "unified", "udr", "udr_spearman")
UDR_NAMES = ("udr", "udr_spearman")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", type=Path, help="site-packages folder holding disentanglement_lib (a throwaway env)")
    p.add_argument("--skip-reference", action="store_true", help="time this package only")
    p.add_argument("--sizes", choices=sorted(SIZES), default="study")
    p.add_argument("--representation", choices=["linear", "conv"], default="linear",
                   help="linear: a fixed linear code of pooled pixels; conv: the trained encoder of --run")
    p.add_argument("--run", type=Path, help="a finished training run (`disentangled train`): its encoder's mean is the conv representation")
    p.add_argument("--encode-batch", type=int, default=None,
                   help="images per forward pass of the --run encoder on both sides (default: the project's Representation default)")
    p.add_argument("--dataset", default=None,
                   help="synthetic (dSprites' factor sizes, rendered here) or a registered data set (default: the run's, else synthetic)")
    p.add_argument("--source", default="procedural")
    p.add_argument("--metric", action="append", help="metric to run (repeatable; default: the study's nine)")
    p.add_argument("--followups", action="store_true", help="the follow-up studies' scores instead of the study's nine")
    p.add_argument("--udr-models", type=int, default=10, help="models scored against each other by UDR")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads on both sides")
    p.add_argument("--jobs", type=int, default=None, help="our worker processes for per-factor fits")
    p.add_argument("--output", type=Path, help="write the measurements as JSON")
    p.add_argument(
        "--encoding",
        action="store_true",
        help="instead: count the images each side encodes for the suite and time the representation at each batch size",
    )
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------
# inputs shared by both sides


def make_dataset(name: str, source: str):
    import numpy as np

    from disentangled.data.base import FactorSpace, GroundTruthData

    if name != "synthetic":
        from disentangled import data

        return data.get(name, source=source)

    class SyntheticSprites(GroundTruthData):
        """dSprites' factor sizes (3, 6, 40, 32, 32), binary 64x64 images drawn from the factors.

        A square, disc or cross of the given scale with a bar at the given orientation (720
        precomputed 24x24 templates), placed at (posX, posY): rendering is a gather, as
        reading dSprites' images from memory is. Deterministic.
        """

        name = "synthetic_sprites"
        observations_deterministic = True

        def __init__(self):
            self.space = FactorSpace(("shape", "scale", "orientation", "posX", "posY"), (3, 6, 40, 32, 32))
            self.latent = (0, 1, 2, 3, 4)
            self.observation_shape = (1, 64, 64)
            yy, xx = np.mgrid[0:24, 0:24].astype(np.float32) - 11.5
            templates = np.zeros((3, 6, 40, 24, 24), dtype=np.uint8)
            for scale in range(6):
                r = 4.0 + 1.4 * scale
                shapes = (
                    (np.abs(xx) <= r) & (np.abs(yy) <= r),
                    xx * xx + yy * yy <= r * r,
                    ((np.abs(xx) <= r / 3) & (np.abs(yy) <= r)) | ((np.abs(yy) <= r / 3) & (np.abs(xx) <= r)),
                )
                for o in range(40):
                    angle = o * 2 * np.pi / 40
                    along = xx * np.cos(angle) + yy * np.sin(angle)
                    across = -xx * np.sin(angle) + yy * np.cos(angle)
                    bar = (np.abs(across) <= 1.0) & (along >= 0) & (along <= r + 3)
                    for shape in range(3):
                        templates[shape, scale, o] = shapes[shape] | bar
            self.templates = templates.reshape(720, 24, 24)
            self.offsets = np.arange(24)

        def _render(self, full, *, rng):
            n = full.shape[0]
            which = (full[:, 0] * 6 + full[:, 1]) * 40 + full[:, 2]
            x0 = full[:, 3] * 40 // 31  # top-left corner, 0..40
            y0 = full[:, 4] * 40 // 31
            out = np.zeros((n, 64, 64), dtype=np.float32)
            rows = (y0[:, None] + self.offsets[None, :])[:, :, None]
            cols = (x0[:, None] + self.offsets[None, :])[:, None, :]
            out[np.arange(n)[:, None, None], rows, cols] = self.templates[which]
            return out[:, None]

    return SyntheticSprites()


def make_inputs(args):
    """The data set and the representation both sides score."""
    if args.representation == "conv":
        if args.run is None:
            raise SystemExit(
                "--representation conv scores a trained encoder: give --run RUN_DIR, a finished run of for example\n"
                "  disentangled train --out RUN_DIR data.source=procedural train.steps=1500"
            )
        from disentangled.train.represent import Representation, load_model

        model, config = load_model(args.run)
        name = args.dataset or config.data.name
        source = config.data.source if args.dataset is None else args.source
        # the encoder's mean, as `disentangled evaluate` scores a run (on the CPU)
        return make_dataset(name, source), Representation(model, "mean", batch_size=args.encode_batch)
    data = make_dataset(args.dataset or "synthetic", args.source)
    return data, make_representation(args.representation, data.observation_shape[0])


def make_representation(kind: str, channels: int):
    import numpy as np

    if kind != "linear":
        raise ValueError(kind)
    w = np.random.RandomState(0).normal(size=(channels * 64, 10)).astype(np.float32)

    w64 = w.astype(np.float64)
    ones = np.ones(8, dtype=np.float32)

    def linear(observations):
        # 8x8 average pooling: sums of 8 neighbouring pixels of a row (a product with ones),
        # then of 8 rows. The pooled values of binary images are exact (multiples of 1/64),
        # and each code comes from its own image alone, the same whatever its batch
        x = np.ascontiguousarray(observations, dtype=np.float32)
        n = x.shape[0]
        rows = (x.reshape(-1, 8) @ ones).reshape(n, channels, 8, 8, 8)  # [N, C, block row, row in block, block column]
        pooled = rows.sum(axis=3).reshape(n, -1).astype(np.float64) / 64.0
        return np.tanh(pooled @ w64 / 2.0).astype(np.float32)

    linear.deterministic = True
    return linear


# ---------------------------------------------------------------------------------------
# the reference


def import_reference(path: Path):
    """disentanglement_lib's metric modules, with stand-ins for gin and absl if missing."""
    sys.path.insert(0, str(path))
    try:
        import gin.tf  # noqa: F401
    except Exception:
        gin = types.ModuleType("gin")
        gin.REQUIRED = object()

        def configurable(*args, **kwargs):
            if args and callable(args[0]):
                return args[0]
            return lambda fn: fn

        gin.configurable = configurable
        gin_tf = types.ModuleType("gin.tf")
        gin_tf.__dict__.update(gin.__dict__)
        gin.tf = gin_tf
        sys.modules["gin"], sys.modules["gin.tf"] = gin, gin_tf
    try:
        import absl.logging  # noqa: F401
    except Exception:
        absl = types.ModuleType("absl")
        logging = types.ModuleType("absl.logging")
        logging.info = logging.warning = lambda *a, **k: None
        absl.logging = logging
        sys.modules["absl"], sys.modules["absl.logging"] = absl, logging
    _stand_ins_for_plotting()
    from disentanglement_lib.evaluation.metrics import (
        beta_vae,
        dci,
        downstream_task,
        factor_vae,
        fairness,
        irs,
        mig,
        modularity_explicitness,
        reduced_downstream_task,
        sap_score,
        strong_downstream_task,
        unified_scores,
        unsupervised_metrics,
        utils,
    )

    utils.make_discretizer = lambda target: utils._histogram_discretize(target, 20)
    factor_vae._prune_dims.__defaults__ = (0.05,)
    # reduced_representation.correlation_measure = @factorwise_dci, as its configuration binds it
    reduced_downstream_task.compute_reduced_representation.__defaults__ = (reduced_downstream_task.compute_factorwise_dci,)
    # no artifact directory is passed, so its pictures are never drawn
    unified_scores.visualize_scores.heat_square = lambda *a, **k: None
    unified_scores.visualize_scores.plot_recovery_vs_independent = lambda *a, **k: None
    try:
        from disentanglement_lib.evaluation.udr.metrics import udr
    except ImportError:  # not in the 1.5 release; present in a checkout of the source
        udr = None
    return types.SimpleNamespace(
        beta_vae=beta_vae,
        dci=dci,
        downstream_task=downstream_task,
        factor_vae=factor_vae,
        fairness=fairness,
        irs=irs,
        mig=mig,
        modularity_explicitness=modularity_explicitness,
        reduced_downstream_task=reduced_downstream_task,
        sap_score=sap_score,
        strong_downstream_task=strong_downstream_task,
        unified_scores=unified_scores,
        unsupervised_metrics=unsupervised_metrics,
        utils=utils,
        udr=udr,
    )


def _stand_ins_for_plotting() -> None:
    """Empty modules for what the reference's unified scores import only to draw (TensorFlow, seaborn, simplejson)."""
    import importlib.util
    import json as simplejson

    if importlib.util.find_spec("simplejson") is None:
        sys.modules["simplejson"] = simplejson
    if importlib.util.find_spec("seaborn") is None:
        sys.modules["seaborn"] = types.ModuleType("seaborn")
    if importlib.util.find_spec("tensorflow") is None:
        tf, compat, v1 = (types.ModuleType(n) for n in ("tensorflow", "tensorflow.compat", "tensorflow.compat.v1"))
        v1.gfile = types.SimpleNamespace(Open=open, IsDirectory=os.path.isdir, MakeDirs=lambda p: os.makedirs(p, exist_ok=True))
        tf.compat, compat.v1 = compat, v1
        sys.modules.update({"tensorflow": tf, "tensorflow.compat": compat, "tensorflow.compat.v1": v1})


class DlibData:
    """The reference's data set interface over one of ours (same draws from the same rng)."""

    def __init__(self, data):
        self.data = data
        self.factor_names = list(data.factor_names)  # the reference's unified scores need them
        self.num_factors = data.num_factors
        self.factors_num_values = list(data.factor_sizes)
        self.observation_shape = list(data.observation_shape)

    def sample_factors(self, num, random_state):
        return self.data.sample_factors(num, rng=random_state)

    def sample_observations_from_factors(self, factors, random_state):
        return self.data.observations_from_factors(factors, rng=random_state)

    def sample(self, num, random_state):
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num, random_state):
        return self.sample(num, random_state)[1]


def run_reference(ref, name: str, settings: dict, data, rep, seed: int) -> dict:
    import numpy as np

    from disentangled import metrics as M

    s = {**{f: getattr(M.get(name), f) for f in M.get(name).__dataclass_fields__}, **settings}
    rs = np.random.RandomState(seed)
    d = DlibData(data)
    if name == "beta_vae":
        out = ref.beta_vae.compute_beta_vae_sklearn(d, rep, rs, None, s["batch_size"], s["num_train"], s["num_eval"])
    elif name == "factor_vae":
        out = ref.factor_vae.compute_factor_vae(
            d, rep, rs, None, s["batch_size"], s["num_train"], s["num_eval"], s["num_variance_estimate"]
        )
    elif name == "mig":
        out = ref.mig.compute_mig(d, rep, rs, None, s["num_train"], s["batch_size"])
    elif name == "dci":
        out = ref.dci.compute_dci(d, rep, rs, None, s["num_train"], s["num_test"], s["batch_size"])
    elif name == "sap":
        out = ref.sap_score.compute_sap(d, rep, rs, None, s["num_train"], s["num_test"], s["batch_size"], False)
    elif name == "modularity_explicitness":
        out = ref.modularity_explicitness.compute_modularity_explicitness(
            d, rep, rs, None, s["num_train"], s["num_test"], s["batch_size"]
        )
    elif name == "unsupervised":
        out = ref.unsupervised_metrics.unsupervised_metrics(d, rep, rs, None, s["num_train"], s["batch_size"])
    elif name == "irs":
        out = ref.irs.compute_irs(d, rep, rs, None, s["diff_quantile"], s["num_train"], s["batch_size"])
    elif name.startswith("downstream_"):
        utils = ref.utils
        predictor = utils.logistic_regression_cv if name.endswith("logistic_regression") else utils.gradient_boosting_classifier
        utils.make_predictor_fn = lambda: predictor
        out = ref.downstream_task.compute_downstream_task(d, rep, rs, None, list(s["num_train"]), s["num_test"], s["batch_size"])
    elif name in ("fairness", "strong_downstream", "reduced_downstream"):
        ref.utils.make_predictor_fn = lambda: ref.utils.gradient_boosting_classifier
        if name == "fairness":
            out = ref.fairness.compute_fairness(d, rep, rs, None, s["num_train"], s["num_test_points_per_class"], s["batch_size"])
        elif name == "strong_downstream":
            np.random.seed(0)  # its interventions come from numpy's global state
            out = ref.strong_downstream_task.compute_strong_downstream_task(
                d, rep, rs, None, list(s["num_train"]), s["num_test"], s["n_experiment"])
        else:
            out = ref.reduced_downstream_task.compute_reduced_downstream_task(
                d, rep, rs, None, s["num_factors_to_remove"], list(s["num_train"]), s["num_test"], s["batch_size"])
    elif name == "unified":
        u = ref.unified_scores
        fns = {"importance_gbt_matrix": u.importance_gbt_matrix, "mutual_information_matrix": u.mutual_information_matrix,
               "accuracy_svm_matrix": u.accuracy_svm_matrix}
        out = u.compute_unified_scores(d, rep, rs, None, s["num_train"], s["num_test"], [fns[m] for m in s["matrices"]], s["batch_size"])
    else:
        raise ValueError(name)
    return {k: float(np.real(v)) for k, v in out.items()}


# ---------------------------------------------------------------------------------------


def main(argv=None) -> None:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np  # noqa: F401  (first imported here, after the thread variables are set)
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)

    from disentangled import evaluate as ev
    from disentangled import metrics as M

    names = args.metric or (list(FOLLOWUPS) if args.followups else list(M.STUDY_METRICS))
    settings = {n: SIZES[args.sizes].get(n, {}) for n in names}
    if "udr_spearman" in settings:
        settings["udr_spearman"] = {**settings["udr_spearman"], "correlation_matrix": "spearman"}
    data, rep = make_inputs(args)
    if args.encoding:
        return encoding_estimate(names, settings, data, rep, args)

    from disentangled.metrics.sampling import resolve_cache

    ref = None
    if not args.skip_reference:
        if args.reference is None:
            raise SystemExit("--reference PATH is needed (or --skip-reference)")
        ref = import_reference(args.reference)

    # one metric at a time, ours then the reference's, so both run under the same load;
    # ours shares one encoding cache and one pool of workers across the metrics, as
    # `disentangled evaluate` does (the reference's metrics run longer than joblib's idle
    # timeout, which would otherwise stop our workers between two of ours)
    from disentangled.metrics import predictors

    predictors.POOL_IDLE_TIMEOUT_S = 3600
    ours: dict[str, dict] = {}
    order_times: dict[str, float] = {}
    reference: dict[str, tuple[float, dict]] = {}
    cache = resolve_cache(data, rep, None)
    ours_total = 0.0
    udr_models = udr_encoders(rep, args.udr_models) if set(names) & set(UDR_NAMES) else []
    for name in names:
        if name in UDR_NAMES:
            t0 = time.perf_counter()
            ours[name] = {"scores": M.UDR(**settings[name]).evaluate(data, udr_models, rng=np.random.RandomState(0))}
            order_times[name] = time.perf_counter() - t0
            ours_total += order_times[name]
            print(f"ours {name}: {order_times[name]:.1f} s", file=sys.stderr, flush=True)
            if ref is not None and ref.udr is not None:
                t0 = time.perf_counter()
                values = run_reference_udr(ref, settings[name], data, udr_models)
                reference[name] = (time.perf_counter() - t0, values)
                print(f"reference {name}: {reference[name][0]:.1f} s", file=sys.stderr, flush=True)
            continue
        t0 = time.perf_counter()
        records = ev.evaluate_representation(
            data, rep, metrics=[name], settings=settings, n_jobs=args.jobs, cache=cache if cache else None
        )
        elapsed = time.perf_counter() - t0
        ours_total += elapsed
        ours[name] = records[name]
        order_times[name] = elapsed
        print(f"ours {name}: {elapsed:.1f} s", file=sys.stderr, flush=True)
        if ref is not None:
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # its scikit-learn deprecation and convergence warnings, by the hundred
                values = run_reference(ref, name, settings[name], data, rep, ev.study_seed("mean", name))
            reference[name] = (time.perf_counter() - t0, values)
            print(f"reference {name}: {reference[name][0]:.1f} s", file=sys.stderr, flush=True)

    # ours again, the whole suite in one call, as `disentangled evaluate` runs it: the metrics
    # that fit in the worker pool start first and the others are computed meanwhile (a fresh
    # encoding cache, as an evaluation starts with); the scores must be the same
    suite_names = [n for n in names if n not in UDR_NAMES]
    suite_s = None
    if len(suite_names) > 1:
        t0 = time.perf_counter()
        together = ev.evaluate_representation(data, rep, metrics=suite_names, settings=settings, n_jobs=args.jobs)
        suite_s = time.perf_counter() - t0
        print(f"ours, the suite in one call: {suite_s:.1f} s", file=sys.stderr, flush=True)
        changed = [n for n in suite_names if together[n]["scores"] != ours[n]["scores"]]
        if changed:
            raise SystemExit(f"the suite in one call gave other scores than metric by metric: {', '.join(changed)}")

    rows = []
    for name in names:
        row = {"metric": name, "ours_s": order_times[name]}
        if name in UDR_NAMES and name in reference:
            ref_s, ref_values = reference[name]
            diffs = [abs(a - b) for a, b in zip(ours[name]["scores"]["model_scores"], ref_values["model_scores"])]
            row.update(reference_s=ref_s, speedup=ref_s / max(order_times[name], 1e-9), max_abs_diff=max(diffs))
        elif name in UDR_NAMES:
            pass
        elif name in reference:
            our_scores = ev.to_dlib_keys(ours[name]["scores"])
            ref_s, ref_values = reference[name]
            prefix = ev.DLIB_METRIC_NAMES[name] + "."
            diffs = []
            for key, value in ref_values.items():
                ours_key = prefix + key
                if name == "strong_downstream" and "strong" in key:
                    continue  # the reference's interventions are its own global random draws
                if ours_key in our_scores and key != "num_active_dims":
                    diffs.append(abs(our_scores[ours_key] - value))
            row.update(reference_s=ref_s, speedup=ref_s / max(order_times[name], 1e-9), max_abs_diff=max(diffs) if diffs else float("nan"))
        rows.append(row)

    print(f"\n{args.sizes} sizes, {data.name} data, {args.representation} representation"
          + (f" ({args.run})" if args.run else "") + f", {args.threads} thread(s)\n")
    print("| metric | reference (s) | ours (s) | speed-up | max abs diff |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        if "reference_s" in row:
            print(f"| {row['metric']} | {row['reference_s']:.1f} | {row['ours_s']:.1f} | {row['speedup']:.1f}x | {row['max_abs_diff']:.2g} |")
        else:
            print(f"| {row['metric']} | - | {row['ours_s']:.1f} | - | - |")
    ref_total = sum(v[0] for v in reference.values()) if reference else None
    if reference:
        print(f"| **suite, metric by metric** | {ref_total:.1f} | {ours_total:.1f} | {ref_total / ours_total:.1f}x | |")
    else:
        print(f"| **suite, metric by metric** | - | {ours_total:.1f} | - | |")
    if suite_s is not None:
        ref_cell, ratio = (f"{ref_total:.1f}", f"{ref_total / suite_s:.1f}x") if reference else ("-", "-")
        print(f"| **suite in one call** | {ref_cell} | {suite_s:.1f} | {ratio} | |")
    peak = {"self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    print(f"\npeak RSS: this process {peak['self_mib']:.0f} MiB, largest worker process {peak['children_mib']:.0f} MiB"
          + (" (reference included)" if reference else ""))
    if args.output:
        args.output.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                           "ours_total_s": ours_total, "ours_suite_call_s": suite_s, "peak_rss": peak,
                                           "reference": {k: v[1] for k, v in reference.items()},
                                           "ours": {k: v["scores"] for k, v in ours.items()}}, indent=2, default=_plain))


def _plain(value):
    import numpy as np

    return value.tolist() if isinstance(value, np.ndarray) else float(value)


def udr_encoders(rep, count: int) -> list:
    """``count`` Gaussian encoders from one representation: even ones permute and flip its codes, odd ones rotate them."""
    import numpy as np

    rs = np.random.RandomState(1)
    encoders = []
    for k in range(count):
        if k % 2 == 0:
            perm, signs = rs.permutation(10), rs.choice([-1.0, 1.0], size=10)
            mix = np.eye(10)[:, perm] * signs
        else:
            mix = np.linalg.qr(rs.normal(size=(10, 10)))[0]

        def encoder(observations, mix=mix):
            mean = np.asarray(rep(observations), dtype=np.float64) @ mix
            return mean, np.full_like(mean, -1.0)

        encoders.append(encoder)
    return encoders


def run_reference_udr(ref, settings: dict, data, encoders) -> dict:
    """The reference's ``compute_udr_sklearn`` on the same encoders (the KL per batch computed as its evaluate.py does)."""
    import numpy as np

    from disentangled import metrics as M

    s = {**{f: getattr(M.UDR(), f) for f in ("batch_size", "num_data_points", "correlation_matrix")}, **settings}

    def wrapped(encoder):
        def fn(observations):
            mean, logvar = encoder(observations)
            return mean, np.mean(0.5 * (np.square(mean) + np.exp(logvar) - logvar - 1), axis=0)

        return fn

    out = ref.udr.compute_udr_sklearn(DlibData(data), [wrapped(e) for e in encoders], np.random.RandomState(0),
                                      s["batch_size"], s["num_data_points"], correlation_matrix=s["correlation_matrix"])
    return {"model_scores": [float(v) for v in out["model_scores"]]}


def reference_images(name: str, s: dict) -> dict[int, int]:
    """Images the reference encodes for a metric, by the batch size it encodes them in."""
    if name == "beta_vae":
        return {s["batch_size"]: 2 * s["batch_size"] * (s["num_train"] + s["num_eval"])}
    if name == "factor_vae":  # the variances are encoded 64 at a time
        votes = s["batch_size"] * (s["num_train"] + s["num_eval"])
        if s["batch_size"] == 64:
            return {64: s["num_variance_estimate"] + votes}
        return {64: s["num_variance_estimate"], s["batch_size"]: votes}
    if name.startswith("downstream_"):
        return {s["batch_size"]: sum(s["num_train"]) + len(s["num_train"]) * s["num_test"]}
    return {s["batch_size"]: s["num_train"] + s.get("num_test", 0)}


def encoding_estimate(names, settings, data, rep, args) -> None:
    """Count the images encoded by each side for the suite; time the representation per batch size."""
    import numpy as np

    from disentangled import evaluate as ev
    from disentangled import metrics as M
    from disentangled.metrics.sampling import EncodingCache

    class Counting:
        deterministic = True

        def __call__(self, observations):
            return np.zeros((len(observations), 10), dtype=np.float32)

    counting = Counting()
    cache = EncodingCache(data, counting)
    requested = {}
    for name in names:
        s = {**{f: getattr(M.get(name), f) for f in M.get(name).__dataclass_fields__}, **settings[name]}
        requested[name] = reference_images(name, s)
        before = cache.num_encoded
        if name in ("beta_vae", "factor_vae"):
            M.get(name, **settings[name]).evaluate(data, counting, rng=np.random.RandomState(ev.study_seed("mean", name)), cache=cache)
        else:  # only the draws matter here: sample, do not fit
            from disentangled.metrics.sampling import sample_codes

            metric = M.get(name, **settings[name])
            rs = np.random.RandomState(ev.study_seed("mean", name))
            for size in getattr(metric, "num_train", ()) if isinstance(metric.num_train, tuple) else (metric.num_train,):
                sample_codes(data, counting, size, rng=rs, batch_size=metric.batch_size, cache=cache)
                if hasattr(metric, "num_test"):
                    sample_codes(data, counting, metric.num_test, rng=rs, batch_size=metric.batch_size, cache=cache)
        print(f"{name}: reference encodes {sum(requested[name].values())}, ours {cache.num_encoded - before} new", file=sys.stderr)
    per_image = {}
    obs_all = data.observations_from_factors(data.sample_factors(2048, rng=np.random.RandomState(0)), rng=np.random.RandomState(0))
    for batch in sorted({b for r in requested.values() for b in r} | {256}):
        rep(obs_all[:batch])
        t0 = time.perf_counter()
        done = 0
        while done < 2048:
            rep(obs_all[done : done + batch])
            done += batch
        per_image[batch] = (time.perf_counter() - t0) / done
    ref_images = sum(sum(r.values()) for r in requested.values())
    ref_seconds = sum(count * per_image[b] for r in requested.values() for b, count in r.items())
    ours_seconds = cache.num_encoded * per_image[256]  # the cache hands the representation 256 images a call
    print(f"\n{args.representation} representation, {args.threads} thread(s); seconds per image by batch size: "
          + ", ".join(f"{b}: {per_image[b] * 1e3:.3f} ms" for b in sorted(per_image)))
    print("| | images encoded | encoding time (s, from the measured rate) |")
    print("|---|---:|---:|")
    print(f"| reference | {ref_images} | {ref_seconds:.0f} |")
    print(f"| ours | {cache.num_encoded} | {ours_seconds:.0f} |")
    print(f"| ratio | {ref_images / max(cache.num_encoded, 1):.1f}x | {ref_seconds / max(ours_seconds, 1e-9):.1f}x |")


if __name__ == "__main__":
    main()
