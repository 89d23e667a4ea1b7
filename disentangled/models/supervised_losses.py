"""The supervised losses and annealers of the semi-supervised models (dlib's ``semi_supervised_vae``).

Locatello et al., "Disentangling Factors of Variation Using Few Labels", ICLR 2020
(arXiv 1905.01258), sec. 3, eq. 2: the semi-supervised objective adds
``gamma_sup(t) * R_s(mu(x_labelled), y)`` to an unsupervised VAE objective, where ``R_s``
is one of the losses below, applied to the encoder **means** of the labelled batch. With
``K`` label columns, the losses that bind latents to factors use the first ``K`` latents:

* ``l2``: ``sum_{b,k} (s * mu_bk - y_bk)^2`` with a learned scalar ``s`` (initial value 1);
  with ``learn_scale: false``, ``sum_{b,k} (sigmoid(mu_bk) - y_bk / n_k)^2`` (see :class:`L2`);
* ``xent``: ``sum_{b,k} CE_sigmoid(logit = mu_bk, target = y_bk / n_k)``: the targets are the
  labels divided by the number of values ``n_k`` (not ``n_k - 1``), as in the reference, so
  they lie in ``[0, (n_k - 1) / n_k]``;
* ``cov``: the sum of the squared off-diagonal entries of the batch cross-covariance between
  **all** latent means and the labels (the first ``min(D, K)`` diagonal entries are left
  out); it only decorrelates;
* ``embed``: per column ``k``, logits ``-((mu_bk - e_kv) * sigma)^2`` over the column's values
  ``v`` against a learned 1-D embedding ``e_k`` (free, or ``slope * v + bias`` with
  ``use_order``), softmax cross-entropy **averaged** over the batch, summed over the columns.

Reductions are the reference's: ``l2``, ``xent`` and ``cov``'s entries are sums over the
batch, ``embed`` is a batch mean, so one ``gamma_sup`` weighs the losses differently.

Annealers of ``gamma_sup`` (``t`` the number of completed updates, ``T`` ``iteration_threshold``):
``fixed`` ``gamma``; ``anneal`` ``min(gamma, gamma * t / T)``; ``fine_tune``
``gamma * min(1, max(0, t - T))``: 0 up to ``t = T`` and ``gamma`` from ``t = T + 1``.

Every function broadcasts over leading axes (a stack of models, ``[M, B, K]``); the learned
parameters of a loss live in :class:`LossParameters`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ParameterError, check, check_float, check_int, message
from ..registry import Registry
from .distributions import matmul

# --- annealers ------------------------------------------------------------------------------


def fixed_annealer(gamma: float, step, iteration_threshold: int) -> float:
    """``gamma`` at every step."""
    return float(gamma)


def linear_annealer(gamma: float, step, iteration_threshold: int) -> float:
    """``min(gamma, gamma * step / iteration_threshold)``: a linear ramp that reaches ``gamma`` at the threshold."""
    return min(float(gamma), float(gamma) * float(step) / iteration_threshold)


def fine_tune_annealer(gamma: float, step, iteration_threshold: int) -> float:
    """``gamma * min(1, max(0, step - iteration_threshold))``: 0 up to the threshold, ``gamma`` after it."""
    return float(gamma) * min(1.0, max(0.0, float(step - iteration_threshold)))


#: The annealers by name (dlib's gin names ``fixed``, ``anneal``, ``fine_tune``).
ANNEALERS = Registry("annealer", {
    "fixed": fixed_annealer,
    "anneal": linear_annealer,
    "fine_tune": fine_tune_annealer,
}, option="setting", options=lambda entry: [])


def anneal(name: str, gamma: float, step, iteration_threshold: int) -> float:
    """``gamma_sup`` at ``step`` under the annealer ``name`` (a Python float, computed in double precision)."""
    if torch.is_tensor(step):
        step = int(step)
    return ANNEALERS[name](gamma, step, iteration_threshold)


# --- the losses -------------------------------------------------------------------------------


def _trailing(value, dims: int):
    """A per-model coefficient ``[M]`` (or a float) shaped to broadcast against ``dims`` more axes."""
    if torch.is_tensor(value) and value.dim() > 0:
        return value.reshape(*value.shape, *([1] * dims))
    return value


def _first(mean: Tensor, labels: Tensor, loss: str) -> Tensor:
    k, d = labels.shape[-1], mean.shape[-1]
    if k > d:
        raise ParameterError(message("model.num_latent", f">= {k}", d,
                                     why=f"the {loss} loss binds latent k to label column k of the {k} label columns"))
    return mean[..., :k]


def l2_loss(mean: Tensor, labels: Tensor, sizes: Tensor, *, scale: Tensor | None = None) -> Tensor:
    """``sum_{b,k} (scale * mu_bk - y_bk)^2``; without ``scale``, ``sum_{b,k} (sigmoid(mu_bk) - y_bk / n_k)^2``.

    ``mean [..., B, D]``, ``labels [..., B, K]``, ``sizes [..., K]``, ``scale [...]``; returns ``[...]``.
    """
    mu = _first(mean, labels, "l2")
    if scale is not None:
        residual = mu * _trailing(scale, 2) - labels
    else:
        residual = torch.sigmoid(mu) - labels / sizes.unsqueeze(-2)
    return residual.square().sum((-2, -1))


def xent_loss(mean: Tensor, labels: Tensor, sizes: Tensor) -> Tensor:
    """``sum_{b,k} CE_sigmoid(mu_bk, y_bk / n_k)``: ``[...]``. With zero codes every cell costs ``ln 2``."""
    mu = _first(mean, labels, "xent")
    targets = labels / sizes.unsqueeze(-2)
    return F.binary_cross_entropy_with_logits(mu, targets, reduction="none").sum((-2, -1))


def cov_loss(mean: Tensor, labels: Tensor, sizes: Tensor | None = None) -> Tensor:
    """Sum of squared entries of the batch cross-covariance ``Cov[mu_d, y_k]`` (biased, over the batch)
    off its first ``min(D, K)`` diagonal entries: ``[...]``."""
    rep = mean - mean.mean(-2, keepdim=True)
    lab = labels - labels.mean(-2, keepdim=True)
    cov = matmul(rep.transpose(-1, -2), lab) / mean.shape[-2]  # [..., D, K]
    keep = 1.0 - torch.eye(cov.shape[-2], cov.shape[-1], dtype=cov.dtype, device=cov.device)
    return (cov * keep).square().sum((-2, -1))


def embed_loss(mean: Tensor, labels: Tensor, sizes: Tensor, *, embedding: Tensor, sigma=1.0,
               learned_sigma: Tensor | None = None) -> Tensor:
    """Per column ``k``: softmax cross-entropy of the logits ``-((mu_bk - e_kv) * sigma_k)^2`` over the
    column's values ``v < n_k`` against the label, averaged over the batch; summed over the columns.

    ``embedding [..., K, S]`` holds the values' embeddings (entries ``v >= n_k`` are ignored, so
    columns of different sizes share one tensor); the temperature is ``learned_sigma [..., K]``
    when given, else ``sigma`` (a float, or one per model ``[M]``). Returns ``[...]``.
    """
    mu = _first(mean, labels, "embed")
    temperature = learned_sigma.unsqueeze(-2).unsqueeze(-1) if learned_sigma is not None else _trailing(sigma, 3)
    logits = -((mu.unsqueeze(-1) - embedding.unsqueeze(-3)) * temperature).square()  # [..., B, K, S]
    values = torch.arange(embedding.shape[-1], device=mean.device)
    outside = values >= sizes.unsqueeze(-1).unsqueeze(-3)  # [..., 1, K, S]
    logits = logits.masked_fill(outside, float("-inf"))
    picked = labels.long().unsqueeze(-1)
    ce = torch.logsumexp(logits, -1) - logits.gather(-1, picked).squeeze(-1)  # [..., B, K]
    return ce.mean(-2).sum(-1)


class SupervisedLoss:
    """A supervised loss's settings (a frozen dataclass each); ``name`` is its registry key."""

    name: ClassVar[str]

    def learns(self) -> bool:
        """Whether the loss has parameters of its own (trained with the VAE)."""
        return False


