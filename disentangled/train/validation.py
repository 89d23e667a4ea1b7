"""Validation of a run on a labelled set (dlib's ``validation/validate.py``).

Locatello et al. (ICLR 2020) ask whether a few labels suffice to *select* good models: each
trained model is scored on a small labelled set with the reference's validation forms of the
metrics, whose labels are the labeller's (so noisy or binned when training's were):

* ``mig`` (``mig_validation``): MIG (20 histogram bins) of the codes of all ``n`` examples;
* ``dci`` (``dci_validation.*``): DCI fitted on the first ``ceil(n * train_percentage)``
  examples and tested on the rest;
* ``sap`` (``sap_validation``): SAP (discrete factors) fitted and tested on the same split;
* ``unified`` (``unified_validation.*``): the unified scores
  (:func:`disentangled.metrics.unified.unified_scores`) on the same split.

**Which labelled set** (``draw``):

* ``training`` (the default, the reference's): as the reference's pipeline sets
  ``validation.random_seed = supervised_seed``, the set is the run's own training draw, so
  the metrics' training split is the model's labelled training part and MIG scores both parts.
* ``disjoint`` (the corrected option): ``n`` examples drawn from a separate seed (the
  training draw's seed, spawn key 1 of a ``SeedSequence``), none of whose factor
  combinations is in the training draw; the labeller then labels them with the same rules.

**Which labels for which run.** A semi-supervised run is validated on its own supervision
settings. Any other finished run is validated with given settings (a study's ``supervision``
section): the draw is then exactly the one a semi-supervised run with the same seed and
settings trains on, so unsupervised and semi-supervised models are selected with the same
labels, as in the paper's comparison. ``num_labelled_samples`` overrides the count.

The observations are encoded in batches of 100, as the reference's fixed-data metrics encode
them. With ``train_percentage: 1`` no example is held out, and DCI, SAP and the unified
scores test on the training split. Each (form, count) is written as one file,
:meth:`disentangled.rundir.RunDir.validation_file` (``metrics/<representation>/validation/
<form>_<n>.json``, the record format of :func:`disentangled.evaluate.evaluate_run`), which
``study collect`` gathers into the results table with ``validation`` set to true.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Mapping

import numpy as np

from .. import __version__
from ..errors import ParameterError, check_choice, check_int
from ..io import write_json_atomic

#: The validation forms, in the order they are computed.
VALIDATION_FORMS = ("mig", "dci", "sap", "unified")
#: The forms computed when none are named (the reference's three test configs).
DEFAULT_FORMS = ("mig", "dci", "sap")
#: ``training``: the run's training draw (the reference); ``disjoint``: a separate draw sharing no factors with it.
DRAWS = ("training", "disjoint")
#: Observations encoded at once (the reference's batch for fixed-data metrics).
ENCODE_BATCH = 100
#: MIG's histogram bins (the reference's validation configs).
MIG_BINS = 20
#: The spawn key, under the training draw's seed, of the disjoint draw's seed.
DISJOINT_STREAM = 1


def metric_name(form: str) -> str:
    """The metric a form's scores are reported under: ``mig`` -> ``mig_validation``."""
    check_choice("validation form", form, VALIDATION_FORMS)
    return f"{form}_validation"


def validation_scores(codes: np.ndarray, labels: np.ndarray, num_train: int, form: str) -> dict[str, float]:
    """The scores of ``form`` (one of :data:`VALIDATION_FORMS`) for codes ``[n, D]`` of labels ``[n, K]``."""
    from ..metrics.dci import dci
    from ..metrics.mig import mig
    from ..metrics.sap import sap

    name = metric_name(form)
    factors = np.asarray(labels).astype(np.int64)
    train, test = slice(0, num_train), slice(num_train, None)
    split = (codes[train], factors[train]) + ((codes[test], factors[test]) if num_train < len(codes) else ())
    if form == "mig":
        return {name: mig(codes, factors, num_bins=MIG_BINS)}
    if form == "dci":
        return {f"{name}.{k}": v for k, v in dci(*split).items()}
    if form == "sap":
        return {name: sap(*split, continuous=False)}
    from ..metrics.unified import unified_scores

    return {f"{name}.{k}": v for k, v in unified_scores(*split, num_bins=MIG_BINS).items()}


def supervision_of(config, supervision=None, num_labelled_samples: int | None = None):
    """The supervision settings a run is validated with: its own, else ``supervision``; ``num_labelled_samples`` overrides the count."""
    from ..config import ConfigError, SupervisionConfig, _supervision

    s = config.supervision if config.supervision is not None else supervision
    if s is None:
        raise ParameterError(
            f"supervision must be given to validate the run {config.run_id!r} (objective {config.objective['name']!r}), "
            "which has no supervision section of its own, got None; pass the study's supervision settings "
            "(for example {'num_labelled_samples': 100, 'labeller': 'perfect'})")
    try:
        s = _supervision(dict(s) if isinstance(s, Mapping) else s)
        if num_labelled_samples is not None:
            s = SupervisionConfig(**{**dataclasses.asdict(s), "num_labelled_samples": num_labelled_samples})
    except ConfigError as err:
        raise ParameterError(f"validation: {err}") from None
    return s


