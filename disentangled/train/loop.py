"""Train one model: the whole loop, top to bottom.

A run directory holds::

    config.json          the resolved configuration and its run id
    metadata.json        versions, device, seeds, the data set's description (source!)
    train_log.jsonl      loss terms every ``train.log_every`` steps
    checkpoints/         the latest checkpoint (see checkpoint.py), every ``checkpoint_every``
    model.safetensors    final weights
    train_results.json   the objective evaluated on ``eval_batches`` fresh batches
    train.done           written last: the run is complete
    failed.json          only if training stopped on a non-finite loss

Seeds: ``numpy.random.SeedSequence(config.seed)`` spawns four streams — weight
initialisation, the training batches, the model's own sampling (reparameterisation,
FactorVAE's permutations) and the evaluation batches. Every piece of state that the next
step depends on (weights, Adam moments, both generators) is checkpointed, so a resumed run
ends with exactly the weights of an uninterrupted one on the CPU.

One step is one update. For FactorVAE it updates the VAE and the discriminator together,
on the same batch (see :mod:`disentangled.models.objectives.factor_vae` for how this
relates to the reference's step count).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..config import RunConfig, diff, from_dict
from ..io import write_json_atomic
from . import checkpoint as ckpt

DONE = "train.done"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run is marked failed, the last checkpoint kept."""


class RunConfigMismatch(ValueError):
    pass


def seeds(config: RunConfig) -> dict[str, int]:
    children = np.random.SeedSequence(config.seed).spawn(4)
    names = ("init", "data", "sampling", "eval")
    return {n: int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for n, c in zip(names, children)}


def build(config: RunConfig, data=None):
    """The data set and the freshly initialised model of a configuration."""
    from .. import data as data_module
    from ..models import build_model

    data = data if data is not None else data_module.get(config.data.name, **config.data.options())
    with torch.random.fork_rng(devices=[]):  # initialisation draws from its own seed only
        torch.manual_seed(seeds(config)["init"])
        options = {}
        if config.model.architecture == "conv":
            options = {"kernel_size_34": config.model.kernel_size_34, "channels_last": config.model.channels_last}
        model = build_model(
            config.build_objective(),
            observation_shape=data.observation_shape,
            architecture=config.model.architecture,
            num_latent=config.model.num_latent,
            reconstruction=config.model.reconstruction,
            **options,
        )
    return data, model


def make_optimizers(config: RunConfig, model) -> dict[str, torch.optim.Optimizer]:
    t = config.train
    opts = {"vae": torch.optim.Adam(model.vae_parameters(), lr=t.lr, betas=(t.beta1, t.beta2), eps=t.eps)}
    if model.discriminator is not None:
        d = model.objective.discriminator_optimizer
        opts["discriminator"] = torch.optim.Adam(model.discriminator_parameters(), lr=d.lr, betas=(d.beta1, d.beta2), eps=d.eps)
    return opts


def update(model, optimizers: dict[str, torch.optim.Optimizer], terms: dict, *, total: bool = False) -> None:
    """One update from the step's loss terms: the VAE's Adam on ``loss`` and, for FactorVAE,
    the discriminator's Adam on ``discriminator_loss``, both from the same forward pass.

    ``total``: the terms are per model (an ensemble's ``[M]``); their sum is differentiated,
    which gives every member its own gradient since the members share no parameters.
    """
    for opt in optimizers.values():
        opt.zero_grad(set_to_none=True)
    (terms["loss"].sum() if total else terms["loss"]).backward()
    if "discriminator" in optimizers:
        for p in model.discriminator_parameters():  # the VAE loss must not move the discriminator
            p.grad = None
        (terms["discriminator_loss"].sum() if total else terms["discriminator_loss"]).backward()
    for opt in optimizers.values():
        opt.step()


