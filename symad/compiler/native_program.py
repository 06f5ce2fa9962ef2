"""A recorded tensor program (:mod:`symad.program`) as native loop segments.

Every step the loop lowering covers becomes statements of :mod:`codegen.loops` — read from the
registry, never restated:

* views (``permute``, ``expand``, ``reshape`` of a dense layout) are index arithmetic, no copy;
* an elementwise op's forward is its registry SymPy formula, and a partial step is ``g`` times the
  registry's derivative (:meth:`Op.derivative_exprs`) summed to the input's shape — one loop each,
  broadcasting by zero strides;
* ``sum`` / ``mean`` / ``sum_to_size`` are accumulating loops (``mean`` then divides by the count,
  as numpy does), a 2-D ``matmul`` up to ``MAX_NATIVE_MATMUL`` multiply-adds is an accumulating
  ``i, k, j`` loop nest.

The rest (losses, ``log_softmax``, indexing, integer ops, large matmuls that BLAS does faster)
runs as the replay runs it (:func:`symad.program.run.step_fn`: the registry's numpy code). Steps
are scheduled so that native steps gather into as few segments as the data flow allows; one
segment is one native call. Buffers are allocated once per program; each call validates the
arguments' shape, dtype and contiguity before any native code reads them.
"""
from __future__ import annotations

import ctypes
import math
import os

import numpy as np
import sympy

from codegen import DiskCache, fpmode
from codegen.pool import NativePool
from codegen.threads import default_threads
from codegen.loops import (ALIGN, ELEMENT, Access, Fill, Index, LoopModule, Map, MatMul,
                           aligned_zeros, renumber)
from codegen.lowering import Lowerer, LoweringError

from ..program.ir import Program, Step
from ..program.run import step_fn

#: A 2-D matmul runs as the native register-tiled loop nest up to ``MAX_NATIVE_MATMUL``
#: multiply-adds; above, numpy's BLAS (it blocks for caches and packs panels). Measured with
#: ``python benchmarks/bench_native_program.py --matmul`` (float32, AVX-512 register tiles of 8
#: rows x 2 vectors from 2^20 multiply-adds, fused multiply-adds): 0.5-1.2x BLAS's time at every
#: shape of the three benchmark models up to 2.6e7 multiply-adds (128x784x256: 333 vs 367 us);
#: the 784 step is fastest with every matmul native (no numpy step between segments).
MAX_NATIVE_MATMUL = 1 << 26

_VIEWS = ("permute", "expand", "reshape")
_FLOATS = ("float32", "float64")
_REDUCTIONS = ("sum", "mean", "sum_to_size", "amax", "amin")
_COMBINE = {"amax": ("max", -math.inf), "amin": ("min", math.inf)}


def _dense(shape) -> tuple:
    st, acc = [], 1
    for n in reversed(shape):
        st.append(acc)
        acc *= n
    return tuple(reversed(st))


class _View:
    """Where a slot's elements are: buffer, element offset, strides per slot dimension."""

    __slots__ = ("buf", "offset", "shape", "strides")

    def __init__(self, buf, offset, shape, strides) -> None:
        self.buf, self.offset, self.shape, self.strides = buf, offset, tuple(shape), tuple(strides)

    def dense(self) -> bool:
        return all(s == d for s, d, n in zip(self.strides, _dense(self.shape), self.shape)
                   if n != 1)

    def broadcast(self, shape) -> tuple:
        """Strides of this view read over the (broadcast) loop ``shape``."""
        lead = len(shape) - len(self.shape)
        out = [0] * lead
        for n, s, m in zip(self.shape, self.strides, shape[lead:]):
            out.append(s if n == m else 0)
        return tuple(out)

    def access(self, shape) -> Access:
        return Access(self.buf, self.offset, self.broadcast(shape))


def _params_key(params: dict):
    """A hashable form of numeric op parameters (None when they are not all plain numbers)."""
    if any(v is not None and type(v) not in (int, float, bool) for v in params.values()):
        return None
    return tuple(sorted(params.items()))


class NotLowered(Exception):
    """This step has no loop lowering (it runs as numpy)."""


