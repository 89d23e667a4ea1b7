"""Train many models in one process as one vectorised model (an ensemble).

``train_ensemble(configs, run_dirs)`` trains ``M`` runs that share their architecture,
objective, data set and training settings but not their seeds, the objective's
hyperparameters (beta, gamma, c_max, lambda_od, ...) or, for the weakly-supervised
objectives, how many factors their pairs change (``data.pairs.k``). The models are stacked along a
leading axis (:mod:`disentangled.models.stacked`) and take every step together. Each
member still gets a run directory exactly as :func:`~disentangled.train.loop.train`
writes it (config, metadata, log, checkpoints, final weights, results, done-marker,
``failed.json``), so ``disentangled evaluate``, ``load_model`` and ``train(..., resume=True)``
work on it as on any run. Everything a step does around the model (optimisers, log,
checkpoints, failure, the post-training evaluation, metadata) is
:mod:`disentangled.train.core`, shared with the single-model loop; this module only
stacks members and regroups them.

Equivalence. Member ``m`` draws its batches, its posterior noise and FactorVAE's
permutations from its own seeds, the streams of ``seeds(config)`` that ``train()`` uses,
in the same order, and keeps its own optimiser moments (FactorVAE: its discriminator's too;
on the CPU each member's slice is updated on its own, see :mod:`disentangled.train.optim`).
On the CPU a member ends **bit for bit** equal to the same run trained alone: weights, Adam state, log and
results (``tests/train/test_ensemble.py`` checks every objective). On a GPU the grouped
and batched kernels (and cuDNN's algorithms) sum in another order than the CPU's. Measured
with the GPU's kernels run on the CPU (``stacked.BATCHED_ON_CPU``), one step's loss terms
are equal and its gradients differ by at most 4.3e-7 of each tensor's largest entry at
batch 64 (7e-6 at batch 16), over every objective and both architectures. Adam turns such
rounding into differences of up to ``lr`` per step in coordinates whose gradient is
near zero, so after 50 steps the weights differ by up to 2e-3 while the evaluation loss
agrees to 4e-8: on a GPU a member matches its CPU twin to float32 rounding in each step
and statistically after training, as any GPU training does, not bit for bit. TF32 is
switched off while an ensemble trains on a GPU (``allow_tf32=False``).

Batches and size. Each step draws every member's batch through
:class:`~disentangled.train.batches.MemberBatches`: on a GPU from the data set's image
table kept on the device (same numbers as drawing through the data set). On the CPU at
most :data:`CPU_MAX_MEMBERS` members are stacked at once; more train as consecutive
ensembles (``max_members``).

Checkpoints and resume. Every ``train.checkpoint_every`` steps each member writes its
own checkpoint, atomically, in the format of single runs. An ensemble restarted after a
crash resumes each member from its own last checkpoint. Members found at different steps
are advanced in order: the members furthest behind train together until they reach the
next group, then the groups merge and go on as one ensemble (a merge restacks the
members' states exactly, so it changes nothing in the numbers).

Failures. When a member's loss becomes NaN or infinite, that member is marked failed
exactly as ``train()`` marks a run (``failed.json`` with the step and the last good
checkpoint, which is kept) and leaves the ensemble; the others go on unaffected (the
members share no arithmetic). ``train_ensemble`` returns, per member, its results or the
:class:`~disentangled.train.loop.TrainingDiverged` that stopped it.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Sequence

import torch

from ..config import RunConfig
from ..memory import keep_freed_memory
from ..rundir import RunDir
from .core import (Member, batch_source, build, draw, evaluate, finite_members, make_optimizers,
                   training_device, update)
from .precision import train_in
from ..errors import ParameterError

#: Members stacked at once on the CPU. There each member runs its own kernels in turn, so
#: a stack brings shared bookkeeping, not wider kernels; beyond a few dozen members the
#: stack's activations (about 40 MiB a member at batch 64) outgrow the caches and a step
#: gets slower per model (``docs/ensembles.md``).
CPU_MAX_MEMBERS = 16

#: Keys of a resolved configuration that may differ between members (besides the
#: objective's numeric hyperparameters).
STACKABLE = ("seed", "data.pairs.k")  # k: how many factors a pair changes (weak supervision)


def stack_key(config: RunConfig) -> str:
    """What ensemble members must share: the configuration without seed and numeric objective hyperparameters."""
    flat = _flatten(config.to_dict())
    keep = {k: v for k, v in flat.items() if k not in STACKABLE and not _numeric_objective_key(k, v)}
    return json.dumps(keep, sort_keys=True)


def check_stackable(configs: Sequence[RunConfig]) -> None:
    """Raise ``ValueError`` naming the keys that keep ``configs`` from training as one ensemble."""
    if not configs:
        raise ParameterError("configs: expected at least one run configuration, got none")
    flats = [_flatten(c.to_dict()) for c in configs]
    keys = sorted(set().union(*flats))
    differing = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
    fixed = [k for k in differing if k not in STACKABLE and not all(_numeric_objective_key(k, f.get(k)) for f in flats)]
    if fixed:
        raise ParameterError(
            f"configs: ensemble members may differ only in seed, data.pairs.k and the objective's numeric hyperparameters; "
            f"these differ: {', '.join(fixed)}. Train such runs in separate ensembles (study run --ensemble groups them)."
        )


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def train_ensemble(
    configs: Sequence[RunConfig],
    run_dirs: Sequence[str | Path],
    *,
    resume: bool = False,
    progress: bool = True,
    data=None,
    device: str | torch.device | None = None,
    allow_tf32: bool = False,
    max_members: int | None = None,
    table: bool | None = None,
) -> list:
    """Train (or resume, or skip if done) the runs ``configs[m]`` in ``run_dirs[m]`` as one ensemble.

    Returns, per member, its train results (as ``train()`` returns them) or the
    :class:`~disentangled.train.core.TrainingDiverged` that stopped it. ``device`` defaults to CUDA when available.
    ``max_members`` caps how many members are stacked at once; more are trained as
    consecutive ensembles of at most that many (default: :data:`CPU_MAX_MEMBERS` on the
    CPU, where larger stacks only add memory traffic, no cap on a GPU). ``table``: draw
    batches through the data set's image table (:class:`~disentangled.train.batches.MemberBatches`;
    default: on a GPU when the data set has one); the batches are the same either way.
    """
    from tqdm import tqdm

    configs = list(configs)
    runs = [RunDir(d) for d in run_dirs]
    if len(configs) != len(runs):
        raise ParameterError(f"run_dirs: expected one run directory per config ({len(configs)}), got {len(runs)}")
    if len({r.path.resolve() for r in runs}) != len(runs):
        raise ParameterError("run_dirs: every member needs its own run directory; some are repeated")
    check_stackable(configs)
    device = training_device(device, configs[0].train.precision)
    keep_freed_memory()  # each step reuses the last one's memory (no page faults), see disentangled.memory
    from .. import data as data_module

    first = configs[0]
    data = data if data is not None else data_module.get(first.data.name, **first.data.options())
    cap = max_members if max_members is not None else (CPU_MAX_MEMBERS if device.type == "cpu" else len(configs))
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ParameterError(f"max_members: expected a positive integer, got {max_members!r}")
    if len(configs) > cap:  # consecutive ensembles of at most ``cap`` members; they share no arithmetic
        outcomes: list = []
        for lo in range(0, len(configs), cap):
            outcomes += train_ensemble(configs[lo:lo + cap], [r.path for r in runs[lo:lo + cap]], resume=resume,
                                       progress=progress, data=data, device=device, allow_tf32=allow_tf32,
                                       max_members=cap, table=table)
        return outcomes
    outcomes: list = [None] * len(configs)
    members: list[Member] = []
    for i, (config, run) in enumerate(zip(configs, runs)):
        if run.claim(config, resume=resume):
            outcomes[i] = run.results()
            continue
        run.clear_failed()
        members.append(Member.restore(config, run, data, device, index=i, ensemble=len(configs)))
    if not members:
        return outcomes

    steps = first.train.steps
    _, template = build(first, data)
    batches = batch_source(configs, data, device, table=table)
    bar = tqdm(total=steps, initial=min(m.step for m in members), desc=f"ensemble {first.objective['name']}",
               unit="step", disable=not progress, dynamic_ncols=True)
    tf32 = _tf32_off() if (device.type == "cuda" and not allow_tf32) else contextlib.nullcontext()
    with bar, tf32:
        while members:
            start = min(m.step for m in members)
            group = [m for m in members if m.step == start]
            later = [m.step for m in members if m.step > start]
            stop = min(later) if later else steps
            survivors = _segment(group, template, data, batches, start, stop, bar, outcomes, live=len(members))
            members = [m for m in members if m not in group] + [m for m in survivors if m.step < steps]
    return outcomes


@contextlib.contextmanager
def _tf32_off():
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def _stack(group: list[Member], template, data, device):
    """The stacked model and optimisers of ``group`` (fresh members are initialised as ``train()`` does)."""
    from ..models.stacked import stack

    states = []
    for m in group:
        if m.state is None:
            _, fresh = build(m.config, data)
            states.append({k: v.detach() for k, v in fresh.state_dict().items()})
        else:
            states.append(m.state)
    model = stack(template, [m.config.build_objective() for m in group], states).to(device)
    train_in(model, group[0].config.train.precision)
    model.train()
    opts = make_optimizers(group[0].config, model, stacked=True)
    for name, opt in opts.items():
        if group[0].optim.get(name, {}).get("state"):
            opt.load_state_dict(_stack_optimizer(opt, [m.optim[name] for m in group]))
    return model, opts


def _stack_optimizer(opt, states: list[dict]) -> dict:
    """The members' optimiser state dicts as one for the stacked model (shared scalars must agree)."""
    out = {}
    for idx in states[0]["state"]:
        entry = {}
        for key, value in states[0]["state"][idx].items():
            if key in opt.shared_state:
                found = {float(s["state"][idx][key]) for s in states}
                if len(found) != 1:
                    raise RuntimeError(f"ensemble members at one training step have different optimiser {key} {sorted(found)}")
                entry[key] = value.clone()
            else:
                entry[key] = torch.stack([s["state"][idx][key].cpu() for s in states])  # load_state_dict moves it
        out[idx] = entry
    return {"state": out, "param_groups": opt.state_dict()["param_groups"]}


