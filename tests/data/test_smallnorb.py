"""SmallNORB: the NYU binary-matrix format, the factor grid, the resize cache, errors."""

import io

import numpy as np
import pytest

from disentangled.data import DataFileError, get
from disentangled.data import smallnorb as norb

from .fakes import NORB_SIZES, norb_all_codes, norb_grid_value, write_smallnorb

# The header of the real smallnorb-5x01235x9x18x6x2x96x96-testing-cat.mat, written out by
# hand from the published format: int32 magic 0x1E3D4C54 (int32 matrix), ndim 1, then three
# dimension slots 24300 (0x00005EEC), 1, 1 -- all little-endian.
TESTING_CAT_HEADER = bytes(
    [0x54, 0x4C, 0x3D, 0x1E, 0x01, 0x00, 0x00, 0x00, 0xEC, 0x5E, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00]
)
# ... and of testing-dat: magic 0x1E3D4C55 (byte matrix), ndim 4, dims 24300, 2, 96, 96.
TESTING_DAT_HEADER = bytes(
    [0x55, 0x4C, 0x3D, 0x1E, 0x04, 0x00, 0x00, 0x00, 0xEC, 0x5E, 0x00, 0x00,
     0x02, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00, 0x00, 0x60, 0x00, 0x00, 0x00]
)


def test_header_of_a_real_file_is_parsed(tmp_path):
    dtype, shape, length = norb.read_header(io.BytesIO(TESTING_CAT_HEADER), "testing-cat")
    assert (dtype, shape, length) == (np.dtype("<i4"), (24300,), 20)
    dtype, shape, length = norb.read_header(io.BytesIO(TESTING_DAT_HEADER), "testing-dat")
    assert (dtype, shape, length) == (np.dtype(np.uint8), (24300, 2, 96, 96), 24)
    # a whole file with that header reads as int32 [24300]
    cats = np.tile(np.arange(5, dtype="<i4"), 4860)
    path = tmp_path / "smallnorb-5x01235x9x18x6x2x96x96-testing-cat.mat"
    path.write_bytes(TESTING_CAT_HEADER + cats.tobytes())
    got = norb.read_matrix(path)
    assert got.dtype == np.int32 and got.shape == (24300,)
    np.testing.assert_array_equal(got, cats)


def test_writer_reproduces_the_real_headers(tmp_path):
    norb.write_matrix(tmp_path / "cat.mat", np.zeros(24300, dtype=np.int32))
    assert (tmp_path / "cat.mat").read_bytes()[:20] == TESTING_CAT_HEADER
    info = tmp_path / "info.mat"
    norb.write_matrix(info, np.zeros((24300, 4), dtype=np.int32))
    assert info.read_bytes()[:20] == TESTING_CAT_HEADER[:4] + bytes([2, 0, 0, 0, 0xEC, 0x5E, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0])
    assert info.stat().st_size == 20 + 24300 * 4 * 4


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("array", [
    np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
    np.arange(6, dtype=np.int32) - 3,
    np.arange(12, dtype=np.int32).reshape(3, 4),
    np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 2, 2, 1),
    np.arange(5, dtype=np.int16),
    np.arange(5, dtype=np.float64),
])
def test_matrix_round_trip(tmp_path, array, suffix):
    path = norb.write_matrix(tmp_path / f"m.mat{suffix}", array)
    got = norb.read_matrix(path)
    assert got.dtype == array.dtype and got.shape == array.shape
    np.testing.assert_array_equal(got, array)


def test_bad_magic_and_truncation_name_the_file(tmp_path):
    path = tmp_path / "bad.mat"
    path.write_bytes(b"\x00\x01\x02\x03" + bytes(16))
    with pytest.raises(DataFileError, match=r"bad\.mat: magic number 0x03020100 is not a NORB binary matrix.*0x1E3D4C55"):
        norb.read_matrix(path)
    good = norb.write_matrix(tmp_path / "short.mat", np.zeros((10, 4), dtype=np.int32))
    good.write_bytes(good.read_bytes()[:-8])
    with pytest.raises(DataFileError, match=r"short\.mat: truncated"):
        norb.read_matrix(good)


