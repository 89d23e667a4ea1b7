"""Diagonal Gaussians and the batch estimators the six objectives are built from.

Every function acts on the last axes and broadcasts over any leading axes, so one call can
serve a stack of models: ``mean`` of shape ``[B, D]`` for one model or ``[M, B, D]`` for
``M`` models trained side by side. ``B`` is always the batch axis (second to last) and ``D``
the latent axis (last).

Randomness is passed in: the functions that sample take a :class:`torch.Generator`, or, for
a stack of ``M`` models, a sequence of ``M`` generators: model ``m`` then draws its slice
from its own generator exactly what it would draw alone (same shape, same order), so a
model trained in an ensemble sees the noise it sees when trained by itself.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import ParameterError, message

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_kl(mean: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) per sample, summed over the latents: ``[..., B]``.

    ``0.5 * sum_d (mean^2 + exp(logvar) - logvar - 1)`` (Kingma & Welling 2014, appendix B);
    dlib's ``compute_gaussian_kl`` is the batch mean of this.
    """
    return 0.5 * (mean.square() + logvar.exp() - logvar - 1.0).sum(-1)


def gaussian_log_density(x: Tensor, mean: Tensor, logvar: Tensor) -> Tensor:
    """Elementwise log N(x; mean, exp(logvar)); the three arguments broadcast together."""
    return -0.5 * (LOG_2PI + logvar + (x - mean).square() * torch.exp(-logvar))


def draw(sampler, shape, *, generator, dtype=None, device=None) -> Tensor:
    """``sampler(shape)`` (``torch.randn``, ``torch.rand``) from one generator, or from one per leading index.

    With a sequence of generators, ``shape[0]`` must equal their number; slice ``m`` is
    ``sampler(shape[1:], generator=generator[m])``, drawn on the generator's device and
    moved to ``device``.
    """
    if isinstance(generator, torch.Generator):
        return sampler(shape, generator=generator, dtype=dtype, device=device)
    generators = list(generator)
    if not shape or len(generators) != shape[0]:
        raise ValueError(
            f"generator: expected a torch.Generator or one generator per model along the leading axis "
            f"({shape[0] if shape else 'none'}), got {len(generators)} generators"
        )
    slices = [sampler(shape[1:], generator=g, dtype=dtype, device=g.device) for g in generators]
    return torch.stack(slices).to(device)


def sample_gaussian(mean: Tensor, logvar: Tensor, *, generator) -> Tensor:
    """One reparameterised sample ``mean + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``."""
    eps = draw(torch.randn, mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return torch.addcmul(mean, torch.exp(0.5 * logvar), eps)


def total_correlation(z: Tensor, mean: Tensor, logvar: Tensor, *, chunk_size: int | None = None) -> Tensor:
    """Minibatch-weighted-sampling estimate of TC(z) on one batch, without its constants: ``[...]``.

    With ``L[i, j, d] = log q(z_i,d | x_j)`` (each sample ``z_i`` scored under every
    posterior of the batch), as in beta-TCVAE (Chen et al. 2018, eq. 3 and appendix C.1) and
    dlib's ``total_correlation``::

        log q(z_i)            ~ logsumexp_j sum_d L[i, j, d]
        log prod_d q(z_i,d)   ~ sum_d logsumexp_j L[i, j, d]
        TC                    = mean_i [log q(z_i) - log prod_d q(z_i,d)]

    The omitted ``log(B * N)`` normalisers shift the value by ``(D - 1) log(B * N)`` and leave
    the gradients unchanged: for independent latents the estimate is about ``-(D-1) log B``.

    ``chunk_size`` bounds memory to ``[..., chunk_size, D, B]`` by processing the samples
    ``i`` in slices; every row is computed independently, so the result is the same.
    """
    batch = z.shape[-2]
    step = batch if chunk_size is None else int(chunk_size)
    if step <= 0:
        raise ParameterError(message("total_correlation: chunk_size", "> 0", chunk_size))
    # Posterior parameters laid out [..., 1, D, B] (j last, so both logsumexps run over the
    # contiguous axis): log q(z_i,d | x_j) = const_j - 0.5 * (z_i * scale_j - shift_j)^2.
    scale_j = torch.exp(-0.5 * logvar).transpose(-1, -2).unsqueeze(-3)
    shift_j = mean.transpose(-1, -2).unsqueeze(-3) * scale_j
    const_j = (-0.5 * (LOG_2PI + logvar)).transpose(-1, -2).unsqueeze(-3)
    rows = []
    for start in range(0, batch, step):
        z_i = z[..., start : start + step, :].unsqueeze(-1)  # [..., i, D, 1]
        diff = z_i * scale_j - shift_j
        log_q = torch.addcmul(const_j, diff, diff, value=-0.5)  # [..., i, D, j]
        log_qz = torch.logsumexp(log_q.sum(-2), dim=-1)
        log_qz_product = torch.logsumexp(log_q, dim=-1).sum(-1)
        rows.append(log_qz - log_qz_product)
    return (rows[0] if len(rows) == 1 else torch.cat(rows, dim=-1)).mean(-1)


def covariance(mean: Tensor) -> Tensor:
    """Biased covariance of the rows over the batch axis: ``E[mu mu^T] - E[mu] E[mu]^T``, ``[..., D, D]``.

    Divides by ``B`` like dlib's ``compute_covariance_z_mean``; computed from centred rows,
    which is the same quantity with less cancellation in float32.
    """
    centred = mean - mean.mean(-2, keepdim=True)
    return matmul(centred.transpose(-1, -2), centred) / mean.shape[-2]


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b``; on the CPU with leading axes, one product per leading index.

    The CPU's batched product sums in another order than the product of one matrix, so a
    stack of models would not compute bit for bit what each model computes alone.
    """
    if a.dim() <= 2 or a.device.type != "cpu":
        return a @ b
    return torch.stack([matmul(x, y) for x, y in zip(a.unbind(0), b.unbind(0))])


def permute_dims(z: Tensor, *, generator) -> Tensor:
    """Permute each latent dimension independently across the batch (FactorVAE's sample of prod_d q(z_d)).

    Column ``d`` of the result is a random permutation of column ``d`` of ``z`` (and each
    leading index gets its own permutations). This is dlib's ``shuffle_codes``: the same
    batch is shuffled, not a second batch as in Kim & Mnih (2018), algorithm 1.
    """
    keys = draw(torch.rand, z.shape, generator=generator, device=z.device)
    return torch.gather(z, -2, keys.argsort(dim=-2))
