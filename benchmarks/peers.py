"""Training-step time against disent (the PyTorch peer), the plain loop and ours, interleaved.

disent is not a dependency of this project: run this with a Python environment that has
both disent and this package, built for the benchmark alone, for example::

    python3.11 -m venv /tmp/peerenv
    /tmp/peerenv/bin/pip install torch==2.13.0 disent==0.8.0   # disent 0.8.0 runs on Python 3.11
    /tmp/peerenv/bin/pip install -e .
    /tmp/peerenv/bin/python benchmarks/peers.py --rounds 5 --steps 10

Rows, each one beta-VAE training step at batch 64 on 1x64x64 images (Bernoulli
reconstruction summed over pixels, KL, beta = 1; Adam, lr 1e-4), every loop in this
process, round-robin so that all see the same load:

* ``ours``: this package's step, the batch drawn from procedural dSprites (prepared
  cache if present), as ``benchmarks/train_step.py`` times it;
* ``plain``: the plain-PyTorch loop of ``benchmarks/train_step.py`` (fixed batch);
* ``disent (study architecture)``: disent's ``BetaVae`` framework (``recon_loss="bce"``,
  ``loss_reduction="mean_sum"``, its ``training_step`` and its Adam) around the study's
  conv encoder/decoder (the shapes of ``disentangled.models.architectures``, written as
  disent modules here), fixed batch;
* ``disent (EncoderConv64)``: the same framework with disent's own ``EncoderConv64`` /
  ``DecoderConv64`` (4x4 kernels in every encoder layer, 1600-wide flatten: not the
  study's network, shown because it is what disent users get);
* with ``--ensemble N``: this package's ensemble of N members (``benchmarks/ensemble.py``'s
  step: N batches from procedural dSprites, the stacked loss, per-member Adam), counted
  per model-step;
* with ``--trainer``, also disent run as its users run it: a Lightning ``Trainer`` over a
  DataLoader of fixed batches, steady-state time per step from a callback.

Prints a Markdown table: median ms per step, ms per model-step, and model-steps per second
against the plain loop's.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ensemble import ensemble_step_fn  # noqa: E402
from train_step import our_step_fn, plain_step_fn, timed  # noqa: E402


def disent_modules(d: int = 10):
    """The study's conv encoder and decoder as disent ``DisentEncoder`` / ``DisentDecoder``."""
    from disent.model import DisentDecoder, DisentEncoder

    class StudyEncoder(DisentEncoder):
        def __init__(self):
            super().__init__(x_shape=(1, 64, 64), z_size=d, z_multiplier=2)
            self.net = nn.Sequential(
                nn.Conv2d(1, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 32, 4, 2, 1), nn.ReLU(),
                nn.Conv2d(32, 64, 2, 2), nn.ReLU(), nn.Conv2d(64, 64, 2, 2), nn.ReLU(), nn.Flatten(),
                nn.Linear(1024, 256), nn.ReLU(), nn.Linear(256, 2 * d),  # means and log-variances side by side
            )

        def encode(self, x):
            return self.net(x)

    class StudyDecoder(DisentDecoder):
        def __init__(self):
            super().__init__(x_shape=(1, 64, 64), z_size=d, z_multiplier=1)
            self.net = nn.Sequential(
                nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU(), nn.Unflatten(1, (64, 4, 4)),
                nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1),
            )

        def decode(self, z):
            return self.net(z)

    return StudyEncoder(), StudyDecoder()


def disent_framework(own_network: bool, d: int = 10):
    from disent.frameworks.vae import BetaVae
    from disent.model import AutoEncoder

    if own_network:
        from disent.model.ae import DecoderConv64, EncoderConv64

        enc, dec = EncoderConv64(x_shape=(1, 64, 64), z_size=d, z_multiplier=2), DecoderConv64(x_shape=(1, 64, 64), z_size=d)
    else:
        enc, dec = disent_modules(d)
    cfg = BetaVae.cfg(optimizer="adam", optimizer_kwargs={"lr": 1e-4}, recon_loss="bce", loss_reduction="mean_sum", beta=1.0)
    return BetaVae(model=AutoEncoder(encoder=enc, decoder=dec), cfg=cfg)


