"""Encoders, decoders and the FactorVAE discriminator of the study (dlib's ``architectures.py``).

All tensors are channels-first: images ``[..., C, H, W]`` in [0, 1], codes ``[..., D]``;
any leading axes (a batch, or a stack of batches) are flattened for the layers and restored.
Decoders return logits.

Initialisation: ``init="tf1"`` (the default) reproduces TensorFlow 1's ``tf.layers``
defaults that dlib trained with, Glorot-uniform weights and zero biases; ``init="torch"``
keeps PyTorch's own defaults.

Layouts differ from TensorFlow in two harmless ways: a flatten (or the decoder's reshape to
4x4x64) orders the features as C, H, W rather than H, W, C, and transposed-convolution
kernels are stored PyTorch's way. Both are fixed permutations of parameters whose
initialisation is i.i.d., so the models are the same family with the same distribution at
initialisation; only loading TensorFlow weights would need the permutation.

The convolutional models assume 64x64 images, where TensorFlow's "SAME" padding is
symmetric and so reproduced exactly by fixed padding: a 4x4 stride-2 convolution pads one
pixel on each side, a 2x2 stride-2 one pads nothing, and a 4x4 stride-2 transposed
convolution with "SAME" padding is PyTorch's ``padding=1``.

Speed: ``channels_last=True`` (an option of the conv architecture, the default) stores the
kernels and runs the convolutions in the channels-last layout; the values are the same up to
float rounding. Outputs then carry channels-last strides (use ``reshape``, not ``view``, on
them), and so do the kernels (make state-dict tensors ``.contiguous()`` before writing them
with safetensors). With it, on the CPU, the decoder's last layer when it makes one channel
(dSprites, SmallNORB) computes its forward pass as one matrix product and an overlap-add
(:class:`_OneChannelDeconv`): oneDNN's transposed convolution to a single channel runs at a
fraction of its usual speed (7.8 ms against 2.7 ms at batch 64 on one core, measured); its
backward pass is oneDNN's as before.
"""

from __future__ import annotations

import inspect
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ParameterError, check, check_choice, check_int, message
from ..registry import Registry

INITS = ("tf1", "torch")


def _check_init(init: str) -> str:
    check_choice("init", init, INITS)
    return init


def initialize(module: nn.Module, init: str = "tf1") -> nn.Module:
    """Re-initialise every linear and (transposed) convolution layer of ``module``.

    ``"tf1"``: Glorot-uniform weights (``xavier_uniform_``; its fans match TensorFlow's for
    dense, convolution and transposed-convolution kernels) and zero biases.
    ``"torch"``: each layer's ``reset_parameters()``.
    """
    _check_init(init)
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            if init == "tf1":
                nn.init.xavier_uniform_(layer.weight)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            else:
                layer.reset_parameters()
    return module


def _use_channels_last(module: nn.Module, channels_last: bool) -> bool:
    """Store the convolution kernels channels-last when asked (about 20-25% faster on CPU)."""
    check("channels_last", channels_last, lambda v: isinstance(v, bool), "True or False")
    if channels_last:
        module.to(memory_format=torch.channels_last)
    return channels_last


def _observation_shape(observation_shape: Sequence[int]) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in observation_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ParameterError(message("observation_shape", "(channels, height, width)", tuple(observation_shape)))
    return shape  # type: ignore[return-value]


def _require_64x64(observation_shape: Sequence[int], what: str) -> tuple[int, int, int]:
    shape = _observation_shape(observation_shape)
    if shape[1:] != (64, 64):
        raise ParameterError(
            f"{what} needs 64x64 images, got observation_shape {shape}; use the 'fc' architecture otherwise"
        )
    return shape


