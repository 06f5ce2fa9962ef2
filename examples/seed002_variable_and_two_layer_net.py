"""Seed 002: the legacy ``Variable`` API, two hand-checkable gradients, and a two-layer net
trained with ``mm``, ``clamp(min=0)`` and manual updates through ``.grad.data``.

Run: ``python examples/seed002_variable_and_two_layer_net.py``. ``main()`` returns the key numbers.
"""
from __future__ import annotations

import symad
from symad.autograd import Variable


def gradients() -> dict:
    # y = x² + 3x + 1  →  dy/dx = 2x + 3 = 7 at x = 2
    x = Variable(symad.Tensor([2]), requires_grad=True)
    y = x ** 2 + 3 * x + 1
    y.backward()
    print("dy/dx at x=2:", x.grad)  # tensor([7.])
    dy_dx = x.grad.item()

    # z = x² + 3xy + y²  →  dz/dx = 2x + 3y, dz/dy = 3x + 2y.
    # NB: the tutorial's text says 10 and 13 at (2, 3). That is wrong: the true values are
    # 2*2 + 3*3 = 13 and 3*2 + 2*3 = 12 — the kind of hand-derived slip symad's verifier exists
    # to catch. We print what autograd (and the calculus) actually gives.
    x = Variable(symad.Tensor([2]), requires_grad=True)
    yv = Variable(symad.Tensor([3]), requires_grad=True)
    z = x ** 2 + 3 * x * yv + yv ** 2
    z.backward()
    print("dz/dx:", x.grad, " dz/dy:", yv.grad)  # tensor([13.]) tensor([12.])
    return {"dy_dx": dy_dx, "dz_dx": x.grad.item(), "dz_dy": yv.grad.item(),
            "x_is_tensor": isinstance(x, symad.Tensor)}


def two_layer_net(steps: int = 50, lr: float = 0.01, seed: int = 0) -> dict:
    symad.manual_seed(seed)
    input_size, hidden_size, output_size = 1, 2, 1
    x = Variable(symad.Tensor([[1.0], [2.0], [3.0]]), requires_grad=True)
    y = Variable(symad.Tensor([[2.0], [4.0], [6.0]]), requires_grad=True)
    w1 = Variable(symad.randn(input_size, hidden_size), requires_grad=True)
    w2 = Variable(symad.randn(hidden_size, output_size), requires_grad=True)
    w1_init, w2_init = w1.detach().numpy().copy(), w2.detach().numpy().copy()
    losses = []
    for step in range(steps):
        h = x.mm(w1)
        h_relu = h.clamp(min=0)
        y_pred = h_relu.mm(w2)
        loss = (y_pred - y).pow(2).sum()
        loss.backward()
        losses.append(loss.item())
        w1.data -= lr * w1.grad.data
        w2.data -= lr * w2.grad.data
        w1.grad.data.zero_()
        w2.grad.data.zero_()
        if step % 10 == 0 or step == steps - 1:
            print(f"step {step:3d}  loss {loss.item():.6f}")
    return {"losses": losses, "w1_init": w1_init, "w2_init": w2_init,
            "x": x.detach().numpy(), "y": y.detach().numpy(), "lr": lr, "w1": w1.detach().numpy().copy(), "w2": w2.detach().numpy().copy()}


def main() -> dict:
    return {**gradients(), **two_layer_net()}


if __name__ == "__main__":
    main()
