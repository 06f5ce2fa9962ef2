"""More of the functional surface: rounding, ``cumsum``, ``tril``/``triu``, ``gather``,
``scatter``/``scatter_add`` (registry ops), and ``split``/``chunk``/``einsum`` written with registered ops (slicing, reshape,
permute, matmul, sum), so they differentiate, trace and compile through those."""
from __future__ import annotations

import builtins as _b
import string
from collections import namedtuple

import numpy as np

from . import rounding, scan, select  # noqa: F401  (register the ops)
from .. import _dtype as D
from .dispatch import apply
from .registry import REGISTRY

_R = REGISTRY


def _tensor(x):
    Tensor = D._tensor_cls()
    if not isinstance(x, Tensor):
        raise TypeError(f"expected a Tensor, got {type(x).__name__}")
    return x


# -- rounding (zero gradient) -------------------------------------------------------------------
def round(input, *, decimals: int = 0):
    """Round half to even, to ``decimals`` places; the gradient is zero."""
    return apply(_R["round"], input, decimals=int(decimals))


def ceil(input):
    """Smallest integer >= x (elementwise); the gradient is zero."""
    return apply(_R["ceil"], input)


def trunc(input):
    """Round toward zero (elementwise); the gradient is zero."""
    return apply(_R["trunc"], input)


fix = trunc


# -- scans and selections -----------------------------------------------------------------------
def _check_dim(dim: int, ndim: int) -> int:
    n = _b.max(ndim, 1)
    if not -n <= dim < n:
        raise IndexError(f"Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                         f"but got {dim})")
    return dim % n


def cumsum(input, dim: int, *, dtype=None):
    """Cumulative sum along ``dim`` (integers accumulate in int64, as PyTorch)."""
    if dtype is not None:
        input = input.to(dtype)
    return apply(_R["cumsum"], input, dim=_check_dim(dim, input.ndim))


def tril(input, diagonal: int = 0):
    """Elements with ``col - row <= diagonal`` of the last two dims; zeros above."""
    return apply(_R["tril"], input, diagonal=int(diagonal))


def triu(input, diagonal: int = 0):
    """Elements with ``col - row >= diagonal`` of the last two dims; zeros below."""
    return apply(_R["triu"], input, diagonal=int(diagonal))


def gather(input, dim: int, index, *, sparse_grad: bool = False):
    """``out[i][j][k] = input[index[i][j][k]][j][k]`` for ``dim=0`` (and likewise per dim)."""
    d = _check_index("gather", input, dim, index)
    return apply(_R["gather"], input, index, dim=d)


def _check_index(name: str, input, dim: int, index) -> int:
    """PyTorch's checks of a gather/scatter index; returns the normalised dim."""
    index = _tensor(index)
    if index.dtype != D.int64:
        raise RuntimeError(f"{name}(): Expected dtype int64 for index, got {index.dtype}")
    if index.ndim != input.ndim:
        raise RuntimeError("Index tensor must have the same number of dimensions as self tensor")
    d = _check_dim(dim, input.ndim)
    for k, (si, sx) in enumerate(zip(index.shape, input.shape)):
        if k != d and si > sx:
            raise RuntimeError(f"Expected index {list(index.shape)} to be smaller than self "
                               f"{list(input.shape)} apart from dimension {d}")
    idx = index._data
    if idx.size and (idx.min() < -input.shape[d] or idx.max() >= input.shape[d]):
        bad = int(idx.max() if idx.max() >= input.shape[d] else idx.min())
        raise RuntimeError(f"index {bad} is out of bounds for dimension {d} with size "
                           f"{input.shape[d]}")
    return d


def _scatter_src(input, index, src, value, name: str):
    Tensor = D._tensor_cls()
    if (src is None) == (value is None):
        raise TypeError(f"{name}() needs exactly one of src (a tensor) and value (a number)")
    if src is None or not isinstance(src, Tensor):
        fill = value if src is None else src
        return Tensor._wrap(np.full(tuple(index.shape), fill, dtype=input.dtype.np), input.dtype)
    if src.ndim != index.ndim or any(si > ss for si, ss in zip(index.shape, src.shape)):
        raise RuntimeError(f"Expected index {list(index.shape)} to be smaller than src "
                           f"{list(src.shape)} in every dimension")
    return src


def scatter(input, dim: int, index, src=None, *, value=None, reduce=None):
    """A copy of ``input`` with ``src`` (or ``value``) written at the positions ``gather``
    would read: ``out[index[i][j]][j] = src[i][j]`` for ``dim=0``."""
    if reduce is not None:
        raise NotImplementedError("scatter(reduce=...): symad does not support reduce yet; use "
                                  "scatter_add for reduce='add'")
    d = _check_index("scatter", input, dim, index)
    return apply(_R["scatter"], input, index, _scatter_src(input, index, src, value, "scatter"),
                 dim=d)


