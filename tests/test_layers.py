"""Layers beyond Linear: activations, Conv1d/2d, pooling, LayerNorm, Embedding.

The op table (tests/layer_op_rows.py) checks each registry op's forward against scalar loops and
its backward against float64 finite differences; this file checks the PyTorch contract around
them: values at hand-computed points, conventions (ties, thresholds, padding rows), grad_fn
names, module parameters/initialisation/reprs (PyTorch's strings), errors, double backward.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from layer_op_rows import conv_ref

import symad
from symad import nn
from symad.autograd import gradcheck, gradgradcheck
from symad.nn import functional as F
from symad.ops.activation import np_erf


def _t(a, rg=False, dtype=symad.float64):
    return symad.tensor(np.asarray(a, dtype=np.float64), dtype=dtype, requires_grad=rg)


def _grad(f, x):
    t = _t(x, True)
    f(t).sum().backward()
    return t.grad.numpy()


# -- erf and activations ---------------------------------------------------------------------

def test_np_erf_matches_math_erf_to_a_few_ulp():
    x = np.concatenate([np.linspace(-7, 7, 40001), [1e-300, -1e-20, 5e-324, 0.0, 1.9999999,
                                                    2.0, 26.0, 1e300]])
    ref = np.array([math.erf(v) for v in x])
    got = np_erf(x)
    rel = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-300)
    assert rel.max() < 1e-15
    assert np.isnan(np_erf(np.array([np.nan])))[0]
    np.testing.assert_array_equal(np_erf(np.array([np.inf, -np.inf])), [1.0, -1.0])
    assert np.signbit(np_erf(np.array([-0.0]))[0])
    assert np_erf(np.array([0.5], dtype=np.float32)).dtype == np.float32


def test_erf_values_dtype_and_grad():
    x = symad.tensor([-1.0, 0.0, 0.5, 3.0], requires_grad=True)
    y = symad.erf(x)
    assert y.dtype == symad.float32 and y.grad_fn.name() == "ErfBackward0"
    np.testing.assert_allclose(y.detach().numpy(), [math.erf(v) for v in (-1, 0, 0.5, 3)],
                               rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2 / math.sqrt(math.pi) * math.exp(-v * v)
                                                for v in (-1, 0, 0.5, 3)], rtol=1e-6)
    assert x.erf().dtype == symad.float32
    assert symad.erf(symad.tensor([1, 2])).dtype == symad.float32


def _phi(v):
    return 0.5 * (1 + math.erf(v / math.sqrt(2)))


@pytest.mark.parametrize("v", [-2.0, -0.5, 0.0, 1.0, 3.0])
def test_gelu_exact_and_tanh_values(v):
    exact = v * _phi(v)
    tanh_form = 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3)))
    x = _t([v], True)
    assert F.gelu(x).item() == pytest.approx(exact, rel=1e-14, abs=1e-300)
    assert nn.GELU("tanh")(x).item() == pytest.approx(tanh_form, rel=1e-14, abs=1e-300)
    # d/dx x·Φ(x) = Φ(x) + x·φ(x)
    assert _grad(F.gelu, [v])[0] == pytest.approx(
        _phi(v) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi), rel=1e-12, abs=1e-15)


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(RuntimeError, match="approximate argument must be either none or tanh"):
        F.gelu(symad.ones(2), approximate="fast")


def test_activation_grad_fn_names():
    x = symad.randn(4, requires_grad=True)
    assert F.gelu(x).grad_fn.name() == "GeluBackward0"
    assert F.gelu(x, approximate="tanh").grad_fn.name() == "GeluBackward0"
    assert nn.SiLU()(x).grad_fn.name() == "SiluBackward0"
    assert nn.LeakyReLU()(x).grad_fn.name() == "LeakyReluBackward0"
    assert nn.Softplus()(x).grad_fn.name() == "SoftplusBackward0"
    assert nn.ELU()(x).grad_fn.name() == "EluBackward0"


def test_silu_value_and_gradient():
    s = 1 / (1 + math.exp(-1.5))
    assert F.silu(_t([1.5])).item() == pytest.approx(1.5 * s, rel=1e-15)
    assert _grad(F.silu, [1.5])[0] == pytest.approx(s * (1 + 1.5 * (1 - s)), rel=1e-14)


def test_leaky_relu_gradient_at_zero_is_the_negative_slope():
    # PyTorch's leaky_relu_backward: x > 0 ? grad : grad * negative_slope
    np.testing.assert_array_equal(_grad(F.leaky_relu, [-1.0, 0.0, 2.0]), [0.01, 0.01, 1.0])
    np.testing.assert_array_equal(_grad(lambda t: F.leaky_relu(t, 0.2), [-3.0, 0.0]),
                                  [0.2, 0.2])
    np.testing.assert_allclose(nn.LeakyReLU(0.1)(_t([-2.0, 3.0])).numpy(), [-0.2, 3.0])


def test_hard_activations_at_their_kinks_match_pytorch():
    """torch 2.14.1's values (recorded in float64): each edge belongs to the flat piece."""
    v = [-4.0, -3.0, 0.0, 3.0, 4.0]
    np.testing.assert_array_equal(_grad(F.hardtanh, [-2.0, -1.0, 0.0, 1.0, 2.0]),
                                  [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(_grad(F.relu6, [-1.0, 0.0, 3.0, 6.0, 7.0]), [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(F.relu6(_t([-1.0, 0.0, 3.0, 6.0, 7.0])).numpy(),
                                  [0, 0, 3, 6, 6])
    # PyTorch's slope is 1/6 rounded to float32 (0.1666666716337204): symad's is exact
    np.testing.assert_allclose(_grad(F.hardsigmoid, v), [0, 0, 0.1666666716337204, 0, 0],
                               rtol=1e-7)
    np.testing.assert_array_equal(F.hardsigmoid(_t(v)).numpy(), [0, 0, 0.5, 1, 1])
    np.testing.assert_array_equal(_grad(F.hardswish, v), [0, 0, 0.5, 1, 1])
    np.testing.assert_array_equal(F.hardswish(_t(v)).numpy(), [0, 0, 0, 3, 4])
    np.testing.assert_allclose(_grad(F.hardswish, [1.0, 2.0, -1.0]),
                               [0.8333333333333333, 1.1666666666666665, 0.16666666666666669],
                               rtol=1e-15)
    np.testing.assert_array_equal(_grad(lambda t: F.threshold(t, 1.0, 0.5), [0.0, 1.0, 2.0]),
                                  [0, 0, 1])
    np.testing.assert_array_equal(F.threshold(_t([0.0, 1.0, 2.0]), 1.0, 0.5).numpy(),
                                  [0.5, 0.5, 2.0])
    for make, name in [(F.hardtanh, "HardtanhBackward0"), (F.relu6, "HardtanhBackward0"),
                       (F.hardsigmoid, "HardsigmoidBackward0"),
                       (F.hardswish, "HardswishBackward0"),
                       (lambda t: F.threshold(t, 0.0, 1.0), "ThresholdBackward0")]:
        assert make(_t([1.0], True)).grad_fn.name() == name
    assert [repr(m) for m in (nn.Hardtanh(), nn.ReLU6(), nn.Hardsigmoid(), nn.Hardswish(),
                              nn.Threshold(0.1, 20.0))] == [
        "Hardtanh(min_val=-1.0, max_val=1.0)", "ReLU6()", "Hardsigmoid()", "Hardswish()",
        "Threshold(threshold=0.1, value=20.0)"]
    with pytest.raises(ValueError, match="min_val cannot be greater than max_val"):
        nn.Hardtanh(2.0, 1.0)


def test_softplus_threshold_is_linear_like_pytorch():
    x = _t([30.0, 0.6, -1.0], True)
    y = F.softplus(x)
    assert y[0].item() == 30.0  # beyond threshold=20: x itself
    assert y[2].item() == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-15)
    assert F.softplus(_t([0.6]), beta=2.0, threshold=1.0).item() == 0.6  # 2·0.6 > 1
    assert F.softplus(_t([0.4]), beta=2.0, threshold=1.0).item() == pytest.approx(
        math.log1p(math.exp(0.8)) / 2, rel=1e-15)
    y.sum().backward()
    assert x.grad[0].item() == 1.0


def test_elu_and_inplace_variants():
    np.testing.assert_allclose(F.elu(_t([-1.0, 2.0]), alpha=2.0).numpy(),
                               [2 * (math.exp(-1) - 1), 2.0], rtol=1e-15)
    np.testing.assert_array_equal(_grad(lambda t: F.elu(t, 1.5), [0.0]), [1.5])
    x = symad.tensor([-1.0, 1.0])
    out = nn.LeakyReLU(0.5, inplace=True)(x)
    assert out is x and x.tolist() == [-0.5, 1.0]


def test_activation_reprs_match_pytorch():
    assert repr(nn.GELU()) == "GELU(approximate='none')"
    assert repr(nn.GELU(approximate="tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.SiLU()) == "SiLU()"
    assert repr(nn.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(nn.LeakyReLU(0.2, inplace=True)) == "LeakyReLU(negative_slope=0.2, inplace=True)"
    assert repr(nn.Softplus()) == "Softplus(beta=1.0, threshold=20.0)"
    assert repr(nn.ELU()) == "ELU(alpha=1.0)"


# -- convolution -----------------------------------------------------------------------------

def test_conv2d_module_parameters_init_and_repr():
    symad.manual_seed(0)
    conv = nn.Conv2d(4, 16, 3, padding=1)
    assert [(n, tuple(p.shape)) for n, p in conv.named_parameters()] == [
        ("weight", (16, 4, 3, 3)), ("bias", (16,))]
    bound = 1 / math.sqrt(4 * 9)  # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), ...)
    w = conv.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.95 * bound
    assert np.abs(conv.bias.detach().numpy()).max() <= bound
    assert w.dtype == np.float32
    assert repr(conv) == "Conv2d(4, 16, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    assert repr(nn.Conv2d(2, 4, (3, 5), stride=2, dilation=(1, 2), groups=2, bias=False)) == (
        "Conv2d(2, 4, kernel_size=(3, 5), stride=(2, 2), dilation=(1, 2), groups=2, bias=False)")
    assert repr(nn.Conv1d(1, 2, 3, padding="same")) == (
        "Conv1d(1, 2, kernel_size=(3,), stride=(1,), padding=same)")
    g = nn.Conv2d(4, 6, 3, groups=2)
    assert tuple(g.weight.shape) == (6, 2, 3, 3)


def test_conv2d_forward_values_and_grad_fn():
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(2, 3, 6, 5)), rng.normal(size=(4, 3, 3, 2)), rng.normal(size=4)
    y = F.conv2d(_t(x, True), _t(w), _t(b), stride=(2, 1), padding=(1, 0), dilation=(1, 2))
    assert y.grad_fn.name() == "ConvolutionBackward0"
    ref = conv_ref(x, w, b, stride=(2, 1), padding=((1, 1), (0, 0)), dilation=(1, 2), groups=1)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-12, atol=1e-12)


def test_conv_hand_computed_values():
    # 1x1x3x3 ones ⋆ 2x2 ones: every window sums four ones; with padding=1 the corners see one
    x = symad.ones(1, 1, 3, 3)
    w = symad.ones(1, 1, 2, 2)
    assert F.conv2d(x, w).tolist() == [[[[4.0, 4.0], [4.0, 4.0]]]]
    assert F.conv2d(x, w, padding=1)[0, 0, 0].tolist() == [1.0, 2.0, 2.0, 1.0]
    # conv1d: [1, 2, 3, 4] ⋆ [1, -1] = [-1, -1, -1]; stride 2: [-1, -1]
    s = symad.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    k = symad.tensor([[[1.0, -1.0]]])
    assert F.conv1d(s, k).tolist() == [[[-1.0, -1.0, -1.0]]]
    assert F.conv1d(s, k, stride=2).tolist() == [[[-1.0, -1.0]]]
    assert F.conv1d(s, k, symad.tensor([10.0]), dilation=2).tolist() == [[[8.0, 8.0]]]


def test_conv_same_padding_even_kernel_pads_right_more():
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(1, 2, 7)), rng.normal(size=(3, 2, 4))
    y = F.conv1d(_t(x), _t(w), padding="same")
    assert tuple(y.shape) == (1, 3, 7)
    ref = conv_ref(x, w, stride=(1,), padding=((1, 2),), dilation=(1,), groups=1)
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)
    assert tuple(F.conv1d(_t(x), _t(w), padding="valid").shape) == (1, 3, 4)
    assert tuple(nn.Conv2d(2, 3, 4, padding="same")(symad.ones(1, 2, 5, 6)).shape) == (1, 3, 5, 6)


def test_conv_unbatched_input_and_groups():
    rng = np.random.default_rng(2)
    x, w = rng.normal(size=(4, 5, 5)), rng.normal(size=(6, 2, 3, 3))
    y = F.conv2d(_t(x), _t(w), groups=2)
    assert tuple(y.shape) == (6, 3, 3)
    ref = conv_ref(x[None], w, stride=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
                   groups=2)[0]
    np.testing.assert_allclose(y.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_conv_errors_are_pytorchs():
    conv = nn.Conv2d(1, 6, 3)
    with pytest.raises(RuntimeError, match=r"Given groups=1, weight of size \[6, 1, 3, 3\], "
                       r"expected input\[2, 3, 8, 8\] to have 1 channels, but got 3 channels "
                       r"instead"):
        conv(symad.zeros(2, 3, 8, 8))
    with pytest.raises(RuntimeError, match=r"Expected 3D \(unbatched\) or 4D \(batched\) input "
                       r"to conv2d, but got input of size: \[8, 8\]"):
        conv(symad.zeros(8, 8))
    with pytest.raises(RuntimeError, match="Kernel size can't be greater than actual input size"):
        conv(symad.zeros(1, 1, 2, 2))
    with pytest.raises(RuntimeError, match="padding='same' is not supported for strided"):
        F.conv1d(symad.zeros(1, 1, 5), symad.zeros(1, 1, 3), stride=2, padding="same")
    with pytest.raises(RuntimeError, match="Invalid padding string: 'full'"):
        F.conv1d(symad.zeros(1, 1, 5), symad.zeros(1, 1, 3), padding="full")
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        nn.Conv2d(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided"):
        nn.Conv2d(1, 1, 3, stride=2, padding="same")
    with pytest.raises(RuntimeError, match="expected bias to be 1-dimensional with 2 elements"):
        F.conv1d(symad.zeros(1, 1, 5), symad.zeros(2, 1, 3), symad.zeros(3))
    with pytest.raises(RuntimeError, match="should be the same"):
        F.conv1d(symad.zeros(1, 1, 5, dtype=symad.float64), symad.zeros(2, 1, 3))


def test_conv_gradients_gradcheck_and_double_backward():
    rng = np.random.default_rng(3)
    x = _t(rng.normal(size=(1, 2, 5, 4)), True)
    w = _t(rng.normal(size=(2, 2, 2, 3)), True)
    b = _t(rng.normal(size=2), True)

    def f(x, w, b):
        return F.conv2d(x, w, b, stride=(2, 1), padding=1, dilation=(2, 1))

    assert gradcheck(f, (x, w, b))
    assert gradgradcheck(f, (x, w, b))
    (gx,) = symad.autograd.grad(f(x, w, b).pow(2).sum(), x, create_graph=True)
    assert gx.grad_fn is not None


def test_conv_input_grad_node_name_in_double_backward():
    x = symad.randn(1, 1, 4, 4, requires_grad=True)
    w = symad.randn(1, 1, 2, 2, requires_grad=True)
    (gx,) = symad.autograd.grad(F.conv2d(x, w).sum(), x, create_graph=True)
    assert gx.grad_fn.name() == "ConvolutionBackwardBackward0"


# -- pooling ---------------------------------------------------------------------------------

def test_max_pool_values_ties_and_grad_fn():
    x = _t([[[[1.0, 3.0, 3.0, 2.0],
               [0.0, 5.0, 5.0, 4.0]]]], True)
    y = F.max_pool2d(x, (1, 2), stride=1)
    assert y.grad_fn.name() == "MaxPool2DWithIndicesBackward0"
    assert y.tolist() == [[[[3.0, 3.0, 3.0], [5.0, 5.0, 5.0]]]]
    y.sum().backward()
    # each window sends its gradient to its FIRST maximum (PyTorch's CPU kernel): the tied
    # middle window [3, 3] picks column 1, so column 1 gets 2 and column 2 gets 1
    assert x.grad.tolist() == [[[[0.0, 2.0, 1.0, 0.0], [0.0, 2.0, 1.0, 0.0]]]]


def test_max_pool_return_indices_ceil_mode_and_padding():
    x = symad.arange(25.0).reshape(1, 1, 5, 5)
    out, idx = F.max_pool2d(x, 2, return_indices=True)
    assert out.tolist() == [[[[6.0, 8.0], [16.0, 18.0]]]]
    assert idx.tolist() == [[[[6, 8], [16, 18]]]] and idx.dtype == symad.int64
    assert tuple(nn.MaxPool2d(2, ceil_mode=True)(x).shape) == (1, 1, 3, 3)
    assert nn.MaxPool2d(2, ceil_mode=True)(x)[0, 0, 2].tolist() == [21.0, 23.0, 24.0]
    assert tuple(F.max_pool2d(x, 3, stride=2, padding=1).shape) == (1, 1, 3, 3)
    assert F.max_pool2d(-x, 3, stride=2, padding=1)[0, 0, 0, 0].item() == 0.0  # -inf padding


def test_max_pool1d_is_a_squeezed_2d_pool():
    x = symad.tensor([[[1.0, 4.0, 2.0, 8.0, 5.0]]], requires_grad=True)
    y = F.max_pool1d(x, 2)
    assert y.tolist() == [[[4.0, 8.0]]]
    assert y.grad_fn.name() == "SqueezeBackward1"  # PyTorch: max_pool2d + squeeze
    out, idx = nn.MaxPool1d(3, stride=1, return_indices=True)(x)
    assert out.tolist() == [[[4.0, 8.0, 8.0]]] and idx.tolist() == [[[1, 3, 3]]]
    y.sum().backward()
    assert x.grad.tolist() == [[[0.0, 1.0, 0.0, 1.0, 0.0]]]


def test_avg_pool_values_count_include_pad_and_divisor():
    x = symad.arange(16.0).reshape(1, 1, 4, 4)
    assert F.avg_pool2d(x, 2).tolist() == [[[[2.5, 4.5], [10.5, 12.5]]]]
    # padded corner window sees only x[0,0]=0, x[0,1]=1, x[1,0]=4, x[1,1]=5 (sum 10)
    assert F.avg_pool2d(x, 3, stride=2, padding=1)[0, 0, 0, 0].item() == pytest.approx(10 / 9)
    assert F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)[0, 0, 0, 0].item() \
        == pytest.approx(10 / 4)
    assert F.avg_pool2d(x, 2, divisor_override=1)[0, 0, 0, 0].item() == 10.0
    y = nn.AvgPool2d(2)(x.requires_grad_())
    assert y.grad_fn.name() == "AvgPool2DBackward0"
    y.sum().backward()
    assert x.grad.tolist() == [[[[0.25] * 4] * 4]]


def test_avg_pool_ceil_mode_divides_by_the_window_inside_the_padded_input():
    x = symad.arange(5.0).reshape(1, 1, 5)
    # windows [0,1], [2,3], [4] (ceil mode's overhang does not count): PyTorch gives 0.5, 2.5, 4
    assert F.avg_pool1d(x, 2, ceil_mode=True).tolist() == [[[0.5, 2.5, 4.0]]]
    y = F.avg_pool1d(x.requires_grad_(), 2)
    assert y.grad_fn.name() == "SqueezeBackward1"


def test_adaptive_avg_pool2d_bins():
    x = symad.arange(10.0).reshape(1, 1, 2, 5).requires_grad_()
    y = nn.AdaptiveAvgPool2d((1, 3))(x)
    # PyTorch's bins over 5 columns into 3: [0,2), [1,4), [3,5)
    row_means = [(0 + 1 + 5 + 6) / 4, (1 + 2 + 3 + 6 + 7 + 8) / 6, (3 + 4 + 8 + 9) / 4]
    np.testing.assert_allclose(y.detach().numpy()[0, 0, 0], row_means)
    assert y.grad_fn.name() == "AdaptiveAvgPool2DBackward0"
    assert tuple(F.adaptive_avg_pool2d(symad.ones(2, 3, 7, 6), (None, 2)).shape) == (2, 3, 7, 2)
    assert F.adaptive_avg_pool2d(symad.ones(1, 1, 4, 4), 1).tolist() == [[[[1.0]]]]


def test_pooling_gradchecks():
    rng = np.random.default_rng(4)
    x = _t(rng.normal(size=(1, 2, 5, 5)), True)
    assert gradcheck(lambda t: F.max_pool2d(t, 3, stride=2, padding=1), (x,))
    assert gradcheck(lambda t: F.avg_pool2d(t, 3, stride=2, padding=1, count_include_pad=False,
                                            ceil_mode=True), (x,))
    assert gradgradcheck(lambda t: F.avg_pool2d(t, 2, stride=1), (x,))
    assert gradcheck(lambda t: F.adaptive_avg_pool2d(t, (3, 2)), (x,))
    assert gradgradcheck(lambda t: F.adaptive_avg_pool2d(t, (3, 2)), (x,))
    assert gradgradcheck(lambda t: F.max_pool2d(t, 2, stride=1).pow(2), (x,))


def test_pooling_errors_and_reprs():
    with pytest.raises(RuntimeError, match="pad should be at most half of effective kernel "
                       "size, but got pad=2, kernel_size=3 and dilation=1"):
        F.max_pool2d(symad.zeros(1, 1, 6, 6), 3, padding=2)
    with pytest.raises(RuntimeError, match="pad should be at most half of kernel size, but got "
                       "pad=2 and kernel_size=3"):
        F.avg_pool2d(symad.zeros(1, 1, 6, 6), 3, padding=2)
    with pytest.raises(RuntimeError, match=r"Given input size: \(1x2x2\). Calculated output "
                       r"size: \(1x0x0\). Output size is too small"):
        F.max_pool2d(symad.zeros(1, 1, 2, 2), 3)
    assert repr(nn.MaxPool2d(2)) == ("MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, "
                                     "ceil_mode=False)")
    assert repr(nn.AvgPool2d(2)) == "AvgPool2d(kernel_size=2, stride=2, padding=0)"
    assert repr(nn.AvgPool1d(3)) == "AvgPool1d(kernel_size=(3,), stride=(3,), padding=(0,))"
    assert repr(nn.AdaptiveAvgPool2d((1, 1))) == "AdaptiveAvgPool2d(output_size=(1, 1))"


# -- LayerNorm -------------------------------------------------------------------------------

def test_layer_norm_module_values_params_and_repr():
    ln = nn.LayerNorm(4)
    assert [(n, p.tolist()) for n, p in ln.named_parameters()] == [
        ("weight", [1.0] * 4), ("bias", [0.0] * 4)]
    assert repr(ln) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True)"
    x = np.array([[1.0, 2.0, 4.0, 7.0], [0.0, 0.0, 1.0, -1.0]])
    y = ln(symad.tensor(x))
    assert y.grad_fn.name() == "NativeLayerNormBackward0"
    mu = x.mean(1, keepdims=True)
    ref = (x - mu) / np.sqrt(((x - mu) ** 2).mean(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-6)
    assert list(nn.LayerNorm((2, 3), elementwise_affine=False).parameters()) == []
    assert [n for n, _ in nn.LayerNorm(3, bias=False).named_parameters()] == ["weight"]


def test_layer_norm_gradchecks_and_errors():
    rng = np.random.default_rng(5)
    x = _t(rng.normal(size=(2, 3, 4)), True)
    w = _t(rng.normal(size=(3, 4)), True)
    b = _t(rng.normal(size=(3, 4)), True)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, (3, 4), w, b), (x, w, b))
    assert gradgradcheck(lambda x, w, b: F.layer_norm(x, (3, 4), w, b), (x, w, b))
    assert gradcheck(lambda x: F.layer_norm(x, 4), (x,))
    with pytest.raises(RuntimeError, match=r"Given normalized_shape=\[5\], expected input with "
                       r"shape \[\*, 5\], but got input of size\[2, 4\]"):
        F.layer_norm(symad.zeros(2, 4), 5)


