"""The statistics behind the paper's figures and tables, on the collected results table.

The results table (``disentangled study collect``) has one row per run x representation x
score key. :func:`models` turns it into one row per run: its data set, method,
regularisation strength and seed, its training losses and its scores. Everything else here
works on that frame and returns plain pandas frames (written as CSV by the report):

* :func:`rank_correlation` — Spearman correlations on pairwise-complete observations
  (Figs. 2, 4 centre, 5);
* :func:`tc_summary`, :func:`tc_trends` — total correlation against regularisation (Fig. 1);
* :func:`distribution_summary`, :func:`seed_beats_setting` — scores per method and per
  hyperparameter over seeds (Figs. 3-4 left);
* :func:`median_scores`, :func:`transfer_matrix` — hyperparameter transfer (Fig. 4 right);
* :func:`transfer_vs_random` — the Table 1 procedure;
* :func:`downstream_quantities` — downstream accuracy and sample efficiency (Figs. 5-6);
* :func:`r_squared`, :func:`variance_explained` — Table 5's OLS on one-hot predictors;
* :func:`udr_correlation` — UDR against the supervised metrics (Duan et al., ICLR 2020);
* :func:`fairness_columns`, :func:`largest_accuracies` — unfairness against disentanglement
  and downstream accuracy (Locatello et al., NeurIPS 2019);
* :func:`repetition_spread`, :func:`sample_size_agreement` — the metrics' stability across
  evaluation repetitions and sample sizes (the JMLR version).

A JMLR-style table holds several evaluations of a run's metric (columns ``repetition`` and
``sample_size``); :func:`primary_rows` picks the one evaluation every other analysis reads.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..errors import MissingFileError

# the paper's six metrics: label -> project score key (docs/metrics.md)
METRICS = {
    "BetaVAE": "beta_vae.eval_accuracy",
    "FactorVAE": "factor_vae.eval_accuracy",
    "MIG": "mig.discrete_mig",
    "DCI": "dci.disentanglement",
    "Modularity": "modularity_explicitness.modularity_score",
    "SAP": "sap.sap_score",
}
TC_KEY = "unsupervised.gaussian_total_correlation"
# the unsupervised scores of Fig. 4 centre: label -> column of :func:`models`
UNSUPERVISED = {
    "reconstruction": "train.reconstruction_loss",
    "KL": "train.kl_loss",
    "ELBO": "train.elbo",
    "sampled TC": "tc_sampled",
}
# the swept hyperparameter of each method (the study's "regularisation strength")
REGULARIZER = {
    "beta_vae": "beta",
    "annealed_vae": "c_max",
    "factor_vae": "gamma",
    "dip_vae_i": "lambda_od",
    "dip_vae_ii": "lambda_od",
    "beta_tc_vae": "beta",
    "group_vae": "beta",
    "ada_gvae": "beta",
    "ml_vae": "beta",
    "ada_ml_vae": "beta",
}
#: the weakly-supervised methods (trained on pairs; Locatello et al. 2020), in the reference's order
WEAK_METHODS = ("group_vae", "ada_gvae", "ml_vae", "ada_ml_vae")
METHOD_LABELS = {
    "beta_vae": "β-VAE",
    "annealed_vae": "AnnealedVAE",
    "factor_vae": "FactorVAE",
    "dip_vae_i": "DIP-VAE-I",
    "dip_vae_ii": "DIP-VAE-II",
    "beta_tc_vae": "β-TCVAE",
    "group_vae": "GVAE",
    "ada_gvae": "Ada-GVAE",
    "ml_vae": "ML-VAE",
    "ada_ml_vae": "Ada-ML-VAE",
}
PARAM_LABELS = {"beta": "β", "gamma": "γ", "c_max": "C_max", "lambda_od": "λ_od"}
# Table 1 of the paper, in percent
TABLE1_PAPER = {
    ("same", "same"): 80.7,
    ("same", "other"): 59.3,
    ("other", "same"): 62.6,
    ("other", "other"): 54.9,
}
DOWNSTREAM = {"downstream_logistic_regression": "LR", "downstream_boosted_trees": "GBT"}
_DOWNSTREAM_KEY = re.compile(r"^(downstream_logistic_regression|downstream_boosted_trees)\.(\d+)[.:]mean_test_accuracy$")

#: UDR of a run (``disentangled evaluate --udr STUDY_DIR``; metric ``udr``, mean representation)
UDR_KEY = "udr.model_score"
#: the fairness metric's unfairness scores: label -> score key (docs/metrics.md). Both average
#: over (target, sensitive) pairs; per pair, "mean" weighs the sensitive groups' total variation
#: by group size, "max" takes the worst group. The first is the paper's score.
FAIRNESS = {
    "mean unfairness": "fairness.mean_fairness.mean_pred.mean_sens",
    "max unfairness": "fairness.max_fairness.mean_pred.mean_sens",
}
#: the evaluation columns of a JMLR-style study (``disentangled study collect``): the
#: evaluation repetition (0 .. num_eval - 1) and the swept training sample size (NaN on the
#: rows of metrics that were not swept). Older tables lack both.
REPETITION = "repetition"
SAMPLE_SIZE = "sample_size"

INFO = ["model_num", "run_id", "dataset", "method", "strength_name", "strength", "seed", "setting"]


def method_label(method: str) -> str:
    return METHOD_LABELS.get(method, str(method))


def metric_label(key: str) -> str:
    for label, k in METRICS.items():
        if k == key:
            return label
    return key


# -- the per-model frame ---------------------------------------------------------------------


def read_table(path) -> pd.DataFrame:
    """The results table from Parquet or CSV."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no results table here; make one with `disentangled study collect STUDY_DIR -o {path.name}`")
    return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)


