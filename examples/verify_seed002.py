"""Seed 002 claims dz/dx = 10 and dz/dy = 13 for z = x**2 + 3*x*y + y**2 at (2, 3).

symad proves the exact gradient (2x + 3y, 3x + 2y) = (13, 12) there and shows both claims wrong.
Run: python examples/verify_seed002.py
"""
import symad

z = "x**2 + 3*x*y + y**2"
report = symad.check_gradient(z, {"x": 10, "y": 13}, at={"x": 2, "y": 3})
print(report)

# what symad's own autograd computes, for comparison
x = symad.tensor(2.0, requires_grad=True)
y = symad.tensor(3.0, requires_grad=True)
(x ** 2 + 3 * x * y + y ** 2).backward()
print(f"\nsymad autograd at (2, 3): dz/dx = {x.grad.item()}, dz/dy = {y.grad.item()}")

# and the formulas themselves, proved
print()
print(symad.check_gradient(z, {"x": "2*x + 3*y", "y": "3*x + 2*y"}))
