"""gradcheck / gradgradcheck: PyTorch-compatible numeric checks, kink-aware."""
from __future__ import annotations

import inspect

import pytest

import symad
from symad.autograd import Function, GradcheckError, gradcheck, gradgradcheck

D = symad.float64


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x ** 2 * g


class CubeWrong(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x ** 2 * g


class AbsWrong(Function):
    """Correct away from 0 for x > 0 only: d|x|/dx taken as 1[x > 0]."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.abs()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return symad.where(x > 0, g, 0 * g)


def _x(*v):
    return symad.tensor(list(v), dtype=D, requires_grad=True)


def test_signature_matches_pytorch():
    p = inspect.signature(gradcheck).parameters
    assert (p["eps"].default, p["atol"].default, p["rtol"].default) == (1e-6, 1e-5, 1e-3)
    assert p["raise_exception"].default is True and p["eps"].kind is p["eps"].KEYWORD_ONLY
    q = inspect.signature(gradgradcheck).parameters
    assert "grad_outputs" in q and q["atol"].default == 1e-5
    assert issubclass(GradcheckError, RuntimeError)


def test_correct_function_passes():
    assert gradcheck(Cube.apply, (_x(0.5, -1.2, 2.0),)) is True
    assert gradcheck(lambda a, b: (a * b.sin()).sum(), (_x(0.3, 0.4), _x(1.0, -2.0)))


def test_wrong_function_message_names_everything():
    with pytest.raises(GradcheckError) as ei:
        gradcheck(CubeWrong.apply, (_x(0.5, -1.5),))
    msg = str(ei.value)
    # element (1,): numerical 3 * 1.5**2 = 6.75, analytical 2 * 1.5**2 = 4.5
    assert "input 0" in msg and "output 0" in msg and "(1,)" in msg
    import re
    line = next(l for l in msg.splitlines() if "input[0](1,)" in l)
    num = float(re.search(r"numerical (\S+),", line).group(1))
    ana = float(re.search(r"analytical (\S+);", line).group(1))
    assert num == pytest.approx(6.75, rel=1e-8) and ana == 4.5
    assert "absolute error 2.25" in line
    assert gradcheck(CubeWrong.apply, (_x(0.5, -1.5),), raise_exception=False) is False


def test_relu_at_zero_no_false_failure():
    # central difference at 0 is 0.5, relu'(0) = 0 by convention: PyTorch's gradcheck fails here
    assert gradcheck(symad.relu, (_x(0.0, 1.0, -1.0),)) is True


def test_abs_at_zero_correct_backward_passes():
    assert gradcheck(symad.abs, (_x(0.0, 2.0),)) is True


def test_abs_at_zero_wrong_backward_not_silent():
    x = _x(0.0, 2.0)
    # PyTorch-like behaviour passes silently: central difference 0 == buggy analytical 0
    assert gradcheck(AbsWrong.apply, (x,), kink="ignore") is True
    with pytest.raises(GradcheckError) as ei:
        gradcheck(AbsWrong.apply, (x,))
    msg = str(ei.value)
    # checked just left of the kink: numerical -1, analytical (buggy) 0
    assert "kink at 0.0; checked at -0.001" in msg and "analytical 0.0" in msg


def test_kink_raise_mode_reports_point():
    with pytest.raises(GradcheckError, match="non-differentiable point"):
        gradcheck(symad.abs, (_x(0.0),), kink="raise")


def test_gradgradcheck():
    assert gradgradcheck(lambda x: (x ** 3).sum(), (_x(0.5, -1.0),))
    assert gradgradcheck(lambda x: x.sin() * x, (_x(0.5, -1.0),))
    assert gradgradcheck(Cube.apply, (_x(0.7),))


def test_gradgradcheck_catches_wrong_double_backward():
    # the backward is right numerically but its own derivative is wrong (uses a detached x)
    class CubeDetached(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 3 * x.detach() ** 2 * g
    x = _x(0.7, 1.3)
    assert gradcheck(CubeDetached.apply, (x,))
    assert gradgradcheck(CubeDetached.apply, (x,), raise_exception=False) is False


def test_float32_warns_like_pytorch():
    x = symad.tensor([1.0], requires_grad=True)
    with pytest.warns(UserWarning, match="not a double precision"):
        gradcheck(lambda t: t * 2, (x,), eps=1e-2, atol=1e-2, rtol=1e-2)


def test_no_input_requires_grad():
    with pytest.raises(ValueError, match="requires_grad"):
        gradcheck(symad.sin, (symad.tensor([1.0], dtype=D),))
