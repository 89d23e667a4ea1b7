"""Pictures of a trained model: reconstructions, samples, latent traversals, animations.

``visualize(run_dir)`` writes into ``RUN_DIR/visualizations/`` what disentanglement_lib's
``visualize_model`` writes (PNG instead of JPEG), seeded and atomically::

    reconstructions.png          64 observations, each beside its reconstruction (8 rows of 8 pairs)
    samples.png                  64 decoded N(0, I) codes (8 x 8)
    traversals/base<k>.png       one row per latent dimension, traversed from the k-th base code
    traversals/dim<j>.png        latent dimension j traversed from each of the base codes
    animated_traversals/<kind>_cycle<k>.gif
                                 every dimension cycling out and back, one panel per dimension,
                                 for each kind of range (below) and each of the first bases
    weak/pairs.png, weak/animation.gif, weak/pairs.json
                                 a weakly-supervised run only: pairs as it trained on them
                                 (:mod:`disentangled.viz.pairs`)
    manifest.json                settings, files and the latent statistics; written last

Images are ``sigmoid(decoder logits)`` (both reconstruction losses of the study use logits),
converted to uint8 by :func:`~disentangled.viz.grids.to_hwc_uint8`. The base codes are the
encoder means of ``num_points`` fresh observations, and the traversal ranges come from those
encoded observations, as in the reference:

* ``std_gaussian``: quantiles of N(0, 1), probabilities in [0.001, 0.999];
* ``fitted_gaussian``: quantiles of N(m_j, s_j) with m_j the mean of the means of dimension
  j and s_j = sqrt(mean(exp(logvar_j)) + var(means_j)), the aggregate posterior's moments;
* ``fixed_interval``: linear over [-2, 2];
* ``conf_interval``: linear over m_j +- 2 s_j;
* ``minmax_interval``: linear over the minimum and maximum of the encoded means.

The static traversals (``base<k>.png``, ``dim<j>.png``) use ``traversal_range``: ``fitted``
(m_j +- 2 s_j, the default), ``minmax``, ``fixed`` ([-2, 2]) or ``unit`` ([-1, 1], the
reference's static traversals). Rows are labelled with each dimension's average KL divergence
to the prior, which tells the active dimensions (large KL) from the collapsed ones (~0).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import UnknownNameError, check_choice, check_int
from ..io import write_json_atomic
from .grids import captioned_grid, grid, labelled_grid, save_gif, save_png

MANIFEST = "manifest.json"
ANIMATIONS = ("std_gaussian", "fitted_gaussian", "fixed_interval", "conf_interval", "minmax_interval")
TRAVERSAL_RANGES = ("fitted", "minmax", "fixed", "unit")
PROBABILITY_CLIP = (0.001, 0.999)


# -- the latent statistics and the cycles (pure functions) -----------------------------------


def latent_statistics(mean: np.ndarray, logvar: np.ndarray) -> dict[str, np.ndarray]:
    """Per-dimension moments of the encoded observations ``mean, logvar [N, D]``.

    ``loc``/``scale``: the Gaussian fitted to the aggregate posterior (mean of the means;
    sqrt of mean variance plus variance of the means); ``min``/``max`` of the means; ``kl``:
    the average KL(q(z_j | x) || N(0, 1)) in nats.
    """
    mean = np.asarray(mean, dtype=np.float64)
    logvar = np.asarray(logvar, dtype=np.float64)
    var = np.exp(logvar)
    return {
        "loc": mean.mean(axis=0),
        "scale": np.sqrt(var.mean(axis=0) + mean.var(axis=0)),
        "min": mean.min(axis=0),
        "max": mean.max(axis=0),
        "kl": (0.5 * (mean**2 + var - 1.0 - logvar)).mean(axis=0),
    }


def _triangle(phase: np.ndarray) -> np.ndarray:
    """0 -> 1 -> 0 as ``phase`` goes 0 -> 0.5 -> 1 (periodic)."""
    u = np.mod(phase, 1.0)
    return 1.0 - np.abs(1.0 - 2.0 * u)


def cycle_interval(start: float, num_frames: int, low: float, high: float) -> np.ndarray:
    """``num_frames`` values going from ``start`` up to ``high``, down to ``low`` and back, linearly."""
    if not high > low:
        return np.full(num_frames, float(start))
    p0 = float(np.clip((start - low) / (high - low), 0.0, 1.0))
    phase = p0 / 2.0 + np.arange(num_frames) / num_frames
    return low + (high - low) * _triangle(phase)


def cycle_gaussian(start: float, num_frames: int, loc: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """As :func:`cycle_interval` in the probability space of N(loc, scale): through its quantiles."""
    from scipy.stats import norm

    scale = max(float(scale), 1e-12)
    lo, hi = PROBABILITY_CLIP
    p0 = float(np.clip(norm.cdf(start, loc, scale), lo, hi))
    phase = p0 / 2.0 + np.arange(num_frames) / num_frames
    probs = np.clip(_triangle(phase), lo, hi)
    return norm.ppf(probs, loc, scale)


def animation_values(kind: str, base: np.ndarray, stats: dict, num_frames: int) -> np.ndarray:
    """``[D, num_frames]``: the values dimension j takes in the frames of a ``kind`` cycle."""
    out = []
    for j, start in enumerate(np.asarray(base, dtype=np.float64)):
        loc, scale = stats["loc"][j], stats["scale"][j]
        if kind == "std_gaussian":
            values = cycle_gaussian(start, num_frames)
        elif kind == "fitted_gaussian":
            values = cycle_gaussian(start, num_frames, loc, scale)
        elif kind == "fixed_interval":
            values = cycle_interval(start, num_frames, -2.0, 2.0)
        elif kind == "conf_interval":
            values = cycle_interval(start, num_frames, loc - 2 * scale, loc + 2 * scale)
        elif kind == "minmax_interval":
            values = cycle_interval(start, num_frames, stats["min"][j], stats["max"][j])
        else:
            raise UnknownNameError("animation", kind, ANIMATIONS)
        out.append(values)
    return np.stack(out)


def traversal_values(stats: dict, traversal_range: str, num_values: int) -> np.ndarray:
    """``[D, num_values]`` evenly spaced values per dimension for the static traversals."""
    d = len(stats["loc"])
    if traversal_range == "fitted":
        low, high = stats["loc"] - 2 * stats["scale"], stats["loc"] + 2 * stats["scale"]
    elif traversal_range == "minmax":
        low, high = stats["min"], stats["max"]
    elif traversal_range == "fixed":
        low, high = np.full(d, -2.0), np.full(d, 2.0)
    elif traversal_range == "unit":
        low, high = np.full(d, -1.0), np.full(d, 1.0)
    else:
        check_choice("traversal_range", traversal_range, TRAVERSAL_RANGES)
    steps = np.linspace(0.0, 1.0, num_values)
    return low[:, None] + (high - low)[:, None] * steps[None, :]


# -- the model -------------------------------------------------------------------------------


@torch.no_grad()
def encode(model, observations: np.ndarray, *, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    x = torch.as_tensor(np.asarray(observations, dtype=np.float32))
    means, logvars = [], []
    for start in range(0, x.shape[0], batch_size):
        mean, logvar = model.encode(x[start : start + batch_size])
        means.append(mean)
        logvars.append(logvar)
    return torch.cat(means).numpy(), torch.cat(logvars).numpy()


@torch.no_grad()
def decode(model, codes: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """Images in [0, 1]: ``sigmoid`` of the decoder's logits, ``[N, C, H, W]`` float32."""
    z = torch.as_tensor(np.asarray(codes, dtype=np.float32))
    out = [torch.sigmoid(model.decode(z[s : s + batch_size])) for s in range(0, z.shape[0], batch_size)]
    return torch.cat(out).numpy()