def _member_optim(opt, m: int) -> dict:
    """Member ``m``'s optimiser state dict, in the format of a single run's optimiser."""
    sd = opt.state_dict()
    state = {idx: {k: (v if k in opt.shared_state else v[m]) for k, v in s.items()} for idx, s in sd["state"].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


def _unstack(group: list[Member], model, opts) -> None:
    from ..models.stacked import member_state

    for i, m in enumerate(group):
        m.state = {k: v.detach().clone() for k, v in member_state(model, i).items()}
        m.optim = {name: _member_optim(opt, i) for name, opt in opts.items()}
        for entry in m.optim.values():
            entry["state"] = {idx: {k: v.clone() for k, v in s.items()} for idx, s in entry["state"].items()}


def _segment(group, template, data, batches, start, stop, bar, outcomes, live) -> list[Member]:
    """Train ``group`` (all at ``start``) to ``stop``; returns the members still training or finished."""
    from ..models.stacked import member_state

    model, opts = _stack(group, template, data, batches.device)
    t = group[0].config.train
    generators = [m.generator for m in group]
    positions = [m.index for m in group]
    logs = [m.open_log() for m in group]
    for m in group:
        m.start_clock()
    failed: set[int] = set()
    try:
        for step in range(start, stop):
            batch = draw(batches, [m.data_rng for m in group], positions, step)
            terms = model.loss_terms(batch, step=step, generator=generators)
            for i, ok in enumerate(finite_members(terms)):
                if not ok and i not in failed:
                    failed.add(i)
                    outcomes[group[i].index] = group[i].fail(step, {k: v.detach()[i].item() for k, v in terms.items()})
            update(model, opts, terms, total=True)  # the members share no parameters: each gets its own gradient
            done = step + 1
            rows = None
            if done % t.log_every == 0 or done == t.steps:
                rows = {k: v.detach().tolist() for k, v in terms.items()}
            for i, m in enumerate(group):
                if i in failed:
                    continue
                if rows is not None:
                    m.log(logs[i], done, {k: row[i] for k, row in rows.items()})
                if done % t.checkpoint_every == 0 or done == t.steps:
                    m.checkpoint(done, member_state(model, i), {name: _member_optim(opt, i) for name, opt in opts.items()},
                                 logs[i])
            bar.update(1)
            bar.set_postfix(live=live - len(failed))
            if failed and done < stop:  # restack the members that go on
                keep = [m for i, m in enumerate(group) if i not in failed]
                for m in group:
                    m.step = done
                _close(logs)
                _unstack(group, model, opts)
                for m in keep:
                    m.stop_clock()
                return _segment(keep, template, data, batches, done, stop, bar, outcomes, live - len(failed)) if keep else []
    finally:
        _close(logs)
    keep = [m for i, m in enumerate(group) if i not in failed]
    for m in group:
        m.step = stop
        m.stop_clock()
    if stop == t.steps and keep:
        _finish(keep, [i for i in range(len(group)) if i not in failed], model, template, batches, outcomes)
    else:
        _unstack(group, model, opts)
    return keep


def _close(logs) -> None:
    for log in logs:
        if not log.closed:
            log.close()


def _finish(members: list[Member], rows: list[int], model, template, batches, outcomes) -> None:
    """Final weights, the post-training evaluation (vectorised) and the done-markers."""
    from ..models.stacked import member_state, stack

    if len(rows) != model.encoder.num_models:  # evaluate the survivors only
        states = [{k: v.detach() for k, v in member_state(model, i).items()} for i in rows]
        model = stack(template, [m.config.build_objective() for m in members], states).to(batches.device)
        model.train()
        rows = list(range(len(members)))
    results = evaluate(model, members, batches, stacked=True)
    for m, i, r in zip(members, rows, results):
        outcomes[m.index] = m.finish(member_state(model, i), r)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _numeric_objective_key(key: str, value) -> bool:
    return key.startswith("objective.") and key.count(".") == 1 and isinstance(value, (int, float)) and not isinstance(value, bool)
