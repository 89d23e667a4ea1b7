"""MPI3D: the npz read by memory map, factor sizes from the image count, errors."""

import numpy as np
import pytest

from disentangled.data import DataFileError, get
from disentangled.data import mpi3d

from .fakes import MPI3D_SIZES, mpi3d_images


@pytest.fixture(params=["mpi3d_toy", "mpi3d_realistic", "mpi3d_real"])
def name(request):
    return request.param


def test_memory_mapped_reads_in_factor_order(isolated_data_dir, name):
    images = mpi3d_images()
    mpi3d.write_official(isolated_data_dir / name / f"{name}.npz", images)
    data = get(name, strict=False, factor_sizes=MPI3D_SIZES)
    assert data.factor_names == mpi3d.FACTOR_NAMES and data.factor_sizes == MPI3D_SIZES
    assert data.observation_shape == (3, 64, 64)
    done = data.prepare(progress=False)
    path = done.path
    assert path == isolated_data_dir / name / f"{name}.npz" and not done.built
    assert done.message.endswith("memory-mapped)")
    assert isinstance(data._images, np.memmap)
    factors = np.array([[1, 0, 1, 2, 0, 1, 1], [0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 2, 2, 1, 1], [1, 0, 1, 2, 0, 1, 1]])
    obs = data.observations_from_factors(factors, rng=np.random.default_rng(0))
    assert obs.dtype == np.float32 and obs.shape == (4, 3, 64, 64)
    rows = [np.ravel_multi_index(tuple(f), MPI3D_SIZES) for f in factors]
    np.testing.assert_allclose(obs, images[rows].transpose(0, 3, 1, 2) / 255.0, rtol=0, atol=1e-6)
    assert data.describe() == {"name": name, "source": "official", "file": str(path), "factor_sizes": list(MPI3D_SIZES)}


def test_writer_is_plain_savez(isolated_data_dir):
    path = mpi3d.write_official(isolated_data_dir / "x.npz", mpi3d_images())
    with np.load(path) as npz:
        assert npz.files == ["images"]
        np.testing.assert_array_equal(npz["images"], mpi3d_images())
    shape, dtype, fortran, offset = mpi3d.npz_member_info(path, "images")
    assert shape == (288, 64, 64, 3) and dtype == np.uint8 and not fortran and offset is not None
    mapped = np.memmap(path, dtype=np.uint8, mode="r", offset=offset, shape=shape)
    np.testing.assert_array_equal(mapped, mpi3d_images())


def test_compressed_npz_falls_back_to_loading(isolated_data_dir):
    images = mpi3d_images(1)
    path = isolated_data_dir / "mpi3d_real" / "mpi3d_real.npz"
    path.parent.mkdir()
    np.savez_compressed(path, images=images)
    data = get("mpi3d_real", strict=False, factor_sizes=MPI3D_SIZES)
    assert "loaded into memory" in data.readiness()[1]
    done = data.prepare(progress=False)
    assert done.path == path and done.message.endswith("compressed member: loaded into memory when used)")
    obs = data.observations_from_factors(np.zeros((1, 7), dtype=np.int64), rng=np.random.default_rng(0))
    np.testing.assert_allclose(obs[0], images[0].transpose(2, 0, 1) / 255.0, rtol=0, atol=1e-6)


def test_sizes_inferred_from_the_image_count():
    assert mpi3d.infer_sizes(1_036_800) == (6, 6, 2, 3, 3, 40, 40)
    assert mpi3d.infer_sizes(460_800) == (4, 4, 2, 3, 3, 40, 40)
    assert mpi3d.infer_sizes(288) is None
    data = get("mpi3d_toy")
    # header-only checks, as done for a real file of each size
    for n, sizes in [(1_036_800, (6, 6, 2, 3, 3, 40, 40)), (460_800, (4, 4, 2, 3, 3, 40, 40))]:
        assert data._check("f.npz", ((n, 64, 64, 3), np.dtype(np.uint8), False, 0)).sizes == sizes
    with pytest.raises(DataFileError, match="match no known MPI3D layout.*factor_sizes="):
        data._check("f.npz", ((288, 64, 64, 3), np.dtype(np.uint8), False, 0))
    with pytest.raises(DataFileError, match="not an official MPI3D layout"):
        get("mpi3d_toy", factor_sizes=MPI3D_SIZES)._check("f.npz", ((288, 64, 64, 3), np.dtype(np.uint8), False, 0))
    with pytest.raises(DataFileError, match=r"multiply to 288, but the file holds 1036800"):
        get("mpi3d_toy", strict=False, factor_sizes=MPI3D_SIZES)._check("f.npz", ((1_036_800, 64, 64, 3), np.dtype(np.uint8), False, 0))


