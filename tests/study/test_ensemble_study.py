"""Studies with --ensemble: grouping, run locks, and the same results table as without ensembles."""

import pandas as pd
import pytest
from typer.testing import CliRunner

from disentangled.cli import app
from disentangled.study.collect import collect
from disentangled.study.execute import ensemble_jobs, process_ensemble, run_study
from disentangled.study.spec import from_mapping
from disentangled.rundir import StudyDir

from test_run import TINY, comparable, run_tiny, tiny_spec


def test_runs_are_grouped_by_what_they_share():
    spec = from_mapping({**TINY, "sweep": {"chain": [
        {"product": [{"sweep": {"objective.beta": [1.0, 4.0]}}, {"sweep": {"seed": [0, 1]}}]},
        {"product": [{"fixed": {"objective.name": "beta_tc_vae"}}, {"sweep": {"seed": [0, 1, 2]}}]},
    ]}})
    assert ensemble_jobs(spec, list(range(7)), 3) == [[0, 1, 2], [3], [4, 5, 6]]
    assert ensemble_jobs(spec, list(range(7)), 1) == [[n] for n in range(7)]
    assert ensemble_jobs(spec, [1, 3, 5], 8) == [[1, 3], [5]]


def test_ensemble_study_gives_the_same_table(tmp_path):
    plain, _ = run_tiny(tmp_path, "plain", "inline")
    ensembled, results = run_tiny(tmp_path, "ensembled", "inline", ensemble=3)  # [0, 1, 2] and [3]
    assert sorted(r["status"] for r in results) == ["done"] * 4
    pd.testing.assert_frame_equal(comparable(collect(plain)), comparable(collect(ensembled)))


def test_members_locked_elsewhere_are_left_alone(tmp_path):
    spec = tiny_spec()
    out = tmp_path / "s"
    StudyDir(out).claim(spec)
    with StudyDir(out).run(1).lock() as mine:
        assert mine
        results = process_ensemble(str(out), [0, 1], spec.to_dict(), threads=1)
    assert [r["status"] for r in results] == ["done", "busy"]
    assert not StudyDir(out).run(1).is_done


def test_cli_option_is_validated(tmp_path):
    result = CliRunner().invoke(app, ["study", "run", "quickstart", "--out", str(tmp_path / "s"), "--ensemble", "0"])
    assert result.exit_code != 0 and "--ensemble" in result.output


@pytest.mark.slow
def test_local_executor_with_ensembles(tmp_path):
    inline, _ = run_tiny(tmp_path, "inline", "inline")
    local, results = run_tiny(tmp_path, "local", "local", workers=2, ensemble=2)
    assert sorted(r["status"] for r in results) == ["done"] * 4
    pd.testing.assert_frame_equal(comparable(collect(inline)), comparable(collect(local)))


def test_tf32_reaches_the_ensemble(tmp_path, monkeypatch):
    import disentangled.train.ensemble as ens

    seen = []

    def fake(configs, run_dirs, **kwargs):
        seen.append((len(configs), kwargs["allow_tf32"], str(kwargs["device"])))
        raise RuntimeError("stop here")

    monkeypatch.setattr(ens, "train_ensemble", fake)
    spec = tiny_spec()
    StudyDir(tmp_path / "s").claim(spec)
    results = run_study(spec, tmp_path / "s", executor="inline", ensemble=4, tf32=True, max_attempts=1, progress=False)
    assert seen == [(4, True, "cpu")]
    assert {r["status"] for r in results} == {"failed"} and "stop here" in results[0]["reason"]


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_members_scored_in_separate_processes_give_the_same_table(tmp_path, executor):
    """The GPU default: ensemble processes only train; trained members are scored by other workers."""
    if executor == "ray":
        pytest.importorskip("ray")
    inline, _ = run_tiny(tmp_path, "inline", "inline")
    split, results = run_tiny(tmp_path, "split", executor, workers=1, ensemble=2, eval_workers=1)
    assert sorted(r["model_num"] for r in results) == [0, 1, 2, 3]
    assert {r["status"] for r in results} == {"done"}
    pd.testing.assert_frame_equal(comparable(collect(inline)), comparable(collect(split)))


def test_eval_workers_are_validated(tmp_path):
    spec = tiny_spec()
    StudyDir(tmp_path / "s").claim(spec)
    with pytest.raises(ValueError, match="--eval-workers"):
        run_study(spec, tmp_path / "s", executor="local", ensemble=2, eval_workers=-1, progress=False)


def test_ray_gpu_shares():
    from disentangled.study.execute import ray_gpu_shares

    assert ray_gpu_shares(0.0, 1, True) == (0.0, 0.0)  # a CPU cluster: nothing asked
    assert ray_gpu_shares(1.0, 1, False) == (0.0, 0.0)  # runs trained alone stay on the CPU
    assert ray_gpu_shares(1.0, 1, True) == (0.8, 0.01)  # one ensemble on the GPU, scorers beside it
    assert ray_gpu_shares(1.0, 2, True) == (0.4, 0.01)  # two ensembles share it
    assert ray_gpu_shares(4.0, 2, True) == (0.8, 0.01)  # more GPUs than workers: one each