class ConvEncoder(nn.Module):
    """dlib's ``conv_encoder`` (beta-VAE paper, Higgins et al. 2017, table 1, row 3).

    Conv 32 4x4 s2 -> Conv 32 4x4 s2 -> Conv 64 kxk s2 -> Conv 64 kxk s2 (ReLU after each;
    ``k = kernel_size_34``: 2 as in dlib's released code, 4 as in the paper's table) ->
    flatten (64*4*4 = 1024) -> Dense 256 ReLU -> linear heads ``mean`` and ``logvar``.
    """

    def __init__(
        self,
        in_channels: int,
        num_latent: int = 10,
        kernel_size_34: int = 2,
        *,
        init: str = "tf1",
        channels_last: bool = False,
    ):
        super().__init__()
        check("conv encoder: kernel_size_34", kernel_size_34, lambda v: v in (2, 4), "2 or 4")
        pad_34 = (kernel_size_34 - 2) // 2  # TF "SAME" on an even input with stride 2
        self.in_channels = int(in_channels)
        self.num_latent = int(num_latent)
        self.conv1 = nn.Conv2d(in_channels, 32, 4, stride=2, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 4, stride=2, padding=1)
        self.conv3 = nn.Conv2d(32, 64, kernel_size_34, stride=2, padding=pad_34)
        self.conv4 = nn.Conv2d(64, 64, kernel_size_34, stride=2, padding=pad_34)
        self.dense = nn.Linear(64 * 4 * 4, 256)
        self.mean = nn.Linear(256, num_latent)
        self.logvar = nn.Linear(256, num_latent)
        initialize(self, init)
        self.channels_last = _use_channels_last(self, channels_last)

    @classmethod
    def build(
        cls,
        observation_shape: Sequence[int],
        num_latent: int,
        *,
        kernel_size_34: int = 2,
        init: str = "tf1",
        channels_last: bool = False,
    ):
        shape = _require_64x64(observation_shape, "the conv encoder")
        return cls(shape[0], num_latent, kernel_size_34, init=init, channels_last=channels_last)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        lead = x.shape[:-3]
        h = x.reshape(-1, *x.shape[-3:]) if len(lead) != 1 else x
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        h = F.relu(self.conv1(h), inplace=True)
        h = F.relu(self.conv2(h), inplace=True)
        h = F.relu(self.conv3(h), inplace=True)
        h = F.relu(self.conv4(h), inplace=True)
        h = F.relu(self.dense(h.flatten(1)), inplace=True)
        mean, logvar = self.mean(h), self.logvar(h)
        if len(lead) != 1:
            mean, logvar = mean.reshape(*lead, -1), logvar.reshape(*lead, -1)
        return mean, logvar


def _overlap_add(cols: Tensor, n: int, channels: int, height: int, width: int) -> Tensor:
    """``[n, channels, 2 * height, 2 * width]``: the windows ``cols`` summed into the image they tile.

    ``cols [n * height * width, 16 * channels]`` holds, for each input pixel ``(i, j)``, a
    4x4 window ordered ``(ky, kx, channel)`` whose corner lies at output pixel
    ``(2i - 1, 2j - 1)``: what a 4x4 stride-2 transposed convolution with padding 1 spreads
    from that pixel. The windows overlap; the sum is taken over a zero image padded by one
    pixel, one strided addition per kernel offset (the windows of one offset never overlap).
    """
    out = cols.new_zeros((n, 2 * height + 2, 2 * width + 2, channels))
    sn, sh, sw, sc = out.stride()
    blocks = cols.view(n, height, width, 4, 4, channels)
    for ky in range(4):
        for kx in range(4):
            out.as_strided((n, height, width, channels), (sn, 2 * sh, 2 * sw, sc), ky * sh + kx * sw).add_(
                blocks[:, :, :, ky, kx, :])
    return out[:, 1:-1, 1:-1, :].permute(0, 3, 1, 2)  # channels-last strides