def primary_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows the per-run analyses read: one evaluation per run x representation x score key.

    A JMLR-style study evaluates each metric ``num_eval`` times (column :data:`REPETITION`)
    and the swept metrics at several training sample sizes (:data:`SAMPLE_SIZE`). The primary
    evaluation is

    * repetition 0 (a missing repetition, as in tables written before the column existed,
      counts as 0): the first evaluation is what an ordinary study computes, and taking one
      repetition rather than their mean keeps every score the estimate a single evaluation
      gives, as in the paper's other analyses;
    * per representation x score key, over the whole table: the rows without a sample size when
      the key has any (the metric evaluated with its own configured ``num_train``, as an
      ordinary study does), else the rows at the largest sample size present for that key
      (the least noisy estimate, and the nearest to the metric's default). The choice is made
      for the table, not per run, so that all runs are compared at one sample size; a run
      lacking that size has no score for the key rather than a score at another size.

    Rows of other keys, validation rows and tables without the two columns pass unchanged.
    """
    out = table
    if out.empty:
        return out
    if REPETITION in out.columns:
        out = out[np.nan_to_num(_floats(out[REPETITION]), nan=0.0) == 0]
    if SAMPLE_SIZE in out.columns and "score_key" in out.columns:
        size = pd.Series(_floats(out[SAMPLE_SIZE]), index=out.index)
        if size.notna().any():
            by = [out[c] for c in ("representation", "score_key") if c in out.columns]
            unsized_here = size.isna().groupby(by, dropna=False).transform("any").to_numpy(dtype=bool)
            largest = size.groupby(by, dropna=False).transform("max").to_numpy(dtype=float)
            sized = size.to_numpy()
            with np.errstate(invalid="ignore"):
                keep = np.where(unsized_here, np.isnan(sized), sized == largest)
            out = out[keep]
    return out


def _floats(column: pd.Series) -> np.ndarray:
    """``column`` as float64 with NaN for anything missing or non-numeric (the table's
    ``sample_size`` is a nullable integer column, whose ``pd.NA`` numpy cannot hold as float)."""
    return pd.to_numeric(column, errors="coerce").astype("float64").to_numpy()


def models(table: pd.DataFrame, representation: str = "mean") -> pd.DataFrame:
    """One row per run: ``INFO`` columns, ``train.*`` columns, ``tc_mean``/``tc_sampled`` and
    every score key of ``representation`` as a column (NaN where a run lacks it), from the
    table's primary evaluation (:func:`primary_rows`); validation scores (``validation`` true)
    are not columns (:func:`semi_selection` reads them).

    ``dataset`` is ``config.data.name`` (with the source appended when one name appears with
    several sources); ``strength`` is the method's swept hyperparameter (:data:`REGULARIZER`).
    UDR (:data:`UDR_KEY`) is scored on the mean representation and is a column whatever
    ``representation`` is.
    """
    if table.empty or "model_num" not in table.columns:
        return pd.DataFrame(columns=INFO)
    # the runs and their configurations from every row, the scores from the primary ones only
    per_run = table.drop_duplicates("model_num").set_index("model_num").sort_index()
    table = primary_rows(table)
    out = pd.DataFrame(index=per_run.index)
    out["run_id"] = per_run.get("run_id", pd.Series(index=per_run.index, dtype=object))
    out["dataset"] = _datasets(per_run)
    out["method"] = per_run.get("config.objective.name", pd.Series("unknown", index=per_run.index)).fillna("unknown").astype(str)
    out["strength_name"] = out["method"].map(REGULARIZER)
    strength = pd.Series(np.nan, index=per_run.index, dtype=float)
    for method, param in REGULARIZER.items():
        col = f"config.objective.{param}"
        rows = out["method"] == method
        if col in per_run.columns and rows.any():
            strength[rows] = pd.to_numeric(per_run.loc[rows, col], errors="coerce")
    out["strength"] = strength
    out["seed"] = pd.to_numeric(per_run.get("config.seed", pd.Series(np.nan, index=per_run.index)), errors="coerce")
    out["setting"] = [_setting(m, p, v) for m, p, v in zip(out["method"], out["strength_name"], out["strength"])]
    for col in sorted(c for c in per_run.columns if c.startswith("train.")):
        out[col] = pd.to_numeric(per_run[col], errors="coerce")
    if {"representation", "score_key", "value"} <= set(table.columns):
        for rep in ("mean", "sampled"):
            tc = _scores(table, rep, [TC_KEY])
            out[f"tc_{rep}"] = tc[TC_KEY] if TC_KEY in tc.columns else np.nan
        scores = _scores(table, representation, None)
        for key in scores.columns:
            out[key] = scores[key]
        if representation != "mean":
            udr = _scores(table, "mean", [UDR_KEY])
            if UDR_KEY in udr.columns:
                out[UDR_KEY] = udr[UDR_KEY]
    out = out.reset_index()
    return out


def _datasets(per_run: pd.DataFrame) -> pd.Series:
    names = per_run.get("config.data.name", pd.Series("unknown", index=per_run.index)).fillna("unknown").astype(str)
    if "config.data.source" not in per_run.columns:
        return names
    sources = per_run["config.data.source"].fillna("").astype(str)
    several = {n for n in names.unique() if sources[names == n].nunique() > 1}
    return pd.Series([f"{n} ({s})" if n in several else n for n, s in zip(names, sources)], index=per_run.index)


def _setting(method, param, value) -> str:
    if not isinstance(param, str) or not np.isfinite(value):
        return method_label(method)
    return f"{method_label(method)} {PARAM_LABELS.get(param, param)}={value:g}"


def _scores(table: pd.DataFrame, representation: str, keys) -> pd.DataFrame:
    """``[run, score key]`` of ``representation``'s test scores in ``table`` (already reduced to
    one evaluation per run and key by :func:`primary_rows`)."""
    rows = table[table["representation"] == representation]
    if "validation" in rows.columns:  # the label counts' validation scores share keys: never pool them
        rows = rows[~rows["validation"].eq(True).to_numpy()]
    if keys is not None:
        rows = rows[rows["score_key"].isin(keys)]
    if rows.empty:
        return pd.DataFrame()
    values = pd.to_numeric(rows["value"], errors="coerce")
    # after primary_rows a (run, key) has one row; "mean" only merges rows a table repeats verbatim
    return rows.assign(value=values).groupby(["model_num", "score_key"])["value"].mean().unstack("score_key")


def present(frame: pd.DataFrame, keys) -> list[str]:
    """The keys among ``keys`` that are columns of ``frame`` with at least one finite value."""
    out = []
    for key in keys:
        if key in frame.columns:
            values = pd.to_numeric(frame[key], errors="coerce")
            if np.isfinite(values.to_numpy(dtype=float)).any():
                out.append(key)
    return out


# -- rank correlations -----------------------------------------------------------------------


def spearman(x, y, *, min_pairs: int = 3) -> float:
    """Spearman's rho on the pairs where neither value is NaN (infinities rank at the ends).

    NaN with fewer than ``min_pairs`` pairs or when either side is constant.
    """
    from scipy.stats import rankdata

    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < min_pairs:
        return float("nan")
    rx, ry = rankdata(x[keep]), rankdata(y[keep])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    if denom == 0:
        return float("nan")
    return float(np.clip((rx * ry).sum() / denom, -1.0, 1.0))


def rank_correlation(frame: pd.DataFrame, rows, cols=None, *, min_pairs: int = 3) -> pd.DataFrame:
    """Spearman matrix between the columns ``rows`` and ``cols`` (default ``rows``) of ``frame``."""
    rows = list(rows)
    cols = rows if cols is None else list(cols)
    out = pd.DataFrame(np.nan, index=rows, columns=cols, dtype=float)
    for a in rows:
        for b in cols:
            out.loc[a, b] = spearman(frame[a], frame[b], min_pairs=min_pairs)
    return out


def per_dataset(frame: pd.DataFrame, fn) -> dict[str, object]:
    """``fn(rows of one data set)`` for every data set, in sorted order, dropping ``None``."""
    out = {}
    for dataset, rows in frame.groupby("dataset", sort=True):
        value = fn(rows)
        if value is not None:
            out[dataset] = value
    return out


def long_matrices(matrices: dict[str, pd.DataFrame], row_name: str = "row", col_name: str = "column", value_name: str = "spearman") -> pd.DataFrame:
    """Stack ``{dataset: matrix}`` into a long frame (dataset, row, column, value)."""
    parts = []
    for dataset, matrix in matrices.items():
        long = matrix.rename_axis(index=row_name, columns=col_name).stack(future_stack=True).rename(value_name).reset_index()
        long.insert(0, "dataset", dataset)
        parts.append(long)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["dataset", row_name, col_name, value_name])


# -- Fig. 1: total correlation against regularisation ----------------------------------------


def strength_levels(frame: pd.DataFrame) -> dict[str, list[float]]:
    """Each method's hyperparameter values present, sorted."""
    out = {}
    for method, rows in frame.groupby("method", sort=False):
        values = sorted(v for v in rows["strength"].unique() if np.isfinite(v))
        out[method] = values
    return out


