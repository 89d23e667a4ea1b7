"""Matplotlib figures of the report, one function per kind of figure, each written as PNG.

Figures are built with :class:`matplotlib.figure.Figure` (no pyplot state) and written
atomically. They take the frames of :mod:`disentangled.analysis.stats` and draw whatever
they hold: any number of data sets, methods, hyperparameter values and metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import atomic_path
from .stats import METHOD_LABELS, PARAM_LABELS, REGULARIZER, method_label, metric_label

DPI = 90
PANEL = (2.8, 2.3)  # inches per panel
METHOD_COLORS = {
    "beta_vae": "#1f77b4",
    "factor_vae": "#ff7f0e",
    "dip_vae_i": "#2ca02c",
    "dip_vae_ii": "#d62728",
    "beta_tc_vae": "#9467bd",
    "annealed_vae": "#8c564b",
    "group_vae": "#17becf",
    "ada_gvae": "#e377c2",
    "ml_vae": "#bcbd22",
    "ada_ml_vae": "#7f7f7f",
}
_EXTRA_COLORS = ["#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def method_color(method: str) -> str:
    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    return _EXTRA_COLORS[sum(map(ord, str(method))) % len(_EXTRA_COLORS)]


def method_order(methods) -> list[str]:
    known = [m for m in METHOD_LABELS if m in set(methods)]
    return known + sorted(m for m in set(methods) if m not in METHOD_LABELS)


def _figure(rows: int, cols: int, *, panel=PANEL, left=0.75, right=0.25, top=0.45, bottom=0.7, wspace=0.75, hspace=0.75):
    """A figure of ``rows x cols`` axes of ``panel`` inches each, margins and gaps in inches.

    The layout is fixed up front (no ``tight_layout``, which costs a full extra draw)."""
    from matplotlib.figure import Figure

    width = left + right + cols * panel[0] + (cols - 1) * wspace
    height = top + bottom + rows * panel[1] + (rows - 1) * hspace
    fig = Figure(figsize=(width, height), dpi=DPI)
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height,
        wspace=wspace / panel[0], hspace=hspace / panel[1],
    )
    return fig, axes


def save(fig, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def _text_inches(labels, fontsize: float = 7.0) -> float:
    """Rough width in inches of the longest label at ``fontsize`` points."""
    longest = max((len(str(x)) for x in labels), default=0)
    return longest * fontsize * 0.55 / 72


def _legend_below(fig, axes, *, ncol: int = 3) -> None:
    handles, names = [], []
    for ax in axes.flat:
        for h, n in zip(*ax.get_legend_handles_labels()):
            if n not in names:
                handles.append(h)
                names.append(n)
    if handles:
        fig.legend(handles, names, loc="lower center", ncol=min(ncol, len(names)), fontsize=7, frameon=False)


def _finite(values) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    return x[np.isfinite(x)]


def _integer_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _legend_labels(levels: dict, methods) -> dict[str, str]:
    out = {}
    for m in methods:
        param = PARAM_LABELS.get(REGULARIZER.get(m, ""), REGULARIZER.get(m, ""))
        values = ", ".join(f"{v:g}" for v in levels.get(m, []))
        out[m] = f"{method_label(m)} ({param}: {values})" if values else method_label(m)
    return out


# -- Fig. 1 ----------------------------------------------------------------------------------


def tc_against_strength(summary: pd.DataFrame, levels: dict, path, *, title: str = "") -> Path:
    """Median Gaussian TC (line, interquartile band) against the rank of the strength, per
    method; a row per data set, columns sampled and mean representation."""
    datasets = sorted(summary["dataset"].unique())
    reps = [r for r in ("sampled", "mean") if r in set(summary["representation"])]
    methods = method_order(summary["method"].unique())
    labels = _legend_labels(levels, methods)
    legend_rows = math.ceil(len(methods) / 3)
    fig, axes = _figure(len(datasets), len(reps), panel=(3.8, 2.5), bottom=0.6 + 0.2 * legend_rows, top=0.5 if title else 0.35, wspace=0.9)
    for i, dataset in enumerate(datasets):
        for j, rep in enumerate(reps):
            ax = axes[i][j]
            rows = summary[(summary["dataset"] == dataset) & (summary["representation"] == rep)]
            positive = True
            for method in methods:
                part = rows[rows["method"] == method].sort_values("strength")
                if part.empty:
                    continue
                x = [levels[method].index(v) + 1 for v in part["strength"]]
                ax.plot(x, part["median"], marker="o", color=method_color(method), label=labels[method])
                ax.fill_between(x, part["q25"], part["q75"], color=method_color(method), alpha=0.15, linewidth=0)
                positive &= bool((_finite(part["q25"]) > 0).all())
            if positive and len(rows):
                ax.set_yscale("log")
            ax.set_title(f"{dataset}: {rep} representation", fontsize=9)
            ax.set_xlabel("regularisation strength (rank of value)", fontsize=8)
            _integer_ticks(ax)
            ax.set_ylabel("Gaussian total correlation", fontsize=8)
            ax.tick_params(labelsize=7)
    _legend_below(fig, axes)
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)


def tc_scatter(frame: pd.DataFrame, path) -> Path:
    """TC of the mean against TC of the sampled representation, one point per model (Fig. 10)."""
    fig, axes = _figure(1, 1, panel=(4.0, 3.6), left=0.8, bottom=0.6, top=0.2)
    ax = axes[0][0]
    both = frame[np.isfinite(frame["tc_mean"].to_numpy(dtype=float)) & np.isfinite(frame["tc_sampled"].to_numpy(dtype=float))]
    both = both[(both["tc_mean"] > 0) & (both["tc_sampled"] > 0)]
    for method in method_order(both["method"].unique()):
        part = both[both["method"] == method]
        ax.scatter(part["tc_sampled"], part["tc_mean"], s=12, alpha=0.7, color=method_color(method), label=method_label(method))
    if len(both):
        lo = float(min(both["tc_mean"].min(), both["tc_sampled"].min()))
        hi = float(max(both["tc_mean"].max(), both["tc_sampled"].max()))
        ax.plot([lo, hi], [lo, hi], color="grey", linestyle="--", linewidth=1, label="equal")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax.set_xlabel("TC of the sampled representation", fontsize=8)
    ax.set_ylabel("TC of the mean representation", fontsize=8)
    return save(fig, path)


# -- heat maps (Figs. 2, 4 centre/right, 5; Table 5) ----------------------------------------


def heatmaps(
    matrices: dict[str, pd.DataFrame],
    path,
    *,
    vmin: float = -1.0,
    vmax: float = 1.0,
    cmap: str = "RdBu_r",
    fmt: str = "{:.2f}",
    colorbar_label: str = "Spearman rank correlation",
    per_row: int = 3,
) -> Path:
    """One annotated heat map per entry (title -> matrix), ``per_row`` to a row."""
    items = list(matrices.items())
    cols = min(per_row, len(items))
    rows = math.ceil(len(items) / cols)
    n_rows = max(m.shape[0] for _, m in items)
    n_cols = max(m.shape[1] for _, m in items)
    row_labels = [metric_label(str(r)) for _, m in items for r in m.index]
    col_labels = [metric_label(str(c)) for _, m in items for c in m.columns]
    cell = 0.42
    label_w = _text_inches(row_labels) + 0.15
    label_h = 0.75 * _text_inches(col_labels) + 0.2
    fig, axes = _figure(
        rows, cols, panel=(max(1.2, cell * n_cols), max(1.0, cell * n_rows)),
        left=label_w, right=1.2, top=0.35, bottom=label_h, wspace=label_w + 0.15, hspace=label_h + 0.35,
    )
    image = None
    for ax, (title, matrix) in zip(axes.flat, items):
        values = matrix.to_numpy(dtype=float)
        image = ax.imshow(np.ma.masked_invalid(values), vmin=vmin, vmax=vmax, cmap=cmap, aspect="auto")
        ax.set_xticks(range(matrix.shape[1]))
        ax.set_xticklabels([metric_label(str(c)) for c in matrix.columns], rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(matrix.shape[0]))
        ax.set_yticklabels([metric_label(str(r)) for r in matrix.index], fontsize=7)
        ax.set_title(title, fontsize=9)
        if values.size <= 150:
            for (r, c), v in np.ndenumerate(values):
                text = "–" if not np.isfinite(v) else fmt.format(v)
                dark = np.isfinite(v) and abs((v - vmin) / (vmax - vmin) - 0.5) > 0.3
                ax.text(c, r, text, ha="center", va="center", fontsize=6.5, color="white" if dark else "black")
    for ax in list(axes.flat)[len(items):]:
        ax.set_visible(False)
    if image is not None:
        width, _height = fig.get_size_inches()
        bar = fig.add_axes((1 - 0.85 / width, 0.25, 0.15 / width, 0.5))
        fig.colorbar(image, cax=bar, label=colorbar_label)
    return save(fig, path)


# -- Figs. 3-4 left --------------------------------------------------------------------------


def _violins(ax, groups: list[np.ndarray], colors: list[str], rng) -> None:
    positions = np.arange(1, len(groups) + 1)
    for pos, values, color in zip(positions, groups, colors):
        if len(values) >= 2 and np.ptp(values) > 0:
            parts = ax.violinplot([values], positions=[pos], showextrema=False, widths=0.8)
            for body in parts["bodies"]:
                body.set_facecolor(color)
                body.set_alpha(0.35)
        if len(values):
            jitter = rng.uniform(-0.12, 0.12, size=len(values))
            ax.scatter(pos + jitter, values, s=6, color=color, alpha=0.8, linewidths=0)
            ax.hlines(np.median(values), pos - 0.3, pos + 0.3, color="black", linewidth=1.2)


def violins_by_method(frame: pd.DataFrame, keys, path) -> Path:
    """Each metric's distribution per method over hyperparameters and seeds (Fig. 3 left, Fig. 13);
    rows are metrics, columns data sets."""
    datasets = sorted(frame["dataset"].unique())
    methods = method_order(frame["method"].unique())
    fig, axes = _figure(len(keys), len(datasets), panel=(max(2.4, 0.45 * len(methods) + 0.6), 2.0), bottom=0.9, hspace=1.2)
    rng = np.random.default_rng(0)
    for i, key in enumerate(keys):
        for j, dataset in enumerate(datasets):
            ax = axes[i][j]
            rows = frame[frame["dataset"] == dataset]
            groups = [_finite(rows.loc[rows["method"] == m, key]) for m in methods]
            _violins(ax, groups, [method_color(m) for m in methods], rng)
            ax.set_xticks(range(1, len(methods) + 1))
            ax.set_xticklabels([method_label(m) for m in methods], rotation=40, ha="right", fontsize=7)
            ax.set_title(f"{dataset}", fontsize=8)
            ax.set_ylabel(metric_label(key), fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    return save(fig, path)


def violins_by_strength(frame: pd.DataFrame, keys, dataset: str, path) -> Path:
    """Each metric's distribution over seeds for every method x hyperparameter value on one
    data set (Fig. 3 right, Fig. 14); rows are metrics, columns methods."""
    rows_all = frame[frame["dataset"] == dataset]
    methods = method_order(rows_all["method"].unique())
    levels = {m: sorted(v for v in rows_all.loc[rows_all["method"] == m, "strength"].unique() if np.isfinite(v)) for m in methods}
    widest = max([len(v) for v in levels.values()] + [1])
    fig, axes = _figure(len(keys), len(methods), panel=(max(2.2, 0.4 * widest + 0.6), 1.9), top=0.7, hspace=0.85)
    rng = np.random.default_rng(0)
    for i, key in enumerate(keys):
        for j, method in enumerate(methods):
            ax = axes[i][j]
            part = rows_all[rows_all["method"] == method]
            values = levels[method] or [np.nan]
            groups = [_finite(part.loc[part["strength"] == v, key]) if np.isfinite(v) else _finite(part[key]) for v in values]
            _violins(ax, groups, [method_color(method)] * len(groups), rng)
            ax.set_xticks(range(1, len(values) + 1))
            ax.set_xticklabels([f"{v:g}" for v in values], fontsize=7)
            param = PARAM_LABELS.get(REGULARIZER.get(method, ""), "")
            ax.set_xlabel(param, fontsize=8)
            ax.set_title(method_label(method), fontsize=8)
            ax.set_ylabel(metric_label(key), fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(dataset, fontsize=10)
    return save(fig, path)


def median_against_strength(frame: pd.DataFrame, keys, path) -> Path:
    """Median score over seeds against the rank of the strength, per method (Fig. 4 left,
    Fig. 15); rows are metrics, columns data sets."""
    datasets = sorted(frame["dataset"].unique())
    methods = method_order(frame["method"].unique())
    levels = {m: sorted(v for v in frame.loc[frame["method"] == m, "strength"].unique() if np.isfinite(v)) for m in methods}
    labels = _legend_labels(levels, methods)
    legend_rows = math.ceil(len(methods) / 3)
    fig, axes = _figure(len(keys), len(datasets), panel=(3.0, 2.1), bottom=0.65 + 0.2 * legend_rows, hspace=0.8)
    for i, key in enumerate(keys):
        for j, dataset in enumerate(datasets):
            ax = axes[i][j]
            rows = frame[(frame["dataset"] == dataset) & np.isfinite(frame[key].to_numpy(dtype=float))]
            for method in methods:
                med = rows[rows["method"] == method].groupby("strength")[key].median()
                med = med[[np.isfinite(v) for v in med.index]]
                if med.empty:
                    continue
                x = [levels[method].index(v) + 1 for v in med.index]
                ax.plot(x, med.to_numpy(), marker="o", markersize=3, color=method_color(method), label=labels[method])
            ax.set_title(dataset, fontsize=8)
            ax.set_ylabel(f"median {metric_label(key)}", fontsize=8)
            ax.set_xlabel("strength (rank of value)", fontsize=7)
            _integer_ticks(ax)
            ax.tick_params(labelsize=7)
    _legend_below(fig, axes)
    return save(fig, path)


# -- Fig. 6 and bars -------------------------------------------------------------------------


def scatter_panels(panels: list[dict], path, *, per_row: int = 3) -> Path:
    """Scatter plots; each panel: ``frame``, ``x``, ``y`` (columns), ``title``, ``xlabel``, ``ylabel``;
    points coloured by the frame's ``method``."""
    cols = min(per_row, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = _figure(rows, cols, panel=(3.2, 2.5), wspace=0.8, hspace=0.8)
    for ax, panel in zip(axes.flat, panels):
        frame = panel["frame"]
        for method in method_order(frame["method"].unique()):
            part = frame[frame["method"] == method]
            ax.scatter(part[panel["x"]], part[panel["y"]], s=10, alpha=0.75, color=method_color(method), label=method_label(method))
        ax.set_title(panel.get("title", ""), fontsize=8)
        ax.set_xlabel(panel.get("xlabel", panel["x"]), fontsize=8)
        ax.set_ylabel(panel.get("ylabel", panel["y"]), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    first = axes.flat[0]
    if first.get_legend_handles_labels()[0]:
        first.legend(fontsize=6)
    return save(fig, path)


def paired_bars(labels: list[str], ours: list[float], paper: list[float], path, *, ylabel: str, ours_label: str = "this table", paper_label: str = "paper") -> Path:
    """Side-by-side bars of our values and the paper's (NaN bars are left out)."""
    fig, axes = _figure(1, 1, panel=(max(4.0, 1.3 * len(labels) + 0.5), 2.8), bottom=0.6, top=0.2)
    ax = axes[0][0]
    x = np.arange(len(labels))
    ax.bar(x - 0.2, np.nan_to_num(ours, nan=0.0), width=0.4, label=ours_label, color="#4c72b0")
    ax.bar(x + 0.2, paper, width=0.4, label=paper_label, color="#bbbbbb")
    for xi, v in zip(x, ours):
        ax.text(xi - 0.2, (0 if not np.isfinite(v) else v) + 1, "n/a" if not np.isfinite(v) else f"{v:.1f}", ha="center", fontsize=7)
    for xi, v in zip(x, paper):
        ax.text(xi + 0.2, v + 1, f"{v:.1f}", ha="center", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.axhline(50, color="grey", linestyle=":", linewidth=1)
    ax.set_ylim(0, 105)
    ax.legend(fontsize=7)
    return save(fig, path)


# -- weak supervision (Locatello et al. 2020) ---------------------------------------------------


def weak_against_unsupervised(frame: pd.DataFrame, keys, path, *, weak_methods) -> Path:
    """Each metric per method, the unsupervised methods then the weakly-supervised ones (after a
    dashed line), over every seed, hyperparameter and k; rows are metrics, columns data sets."""
    datasets = sorted(d for d in frame["dataset"].unique()
                      if set(frame.loc[frame["dataset"] == d, "method"]) & set(weak_methods)
                      and set(frame.loc[frame["dataset"] == d, "method"]) - set(weak_methods))
    present = set(frame.loc[frame["dataset"].isin(datasets), "method"])
    unsupervised = method_order(m for m in present if m not in weak_methods)
    weak = [m for m in weak_methods if m in present]
    methods = unsupervised + weak
    fig, axes = _figure(len(keys), len(datasets), panel=(max(2.4, 0.45 * len(methods) + 0.6), 2.0), bottom=0.9, hspace=1.2)
    rng = np.random.default_rng(0)
    for i, key in enumerate(keys):
        for j, dataset in enumerate(datasets):
            ax = axes[i][j]
            rows = frame[frame["dataset"] == dataset]
            groups = [_finite(rows.loc[rows["method"] == m, key]) for m in methods]
            _violins(ax, groups, [method_color(m) for m in methods], rng)
            ax.axvline(len(unsupervised) + 0.5, color="#888", linestyle="--", linewidth=0.8)
            ax.set_xticks(range(1, len(methods) + 1))
            ax.set_xticklabels([method_label(m) for m in methods], rotation=40, ha="right", fontsize=7)
            ax.set_title(f"{dataset}", fontsize=8)
            ax.set_ylabel(metric_label(key), fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    return save(fig, path)


# -- semi-supervision (Locatello et al., ICLR 2020) ---------------------------------------------

SEMI_COLORS = {"unsupervised": "#8c8c8c", "s2": "#4c72b0"}


def semi_selection(selected: pd.DataFrame, path) -> Path:
    """The selected models' test scores: rows are test metrics, columns (data set, number of
    labels); per validation score, the unsupervised models selected with it (grey) beside the
    S2 models selected with it (blue), one point per seed, bars at the medians."""
    columns = sorted({(d, int(n)) for d, n in zip(selected["dataset"], selected["num_labels"])})
    metrics = list(dict.fromkeys(selected["metric"]))
    validations = list(dict.fromkeys(selected["validation"]))
    fig, axes = _figure(len(metrics), len(columns), panel=(max(2.6, 0.9 * len(validations) + 0.8), 2.0), bottom=0.9, hspace=1.2)
    rng = np.random.default_rng(0)
    for i, key in enumerate(metrics):
        for j, (dataset, n) in enumerate(columns):
            ax = axes[i][j]
            here = selected[(selected["metric"] == key) & (selected["dataset"] == dataset) & (selected["num_labels"] == n)]
            groups, colors, ticks = [], [], []
            for v in validations:
                for family in ("unsupervised", "s2"):
                    groups.append(_finite(here.loc[(here["validation"] == v) & (here["family"] == family), "value"]))
                    colors.append(SEMI_COLORS[family])
                ticks.append(f"{v.split('_validation')[0].upper()} val.")
            _violins(ax, groups, colors, rng)
            ax.set_xticks([2 * k + 1.5 for k in range(len(validations))])
            ax.set_xticklabels(ticks, fontsize=7)
            ax.set_title(f"{dataset}, {n} labels", fontsize=8)
            ax.set_ylabel(metric_label(key), fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
    return save(fig, path)


# -- stability across sample sizes (the JMLR version) --------------------------------------------


def agreement_with_largest(agreement: pd.DataFrame, path) -> Path:
    """Spearman correlation between the model ranking at each sample size and the ranking at
    the largest size, against the size (log axis); a line per metric, a panel per data set.

    ``agreement``: rows of :func:`stats.sample_size_agreement` with ``size_b == largest``."""
    datasets = sorted(agreement["dataset"].unique())
    metrics = list(dict.fromkeys(agreement["metric"]))
    legend_rows = math.ceil(len(metrics) / 3)
    fig, axes = _figure(1, len(datasets), panel=(3.4, 2.5), bottom=0.65 + 0.2 * legend_rows, wspace=0.8)
    for ax, dataset in zip(axes[0], datasets):
        rows = agreement[agreement["dataset"] == dataset]
        for i, key in enumerate(metrics):
            part = rows[rows["metric"] == key].sort_values("size_a")
            if part.empty:
                continue
            ax.plot(part["size_a"], part["spearman"], marker="o", markersize=3, color=f"C{i % 10}", label=metric_label(key))
        ax.set_xscale("log")
        ax.set_ylim(-1.05, 1.05)
        ax.axhline(0, color="grey", linewidth=0.6, linestyle=":")
        ax.set_title(dataset, fontsize=8)
        ax.set_xlabel("training sample size of the metric", fontsize=8)
        ax.set_ylabel("ρ with the largest size", fontsize=8)
        ax.tick_params(labelsize=7)
    _legend_below(fig, axes)
    return save(fig, path)
