"""The metrics of the study, and more: ``METRICS[name]()`` has the study's settings.

Every metric is a frozen dataclass (its fields are its settings) with
``evaluate(data, representation, rng=...) -> {"name.key": float}``; those that can be
computed from a fixed sample of codes and factors also have
``score(codes, factors, codes_test=None, factors_test=None)``. The math lives in pure
functions on arrays (codes float ``[N, D]``, factors int ``[N, K]``): :func:`mig`,
:func:`dci`, :func:`sap`, :func:`modularity`, :func:`unsupervised_scores`, :func:`irs`, ...

:class:`UDR` is the one metric that scores a *set* of models against each other
(``UDR().evaluate(data, encoders, rng=...)``, or :func:`udr_scores` on arrays); it is not in
``METRICS``, whose entries score one representation.

See ``docs/metrics.md`` for each score key, its disentanglement_lib name, the defaults, the
fixes and the tolerances.
"""

from __future__ import annotations

from ..registry import Registry
from .base import Metric, namespaced, settings_of
from .beta_vae import BetaVAE, beta_vae_score
from .dci import DCI, completeness, dci, disentanglement, importance_matrix
from .downstream import DownstreamBoostedTrees, DownstreamLogisticRegression, downstream_scores
from .factor_vae import FactorVAE, factor_vae_accuracy, factor_vae_votes
from .fairness import Fairness, fairness_scores_dict, inter_group_fairness
from .irs import IRS, irs
from .mig import MIG, mig
from .modularity import ModularityExplicitness, explicitness_per_factor, modularity, modularity_explicitness
from .reduced_downstream import ReducedDownstream, reduced_downstream_scores
from .sampling import EncodingCache, Encoder, sample_codes
from .sap import SAP, sap, sap_matrix
from .strong_downstream import StrongDownstream, intervene
from .udr import UDR, gaussian_kl, lasso_matrix, relative_strength, spearman_matrix, udr_scores
from .unified import Unified, unified_scores
from .unsupervised import Unsupervised, gaussian_total_correlation, gaussian_wasserstein_correlation, unsupervised_scores
from .utils import discrete_entropy, discrete_mutual_info, histogram_discretize

# a metric's settings are its dataclass fields
METRICS = Registry("metric", {
    "beta_vae": BetaVAE,
    "factor_vae": FactorVAE,
    "mig": MIG,
    "dci": DCI,
    "sap": SAP,
    "modularity_explicitness": ModularityExplicitness,
    "unsupervised": Unsupervised,
    "downstream_logistic_regression": DownstreamLogisticRegression,
    "downstream_boosted_trees": DownstreamBoostedTrees,
    "irs": IRS,
    # the follow-up studies' scores of one representation (UDR, which scores a set of
    # models against each other, is UDR below)
    "fairness": Fairness,
    "strong_downstream": StrongDownstream,
    "reduced_downstream": ReducedDownstream,
    "unified": Unified,
}, option="setting")

# the study's nine metric configurations (unsupervised_study_v1), in the reference's order
STUDY_METRICS = (
    "beta_vae",
    "dci",
    "downstream_boosted_trees",
    "downstream_logistic_regression",
    "factor_vae",
    "mig",
    "modularity_explicitness",
    "sap",
    "unsupervised",
)

# metrics computable from a fixed training (and test) sample of codes and factors
ARRAY_METRICS = ("mig", "dci", "sap", "modularity_explicitness", "unsupervised", "irs", "reduced_downstream", "unified")


def get(name: str, **settings):
    """The metric registered as ``name`` with ``settings`` overriding the study's defaults."""
    return METRICS.build(name, **settings)


__all__ = [
    "ARRAY_METRICS",
    "METRICS",
    "STUDY_METRICS",
    "BetaVAE",
    "DCI",
    "DownstreamBoostedTrees",
    "DownstreamLogisticRegression",
    "EncodingCache",
    "Encoder",
    "FactorVAE",
    "Fairness",
    "IRS",
    "MIG",
    "Metric",
    "ModularityExplicitness",
    "ReducedDownstream",
    "SAP",
    "StrongDownstream",
    "UDR",
    "Unified",
    "Unsupervised",
    "beta_vae_score",
    "completeness",
    "dci",
    "disentanglement",
    "discrete_entropy",
    "discrete_mutual_info",
    "downstream_scores",
    "explicitness_per_factor",
    "factor_vae_accuracy",
    "factor_vae_votes",
    "fairness_scores_dict",
    "gaussian_kl",
    "gaussian_total_correlation",
    "gaussian_wasserstein_correlation",
    "get",
    "histogram_discretize",
    "importance_matrix",
    "inter_group_fairness",
    "intervene",
    "irs",
    "lasso_matrix",
    "mig",
    "modularity",
    "modularity_explicitness",
    "namespaced",
    "reduced_downstream_scores",
    "relative_strength",
    "sample_codes",
    "sap",
    "sap_matrix",
    "settings_of",
    "spearman_matrix",
    "udr_scores",
    "unified_scores",
    "unsupervised_scores",
]
