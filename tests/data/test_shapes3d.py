"""Shapes3D: the official h5 and dlib npz layouts, labels -> classes, and the offline look-alike."""

import colorsys

import h5py
import numpy as np
import pytest

from disentangled.data import DataFileError, get
from disentangled.data import shapes3d
from disentangled.data import shapes3d_render as render

from .fakes import SHAPES3D_SMALL, shapes3d_images


def as_float(images):
    return images.transpose(0, 3, 1, 2) / 255.0


# --- official files ----------------------------------------------------------------------


def test_h5_in_the_official_layout(isolated_data_dir):
    images = shapes3d_images()
    path = shapes3d.write_official(isolated_data_dir / shapes3d.OFFICIAL_H5, images, SHAPES3D_SMALL)
    with h5py.File(path, "r") as f:
        assert sorted(f.keys()) == ["images", "labels"]
        assert f["images"].dtype == np.uint8 and f["images"].shape == (96, 64, 64, 3)
        assert f["labels"].dtype == np.float64 and f["labels"].shape == (96, 6)
        np.testing.assert_allclose(f["labels"][5], [0.0, 0.0, 0.0, 0.75, 1.0, -30.0 + 2 * 60 / 14])
    data = get("shapes3d", strict=False)
    assert data.factor_names == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert data.factor_sizes == (2, 2, 2, 2, 2, 3)
    assert data.observation_shape == (3, 64, 64)
    factors = SHAPES3D_SMALL.all_factors()[::-1]
    obs = data.observations_from_factors(factors, rng=np.random.default_rng(0))
    assert obs.dtype == np.float32 and obs.shape == (96, 3, 64, 64)
    np.testing.assert_allclose(obs, as_float(images[::-1]), rtol=0, atol=1e-6)
    assert data.describe() == {"name": "shapes3d", "source": "official", "file": str(path)}
    assert data._store.how == "read image by image from the compressed h5"


def test_contiguous_h5_is_memory_mapped(isolated_data_dir):
    images = shapes3d_images(1)
    path = isolated_data_dir / shapes3d.OFFICIAL_H5
    path.parent.mkdir()
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=shapes3d.official_labels(SHAPES3D_SMALL))
    data = get("shapes3d", strict=False)
    factors = np.array([[1, 0, 1, 0, 1, 2], [0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 1, 2]])
    obs = data.observations_from_factors(factors, rng=np.random.default_rng(0))
    assert isinstance(data._store.array, np.memmap)
    np.testing.assert_allclose(obs, as_float(images[SHAPES3D_SMALL.index(factors)]), rtol=0, atol=1e-6)


def test_classes_come_from_the_label_values(isolated_data_dir):
    """Any increasing values work: the classes are ranks among a column's unique values."""
    labels = shapes3d.official_labels(SHAPES3D_SMALL)
    labels[:, 3] = np.where(labels[:, 3] == 0.75, 0.8, 1.2)  # other scale values
    labels[:, 5] += 1e-12  # float noise
    shapes3d.write_official(isolated_data_dir / shapes3d.OFFICIAL_H5, shapes3d_images(), SHAPES3D_SMALL, labels=labels)
    assert get("shapes3d", strict=False).factor_sizes == SHAPES3D_SMALL.sizes


def test_rows_out_of_grid_order_are_refused(isolated_data_dir):
    labels = shapes3d.official_labels(SHAPES3D_SMALL)[::-1].copy()
    shapes3d.write_official(isolated_data_dir / shapes3d.OFFICIAL_H5, shapes3d_images(), SHAPES3D_SMALL, labels=labels)
    with pytest.raises(DataFileError, match=r"3dshapes\.h5: the rows are not the row-major factor grid \[2, 2, 2, 2, 2, 3\]"):
        get("shapes3d", strict=False).sample(1, rng=np.random.default_rng(0))


def test_strict_mode_asserts_the_official_sizes(isolated_data_dir):
    shapes3d.write_official(isolated_data_dir / shapes3d.OFFICIAL_H5, shapes3d_images(), SHAPES3D_SMALL)
    data = get("shapes3d")
    assert data.factor_sizes == (10, 10, 10, 8, 4, 15)
    with pytest.raises(DataFileError, match=r"factor sizes \[2, 2, 2, 2, 2, 3\] differ from the official \[10, 10, 10, 8, 4, 15\]"):
        data.sample(1, rng=np.random.default_rng(0))


def test_dlib_npz_layout(isolated_data_dir):
    images = shapes3d_images(2)
    path = shapes3d.write_official(isolated_data_dir / shapes3d.DLIB_NPZ, images, SHAPES3D_SMALL)
    with np.load(path) as npz:
        assert npz["images"].shape == (2, 2, 2, 2, 2, 3, 64, 64, 3)
        assert npz["labels"].shape == (2, 2, 2, 2, 2, 3, 6)
    data = get("shapes3d", strict=False)
    assert data.factor_sizes == SHAPES3D_SMALL.sizes
    factors = SHAPES3D_SMALL.all_factors()
    obs = data.observations_from_factors(factors, rng=np.random.default_rng(0))
    assert isinstance(data._store.array, np.memmap)
    np.testing.assert_allclose(obs, as_float(images), rtol=0, atol=1e-6)
    # the public h5 wins when both are present
    shapes3d.write_official(isolated_data_dir / shapes3d.OFFICIAL_H5, shapes3d_images(3), SHAPES3D_SMALL)
    assert get("shapes3d", strict=False).describe()["file"].endswith("3dshapes.h5")


