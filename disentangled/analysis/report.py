"""The report: the paper's analyses of a results table, as a static HTML page.

``write_report(table, out_dir, study_dir=None)`` writes ``out_dir/index.html``, the figures
under ``out_dir/figures/`` and the statistics behind them as CSV files next to the page.
Each section draws whatever the table holds and gives a one-line reading computed from it,
beside what the paper concluded; a section whose data is missing says what it needs. The
sections read one evaluation per run and score key (:func:`stats.primary_rows`), except the
stability section, which compares a JMLR-style table's repeated and swept evaluations. With
``study_dir``, the page ends with a table of every run linking to its pictures
(``disentangled visualize``), drawing them cheaply for runs that lack them.
"""

from __future__ import annotations

import datetime
import json
import os
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

from .. import __version__
from ..io import atomic_path, write_bytes_atomic
from . import figures as fig
from . import stats as st
from .page import Section, esc, render, table_html

# the cheap pictures drawn for runs that have none (the CLI's defaults draw more)
QUICK_VISUALIZE = {"num_animations": 1, "animations": ("fitted_gaussian",)}


class _Writer:
    def __init__(self, out_dir: Path):
        self.out_dir = out_dir
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)

    def figure(self, name: str) -> tuple[Path, str]:
        return self.out_dir / "figures" / name, f"figures/{name}"

    def csv(self, frame: pd.DataFrame, name: str) -> str:
        with atomic_path(self.out_dir / name, suffix=".csv") as tmp:
            frame.to_csv(tmp, index=False)
        return name


def write_report(
    table_path: str | Path,
    out_dir: str | Path,
    study_dir: str | Path | None = None,
    *,
    representation: str = "mean",
    visualize_missing: bool = True,
    max_visualize: int = 50,
    num_draws: int = 10_000,
    seed: int = 0,
) -> Path:
    """Write the report of the results table at ``table_path`` into ``out_dir``; return index.html.

    ``representation``: the representation whose scores the metric analyses use (the paper:
    ``mean``). ``visualize_missing``: with ``study_dir``, draw quick pictures for finished
    runs without any, when at most ``max_visualize`` runs lack them. ``num_draws`` and
    ``seed``: the Table 1 procedure's draws and their seed.
    """
    table_path = Path(table_path)
    out_dir = Path(out_dir)
    raw = st.read_table(table_path)
    # every per-run analysis reads one evaluation per run and score key (repetition 0, one
    # sample size per key: stats.primary_rows); only the stability section reads them all
    table = st.primary_rows(raw)
    frame = st.models(table, representation)
    writer = _Writer(out_dir)
    keys = st.present(frame, st.METRICS.values())
    builders = [
        ("tc", lambda: _tc_section(frame, writer)),
        ("metric-correlation", lambda: _metric_correlation_section(frame, keys, writer)),
        ("distributions", lambda: _distribution_section(frame, keys, writer)),
        ("unsupervised", lambda: _unsupervised_section(frame, keys, writer)),
        ("transfer", lambda: _transfer_section(frame, keys, writer)),
        ("table1", lambda: _table1_section(frame, keys, writer, num_draws, seed)),
        ("downstream", lambda: _downstream_section(frame, keys, writer)),
        ("variance", lambda: _variance_section(frame, keys, writer)),
        ("runs", lambda: _runs_section(frame, keys, writer, study_dir, visualize_missing, max_visualize)),
    ]
    if not frame.empty and frame["method"].isin(st.WEAK_METHODS).any():  # only a table with weakly-supervised runs
        builders.insert(len(builders) - 1, ("weak", lambda: _weak_section(frame, keys, writer)))
    if "validation" in table.columns and table["validation"].eq(True).any():  # validated runs only
        builders.insert(len(builders) - 1, ("semi", lambda: _semi_section(table, keys, writer, representation)))
    # the follow-up studies' sections, each only for a table holding its scores
    if _has_metric(table, "udr"):
        builders.insert(len(builders) - 1, ("udr", lambda: _udr_section(frame, keys, writer)))
    if _has_metric(table, "fairness"):
        builders.insert(len(builders) - 1, ("fairness", lambda: _fairness_section(frame, keys, writer)))
    repetitions, sizes = st.evaluation_axes(raw)
    if len(repetitions) > 1 or sizes:
        builders.insert(len(builders) - 1, ("stability", lambda: _stability_section(raw, keys, writer, representation)))
    sections = []
    for key, build in builders:
        if frame.empty:
            sections.append(Section(key, key, missing="the results table has no runs; collect a study with `disentangled study collect`"))
            continue
        try:
            sections.append(build())
        except Exception as err:  # noqa: BLE001 -- one broken analysis must not take the page down
            sections.append(Section(key, key, missing=f"this analysis failed ({type(err).__name__}: {err}); please report it"))
            traceback.print_exc()
    intro = _intro(raw, frame, keys, table_path, representation)
    page = render("disentangled report", intro, sections)
    index = out_dir / "index.html"
    write_bytes_atomic(index, page.encode("utf-8"))
    return index


# -- the sections ----------------------------------------------------------------------------


