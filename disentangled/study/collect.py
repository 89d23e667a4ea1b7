"""Collect a study into one table: a row per run x representation x score key.

Columns: ``model_num``, ``run_id``, ``representation``, ``metric``, ``score_key`` (the
project's namespaced key, e.g. ``dci.disentanglement``), ``value``; the run's resolved
configuration flattened into ``config.*`` columns (``config.objective.beta``,
``config.data.name``, ...), its data source and generator under ``data.*``, and its
post-training evaluation under ``train.*`` (``train.reconstruction_loss``,
``train.kl_loss``, ``train.elbo``, ...). Written as Parquet (pyarrow), readable by pandas
with no project code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..config import flatten
from ..io import atomic_path
from .store import load_study, run_dir

ID_COLUMNS = ["model_num", "run_id", "representation", "metric", "score_key", "value"]


def collect(study_dir: str | Path) -> pd.DataFrame:
    study_dir = Path(study_dir)
    spec = load_study(study_dir)
    rows = []
    for n in range(len(spec)):
        run = run_dir(study_dir, n)
        if not (run / "config.json").is_file():
            continue
        saved = json.loads((run / "config.json").read_text())
        base = {"model_num": n, "run_id": saved["run_id"]}
        base.update({f"config.{k}": _plain(v) for k, v in flatten(saved["config"]).items()})
        if (run / "metadata.json").is_file():
            meta = json.loads((run / "metadata.json").read_text())
            base.update({f"data.{k}": _plain(v) for k, v in meta.get("data", {}).items() if k != "name"})
        if (run / "train_results.json").is_file():
            results = json.loads((run / "train_results.json").read_text())
            base.update({f"train.{k}": float(v) for k, v in results.items() if isinstance(v, (int, float))})
        for path in sorted((run / "metrics").glob("*/*.json")):
            record = json.loads(path.read_text())
            for key, value in sorted(record.get("scores", {}).items()):
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    rows.append({**base, "representation": path.parent.name, "metric": path.stem,
                                 "score_key": key, "value": float(value)})
    if not rows:
        return pd.DataFrame(columns=ID_COLUMNS)
    table = pd.DataFrame(rows)
    rest = sorted(c for c in table.columns if c not in ID_COLUMNS)
    return table[ID_COLUMNS + rest].sort_values(["model_num", "representation", "score_key"], kind="stable").reset_index(drop=True)


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
