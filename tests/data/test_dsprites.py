"""The dSprites family: official-file loader, variants, sources, errors."""

import zipfile

import numpy as np
import pytest

from disentangled.data import DataFileError, get
from disentangled.data.dsprites import OFFICIAL_NPZ, read_official, write_official

from .fakes import DSPRITES_SMALL, dsprites_images, write_dsprites


@pytest.fixture
def small_npz(isolated_data_dir):
    return write_dsprites(isolated_data_dir)


def test_loader_reads_the_official_npz_layout(small_npz, isolated_data_dir):
    with np.load(isolated_data_dir / OFFICIAL_NPZ, allow_pickle=True, encoding="latin1") as npz:
        assert sorted(npz.files) == ["imgs", "latents_classes", "latents_values", "metadata"]
        assert npz["metadata"].dtype == object and npz["metadata"].shape == ()
        assert npz["latents_classes"].dtype == np.int64 and npz["latents_values"].dtype == np.float64
        assert list(npz["metadata"][()]["latents_sizes"]) == [1, 3, 2, 3, 2, 2]
    data = get("dsprites_full", strict=False)
    assert data.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert data.factor_sizes == (3, 2, 3, 2, 2)
    factors = data.latent_space.all_factors()
    obs = data.observations_from_factors(factors, rng=np.random.default_rng(0))
    assert obs.dtype == np.float32 and obs.shape == (72, 1, 64, 64)
    np.testing.assert_array_equal(obs[:, 0], small_npz.astype(np.float32))
    assert data.describe()["source"] == "official"
    assert data.describe()["file"].endswith(OFFICIAL_NPZ)


def test_loader_reads_the_hdf5_twin(isolated_data_dir):
    imgs = dsprites_images(1)
    write_official(isolated_data_dir / OFFICIAL_NPZ.replace(".npz", ".hdf5"), imgs, DSPRITES_SMALL)
    data = get("dsprites_full", strict=False)
    factors = np.array([[2, 1, 2, 1, 0], [0, 0, 0, 0, 1]])
    obs = data.observations_from_factors(factors, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(obs[:, 0], imgs[DSPRITES_SMALL.index(np.c_[np.zeros(2, int), factors])])


class _Boom:
    """Unpickling this object raises: proves the loader never unpickles the metadata."""

    def __reduce__(self):
        return (_explode, ())


def _explode():
    raise AssertionError("the metadata pickle was loaded")


def test_metadata_pickle_is_never_loaded(isolated_data_dir):
    space = DSPRITES_SMALL
    path = isolated_data_dir / OFFICIAL_NPZ
    path.parent.mkdir(parents=True)
    np.savez_compressed(
        path, imgs=dsprites_images(), latents_classes=space.all_factors(),
        latents_values=np.zeros((72, 6)), metadata=np.array(_Boom(), dtype=object),
    )
    imgs, got = read_official(path, strict=False)
    assert got.sizes == DSPRITES_SMALL.sizes and imgs.shape == (72, 64, 64)


def test_strict_mode_asserts_the_official_sizes(small_npz, isolated_data_dir):
    with pytest.raises(DataFileError, match=r"differ from the official \[1, 3, 6, 40, 32, 32\]"):
        read_official(isolated_data_dir / OFFICIAL_NPZ)


def test_rows_out_of_order_are_refused(isolated_data_dir):
    path = isolated_data_dir / "shuffled.npz"
    classes = DSPRITES_SMALL.all_factors()[::-1].copy()
    np.savez_compressed(path, imgs=dsprites_images(), latents_classes=classes, latents_values=np.zeros((72, 6)))
    with pytest.raises(DataFileError, match="not the row-major factor grid"):
        read_official(path, strict=False)


def test_truncated_file_names_the_file(small_npz, isolated_data_dir):
    path = isolated_data_dir / OFFICIAL_NPZ
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFileError, match=r"dsprites_ndarray_co1sh3sc6or40x32y32_64x64\.npz.*truncated"):
        read_official(path, strict=False)