def _weak_section(frame, keys, writer) -> Section:
    """Locatello et al. (ICML 2020): weakly-supervised methods against unsupervised ones."""
    s = Section(
        "weak",
        "Weak supervision against unsupervised methods (Locatello et al., ICML 2020)",
        paper="Pairs of observations that share some factors of variation are sufficient to reliably learn disentangled "
        "representations on several benchmark data sets (the paper's abstract); its figures set Ada-GVAE and "
        "Ada-ML-VAE against the unsupervised β-VAE per metric and data set, aggregated over k.",
    )
    if not set(frame["method"]) - set(st.WEAK_METHODS):
        s.missing = ("needs unsupervised runs (for example beta_vae, the paper's baseline) on the same data set as the "
                     "weakly-supervised ones, in one table; this table has only weakly-supervised methods.")
        return s
    if not keys:
        s.missing = f"needs at least one of the six metrics ({', '.join(st.METRICS.values())})."
        return s
    summary, cells = st.weak_comparison(frame, keys)
    if cells.empty:
        s.missing = "needs weakly-supervised and unsupervised runs scored on the same data set and metric."
        return s
    path, rel = writer.figure("weak_against_unsupervised.png")
    fig.weak_against_unsupervised(frame, keys, path, weak_methods=st.WEAK_METHODS)
    s.figures.append((rel, ("Each metric per method: the unsupervised methods left of the dashed line, the weakly-supervised "
                            "ones right of it; one point per model (every seed, hyperparameter and k), violins where there are "
                            "two or more distinct values, bars at the medians.")))
    s.csv += [writer.csv(summary, "weak_scores.csv"), writer.csv(cells, "weak_against_unsupervised.csv")]
    higher = int((cells["higher"] == "weak").sum())
    s.reading = (f"the best weakly-supervised method has the higher median in {higher} of {len(cells)} (data set, metric) "
                 f"cells; a weakly-supervised model beats an unsupervised one in "
                 f"{100 * cells['p_weak_beats_unsupervised'].mean():.0f}% of pairs (mean over cells).")
    return s


def _semi_section(table, keys, writer, representation) -> Section:
    """Locatello et al. (ICLR 2020): S2 models against unsupervised models selected with the same labels."""
    s = Section(
        "semi",
        "Few labels: semi-supervised training against unsupervised training with supervised selection (Locatello et al., ICLR 2020)",
        paper="Training with a few labels (0.01-0.5% of the data set) and selecting with the validation metrics on them "
        "gives more disentangled models than training without labels and selecting with the same labels, per number "
        "of labels (the paper's headline comparison of S2/S against U/S).",
    )
    if not keys:
        s.missing = f"needs at least one of the six metrics ({', '.join(st.METRICS.values())}) as the test score."
        return s
    selected, cells = st.semi_selection(table, representation, keys)
    if cells.empty:
        s.missing = ("needs S2 runs and unsupervised runs validated on the same number of labels (evaluation.validation "
                     "of a study, docs/semi.md) with the same seeds, in one table.")
        return s
    path, rel = writer.figure("semi_selection.png")
    fig.semi_selection(selected, path)
    s.figures.append((rel, ("Each test metric of the model selected, per seed, by each validation score on the same labelled "
                            "draw: unsupervised models (grey) beside S2 models (blue); bars at the medians over seeds.")))
    s.csv += [writer.csv(selected, "semi_selected.csv"), writer.csv(cells, "semi_against_unsupervised.csv")]
    higher = int((cells["higher"] == "s2").sum())
    counts = ", ".join(str(n) for n in sorted(cells["num_labels"].unique()))
    s.reading = (f"with {counts} labels, the selected S2 models have the higher median test score in {higher} of "
                 f"{len(cells)} (data set, labels, validation score, test metric) cells.")
    return s


def _udr_section(frame, keys, writer) -> Section:
    """Duan et al. (ICLR 2020): the unsupervised UDR against the supervised metrics."""
    s = Section(
        "udr",
        "UDR against the supervised metrics (Duan et al., ICLR 2020)",
        paper="UDR, which needs no labels, performs comparably to the existing supervised alternatives over 5,400 models "
        "of six model classes (the paper's abstract); its main figure is UDR's Spearman rank correlation with each "
        "supervised metric, per data set.",
    )
    if not st.present(frame, [st.UDR_KEY]):
        s.missing = (f"needs `{st.UDR_KEY}` on the runs (`disentangled evaluate --udr STUDY_DIR` scores each seed group, "
                     "then `disentangled study collect`).")
        return s
    if not keys:
        s.missing = f"needs at least one of the six metrics ({', '.join(st.METRICS.values())}) beside UDR."
        return s
    long = st.udr_correlation(frame, keys)
    long = long.assign(metric=long["metric"].map(st.metric_label))
    s.csv.append(writer.csv(long, "udr_against_metrics.csv"))
    matrix = long.pivot(index="dataset", columns="metric", values="spearman").reindex(columns=_labels(keys))
    if not np.isfinite(matrix.to_numpy(dtype=float)).any():
        s.missing = "needs, on some data set, at least three runs holding both UDR and a metric, with differing scores."
        return s
    path, rel = writer.figure("udr_against_metrics.png")
    fig.heatmaps({"UDR against the metrics": matrix}, path)
    runs = long.groupby("dataset")["runs"].max()
    s.figures.append((rel, ("Spearman rank correlation between UDR and each supervised metric over the runs of each data set "
                            f"holding both ({', '.join(f'{d}: {n}' for d, n in runs.items())} runs).")))
    defined = long.dropna(subset=["spearman"])
    mean = defined.groupby("metric", sort=False)["spearman"].mean()
    text = "UDR's ρ with the supervised metrics, mean over data sets: " + ", ".join(f"{m} {v:+.2f}" for m, v in mean.items())
    if defined["dataset"].nunique() > 1:
        agree = defined.groupby("metric")["spearman"].agg(lambda v: len(v) > 1 and bool((np.sign(v) == np.sign(v.iloc[0])).all()))
        text += f"; the sign agrees across data sets for {int(agree.sum())} of {len(agree)} metrics"
    s.reading = text + "."
    return s