class _Builder:
    def __init__(self, prog: Program, max_matmul: int) -> None:
        self.prog = prog
        self.max_matmul = max_matmul
        self.dtypes: list[str] = []           # per buffer
        self.buffer_slot: list[int] = []      # per buffer: the slot whose array it is
        self.views: dict[int, _View] = {}
        self.scratch_shapes: dict[int, tuple] = {}
        self.n_external = 0                   # buffers of inputs and leaves (set by the caller)
        #: (op name, input slots, params) of each lowered elementwise forward -> its result slot
        self.forward_of: dict = {}
        #: (external buffer, bound): an index read from an argument; the caller checks
        #: ``0 <= index < bound`` before every call (the eager IndexError, not the clamp)
        self.index_checks: list[tuple[int, int]] = []

    def buffer(self, slot: int) -> int:
        s = self.prog.slots[slot]
        self.dtypes.append(s.dtype.np.name)
        self.buffer_slot.append(slot)
        b = len(self.dtypes) - 1
        self.views[slot] = _View(b, 0, s.shape, _dense(s.shape))
        return b

    # -- one step -> statements (or NotLowered) -------------------------------------------------
    def lower(self, st: Step) -> list:
        slots = self.prog.slots
        ty = slots[st.out].dtype.np.name
        if any(i not in self.views for i in st.ins):
            raise NotLowered("an input is not in a buffer")
        name = st.op.name
        if st.partial is None and name in _VIEWS:
            self.views[st.out] = self._view(st)
            return []
        if ty not in _FLOATS or any(slots[i].dtype.np.name not in ELEMENT for i in st.ins):
            raise NotLowered(f"{ty} result or an input of a dtype loops do not load")
        if st.elementwise:
            return self._elementwise(st)
        if st.partial is None and name in ("gather", "scatter_add"):
            return self._indexed(st)
        if any(slots[i].dtype.np.name != ty for i in st.ins):
            raise NotLowered("a structural op over mixed dtypes")
        if st.partial is None and name in _REDUCTIONS:
            return self._reduce(st)
        if st.partial is None and name == "matmul":
            return self._matmul(st)
        raise NotLowered(name)

    def _view(self, st: Step) -> _View:
        v = self.views[st.ins[0]]
        name = st.op.name
        if name == "permute":
            dims = [d % len(v.shape) for d in st.params["dims"]] if v.shape else []
            return _View(v.buf, v.offset, [v.shape[d] for d in dims], [v.strides[d] for d in dims])
        if name == "expand":
            return _View(v.buf, v.offset, st.shape, v.broadcast(st.shape))
        if not v.dense():
            raise NotLowered("reshape of a strided view")
        return _View(v.buf, v.offset, st.shape, _dense(st.shape))

    def _expr(self, st: Step, syms: list) -> sympy.Expr:
        params = st.params
        if any(v is not None and type(v) not in (int, float, bool) for v in params.values()):
            raise NotLowered("non-numeric parameters")
        args, psyms, ders = st.op.derivative_exprs(params) if st.partial is not None else \
            (None, None, None)
        if st.partial is None:
            expr = sympy.sympify(st.op.formula(*syms[:st.op.nargs], **params))
        else:
            rep = dict(zip(args, syms[:len(args)]))
            rep.update({s: params[k] for k, s in psyms.items() if s is not None})
            expr = syms[-1] * ders[st.partial].xreplace(rep)
        # a construct codegen cannot lower runs as numpy (checked here, once)
        try:
            Lowerer("double", {s: (lambda: "0.0") for s in syms}).value(expr)
        except (LoweringError, RecursionError) as e:
            raise NotLowered(str(e)) from None
        return expr

    def _elementwise(self, st: Step) -> list:
        syms = [sympy.Symbol(f"x{j}", real=True) for j in range(len(st.ins))]
        expr = self._expr(st, syms)
        key = (st.op.name, st.ins[:st.op.nargs], _params_key(st.params))
        if st.partial is None:
            out = self.buffer(st.out)
            if key[2] is not None:
                self.forward_of[key] = st.out
            shape = st.shape
            ins = tuple(self.views[i].access(shape) for i in st.ins)
            return [Map(shape, Access(out, 0, _dense(shape)), ins, tuple(syms), expr)]
        # g * d op/d input_i over g's shape, summed to the input's shape; where the derivative
        # holds the forward itself (tanh' = 1 - tanh^2, exp' = exp), the forward's result is
        # loaded instead of computed again
        fwd = self.forward_of.get(key) if key[2] is not None else None
        ins_slots = list(st.ins)
        if fwd is not None and fwd in self.views:
            f = sympy.sympify(st.op.formula(*syms[:st.op.nargs], **st.params))
            if not f.is_Atom and expr.has(f):
                ysym = sympy.Symbol(f"x{len(syms)}", real=True)
                expr = expr.xreplace({f: ysym})
                syms.append(ysym)
                ins_slots.append(fwd)
        shape = self.prog.slots[st.ins[-1]].shape
        g = self.views[st.ins[-1]]
        if (expr == syms[len(st.ins) - 1] and tuple(st.shape) == tuple(shape)
                and self.prog.slots[st.out].dtype == self.prog.slots[st.ins[-1]].dtype):
            self.views[st.out] = g              # the partial is g itself (d(x + y)/dx): a view
            return []
        out = self.buffer(st.out)
        ins = tuple(self.views[i].access(shape) for i in ins_slots)
        target = _View(out, 0, st.shape, _dense(st.shape))
        reduce = target.broadcast(shape) != _dense(shape) or len(st.shape) != len(shape)
        m = Map(shape, target.access(shape), ins, tuple(syms), expr, accumulate=reduce)
        return [Fill(out, max(1, math.prod(st.shape))), m] if reduce else [m]

    def _index(self, slot: int, dim_stride: int, bound: int, shape) -> Index:
        """The index operand of a gather/scatter: an int64 view of an argument's buffer."""
        v = self.views[slot]
        if self.prog.slots[slot].dtype.np.name != "int64" or v.buf >= self.n_external:
            raise NotLowered("an index that is not an int64 argument (its bounds are checked "
                             "per call)")
        if tuple(v.shape) != tuple(shape):
            raise NotLowered("an index of another shape than the loop")
        if (v.buf, bound) not in self.index_checks:
            self.index_checks.append((v.buf, bound))
        return Index(v.access(shape), dim_stride, bound)

    def _indexed(self, st: Step) -> list:
        """``gather(x, index, dim)``: ``out[p] = x[p with p[dim] = index[p]]``;
        ``scatter_add(x, index, src, dim)``: a copy of ``x`` plus ``src[p]`` added at those
        positions, in index order (``np.add.at``'s order)."""
        slots = self.prog.slots
        x = self.views[st.ins[0]]
        ishape = slots[st.ins[1]].shape
        nd = len(x.shape)
        if nd == 0 or len(ishape) != nd:
            raise NotLowered("gather/scatter of other than equal-rank tensors")
        dim = st.params["dim"] % nd
        if any(ishape[d] > x.shape[d] for d in range(nd) if d != dim) or 0 in ishape:
            raise NotLowered("an index larger than the tensor")
        xs = sympy.Symbol("x0", real=True)
        if st.op.name == "gather":
            ix = self._index(st.ins[1], x.strides[dim], x.shape[dim], ishape)
            strides = tuple(0 if d == dim else x.strides[d] for d in range(nd))
            out = self.buffer(st.out)
            return [Map(ishape, Access(out, 0, _dense(ishape)),
                        (Access(x.buf, x.offset, strides, ix),), (xs,), xs)]
        src = self.views[st.ins[2]]
        if any(ishape[d] > src.shape[d] for d in range(nd)):
            raise NotLowered("an index larger than src")
        out = self.buffer(st.out)
        dense = _dense(x.shape)
        ix = self._index(st.ins[1], dense[dim], x.shape[dim], ishape)
        ostr = tuple(0 if d == dim else dense[d] for d in range(nd))
        return [Map(x.shape, Access(out, 0, dense), (x.access(x.shape),), (xs,), xs),
                Map(ishape, Access(out, 0, ostr, ix), (Access(src.buf, src.offset, src.strides),),
                    (xs,), xs, True)]

    def _reduce(self, st: Step) -> list:
        src = self.views[st.ins[0]]
        shape = src.shape
        if st.op.name == "sum_to_size":
            kept = tuple(st.shape)
            target = _View(0, 0, kept, _dense(kept))
            ostrides = target.broadcast(shape)
        else:
            dim, keepdim = st.params.get("dim"), st.params.get("keepdim", False)
            nd = len(shape)
            axes = set(range(nd)) if dim is None else \
                {d % max(nd, 1) for d in ((dim,) if isinstance(dim, int) else dim)}
            kept_shape = [1 if d in axes else n for d, n in enumerate(shape)]
            dense = _dense(kept_shape)
            ostrides = tuple(0 if d in axes else dense[d] for d in range(nd))
            del keepdim          # the result's layout is the same with or without the 1s
        out = self.buffer(st.out)
        x = sympy.Symbol("x0", real=True)
        n_out = max(1, math.prod(st.shape))
        combine, start = _COMBINE.get(st.op.name, ("add", 0.0))
        if combine != "add" and math.prod(shape) == 0:
            raise NotLowered("max/min of an empty tensor (the eager error)")
        stmts = [Fill(out, n_out, start),
                 Map(shape, Access(out, 0, ostrides), (src.access(shape),), (x,), x, True,
                     combine=combine)]
        if st.op.name == "mean":
            count = math.prod(shape) // n_out if n_out else 0
            flat = (n_out,)
            stmts.append(Map(flat, Access(out, 0, (1,)), (Access(out, 0, (1,)),), (x,),
                             x / sympy.Integer(count)))
        return stmts

    def _matmul(self, st: Step) -> list:
        a, b = (self.views[i] for i in st.ins)
        if len(a.shape) != 2 or len(b.shape) != 2:
            raise NotLowered("matmul of other than two matrices")
        (M, K), (_, N) = a.shape, b.shape
        if M * K * N > self.max_matmul:
            raise NotLowered("large matmul (BLAS)")
        stmts = []
        if b.strides[1] != 1 and N > 1:
            # the register-tiled loop reads B by rows: copy a transposed B (x @ W.T) once
            t = self.scratch(st.ins[1], (K, N))
            x = sympy.Symbol("x0", real=True)
            stmts.append(Map((K, N), Access(t.buf, 0, _dense((K, N))), (b.access((K, N)),),
                             (x,), x))
            b = t
        out = self.buffer(st.out)
        bstr = (b.strides[0], 1) if N == 1 else b.strides
        return stmts + [MatMul(M, N, K, out, Access(a.buf, a.offset, a.strides),
                               Access(b.buf, b.offset, bstr))]

    def scratch(self, like: int, shape) -> _View:
        """A contiguous buffer of ``like``'s dtype for an intermediate no slot names."""
        s = self.prog.slots[like]
        self.dtypes.append(s.dtype.np.name)
        self.buffer_slot.append(-10 ** 9 - len(self.dtypes))      # owned, not a slot
        self.scratch_shapes[len(self.dtypes) - 1] = tuple(shape)
        return _View(len(self.dtypes) - 1, 0, shape, _dense(shape))


