"""Download the official data files, verify their checksums, place them as the loaders expect.

``disentangled data download NAME`` fetches every file of a data set into the data
directory (see :mod:`disentangled.data.paths`), with disentanglement_lib's layout. Each
file is streamed to a ``.partial`` file beside its destination, resumed with an HTTP range
request if a previous attempt was cut off, checked against its published checksum, and
only then renamed into place, so an interrupted download never looks complete. Gzipped
files are unpacked the same way. Links are the current ones (the MPI3D files moved in
2024); a dead link gives an error that names it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DisentangledError
from .paths import data_dir
from ..errors import ParameterError


@dataclass(frozen=True)
class Remote:
    """One file to fetch: where from, where to (relative to the data directory), checksum."""

    url: str
    target: str
    algorithm: str | None = None  # "sha256" or "md5"; None where no checksum is published
    digest: str | None = None
    unpack: str | None = None  # "gunzip" or "cars_tar"


_NORB = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
_NORB_SHA256 = {
    "5x46789x9x18x6x2x96x96-training-dat": "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873",
    "5x46789x9x18x6x2x96x96-training-cat": "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa",
    "5x46789x9x18x6x2x96x96-training-info": "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32",
    "5x01235x9x18x6x2x96x96-testing-dat": "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474",
    "5x01235x9x18x6x2x96x96-testing-cat": "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff",
    "5x01235x9x18x6x2x96x96-testing-info": "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2",
}
_DSPRITES = Remote(
    "https://github.com/deepmind/dsprites-dataset/raw/master/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
    "dsprites/dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
    "md5",
    "7da33b31b13a06f4b04a70402ce90c2e",
)
_SCREAM = Remote("https://upload.wikimedia.org/wikipedia/commons/f/f4/The_Scream.jpg", "scream/scream.jpg")
_MPI3D = "https://huggingface.co/datasets/waleedgondal/mpi3d/resolve/main/"

REMOTES: dict[str, tuple[Remote, ...]] = {
    "dsprites_full": (_DSPRITES,),
    "dsprites_noshape": (_DSPRITES,),
    "color_dsprites": (_DSPRITES,),
    "noisy_dsprites": (_DSPRITES,),
    "scream_dsprites": (_DSPRITES, _SCREAM),
    "smallnorb": tuple(
        Remote(f"{_NORB}smallnorb-{stem}.mat.gz", f"small_norb/smallnorb-{stem}.mat", "sha256", digest, "gunzip")
        for stem, digest in _NORB_SHA256.items()
    ),
    "cars3d": (
        Remote(
            "http://www.scottreed.info/files/nips2015-analogy-data.tar.gz",
            "cars/list.txt",
            "md5",
            "4e866a7919c1beedf53964e6f7a23686",
            "cars_tar",
        ),
    ),
    "shapes3d": (
        Remote(
            "https://storage.googleapis.com/3d-shapes/3dshapes.h5",
            "3dshapes/3dshapes.h5",
            "sha256",
            "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785",
        ),
    ),
    # The 2024 files have no published checksum (the 2025 "corrected" mpi3d_real changed it).
    "mpi3d_toy": (Remote(f"{_MPI3D}mpi3d_toy.npz", "mpi3d_toy/mpi3d_toy.npz"),),
    "mpi3d_realistic": (Remote(f"{_MPI3D}mpi3d_realistic.npz", "mpi3d_realistic/mpi3d_realistic.npz"),),
    "mpi3d_real": (Remote(f"{_MPI3D}mpi3d_real.npz", "mpi3d_real/mpi3d_real.npz"),),
}


class DownloadError(DisentangledError, RuntimeError):
    pass


def file_digest(path: str | os.PathLike, algorithm: str, chunk: int = 1 << 20) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(name: str, *, root: str | os.PathLike | None = None, progress: bool = True) -> list[Path]:
    """Fetch every file of data set ``name``; return the paths written (or already present)."""
    if name not in REMOTES:
        from .base import close_matches

        raise ParameterError(f"no download is known for {name!r}; downloadable: {', '.join(REMOTES)}." + close_matches(name, list(REMOTES)))
    base = data_dir(root)
    return [fetch(remote, base, progress=progress) for remote in REMOTES[name]]


def fetch(remote: Remote, base: Path, *, progress: bool = True) -> Path:
    """Download one file into ``base`` (resuming a partial one), verify, unpack, rename."""
    final = base / remote.target
    if final.exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    raw = final.parent / (Path(remote.url).name + ".partial")
    _stream(remote.url, raw, progress=progress)
    if remote.algorithm:
        got = file_digest(raw, remote.algorithm)
        if got != remote.digest:
            raw.unlink()
            raise DownloadError(
                f"{remote.url}: {remote.algorithm} checksum mismatch (expected {remote.digest}, got {got}); "
                f"the partial file was removed, run the command again"
            )
    if remote.unpack == "gunzip":
        tmp = final.with_name(final.name + ".partial")
        with gzip.open(raw, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        os.replace(tmp, final)
        raw.unlink()
    elif remote.unpack == "cars_tar":
        _unpack_cars(raw, final.parent)
        raw.unlink()
    else:
        os.replace(raw, final)
    return final


def _unpack_cars(archive: Path, cars_dir: Path) -> None:
    """Extract ``data/cars/*`` of Reed et al.'s archive into ``cars/``; ``list.txt`` last."""
    with tarfile.open(archive, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.startswith("data/cars/")]
        if not members:
            raise DownloadError(f"{archive}: no data/cars/ folder inside; is it nips2015-analogy-data.tar.gz?")
        members.sort(key=lambda m: m.name.endswith("list.txt"))
        for member in members:
            src = tar.extractfile(member)
            dest = cars_dir / Path(member.name).name
            tmp = dest.with_name(dest.name + ".partial")
            with open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(tmp, dest)


def _stream(url: str, dest: Path, *, progress: bool) -> None:
    from tqdm import tqdm

    have = dest.stat().st_size if dest.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "disentangled"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the partial file is already whole
            return
        raise DownloadError(f"{url}: the server answered HTTP {err.code} ({err.reason}); the link may be dead") from err
    except (urllib.error.URLError, OSError) as err:
        raise DownloadError(f"{url}: could not connect ({err}); check the network and try again") from err
    with response:
        resumed = have and getattr(response, "status", 200) == 206
        mode = "ab" if resumed else "wb"
        total = response.headers.get("Content-Length")
        total = int(total) + (have if resumed else 0) if total else None
        with open(dest, mode) as fh, tqdm(
            total=total, initial=have if resumed else 0, unit="B", unit_scale=True,
            desc=Path(url).name, disable=not progress,
        ) as bar:
            while block := response.read(1 << 20):
                fh.write(block)
                bar.update(len(block))
