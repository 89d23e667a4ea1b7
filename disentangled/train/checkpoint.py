"""Checkpoints in safe formats: weights and optimiser tensors in safetensors, the rest JSON.

A checkpoint is a folder ``checkpoints/step_<N>/`` holding ``tensors.safetensors`` (model
weights under ``model.``, optimiser tensors under ``optim.<name>.``, the torch generator
state) and ``state.json`` (step, optimiser hyperparameters, numpy rng state, log length).
It is written under a temporary name and renamed when complete; ``checkpoints/latest.json``
is then replaced atomically to point at it. A crash at any moment leaves the previous
checkpoint intact and ``latest.json`` pointing at a complete folder. Nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..io import write_json_atomic

LATEST = "latest.json"


def optimizer_to_tensors(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    """Split an optimiser's state into tensors (for safetensors) and plain JSON data."""
    sd = optimizer.state_dict()
    tensors, plain = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, state in sd["state"].items():
        keys = {}
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{idx}.{key}"] = value.detach().cpu().contiguous()
                keys[key] = "tensor"
            else:
                keys[key] = value
        plain["state"][str(idx)] = keys
    return tensors, plain


def optimizer_from_tensors(optimizer: torch.optim.Optimizer, tensors: dict, plain: dict, prefix: str) -> None:
    state = {}
    for idx, keys in plain["state"].items():
        state[int(idx)] = {k: (tensors[f"{prefix}.{idx}.{k}"] if v == "tensor" else v) for k, v in keys.items()}
    optimizer.load_state_dict({"state": state, "param_groups": plain["param_groups"]})


def save(
    ckpt_root: Path,
    step: int,
    model: torch.nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    generator: torch.Generator,
    extra: dict,
    keep: int = 1,
) -> Path:
    """Write checkpoint ``step`` atomically and keep only the newest ``keep`` of them."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors["generator_state"] = generator.get_state()
    plain = {"step": step, "optimizers": {}, **extra}
    for name, opt in optimizers.items():
        t, p = optimizer_to_tensors(opt, f"optim.{name}")
        tensors.update(t)
        plain["optimizers"][name] = p
    final = ckpt_root / f"step_{step:09d}"
    tmp = Path(tempfile.mkdtemp(prefix=".partial_", dir=ckpt_root))
    try:
        save_file(tensors, str(tmp / "tensors.safetensors"))
        (tmp / "state.json").write_text(json.dumps(plain, sort_keys=True))
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_json_atomic(ckpt_root / LATEST, {"step": step, "path": final.name})
    for old in sorted(ckpt_root.glob("step_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    for partial in ckpt_root.glob(".partial_*"):
        shutil.rmtree(partial, ignore_errors=True)
    return final


def latest(ckpt_root: Path) -> Path | None:
    pointer = ckpt_root / LATEST
    if not pointer.is_file():
        return None
    path = ckpt_root / json.loads(pointer.read_text())["path"]
    return path if (path / "state.json").is_file() else None


def load(path: Path, model: torch.nn.Module, optimizers: dict[str, torch.optim.Optimizer], generator: torch.Generator) -> dict:
    """Restore model, optimisers and generator in place; return the JSON state."""
    tensors = load_file(str(path / "tensors.safetensors"))
    plain = json.loads((path / "state.json").read_text())
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    generator.set_state(tensors["generator_state"])
    for name, opt in optimizers.items():
        optimizer_from_tensors(opt, tensors, plain["optimizers"][name], f"optim.{name}")
    return plain


def save_weights(model: torch.nn.Module, path: Path, metadata: dict | None = None) -> Path:
    """Final model weights as one safetensors file, written atomically."""
    from ..io import atomic_path

    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            str(tmp),
            metadata={k: str(v) for k, v in (metadata or {}).items()},
        )
    return path
