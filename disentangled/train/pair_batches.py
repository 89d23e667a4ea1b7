"""Training batches of pairs for the weakly-supervised objectives, one per ensemble member.

:class:`PairBatches` is the ``"pairs"`` entry of :data:`~disentangled.train.batches.BATCH_SOURCES`.
A call with one generator per drawing member returns::

    {"x": float32 [M, 2B, C, H, W],   # member m: its B first images, then its B second images
     "label": int64 [M, B]}           # the factor each pair's label names

Member ``m`` draws its pairs with its own settings (``data.pairs`` of its run: sampler and
``k``, which may differ between the members of one ensemble) from its own generator, exactly
as a single run draws them: :func:`~disentangled.data.pairs.sample_pair_factors` for the
factors, then the observations of the first and of the second images. As for
:class:`~disentangled.train.batches.MemberBatches`, the observations come through the data
set (the CPU's default) or from the data set's uint8 image table (a GPU's default, on the
device when it fits), and both ways give the same numbers bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..data.base import gather_rows
from ..data.pairs import check_pairs, pair_observations, pair_rows, sample_pair_factors
from .batches import MemberBatches


class PairBatches(MemberBatches):
    """Draw ``{"x": [M, 2B, C, H, W], "label": [M, B]}`` pair batches; see the module docstring.

    ``settings``: one :class:`~disentangled.config.PairsConfig` per run given to
    :meth:`for_runs`, indexed by the ``positions`` of a call.
    """

    def __init__(self, data, batch_size: int, device, settings: Sequence, *, table: bool | None = None,
                 placement: str | None = None):
        super().__init__(data, batch_size, device, table=table, placement=placement)
        self.settings = tuple(settings)
        for s in self.settings:  # the data set actually used (its factor count) decides, not just the config's name
            check_pairs(s.k, s.sampler, data)

    @classmethod
    def for_runs(cls, configs, data, device, *, table: bool | None = None) -> PairBatches:
        """The pair source of runs ``configs``; each must set ``data.pairs``."""
        from ..config import ConfigError

        for c in configs:
            if c.data.pairs is None:
                raise ConfigError(f"data.pairs must be set for objective {c.objective['name']!r}, which trains on pairs, "
                                  f"got None; set data.pairs.k=1 (docs/weak.md)")
        return cls(data, configs[0].train.batch_size, device, [c.data.pairs for c in configs], table=table)

    def __call__(self, rngs: Sequence[np.random.Generator], positions: Sequence[int] | None = None) -> dict:
        """One pair batch per generator; ``positions``: which runs of :meth:`for_runs` draw (default: the first ones)."""
        positions = list(range(len(rngs))) if positions is None else list(positions)
        if len(positions) != len(rngs):
            raise ValueError(f"positions: expected one per generator ({len(rngs)}), got {len(positions)}")
        data, b = self.data, self.batch_size
        pairs = [sample_pair_factors(data, b, rng=r, sampler=self.settings[p].sampler, k=self.settings[p].k)
                 for r, p in zip(rngs, positions)]
        label = torch.from_numpy(np.stack([p.label for p in pairs])).to(self.device)
        if self.table is None:
            x = np.stack([pair_observations(data, p, rng=r) for p, r in zip(pairs, rngs)])
            return {"x": torch.from_numpy(x).to(self.device), "label": label}
        rows = np.concatenate([pair_rows(data, p, rng=r) for p, r in zip(pairs, rngs)])
        return {"x": self._lookup(rows).reshape(len(rngs), 2 * b, *self.channels_first).contiguous(), "label": label}

    def _lookup(self, rows: np.ndarray) -> torch.Tensor:
        """Table rows as float32 observations ``[N, C, H, W]`` on the device (the conversion of MemberBatches)."""
        if isinstance(self.table, torch.Tensor):
            picked = self.table.index_select(0, torch.from_numpy(rows).to(self.device))
        else:
            picked = torch.from_numpy(gather_rows(self.table, rows)).to(self.device)
        x = picked.to(torch.float32)
        if self.scale != 1.0:
            x.mul_(float(np.float32(1.0 / self.scale)))  # as_unit_float: float32 times float32(1 / scale)
        return x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)


__all__ = ["PairBatches"]