class _OneChannelDeconv(torch.autograd.Function):
    """``conv_transpose2d(h, weight, bias, stride=2, padding=1)`` for a 4x4 kernel, CPU, channels-last ``h``.

    Forward: every input pixel's 4x4 output window is one row of ``h @ weight`` (``h`` as
    ``[pixels, C_in]``, a view of its channels-last storage), and the windows are summed
    by :func:`_overlap_add`. Backward: PyTorch's own ``convolution_backward`` of the
    transposed convolution (oneDNN), so the gradients are exactly those of ``F.conv_transpose2d``
    given the same inputs; only the forward values differ, by float rounding (the sums run
    in another order).
    """

    @staticmethod
    def forward(ctx, h: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        # Under autocast (a reduced-precision training option, disentangled.train.precision) the
        # product runs in autocast's precision, as the transposed convolution would; the
        # overlap-add and the logits stay in the weights' float32. Without it every cast is a no-op.
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else weight.dtype
        ctx.dtypes = (h.dtype, weight.dtype, bias.dtype)
        n, c_in, height, width = h.shape
        c_out = weight.shape[1]
        with torch.autocast("cpu", enabled=False):
            h, weight = h.to(dtype), weight.to(dtype)
            rows = h.permute(0, 2, 3, 1).reshape(n * height * width, c_in)
            kernel = weight.permute(0, 2, 3, 1).reshape(c_in, 16 * c_out)  # (ky, kx, c_out) per input channel
            ctx.save_for_backward(h, weight)
            out = _overlap_add((rows @ kernel).to(bias.dtype), n, c_out, height, width)
            return (out + bias.view(1, -1, 1, 1)).contiguous(memory_format=torch.channels_last)

    @staticmethod
    def backward(ctx, grad: Tensor):
        h, weight = ctx.saved_tensors
        grads = torch.ops.aten.convolution_backward(
            grad.to(h.dtype), h, weight, [weight.shape[1]], [2, 2], [1, 1], [1, 1], True, [0, 0], 1,
            list(ctx.needs_input_grad))
        return tuple(None if g is None else g.to(d) for g, d in zip(grads, ctx.dtypes))


class DeconvDecoder(nn.Module):
    """dlib's ``deconv_decoder`` (beta-VAE paper, table 1, row 3): codes to 64x64 logits.

    Dense 256 ReLU -> Dense 1024 ReLU -> reshape 64x4x4 -> ConvT 64 4x4 s2 ReLU ->
    ConvT 32 4x4 s2 ReLU -> ConvT 32 4x4 s2 ReLU -> ConvT ``out_channels`` 4x4 s2 (logits).
    """

    def __init__(self, out_channels: int, num_latent: int = 10, *, init: str = "tf1", channels_last: bool = False):
        super().__init__()
        self.out_channels = int(out_channels)
        self.num_latent = int(num_latent)
        self.dense1 = nn.Linear(num_latent, 256)
        self.dense2 = nn.Linear(256, 64 * 4 * 4)
        self.deconv1 = nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1)
        self.deconv2 = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
        self.deconv3 = nn.ConvTranspose2d(32, 32, 4, stride=2, padding=1)
        self.deconv4 = nn.ConvTranspose2d(32, out_channels, 4, stride=2, padding=1)
        initialize(self, init)
        self.channels_last = _use_channels_last(self, channels_last)

    @classmethod
    def build(
        cls, observation_shape: Sequence[int], num_latent: int, *, init: str = "tf1", channels_last: bool = False
    ):
        shape = _require_64x64(observation_shape, "the deconv decoder")
        return cls(shape[0], num_latent, init=init, channels_last=channels_last)

    def forward(self, z: Tensor) -> Tensor:
        lead = z.shape[:-1]
        h = F.relu(self.dense1(z), inplace=True)
        h = F.relu(self.dense2(h), inplace=True)
        h = h.reshape(-1, 64, 4, 4)
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        h = F.relu(self.deconv1(h), inplace=True)
        h = F.relu(self.deconv2(h), inplace=True)
        h = F.relu(self.deconv3(h), inplace=True)
        if self.channels_last and self.out_channels == 1 and h.device.type == "cpu" and not torch.jit.is_tracing():
            # oneDNN is slow at a transposed convolution to one channel (module docstring); with
            # three channels it is faster than the product and overlap-add (measured), so it stays
            h = _OneChannelDeconv.apply(h, self.deconv4.weight, self.deconv4.bias)
        else:
            h = self.deconv4(h)
        return h if len(lead) == 1 else h.reshape(*lead, *h.shape[1:])


class FCEncoder(nn.Module):
    """dlib's ``fc_encoder`` (beta-VAE paper, table 1, row 1): flatten -> 1200 ReLU -> 1200 ReLU -> heads."""

    def __init__(self, observation_shape: Sequence[int], num_latent: int = 10, *, init: str = "tf1"):
        super().__init__()
        self.observation_shape = _observation_shape(observation_shape)
        self.num_latent = int(num_latent)
        self.dense1 = nn.Linear(math.prod(self.observation_shape), 1200)
        self.dense2 = nn.Linear(1200, 1200)
        self.mean = nn.Linear(1200, num_latent)
        self.logvar = nn.Linear(1200, num_latent)
        initialize(self, init)

    @classmethod
    def build(cls, observation_shape: Sequence[int], num_latent: int, *, init: str = "tf1"):
        return cls(observation_shape, num_latent, init=init)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = x.flatten(-3)
        h = F.relu(self.dense1(h), inplace=True)
        h = F.relu(self.dense2(h), inplace=True)
        return self.mean(h), self.logvar(h)


