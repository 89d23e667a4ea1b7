"""A trained model's pictures: cycles, contrast, files, seeds, skipping, the command."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import typer
from PIL import Image
from scipy.stats import norm
from typer.testing import CliRunner

from disentangled.cli.visualize import visualize as visualize_command
from disentangled.viz import grids
from disentangled.viz import model as vm


class StubModel:
    """z0 = brightness of the image (times 4); the decoder paints sigmoid(6 z0) everywhere
    except a fixed square, so traversing z0 goes from black to white and z1.. do nothing."""

    num_latent = 3

    def encode(self, x):
        brightness = x.mean(dim=(1, 2, 3))
        mean = torch.stack([4 * (brightness - 0.5), torch.zeros_like(brightness), 0.01 * brightness], dim=1)
        return mean, torch.full_like(mean, -2.0)

    def decode(self, z):
        logits = (6 * z[:, 0]).reshape(-1, 1, 1, 1).expand(-1, 1, 64, 64).clone()
        logits[:, :, 20:40, 20:40] = 0.0  # grey square: sigmoid(0) = 0.5
        return logits


class BrightnessData:
    """Uniform grey images of a random brightness in [0, 1]."""

    def sample_observations(self, n, *, rng):
        levels = rng.random(n).astype(np.float32)
        return np.broadcast_to(levels[:, None, None, None], (n, 1, 64, 64)).copy()


# -- the cycles ------------------------------------------------------------------------------


def test_cycle_interval_starts_at_the_base_and_visits_both_ends():
    values = vm.cycle_interval(0.5, 20, -2.0, 2.0)
    assert values[0] == pytest.approx(0.5)
    assert -2.0 <= values.min() < -2.0 + 0.4 and 2.0 - 0.4 < values.max() <= 2.0  # within a step of the ends
    from_end = vm.cycle_interval(-2.0, 20, -2.0, 2.0)
    assert from_end[0] == pytest.approx(-2.0) and from_end[10] == pytest.approx(2.0)
    steps = np.abs(np.diff(np.concatenate([values, values[:1]])))
    assert steps.max() == pytest.approx(4.0 * 2 / 20)  # out and back at constant speed, wrapping smoothly
    np.testing.assert_allclose(vm.cycle_interval(7.0, 4, -1.0, 1.0)[0], 1.0)  # clipped into the interval
    np.testing.assert_allclose(vm.cycle_interval(0.3, 5, 1.0, 1.0), 0.3)  # empty interval: constant


def test_cycle_gaussian_moves_through_quantiles():
    values = vm.cycle_gaussian(0.0, 20, loc=1.0, scale=2.0)
    assert values[0] == pytest.approx(0.0, abs=1e-9)
    lo, hi = norm.ppf(vm.PROBABILITY_CLIP, 1.0, 2.0)
    assert values.min() >= lo - 1e-9 and values.max() <= hi + 1e-9
    assert values.max() > 1.0 + 2 * 2.0  # reaches the tail


def test_latent_statistics_and_traversal_ranges():
    mean = np.array([[0.0, 1.0], [2.0, 1.0]])
    logvar = np.log(np.array([[1.0, 0.5], [1.0, 0.5]]))
    s = vm.latent_statistics(mean, logvar)
    np.testing.assert_allclose(s["loc"], [1.0, 1.0])
    np.testing.assert_allclose(s["scale"], [np.sqrt(1.0 + 1.0), np.sqrt(0.5)])
    np.testing.assert_allclose(s["min"], [0.0, 1.0])
    np.testing.assert_allclose(s["max"], [2.0, 1.0])
    np.testing.assert_allclose(s["kl"], [0.5 * (2.0 + 1 - 1 - 0), 0.5 * (1 + 0.5 - 1 - np.log(0.5))])
    assert vm.latent_statistics(np.zeros((4, 3)), np.zeros((4, 3)))["kl"] == pytest.approx(np.zeros(3))
    fitted = vm.traversal_values(s, "fitted", 5)
    np.testing.assert_allclose(fitted[:, 0], s["loc"] - 2 * s["scale"])
    np.testing.assert_allclose(fitted[:, -1], s["loc"] + 2 * s["scale"])
    np.testing.assert_allclose(vm.traversal_values(s, "minmax", 3)[0], [0.0, 1.0, 2.0])
    np.testing.assert_allclose(vm.traversal_values(s, "unit", 3)[1], [-1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="traversal_range"):
        vm.traversal_values(s, "wide", 3)


# -- the pictures, with a model whose answer is known ---------------------------------------


def test_pictures_have_contrast_and_the_decoder_output_goes_through_a_sigmoid(tmp_path):
    manifest = vm.visualize_model(StubModel(), BrightnessData(), tmp_path, num_frames=6)
    files = manifest["files"]
    assert "reconstructions.png" in files and "samples.png" in files
    assert sum(f.startswith("traversals/base") for f in files) == 5
    assert sum(f.startswith("traversals/dim") for f in files) == 3
    assert sum(f.endswith(".gif") for f in files) == 5 * len(vm.ANIMATIONS)
    for f in files:
        assert (tmp_path / f).is_file()

    # the observations (left of each pair) are drawn as they are; the square of every decoded
    # image is sigmoid(0) = 0.5 -> 128, which only a sigmoid (not a clip of logits) gives
    recon = np.asarray(Image.open(tmp_path / "reconstructions.png").convert("RGB"))
    obs = BrightnessData().sample_observations(64, rng=np.random.default_rng(np.random.SeedSequence(0).spawn(3)[0]))
    np.testing.assert_array_equal(recon[2:66, 2:66], grids.to_hwc_uint8(obs[0]))
    assert recon[2 + 30, 2 + 66 + 30, 0] == 128
    samples = np.asarray(Image.open(tmp_path / "samples.png").convert("L"))
    assert samples.std() > 60  # prior samples of z0 span black to white

    # traversing z0 goes from dark to bright; z1 (never used by the decoder, KL smaller) changes nothing
    z0 = np.asarray(Image.open(tmp_path / "traversals" / "dim0.png").convert("L")).astype(float)
    assert z0.std() > 60
    assert manifest["latent"]["kl"][0] > 1.0 and manifest["latent"]["kl"][1] < manifest["latent"]["kl"][0]

    # a GIF cycles: its z0 panel changes from frame to frame, with full contrast
    frames = iio.imread(tmp_path / "animated_traversals" / "fitted_gaussian_cycle0.gif", index=None)
    assert frames.shape[0] == 6
    panel = frames[:, 14:14 + 64, 2:2 + 64].astype(float)  # the first panel, below its caption
    assert np.ptp(panel.mean(axis=(1, 2, 3))) > 100
    assert len({frame.tobytes() for frame in frames}) > 1


def test_pictures_are_seeded(tmp_path):
    a = vm.visualize_model(StubModel(), BrightnessData(), tmp_path / "a", seed=3, num_animations=1, animations=("minmax_interval",), num_frames=4)
    b = vm.visualize_model(StubModel(), BrightnessData(), tmp_path / "b", seed=3, num_animations=1, animations=("minmax_interval",), num_frames=4)
    vm.visualize_model(StubModel(), BrightnessData(), tmp_path / "c", seed=4, num_animations=1, animations=("minmax_interval",), num_frames=4)
    assert a["files"] == b["files"]
    for f in a["files"]:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "samples.png").read_bytes() != (tmp_path / "c" / "samples.png").read_bytes()


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown animation 'spiral'; known animations: "):
        vm.visualize_model(StubModel(), BrightnessData(), tmp_path, animations=("spiral",))
    with pytest.raises(ValueError, match="num_points"):
        vm.visualize_model(StubModel(), BrightnessData(), tmp_path, num_points=1)
    with pytest.raises(ValueError, match=r"unknown visualisation setting 'frames'.*Did you mean 'num_frames'"):
        vm.settings(frames=3)


def test_gif_writer_keeps_grey_exact_and_colour_close(tmp_path):
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=(3, 16, 24), dtype=np.uint8)
    grids.save_gif(np.repeat(grey[..., None], 3, axis=-1), tmp_path / "grey.gif", fps=5)
    back = iio.imread(tmp_path / "grey.gif", index=None)
    np.testing.assert_array_equal(back[..., 0] if back.ndim == 4 else back, grey)
    colour = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    colour[0, :, :, 0] = 255
    colour[1, :, :, 2] = 255
    grids.save_gif(colour, tmp_path / "colour.gif")
    back = iio.imread(tmp_path / "colour.gif", index=None)[..., :3]
    np.testing.assert_array_equal(back, colour)
    with pytest.raises(ValueError, match="uint8"):
        grids.save_gif(colour.astype(float), tmp_path / "bad.gif")


def test_labelled_and_captioned_grids():
    images = np.random.default_rng(0).random((2, 3, 1, 8, 8))
    picture = grids.labelled_grid(images, ["first", "second"], title="a title")
    assert picture.dtype == np.uint8 and picture.shape[0] > grids.grid(images).shape[0]
    assert picture.shape[1] > grids.grid(images).shape[1]
    captioned = grids.captioned_grid(images, [["a", "b", "c"], ["d", "", None]])
    assert captioned.shape == (grids.grid(images).shape[0] + 2 * 12, grids.grid(images).shape[1], 3)
    with pytest.raises(ValueError, match="row labels"):
        grids.labelled_grid(images, ["only one"])


# -- a real trained run ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from disentangled import config
    from disentangled.train import train

    run = tmp_path_factory.mktemp("run")
    cfg = config.load(None, ["data.name=dummy_data", "train.steps=4", "train.batch_size=4", "train.eval_batches=1"])
    train(cfg, run, progress=False)
    return run


QUICK = {"num_animations": 1, "num_frames": 3, "animations": ("fitted_gaussian", "minmax_interval")}


def test_visualize_a_trained_run(trained_run):
    manifest = vm.visualize(trained_run, **QUICK)
    out = trained_run / "visualizations"
    saved = json.loads((out / vm.MANIFEST).read_text())
    assert saved["files"] == manifest["files"] and saved["run_id"] == json.loads((trained_run / "config.json").read_text())["run_id"]
    assert saved["settings"]["num_frames"] == 3 and saved["data"] == "dummy_data"
    assert len([f for f in manifest["files"] if f.startswith("traversals/dim")]) == 10
    for f in manifest["files"]:
        assert (out / f).stat().st_size > 0
    # the dummy data are uniform noise: the observations beside the reconstructions have contrast
    recon = np.asarray(Image.open(out / "reconstructions.png").convert("L"))
    assert recon[2:66, 2:66].std() > 50
    frames = iio.imread(out / "animated_traversals" / "minmax_interval_cycle0.gif", index=None)
    assert frames.shape[0] == 3
    assert not list(out.rglob("*.partial*"))  # atomic writes leave no temporary files


def test_visualize_skips_when_done_and_redraws_on_request(trained_run):
    vm.visualize(trained_run, **QUICK)
    samples = trained_run / "visualizations" / "samples.png"
    before = samples.stat().st_mtime_ns
    vm.visualize(trained_run, **QUICK)
    assert samples.stat().st_mtime_ns == before
    vm.visualize(trained_run, overwrite=True, **QUICK)
    assert samples.stat().st_mtime_ns != before


def test_visualize_command(trained_run, tmp_path):
    app = typer.Typer()
    app.command()(visualize_command)
    out = tmp_path / "pictures"
    args = [str(trained_run), "-o", str(out), "--num-animations", "1", "--num-frames", "2", "--animation", "conf_interval", "--range", "minmax"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "animated_traversals" / "conf_interval_cycle0.gif").is_file()
    assert json.loads((out / vm.MANIFEST).read_text())["settings"]["traversal_range"] == "minmax"
    assert "latent dimensions" in result.output


def test_visualize_an_unfinished_run_is_a_clear_error(tmp_path):
    from disentangled.data.paths import DataFileError

    with pytest.raises(DataFileError, match="no finished training run"):
        vm.visualize(tmp_path)
