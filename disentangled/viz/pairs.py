"""Pictures of the weakly-supervised data: pairs of observations side by side, still and animated.

The reference's ``visualize_weakly_supervised_dataset`` (called with ``num_frames=1``) writes
an animation of 10 sequences of 2 frames: each sequence starts from a random image and takes
one step of the pair dynamics. :func:`pair_pictures` draws the same thing for any data set,
sampler and ``k``, seeded:

    pairs.png       two rows: the first images, and under each its second image, captioned
                    with the indices of the factors picked for change (the label in brackets)
    animation.gif   two frames, the first images then the second images, looping
    pairs.json      the factor names and every pair's factors, changes and label
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.pairs import pair_observations, sample_pair_factors
from ..errors import check_int
from ..io import write_json_atomic
from .grids import captioned_grid, grid, save_gif, save_png


def pair_captions(changed: np.ndarray, label: np.ndarray) -> list[str]:
    """Per pair, the indices of the factors picked for change, the label's in brackets (``"1,[3]"``)."""
    out = []
    for row, lab in zip(np.asarray(changed), np.asarray(label)):
        out.append(",".join(f"[{j}]" if j == lab else str(j) for j in np.flatnonzero(row)))
    return out


def pair_pictures(data, out_dir: str | Path, *, sampler: str = "dlib", k: int = 1, seed: int = 0, num_pairs: int = 10,
                  fps: float = 2.0, name: str = "pairs") -> list[Path]:
    """Write ``<name>.png``, ``animation.gif`` and ``<name>.json`` of ``num_pairs`` pairs into ``out_dir``; return the paths."""
    check_int("num_pairs", num_pairs, low=1)
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    pairs = sample_pair_factors(data, num_pairs, rng=rng, sampler=sampler, k=k)
    obs = pair_observations(data, pairs, rng=rng)
    first, second = obs[:num_pairs], obs[num_pairs:]
    captions = [[f"pair {i}" for i in range(num_pairs)], pair_captions(pairs.changed, pairs.label)]
    still = save_png(captioned_grid(np.stack([first, second]), captions), out_dir / f"{name}.png")
    frames = np.stack([grid(first[None]), grid(second[None])])
    animation = save_gif(frames, out_dir / "animation.gif", fps=fps)
    record = out_dir / f"{name}.json"
    write_json_atomic(record, {
        "data": data.describe(), "sampler": sampler, "k": int(k), "seed": int(seed),
        "factor_names": list(data.factor_names),
        "pairs": [{"first": f.tolist(), "second": s.tolist(), "changed": np.flatnonzero(c).tolist(), "label": int(lab)}
                  for f, s, c, lab in zip(pairs.first, pairs.second, pairs.changed, pairs.label)],
    })
    return [still, animation, record]


__all__ = ["pair_captions", "pair_pictures"]
