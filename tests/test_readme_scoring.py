"""The README's "Score your own model" example, run as written (its public name stays stable)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _example() -> str:
    text = README.read_text()
    section = text.split("## Score your own model", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README lost its scoring example"
    return blocks[0]


def test_the_readme_example_scores_a_module_and_writes_the_evaluate_records(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_example(), str(README), "exec"), namespace)
    scores = namespace["scores"]
    assert {"mig.discrete_mig", "fairness.mean_fairness.mean_pred.mean_sens"} <= set(scores)
    assert all(type(v) is float for v in scores.values())
    printed = capsys.readouterr().out.split()
    assert float(printed[0]) == scores["mig.discrete_mig"]
    record = json.loads((tmp_path / "my_encoder" / "metrics" / "mean" / "mig.json").read_text())
    assert record["scores"] == {"mig.discrete_mig": scores["mig.discrete_mig"]}
    assert record["seed"] == 3638918503 and record["settings"]["num_train"] == 10_000  # the study's
    assert {"rng", "elapsed_s", "representation", "encoded_on", "data", "package_version"} <= set(record)


def test_score_equals_evaluate_representation_and_accepts_functions():
    import torch

    from disentangled import data as D
    from disentangled import evaluate as ev
    from disentangled import score

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64 * 64, 4))
    dummy = D.get("dummy_data")
    ours = score(module, "dummy_data", metrics=["mig", "unified"], settings={"mig": {"num_train": 300},
                 "unified": {"num_train": 200, "num_test": 100, "matrices": ["mutual_information_matrix"]}}, progress=False)

    def function(images):
        with torch.no_grad():
            return module(torch.as_tensor(images)).numpy()

    records = ev.evaluate_representation(dummy, function, metrics=["mig"], settings={"mig": {"num_train": 300}})
    assert ours["mig.discrete_mig"] == records["mig"]["scores"]["mig.discrete_mig"]
    assert score(function, dummy, metrics=["mig"], settings={"mig": {"num_train": 300}}, progress=False) == {
        "mig.discrete_mig": ours["mig.discrete_mig"]}
    with pytest.raises(ValueError, match="encoder must be a torch.nn.Module or a function"):
        score(42, dummy, metrics=["mig"])


def test_score_udr_of_modules_returning_mean_and_logvar():
    import torch

    from disentangled import score_udr

    class Gaussian(torch.nn.Module):
        def __init__(self, permutation):
            super().__init__()
            self.permutation = permutation

        def forward(self, x):
            mean = x.flatten(1)[:, :10][:, self.permutation]
            return mean, torch.full_like(mean, float(np.log(0.5)))

    result = score_udr([Gaussian(list(range(10))), Gaussian([3, 1, 2, 0, 9, 8, 7, 6, 5, 4])], "dummy_data")
    assert result["model_scores"] == pytest.approx([0.9, 0.9], abs=1e-6)  # copies: 1 - alpha (float32 codes here)


def test_score_on_a_gpu_matches_the_cpu():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    from disentangled import score

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64 * 64, 4))
    settings = {"mig": {"num_train": 500}, "sap": {"num_train": 500, "num_test": 200}}
    cpu = score(module, "dummy_data", metrics=["mig", "sap"], settings=settings, progress=False)
    gpu = score(module, "dummy_data", metrics=["mig", "sap"], settings=settings, progress=False, device="cuda")
    # the codes agree to float32 rounding; the discretised and fitted scores are then equal or nearly
    assert gpu == pytest.approx(cpu, abs=0.02)