@dataclass(frozen=True)
class L2(SupervisedLoss):
    """``l2``. ``learn_scale`` (the reference's default): the first latents, times a learned scalar, regress the raw labels.

    ``learn_scale: false`` is broken in the reference (an added axis broadcasts the batch against
    itself, ``[B, B, K]``, and the label normalisation indexes a tensor's dimension with NumPy; it
    is untested there). Here it is the loss that branch intends:
    ``sum_{b,k} (sigmoid(mu_bk) - y_bk / n_k)^2``, the codes squashed into the labels' range.
    """

    learn_scale: bool = True

    name: ClassVar[str] = "l2"

    def __post_init__(self):
        check("l2: learn_scale", self.learn_scale, lambda v: isinstance(v, bool), "true or false")

    def learns(self) -> bool:
        return self.learn_scale


@dataclass(frozen=True)
class Xent(SupervisedLoss):
    """``xent``: sigmoid cross-entropy of the first latents against the labels divided by their number of values."""

    name: ClassVar[str] = "xent"


@dataclass(frozen=True)
class Cov(SupervisedLoss):
    """``cov``: squared off-diagonal cross-covariances between all latent means and the labels."""

    name: ClassVar[str] = "cov"


@dataclass(frozen=True)
class Embed(SupervisedLoss):
    """``embed``: softmax over a learned 1-D embedding of each factor's values.

    ``sigma``: the temperature, a number > 0 or ``"learn"`` (one learned per column);
    ``use_order``: embed value ``v`` as ``slope * v + bias`` (two learned numbers per column)
    instead of a free embedding per value.
    """

    sigma: float | str = 1.0
    use_order: bool = False

    name: ClassVar[str] = "embed"

    def __post_init__(self):
        if isinstance(self.sigma, str):
            check("embed: sigma", self.sigma, lambda v: v == "learn", "a number > 0 or 'learn'")
        else:
            check_float("embed: sigma", self.sigma, low=0.0, low_open=True, fix="or use 'learn'")
            object.__setattr__(self, "sigma", float(self.sigma))
        check("embed: use_order", self.use_order, lambda v: isinstance(v, bool), "true or false")

    def learns(self) -> bool:
        return True


