"""Reconstruction losses: per-sample sums over the pixels of a decoder's logits.

Images are ``[..., B, C, H, W]`` floats in [0, 1]; decoders output logits of the same shape.
Each loss returns ``[..., B]``: the sum over channels and pixels, one value per image. The
objectives average it over the batch, as dlib's ``make_reconstruction_loss`` callers do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_PIXEL_AXES = (-3, -2, -1)


def bernoulli_loss(x: Tensor, logits: Tensor) -> Tensor:
    """Sigmoid cross-entropy of the logits against the real-valued pixels, summed per image.

    The targets are not binarised (dlib's ``bernoulli_loss`` with ``activation="logits"``),
    so the minimum is the pixels' own Bernoulli entropy, not zero.
    """
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(_PIXEL_AXES)


def l2_loss(x: Tensor, logits: Tensor) -> Tensor:
    """Squared error between the pixels and ``sigmoid(logits)``, summed per image (dlib's ``l2_loss``)."""
    return (x - torch.sigmoid(logits)).square().sum(_PIXEL_AXES)


RECONSTRUCTION_LOSSES = {
    "bernoulli": bernoulli_loss,
    "l2": l2_loss,
}