def test_reads_the_reduced_grid_in_factor_order(isolated_data_dir):
    write_smallnorb(isolated_data_dir)
    data = get("smallnorb", strict=False)
    assert data.factor_names == ("category", "elevation", "azimuth", "lighting")
    assert data.factor_sizes == (2, 2, 3, 2)
    assert data.space.sizes == NORB_SIZES and data.nuisance == (1,)
    assert data.observation_shape == (1, 64, 64)
    codes = norb_all_codes()
    images = data._render(codes, rng=np.random.default_rng(0))
    assert images.dtype == np.float32 and images.shape == (96, 1, 64, 64)
    # camera 0, unsigned bytes (values above 127), every cell where the lookup puts it
    expected = norb_grid_value(codes) / 255.0
    np.testing.assert_allclose(images.reshape(96, -1), np.repeat(expected[:, None], 64 * 64, axis=1), atol=1e-6)


def test_gzipped_files_give_the_same_images(isolated_data_dir, tmp_path):
    write_smallnorb(isolated_data_dir, gzipped=True)
    assert list((isolated_data_dir / "small_norb").glob("*.mat.gz"))
    a = get("smallnorb", strict=False)._render(norb_all_codes(), rng=np.random.default_rng(0))
    plain = tmp_path / "plain"
    write_smallnorb(plain)
    b = get("smallnorb", strict=False, data_dir=plain)._render(norb_all_codes(), rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)