def test_bad_files_name_the_file(isolated_data_dir):
    path = isolated_data_dir / shapes3d.OFFICIAL_H5
    path.parent.mkdir()
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((96, 64, 64, 3), dtype=np.float32))
        f.create_dataset("labels", data=shapes3d.official_labels(SHAPES3D_SMALL))
    with pytest.raises(DataFileError, match=r"3dshapes\.h5: 'images' must be uint8 \[N, 64, 64, 3\], got float32"):
        get("shapes3d", strict=False).sample(1, rng=np.random.default_rng(0))
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=shapes3d_images())
    with pytest.raises(DataFileError, match=r"3dshapes\.h5: missing dataset 'labels'"):
        get("shapes3d", strict=False).sample(1, rng=np.random.default_rng(0))
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(DataFileError, match=r"3dshapes\.h5: cannot be read as HDF5"):
        get("shapes3d", strict=False).sample(1, rng=np.random.default_rng(0))


def test_missing_file_names_both_fixes(isolated_data_dir):
    data = get("shapes3d")
    assert data.readiness()[0] is False
    with pytest.raises(DataFileError) as err:
        data.sample(1, rng=np.random.default_rng(0))
    text = str(err.value)
    assert str(isolated_data_dir / shapes3d.OFFICIAL_H5) in text and shapes3d.DLIB_NPZ in text
    assert "disentangled data download shapes3d" in text and "source='procedural'" in text


def test_prepare_unpacks_a_compressed_h5_for_memory_mapping(isolated_data_dir):
    images = shapes3d_images(4)
    shapes3d.write_official(isolated_data_dir / shapes3d.OFFICIAL_H5, images, SHAPES3D_SMALL)
    data = get("shapes3d", strict=False)
    done = data.prepare(progress=False)
    assert "unpacked to" in done.message and done.built
    caches = list((isolated_data_dir / "cache").glob("shapes3d_*.npy"))
    assert caches == [done.path] and not list((isolated_data_dir / "cache").glob("*partial*"))
    again = get("shapes3d", strict=False)
    factors = SHAPES3D_SMALL.all_factors()
    obs = again.observations_from_factors(factors, rng=np.random.default_rng(0))
    assert isinstance(again._store.array, np.memmap)
    np.testing.assert_allclose(obs, as_float(images), rtol=0, atol=1e-6)


# --- the procedural look-alike -------------------------------------------------------------


