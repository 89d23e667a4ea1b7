"""Milliseconds per weakly-supervised training step, ours against a minimal plain-PyTorch loop, interleaved.

For each weak objective (default: Ada-GVAE and Ada-ML-VAE): the project's step (a batch of
pairs drawn by the training core's pair source from dSprites, loss terms, backward, the update)
and a plain loop of the same method written here from scratch (the conv encoder on the 2B
images, the KL-like distance, the adaptive threshold, the GroupVAE or ML-VAE average, one
sample, the decoder, Bernoulli + beta-KL, torch's Adam) on a fixed batch of pairs, alternated
round by round so both see the same machine load. Also the share of our step spent drawing
the pairs. Prints a Markdown table for docs/benchmarks.md.

    .venv/bin/python benchmarks/weak_step.py --rounds 5 --steps 20
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from disentangled import config as cfg
from disentangled.train.core import (
    batch_source,
    build,
    make_optimizers,
    member_batch,
    update,
)


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


def plain_step_fn(batch_size, aggregation, beta=1.0):
    """The plain Ada-GVAE / Ada-ML-VAE step on a fixed batch of ``batch_size`` pairs."""
    enc, dec = PlainEncoder(), PlainDecoder()
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-4)
    x = (torch.rand(2 * batch_size, 1, 64, 64) < 0.1).float()
    b = batch_size

    def step():
        mean, logvar = enc(x)
        m1, m2, lv1, lv2 = mean[:b], mean[b:], logvar[:b], logvar[b:]
        v1, v2 = lv1.exp(), lv2.exp()
        delta = v1 / v2 + (m2 - m1) ** 2 / v2 - 1 + lv2 - lv1
        lo, hi = delta.min(1, keepdim=True)[0], delta.max(1, keepdim=True)[0]
        keep = delta.detach() >= (lo + hi).detach() / 2
        if aggregation == "group":
            shared_mean, shared_logvar = (m1 + m2) / 2, torch.log((v1 + v2) / 2)
        else:
            var = 2 * v1 * v2 / (v1 + v2)
            shared_mean, shared_logvar = (m1 / v1 + m2 / v2) * var / 2, torch.log(var)
        am = torch.cat([torch.where(keep, m1, shared_mean), torch.where(keep, m2, shared_mean)])
        alv = torch.cat([torch.where(keep, lv1, shared_logvar), torch.where(keep, lv2, shared_logvar)])
        z = am + torch.exp(alv / 2) * torch.randn_like(am)
        recon = F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum((1, 2, 3)).mean()
        kl = 0.5 * (am.pow(2) + alv.exp() - alv - 1).sum(1).mean()
        loss = recon + beta * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def our_step_fn(objective, batch_size, source, k, precision="float32"):
    c = cfg.load(None, [f"objective.name={objective}", f"train.batch_size={batch_size}", "data.name=dsprites_full",
                        f"data.source={source}", f"data.pairs.k={k}", f"train.precision={precision}"])
    data, model = build(c)
    opts = make_optimizers(c, model)
    pairs = batch_source([c], data, "cpu")
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    counter = {"step": 0, "draw": 0.0}

    def step():
        t0 = time.perf_counter()
        batch = member_batch(pairs([rng], [0]), 0)
        counter["draw"] += time.perf_counter() - t0
        terms = model.loss_terms(batch, step=counter["step"], generator=gen)
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64, help="pairs per batch (twice as many images)")
    ap.add_argument("--source", default="procedural", help="dSprites source (procedural: rendered on the fly unless prepared)")
    ap.add_argument("--k", type=int, default=1)
    ap.add_argument("--objectives", nargs="*", default=["ada_gvae", "ada_ml_vae"])
    args = ap.parse_args()
    print(f"# weak_step: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| objective | ours ms/step | plain ms/step | ratio | pair draw share |")
    print("|---|---|---|---|---|")
    for objective in args.objectives:
        plain = plain_step_fn(args.batch_size, "group" if objective in ("ada_gvae", "group_vae") else "ml")
        ours, counter = our_step_fn(objective, args.batch_size, args.source, args.k)
        ours()  # the first call builds the renderer: not part of a step's cost
        ratios, o_ms, p_ms = [], [], []
        counter["draw"], counter["step"] = 0.0, 0
        for _ in range(args.rounds):
            o = timed(ours, args.steps)
            p = timed(plain, args.steps)
            o_ms.append(o)
            p_ms.append(p)
            ratios.append(o / p)
        draw_ms = counter["draw"] / max(counter["step"], 1) * 1000
        print(f"| {objective} | {statistics.median(o_ms):.1f} | {statistics.median(p_ms):.1f} | "
              f"{statistics.median(ratios):.2f} | {draw_ms / statistics.median(o_ms) * 100:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
