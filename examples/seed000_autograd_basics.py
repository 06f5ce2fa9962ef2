"""Seed 000: scalar autograd, a 100-step gradient-descent loop, detach()/numpy(), x@w+b with MSELoss.

Run: ``python examples/seed000_autograd_basics.py``. ``main()`` returns the key numbers.
"""
from __future__ import annotations

import symad
from symad import nn

# The tutorial draws w (5x3) and b (3) with torch.randn; symad's generator is not PyTorch's, so we
# use the values the tutorial printed, which reproduces its loss and gradients.
SEED_W = [[-0.2116, 0.1743, 1.6572],
          [-1.4358, -0.9859, 0.9192],
          [1.9637, -1.0080, -0.7727],
          [-0.6106, -1.2267, -0.0430],
          [-0.5982, 0.0159, 1.5393]]
SEED_B = [-0.1323, 0.0406, 1.6879]


def one_step() -> symad.Tensor:
    """loss = 2w², d loss/dw = 4w = 40 at w=10; one SGD step with lr=0.01 gives 9.6."""
    w = symad.tensor(10, requires_grad=True, dtype=symad.float32)
    loss = 2 * w ** 2
    loss.backward()
    print("w.grad:", w.grad)  # tensor(40.)
    lr = 0.01
    w = w - lr * w.grad
    print("更新后的权重为:", w)  # tensor(9.6000, grad_fn=<SubBackward0>)
    return w


def descent_loop(steps: int = 100, lr: float = 0.01, verbose: bool = True) -> list[tuple]:
    """Minimise w² + 20 from w=10; returns (w, grad, loss) per step as Python floats."""
    w = symad.tensor(10, requires_grad=True, dtype=symad.float32)
    trajectory = []
    for i in range(1, steps + 1):
        loss = w ** 2 + 20
        if w.grad is not None:
            w.grad.zero_()  # gradients accumulate; clear them first
        loss.backward()
        w.data = w.data - lr * w.grad
        trajectory.append((w.item(), w.grad.item(), loss.item()))
        if verbose and (i <= 5 or i % 20 == 0):
            print(f"第{i}次，权重初始值:{w}, 梯度：{w.grad}, loss {loss}")
    return trajectory


def detach_and_numpy() -> dict:
    t1 = symad.tensor([10, 20], requires_grad=True, dtype=symad.float32)
    try:
        t1.numpy()
        numpy_error = None
    except RuntimeError as e:  # a tensor that requires grad cannot become a numpy array directly
        numpy_error = str(e)
    print("t1.numpy() ->", numpy_error)
    t2 = t1.detach()
    t1.data[0] = 100  # t1 and t2 share memory
    print(f"t1:{t1}\nt2:{t2}")
    print(f"t1.requires_grad={t1.requires_grad}, t2.requires_grad={t2.requires_grad}")
    n1 = t2.numpy()
    n2 = t1.detach().numpy()
    print(f"n1:{n1}, n2:{n2}, type:{type(n2)}")
    return {"numpy_error": numpy_error, "t2": t2.tolist(), "n2": n2.tolist(),
            "t1_requires_grad": t1.requires_grad, "t2_requires_grad": t2.requires_grad}


def linear_mse() -> dict:
    x = symad.ones(2, 5)
    y = symad.zeros(2, 3)
    w = symad.tensor(SEED_W, requires_grad=True)
    b = symad.tensor(SEED_B, requires_grad=True)
    z = symad.matmul(x, w) + b
    print(z)
    criterion = nn.MSELoss()
    loss = criterion(z, y)
    print(loss)
    loss.backward()
    print(w.grad)
    print(b.grad)
    return {"z": z.detach().numpy(), "loss": loss.item(), "w_grad": w.grad.numpy(),
            "b_grad": b.grad.numpy(), "loss_grad_fn": loss.grad_fn.name(),
            "z_grad_fn": z.grad_fn.name()}


def main() -> dict:
    w = one_step()
    trajectory = descent_loop()
    det = detach_and_numpy()
    lin = linear_mse()
    return {"step_w": w.item(), "step_repr": repr(w), "trajectory": trajectory, **det, **lin}


if __name__ == "__main__":
    main()
