"""Milliseconds per training step, ours against a minimal plain-PyTorch loop, interleaved.

For each objective: the project's step (batch drawn from the data set, loss terms, backward,
the update rule) and a plain loop of the same conv network and Bernoulli + beta-KL loss
written here from scratch (for FactorVAE with its discriminator and second Adam too; for the
weakly-supervised objectives, ``weak_step.py``'s plain loop of the method), alternated round
by round so both see the same machine load. Also the share of our step spent drawing the
batch. Prints a Markdown table for docs/benchmarks.md.

Each side runs in its own process, one after the other (never at the same time), so each
keeps its own allocator: ours with the setting the training drivers apply
(:func:`disentangled.memory.keep_freed_memory`), the plain loop with PyTorch's defaults,
and, as a third column, the plain loop with our allocator setting too, which tells how much
of the difference is that setting. Before the timed rounds each side takes
``--warmup`` steps of the objective (the first builds the data set's renderer, oneDNN's
kernels, numba's compiled update), so no one-off set-up enters a step's time or the draw share.

``--before DIR`` adds a side: our step as the project in ``DIR`` (another commit, e.g. from
``git archive``) computes it, in its own process with that code's own allocator setting, so
a change is measured before and after in one run, interleaved like the rest. ``--bfloat16``
adds our step with ``train.precision=bfloat16`` (mixed precision, an option), in its own process too.

    .venv/bin/python benchmarks/train_step.py --rounds 5 --steps 20
    .venv/bin/python benchmarks/train_step.py --objectives group_vae ml_vae ada_gvae ada_ml_vae
    git archive HEAD~1 | tar -x -C /tmp/before && .venv/bin/python benchmarks/train_step.py --before /tmp/before
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

# the project is imported inside the functions, so that a worker process can import another checkout (--before)


class PlainEncoder(nn.Module):
    def __init__(self, c=1, d=10):
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(c, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 2, 2), nn.ReLU(), nn.Conv2d(64, 64, 2, 2), nn.ReLU(), nn.Flatten(),
            nn.Linear(1024, 256), nn.ReLU(),
        )
        self.mean, self.logvar = nn.Linear(256, d), nn.Linear(256, d)

    def forward(self, x):
        h = self.convs(x)
        return self.mean(h), self.logvar(h)


class PlainDecoder(nn.Module):
    def __init__(self, c=1, d=10):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU())
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, c, 4, 2, 1),
        )

    def forward(self, z):
        return self.deconvs(self.fc(z).view(-1, 64, 4, 4))


def plain_discriminator(d=10):
    layers, width = [], d
    for _ in range(6):
        layers += [nn.Linear(width, 1000), nn.LeakyReLU(0.2)]
        width = 1000
    return nn.Sequential(*layers, nn.Linear(1000, 2))


def plain_step_fn(batch_size, discriminator=False, device="cpu"):
    """The plain loop (fixed batch, on ``device``); with ``discriminator`` it also trains FactorVAE's
    discriminator (6 x 1000, its own Adam) on the same batch and adds the gamma-weighted TC estimate to the loss."""
    enc, dec = PlainEncoder().to(device), PlainDecoder().to(device)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-4)
    disc = plain_discriminator().to(device) if discriminator else None
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-4, betas=(0.5, 0.9)) if discriminator else None
    x = (torch.rand(batch_size, 1, 64, 64, device=device) < 0.1).float()

    def step():
        mean, logvar = enc(x)
        z = mean + torch.exp(logvar / 2) * torch.randn_like(mean)
        recon = F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum((1, 2, 3)).mean()
        kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).sum(1).mean()
        loss = recon + kl
        if disc is not None:
            logits = disc(z)
            loss = loss + 10.0 * (logits[:, 0] - logits[:, 1]).mean()
            zd = z.detach()
            shuffled = torch.stack([zd[torch.randperm(len(zd), device=zd.device), j] for j in range(zd.shape[1])], dim=1)
            ones = torch.zeros(len(zd), dtype=torch.long, device=zd.device)
            zeros = torch.ones(len(zd), dtype=torch.long, device=zd.device)
            d_loss = 0.5 * (F.cross_entropy(disc(zd), ones) + F.cross_entropy(disc(shuffled), zeros))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if disc is not None:
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        opt.step()

    return step


def our_step_fn(objective, batch_size, source, channels_last=True, precision="float32"):
    from disentangled import config as cfg
    from disentangled.train.core import build, make_optimizers, update

    c = cfg.load(None, [f"objective.name={objective}", f"train.batch_size={batch_size}",
                        "data.name=dsprites_full", f"data.source={source}", f"model.channels_last={channels_last}",
                        f"train.precision={precision}"])
    data, model = build(c)
    opts = make_optimizers(c, model)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    counter = {"step": 0, "draw": 0.0}

    def step():
        t0 = time.perf_counter()
        x = torch.from_numpy(data.sample_observations(batch_size, rng=rng))
        counter["draw"] += time.perf_counter() - t0
        terms = model.loss_terms(x, step=counter["step"], generator=gen)
        update(model, opts, terms)
        counter["step"] += 1

    return step, counter


def timed(fn, n):
    for _ in range(2):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1000


UNSUPERVISED = ["beta_vae", "annealed_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "beta_tc_vae"]
WEAK = ("group_vae", "ml_vae", "ada_gvae", "ada_ml_vae")
#: (name, our allocator setting) of the sides, in the order of the table's columns
SIDES = (("ours", True), ("plain", False), ("plain_allocator", True), ("before", True), ("bfloat16", True))


def side_step(side: str, objective: str, args):
    """``(step, counter)`` of one side for ``objective``; ``counter["draw"]``: our seconds spent drawing batches."""
    weak = objective in WEAK
    if side in ("ours", "before", "bfloat16"):
        precision = {"precision": "bfloat16"} if side == "bfloat16" else {}  # "before" may predate the option
        if weak:
            from weak_step import our_step_fn as weak_ours

            return weak_ours(objective, args.batch_size, args.source, args.k, **precision)
        return our_step_fn(objective, args.batch_size, args.source, **precision)
    if weak:
        from weak_step import plain_step_fn as weak_plain

        return weak_plain(args.batch_size, "group" if objective in ("group_vae", "ada_gvae") else "ml"), {"draw": 0.0}
    return plain_step_fn(args.batch_size, discriminator=objective == "factor_vae"), {"draw": 0.0}


def worker(conn, side: str, allocator: bool, threads: int, args, build=None) -> None:
    """One side in its own process: ``("setup", objective)`` builds and warms up, ``("run", n)`` times n steps.

    ``build(side, objective, args) -> (step, counter)`` makes the side's step (default: :func:`side_step`;
    another benchmark passes its own).
    """
    build = build or side_step
    torch.set_num_threads(threads)
    if side == "before":
        sys.path.insert(0, os.path.abspath(args.before))  # before anything imports the project
    if allocator:
        try:
            from disentangled.memory import keep_freed_memory
        except ImportError:  # code from before the allocator setting: PyTorch's defaults, as it trained
            keep_freed_memory = None
        if keep_freed_memory is not None:
            keep_freed_memory()
    step = counter = None
    while True:
        command, value = conn.recv()
        if command == "setup":
            t0 = time.perf_counter()
            step, counter = build(side, value, args)
            for _ in range(args.warmup):
                step()
            conn.send(time.perf_counter() - t0)
        elif command == "run":
            draw0, t0 = counter["draw"], time.perf_counter()
            for _ in range(value):
                step()
            conn.send((time.perf_counter() - t0, counter["draw"] - draw0))
        else:
            conn.send(None)
            return


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per side and objective before the rounds")
    ap.add_argument("--batch-size", type=int, default=64, help="images per batch (pairs for the weak objectives)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="PyTorch threads of each side")
    ap.add_argument("--source", default="procedural", help="procedural data set source (cached if prepared)")
    ap.add_argument("--k", type=int, default=1, help="factors a pair changes (weak objectives)")
    ap.add_argument("--objectives", nargs="*", default=UNSUPERVISED)
    ap.add_argument("--no-plain-allocator", action="store_true", help="skip the plain loop under our allocator setting")
    ap.add_argument("--before", metavar="DIR", help="also time our step as the project in DIR computes it")
    ap.add_argument("--bfloat16", action="store_true", help="also time our step with train.precision=bfloat16")
    args = ap.parse_args()
    skip = {"plain_allocator"} if args.no_plain_allocator else set()
    if args.before is None:
        skip.add("before")
    if not args.bfloat16:
        skip.add("bfloat16")
    sides = [s for s in SIDES if s[0] not in skip]
    ctx = mp.get_context("spawn")  # fresh interpreters: the plain side keeps glibc's default allocator
    pipes = {}
    for side, allocator in sides:
        ours_end, theirs = ctx.Pipe()
        ctx.Process(target=worker, args=(theirs, side, allocator, args.threads, args), daemon=True).start()
        pipes[side] = ours_end
    print(f"# train_step: {platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, load average {_load()}")
    extra = {"plain_allocator": "plain, our allocator ms/step | ours / it", "before": "before ms/step | before / plain",
             "bfloat16": "ours bfloat16 ms/step | it / plain | it / ours"}
    extra = {side: head for side, head in extra.items() if side in pipes}
    print("| objective | ours ms/step | plain ms/step | ours / plain | " + "".join(f"{h} | " for h in extra.values())
          + "batch draw share |")
    print("|---|---:|---:|---:|" + "".join("---:|" * (h.count("|") + 1) for h in extra.values()) + "---:|")
    for objective in args.objectives:
        for pipe in pipes.values():
            pipe.send(("setup", objective))
        for pipe in pipes.values():
            pipe.recv()
        ms = {side: [] for side in pipes}
        draw = elapsed = 0.0
        for r in range(args.rounds):
            order = list(pipes) if r % 2 == 0 else list(pipes)[::-1]  # neither side always runs first
            for side in order:
                pipes[side].send(("run", args.steps))
                seconds, drawing = pipes[side].recv()
                ms[side].append(seconds / args.steps * 1000)
                if side == "ours":
                    draw, elapsed = draw + drawing, elapsed + seconds
        def ratio(a, b, ms=ms):  # the median of the per-round ratios (each round's sides ran back to back)
            return statistics.median(x / y for x, y in zip(ms[a], ms[b]))

        cells = [f"{statistics.median(ms['ours']):.1f}", f"{statistics.median(ms['plain']):.1f}", f"{ratio('ours', 'plain'):.2f}"]
        if "plain_allocator" in extra:
            cells += [f"{statistics.median(ms['plain_allocator']):.1f}", f"{ratio('ours', 'plain_allocator'):.2f}"]
        if "before" in extra:
            cells += [f"{statistics.median(ms['before']):.1f}", f"{ratio('before', 'plain'):.2f}"]
        if "bfloat16" in extra:
            cells += [f"{statistics.median(ms['bfloat16']):.1f}", f"{ratio('bfloat16', 'plain'):.2f}",
                      f"{ratio('bfloat16', 'ours'):.2f}"]
        print(f"| {objective} | " + " | ".join(cells) + f" | {draw / elapsed * 100:.1f}% |", flush=True)
    for pipe in pipes.values():
        pipe.send(("stop", None))
        pipe.recv()
    print(f"# load average at the end {_load()}")


def _load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    main()