def test_procedural_source_is_recorded_and_needs_no_file():
    data = get("shapes3d", source="procedural")
    assert data.readiness() == (True, "procedural, rendered on the fly (prepare it to write the whole grid)")
    info = data.describe()
    assert info["source"] == "procedural"
    assert info["generator"] == "disentangled.data.shapes3d_render" and info["renderer_version"] == render.RENDERER_VERSION
    factors, obs = data.sample(8, rng=np.random.default_rng(0))
    assert factors.shape == (8, 6) and obs.shape == (8, 3, 64, 64) and obs.dtype == np.float32
    assert 0.0 <= obs.min() and obs.max() <= 1.0
    again = get("shapes3d", source="procedural").sample(8, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(again[1], obs)
    with pytest.raises(ValueError, match=r"source must be one of \['official', 'procedural'\]"):
        get("shapes3d", source="mujoco")


BASE = np.array([3, 6, 0, 4, 0, 7])  # floor hue, wall hue, object hue, scale, shape, orientation


def _vary(k, value, base=BASE):
    other = base.copy()
    other[k] = value
    return render.render(np.stack([base, other]))


def _changed(pair):
    return np.any(pair[0] != pair[1], axis=-1)


@pytest.mark.parametrize("shape", range(4))
@pytest.mark.parametrize("k, surface", [(0, 0), (1, 1), (2, 2)])
def test_a_hue_changes_only_its_surface(shape, k, surface):
    base = BASE.copy()
    base[4] = shape
    layer = render.layers().get(base[3], shape, base[5])  # [4, 64, 64]: floor, wall, object, sky
    changed = _changed(_vary(k, 8, base))
    covered = layer[surface] > 0
    assert changed.any() and not (changed & ~covered).any()
    assert changed[layer[surface] > 0.2].all()  # every pixel showing that surface changed


@pytest.mark.parametrize("k, value", [(3, 0), (3, 7), (4, 1), (4, 2), (4, 3)])
def test_scale_and_shape_change_only_the_object_and_its_shadow(k, value):
    other = BASE.copy()
    other[k] = value
    empty = render.layers().background(BASE[5])
    footprint = np.zeros((64, 64), dtype=bool)
    for f in (BASE, other):
        layer = render.layers().get(f[3], f[4], f[5])
        footprint |= np.any(layer != empty, axis=0)
        shadow = (layer[2] == 0) & (layer[0] < empty[0] - 0.05)  # floor darker than in the empty room
        assert shadow.sum() > 20
    changed = _changed(_vary(k, value))
    assert changed.any() and not (changed & ~footprint).any()


def test_orientation_changes_the_view():
    changed = _changed(_vary(5, 0))
    assert changed.mean() > 0.2  # walls, corner, floor edge and object all move
    assert not np.array_equal(render.layers().background(0), render.layers().background(7))


def test_four_distinct_shapes_and_growing_scale():
    masks = [render.layers().get(4, s, 7)[2] > 0.5 for s in range(4)]
    for i in range(4):
        for j in range(i):
            assert (masks[i] != masks[j]).sum() > 20, (render.SHAPES[i], render.SHAPES[j])
    areas = [(render.layers().get(scale, 2, 7)[2] > 0.5).sum() for scale in (0, 3, 7)]
    assert areas[0] < areas[1] < areas[2]


@pytest.mark.parametrize("hue", range(10))
def test_object_colour_has_the_factor_hue(hue):
    f = BASE.copy()
    f[2] = hue
    image = render.render(f[None])[0] / 255.0
    layer = render.layers().get(f[3], f[4], f[5])
    covered = np.pad(layer[2] > 0, 1)
    interior = covered[1:-1, 1:-1] & covered[:-2, 1:-1] & covered[2:, 1:-1] & covered[1:-1, :-2] & covered[1:-1, 2:]
    inside = interior & (image.max(axis=-1) > 0.3)  # whole object pixels, not too dark
    hues = np.array([colorsys.rgb_to_hsv(*rgb)[0] for rgb in image[inside]])
    distance = np.minimum(np.abs(hues - hue / 10), 1 - np.abs(hues - hue / 10))
    assert inside.sum() > 50 and np.median(distance) < 0.01
    assert np.median([colorsys.rgb_to_hsv(*rgb)[1] for rgb in image[inside]]) > 0.95  # full saturation


def test_batch_and_grid_composition_agree_bit_for_bit():
    keys = np.array([[0, 0, 0], [4, 2, 7], [7, 3, 14]])
    maps = np.stack([render.layers().get(*k) for k in keys])
    rgb = render.colours(np.array([[2, 5, 9, 0, 0, 0]]))
    together = render.compose(maps, rgb)  # as the grid writer does: one colour set for many layers
    alone = [render.compose(maps[i : i + 1], np.repeat(rgb, 1, axis=0)) for i in range(3)]
    np.testing.assert_array_equal(together, np.concatenate(alone))
    singles = render.render(np.array([[2, 5, 9, *keys[1]]]))
    np.testing.assert_array_equal(singles[0], together[1])


def test_procedural_file_is_written_atomically(isolated_data_dir, monkeypatch):
    class NoLayers:
        def get(self, *key):
            pass

    def interrupted(**kwargs):
        yield 0, np.zeros((480, 64, 64, 3), dtype=np.uint8)
        raise KeyboardInterrupt

    monkeypatch.setattr(render, "layers", lambda: NoLayers())
    monkeypatch.setattr(render, "render_grid_chunks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        shapes3d.write_procedural(progress=False)
    folder = isolated_data_dir / "procedural"
    assert list(folder.iterdir()) == []
    assert get("shapes3d", source="procedural").readiness()[1].startswith("procedural, rendered on the fly")


def test_prepared_procedural_file_is_read_and_checked(isolated_data_dir):
    """A file with the right name but another generator is refused (never silently mixed)."""
    path = shapes3d.procedural_path()
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((1, 64, 64, 3), dtype=np.uint8))
        f.create_dataset("labels", data=np.zeros((1, 6)))
        f.attrs["generator"] = "someone else"
    data = get("shapes3d", source="procedural")
    assert data.readiness()[1] == f"procedural, prepared at {path}"
    with pytest.raises(DataFileError, match=r"not written by renderer v1 .*prepare shapes3d --source procedural"):
        data.sample(1, rng=np.random.default_rng(0))


def test_label_values_of_the_look_alike():
    values = render.label_values(np.array([[0, 9, 5, 7, 3, 14], [1, 0, 0, 0, 0, 0]]))
    np.testing.assert_allclose(values, [[0.0, 0.9, 0.5, 1.25, 3.0, 30.0], [0.1, 0.0, 0.0, 0.75, 0.0, -30.0]])


def test_prepare_command_on_the_official_file(isolated_data_dir):
    from disentangled.data.prepare import prepare

    shapes3d.write_official(isolated_data_dir / shapes3d.DLIB_NPZ, shapes3d_images(), SHAPES3D_SMALL)
    _, message = prepare("shapes3d", strict=False, progress=False)
    assert message.endswith("checked (96 images, memory-mapped)")