def train(config: RunConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True, data=None) -> dict:
    """Train (or resume, or skip if done) the run in ``run_dir``; return its results."""
    from tqdm import tqdm

    run_dir = Path(run_dir)
    _claim_run_dir(config, run_dir, resume)
    if (run_dir / DONE).is_file():
        return json.loads((run_dir / "train_results.json").read_text())
    (run_dir / "failed.json").unlink(missing_ok=True)

    data, model = build(config, data)
    optimizers = make_optimizers(config, model)
    s = seeds(config)
    data_rng = np.random.default_rng(s["data"])
    generator = torch.Generator().manual_seed(s["sampling"])
    log_path = run_dir / "train_log.jsonl"
    start_step, elapsed = 0, 0.0

    last = ckpt.latest(run_dir / "checkpoints")
    if last is not None:
        state = ckpt.load(last, model, optimizers, generator)
        data_rng.bit_generator.state = state["data_rng"]
        start_step, elapsed = state["step"], state["elapsed"]
        _truncate(log_path, state["log_bytes"])
    else:
        log_path.unlink(missing_ok=True)
        write_json_atomic(run_dir / "metadata.json", _metadata(config, data, s))

    t = config.train
    model.train()
    tick = time.perf_counter()
    bar = tqdm(total=t.steps, initial=start_step, desc=f"train {config.objective['name']}", unit="step",
               disable=not progress, dynamic_ncols=True)
    with bar, open(log_path, "a") as log:
        for step in range(start_step, t.steps):
            x = torch.from_numpy(data.sample_observations(t.batch_size, rng=data_rng))
            terms = model.loss_terms(x, step=step, generator=generator)
            if not bool(torch.isfinite(torch.stack([v.detach() for v in terms.values()])).all()):
                _fail(run_dir, step, terms)
            update(model, optimizers, terms)
            done = step + 1
            if done % t.log_every == 0 or done == t.steps:
                now = elapsed + time.perf_counter() - tick
                record = {"step": done, "elapsed": round(now, 3), **{k: v.item() for k, v in terms.items()}}
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{record['loss']:.2f}")
            if done % t.checkpoint_every == 0 or done == t.steps:
                log.flush()
                now = elapsed + time.perf_counter() - tick
                extra = {"data_rng": data_rng.bit_generator.state, "elapsed": now, "log_bytes": log.tell()}
                ckpt.save(run_dir / "checkpoints", done, model, optimizers, generator, extra)
            bar.update(1)

    train_seconds = elapsed + time.perf_counter() - tick
    ckpt.save_weights(model, run_dir / "model.safetensors", {"run_id": config.run_id, "step": t.steps})
    results = evaluate(model, data, config, s["eval"])
    results.update({"elapsed_time": train_seconds, "global_step": t.steps})
    write_json_atomic(run_dir / "train_results.json", results)
    write_json_atomic(run_dir / DONE, {"run_id": config.run_id, "steps": t.steps})
    return results


@torch.no_grad()
def evaluate(model, data, config: RunConfig, seed: int) -> dict:
    """Mean loss terms over ``eval_batches`` fresh batches (the study's post-training evaluation)."""
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    sums: dict[str, float] = {}
    n = config.train.eval_batches
    model.eval()
    for _ in range(n):
        x = torch.from_numpy(data.sample_observations(config.train.batch_size, rng=rng))
        terms = model.loss_terms(x, step=config.train.steps, generator=generator)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    model.train()
    out = {k: v / n for k, v in sums.items()} if n else {}
    if "reconstruction" in out:
        out["reconstruction_loss"] = out.pop("reconstruction")
        out["kl_loss"] = out.pop("kl")
    out["eval_batches"] = n
    return out


def _claim_run_dir(config: RunConfig, run_dir: Path, resume: bool) -> None:
    saved = run_dir / "config.json"
    if saved.is_file():
        old = from_dict(json.loads(saved.read_text())["config"])
        differing = diff(old, config)
        if differing:
            raise RunConfigMismatch(
                f"{run_dir} holds a run with another configuration; differing keys: {', '.join(differing)}. "
                "Use another --out folder, or the same configuration to resume."
            )
        if not resume and not (run_dir / DONE).is_file():
            raise RunConfigMismatch(f"{run_dir} holds an unfinished run of this configuration; pass --resume to continue it")
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(saved, {"run_id": config.run_id, "config": config.to_dict()})


def _fail(run_dir: Path, step: int, terms: dict) -> None:
    bad = {k: v.item() for k, v in terms.items()}
    last = ckpt.latest(run_dir / "checkpoints")
    write_json_atomic(run_dir / "failed.json", {
        "status": "failed", "step": step, "reason": "non-finite loss", "terms": {k: repr(v) for k, v in bad.items()},
        "last_checkpoint": None if last is None else last.name,
    })
    raise TrainingDiverged(
        f"training stopped at step {step}: non-finite loss terms {bad}; "
        f"last good checkpoint: {last if last else 'none'}; see {run_dir / 'failed.json'}"
    )


def _truncate(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size > size:
        with open(path, "r+b") as fh:
            fh.truncate(size)


def _metadata(config: RunConfig, data, s: dict) -> dict:
    return {
        "package_version": __version__,
        "git_sha": _git_sha(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "seeds": s,
        "data": data.describe(),
        "run_id": config.run_id,
    }


def _git_sha() -> str | None:
    import subprocess

    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
