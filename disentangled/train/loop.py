"""Train one model: the whole loop, top to bottom.

The run directory it fills is described in :mod:`disentangled.rundir`; the bookkeeping
around each step (seeds, optimisers, log, checkpoints, failure, the final evaluation) is
:mod:`disentangled.train.core`, shared with the ensemble.

One step is one update. For FactorVAE it updates the VAE and the discriminator together,
on the same batch (see :mod:`disentangled.models.objectives.factor_vae` for how this
relates to the reference's step count). Batches come from :func:`batch_source`: on a GPU
they are gathered from the data set's image table kept on the device.
"""

from __future__ import annotations

from pathlib import Path

from ..config import RunConfig
from ..memory import keep_freed_memory
from ..rundir import RunConfigMismatch, RunDir
from .core import (Member, TrainingDiverged, batch_source, build, draw, evaluate, finite_members, make_optimizers,
                   member_batch, seeds, training_device, update)

__all__ = ["RunConfigMismatch", "TrainingDiverged", "build", "make_optimizers", "seeds", "train", "update"]


def train(config: RunConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True, data=None,
          device=None, restart: bool = False) -> dict:
    """Train (or resume, or skip if done) the run in ``run_dir`` on ``device`` (default: CUDA if any); return its results.

    ``restart``: start this configuration's run again from step 0, whatever it holds (damaged checkpoints).
    """
    from tqdm import tqdm

    run = RunDir(run_dir)
    device = training_device(device, config.train.precision)
    if restart and run.is_claimed:
        run.claim(config, resume=True)  # refuses another configuration before anything is deleted
        run.restart()
    if run.claim(config, resume=resume or restart):
        return run.results()
    run.clear_failed()
    keep_freed_memory()  # each step reuses the last one's memory (no page faults), see disentangled.memory
    data, model = build(config, data)
    model.to(device)
    optimizers = make_optimizers(config, model)
    member = Member.restore(config, run, data, device)
    if member.state is not None:
        model.load_state_dict(member.state)
        for name, opt in optimizers.items():
            opt.load_state_dict(member.optim[name])
    batches = batch_source([config], data, device)

    t = config.train
    model.train()
    bar = tqdm(total=t.steps, initial=member.step, desc=f"train {config.objective['name']}", unit="step",
               disable=not progress, dynamic_ncols=True)
    member.start_clock()
    with bar, member.open_log() as log:
        for step in range(member.step, t.steps):
            batch = member_batch(draw(batches, [member.data_rng], [0], step), 0)
            terms = model.loss_terms(batch, step=step, generator=member.generator)
            if not finite_members(terms)[0]:
                raise member.fail(step, {k: v.item() for k, v in terms.items()})
            update(model, optimizers, terms)
            done = step + 1
            if done % t.log_every == 0 or done == t.steps:
                values = {k: v.item() for k, v in terms.items()}
                member.log(log, done, values)
                bar.set_postfix(loss=f"{values['loss']:.2f}")
            if done % t.checkpoint_every == 0 or done == t.steps:
                member.checkpoint(done, model.state_dict(), {n: o.state_dict() for n, o in optimizers.items()}, log)
            bar.update(1)
    member.stop_clock()
    results = evaluate(model, [member], batches, stacked=False)[0]
    return member.finish(model.state_dict(), results)
