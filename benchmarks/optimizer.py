"""The cost of one update under each rule of ``train.optimizer``, on the study's conv VAE.

Both rules update the same parameters with the same fixed gradients, interleaved round by
round so that the machine's load affects them alike; the result is the time per update and
the ratio to ``torch_adam``, next to the time of a whole training step when ``--step`` is set.

    .venv/bin/python benchmarks/optimizer.py --rounds 5 --updates 20 [--step]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from disentangled import config as cfg
from disentangled.train import core
from disentangled.train.optim import OPTIMIZERS


def setup(rule: str):
    c = cfg.load(None, ["data.name=dummy_data", f"train.optimizer={rule}"])
    data, model = core.build(c)
    opts = core.make_optimizers(c, model)
    gen = torch.Generator().manual_seed(0)
    for p in model.vae_parameters():
        p.grad = torch.randn(p.shape, generator=gen)
    opts["vae"].step()  # the lazy state is made outside the timing
    return c, data, model, opts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=20)
    parser.add_argument("--step", action="store_true", help="also time a whole training step (batch 64)")
    args = parser.parse_args()
    runs = {rule: setup(rule) for rule in OPTIMIZERS}
    times: dict[str, list[float]] = {rule: [] for rule in OPTIMIZERS}
    for _ in range(args.rounds):
        for rule, (_, _, _, opts) in runs.items():
            t = time.perf_counter()
            for _ in range(args.updates):
                opts["vae"].step()
            times[rule].append((time.perf_counter() - t) / args.updates)
    params = sum(p.numel() for p in runs["torch_adam"][2].vae_parameters())
    base = statistics.median(times["torch_adam"])
    print(f"conv VAE, {params:,} parameters, {torch.get_num_threads()} threads, median of {args.rounds} rounds")
    print("| rule | ms per update | ratio to torch_adam |\n|---|---:|---:|")
    for rule, ts in times.items():
        print(f"| {rule} | {statistics.median(ts) * 1e3:.2f} | {statistics.median(ts) / base:.2f}x |")
    if args.step:
        import numpy as np

        c, data, model, opts = runs["tf1_adam"]
        rng, gen = np.random.default_rng(0), torch.Generator().manual_seed(0)
        steps = []
        for i in range(max(3, args.rounds)):
            t = time.perf_counter()
            x = torch.from_numpy(data.sample_observations(c.train.batch_size, rng=rng))
            core.update(model, opts, model.loss_terms(x, step=i, generator=gen))
            steps.append(time.perf_counter() - t)
        print(f"a whole training step (tf1_adam, batch {c.train.batch_size}): {statistics.median(steps) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
