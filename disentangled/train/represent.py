"""Representation functions of a trained run: ``mean`` and ``sampled`` (seeded).

A representation maps observations float32 ``[N, C, H, W]`` in [0, 1] to codes float32
``[N, D]``: the encoder mean, or one draw ``mean + exp(logvar / 2) * eps`` from the
encoder's Gaussian. Unlike the reference, whose sampled representation was unseeded, the
sampled one here draws from its own seeded generator, so scores are reproducible.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data.paths import DataFileError
from ..errors import ParameterError
from ..metrics.sampling import TwoStageRepresentation
from .checkpoint import load_weights

KINDS = ("mean", "sampled")


def load_model(run_dir: str | Path):
    """The trained model of a finished run (weights from ``model.safetensors``) and its config."""
    from ..rundir import RunDir
    from .loop import build

    run = RunDir(run_dir)
    if not run.is_done:
        raise DataFileError(f"{run.path}: no finished training run here ({run.done_file.name} is missing); train it first or resume it")
    config = run.config()
    _, model = build(config, data=_ShapeOnly(config))
    model.load_state_dict(load_weights(run.weights_file, run.done_record().get("weights_sha256")))
    model.eval()
    return model, config


class _ShapeOnly:
    """Just enough of a data set to build the model: its observation shape, no files read."""

    def __init__(self, config):
        from .. import data

        self.observation_shape = data.get(config.data.name, **config.data.options()).observation_shape


def resolve_device(device) -> torch.device:
    """``device`` (None: the CPU; ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...) as a usable ``torch.device``."""
    if device is None:
        return torch.device("cpu")
    try:
        out = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ParameterError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}; devices here: {present_devices()}") from err
    if out.type not in ("cpu", "cuda"):
        raise ParameterError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}; devices here: {present_devices()}")
    if out.type == "cuda" and (not torch.cuda.is_available() or (out.index or 0) >= torch.cuda.device_count()):
        raise ParameterError(f"device must be one of the devices here ({present_devices()}), got {device!r}")
    return out


def present_devices() -> str:
    """The devices this PyTorch can use, e.g. ``cpu, cuda:0 (NVIDIA H200)``."""
    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    return ", ".join(found)


# Images per forward pass. On the CPU the encoder's throughput falls by half past about
# 128 images (its activations leave the cache; docs/benchmarks.md), and its codes do not
# depend on the batch; on a GPU large batches pay.
CPU_BATCH = 32
GPU_BATCH = 4096
# The dense layer's matrix product takes other kernels for a few rows, which round
# differently (with the study's conv encoder on a 2-core CPU: batches of 1-3 images on one
# thread, 1-11 but 4 and 8 on two); from 12 images on an image's code was the same in every
# batch measured, up to 600. A last batch smaller than this is padded with copies of its last image.
MIN_BATCH = 16
NOISE_BLOCK = 4096  # rows of noise the sampled representation draws at a time


def default_batch_size(device: torch.device) -> int:
    return CPU_BATCH if device.type == "cpu" else GPU_BATCH


class GaussianEncoder:
    """``obs [N, C, H, W] -> (mean [N, D], logvar [N, D])`` as numpy float32, in batches, no gradients."""

    deterministic = True

    def __init__(self, model, *, device=None, batch_size: int | None = None):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.batch_size = batch_size or default_batch_size(self.device)
        # one object, so representations built on this encoder share an encoding cache
        self.features = self._features

    @torch.no_grad()
    def __call__(self, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = torch.as_tensor(np.asarray(observations, dtype=np.float32))
        means, logvars = [], []
        for start in range(0, x.shape[0], self.batch_size):
            chunk = x[start : start + self.batch_size]
            rows = chunk.shape[0]
            if rows < MIN_BATCH:
                chunk = torch.cat([chunk, chunk[-1:].expand(MIN_BATCH - rows, *chunk.shape[1:])])
            mean, logvar = self.model.encode(chunk.to(self.device))
            means.append(mean[:rows].float().cpu())
            logvars.append(logvar[:rows].float().cpu())
        if not means:
            empty = np.zeros((0, self.model.encoder.num_latent), np.float32)
            return empty, empty.copy()
        return torch.cat(means).numpy(), torch.cat(logvars).numpy()

    def _features(self, observations: np.ndarray) -> np.ndarray:
        """``[N, 2D]``: the mean, then the log-variance."""
        return np.concatenate(self(observations), axis=1)


class Representation(TwoStageRepresentation):
    """Callable ``obs [N, C, H, W] -> codes [N, D]``: the encoder's mean, or one draw from its Gaussian.

    Its ``encoding`` is the encoder's mean and log-variance (``GaussianEncoder.features``),
    the same object for every representation built with ``encoder=`` the same
    :class:`GaussianEncoder`, so an evaluation encodes each image once for both kinds. The
    sampled representation's noise is one stream from its seeded generator, drawn in blocks
    of ``NOISE_BLOCK`` rows and given out row by row in request order: the codes of a
    sequence of images do not depend on how it is split into calls or batches. ``device``:
    where the encoder runs (default: the CPU); the noise and the sum are on the CPU, so
    both devices draw the same noise.
    """

    def __init__(self, model, kind: str = "mean", *, seed: int = 0, batch_size: int | None = None, device=None,
                 encoder: GaussianEncoder | None = None):
        if kind not in KINDS:
            raise ParameterError(f"representation must be one of {list(KINDS)}, got {kind!r}")
        self.kind = kind
        self.gaussian = encoder or GaussianEncoder(model, device=device, batch_size=batch_size)
        self.model, self.device = self.gaussian.model, self.gaussian.device
        self.encoding = self.gaussian.features
        self.generator = torch.Generator().manual_seed(seed)
        self._noise = torch.zeros((0, 0))

    @property
    def deterministic(self) -> bool:
        return self.kind == "mean"

    @property
    def batch_size(self) -> int:
        """Images per forward pass of the encoder."""
        return self.gaussian.batch_size

    def finish(self, features: np.ndarray) -> np.ndarray:
        d = features.shape[1] // 2
        if self.kind == "mean":
            return np.ascontiguousarray(features[:, :d])
        mean, logvar = torch.from_numpy(features[:, :d]), torch.from_numpy(features[:, d:])
        return (mean + torch.exp(logvar / 2) * self._draw(features.shape[0], d)).numpy()

    def _draw(self, rows: int, dim: int) -> torch.Tensor:
        parts = []
        while rows > 0:
            if self._noise.shape[0] == 0:
                self._noise = torch.randn((NOISE_BLOCK, dim), generator=self.generator)
            take = self._noise[:rows]
            self._noise = self._noise[rows:]
            parts.append(take)
            rows -= take.shape[0]
        return torch.cat(parts) if parts else torch.zeros((0, dim))


def representation(run_dir: str | Path, kind: str = "mean", *, seed: int = 0, device=None) -> Representation:
    model, _ = load_model(run_dir)
    return Representation(model, kind, seed=seed, device=device)
