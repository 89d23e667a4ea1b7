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

Our suite runs as ``disentangled evaluate`` runs it: one encoding cache shared by all the
metrics, per-factor classifiers in parallel. Thread pools are limited to one thread on both
sides by default (``--threads``) so that the comparison is of algorithms, not of BLAS
oversubscription.

Usage::

    python benchmarks/metrics.py --reference PATH [--sizes study|small] [--representation linear|conv]
        [--dataset synthetic|dsprites_full] [--metric NAME ...] [--skip-reference] [--output results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import types
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
    },
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", type=Path, help="site-packages folder holding disentanglement_lib (a throwaway env)")
    p.add_argument("--skip-reference", action="store_true", help="time this package only")
    p.add_argument("--sizes", choices=sorted(SIZES), default="study")
    p.add_argument("--representation", choices=["linear", "conv"], default="linear")
    p.add_argument("--dataset", default="synthetic", help="synthetic (dSprites' factor sizes, rendered here) or a registered data set")
    p.add_argument("--source", default="procedural")
    p.add_argument("--metric", action="append", help="metric to run (repeatable; default: the study's nine)")
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


def make_representation(kind: str, channels: int):
    import numpy as np
    import torch

    if kind == "linear":
        w = np.random.RandomState(0).normal(size=(channels * 64, 10)).astype(np.float32)

        w64 = w.astype(np.float64)
        # 8x8 average pooling as a matrix: [C*64*64, C*64] with weights 1/64
        pool = np.zeros((channels, 64, 64, channels, 8, 8), dtype=np.float32)
        for ch in range(channels):
            for i in range(8):
                for j in range(8):
                    pool[ch, 8 * i : 8 * i + 8, 8 * j : 8 * j + 8, ch, i, j] = 1.0 / 64
        pool = pool.reshape(channels * 4096, channels * 64)

        def linear(observations):
            # pooled sums of binary images are exact in float32, and the float64 product is
            # rounded to float32: the same code whatever the batch size
            x = np.asarray(observations, dtype=np.float32).reshape(len(observations), -1)
            pooled = (x @ pool).astype(np.float64)
            return np.tanh(pooled @ w64 / 2.0).astype(np.float32)

        linear.deterministic = True
        return linear

    from disentangled.models.architectures import ConvEncoder

    torch.manual_seed(0)
    encoder = ConvEncoder(channels, 10).eval()

    def conv(observations):
        with torch.no_grad():
            mean, _ = encoder(torch.as_tensor(np.asarray(observations, dtype=np.float32)))
        return mean.numpy()

    conv.deterministic = True
    return conv


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
    from disentanglement_lib.evaluation.metrics import (
        beta_vae,
        dci,
        downstream_task,
        factor_vae,
        irs,
        mig,
        modularity_explicitness,
        sap_score,
        unsupervised_metrics,
        utils,
    )

    utils.make_discretizer = lambda target: utils._histogram_discretize(target, 20)
    factor_vae._prune_dims.__defaults__ = (0.05,)
    return types.SimpleNamespace(
        beta_vae=beta_vae,
        dci=dci,
        downstream_task=downstream_task,
        factor_vae=factor_vae,
        irs=irs,
        mig=mig,
        modularity_explicitness=modularity_explicitness,
        sap_score=sap_score,
        unsupervised_metrics=unsupervised_metrics,
        utils=utils,
    )


class DlibData:
    """The reference's data set interface over one of ours (same draws from the same rng)."""

    def __init__(self, data):
        self.data = data
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

    names = args.metric or list(M.STUDY_METRICS)
    settings = {n: SIZES[args.sizes].get(n, {}) for n in names}
    data = make_dataset(args.dataset, args.source)
    rep = make_representation(args.representation, data.observation_shape[0])
    if args.encoding:
        return encoding_estimate(names, settings, data, rep, args)

    from disentangled.metrics.sampling import resolve_cache

    ref = None
    if not args.skip_reference:
        if args.reference is None:
            raise SystemExit("--reference PATH is needed (or --skip-reference)")
        ref = import_reference(args.reference)

    # one metric at a time, ours then the reference's, so both run under the same load;
    # ours shares one encoding cache across the metrics, as `disentangled evaluate` does
    ours: dict[str, dict] = {}
    order_times: dict[str, float] = {}
    reference: dict[str, tuple[float, dict]] = {}
    cache = resolve_cache(data, rep, None)
    ours_total = 0.0
    for name in names:
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
            values = run_reference(ref, name, settings[name], data, rep, ev.study_seed("mean", name))
            reference[name] = (time.perf_counter() - t0, values)
            print(f"reference {name}: {reference[name][0]:.1f} s", file=sys.stderr, flush=True)

    rows = []
    for name in names:
        our_scores = ev.to_dlib_keys(ours[name]["scores"])
        row = {"metric": name, "ours_s": order_times[name]}
        if name in reference:
            ref_s, ref_values = reference[name]
            prefix = ev.DLIB_METRIC_NAMES[name] + "."
            diffs = []
            for key, value in ref_values.items():
                ours_key = prefix + key
                if ours_key in our_scores and key != "num_active_dims":
                    diffs.append(abs(our_scores[ours_key] - value))
            row.update(reference_s=ref_s, speedup=ref_s / max(order_times[name], 1e-9), max_abs_diff=max(diffs) if diffs else float("nan"))
        rows.append(row)

    print(f"\n{args.sizes} sizes, {args.dataset} data, {args.representation} representation, {args.threads} thread(s)\n")
    print("| metric | reference (s) | ours (s) | speed-up | max abs diff |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        if "reference_s" in row:
            print(f"| {row['metric']} | {row['reference_s']:.1f} | {row['ours_s']:.1f} | {row['speedup']:.1f}x | {row['max_abs_diff']:.2g} |")
        else:
            print(f"| {row['metric']} | - | {row['ours_s']:.1f} | - | - |")
    if reference:
        ref_total = sum(v[0] for v in reference.values())
        print(f"| **suite** | {ref_total:.1f} | {ours_total:.1f} | {ref_total / ours_total:.1f}x | |")
    else:
        print(f"| **suite** | - | {ours_total:.1f} | - | |")
    peak = {"self_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "children_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}
    print(f"\npeak RSS: this process {peak['self_mib']:.0f} MiB, largest worker process {peak['children_mib']:.0f} MiB"
          + (" (reference included)" if reference else ""))
    if args.output:
        args.output.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                           "ours_total_s": ours_total, "peak_rss": peak,
                                           "reference": {k: v[1] for k, v in reference.items()},
                                           "ours": {k: v["scores"] for k, v in ours.items()}}, indent=2))


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
    ours_seconds = cache.num_encoded * per_image[256]
    print(f"\n{args.representation} representation, {args.threads} thread(s); seconds per image by batch size: "
          + ", ".join(f"{b}: {per_image[b] * 1e3:.3f} ms" for b in sorted(per_image)))
    print("| | images encoded | encoding time (s, from the measured rate) |")
    print("|---|---:|---:|")
    print(f"| reference | {ref_images} | {ref_seconds:.0f} |")
    print(f"| ours | {cache.num_encoded} | {ours_seconds:.0f} |")
    print(f"| ratio | {ref_images / max(cache.num_encoded, 1):.1f}x | {ref_seconds / max(ours_seconds, 1e-9):.1f}x |")


if __name__ == "__main__":
    main()