def _fairness_section(frame, keys, writer) -> Section:
    """Locatello et al. (NeurIPS 2019): unfairness of downstream classifiers against disentanglement and accuracy."""
    s = Section(
        "fairness",
        "Unfairness against disentanglement and downstream accuracy (Locatello et al., NeurIPS 2019)",
        paper="Over more than 12,600 models, several disentanglement scores are consistently correlated with increased fairness, "
        "and classifiers can be unfair even when the target and the sensitive factor are independent (the paper's abstract); "
        "its figures rank-correlate the unfairness score with the disentanglement scores and with downstream accuracy per data set.",
    )
    unfair = st.fairness_columns(frame)
    if not unfair:
        s.missing = f"needs the fairness metric's scores (`{st.FAIRNESS['mean unfairness']}`; metric `fairness` in the study's evaluation)."
        return s
    accuracy = st.largest_accuracies(frame)
    if not keys and not accuracy:
        s.missing = ("needs at least one of the six metrics or a downstream task's mean test accuracy "
                     "(`downstream_boosted_trees.<n>.mean_test_accuracy`) beside the unfairness.")
        return s
    renamed = frame.rename(columns={**{key: label for label, key in unfair.items()}, **{col: label for label, col in accuracy.items()}})
    against = list(keys) + list(accuracy)
    matrices = st.per_dataset(renamed, lambda rows: _renamed(st.rank_correlation(rows, list(unfair), against)) if len(rows) >= 3 else None)
    if not matrices:
        s.missing = "needs at least three runs per data set."
        return s
    path, rel = writer.figure("fairness_rank_correlation.png")
    fig.heatmaps(matrices, path)
    s.figures.append((rel, ("Spearman rank correlation between unfairness (rows; lower is fairer) and the disentanglement scores "
                            "and downstream accuracies at the largest training size (columns), per data set.")))
    long = st.long_matrices(matrices, "unfairness", "against")
    s.csv.append(writer.csv(long, "fairness_rank_correlation.csv"))
    first = next(iter(unfair))
    x_metric = st.METRICS["DCI"] if st.METRICS["DCI"] in keys else (keys[0] if keys else None)
    panels = []
    for dataset, rows in renamed.groupby("dataset", sort=True):
        if x_metric is not None:
            panels.append({"frame": rows, "x": x_metric, "y": first, "title": f"{dataset}", "xlabel": st.metric_label(x_metric), "ylabel": first})
        for label in accuracy:
            panels.append({"frame": rows, "x": label, "y": first, "title": f"{dataset}", "xlabel": label, "ylabel": first})
    path, rel = writer.figure("fairness_scatter.png")
    fig.scatter_panels(panels, path)
    s.figures.append((rel, f"The {first} of each model against its {st.metric_label(x_metric) if x_metric else 'score'}"
                      + (" and against its downstream accuracy" if accuracy else "") + ", per data set."))
    here = long[long["unfairness"] == first].dropna(subset=["spearman"])
    parts = []
    metrics = here[here["against"].isin(_labels(keys))].groupby("against", sort=False)["spearman"].mean()
    if len(metrics):
        parts.append(f"the {first} falls as disentanglement rises (mean ρ < 0 over data sets) for {int((metrics < 0).sum())} of "
                     f"{len(metrics)} metrics (" + ", ".join(f"{m} {v:+.2f}" for m, v in metrics.items()) + ")")
    acc = here[here["against"].isin(list(accuracy))].groupby("against", sort=False)["spearman"].mean()
    if len(acc):
        parts.append("its mean ρ with downstream accuracy: " + ", ".join(f"{m} {v:+.2f}" for m, v in acc.items()))
    s.reading = ("; ".join(parts) + ".") if parts else ""
    if not parts:
        s.missing = "no defined rank correlation: the scores are constant or too few runs hold both."
    return s


def _size_label(size) -> str:
    return "own num_train" if not np.isfinite(size) else f"n={int(size):,}"


