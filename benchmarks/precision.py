"""Do models trained with ``train.precision=bfloat16`` score as those trained in float32? Against seed noise.

For one objective, ``--seeds`` seeds are trained twice for ``--steps`` steps on the procedural
dSprites, once per precision (a seed gives both runs the same initialisation and the same
batches), ``--workers`` runs at a time with one thread each, as ``study run`` trains on the
CPU; then every run is scored with the study's metrics (mean representation, study sizes,
the study's metric seeds). Printed per score: each precision's mean and standard deviation
over the seeds, the mean of the paired differences (bfloat16 minus float32, seed by seed),
that difference in units of float32's seed-to-seed standard deviation, and Welch's t-test
p-value of the two groups; and the training time of each precision. The table is what
docs/training.md quotes. Runs and scores already in ``--out`` are kept (the script resumes).

    .venv/bin/python benchmarks/precision.py --out /tmp/precision --seeds 4 --steps 1500
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import time
from pathlib import Path

PRECISIONS = ("float32", "bfloat16")


def config(args, seed: int, precision: str):
    from disentangled import config as cfg

    return cfg.load(None, [f"objective.name={args.objective}", *[f"objective.{kv}" for kv in args.set],
                           "data.name=dsprites_full", "data.source=procedural", f"train.steps={args.steps}",
                           f"train.eval_batches={args.eval_batches}", f"seed={seed}", f"train.precision={precision}"])


def run_dir(args, seed: int, precision: str) -> Path:
    return Path(args.out) / f"{args.objective}_{precision}_seed{seed}"


def train_one(job) -> float:
    import torch

    args, seed, precision = job
    torch.set_num_threads(1)
    from disentangled.train import train

    results = train(config(args, seed, precision), run_dir(args, seed, precision), progress=False)
    return results["elapsed_time"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True, help="folder for the runs (kept: a second call resumes)")
    ap.add_argument("--objective", default="beta_vae")
    ap.add_argument("--set", nargs="*", default=["beta=4"], help="objective hyperparameters, key=value")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--eval-batches", type=int, default=100, help="batches of the post-training loss evaluation")
    ap.add_argument("--workers", type=int, default=2, help="runs trained at a time (one thread each)")
    ap.add_argument("--all", action="store_true", help="a row for every score, not only the headline ones")
    args = ap.parse_args()
    jobs = [(args, s, p) for s in range(args.seeds) for p in PRECISIONS]
    t0 = time.time()
    print(f"# precision: {args.objective} {args.set}, {args.seeds} seeds x {PRECISIONS}, {args.steps} steps, "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC", flush=True)
    with mp.get_context("spawn").Pool(args.workers) as pool:
        elapsed = pool.map(train_one, jobs, chunksize=1)
    print(f"# trained in {time.time() - t0:.0f} s", flush=True)
    from disentangled.evaluate import evaluate_run

    scores = {p: [] for p in PRECISIONS}
    for (_, seed, precision) in jobs:
        t1 = time.time()
        records = evaluate_run(run_dir(args, seed, precision), representation="mean")
        flat = {k: v for r in records.values() for k, v in r["scores"].items() if isinstance(v, (int, float))}
        scores[precision].append(flat)
        print(f"# scored {precision} seed {seed} in {time.time() - t1:.0f} s", flush=True)
    train_s = {p: [e for (_, _, q), e in zip(jobs, elapsed) if q == p] for p in PRECISIONS}
    print_table(args, scores, train_s, headline=None if args.all else HEADLINE)
    out = Path(args.out) / "precision.json"
    out.write_text(json.dumps({"args": {k: v for k, v in vars(args).items()}, "scores": scores, "train_s": train_s}, indent=1))


#: The scores the table shows (the summary line covers every score)
HEADLINE = ("beta_vae.eval_accuracy", "factor_vae.eval_accuracy", "mig.discrete_mig", "dci.disentanglement",
            "dci.completeness", "dci.informativeness_test", "modularity_explicitness.modularity_score",
            "modularity_explicitness.explicitness_score_test", "sap.sap_score",
            "unsupervised.gaussian_total_correlation", "unsupervised.mutual_info_score",
            "downstream_logistic_regression.10000.mean_test_accuracy",
            "downstream_boosted_trees.10000.mean_test_accuracy")


def compare(a: list[float], b: list[float]) -> dict | None:
    """The two groups' statistics; None when every seed scored the same in both."""
    from scipy import stats

    if len(set(a)) == len(set(b)) == 1 and a[0] == b[0]:
        return None
    sd = statistics.stdev(a)
    return {"mean_a": statistics.mean(a), "sd_a": sd, "mean_b": statistics.mean(b), "sd_b": statistics.stdev(b),
            "diff": statistics.mean(y - x for x, y in zip(a, b)),
            "p": float(stats.ttest_ind(a, b, equal_var=False).pvalue) if max(sd, statistics.stdev(b)) > 0 else 0.0}


def print_table(args, scores: dict, train_s: dict, headline=HEADLINE) -> None:
    f32, b16 = (statistics.mean(train_s[p]) for p in PRECISIONS)
    print(f"training: float32 {f32:.0f} s per run, bfloat16 {b16:.0f} s per run (ratio {b16 / f32:.2f})")
    rows = {k: compare([s[k] for s in scores["float32"]], [s[k] for s in scores["bfloat16"]]) for k in scores["float32"][0]}
    varying = {k: r for k, r in rows.items() if r is not None}
    ratios = {k: abs(r["diff"]) / r["sd_a"] for k, r in varying.items() if r["sd_a"] > 0}
    print(f"{len(rows)} scores, {len(rows) - len(varying)} equal on every seed in both; of the others, "
          f"|paired difference| / float32 SD at most {max(ratios.values()):.2f} ({max(ratios, key=ratios.get)}), "
          f"median {statistics.median(ratios.values()):.2f}; Welch p at least {min(r['p'] for r in varying.values()):.2f} "
          f"({sum(r['p'] < 0.05 for r in varying.values())} of {len(varying)} below 0.05)")
    print("| score | float32 mean (SD) | bfloat16 mean (SD) | paired difference | / float32 SD | Welch p |")
    print("|---|---:|---:|---:|---:|---:|")
    for key in headline if headline else rows:
        r = rows[key]
        if r is None:
            print(f"| {key} | equal on every seed | | | | |")
            continue
        ratio = f"{r['diff'] / r['sd_a']:+.2f}" if r["sd_a"] > 0 else "n/a"
        print(f"| {key} | {r['mean_a']:.4g} ({r['sd_a']:.2g}) | {r['mean_b']:.4g} ({r['sd_b']:.2g}) | {r['diff']:+.3g} "
              f"| {ratio} | {r['p']:.2f} |")


if __name__ == "__main__":
    main()
