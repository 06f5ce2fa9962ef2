"""The structured dense path: ``Sequential(Linear, act, ..., Linear) + loss`` at real size.

Scalarizing a 64x32 matmul gives 2048 SymPy terms per sample; here the matmuls stay matmuls
(numpy -> BLAS, on contiguous or transposed-contiguous operands) and only the elementwise parts go
through SymPy and codegen:

* per activation chain (``ReLU``, ``Tanh``, ``Sigmoid``, compositions of them), one kernel over
  ``rows x features`` elements computing the activation AND its exact derivative (SymPy formulas
  of the op registry, derivative by reverse mode) in one pass;
* the loss (``MSELoss`` or ``CrossEntropyLoss`` with class indices, ``mean`` or ``sum``), one
  kernel over the rows: the per-row loss, summed, and its exact gradient w.r.t. the last layer's
  outputs (softmax cross-entropy: ``m + log(sum exp(z - m)) - sum t z`` with ``m = max z`` held
  constant while differentiating — its derivative is identically zero — then substituted);
* backward: ``dW = dZ @ A_prev.T``, ``db = dZ.sum(1)``, ``dA_prev = W.T @ dZ``, times the saved
  activation derivative.

Activations are kept feature-major (``(features, rows)``, C-contiguous) so each feature is one
contiguous column for the codegen kernels and the input batch ``X`` (rows, features) enters the
first matmul as the transposed view ``X.T`` (no copy).
"""
from __future__ import annotations

import time

import numpy as np
import sympy

from ..nn import containers, layers, loss as nnloss
from ..ops.registry import REGISTRY
from ..symbolic.reverse import reverse_gradient
from .program import NotCompilable

_ACT = {layers.ReLU: "relu", layers.Tanh: "tanh", layers.Sigmoid: "sigmoid"}
_SKIP = (layers.Identity,)


def _activation_chain(names: list[str]) -> tuple[sympy.Symbol, sympy.Expr, sympy.Expr]:
    """(x, f(x), f'(x)) of the composition of registered elementwise ops ``names``."""
    x = sympy.Symbol("x", real=True)
    e = x
    for n in names:
        e = REGISTRY[n].formula(e)
    (d,) = reverse_gradient(e, [x])
    return x, e, d


def plan_dense(model, loss_fn) -> tuple[list, str, str] | str:
    """``(layers, loss_kind, reduction)`` if the pair fits the dense path, else the reason why not.

    ``layers``: list of ``(linear_module, [activation op names])``.
    """
    if not isinstance(model, containers.Sequential):
        return f"the model is a {type(model).__name__}, not an nn.Sequential"
    plan: list = []
    for m in model.children():
        if type(m) is layers.Linear:
            plan.append((m, []))
        elif type(m) in _ACT:
            if not plan:
                return "the Sequential does not start with nn.Linear"
            plan[-1][1].append(_ACT[type(m)])
        elif isinstance(m, _SKIP):
            continue
        else:
            return f"the Sequential holds a {type(m).__name__} (supported: Linear, ReLU, Tanh, " \
                   "Sigmoid, Identity)"
    if not plan:
        return "the Sequential has no nn.Linear"
    if type(loss_fn) is nnloss.MSELoss:
        kind = "mse"
    elif type(loss_fn) is nnloss.CrossEntropyLoss:
        kind = "ce"
    else:
        return f"the loss is {type(loss_fn).__name__} (supported: MSELoss, CrossEntropyLoss)"
    if loss_fn.reduction not in ("mean", "sum"):
        return f"the loss reduction is {loss_fn.reduction!r} (supported: mean, sum)"
    return plan, kind, loss_fn.reduction