def validation_set(config, data, supervision, draw: str = "training"):
    """The labelled set a run with ``config`` is validated on (see the module docstring); returns ``(set, seed)``."""
    from ..data.labelled import sample_labelled, split_point
    from ..data.labelled import LabelledSet
    from .labelled import labeller, labelled_seed

    check_choice("validation draw", draw, DRAWS, why="the labelled set validated on")
    shim = SimpleNamespace(seed=config.seed, supervision=supervision)  # what the labelled-set helpers read
    seed = labelled_seed(shim)
    n = supervision.num_labelled_samples
    trained = sample_labelled(data, n, labeller(shim), rng=np.random.RandomState(seed),
                              train_percentage=supervision.train_percentage)
    if draw == "training":
        return trained, seed
    seed = int(np.random.SeedSequence(seed, spawn_key=(DISJOINT_STREAM,)).generate_state(1, dtype=np.uint32)[0])
    rng = np.random.RandomState(seed)
    seen = {tuple(row) for row in np.asarray(trained.factors).tolist()}
    kept: list[np.ndarray] = []
    count, rounds = 0, 0
    while count < n:  # rejection: at n labels of a data set of many combinations, one round almost always suffices
        rounds += 1
        if rounds > 1000:
            raise ParameterError(f"validation draw 'disjoint': after 1000 rounds only {count} of "
                                 f"num_labelled_samples={n} examples share no factors with the training draw; "
                                 "the data set has too few factor combinations, use draw 'training'")
        factors = np.asarray(data.sample_factors(n, rng=rng))
        fresh = np.array([tuple(row) not in seen for row in factors.tolist()], dtype=bool)
        kept.append(factors[fresh])
        count += int(fresh.sum())
    factors = np.concatenate(kept)[:n]
    observations = data.observations_from_factors(factors, rng=rng)
    labels = labeller(shim)(factors, data.factor_sizes, rng=rng)
    return LabelledSet(observations, factors, labels, split_point(n, supervision.train_percentage)), seed


def validate_run(run_dir: str | Path, *, representation: str = "mean", forms=DEFAULT_FORMS, draw: str = "training",
                 supervision=None, num_labelled_samples: int | None = None, device=None, seed: int = 0,
                 force: bool = False) -> dict[str, dict]:
    """Score a finished run on a labelled set; write and return one record per form, keyed by form.

    ``supervision`` (a mapping or :class:`~disentangled.config.SupervisionConfig`) is used for a
    run without a supervision section; ``num_labelled_samples`` overrides the count. ``seed``
    seeds the sampled representation's noise. Forms already written are not computed again
    unless ``force``.
    """
    from .. import data as data_module
    from ..rundir import RunDir
    from .represent import Representation, load_model

    run = RunDir(run_dir)
    if not run.is_done:
        raise ParameterError(f"run_dir must hold a finished run (with {run.done_file.name}) to validate, got {str(run.path)!r}")
    forms = tuple(forms)
    check_choice("validation draw", draw, DRAWS, why="the labelled set validated on")
    for form in forms:
        check_choice("validation form", form, VALIDATION_FORMS)
    if num_labelled_samples is not None:
        check_int("num_labelled_samples", num_labelled_samples, low=2, why="the labelled set is split in two")
    config = run.config()
    s = supervision_of(config, supervision, num_labelled_samples)
    n = s.num_labelled_samples
    files = {form: run.validation_file(representation, form, n, draw) for form in forms}
    done = {f: json.loads(p.read_text()) for f, p in files.items() if p.is_file() and not force}
    todo = [f for f in forms if f not in done]
    if not todo:
        return done
    model, config = load_model(run.path)
    data = data_module.get(config.data.name, **config.data.options())
    drawn, draw_seed = validation_set(config, data, s, draw)
    codes = Representation(model, representation, seed=seed, batch_size=ENCODE_BATCH, device=device)(drawn.observations)
    for form in todo:
        start = time.perf_counter()
        scores = validation_scores(codes, drawn.labels.values, drawn.num_train, form)
        record = {
            "metric": metric_name(form),
            "scores": scores,
            "settings": {"num_labelled_samples": n, "train_percentage": s.train_percentage, "num_train": drawn.num_train,
                         "labeller": s.labeller, **s.labeller_options(), "draw": draw,
                         "own_labels": config.supervision is not None,
                         **({"num_bins": MIG_BINS} if form in ("mig", "unified") else {})},
            "seed": draw_seed,
            "elapsed_s": time.perf_counter() - start,
            "representation": representation,
            "representation_seed": seed,
            "run_id": config.run_id,
            "data": data.describe(),
            "package_version": __version__,
        }
        write_json_atomic(files[form], record)
        done[form] = record
    return {f: done[f] for f in forms}


__all__ = ["DEFAULT_FORMS", "DRAWS", "ENCODE_BATCH", "MIG_BINS", "VALIDATION_FORMS", "metric_name", "supervision_of",
           "validate_run", "validation_scores", "validation_set"]
