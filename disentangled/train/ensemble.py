"""Train many models in one process as one vectorised model (an ensemble).

``train_ensemble(configs, run_dirs)`` trains ``M`` runs that share their architecture,
objective, data set and training settings but not their seeds or the objective's
hyperparameters (beta, gamma, c_max, lambda_od, ...). The models are stacked along a
leading axis (:mod:`disentangled.models.stacked`) and take every step together. Each
member still gets a run directory exactly as :func:`~disentangled.train.loop.train`
writes it (config, metadata, log, checkpoints, final weights, results, done-marker,
``failed.json``), so ``disentangled evaluate``, ``load_model`` and ``train(..., resume=True)``
work on it as on any run.

Equivalence. Member ``m`` draws its batches, its posterior noise and FactorVAE's
permutations from its own seeds, the streams of ``seeds(config)`` that ``train()`` uses,
in the same order, and keeps its own Adam moments (FactorVAE: its discriminator's too).
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..config import RunConfig
from ..io import write_json_atomic
from . import checkpoint as ckpt
from .batches import MemberBatches
from .loop import DONE, TrainingDiverged, _claim_run_dir, _fail, _metadata, _truncate, build, seeds, update

#: Members stacked at once on the CPU. There each member runs its own kernels in turn, so
#: a stack brings shared bookkeeping, not wider kernels; beyond a few dozen members the
#: stack's activations (about 40 MiB a member at batch 64) outgrow the caches and a step
#: gets slower per model (measured: 1.48x the plain loop at 8 members, 1.32x at 32, 0.83x
#: at 128; ``docs/ensembles.md``).
CPU_MAX_MEMBERS = 16

#: Keys of a resolved configuration that may differ between members (besides the
#: objective's numeric hyperparameters).
STACKABLE = ("seed",)


def stack_key(config: RunConfig) -> str:
    """What ensemble members must share: the configuration without seed and numeric objective hyperparameters."""
    flat = _flatten(config.to_dict())
    keep = {k: v for k, v in flat.items() if k not in STACKABLE and not _numeric_objective_key(k, v)}
    return json.dumps(keep, sort_keys=True)


def check_stackable(configs: Sequence[RunConfig]) -> None:
    """Raise ``ValueError`` naming the keys that keep ``configs`` from training as one ensemble."""
    if not configs:
        raise ValueError("configs: expected at least one run configuration, got none")
    flats = [_flatten(c.to_dict()) for c in configs]
    keys = sorted(set().union(*flats))
    differing = [k for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1]
    fixed = [k for k in differing if k not in STACKABLE and not all(_numeric_objective_key(k, f.get(k)) for f in flats)]
    if fixed:
        raise ValueError(
            f"configs: ensemble members may differ only in seed and the objective's numeric hyperparameters; "
            f"these differ: {', '.join(fixed)}. Train such runs in separate ensembles (study run --ensemble groups them)."
        )


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class _Member:
    """One run's state while it is outside a stacked model (between segments)."""

    index: int
    config: RunConfig
    run_dir: Path
    seeds: dict
    data_rng: np.random.Generator
    generator: torch.Generator
    step: int = 0
    elapsed: float = 0.0
    state: dict | None = None  # model state dict; None: the fresh initialisation
    optim: dict = field(default_factory=dict)  # name -> Adam state dict ({} when fresh)
    log_bytes: int = 0


