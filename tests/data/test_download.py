"""The downloader's verify, unpack and atomic-rename logic, on local file:// links."""

import gzip
import hashlib
import io
import tarfile

import pytest

from disentangled.data import download as dl


def test_verified_file_is_placed(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"dsprites" * 1000)
    remote = dl.Remote(src.as_uri(), "dsprites/file.npz", "md5", hashlib.md5(src.read_bytes()).hexdigest())
    path = dl.fetch(remote, tmp_path / "root", progress=False)
    assert path.read_bytes() == src.read_bytes()
    assert not list((tmp_path / "root" / "dsprites").glob("*.partial"))


def test_checksum_mismatch_leaves_nothing(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"corrupted")
    remote = dl.Remote(src.as_uri(), "dsprites/file.npz", "sha256", "0" * 64)
    with pytest.raises(dl.DownloadError, match="sha256 checksum mismatch"):
        dl.fetch(remote, tmp_path / "root", progress=False)
    assert list((tmp_path / "root" / "dsprites").iterdir()) == []


def test_gunzip_after_verification(tmp_path):
    payload = b"\x55\x4c\x3d\x1e" + bytes(100)
    src = tmp_path / "x.mat.gz"
    src.write_bytes(gzip.compress(payload))
    remote = dl.Remote(src.as_uri(), "small_norb/x.mat", "sha256", hashlib.sha256(src.read_bytes()).hexdigest(), "gunzip")
    path = dl.fetch(remote, tmp_path / "root", progress=False)
    assert path.read_bytes() == payload


def test_cars_archive_is_unpacked_into_cars(tmp_path):
    src = tmp_path / "nips2015-analogy-data.tar.gz"
    with tarfile.open(src, "w:gz") as tar:
        for name, data in [("data/cars/list.txt", b"car_001_mesh\n"), ("data/cars/car_001_mesh.mat", b"mat"),
                           ("data/sprites/skip.mat", b"no")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    remote = dl.Remote(src.as_uri(), "cars/list.txt", "md5", hashlib.md5(src.read_bytes()).hexdigest(), "cars_tar")
    dl.fetch(remote, tmp_path / "root", progress=False)
    assert sorted(p.name for p in (tmp_path / "root" / "cars").iterdir()) == ["car_001_mesh.mat", "list.txt"]


def test_dead_link_is_named(tmp_path):
    remote = dl.Remote((tmp_path / "gone.npz").as_uri(), "x/gone.npz")
    with pytest.raises(dl.DownloadError, match="gone.npz"):
        dl.fetch(remote, tmp_path / "root", progress=False)


def test_unknown_name():
    with pytest.raises(ValueError, match="Did you mean 'shapes3d'"):
        dl.download("shapes3", progress=False)
