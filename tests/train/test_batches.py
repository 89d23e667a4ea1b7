"""MemberBatches: a stack of members' batches equals each member's own draw, bit for bit.

For every data set stored as a uint8 table (dSprites and dSprites without shape from the
official npz and from the procedural cache, Shapes3D from the npz and the contiguous h5,
SmallNORB, Cars3D, MPI3D from a memory-mapped and from a compressed npz), each written
here as a tiny file in the official format, and for both placements of the table (a
torch tensor gathered with ``index_select``, numpy rows gathered in host memory), the
batch ``x[m]`` must equal ``data.sample_observations(B, rng=twin[m])`` exactly and every
member's generator must end in its twin's state, for two draws in a row. The expected
values always come from the data set's own ``sample_observations`` on a separately built
instance with separately seeded twin generators, never from the table path itself. Data
sets whose observations draw randomness of their own (or have no table) must fall back
to the data set; a malformed table and an unknown placement are refused.
"""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from disentangled.data import FactorSpace, get
from disentangled.data import cars3d, mpi3d, shapes3d
from disentangled.data import dsprites as dsprites_module
from disentangled.data import smallnorb as norb
from disentangled.train.batches import MemberBatches

M, B = 3, 5
SEEDS = (101, 202, 303)  # one per member, all distinct

VIA = {"device": "table on device", "host": "table in host memory"}


# --- tiny files in the official formats (as in tests/data) -------------------------------

DSPRITES_SMALL = FactorSpace(dsprites_module.OFFICIAL_SPACE.names, (1, 3, 2, 3, 2, 2))  # 72 images
SHAPES_SMALL = FactorSpace(shapes3d.OFFICIAL_SPACE.names, (2, 2, 2, 2, 2, 3))  # 96 images
MPI3D_SIZES = (2, 2, 2, 3, 3, 2, 2)  # 288 images
NORB_SIZES = (2, 4, 2, 3, 2)  # category, instance, elevation, azimuth, lighting: 96 images
NORB_SPLIT_INSTANCES = {"training": (1, 3), "testing": (0, 2)}
CARS_AZIMUTHS, CARS_ELEVATIONS = 3, 2


def write_dsprites(root):
    imgs = (np.random.default_rng(0).random((DSPRITES_SMALL.num_combinations, 64, 64)) < 0.3).astype(np.uint8)
    dsprites_module.write_official(root / dsprites_module.OFFICIAL_NPZ, imgs, DSPRITES_SMALL)


def shapes_images(seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(SHAPES_SMALL.num_combinations, 64, 64, 3), dtype=np.uint8)


def write_shapes_npz(root):
    shapes3d.write_official(root / shapes3d.DLIB_NPZ, shapes_images(1), SHAPES_SMALL)


def write_shapes_contiguous_h5(root):
    path = root / shapes3d.OFFICIAL_H5
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=shapes_images(2))  # no chunks, no filters: memory-mapped
        f.create_dataset("labels", data=shapes3d.official_labels(SHAPES_SMALL))


def write_shapes_compressed_h5(root):
    shapes3d.write_official(root / shapes3d.OFFICIAL_H5, shapes_images(3), SHAPES_SMALL)


def write_smallnorb(root):
    rng = np.random.default_rng(0)
    for split, instances in NORB_SPLIT_INSTANCES.items():
        codes = np.array(
            [(c, i, e, a, l) for c in range(2) for i in instances for e in range(2) for a in range(3) for l in range(2)]
        )
        codes = codes[rng.permutation(len(codes))]  # the files' order is not the grid order
        values = (100 + np.ravel_multi_index(tuple(codes.T), NORB_SIZES)).astype(np.uint8)
        dat = np.empty((len(codes), 2, 96, 96), dtype=np.uint8)
        dat[:, 0] = values[:, None, None]
        dat[:, 0, ::7, ::5] = 255 - values[:, None, None]  # some texture through the resize
        dat[:, 1] = 255 - values[:, None, None]
        info = np.stack([codes[:, 1], codes[:, 2], 2 * codes[:, 3], codes[:, 4]], axis=1)
        norb.write_split(root, split, dat, codes[:, 0], info)


def write_cars(root):
    def car(obj):
        im = np.zeros((128, 128, 3, CARS_AZIMUTHS, CARS_ELEVATIONS), dtype=np.uint8)
        for a in range(CARS_AZIMUTHS):
            for e in range(CARS_ELEVATIONS):
                im[:, :, :, a, e] = [40 + 50 * obj, 30 + 60 * a, 200 + 20 * e]
                im[::9, ::4, 1, a, e] = 17 * (obj + a + e)  # some texture through the resize
        return im

    cars3d.write_official(root / "cars", [car(o) for o in range(3)])


