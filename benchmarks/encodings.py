"""Images encoded for one representation by the study's metric suite, with and without the cache.

The data set is built on full-size fake files in its official format (the real factor grid,
so the counts are those of the real files), and the suite's draws run at study sizes with one
encoding cache shared by the metrics, chosen as ``disentangled evaluate`` chooses it: from the
data set's ``observations_deterministic``. ``--no-cache`` counts what is encoded when the data
set is rendered afresh for every request, as Cars3D, Shapes3D and MPI3D were before they
declared that an observation is a pure function of the factors.

Fake files, written once into ``--data-dir`` (default: a temporary folder, removed after):

* ``cars3d``: the 183 MATLAB v5 files, ``im`` uint8 [128, 128, 3, 24, 4] as published, every
  view one flat colour, and ``list.txt``; resized once into the project's cache, as the real
  files are (20 s on two cores, 17,568 images).
* ``shapes3d``: DeepMind's ``3dshapes/3dshapes.h5`` with the official 480,000 label rows and
  ``images`` chunked and gzip-compressed as published, but never written: every image is the
  HDF5 fill value 0, so the file takes 23 MB and is read as a compressed download is read.

Only the count matters here, so the representation returns noise of a fixed seed (the draws
do not depend on the codes; FactorVAE needs an active dimension, which noise has). The
metrics run their draws only: BetaVAE and FactorVAE evaluate in full (their fits are cheap),
the others draw their samples with ``sample_codes`` at their sizes and in their order, and
fit nothing.

    .venv/bin/python benchmarks/encodings.py --dataset cars3d [--no-cache] [--output counts.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

DATASETS = ("cars3d", "shapes3d")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=DATASETS, required=True)
    p.add_argument("--no-cache", action="store_true", help="encode every request, as when the data set is not declared deterministic")
    p.add_argument("--metric", action="append", help="metric to run (repeatable; default: the study's nine)")
    p.add_argument("--data-dir", type=Path, help="where the fake files are written, or found from an earlier run (default: a temporary folder)")
    p.add_argument("--output", type=Path, help="write the counts as JSON")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------
# full-size fake files in the official formats


def write_fake_cars3d(root: Path) -> None:
    import numpy as np

    from disentangled.data import cars3d

    folder = root / cars3d.FOLDER
    if (folder / cars3d.LIST_FILE).is_file():
        return
    elevations, azimuths, objects = cars3d.OFFICIAL_SPACE.sizes
    names = [f"car_{i + 1:03d}_mesh" for i in range(objects)]
    a, e = np.meshgrid(np.arange(azimuths), np.arange(elevations), indexing="ij")
    for obj, name in enumerate(names):  # one car at a time: all 183 together would take 860 MB
        colour = np.stack([np.full_like(a, obj), 10 * a, 60 * e], axis=0).astype(np.uint8)  # [3, A, E]
        im = np.broadcast_to(colour, (128, 128, 3, azimuths, elevations))
        cars3d.write_car(folder / f"{name}.mat", np.ascontiguousarray(im))
    (folder / cars3d.LIST_FILE).write_text("\n".join(names) + "\n")


def write_fake_shapes3d(root: Path) -> None:
    import h5py
    import numpy as np

    from disentangled.data import shapes3d

    path = root / shapes3d.OFFICIAL_H5
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    n = shapes3d.OFFICIAL_SPACE.num_combinations
    with h5py.File(path, "w") as f:
        f.create_dataset("images", shape=(n,) + shapes3d.IMAGE_SHAPE, dtype=np.uint8,
                         chunks=(100,) + shapes3d.IMAGE_SHAPE, compression="gzip")
        f.create_dataset("labels", data=shapes3d.official_labels())


WRITERS = {"cars3d": write_fake_cars3d, "shapes3d": write_fake_shapes3d}


# ---------------------------------------------------------------------------------------
# counting


class NoiseCodes:
    """Ten-dimensional noise codes; counts the calls and the images encoded."""

    deterministic = True  # so that the cache is chosen from the data set alone

    def __init__(self):
        import numpy as np

        self.rng = np.random.default_rng(0)
        self.calls = 0
        self.images = 0

    def __call__(self, observations):
        self.calls += 1
        self.images += len(observations)
        return self.rng.normal(size=(len(observations), 10)).astype("float32")


def run_draws(name: str, data, representation, cache) -> None:
    """The samples metric ``name`` draws at the study's settings, with the study's seed."""
    import numpy as np

    from disentangled import evaluate as ev
    from disentangled import metrics as M
    from disentangled.metrics.sampling import sample_codes

    metric = M.get(name)
    rng = np.random.RandomState(ev.study_seed("mean", name))
    if name in ("beta_vae", "factor_vae"):
        metric.evaluate(data, representation, rng=rng, cache=cache)
        return
    settings = M.settings_of(metric)
    sizes = settings["num_train"] if isinstance(settings["num_train"], list) else [settings["num_train"]]
    for size in sizes:  # as the metrics draw: each training sample, then its test sample
        sample_codes(data, representation, size, rng=rng, batch_size=settings["batch_size"], cache=cache)
        if "num_test" in settings:
            sample_codes(data, representation, settings["num_test"], rng=rng, batch_size=settings["batch_size"], cache=cache)


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import numpy as np

    from disentangled import data as data_module
    from disentangled import metrics as M
    from disentangled.metrics.sampling import resolve_cache

    root = args.data_dir or Path(tempfile.mkdtemp(prefix="encodings-"))
    try:
        t0 = time.perf_counter()
        WRITERS[args.dataset](root)
        data = data_module.get(args.dataset, data_dir=root)
        # the first read checks the files and builds what the data set builds on first use
        # (Cars3D's resize cache); `data prepare` is not run: for Shapes3D it would unpack 5.9 GB
        probe = data.sample_factors(1, rng=np.random.RandomState(0))
        data.observations_from_factors(probe, rng=np.random.RandomState(0))
        setup_s = time.perf_counter() - t0
        rep = NoiseCodes()
        cache = False if args.no_cache else resolve_cache(data, rep)
        rows = []
        t_all = time.perf_counter()
        for name in args.metric or list(M.STUDY_METRICS):
            before, t0 = rep.images, time.perf_counter()
            run_draws(name, data, rep, cache)
            rows.append({"metric": name, "images": rep.images - before, "seconds": time.perf_counter() - t0})
            print(f"{name}: {rows[-1]['images']} images encoded ({rows[-1]['seconds']:.1f} s)", file=sys.stderr, flush=True)
        total_s = time.perf_counter() - t_all
    finally:
        if args.data_dir is None:
            shutil.rmtree(root, ignore_errors=True)

    mode = "no cache" if args.no_cache else ("cache" if cache else "no cache (the data set is not declared deterministic)")
    print(f"\n{args.dataset}: {data.latent_space.num_combinations} factor combinations, "
          f"observations_deterministic={data.observations_deterministic}, {mode}; fake files ready in {setup_s:.0f} s\n")
    print("| metric | images encoded | draws and encoding (s) |")
    print("|---|---:|---:|")
    for row in rows:
        print(f"| {row['metric']} | {row['images']:,} | {row['seconds']:.1f} |")
    print(f"| **suite** | **{rep.images:,}** | {total_s:.1f} |")
    print(f"\nrepresentation calls: {rep.calls:,}")
    if args.output:
        args.output.write_text(json.dumps({
            "dataset": args.dataset, "cache": bool(cache), "combinations": data.latent_space.num_combinations,
            "images": rep.images, "calls": rep.calls, "rows": rows, "seconds": total_s, "setup_seconds": setup_s,
        }, indent=2))


if __name__ == "__main__":
    main()