def test_sizes_read_from_the_header_only(isolated_data_dir):
    mpi3d.write_official(isolated_data_dir / "mpi3d_toy" / "mpi3d_toy.npz", mpi3d_images())
    assert get("mpi3d_toy").factor_sizes == (6, 6, 2, 3, 3, 40, 40)  # unknown count: listed with the official grid
    assert get("mpi3d_toy").readiness()[0] is False
    data = get("mpi3d_toy", strict=False, factor_sizes=MPI3D_SIZES)
    assert data.readiness() == (True, f"official file {isolated_data_dir / 'mpi3d_toy' / 'mpi3d_toy.npz'} (288 images, memory-mapped)")
    assert data._images is None  # nothing loaded


def test_strict_default_refuses_a_reduced_grid(isolated_data_dir):
    mpi3d.write_official(isolated_data_dir / "mpi3d_toy" / "mpi3d_toy.npz", mpi3d_images())
    with pytest.raises(DataFileError, match="288 images match no known MPI3D layout"):
        get("mpi3d_toy").sample(1, rng=np.random.default_rng(0))


def test_bad_files(isolated_data_dir):
    path = isolated_data_dir / "mpi3d_toy" / "mpi3d_toy.npz"
    path.parent.mkdir()
    np.savez(path, images=np.zeros((288, 64, 64, 3), dtype=np.float32))
    with pytest.raises(DataFileError, match=r"mpi3d_toy\.npz: 'images' must be uint8 \[N, 64, 64, 3\]"):
        get("mpi3d_toy", strict=False, factor_sizes=MPI3D_SIZES).sample(1, rng=np.random.default_rng(0))
    np.savez(path, imgs=mpi3d_images())
    with pytest.raises(DataFileError, match=r"mpi3d_toy\.npz: no array 'images'"):
        get("mpi3d_toy", strict=False, factor_sizes=MPI3D_SIZES).sample(1, rng=np.random.default_rng(0))
    mpi3d.write_official(path, mpi3d_images())
    path.write_bytes(path.read_bytes()[:-5000])
    with pytest.raises(DataFileError, match=r"mpi3d_toy\.npz"):
        get("mpi3d_toy", strict=False, factor_sizes=MPI3D_SIZES).sample(1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="factor_sizes needs 7 sizes"):
        get("mpi3d_toy", factor_sizes=(2, 2))


def test_missing_file_says_where_and_how(isolated_data_dir, name):
    data = get(name)
    ready, why = data.readiness()
    assert not ready and f"disentangled data download {name}" in why
    with pytest.raises(DataFileError) as err:
        data.sample(1, rng=np.random.default_rng(0))
    assert str(isolated_data_dir / name / f"{name}.npz") in str(err.value)
    assert f"disentangled data download {name}" in str(err.value)


def test_same_rng_same_batch(isolated_data_dir):
    mpi3d.write_official(isolated_data_dir / "mpi3d_real" / "mpi3d_real.npz", mpi3d_images())
    data = get("mpi3d_real", strict=False, factor_sizes=MPI3D_SIZES)
    a = data.sample(32, rng=np.random.default_rng(3))
    b = data.sample(32, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_prepare_command_checks_the_file(isolated_data_dir):
    from disentangled.data.prepare import prepare

    mpi3d.write_official(isolated_data_dir / "mpi3d_realistic" / "mpi3d_realistic.npz", mpi3d_images())
    _, message = prepare("mpi3d_realistic", strict=False, factor_sizes=MPI3D_SIZES, progress=False)
    assert message.endswith("(288 images, factor sizes [2, 2, 2, 3, 3, 2, 2], memory-mapped)")
