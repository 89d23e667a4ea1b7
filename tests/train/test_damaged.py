"""Damaged files name themselves: checkpoints fall back or say how to restart, weights and JSON files are named."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from disentangled import config as cfg
from disentangled.cli import main
from disentangled.rundir import DamagedFile, RunDir
from disentangled.train import core, representation, train
from disentangled.train import checkpoint as ckpt


def tiny():
    return cfg.load(None, ["data.name=dummy_data", "train.steps=6", "train.batch_size=4", "train.checkpoint_every=2",
                           "train.log_every=1", "train.eval_batches=1"])


def same_weights(a, b):
    wa, wb = load_file(str(RunDir(a).weights_file)), load_file(str(RunDir(b).weights_file))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture
def interrupted(tmp_path, monkeypatch):
    """A run stopped right after its step-4 checkpoint (checkpoints at steps 2 and 4 kept), and the same run trained straight."""
    config = tiny()
    train(config, tmp_path / "straight", progress=False)
    real, calls = core.Member.checkpoint, {"n": 0}

    def stop_after_second(self, *args, **kwargs):
        real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(core.Member, "checkpoint", stop_after_second)
    run = RunDir(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        train(config, run.path, progress=False)
    monkeypatch.setattr(core.Member, "checkpoint", real)
    assert [p.name for p in ckpt.complete(run.checkpoints)] == ["step_000000004", "step_000000002"]
    return config, run, tmp_path / "straight"


def flip_a_byte(path, offset=-100):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage state", "no tensors"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(interrupted, damage):
    config, run, straight = interrupted
    newest = ckpt.complete(run.checkpoints)[0]
    if damage == "truncate":
        data = (newest / ckpt.TENSORS).read_bytes()
        (newest / ckpt.TENSORS).write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # the file still parses; only the checksum notices
        flip_a_byte(newest / ckpt.TENSORS)
    elif damage == "garbage state":
        (newest / ckpt.STATE).write_text("{not json")
    else:
        (newest / ckpt.TENSORS).unlink()
    with pytest.warns(UserWarning, match=rf"{newest.name}.*resuming from the earlier checkpoint step_000000002"):
        train(config, run.path, resume=True, progress=False)
    assert same_weights(run.path, straight)  # resumed bit for bit from step 2
    steps = [json.loads(line)["step"] for line in run.log_file.read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_garbage_latest_pointer_changes_nothing(interrupted):
    config, run, straight = interrupted
    (run.checkpoints / ckpt.LATEST).write_text("garbage")
    train(config, run.path, resume=True, progress=False)
    assert same_weights(run.path, straight)


def test_no_readable_checkpoint_says_how_to_restart(interrupted, capsys):
    config, run, straight = interrupted
    for path in ckpt.complete(run.checkpoints):
        flip_a_byte(path / ckpt.TENSORS)
    with pytest.raises(DamagedFile, match=r"tensors.safetensors: its bytes do not match the checksum.*--restart"):
        train(config, run.path, resume=True, progress=False)
    args = ["train", "data.name=dummy_data", "train.steps=6", "train.batch_size=4", "train.checkpoint_every=2",
            "train.log_every=1", "train.eval_batches=1", "--out", str(run.path), "--no-progress"]
    with pytest.raises(SystemExit) as exit_:
        main(args + ["--resume"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and "--restart" in err
    main(args + ["--restart"])
    assert run.is_done and same_weights(run.path, straight)


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_final_weights_are_named(tmp_path, damage, capsys):
    run = RunDir(tmp_path / "run")
    train(tiny(), run.path, progress=False)
    if damage == "truncate":
        run.weights_file.write_bytes(run.weights_file.read_bytes()[:50])
    else:
        flip_a_byte(run.weights_file)
    with pytest.raises(DamagedFile, match=rf"{run.weights_file.name}.*train the run again"):
        representation(run.path, "mean")
    with pytest.raises(SystemExit) as exit_:
        main(["evaluate", str(run.path), "--metric", "mig"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "model.safetensors" in err and "Traceback" not in err


@pytest.mark.parametrize("name", ["config.json", "train.done", "metadata.json"])
def test_garbage_json_in_a_run_directory_is_named(tmp_path, name):
    run = RunDir(tmp_path / "run")
    train(tiny(), run.path, progress=False)
    (run.path / name).write_text("Expecting nothing")
    with pytest.raises(DamagedFile, match=rf"{name}: not readable as JSON"):
        if name == "metadata.json":
            run.metadata()
        else:
            train(tiny(), run.path, progress=False)
            representation(run.path, "mean")


def test_identical_runs_write_identical_files(tmp_path):
    """Two runs of one configuration in separate processes give byte-identical weights and checkpoints."""
    code = ("import sys; from disentangled import config as cfg; from disentangled.train import train; "
            "c = cfg.load(None, ['data.name=dummy_data', 'train.steps=2', 'train.batch_size=4', 'train.eval_batches=1']); "
            "train(c, sys.argv[1], progress=False)")
    digests = []
    for name in ("a", "b"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True)
        run = RunDir(tmp_path / name)
        files = [run.weights_file, *sorted(run.checkpoints.glob("step_*/" + ckpt.TENSORS))]
        digests.append([hashlib.sha256(f.read_bytes()).hexdigest() for f in files])
    assert digests[0] == digests[1]
    assert RunDir(tmp_path / "a").done_record()["weights_sha256"] == digests[0][0]


def test_weights_round_trip_with_their_metadata(tmp_path):
    state = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.zeros(3)}

    class Holder:
        def state_dict(self):
            return state

    digest = ckpt.save_weights(Holder(), tmp_path / "w.safetensors", {"step": 3, "run_id": "abc"})
    loaded = ckpt.load_weights(tmp_path / "w.safetensors", digest)
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    np.testing.assert_array_equal(loaded["w"].numpy(), np.arange(6, dtype=np.float32).reshape(2, 3))