def expand(prog: Program) -> Program:
    """``prog`` with each forward step of an op that declares ``decompose`` (the registry's
    statement of its forward in other registered ops, checked equal to its numpy forward by the
    op table) replaced by the recorded steps of that decomposition, so loops can lower it."""
    from ..program import capture
    from ..tensor import Tensor
    if not any(st.partial is None and st.op.decompose is not None for st in prog.steps):
        return prog
    slots, leaves, steps = list(prog.slots), list(prog.leaves), []
    for st in prog.steps:
        if st.partial is not None or st.op.decompose is None:
            steps.append(st)
            continue
        args = tuple(Tensor._wrap(np.zeros(slots[i].shape, slots[i].dtype.np), slots[i].dtype)
                     for i in st.ins)
        op, params = st.op, st.params
        made = []                               # zeros: any index argument is in bounds

        def run(*ts, op=op, params=params):
            r = op.decompose(*ts, **params)
            made.append(r is not None)
            return r if r is not None else ts[0]
        sub, out, _, _ = capture(run, args, wrt=[])
        if not made[0]:
            steps.append(st)                    # the op keeps this case as one step
            continue
        last = sub.outputs[0]
        if (not sub.steps or sub.steps[-1].out != last or out._dtype != st.dtype
                or tuple(out.shape) != tuple(st.shape)):
            steps.append(st)                    # not a plain chain ending in the result
            continue
        m = dict(zip(sub.inputs, st.ins))
        for s, t in sub.leaves:
            slots.append(sub.slots[s])
            m[s] = len(slots) - 1
            leaves.append((m[s], t))
        for sst in sub.steps:
            if sst.out == last:
                m[sst.out] = st.out
            else:
                slots.append(sub.slots[sst.out])
                m[sst.out] = len(slots) - 1
            steps.append(Step(sst.op, tuple(m[i] for i in sst.ins), sst.params, m[sst.out],
                              sst.dtype, sst.partial, sst.shape))
    return Program(slots, list(prog.inputs), leaves, steps, list(prog.outputs))


