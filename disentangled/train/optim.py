"""Adam update rules: TensorFlow 1's (the reference's) and PyTorch's, for single and stacked models.

``tf1_adam`` (:class:`TF1Adam`, the default) is the update of ``tf.train.AdamOptimizer``,
which trained every model of disentanglement_lib. Per parameter, in float32::

    alpha = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
    m += (g - m) * (1 - beta1)
    v += (g * g - v) * (1 - beta2)
    p -= (m * alpha) / (sqrt(v) + eps)

where ``beta1^t`` and ``beta2^t`` are float32 running products (``beta1_power``,
``beta2_power`` in the state), multiplied by the betas after each update.

``torch_adam`` (:class:`TorchAdam`) is :class:`torch.optim.Adam` (single-tensor kernels).
It adds ``eps`` to the bias-corrected ``sqrt(v_hat)``; TensorFlow adds it to the
uncorrected ``sqrt(v)``. Written in PyTorch's form, TensorFlow's rule has the effective
epsilon ``eps / sqrt(1 - beta2^t)``: with the study's ``eps = 1e-8`` and ``beta2 = 0.999``
that is 3.16e-7 at the first update, 3.24 * eps at t = 100 and still 1.26 * eps at t = 1000
(1.00002 * eps at t = 10,000). Coordinates whose gradients are of the order of 1e-7 or
smaller therefore move differently in the early updates, and so the whole trajectory
differs. ``tf1_adam`` is the default for fidelity to the reference; ``torch_adam`` keeps
runs comparable with those trained before the rule became selectable.

``stacked=True``: every parameter is a stack ``[M, ...]`` of the parameters of ``M``
independent models (an ensemble, :mod:`disentangled.train.ensemble`). On the CPU each
slice ``p[m]`` is updated on its own, so member ``m`` ends bit for bit as an unstacked
optimiser on that slice alone: CPU kernels may treat the elements of a tensor's SIMD
tail with other instructions (it depends on the torch build), and then updating ``[M, n]``
at once rounds some elements differently than updating ``[n]``. On other devices the whole stack is updated at once.
The state keys named in ``shared_state`` are scalars shared by the members (they always
step together); every other state tensor has the member axis first.

Both rules keep their state in :class:`torch.optim.Optimizer`'s ``state_dict`` format
(checkpoints store it as is); ``step`` is a float32 scalar tensor as in ``torch.optim.Adam``.
"""

from __future__ import annotations

import numba
import numpy as np
import torch
from torch.optim.adam import adam as _torch_adam
from ..errors import ParameterError, check_choice
from ..registry import Registry

_f32 = np.float32


def _no_closure(opt, closure) -> None:
    if closure is not None:
        raise ValueError(f"{type(opt).__name__}.step: closure is not supported; compute the loss and "
                         "gradients first, then call step() without arguments")


class _StackedMixin:
    stacked: bool = False

    def __getstate__(self):
        # Optimizer pickles only defaults, state and param_groups; without this a copy
        # (copy.deepcopy, pickle) of a stacked optimiser would update stacks at once.
        return {**super().__getstate__(), "stacked": self.stacked}


