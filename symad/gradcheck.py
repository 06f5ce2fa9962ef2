"""``symad.autograd.gradcheck`` / ``gradgradcheck``: PyTorch's numeric gradient checks, kink-aware.

Same signatures and defaults as PyTorch. Returns True, or raises :class:`GradcheckError` (a
``RuntimeError``) whose message names the output, the input, the element index, both values
(numerical and analytical) and the errors.

Kinks: at each input element the one-sided finite differences are compared too. Where they
disagree the point is non-differentiable (relu(0), abs(0)) and the central difference means
nothing: PyTorch reports a false failure at relu(0) and silently passes a wrong backward at
abs(0). Here (``kink="move"``, the default) that element is moved off the kink by a small step to
each side and checked there; ``kink="raise"`` reports it instead; ``kink="ignore"`` is PyTorch's
behaviour.

>>> import symad
>>> x = symad.tensor([0.5, -1.0], dtype=symad.float64, requires_grad=True)
>>> symad.autograd.gradcheck(symad.sin, (x,))
True
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["gradcheck", "gradgradcheck", "GradcheckError"]


class GradcheckError(RuntimeError):
    """A gradient check failed (PyTorch's ``torch.autograd.gradcheck.GradcheckError``)."""


def _as_tuple(x) -> tuple:
    from .tensor import Tensor
    if isinstance(x, Tensor):
        return (x,)
    return tuple(x)


def _is_diff(t) -> bool:
    from .tensor import Tensor
    return isinstance(t, Tensor) and t.requires_grad and t.dtype.is_floating_point


def _flat_outputs(func, inputs) -> list[np.ndarray]:
    from .tensor import Tensor
    outs = _as_tuple(func(*inputs))
    return [np.array(o._data, dtype=np.float64).reshape(-1) for o in outs
            if isinstance(o, Tensor) and o.dtype.is_floating_point]


def _numerical_column(func, inputs, i, k, eps):
    """(central, forward, backward) differences of every output element w.r.t. element k of
    input i (each a list with one flat array per output)."""
    x = inputs[i]._data
    flat = x.reshape(-1)
    orig = flat[k].item()
    f0 = _flat_outputs(func, inputs)
    flat[k] = orig + eps
    fp = _flat_outputs(func, inputs)
    flat[k] = orig - eps
    fm = _flat_outputs(func, inputs)
    flat[k] = orig
    central = [(a - b) / (2 * eps) for a, b in zip(fp, fm)]
    fwd = [(a - b) / eps for a, b in zip(fp, f0)]
    bwd = [(a - b) / eps for a, b in zip(f0, fm)]
    return central, fwd, bwd


def _analytical(func, inputs, diff_idx) -> list[list[np.ndarray]]:
    """jac[o][i]: array (out numel, input numel) of the backward's Jacobian."""
    from .autograd import grad
    from .autograd.grad_mode import enable_grad
    from .tensor import Tensor
    with enable_grad():
        outs = _as_tuple(func(*inputs))
    diff_inputs = [inputs[i] for i in diff_idx]
    jac = []
    for o in outs:
        if not (isinstance(o, Tensor) and o.dtype.is_floating_point):
            continue
        rows = [np.zeros((o.numel(), inputs[i].numel())) for i in diff_idx]
        if o.requires_grad:
            for j in range(o.numel()):
                onehot = np.zeros(o.shape, dtype=o.dtype.np)
                onehot.reshape(-1)[j] = 1
                g_out = Tensor._wrap(onehot, o.dtype)
                with enable_grad():
                    gs = grad(o, diff_inputs, grad_outputs=g_out, retain_graph=True,
                              allow_unused=True)
                for r, g in zip(rows, gs):
                    if g is not None:
                        r[j, :] = np.asarray(g._data, dtype=np.float64).reshape(-1)
        jac.append(rows)
    return jac


def _fmt_idx(shape, k) -> str:
    return str(tuple(int(v) for v in np.unravel_index(k, shape))) if shape else "()"


class _Checker:
    def __init__(self, func, inputs, eps, atol, rtol, kink) -> None:
        self.func, self.inputs = func, inputs
        self.eps, self.atol, self.rtol, self.kink = eps, atol, rtol, kink
        self.diff_idx = [i for i, t in enumerate(inputs) if _is_diff(t)]
        self.failures: list[str] = []
        self.notes: list[str] = []

    def close(self, a, n) -> np.ndarray:
        return np.abs(a - n) <= self.atol + self.rtol * np.abs(n)

    def is_kink(self, fwd, bwd) -> bool:
        for f, b in zip(fwd, bwd):
            tol = 10 * (self.atol + self.rtol * np.maximum(np.abs(f), np.abs(b)))
            if np.any(np.abs(f - b) > tol):
                return True
        return False

    def run(self) -> None:
        jac = _analytical(self.func, self.inputs, self.diff_idx)
        for pos, i in enumerate(self.diff_idx):
            t = self.inputs[i]
            for k in range(t.numel()):
                central, fwd, bwd = _numerical_column(self.func, self.inputs, i, k, self.eps)
                if self.kink != "ignore" and self.is_kink(fwd, bwd):
                    self.handle_kink(i, pos, k, fwd, bwd)
                    continue
                self.compare(jac, pos, i, k, central, where="")

    def compare(self, jac, pos, i, k, central, where: str) -> None:
        t = self.inputs[i]
        for o, (rows, num) in enumerate(zip(jac, central)):
            ana = rows[pos][:, k]
            ok = self.close(ana, num)
            for j in np.nonzero(~ok)[0]:
                oshape = _out_shape(self.func, self.inputs, o)
                err = abs(ana[j] - num[j])
                self.failures.append(
                    f"Jacobian mismatch for output {o} with respect to input {i}: d output[{o}]"
                    f"{_fmt_idx(oshape, j)} / d input[{i}]{_fmt_idx(tuple(t.shape), k)}{where}: "
                    f"numerical {float(num[j])!r}, analytical {float(ana[j])!r}; absolute error {err:.3g}, "
                    f"relative error {err / max(abs(num[j]), 1e-300):.3g} (allowed: atol "
                    f"{self.atol} + rtol {self.rtol} * |numerical| = "
                    f"{self.atol + self.rtol * abs(num[j]):.3g})")

    def handle_kink(self, i, pos, k, fwd, bwd) -> None:
        t = self.inputs[i]
        flat = t._data.reshape(-1)
        x0 = flat[k].item()
        idx = _fmt_idx(tuple(t.shape), k)
        sides = ", ".join(f"{f[np.argmax(np.abs(f - b))]:.6g} / {b[np.argmax(np.abs(f - b))]:.6g}"
                          for f, b in zip(fwd, bwd) if f.size)
        if self.kink == "raise":
            self.failures.append(
                f"input {i} element {idx} = {x0!r} is at a non-differentiable point: the one-sided "
                f"finite differences disagree (forward / backward: {sides}); move the check "
                f"point or use kink='move'")
            return
        delta = 1e3 * self.eps * max(1.0, abs(x0))
        self.notes.append(f"input {i} element {idx} = {x0!r} is a kink (one-sided differences "
                          f"{sides}); checked at {x0!r} ± {delta:.3g} instead")
        for s in (+1.0, -1.0):
            flat[k] = x0 + s * delta
            try:
                central, fwd2, bwd2 = _numerical_column(self.func, self.inputs, i, k, self.eps)
                if self.is_kink(fwd2, bwd2):
                    self.failures.append(f"input {i} element {idx}: could not move the check "
                                         f"point off a non-differentiable point near {x0!r}")
                    continue
                jac = _analytical(self.func, self.inputs, self.diff_idx)
                self.compare(jac, pos, i, k, central,
                             where=f" (kink at {x0!r}; checked at {x0 + s * delta!r})")
            finally:
                flat[k] = x0


def _out_shape(func, inputs, o) -> tuple:
    from .autograd.grad_mode import no_grad
    from .tensor import Tensor
    with no_grad():
        outs = [x for x in _as_tuple(func(*inputs))
                if isinstance(x, Tensor) and x.dtype.is_floating_point]
    return tuple(outs[o].shape)


def gradcheck(func: Callable[..., Any], inputs, *, eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, raise_exception: bool = True, nondet_tol: float = 0.0,
              check_undefined_grad: bool = True, check_grad_dtypes: bool = False,
              check_batched_grad: bool = False, check_batched_forward_grad: bool = False,
              check_forward_ad: bool = False, check_backward_ad: bool = True,
              fast_mode: bool = False, masked: bool | None = None,
              kink: str = "move") -> bool:
    """Check the backward of ``func`` against central finite differences (PyTorch's API).

    ``kink`` (symad): ``"move"`` (default) re-checks an input element that sits on a
    non-differentiable point at small steps to either side; ``"raise"`` reports it;
    ``"ignore"`` behaves like PyTorch.
    """
    if kink not in ("move", "raise", "ignore"):
        raise ValueError(f"kink must be 'move', 'raise' or 'ignore', not {kink!r}")
    inputs = _as_tuple(inputs)
    diff = [i for i, t in enumerate(inputs) if _is_diff(t)]
    if not diff:
        raise ValueError("gradcheck expects at least one input tensor to require gradient, but "
                         "none of the them have requires_grad=True.")
    for i in diff:
        if inputs[i].dtype.name != "float64":
            warnings.warn(f"Input #{i} requires gradient and is not a double precision floating "
                          "point or complex. This check will likely fail if all the inputs are "
                          "not of double precision floating point or complex.", UserWarning,
                          stacklevel=2)
    if not check_backward_ad:
        return True
    checker = _Checker(func, inputs, eps, atol, rtol, kink)
    checker.run()
    if checker.failures:
        shown = checker.failures[:10]
        more = len(checker.failures) - len(shown)
        msg = "\n".join(shown) + (f"\n... and {more} more mismatches" if more > 0 else "")
        if checker.notes:
            msg += "\nnotes:\n" + "\n".join(checker.notes)
        if raise_exception:
            raise GradcheckError(msg)
        return False
    return True


def gradgradcheck(func: Callable[..., Any], inputs, grad_outputs: Sequence | None = None, *,
                  eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  gen_non_contig_grad_outputs: bool = False, raise_exception: bool = True,
                  nondet_tol: float = 0.0, check_undefined_grad: bool = True,
                  check_grad_dtypes: bool = False, check_batched_grad: bool = False,
                  check_fwd_over_rev: bool = False, check_rev_over_rev: bool = True,
                  fast_mode: bool = False, masked: bool = False, kink: str = "move") -> bool:
    """Check second derivatives: ``gradcheck`` of the function ``(inputs, grad_outputs) ->
    autograd.grad(func(inputs), inputs, grad_outputs, create_graph=True)``."""
    from .autograd import grad
    from .autograd.grad_mode import enable_grad, no_grad
    from .tensor import Tensor
    inputs = _as_tuple(inputs)
    n = len(inputs)
    with no_grad():
        outs = [o for o in _as_tuple(func(*inputs))
                if isinstance(o, Tensor) and o.dtype.is_floating_point]
    if grad_outputs is None:
        rng = np.random.default_rng(0)
        grad_outputs = tuple(Tensor._wrap(rng.standard_normal(tuple(o.shape)).astype(o.dtype.np),
                                          o.dtype).requires_grad_(True) for o in outs)
    grad_outputs = _as_tuple(grad_outputs)

    def new_func(*args):
        inps, gos = args[:n], args[n:]
        with enable_grad():
            o = [x for x in _as_tuple(func(*inps))
                 if isinstance(x, Tensor) and x.dtype.is_floating_point]
            pairs = [(x, g) for x, g in zip(o, gos) if x.requires_grad]
            diff_in = [x for x in inps if _is_diff(x)]
            if not pairs:
                return tuple()
            gs = grad([p[0] for p in pairs], diff_in, [p[1] for p in pairs], create_graph=True,
                      allow_unused=True)
        return tuple(g for g in gs if g is not None)

    return gradcheck(new_func, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, nondet_tol=nondet_tol,
                     check_undefined_grad=check_undefined_grad, fast_mode=fast_mode, kink=kink)
