"""Milliseconds per training step, ours against a minimal plain-PyTorch loop, interleaved.

For each objective: the project's step (batch drawn from the data set, loss terms, backward,
Adam) and a plain loop of the same conv network and Bernoulli + beta-KL loss written here
from scratch (for FactorVAE with its discriminator and second Adam too), alternated round
by round so both see the same machine load. Also the share of a step spent drawing the batch. Prints a Markdown table for docs/benchmarks.md.

    .venv/bin/python benchmarks/train_step.py --rounds 5 --steps 20
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
from disentangled.train.core import build, make_optimizers, update


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


def our_step_fn(objective, batch_size, source, channels_last=True):
    c = cfg.load(None, [f"objective.name={objective}", f"train.batch_size={batch_size}",
                        "data.name=dsprites_full", f"data.source={source}", f"model.channels_last={channels_last}"])
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--source", default="procedural", help="procedural data set source (cached if prepared)")
    ap.add_argument("--objectives", nargs="*", default=["beta_vae", "annealed_vae", "factor_vae", "dip_vae_i", "dip_vae_ii", "beta_tc_vae"])
    args = ap.parse_args()
    print(f"# train_step: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print("| objective | ours ms/step | plain ms/step | ratio | batch draw share |")
    print("|---|---|---|---|---|")
    plain_vae, plain_factor = plain_step_fn(args.batch_size), plain_step_fn(args.batch_size, discriminator=True)
    for objective in args.objectives:
        plain = plain_factor if objective == "factor_vae" else plain_vae
        ours, counter = our_step_fn(objective, args.batch_size, args.source)
        ours()  # first use builds the data set's renderer: not part of a step's cost
        ratios, o_ms, p_ms = [], [], []
        counter["draw"], counter["step"] = 0.0, 0
        total_steps = 0
        for _ in range(args.rounds):
            o = timed(ours, args.steps)
            p = timed(plain, args.steps)
            o_ms.append(o)
            p_ms.append(p)
            ratios.append(o / p)
            total_steps += args.steps + 2
        draw_ms = counter["draw"] / max(counter["step"], 1) * 1000
        print(f"| {objective} | {statistics.median(o_ms):.1f} | {statistics.median(p_ms):.1f} | "
              f"{statistics.median(ratios):.2f} | {draw_ms / statistics.median(o_ms) * 100:.1f}% |", flush=True)


if __name__ == "__main__":
    main()