#: The supervised losses by name; a loss's settings are its dataclass fields.
SUPERVISED_LOSSES = Registry("supervised loss", {"l2": L2, "xent": Xent, "cov": Cov, "embed": Embed}, option="setting")


class LossParameters(nn.Module):
    """The learned parameters of a supervised loss: ``scale`` (l2), ``embedding`` or ``slope`` and
    ``bias`` (embed), ``sigma`` (embed with ``sigma: learn``).

    Initialised as TensorFlow 1 initialises the reference's variables: ``scale`` 1;
    Glorot-uniform otherwise, which for a vector of ``n`` entries is ``U(-sqrt(3 / n), sqrt(3 / n))``
    and for a scalar ``U(-sqrt(3), sqrt(3))``. An embedding column of ``n_k`` values is
    initialised over its first ``n_k`` entries as a vector of that length (the rest are never used).
    """

    def __init__(self, loss: SupervisedLoss, num_columns: int, largest_size: int, *, num_latent: int,
                 sizes: Sequence[int] | None = None):
        super().__init__()
        self.num_latent = int(num_latent)  # what a stacked copy reports (models.stacked)
        check_int("LossParameters: num_columns", num_columns, low=1)
        sizes = list(sizes) if sizes is not None else [largest_size] * num_columns
        if isinstance(loss, L2) and loss.learn_scale:
            self.scale = nn.Parameter(torch.ones(()))
        if isinstance(loss, Embed):
            root3 = math.sqrt(3.0)
            if loss.use_order:
                self.slope = nn.Parameter(torch.empty(num_columns).uniform_(-root3, root3))
                self.bias = nn.Parameter(torch.empty(num_columns).uniform_(-root3, root3))
            else:
                embedding = torch.zeros(num_columns, largest_size)
                for k, n in enumerate(sizes):
                    limit = math.sqrt(3.0 / n)
                    embedding[k, :n].uniform_(-limit, limit)
                self.embedding = nn.Parameter(embedding)
            if loss.sigma == "learn":
                self.sigma = nn.Parameter(torch.empty(num_columns).uniform_(-root3, root3))


def supervised_loss(loss: SupervisedLoss, mean: Tensor, labels: Tensor, sizes: Tensor, *, parameters: nn.Module | None,
                    width: int, sigma=None) -> Tensor:
    """The loss ``loss`` of the labelled batch's encoder means: ``[...]``.

    ``parameters``: the loss's :class:`LossParameters` (or a stack of them, whose tensors carry
    the model axis first); ``width``: the most values a label column can take;
    ``sigma``: embed's fixed temperature (a float or per-model ``[M]``).
    """
    if isinstance(loss, L2):
        return l2_loss(mean, labels, sizes, scale=parameters.scale if loss.learn_scale else None)
    if isinstance(loss, Xent):
        return xent_loss(mean, labels, sizes)
    if isinstance(loss, Cov):
        return cov_loss(mean, labels, sizes)
    if isinstance(loss, Embed):
        if loss.use_order:
            values = torch.arange(width, dtype=mean.dtype, device=mean.device)
            embedding = values * parameters.slope.unsqueeze(-1) + parameters.bias.unsqueeze(-1)
        else:
            embedding = parameters.embedding
        learned = parameters.sigma if loss.sigma == "learn" else None
        return embed_loss(mean, labels, sizes, embedding=embedding, sigma=sigma, learned_sigma=learned)
    raise TypeError(f"loss must be one of the supervised losses {list(SUPERVISED_LOSSES)}, got {type(loss).__name__}")


__all__ = [
    "ANNEALERS",
    "Cov",
    "Embed",
    "L2",
    "LossParameters",
    "SUPERVISED_LOSSES",
    "SupervisedLoss",
    "Xent",
    "anneal",
    "cov_loss",
    "embed_loss",
    "fine_tune_annealer",
    "fixed_annealer",
    "l2_loss",
    "linear_annealer",
    "supervised_loss",
    "xent_loss",
]