def _panel_grid(n: int) -> tuple[int, int]:
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def _as_panels(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """``[n, C, H, W]`` -> ``[rows, cols, C, H, W]``, empty (NaN) cells after the last image."""
    n, c, h, w = images.shape
    out = np.full((rows * cols, c, h, w), np.nan, dtype=np.float32)
    out[:n] = images
    return out.reshape(rows, cols, c, h, w)


def visualize_model(
    model,
    data,
    out_dir: str | Path,
    *,
    seed: int = 0,
    num_points: int = 64,
    num_animations: int = 5,
    num_frames: int = 20,
    fps: float = 10.0,
    num_values: int = 11,
    traversal_range: str = "fitted",
    animations: tuple[str, ...] = ANIMATIONS,
    title: str = "",
) -> dict:
    """Write the pictures of ``model`` on ``data`` into ``out_dir``; return the manifest (not written)."""
    check_choice("traversal_range", traversal_range, TRAVERSAL_RANGES)
    for kind in animations:
        if kind not in ANIMATIONS:
            raise UnknownNameError("animation", kind, ANIMATIONS)
    check_int("num_points", num_points, low=2, why="the traversal ranges are fitted on them")
    check_int("num_frames", num_frames, low=2)
    check_int("num_values", num_values, low=2)
    out_dir = Path(out_dir)
    streams = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(streams[0])
    posterior = torch.Generator().manual_seed(int(streams[1].generate_state(1)[0]))
    prior = torch.Generator().manual_seed(int(streams[2].generate_state(1)[0]))
    files: list[str] = []

    def rel(path: Path) -> None:
        files.append(path.relative_to(out_dir).as_posix())

    observations = np.asarray(data.sample_observations(num_points, rng=rng), dtype=np.float32)
    mean, logvar = encode(model, observations)
    stats = latent_statistics(mean, logvar)
    num_latent = mean.shape[1]

    # reconstructions through a sampled code, as the reference draws them
    eps = torch.randn(mean.shape, generator=posterior).numpy()
    recon = decode(model, mean + np.exp(logvar / 2) * eps)
    n_pairs = min(num_points, 64)
    pairs_per_row = min(8, n_pairs)
    rows = math.ceil(n_pairs / pairs_per_row)
    cells = np.full((rows * pairs_per_row, 2) + observations.shape[1:], np.nan, dtype=np.float32)
    cells[:n_pairs, 0] = observations[:n_pairs]
    cells[:n_pairs, 1] = recon[:n_pairs]
    cells = cells.reshape((rows, pairs_per_row * 2) + observations.shape[1:])
    rel(save_png(grid(cells), out_dir / "reconstructions.png"))

    # samples of the prior
    z = torch.randn((64, num_latent), generator=prior).numpy()
    rel(save_png(grid(decode(model, z).reshape((8, 8) + observations.shape[1:])), out_dir / "samples.png"))

    # static traversals
    num_bases = min(num_animations if num_animations > 0 else 1, num_points)
    values = traversal_values(stats, traversal_range, num_values)  # [D, V]
    bases = mean[:num_bases].astype(np.float64)  # [B, D]
    codes = np.repeat(np.repeat(bases[:, None, None, :], num_latent, axis=1), num_values, axis=2)  # [B, D, V, D]
    for j in range(num_latent):
        codes[:, j, :, j] = values[j]
    images = decode(model, codes.reshape(-1, num_latent)).reshape((num_bases, num_latent, num_values) + observations.shape[1:])
    labels = [f"z{j}  KL {stats['kl'][j]:.2f}" for j in range(num_latent)]
    head = f"{title} " if title else ""
    for k in range(num_bases):
        path = out_dir / "traversals" / f"base{k}.png"
        rel(save_png(labelled_grid(images[k], labels, title=f"{head}base code {k}, range {traversal_range}"), path))
    for j in range(num_latent):
        path = out_dir / "traversals" / f"dim{j}.png"
        span = f"[{values[j, 0]:.2f}, {values[j, -1]:.2f}]"
        base_labels = [f"base {k}" for k in range(num_bases)]
        rel(save_png(labelled_grid(images[:, j], base_labels, title=f"{head}z{j} over {span}, KL {stats['kl'][j]:.2f}"), path))

    # animations: one panel per dimension, that dimension cycling
    panel_rows, panel_cols = _panel_grid(num_latent)
    captions = [[f"z{r * panel_cols + c}" if r * panel_cols + c < num_latent else "" for c in range(panel_cols)] for r in range(panel_rows)]
    for k in range(min(num_animations, num_points)):
        for kind in animations:
            cycle = animation_values(kind, mean[k], stats, num_frames)  # [D, T]
            frames_codes = np.repeat(np.repeat(mean[k][None, None, :].astype(np.float64), num_latent, axis=0), num_frames, axis=1)
            for j in range(num_latent):
                frames_codes[j, :, j] = cycle[j]
            frames_images = decode(model, frames_codes.reshape(-1, num_latent)).reshape((num_latent, num_frames) + observations.shape[1:])
            frames = np.stack([captioned_grid(_as_panels(frames_images[:, t], panel_rows, panel_cols), captions) for t in range(num_frames)])
            rel(save_gif(frames, out_dir / "animated_traversals" / f"{kind}_cycle{k}.gif", fps=fps))

    return {
        "files": files,
        "num_latent": num_latent,
        "latent": {key: [float(v) for v in value] for key, value in stats.items()},
        "pixel_range": [float(min(observations.min(), recon.min())), float(max(observations.max(), recon.max()))],
    }


def settings(**overrides) -> dict:
    """The settings of :func:`visualize` (the defaults updated with ``overrides``), as saved."""
    base = {
        "seed": 0,
        "num_points": 64,
        "num_animations": 5,
        "num_frames": 20,
        "fps": 10.0,
        "num_values": 11,
        "traversal_range": "fitted",
        "animations": list(ANIMATIONS),
    }
    for key in overrides:
        if key not in base:
            raise UnknownNameError("visualisation setting", key, sorted(base))
    base.update({k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items() if v is not None})
    base["fps"] = float(base["fps"])
    return base


def visualize(run_dir: str | Path, output_dir: str | Path | None = None, *, overwrite: bool = False, **options) -> dict:
    """Pictures of a finished run, into ``output_dir`` (default ``RUN_DIR/visualizations``).

    Skipped, returning the saved manifest, when the manifest exists with the same settings
    and ``overwrite`` is false. Returns the manifest (``files`` relative to the output folder).
    """
    from .. import data as data_module
    from ..train.represent import load_model

    from ..rundir import RunDir

    run_dir = Path(run_dir)
    out_dir = Path(output_dir) if output_dir is not None else RunDir(run_dir).pictures
    wanted = settings(**options)
    manifest_path = out_dir / MANIFEST
    if manifest_path.is_file() and not overwrite:
        saved = json.loads(manifest_path.read_text())
        if saved.get("settings") == wanted and all((out_dir / f).is_file() for f in saved.get("files", [])):
            return saved
    model, config = load_model(run_dir)
    data = data_module.get(config.data.name, **config.data.options())
    objective = dict(config.objective)
    title = f"{objective.get('name', '')} seed {config.seed}"
    run_settings = {**wanted, "animations": tuple(wanted["animations"])}
    manifest = visualize_model(model, data, out_dir, title=title, **run_settings)
    if config.data.pairs is not None:  # a weakly-supervised run: also the pairs it trained on (weak/, as the reference)
        from .pairs import pair_pictures

        drawn = pair_pictures(data, out_dir / "weak", sampler=config.data.pairs.sampler, k=config.data.pairs.k,
                              seed=wanted["seed"])
        manifest["files"] += [path.relative_to(out_dir).as_posix() for path in drawn]
    manifest = {"run_id": config.run_id, "data": config.data.name, "settings": wanted, **manifest}
    write_json_atomic(manifest_path, manifest)
    return manifest
