"""What a training step does around the model, once, for the single-model loop and the ensemble.

The two drivers (:func:`~disentangled.train.loop.train` for one model,
:func:`~disentangled.train.ensemble.train_ensemble` for a stack of models) differ only in
how many models take each step together. Everything else is here:

* :func:`build` (the data set and the freshly initialised model) and :func:`make_optimizers`
  (the VAE's and, for FactorVAE, the discriminator's update rule, ``train.optimizer``);
* :func:`batch_source`: where each step's batch comes from (one batch per member, from the
  member's own generator), :func:`draw` to draw a step's batch from it, and
  :func:`member_batch` to take one member's part of it;
* :func:`update`: one update from a step's loss terms;
* :class:`Member`: one run while it trains: its run directory, seeds, generators, step,
  clock, the weights and optimiser states it resumes from, and the bookkeeping of a step
  (:meth:`Member.log`, :meth:`Member.checkpoint`, :meth:`Member.fail`, :meth:`Member.finish`);
* :func:`evaluate`: the study's post-training evaluation on fresh batches;
* and :func:`disentangled.memory.keep_freed_memory`, the allocator setting both drivers
  train under (no page faults in the steady state on glibc), is called by each.

Seeds: ``numpy.random.SeedSequence(config.seed)`` spawns four streams: weight
initialisation, the training batches, the model's own sampling (reparameterisation,
FactorVAE's permutations) and the evaluation batches; a semi-supervised run draws its
labelled set from a fifth (:func:`~disentangled.train.labelled.labelled_seed`). Every piece
of state that the next step depends on (weights, optimiser moments, both generators) is
checkpointed, so a resumed run ends with exactly the weights of an uninterrupted one on the CPU.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .. import __version__
from ..config import RunConfig
from ..errors import DisentangledError
from ..rundir import RunDir
from . import checkpoint as ckpt
from .batches import BATCH_SOURCES
from .optim import make_optimizer
from .precision import check_supported, train_in


class TrainingDiverged(DisentangledError, RuntimeError):
    """The loss became NaN or infinite; the run is marked failed, the last checkpoint kept."""

    exit_code = 1  # the command was right; the run failed


def seeds(config: RunConfig) -> dict[str, int]:
    children = np.random.SeedSequence(config.seed).spawn(4)
    names = ("init", "data", "sampling", "eval")
    return {n: int(c.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for n, c in zip(names, children)}


def build(config: RunConfig, data=None):
    """The data set and the freshly initialised model (on the CPU) of a configuration, computing in
    ``train.precision`` while it trains."""
    from .. import data as data_module
    from ..models import build_model

    data = data if data is not None else data_module.get(config.data.name, **config.data.options())
    with torch.random.fork_rng(devices=[]):  # initialisation draws from its own seed only
        torch.manual_seed(seeds(config)["init"])
        options = {}
        if config.model.architecture == "conv":
            options = {"kernel_size_34": config.model.kernel_size_34, "channels_last": config.model.channels_last}
        objective = config.build_objective()
        builder = build_model
        if objective.batch_kind == "labelled":  # semi-supervised: the labels' columns shape the supervised parts
            from .labelled import semi_supervised_builder

            builder = semi_supervised_builder(config, data)
        model = builder(
            objective,
            observation_shape=data.observation_shape,
            architecture=config.model.architecture,
            num_latent=config.model.num_latent,
            reconstruction=config.model.reconstruction,
            **options,
        )
    train_in(model, config.train.precision)  # in training mode only: representations are float32
    return data, model


def make_optimizers(config: RunConfig, model, *, stacked: bool = False) -> dict[str, torch.optim.Optimizer]:
    """``{"vae": ..., "discriminator": ...}`` with the rule ``train.optimizer``; ``stacked`` for an ensemble's model.

    A model with networks of its own beyond these (``s2_mine_vae``'s estimators) declares them in
    :func:`extra_optimizers`; each gets an optimiser of the same rule with its own settings.
    """
    rule = config.train.optimizer
    opts = {"vae": make_optimizer(rule, model.vae_parameters(), config.train, stacked=stacked)}
    if model.discriminator is not None:
        settings = config.build_objective().discriminator_optimizer
        opts["discriminator"] = make_optimizer(rule, model.discriminator_parameters(), settings, stacked=stacked)
    for name, (params, settings, _) in extra_optimizers(model).items():
        opts[name] = make_optimizer(rule, params, settings, stacked=stacked)
    return opts


def extra_optimizers(model) -> dict:
    """``{name: (parameters, AdamSettings, loss term)}``: the networks a model trains besides the VAE and the
    discriminator, each minimising its own loss term (none for the unsupervised models)."""
    declared = getattr(model, "extra_optimizers", None)
    return declared() if declared is not None else {}


def optimizer_names(objective) -> tuple[str, ...]:
    """The optimisers a run of ``objective`` keeps (and checkpoints), in order."""
    names = ("vae", "discriminator") if objective.needs_discriminator else ("vae",)
    return names + tuple(getattr(objective, "extra_optimizers", ()))


def batch_source(configs: Sequence[RunConfig], data, device, *, table: bool | None = None):
    """The batches of a step for the runs ``configs`` (one run, or an ensemble's members, in order).

    The source is the one the objective's ``batch_kind`` names in :data:`BATCH_SOURCES`.
    Called with one generator per member (and the members' positions in ``configs``), it
    returns the step's batch with the members along the first axis of every tensor (a
    tensor, or a tuple or dict of tensors), which is what the model's ``loss_terms`` takes;
    :func:`member_batch` gives a single model's part.
    """
    kind = type(configs[0].build_objective()).batch_kind
    return BATCH_SOURCES[kind].for_runs(configs, data, device, table=table)


def draw(batches, rngs, positions, step: int, *, evaluation: bool = False):
    """The batch of ``step`` from the source ``batches``, for the members drawing from ``rngs``.

    Sources that read a fixed set in order (the labelled part of a semi-supervised run)
    declare ``stepwise`` (:class:`~disentangled.train.batches.BatchSource`): they are told the step, and whether the batch is one of the
    post-training evaluation's (``step`` then counts its batches), so a resumed run reads on
    where it stopped without any state of their own. Every other source draws from the
    generators alone.
    """
    if batches.stepwise:
        return batches(rngs, positions, step=step, evaluation=evaluation)
    return batches(rngs, positions)


def member_batch(batch, i: int):
    """Member ``i``'s part of a step's batch (the same structure, without the member axis)."""
    from torch.utils._pytree import tree_map

    return tree_map(lambda t: t[i], batch)


def update(model, optimizers: dict[str, torch.optim.Optimizer], terms: dict, *, total: bool = False) -> None:
    """One update from the step's loss terms: the VAE's optimiser on ``loss`` and, for FactorVAE,
    the discriminator's on ``discriminator_loss``, both from the same forward pass.

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
    for params, _, term in extra_optimizers(model).values():  # each extra network on its own term only
        for p in params:
            p.grad = None
        (terms[term].sum() if total else terms[term]).backward()
    for opt in optimizers.values():
        opt.step()


def finite_members(terms: dict) -> list[bool]:
    """Per model (one for a single model), whether every loss term is finite."""
    values = torch.stack([torch.atleast_1d(v.detach()) for v in terms.values()])  # [terms, M]
    return torch.isfinite(values).all(0).tolist()


def training_device(device=None, precision: str = "float32") -> torch.device:
    """Where training runs: ``device``, or CUDA when available, else the CPU; refused if it cannot
    compute in ``train.precision`` (checked before a run directory is claimed)."""
    from .represent import resolve_device

    device = resolve_device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    check_supported(precision, device)
    return device


def device_name(device: torch.device) -> str:
    """``cpu`` or ``cuda:N`` (with the index the device actually has)."""
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return str(device)


class _Holder:
    """A state dict for checkpoint.py to save from or load into, without a module."""

    def __init__(self, state=None):
        self.state = state

    def state_dict(self):
        return self.state

    def load_state_dict(self, state):
        self.state = state


@dataclass
class Member:
    """One run while it trains (alone, or as a member of an ensemble)."""

    config: RunConfig
    run: RunDir
    seeds: dict
    data_rng: np.random.Generator
    generator: torch.Generator
    device: str
    step: int = 0
    elapsed: float = 0.0
    log_bytes: int | None = None  # the log's length at the checkpoint resumed from; None: a new log
    state: dict | None = None  # weights to resume from; None: the fresh initialisation
    optim: dict = field(default_factory=dict)  # optimiser name -> state dict to resume from ({}: fresh)
    index: int = 0  # position among the runs a driver was given
    _tick: float = 0.0
    _log_ready: bool = False

    @classmethod
    def restore(cls, config: RunConfig, run: RunDir, data, device: torch.device, *, index: int = 0,
                ensemble: int | None = None) -> "Member":
        """The run at its last checkpoint, or fresh (then its metadata is written)."""
        s = seeds(config)
        member = cls(config, run, s, np.random.default_rng(s["data"]), torch.Generator().manual_seed(s["sampling"]),
                     device_name(device), index=index)
        model = _Holder()
        optim = {name: _Holder() for name in optimizer_names(config.build_objective())}
        state = ckpt.load_latest(run.checkpoints, model, optim, member.generator)
        if state is None:
            run.write_metadata(_metadata(config, data, s, member.device, ensemble))
            return member
        member.data_rng.bit_generator.state = state["data_rng"]
        member.step, member.elapsed, member.log_bytes = state["step"], state["elapsed"], state["log_bytes"]
        member.state, member.optim = model.state, {k: v.state for k, v in optim.items()}
        return member

    def open_log(self):
        """The training log for appending. The first time, it is cut back to the checkpoint resumed from, and
        a change of device since the last session is noted in it and in the metadata."""
        if self._log_ready:
            return open(self.run.log_file, "a")
        self._log_ready = True
        log = self.run.open_log(keep_bytes=self.log_bytes)
        meta = self.run.metadata()
        history = meta.get("devices") or [{"step": 0, "device": meta.get("device", self.device)}]
        if history[-1]["device"] != self.device:
            log.write(json.dumps({"event": "resumed", "step": self.step, "device": self.device,
                                  "previous_device": history[-1]["device"]}) + "\n")
            log.flush()
            self.run.update_metadata(device=self.device, devices=history + [{"step": self.step, "device": self.device}])
        return log

    def start_clock(self) -> None:
        self._tick = time.perf_counter()

    def now(self) -> float:
        """Seconds of training so far (over every session of this run)."""
        return self.elapsed + time.perf_counter() - self._tick

    def stop_clock(self) -> None:
        self.elapsed = self.now()

    def log(self, log, step: int, values: dict[str, float]) -> None:
        log.write(json.dumps({"step": step, "elapsed": round(self.now(), 3), **values}) + "\n")
        log.flush()

    def checkpoint(self, step: int, weights: dict, optimizers: dict[str, dict], log) -> None:
        """Everything the next step depends on, atomically (see checkpoint.py)."""
        log.flush()
        extra = {"data_rng": self.data_rng.bit_generator.state, "elapsed": self.now(), "log_bytes": log.tell()}
        ckpt.save(self.run.checkpoints, step, _Holder(weights), {k: _Holder(v) for k, v in optimizers.items()},
                  self.generator, extra)

    def fail(self, step: int, terms: dict[str, float]) -> TrainingDiverged:
        """Mark the run failed at ``step`` (the last good checkpoint is kept) and return the error to raise."""
        last = ckpt.latest(self.run.checkpoints)
        self.run.mark_failed({"step": step, "reason": "non-finite loss", "terms": {k: repr(v) for k, v in terms.items()},
                              "last_checkpoint": None if last is None else last.name})
        return TrainingDiverged(
            f"training stopped at step {step}: non-finite loss terms {terms}; "
            f"last good checkpoint: {last if last else 'none'}; see {self.run.failed_file}"
        )

    def finish(self, weights: dict, results: dict) -> dict:
        """Final weights, the results and, last, the done marker."""
        steps = self.config.train.steps
        digest = ckpt.save_weights(_Holder(weights), self.run.weights_file, {"run_id": self.config.run_id, "step": steps})
        results = {**results, "elapsed_time": self.elapsed, "global_step": steps}
        self.run.finish(results, run_id=self.config.run_id, steps=steps, weights_sha256=digest)
        return results


@torch.no_grad()
def evaluate(model, members: Sequence[Member], batches, *, stacked: bool) -> list[dict]:
    """Mean loss terms over ``train.eval_batches`` fresh batches, per member (the study's post-training evaluation).

    Each member draws its batches and its model's noise from its own ``eval`` seed.
    """
    t = members[0].config.train
    rngs = [np.random.default_rng(m.seeds["eval"]) for m in members]
    generators = [torch.Generator().manual_seed(m.seeds["eval"]) for m in members]
    sums: list[dict] = [{} for _ in members]
    model.eval()
    positions = [m.index for m in members] if stacked else [0]
    for i in range(t.eval_batches):
        batch = draw(batches, rngs, positions, i, evaluation=True)
        terms = model.loss_terms(batch if stacked else member_batch(batch, 0), step=t.steps,
                                 generator=generators if stacked else generators[0])
        for k, v in terms.items():
            for i, value in enumerate(torch.atleast_1d(v).tolist()):
                sums[i][k] = sums[i].get(k, 0.0) + value
    model.train()
    out = []
    for s in sums:
        r = {k: v / t.eval_batches for k, v in s.items()} if t.eval_batches else {}
        if "reconstruction" in r:
            r["reconstruction_loss"] = r.pop("reconstruction")
            r["kl_loss"] = r.pop("kl")
        r["eval_batches"] = t.eval_batches
        out.append(r)
    return out


def _metadata(config: RunConfig, data, s: dict, device: str, ensemble: int | None) -> dict:
    meta = {
        "package_version": __version__,
        "git_sha": _git_sha(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "device": device,
        "threads": torch.get_num_threads(),
        "seeds": s,
        "data": data.describe(),
        "run_id": config.run_id,
        "optimizer": config.train.optimizer,
    }
    if device.startswith("cuda"):
        meta["gpu"] = torch.cuda.get_device_name(torch.device(device))
    if ensemble is not None:
        meta["ensemble"] = {"size": ensemble}
    if config.supervision is not None:  # the labelled set: its seed, labeller, sizes and split
        from .labelled import describe_labelled

        meta["labelled"] = describe_labelled(config, data)
    return meta


def _git_sha() -> str | None:
    import subprocess
    from pathlib import Path

    try:
        here = Path(__file__).resolve().parent
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
