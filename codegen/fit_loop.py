"""A native training loop: many minibatch optimizer steps in ONE generated function.

:func:`compile_fit_loop` lowers a per-sample loss and its exact parameter gradients (SymPy, the
same expressions a fused batch kernel takes) into a function that runs, for each step ``s``::

    theta = P                                   # parameters: loaded once per step, kept in registers
    for j in [offsets[s], offsets[s+1]):        # the minibatch rows, through an index array
        i = perm[j]; row = D[i, :]              # row-major data, one row per sample
        acc += (loss, dloss/dtheta)(theta, consts, row)    # float64 accumulators
    G = acc / count (mean) or acc (sum)         # the batch gradient (kept: the last one is .grad)
    losses[s] = loss; totals[s // steps_per_epoch] += loss
    update(P, G, state)                         # per group: SGD or Adam/AdamW equations

The update is the caller's: per group a :class:`GroupUpdate` — the element expressions and the
scalar expressions that symad's update tracer reads off the optimizer's own declaration
(``sgd_update`` / ``adam_update``; see ``symad/compiler/native_update.py``), lowered here as
they are: scalars from the group's values in double precision and rounded to the loop's type,
elements from the values loaded before any store. The group's values (and the step count) are a
runtime float64 array, so a learning-rate change does not recompile. codegen knows nothing about
symad: callers pass symbols, expressions and plain data.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from operator import is_
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

from .cache import DiskCache
from .kernel import NP_DTYPES, fingerprint, make_cache, source_hash
from .kernel_ir import ELEMENT_TYPE
from .lowering import Lowerer, hp_scalars_ir
from .native import NativeModule, Slots, data_pointer, slot_loads

@dataclass(frozen=True)
class UpdateVariant:
    """One traced form of a group's update: ``written`` — each array the update writes, as an
    expression of the arrays' element symbols and the runtime scalars (all computed from the
    values loaded before any store, as numpy's statement sequence); ``scalars`` — each runtime
    scalar as an expression (evaluated in double precision, then rounded to the loop's type) of
    the group's values (``hp`` symbols) and ``step``."""
    written: tuple[tuple[str, sympy.Expr], ...]
    scalars: tuple[tuple[sympy.Symbol, sympy.Expr], ...]


@dataclass(frozen=True)
class GroupUpdate:
    """The optimizer update of the flat parameter range ``[start, end)`` (one param group), as
    the caller traced it from the optimizer's own declaration (codegen restates no optimizer).

    ``arrays``: element symbol -> loop array (``"P"``, ``"G"``, ``"S0"``, ``"S1"``, ``"S2"``);
    ``hp``: the symbols of the group's values, the layout of the group's row of the runtime
    float64 ``hp`` array, which holds ``len(hp) + 2`` values: those, then the step count before
    the run (``step`` of step ``s`` is that plus ``s + 1``), then a flag (nonzero: the run's first
    step takes ``first``, e.g. SGD filling a new momentum buffer)."""
    start: int
    end: int
    arrays: tuple[tuple[sympy.Symbol, str], ...]
    hp: tuple[sympy.Symbol, ...]
    update: UpdateVariant
    first: UpdateVariant | None = None

    @property
    def width(self) -> int:
        return len(self.hp) + 2


@dataclass(frozen=True)
class FitLoopSpec:
    """Everything that determines the IR of a fit loop.

    ``params[k]`` is read from ``P[k]`` (the trained parameters, updated in place), ``consts[k]``
    from ``C[k]`` (inputs that are not trained), ``columns[c]`` from ``D[i, c]`` for sample
    ``i``. ``grads[k]`` is d(loss)/d(params[k]). ``groups`` cover ``[0, len(params))``.
    ``split``: columns ``[0, split)`` come from ``D[i, :]`` and the others from a second array
    ``D2[i, :]`` (the samples' inputs and targets as the caller holds them, no interleaved copy);
    ``None``: all from ``D``.
    """

    name: str
    params: tuple[sympy.Symbol, ...]
    consts: tuple[sympy.Symbol, ...]
    columns: tuple[sympy.Symbol, ...]
    loss: sympy.Expr
    grads: tuple[sympy.Expr, ...]
    reduction: str
    groups: tuple[GroupUpdate, ...]
    dtype: str = "float64"
    cse: bool = True
    split: int | None = None

    @property
    def ty(self) -> str:
        return ELEMENT_TYPE[self.dtype]


def _check_spec(spec: FitLoopSpec) -> None:
    if spec.dtype not in ELEMENT_TYPE:
        raise ValueError(f"dtype must be 'float64' or 'float32', got {spec.dtype!r}")
    if spec.reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {spec.reduction!r}")
    if len(spec.grads) != len(spec.params):
        raise ValueError(f"{len(spec.grads)} gradients for {len(spec.params)} parameters")
    syms = spec.params + spec.consts + spec.columns
    if len(set(syms)) != len(syms):
        raise ValueError("params, consts and columns must be distinct symbols")
    if spec.split is not None and not 0 <= spec.split <= len(spec.columns):
        raise ValueError(f"split must be in [0, {len(spec.columns)}], got {spec.split}")
    known = set(syms)
    for e in (spec.loss,) + spec.grads:
        extra = sympy.sympify(e).free_symbols - known
        if extra:
            raise ValueError(f"expression uses {sorted(map(str, extra))}, which are not inputs")
    pos = 0
    for g in spec.groups:
        arrays = {name for _, name in g.arrays}
        if not arrays <= {"P", "G", "S0", "S1", "S2"}:
            raise ValueError(f"update arrays must be among P, G, S0-S2, got {sorted(arrays)}")
        for v in (g.update,) + ((g.first,) if g.first else ()):
            if not {name for name, _ in v.written} <= arrays:
                raise ValueError("an update writes an array it does not name")
        if g.start != pos or g.end < g.start:
            raise ValueError("groups must cover the parameters in order, without gaps")
        pos = g.end
    if pos != len(spec.params):
        raise ValueError(f"groups cover {pos} of {len(spec.params)} parameters")


# ---------------------------------------------------------------------------------------------
# IR

_INTS = ["n_steps", "spe", "n_rows"]
_PTRS = ["perm", "off", "D", "D2", "P", "C", "G", "S0", "S1", "S2", "hp", "losses", "totals"]
#: the entry point's slots (codegen.native's convention), in order
SLOTS = [(n, "i64") for n in _INTS] + [(p, "ptr") for p in _PTRS]
_ARGS = [f"i64 %{n}" for n in _INTS] + [f"ptr noalias %{p}" for p in _PTRS]


def build_fit_loop_ir(spec: FitLoopSpec) -> str:
    """IR text of the module holding the entry point ``spec.name``: ``i64 (ptr args)`` with the
    slots :data:`SLOTS`, returning 0 or ``1 + i`` for a bad row index ``perm[i]``."""
    ty = spec.ty
    is_f32 = ty == "float"
    n_col = len(spec.columns)
    symbols: dict[sympy.Basic, Any] = {}
    pre: list[str] = []  # the step block: parameter and constant loads
    for k, sym in enumerate(spec.params):
        pre.append(f"  %th{k}.p = getelementptr inbounds {ty}, ptr %P, i64 {k}")
        pre.append(f"  %th{k} = load {ty}, ptr %th{k}.p")
        symbols[sym] = (lambda k=k: f"%th{k}")
    for k, sym in enumerate(spec.consts):
        pre.append(f"  %c{k}.p = getelementptr inbounds {ty}, ptr %C, i64 {k}")
        pre.append(f"  %c{k} = load {ty}, ptr %c{k}.p")
        symbols[sym] = (lambda k=k: f"%c{k}")
    lowerer: Lowerer

    split = n_col if spec.split is None else spec.split

    def column(c: int):
        def get() -> str:
            rb, arr, k = ("%rb", "%D", c) if c < split else ("%rb2", "%D2", c - split)
            lowerer.lines.append(f"  %x{c}.i = add nsw i64 {rb}, {k}")
            lowerer.lines.append(f"  %x{c}.p = getelementptr inbounds {ty}, ptr {arr}, i64 %x{c}.i")
            lowerer.lines.append(f"  %x{c} = load {ty}, ptr %x{c}.p")
            return f"%x{c}"
        return get

    for c, sym in enumerate(spec.columns):
        symbols[sym] = column(c)
    lowerer = Lowerer(ty, symbols)
    outputs = [sympy.sympify(spec.loss)] + [sympy.sympify(g) for g in spec.grads]
    if spec.cse:
        replacements, outputs = sympy.cse(
            outputs, symbols=sympy.numbered_symbols("_cse", cls=sympy.Dummy), order="none")
        for sym, sub in replacements:
            if isinstance(sub, sympy.logic.boolalg.Boolean):
                lowerer.memo[("bool", sym)] = lowerer.boolean(sub)
            else:
                lowerer.memo[sym] = lowerer.value(sub)
    values = [lowerer.value(e) for e in outputs]
    n_out = len(values)

    phis, accs, sums, fin, gvals = [], [], [], [], []
    for r, v in enumerate(values):
        if is_f32:
            accs.append(f"  %v{r}.d = fpext float {v} to double")
            v = f"%v{r}.d"
        phis.append(f"  %acc{r} = phi double [ 0.0, %step ], [ %acc{r}.next, %row ]")
        accs.append(f"  %acc{r}.next = fadd double %acc{r}, {v}")
        sums.append(f"  %sum{r} = phi double [ 0.0, %step ], [ %acc{r}.next, %row ]")
        m = f"%sum{r}"
        if spec.reduction == "mean":
            fin.append(f"  %m{r} = fdiv double %sum{r}, %cntf")
            m = f"%m{r}"
        if is_f32:
            fin.append(f"  %g{r} = fptrunc double {m} to float")
            m = f"%g{r}"
        gvals.append(m)
    # loss (rounded to the kernel type, as a batch kernel returns it) and the epoch totals
    loss = gvals[0]
    if is_f32:
        fin.append(f"  %loss = fpext float {loss} to double")
        loss = "%loss"
    fin += ["  %loss.p = getelementptr inbounds double, ptr %losses, i64 %s",
            f"  store double {loss}, ptr %loss.p",
            f"  %tot.next0 = fadd double %tot, {loss}",
            "  %ep = udiv i64 %s, %spe",
            "  %tot.p = getelementptr inbounds double, ptr %totals, i64 %ep",
            "  store double %tot.next0, ptr %tot.p",
            "  %ep.rem = urem i64 %s1, %spe",
            "  %ep.end = icmp eq i64 %ep.rem, 0",
            "  %tot.next = select i1 %ep.end, double 0.0, double %tot.next0"]
    for k in range(1, n_out):
        fin.append(f"  %gs{k}.p = getelementptr inbounds {ty}, ptr %G, i64 {k - 1}")
        fin.append(f"  store {ty} {gvals[k]}, ptr %gs{k}.p")

    upd_blocks: list[str] = []
    declarations = dict(lowerer.declarations)
    hp_off = 0
    for gi, g in enumerate(spec.groups):
        nxt = f"upd{gi + 1}" if gi + 1 < len(spec.groups) else "step.end"
        upd_blocks += _update_ir(g, gi, hp_off, ty, nxt, declarations)
        hp_off += g.width

    lines = [
        f"define internal i64 @{spec.name}.body({', '.join(_ARGS)}) #1 {{",
        "entry:",
        # every row index the steps read is within D before anything runs (else 1 + its
        # position in perm is returned); the offsets were checked by the caller
        "  %ck.lo = load i64, ptr %off",
        "  %ck.hi.p = getelementptr inbounds i64, ptr %off, i64 %n_steps",
        "  %ck.hi = load i64, ptr %ck.hi.p",
        "  br label %chk",
        "chk:",
        "  %ck = phi i64 [ %ck.lo, %entry ], [ %ck.next, %chk.ok ]",
        "  %ck.more = icmp slt i64 %ck, %ck.hi",
        "  br i1 %ck.more, label %chk.row, label %run",
        "chk.row:",
        "  %ck.p = getelementptr inbounds i64, ptr %perm, i64 %ck",
        "  %ck.r = load i64, ptr %ck.p",
        "  %ck.bad = icmp uge i64 %ck.r, %n_rows",
        "  br i1 %ck.bad, label %chk.fail, label %chk.ok",
        "chk.ok:",
        "  %ck.next = add nsw i64 %ck, 1",
        "  br label %chk",
        "chk.fail:",
        "  %ck.ret = add i64 %ck, 1",
        "  ret i64 %ck.ret",
        "run:",
        "  %has = icmp sgt i64 %n_steps, 0",
        "  br i1 %has, label %step, label %exit",
        "step:",
        "  %s = phi i64 [ 0, %run ], [ %s.next, %step.end ]",
        "  %tot = phi double [ 0.0, %run ], [ %tot.next, %step.end ]",
        *pre,
        "  %lo.p = getelementptr inbounds i64, ptr %off, i64 %s",
        "  %lo = load i64, ptr %lo.p",
        "  %s1 = add nsw i64 %s, 1",
        "  %hi.p = getelementptr inbounds i64, ptr %off, i64 %s1",
        "  %hi = load i64, ptr %hi.p",
        "  %nonempty = icmp slt i64 %lo, %hi",
        "  br i1 %nonempty, label %row, label %rows.done",
        "row:",
        "  %j = phi i64 [ %lo, %step ], [ %j.next, %row ]",
        *phis,
        "  %r.p = getelementptr inbounds i64, ptr %perm, i64 %j",
        "  %r = load i64, ptr %r.p",
        f"  %rb = mul nsw i64 %r, {split}",
        f"  %rb2 = mul nsw i64 %r, {n_col - split}",
        *lowerer.lines, *accs,
        "  %j.next = add nsw i64 %j, 1",
        "  %more.rows = icmp slt i64 %j.next, %hi",
        "  br i1 %more.rows, label %row, label %rows.done",
        "rows.done:",
        *sums,
        "  %cnt = sub nsw i64 %hi, %lo",
        "  %cntf = sitofp i64 %cnt to double",
        *fin,
        f"  br label %{'upd0' if spec.groups else 'step.end'}",
        *upd_blocks,
        "step.end:",
        "  %s.next = add nsw i64 %s, 1",
        "  %more = icmp slt i64 %s.next, %n_steps",
        "  br i1 %more, label %step, label %exit",
        "exit:",
        "  ret i64 0",
        "}",
        "",
    ]
    args = ", ".join(f"{ty_} %{n}" for n, ty_ in SLOTS)
    lines += [f"define i64 @{spec.name}(ptr %args) #1 {{", "entry:", *slot_loads(SLOTS),
              f"  %rc = call i64 @{spec.name}.body({args})", "  ret i64 %rc", "}", ""]
    lines += sorted(declarations.values())
    lines += ["", "attributes #0 = { nounwind willreturn memory(none) }",
              "attributes #1 = { nounwind }", ""]
    return "\n".join(lines)


def _update_ir(g: GroupUpdate, gi: int, hp_off: int, ty: str, nxt: str,
               decl: dict) -> list[str]:
    """The blocks of group ``gi``'s update: its scalars from its ``hp`` row, then one element per
    turn of a loop over ``[start, end)``; with a ``first`` variant, a branch on the row's flag
    at the run's first step."""
    b = f"u{gi}"
    out = [f"upd{gi}:"]
    names = [sym.name for sym in g.hp]

    def step(lw, load_base):            # this step's count: the base plus s + 1
        base, sf, v = load_base(), lw.fresh(), lw.fresh()
        lw.lines += [f"  {sf} = sitofp i64 %s1 to double", f"  {v} = fadd double {base}, {sf}"]
        return v
    variants = [("reg", g.update)] + ([("first", g.first)] if g.first else [])
    if g.first:
        f = hp_off + len(g.hp) + 1      # the row's first-step flag
        out += [f"  %{b}.fp = getelementptr inbounds double, ptr %hp, i64 {f}",
                f"  %{b}.fv = load double, ptr %{b}.fp",
                f"  %{b}.flag = fcmp une double %{b}.fv, 0.0",
                f"  %{b}.s0 = icmp eq i64 %s, 0",
                f"  %{b}.isfirst = and i1 %{b}.flag, %{b}.s0",
                f"  br i1 %{b}.isfirst, label %upd{gi}.first, label %upd{gi}.reg"]
    else:
        out.append(f"  br label %upd{gi}.reg")
    for tag, v in variants:
        p = f"{b}{tag}"
        lines, vals = hp_scalars_ir([e for _, e in v.scalars], "%hp", hp_off, names, step, ty,
                                    f"{p}.h", decl)
        scal = {sym: val for (sym, _), val in zip(v.scalars, vals)}
        out += [f"upd{gi}.{tag}:"] + lines
        if g.end == g.start:
            out.append(f"  br label %{nxt}")
            continue
        loop = f"upd{gi}.{tag}.loop"
        out += [f"  br label %{loop}", f"{loop}:",
                f"  %{p}.k = phi i64 [ {g.start}, %upd{gi}.{tag} ], [ %{p}.k.next, %{loop} ]"]
        ptrs: dict[str, str] = {}

        def ptr(name: str) -> str:
            if name not in ptrs:
                q = f"%{p}.{name}.p"
                out.append(f"  {q} = getelementptr inbounds {ty}, ptr %{name}, i64 %{p}.k")
                ptrs[name] = q
            return ptrs[name]
        el = Lowerer(ty, {})
        el.declarations = decl
        syms = {}
        for sym, name in g.arrays:
            def get(name=name):
                q, w = ptr(name), el.fresh()
                el.lines.append(f"  {w} = load {ty}, ptr {q}")
                return w
            syms[sym] = get
        for sym, val in scal.items():
            syms[sym] = (lambda val=val: val)
        el.symbols = syms
        values = [(name, el.value(sympy.sympify(e))) for name, e in v.written]
        out += [ln.replace("%t", f"%{p}.e") for ln in el.lines]
        for name, val in values:
            out.append(f"  store {ty} {val.replace('%t', f'%{p}.e')}, ptr {ptr(name)}")
        out += [f"  %{p}.k.next = add nsw i64 %{p}.k, 1",
                f"  %{p}.more = icmp slt i64 %{p}.k.next, {g.end}",
                f"  br i1 %{p}.more, label %{loop}, label %{nxt}"]
    return out


# ---------------------------------------------------------------------------------------------
# compiling and calling

def _spec_fingerprint(spec: FitLoopSpec) -> str:
    parts: list[str] = []
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        parts.append(field.name + "=")
        if field.name in ("params", "consts", "columns", "grads"):
            for e in value:
                fingerprint(sympy.sympify(e), parts)
                parts.append(";")
        elif field.name == "loss":
            fingerprint(sympy.sympify(value), parts)
        elif field.name == "groups":        # expressions by structure, not by their printing
            for g in value:
                parts.append(repr((g.start, g.end, g.arrays, g.hp)))
                for v in (g.update, g.first):
                    parts.append(sympy.srepr(v) if v is None else
                                 sympy.srepr((v.written, v.scalars)))
        else:
            parts.append(repr(value))
    return " ".join(parts)


class FitLoop:
    """A compiled fit loop (see the module docstring); call :meth:`run`.

    Attributes: ``spec``, ``llvm_ir`` (generated on first access after a cache hit),
    ``cache_hit``, ``compile_seconds``.
    """

    def __init__(self, spec: FitLoopSpec, *,
                 cache: bool | str | DiskCache = True) -> None:
        _check_spec(spec)
        self.spec = spec
        self.dtype = NP_DTYPES[spec.dtype]
        # keyed by the spec (a warm hit skips IR generation too), the codegen sources, SymPy
        self.module = NativeModule(
            "fit_loop", lambda: build_fit_loop_ir(spec),
            (_spec_fingerprint(spec), source_hash(), sympy.__version__), cache=make_cache(cache))
        self.compile_seconds, self.cache_hit = self.module.compile_seconds, self.module.cache_hit
        self._cfunc = self.module.entry(spec.name)
        self._args = Slots(len(SLOTS))
        self._lock = threading.Lock()
        self._empty = np.zeros(1, self.dtype)
        self._checked: dict = {}
        self._monotone = None           # the offsets array last found non-decreasing
        self._same: tuple = ()          # the arrays the last full check accepted
        self._same_fixed: tuple = ()
        self._same_spe = 0
        used = {name for g in spec.groups if g.end > g.start for _, name in g.arrays}
        self._state_needed = [f"S{j}" in used for j in range(3)]

    @property
    def llvm_ir(self) -> str:
        return self.module.llvm_ir

    def __repr__(self) -> str:
        s = self.spec
        return (f"<codegen.FitLoop {s.name} {s.dtype} params={len(s.params)} "
                f"columns={len(s.columns)} groups={[(g.start, g.end) for g in s.groups]}>")

    def _array(self, name: str, a: object, dtype, length: int | None, writeable: bool,
               ndim: int = 1) -> np.ndarray:
        # an array checked by the last call is checked already: dtype, shape, strides and
        # alignment cannot change in place (this holds a reference, so ``resize`` refuses)
        if a is self._checked.get(name, (None,))[0] and self._checked[name][1] == length:
            return a
        self._check_array(name, a, dtype, length, writeable, ndim)
        self._checked[name] = (a, length)
        return a

    def _check_array(self, name: str, a: object, dtype, length: int | None, writeable: bool,
                     ndim: int) -> None:
        if type(a) is not np.ndarray:
            raise TypeError(f"{self.spec.name}: {name} must be a numpy array of {dtype}, got "
                            f"{type(a).__name__}")
        if a.dtype != dtype:
            raise TypeError(f"{self.spec.name}: {name} has dtype {a.dtype}, expected {dtype}")
        if a.ndim != ndim:
            raise ValueError(f"{self.spec.name}: {name} must be {ndim}-d, got shape {a.shape}")
        if not (a.flags.c_contiguous and a.flags.aligned):
            raise ValueError(f"{self.spec.name}: {name} must be C-contiguous and aligned; use "
                             f"numpy.ascontiguousarray")
        if writeable and not a.flags.writeable:
            raise ValueError(f"{self.spec.name}: {name} must be writeable")
        if length is not None and a.shape[0] < length:
            raise ValueError(f"{self.spec.name}: {name} has length {a.shape[0]}, needs at least "
                             f"{length}")

    def run(self, perm: np.ndarray, offsets: np.ndarray, D: np.ndarray, P: np.ndarray,
            C: np.ndarray, G: np.ndarray, state: Sequence[np.ndarray | None], hp: np.ndarray,
            losses: np.ndarray, totals: np.ndarray, steps_per_epoch: int) -> None:
        """Run ``len(offsets) - 1`` steps; minibatch ``s`` is rows ``perm[offsets[s]:offsets[s+1]]``
        of ``D`` (N x len(columns), row-major; with ``spec.split``, a pair ``(D, D2)`` of
        N x split and N x (len(columns) - split) arrays). ``P`` (trained parameters), ``G``
        (gradient of the last step), the ``state`` arrays (SGD: [momentum_buffer]; Adam: [exp_avg,
        exp_avg_sq, max_exp_avg_sq]; None where unused), ``losses[s]`` and ``totals[e]``
        (sum of the losses of the steps ``[e*steps_per_epoch, (e+1)*steps_per_epoch)``) are
        written in place; the written arrays must not overlap each other or the inputs. Every
        argument is checked (dtype, shape, contiguity, offsets and indices in range) before the
        native call.
        """
        spec = self.spec
        i64, dt = np.dtype(np.int64), self.dtype
        same = (offsets, P, C, G, hp, losses, totals, *state)
        if len(same) == len(self._same) and all(map(is_, same, self._same)) \
                and steps_per_epoch == self._same_spe:
            # the arrays the last call checked, unchanged (they cannot change shape, dtype or
            # layout in place): only perm, D and the offsets' range need a look
            n_steps = offsets.shape[0] - 1
            perm = self._array("perm", perm, i64, None, False)
            D, D2 = self._data(D)
            self._check_rows(perm, offsets, D, n_steps)
            self._call(perm, offsets, D, D2, self._same_fixed, self._same_spe, n_steps)
            return
        offsets = self._array("offsets", offsets, i64, 1, False)
        n_steps = offsets.shape[0] - 1
        perm = self._array("perm", perm, i64, None, False)
        D, D2 = self._data(D)
        n_p = len(spec.params)
        P = self._array("P", P, dt, n_p, True)
        G = self._array("G", G, dt, n_p, True)
        C = self._array("C", C, dt, len(spec.consts), False)
        hp = self._array("hp", hp, np.dtype(np.float64), sum(g.width for g in spec.groups),
                         False)
        spe = int(steps_per_epoch)
        if spe < 1:
            raise ValueError(f"{spec.name}: steps_per_epoch must be >= 1, got {steps_per_epoch}")
        losses = self._array("losses", losses, np.dtype(np.float64), n_steps, True)
        totals = self._array("totals", totals, np.dtype(np.float64), -(-n_steps // spe), True)
        if len(state) != 3:
            raise ValueError(f"{spec.name}: state must list 3 arrays (or None)")
        sarrs = []
        for j in range(3):
            a = state[j]
            if self._state_needed[j]:
                if a is None:
                    raise ValueError(f"{spec.name}: state[{j}] is needed by the update")
                sarrs.append(self._array(f"state[{j}]", a, dt, n_p, True))
            else:
                sarrs.append(self._empty)
        self._check_rows(perm, offsets, D, n_steps)
        self._same = (offsets, P, C, G, hp, losses, totals, *state)
        # the data pointers of the arrays after D2, in slot order (they cannot change in place)
        fixed = {"P": P, "C": C if C.size else self._empty, "G": G, "S0": sarrs[0],
                 "S1": sarrs[1], "S2": sarrs[2], "hp": hp, "losses": losses, "totals": totals}
        self._same_fixed = tuple(data_pointer(fixed[name]) for name in _PTRS[4:])
        self._same_spe = spe
        self._call(perm, offsets, D, D2, self._same_fixed, spe, n_steps)

    def _data(self, D) -> tuple[np.ndarray, np.ndarray]:
        """``(D, D2)`` checked (``D2`` is a 1-element dummy without ``spec.split``)."""
        n_col, split = len(self.spec.columns), self.spec.split
        if split is None:
            D = self._array("D", D, self.dtype, None, False, ndim=2)
            parts, widths = (D,), (n_col,)
        else:
            if not (isinstance(D, tuple) and len(D) == 2):
                raise TypeError(f"{self.spec.name}: D must be a pair (D, D2) of arrays (the "
                                f"loop reads {split} columns from D, the rest from D2)")
            parts = (self._array("D", D[0], self.dtype, None, False, ndim=2),
                     self._array("D2", D[1], self.dtype, None, False, ndim=2))
            widths = (split, n_col - split)
        for name, a, w in zip(("D", "D2"), parts, widths):
            if a.shape[1] != w:
                raise ValueError(f"{self.spec.name}: {name} has {a.shape[1]} columns, the loop "
                                 f"reads {w}")
        if len(parts) == 2 and parts[0].shape[0] != parts[1].shape[0]:
            raise ValueError(f"{self.spec.name}: D has {parts[0].shape[0]} rows, D2 "
                             f"{parts[1].shape[0]}")
        return parts[0], (parts[1] if len(parts) == 2 else self._empty)

    def _check_rows(self, perm, offsets, D, n_steps: int) -> None:
        """The offsets non-decreasing within perm (perm's rows within D: the native code checks
        them before its first step)."""
        if n_steps <= 0:
            return
        # a read-only offsets array checked before cannot have changed
        known = offsets is self._monotone and not offsets.flags.writeable
        if offsets[0] < 0 or offsets[-1] > perm.shape[0] or (
                not known and bool(np.any(offsets[1:] < offsets[:-1]))):
            raise ValueError(f"{self.spec.name}: offsets must be non-decreasing within "
                             f"[0, len(perm)={perm.shape[0]}]")
        self._monotone = offsets        # perm's rows are checked by the native code itself

    def _call(self, perm, offsets, D, D2, fixed: tuple, spe: int, n_steps: int) -> None:
        ptr, args = data_pointer, self._args
        with self._lock:                # one argument array: one call at a time
            # SLOTS: n_steps, spe, n_rows, perm, off, D, D2, then _PTRS[4:] (``fixed``)
            args.i[:] = (n_steps, spe, D.shape[0], ptr(perm), ptr(offsets), ptr(D), ptr(D2),
                         *fixed)
            bad = self._cfunc(args.address)
        if bad:             # found before any step ran: nothing was written
            raise ValueError(f"{self.spec.name}: perm holds row indices outside [0, "
                             f"{D.shape[0]}) (D has {D.shape[0]} rows): perm[{bad - 1}] = "
                             f"{int(perm[bad - 1])}")


def compile_fit_loop(params: Sequence[sympy.Symbol], consts: Sequence[sympy.Symbol],
                     columns: Sequence[sympy.Symbol], loss: sympy.Expr,
                     grads: Sequence[sympy.Expr], *, reduction: str,
                     groups: Sequence[GroupUpdate], dtype: str = "float64",
                     cse: bool = True, name: str = "fit_loop",
                     cache: bool | str | DiskCache = True, split: int | None = None) -> FitLoop:
    """Compile a native training loop; see the module docstring and :class:`FitLoopSpec`."""
    spec = FitLoopSpec(name, tuple(params), tuple(consts), tuple(columns), sympy.sympify(loss),
                       tuple(sympy.sympify(g) for g in grads), reduction, tuple(groups), dtype,
                       bool(cse), split)
    return FitLoop(spec, cache=cache)


__all__ = ["FitLoop", "FitLoopSpec", "GroupUpdate", "UpdateVariant", "build_fit_loop_ir",
           "compile_fit_loop"]