class FCDecoder(nn.Module):
    """dlib's ``fc_decoder`` (beta-VAE paper, table 1, row 1): 3 x (1200 tanh) -> prod(shape) logits."""

    def __init__(self, observation_shape: Sequence[int], num_latent: int = 10, *, init: str = "tf1"):
        super().__init__()
        self.observation_shape = _observation_shape(observation_shape)
        self.num_latent = int(num_latent)
        self.dense1 = nn.Linear(num_latent, 1200)
        self.dense2 = nn.Linear(1200, 1200)
        self.dense3 = nn.Linear(1200, 1200)
        self.output = nn.Linear(1200, math.prod(self.observation_shape))
        initialize(self, init)

    @classmethod
    def build(cls, observation_shape: Sequence[int], num_latent: int, *, init: str = "tf1"):
        return cls(observation_shape, num_latent, init=init)

    def forward(self, z: Tensor) -> Tensor:
        h = torch.tanh(self.dense1(z))
        h = torch.tanh(self.dense2(h))
        h = torch.tanh(self.dense3(h))
        return self.output(h).unflatten(-1, self.observation_shape)


class Discriminator(nn.Module):
    """dlib's ``fc_discriminator`` (FactorVAE paper, Kim & Mnih 2018, appendix A).

    6 x (Dense 1000, LeakyReLU 0.2, TensorFlow's default slope) -> Dense 2 logits; class 0
    means "a sample of q(z)", class 1 "a sample of prod_d q(z_d)".
    """

    def __init__(self, num_latent: int = 10, *, hidden: int = 1000, depth: int = 6, init: str = "tf1"):
        super().__init__()
        self.num_latent = int(num_latent)
        sizes = [num_latent] + [hidden] * depth
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.logits = nn.Linear(sizes[-1], 2)
        initialize(self, init)

    def forward(self, z: Tensor, *, detach_parameters: bool = False) -> Tensor:
        """Logits ``[..., 2]``. With ``detach_parameters`` no gradient reaches the weights.

        The VAE's total-correlation term uses ``detach_parameters=True``: its gradient flows
        into ``z`` (the encoder) but not into the discriminator, which dlib achieves by
        restricting each optimiser's ``var_list``.
        """
        h = z
        for layer in self.hidden:
            if detach_parameters:
                h = F.linear(h, layer.weight.detach(), layer.bias.detach())
            else:
                h = layer(h)
            h = F.leaky_relu(h, 0.2, inplace=True)
        if detach_parameters:
            return F.linear(h, self.logits.weight.detach(), self.logits.bias.detach())
        return self.logits(h)


def _options_of(cls) -> list[str]:
    params = inspect.signature(cls.build).parameters.values()
    return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _pair_options(pair) -> list[str]:
    """An architecture's options: the keyword-only ones of its encoder's and its decoder's ``build``."""
    return list(dict.fromkeys(option for cls in pair for option in _options_of(cls)))


def _build_pair(pair, observation_shape: Sequence[int], num_latent: int = 10, **options):
    check_int("num_latent", num_latent, low=1)
    encoder_cls, decoder_cls = pair
    encoder = encoder_cls.build(observation_shape, num_latent, **_accepted(encoder_cls, options))
    decoder = decoder_cls.build(observation_shape, num_latent, **_accepted(decoder_cls, options))
    return encoder, decoder


def _accepted(cls, options: dict) -> dict:
    return {k: v for k, v in options.items() if k in _options_of(cls)}


ARCHITECTURES = Registry("architecture", {
    "conv": (ConvEncoder, DeconvDecoder),
    "fc": (FCEncoder, FCDecoder),
}, options=_pair_options, build=_build_pair)


def architecture_options(name: str) -> list[str]:
    """The keyword options that ``build_architecture(name, ...)`` accepts."""
    return ARCHITECTURES.options(name)


def build_architecture(
    name: str, observation_shape: Sequence[int], num_latent: int = 10, **options
) -> tuple[nn.Module, nn.Module]:
    """``(encoder, decoder)`` of the architecture registered as ``name``.

    ``options`` go to whichever of the two accepts them: ``init`` to both, ``kernel_size_34``
    to the conv encoder.
    """
    return ARCHITECTURES.build(name, observation_shape, num_latent, **options)
