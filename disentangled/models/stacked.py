"""Many models of one architecture as one: parameters stacked along a leading model axis.

``stack(template, objectives, states)`` turns ``M`` models of the same architecture and
objective class (different weights, different hyperparameters) into one :class:`VAE`
whose parameters have a leading axis of size ``M`` and whose ``loss_terms`` take a batch
``x [M, B, C, H, W]`` (model ``m`` sees ``x[m]``) and a list of ``M`` generators, and
return every loss term with shape ``[M]``. Its ``state_dict`` has the members' keys;
``member_state(model, m)`` is member ``m``'s state dict.

How the layers are batched depends on the device:

* on a GPU, convolutions and transposed convolutions are one grouped convolution
  (``groups=M``) on activations laid out ``[B, M * C, H, W]``, dense layers one batched
  matrix product (``baddbmm``);
* on the CPU, the encoder, decoder and discriminator run once per model (the template's
  own ``forward`` through :func:`torch.func.functional_call` on that model's slice of the
  parameters, each slice in the memory layout of a model alone), because the CPU's
  grouped and batched kernels sum in another order than the single-model kernels and
  are no faster there: a single model of batch 64 already keeps the cores busy;
* everything else (the posterior sample, the losses, the objective with its
  hyperparameters as per-model tensors, see :class:`StackedObjective`, and Adam) is one
  vectorised computation over the model axis on both.

On the CPU each model of the stack therefore computes bit for bit what it computes alone
(``tests/train/test_ensemble.py`` checks this for every objective); on a GPU each step
agrees with the CPU to float32 rounding (see :mod:`disentangled.train.ensemble`).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .architectures import ConvEncoder, DeconvDecoder, Discriminator, FCDecoder, FCEncoder
from .mine import MineEstimators, mine_estimates, pair_indices
from .objectives.base import Objective
from .supervised_losses import LossParameters
from .vae import VAE


def stacked_linear(h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``[M, B, F] x [M, O, F] (+ [M, O]) -> [M, B, O]``: model ``m``'s dense layer on ``h[m]``."""
    return torch.baddbmm(bias.unsqueeze(-2), h, weight.transpose(-1, -2))


def _grouped(h: Tensor, weight: Tensor, bias: Tensor, op, **kwargs) -> Tensor:
    m = weight.shape[0]
    return op(h, weight.reshape(m * weight.shape[1], *weight.shape[2:]), bias.reshape(-1), groups=m, **kwargs)


def to_groups(x: Tensor, channels_last: bool) -> Tensor:
    """Images ``[M, B, C, H, W]`` -> ``[B, M * C, H, W]`` (model-major channels)."""
    m, b = x.shape[:2]
    h = x.transpose(0, 1).reshape(b, m * x.shape[2], *x.shape[3:])
    return h.contiguous(memory_format=torch.channels_last) if channels_last else h


def from_groups(h: Tensor, m: int, channels_last: bool) -> Tensor:
    """``[B, M * C, H, W]`` -> ``[M, B, C, H, W]``, each model's slice in the layout it has alone."""
    b, _, height, width = h.shape
    out = h.reshape(b, m, -1, height, width).transpose(0, 1)
    if not channels_last:
        return out.contiguous()
    c = out.shape[2]
    dense = torch.empty((m, b, height, width, c), dtype=h.dtype, device=h.device).permute(0, 1, 4, 2, 3)
    return dense.copy_(out)


def stack_like(tensors: Sequence[Tensor], like: Tensor | None = None) -> Tensor:
    """``torch.stack(tensors)`` whose slices have exactly the strides of ``like`` (default ``tensors[0]``).

    The strides of a model's weights and activations (channels-last, and even the strides
    of size-1 axes) steer which kernel the CPU picks; a slice of the stack must look like
    the tensor of a model alone to be computed by the same kernel.
    """
    first = tensors[0] if like is None else like
    span = 1 + sum((n - 1) * st for n, st in zip(first.shape, first.stride()))
    if first.dim() == 0 or first.numel() == 0 or span != first.numel() or min(first.stride()) < 0:
        return torch.stack(list(tensors))
    out = torch.empty_strided((len(tensors), *first.shape), (first.numel(), *first.stride()), dtype=first.dtype, device=first.device)
    for m, t in enumerate(tensors):
        out[m].copy_(t)
    return out


