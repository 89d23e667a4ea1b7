"""Checkpoints in safe formats: weights and optimiser tensors in safetensors, the rest JSON.

A checkpoint is a folder ``checkpoints/step_<N>/`` holding ``tensors.safetensors`` (model
weights under ``model.``, optimiser tensors under ``optim.<name>.``, the torch generator
state) and ``state.json`` (step, optimiser hyperparameters, numpy rng state, log length,
and the SHA-256 of the tensor file). It is written under a temporary name and renamed
when complete; ``checkpoints/latest.json`` is then replaced atomically to point at it. The
newest :data:`KEEP` checkpoints are kept. Nothing is unpickled.

Loading (:func:`load_latest`) takes the newest complete checkpoint whose files read back and
whose tensors match their checksum; a damaged one (truncated, garbage, flipped bytes) is
reported with a warning and the previous one is used. When every checkpoint is damaged the
error names the files and how to start the run again (``train --restart``).

Files are byte-reproducible: identical tensors and metadata give identical files (the
safetensors header's metadata is one JSON entry with sorted keys, because a header with
several entries is written in an arbitrary order).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes, save as save_bytes

from ..io import write_bytes_atomic, write_json_atomic
from ..rundir import DamagedFile

LATEST = "latest.json"
TENSORS = "tensors.safetensors"
STATE = "state.json"
#: Checkpoints kept per run: the newest, and one to fall back to if the newest is damaged.
KEEP = 2


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


def encode(tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> bytes:
    """A safetensors file's bytes, the same bytes for the same tensors and metadata."""
    header = {"disentangled": json.dumps(metadata, sort_keys=True)} if metadata else None
    return save_bytes({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=header)


def decode(path: Path, what: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or :class:`DamagedFile` naming it."""
    try:
        return load_bytes(Path(path).read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as err:  # truncated, garbage or a torn header
        raise DamagedFile(f"{path}: {what} cannot be read ({err})") from err


def save(ckpt_root: Path, step: int, model, optimizers: dict, generator: torch.Generator, extra: dict,
         keep: int = KEEP) -> Path:
    """Write checkpoint ``step`` atomically and keep only the newest ``keep`` of them."""
    ckpt_root.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors["generator_state"] = generator.get_state()
    plain = {"step": step, "optimizers": {}, **extra}
    for name, opt in optimizers.items():
        t, p = optimizer_to_tensors(opt, f"optim.{name}")
        tensors.update(t)
        plain["optimizers"][name] = p
    data = encode(tensors)
    plain["tensors_sha256"] = hashlib.sha256(data).hexdigest()
    final = ckpt_root / f"step_{step:09d}"
    tmp = Path(tempfile.mkdtemp(prefix=".partial_", dir=ckpt_root))
    try:
        (tmp / TENSORS).write_bytes(data)
        (tmp / STATE).write_text(json.dumps(plain, sort_keys=True))
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


def complete(ckpt_root: Path) -> list[Path]:
    """Checkpoint folders that were completely written (renamed into place), newest first."""
    return sorted((p for p in Path(ckpt_root).glob("step_*") if (p / STATE).is_file()), reverse=True)


def latest(ckpt_root: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    found = complete(ckpt_root)
    return found[0] if found else None


def read(path: Path) -> tuple[dict, dict]:
    """``(tensors, state)`` of one checkpoint folder, checked against its checksum, or :class:`DamagedFile`."""
    try:
        plain = json.loads((path / STATE).read_text())
        if not isinstance(plain, dict) or "step" not in plain:
            raise ValueError("no training step recorded")
    except (OSError, ValueError) as err:
        raise DamagedFile(f"{path / STATE}: the checkpoint's state is not readable ({err})") from err
    data = (path / TENSORS).read_bytes() if (path / TENSORS).is_file() else b""
    expected = plain.get("tensors_sha256")
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise DamagedFile(f"{path / TENSORS}: its bytes do not match the checksum in {STATE} (truncated or changed)")
    return decode(path / TENSORS, "the checkpoint's tensors"), plain


def load_latest(ckpt_root: Path, model, optimizers: dict, generator: torch.Generator) -> dict | None:
    """Restore the newest readable checkpoint into ``model``, ``optimizers`` and ``generator``; return its state.

    None when there is no checkpoint. A damaged checkpoint is skipped with a warning for
    the one before it; if none is readable, :class:`DamagedFile` says how to start again.
    """
    found = complete(ckpt_root)
    problems = []
    for path in found:
        try:
            tensors, plain = read(path)
        except DamagedFile as err:
            problems.append(str(err))
            continue
        if problems:
            warnings.warn(f"{'; '.join(problems)}; resuming from the earlier checkpoint {path.name} instead", stacklevel=2)
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        generator.set_state(tensors["generator_state"])
        for name, opt in optimizers.items():
            optimizer_from_tensors(opt, tensors, plain["optimizers"][name], f"optim.{name}")
        return plain
    if problems:
        run_dir = Path(ckpt_root).parent
        raise DamagedFile(
            f"{'; '.join(problems)}. No readable checkpoint is left in {ckpt_root}: start the run again from step 0 with "
            f"`disentangled train ... --out {run_dir} --restart`, or train into a new --out folder"
        )
    return None


def save_weights(model, path: Path, metadata: dict | None = None) -> str:
    """Final model weights as one safetensors file, written atomically; returns its SHA-256."""
    data = encode(dict(model.state_dict()), metadata)
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def load_weights(path: Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Weights written by :func:`save_weights`, checked against ``sha256`` when given."""
    path = Path(path)
    if not path.is_file():
        raise DamagedFile(f"{path}: the final weights are missing; train the run again (`disentangled train ... --restart`)")
    data = path.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise DamagedFile(f"{path}: its bytes do not match the checksum recorded when training finished "
                          "(truncated or changed); train the run again (`disentangled train ... --restart`)")
    try:
        return load_bytes(data)
    except (SafetensorError, ValueError, RuntimeError) as err:
        raise DamagedFile(f"{path}: the final weights cannot be read ({err}); "
                          "train the run again (`disentangled train ... --restart`)") from err
