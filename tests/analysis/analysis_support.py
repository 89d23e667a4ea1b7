"""Synthetic results tables in the format of ``disentangled study collect``.

Every run has a latent "quality" made of a setting effect (method x strength) and a seed
effect; the six metrics are noisy increasing functions of it, except Modularity, which is
noise. The sampled representation's total correlation falls with the strength and the mean
representation's rises (except DIP-VAE-I's), as in the paper's Fig. 1.

:func:`add_scores` appends a follow-up metric's rows (UDR, fairness) with values the test
chooses; :func:`with_evaluations` turns a table into a JMLR-style one (several evaluation
repetitions, swept sample sizes) whose primary evaluation is the original table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

GRIDS = {
    "beta_vae": ("beta", [1.0, 4.0, 16.0]),
    "factor_vae": ("gamma", [10.0, 40.0, 100.0]),
    "dip_vae_i": ("lambda_od", [1.0, 10.0, 50.0]),
    "beta_tc_vae": ("beta", [1.0, 4.0, 10.0]),
}


def synthetic_table(
    *,
    datasets=("dsprites_full", "color_dsprites"),
    methods=tuple(GRIDS),
    seeds=(0, 1, 2, 3),
    seed: int = 0,
    downstream_sizes=(10, 100, 1000),
    drop_keys=(),
    grids=None,
) -> pd.DataFrame:
    """``grids``: ``{method: (hyperparameter, values)}`` replacing :data:`GRIDS` for the methods it names."""
    grids = {**GRIDS, **(grids or {})}
    rng = np.random.default_rng(seed)
    rows = []
    model_num = 0
    setting_effect = {}
    for method in methods:
        param, values = grids[method]
        for rank, value in enumerate(values):
            setting_effect[(method, value)] = rng.normal(0, 1)
    for d, dataset in enumerate(datasets):
        for method in methods:
            param, values = grids[method]
            for rank, value in enumerate(values):
                for s in seeds:
                    quality = setting_effect[(method, value)] + 0.2 * d * rng.normal() + 0.6 * rng.normal()
                    strength = rank / max(1, len(values) - 1)
                    tc_sampled = float(np.exp(1.5 - 2.0 * strength + 0.2 * rng.normal()))
                    tc_mean = float(np.exp(1.0 + (0.1 if method == "dip_vae_i" else 2.5) * strength + 0.2 * rng.normal()))
                    scores = {
                        "beta_vae.eval_accuracy": 0.7 + 0.1 * quality + 0.02 * rng.normal(),
                        "factor_vae.eval_accuracy": 0.6 + 0.1 * quality + 0.02 * rng.normal(),
                        "mig.discrete_mig": 0.2 + 0.05 * quality + 0.01 * rng.normal(),
                        "dci.disentanglement": 0.3 + 0.06 * quality + 0.01 * rng.normal(),
                        "dci.completeness": 0.3 + 0.05 * quality + 0.02 * rng.normal(),
                        "modularity_explicitness.modularity_score": 0.8 + 0.05 * rng.normal(),
                        "sap.sap_score": 0.05 + 0.02 * quality + 0.01 * rng.normal(),
                        "unsupervised.gaussian_wasserstein_correlation": 0.1 * rng.random(),
                    }
                    for n in downstream_sizes:
                        lift = np.log10(n) / 3
                        scores[f"downstream_logistic_regression.{n}.mean_test_accuracy"] = 0.3 + 0.3 * lift + 0.05 * quality + 0.02 * rng.normal()
                        scores[f"downstream_boosted_trees.{n}.mean_test_accuracy"] = 0.3 + 0.4 * lift + 0.04 * quality + 0.02 * rng.normal()
                    recon = 40.0 - 3 * quality + rng.normal()
                    kl = 20.0 - 10 * strength + rng.normal()
                    base = {
                        "model_num": model_num,
                        "run_id": f"{model_num:08x}",
                        "config.seed": s,
                        "config.data.name": dataset,
                        "config.data.source": "procedural",
                        "config.objective.name": method,
                        f"config.objective.{param}": value,
                        "config.train.steps": 1000,
                        "train.reconstruction_loss": recon,
                        "train.kl_loss": kl,
                        "train.elbo": -(recon + kl),
                        "train.regularizer": kl * value,
                        "train.loss": recon + kl * value,
                    }
                    for rep, tc in (("mean", tc_mean), ("sampled", tc_sampled)):
                        rep_scores = dict(scores, **{"unsupervised.gaussian_total_correlation": tc})
                        if rep == "sampled":  # the sampled representation is a little worse
                            rep_scores = {k: (v - 0.02 if "accuracy" in k else v) for k, v in rep_scores.items()}
                        for key, value_ in rep_scores.items():
                            if key in drop_keys:
                                continue
                            rows.append({**base, "representation": rep, "metric": key.split(".")[0], "score_key": key, "value": float(value_)})
                    model_num += 1
    table = pd.DataFrame(rows)
    first = ["model_num", "run_id", "representation", "metric", "score_key", "value"]
    return table[first + sorted(c for c in table.columns if c not in first)]


def add_scores(table: pd.DataFrame, metric: str, values: dict, *, representation: str = "mean") -> pd.DataFrame:
    """``table`` with rows of ``metric`` appended: ``values`` maps a score key to ``{model_num: value}``;
    each new row carries its run's configuration and training columns, as ``study collect`` writes them."""
    per_run = table.drop_duplicates("model_num").set_index("model_num")
    keep = [c for c in per_run.columns if c.startswith(("config.", "data.", "train.")) or c == "run_id"]
    rows = []
    for key, by_run in values.items():
        for n, value in by_run.items():
            rows.append({"model_num": n, **per_run.loc[n, keep].to_dict(), "representation": representation,
                         "metric": metric, "score_key": key, "value": float(value)})
    return pd.concat([table, pd.DataFrame(rows)], ignore_index=True)


def with_evaluations(table: pd.DataFrame, *, num_eval: int = 3, sizes=(100, 1000), swept=(), keep_own: bool = True) -> pd.DataFrame:
    """A JMLR-style table made from ``table``: every score evaluated ``num_eval`` times
    (``repetition``) and the score keys in ``swept`` also at each of ``sizes`` (``sample_size``;
    a nullable integer column, missing on the other rows, as ``study collect`` writes it).

    The primary evaluation (``stats.primary_rows``) is ``table`` itself: repetition 0 keeps
    the original values on the rows without a sample size (``keep_own``), or, without them
    (``keep_own=False``), at the largest size. Every other evaluation is shifted by
    ``10 * repetition`` plus ``1 + size / 1e5`` off the primary size, so a section that
    averaged or mixed evaluations would not see the original numbers.
    """
    swept = set(swept)
    largest = max(sizes) if sizes else None
    parts = []
    for r in range(num_eval):
        # the rows without a sample size: every key, or only the keys that were not swept
        own = table if keep_own else table[~table["score_key"].isin(swept)]
        parts.append(own.assign(value=own["value"] + 10.0 * r, repetition=r, sample_size=None))
        rows = table[table["score_key"].isin(swept)]
        for size in sizes:
            primary = not keep_own and size == largest
            shift = 10.0 * r + (0.0 if primary else 1.0 + size / 1e5)
            parts.append(rows.assign(value=rows["value"] + shift, repetition=r, sample_size=size))
    out = pd.concat(parts, ignore_index=True)
    out["repetition"] = out["repetition"].astype("int64")
    out["sample_size"] = out["sample_size"].astype("Int64")
    return out