def tc_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Median Gaussian TC of each representation per data set x method x strength (Fig. 1)."""
    parts = []
    for rep in ("sampled", "mean"):
        col = f"tc_{rep}"
        if col not in frame.columns:
            continue
        rows = frame[np.isfinite(frame["strength"]) & frame[col].notna()]
        if rows.empty:
            continue
        g = rows.groupby(["dataset", "method", "strength"])[col]
        part = pd.DataFrame({"median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75), "n": g.size()}).reset_index()
        part.insert(3, "representation", rep)
        parts.append(part)
    if not parts:
        return pd.DataFrame(columns=["dataset", "method", "strength", "representation", "median", "q25", "q75", "n"])
    return pd.concat(parts, ignore_index=True)


def tc_trends(frame: pd.DataFrame) -> pd.DataFrame:
    """Per data set x method x representation: Spearman(strength, TC) over runs and the median
    TC at the lowest and highest strength.

    Two hyperparameter values suffice: with one run at each, Spearman's rho is +1 or -1 (the
    sign of the TC's change), with several it counts the seeds' ties in strength. It is NaN,
    with the reason in ``note``, when the method has fewer than two values, when TC is known
    at only one of them, or when every run has the same TC (a constant side has no ranking).
    """
    rows = []
    for (dataset, method), group in frame.groupby(["dataset", "method"], sort=True):
        levels = sorted(v for v in group["strength"].unique() if np.isfinite(v))
        for rep in ("sampled", "mean"):
            col = f"tc_{rep}"
            if col not in group.columns or group[col].notna().sum() == 0:
                continue
            known = group[np.isfinite(group["strength"].to_numpy(dtype=float)) & group[col].notna()]
            levels_with_tc = known["strength"].nunique()
            rho, note = np.nan, ""
            if not levels:
                note = f"no value of the method's hyperparameter ({REGULARIZER.get(method, 'unknown')}) in the table"
            elif len(levels) < 2:
                note = f"a single hyperparameter value ({levels[0]:g})"
            elif levels_with_tc < 2:
                note = "TC known at only one hyperparameter value"
            else:
                # two runs (one per value) are enough for a sign; spearman() is NaN on a constant side
                rho = spearman(known["strength"], known[col], min_pairs=2)
                if not np.isfinite(rho):
                    note = "the same TC at every hyperparameter value (no ranking)"
            enough = len(levels) >= 2
            rows.append({
                "dataset": dataset,
                "method": method,
                "representation": rep,
                "spearman_strength_tc": rho,
                "median_lowest": group.loc[group["strength"] == levels[0], col].median() if levels else np.nan,
                "median_highest": group.loc[group["strength"] == levels[-1], col].median() if enough else np.nan,
                "num_strengths": len(levels),
                "n": int(group[col].notna().sum()),
                "note": note,
            })
    return pd.DataFrame(rows, columns=["dataset", "method", "representation", "spearman_strength_tc", "median_lowest", "median_highest",
                                       "num_strengths", "n", "note"])


def fraction_mean_above_sampled(frame: pd.DataFrame) -> float:
    """The fraction of models whose mean-representation TC exceeds the sampled one's (Fig. 10)."""
    if "tc_mean" not in frame.columns or "tc_sampled" not in frame.columns:
        return float("nan")
    both = frame[["tc_mean", "tc_sampled"]].dropna()
    return float((both["tc_mean"] > both["tc_sampled"]).mean()) if len(both) else float("nan")