def mpi3d_images(seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(int(np.prod(MPI3D_SIZES)), 64, 64, 3), dtype=np.uint8)


def write_mpi3d(root):
    mpi3d.write_official(root / "mpi3d_toy" / "mpi3d_toy.npz", mpi3d_images())


def write_mpi3d_compressed(root):
    path = root / "mpi3d_toy" / "mpi3d_toy.npz"
    path.parent.mkdir(parents=True)
    np.savez_compressed(path, images=mpi3d_images(1))  # cannot be memory-mapped: loaded into memory


# name -> (writer, data set name, options)
TABLES = {
    "dsprites_full": (write_dsprites, "dsprites_full", {"strict": False}),
    "dsprites_noshape": (write_dsprites, "dsprites_noshape", {"strict": False}),
    "shapes3d_npz": (write_shapes_npz, "shapes3d", {"strict": False}),
    "shapes3d_contiguous_h5": (write_shapes_contiguous_h5, "shapes3d", {"strict": False}),
    "smallnorb": (write_smallnorb, "smallnorb", {"strict": False}),
    "cars3d": (write_cars, "cars3d", {"strict": False}),
    "mpi3d_toy": (write_mpi3d, "mpi3d_toy", {"strict": False, "factor_sizes": MPI3D_SIZES}),
    "mpi3d_toy_compressed": (write_mpi3d_compressed, "mpi3d_toy", {"strict": False, "factor_sizes": MPI3D_SIZES}),
}


# --- the check ------------------------------------------------------------------------------


def assert_member_draws(batches: MemberBatches, reference, draws: int = 2) -> None:
    """``batches(rngs)`` equals the stacked ``reference.sample_observations`` of twin generators."""
    rngs = [np.random.default_rng(s) for s in SEEDS]
    twins = [np.random.default_rng(s) for s in SEEDS]
    for _ in range(draws):
        x = batches(rngs)
        expected = np.stack([reference.sample_observations(B, rng=t) for t in twins])
        assert isinstance(x, torch.Tensor)
        assert x.dtype == torch.float32 and x.device.type == "cpu"
        assert tuple(x.shape) == (M, B, *reference.observation_shape)
        assert expected.dtype == np.float32
        np.testing.assert_array_equal(x.numpy(), expected)
        for r, t in zip(rngs, twins):
            assert r.bit_generator.state == t.bit_generator.state
    # the members drew different batches: the comparison above is not between blanks
    assert expected.any() and not np.array_equal(expected[0], expected[1])


@pytest.mark.parametrize("placement", ["device", "host"])
@pytest.mark.parametrize("case", list(TABLES))
def test_table_gives_each_members_own_draw(case, placement, isolated_data_dir):
    writer, name, options = TABLES[case]
    writer(isolated_data_dir)
    data = get(name, **options)
    images, scale = data.image_table()
    assert images.dtype == np.uint8 and images.shape[0] == data.space.num_combinations
    before = np.array(images[:])
    batches = MemberBatches(data, B, "cpu", table=True, placement=placement)
    assert batches.via == VIA[placement]
    assert_member_draws(batches, get(name, **options))
    np.testing.assert_array_equal(np.asarray(data.image_table()[0]), before)  # the table is left as it was


def test_noshape_draws_the_shape_per_observation(isolated_data_dir):
    """The nuisance factor is drawn between the latent factors and the lookup: the streams must agree on it."""
    write_dsprites(isolated_data_dir)
    data = get("dsprites_noshape", strict=False)
    assert data.nuisance == (0, 1)  # color (one value) and shape
    batches = MemberBatches(data, B, "cpu", table=True, placement="host")
    assert_member_draws(batches, get("dsprites_noshape", strict=False), draws=4)


@pytest.fixture
def procedural_cache(isolated_data_dir):
    """A procedural dSprites cache of the full grid as a sparse memory-mapped npy.

    Only the rows the test will draw are written (random binary sprites), so the 3 GB
    file costs neither disk nor time; the rest reads as zeros.
    """
    path = dsprites_module.procedural_cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    space = dsprites_module.OFFICIAL_SPACE
    table = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(space.num_combinations, 64, 64))
    if getattr(path.stat(), "st_blocks", 0) * 512 > 64 << 20:  # pragma: no cover - a file system without holes
        del table
        path.unlink()
        pytest.skip("this file system does not keep sparse files: the 3 GB cache would be written out")
    fill = np.random.default_rng(7)
    for name in ("dsprites_full", "dsprites_noshape"):
        data = get(name, source="procedural")
        for seed in SEEDS:
            r = np.random.default_rng(seed)
            for _ in range(2):
                rows = space.index(data.complete_factors(data.sample_factors(B, rng=r), rng=r))
                table[rows] = fill.random((len(rows), 64, 64)) < 0.4
    table.flush()
    del table
    return path


