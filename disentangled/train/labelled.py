"""Semi-supervised runs: the labelled set of a run, and the batches of labelled and unlabelled observations.

A semi-supervised run (an objective of ``SEMI_OBJECTIVES`` with a ``supervision`` section)
draws its labelled set once (:func:`labelled_set`): ``supervision.num_labelled_samples``
examples from ``numpy.random.RandomState(labelled_seed(config))``, in the reference's order
(factors, observations, labels; :func:`~disentangled.data.labelled.sample_labelled`). The
seed is ``supervision.seed`` when given (the reference's ``supervised_seed``: the same seed
gives the reference's factors and labels) and otherwise a fifth stream of the run's
``SeedSequence`` (spawn key 4, after :func:`~disentangled.train.core.seeds`' four), so each
run seed has its own labelled set and the other streams keep their values.

Every step (:class:`LabelledBatches`) sees ``train.batch_size`` unlabelled observations,
drawn from the member's data generator exactly as an unsupervised run draws its batch, and as
many labelled ones: step ``t`` reads examples ``t * B .. t * B + B - 1`` of the labelled
training part, modulo its size, that is the part repeated in order, as the reference's
``from_tensor_slices(...).repeat()`` batched after the repeat. The position is a function of
the step, so a resumed run reads on exactly where it stopped. With ``supervision.shuffle``
each pass through the part is a permutation of it drawn from ``(labelled seed, pass)``, again
a function of the step alone. The post-training evaluation reads the validation part in
order, the same way (the training part when every example trains, ``train_percentage: 1``).

The run directory records the labelled set (``metadata.json``, ``labelled``): the seed, the
labeller and its settings, the split, and the data set's factors each label column is.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence

import numpy as np
import torch

from ..data.labelled import LABELLERS, Labeller, LabelledSet, label_columns, largest_label_size, sample_labelled
from .batches import BatchSource, MemberBatches

#: The spawn key of the labelled set's stream in a run's SeedSequence (after init, data, sampling, eval).
LABELLED_STREAM = 4


def labelled_seed(config) -> int:
    """The seed of the run's labelled set: ``supervision.seed``, or one derived from the run's seed."""
    if config.supervision.seed is not None:
        return int(config.supervision.seed)
    child = np.random.SeedSequence(config.seed, spawn_key=(LABELLED_STREAM,))
    return int(child.generate_state(1, dtype=np.uint32)[0])  # a RandomState seed (< 2**32)


def labeller(config) -> Labeller:
    """The labeller of the run's supervision settings."""
    s = config.supervision
    return LABELLERS.build(s.labeller, **s.labeller_options())


def labelled_set(config, data) -> LabelledSet:
    """The run's labelled set, drawn from its seed (see the module docstring)."""
    s = config.supervision
    drawn = sample_labelled(data, s.num_labelled_samples, labeller(config), rng=np.random.RandomState(labelled_seed(config)),
                            train_percentage=s.train_percentage)
    _remember(config, data, drawn.labels.sizes, drawn.labels.columns)
    return drawn


# What a labelled set's columns are (sizes, factors) by (data set, seed, settings): the model's
# initialisation and the metadata need them, and for the partial labeller only a draw tells.
_COLUMNS: dict = {}
_COLUMNS_KEPT = 256


def _key(config, data):
    return id(data), labelled_seed(config), config.supervision


def _remember(config, data, sizes, columns) -> None:
    if len(_COLUMNS) >= _COLUMNS_KEPT:
        _COLUMNS.pop(next(iter(_COLUMNS)))
    _COLUMNS[_key(config, data)] = (data, tuple(sizes), tuple(columns))  # the data set kept, so its id is not reused


def label_columns_of(config, data) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(sizes, factors)`` of the run's label columns. Only the partial labeller's depend on its draws,
    so only then is the set drawn (once per data set and settings)."""
    chosen = labeller(config)
    if chosen.name != "partial":
        labels = chosen(np.zeros((1, data.num_factors), dtype=np.int64), data.factor_sizes, rng=np.random.RandomState(0))
        return labels.sizes, labels.columns
    found = _COLUMNS.get(_key(config, data))
    if found is None or found[0] is not data:
        labelled_set(config, data)
        found = _COLUMNS[_key(config, data)]
    return found[1], found[2]


def describe_labelled(config, data) -> dict:
    """What ``metadata.json`` records of the run's labelled set."""
    from ..data.labelled import split_point

    s = config.supervision
    sizes, columns = label_columns_of(config, data)
    num_train = split_point(s.num_labelled_samples, s.train_percentage)
    return {
        "seed": labelled_seed(config),
        "seed_from": "supervision.seed" if s.seed is not None else "run seed (SeedSequence spawn key 4)",
        "labeller": {"name": s.labeller, **dataclasses.asdict(labeller(config))},
        "num_labelled_samples": s.num_labelled_samples,
        "num_train": num_train,
        "num_validation": s.num_labelled_samples - num_train,
        "shuffle": s.shuffle,
        "factors": [data.factor_names[c] for c in columns],
        "factor_sizes": list(sizes),
    }


