"""Bad input gets PyTorch's exception type and a message naming the user's argument (issue 15)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import symad
from symad.compiler import CompileWarning
from symad.export_.export import ExportError


def _line(t, x, y):
    return ((t[0] * x + t[1] - y) ** 2).mean()


def test_export_without_any_input_requiring_grad_is_a_clear_error(tmp_path):
    t = symad.tensor([1.0, 2.0])
    x, y = symad.randn(8), symad.randn(8)
    with pytest.raises(ExportError, match="no input requires grad.*requires_grad=True"):
        symad.export(_line, (t, x, y), tmp_path, name="m", formats=("h",))
    # naming the data explicitly is the other way out, and works
    r = symad.export(_line, (t, x, y), tmp_path, name="m", formats=("h",), what=("forward",),
                     batched=["x", "y"])
    assert [f["name"] for f in r.manifest["functions"]] == ["m_forward"]


def test_export_grad_of_nothing_says_what_to_set(tmp_path):
    x, y = symad.randn(8), symad.randn(8)
    with pytest.raises(ExportError, match="no parameter requires grad"):
        symad.export(lambda x, y: ((x - y) ** 2).mean(), (x, y), tmp_path, name="m",
                     formats=("h",), what=("grad",))


@pytest.mark.parametrize("bad", [None, "1.0"])
def test_none_or_string_as_data_is_a_type_error(bad):
    # PyTorch: TypeError: mul(): argument 'other' (position 2) must be Tensor, not NoneType
    w = symad.tensor(2.0, requires_grad=True)
    with pytest.raises(TypeError, match=f"mul\\(\\): argument 2 must be a Tensor or a number, "
                                        f"not {type(bad).__name__}"):
        w * bad
    with pytest.raises(TypeError, match="add"):
        symad.add(bad, w)
    with pytest.raises(TypeError):
        symad.compile(lambda w, x: (w * x).sum())(w, bad)


def test_misaligned_user_buffer_compiles_without_internal_names():
    buf = np.zeros(8 * 9 + 1, dtype=np.uint8)
    x = np.frombuffer(buf.data, dtype=np.float64, count=8, offset=1)
    assert not x.flags.aligned
    xt = symad.from_numpy(x)  # shares the misaligned memory, as torch.from_numpy would
    xt_copy = symad.tensor(np.arange(8.0), dtype=symad.float64)
    buf.view(np.uint8)[1:65] = np.arange(8.0).view(np.uint8)
    w = symad.tensor(2.0, dtype=symad.float64, requires_grad=True)
    f = symad.compile(lambda w, x: ((w * x - 1) ** 2).mean())
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileWarning)
        out = f(w, xt)
    assert float(out) == pytest.approx(float(((2 * xt_copy - 1) ** 2).mean()))
