"""Milliseconds per semi-supervised training step, ours against minimal plain-PyTorch loops, interleaved.

For ``s2_vae`` (xent loss) and ``s2_mine_vae``: the project's step, exactly as ``disentangled
train`` takes it (under the training drivers' allocator setting,
:func:`disentangled.memory.keep_freed_memory`; the training core's labelled batch source:
``B`` unlabelled dSprites images drawn from the run's generator, rendered on the fly, and the
step's ``B`` labelled examples read in order from the labelled set; the model's loss terms; the
finiteness check; the update with ``train.optimizer``, and for ``s2_mine_vae`` the MINE
networks' own optimiser) against a plain loop written here: the loss written out (Bernoulli +
beta-KL on the unlabelled batch, plus the sigmoid cross-entropy of the labelled batch's first
latents against the labels divided by their sizes, or the squared off-diagonal sum of the 50
MINE estimates and the estimators' own Donsker-Varadhan loss), torch's Adam, on a fixed batch of
random binary images and random labels. The plain loop runs as three sides:

* ``same nets``: on the project's own encoder and decoder (``disentangled.models.build_architecture``
  with the configuration's options, channels-last), with PyTorch's defaults;
* ``same nets, our allocator``: the same under our allocator setting, which tells how much of
  the difference is that setting, and leaves the cost of everything else around the networks
  (the batch draw, the loss code, the update rule);
* ``plain nets``: on the encoder and decoder written plainly in ``benchmarks/train_step.py``
  (``nn.Sequential``, channels-first), the plain loop of the other step benchmarks.

``--fixed-batch`` adds our step on a fixed batch (no draw). Before timing, the plain loss is
checked against ours on one of our batches with the same noise. As in ``train_step.py`` (whose
worker runs each side here), every side runs in a process of its own, one at a time and in
alternating order round by round, so all see the same machine load and each keeps its own
allocator; medians over rounds, a ratio being the median of the rounds' ratios. Also the share of
our step spent drawing the batch. Prints a Markdown table for docs/benchmarks.md.

    .venv/bin/python benchmarks/semi_step.py --rounds 11 --steps 5 --threads 1 --fixed-batch
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
from torch.nn import functional as F

from disentangled import config as cfg
from disentangled.models import build_architecture
from disentangled.train.core import (
    batch_source,
    build,
    draw,
    finite_members,
    make_optimizers,
    member_batch,
    update,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# the step benchmark's plain networks, and its worker: one side in a process of its own
from train_step import PlainDecoder, PlainEncoder, worker

#: dSprites' factors with more than one value (shape, scale, orientation, x, y): the perfect labeller's columns.
SIZES = (3, 6, 40, 32, 32)
HIDDEN = 20  # units of each MINE statistics network (the reference's)


def config(objective, batch_size, source, labels, optimizer="tf1_adam"):
    return cfg.load(None, [f"objective.name={objective}", f"train.batch_size={batch_size}", "data.name=dsprites_full",
                           f"data.source={source}", f"supervision.num_labelled_samples={labels}",
                           f"train.optimizer={optimizer}"])


def our_step_fn(objective, batch_size, source, labels, optimizer="tf1_adam", fixed=False):
    """The loop's step (disentangled.train.loop.train) for one run of ``objective``.
    ``fixed``: every step takes the first step's batch again (no draw), as the plain loop does."""
    c = config(objective, batch_size, source, labels, optimizer)
    data, model = build(c)
    opts = make_optimizers(c, model)
    batches = batch_source([c], data, "cpu")
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    counter = {"step": 0, "draw": 0.0}
    first = member_batch(draw(batches, [rng], [0], 0), 0) if fixed else None
    model.train()

    def step():
        t0 = time.perf_counter()
        batch = first if fixed else member_batch(draw(batches, [rng], [0], counter["step"]), 0)
        counter["draw"] += time.perf_counter() - t0
        terms = model.loss_terms(batch, step=counter["step"], generator=gen)
        if not finite_members(terms)[0]:
            raise RuntimeError(f"{objective}: non-finite loss at step {counter['step']}")
        update(model, opts, terms)
        counter["step"] += 1

    return step, counter


def plain_mine(num_factors, num_latent):
    """The MINE statistics networks, one per (factor, latent) pair, as plain tensors ``[P, H]`` (``[P]`` for the output bias)."""
    limit = math.sqrt(6.0 / (1 + HIDDEN))
    pairs = num_factors * num_latent
    return [torch.empty(pairs, HIDDEN).uniform_(-limit, limit).requires_grad_(), torch.zeros(pairs, HIDDEN, requires_grad=True),
            torch.empty(pairs, HIDDEN).uniform_(-limit, limit).requires_grad_(), torch.zeros(pairs, HIDDEN, requires_grad=True),
            torch.empty(pairs, HIDDEN).uniform_(-limit, limit).requires_grad_(), torch.zeros(pairs, requires_grad=True)]


