"""Atomic file writes: a result is either complete on disk or absent, never half-written."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import DisentangledError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block ends.

    If the block raises, the temporary file is removed and ``path`` is untouched. The
    temporary name keeps ``path``'s suffix (or ``suffix``) so libraries that look at the
    extension (numpy's ``.npy``/``.npz``, h5py) write the right format.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".partial{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; a result is as readable as any file
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


class NotWritableError(DisentangledError, PermissionError):
    """A folder that must receive a result cannot be written; the message names it."""


def check_writable(folder: str | os.PathLike, *, fix: str = "") -> Path:
    """Create ``folder`` if needed and make sure a file can be written in it, before long work starts."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise NotWritableError(f"{folder}: cannot write there ({err.strerror or err}){'; ' + fix if fix else ''}") from err
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike, obj, *, indent: int = 2) -> Path:
    text = json.dumps(obj, indent=indent, sort_keys=True, default=_json_default) + "\n"
    return write_bytes_atomic(path, text.encode("utf-8"))


def _json_default(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")