def _stability_section(raw, keys, writer, representation) -> Section:
    """The JMLR version: each metric's spread across evaluation repetitions and its ranking across sample sizes."""
    s = Section(
        "stability",
        "Stability of the metrics across evaluations and sample sizes (Locatello et al., JMLR 2020)",
        paper="The JMLR version evaluates each model's metrics several times (num_eval) and the listed metrics at several "
        "training sample sizes; its abstract: the metrics \u201cdo not always agree on what should be considered disentangled "
        "and exhibit systematic differences in the estimation\u201d.",
    )
    if not keys:
        s.missing = f"needs at least one of the six metrics ({', '.join(st.METRICS.values())})."
        return s
    spread = st.repetition_spread(raw, representation, keys)
    agreement = st.sample_size_agreement(raw, representation, keys)
    parts, missing = [], []
    if spread.empty:
        missing.append("the spread across evaluations needs a metric evaluated at least twice on the same run (evaluation.num_eval of 2 or more)")
    else:
        shown = spread.assign(metric=spread["metric"].map(st.metric_label))
        s.csv.append(writer.csv(shown, "metric_spread_across_repetitions.csv"))
        matrices = {}
        for dataset, rows in shown.groupby("dataset", sort=True):
            sizes = sorted(rows["sample_size"].unique(), key=lambda v: (not np.isfinite(v), v if np.isfinite(v) else 0))
            m = rows.assign(size=rows["sample_size"].map(_size_label)).pivot(index="metric", columns="size", values="ratio")
            matrices[dataset] = m.reindex(index=[k for k in _labels(keys) if k in m.index], columns=[_size_label(v) for v in sizes])
        path, rel = writer.figure("metric_spread_across_repetitions.png")
        top = max([1.0] + [float(np.nanmax(m.to_numpy(dtype=float))) for m in matrices.values() if np.isfinite(m.to_numpy(dtype=float)).any()])
        fig.heatmaps(matrices, path, vmin=0, vmax=top, cmap="viridis", colorbar_label="within / between SD")
        s.figures.append((rel, ("Per data set, metric (rows) and sample size (columns): the pooled standard deviation of a run's score "
                                "across its evaluation repetitions divided by the standard deviation of the runs' mean scores; "
                                "0 is a perfectly repeatable metric, 1 or more one whose evaluation noise matches the differences between runs.")))
        # the reading at the sample size the other analyses use (stats.primary_rows): the metric's own, else the largest
        primary = shown.assign(_own=~np.isfinite(shown["sample_size"].to_numpy(dtype=float)))
        primary = primary.sort_values(["_own", "sample_size"]).groupby(["dataset", "metric"]).tail(1)
        ratio = primary.dropna(subset=["ratio"]).groupby("metric")["ratio"].mean().reindex(_labels(keys)).dropna()
        if len(ratio):
            reps = int(spread["repetitions"].max())
            parts.append(f"over up to {reps} evaluations of each run, within-run SD ÷ between-run SD is "
                         + ", ".join(f"{m} {v:.2f}" for m, v in ratio.items())
                         + f" (least repeatable: {ratio.idxmax()}; mean over data sets, at the sample size the other sections use)")
    if agreement.empty:
        missing.append("the ranking across sample sizes needs a metric evaluated at two or more sample sizes (evaluation.sample_sizes)")
    else:
        shown = agreement.assign(metric=agreement["metric"].map(st.metric_label))
        s.csv.append(writer.csv(shown, "metric_rank_across_sample_sizes.csv"))
        with_largest = shown[shown["size_b"] == shown["largest"]]
        path, rel = writer.figure("metric_rank_across_sample_sizes.png")
        fig.agreement_with_largest(with_largest, path)
        s.figures.append((rel, ("Spearman rank correlation between the runs' scores at each sample size and at the largest "
                                "(first evaluation of each run), per metric and data set.")))
        smallest = with_largest[with_largest["size_a"] == with_largest.groupby(["dataset", "metric"])["size_a"].transform("min")]
        smallest = smallest[smallest["size_a"] != smallest["size_b"]].dropna(subset=["spearman"])
        if len(smallest):
            per = smallest.groupby("metric", sort=False).agg(rho=("spearman", "mean"), a=("size_a", "min"), b=("size_b", "max"))
            parts.append("model rankings at the smallest sample size against the largest: "
                         + ", ".join(f"{m} ρ {r.rho:+.2f} ({int(r.a):,} vs {int(r.b):,})" for m, r in per.iterrows()))
    s.reading = ("; ".join(parts) + ".") if parts else ""
    s.missing = "; ".join(missing) + ("." if missing else "")
    return s


def _labels(keys) -> list[str]:
    return [st.metric_label(k) for k in keys]


def _renamed(matrix: pd.DataFrame) -> pd.DataFrame:
    return matrix.rename(index=st.metric_label, columns=st.metric_label)


def _tc_section(frame, writer) -> Section:
    s = Section(
        "tc",
        "Total correlation against regularisation (Fig. 1)",
        paper="Sampled TC generally falls as regularisation rises, but the mean representation's TC rises "
        "(except DIP-VAE-I, which penalises Cov[μ]); for many models the mean TC is far above the sampled one.",
    )
    summary = st.tc_summary(frame)
    levels = st.strength_levels(frame)
    if summary.empty:
        s.missing = f"needs `{st.TC_KEY}` (metric `unsupervised`) for the sampled and/or mean representation, and each method's hyperparameter."
        return s
    trends = st.tc_trends(frame)
    path, rel = writer.figure("tc_against_strength.png")
    fig.tc_against_strength(summary, levels, path)
    s.figures.append((rel, ("Median Gaussian total correlation (band: interquartile range over seeds) against the rank of the "
                            "regularisation strength; the legend lists each method's values. For AnnealedVAE a larger C_max is a weaker constraint.")))
    s.csv += [writer.csv(summary, "tc_by_strength.csv"), writer.csv(trends, "tc_trends.csv")]
    fraction = st.fraction_mean_above_sampled(frame)
    if np.isfinite(fraction):
        path, rel = writer.figure("tc_mean_vs_sampled.png")
        fig.tc_scatter(frame, path)
        s.figures.append((rel, "TC of the mean against TC of the sampled representation, one point per model (Fig. 10)."))
    parts = []
    for rep in ("sampled", "mean"):
        t = trends[(trends["representation"] == rep) & np.isfinite(trends["spearman_strength_tc"].to_numpy(dtype=float))]
        if t.empty:
            continue
        per = t.groupby("method")["spearman_strength_tc"].median()
        falls = [f"{st.method_label(m)} ({r:+.2f})" for m, r in per.items() if r < -0.2]
        rises = [f"{st.method_label(m)} ({r:+.2f})" for m, r in per.items() if r > 0.2]
        parts.append(f"{rep} TC falls with regularisation for {', '.join(falls) or 'no method'} and rises for {', '.join(rises) or 'no method'}")
    rho = trends["spearman_strength_tc"].to_numpy(dtype=float)
    undefined = trends[~np.isfinite(rho)]
    if len(undefined):
        why = []
        for (method, note), rows in undefined.groupby(["method", "note"], sort=True):
            where = ", ".join(f"{d} ({'/'.join(sorted(r['representation']))})" for d, r in rows.groupby("dataset", sort=True))
            why.append(f"{st.method_label(method)} on {where}: {note}")
        s.missing = "no Spearman ρ of strength vs TC for " + "; ".join(why) + "; it needs two hyperparameter values with TC known at both."
    text = "; ".join(parts)
    if np.isfinite(fraction):
        text += f"{'; ' if text else ''}mean TC exceeds sampled TC in {100 * fraction:.0f}% of models"
    if text:
        text += " (Spearman ρ of strength vs TC over runs, median over data sets)"
        sign_only = trends[np.isfinite(rho) & (trends["num_strengths"] == 2) & (trends["n"] == 2)]
        if len(sign_only):
            text += "; with two hyperparameter values and one run at each, ρ = ±1 gives only the direction of the change"
    s.reading = (text + ".") if text else ""
    return s


