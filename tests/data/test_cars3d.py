"""Cars3D: the MATLAB v5 files, object order, the factor grid, the resize cache, errors."""

import numpy as np
import pytest

from disentangled.data import DataFileError, get
from disentangled.data import cars3d

from .fakes import CARS_AZIMUTHS, CARS_ELEVATIONS, car, car_colour, write_cars


def test_mat_round_trip_in_the_official_layout(tmp_path):
    import scipy.io

    im = (np.arange(128 * 128 * 3 * 24 * 4) * 7 % 251).astype(np.uint8).reshape(128, 128, 3, 24, 4)
    path = cars3d.write_car(tmp_path / "car_001_mesh.mat", im)
    assert path.read_bytes()[:10] == b"MATLAB 5.0"
    raw = scipy.io.loadmat(path)
    assert raw["im"].dtype == np.uint8 and raw["im"].shape == (128, 128, 3, 24, 4)
    assert raw["mask"].shape == (128, 128, 24, 4)
    np.testing.assert_array_equal(cars3d.read_car(path), im)


def test_grid_order_elevation_azimuth_object(isolated_data_dir):
    write_cars(isolated_data_dir / "cars")
    data = get("cars3d", strict=False)
    assert data.factor_names == ("elevation", "azimuth", "object")
    assert data.factor_sizes == (CARS_ELEVATIONS, CARS_AZIMUTHS, 3)
    assert data.observation_shape == (3, 64, 64)
    factors = data.latent_space.all_factors()
    obs = data.observations_from_factors(factors, rng=np.random.default_rng(0))
    assert obs.dtype == np.float32 and obs.shape == (18, 3, 64, 64)
    for (e, a, o), img in zip(factors, obs):
        np.testing.assert_allclose(img[:, 10, 20], car_colour(o, a, e) / 255.0, atol=1e-6)
        assert np.all(img == img[:, :1, :1])  # a flat view stays flat through the resize


def test_objects_follow_list_txt(isolated_data_dir):
    names = ["car_009_mesh", "car_002_mesh", "car_005_mesh"]  # list order, not sorted order
    write_cars(isolated_data_dir / "cars", names=names)
    data = get("cars3d", strict=False)
    assert data.describe()["object_order"] == "list.txt"
    obs = data.observations_from_factors([[0, 0, 0], [0, 0, 1], [0, 0, 2]], rng=np.random.default_rng(0))
    for o in range(3):  # object o is the o-th listed car, i.e. car(o) as written
        np.testing.assert_allclose(obs[o, :, 0, 0], car_colour(o, 0, 0) / 255.0, atol=1e-6)


def test_without_list_txt_objects_are_sorted_by_name(isolated_data_dir):
    names = ["car_009_mesh", "car_002_mesh", "car_005_mesh"]
    write_cars(isolated_data_dir / "cars", names=names, with_list=False)
    data = get("cars3d", strict=False)
    assert data.describe()["object_order"] == "sorted file names"
    obs = data.observations_from_factors([[0, 0, 0], [0, 0, 1], [0, 0, 2]], rng=np.random.default_rng(0))
    written = {"car_009_mesh": 0, "car_002_mesh": 1, "car_005_mesh": 2}
    for o, name in enumerate(sorted(names)):
        np.testing.assert_allclose(obs[o, :, 0, 0], car_colour(written[name], 0, 0) / 255.0, atol=1e-6)


def test_list_txt_must_match_the_files(isolated_data_dir):
    write_cars(isolated_data_dir / "cars")
    (isolated_data_dir / "cars" / "car_002_mesh.mat").unlink()
    with pytest.raises(DataFileError, match=r"list\.txt: does not match the \.mat files beside it \(1 listed but missing"):
        get("cars3d", strict=False).sample(1, rng=np.random.default_rng(0))


