"""OpInfo-style table: one row per registered op drives forward, backward, broadcasting, dtype,
second-derivative and fast-path tests. A new op without a row fails ``test_every_op_has_a_row``.

Oracles: numpy references (forward), float64 central finite differences of those references
(backward), sympy.lambdify of each op's formula (fast paths), hand-computed kink values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
import sympy

import symad
import symad.linalg
from symad.ops.dispatch import apply
from symad.ops.registry import REGISTRY, sigmoid

R = REGISTRY
EPS = 1e-6


def _apply(name):
    return lambda *ts, **params: apply(R[name], *ts, **params)


@dataclass
class Sample:
    arrays: list  # numpy inputs (float64 unless the op takes ints/bools)
    kwargs: dict = field(default_factory=dict)
    diff: tuple | None = None  # indices of differentiable inputs (default: all float inputs)

    def __post_init__(self):
        self.arrays = [np.asarray(a) for a in self.arrays]


@dataclass
class Row:
    op: str
    call: Callable  # (*tensors, **kwargs) -> Tensor, via the public API where there is one
    ref: Callable  # (*arrays, **kwargs) -> ndarray
    samples: Callable[[np.random.Generator], list]
    differentiable: bool = True
    fd_ref: Callable | None = None  # a smooth stand-in for ref in finite differences
    int_dtype: object = None  # result dtype for int64 inputs (elementwise rows), None: skip


def U(rng, shape, lo=-2.0, hi=2.0):
    return np.asarray(rng.uniform(lo, hi, shape))


def AWAY(rng, shape, lo=0.2, hi=2.0):
    """Values bounded away from 0 (kinks of relu/abs/sign), random sign."""
    return np.asarray(rng.uniform(lo, hi, shape) * rng.choice([-1.0, 1.0], shape))


def POS(rng, shape, lo=0.3, hi=2.0):
    return np.asarray(rng.uniform(lo, hi, shape))


def unary(dom=U, shapes=((3,), (2, 3), ())):
    return lambda rng: [Sample([dom(rng, s)]) for s in shapes]


def binary(da=U, db=U, shapes=(((3,), (3,)), ((2, 3), (2, 3)), ((3, 1), (1, 4)), ((), (2, 2)))):
    return lambda rng: [Sample([da(rng, a), db(rng, b)]) for a, b in shapes]


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _clamp_ref(x, min=None, max=None):
    return np.clip(x, -np.inf if min is None else min, np.inf if max is None else max)


def _clamp_samples(rng):
    x = np.array([-1.7, -0.6, 0.1, 0.9, 1.6])  # away from the edges -0.5 / 1.2
    return [Sample([x], {"min": -0.5, "max": 1.2}), Sample([x], {"min": -0.5}),
            Sample([x], {"max": 1.2})]


def _no_tie_maxmin(rng):
    a = U(rng, (2, 3))
    return [Sample([a, a + AWAY(rng, (2, 3))]), Sample([U(rng, (3, 1)), U(rng, (1, 4)) + 0.013])]


def _logsumexp_ref(x, dim, keepdim=False):
    m = np.max(x, axis=dim, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=dim, keepdims=True)) + m
    return out if keepdim else np.squeeze(out, axis=dim)


def _softmax_ref(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def _nll_ref(logp, target, reduction="mean"):
    v = -logp[np.arange(logp.shape[0]), target]
    return {"mean": v.mean(), "sum": v.sum(), "none": v}[reduction]


def _bce_ref(x, y, reduction="mean"):
    v = -(y * np.log(x) + (1 - y) * np.log(1 - x))
    return {"mean": v.mean(), "sum": v.sum(), "none": v}[reduction]


def _bcel_ref(x, y, reduction="mean"):
    v = -(y * np.log(_sigmoid(x)) + (1 - y) * np.log(1 - _sigmoid(x)))
    return {"mean": v.mean(), "sum": v.sum(), "none": v}[reduction]


def _mse_ref(x, y, reduction="mean"):
    v = (x - y) ** 2
    return {"mean": v.mean(), "sum": v.sum(), "none": v}[reduction]


def _red_samples(extra=()):
    def gen(rng):
        x = AWAY(rng, (2, 3, 4))
        out = [Sample([x], {}), Sample([x], {"dim": 1}), Sample([x], {"dim": -1, "keepdim": True}),
               Sample([x], {"dim": (0, 2)})]
        return out + [Sample([x], k) for k in extra]
    return gen


def _losses(ref_rows):
    def gen(rng):
        x, y = ref_rows(rng)
        return [Sample([x, y], {"reduction": r}) for r in ("mean", "sum", "none")]
    return gen


def _getitem_samples(rng):
    x = U(rng, (3, 4))
    keys = [1, (slice(None), 2), (slice(0, 2), slice(1, None)), np.array([2, 0, 2]),
            (np.array([0, 2]), np.array([1, 3])), x > 0.3, (None, Ellipsis)]
    return [Sample([x], {"key": k}) for k in keys]


def _index_put_ref(x, v, key):
    out = x.copy()
    out[key] = v
    return out


def _index_scatter_ref(g, key, shape):
    out = np.zeros(shape)
    np.add.at(out, key, g)
    return out


def _fill_zero_ref(g, key):
    out = g.copy()
    out[key] = 0
    return out


def _where_samples(rng):
    c = np.array([[True, False, True], [False, False, True]])
    return [Sample([c, U(rng, (2, 3)), U(rng, (2, 3))], diff=(1, 2)),
            Sample([c[0], U(rng, (2, 1)), U(rng, ())], diff=(1, 2))]


ROWS: dict[str, Row] = {}


def row(r: Row) -> None:
    assert r.op not in ROWS, r.op
    ROWS[r.op] = r


# -- elementwise unary ------------------------------------------------------------------------
for _name, _ref, _dom, _intdt in [
    ("exp", np.exp, U, symad.float32), ("log", np.log, POS, symad.float32),
    ("sqrt", np.sqrt, POS, symad.float32), ("sin", np.sin, U, symad.float32),
    ("cos", np.cos, U, symad.float32), ("tan", np.tan, lambda r, s: U(r, s, -1.2, 1.2),
                                       symad.float32),
    ("tanh", np.tanh, U, symad.float32), ("sinh", np.sinh, U, symad.float32),
    ("cosh", np.cosh, U, symad.float32), ("atan", np.arctan, U, symad.float32),
    ("asin", np.arcsin, lambda r, s: U(r, s, -0.9, 0.9), symad.float32),
    ("acos", np.arccos, lambda r, s: U(r, s, -0.9, 0.9), symad.float32),
    ("log1p", np.log1p, lambda r, s: U(r, s, -0.7, 2.0), symad.float32),
    ("expm1", np.expm1, U, symad.float32), ("reciprocal", np.reciprocal, AWAY, symad.float32),
    ("sigmoid", _sigmoid, U, symad.float32), ("abs", np.abs, AWAY, symad.int64),
    ("sign", np.sign, AWAY, symad.int64), ("relu", lambda x: np.maximum(x, 0), AWAY, symad.int64),
    ("neg", np.negative, U, symad.int64),
]:
    row(Row(_name, getattr(symad, _name), _ref, unary(_dom), int_dtype=_intdt))

# -- elementwise binary -----------------------------------------------------------------------
row(Row("add", lambda a, b: a + b, np.add, binary(), int_dtype=symad.int64))
row(Row("sub", lambda a, b: a - b, np.subtract, binary(), int_dtype=symad.int64))
row(Row("rsub", _apply("rsub"), lambda a, b: b - a, binary(), int_dtype=symad.int64))
row(Row("mul", lambda a, b: a * b, np.multiply, binary(), int_dtype=symad.int64))
row(Row("div", lambda a, b: a / b, np.divide, binary(db=AWAY), int_dtype=symad.float32))
row(Row("pow", lambda a, b: a ** b, np.power, binary(da=POS), int_dtype=symad.int64))
row(Row("maximum", symad.maximum, np.maximum, _no_tie_maxmin, int_dtype=symad.int64))
row(Row("minimum", symad.minimum, np.minimum, _no_tie_maxmin, int_dtype=symad.int64))
row(Row("pow_scalar", lambda x, exponent: x ** exponent, lambda x, exponent: x ** exponent,
        lambda rng: [Sample([POS(rng, (3,))], {"exponent": e}) for e in (2, 3.5, -1.5, 0.5)]))
row(Row("clamp", lambda x, **k: symad.clamp(x, **k), _clamp_ref, _clamp_samples))
row(Row("clamp_min", symad.clamp_min, lambda x, min: np.maximum(x, min),
        lambda rng: [s for s in _clamp_samples(rng) if list(s.kwargs) == ["min"]]))
row(Row("clamp_max", symad.clamp_max, lambda x, max: np.minimum(x, max),
        lambda rng: [s for s in _clamp_samples(rng) if list(s.kwargs) == ["max"]]))

# -- comparisons and other non-differentiable ops ---------------------------------------------
for _name, _np in [("eq", np.equal), ("ne", np.not_equal), ("lt", np.less), ("le", np.less_equal),
                   ("gt", np.greater), ("ge", np.greater_equal)]:
    row(Row(_name, getattr(symad, _name), _np,
            lambda rng: [Sample([np.array([1., 2., 3.]), np.array([2., 2., 2.])]),
                         Sample([U(rng, (3, 1)), U(rng, (1, 4))])], differentiable=False))
_bools = lambda rng: [Sample([np.array([True, True, False, False]),  # noqa: E731
                              np.array([True, False, True, False])])]
row(Row("logical_and", symad.logical_and, np.logical_and, _bools, differentiable=False))
row(Row("logical_or", symad.logical_or, np.logical_or, _bools, differentiable=False))
row(Row("one_hot", symad.nn.functional.one_hot,
        lambda t, num_classes=-1: np.eye(num_classes if num_classes > 0 else t.max() + 1,
                                         dtype=np.int64)[t],
        lambda rng: [Sample([np.array([0, 3, 1])], {"num_classes": 5}),
                     Sample([np.array([[2, 0], [1, 1]])])], differentiable=False))
row(Row("logical_not", symad.logical_not, np.logical_not,
        lambda rng: [Sample([np.array([True, False])])], differentiable=False))
row(Row("floor", symad.floor, np.floor, unary(lambda r, s: U(r, s) + 0.013)))  # zero gradient
row(Row("floor_divide", lambda a, b: a // b, np.floor_divide,
        binary(db=AWAY), differentiable=False))
row(Row("remainder", lambda a, b: a % b, np.remainder,
        lambda rng: [Sample([np.array([2.3, -1.7, 5.2]), np.array([1.5, 0.9, -2.1])])]))
row(Row("where", symad.where, np.where, _where_samples))
row(Row("fill", lambda x, **k: apply(R["fill"], x, **k), lambda x, value, kind=None:
        np.full_like(x, value), lambda rng: [Sample([U(rng, (2, 3))], {"value": 2.5})]))

# -- structured ops ---------------------------------------------------------------------------
def _well_conditioned(rng, shape):
    """Square matrices near 2·I (det and inverse away from singularity)."""
    return 2 * np.broadcast_to(np.eye(shape[-1]), shape) + U(rng, shape, -0.4, 0.4)


row(Row("det", symad.linalg.det, np.linalg.det, lambda rng: [
    Sample([_well_conditioned(rng, (3, 3))]), Sample([_well_conditioned(rng, (2, 2, 2))])]))
row(Row("inverse", symad.linalg.inv, np.linalg.inv, lambda rng: [
    Sample([_well_conditioned(rng, (3, 3))]), Sample([_well_conditioned(rng, (2, 2, 2))])]))
row(Row("matrix_trace", symad.linalg.matrix_trace, np.trace, lambda rng: [
    Sample([U(rng, (3, 3))]), Sample([U(rng, (2, 4))])]))
row(Row("matmul", symad.matmul, np.matmul, lambda rng: [
    Sample([U(rng, (3,)), U(rng, (3,))]), Sample([U(rng, (2, 3)), U(rng, (3,))]),
    Sample([U(rng, (3,)), U(rng, (3, 2))]), Sample([U(rng, (2, 3)), U(rng, (3, 4))]),
    Sample([U(rng, (2, 2, 3)), U(rng, (3, 4))]), Sample([U(rng, (2, 2, 3)), U(rng, (2, 3, 1))])]))
row(Row("mse_loss", lambda x, y, **k: apply(R["mse_loss"], x, y, **k), _mse_ref,
        _losses(lambda rng: (U(rng, (2, 3)), U(rng, (2, 3))))))
row(Row("binary_cross_entropy", lambda x, y, **k: apply(R["binary_cross_entropy"], x, y, **k),
        _bce_ref, _losses(lambda rng: (U(rng, (4,), 0.1, 0.9), U(rng, (4,), 0.0, 1.0)))))
row(Row("binary_cross_entropy_with_logits",
        lambda x, y, **k: apply(R["binary_cross_entropy_with_logits"], x, y, **k), _bcel_ref,
        _losses(lambda rng: (U(rng, (2, 3), -3, 3), U(rng, (2, 3), 0.0, 1.0)))))
row(Row("nll_loss", lambda x, t, **k: apply(R["nll_loss"], x, t, **k), _nll_ref,
        lambda rng: [Sample([U(rng, (3, 4)), np.array([0, 3, 1])], {"reduction": r}, diff=(0,))
                     for r in ("mean", "sum", "none")]))


def _np_sum(x, dim=None, keepdim=False):
    return np.sum(x, axis=dim, keepdims=keepdim)


row(Row("sum", symad.sum, _np_sum, _red_samples()))
row(Row("mean", symad.mean, lambda x, dim=None, keepdim=False: np.mean(x, axis=dim,
                                                                        keepdims=keepdim),
        _red_samples()))
row(Row("prod", symad.prod, lambda x, dim=None, keepdim=False: np.prod(x, axis=dim,
                                                                        keepdims=keepdim),
        lambda rng: [Sample([AWAY(rng, (2, 3))]), Sample([AWAY(rng, (2, 3))], {"dim": 1}),
                     Sample([np.array([[2., 0., 3.], [0., 0., 1.]])], {"dim": 1}),
                     Sample([np.array([2., 0., 3.])])]))
row(Row("amax", symad.amax, lambda x, dim=None, keepdim=False: np.amax(x, axis=dim,
                                                                        keepdims=keepdim),
        _red_samples()))
row(Row("amin", symad.amin, lambda x, dim=None, keepdim=False: np.amin(x, axis=dim,
                                                                        keepdims=keepdim),
        _red_samples()))
row(Row("max_dim", lambda x, dim, keepdim=False, largest=True:
        (symad.max if largest else symad.min)(x, dim, keepdim).values,
        lambda x, dim, keepdim=False, largest=True: (np.max if largest else np.min)(
            x, axis=dim, keepdims=keepdim),
        lambda rng: [Sample([U(rng, (3, 4))], {"dim": d, "keepdim": k, "largest": lg})
                     for d, k, lg in [(0, False, True), (1, True, True), (-1, False, False)]]))
row(Row("norm2", lambda x, dim=None, keepdim=False: symad.norm(x, dim=dim, keepdim=keepdim),
        lambda x, dim=None, keepdim=False: np.sqrt(np.sum(x * x, axis=dim, keepdims=keepdim)),
        _red_samples()))
row(Row("logsumexp", symad.logsumexp, _logsumexp_ref,
        lambda rng: [Sample([U(rng, (2, 3, 4))], {"dim": d, "keepdim": k})
                     for d, k in [(0, False), (-1, True), ((0, 2), False)]]))
row(Row("softmax", symad.softmax, _softmax_ref,
        lambda rng: [Sample([U(rng, (2, 3))], {"dim": d}) for d in (0, 1)]))
row(Row("log_softmax", symad.log_softmax, lambda x, dim: np.log(_softmax_ref(x, dim)),
        lambda rng: [Sample([U(rng, (2, 3))], {"dim": d}) for d in (0, 1)]))
row(Row("reshape", lambda x, shape: x.reshape(*shape), lambda x, shape: np.reshape(x, shape),
        lambda rng: [Sample([U(rng, (2, 3))], {"shape": (3, 2)}),
                     Sample([U(rng, (2, 3))], {"shape": (6,)})]))
row(Row("permute", lambda x, dims: x.permute(*dims), lambda x, dims: np.transpose(x, dims),
        lambda rng: [Sample([U(rng, (2, 3, 4))], {"dims": (2, 0, 1)})]))
row(Row("expand", lambda x, shape: x.expand(*shape), lambda x, shape: np.broadcast_to(x, shape),
        lambda rng: [Sample([U(rng, (3, 1))], {"shape": (2, 3, 4)})]))
row(Row("sum_to_size", lambda x, shape: x.sum_to_size(*shape),
        lambda x, shape: np.sum(x, axis=(0, 2), keepdims=True)[0],
        lambda rng: [Sample([U(rng, (2, 3, 4))], {"shape": (3, 1)})]))
row(Row("getitem", lambda x, key: x[key], lambda x, key: x[key], _getitem_samples))
row(Row("index_scatter", lambda g, **k: apply(R["index_scatter"], g, **k), _index_scatter_ref,
        lambda rng: [Sample([U(rng, (3,))], {"key": (np.array([0, 2, 0]),), "shape": (4,)}),
                     Sample([U(rng, (2,))], {"key": (slice(1, 3),), "shape": (4,)})]))
row(Row("index_put", lambda x, v, key: apply(R["index_put"], x, v, key=key), _index_put_ref,
        lambda rng: [Sample([U(rng, (4,)), U(rng, (2,))], {"key": np.array([1, 3])}),
                     Sample([U(rng, (2, 3)), U(rng, ())], {"key": (0, slice(None))})]))
row(Row("index_fill_zero", lambda g, key: apply(R["index_fill_zero"], g, key=key),
        _fill_zero_ref, lambda rng: [Sample([U(rng, (2, 3))], {"key": (slice(None), 1)})]))
row(Row("cat", lambda *xs, dim=0: symad.cat(list(xs), dim),
        lambda *xs, dim=0: np.concatenate(xs, axis=dim),
        lambda rng: [Sample([U(rng, (2, 3)), U(rng, (1, 3))]),
                     Sample([U(rng, (2, 1)), U(rng, (2, 2))], {"dim": 1})]))
row(Row("stack", lambda *xs, dim=0: symad.stack(list(xs), dim),
        lambda *xs, dim=0: np.stack(xs, axis=dim),
        lambda rng: [Sample([U(rng, (2, 3)), U(rng, (2, 3))], {"dim": d}) for d in (0, 2)]))
row(Row("clone", symad.clone, np.copy, unary()))
row(Row("to_dtype", lambda x, dtype: x.to(dtype), lambda x, dtype: x.astype(dtype.np),
        lambda rng: [Sample([U(rng, (3,))], {"dtype": symad.float32})],
        fd_ref=lambda x, dtype: x))  # the cast's rounding is not part of its derivative

# -- smooth L1 / Huber losses (issue 17): numpy references of PyTorch's documented formulas ----
def _smooth_l1_ref(x, y, reduction="mean", k=1.0):
    z = np.abs(x - y)
    v = z if k == 0 else np.where(z < k, 0.5 * z * z / (k or 1), z - 0.5 * k)
    return {"mean": v.mean(), "sum": v.sum(), "none": v}[reduction]


def _huber_ref(x, y, reduction="mean", k=1.0):
    z = np.abs(x - y)
    v = np.where(z < k, 0.5 * z * z, k * (z - 0.5 * k))
    return {"mean": v.mean(), "sum": v.sum(), "none": v}[reduction]


def _piecewise_loss_samples(ks):
    def gen(rng):
        x = U(rng, (2, 5), -3, 3)
        y = U(rng, (2, 5), -1, 1)
        # keep |x - y| away from the threshold (the kink of the derivative's derivative) and 0
        d = x - y
        for k in ks:
            d = np.where(np.abs(np.abs(d) - k) < 0.05, d + 0.2, d)
        x = y + np.where(np.abs(d) < 0.05, 0.3, d)
        return [Sample([x, y], {"reduction": r, "k": k}) for r in ("mean", "sum", "none")
                for k in ks] + [Sample([x[0], y[:1, :]], {"reduction": "mean", "k": ks[0]})]
    return gen


row(Row("smooth_l1_loss", lambda x, y, reduction, k: symad.nn.functional.smooth_l1_loss(
    x, y, reduction=reduction, beta=k) if x.shape == y.shape else apply(
    R["smooth_l1_loss"], x, y, reduction=reduction, k=k), _smooth_l1_ref,
    _piecewise_loss_samples((1.0, 0.5, 0.0))))
row(Row("huber_loss", lambda x, y, reduction, k: symad.nn.functional.huber_loss(
    x, y, reduction=reduction, delta=k) if x.shape == y.shape else apply(
    R["huber_loss"], x, y, reduction=reduction, k=k), _huber_ref,
    _piecewise_loss_samples((1.0, 1.7))))

# -- rounding, cumsum, triangles, gather (issue 17) ---------------------------------------------
_OFF_TIES = lambda rng: [Sample([U(rng, (3,)) * 3 + 0.013]),  # noqa: E731  (away from jumps)
                         Sample([U(rng, (2, 3)) * 3 + 0.013])]
row(Row("round", lambda x, decimals=0: symad.round(x, decimals=decimals),
        lambda x, decimals=0: np.round(x, decimals),
        lambda rng: _OFF_TIES(rng) + [Sample([np.array([0.5, 1.5, 2.5, -0.5, -1.5, 0.25])]),
                                      Sample([U(rng, (3,)) * 3 + 0.0013], {"decimals": 2})],
        fd_ref=lambda x, decimals=0: 0 * x))  # PyTorch's zero gradient, also at the ties
row(Row("ceil", symad.ceil, np.ceil, _OFF_TIES))
row(Row("trunc", symad.trunc, np.trunc, _OFF_TIES))
row(Row("cumsum", lambda x, dim: symad.cumsum(x, dim), lambda x, dim: np.cumsum(x, axis=dim),
        lambda rng: [Sample([U(rng, (5,))], {"dim": 0}), Sample([U(rng, (2, 3, 4))], {"dim": 1}),
                     Sample([U(rng, (2, 3))], {"dim": -1})]))
row(Row("tril", lambda x, diagonal=0: symad.tril(x, diagonal), lambda x, diagonal=0:
        np.tril(x, diagonal), lambda rng: [Sample([U(rng, (3, 4))]),
                                           Sample([U(rng, (2, 3, 3))], {"diagonal": -1}),
                                           Sample([U(rng, (4, 2))], {"diagonal": 1})]))
row(Row("triu", lambda x, diagonal=0: symad.triu(x, diagonal), lambda x, diagonal=0:
        np.triu(x, diagonal), lambda rng: [Sample([U(rng, (3, 4))]),
                                           Sample([U(rng, (2, 3, 3))], {"diagonal": 1}),
                                           Sample([U(rng, (4, 2))], {"diagonal": -2})]))
def _gather_ref(x, index, dim):
    out = np.empty(index.shape, dtype=x.dtype)
    for p in np.ndindex(index.shape):
        q = list(p)
        q[dim] = index[p]
        out[p] = x[tuple(q)]
    return out


row(Row("gather", lambda x, i, dim: symad.gather(x, dim, i), _gather_ref,
        lambda rng: [Sample([U(rng, (3, 4)), np.array([[0, 0, 3], [1, 2, 1], [3, 3, 3]])],
                            {"dim": 1}),  # repeated indices: their gradients add up
                     Sample([U(rng, (3, 2)), np.array([[2, 0], [0, 0]])], {"dim": 0}),
                     Sample([U(rng, (2, 3, 2)), np.array([[[1], [0]]])], {"dim": 2})]))

def _scatter_ref(add):
    def ref(x, index, src, dim):
        out = x.copy()
        for p in np.ndindex(index.shape):
            q = list(p)
            q[dim] = index[p]
            if add:
                out[tuple(q)] += src[p]
            else:
                out[tuple(q)] = src[p]
        return out
    return ref


def _scatter_samples(unique):
    def gen(rng):
        # scatter: no position written twice (PyTorch leaves the winner unspecified)
        i1 = np.array([[2, 0, 1], [0, 1, 2]]) if unique else np.array([[2, 0, 2], [2, 2, 0]])
        return [Sample([U(rng, (2, 3)), i1, U(rng, (2, 3))], {"dim": 1}, diff=(0, 2)),
                Sample([U(rng, (3, 2)), np.array([[1, 0]]), U(rng, (2, 3))], {"dim": 0},
                       diff=(0, 2))]
    return gen


row(Row("scatter", lambda x, i, src, dim: symad.scatter(x, dim, i, src), _scatter_ref(False),
        _scatter_samples(True)))
row(Row("scatter_add", lambda x, i, src, dim: symad.scatter_add(x, dim, i, src),
        _scatter_ref(True), _scatter_samples(False)))

# -- layer ops (activations, convolution, pooling, layer norm, embedding): tests/layer_op_rows.py
from layer_op_rows import erf_ref, layer_rows  # noqa: E402

for _r in layer_rows(Row, Sample, U, unary):
    row(_r)

ELEMENTWISE = sorted(n for n in ROWS if R[n].formula is not None)
BINARY_ELEMENTWISE = sorted(n for n in ELEMENTWISE if R[n].nargs == 2)
DIFF_OPS = sorted(n for n, r in ROWS.items() if r.differentiable)


# ---------------------------------------------------------------------------------------------
# registry completeness

def test_every_op_has_a_row():
    missing = sorted(set(R) - set(ROWS))
    assert not missing, f"ops without a test-table row: {missing}"
    assert not set(ROWS) - set(R), "rows for ops that are not registered"


@pytest.mark.parametrize("name", sorted(R))
def test_registry_entry_has_a_rule(name):
    op = R[name]
    assert op.formula is not None or op.vjp is not None or op.nondiff_reason, name
    if op.nondiff_reason is not None:
        assert not ROWS[name].differentiable, f"{name} is nondiff but its row says differentiable"
    else:
        assert ROWS[name].differentiable, f"{name} has a gradient rule but its row says nondiff"


# ---------------------------------------------------------------------------------------------
# helpers

def _tensors(sample: Sample, requires_grad: bool, dtype=symad.float64):
    out = []
    diff = _diff_indices(sample)
    for i, a in enumerate(sample.arrays):
        if a.dtype.kind == "f":
            t = symad.tensor(a, dtype=dtype, requires_grad=requires_grad and i in diff)
        else:
            t = symad.tensor(a)
        out.append(t)
    return out


def _diff_indices(sample: Sample):
    if sample.diff is not None:
        return sample.diff
    return tuple(i for i, a in enumerate(sample.arrays) if a.dtype.kind == "f")


def _fd_grads(ref, sample: Sample, v: np.ndarray):
    """Central finite differences of sum(ref(arrays) * v) for every differentiable input."""
    grads = {}
    for i in _diff_indices(sample):
        a = sample.arrays[i]
        g = np.zeros_like(a)
        for j in np.ndindex(a.shape):
            vals = []
            for sgn in (1, -1):
                arrays = [x.copy() for x in sample.arrays]
                arrays[i][j] += sgn * EPS
                vals.append(np.sum(np.asarray(ref(*arrays, **sample.kwargs)) * v))
            g[j] = (vals[0] - vals[1]) / (2 * EPS)
        grads[i] = g
    return grads


def _samples(name, seed=0):
    return ROWS[name].samples(np.random.default_rng(seed))


# ---------------------------------------------------------------------------------------------
# forward / backward for every op

@pytest.mark.parametrize("name", sorted(ROWS))
def test_forward_matches_numpy(name):
    r = ROWS[name]
    for s in _samples(name):
        out = r.call(*_tensors(s, False), **s.kwargs)
        expected = np.asarray(r.ref(*s.arrays, **s.kwargs))
        assert tuple(out.shape) == expected.shape, (name, s.kwargs)
        np.testing.assert_allclose(out.numpy().astype(np.float64), expected.astype(np.float64),
                                   rtol=1e-12, atol=1e-12, err_msg=f"{name} {s.kwargs}")


@pytest.mark.parametrize("name", DIFF_OPS)
def test_backward_matches_finite_differences(name):
    r = ROWS[name]
    rng = np.random.default_rng(1)
    for s in _samples(name):
        ts = _tensors(s, True)
        out = r.call(*ts, **s.kwargs)
        assert out.requires_grad and out.grad_fn is not None, name
        v = rng.uniform(-1, 1, tuple(out.shape))
        (out * symad.tensor(v, dtype=symad.float64)).sum().backward()
        fd = _fd_grads(r.fd_ref or r.ref, s, v)
        for i, g in fd.items():
            got = ts[i].grad
            assert got is not None, (name, i)
            assert tuple(got.shape) == s.arrays[i].shape, (name, i)
            assert got.dtype == symad.float64
            assert got.grad_fn is None and not got.requires_grad
            np.testing.assert_allclose(got.numpy(), g, rtol=1e-6, atol=1e-6,
                                       err_msg=f"{name} input {i} {s.kwargs}")


@pytest.mark.parametrize("name", sorted(n for n, r in ROWS.items() if not r.differentiable))
def test_nondifferentiable_ops_do_not_record(name):
    r = ROWS[name]
    for s in _samples(name):
        ts = [t.requires_grad_(True) if t.dtype.is_floating_point else t
              for t in _tensors(s, False)]
        out = r.call(*ts, **s.kwargs)
        assert out.grad_fn is None and not out.requires_grad, name


# ---------------------------------------------------------------------------------------------
# broadcasting of binary elementwise ops

@pytest.mark.parametrize("name", BINARY_ELEMENTWISE)
@pytest.mark.parametrize("sa,sb", [((3, 1), (1, 4)), ((), (2, 3)), ((2, 3), ()), ((4,), (2, 4)),
                                   ((2, 1, 3), (4, 1))])
def test_broadcast_gradients_reduce_to_input_shapes(name, sa, sb):
    r = ROWS[name]
    rng = np.random.default_rng(2)
    a = POS(rng, sa, 0.5, 1.5)
    b = POS(rng, sb, 1.6, 2.5)  # a < b everywhere: no ties for maximum/minimum
    s = Sample([a, b])
    ta, tb = _tensors(s, True)
    out = r.call(ta, tb)
    assert tuple(out.shape) == np.broadcast_shapes(sa, sb)
    v = rng.uniform(-1, 1, tuple(out.shape))
    (out * symad.tensor(v, dtype=symad.float64)).sum().backward()
    fd = _fd_grads(r.ref, s, v)
    assert tuple(ta.grad.shape) == sa and tuple(tb.grad.shape) == sb
    np.testing.assert_allclose(ta.grad.numpy(), fd[0], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(tb.grad.numpy(), fd[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "pow", "maximum", "minimum"])
def test_python_scalar_operand_gradient(name):
    r = ROWS[name]
    x = symad.tensor([0.5, 1.5, 2.5], dtype=symad.float64, requires_grad=True)
    out = r.call(x, 1.25)
    out.sum().backward()
    fd = _fd_grads(lambda a: r.ref(a, 1.25), Sample([x.detach().numpy().copy()]),
                   np.ones(3))
    np.testing.assert_allclose(x.grad.numpy(), fd[0], rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# dtype rules

@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_dtypes(name):
    r = ROWS[name]
    s = _samples(name)[0]
    for dt in (symad.float32, symad.float64):
        out = r.call(*_tensors(s, False, dtype=dt), **s.kwargs)
        assert out.dtype == dt, (name, dt, out.dtype)
        assert out.numpy().dtype == dt.np
    if r.int_dtype is not None:
        ints = [symad.tensor(np.array([1, 2, 3]))] * R[name].nargs
        out = r.call(*ints)
        assert out.dtype == r.int_dtype, (name, out.dtype)
        assert out.numpy().dtype == r.int_dtype.np


@pytest.mark.parametrize("expr,expected", [
    (lambda: symad.tensor([1.0]) * 2.5, symad.float32),
    (lambda: symad.tensor([1.0], dtype=symad.float64) * 2.5, symad.float64),
    (lambda: symad.tensor([1]) * 2.5, symad.float32),
    (lambda: symad.tensor([1]) * 2, symad.int64),
    (lambda: symad.tensor([True]) + 1, symad.int64),
    (lambda: symad.tensor([True]) * 1.5, symad.float32),
    (lambda: symad.tensor([1.0]) + symad.tensor([1.0], dtype=symad.float64), symad.float64),
    (lambda: symad.tensor([1.0]) + symad.tensor(1.0, dtype=symad.float64), symad.float32),
    (lambda: symad.tensor([1]) + symad.tensor(1.0, dtype=symad.float64), symad.float64),
    (lambda: symad.tensor(3) * symad.tensor([1.5]), symad.float32),
    (lambda: symad.tensor([1, 2]) / 2, symad.float32),
    (lambda: symad.tensor([1, 2]) / symad.tensor([2, 2]), symad.float32),
    (lambda: symad.exp(symad.tensor([1, 2])), symad.float32),
    (lambda: symad.sqrt(symad.tensor([4])), symad.float32),
    (lambda: symad.tensor([4]) ** 2, symad.int64),
    (lambda: symad.tensor([4]) ** 0.5, symad.float32),
    (lambda: symad.tensor([1, 5]).clamp(0.5), symad.float32),
    (lambda: symad.tensor([1, 5]).clamp(0, 3), symad.int64),
    (lambda: symad.maximum(symad.tensor([1]), symad.tensor([2.5])), symad.float32),
    (lambda: symad.where(symad.tensor([True, False]), symad.tensor([1, 2]), 0.5), symad.float32),
    (lambda: symad.tensor([True, True]).sum(), symad.int64),
    (lambda: symad.tensor([1, 2], dtype=symad.int32).sum(), symad.int64),
    (lambda: symad.tensor([1.0, 2.0]).sum(), symad.float32),
    (lambda: symad.tensor([1.0, 2.0], dtype=symad.float64).mean(), symad.float64),
    (lambda: symad.tensor([3]) // 2, symad.int64),
    (lambda: symad.tensor([1.0]) > 0, symad.bool),
])
def test_promotion(expr, expected):
    out = expr()
    assert out.dtype == expected
    assert out.numpy().dtype == expected.np


def test_int_pow_values():
    assert symad.tensor([4]) ** 0.5 == symad.tensor([2.0])
    assert (symad.tensor([4]) ** 2).tolist() == [16]
    assert (2 ** symad.tensor([1, 3])).tolist() == [2, 8]


# ---------------------------------------------------------------------------------------------
# second derivatives (create_graph) of elementwise ops vs finite differences of the first

def _first_derivative(name, arrays, i, kwargs):
    """d sum(op(...)) / d input i, computed by symad (float64, no graph)."""
    ts = [symad.tensor(a, dtype=symad.float64, requires_grad=True) for a in arrays]
    (g,) = symad.autograd.grad(ROWS[name].call(*ts, **kwargs).sum(), ts[i])
    return g.numpy()


@pytest.mark.parametrize("name", sorted(n for n in ELEMENTWISE))
def test_second_derivative_matches_finite_differences(name):
    s = _samples(name, seed=3)[0]
    arrays = [np.asarray(a, dtype=np.float64) for a in s.arrays]
    n = len(arrays)
    rng = np.random.default_rng(4)
    for i in range(n):
        ts = [symad.tensor(a, dtype=symad.float64, requires_grad=True) for a in arrays]
        (g,) = symad.autograd.grad(ROWS[name].call(*ts, **s.kwargs).sum(), ts[i],
                                   create_graph=True)
        w = rng.uniform(-1, 1, g.shape)
        if not g.requires_grad:  # a constant first derivative (add, neg, ...)
            second = [np.zeros_like(a) for a in arrays]
        else:
            second = symad.autograd.grad((g * symad.tensor(w, dtype=symad.float64)).sum(), ts,
                                         allow_unused=True)
            second = [np.zeros_like(a) if x is None else x.numpy() for x, a in zip(second, arrays)]
        for k in range(n):
            fd = np.zeros_like(arrays[k])
            for j in np.ndindex(arrays[k].shape):
                vals = []
                for sgn in (1, -1):
                    pert = [a.copy() for a in arrays]
                    pert[k][j] += sgn * 1e-5
                    vals.append(np.sum(_first_derivative(name, pert, i, s.kwargs) * w))
                fd[j] = (vals[0] - vals[1]) / 2e-5
            np.testing.assert_allclose(second[k], fd, rtol=1e-5, atol=1e-6,
                                       err_msg=f"{name}: d/d{k} of d/d{i}")


# ---------------------------------------------------------------------------------------------
# named numpy fast paths equal the SymPy formula

@pytest.mark.parametrize("name", ELEMENTWISE)
def test_fast_path_equals_lambdified_formula(name):
    op = R[name]
    s = _samples(name, seed=5)[0]
    syms = [sympy.Symbol(f"a{i}", real=True) for i in range(op.nargs)]
    # symad's own sigmoid function is written out, so the fast path is not its own oracle
    expr = op.formula(*syms, **s.kwargs).replace(
        sigmoid, lambda x: 1 / (1 + sympy.exp(-x)))
    # math.erf stands in for erf: numpy has none, and symad's own must not be its oracle
    fn = sympy.lambdify(syms, expr, modules=[{"erf": erf_ref}, "numpy"])
    expected = np.broadcast_to(fn(*s.arrays), np.broadcast_shapes(*[a.shape for a in s.arrays]))
    got = op.forward(*s.arrays, **s.kwargs)
    np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", ["pow", "pow_scalar"])
def test_explicit_derivatives_agree_with_sympy_diff(name):
    """Ops that state their partials (for PyTorch's conventions at 0) agree with SymPy away
    from the special points."""
    op = R[name]
    params = {"exponent": 2.5} if name == "pow_scalar" else {}
    args, psyms, ders = op.derivative_exprs(params)
    expr = op.formula(*args, **psyms)
    for a, d in zip(args, ders):
        diff = sympy.diff(expr, a)
        for point in ({args[0]: 1.7, **({args[1]: 0.6} if len(args) > 1 else {})},
                      {args[0]: 0.3, **({args[1]: -1.2} if len(args) > 1 else {})}):
            sub = {**point, **{s: params[k] for k, s in psyms.items() if s is not None}}
            assert abs(float(d.subs(sub)) - float(diff.subs(sub))) < 1e-12


# ---------------------------------------------------------------------------------------------
# PyTorch's conventions at kinks

def _g(f, x):
    t = symad.tensor(x, requires_grad=True)
    f(t).sum().backward()
    return t.grad.tolist()


def test_relu_abs_sign_at_zero():
    assert _g(symad.relu, [-1.0, 0.0, 2.0]) == [0.0, 0.0, 1.0]
    assert _g(symad.abs, [-1.0, 0.0, 2.0]) == [-1.0, 0.0, 1.0]
    assert _g(symad.sign, [-1.0, 0.0, 2.0]) == [0.0, 0.0, 0.0]


def test_clamp_edges_follow_pytorch():
    """PyTorch 2.14.1's values (recorded from torch in float64): with number bounds the gradient
    is 1 strictly inside (min, max), 0 at the edges; min == max or min > max: max everywhere,
    gradient 0; tensor bounds split a tie evenly between x and the bound."""
    v = [0.0, 1.0, 1.5, 2.0, 3.0]
    assert _g(lambda t: t.clamp(1.0, 2.0), v) == [0, 0, 1, 0, 0]
    assert _g(lambda t: t.clamp(1, 2), v) == [0, 0, 1, 0, 0]
    assert _g(lambda t: t.clip(1.0, 2.0), v) == [0, 0, 1, 0, 0]
    assert _g(lambda t: t.clamp(min=1.0), v) == [0, 0, 1, 1, 1]
    assert _g(lambda t: t.clamp(max=2.0), v) == [1, 1, 1, 0, 0]
    assert _g(lambda t: t.clamp(1.0, 1.0), v) == [0, 0, 0, 0, 0]
    assert _g(lambda t: t.clamp(2.0, 1.0), v) == [0, 0, 0, 0, 0]
    assert symad.tensor(v).clamp(2.0, 1.0).tolist() == [1.0] * 5
    x = symad.tensor(v, requires_grad=True)
    lo = symad.tensor([1.0] * 5, requires_grad=True)
    hi = symad.tensor([2.0] * 5, requires_grad=True)
    symad.clamp(x, lo, hi).sum().backward()
    assert x.grad.tolist() == [0, 0.5, 1, 0.5, 0]
    assert lo.grad.tolist() == [1, 0.5, 0, 0, 0] and hi.grad.tolist() == [0, 0, 0, 0.5, 1]
    # clamp_min / clamp_max: PyTorch's names, the same edges
    assert _g(lambda t: t.clamp_min(1.0), v) == [0, 0, 1, 1, 1]
    assert _g(lambda t: t.clamp_max(2.0), v) == [1, 1, 1, 0, 0]
    x = symad.tensor([0.0, 1.0, 2.0], requires_grad=True)
    m = symad.tensor([1.0, 1.0, 1.0], requires_grad=True)
    symad.clamp_min(x, m).sum().backward()
    assert x.grad.tolist() == [0, 0.5, 1] and m.grad.tolist() == [1, 0.5, 0]


def test_maximum_minimum_ties_split_evenly():
    a = symad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = symad.tensor([2.0, 2.0, 2.0], requires_grad=True)
    (symad.maximum(a, b) + 10 * symad.minimum(a, b)).sum().backward()
    assert a.grad.tolist() == [10.0, 5.5, 1.0]
    assert b.grad.tolist() == [1.0, 5.5, 10.0]


def test_full_max_min_ties_split_evenly():
    assert _g(lambda t: t.max(), [1.0, 3.0, 3.0, 0.0]) == [0.0, 0.5, 0.5, 0.0]
    assert _g(lambda t: t.min(), [1.0, 0.0, 3.0, 0.0]) == [0.0, 0.5, 0.0, 0.5]
    np.testing.assert_allclose(_g(lambda t: t.amax(dim=1), [[1.0, 3.0, 3.0], [5.0, 5.0, 5.0]]),
                               [[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-7)


def test_max_dim_gradient_goes_to_the_index_only():
    x = symad.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]], requires_grad=True)
    values, indices = x.max(1)
    assert indices.tolist() == [1, 0]
    values.sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_pow_conventions_at_zero():
    a = symad.tensor([0.0, 2.0], requires_grad=True)
    (a ** 0).sum().backward()
    assert a.grad.tolist() == [0.0, 0.0]
    a = symad.tensor([0.0, 2.0], requires_grad=True)
    b = symad.tensor([0.0, 3.0], requires_grad=True)
    (a ** b).sum().backward()
    assert a.grad.tolist() == [0.0, 12.0]  # PyTorch: tensor([0., 12.]) / tensor([0., 5.5452])
    np.testing.assert_allclose(b.grad.numpy(), [0.0, 8 * np.log(2)], rtol=1e-6)


def test_norm_gradient_at_origin_is_zero():
    assert _g(lambda t: t.norm(), [0.0, 0.0]) == [0.0, 0.0]


def test_prod_gradient_with_zeros():
    assert _g(lambda t: t.prod(), [2.0, 0.0, 3.0]) == [0.0, 6.0, 0.0]
    assert _g(lambda t: t.prod(), [2.0, 0.0, 0.0]) == [0.0, 0.0, 0.0]
