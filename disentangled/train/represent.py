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


class Representation:
    """Callable ``obs [N, C, H, W] -> codes [N, D]``, encoding in batches without gradients.

    ``device``: where the encoder runs (default: the CPU). On a GPU the codes agree with
    the CPU's to float32 rounding; the sampled representation's noise is drawn on the CPU
    from the same seeded generator either way, so both devices draw the same noise.
    """

    def __init__(self, model, kind: str = "mean", *, seed: int = 0, batch_size: int | None = None, device=None):
        if kind not in KINDS:
            raise ParameterError(f"representation must be one of {list(KINDS)}, got {kind!r}")
        self.device = resolve_device(device)
        self.model, self.kind = model.to(self.device), kind
        self.batch_size = batch_size or (256 if self.device.type == "cpu" else 4096)
        self.generator = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def __call__(self, observations: np.ndarray) -> np.ndarray:
        x = torch.as_tensor(np.asarray(observations, dtype=np.float32))
        out = []
        for start in range(0, x.shape[0], self.batch_size):
            mean, logvar = self.model.encode(x[start : start + self.batch_size].to(self.device))
            if self.kind == "sampled":
                eps = torch.randn(mean.shape, generator=self.generator, dtype=mean.dtype).to(self.device)
                mean = mean + torch.exp(logvar / 2) * eps
            out.append(mean.cpu())
        if not out:
            return np.zeros((0, self.model.encoder.num_latent if hasattr(self.model.encoder, "num_latent") else 0), np.float32)
        return torch.cat(out).numpy()


def representation(run_dir: str | Path, kind: str = "mean", *, seed: int = 0, device=None) -> Representation:
    model, _ = load_model(run_dir)
    return Representation(model, kind, seed=seed, device=device)