#: Run the GPU's batched kernels on the CPU too (for tests of that path; slower there, not bit-exact).
BATCHED_ON_CPU = False


def _per_model(x: Tensor) -> bool:
    return x.device.type == "cpu" and not BATCHED_ON_CPU


class _Stacked(nn.Module):
    """Parameters of ``M`` copies of ``template``, stacked, registered under the template's names."""

    def __init__(self, template: nn.Module, params: dict[str, Tensor]):
        super().__init__()
        names = [n for n, _ in template.named_parameters()]
        if sorted(names) != sorted(params):
            raise ValueError(f"stacked {type(template).__name__}: expected parameters {sorted(names)}, got {sorted(params)}")
        sizes = {len(v) for v in params.values()}
        if len(sizes) != 1:
            raise ValueError(f"stacked {type(template).__name__}: parameters stack different numbers of models {sorted(sizes)}")
        self.num_models = sizes.pop()
        self.num_latent = int(template.num_latent)
        object.__setattr__(self, "template", template)  # not a submodule: its own weights are never used
        layouts = dict(template.named_parameters())
        for name in names:
            *path, leaf = name.split(".")
            node: nn.Module = self
            for part in path:
                if part not in node._modules:
                    node.add_module(part, nn.Module())
                node = node._modules[part]
            # each slice laid out as the template's parameter (a loaded state dict is contiguous)
            stacked_param = stack_like([t.detach() for t in params[name]], like=layouts[name].detach())
            node.register_parameter(leaf, nn.Parameter(stacked_param))

    def per_model(self, *inputs: Tensor, **kwargs):
        """The template's ``forward`` once per model on ``inputs[i][m]``; outputs stacked on a new axis 0."""
        from torch.func import functional_call

        slices = {name: p.unbind(0) for name, p in self.named_parameters()}
        outs = []
        for m in range(self.num_models):
            params = {name: s[m] for name, s in slices.items()}
            outs.append(functional_call(self.template, params, tuple(x[m] for x in inputs), kwargs))
        if isinstance(outs[0], tuple):
            return tuple(stack_like(list(parts)) for parts in zip(*outs))
        return stack_like(outs)


class StackedConvEncoder(_Stacked):
    def __init__(self, template: ConvEncoder, params):
        super().__init__(template, params)
        self.channels_last = template.channels_last
        self.settings = {n: (getattr(template, n).stride, getattr(template, n).padding) for n in ("conv1", "conv2", "conv3", "conv4")}

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if _per_model(x):
            return self.per_model(x)
        m, b = x.shape[:2]
        h = to_groups(x, self.channels_last)
        for name, (stride, padding) in self.settings.items():
            layer = getattr(self, name)
            h = F.relu(_grouped(h, layer.weight, layer.bias, F.conv2d, stride=stride, padding=padding), inplace=True)
        h = h.reshape(b, m, -1).transpose(0, 1).contiguous()  # each model's flatten in C, H, W order
        h = F.relu(stacked_linear(h, self.dense.weight, self.dense.bias), inplace=True)
        return stacked_linear(h, self.mean.weight, self.mean.bias), stacked_linear(h, self.logvar.weight, self.logvar.bias)