# -- Figs. 3-4 left: distributions -----------------------------------------------------------


def distribution_summary(frame: pd.DataFrame, keys) -> pd.DataFrame:
    """Quantiles of each score per data set x method (``strength`` NaN: over all its values)
    and per data set x method x strength (over seeds)."""
    parts = []
    for key in keys:
        values = frame[["dataset", "method", "strength", key]].rename(columns={key: "value"})
        values = values[np.isfinite(values["value"].to_numpy(dtype=float))]
        if values.empty:
            continue
        for by in (["dataset", "method"], ["dataset", "method", "strength"]):
            g = values.groupby(by, dropna=False)["value"]
            part = pd.DataFrame({
                "n": g.size(), "median": g.median(), "q25": g.quantile(0.25), "q75": g.quantile(0.75), "min": g.min(), "max": g.max(),
            }).reset_index()
            if "strength" not in part.columns:
                part["strength"] = np.nan
            part["metric"] = key
            parts.append(part)
    columns = ["dataset", "metric", "method", "strength", "n", "median", "q25", "q75", "min", "max"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns].sort_values(["dataset", "metric", "method", "strength"], na_position="first").reset_index(drop=True)


def seed_beats_setting(frame: pd.DataFrame, keys) -> pd.DataFrame:
    """Per data set x metric x method: does some run of a worse hyperparameter beat some run of
    the best one (by median)? Also the probability that a random run of another value beats a
    random run of the best value (Fig. 3 right's reading)."""
    rows = []
    for key in keys:
        for (dataset, method), group in frame.groupby(["dataset", "method"], sort=True):
            by = {v: g[key].dropna().to_numpy(dtype=float) for v, g in group.groupby("strength")}
            by = {v: x[np.isfinite(x)] for v, x in by.items()}
            by = {v: x for v, x in by.items() if len(x)}
            if len(by) < 2:
                continue
            best = max(by, key=lambda v: np.median(by[v]))
            others = np.concatenate([x for v, x in by.items() if v != best])
            wins = (others[:, None] > by[best][None, :]).mean()
            rows.append({
                "dataset": dataset, "metric": key, "method": method, "best_strength": best,
                "some_worse_run_beats_some_best_run": bool(others.max() > by[best].min()),
                "p_worse_run_beats_best_run": float(wins),
            })
    return pd.DataFrame(rows, columns=["dataset", "metric", "method", "best_strength", "some_worse_run_beats_some_best_run", "p_worse_run_beats_best_run"])


def method_overlap(frame: pd.DataFrame, keys) -> pd.DataFrame:
    """Per data set x metric: the best method by median and whether its interquartile range
    overlaps that of every other method (Fig. 3 left's reading)."""
    rows = []
    for key in keys:
        for dataset, group in frame.groupby("dataset", sort=True):
            q = group.groupby("method")[key].quantile([0.25, 0.5, 0.75]).unstack()
            q = q.dropna()
            if len(q) < 2:
                continue
            best = q[0.5].idxmax()
            others = q.drop(index=best)
            overlaps = bool((others[0.75] >= q.loc[best, 0.25]).all())
            rows.append({"dataset": dataset, "metric": key, "best_method": best, "best_median": float(q.loc[best, 0.5]), "iqr_overlaps_all": overlaps})
    return pd.DataFrame(rows, columns=["dataset", "metric", "best_method", "best_median", "iqr_overlaps_all"])


# -- Fig. 4 right and Table 1: transfer --------------------------------------------------------