# -- Embedding -------------------------------------------------------------------------------

def test_embedding_lookup_padding_row_and_gradient_accumulation():
    symad.manual_seed(0)
    emb = nn.Embedding(5, 3, padding_idx=1)
    assert [(n, tuple(p.shape)) for n, p in emb.named_parameters()] == [("weight", (5, 3))]
    assert emb.weight[1].tolist() == [0.0, 0.0, 0.0]
    assert repr(emb) == "Embedding(5, 3, padding_idx=1)"
    idx = symad.tensor([[0, 2, 0], [1, 4, 0]])
    out = emb(idx)
    assert tuple(out.shape) == (2, 3, 3) and out.grad_fn.name() == "EmbeddingBackward0"
    np.testing.assert_array_equal(out.detach().numpy(), emb.weight.detach().numpy()[idx.numpy()])
    out.sum().backward()
    # index 0 appears three times; the padding row gets nothing although it is looked up
    assert emb.weight.grad[:, 0].tolist() == [3.0, 0.0, 1.0, 0.0, 1.0]
    assert nn.Embedding(4, 2, padding_idx=-1).padding_idx == 3
    w = _t(np.random.default_rng(6).normal(size=(4, 2)), True)
    assert gradgradcheck(lambda w: F.embedding(symad.tensor([0, 3, 3]), w, 1).pow(2), (w,))