def _metric_correlation_section(frame, keys, writer) -> Section:
    s = Section(
        "metric-correlation",
        "Rank correlation between the metrics (Fig. 2, Fig. 12)",
        paper="All metrics but Modularity are mildly correlated; BetaVAE–FactorVAE and MIG–DCI strongly so (Noisy-dSprites).",
    )
    if len(keys) < 2:
        s.missing = f"needs at least two of the six metrics ({', '.join(st.METRICS)}); the table has {len(keys)}."
        return s
    matrices = st.per_dataset(frame, lambda rows: _renamed(st.rank_correlation(rows, keys)) if len(rows) >= 3 else None)
    if not matrices:
        s.missing = "needs at least three models per data set."
        return s
    path, rel = writer.figure("metric_rank_correlation.png")
    fig.heatmaps(matrices, path)
    s.figures.append((rel, "Spearman rank correlation between the metrics over all models of each data set."))
    long = st.long_matrices(matrices, "metric_a", "metric_b")
    s.csv.append(writer.csv(long, "metric_rank_correlation.csv"))
    pairs = long[long["metric_a"] < long["metric_b"]].groupby(["metric_a", "metric_b"])["spearman"].mean().dropna()
    if len(pairs):
        strongest = pairs.idxmax()
        weakest = pairs.abs().idxmin()
        text = (f"strongest agreement {strongest[0]}–{strongest[1]} (mean ρ {pairs[strongest]:+.2f}), "
                f"weakest {weakest[0]}–{weakest[1]} ({pairs[weakest]:+.2f})")
        if "Modularity" in set(long["metric_a"]) and len(keys) > 2:
            mod = long[(long["metric_a"] == "Modularity") & (long["metric_b"] != "Modularity")]["spearman"].abs().mean()
            rest = long[(long["metric_a"] != "Modularity") & (long["metric_b"] != "Modularity") & (long["metric_a"] != long["metric_b"])]["spearman"].abs().mean()
            text += f"; Modularity's mean |ρ| with the others is {mod:.2f} against {rest:.2f} among the rest"
        s.reading = text + "."
    return s


def _distribution_section(frame, keys, writer) -> Section:
    s = Section(
        "distributions",
        "Scores per method and per hyperparameter over seeds (Figs. 3–4 left, 13–15)",
        paper="The methods' score ranges overlap heavily and the seed matters as much as the hyperparameter: "
        "a good run with a bad hyperparameter often beats a bad run with a good one. No method dominates.",
    )
    if not keys:
        s.missing = f"needs at least one of the six metrics ({', '.join(st.METRICS.values())})."
        return s
    path, rel = writer.figure("scores_by_method.png")
    fig.violins_by_method(frame, keys, path)
    s.figures.append((rel, "Each metric per method over all hyperparameter values and seeds (violins where there are two or more distinct values; bars: medians)."))
    for dataset in sorted(frame["dataset"].unique()):
        path, rel = writer.figure(f"scores_by_strength_{_slug(dataset)}.png")
        fig.violins_by_strength(frame, keys, dataset, path)
        s.figures.append((rel, f"{dataset}: each metric for every hyperparameter value of every method, over seeds."))
    path, rel = writer.figure("median_against_strength.png")
    fig.median_against_strength(frame, keys, path)
    s.figures.append((rel, "Median score over seeds against the rank of the regularisation strength, per method."))
    summary = st.distribution_summary(frame, keys)
    overlap = st.method_overlap(frame, keys)
    beats = st.seed_beats_setting(frame, keys)
    s.csv += [writer.csv(summary, "score_distributions.csv"), writer.csv(overlap, "method_overlap.csv"), writer.csv(beats, "seed_vs_hyperparameter.csv")]
    parts = []
    if len(overlap):
        parts.append(f"the best method's interquartile range overlaps every other method's in {int(overlap['iqr_overlaps_all'].sum())} "
                     f"of {len(overlap)} (data set, metric) cells")
        winners = overlap.groupby("best_method").size().sort_values(ascending=False)
        parts.append("best median: " + ", ".join(f"{st.method_label(m)} in {n}" for m, n in winners.items()))
    if len(beats):
        parts.append(f"some run of a worse hyperparameter beats some run of the best one in {100 * beats['some_worse_run_beats_some_best_run'].mean():.0f}% "
                     f"of (data set, method, metric) cells (a random such pair: {100 * beats['p_worse_run_beats_best_run'].mean():.0f}%)")
    s.reading = ("; ".join(parts) + ".") if parts else ""
    return s


