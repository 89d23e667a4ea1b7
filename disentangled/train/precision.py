"""The arithmetic precision a model trains in (``train.precision``).

``float32`` (the default) is the reference's: every operation in single precision. It is the
only setting whose runs compare with the reference's and with each other bit for bit.

``bfloat16`` is mixed precision, an option for speed: the networks' convolutions and matrix
products run in bfloat16 (PyTorch's autocast), everything else in float32: the weights and
the update rule's moments (float32 master weights, so no loss scaling is needed: bfloat16 has
float32's exponent range), the losses, the sampling, the objectives' regularisers and the
post-training evaluation. Each network of :attr:`~disentangled.models.vae.VAE.reduced_precision_parts`
computes in bfloat16 inside and hands its outputs on in float32, so the loss terms are
float32 sums of float32 values. On a CPU with bfloat16 instructions (AVX512-BF16, AMX) or a
recent GPU a step is faster (docs/benchmarks.md); the trained models differ from float32's
by more than float rounding, and docs/training.md gives the measurement of the metrics of
models trained both ways against their seed-to-seed spread. Representations are always
computed in float32 from the float32 weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._pytree import tree_leaves, tree_map

from ..errors import ParameterError

#: Each setting and the dtype its networks compute in (None: the weights' own, float32).
PRECISIONS: dict[str, torch.dtype | None] = {"float32": None, "bfloat16": torch.bfloat16}


def check_supported(precision: str, device: torch.device) -> None:
    """Refuse a precision ``device`` cannot compute in, with what to do instead."""
    if PRECISIONS[precision] is None:
        return
    if device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise ParameterError(
            f"train.precision={precision} needs a CPU with AVX-512 (oneDNN's bfloat16 convolutions), and this one "
            "has none; train with train.precision=float32"
        )
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ParameterError(f"train.precision={precision} is not supported by {torch.cuda.get_device_name(device)}; "
                             "train with train.precision=float32")


def train_in(model: nn.Module, precision: str) -> None:
    """Make ``model``'s networks compute in ``precision`` while the model is in training mode.

    Registers, on each part the model declares in ``reduced_precision_parts``, a hook that
    enters autocast before the part's forward pass and one that leaves it afterwards and
    casts the part's floating outputs back to float32. In evaluation mode (``model.eval()``,
    the post-training evaluation) the parts compute in float32. Nothing for ``float32``.
    """
    dtype = PRECISIONS[precision]
    if dtype is None:
        return
    for name in model.reduced_precision_parts:
        part = getattr(model, name)
        if part is not None:
            _Autocast(dtype).attach(part)


class _Autocast:
    """The pair of hooks that runs one module's forward pass under autocast."""

    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype
        self.open: list = []  # one entry per forward pass in progress (None: in evaluation mode)

    def attach(self, module: nn.Module) -> None:
        module.register_forward_pre_hook(self.enter)
        module.register_forward_hook(self.leave, always_call=True)  # leaves autocast even if forward raises

    def enter(self, module: nn.Module, args) -> None:
        context = None
        if module.training:
            device = next(t.device for t in tree_leaves(args) if isinstance(t, torch.Tensor))
            context = torch.autocast(device.type, dtype=self.dtype)
            context.__enter__()
        self.open.append(context)

    def leave(self, module: nn.Module, args, output):
        context = self.open.pop()
        if context is None:
            return None
        context.__exit__(None, None, None)
        return tree_map(lambda t: t.float() if isinstance(t, torch.Tensor) and t.dtype == self.dtype else t, output)