def scatter_add(input, dim: int, index, src):
    """A copy of ``input`` with ``src`` added at the positions ``gather`` would read
    (repeated positions add up)."""
    d = _check_index("scatter_add", input, dim, index)
    return apply(_R["scatter_add"], input, index,
                 _scatter_src(input, index, src, None, "scatter_add"), dim=d)


# -- sort / argsort / topk: indices by numpy, values gathered (differentiable via gather) --------
SortResult = namedtuple("sort", ["values", "indices"])
TopkResult = namedtuple("topk", ["values", "indices"])


def _order(a: np.ndarray, d: int, descending: bool) -> np.ndarray:
    """Stable order along ``d``; descending keeps equal elements in their original order."""
    if not descending:
        return np.argsort(a, axis=d, kind="stable")
    n = a.shape[d]
    flipped = np.flip(a, axis=d)
    return n - 1 - np.flip(np.argsort(flipped, axis=d, kind="stable"), axis=d)


def argsort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    """Indices that sort ``input`` along ``dim`` (ties keep their order)."""
    Tensor = D._tensor_cls()
    if input.ndim == 0:
        return Tensor._wrap(np.zeros((), dtype=np.int64), D.int64)
    d = _check_dim(dim, input.ndim)
    return Tensor._wrap(_order(input._data, d, descending).astype(np.int64), D.int64)


def sort(input, dim: int = -1, descending: bool = False, stable: bool = False):
    """``(values, indices)`` of ``input`` sorted along ``dim``; gradients flow to the values'
    positions (through ``gather``)."""
    idx = argsort(input, dim, descending)
    if input.ndim == 0:
        return SortResult(input.clone(), idx)
    return SortResult(apply(_R["gather"], input, idx, dim=_check_dim(dim, input.ndim)), idx)


def topk(input, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """The ``k`` largest (or smallest) elements along ``dim`` and their indices."""
    Tensor = D._tensor_cls()
    d = _check_dim(dim, input.ndim)
    n = input.shape[d] if input.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError("selected index k out of range")
    if input.ndim == 0:
        return TopkResult(input.clone(), Tensor._wrap(np.zeros((), np.int64), D.int64))
    order = _order(input._data, d, largest)
    idx = Tensor._wrap(np.ascontiguousarray(np.take(order, np.arange(k), axis=d))
                       .astype(np.int64), D.int64)
    return TopkResult(apply(_R["gather"], input, idx, dim=d), idx)


# -- split / chunk (slices of the input) --------------------------------------------------------
def split(tensor, split_size_or_sections, dim: int = 0) -> tuple:
    """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or pieces of the given
    sizes when a list is passed."""
    d = _check_dim(dim, tensor.ndim)
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, (list, tuple)):
        sizes = [int(s) for s in split_size_or_sections]
        if _b.sum(sizes) != n:
            raise RuntimeError(f"split_with_sizes expects split_sizes to sum exactly to {n} "
                               f"(input tensor's size at dimension {d}), but got "
                               f"split_sizes={sizes}")
    else:
        size = int(split_size_or_sections)
        if size <= 0 and n:
            raise RuntimeError(f"split expects split_size be non-negative, but got "
                               f"split_size={size}")
        sizes = [_b.min(size, n - s) for s in range(0, n, size)] if n else [0]
    out, start = [], 0
    lead = (slice(None),) * d
    for s in sizes:
        out.append(tensor[lead + (slice(start, start + s),)])
        start += s
    return tuple(out)


def chunk(input, chunks: int, dim: int = 0) -> tuple:
    """At most ``chunks`` pieces of equal size ``ceil(n / chunks)`` along ``dim``."""
    if chunks <= 0:
        raise RuntimeError("chunk expects `chunks` to be greater than 0, got: " + str(chunks))
    n = input.shape[_check_dim(dim, input.ndim)]
    size = -(-n // chunks) if n else 0
    return split(input, _b.max(size, 1) if n else 0, dim) if n else (input,)


# -- einsum -------------------------------------------------------------------------------------
def _parse_einsum(equation: str, operands) -> tuple[list[str], str]:
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise RuntimeError("einsum(): more operands were provided than specified in the "
                           "equation" if len(operands) > len(terms) else
                           "einsum(): fewer operands were provided than specified in the "
                           "equation")
    used = set(c for c in eq if c.isalpha())
    spare = [c for c in string.ascii_letters if c not in used]
    ell_dims = 0
    for t, op in zip(terms, operands):
        if "..." in t:
            ell_dims = _b.max(ell_dims, op.ndim - (len(t) - 3))
    ell = "".join(spare[:ell_dims])
    out_terms = []
    for t, op in zip(terms, operands):
        if "..." in t:
            k = op.ndim - (len(t) - 3)
            t = t.replace("...", ell[ell_dims - k:])
        if len(t) != op.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                               f"({len(t)}) does not match the number of dimensions "
                               f"({op.ndim}) for operand {len(out_terms)}")
        if any(not c.isalpha() for c in t):
            raise RuntimeError(f"einsum(): invalid subscript given in the equation: {t!r}")
        out_terms.append(t)
    if arrow:
        out = rhs.replace("...", ell)
    else:  # implicit output: ellipsis dims, then letters seen once, alphabetically
        counts: dict = {}
        for t in out_terms:
            for c in t:
                counts[c] = counts.get(c, 0) + 1
        out = ell + "".join(sorted(c for c, k in counts.items() if k == 1 and c not in ell))
    for c in out:
        if not any(c in t for t in out_terms):
            raise RuntimeError(f"einsum(): output subscript {c} does not appear in the equation "
                               f"for any input operand")
    return out_terms, out