def _unsupervised_section(frame, keys, writer) -> Section:
    s = Section(
        "unsupervised",
        "Unsupervised scores against the metrics (Fig. 4 centre, Fig. 16)",
        paper="Some correlations, no clear pattern across data sets: unsupervised model selection is unlikely to work.",
    )
    scores = {label: col for label, col in st.UNSUPERVISED.items() if col in st.present(frame, [col])}
    if not keys or not scores:
        need = [f"`{c}`" for c in st.UNSUPERVISED.values()]
        s.missing = f"needs at least one metric and the unsupervised scores ({', '.join(need)}; `tc_sampled` is the sampled representation's `{st.TC_KEY}`)."
        return s
    renamed = frame.rename(columns={c: label for label, c in scores.items()})

    def matrix(rows):
        return _renamed(st.rank_correlation(rows, list(scores), keys)) if len(rows) >= 3 else None

    matrices = st.per_dataset(renamed, matrix)
    if not matrices:
        s.missing = "needs at least three models per data set."
        return s
    path, rel = writer.figure("unsupervised_vs_metrics.png")
    fig.heatmaps(matrices, path)
    s.figures.append((rel, "Spearman rank correlation between the unsupervised scores (rows) and the metrics (columns), per data set."))
    long = st.long_matrices(matrices, "unsupervised_score", "metric")
    s.csv.append(writer.csv(long, "unsupervised_vs_metrics.csv"))
    values = long["spearman"].dropna()
    if len(values):
        text = f"ρ ranges from {values.min():+.2f} to {values.max():+.2f}"
        if len(matrices) > 1:
            signs = long.dropna().groupby(["unsupervised_score", "metric"])["spearman"].agg(lambda v: (np.sign(v) == np.sign(v.iloc[0])).all() and len(v) > 1)
            text += f"; the sign agrees across all data sets for {int(signs.sum())} of {len(signs)} (score, metric) pairs"
        s.reading = text + "."
    return s


def _transfer_section(frame, keys, writer) -> Section:
    s = Section(
        "transfer",
        "Hyperparameter transfer across data sets (Fig. 4 right, Fig. 17)",
        paper="Good hyperparameters transfer only between dSprites and Color-dSprites (median DCI Disentanglement per setting).",
    )
    datasets = sorted(frame["dataset"].unique())
    if len(datasets) < 2 or not keys:
        s.missing = f"needs at least two data sets (the table has {len(datasets)}: {', '.join(datasets)}) and a metric."
        return s
    matrices = {}
    for key in keys:
        m = st.transfer_matrix(frame, key)
        if not m.empty and np.isfinite(m.to_numpy(dtype=float)).any():
            matrices[st.metric_label(key)] = m
    if not matrices:
        s.missing = "needs at least three hyperparameter settings trained on each of two data sets."
        return s
    path, rel = writer.figure("transfer_rank_correlation.png")
    fig.heatmaps(matrices, path)
    s.figures.append((rel, "Spearman rank correlation between data sets of each setting's median score over seeds, per metric."))
    long = st.long_matrices(matrices, "dataset_a", "dataset_b").rename(columns={"dataset": "metric"})
    s.csv.append(writer.csv(long, "transfer_rank_correlation.csv"))
    off = long[long["dataset_a"] < long["dataset_b"]].dropna()
    if len(off):
        pair = off.groupby(["dataset_a", "dataset_b"])["spearman"].mean()
        best = pair.idxmax()
        s.reading = (f"mean rank correlation between data sets {off['spearman'].mean():+.2f}; "
                     f"the best-transferring pair is {best[0]}–{best[1]} ({pair[best]:+.2f} averaged over metrics).")
    return s


def _table1_section(frame, keys, writer, num_draws, seed) -> Section:
    s = Section(
        "table1",
        "Transfer-based model selection against random selection (Table 1)",
        paper="P(setting chosen on a source ≥ a random model): same metric & data set 80.7%, same metric other data set 59.3%, "
        "other metric same data set 62.6%, both other 54.9%. Transfer cannot tell a good seed from a bad one.",
    )
    if not keys:
        s.missing = "needs at least one of the six metrics."
        return s
    result = st.transfer_vs_random(frame, keys, num_draws=num_draws, rng=seed)
    s.csv.append(writer.csv(result, "table1.csv"))
    result = result.assign(percent=100 * result["probability"])
    labels = [f"{m} metric\n{d} data set" for m, d in zip(result["metric"], result["data_set"])]
    path, rel = writer.figure("table1.png")
    fig.paired_bars(labels, list(result["percent"]), list(result["paper_percent"]), path, ylabel="P(transfer ≥ random), %")
    s.figures.append((rel, f"Success rate of the Table 1 procedure ({num_draws:,} draws per cell, seed {seed}) beside the paper's; dotted: chance (50%)."))
    shown = result[["metric", "data_set", "percent", "paper_percent", "draws", "note"]].rename(columns={"percent": "this table (%)", "paper_percent": "paper (%)"})
    s.extra_html = table_html(shown)
    done = result[np.isfinite(result["percent"].to_numpy(dtype=float))]
    if done.empty:
        s.missing = "; ".join(sorted(set(result["note"]) - {""}))
    else:
        s.reading = "; ".join(f"{m} metric / {d} data set: {p:.1f}% (paper {q:.1f}%)" for m, d, p, q in
                              zip(done["metric"], done["data_set"], done["percent"], done["paper_percent"])) + "."
        missing = result[~np.isfinite(result["percent"].to_numpy(dtype=float))]
        if len(missing):
            s.missing = "; ".join(f"{m} metric / {d} data set {n}" for m, d, n in zip(missing["metric"], missing["data_set"], missing["note"]))
    return s