def _macs(slots, st: Step) -> int:
    (M, K), (_, N) = (slots[i].shape for i in st.ins)
    return M * K * N


#: ``permute(A @ B)`` is computed as ``B.T @ A.T`` from this many multiply-adds: below, the
#: product and its transposed copy are cheaper than the loop nest over a strided A
TRANSPOSE_MIN = 1 << 16


def transpose_products(prog: Program, max_matmul: int | None = None) -> Program:
    """``permute(A @ B, (1, 0))`` as ``B.T @ A.T`` when the product is used by that permute only
    and runs in BLAS (above ``MAX_NATIVE_MATMUL``; the native loop nest prefers its own shape):
    the VJP of ``x @ W.T`` computes ``(x.T @ g).T``, and the transposed result would otherwise be
    copied element by element (a strided gather) into the gradient buffer. The permuted operands
    are views (free); numpy's BLAS takes them with its transpose flags. The same sums, possibly in
    another order than BLAS used for the untransposed product (the agreement check bounds it)."""
    from ..ops.registry import REGISTRY
    users: dict[int, int] = {}
    for st in prog.steps:
        for i in st.ins:
            users[i] = users.get(i, 0) + 1
    for o in prog.outputs:
        users[o] = users.get(o, 0) + 1
    made = {st.out: st for st in prog.steps}
    slots, steps, drop = list(prog.slots), [], set()
    rewrite: dict[int, Step] = {}
    for st in prog.steps:
        if (st.partial is None and st.op.name == "permute" and len(st.shape) == 2
                and tuple(d % 2 for d in st.params["dims"]) == (1, 0)):
            m = made.get(st.ins[0])
            if (m is not None and m.partial is None and m.op.name == "matmul"
                    and users.get(m.out) == 1 and all(len(slots[i].shape) == 2 for i in m.ins)
                    and _macs(slots, m) > TRANSPOSE_MIN):
                rewrite[st.out] = m
                drop.add(m.out)
    if not rewrite:
        return prog
    permute = REGISTRY["permute"]
    for st in prog.steps:
        if st.out in drop:
            continue
        m = rewrite.get(st.out)
        if m is None:
            steps.append(st)
            continue
        a, b = m.ins
        views = []
        for src in (b, a):
            sl = slots[src]
            slots.append(type(sl)(tuple(reversed(sl.shape)), sl.dtype, "step"))
            views.append(len(slots) - 1)
            steps.append(Step(permute, (src,), {"dims": (1, 0)}, len(slots) - 1, sl.dtype,
                              shape=tuple(reversed(sl.shape))))
        steps.append(Step(m.op, tuple(views), dict(m.params), st.out, st.dtype, shape=st.shape))
    return Program(slots, list(prog.inputs), list(prog.leaves), steps, list(prog.outputs))