def mine_estimate(weights, codes, y, shuffled):
    """Every pair's Donsker-Varadhan estimate: ``mean T(x, y) + log N - logsumexp T(x, y shuffled)``, ``[P]``."""
    cw, cb, lw, lb, ow, ob = weights

    def t(x, v):  # [P, N] codes and labels -> [P, N] scores
        h = F.elu(x[..., None] * cw[:, None] + cb[:, None] + v[..., None] * lw[:, None] + lb[:, None])
        return (h * ow[:, None]).sum(-1) + ob[:, None]

    n = codes.shape[-1]
    return t(codes, y).mean(-1) + math.log(n) - torch.logsumexp(t(codes, shuffled), -1)


def plain_losses(objective, enc, dec, x, xl, labels, sizes, mine=None, *, randn=torch.randn, rand=torch.rand,
                 beta=1.0, gamma_sup=1.0):
    """The plain loop's ``(loss, mine_loss)`` (``mine_loss`` None for ``s2_vae``) of one batch: ``x`` unlabelled,
    ``xl`` labelled images, ``labels`` and their ``sizes``; ``mine``: the MINE weights (``plain_mine``);
    ``randn`` and ``rand`` draw the posterior noise and then the permutation keys."""
    mean, logvar = enc(x)
    mean_l, _ = enc(xl)
    k, num_latent = labels.shape[-1], mean.shape[-1]
    z = mean + torch.exp(logvar / 2) * randn(mean.shape)
    recon = F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum((1, 2, 3)).mean()
    kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1).sum(1).mean()
    mine_loss = None
    if objective == "s2_vae":
        supervised = F.binary_cross_entropy_with_logits(mean_l[:, :k], labels / sizes, reduction="sum")
    elif objective == "s2_mine_vae":
        factor = torch.arange(k).repeat_interleave(num_latent)  # pair p = l * D + r
        latent = torch.arange(num_latent).repeat(k)
        codes, y = mean_l[:, latent].T, labels[:, factor].T  # [P, N]
        shuffled = torch.gather(y, 1, rand(y.shape).argsort(1))
        off = factor != latent  # the VAE pays for the pairs off the diagonal only
        supervised = mine_estimate([w.detach() for w in mine], codes, y, shuffled)[off].square().sum()
        mine_loss = -mine_estimate(mine, codes.detach(), y, shuffled).sum()
    else:
        raise ValueError(f"objective: expected 's2_vae' or 's2_mine_vae', got {objective!r}")
    return recon + beta * kl + gamma_sup * supervised, mine_loss


def plain_step_fn(objective, batch_size, networks="same", num_latent=10):
    """The plain loop of ``objective`` on a fixed batch of ``batch_size`` unlabelled and as many labelled images;
    ``networks``: ``"same"`` (the project's encoder and decoder) or ``"plain"`` (train_step.py's)."""
    if networks == "same":  # the configuration's defaults: kernel_size_34 2, channels-last
        enc, dec = build_architecture("conv", (1, 64, 64), num_latent, kernel_size_34=2, channels_last=True)
    elif networks == "plain":
        enc, dec = PlainEncoder(d=num_latent), PlainDecoder(d=num_latent)
    else:
        raise ValueError(f"networks: expected 'same' or 'plain', got {networks!r}")
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-4)
    x = (torch.rand(batch_size, 1, 64, 64) < 0.1).float()
    xl = (torch.rand(batch_size, 1, 64, 64) < 0.1).float()
    sizes = torch.tensor(SIZES, dtype=torch.float32)
    labels = torch.floor(torch.rand(batch_size, len(SIZES)) * sizes)
    mine = plain_mine(len(SIZES), num_latent) if objective == "s2_mine_vae" else None
    opt_mine = torch.optim.Adam(mine, lr=0.01) if mine is not None else None

    def step():
        loss, mine_loss = plain_losses(objective, enc, dec, x, xl, labels, sizes, mine)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if mine is not None:
            opt_mine.zero_grad(set_to_none=True)
            mine_loss.backward()
            opt_mine.step()
        opt.step()

    return step