def test_missing_file_says_where_how_and_the_procedural_option(isolated_data_dir):
    data = get("dsprites_full")
    assert data.readiness()[0] is False
    with pytest.raises(DataFileError) as err:
        data.sample(2, rng=np.random.default_rng(0))
    text = str(err.value)
    assert str(isolated_data_dir / OFFICIAL_NPZ) in text
    assert "disentangled data download dsprites_full" in text
    assert "source=procedural" in text


def test_dlib_data_folder_is_read(tmp_path, monkeypatch):
    dlib_root = tmp_path / "dlib"
    write_official(dlib_root / OFFICIAL_NPZ, dsprites_images(), DSPRITES_SMALL)
    monkeypatch.setenv("DISENTANGLEMENT_LIB_DATA", str(dlib_root))
    data = get("dsprites_full", strict=False)
    assert data.readiness()[0] is True
    assert data.factor_sizes == (3, 2, 3, 2, 2)


def test_noshape_resamples_shape_as_nuisance(small_npz):
    data = get("dsprites_noshape", strict=False)
    assert data.factor_names == ("scale", "orientation", "posX", "posY")
    factors = np.zeros((400, 4), dtype=np.int64)
    obs = data.observations_from_factors(factors, rng=np.random.default_rng(3))
    # the three shapes at factor 0 of the reduced grid: each observation is one of them, and all occur
    candidates = small_npz[[DSPRITES_SMALL.index([[0, s, 0, 0, 0, 0]])[0] for s in range(3)]]
    which = [int(np.flatnonzero([(c == o[0]).all() for c in candidates])[0]) for o in obs]
    assert set(which) == {0, 1, 2}


# --- variants, on the procedural source (no file needed) -------------------------------


def test_observation_shapes_and_ranges():
    rng = np.random.default_rng(0)
    for name, channels in [("dsprites_full", 1), ("dsprites_noshape", 1), ("color_dsprites", 3),
                           ("noisy_dsprites", 3), ("scream_dsprites", 3), ("dummy_data", 1)]:
        data = get(name) if name == "dummy_data" else get(name, source="procedural")
        assert data.observation_shape == (channels, 64, 64)
        factors, obs = data.sample(16, rng=rng)
        assert factors.dtype == np.int64 and factors.shape == (16, data.num_factors)
        assert obs.dtype == np.float32 and obs.shape == (16, channels, 64, 64)
        assert obs.min() >= 0.0 and obs.max() <= 1.0, name
        assert np.isfinite(obs).all()


def _sprites(factors):
    return get("dsprites_full", source="procedural").observations_from_factors(factors, rng=np.random.default_rng(0))[:, 0]


def test_color_variant_one_colour_per_image_black_background():
    data = get("color_dsprites", source="procedural")
    factors = data.sample_factors(64, rng=np.random.default_rng(1))
    obs = data.observations_from_factors(factors, rng=np.random.default_rng(2))
    mask = _sprites(factors).astype(bool)
    assert np.all(obs.transpose(1, 0, 2, 3)[:, ~mask] == 0)  # background stays black
    for img, m in zip(obs, mask):
        colours = img[:, m]  # [3, pixels]
        assert np.all(colours == colours[:, :1])  # one colour per image
        assert np.all((colours[:, 0] >= 0.5) & (colours[:, 0] <= 1.0))


def test_noisy_variant_white_sprite_on_uniform_noise():
    data = get("noisy_dsprites", source="procedural")
    factors = data.sample_factors(64, rng=np.random.default_rng(1))
    obs = data.observations_from_factors(factors, rng=np.random.default_rng(2))
    mask = _sprites(factors).astype(bool)
    per_channel = obs.transpose(1, 0, 2, 3)
    assert np.all(per_channel[:, mask] == 1.0)
    background = per_channel[:, ~mask]
    # U(0, 1): mean 1/2 and variance 1/12; ~700k samples give a standard error of ~3.5e-4
    assert abs(background.mean() - 0.5) < 0.003
    assert abs(background.var() - 1 / 12) < 0.002


