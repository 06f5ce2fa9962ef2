"""check_function on custom autograd.Functions, including seed 003's global-variable backward."""
from __future__ import annotations

import pytest

import symad
from symad import check_function
from symad.autograd import Function

# seed 003: a module-level w that backward reads instead of a saved tensor
w = symad.tensor(2.0, dtype=symad.float64)


class LinearGlobal(Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(x)  # w is not saved...
        return w * x + b

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return (grad_output * x).sum(), grad_output * w, grad_output.sum()  # ...global w


class LinearSaved(Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(w, x)
        return w * x + b

    @staticmethod
    def backward(ctx, grad_output):
        w, x = ctx.saved_tensors
        return (grad_output * x).sum(), grad_output * w, grad_output.sum()


from seed_functions import Square  # noqa: E402  (seed 003's Function)


class SquareNoChain(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 2

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x  # forgets grad_output


class Softplus(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return (1 + x.exp()).log()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x.sigmoid()


class ReluBad(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.relu()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return symad.where(x < 0, g, 0 * g)  # wrong side of the kink


def _args():
    d = symad.float64
    return (symad.tensor(1.5, dtype=d), symad.tensor([1.0, 2.0, 3.0], dtype=d),
            symad.tensor(0.5, dtype=d))


def test_correct_functions_proved():
    for cls, args in [(LinearSaved, _args()), (Square, (symad.tensor([1.0, -2.0]),)),
                      (Softplus, (symad.tensor([0.3]),))]:
        r = check_function(cls, *args)
        assert r.ok and r.proved, str(r)


def test_seed003_global_variable_detected():
    r = check_function(LinearGlobal, *_args())
    assert not r.ok and r.proved
    wrong = [it for it in r.items if not it.ok]
    assert [it.name for it in wrong] == ["x[0]", "x[1]", "x[2]"]
    for it in wrong:
        assert "does not use input 'w'" in it.hint
        assert "the constant 2" in it.hint  # the global's value
        ce = it.counterexample
        assert ce is not None and ce.exact != ce.claimed
        # independent oracle: d(w*x_k + b)/dx_k . g_k = g_k * w ; the backward gives g_k * 2
        k = int(it.name[2])
        assert ce.exact == ce[f"grad_output[{k}]"] * ce["w"]
        assert ce.claimed == ce[f"grad_output[{k}]"] * 2
    assert any("does not use input 'w'" in n for n in r.notes)
    # w and b gradients are right
    assert r["w"].ok and r["b"].ok


def test_backward_forgetting_grad_output():
    r = check_function(SquareNoChain, symad.tensor([1.0, 2.0]))
    assert not r.ok
    for it in r.items:
        assert "grad_output" in it.hint
        assert it.counterexample is not None


def test_relu_backward_wrong_side():
    r = check_function(ReluBad, symad.tensor([1.0, -1.0]))
    assert not r.ok and r.proved
    for it in r.items:
        assert it.counterexample is not None
        assert it.counterexample[it.name] != 0  # never a witness on the kink


@pytest.mark.parametrize("cls", [Square, Softplus])
def test_check_function_matches_gradcheck(cls):
    # a second, numeric oracle agrees with the symbolic verdict
    x = symad.tensor([0.7, -0.4], dtype=symad.float64, requires_grad=True)
    assert symad.autograd.gradcheck(cls.apply, (x,))
    assert check_function(cls, x).ok