@pytest.mark.parametrize("name", ["dsprites_full", "dsprites_noshape"])
def test_procedural_cache_is_a_table_in_host_memory(name, procedural_cache):
    data = get(name, source="procedural")
    images, scale = data.image_table()
    assert isinstance(images, np.memmap) and images.shape == (737280, 64, 64) and scale == 1.0
    # placement "device" would copy the whole 3 GB grid into a tensor: only the host gather here
    batches = MemberBatches(data, B, "cpu", table=True, placement="host")
    assert batches.via == "table in host memory"
    assert_member_draws(batches, get(name, source="procedural"))


# --- no table: back to the data set ----------------------------------------------------------


NO_TABLE = {
    "dummy_data": (None, "dummy_data", {}),
    "noisy_dsprites": (write_dsprites, "noisy_dsprites", {"strict": False}),
    "color_dsprites": (write_dsprites, "color_dsprites", {"strict": False}),
    "scream_dsprites": (write_dsprites, "scream_dsprites", {"strict": False}),
    "dsprites_procedural_uncached": (None, "dsprites_full", {"source": "procedural"}),
    "shapes3d_compressed_h5": (write_shapes_compressed_h5, "shapes3d", {"strict": False}),
}


@pytest.mark.parametrize("case", list(NO_TABLE))
def test_without_a_table_the_data_set_draws(case, isolated_data_dir):
    writer, name, options = NO_TABLE[case]
    if writer is not None:
        writer(isolated_data_dir)
    data = get(name, **options)
    assert data.image_table() is None
    for placement in (None, "device", "host"):
        batches = MemberBatches(data, B, "cpu", table=True, placement=placement)
        assert batches.via == "data set" and batches.table is None
    assert_member_draws(batches, get(name, **options))


def test_compressed_shapes3d_h5_is_read_through_the_data_set(isolated_data_dir):
    write_shapes_compressed_h5(isolated_data_dir)
    data = get("shapes3d", strict=False)
    assert data.image_table() is None
    assert data._store.how == "read image by image from the compressed h5"


# --- defaults and refusals ---------------------------------------------------------------------


@pytest.mark.parametrize("table", [None, False])
def test_on_the_cpu_the_default_draws_through_the_data_set(table, isolated_data_dir, monkeypatch):
    write_dsprites(isolated_data_dir)
    data = get("dsprites_full", strict=False)
    assert data.image_table() is not None

    def no_table():
        raise AssertionError("image_table() read although the table is not used")

    monkeypatch.setattr(data, "image_table", no_table)
    batches = MemberBatches(data, B, "cpu", table=table)
    assert batches.via == "data set"
    assert_member_draws(batches, get("dsprites_full", strict=False))


BAD_TABLES = {
    "float32_rows": ("dummy_data", lambda n: (np.zeros((n, 64, 64), dtype=np.float32), 1.0)),
    "float64_rgb_rows": ("mpi3d_toy", lambda n: (np.zeros((n, 64, 64, 3)), 255.0)),
    "wrong_size": ("dummy_data", lambda n: (np.zeros((n, 32, 32), dtype=np.uint8), 1.0)),
    "channels_first": ("mpi3d_toy", lambda n: (np.zeros((n, 3, 64, 64), dtype=np.uint8), 255.0)),
    "grey_rows_for_rgb": ("mpi3d_toy", lambda n: (np.zeros((n, 64, 64), dtype=np.uint8), 255.0)),
}


@pytest.mark.parametrize("placement", ["device", "host"])
@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_a_malformed_table_is_refused(case, placement, monkeypatch):
    name, table = BAD_TABLES[case]
    data = get(name)
    monkeypatch.setattr(data, "image_table", lambda: table(8))
    with pytest.raises(ValueError, match=rf"{name}.*uint8"):
        MemberBatches(data, B, "cpu", table=True, placement=placement)


@pytest.mark.parametrize("table", [None, True, False])
def test_an_unknown_placement_is_refused(table):
    with pytest.raises(ValueError, match="placement"):
        MemberBatches(get("dummy_data"), B, "cpu", table=table, placement="gpu")