class TF1Adam(_StackedMixin, torch.optim.Optimizer):
    """TensorFlow 1's Adam (dense, non-Nesterov), rounded as its float32 kernel rounds."""

    shared_state: tuple[str, ...] = ("step", "beta1_power", "beta2_power")

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, *,
                 stacked: bool = False):
        if not lr >= 0:
            raise ParameterError(f"TF1Adam: lr must be >= 0, got {lr}")
        if not eps >= 0:
            raise ParameterError(f"TF1Adam: eps must be >= 0, got {eps}")
        for i, b in enumerate(betas):
            if not 0 <= b < 1:
                raise ParameterError(f"TF1Adam: betas[{i}] must be in [0, 1), got {b}")
        super().__init__(params, {"lr": lr, "betas": (betas[0], betas[1]), "eps": eps})
        self.stacked = bool(stacked)

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        # Optimizer.load_state_dict moves every non-step tensor to its parameter's device;
        # the beta powers are read on the host each step, so keep them there (no sync).
        for state in self.state.values():
            for key in ("beta1_power", "beta2_power"):
                if key in state:
                    state[key] = state[key].to("cpu", torch.float32)

    @torch.no_grad()
    def step(self, closure=None):
        _no_closure(self, closure)
        one = _f32(1)
        for group in self.param_groups:
            lr, eps = _f32(group["lr"]), _f32(group["eps"])
            beta1, beta2 = _f32(group["betas"][0]), _f32(group["betas"][1])
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("TF1Adam does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["beta1_power"] = torch.tensor(float(beta1), dtype=torch.float32)
                    state["beta2_power"] = torch.tensor(float(beta2), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                b1p, b2p = _f32(state["beta1_power"].item()), _f32(state["beta2_power"].item())
                # Host float32 scalars: each operation rounds to float32 as the reference's
                # scalar arithmetic does (Python floats would round in double), and nothing
                # waits on a device.
                alpha = lr * np.sqrt(one - b2p) / (one - b1p)
                scalars = (float(one - beta1), float(one - beta2), float(alpha), float(eps))
                tensors = (p, p.grad, state["exp_avg"], state["exp_avg_sq"])
                if self.stacked and p.device.type == "cpu":
                    for member in zip(*(t.unbind(0) for t in tensors)):
                        _tf1_update(*member, *scalars)
                else:
                    _tf1_update(*tensors, *scalars)
                state["step"] += 1
                state["beta1_power"].fill_(float(b1p * beta1))
                state["beta2_power"].fill_(float(b2p * beta2))
        return None


def _tf1_update(p, g, m, v, one_minus_beta1, one_minus_beta2, alpha, eps) -> None:
    flat = _dense_views(p, g, m, v) if p.device.type == "cpu" and p.dtype == torch.float32 else None
    if flat is not None:  # one compiled pass instead of a dozen tensor passes; the same roundings
        _tf1_kernel(*flat, _f32(one_minus_beta1), _f32(one_minus_beta2), _f32(alpha), _f32(eps))
        return
    _tf1_update_ops(p, g, m, v, one_minus_beta1, one_minus_beta2, alpha, eps)


def _dense_views(*tensors):
    """1-D numpy views of the storage of tensors laid out alike and densely (elementwise work ignores the layout)."""
    strides = tensors[0].stride()
    if any(t.stride() != strides or t.dtype != tensors[0].dtype for t in tensors):
        return None
    n = tensors[0].numel()
    views = []
    for t in tensors:
        flat = t.as_strided((n,), (1,)) if n else t.reshape(0)
        if n and not _covers(t):
            return None
        views.append(flat.detach().numpy())
    return views


def _covers(t) -> bool:
    """Whether ``t``'s elements fill exactly ``numel`` consecutive storage places (contiguous in some axis order)."""
    dims = sorted((st, size) for st, size in zip(t.stride(), t.shape) if size != 1)
    expected = 1
    for st, size in dims:
        if st != expected:
            return False
        expected *= size
    return True


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _tf1_kernel(p, g, m, v, one_minus_beta1, one_minus_beta2, alpha, eps):  # pragma: no cover - compiled
    # float32 throughout, no fast-math: every operation rounds once, as TensorFlow's kernel
    # does, and the square root is the correctly rounded float32 one. error_model="numpy":
    # a division by zero gives IEEE's inf or nan (as TensorFlow's kernel does) instead of
    # raising, and without that check per element the loop compiles to SIMD instructions,
    # whose division and square root round exactly as the scalar ones (6-15x faster, measured).
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] + (gi - m[i]) * one_minus_beta1
        vi = v[i] + (gi * gi - v[i]) * one_minus_beta2
        m[i] = mi
        v[i] = vi
        p[i] = p[i] - (mi * alpha) / (np.sqrt(vi) + eps)


def _tf1_update_ops(p, g, m, v, one_minus_beta1, one_minus_beta2, alpha, eps) -> None:
    # One kernel per operation, so each rounds once in float32 as TensorFlow's unfused
    # expression does; add/sub with alpha/value arguments (fused multiply-adds in torch's
    # CPU kernels) are avoided. torch's float32 sqrt on the CPU is off by one ulp in about
    # 17% of elements (measured, torch 2.13, AVX512); a float64 square root rounded to
    # float32 is the correctly rounded float32 square root (53 >= 2 * 24 + 2 bits).
    m.add_(g.sub(m).mul_(one_minus_beta1))
    v.add_(g.mul(g).sub_(v).mul_(one_minus_beta2))
    p.sub_(m.mul(alpha).div_(v.double().sqrt().to(v.dtype).add_(eps)))


class TorchAdam(_StackedMixin, torch.optim.Adam):
    """:class:`torch.optim.Adam` with its single-tensor kernels; ``stacked`` as in the module docstring."""

    shared_state: tuple[str, ...] = ("step",)

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, *,
                 stacked: bool = False):
        # foreach=False: a single run and each member of a stack then go through the same code.
        super().__init__(params, lr=lr, betas=betas, eps=eps, foreach=False)
        self.stacked = bool(stacked)

    def load_state_dict(self, state_dict) -> None:
        super().load_state_dict(state_dict)
        # A state dict saved by a plain torch.optim.Adam carries foreach=None, which selects
        # the multi-tensor kernels on a GPU.
        for group in self.param_groups:
            group["foreach"] = False

    @torch.no_grad()
    def step(self, closure=None):
        _no_closure(self, closure)
        if not self.stacked:
            return super().step()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:  # as Adam's lazy initialisation
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if p.device.type == "cpu":
                    lists = [list(t.unbind(0)) for t in (p, p.grad, state["exp_avg"], state["exp_avg_sq"])]
                    steps = [state["step"].clone() for _ in range(p.shape[0])]  # each call advances its own
                else:
                    lists = [[p], [p.grad], [state["exp_avg"]], [state["exp_avg_sq"]]]
                    steps = [state["step"].clone()]
                _torch_adam(*lists, [], steps, foreach=False, amsgrad=False, beta1=beta1, beta2=beta2, lr=group["lr"],
                            weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"],
                            decoupled_weight_decay=group["decoupled_weight_decay"])
                state["step"] += 1
        return None


#: Update rules by their ``train.optimizer`` name.
OPTIMIZERS = Registry("update rule", {"tf1_adam": TF1Adam, "torch_adam": TorchAdam})
DEFAULT_OPTIMIZER = "tf1_adam"


def make_optimizer(rule: str, params, settings, *, stacked: bool = False) -> torch.optim.Optimizer:
    """The optimiser ``rule`` (a key of :data:`OPTIMIZERS`) over ``params``, with ``settings``'
    ``lr``, ``beta1``, ``beta2`` and ``eps`` (an ``AdamSettings`` or a ``TrainConfig``)."""
    check_choice("train.optimizer", rule, OPTIMIZERS)
    return OPTIMIZERS[rule](params, lr=float(settings.lr), betas=(float(settings.beta1), float(settings.beta2)),
                            eps=float(settings.eps), stacked=stacked)