def disent_step_fn(batch_size: int, own_network: bool, device: str = "cpu"):
    fw = disent_framework(own_network).to(device)
    opt = fw.configure_optimizers()
    x = (torch.rand(batch_size, 1, 64, 64, device=device) < 0.1).float()
    batch = {"x_targ": (x,)}
    counter = {"i": 0}

    def step():
        loss = fw.training_step(batch, counter["i"])  # disent's loss, its checks and its logging call
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        counter["i"] += 1

    return step


def disent_trainer_ms(batch_size: int, steps: int, warmup: int = 3, device: str = "cpu") -> float:
    """Steady-state ms per step of disent under a Lightning Trainer (study architecture)."""
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, Dataset

    x = (torch.rand(batch_size, 1, 64, 64) < 0.1).float()

    class Fixed(Dataset):
        def __len__(self):
            return (steps + warmup) * batch_size

        def __getitem__(self, i):
            return {"x_targ": (x[i % batch_size],)}

    class Clock(pl.Callback):
        def __init__(self):
            self.times = []

        def on_train_batch_start(self, *a):
            self.times.append(time.perf_counter())

    clock = Clock()
    trainer = pl.Trainer(max_steps=steps + warmup, accelerator="gpu" if device == "cuda" else "cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[clock])
    trainer.fit(disent_framework(own_network=False), DataLoader(Fixed(), batch_size=batch_size, shuffle=False))
    t = clock.times[warmup:]
    return (t[-1] - t[0]) / (len(t) - 1) * 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--source", default="procedural", help="dSprites source for our step (cached if prepared)")
    ap.add_argument("--trainer", action="store_true", help="also time disent under a Lightning Trainer")
    ap.add_argument("--ensemble", type=int, nargs="*", default=[], help="also time our ensembles of these sizes")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: every loop on the GPU; ours (one model) is then an ensemble of one, as a study trains it")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    import disent

    version = getattr(disent, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("disent")
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else platform.processor() or platform.machine()
    print(f"# peers: {where}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, disent {version}, batch {args.batch_size}, load average {os.getloadavg()[0]:.2f}")
    dev = args.device
    if dev == "cpu":
        ours, _ = our_step_fn("beta_vae", args.batch_size, args.source)
        plain_fn = plain_step_fn(args.batch_size)
    else:
        ours, _ = ensemble_step_fn(1, "beta_vae", args.batch_size, dev, "dsprites_full", args.source)
        plain_fn = plain_step_fn(args.batch_size, device=dev)
    ours()  # the renderer's or the table's one-off set-up
    loops = {
        "ours (one model)": ours,
        "plain PyTorch loop": plain_fn,
        "disent 0.8 BetaVae, study architecture": disent_step_fn(args.batch_size, own_network=False, device=dev),
        "disent 0.8 BetaVae, its EncoderConv64/DecoderConv64": disent_step_fn(args.batch_size, own_network=True, device=dev),
    }
    models = {name: 1 for name in loops}
    for n in args.ensemble:
        name = f"ours, ensemble of {n}"
        loops[name], _ = ensemble_step_fn(n, "beta_vae", args.batch_size, dev, "dsprites_full", args.source)
        models[name] = n

    def clocked(fn, n):
        if dev == "cpu":
            return timed(fn, n)
        fn()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / n * 1000

    ms = {name: [] for name in loops}
    for _ in range(args.rounds):
        for name, fn in loops.items():
            ms[name].append(clocked(fn, args.steps))
    plain = statistics.median(ms["plain PyTorch loop"])
    print("| loop | models | ms per step (median) | ms per model-step | model-steps/s vs plain loop |")
    print("|---|---:|---:|---:|---:|")

    def row(name, m, n):
        print(f"| {name} | {n} | {m:.1f} | {m / n:.1f} | {plain / (m / n):.2f}x |", flush=True)

    for name, values in ms.items():
        row(name, statistics.median(values), models[name])
    if args.trainer:
        row("disent 0.8 BetaVae, study architecture, Lightning Trainer (run after the others)",
            disent_trainer_ms(args.batch_size, args.steps * args.rounds, device=args.device), 1)


if __name__ == "__main__":
    main()