class StackedDeconvDecoder(_Stacked):
    def __init__(self, template: DeconvDecoder, params):
        super().__init__(template, params)
        self.channels_last = template.channels_last
        self.settings = {n: (getattr(template, n).stride, getattr(template, n).padding) for n in ("deconv1", "deconv2", "deconv3", "deconv4")}

    def forward(self, z: Tensor) -> Tensor:
        if _per_model(z):
            return self.per_model(z)
        m, b = z.shape[:2]
        h = F.relu(stacked_linear(z, self.dense1.weight, self.dense1.bias), inplace=True)
        h = F.relu(stacked_linear(h, self.dense2.weight, self.dense2.bias), inplace=True)
        h = h.transpose(0, 1).reshape(b, m * 64, 4, 4)
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        names = list(self.settings)
        for name in names:
            layer = getattr(self, name)
            stride, padding = self.settings[name]
            h = _grouped(h, layer.weight, layer.bias, F.conv_transpose2d, stride=stride, padding=padding)
            if name != names[-1]:
                h = F.relu(h, inplace=True)
        return from_groups(h, m, self.channels_last)


class StackedFCEncoder(_Stacked):
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if _per_model(x):
            return self.per_model(x)
        h = x.flatten(-3)
        h = F.relu(stacked_linear(h, self.dense1.weight, self.dense1.bias), inplace=True)
        h = F.relu(stacked_linear(h, self.dense2.weight, self.dense2.bias), inplace=True)
        return stacked_linear(h, self.mean.weight, self.mean.bias), stacked_linear(h, self.logvar.weight, self.logvar.bias)


class StackedFCDecoder(_Stacked):
    def __init__(self, template: FCDecoder, params):
        super().__init__(template, params)
        self.observation_shape = template.observation_shape

    def forward(self, z: Tensor) -> Tensor:
        if _per_model(z):
            return self.per_model(z)
        h = torch.tanh(stacked_linear(z, self.dense1.weight, self.dense1.bias))
        h = torch.tanh(stacked_linear(h, self.dense2.weight, self.dense2.bias))
        h = torch.tanh(stacked_linear(h, self.dense3.weight, self.dense3.bias))
        return stacked_linear(h, self.output.weight, self.output.bias).unflatten(-1, self.observation_shape)


class StackedDiscriminator(_Stacked):
    def forward(self, z: Tensor, *, detach_parameters: bool = False) -> Tensor:
        """Logits ``[M, N, 2]``; with ``detach_parameters`` no gradient reaches the weights."""
        if _per_model(z):
            return self.per_model(z, detach_parameters=detach_parameters)

        def weights(layer):
            return (layer.weight.detach(), layer.bias.detach()) if detach_parameters else (layer.weight, layer.bias)

        h = z
        for layer in self.hidden.children():
            h = F.leaky_relu(stacked_linear(h, *weights(layer)), 0.2, inplace=True)
        return stacked_linear(h, *weights(self.logits))


class StackedLossParameters(_Stacked):
    """A semi-supervised loss's learned parameters, ``[M, ...]``; the loss reads them as attributes
    and broadcasts over the model axis (:mod:`disentangled.models.supervised_losses`)."""


class StackedMine(_Stacked):
    """``s2_mine_vae``'s MINE networks of ``M`` models: every pair's estimate ``[M, P]``."""

    def __init__(self, template: MineEstimators, params):
        super().__init__(template, params)
        self.num_factors = template.num_factors

    def forward(self, codes: Tensor, labels: Tensor, order: Tensor, *, detach_parameters: bool = False) -> Tensor:
        if _per_model(codes):
            return self.per_model(codes, labels, order, detach_parameters=detach_parameters)
        params = {n: (p.detach() if detach_parameters else p) for n, p in self.named_parameters()}
        factor, latent = pair_indices(self.num_factors, self.num_latent)
        return mine_estimates(params, codes, labels, order, factor=factor, latent=latent)


#: The stacked counterpart of each architecture module.
STACKED = {
    ConvEncoder: StackedConvEncoder,
    DeconvDecoder: StackedDeconvDecoder,
    FCEncoder: StackedFCEncoder,
    FCDecoder: StackedFCDecoder,
    Discriminator: StackedDiscriminator,
    LossParameters: StackedLossParameters,
    MineEstimators: StackedMine,
}


