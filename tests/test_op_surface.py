"""One list of op names: the registry. Every registry op reaches users under its own name where
PyTorch puts it (``symad.<name>``, ``symad.nn.functional.<name>``, ``symad.linalg.<name>`` or
``Tensor.<name>``), or is listed here as internal with the name users call instead. A new op
without any surface fails this test, and so does a stale entry in the internal list."""
from __future__ import annotations

import pytest

import symad
import symad.linalg
import symad.nn.functional as nnF
import symad.ops.functional as F
from symad.ops.registry import REGISTRY
from symad.tensor import Tensor

INTERNAL = {
    "rsub": "scalar - tensor (Tensor.__rsub__)",
    "pow_scalar": "tensor ** number (symad.pow / Tensor.__pow__)",
    "fill": "Tensor.fill_ / zero_ on a tensor in a graph",
    "max_dim": "symad.max(x, dim) / Tensor.max(dim)",
    "norm2": "symad.norm / Tensor.norm",
    "getitem": "Tensor.__getitem__",
    "index_put": "Tensor.__setitem__",
    "to_dtype": "Tensor.to / .double() / .float()",
    "gelu_tanh": "nn.functional.gelu(x, approximate='tanh')",
    "convolution": "nn.functional.conv1d / conv2d",
    "conv_input_grad": "the VJP of convolution",
    "conv_weight_grad": "the VJP of convolution",
    "max_pool": "nn.functional.max_pool1d / max_pool2d",
    "max_pool_select": "the VJP of max pooling",
    "max_pool_backward": "the VJP of max pooling",
    "avg_pool": "nn.functional.avg_pool1d / avg_pool2d",
    "avg_pool_backward": "the VJP of average pooling",
}
PLACES = [symad, nnF, symad.linalg, F, Tensor]


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_op_has_a_surface(name):
    found = [p for p in PLACES if callable(getattr(p, name, None))]
    if name in INTERNAL:
        assert not any(p in (symad, nnF) for p in found), \
            f"{name} is public now: remove it from INTERNAL"
        return
    assert found, (f"registry op {name!r} is not reachable as symad.{name}, "
                   f"symad.nn.functional.{name}, symad.linalg.{name} or Tensor.{name}")


def test_internal_list_names_only_registry_ops():
    assert set(INTERNAL) <= set(REGISTRY), set(INTERNAL) - set(REGISTRY)


def test_top_level_elementwise_functions_are_the_functional_wrappers():
    for name, op in REGISTRY.items():
        if op.formula is not None and hasattr(symad, name) and hasattr(F, name):
            assert getattr(symad, name) is getattr(F, name), name


def test_elementwise_functional_wrappers_apply_their_registry_op():
    x = symad.tensor([0.25, 0.5], dtype=symad.float64, requires_grad=True)
    checked = 0
    for name, op in REGISTRY.items():
        if op.formula is None or op.nargs != 1 or op.params or not hasattr(F, name):
            continue
        y = getattr(F, name)(x)
        assert type(y.grad_fn).__name__ == op.grad_fn_name(), name
        checked += 1
    assert checked >= 15