def test_embedding_errors_and_from_pretrained():
    w = symad.tensor([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(RuntimeError, match="Expected tensor for argument #1 'indices' to have "
                       "one of the following scalar types: Long, Int"):
        F.embedding(symad.tensor([0.0]), w)
    with pytest.raises(IndexError, match="index out of range in self"):
        F.embedding(symad.tensor([2]), w)
    emb = nn.Embedding.from_pretrained(w)
    assert not emb.weight.requires_grad and emb(symad.tensor([1])).tolist() == [[3.0, 4.0]]
    assert nn.Embedding.from_pretrained(w, freeze=False).weight.requires_grad


# -- a small CNN end to end ------------------------------------------------------------------

def test_cnn_state_dict_keys_and_backward_reaches_every_parameter():
    symad.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.GELU(), nn.MaxPool2d(2),
                        nn.Conv2d(4, 8, 3, padding=1), nn.SiLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.LayerNorm(32), nn.Linear(32, 10))
    assert list(net.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias", "7.weight",
                                      "7.bias", "8.weight", "8.bias"]
    loss = nn.CrossEntropyLoss()(net(symad.randn(5, 1, 8, 8)), symad.tensor([0, 1, 2, 3, 4]))
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and p.grad.dtype == symad.float32, name
        assert float(np.abs(p.grad.numpy()).sum()) > 0, name


def test_activations_compile_natively_with_eager_values_and_gradients():
    """erf (GELU's) lowers to libm's erf; the compiled forward and gradients equal eager."""
    import warnings

    from symad.compiler import CompileWarning
    symad.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), nn.GELU(), nn.Linear(3, 3), nn.SiLU(), nn.Linear(3, 2),
                        nn.Softplus(beta=2.0)).double()
    x = symad.randn(16, 2, dtype=symad.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)  # a fallback to eager fails the test
        compiled = symad.compile(net)
        y = compiled(x)
    np.testing.assert_allclose(y.detach().numpy(), net(x).detach().numpy(), rtol=1e-12,
                               atol=1e-14)
    (y ** 2).sum().backward()
    g_compiled = [p.grad.numpy().copy() for p in net.parameters()]
    net.zero_grad()
    (net(x) ** 2).sum().backward()
    for gc, p in zip(g_compiled, net.parameters()):
        np.testing.assert_allclose(gc, p.grad.numpy(), rtol=1e-10, atol=1e-13)