def check_plain_losses(objective, batch_size, source, labels, seed=0):
    """Refuse to time a plain loop whose loss is not ours: both on one batch of ours, our networks and the same noise."""
    c = config(objective, batch_size, source, labels)
    data, model = build(c)
    batch = member_batch(draw(batch_source([c], data, "cpu"), [np.random.default_rng(seed)], [0], 0), 0)
    with torch.no_grad():
        terms = model.loss_terms(batch, step=0, generator=torch.Generator().manual_seed(seed))
        g = torch.Generator().manual_seed(seed)
        mine = None if model.estimators is None else [getattr(model.estimators, n) for n in
                                                      ("code_weight", "code_bias", "label_weight", "label_bias",
                                                       "out_weight", "out_bias")]
        loss, mine_loss = plain_losses(objective, model.encoder, model.decoder, batch["unlabelled"], batch["labelled"],
                                       batch["labels"], batch["sizes"], mine,
                                       randn=lambda shape: torch.randn(shape, generator=g),
                                       rand=lambda shape: torch.rand(shape, generator=g))
    pairs = [("loss", terms["loss"], loss)] + ([("mine_loss", terms["mine_loss"], mine_loss)] if mine is not None else [])
    for name, ours, plain in pairs:
        if not torch.allclose(ours, plain, rtol=1e-5, atol=1e-4):
            raise AssertionError(f"{objective}: the plain loop's {name} is {plain.item()}, ours {ours.item()}")


#: (name, our allocator setting) of the sides, in the order of the table's columns: ours as ``disentangled
#: train`` runs (disentangled.memory.keep_freed_memory), the plain loop on the same networks with PyTorch's defaults
#: and with our allocator setting, and on the plain networks; ``ours_fixed`` with ``--fixed-batch``.
SIDES = (("ours", True), ("same", False), ("same_allocator", True), ("plain", False))
COLUMNS = {"ours_fixed": "ours, fixed batch", "same": "plain, same nets", "same_allocator": "plain, same nets, our allocator",
           "plain": "plain, plain nets"}


def side_step(side, objective, args):
    """``(step, counter)`` of one side for ``objective``; ``counter["draw"]``: our seconds spent drawing batches."""
    if side in ("ours", "ours_fixed"):
        return our_step_fn(objective, args.batch_size, args.source, args.labels, args.optimizer,
                           fixed=side == "ours_fixed")
    return plain_step_fn(objective, args.batch_size, "plain" if side == "plain" else "same"), {"draw": 0.0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per side and objective before the rounds")
    ap.add_argument("--batch-size", type=int, default=64, help="unlabelled images per step (and as many labelled ones)")
    ap.add_argument("--labels", type=int, default=1000, help="supervision.num_labelled_samples of our run")
    ap.add_argument("--source", default="procedural", help="dSprites source (procedural: rendered on the fly unless prepared)")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="PyTorch threads of each side")
    ap.add_argument("--objectives", nargs="*", default=["s2_vae", "s2_mine_vae"])
    ap.add_argument("--optimizer", default="tf1_adam", help="train.optimizer of our run (tf1_adam: the default)")
    ap.add_argument("--fixed-batch", action="store_true", help="also time our step on a fixed batch (no draw)")
    args = ap.parse_args()
    for objective in args.objectives:  # before any timing: the plain loop must compute our loss
        check_plain_losses(objective, args.batch_size, args.source, args.labels)
    sides = [*SIDES[:1], *((("ours_fixed", True),) if args.fixed_batch else ()), *SIDES[1:]]
    ctx = mp.get_context("spawn")  # fresh interpreters: the plain sides keep glibc's default allocator
    pipes = {}
    for side, allocator in sides:
        ours_end, theirs = ctx.Pipe()
        # train_step's worker (setup, warm-up, timed runs over a pipe) building this benchmark's sides
        ctx.Process(target=worker, args=(theirs, side, allocator, args.threads, args, side_step), daemon=True).start()
        pipes[side] = ours_end
    print(f"# semi_step: {platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
          f"batch {args.batch_size} unlabelled + {args.batch_size} labelled, {args.optimizer}, "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, load average {_load()}")
    others = [side for side in pipes if side != "ours"]
    print("| objective | ours ms/step | " + " | ".join(f"{COLUMNS[side]} | ratio" for side in others) + " | batch draw share |")
    print("|---|---|" + "---|---|" * len(others) + "---|")
    for objective in args.objectives:
        for pipe in pipes.values():
            pipe.send(("setup", objective))
        for pipe in pipes.values():
            pipe.recv()
        ms = {side: [] for side in pipes}
        draw_s = elapsed = 0.0
        for r in range(args.rounds):
            for side in list(pipes) if r % 2 == 0 else list(pipes)[::-1]:  # no side always runs first
                pipes[side].send(("run", args.steps))
                seconds, drawing = pipes[side].recv()
                ms[side].append(seconds / args.steps * 1000)
                if side == "ours":
                    draw_s, elapsed = draw_s + drawing, elapsed + seconds
        cells = [f"{statistics.median(ms['ours']):.1f}"]
        for side in others:
            ratio = statistics.median(o / p for o, p in zip(ms["ours"], ms[side]))
            cells += [f"{statistics.median(ms[side]):.1f}", f"{ratio:.2f}"]
        print(f"| {objective} | " + " | ".join(cells) + f" | {draw_s / elapsed * 100:.1f}% |", flush=True)
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
