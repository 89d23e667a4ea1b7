"""Encoders, decoders and discriminator: shapes, TensorFlow "SAME" padding, TF1 initialisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from disentangled.models import ARCHITECTURES, build_architecture
from disentangled.models.architectures import (
    ConvEncoder,
    DeconvDecoder,
    Discriminator,
    FCDecoder,
    FCEncoder,
    _OneChannelDeconv,
    architecture_options,
    initialize,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tf_same_conv(x, weight, bias, stride):
    """TensorFlow's "SAME" convolution: pad_total = max((out - 1) * s + k - in, 0), extra pixel at the end."""
    pads = []
    for size, k in zip(x.shape[-2:][::-1], weight.shape[-2:][::-1]):  # W then H, as F.pad wants
        out = math.ceil(size / stride)
        total = max((out - 1) * stride + k - size, 0)
        pads += [total // 2, total - total // 2]
    return F.conv2d(F.pad(x, pads), weight, bias, stride=stride)


# --- shapes -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ARCHITECTURES))
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes(name, channels):
    encoder, decoder = build_architecture(name, (channels, 64, 64), num_latent=7)
    x = torch.rand(5, channels, 64, 64, generator=_gen(0))
    mean, logvar = encoder(x)
    assert mean.shape == logvar.shape == (5, 7)
    logits = decoder(mean)
    assert logits.shape == (5, channels, 64, 64)
    # leading dimensions (a stack of batches) and a single unbatched image
    mean2, _ = encoder(x.reshape(1, 5, channels, 64, 64).expand(2, 5, channels, 64, 64))
    assert mean2.shape == (2, 5, 7)
    torch.testing.assert_close(mean2[1], mean, rtol=1e-5, atol=1e-5)
    assert decoder(mean2).shape == (2, 5, channels, 64, 64)
    assert encoder(x[0])[0].shape == (7,)
    assert decoder(mean[0]).shape == (channels, 64, 64)


def test_fc_accepts_other_image_sizes():
    encoder, decoder = build_architecture("fc", (2, 16, 8), num_latent=3)
    mean, _ = encoder(torch.rand(4, 2, 16, 8))
    assert decoder(mean).shape == (4, 2, 16, 8)


def test_parameter_counts_match_dlib():
    # conv encoder (k34 = 2), from the layer table: 32*(16*1+1) + 32*(16*32+1) + 64*(4*32+1)
    # + 64*(4*64+1) + 256*(1024+1) + 2*10*(256+1)
    encoder = ConvEncoder(1, 10)
    expected = 32 * 17 + 32 * 513 + 64 * 129 + 64 * 257 + 256 * 1025 + 2 * 10 * 257
    assert sum(p.numel() for p in encoder.parameters()) == expected
    decoder = DeconvDecoder(1, 10)
    expected = 256 * 11 + 1024 * 257 + 64 * (16 * 64 + 1) + 32 * (16 * 64 + 1) + 32 * (16 * 32 + 1) + 1 * (16 * 32 + 1)
    assert sum(p.numel() for p in decoder.parameters()) == expected
    # discriminator: 10 -> 6 x 1000 -> 2
    expected = 1000 * 11 + 5 * 1000 * 1001 + 2 * 1001
    assert sum(p.numel() for p in Discriminator(10).parameters()) == expected


# --- padding ----------------------------------------------------------------------------


@pytest.mark.parametrize("kernel_size_34, sizes", [(2, [32, 16, 8, 4]), (4, [32, 16, 8, 4])])
def test_conv_encoder_spatial_sizes(kernel_size_34, sizes):
    encoder = ConvEncoder(3, 10, kernel_size_34=kernel_size_34)
    seen = []
    hooks = [
        getattr(encoder, f"conv{i}").register_forward_hook(lambda m, i, o: seen.append(tuple(o.shape[-2:])))
        for i in range(1, 5)
    ]
    encoder(torch.rand(2, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert seen == [(s, s) for s in sizes]
    assert encoder.conv3.kernel_size == (kernel_size_34, kernel_size_34)


@pytest.mark.parametrize("kernel_size_34", [2, 4])
def test_conv_encoder_reproduces_tf_same_padding(kernel_size_34):
    encoder = ConvEncoder(3, 10, kernel_size_34=kernel_size_34, init="torch")
    h = torch.rand(2, 3, 64, 64, generator=_gen(0))
    for i in range(1, 5):
        conv = getattr(encoder, f"conv{i}")
        expected = _tf_same_conv(h, conv.weight, conv.bias, stride=2)
        got = conv(h)
        torch.testing.assert_close(got, expected)
        h = F.relu(got)


def test_deconv_decoder_reproduces_tf_same_transposed_padding():
    # TensorFlow defines conv2d_transpose(padding="SAME") as the gradient (adjoint) of
    # conv2d(padding="SAME") from the 2x larger image; check each layer against that adjoint.
    decoder = DeconvDecoder(3, 10, init="torch")
    for layer, size in [(decoder.deconv1, 4), (decoder.deconv2, 8), (decoder.deconv3, 16), (decoder.deconv4, 32)]:
        y = torch.randn(2, layer.in_channels, size, size, generator=_gen(size))
        x = torch.zeros(2, layer.out_channels, 2 * size, 2 * size, requires_grad=True)
        conv_out = _tf_same_conv(x, layer.weight, None, stride=2)
        assert conv_out.shape[-1] == size
        (adjoint,) = torch.autograd.grad((conv_out * y).sum(), x)
        got = layer(y) - layer.bias.reshape(1, -1, 1, 1)
        assert got.shape == adjoint.shape == (2, layer.out_channels, 2 * size, 2 * size)
        torch.testing.assert_close(got, adjoint, rtol=1e-5, atol=1e-5)


def test_conv_needs_64x64():
    with pytest.raises(ValueError, match="64x64"):
        build_architecture("conv", (1, 32, 32), 10)
    with pytest.raises(ValueError, match="kernel_size_34 must be 2 or 4, got 3"):
        ConvEncoder(1, 10, kernel_size_34=3)
    with pytest.raises(ValueError, match="observation_shape"):
        build_architecture("fc", (64, 64), 10)


# --- initialisation ---------------------------------------------------------------------


def _glorot_bound(layer) -> float:
    # TensorFlow's fans: dense kernel [in, out]; conv kernel [k, k, in, out] -> k*k*in, k*k*out
    # (transposed: [k, k, out, in], same sum). sqrt(6 / (fan_in + fan_out)).
    receptive = layer.weight[0, 0].numel() if layer.weight.dim() > 2 else 1
    return math.sqrt(6.0 / (receptive * (layer.weight.shape[0] + layer.weight.shape[1])))


def _layers(module):
    return [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_tf1_glorot_uniform_init(name):
    torch.manual_seed(0)
    encoder, decoder = build_architecture(name, (3, 64, 64), 10)
    layers = _layers(encoder) + _layers(decoder) + _layers(Discriminator(10))
    assert len(layers) >= 7
    for layer in layers:
        bound = _glorot_bound(layer)
        assert layer.weight.abs().max().item() <= bound
        if layer.weight.numel() >= 1000:  # the largest draw reaches close to the bound
            assert layer.weight.abs().max().item() > 0.9 * bound
        assert torch.count_nonzero(layer.bias) == 0


def test_glorot_bounds_by_hand():
    # conv1 of the conv encoder on RGB: 4*4*(3 + 32) = 560 -> sqrt(6/560) = 0.1035;
    # the dense 1024 -> 256 layer: sqrt(6/1280) = 0.0685 (PyTorch's default would be 1/32).
    encoder = ConvEncoder(3, 10)
    assert _glorot_bound(encoder.conv1) == pytest.approx(math.sqrt(6 / 560))
    assert _glorot_bound(encoder.dense) == pytest.approx(math.sqrt(6 / 1280))
    assert encoder.dense.weight.abs().max().item() > 1 / 32


def test_torch_init_option():
    encoder = ConvEncoder(1, 10, init="torch")
    assert torch.count_nonzero(encoder.dense.bias) > 0
    assert encoder.dense.weight.abs().max().item() <= 1 / math.sqrt(1024)
    with pytest.raises(ValueError, match="init must be one of"):
        FCEncoder((1, 64, 64), 10, init="glorot")
    with pytest.raises(ValueError, match="init must be one of"):
        initialize(nn.Linear(2, 2), "xavier")


def test_build_architecture_options():
    assert set(architecture_options("conv")) == {"kernel_size_34", "init", "channels_last"}
    assert architecture_options("fc") == ["init"]
    encoder, decoder = build_architecture("conv", (1, 64, 64), 4, kernel_size_34=4, init="torch")
    assert encoder.conv4.kernel_size == (4, 4) and torch.count_nonzero(decoder.dense1.bias) > 0
    with pytest.raises(ValueError, match="no option 'kernel_size'.*Did you mean 'kernel_size_34'"):
        build_architecture("conv", (1, 64, 64), 10, kernel_size=4)
    with pytest.raises(ValueError, match="no option 'kernel_size_34'"):
        build_architecture("fc", (1, 64, 64), 10, kernel_size_34=4)
    with pytest.raises(ValueError, match="unknown architecture 'cnv'.*Did you mean 'conv'"):
        build_architecture("cnv", (1, 64, 64), 10)


# --- discriminator and speed options ----------------------------------------------------


def test_discriminator_shape_slope_and_detached_parameters():
    disc = Discriminator(10)
    z = torch.randn(2, 7, 10, generator=_gen(0), requires_grad=True)
    logits = disc(z)
    assert logits.shape == (2, 7, 2)
    assert len(disc.hidden) == 6 and all(layer.out_features == 1000 for layer in disc.hidden)
    # LeakyReLU(0.2): the same network written out
    h = z
    for layer in disc.hidden:
        h = F.leaky_relu(layer(h), 0.2)
    torch.testing.assert_close(logits, disc.logits(h))
    detached = disc(z, detach_parameters=True)
    torch.testing.assert_close(detached, logits)
    detached.sum().backward()
    assert z.grad is not None and all(p.grad is None for p in disc.parameters())


@pytest.mark.parametrize("channels", [1, 3])
def test_channels_last_gives_the_same_values(channels):
    torch.manual_seed(0)
    enc, dec = build_architecture("conv", (channels, 64, 64), 10)
    enc_cl, dec_cl = build_architecture("conv", (channels, 64, 64), 10, channels_last=True)
    enc_cl.load_state_dict(enc.state_dict())
    dec_cl.load_state_dict(dec.state_dict())
    assert enc_cl.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(4, channels, 64, 64, generator=_gen(1))
    mean, logvar = enc(x)
    mean_cl, logvar_cl = enc_cl(x)
    torch.testing.assert_close(mean_cl, mean, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(dec_cl(mean), dec(mean), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("channels", [1, 3])
def test_deconv_as_product_and_overlap_add(channels):
    # forward within float rounding of F.conv_transpose2d; the backward is PyTorch's own, so the
    # gradients at the same inputs are exactly those of F.conv_transpose2d
    torch.manual_seed(0)
    layer = nn.ConvTranspose2d(32, channels, 4, stride=2, padding=1).to(memory_format=torch.channels_last)
    h = torch.randn(6, 32, 32, 32, generator=_gen(2)).contiguous(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(6, channels, 64, 64, generator=_gen(3))
    inputs = (h, layer.weight, layer.bias)
    ref = F.conv_transpose2d(h, layer.weight, layer.bias, stride=2, padding=1)
    out = _OneChannelDeconv.apply(*inputs)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)
    for got, want in zip(torch.autograd.grad(out, inputs, grad), torch.autograd.grad(ref, inputs, grad)):
        assert got.stride() == want.stride() and torch.equal(got, want)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.trace
@pytest.mark.parametrize("channels, channels_last, fast", [(1, True, True), (1, False, False), (3, True, False)])
def test_decoder_takes_the_product_path_for_one_channel_on_the_cpu(channels, channels_last, fast):
    _, dec = build_architecture("conv", (channels, 64, 64), 10, channels_last=channels_last)
    logits = dec(torch.randn(3, 10, generator=_gen(4)))
    assert (type(logits.grad_fn).__name__ == "_OneChannelDeconvBackward") is fast
    assert logits.shape == (3, channels, 64, 64)
    with torch.no_grad():  # the same values without autograd (evaluation, pictures)
        torch.testing.assert_close(dec(torch.zeros(2, 10)), dec(torch.zeros(1, 10)).expand(2, -1, -1, -1))
    if fast:  # a traced decoder records the plain transposed convolution (a Python autograd function cannot be saved)
        traced = torch.jit.trace(dec, torch.zeros(2, 10), check_trace=False)
        torch.testing.assert_close(traced(torch.ones(2, 10)), dec(torch.ones(2, 10)), rtol=1e-5, atol=1e-5)
        assert "_OneChannelDeconv" not in str(traced.graph)


def test_fc_decoder_structure():
    decoder = FCDecoder((1, 64, 64), 10)
    assert [m.out_features for m in _layers(decoder)] == [1200, 1200, 1200, 4096]
    encoder = FCEncoder((1, 64, 64), 10)
    assert [m.out_features for m in _layers(encoder)] == [1200, 1200, 10, 10]
