"""Collect a study into one table: a row per run x representation x score key.

Columns: ``model_num``, ``run_id``, ``representation``, ``metric``, ``score_key`` (the
project's namespaced key, e.g. ``dci.disentanglement``), ``value``; the run's resolved
configuration flattened into ``config.*`` columns (``config.objective.beta``,
``config.data.name``, ...), its data source and generator under ``data.*``, and its
post-training evaluation under ``train.*`` (``train.reconstruction_loss``,
``train.kl_loss``, ``train.elbo``, ...). ``repetition`` (0, 1, ... with ``evaluation.num_eval``; 0 on
every row of a study that does not repeat) and ``sample_size`` (the ``num_train`` of a metric swept
by ``evaluation.sample_sizes``; missing where the metric's own setting was used) tell repeated and
swept evaluations apart. Validation scores on labelled sets (docs/semi.md) are rows too, with
``metric`` ``<form>_validation`` and ``validation`` true (false on every other row), and the
labelled set they were scored on under ``validation.*`` (``validation.num_labelled_samples``,
``validation.draw``, ``validation.labeller``, ``validation.own_labels``). Written as Parquet (pyarrow), readable by pandas
with no project code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..config import flatten
from ..io import atomic_path
from ..rundir import StudyDir

ID_COLUMNS = ["model_num", "run_id", "representation", "metric", "score_key", "value"]


def collect(study_dir: str | Path) -> pd.DataFrame:
    study = StudyDir(study_dir)
    spec = study.spec()
    rows = []
    for n in range(len(spec)):
        run = study.run(n)
        if not run.is_claimed:
            continue
        saved = run.saved_config()
        base = {"model_num": n, "run_id": saved["run_id"]}
        base.update({f"config.{k}": _plain(v) for k, v in flatten(saved["config"]).items()})
        base.update({f"data.{k}": _plain(v) for k, v in run.metadata().get("data", {}).items() if k != "name"})
        if run.is_done:
            base.update({f"train.{k}": float(v) for k, v in run.results().items() if isinstance(v, (int, float))})
        for mkey, path in run.metric_files():
            record = json.loads(path.read_text())
            for key, value in sorted(record.get("scores", {}).items()):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append({**base, "representation": mkey.representation, "metric": mkey.metric,
                                 "repetition": mkey.repetition, "sample_size": mkey.sample_size,
                                 "score_key": key, "value": float(value), "validation": False})
        for representation, form, count, draw, path in run.validation_files():
            record = json.loads(path.read_text())
            settings = record.get("settings", {})
            labelled = {"validation": True, "validation.num_labelled_samples": count, "validation.draw": draw,
                        "validation.labeller": settings.get("labeller"), "validation.own_labels": settings.get("own_labels")}
            for key, value in sorted(record.get("scores", {}).items()):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append({**base, "representation": representation, "metric": f"{form}_validation",
                                 "repetition": 0, "sample_size": None, "score_key": key, "value": float(value),
                                 **labelled})
    if not rows:
        return pd.DataFrame(columns=ID_COLUMNS)
    table = pd.DataFrame(rows)
    table["repetition"] = table["repetition"].astype("int64")
    table["sample_size"] = table["sample_size"].astype("Int64")  # missing where the metric's own num_train was used
    rest = sorted(c for c in table.columns if c not in ID_COLUMNS)
    order = ["model_num", "representation", "validation", "validation.num_labelled_samples", "score_key",
             "sample_size", "repetition"]
    table = table[ID_COLUMNS + rest]
    return table.sort_values([c for c in order if c in table.columns], kind="stable").reset_index(drop=True)


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=path.suffix or ".parquet") as tmp:
        if path.suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
    return path


def _plain(value):
    if isinstance(value, (list, tuple)):
        return json.dumps(value)
    return value
