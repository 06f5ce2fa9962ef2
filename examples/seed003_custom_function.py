"""Seed 003: custom ``autograd.Function`` — ``Square`` — and a 1000-epoch fit of w·x + b whose
gradients come from a hand-written Function.

The tutorial's Function computes ``grad_x = grad_output * w`` from the *global* ``w`` instead of a
saved input. We reproduce that pattern faithfully: it is a bug (the backward depends on state that
is not an input of the Function), silent here only because ``x`` does not require grad. symad's
verifier catches it — comparing a custom backward against the derivative of its forward exposes
the wrong ``grad_x`` as soon as the global ``w`` differs from the ``w`` passed in. ``main`` runs
``symad.check_function`` on both Functions (Square: proved right; compute_gradients: proved
wrong, with a hint naming the global), and ``show_global_w_bug`` shows the wrong gradient
numerically.

Run: ``python examples/seed003_custom_function.py``. ``main()`` returns the key numbers.
"""
from __future__ import annotations

import symad
from symad.autograd import Function


class Square(Function):
    @staticmethod
    def forward(ctx, input):
        ctx.save_for_backward(input)  # keep the input for backward
        return input ** 2

    @staticmethod
    def backward(ctx, grad_output):
        input, = ctx.saved_tensors
        return grad_output * 2 * input  # chain rule


def square_demo() -> list[float]:
    x = symad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = Square.apply(x)
    y.sum().backward()
    print(x.grad)  # tensor([2., 4., 6.])
    return x.grad.tolist()


def get_fake_data(num: int):
    """y = 0.5 x + 30 plus noise (symad's generator; the tutorial's numbers came from torch's)."""
    x = symad.randint(low=-5, high=30, size=(num,)).to(dtype=symad.float32)
    y = 0.5 * x + 30 + symad.randn(num)
    return x, y


def model(x, w, b):
    return w * x + b


def loss_fn(y_p, y):
    squared_diffs = (y_p - y) ** 2
    return squared_diffs.mean()


w = None  # module-level, as in the tutorial's notebook: compute_gradients.backward reads it
x_new = None


class compute_gradients(Function):
    @staticmethod
    def forward(ctx, w, x, b):
        ctx.save_for_backward(x)  # x is saved; w and b "are managed by autograd"
        output = w * x + b
        return output

    @staticmethod
    def backward(ctx, grad_output):
        x, = ctx.saved_tensors
        grad_w = (grad_output * x).sum()  # w is a scalar: sum over samples
        # BUG (faithful to the tutorial): this `w` is the module-level global, not the w that was
        # passed to forward (which was not saved). Harmless here only because x needs no grad.
        grad_x = grad_output * w
        grad_b = grad_output.sum()
        return grad_w, grad_x, grad_b


def training_loop(n_epochs, learning_rate, w, b, x, y, verbose=True):
    losses = []
    for epoch in range(1, n_epochs + 1):
        y_pred = compute_gradients.apply(w, x_new, b)  # the tutorial passes the global x_new
        loss = loss_fn(y_pred, y)
        loss.backward()
        with symad.no_grad():
            w -= learning_rate * w.grad
            b -= learning_rate * b.grad
        losses.append(loss.item())
        if verbose and (epoch % 100 == 0 or epoch == 10):
            print(f"Epoch : {epoch} , Loss : {loss}")
            print(f"Params :w={w}, b={b} , Grad :w={w.grad}, b={b.grad}")
            print("-----")
        w.grad.zero_()
        b.grad.zero_()
    return w, b, losses


def show_global_w_bug() -> dict:
    """Call the Function with a w different from the global and differentiate w.r.t. x: the
    correct d(w·x + b)/dx is the w passed in; the tutorial's backward returns the global w."""
    w_local = symad.tensor(3.0, requires_grad=True)
    xs = symad.tensor([1.0, 2.0], requires_grad=True)
    out = compute_gradients.apply(w_local, xs, symad.tensor(0.0, requires_grad=True))
    out.sum().backward()
    print(f"d/dx of w*x+b with w=3: expected [3, 3], the global-w backward gives {xs.grad}")
    return {"buggy_grad_x": xs.grad.tolist(), "true_grad_x": [3.0, 3.0]}


def main(verbose: bool = True) -> dict:
    global w, x_new
    grads = square_demo()
    symad.manual_seed(2024)
    x, y = get_fake_data(num=11)
    x_new = x * 0.1  # normalise the input
    w = symad.tensor(1.0, requires_grad=True)
    b = symad.tensor(0.0, requires_grad=True)
    w_fit, b_fit, losses = training_loop(n_epochs=1000, learning_rate=1e-2, w=w, b=b, x=x_new,
                                         y=y, verbose=verbose)
    bug = show_global_w_bug()
    # symad's verifier: each backward against the exact derivative of its forward
    square_report = symad.check_function(Square, symad.tensor([1.0, 2.0, 3.0]))
    # (three samples keep the printed report short; the verdict is the same for all eleven)
    fit_report = symad.check_function(compute_gradients, w_fit.detach(), x_new[:3],
                                      b_fit.detach())
    if verbose:
        print(square_report)
        print(fit_report)
    return {"square_verified": square_report.ok, "fit_function_verified": fit_report.ok,
            "fit_function_report": str(fit_report),
"square_grad": grads, "w": w_fit.item(), "b": b_fit.item(), "losses": losses,
            "x_new": x_new.numpy().copy(), "y": y.numpy().copy(), **bug}


if __name__ == "__main__":
    main()