class StackedAdam(torch.optim.Adam):
    """Adam over stacked parameters ``[M, ...]``: on the CPU, one update per model slice.

    Adam is elementwise, but the CPU's vectorised kernels treat the last few elements of
    a tensor (those that do not fill a SIMD register) with other instructions, so
    updating ``[M, n]`` at once rounds some elements differently than updating each
    ``[n]`` alone. Per-slice updates run the very code of ``torch.optim.Adam`` on tensors
    shaped as in a single run. The state (one ``step`` per parameter, shared by the
    members, which always step together) has ``Adam``'s format. On a GPU the whole
    stack is updated at once.
    """

    @torch.no_grad()
    def step(self, closure=None):
        if closure is not None:
            raise ValueError("StackedAdam.step: closure is not supported; call it without arguments")
        first = self.param_groups[0]["params"][0]
        if first.device.type != "cpu":
            return super().step()
        from torch.optim.adam import adam

        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # as Adam's lazy initialisation
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                n = p.shape[0]
                steps = [state["step"].clone() for _ in range(n)]
                adam(list(p.unbind(0)), list(p.grad.unbind(0)), list(state["exp_avg"].unbind(0)),
                     list(state["exp_avg_sq"].unbind(0)), [], steps, foreach=False, amsgrad=False, beta1=beta1,
                     beta2=beta2, lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"], maximize=False)
                state["step"] += 1
        return None


class _View:
    """Something with ``state_dict()`` (and ``load_state_dict()``), for checkpoint.py."""

    def __init__(self, state=None):
        self.state = state

    def state_dict(self):
        return self.state

    def load_state_dict(self, state):
        self.state = state


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
    :class:`TrainingDiverged` that stopped it. ``device`` defaults to CUDA when available.
    ``max_members`` caps how many members are stacked at once; more are trained as
    consecutive ensembles of at most that many (default: :data:`CPU_MAX_MEMBERS` on the
    CPU, where larger stacks only add memory traffic, no cap on a GPU). ``table``: draw
    batches through the data set's image table (:class:`~disentangled.train.batches.MemberBatches`;
    default: on a GPU when the data set has one); the batches are the same either way.
    """
    from tqdm import tqdm

    configs = list(configs)
    run_dirs = [Path(d) for d in run_dirs]
    if len(configs) != len(run_dirs):
        raise ValueError(f"run_dirs: expected one run directory per config ({len(configs)}), got {len(run_dirs)}")
    if len({d.resolve() for d in run_dirs}) != len(run_dirs):
        raise ValueError("run_dirs: every member needs its own run directory; some are repeated")
    check_stackable(configs)
    device = torch.device(device or default_device())
    from .. import data as data_module

    first = configs[0]
    data = data if data is not None else data_module.get(first.data.name, **first.data.options())
    cap = max_members if max_members is not None else (CPU_MAX_MEMBERS if device.type == "cpu" else len(configs))
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValueError(f"max_members: expected a positive integer, got {max_members!r}")
    if len(configs) > cap:  # consecutive ensembles of at most ``cap`` members; they share no arithmetic
        outcomes: list = []
        for lo in range(0, len(configs), cap):
            outcomes += train_ensemble(configs[lo:lo + cap], run_dirs[lo:lo + cap], resume=resume, progress=progress,
                                       data=data, device=device, allow_tf32=allow_tf32, max_members=cap, table=table)
        return outcomes
    outcomes: list = [None] * len(configs)
    members: list[_Member] = []
    for i, (config, run_dir) in enumerate(zip(configs, run_dirs)):
        _claim_run_dir(config, run_dir, resume)
        if (run_dir / DONE).is_file():
            outcomes[i] = json.loads((run_dir / "train_results.json").read_text())
            continue
        (run_dir / "failed.json").unlink(missing_ok=True)
        members.append(_restore(i, config, run_dir, data, device, len(configs)))
    if not members:
        return outcomes

    steps = first.train.steps
    _, template = build(first, data)
    batches = MemberBatches(data, first.train.batch_size, device, table=table)
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


def _restore(index: int, config: RunConfig, run_dir: Path, data, device, size: int) -> _Member:
    s = seeds(config)
    member = _Member(index, config, run_dir, s, np.random.default_rng(s["data"]), torch.Generator().manual_seed(s["sampling"]))
    log_path = run_dir / "train_log.jsonl"
    last = ckpt.latest(run_dir / "checkpoints")
    if last is not None:
        model = _View()
        optim = {"vae": _View(), **({"discriminator": _View()} if config.build_objective().needs_discriminator else {})}
        state = ckpt.load(last, model, optim, member.generator)
        member.data_rng.bit_generator.state = state["data_rng"]
        member.step, member.elapsed, member.log_bytes = state["step"], state["elapsed"], state["log_bytes"]
        member.state = model.state
        member.optim = {k: v.state for k, v in optim.items()}
        _truncate(log_path, state["log_bytes"])
    else:
        log_path.unlink(missing_ok=True)
        meta = _metadata(config, data, s)
        meta.update({"device": str(device), "ensemble": {"size": size}})
        write_json_atomic(run_dir / "metadata.json", meta)
    return member


def _stack(group: list[_Member], template, data, device):
    """The stacked model and optimisers of ``group`` (fresh members are initialised as ``train()`` does)."""
    states = []
    for m in group:
        if m.state is None:
            _, fresh = build(m.config, data)
            states.append({k: v.detach() for k, v in fresh.state_dict().items()})
        else:
            states.append(m.state)
    model = _stack_states(template, group, states, device)
    opts = stacked_optimizers(model, template, group[0].config.train)
    for name, opt in opts.items():
        if group[0].optim.get(name, {}).get("state"):
            opt.load_state_dict(_stack_optimizer([m.optim[name] for m in group], opt.state_dict()["param_groups"]))
    return model, opts


def stacked_optimizers(model, template, train) -> dict:
    """Fresh per-member Adams for a stacked model: ``{"vae": ..., "discriminator": ...}`` as ``train()`` makes them."""
    opts = {"vae": StackedAdam(model.vae_parameters(), lr=train.lr, betas=(train.beta1, train.beta2), eps=train.eps)}
    if model.discriminator is not None:
        d = template.objective.discriminator_optimizer
        opts["discriminator"] = StackedAdam(model.discriminator_parameters(), lr=d.lr, betas=(d.beta1, d.beta2), eps=d.eps)
    return opts


def _stack_states(template, members: list[_Member], states: list[dict], device):
    from ..models.stacked import stack

    model = stack(template, [m.config.build_objective() for m in members], states).to(device)
    model.train()
    return model


def _stack_optimizer(states: list[dict], param_groups) -> dict:
    out = {}
    for idx in states[0]["state"]:
        entry = {}
        for key, value in states[0]["state"][idx].items():
            if key == "step":
                steps = {float(s["state"][idx]["step"]) for s in states}
                if len(steps) != 1:
                    raise RuntimeError(f"ensemble members at one training step have different Adam steps {sorted(steps)}")
                entry[key] = value.clone()
            else:
                entry[key] = torch.stack([s["state"][idx][key].cpu() for s in states])  # Adam moves it to the parameters
        out[idx] = entry
    return {"state": out, "param_groups": param_groups}


def _member_optim(opt: torch.optim.Optimizer, m: int) -> dict:
    sd = opt.state_dict()
    state = {idx: {k: (v if k == "step" else v[m]) for k, v in s.items()} for idx, s in sd["state"].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


def _unstack(group: list[_Member], model, opts) -> None:
    from ..models.stacked import member_state

    for i, m in enumerate(group):
        m.state = {k: v.detach().clone() for k, v in member_state(model, i).items()}
        m.optim = {name: _member_optim(opt, i) for name, opt in opts.items()}
        for entry in m.optim.values():
            entry["state"] = {idx: {k: v.clone() for k, v in s.items()} for idx, s in entry["state"].items()}


def _segment(group, template, data, batches, start, stop, bar, outcomes, live) -> list[_Member]:
    """Train ``group`` (all at ``start``) to ``stop``; returns the members still training or finished."""
    model, opts = _stack(group, template, data, batches.device)
    t = group[0].config.train
    generators = [m.generator for m in group]
    logs = [open(m.run_dir / "train_log.jsonl", "a") for m in group]
    tick = time.perf_counter()
    failed: set[int] = set()
    try:
        for step in range(start, stop):
            x = batches([m.data_rng for m in group])
            terms = model.loss_terms(x, step=step, generator=generators)
            values = torch.stack([v.detach() for v in terms.values()])  # [terms, M]
            finite = torch.isfinite(values).all(0).tolist()
            for i, ok in enumerate(finite):
                if not ok and i not in failed:
                    failed.add(i)
                    member_terms = {k: v.detach()[i].cpu() for k, v in terms.items()}
                    try:
                        _fail(group[i].run_dir, step, member_terms)
                    except TrainingDiverged as err:
                        outcomes[group[i].index] = err
            update(model, opts, terms, total=True)  # the members share no parameters: each gets its own gradient
            done = step + 1
            rows = None
            if done % t.log_every == 0 or done == t.steps:
                rows = values.cpu().tolist()
            for i, m in enumerate(group):
                if i in failed:
                    continue
                if rows is not None:
                    now = m.elapsed + time.perf_counter() - tick
                    record = {"step": done, "elapsed": round(now, 3), **{k: rows[j][i] for j, k in enumerate(terms)}}
                    logs[i].write(json.dumps(record) + "\n")
                    logs[i].flush()
                if done % t.checkpoint_every == 0 or done == t.steps:
                    _checkpoint(m, i, model, opts, logs[i], done, m.elapsed + time.perf_counter() - tick)
            bar.update(1)
            bar.set_postfix(live=live - len(failed))
            if failed and done < stop:  # restack the members that go on
                keep = [m for i, m in enumerate(group) if i not in failed]
                for m in group:
                    m.step = done
                _close(logs)
                _unstack(group, model, opts)
                for m in keep:
                    m.elapsed += time.perf_counter() - tick
                return _segment(keep, template, data, batches, done, stop, bar, outcomes, live - len(failed)) if keep else []
    finally:
        _close(logs)
    elapsed = time.perf_counter() - tick
    keep = [m for i, m in enumerate(group) if i not in failed]
    for m in group:
        m.step, m.elapsed = stop, m.elapsed + elapsed
    if stop == t.steps and keep:
        _finish(keep, [i for i in range(len(group)) if i not in failed], model, template, data, batches, outcomes)
    else:
        _unstack(group, model, opts)
    return keep


def _close(logs) -> None:
    for log in logs:
        if not log.closed:
            log.close()


def _checkpoint(m: _Member, i: int, model, opts, log, done: int, elapsed: float) -> None:
    from ..models.stacked import member_state

    log.flush()
    extra = {"data_rng": m.data_rng.bit_generator.state, "elapsed": elapsed, "log_bytes": log.tell()}
    views = {name: _View(_member_optim(opt, i)) for name, opt in opts.items()}
    ckpt.save(m.run_dir / "checkpoints", done, _View(member_state(model, i)), views, m.generator, extra)


def _finish(members: list[_Member], rows: list[int], model, template, data, batches, outcomes) -> None:
    """Final weights, the post-training evaluation (vectorised) and the done-markers."""
    from ..models.stacked import member_state

    t = members[0].config.train
    for m, i in zip(members, rows):
        ckpt.save_weights(_View(member_state(model, i)), m.run_dir / "model.safetensors", {"run_id": m.config.run_id, "step": t.steps})
    if len(rows) != model.encoder.num_models:  # evaluate the survivors only
        states = [{k: v.detach() for k, v in member_state(model, i).items()} for i in rows]
        model = _stack_states(template, members, states, next(model.parameters()).device)
    results = evaluate_stacked(model, members, data, batches)
    for m, r in zip(members, results):
        r.update({"elapsed_time": m.elapsed, "global_step": t.steps})
        write_json_atomic(m.run_dir / "train_results.json", r)
        write_json_atomic(m.run_dir / DONE, {"run_id": m.config.run_id, "steps": t.steps})
        outcomes[m.index] = r


@torch.no_grad()
def evaluate_stacked(model, members: list[_Member], data, batches: MemberBatches | None = None) -> list[dict]:
    """``loop.evaluate`` for every member of the stacked model, all at once."""
    device = next(model.parameters()).device
    if batches is None:
        batches = MemberBatches(data, members[0].config.train.batch_size, device)
    t = members[0].config.train
    rngs = [np.random.default_rng(m.seeds["eval"]) for m in members]
    generators = [torch.Generator().manual_seed(m.seeds["eval"]) for m in members]
    sums: list[dict] = [{} for _ in members]
    model.eval()
    for _ in range(t.eval_batches):
        terms = model.loss_terms(batches(rngs), step=t.steps, generator=generators)
        values = torch.stack(list(terms.values())).cpu().tolist()
        for j, k in enumerate(terms):
            for i in range(len(members)):
                sums[i][k] = sums[i].get(k, 0.0) + values[j][i]
    model.train()
    out = []
    n = t.eval_batches
    for s in sums:
        r = {k: v / n for k, v in s.items()} if n else {}
        if "reconstruction" in r:
            r["reconstruction_loss"] = r.pop("reconstruction")
            r["kl_loss"] = r.pop("kl")
        r["eval_batches"] = n
        out.append(r)
    return out


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
