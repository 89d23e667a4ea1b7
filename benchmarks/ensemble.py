"""Training throughput of ensembles (model-steps per second) against a plain single-model loop.

For each ensemble size N: the ensemble's training step as ``train_ensemble`` takes it (N
batches drawn from the data set, one per member; the stacked model's loss terms;
backward; the per-member Adam), and, as the baseline, the plain PyTorch loop of one conv
VAE of ``benchmarks/train_step.py`` (fixed batch, no data drawing, beta-VAE loss). Each
measurement runs in a fresh process, so the peak memory it reports is its own: CUDA's
``max_memory_allocated`` on a GPU, the process's peak RSS on the CPU. Prints a Markdown
table; ``--project`` adds the projected training time of a study preset.

    .venv/bin/python benchmarks/ensemble.py --device cpu --sizes 1 8 --steps 5
    .venv/bin/python benchmarks/ensemble.py --device cuda --sizes 1 8 32 128 --project unsupervised_study_v1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import plain_step_fn  # noqa: E402  (the plain loop, shared with the step benchmark)

HYPER = {"beta_vae": "beta", "beta_tc_vae": "beta", "factor_vae": "gamma", "dip_vae_i": "lambda_od",
         "dip_vae_ii": "lambda_od", "annealed_vae": "c_max"}


def ensemble_step_fn(n: int, objective: str, batch_size: int, device, data_name: str, source: str | None = None):
    """The training step of ``train_ensemble`` for ``n`` members with different hyperparameters.

    As ``train_ensemble`` does, more than ``max_members`` members (on the CPU:
    ``CPU_MAX_MEMBERS``) are stacked in groups that step one after the other, and batches
    come through :class:`MemberBatches` (from the image table on a GPU, when the data set
    has one). Returns the step and how its batches are drawn.
    """
    import numpy as np
    import torch

    from disentangled import config as cfg
    from disentangled.models.stacked import stack
    from disentangled.train.batches import MemberBatches
    from disentangled.train.core import build, make_optimizers, update
    from disentangled.train.ensemble import CPU_MAX_MEMBERS

    extra = [f"data.source={source}"] if source else []
    configs = [cfg.load(None, [f"data.name={data_name}", f"objective.name={objective}", f"seed={s}",
                               f"objective.{HYPER[objective]}={1.0 + s % 8}", f"train.batch_size={batch_size}", *extra])
               for s in range(n)]
    data, template = build(configs[0])
    batches = MemberBatches(data, batch_size, device)
    state = {k: v.detach() for k, v in template.state_dict().items()}  # throughput does not depend on the values
    t = configs[0].train
    cap = CPU_MAX_MEMBERS if torch.device(device).type == "cpu" else n
    groups = []
    for lo in range(0, n, cap):
        members = configs[lo:lo + cap]
        model = stack(template, [c.build_objective() for c in members], [state] * len(members)).to(device)
        opts = make_optimizers(configs[0], model, stacked=True)
        rngs = [np.random.default_rng(lo + s) for s in range(len(members))]
        generators = [torch.Generator().manual_seed(lo + s) for s in range(len(members))]
        groups.append((model, opts, rngs, generators))
    counter = {"step": 0}

    def step():
        for model, opts, rngs, generators in groups:
            terms = model.loss_terms(batches(rngs), step=counter["step"], generator=generators)
            torch.isfinite(torch.stack([v.detach() for v in terms.values()])).all(0).tolist()  # the per-step check
            update(model, opts, terms, total=True)
        counter["step"] += 1

    return step, f"{batches.via}, {len(groups)} stack(s) of up to {cap}"


def measure_one(kind: str, n: int, args) -> dict:
    """Run in a fresh process: time ``args.steps`` steps after ``args.warmup``; peak memory."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    if kind == "plain":
        step = plain_step_fn(args.batch_size, discriminator=args.objective == "factor_vae", device=device)
        via = "fixed batch"
    else:
        step, via = ensemble_step_fn(n, args.objective, args.batch_size, device, args.data, args.source)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - start
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    models = 1 if kind == "plain" else n
    return {"kind": kind, "n": models, "seconds_per_step": seconds / args.steps,
            "model_steps_per_s": models * args.steps / seconds, "peak_mib": peak, "batches": via}


