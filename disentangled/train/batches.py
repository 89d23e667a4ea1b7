"""Training batches for a stack of models: one batch per member, drawn from each member's own generator.

:class:`MemberBatches` returns ``x [M, B, C, H, W]`` (float32, on the training device)
where ``x[m]`` is exactly ``data.sample_observations(B, rng=rngs[m])`` and each member's
generator advances exactly as that call advances it. Two ways to get there:

* **through the data set** (the default on the CPU, and for data sets whose observations
  draw randomness of their own: noisy, colour and Scream dSprites, ``dummy_data``, or
  data rendered on the fly): each member's batch is drawn as a single run draws it and
  the batches are stacked;
* **through the image table** (the default on a GPU, for data sets stored as one uint8
  table, :meth:`~disentangled.data.base.GroundTruthData.image_table`: dSprites, Shapes3D,
  SmallNORB, Cars3D, MPI3D once prepared): the generators draw the factors as
  ``sample_observations`` draws them, straight into row numbers (``sample_rows``); the
  rows are looked up in the table, which lies on the GPU when it fits (or in host
  memory, then only uint8 rows travel), and the conversion to float happens on the
  device. A step of 128 members then moves no images across the bus; drawing 8,192
  prepared dSprites images through the data set and stacking them costs about 0.25 s of
  CPU per step, their row numbers alone about 12 ms.

Both ways give the same numbers bit for bit (``tests/train/test_batches.py``): the lookup
is the same rows, and the conversion here is the torch twin of the data set's own
:meth:`~disentangled.data.base.GroundTruthData.table_observations` (float32, times
float32 ``1 / scale``, channels first).
"""

from __future__ import annotations

import abc
from typing import ClassVar, Sequence

import numpy as np
import torch

from ..data.base import gather_rows
from ..errors import ParameterError

#: Keep the table on the GPU only while it takes at most this share of the free memory.
DEVICE_TABLE_SHARE = 0.5
_COPY_ROWS = 1 << 14  # rows per host-to-device copy while uploading a table


class BatchSource(abc.ABC):
    """Where a training step's batch comes from (abstract): one batch per drawing member, from its generator.

    ``for_runs(configs, data, device, table=)`` builds one for the runs ``configs``; calling it
    with the drawing members' generators and positions among ``configs`` returns the step's
    batch, every tensor with the members along its first axis. A source that reads a fixed set
    in order declares ``stepwise`` and is also told the step (and whether the batch is one of
    the post-training evaluation's), so that a resumed run reads on where it stopped.
    """

    stepwise: ClassVar[bool] = False

    @classmethod
    @abc.abstractmethod
    def for_runs(cls, configs, data, device, *, table: bool | None = None) -> "BatchSource": ...

    @abc.abstractmethod
    def __call__(self, rngs: Sequence[np.random.Generator], positions: Sequence[int] | None = None, **step): ...


class MemberBatches(BatchSource):
    """Draw ``[M, B, C, H, W]`` batches, member ``m`` from ``rngs[m]``; see the module docstring.

    ``table``: ``None`` uses the image table on a GPU when the data set has one; ``True``
    uses it on any device when the data set has one (tests use it on the CPU); ``False``
    never does. ``placement``: where the table lies, ``"device"`` or ``"host"``; ``None``
    chooses the device when the table takes at most :data:`DEVICE_TABLE_SHARE` of the
    GPU's free memory (on the CPU the host).
    """

    def __init__(self, data, batch_size: int, device, *, table: bool | None = None, placement: str | None = None):
        if placement not in (None, "device", "host"):
            raise ParameterError(f"placement: expected 'device', 'host' or None, got {placement!r}")
        self.data = data
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.channels_first = tuple(data.observation_shape)
        self.scale = 1.0
        self.table: torch.Tensor | np.ndarray | None = None
        use = self.device.type == "cuda" if table is None else bool(table)
        found = data.image_table() if use else None
        if found is None:
            return
        images, self.scale = found[0], float(found[1])
        self._check(images)
        placement = placement or self._placement(images)
        self.table = _upload(images, self.device) if placement == "device" else images

    @property
    def via(self) -> str:
        """``"data set"``, ``"table on device"`` or ``"table in host memory"``: how batches are drawn."""
        if self.table is None:
            return "data set"
        return "table on device" if isinstance(self.table, torch.Tensor) else "table in host memory"

    @classmethod
    def for_runs(cls, configs, data, device, *, table: bool | None = None) -> "MemberBatches":
        """The batch source of runs ``configs`` (the constructor every entry of :data:`BATCH_SOURCES` has)."""
        return cls(data, configs[0].train.batch_size, device, table=table)

    def __call__(self, rngs: Sequence[np.random.Generator], positions: Sequence[int] | None = None) -> torch.Tensor:
        """One batch per generator, stacked; ``positions``: which of the runs given to :meth:`for_runs` draw
        (sources whose runs have settings of their own use it; images need none)."""
        data, b = self.data, self.batch_size
        if self.table is None:
            batch = np.stack([data.sample_observations(b, rng=r) for r in rngs])
            return torch.from_numpy(batch).to(self.device)
        rows = np.concatenate([data.sample_rows(b, rng=r) for r in rngs])
        if isinstance(self.table, torch.Tensor):
            picked = self.table.index_select(0, torch.from_numpy(rows).to(self.device))
        else:
            picked = torch.from_numpy(gather_rows(self.table, rows)).to(self.device)
        x = picked.to(torch.float32)
        if self.scale != 1.0:
            x.mul_(float(np.float32(1.0 / self.scale)))  # as_unit_float: float32 times float32(1 / scale)
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        return x.reshape(len(rngs), b, *self.channels_first).contiguous()

    def _check(self, images) -> None:
        c, h, w = self.channels_first
        want = (h, w) if c == 1 else (h, w, c)
        if images.dtype != np.uint8 or tuple(images.shape[1:]) not in {want, (h, w, c)}:
            raise ValueError(
                f"{self.data.name}: image_table() gave {images.dtype} rows of shape {list(images.shape[1:])}; "
                f"expected uint8 rows of shape {list(want)} for observations {list(self.channels_first)}"
            )

    def _placement(self, images) -> str:
        if self.device.type != "cuda":
            return "host"
        free, _ = torch.cuda.mem_get_info(self.device)
        return "device" if images.nbytes <= DEVICE_TABLE_SHARE * free else "host"


def _upload(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """The table as one tensor on ``device``, copied a slab at a time (a memory map is never read whole)."""
    out = torch.empty(images.shape, dtype=torch.uint8, device=device)
    for start in range(0, images.shape[0], _COPY_ROWS):
        slab = np.array(images[start:start + _COPY_ROWS])  # a writable, contiguous copy of a slab
        out[start:start + slab.shape[0]].copy_(torch.from_numpy(slab))
    return out


#: Batch sources by the objective's ``batch_kind``: ``Source.for_runs(configs, data, device, table=)``
#: builds one for the runs ``configs`` (one run, or an ensemble's members in order); calling it
#: with one generator per drawing member (and their ``positions`` among ``configs``) returns the
#: step's batch, every tensor with the members along its first axis.
from .pair_batches import PairBatches  # noqa: E402  (it builds on MemberBatches, defined above)

from .labelled import LabelledBatches  # noqa: E402  (it builds on MemberBatches, defined above)

BATCH_SOURCES = {"images": MemberBatches, "pairs": PairBatches, "labelled": LabelledBatches}