def median_scores(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """Median of ``key`` over seeds: rows are settings (method, strength), columns data sets."""
    rows = frame[np.isfinite(frame[key].to_numpy(dtype=float))] if key in frame.columns else frame.iloc[:0]
    if rows.empty:
        return pd.DataFrame()
    return rows.groupby(["method", "strength", "dataset"], dropna=False)[key].median().unstack("dataset")


def transfer_matrix(frame: pd.DataFrame, key: str, *, min_settings: int = 3) -> pd.DataFrame:
    """Spearman correlation of the median ``key`` per setting between every two data sets."""
    medians = median_scores(frame, key)
    if medians.shape[1] < 2:
        return pd.DataFrame()
    return rank_correlation(medians, list(medians.columns), min_pairs=min_settings)


def score_cube(frame: pd.DataFrame, keys) -> tuple[np.ndarray, dict]:
    """Scores as an array ``[data set, metric, setting, seed]`` (NaN where absent) and its axes."""
    datasets = sorted(frame["dataset"].unique())
    settings = sorted({_setting_key(m, s) for m, s in zip(frame["method"], frame["strength"])}, key=lambda t: (t[0], -np.inf if t[1] is None else t[1]))
    seeds = sorted(frame["seed"].dropna().unique())
    cube = np.full((len(datasets), len(keys), len(settings), len(seeds)), np.nan)
    d_index = {d: i for i, d in enumerate(datasets)}
    s_index = {s: i for i, s in enumerate(settings)}
    seed_index = {s: i for i, s in enumerate(seeds)}
    for m, key in enumerate(keys):
        if key not in frame.columns:
            continue
        g = frame.groupby(["dataset", "method", "strength", "seed"], dropna=False)[key].median()
        for (dataset, method, strength, seed), value in g.items():
            if seed in seed_index and np.isfinite(value):
                cube[d_index[dataset], m, s_index[_setting_key(method, strength)], seed_index[seed]] = value
    return cube, {"datasets": datasets, "metrics": list(keys), "settings": settings, "seeds": seeds}


def _setting_key(method, strength) -> tuple:
    strength = float(strength)
    return (str(method), None if np.isnan(strength) else strength)


def transfer_vs_random(frame: pd.DataFrame, keys, *, num_draws: int = 10_000, rng=None) -> pd.DataFrame:
    """The Table 1 procedure: how often a hyperparameter setting chosen on a source beats a
    random model on a target.

    Each draw picks a seed ``s``, a metric ``m`` and a data set ``d``; the source setting is the
    one with the highest ``m`` among the settings trained with seed ``s`` on ``d``. The target
    is ``d`` itself or another data set, and ``m`` itself or another metric. The source setting,
    at a random seed (another one than ``s`` when the data set is the same), is compared with a
    uniformly random model (setting and seed) on the target; a success is a score at least as
    high. Draws that hit a missing score are redrawn. Returns one row per scenario with the
    success probability, the number of draws and the paper's value (percent), or NaN with a
    ``note`` when the table cannot support the scenario.
    """
    rng = np.random.default_rng(rng)
    keys = list(keys)
    cube, _axes = score_cube(frame, keys) if len(frame) else (np.zeros((0, 0, 0, 0)), {})
    rows = []
    for metric_mode in ("same", "other"):
        for data_mode in ("same", "other"):
            row = {"metric": metric_mode, "data_set": data_mode, "probability": np.nan, "draws": 0,
                   "paper_percent": TABLE1_PAPER[(metric_mode, data_mode)], "note": ""}
            why = _transfer_unsupported(cube, metric_mode, data_mode)
            if why:
                row["note"] = why
            else:
                wins, draws = _transfer_draws(cube, metric_mode, data_mode, num_draws, rng)
                row.update(probability=wins / draws if draws else np.nan, draws=draws,
                           note="" if draws else "no complete draws: too many missing scores")
            rows.append(row)
    return pd.DataFrame(rows)


def _transfer_unsupported(cube: np.ndarray, metric_mode: str, data_mode: str) -> str:
    n_d, n_m, n_set, n_seed = cube.shape if cube.ndim == 4 else (0, 0, 0, 0)
    if n_set < 2:
        return "needs at least two hyperparameter settings"
    if data_mode == "other" and n_d < 2:
        return "needs at least two data sets"
    if metric_mode == "other" and n_m < 2:
        return "needs at least two metrics"
    if data_mode == "same" and n_seed < 2:
        return "needs at least two seeds (the transferred model is compared at another seed)"
    return ""


def _transfer_draws(cube: np.ndarray, metric_mode: str, data_mode: str, num_draws: int, rng) -> tuple[int, int]:
    n_d, n_m, n_set, n_seed = cube.shape
    with np.errstate(invalid="ignore"):
        filled = np.where(np.isnan(cube), -np.inf, cube)
    best = np.argmax(filled, axis=2)  # [d, m, seed]: the best setting (index) per source
    has_source = np.isfinite(cube).any(axis=2)
    wins = draws = 0
    attempts = 0
    while draws < num_draws and attempts < 50:
        attempts += 1
        n = 2 * (num_draws - draws) + 64
        d = rng.integers(n_d, size=n)
        m = rng.integers(n_m, size=n)
        s = rng.integers(n_seed, size=n)
        d2 = d if data_mode == "same" else (d + rng.integers(1, n_d, size=n)) % n_d
        m2 = m if metric_mode == "same" else (m + rng.integers(1, n_m, size=n)) % n_m
        s2 = (s + rng.integers(1, n_seed, size=n)) % n_seed if data_mode == "same" else rng.integers(n_seed, size=n)
        chosen = best[d, m, s]
        r_set = rng.integers(n_set, size=n)
        r_seed = rng.integers(n_seed, size=n)
        transferred = cube[d2, m2, chosen, s2]
        random = cube[d2, m2, r_set, r_seed]
        ok = has_source[d, m, s] & np.isfinite(transferred) & np.isfinite(random)
        take = np.flatnonzero(ok)[: num_draws - draws]
        wins += int((transferred[take] >= random[take]).sum())
        draws += len(take)
    return wins, draws


# -- Figs. 5-6: downstream -------------------------------------------------------------------


def downstream_sizes(frame: pd.DataFrame) -> dict[str, list[int]]:
    """``{metric name: training sizes}`` of the downstream mean test accuracies present."""
    out: dict[str, list[int]] = {}
    for col in frame.columns:
        match = _DOWNSTREAM_KEY.match(str(col))
        if match and frame[col].notna().any():
            out.setdefault(match.group(1), []).append(int(match.group(2)))
    return {k: sorted(v) for k, v in out.items()}


def _accuracy_column(frame: pd.DataFrame, metric: str, size: int) -> str:
    for sep in (".", ":"):
        col = f"{metric}.{size}{sep}mean_test_accuracy"
        if col in frame.columns:
            return col
    raise KeyError(f"{metric} at {size}")


def downstream_quantities(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Derived columns: accuracy at each training size and statistical efficiency.

    Efficiency is accuracy with 100 training points divided by accuracy with the largest
    size (the paper: 100 / 10,000); its label names the sizes used. Returns the frame of
    derived columns (aligned with ``frame``) and ``{label: description}``.
    """
    out = pd.DataFrame(index=frame.index)
    described = {}
    for metric, sizes in downstream_sizes(frame).items():
        short = DOWNSTREAM[metric]
        for size in sizes:
            label = f"{short} acc@{size}"
            out[label] = frame[_accuracy_column(frame, metric, size)]
            described[label] = f"{metric} mean test accuracy with {size} training points"
        small = 100 if 100 in sizes else None
        if small is not None and sizes[-1] > small:
            label = f"{short} efficiency ({small}/{sizes[-1]})"
            with np.errstate(divide="ignore", invalid="ignore"):
                out[label] = out[f"{short} acc@{small}"] / out[f"{short} acc@{sizes[-1]}"]
            described[label] = f"{metric}: accuracy with {small} training points / accuracy with {sizes[-1]}"
    return out, described


# -- Table 5: variance explained -------------------------------------------------------------


def weak_comparison(frame: pd.DataFrame, keys) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weakly-supervised against unsupervised methods, per data set and metric.

    Returns ``(summary, cells)``: ``summary`` has one row per data set x metric x method
    (``family`` weak or unsupervised, ``n`` models, ``median``, ``q25``, ``q75`` over every
    seed, hyperparameter and k); ``cells`` one row per data set x metric holding both
    families: the best median of each, which family is higher, and the fraction of
    (weak model, unsupervised model) pairs where the weak model scores higher. Empty when
    no data set holds both families.
    """
    rows, cells = [], []
    for dataset in sorted(frame["dataset"].unique()):
        here = frame[frame["dataset"] == dataset]
        weak = [m for m in here["method"].unique() if m in WEAK_METHODS]
        unsupervised = [m for m in here["method"].unique() if m not in WEAK_METHODS]
        if not weak or not unsupervised:
            continue
        for key in keys:
            best = {}
            pooled = {}
            for family, methods in (("weak", weak), ("unsupervised", unsupervised)):
                values_all = []
                for method in methods:
                    values = pd.to_numeric(here.loc[here["method"] == method, key], errors="coerce").to_numpy(dtype=float)
                    values = values[np.isfinite(values)]
                    if not len(values):
                        continue
                    rows.append({"dataset": dataset, "metric": key, "method": method, "family": family, "n": len(values),
                                 "median": float(np.median(values)), "q25": float(np.quantile(values, 0.25)),
                                 "q75": float(np.quantile(values, 0.75))})
                    best[family] = max(best.get(family, -np.inf), float(np.median(values)))
                    values_all.append(values)
                pooled[family] = np.concatenate(values_all) if values_all else np.zeros(0)
            if len(pooled["weak"]) and len(pooled["unsupervised"]):
                wins = (pooled["weak"][:, None] > pooled["unsupervised"][None, :]).mean()
                ties = (pooled["weak"][:, None] == pooled["unsupervised"][None, :]).mean()
                cells.append({"dataset": dataset, "metric": key, "best_weak_median": best["weak"],
                              "best_unsupervised_median": best["unsupervised"],
                              "higher": "weak" if best["weak"] > best["unsupervised"] else
                              ("unsupervised" if best["weak"] < best["unsupervised"] else "tie"),
                              "p_weak_beats_unsupervised": float(wins + 0.5 * ties)})
    return pd.DataFrame(rows), pd.DataFrame(cells)


def r_squared(values, groups) -> float:
    """R² of OLS of ``values`` on a one-hot encoding of ``groups`` (the fitted values are the
    group means). NaN with fewer than two values or no variance."""
    y = pd.Series(np.asarray(values, dtype=float))
    g = pd.Series(list(groups)).astype(str)
    keep = np.isfinite(y.to_numpy())
    y, g = y[keep], g[keep]
    if len(y) < 2:
        return float("nan")
    total = float(((y - y.mean()) ** 2).sum())
    if total <= 0:
        return float("nan")
    fitted = y.groupby(g).transform("mean")
    residual = float(((y - fitted) ** 2).sum())
    return float(1.0 - residual / total)


def variance_explained(frame: pd.DataFrame, keys) -> pd.DataFrame:
    """Per data set x metric: R² of the method alone and of method x strength (Table 5a/b),
    and the rest (``1 -`` the latter: the seed and everything else)."""
    rows = []
    for key in keys:
        for dataset, group in frame.groupby("dataset", sort=True):
            values = group[key].to_numpy(dtype=float)
            n = int(np.isfinite(values).sum())
            if n < 2:
                continue
            method = r_squared(values, group["method"])
            both = r_squared(values, group["setting"])
            rows.append({
                "dataset": dataset, "metric": key, "n": n,
                "num_methods": int(group.loc[np.isfinite(values), "method"].nunique()),
                "num_settings": int(group.loc[np.isfinite(values), "setting"].nunique()),
                "method": method, "method_x_strength": both, "rest": 1.0 - both if np.isfinite(both) else np.nan,
            })
    return pd.DataFrame(rows, columns=["dataset", "metric", "n", "num_methods", "num_settings", "method", "method_x_strength", "rest"])


# -- semi-supervision (Locatello et al., ICLR 2020) --------------------------------------------

#: the validation scores that select models: label -> score key (docs/semi.md)
VALIDATION = {"MIG": "mig_validation", "DCI": "dci_validation.disentanglement", "SAP": "sap_validation"}


def semi_selection(table: pd.DataFrame, representation: str, keys) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's headline comparison: S2 models against unsupervised models selected with the same labels.

    For each data set, number of labels ``n``, validation score (:data:`VALIDATION`) and
    family (``s2``: runs that trained on their ``n`` labels; ``unsupervised``: runs without
    labels, validated on ``n``), the model with the highest validation score is selected
    among the family's models of each seed, whose labelled draw they share. Returns
    ``(selected, cells)``: one row per selected model and test score in ``keys``; and one
    row per data set x ``n`` x validation x test score with both families' medians over seeds,
    which is higher, and the seeds counted. Empty without validation rows of both families.
    """
    needed = {"validation", "validation.num_labelled_samples", "score_key", "value", "representation"}
    if table.empty or not needed <= set(table.columns):
        return pd.DataFrame(), pd.DataFrame()
    rows = table[table["representation"] == representation]
    validation = rows[rows["validation"].fillna(False).astype(bool) & rows["score_key"].isin(VALIDATION.values())]
    if validation.empty:
        return pd.DataFrame(), pd.DataFrame()
    info = models(table, representation).set_index("model_num")
    own = table.drop_duplicates("model_num").set_index("model_num").get("config.supervision.num_labelled_samples")
    family = pd.Series("unsupervised", index=info.index)
    if own is not None:
        family[pd.to_numeric(own.reindex(info.index), errors="coerce").notna()] = "s2"
    selected = []
    v = validation.assign(value=pd.to_numeric(validation["value"], errors="coerce"),
                          n=pd.to_numeric(validation["validation.num_labelled_samples"], errors="coerce"))
    v = v[np.isfinite(v["value"])]
    v = v.assign(dataset=info["dataset"].reindex(v["model_num"]).to_numpy(),
                 family=family.reindex(v["model_num"]).to_numpy(), seed=info["seed"].reindex(v["model_num"]).to_numpy())
    for (dataset, n, vkey, fam, seed), group in v.groupby(["dataset", "n", "score_key", "family", "seed"], sort=True):
        best = int(group.sort_values(["value", "model_num"], ascending=[False, True], kind="stable")["model_num"].iloc[0])
        for key in keys:
            score = float(pd.to_numeric(info.loc[best, key], errors="coerce")) if key in info.columns else np.nan
            if np.isfinite(score):
                selected.append({"dataset": dataset, "num_labels": int(n), "validation": vkey, "family": fam,
                                 "seed": seed, "model_num": best, "method": info.loc[best, "method"],
                                 "validation_score": float(group["value"].max()), "metric": key, "value": score})
    selected = pd.DataFrame(selected)
    cells = []
    if not selected.empty:
        for (dataset, n, vkey, key), group in selected.groupby(["dataset", "num_labels", "validation", "metric"], sort=True):
            med = {f: group.loc[group["family"] == f, "value"] for f in ("s2", "unsupervised")}
            if not len(med["s2"]) or not len(med["unsupervised"]):
                continue
            s2, un = float(np.median(med["s2"])), float(np.median(med["unsupervised"]))
            cells.append({"dataset": dataset, "num_labels": int(n), "validation": vkey, "metric": key,
                          "s2_median": s2, "unsupervised_median": un, "seeds_s2": len(med["s2"]),
                          "seeds_unsupervised": len(med["unsupervised"]),
                          "higher": "s2" if s2 > un else ("unsupervised" if un > s2 else "tie")})
    return selected, pd.DataFrame(cells)


# -- UDR (Duan et al., ICLR 2020) --------------------------------------------------------------


def udr_correlation(frame: pd.DataFrame, keys) -> pd.DataFrame:
    """Spearman correlation of UDR (:data:`UDR_KEY`) with each metric in ``keys`` over the runs
    of each data set holding both (the UDR paper's main figure), with the number of such runs.

    One row per data set x metric; NaN with fewer than three runs or a constant side.
    """
    rows = []
    if UDR_KEY not in frame.columns:
        return pd.DataFrame(columns=["dataset", "metric", "spearman", "runs"])
    for dataset, group in frame.groupby("dataset", sort=True):
        udr = pd.to_numeric(group[UDR_KEY], errors="coerce").to_numpy(dtype=float)
        for key in keys:
            values = pd.to_numeric(group[key], errors="coerce").to_numpy(dtype=float)
            both = int((np.isfinite(udr) & np.isfinite(values)).sum())
            rows.append({"dataset": dataset, "metric": key, "spearman": spearman(udr, values), "runs": both})
    return pd.DataFrame(rows, columns=["dataset", "metric", "spearman", "runs"])


# -- fairness (Locatello et al., NeurIPS 2019) -------------------------------------------------


def fairness_columns(frame: pd.DataFrame) -> dict[str, str]:
    """``{label: column}`` of the unfairness scores (:data:`FAIRNESS`) ``frame`` holds."""
    return {label: key for label, key in FAIRNESS.items() if present(frame, [key])}


def largest_accuracies(frame: pd.DataFrame) -> dict[str, str]:
    """``{"LR acc@N": column, ...}``: each downstream task's mean test accuracy at its largest
    training size (the fairness paper's downstream accuracy: its classifiers use 10,000 points)."""
    out = {}
    for metric, sizes in downstream_sizes(frame).items():
        out[f"{DOWNSTREAM[metric]} acc@{sizes[-1]}"] = _accuracy_column(frame, metric, sizes[-1])
    return out


# -- stability across evaluations (the JMLR version) ---------------------------------------------


def _evaluations(table: pd.DataFrame, representation: str, keys) -> pd.DataFrame:
    """Every test evaluation of ``keys`` on ``representation``: ``dataset``, ``model_num``,
    ``score_key``, ``repetition`` (0 where the table has none), ``sample_size`` (NaN where not
    swept) and a finite ``value``."""
    columns = ["dataset", "model_num", "score_key", "repetition", "sample_size", "value"]
    if table.empty or not {"model_num", "representation", "score_key", "value"} <= set(table.columns):
        return pd.DataFrame(columns=columns)
    rows = table[(table["representation"] == representation) & table["score_key"].isin(list(keys))]
    if "validation" in rows.columns:
        rows = rows[~rows["validation"].eq(True).to_numpy()]
    datasets = _datasets(table.drop_duplicates("model_num").set_index("model_num"))  # as models() names them
    out = pd.DataFrame({
        "dataset": datasets.reindex(rows["model_num"]).to_numpy(),
        "model_num": rows["model_num"].to_numpy(),
        "score_key": rows["score_key"].to_numpy(),
        "repetition": np.nan_to_num(_floats(rows[REPETITION]), nan=0.0) if REPETITION in rows.columns else np.zeros(len(rows)),
        "sample_size": _floats(rows[SAMPLE_SIZE]) if SAMPLE_SIZE in rows.columns else np.full(len(rows), np.nan),
        "value": _floats(rows["value"]),
    })
    return out[np.isfinite(out["value"].to_numpy(dtype=float))].reset_index(drop=True)


def repetition_spread(table: pd.DataFrame, representation: str, keys) -> pd.DataFrame:
    """How much a metric moves between evaluations of the same run, against how much it differs
    between runs; per data set x metric x sample size (NaN: the metric's own ``num_train``).

    Over the runs evaluated at least twice: ``within_sd`` is the pooled within-run standard
    deviation, sqrt(mean over runs of the variance across the run's repetitions, ddof 1);
    ``between_sd`` the standard deviation (ddof 1) over runs of the run's mean over its
    repetitions; ``ratio`` = within / between (NaN without two runs or with equal run means).
    A ratio near 0 means the evaluations agree and the runs differ; near or above 1 means the
    evaluation noise is as large as the differences it is meant to rank.
    """
    columns = ["dataset", "metric", "sample_size", "runs", "repetitions", "within_sd", "between_sd", "ratio"]
    ev = _evaluations(table, representation, keys)
    rows = []
    for (dataset, key, size), group in ev.groupby(["dataset", "score_key", "sample_size"], dropna=False, sort=True):
        counts = group.groupby("model_num")["value"].count()
        repeated = group[group["model_num"].isin(counts.index[counts >= 2])]
        if repeated.empty:
            continue
        per_run = repeated.groupby("model_num")["value"]
        within = float(np.sqrt(per_run.var(ddof=1).mean()))
        means = per_run.mean()
        between = float(means.std(ddof=1)) if len(means) >= 2 else np.nan
        ratio = within / between if np.isfinite(between) and between > 0 else np.nan
        rows.append({"dataset": dataset, "metric": key, "sample_size": size, "runs": len(means),
                     "repetitions": int(counts.max()), "within_sd": within, "between_sd": between, "ratio": ratio})
    order = {k: i for i, k in enumerate(keys)}
    out = pd.DataFrame(rows, columns=columns)
    if len(out):
        out = out.assign(_order=out["metric"].map(order)).sort_values(["dataset", "_order", "sample_size"], na_position="last", kind="stable")
        out = out.drop(columns="_order").reset_index(drop=True)
    return out


def sample_size_agreement(table: pd.DataFrame, representation: str, keys) -> pd.DataFrame:
    """Spearman correlation between the model rankings a metric gives at two sample sizes, for
    every pair of the sizes it was evaluated at, per data set (long: ``size_a``, ``size_b``,
    ``spearman``, ``runs`` with both, and ``largest``, the data set's largest size for the metric).

    Each ranking is the runs' first evaluation (repetition 0) at that size, the score a single
    evaluation gives. Rows without a sample size (the metric's own ``num_train``) have no size
    to place and are left out. Empty for a metric with fewer than two sizes.
    """
    columns = ["dataset", "metric", "size_a", "size_b", "spearman", "runs", "largest"]
    ev = _evaluations(table, representation, keys)
    ev = ev[(ev["repetition"] == 0) & ev["sample_size"].notna()]
    rows = []
    for key in keys:
        for dataset, group in ev[ev["score_key"] == key].groupby("dataset", sort=True):
            wide = group.groupby(["model_num", "sample_size"])["value"].first().unstack("sample_size")
            sizes = sorted(wide.columns)
            if len(sizes) < 2:
                continue
            for a in sizes:
                for b in sizes:
                    both = int((wide[a].notna() & wide[b].notna()).sum())
                    rows.append({"dataset": dataset, "metric": key, "size_a": int(a), "size_b": int(b),
                                 "spearman": spearman(wide[a], wide[b]), "runs": both, "largest": int(sizes[-1])})
    return pd.DataFrame(rows, columns=columns)


def evaluation_axes(table: pd.DataFrame) -> tuple[list[int], list[int]]:
    """The table's evaluation repetitions (``[0]`` without the column) and the training sample
    sizes of its swept metrics (``[]`` without any)."""
    repetitions, sizes = [0], []
    if len(table) and REPETITION in table.columns:
        repetitions = sorted({int(r) for r in np.nan_to_num(_floats(table[REPETITION]), nan=0.0)})
    if len(table) and SAMPLE_SIZE in table.columns:
        sizes = sorted({int(v) for v in _floats(table[SAMPLE_SIZE]) if np.isfinite(v)})
    return repetitions, sizes