def test_instance_is_resampled_per_observation(isolated_data_dir):
    write_smallnorb(isolated_data_dir)
    data = get("smallnorb", strict=False)
    latent = np.zeros((200, 4), dtype=np.int64)
    obs = data.observations_from_factors(latent, rng=np.random.default_rng(1))
    levels = np.unique(np.round(obs[:, 0, 0, 0] * 255).astype(int))
    assert set(levels) == set(norb_grid_value([[0, i, 0, 0, 0] for i in range(4)]))
    a = data.sample(16, rng=np.random.default_rng(5))
    b = data.sample(16, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_lanczos_is_clipped_and_matches_pillow(isolated_data_dir):
    from PIL import Image

    noise = np.random.default_rng(0).integers(0, 256, size=(3, 96, 96), dtype=np.uint8)
    out = norb.resize_lanczos(noise)
    assert out.dtype == np.uint8 and out.shape == (3, 64, 64)
    expected = np.asarray(Image.fromarray(noise[1], mode="L").resize((64, 64), Image.LANCZOS))
    np.testing.assert_array_equal(out[1], expected)
    # the unclipped 32-bit path dlib takes overshoots on the same noise
    ringing = np.asarray(Image.fromarray(noise[1].astype(np.int32), mode="I").resize((64, 64), Image.LANCZOS))
    assert ringing.min() < 0 or ringing.max() > 255


def test_resize_runs_once_then_the_cache_is_used(isolated_data_dir, monkeypatch):
    write_smallnorb(isolated_data_dir)
    data = get("smallnorb", strict=False)
    assert data.readiness()[0] and "first use resizes" in data.readiness()[1]
    done = data.prepare(progress=False)
    cache = done.path
    assert done.built and cache.parent == isolated_data_dir / "cache" and cache.name.startswith("smallnorb_")
    assert "resized cache" in get("smallnorb", strict=False).readiness()[1]
    reference = data._render(norb_all_codes(), rng=np.random.default_rng(0))

    def no_resize(*args, **kwargs):
        raise AssertionError("resized again although the cache exists")

    monkeypatch.setattr(norb, "resize_lanczos", no_resize)
    again = get("smallnorb", strict=False)
    done = again.prepare(progress=False)
    assert (done.path, done.built) == (cache, False)
    np.testing.assert_array_equal(again._render(norb_all_codes(), rng=np.random.default_rng(0)), reference)


def test_a_partial_cache_is_not_mistaken_for_a_complete_one(isolated_data_dir):
    write_smallnorb(isolated_data_dir)
    data = get("smallnorb", strict=False)
    cache = data.prepare(progress=False).path
    reference = data._render(norb_all_codes(), rng=np.random.default_rng(0))
    raw = cache.read_bytes()
    cache.write_bytes(raw[: len(raw) // 2])  # e.g. a copy cut off by a full disk
    (cache.parent / f".{cache.stem}.abc.partial.npz").write_bytes(raw[:100])  # an interrupted write
    again = get("smallnorb", strict=False)
    done = again.prepare(progress=False)
    assert (done.path, done.built) == (cache, True)
    np.testing.assert_array_equal(again._render(norb_all_codes(), rng=np.random.default_rng(0)), reference)


def test_changed_source_gets_a_new_cache(isolated_data_dir):
    write_smallnorb(isolated_data_dir, seed=0)
    first = get("smallnorb", strict=False).prepare(progress=False)
    write_smallnorb(isolated_data_dir, seed=1)  # same content, other file order
    second = get("smallnorb", strict=False).prepare(progress=False)
    assert second.built and second.path != first.path


def test_strict_mode_asserts_the_official_grid(isolated_data_dir):
    write_smallnorb(isolated_data_dir)
    data = get("smallnorb")
    assert data.factor_sizes == (5, 9, 18, 6)  # known without reading a file
    with pytest.raises(DataFileError, match=r"training-dat\.mat: shape \[48, 2, 96, 96\] differs from the official \[24300, 2, 96, 96\]"):
        data.sample(1, rng=np.random.default_rng(0))


def test_incomplete_or_repeated_grid_is_refused(isolated_data_dir):
    write_smallnorb(isolated_data_dir)
    info_path = isolated_data_dir / (norb.relative_candidates("testing", "info")[0])
    info = norb.read_matrix(info_path).copy()
    info[0] = info[1]  # one cell twice, another never
    norb.write_matrix(info_path, info)
    with pytest.raises(DataFileError, match=r"do not cover the factor grid \[2, 4, 2, 3, 2\] exactly once .*1 combinations missing, 1 repeated"):
        get("smallnorb", strict=False).sample(1, rng=np.random.default_rng(0))


def test_wrong_dtype_is_refused(isolated_data_dir):
    write_smallnorb(isolated_data_dir)
    cat_path = isolated_data_dir / (norb.relative_candidates("training", "cat")[0])
    norb.write_matrix(cat_path, norb.read_matrix(cat_path).astype(np.float32))
    with pytest.raises(DataFileError, match=r"training-cat\.mat: expected an int32 matrix \[48\]"):
        get("smallnorb", strict=False).sample(1, rng=np.random.default_rng(0))


def test_missing_files_say_where_and_how(isolated_data_dir):
    data = get("smallnorb")
    ready, why = data.readiness()
    assert not ready and "official file missing" in why and "disentangled data download smallnorb" in why
    with pytest.raises(DataFileError) as err:
        data.sample(1, rng=np.random.default_rng(0))
    text = str(err.value)
    assert str(isolated_data_dir / "small_norb" / "smallnorb-5x46789x9x18x6x2x96x96-training-dat.mat") in text
    assert "smallnorb-5x01235x9x18x6x2x96x96-testing-info.mat.gz" in text
    assert "disentangled data download smallnorb" in text


def test_prepare_command_builds_the_cache(isolated_data_dir):
    from disentangled.data.prepare import prepare

    write_smallnorb(isolated_data_dir, gzipped=True)
    _, message = prepare("smallnorb", strict=False, progress=False)
    assert message.startswith("smallnorb: official files checked (96 images), resized and cached at")
    _, message = prepare("smallnorb", strict=False, progress=False)
    assert "resized cache already at" in message