def semi_supervised_builder(config, data):
    """``build_model``'s counterpart for a semi-supervised run: the labels' columns bound in.

    The shapes depend on the configuration alone (how many columns, the most values one can
    take), so :func:`~disentangled.train.represent.load_model` builds the model from a data set
    that only knows its shape; the columns' actual sizes, when the data set can draw them,
    shape the initialisation of embed's embedding.
    """
    from .. import data as data_module
    from ..models.semi import build_semi_model

    full = data if hasattr(data, "factor_sizes") else data_module.get(config.data.name, **config.data.options())
    chosen = labeller(config)
    num_columns = label_columns(chosen, full.num_factors)
    width = largest_label_size(chosen, full.factor_sizes)
    sizes = label_columns_of(config, full)[0] if hasattr(data, "sample_factors") else None
    return functools.partial(build_semi_model, num_columns=num_columns, label_width=width, column_sizes=sizes)


class LabelledBatches(BatchSource):
    """Each step's ``{"unlabelled", "labelled", "labels", "sizes"}`` for the runs given to :meth:`for_runs`.

    ``unlabelled`` ``[M, B, C, H, W]`` is exactly :class:`~disentangled.train.batches.MemberBatches`'
    batch (the members' own generators, the image table on a GPU); ``labelled`` ``[M, B, C, H, W]``
    and ``labels`` float32 ``[M, B, K]`` are each member's labelled examples of the step; ``sizes``
    ``[M, K]`` the number of values of each label column. Each run's labelled set lives on the
    training device for the whole run.
    """

    stepwise = True  # called with the step: the labelled examples are read in order (core.draw)

    def __init__(self, configs: Sequence, data, device, *, table: bool | None = None):
        self.images = MemberBatches(data, configs[0].train.batch_size, device, table=table)
        self.device = self.images.device
        self.batch_size = self.images.batch_size
        sets = [labelled_set(c, data) for c in configs]
        self.shuffle = bool(configs[0].supervision.shuffle)
        self.seeds = [labelled_seed(c) for c in configs]
        self.parts = {}
        for name in ("train", "validation"):
            x = np.stack([getattr(s, name)[0] for s in sets])
            y = np.stack([getattr(s, name)[1] for s in sets])
            self.parts[name] = (torch.from_numpy(x).to(self.device), torch.from_numpy(y).to(self.device))
        self.sizes = torch.tensor([s.labels.sizes for s in sets], dtype=torch.float32, device=self.device)

    @classmethod
    def for_runs(cls, configs, data, device, *, table: bool | None = None) -> "LabelledBatches":
        """The batch source of runs ``configs`` (the constructor every entry of ``BATCH_SOURCES`` has)."""
        return cls(configs, data, device, table=table)

    @property
    def via(self) -> str:
        return self.images.via

    def rows(self, step: int, size: int, run: int, *, shuffle: bool) -> np.ndarray:
        """Which examples of a part of ``size`` examples run ``run`` reads at ``step``: int64 ``[B]``."""
        reads = np.arange(step * self.batch_size, (step + 1) * self.batch_size, dtype=np.int64)
        if not shuffle:
            return reads % size
        passes, offsets = np.divmod(reads, size)
        out = np.empty_like(reads)
        for p in np.unique(passes):
            order = np.random.default_rng([self.seeds[run], int(p)]).permutation(size)
            out[passes == p] = order[offsets[passes == p]]
        return out

    def __call__(self, rngs: Sequence[np.random.Generator], positions: Sequence[int] | None = None, *, step: int | None = None,
                 evaluation: bool = False) -> dict[str, torch.Tensor]:
        if step is None:
            raise ValueError("step must be given: the labelled examples of a step depend on it (draw it with "
                             "disentangled.train.core.draw), got None")
        positions = list(range(len(rngs))) if positions is None else list(positions)
        unlabelled = self.images(rngs, positions)
        name = "validation" if evaluation and self.parts["validation"][0].shape[1] > 0 else "train"
        x, y = self.parts[name]
        size = x.shape[1]
        shuffle = self.shuffle and not evaluation
        flat = np.concatenate([r * size + self.rows(step, size, r, shuffle=shuffle) for r in positions])
        index = torch.from_numpy(flat).to(self.device)
        members, b = len(positions), self.batch_size
        labelled = x.reshape(-1, *x.shape[2:]).index_select(0, index).reshape(members, b, *x.shape[2:])
        labels = y.reshape(-1, y.shape[-1]).index_select(0, index).reshape(members, b, y.shape[-1])
        sizes = self.sizes.index_select(0, torch.tensor(positions, device=self.device))
        return {"unlabelled": unlabelled, "labelled": labelled, "labels": labels, "sizes": sizes}


__all__ = ["LABELLED_STREAM", "LabelledBatches", "describe_labelled", "label_columns_of", "labelled_seed", "labelled_set",
           "labeller", "semi_supervised_builder"]