def _diagonalize(x, sub: str):
    """Take diagonals of repeated subscripts (``ii -> i``) with an index: one letter per axis."""
    while len(set(sub)) < len(sub):
        c = next(ch for ch in sub if sub.count(ch) > 1)
        i, j = sub.index(c), sub.index(c, sub.index(c) + 1)
        n = x.shape[i]
        if x.shape[j] != n:
            raise RuntimeError(f"einsum(): subscript {c} is repeated for operand but the sizes "
                               f"don't match, {x.shape[i]} != {x.shape[j]}")
        x = _move_to_front(x, (i, j))
        r = np.arange(n)
        x = x[r, r]
        sub = c + "".join(ch for k, ch in enumerate(sub) if k not in (i, j))
    return x, sub


def _move_to_front(x, axes):
    rest = [k for k in range(x.ndim) if k not in axes]
    return x.permute(*axes, *rest)


def _sum_out(x, sub: str, keep: set):
    """Sum axes whose letters are needed neither by other operands nor by the output."""
    drop = tuple(k for k, c in enumerate(sub) if c not in keep)
    if not drop:
        return x, sub
    return x.sum(drop), "".join(c for c in sub if c in keep)


def _contract(a, sa: str, b, sb: str, keep: set):
    """``a`` (letters ``sa``) times ``b`` (``sb``), summing shared letters not in ``keep``, as one
    batched matmul: batch letters | a-only | contracted  @  batch | contracted | b-only."""
    batch = [c for c in sa if c in sb and c in keep]
    contr = [c for c in sa if c in sb and c not in keep]
    a_only = [c for c in sa if c not in sb]
    b_only = [c for c in sb if c not in sa]
    size = {**{c: a.shape[k] for k, c in enumerate(sa)}, **{c: b.shape[k] for k, c in enumerate(sb)}}
    for c in batch + contr:
        sa_n, sb_n = a.shape[sa.index(c)], b.shape[sb.index(c)]
        if sa_n != sb_n and 1 not in (sa_n, sb_n):
            raise RuntimeError(f"einsum(): operands do not broadcast with remapped shapes "
                               f"(original->remapped): subscript {c} has sizes {sa_n} and {sb_n}")
        size[c] = _b.max(sa_n, sb_n)

    def prod(cs):
        p = 1
        for c in cs:
            p *= size[c]
        return p
    ap = a.permute(*[sa.index(c) for c in batch + a_only + contr]) if sa else a
    bp = b.permute(*[sb.index(c) for c in batch + contr + b_only]) if sb else b
    ap = ap.expand(*[size[c] for c in batch + a_only + contr]) if sa else ap
    bp = bp.expand(*[size[c] for c in batch + contr + b_only]) if sb else bp
    am = ap.reshape(prod(batch), prod(a_only), prod(contr))
    bm = bp.reshape(prod(batch), prod(contr), prod(b_only))
    out = (am @ bm).reshape(*[size[c] for c in batch + a_only + b_only])
    return out, "".join(batch + a_only + b_only)


def einsum(equation: str, *operands):
    """Einstein summation (``"ij,jk->ik"``, ``"bij,bjk->bik"``, ``"ii->i"``, ``"...ij->...ji"``),
    evaluated pairwise left to right as batched matmuls, sums, permutes and diagonals."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    for op in operands:
        _tensor(op)
    terms, out = _parse_einsum(equation, operands)
    items = []
    for op, t in zip(operands, terms):
        items.append(list(_diagonalize(op, t)))
    # letters each operand must keep: those of the output and of the other operands
    for i in range(len(items)):
        others = set(out).union(*[set(items[j][1]) for j in range(len(items)) if j != i])
        items[i][0], items[i][1] = _sum_out(items[i][0], items[i][1], others)
    x, sx = items[0]
    for k in range(1, len(items)):
        y, sy = items[k]
        keep = set(out).union(*[set(items[j][1]) for j in range(k + 1, len(items))])
        x, sx = _contract(x, sx, y, sy, keep)
    x, sx = _sum_out(x, sx, set(out))
    if sx != out:
        x = x.permute(*[sx.index(c) for c in out])
    return x


from .numpy_kwargs import add_numpy_kwargs as _add_numpy_kwargs

_add_numpy_kwargs(globals())  # cumsum(x, axis=0), split(x, 2, axis=1), ... as PyTorch accepts
