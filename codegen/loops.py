"""Loop programs: statements over flat buffers -> native functions, one per segment.

The tensor-program lowering (``symad/compiler/native_program.py``) states a program of shaped ops
as two kinds of statements over numbered flat buffers:

* :class:`Fill` — ``buf[0:size] = value``;
* :class:`Map` — a loop nest over ``shape``: ``out[idx] (+)= expr(in_0[idx], in_1[idx], ...)``,
  where every operand is an :class:`Access` (buffer, element offset, one element stride per loop
  dimension; stride 0 broadcasts or, for an accumulating output, reduces). Elementwise ops,
  their partials summed to an input's shape, sums, means and matmuls (``C[i, j] += A[i, k] *
  B[k, j]`` over the loop shape ``(M, K, N)``) are all Maps.

Each segment becomes ``void NAME_s<k>(ptr %bufs)``: ``bufs`` is an array of the buffers' data
pointers (the caller validates dtype, shape and contiguity before the call). The statements run
in an ``alwaysinline`` body whose buffer parameters are ``noalias`` (written buffers are distinct
from everything read), so the loop vectorizer needs no runtime alias checks. Loop order: the
innermost loop is a dimension along which the output is contiguous (else one the inputs are
contiguous along), so elementwise loops, broadcasts and ``i, k, j`` matmuls vectorize.

Knows SymPy and LLVM only (never imports ``symad``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import sympy

from . import target as target_mod
from .cache import DiskCache
from .kernel_ir import prefer_width, vector_declarations
from .lowering import Lowerer
from .native import NativeModule, slot_loads

#: LLVM element type of each buffer dtype name.
ELEMENT = {"float64": "double", "float32": "float", "int64": "i64", "int32": "i32", "bool": "i8"}
#: How a loaded element of another type becomes the statement's float type (numpy's astype).
_CONVERT = {("float", "double"): "fpext", ("double", "float"): "fptrunc", ("i8", None): "uitofp",
            ("i32", None): "sitofp", ("i64", None): "sitofp"}


@dataclass(frozen=True)
class Index:
    """An indexed dimension of an :class:`Access`: the element offset gains
    ``stride * clamp(at[idx], 0, bound - 1)``, ``at`` reading an int64/int32 buffer (a gather when
    the access is read, a scatter when it is an accumulating output). The clamp keeps every
    address inside the buffer whatever the index holds; callers check the bounds first and
    raise the eager error (the clamp is never the semantics)."""
    at: "Access"
    stride: int
    bound: int


@dataclass(frozen=True)
class Access:
    buf: int
    offset: int
    strides: tuple[int, ...]        # one per loop dimension of the statement
    index: Index | None = None


@dataclass(frozen=True)
class Fill:
    buf: int
    size: int
    value: float = 0.0
    offset: int = 0


@dataclass(frozen=True)
class Map:
    shape: tuple[int, ...]
    out: Access
    ins: tuple[Access, ...]
    syms: tuple[sympy.Symbol, ...]  # the symbol of each input in ``expr``
    expr: sympy.Expr
    accumulate: bool = False        # out[idx] += expr (reductions), else out[idx] = expr
    #: more ``(Access, expr)`` outputs of the same loop, all computed from the values loaded
    #: before any is stored (an in-place update of several arrays: ``out[idx] = expr``)
    extra: tuple = ()
    #: how an accumulating output combines: ``"add"`` (sums), ``"max"`` / ``"min"`` (NaN
    #: propagating, as numpy's maximum/minimum); the caller fills the output first (0, -inf, inf)
    combine: str = "add"


@dataclass(frozen=True)
class MatMul:
    """``C = A @ B`` for ``A`` (M, K) and ``B`` (K, N) read through ``Access`` strides (two per
    operand: rows, columns), ``C`` (M, N) contiguous. ``B``'s rows must be contiguous (column
    stride 1). A register-tiled loop nest: blocks of ``MR`` rows x ``NR`` vector columns of C are
    accumulated in vector registers over k, in k order (the same sums, in the same order, as the
    plain ``i, k, j`` loop); the edges run as plain loops."""
    M: int
    N: int
    K: int
    c: int                          # buffer of C
    a: Access
    b: Access
    c_offset: int = 0               # element offset of C in its buffer (a block of rows)
    mr: int = 0                     # rows of a register block (0: by the product's size)

    @property
    def block_rows(self) -> int:
        return self.mr or (MR_LARGE if self.M * self.N * self.K >= LARGE else MR)

    def rows(self, m0: int, m1: int) -> "MatMul":
        """Rows ``[m0, m1)`` of this product, computed exactly as in the whole product when
        ``m0`` is a multiple of ``block_rows`` (the same register blocks, the same edges)."""
        if m0 % self.block_rows:
            raise ValueError(f"a block of rows starts at a multiple of {self.block_rows}")
        return MatMul(m1 - m0, self.N, self.K, self.c,
                      Access(self.a.buf, self.a.offset + m0 * self.a.strides[0], self.a.strides),
                      self.b, self.c_offset + m0 * self.N, self.block_rows)


#: buffers the loops read with vector loads start on a cache line (a register tile's row of a
#: misaligned B splits every load over two lines: ~15-30 % slower products here)
ALIGN = 64


def aligned_zeros(shape, dtype) -> np.ndarray:
    """``np.zeros(shape, dtype)`` whose data starts at a multiple of :data:`ALIGN` bytes."""
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.zeros(n * dt.itemsize + ALIGN, np.uint8)
    skip = (-raw.ctypes.data) % ALIGN
    return raw[skip:skip + n * dt.itemsize].view(dt).reshape(shape)


def renumber(st, table: dict):
    """``st`` (a Map, Fill or MatMul) with its buffers renumbered by ``table`` (old -> new;
    buffers not in it keep their number): a statement moved into a module with more buffers (an
    update after a whole program), or writing straight into another buffer."""
    def acc(a: Access) -> Access:
        ix = None if a.index is None else Index(acc(a.index.at), a.index.stride, a.index.bound)
        return Access(table.get(a.buf, a.buf), a.offset, a.strides, ix)
    if isinstance(st, Fill):
        return Fill(table.get(st.buf, st.buf), st.size, st.value, st.offset)
    if isinstance(st, MatMul):
        return MatMul(st.M, st.N, st.K, table.get(st.c, st.c), acc(st.a), acc(st.b), st.c_offset,
                      st.mr)
    return Map(st.shape, acc(st.out), tuple(acc(a) for a in st.ins), st.syms, st.expr,
               st.accumulate, tuple((acc(a), e) for a, e in st.extra), st.combine)


MR = 4                              # rows of C per register block
MR_LARGE = 8                        # ... from LARGE multiply-adds (more FMAs per load)
LARGE = 1 << 20
PANEL_BYTES = 32 << 10              # B's column panel this small: block columns outermost
NV = 3                              # vectors of C columns per register block (512-bit: 8 rows
                                    # x 3 = 24 accumulators of 32 registers; 4-9 % faster than
                                    # 2 on the 784 model's products, the same sums)
NV_256 = 2                          # ... with 256-bit vectors (16 registers)


def _loop_order(st: Map) -> list[int]:
    """Dimensions outermost first. The innermost is the one most accesses step through with
    unit stride and fewest with a larger stride (a gather): a contiguous output row, or a
    reduction whose output stays in a register while unit-stride inputs stream (a matmul
    against a transposed matrix is a dot product, not a gather)."""
    dims = [d for d in range(len(st.shape)) if st.shape[d] != 1]
    if not dims:
        return []
    accs = (st.out,) + st.ins

    def score(d):
        unit = sum(a.strides[d] == 1 for a in accs)
        gather = sum(a.strides[d] not in (0, 1) for a in accs)
        return (unit - gather, st.out.strides[d] == 1, d)
    inner = max(dims, key=score)
    return [d for d in dims if d != inner] + [inner]


def _collapse(st: Map) -> Map:
    """``st`` with adjacent loop dimensions merged where every access steps through them as
    one (``stride[d] == stride[d + 1] * shape[d + 1]``, broadcasts included): a dense 2-D
    elementwise loop is one long loop, which vectorizes without a short-row remainder."""
    accs = [st.out] + list(st.ins) + [a for a, _ in st.extra]
    dims = [d for d in range(len(st.shape)) if st.shape[d] != 1]
    if len(dims) < 2 or any(a.index is not None for a in accs):
        return st
    shape = [st.shape[dims[0]]]
    strides = [[a.strides[dims[0]]] for a in accs]
    for d in dims[1:]:
        if all(s[-1] == a.strides[d] * st.shape[d] for s, a in zip(strides, accs)):
            shape[-1] *= st.shape[d]
            for s, a in zip(strides, accs):
                s[-1] = a.strides[d]
        else:
            shape.append(st.shape[d])
            for s, a in zip(strides, accs):
                s.append(a.strides[d])
    if len(shape) == len(st.shape):
        return st
    new = [Access(a.buf, a.offset, tuple(s)) for a, s in zip(accs, strides)]  # no index here
    n_in = len(st.ins)
    return Map(tuple(shape), new[0], tuple(new[1:1 + n_in]), st.syms, st.expr, st.accumulate,
               tuple((a, e) for a, (_, e) in zip(new[1 + n_in:], st.extra)), st.combine)


TILE = 16                           # the side of a transposing copy's square tiles


def _tile_transpose(st: Map) -> Map:
    """A 2-D copy that reads across the rows it writes (``W.T`` into a contiguous buffer) as
    square tiles of ``TILE`` (a 4-D loop: tile row, tile column, row, column), so both sides
    stay in cache lines; shapes that are not multiples of the tile stay as they are."""
    if (len(st.shape) != 2 or st.accumulate or st.extra or len(st.ins) != 1
            or st.expr != st.syms[0] or st.ins[0].index is not None
            or st.out.strides[1] != 1 or st.ins[0].strides[1] == 1
            or any(n % TILE or n < 2 * TILE for n in st.shape)):
        return st
    (a, b), t = st.shape, TILE

    def split(acc: Access) -> Access:
        s0, s1 = acc.strides
        return Access(acc.buf, acc.offset, (t * s0, t * s1, s0, s1))
    return Map((a // t, b // t, t, t), split(st.out), (split(st.ins[0]),), st.syms, st.expr)


class _Function:
    """IR text of one segment body."""

    def __init__(self, name: str, dtypes: list[str], fast_math: bool, variants: dict,
                 decls: dict, groups: dict, meta: list) -> None:
        self.name = name
        self.meta = meta
        self.linkage = ""
        # register-tile vectors: 512 bits where the module prefers them (AVX-512), else 256
        self.vector_bits = 512 if prefer_width(variants) else 256
        self.dtypes = dtypes
        self.fast_math = fast_math
        self.variants = variants
        self.decls, self.groups = decls, groups
        self.lines: list[str] = []
        self.n = 0
        self.used: set[int] = set()

    def no_unroll(self) -> str:
        """A ``!llvm.loop`` tag that keeps the unroller off this loop (the vectorizer still
        vectorizes and interleaves it)."""
        n = len(self.meta)
        self.meta += [f"!{n} = distinct !{{!{n}, !{n + 1}}}",
                      f"!{n + 1} = !{{!\"llvm.loop.unroll.disable\"}}"]
        return f", !llvm.loop !{n}"

    def fresh(self, stem: str) -> str:
        self.n += 1
        return f"%{stem}{self.n}"

    def ptr(self, acc: Access, idx: dict[int, str], out: list[str]) -> str:
        """Address of ``acc`` at loop indices ``idx`` (dimension -> IR value)."""
        self.used.add(acc.buf)
        terms = [f"{acc.offset}"] if acc.offset else []
        off = None
        for d, s in enumerate(acc.strides):
            if s == 0 or d not in idx:
                continue
            t = idx[d]
            if s != 1:
                m = self.fresh("m")
                out.append(f"  {m} = mul nsw i64 {t}, {s}")
                t = m
            if off is None:
                off = t
            else:
                a = self.fresh("o")
                out.append(f"  {a} = add nsw i64 {off}, {t}")
                off = a
        if off is None:
            off = terms[0] if terms else "0"
        elif terms:
            a = self.fresh("o")
            out.append(f"  {a} = add nsw i64 {off}, {terms[0]}")
            off = a
        if acc.index is not None:
            off = self._indexed(acc.index, idx, out, off)
        ty = ELEMENT[self.dtypes[acc.buf]]
        p = self.fresh("p")
        out.append(f"  {p} = getelementptr inbounds {ty}, ptr %b{acc.buf}, i64 {off}")
        return p

    def _indexed(self, ix: Index, idx: dict[int, str], out: list[str], off: str) -> str:
        ity = ELEMENT[self.dtypes[ix.at.buf]]
        if ity not in ("i64", "i32") or ix.bound < 1:
            raise ValueError(f"an index reads an int64/int32 buffer with bound >= 1, not {ity} "
                             f"(bound {ix.bound})")
        p = self.ptr(ix.at, idx, out)
        v = self.fresh("x")
        out.append(f"  {v} = load {ity}, ptr {p}")
        if ity == "i32":
            w = self.fresh("x")
            out.append(f"  {w} = sext i32 {v} to i64")
            v = w
        for fn, lim in (("smax", 0), ("smin", ix.bound - 1)):
            self.decls[f"llvm.{fn}.i64"] = f"declare i64 @llvm.{fn}.i64(i64, i64)"
            w = self.fresh("x")
            out.append(f"  {w} = call i64 @llvm.{fn}.i64(i64 {v}, i64 {lim})")
            v = w
        if ix.stride != 1:
            w = self.fresh("x")
            out.append(f"  {w} = mul nsw i64 {v}, {ix.stride}")
            v = w
        a = self.fresh("o")
        out.append(f"  {a} = add nsw i64 {off}, {v}")
        return a

    def fill(self, st: Fill) -> None:
        if st.size <= 0:
            return
        self.map(Map((st.size,), Access(st.buf, st.offset, (1,)), (), (),
                     sympy.Float(st.value)))

    def map(self, st: Map) -> None:
        if any(n == 0 for n in st.shape):
            return
        st = _tile_transpose(_collapse(st))
        ty = ELEMENT[self.dtypes[st.out.buf]]
        copy = ty not in ("float", "double")
        if copy and not (len(st.ins) == 1 and not st.accumulate and not st.extra
                         and st.expr == st.syms[0]
                         and ELEMENT[self.dtypes[st.ins[0].buf]] == ty):
            raise ValueError(f"a Map writes float or double buffers (or copies a buffer of its "
                             f"own integer type, e.g. a gather of class indices), not {ty}")
        order = _loop_order(st)
        k = self.fresh("L")[1:]
        idx: dict[int, str] = {d: "0" for d in range(len(st.shape))}
        # open the loops
        for level, d in enumerate(order):
            head = f"{k}h{level}"
            self.lines += [f"  br label %{head}", f"{head}:"]
            self.lines.append(f"  %{k}i{level} = phi i64 [ 0, %{self._block} ], "
                              f"[ %{k}n{level}, %{k}l{level} ]")
            idx[d] = f"%{k}i{level}"
            self._block = head
        body: list[str] = []
        symbols = {}
        for sym, acc in zip(st.syms, st.ins):
            def get(acc=acc):
                p = self.ptr(acc, idx, lw.lines)
                v = self.fresh("v")
                ity = ELEMENT[self.dtypes[acc.buf]]
                lw.lines.append(f"  {v} = load {ity}, ptr {p}")
                if ity != ty:
                    conv = _CONVERT.get((ity, ty)) or _CONVERT[(ity, None)]
                    c = self.fresh("v")
                    lw.lines.append(f"  {c} = {conv} {ity} {v} to {ty}")
                    v = c
                return v
            symbols[sym] = get
        if copy:                        # integers move as they are (no float round trip)
            lw = SimpleNamespace(lines=[])
            value = symbols[st.syms[0]]()
        else:
            lw = Lowerer(ty, symbols, fast_math=self.fast_math,
                         vector_attrs={s: "" for s in self.variants})
            lw.declarations, lw.attr_groups = self.decls, self.groups
            value = lw.value(sympy.sympify(st.expr))
        extras = [(acc, lw.value(sympy.sympify(e))) for acc, e in st.extra]
        body += [ln.replace("%t", f"%{k}t") for ln in lw.lines]

        def rename(v: str) -> str:
            return v.replace("%t", f"%{k}t") if v.startswith("%t") else v
        value = rename(value)
        for acc, v in extras:
            q = self.ptr(acc, idx, body)
            body.append(f"  store {ELEMENT[self.dtypes[acc.buf]]} {rename(v)}, ptr {q}")
        p = self.ptr(st.out, idx, body)
        if st.accumulate:
            old, new = self.fresh("a"), self.fresh("a")
            body.append(f"  {old} = load {ty}, ptr {p}")
            if st.combine == "add":
                flags = "fast" if self.fast_math else "reassoc"
                body.append(f"  {new} = fadd {flags} {ty} {old}, {value}")
            elif st.combine in ("max", "min"):
                fn = f"llvm.{st.combine}imum.{'f64' if ty == 'double' else 'f32'}"
                self.decls[fn] = f"declare {ty} @{fn}({ty}, {ty})"
                body.append(f"  {new} = call {ty} @{fn}({ty} {old}, {ty} {value})")
            else:
                raise ValueError(f"Map.combine must be 'add', 'max' or 'min', not {st.combine!r}")
            body.append(f"  store {ty} {new}, ptr {p}")
        else:
            body.append(f"  store {ty} {value}, ptr {p}")
        self.lines += body
        # close the loops, innermost first; the innermost loop of an elementwise nest is not
        # fully unrolled before the loop vectorizer sees it (LLVM would unroll a short row and
        # vectorize the outer loop across rows: gathers and broadcasts instead of contiguous
        # vectors). Reductions keep LLVM's choice: their float32 summation order is what the
        # programs' agreement with eager training was measured with.
        for level in reversed(range(len(order))):
            d = order[level]
            latch, after = f"{k}l{level}", f"{k}x{level}"
            inner = level == len(order) - 1 and level > 0
            tag = self.no_unroll() if inner and not st.accumulate else ""
            self.lines += [f"  br label %{latch}", f"{latch}:",
                           f"  %{k}n{level} = add nuw nsw i64 %{k}i{level}, 1",
                           f"  %{k}c{level} = icmp ult i64 %{k}n{level}, {st.shape[d]}",
                           f"  br i1 %{k}c{level}, label %{k}h{level}, label %{after}{tag}",
                           f"{after}:"]
            self._block = after

    def matmul(self, st: MatMul) -> None:
        M, N, K = st.M, st.N, st.K
        ty = ELEMENT[self.dtypes[st.c]]
        (sam, sak), (sbk, sbn) = st.a.strides, st.b.strides
        if sbn != 1 or ELEMENT[self.dtypes[st.a.buf]] != ty or ELEMENT[self.dtypes[st.b.buf]] != ty:
            raise ValueError("MatMul needs B with contiguous rows and one float type")
        x, y = sympy.Symbol("x", real=True), sympy.Symbol("y", real=True)
        mr = st.block_rows
        M4 = (M // mr) * mr
        # columns in register blocks of NV full vectors, then of two and of one vector, then
        # of a half vector (a 10-column product is a vector of 8 and an edge of 2, not all edge)
        vw = self.vector_bits // (32 if ty == "float" else 64)
        nv_max = NV if self.vector_bits >= 512 else NV_256
        n0 = 0
        tiles = []
        if M4 and K:
            widths = sorted({(vw, nv_max), (vw, 2), (vw, 1)}, key=lambda t: -t[1])
            for width, nv in widths + [(vw // 2, 1)]:
                n1 = n0 + ((N - n0) // (width * nv)) * width * nv
                if width >= 2 and n1 > n0:
                    tiles.append((n0, n1, width, nv))
                    n0 = n1
        # the register blocks store their sums; only the edges (and an empty sum) accumulate
        # into zeros
        if not tiles:
            self.fill(Fill(st.c, M * N, 0.0, st.c_offset))
        else:
            self.fill(Fill(st.c, (M - M4) * N, 0.0, st.c_offset + M4 * N))
            if n0 < N:
                self.map(Map((M4, N - n0), Access(st.c, st.c_offset + n0, (N, 1)), (), (),
                             sympy.Float(0.0)))
        for n_lo, n_hi, width, nv in tiles:
            self._tile(st, ty, M4, n_lo, n_hi, width, nv, mr)
        if not K:
            return

        def edge(m0, m1, e0, e1):
            if m1 > m0 and e1 > e0:
                self.map(Map((m1 - m0, K, e1 - e0),
                             Access(st.c, st.c_offset + m0 * N + e0, (N, 0, 1)),
                             (Access(st.a.buf, st.a.offset + m0 * sam, (sam, sak, 0)),
                              Access(st.b.buf, st.b.offset + e0, (0, sbk, 1))),
                             (x, y), x * y, True))
        edge(M4, M, 0, N)
        edge(0, M4, n0, N)

    def _tile(self, st: MatMul, ty: str, M4: int, n_lo: int, n_hi: int, vw: int,
              nv: int, MR: int) -> None:   # noqa: N803 - the rows of a block, as in GEMM papers
        """Rows ``[0, M4)`` x columns ``[n_lo, n_hi)`` of C in blocks of ``MR`` rows x ``nv``
        vectors of ``vw`` columns, accumulated in registers over k in order (multiply-adds may
        fuse: ``contract``)."""
        N, K = st.N, st.K
        (sam, sak), (sbk, _) = st.a.strides, st.b.strides
        nr = nv * vw
        self.used.update((st.c, st.a.buf, st.b.buf))
        vt = f"<{vw} x {ty}>"
        k = self.fresh("G")[1:]
        ln = self.lines
        pre = self._block
        zero = "zeroinitializer"
        # the block loops (m step MR, n step nr), then k. When B's column panel (K x nr)
        # fits in L1, n is the outer loop (the panel stays in L1 while the row blocks of A
        # stream); else m. The same sums in the same order either way.
        isz = 4 if ty == "float" else 8
        loops = {"m": (0, MR, M4), "n": (n_lo, nr, n_hi)}
        outer, inner = ("n", "m") if K * nr * isz <= PANEL_BYTES else ("m", "n")
        o0, _, _ = loops[outer]
        i0, _, _ = loops[inner]
        ln += [f"  br label %{k}h{outer}", f"{k}h{outer}:",
               f"  %{k}{outer} = phi i64 [ {o0}, %{pre} ], [ %{k}{outer}n, %{k}l{outer} ]",
               f"  br label %{k}h{inner}", f"{k}h{inner}:",
               f"  %{k}{inner} = phi i64 [ {i0}, %{k}h{outer} ], [ %{k}{inner}n, %{k}l{inner} ]",
               f"  br label %{k}hk", f"{k}hk:",
               f"  %{k}k = phi i64 [ 0, %{k}h{inner} ], [ %{k}kn, %{k}hk ]"]
        for r in range(MR):
            for v in range(nv):
                ln.append(f"  %{k}c{r}_{v} = phi {vt} [ {zero}, %{k}h{inner} ], "
                          f"[ %{k}c{r}_{v}n, %{k}hk ]")
        # B row k, columns n0 + v*vw: contiguous vector loads
        ln.append(f"  %{k}bk = mul nsw i64 %{k}k, {sbk}")
        ln.append(f"  %{k}bo = add nsw i64 %{k}bk, %{k}n")
        for v in range(nv):
            ln += [f"  %{k}bi{v} = add nsw i64 %{k}bo, {st.b.offset + v * vw}",
                   f"  %{k}bp{v} = getelementptr inbounds {ty}, ptr %b{st.b.buf}, i64 %{k}bi{v}",
                   f"  %{k}b{v} = load {vt}, ptr %{k}bp{v}, align 4"]
        ln.append(f"  %{k}ak = mul nsw i64 %{k}k, {sak}")
        for r in range(MR):
            ln += [f"  %{k}ar{r} = add nsw i64 %{k}m, {r}",
                   f"  %{k}am{r} = mul nsw i64 %{k}ar{r}, {sam}",
                   f"  %{k}ai{r} = add nsw i64 %{k}am{r}, %{k}ak",
                   f"  %{k}ao{r} = add nsw i64 %{k}ai{r}, {st.a.offset}",
                   f"  %{k}ap{r} = getelementptr inbounds {ty}, ptr %b{st.a.buf}, i64 %{k}ao{r}",
                   f"  %{k}as{r} = load {ty}, ptr %{k}ap{r}",
                   f"  %{k}ai{r}v = insertelement {vt} poison, {ty} %{k}as{r}, i64 0",
                   f"  %{k}av{r} = shufflevector {vt} %{k}ai{r}v, {vt} poison, "
                   f"<{vw} x i32> zeroinitializer"]
            for v in range(nv):
                ln += [f"  %{k}p{r}_{v} = fmul contract {vt} %{k}av{r}, %{k}b{v}",
                       f"  %{k}c{r}_{v}n = fadd contract {vt} %{k}c{r}_{v}, %{k}p{r}_{v}"]
        ln += [f"  %{k}kn = add nuw nsw i64 %{k}k, 1",
               f"  %{k}kc = icmp ult i64 %{k}kn, {K}",
               f"  br i1 %{k}kc, label %{k}hk, label %{k}st", f"{k}st:"]
        for r in range(MR):
            ln += [f"  %{k}cr{r} = add nsw i64 %{k}m, {r}",
                   f"  %{k}cm{r} = mul nsw i64 %{k}cr{r}, {N}",
                   f"  %{k}cq{r} = add nsw i64 %{k}cm{r}, %{k}n",
                   f"  %{k}co{r} = add nsw i64 %{k}cq{r}, {st.c_offset}"]
            for v in range(nv):
                ln += [f"  %{k}ci{r}_{v} = add nsw i64 %{k}co{r}, {v * vw}",
                       f"  %{k}cp{r}_{v} = getelementptr inbounds {ty}, ptr %b{st.c}, "
                       f"i64 %{k}ci{r}_{v}",
                       f"  store {vt} %{k}c{r}_{v}n, ptr %{k}cp{r}_{v}, align 4"]
        for var in (inner, outer):
            _, step, end = loops[var]
            ln += [f"  br label %{k}l{var}", f"{k}l{var}:",
                   f"  %{k}{var}n = add nuw nsw i64 %{k}{var}, {step}",
                   f"  %{k}{var}c = icmp ult i64 %{k}{var}n, {end}",
                   f"  br i1 %{k}{var}c, label %{k}h{var}, label %{k}x{var}", f"{k}x{var}:"]
        self._block = f"{k}x{outer}"

    def text(self, statements) -> str:
        self._block = "entry"
        self.lines = []
        for st in statements:
            if isinstance(st, Fill):
                self.fill(st)
            elif isinstance(st, MatMul):
                self.matmul(st)
            else:
                self.map(st)
        used = sorted(self.used)
        params = ", ".join(f"ptr noalias %b{j}" for j in used)
        body = [f"define internal void @{self.name}_body({params}) #2 {{", "entry:",
                *self.lines, "  ret void", "}", ""]
        loads = slot_loads({j: (f"b{j}", "ptr") for j in used}, "%bufs")
        args = ", ".join(f"ptr %b{j}" for j in used)
        entry = [f"define {self.linkage}i64 @{self.name}(ptr %bufs) #1 {{", "entry:", *loads,
                 f"  call void @{self.name}_body({args})", "  ret i64 0", "}", ""]
        return "\n".join(body + entry)


def build_loops_ir(name: str, dtypes: list[str], segments: list[list], *,
                   fast_math: bool = False, vector_variants: dict | None = None,
                   internal: bool = False, vector_bits: int | None = None) -> str:
    """IR text of a module with ``NAME_s<k>(ptr %bufs)`` for each segment of statements
    (``internal``: not exported from the object, for a module whose entry point calls them;
    ``vector_bits``: the register tiles' width, default by the vector variants' widest)."""
    variants = vector_variants or {}
    decls: dict[str, str] = {}
    groups: dict[str, int] = {}
    meta: list[str] = []
    funcs = []
    for k, seg in enumerate(segments):
        fn = _Function(f"{name}_s{k}", dtypes, fast_math, variants, decls, groups, meta)
        fn.linkage = "internal " if internal else ""
        if vector_bits:
            fn.vector_bits = vector_bits
        funcs.append(fn.text(seg))
    wide = prefer_width(variants)
    attrs = ["attributes #0 = { nounwind willreturn memory(none) }",
             "attributes #1 = { nounwind" + wide + " }",
             "attributes #2 = { alwaysinline nounwind" + wide + " }"]
    vattrs, vdecls = vector_declarations(groups, variants)
    return "\n".join(funcs + sorted(decls.values()) + vdecls + [""] + attrs + vattrs
                     + [""] + meta) + "\n"


class LoopModule(NativeModule):
    """The JIT-compiled segments of a loop program: ``mod.segments[k](bufs_address)``, each an
    entry point of the one convention (:mod:`codegen.native`: the slots are the buffers).

    ``cache``: a :class:`DiskCache` (object code keyed by the IR text and the target) or None.
    Attributes: those of :class:`NativeModule`.
    """

    def __init__(self, name: str, dtypes: list[str], segments: list[list], *,
                 fast_math: bool = False, cache: DiskCache | None = None,
                 entry: str = "") -> None:
        """``entry``: IR text of more entry points that call the segments (then internal to
        the module), e.g. a loop over minibatches; see :meth:`entry`."""
        target = target_mod.host_target()
        variants = target_mod.libmvec_variants(target)
        t0 = time.perf_counter()
        body = build_loops_ir(name, dtypes, segments, fast_math=fast_math,
                              vector_variants=variants, internal=bool(entry))
        # an entry's declarations that the segments already make are made once
        entry = "\n".join(ln for ln in entry.splitlines()
                           if not (ln.startswith("declare ") and ln in body))
        ir = body + entry
        seconds = time.perf_counter() - t0
        super().__init__("loops", lambda: ir, (ir,), cache=cache)
        self.llvm_ir             # made above: recorded with its time
        self.ir_seconds = seconds
        self.segments = [] if entry else [self.entry(f"{name}_s{k}")
                                          for k in range(len(segments))]