class DenseProgram:
    """Loss and exact gradients of a dense network: BLAS matmuls + fused codegen kernels.

    Build with :meth:`build`; call :meth:`loss_and_grad` with a feature-major target.
    """

    def __init__(self, plan, kind: str, reduction: str, dtype, threads=None) -> None:
        self.plan = plan
        self.kind = kind
        self.reduction = reduction
        self.dtype = dtype
        self.np_dtype = dtype.np
        self.threads = threads
        self.linears = [lin for lin, _ in plan]
        self.n_out = self.linears[-1].out_features
        self.timings: dict[str, float] = {}
        self._act_kernels: dict[tuple, object] = {}
        self._buffers: dict[int, dict] = {}
        self._build_kernels()

    @property
    def params(self) -> list:
        """The trained tensors, layer by layer (weight, bias)."""
        out = []
        for lin in self.linears:
            out.append(lin.weight)
            if lin.bias is not None:
                out.append(lin.bias)
        return out

    # -- kernels ------------------------------------------------------------------------------
    def _compile(self, inputs, outputs, batched, reduce, name):
        from codegen import compile_kernel
        t0 = time.perf_counter()
        k = compile_kernel(inputs, outputs, batched=batched, reduce=reduce,
                           dtype=self.dtype.name, threads=self.threads, name=name)
        self.timings[f"lower+jit {name}"] = time.perf_counter() - t0
        return k

    def _build_kernels(self) -> None:
        t0 = time.perf_counter()
        for _, acts in self.plan:
            key = tuple(acts)
            if acts and key not in self._act_kernels:
                x, f, d = _activation_chain(acts)
                self._act_kernels[key] = self._compile(
                    [x], [f, d], [x], ["none", "none"], "symad_dense_" + "_".join(acts))
        c = self.n_out
        z = [sympy.Symbol(f"z_{k}", real=True) for k in range(c)]
        t = [sympy.Symbol(f"t_{k}", real=True) for k in range(c)]
        s = sympy.Symbol("scale", real=True)
        last_acts = self.plan[-1][1]
        # the last layer's activation (if any) fuses into the loss kernel: z are pre-activations
        a = z
        if last_acts:
            x, f, _ = _activation_chain(last_acts)
            a = [f.xreplace({x: zk}) for zk in z]
        if self.kind == "mse":
            q = sympy.Add(*[(ak - tk) ** 2 for ak, tk in zip(a, t)])
            grads = reverse_gradient(q, z)
        else:
            m = sympy.Symbol("m", real=True)  # max(a): a constant for the derivative (d/dm == 0)
            q = m + sympy.log(sympy.Add(*[sympy.exp(ak - m) for ak in a])) \
                - sympy.Add(*[tk * ak for tk, ak in zip(t, a)])
            grads = reverse_gradient(q, z)
            mx = sympy.Max(*a) if c > 1 else a[0]
            q, grads = q.xreplace({m: mx}), [g.xreplace({m: mx}) for g in grads]
        self.timings["derive"] = time.perf_counter() - t0
        self._loss_kernel = self._compile(z + t + [s], [q] + [s * g for g in grads], z + t,
                                          ["sum"] + ["none"] * c, f"symad_dense_{self.kind}")

    # -- data layout --------------------------------------------------------------------------
    def targets_T(self, y: np.ndarray) -> np.ndarray:
        """Targets as a feature-major ``(n_out, rows)`` array (one-hot for class indices)."""
        n = y.shape[0]
        if self.kind == "ce":
            yi = np.asarray(y)
            if yi.dtype.kind not in "iu" or yi.ndim != 1:
                raise NotCompilable("the structured cross-entropy takes 1-d class indices")
            if n and (yi.min() < 0 or yi.max() >= self.n_out):
                raise IndexError(f"Target out of bounds: classes are 0..{self.n_out - 1}")
            T = np.zeros((self.n_out, n), self.np_dtype)
            T[yi, np.arange(n)] = 1
            return T
        yf = np.asarray(y, self.np_dtype).reshape(n, -1)
        if yf.shape[1] != self.n_out:
            raise NotCompilable(f"MSE target has {yf.shape[1]} columns, the model "
                                f"{self.n_out} outputs")
        return np.ascontiguousarray(yf.T)

    def _bufs(self, n: int) -> dict:
        b = self._buffers.get(n)
        if b is None:
            dt = self.np_dtype
            b = {"Z": [np.empty((lin.out_features, n), dt) for lin in self.linears],
                 "A": [np.empty((lin.out_features, n), dt) if acts else None
                       for lin, acts in self.plan],
                 "D": [np.empty((lin.out_features, n), dt) if acts else None
                       for lin, acts in self.plan],
                 "dZ": [np.empty((lin.out_features, n), dt) for lin in self.linears]}
            self._buffers[n] = b
        return b

    # -- one evaluation -----------------------------------------------------------------------
    def loss_and_grad(self, X: np.ndarray, T: np.ndarray, W: list, B: list, gW: list,
                      gB: list) -> float:
        """Mean/sum loss of rows ``X`` (rows, in), writing gradients into ``gW``/``gB``.

        ``T``: feature-major targets whose rows are contiguous (e.g. a column slice of
        :meth:`targets_T`); ``W``/``B``: the weight/bias arrays (None for no bias).
        """
        n = X.shape[0]
        bufs = self._bufs(n)
        Z, A, Dv, dZ = bufs["Z"], bufs["A"], bufs["D"], bufs["dZ"]
        nl = len(self.plan)
        a = X.T
        for l in range(nl):
            z = Z[l]
            np.matmul(W[l], a, out=z)
            if B[l] is not None:
                z += B[l][:, None]
            acts = self.plan[l][1]
            if acts and l < nl - 1:
                self._act_kernels[tuple(acts)].call_arrays(
                    [z.reshape(-1)], out=[A[l].reshape(-1), Dv[l].reshape(-1)])
                a = A[l]
            else:
                a = z
        zl = Z[nl - 1]
        c = self.n_out
        if self.reduction == "mean":
            scale = 1.0 / (n * c) if self.kind == "mse" else 1.0 / n
        else:
            scale = 1.0
        g = dZ[nl - 1]
        outs = self._loss_kernel.call_arrays([*zl, *T, scale], out=[None, *g])
        loss = float(outs[0]) * scale
        for l in range(nl - 1, -1, -1):
            prev = X if l == 0 else (A[l - 1] if A[l - 1] is not None else Z[l - 1]).T
            np.matmul(g, prev, out=gW[l])
            if gB[l] is not None:
                np.sum(g, axis=1, out=gB[l])
            if l > 0:
                gp = dZ[l - 1]
                if W[l].shape[0] == 1:  # an outer product: numpy's matmul is slow for it
                    np.multiply(W[l].T, g, out=gp)
                else:
                    np.matmul(W[l].T, g, out=gp)
                if Dv[l - 1] is not None:
                    np.multiply(gp, Dv[l - 1], out=gp)
                g = gp
        return loss
