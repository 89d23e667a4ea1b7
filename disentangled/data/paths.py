"""Where data sets live on disk.

The data directory is, in order of precedence:

1. an explicit ``data_dir=`` option (``--data-dir`` on the command line);
2. the environment variable ``DISENTANGLED_DATA``;
3. ``<user cache dir>/disentangled/data`` (e.g. ``~/.cache/disentangled/data`` on Linux).

Official files are looked up under that directory with disentanglement_lib's layout
(``dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz``, ``scream/scream.jpg``, ...),
and also under ``DISENTANGLEMENT_LIB_DATA`` when it is set, so an existing
disentanglement_lib data folder works unchanged. Everything the project generates goes to
the data directory only: ``procedural/`` for rendered data sets, ``cache/`` for conversions.
The variables are read when a data set is built, never at import time.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import DisentangledError

ENV_DATA = "DISENTANGLED_DATA"
#: How to fix a data folder that cannot be written.
WRITABLE_FIX = f"use a writable data folder: set {ENV_DATA} or pass --data-dir"
ENV_DLIB = "DISENTANGLEMENT_LIB_DATA"


def data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The directory the project reads from first and writes generated data to."""
    if explicit is not None:
        return Path(explicit).expanduser()
    env = os.environ.get(ENV_DATA)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("disentangled")) / "data"


def search_dirs(explicit: str | os.PathLike | None = None) -> list[Path]:
    """Directories searched for official files, in order."""
    dirs = [data_dir(explicit)]
    if explicit is None:
        dlib = os.environ.get(ENV_DLIB)
        if dlib:
            dirs.append(Path(dlib).expanduser())
    return dirs


def find_file(relative_candidates: list[str], explicit: str | os.PathLike | None = None) -> Path | None:
    """The first existing file among ``relative_candidates`` under the search directories."""
    for root in search_dirs(explicit):
        for rel in relative_candidates:
            path = root / rel
            if path.is_file():
                return path
    return None


def expected_paths(relative_candidates: list[str], explicit: str | os.PathLike | None = None) -> list[Path]:
    return [root / rel for root in search_dirs(explicit) for rel in relative_candidates]


class DataFileError(DisentangledError, FileNotFoundError):
    """A data file is missing or not what it should be; the message says how to fix it."""


def missing_file_message(
    dataset: str,
    relative_candidates: list[str],
    explicit: str | os.PathLike | None = None,
    *,
    procedural: bool = False,
) -> str:
    lines = [f"The official files of data set {dataset!r} were not found. Expected one of:"]
    lines += [f"  {p}" for p in expected_paths(relative_candidates, explicit)]
    lines.append(
        f"Get them with:  disentangled data download {dataset}  "
        f"(or set {ENV_DATA} / {ENV_DLIB} to a folder that holds them)."
    )
    if procedural:
        lines.append(
            f"Or use the offline look-alike rendered by this project:  data.source=procedural  "
            f"(Python: disentangled.data.get({dataset!r}, source='procedural'); "
            f"CLI: disentangled data prepare {dataset} --source procedural)."
        )
    return "\n".join(lines)