def _downstream_section(frame, keys, writer) -> Section:
    s = Section(
        "downstream",
        "Metrics against downstream accuracy and sample efficiency (Figs. 5–6, 19–21)",
        paper="On dSprites every metric but Modularity correlates with downstream accuracy; higher disentanglement "
        "does not reliably bring higher sample efficiency (accuracy with 100 samples ÷ with 10,000).",
    )
    derived, described = st.downstream_quantities(frame)
    if not keys or derived.empty:
        s.missing = ("needs a metric and the downstream tasks' mean test accuracies "
                     "(`downstream_logistic_regression.<n>.mean_test_accuracy`, `downstream_boosted_trees.<n>.mean_test_accuracy`).")
        return s
    joined = pd.concat([frame, derived], axis=1)
    quantities = list(derived.columns)
    matrices = st.per_dataset(joined, lambda rows: _renamed(st.rank_correlation(rows, keys, quantities)) if len(rows) >= 3 else None)
    if matrices:
        path, rel = writer.figure("downstream_rank_correlation.png")
        fig.heatmaps(matrices, path)
        s.figures.append((rel, "Spearman rank correlation between the metrics (rows) and downstream accuracy / efficiency (columns), per data set."))
        long = st.long_matrices(matrices, "metric", "downstream")
        s.csv.append(writer.csv(long, "downstream_rank_correlation.csv"))
    s.csv.append(writer.csv(pd.DataFrame({"quantity": list(described), "definition": list(described.values())}), "downstream_quantities.csv"))
    efficiency = [q for q in quantities if "efficiency" in q]
    x_key = st.METRICS["FactorVAE"] if st.METRICS["FactorVAE"] in keys else keys[0]
    panels = []
    for dataset, rows in joined.groupby("dataset", sort=True):
        for q in efficiency:
            panels.append({"frame": rows, "x": x_key, "y": q, "title": f"{dataset}: {q.split()[0]}", "xlabel": st.metric_label(x_key), "ylabel": q})
    if panels:
        path, rel = writer.figure("efficiency_against_metric.png")
        fig.scatter_panels(panels, path)
        s.figures.append((rel, f"Statistical efficiency against the {st.metric_label(x_key)} score, one point per model (Fig. 6)."))
    if matrices:
        long = st.long_matrices(matrices, "metric", "downstream")
        largest = [q for q in quantities if "acc@" in q]
        biggest = {}
        for q in largest:
            short, size = q.split(" acc@")
            if int(size) > biggest.get(short, (0, ""))[0]:
                biggest[short] = (int(size), q)
        acc_cols = [q for _, q in biggest.values()]
        acc = long[long["downstream"].isin(acc_cols)].groupby("metric")["spearman"].mean().dropna()
        eff = long[long["downstream"].isin(efficiency)].groupby("metric")["spearman"].mean().dropna()
        parts = []
        if len(acc):
            parts.append("mean ρ with accuracy at the largest training size: " + ", ".join(f"{m} {v:+.2f}" for m, v in acc.items()))
        if len(eff):
            parts.append("with efficiency: " + ", ".join(f"{m} {v:+.2f}" for m, v in eff.items()))
        elif not efficiency:
            parts.append("efficiency needs accuracies with 100 and with more training points")
        s.reading = "; ".join(parts) + "."
    return s


def _variance_section(frame, keys, writer) -> Section:
    s = Section(
        "variance",
        "Variance explained by the method and the hyperparameter (Table 5)",
        paper="OLS on one-hot predictors: the method alone explains 37% of a score's variance on average, "
        "method × regularisation strength 59%; the rest is attributed to the random seed.",
    )
    if not keys:
        s.missing = "needs at least one of the six metrics."
        return s
    table = st.variance_explained(frame, keys)
    if table.empty:
        s.missing = "needs at least two models per data set."
        return s
    s.csv.append(writer.csv(table, "variance_explained.csv"))
    matrices = {}
    for column, title in (("method", "method alone (%)"), ("method_x_strength", "method × strength (%)"), ("rest", "rest: seed and noise (%)")):
        m = table.pivot(index="dataset", columns="metric", values=column) * 100
        matrices[title] = m.rename(columns=st.metric_label)
    path, rel = writer.figure("variance_explained.png")
    fig.heatmaps(matrices, path, vmin=0, vmax=100, cmap="viridis", fmt="{:.0f}", colorbar_label="% of variance")
    s.figures.append((rel, "R² (in %) of OLS on one-hot method and on one-hot method × hyperparameter value, per data set and metric."))
    shown = table.assign(metric=table["metric"].map(st.metric_label))
    for c in ("method", "method_x_strength", "rest"):
        shown[c] = 100 * shown[c]
    s.extra_html = table_html(shown.rename(columns={"method": "method (%)", "method_x_strength": "method × strength (%)", "rest": "rest (%)"}), digits=3)
    mean_method = 100 * table["method"].mean()
    mean_both = 100 * table["method_x_strength"].mean()
    s.reading = (f"averaged over {len(table)} (data set, metric) cells the method alone explains {mean_method:.0f}% of the variance (paper 37%), "
                 f"method × strength {mean_both:.0f}% (paper 59%), leaving {100 - mean_both:.0f}% to the seed.")
    if table["num_methods"].max() < 2:
        s.missing = "only one method in the table: the method alone explains nothing by construction."
    return s


def _runs_section(frame, keys, writer, study_dir, visualize_missing, max_visualize) -> Section:
    s = Section("runs", "Every run")
    runs = frame[["model_num", "run_id", "dataset", "method", "strength", "seed"]].copy()
    runs["method"] = runs["method"].map(st.method_label)
    for key in keys:
        runs[st.metric_label(key)] = frame[key]
    for col in ("train.elbo", "tc_mean", "tc_sampled", st.UDR_KEY, st.FAIRNESS["mean unfairness"]):
        if col in frame.columns:
            runs[col] = frame[col]
    s.csv.append(writer.csv(runs, "runs.csv"))
    s.reading = f"{len(runs)} runs over {runs['dataset'].nunique()} data sets, {runs['method'].nunique()} methods and {runs['seed'].nunique()} seeds."
    if study_dir is None:
        s.missing = "no study folder given (`--study-dir`): the runs' pictures are not linked."
        s.extra_html = table_html(runs)
        return s
    study_dir = Path(study_dir)
    pictures, notes, unfinished = _pictures(frame, study_dir, writer.out_dir, visualize_missing, max_visualize)
    thumbnails = len(frame) <= 40
    cells = []
    for n in runs["model_num"]:
        links = pictures.get(int(n))
        if links is None:
            cells.append(esc(notes.get(int(n), "no pictures")))
            continue
        named = dict(links)
        html_links = " ".join(f'<a href="{esc(href)}">{esc(name)}</a>' for name, href in links if name not in ("thumbnail",) and not name.startswith("z"))
        dims = [(name[1:], href) for name, href in links if name.startswith("z")]
        if dims:
            html_links += " <br>z: " + " ".join(f'<a href="{esc(href)}">{esc(j)}</a>' for j, href in dims)
        if thumbnails and named.get("thumbnail"):
            html_links = f'<a href="{esc(named["thumbnail"])}"><img class="thumb" src="{esc(named["thumbnail"])}" alt="animated traversal"></a><br>' + html_links
        cells.append(html_links)
    runs.insert(1, "pictures", cells)
    s.extra_html = table_html(runs, raw_html_columns=("pictures",))
    from ..rundir import StudyDir

    lacking = len(runs) - len(pictures) - unfinished
    s.reading += f" {len(pictures)} with pictures (click a thumbnail or a link to open it), {unfinished} not trained or not finished."
    if lacking:
        s.missing = (f"{lacking} finished runs have no pictures; draw them with `disentangled visualize {StudyDir(study_dir).runs_dir}/NNNNN`"
                     + (f" (more than {max_visualize} lacked them, so none were drawn here)" if lacking > max_visualize else ""))
    return s