def run_isolated(kind: str, n: int, args, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--one", f"{kind}:{n}", "--device", args.device, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--batch-size", str(args.batch_size), "--objective", args.objective,
           "--data", args.data, "--threads", str(args.threads or 0)] + (["--tf32"] if args.tf32 else []) + (
           ["--source", args.source] if args.source else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"kind": kind, "n": n, "error": f"took over {timeout:.0f} s"}
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1]
        return {"kind": kind, "n": n, "error": last[:200]}
    return json.loads(lines[-1])


def study_model_steps(preset: str) -> tuple[int, int]:
    """(number of runs, total training steps) of a study preset or spec file."""
    from disentangled.study.spec import load_spec

    spec = load_spec(preset)
    steps = [spec.run_config(n).train.steps for n in range(len(spec))]
    return len(steps), sum(steps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 8, 32, 128], help="ensemble sizes N")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--objective", default="beta_vae", choices=sorted(HYPER))
    ap.add_argument("--data", default="dummy_data", help="data set the members draw from (dummy_data: no files needed)")
    ap.add_argument("--source", default=None, help="data.source of the data set (procedural: no files needed)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 on the GPU (train_ensemble keeps it off)")
    ap.add_argument("--timeout", type=float, default=240, help="seconds allowed per measurement")
    ap.add_argument("--project", default=None, help="a study preset: project its training time at the best N")
    ap.add_argument("--json", default=None, help="also write the measurements to this JSON file")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        kind, n = args.one.split(":")
        print(json.dumps(measure_one(kind, int(n), args)), flush=True)
        return

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: this torch has no CUDA device (torch.cuda.is_available() is False); use --device cpu")
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else (platform.processor() or platform.machine())
    load = os.getloadavg()
    print(f"# ensemble throughput: {args.device} ({where}), torch {torch.__version__}, {args.objective}, "
          f"batch {args.batch_size}, data {args.data}{f' ({args.source})' if args.source else ''}, {args.steps} timed steps, "
          f"threads {args.threads or torch.get_num_threads()}, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    rows = [run_isolated("plain", 1, args, args.timeout)]
    rows += [run_isolated("ensemble", n, args, args.timeout) for n in args.sizes]
    base = rows[0].get("model_steps_per_s")
    peak_name = "peak GPU memory (MiB)" if args.device == "cuda" else "peak RSS (MiB)"
    print(f"| loop | N | model-steps/s | ms per step | vs plain loop | {peak_name} | batches |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        name = "plain PyTorch, 1 model" if r["kind"] == "plain" else "ensemble"
        if "error" in r:
            print(f"| {name} | {r['n']} | failed: {r['error']} | | | | |")
            continue
        ratio = f"{r['model_steps_per_s'] / base:.2f}x" if base else "n/a"
        print(f"| {name} | {r['n']} | {r['model_steps_per_s']:.2f} | {r['seconds_per_step'] * 1000:.1f} | {ratio} | {r['peak_mib']:.0f} | {r.get('batches', '')} |")
    if args.project:
        good = [r for r in rows[1:] if "error" not in r]
        if good:
            best = max(good, key=lambda r: r["model_steps_per_s"])
            runs, total = study_model_steps(args.project)
            hours = total / best["model_steps_per_s"] / 3600
            plain_hours = total / base / 3600 if base else float("nan")
            print(f"\nprojection for {args.project}: {runs} runs, {total:,} training steps; at N={best['n']} "
                  f"({best['model_steps_per_s']:.1f} model-steps/s) {hours:,.0f} device-hours "
                  f"({hours / 24:,.1f} days) of training; the plain loop at {base:.1f} model-steps/s: "
                  f"{plain_hours:,.0f} device-hours. Evaluation not included.")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "device": where, "load_average": load, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