def test_variants_follow_the_reference_draw_order():
    """With a RandomState, factors, nuisance and variant draws match disentanglement_lib's calls."""
    data = get("scream_dsprites", source="procedural")
    rs = np.random.RandomState(123)
    factors, obs = data.sample(5, rng=rs)

    ref = np.random.RandomState(123)
    expected_factors = np.stack([ref.randint(s, size=5) for s in (3, 6, 40, 32, 32)], axis=1)
    np.testing.assert_array_equal(factors, expected_factors)
    assert ref.randint(1, size=5).tolist() == [0] * 5  # the colour factor, a nuisance of size 1
    scream = data.scream()  # [3, H, W]
    sprites = _sprites(factors)
    for i in range(5):
        row = ref.randint(0, scream.shape[1] - 64)
        col = ref.randint(0, scream.shape[2] - 64)
        background = (scream[:, row : row + 64, col : col + 64] + ref.uniform(0, 1, size=3)[:, None, None]) / 2
        expected = np.where(sprites[i][None] == 1, 1 - background, background)
        np.testing.assert_allclose(obs[i], expected, rtol=0, atol=1e-7)

    color = get("color_dsprites", source="procedural")
    rs, ref = np.random.RandomState(5), np.random.RandomState(5)
    f, o = color.sample(4, rng=rs)
    for s in (3, 6, 40, 32, 32, 1):
        ref.randint(s, size=4)
    rgb = ref.uniform(0.5, 1, [4, 1, 1, 3])
    np.testing.assert_allclose(o, _sprites(f)[:, None] * rgb.transpose(0, 3, 1, 2), atol=1e-7)


def test_scream_painting_is_the_bundled_thumbnail():
    data = get("scream_dsprites", source="procedural")
    scream = data.scream()
    assert scream.shape == (3, 274, 215)  # the 1200x1528 painting shrunk to fit 350x274
    assert data.describe()["scream_image"].endswith("the_scream_215x274.png")
    # a real painting: colourful, not flat
    assert 0.2 < scream.mean() < 0.8 and scream.std() > 0.1


def test_scream_from_the_data_directory(isolated_data_dir):
    from PIL import Image

    from disentangled.data.dsprites import bundled_scream_path

    (isolated_data_dir / "scream").mkdir()
    with Image.open(bundled_scream_path()) as painting:  # a JPEG of the painting, as dlib's folder holds
        painting.convert("RGB").save(isolated_data_dir / "scream" / "scream.jpg", quality=95)
    data = get("scream_dsprites", source="procedural")
    assert data.describe()["scream_image"] == str(isolated_data_dir / "scream" / "scream.jpg")
    assert data.scream().shape == (3, 274, 215)


def test_same_rng_same_batch():
    for name in ("noisy_dsprites", "scream_dsprites", "dummy_data"):
        data = get(name) if name == "dummy_data" else get(name, source="procedural")
        a = data.sample(8, rng=np.random.default_rng(11))
        b = data.sample(8, rng=np.random.default_rng(11))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_batches_are_tensors_of_the_batch_size():
    data = get("dsprites_full", source="procedural")
    batches = data.batches(32, rng=np.random.default_rng(0))
    first, second = next(batches), next(batches)
    assert tuple(first.shape) == (32, 1, 64, 64) and str(first.dtype) == "torch.float32"
    assert not np.array_equal(first.numpy(), second.numpy())
    with pytest.raises(ValueError, match="batch_size"):
        next(data.batches(0, rng=np.random.default_rng(0)))


def test_bad_options_and_names():
    with pytest.raises(ValueError, match=r"source must be one of \['official', 'procedural'\]"):
        get("dsprites_full", source="synthetic")
    with pytest.raises(ValueError, match="Did you mean 'dsprites_full'"):
        get("dsprites_ful")
    with pytest.raises(ValueError, match="has no option 'sorce'.*Did you mean 'source'"):
        get("dsprites_full", sorce="procedural")
    data = get("dsprites_full", source="procedural")
    with pytest.raises(ValueError, match="factor 'orientation' has size 40"):
        data.observations_from_factors([[0, 0, 40, 0, 0]], rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        data.sample(2, rng=0)


def test_zip_is_not_mistaken_for_an_npz(isolated_data_dir):
    path = isolated_data_dir / OFFICIAL_NPZ
    path.parent.mkdir(parents=True)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "not an array")
    with pytest.raises(DataFileError, match="missing array 'imgs'"):
        read_official(path, strict=False)