class StackedObjective(Objective):
    """``M`` objectives of one class as one: per-model coefficients as tensors ``[M]``.

    Each member computes its :meth:`~Objective.coefficients` in Python (double precision)
    as it does alone; a coefficient equal for all members stays a Python float, one that
    differs becomes a tensor of the members' values rounded to the loss's dtype, which is
    what the arithmetic with a Python float does for a model alone.
    """

    def __init__(self, members: Sequence[Objective]):
        members = tuple(members)
        if not members:
            raise ValueError("StackedObjective: members must hold at least one objective, got none")
        kinds = sorted({type(m).__name__ for m in members})
        if len(kinds) != 1:
            raise ValueError(f"StackedObjective: members must share one objective class, got {kinds}")
        self.members = members
        self.name = members[0].name
        self.needs_discriminator = members[0].needs_discriminator

    def coefficients(self, step) -> dict:
        each = [m.coefficients(step) for m in self.members]
        out = {}
        for key in each[0]:
            values = [c[key] for c in each]
            same = all(not torch.is_tensor(v) for v in values) and all(v == values[0] for v in values)
            out[key] = values[0] if same else values
        return out

    def penalty(self, c: dict, kl: Tensor, mean: Tensor, logvar: Tensor, z: Tensor, **extra) -> Tensor:
        c = {k: (torch.as_tensor(v, dtype=kl.dtype, device=kl.device) if isinstance(v, list) else v) for k, v in c.items()}
        return self.members[0].penalty(c, kl, mean, logvar, z, **extra)

    def discriminator_loss(self, discriminator, z: Tensor, *, generator) -> Tensor:
        return self.members[0].discriminator_loss(discriminator, z, generator=generator)

    def hyperparameters(self) -> list[dict]:  # type: ignore[override]
        return [m.hyperparameters() for m in self.members]


def _part(states: Sequence[dict], prefix: str) -> dict[str, list]:
    keys = [k for k in states[0] if k.startswith(prefix)]
    return {k[len(prefix):]: [s[k] for s in states] for k in keys}


def stack(template: VAE, objectives: Sequence[Objective], states: Sequence[dict]) -> VAE:
    """One :class:`VAE` holding ``len(states)`` models shaped like ``template``.

    ``states[m]`` is model ``m``'s state dict (``template.state_dict()`` keys),
    ``objectives[m]`` its objective. The template only lends its architecture and
    settings; its weights are not used.
    """
    if len(states) != len(objectives) or not states:
        raise ValueError(f"stack: expected one objective per state dict (at least one), got {len(objectives)} and {len(states)}")
    expected = {k: tuple(v.shape) for k, v in template.state_dict().items()}
    for m, state in enumerate(states):
        got = {k: tuple(v.shape) for k, v in state.items()}
        if got != expected:
            raise ValueError(f"stack: model {m}'s state dict does not match the template's architecture "
                             f"(differing keys or shapes: {sorted(set(got.items()) ^ set(expected.items()))[:4]})")
    parts = {}
    for part in template.parts:
        module = getattr(template, part)
        if module is None:
            continue
        if type(module) not in STACKED:
            raise ValueError(f"stack: no stacked form of {type(module).__name__}; known: {[c.__name__ for c in STACKED]}")
        parts[part] = STACKED[type(module)](module, _part(states, f"{part}."))
    return template.with_parts(parts, StackedObjective(objectives))  # the template's kind, settings and parts


def stack_models(models: Sequence[VAE]) -> VAE:
    """``stack`` of finished :class:`VAE` objects (a convenience for tests and notebooks)."""
    return stack(models[0], [m.objective for m in models], [m.state_dict() for m in models])


def member_state(model: VAE, m: int) -> dict[str, Tensor]:
    """Model ``m``'s state dict (views into the stacked parameters)."""
    return {k: v[m] for k, v in model.state_dict().items()}


__all__ = ["STACKED", "StackedObjective", "member_state", "stack", "stack_models", "stacked_linear"]
