"""One list of op names: the registry. Every registry op reaches users where PyTorch puts it
(``symad.<name>``, ``symad.ops.functional.<name>``, ``Tensor.<name>``), or is listed here as
internal / functional-only with the reason. A new op without its surface fails this test."""
from __future__ import annotations

import pytest

import symad
import symad.nn.functional as nnF
import symad.ops.functional as F
from symad.ops.registry import REGISTRY
from symad.tensor import Tensor

# ops users never call by this name: reached through an operator, a method with another name, or
# a composite (the reason says which)
INTERNAL = {
    "rsub": "scalar - tensor (Tensor.__rsub__)",
    "pow_scalar": "tensor ** number (symad.pow / Tensor.__pow__)",
    "fill": "Tensor.fill_ / zero_ on a tensor in a graph",
    "max_dim": "symad.max(x, dim) / Tensor.max(dim)",
    "norm2": "symad.norm / Tensor.norm",
    "getitem": "Tensor.__getitem__",
    "index_put": "Tensor.__setitem__",
    "index_scatter": "the VJP of indexing",
    "index_fill_zero": "the VJP of in-place indexing",
    "to_dtype": "Tensor.to / .double() / .float()",
    "sum_to_size": "Tensor.sum_to_size and broadcasting VJPs",
}
# in PyTorch these are functions only (torch.cat, F.mse_loss), not Tensor methods
NO_METHOD = {"cat", "stack", "mse_loss", "binary_cross_entropy",
             "binary_cross_entropy_with_logits", "nll_loss", "where_"}
LOSSES = {"mse_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits", "nll_loss"}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_op_has_its_surface(name):
    if name in INTERNAL:
        return
    if name in LOSSES:  # torch.nn.functional.<loss>
        assert callable(getattr(nnF, name)), f"symad.nn.functional.{name} is missing"
        return
    assert callable(getattr(F, name, None)), f"symad.ops.functional.{name} is missing"
    assert getattr(symad, name, None) is getattr(F, name), f"symad.{name} is missing"
    if name not in NO_METHOD:
        assert callable(getattr(Tensor, name, None)), f"Tensor.{name} is missing"


def test_internal_list_names_only_registry_ops():
    assert set(INTERNAL) <= set(REGISTRY), set(INTERNAL) - set(REGISTRY)


def test_elementwise_functional_wrappers_apply_their_registry_op():
    x = symad.tensor([0.25, 0.5], dtype=symad.float64, requires_grad=True)
    for name, op in REGISTRY.items():
        if op.formula is None or op.nargs != 1 or op.params or name in INTERNAL:
            continue
        y = getattr(F, name)(x)
        assert y.grad_fn is not None and type(y.grad_fn).__name__ == op.grad_fn_name(), name