class NativeProgram:
    """``NativeProgram(prog)(*input_arrays) -> output arrays`` — same contract as
    :class:`symad.program.Runner`, with the covered steps as native loop segments.

    Output arrays are buffers this object owns: read (or copy) them before the next call.
    ``prog`` is the program as recorded, ``lowered`` the one the loops run (decompositions
    expanded, BLAS products transposed); ``native_steps`` / ``numpy_steps`` count its steps each
    way; ``segments`` the native calls.
    """

    def __init__(self, prog: Program, *, cache: DiskCache | None = None,
                 copy_outputs: tuple[int, ...] = (), max_matmul: int | None = None,
                 jit: bool = True, threads: int | None = None) -> None:
        """``max_matmul``: the largest native matmul (multiply-adds; default
        ``MAX_NATIVE_MATMUL``); ``jit=False``: plan the statements without compiling them
        (export builds its own module from ``statements``); ``threads``: the threads a call
        splits large matmuls over (default ``symad.get_num_threads()``; results do not depend
        on it)."""
        self.prog = prog                   # as recorded (Runner's contract)
        max_matmul = MAX_NATIVE_MATMUL if max_matmul is None else max_matmul
        prog = self.lowered = transpose_products(expand(prog), max_matmul)
        b = _Builder(prog, max_matmul)
        slots = prog.slots
        self._inputs = list(prog.inputs)
        for s in prog.inputs:
            b.buffer(s)
        for s, _ in prog.leaves:
            b.buffer(s)
        self._n_external = b.n_external = len(b.dtypes)
        shapes = [s.shape for s in slots]
        dtypes = [s.dtype.np for s in slots]
        # list scheduling: native steps whose inputs are ready gather into one segment; numpy
        # steps run between segments
        pending = list(prog.steps)
        ready = set(prog.inputs) | {s for s, _ in prog.leaves}
        plan, segments = [], []
        numpy_steps: set = set()
        made_in: dict[int, int] = {}     # slot -> index in ``plan`` of the item that makes it
        self.native_steps = self.numpy_steps = 0
        while pending:
            seg, progress, lowered = [], True, 0
            while progress:
                progress = False
                for st in list(pending):
                    if all(i in ready for i in st.ins) and st not in numpy_steps:
                        try:
                            stmts = b.lower(st)
                        except NotLowered:
                            numpy_steps.add(st)
                            continue
                        seg += stmts
                        pending.remove(st)
                        ready.add(st.out)
                        made_in[st.out] = len(plan) if stmts else max(
                            (made_in.get(i, -1) for i in st.ins), default=-1)
                        self.native_steps += 1
                        lowered += 1
                        progress = True
            if seg:
                plan.append(("seg", len(segments)))
                segments.append(seg)
            ran = False
            for st in list(pending):
                if all(i in ready for i in st.ins) and st in numpy_steps:
                    made_in[st.out] = len(plan)
                    plan.append(("np", step_fn(st, shapes, dtypes), st.ins, st.out))
                    pending.remove(st)
                    ready.add(st.out)
                    b.buffer(st.out)     # native steps read it from this (contiguous) buffer
                    self.numpy_steps += 1
                    ran = True
            if not lowered and not ran:
                raise RuntimeError("native program: no step can run (the program's data flow "
                                   "is not a DAG over its inputs)")
        # outputs written into the caller's arrays (``out=``) by a last native loop each
        self._copy_outputs = tuple(copy_outputs)
        self._out_bufs = []
        copies = []
        # an output made in a buffer of its own that nothing else views is written straight
        # into the caller's array instead (its statements renumbered; no copy loop)
        viewers: dict = {}
        for s_, v in b.views.items():
            viewers.setdefault(v.buf, []).append(s_)
        alias: dict = {}
        for k in self._copy_outputs:
            s = prog.outputs[k]
            sl = slots[s]
            if s < 0 or sl.dtype.np.name not in _FLOATS:
                raise NotLowered(f"output {k} cannot be copied natively")
            j = len(b.dtypes)
            b.dtypes.append(sl.dtype.np.name)
            b.buffer_slot.append(-1 - k)
            self._out_bufs.append(j)
            v = b.views[s]
            if (not numpy_steps and v.buf >= b.n_external and v.buf not in alias
                    and v.buf not in b.scratch_shapes and b.buffer_slot[v.buf] == s
                    and viewers.get(v.buf) == [s] and v.offset == 0 and v.dense()):
                alias[v.buf] = j
                continue
            xs = sympy.Symbol("x0", real=True)
            copies.append(Map(sl.shape, Access(j, 0, _dense(sl.shape)),
                              (b.views[s].access(sl.shape),), (xs,), xs))
        if alias:
            segments = [[renumber(st, alias) for st in seg] for seg in segments]
        if copies:
            # appended to the first segment that runs once every copied output is made
            after = max(made_in.get(prog.outputs[k], -1) for k in self._copy_outputs)
            target = next((i for i in range(max(after, 0), len(plan)) if plan[i][0] == "seg"),
                          None)
            if target is None:
                plan.append(("seg", len(segments)))
                segments.append(copies)
            else:
                segments[plan[target][1]] = segments[plan[target][1]] + copies
        self._index_checks = b.index_checks
        self.threads = default_threads() if threads is None else int(threads)
        if self.threads > 1:
            segments, plan = _parallel_matmuls(segments, plan, self.threads)
        self.segments = len(segments)
        self.statements = segments          # codegen.loops statements of each segment
        self.dtypes = b.dtypes
        self._scratch_shapes = b.scratch_shapes
        self.module = LoopModule("prog", b.dtypes, segments, cache=cache) if jit else None
        self._calls = self.module.segments if jit else []
        # arrays: one per buffer (external ones are bound per call)
        self._arrays = [None] * len(b.dtypes)
        self._ptrs = np.zeros(len(b.dtypes), dtype=np.int64)
        self._ptrs_addr = self._ptrs.ctypes.data
        self._tasks: dict = {}              # parallel segments -> their native task table
        for j in range(self._n_external, len(b.dtypes)):
            if j in b.scratch_shapes:
                arr = aligned_zeros(b.scratch_shapes[j], b.dtypes[j])
                self._arrays[j] = arr
                self._ptrs[j] = arr.ctypes.data
                continue
            if b.buffer_slot[j] < 0 or j in alias:
                continue                        # an out= array, bound per call
            sl = slots[b.buffer_slot[j]]
            arr = aligned_zeros(sl.shape, sl.dtype.np)
            self._arrays[j] = arr
            self._ptrs[j] = arr.ctypes.data
        self._buf_of = {s: j for j, s in enumerate(b.buffer_slot) if s >= 0}
        self._buffer_slot = b.buffer_slot
        self._views = b.views
        self._leaves = list(prog.leaves)
        self._bound = [None] * len(b.dtypes)
        self._staged: dict = {}             # buffer -> the aligned copy of a misaligned input
        reads: dict = {}                    # input buffer -> multiply-adds reading it as B
        for st in (st for seg in segments for st in seg if isinstance(st, MatMul)):
            reads[st.b.buf] = reads.get(st.b.buf, 0) + st.M * st.N * st.K
        self._stage_ok = {
            j for j, s in enumerate(self._inputs) if b.dtypes[j] in _FLOATS
            and reads.get(j, 0) >= STAGE_REUSE * max(int(np.prod(slots[s].shape)), 1)}
        self._plan = plan
        self._seg_order = [k for item in plan if item[0] != "np"
                           for k in (item[1] if item[0] == "par" else [item[1]])]
        # what a call runs when there are no numpy steps: a segment, or segments in parallel
        self._runs = [(item[0] == "par", item[1]) for item in plan if item[0] != "np"]
        self._parallel = any(par for par, _ in self._runs)
        self._copied = dict(zip(self._copy_outputs, self._out_bufs))
        # the numpy value of a view slot that a numpy step or an output reads: a numpy view of
        # its buffer, made once for the buffers this object owns, per call for the arguments
        self._np_views = {s: v for s, v in b.views.items() if s not in self._buf_of}
        # a numpy step's result is bound in place (no copy) when it has the recorded layout
        self._np_bufs = {buf_of_out for buf_of_out in
                         (self._buf_of[item[3]] for item in plan if item[0] == "np")}
        self._own = {j: self._arrays[j] for j in self._np_bufs}
        self._fixed = {s: self._as_numpy(v) for s, v in self._np_views.items()
                       if v.buf >= self._n_external and v.buf not in self._np_bufs}

    def _bind(self, j: int, a, what: str) -> None:
        s = self._buffer_slot[j]
        sl = self.lowered.slots[s if s >= 0 else self.lowered.outputs[-1 - s]]
        want = sl.dtype.np
        if not isinstance(a, np.ndarray) or a.shape != sl.shape or a.dtype != want:
            got = (f"{a.dtype}{list(a.shape)}" if isinstance(a, np.ndarray)
                   else type(a).__name__)
            raise ValueError(f"native program: {what} must be {want}{list(sl.shape)} (the shape "
                             f"and dtype it was recorded with), got {got}")
        if s < 0 and not (a.flags.c_contiguous and a.flags.writeable):
            raise ValueError(f"native program: {what} must be a writeable C-contiguous array")
        # a contiguous array is bound by identity (its data is read live at every call); a
        # strided one is copied, and copied again at every call (it may change in place). So is
        # a large input off a cache line that products read as B often enough to repay the copy
        # (``_stage_ok``), into an aligned buffer of ours: vector loads of its rows would each
        # split over two lines (~10 % of the 784 step). Leaves are never staged: they stay
        # bound by identity, which the steady-state step checks.
        stage = j in self._stage_ok and a.nbytes >= STAGE_MIN and (
            a.ctypes.data % ALIGN or not a.flags.c_contiguous)
        self._bound[j] = a if a.flags.c_contiguous and not stage else None
        if stage:
            buf = self._staged.get(j)
            if buf is None or buf.shape != a.shape or buf.dtype != a.dtype:
                buf = self._staged[j] = aligned_zeros(a.shape, a.dtype)
            np.copyto(buf, a)
            a = buf
        elif not a.flags.c_contiguous:
            a = np.ascontiguousarray(a)
        self._arrays[j] = a
        self._ptrs[j] = a.ctypes.data

    def __call__(self, *arrays, out=None) -> list:
        """``out``: the arrays that the ``copy_outputs`` outputs are written into (they are
        returned in their places)."""
        n_in = len(self._inputs)
        if len(arrays) != n_in:
            raise TypeError(f"native program: expected {n_in} input arrays, got {len(arrays)}")
        if len(out or ()) != len(self._out_bufs):
            raise TypeError(f"native program: expected {len(self._out_bufs)} out= arrays, got "
                            f"{len(out or ())}")
        for k, j, a in zip(self._copy_outputs, self._out_bufs, out or ()):
            if a is not self._bound[j]:
                self._bind(j, a, f"out array for output {k}")
        for j, a in enumerate(arrays):
            if a is not self._bound[j]:
                self._bind(j, a, f"input {j}")
        self.bind_leaves()
        if self._index_checks:
            self.check_indices()
        vals: dict = {}
        if self.numpy_steps:
            with np.errstate(all="ignore"):        # as the replay: once, not per step
                self._run_plan(vals)
        elif self._parallel:
            self.run_segments()
        else:
            for k in self._seg_order:
                self._calls[k](self._ptrs_addr)
        copied = self._copied
        return [self._bound[copied[k]] if k in copied else
                None if s < 0 else self._value(s, vals)
                for k, s in enumerate(self.lowered.outputs)]

    def bind_leaves(self) -> None:
        """Point the leaf buffers at the leaves' current arrays (parameters, constants)."""
        n_in = len(self._inputs)
        for k, (s, t) in enumerate(self._leaves):
            j = n_in + k
            a = t._data
            if a is not self._bound[j]:
                self._bind(j, a, f"tensor {self.lowered.slots[s].name or f'%{s}'}")

    def check_indices(self) -> None:
        """Every index argument within its bound (the eager IndexError), before native code."""
        for j, bound in self._index_checks:
            check_index(self._arrays[j], bound, j)

    def run_segments(self) -> None:
        """Every segment in order (a program without numpy steps), row blocks of large
        matmuls on the thread pool."""
        calls, addr = self._calls, self._ptrs_addr
        for par, k in self._runs:
            if par:
                self._run_parallel(k)
            else:
                calls[k](addr)

    def _run_parallel(self, ks) -> None:
        """Segments ``ks`` (row blocks of one product) at once; their task table for the
        native workers (entry points, this program's buffer-pointer array) is made once."""
        key = tuple(ks)
        calls = [self._calls[j] for j in key]
        tasks = self._tasks.get(key)
        if tasks is None:
            tasks = self._tasks[key] = np.empty((len(calls), 2), np.int64)
            tasks[:, 0] = [ctypes.cast(c, ctypes.c_void_p).value for c in calls]
            tasks[:, 1] = self._ptrs_addr
        _run_parallel(calls, self._ptrs_addr, tasks)

    def _run_plan(self, vals: dict) -> None:
        arrays_, buf_of = self._arrays, self._buf_of
        for item in self._plan:
            if item[0] == "seg":
                self._calls[item[1]](self._ptrs_addr)
                continue
            if item[0] == "par":
                self._run_parallel(item[1])
                continue
            _, f, ins, out = item
            r = f(*[self._value(i, vals) for i in ins])
            j = buf_of[out]
            dst = self._own[j]
            if r.shape != dst.shape:
                raise RuntimeError(f"native program: step result {r.shape} is not the recorded "
                                   f"shape {dst.shape}")
            if r.dtype == dst.dtype and r.flags.c_contiguous and r.flags.aligned:
                arrays_[j] = r                    # read in place by the next segments
                self._ptrs[j] = r.ctypes.data
            else:
                np.copyto(dst, r, casting="unsafe")
                arrays_[j] = dst
                self._ptrs[j] = dst.ctypes.data

    def _value(self, s: int, vals: dict) -> np.ndarray:
        j = self._buf_of.get(s)
        if j is not None:
            return self._arrays[j]
        v = self._fixed.get(s)
        if v is None:
            v = vals.get(s)
            if v is None:
                v = vals[s] = self._as_numpy(self._np_views[s])
        return v

    def _as_numpy(self, view: _View) -> np.ndarray:
        base = self._arrays[view.buf]
        isz = base.itemsize
        return np.lib.stride_tricks.as_strided(
            base.reshape(-1)[view.offset:], view.shape, [st * isz for st in view.strides],
            writeable=False)