def test_resize_matches_pillow_lanczos(isolated_data_dir):
    from PIL import Image

    im = np.random.default_rng(1).integers(0, 256, size=(128, 128, 3, 1, 1), dtype=np.uint8)
    cars3d.write_official(isolated_data_dir / "cars", [im])
    obs = get("cars3d", strict=False).observations_from_factors([[0, 0, 0]], rng=np.random.default_rng(0))
    expected = np.asarray(Image.fromarray(im[:, :, :, 0, 0]).resize((64, 64), Image.LANCZOS))
    np.testing.assert_allclose(obs[0], expected.transpose(2, 0, 1) / 255.0, atol=1e-6)


def test_resize_runs_once_then_the_cache_is_used(isolated_data_dir, monkeypatch):
    write_cars(isolated_data_dir / "cars")
    data = get("cars3d", strict=False)
    done = data.prepare(progress=False)
    cache = done.path
    assert done.built and cache.parent == isolated_data_dir / "cache" and cache.name.startswith("cars3d_")
    reference = data.sample(6, rng=np.random.default_rng(2))
    monkeypatch.setattr(cars3d, "resize_lanczos", lambda *a: pytest.fail("resized again"))
    again = get("cars3d", strict=False)
    assert "resized cache" in again.readiness()[1]
    done = again.prepare(progress=False)
    assert (done.path, done.built) == (cache, False)
    got = again.sample(6, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(got[0], reference[0])
    np.testing.assert_array_equal(got[1], reference[1])


def test_reordered_list_gets_a_new_cache(isolated_data_dir):
    folder = isolated_data_dir / "cars"
    write_cars(folder)
    first = get("cars3d", strict=False).prepare(progress=False)
    (folder / "list.txt").write_text("car_003_mesh\ncar_001_mesh\ncar_002_mesh\n")
    second = get("cars3d", strict=False).prepare(progress=False)
    assert second.built and second.path != first.path


def test_strict_mode_asserts_the_official_grid(isolated_data_dir):
    write_cars(isolated_data_dir / "cars")
    data = get("cars3d")
    assert data.factor_sizes == (4, 24, 183)
    with pytest.raises(DataFileError, match=r"3 \.mat files, the official release has 183"):
        data.sample(1, rng=np.random.default_rng(0))


def test_bad_files_name_the_file_and_the_expectation(isolated_data_dir):
    import scipy.io

    folder = isolated_data_dir / "cars"
    write_cars(folder, objects=(0,))
    scipy.io.savemat(folder / "car_001_mesh.mat", {"im": np.zeros((128, 128, 3, 24, 4), dtype=np.float64)})
    with pytest.raises(DataFileError, match=r"car_001_mesh\.mat: 'im' must be uint8 \[128, 128, 3, 24, 4\]"):
        get("cars3d", strict=False).sample(1, rng=np.random.default_rng(0))
    (folder / "car_001_mesh.mat").write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataFileError, match=r"car_001_mesh\.mat: cannot be read as a MATLAB v5"):
        get("cars3d", strict=False).sample(1, rng=np.random.default_rng(0))


def test_cars_with_different_grids_are_refused(isolated_data_dir):
    folder = isolated_data_dir / "cars"
    cars3d.write_official(folder, [car(0), car(1)[:, :, :, :2]])
    with pytest.raises(DataFileError, match=r"car_002_mesh\.mat: 2 azimuths x 2 elevations, but .*car_001_mesh\.mat has 3 x 2"):
        get("cars3d", strict=False).sample(1, rng=np.random.default_rng(0))


def test_missing_files_say_where_and_how(isolated_data_dir):
    data = get("cars3d")
    ready, why = data.readiness()
    assert not ready and "official files missing" in why and "disentangled data download cars3d" in why
    with pytest.raises(DataFileError) as err:
        data.sample(1, rng=np.random.default_rng(0))
    assert str(isolated_data_dir / "cars" / "list.txt") in str(err.value)
    assert "disentangled data download cars3d" in str(err.value)


def test_prepare_command_builds_the_cache(isolated_data_dir):
    from disentangled.data.prepare import prepare

    write_cars(isolated_data_dir / "cars")
    _, message = prepare("cars3d", strict=False, progress=False)
    assert message.startswith("cars3d: official files checked (18 images), resized and cached at")