def _pictures(frame, study_dir: Path, out_dir: Path, visualize_missing: bool, max_visualize: int):
    from ..rundir import StudyDir
    from ..viz.model import MANIFEST, visualize

    found, notes, lacking, unfinished = {}, {}, [], 0
    for n in frame["model_num"]:
        run = StudyDir(study_dir).run(int(n))
        if (run.pictures / MANIFEST).is_file():
            found[int(n)] = run
        elif run.is_done:
            lacking.append((int(n), run))
        else:
            notes[int(n)] = "not trained (no run folder)" if not run.exists else "training not finished"
            unfinished += 1
    if visualize_missing and 0 < len(lacking) <= max_visualize:
        for n, run in lacking:
            try:
                visualize(run.path, **QUICK_VISUALIZE)
                found[n] = run
            except Exception as err:  # noqa: BLE001 -- e.g. the data set's files are not on this machine
                notes[n] = f"no pictures: {err}"
    links = {}
    for n, run in found.items():
        vis = run.pictures
        manifest = json.loads((vis / MANIFEST).read_text())
        files = manifest.get("files", [])
        rel = Path(os.path.relpath(vis, out_dir)).as_posix()
        entries = []
        for name, pick in (("reconstructions", "reconstructions.png"), ("samples", "samples.png")):
            if pick in files:
                entries.append((name, f"{rel}/{pick}"))
        bases = [f for f in files if f.startswith("traversals/base")]
        if bases:
            entries.append(("traversals", f"{rel}/{bases[0]}"))
        dims = [f for f in files if f.startswith("traversals/dim")]
        entries += [(f"z{f.split('dim')[1].split('.')[0]}", f"{rel}/{f}") for f in dims]
        gifs = [f for f in files if f.endswith(".gif")]
        if gifs:
            gif = next((g for g in gifs if g.startswith("animated_traversals/fitted_gaussian")), gifs[0])
            entries.append(("animation", f"{rel}/{gif}"))
            entries.append(("thumbnail", f"{rel}/{gif}"))
        links[n] = entries
    return links, notes, unfinished


def _intro(table, frame, keys, table_path: Path, representation: str) -> str:
    if frame.empty:
        return f"<p>{esc(table_path)}: no runs.</p>"
    reps = sorted(table["representation"].unique()) if "representation" in table.columns else []
    steps = sorted(pd.to_numeric(table.get("config.train.steps", pd.Series(dtype=float)), errors="coerce").dropna().unique())
    sources = sorted(table.get("config.data.source", pd.Series(dtype=object)).dropna().astype(str).unique())
    methods = ", ".join(st.method_label(m) for m in fig.method_order(frame["method"].unique()))
    items = [
        ("results table", f"{table_path.name} ({len(table):,} rows)"),
        ("runs", f"{len(frame):,}"),
        ("data sets", ", ".join(sorted(frame["dataset"].unique()))),
        ("data sources", ", ".join(sources) or "–"),
        ("methods", methods),
        ("seeds", f"{frame['seed'].nunique()}"),
        ("training steps", ", ".join(f"{int(s):,}" for s in steps) or "–"),
        ("representations", ", ".join(reps) + f" (metric analyses use: {representation})"),
        ("metrics", ", ".join(_labels(keys)) or "none of the six"),
        *_evaluation_items(table),
        ("written", f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}, disentangled {__version__}"),
    ]
    rows = "".join(f'<tr><th class="text">{esc(k)}</th><td class="text">{esc(v)}</td></tr>' for k, v in items)
    note = ""
    if "procedural" in sources:
        note = ("<p class=\"paper\">Some runs use procedurally rendered data: compare qualitative patterns with the paper, "
                "not absolute numbers.</p>")
    return f"<table>{rows}</table>{note}"


def _evaluation_items(table) -> list[tuple[str, str]]:
    repetitions, sizes = st.evaluation_axes(table)
    items = []
    if len(repetitions) > 1:
        items.append(("evaluation repetitions", (f"{len(repetitions)} ({repetitions[0]}–{repetitions[-1]}); the analyses use "
                                                 "repetition 0, the stability section all of them")))
    if sizes:
        items.append(("metric sample sizes", ", ".join(f"{n:,}" for n in sizes) + " (the analyses use each metric's own num_train "
                      "where the table has it, else its largest size)"))
    return items


def _has_metric(table, metric: str) -> bool:
    return "metric" in table.columns and bool(table["metric"].eq(metric).any())


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text))