#: a float input of at least this many bytes that does not start on a cache line (``ALIGN``)
#: is copied into an aligned buffer at every call (smaller ones are read where they are)
STAGE_MIN = 1 << 16
#: ... when products read it as their B operand at least this many times per element (the
#: 784 step's batch: 256 times, staged; the digits batch: 32 times, read where it is)
STAGE_REUSE = 128

#: a matmul of at least this many multiply-adds is split into row blocks run on threads. With
#: Python threads a hand-off cost ~75 us here (at 2^21 two threads made the 784 step 1.82 ms and
#: digits 0.49 ms, at 2^26 1.26 and 0.25 ms, as with one thread). The native workers
#: (codegen.pool) take a row block in ~2 us, and one 128x784x256 product runs 1.75x faster on
#: two threads, but a split step gains little: 2^21 and 2^23 gave the 784 step 1.27-1.34 ms vs
#: 1.34-1.38 at 2^26 and digits no gain (row blocks move activations between the cores'
#: caches). (benchmarks/bench_native_program.py --threads 2 [--parallel-min N])
PARALLEL_MIN = 1 << 26


def _parallel_matmuls(segments: list, plan: list, threads: int) -> tuple[list, list]:
    """Segments with each large MatMul cut out into ``threads`` blocks of rows that run in
    parallel (plan item ``("par", [segment, ...])``). A row's value does not depend on the
    blocks (they start at multiples of the register block's rows: the same tiles and edges as
    the whole product), so results are bitwise those of one thread."""
    new_segments: list = []
    new_plan: list = []
    for item in plan:
        if item[0] != "seg":
            new_plan.append(item)
            continue
        run: list = []
        for st in segments[item[1]]:
            if isinstance(st, MatMul) and st.M * st.N * st.K >= PARALLEL_MIN:
                br = st.block_rows
                step = -(-(-(-st.M // threads)) // br) * br
                bounds = [(m0, min(m0 + step, st.M)) for m0 in range(0, st.M, step)]
                if len(bounds) > 1:
                    if run:
                        new_plan.append(("seg", len(new_segments)))
                        new_segments.append(run)
                        run = []
                    ks = []
                    for m0, m1 in bounds:
                        ks.append(len(new_segments))
                        new_segments.append([st.rows(m0, m1)])
                    new_plan.append(("par", ks))
                    continue
            run.append(st)
        if run:
            new_plan.append(("seg", len(new_segments)))
            new_segments.append(run)
    return new_segments, new_plan


_POOL = None


def _part(call, addr: int, mode) -> None:
    fpmode.enter(mode)
    call(addr)


def _run_parallel(calls: list, addr: int, tasks: np.ndarray) -> None:
    """The ``calls`` (``tasks``: their table for the native workers) on the native pool
    (codegen.pool: this thread and the workers take them), else ``calls[0]`` on this thread
    and the others on a Python pool (ctypes releases the GIL)."""
    pool = NativePool.shared(len(calls) - 1)
    if pool is not None:
        pool.run(tasks)
        return
    global _POOL
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor
        _POOL = ThreadPoolExecutor(max(1, (os.cpu_count() or 2) - 1),
                                   thread_name_prefix="symad-native")
    mode = fpmode.current()                 # the workers compute as this thread does
    futures = [_POOL.submit(_part, c, addr, mode) for c in calls[1:]]
    calls[0](addr)
    for f in futures:
        f.result()


def check_index(a: np.ndarray, bound: int, j: int) -> None:
    """``IndexError`` unless every entry of the index argument ``j`` is in ``[0, bound)``."""
    if a.size and (a.min() < 0 or a.max() >= bound):
        bad = a[(a < 0) | (a >= bound)].flat[0]
        raise IndexError(f"native program: index {int(bad)} in input {j} is out of bounds for "
                         f"size {bound} (a target class index must be in [0, {bound}))")


#: ``False`` turns the native lowering off (programs replay as numpy); for A/B measurements.
ENABLED = True


def _agrees(got: np.ndarray, want: np.ndarray) -> bool:
    """Native vs eager within the dtype's summation-order error (loops sum sequentially, numpy
    pairwise; float32 kernels accumulate in float32 like numpy does)."""
    if got.shape != want.shape:
        return False
    g = np.asarray(got, np.float64)
    w = np.asarray(want, np.float64)
    if not np.array_equal(np.isnan(g), np.isnan(w)):
        return False
    ok = ~np.isnan(w)
    if not ok.any():
        return True
    scale = float(np.max(np.abs(w[ok]))) if np.isfinite(w[ok]).all() else 0.0
    tol = (1e-4 if want.dtype == np.float32 else 1e-10) * max(scale, 1e-30)
    return bool(np.all(np.abs(g[ok] - w[ok]) <= tol) or np.array_equal(g[ok], w[ok]))


def native(prog: Program, args, want: list, out: list | None = None,
           copy_outputs: tuple[int, ...] = ()) -> NativeProgram | None:
    """``prog`` as a :class:`NativeProgram` if it has native steps and reproduces ``want``
    (the eager results of the recording call) on ``args``; else None (the caller replays).
    ``copy_outputs`` / ``out``: outputs written into the caller's arrays (see the class)."""
    if not ENABLED:
        return None
    try:
        nat = NativeProgram(prog, cache=DiskCache(), copy_outputs=copy_outputs)
        if nat.native_steps == 0:
            return _fallback("no step has a loop lowering")
        if out is not None:
            out = [np.empty_like(a) for a in out]  # scratch: the caller's arrays stay as they are
        got = nat(*args, out=out)
    except Exception as e:  # noqa: BLE001 - the replay is correct and runs instead
        return _fallback(f"{type(e).__name__}: {e}")
    if all((a is None) == (b is None) and (a is None or _agrees(a, b)) for a, b in zip(got, want)):
        return nat
    return _fallback("the native program disagreed with the recording call")


#: Why the last lowering attempt fell back to the numpy replay (None: it did not); for
#: performance debugging — a fallback is never an error (the replay is the reference).
last_fallback: str | None = None


def _fallback(why: str) -> None:
    global last_fallback
    last_fallback = why
    return None


def describe(run) -> str:
    """What one replay of ``run`` (a NativeProgram or a Runner) calls."""
    if isinstance(run, NativeProgram):
        return (f"tensor program: {run.segments} native call(s) for {run.native_steps} steps, "
                f"{run.numpy_steps} numpy steps")
    return f"tensor program of {len(run.prog)} steps (numpy/BLAS calls, one per step)"


def split(prog: Program, seed: int) -> tuple[Program, Program, list[int], list[int]]:
    """A program with an upstream-gradient input ``seed`` as two programs: the forward (steps
    not depending on the seed; outputs: the value, then every forward slot the backward reads)
    and the backward (inputs: the seed, the call's inputs it reads, then those saved slots;
    outputs: the gradients). Returns ``(forward, backward, saved, inputs_read)``."""
    tainted = {seed}
    fwd, bwd = [], []
    for st in prog.steps:
        if any(i in tainted for i in st.ins):
            tainted.add(st.out)
            bwd.append(st)
        else:
            fwd.append(st)
    leaf_slots = {s for s, _ in prog.leaves}
    made = {st.out for st in fwd}
    read = {i for st in bwd for i in st.ins if i not in tainted}
    read |= {o for o in prog.outputs[1:] if o >= 0 and o not in tainted}
    saved = sorted(read & made)
    ins_read = [s for s in prog.inputs if s in read]
    f = Program(prog.slots, [s for s in prog.inputs if s != seed],
                [(s, t) for s, t in prog.leaves if any(s in st.ins for st in fwd)], fwd,
                [prog.outputs[0]] + saved)
    b = Program(prog.slots, [seed] + ins_read + saved,
                [(s, t) for s, t in prog.leaves
                 if s in leaf_slots and any(s in st.ins for st in bwd)], bwd,
                list(prog.outputs[1:]))
    return f, b, saved, ins_read


class NativeEntry:
    """A recorded program with a seed (``symad.compile``'s program path) as a native forward
    and a native backward. Every forward writes its value and the slots the backward reads into
    fresh arrays, so any number of forwards may precede their backwards (as with eager)."""

    def __init__(self, prog: Program, seed: int) -> None:
        self.prog = prog
        self.seed = seed
        fwd, bwd, self.saved, ins_read = split(prog, seed)
        self._in_pos = [[s for s in prog.inputs if s != seed].index(s) for s in ins_read]
        slots = prog.slots
        # float outputs are written into fresh arrays by the native code; others (a saved mask)
        # are copied with numpy
        floats = [k for k, s in enumerate(fwd.outputs) if slots[s].dtype.np.name in _FLOATS]
        self._np_copy = [k for k in range(len(fwd.outputs)) if k not in floats]
        self.fwd = NativeProgram(fwd, cache=DiskCache(), copy_outputs=tuple(floats))
        self._fwd_out = [(slots[fwd.outputs[k]].shape, slots[fwd.outputs[k]].dtype.np)
                         for k in floats]
        grads = [k for k, s in enumerate(bwd.outputs) if s >= 0]
        self.bwd = NativeProgram(bwd, cache=DiskCache(), copy_outputs=tuple(grads))
        self._grads = grads
        self._bwd_out = [(slots[bwd.outputs[k]].shape, slots[bwd.outputs[k]].dtype.np)
                         for k in grads]
        self.native_steps = self.fwd.native_steps + self.bwd.native_steps
        self.numpy_steps = self.fwd.numpy_steps + self.bwd.numpy_steps
        self.segments = self.fwd.segments + self.bwd.segments

    def forward(self, *arrays):
        """``(value, state)``; ``state`` is what :meth:`backward` needs."""
        outs = self.fwd(*arrays, out=[np.empty(sh, dt) for sh, dt in self._fwd_out])
        for k in self._np_copy:
            outs[k] = np.array(outs[k], copy=True)
        return outs[0], ([arrays[p] for p in self._in_pos], outs[1:])

    def backward(self, state, seed: np.ndarray) -> list:
        ins, saved = state
        outs = self.bwd(seed, *ins, *saved,
                        out=[np.empty(sh, dt) for sh, dt in self._bwd_out])
        return outs


def native_entry(prog: Program, seed: int, args, want_value, want_grads) -> NativeEntry | None:
    """:class:`NativeEntry` if it covers steps natively and reproduces the replay's value and
    gradients (for a seed of ones) on ``args``; else None."""
    if not ENABLED:
        return None
    try:
        ent = NativeEntry(prog, seed)
        if ent.native_steps == 0:
            return _fallback("no step has a loop lowering")
        value, state = ent.forward(*args)
        slot = prog.slots[seed]
        grads = ent.backward(state, np.ones(slot.shape, slot.dtype.np))
    except Exception as e:  # noqa: BLE001 - the replay is correct and runs instead
        return _fallback(f"{type(e).__name__}: {e}")
    if _agrees(value, want_value) and all(
            (a is None) == (b is None) and (a is None or _agrees(a, b))
            for a, b in zip(grads, want_grads)):
        return ent
    return _fallback("the native program disagreed with the recording call")
