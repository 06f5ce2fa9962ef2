"""``step.fit`` on the tensor-program path: the full minibatches of an epoch (of all epochs, when
nothing runs between them) as ONE native call.

The module is the program's own loop statements (:class:`NativeProgram`'s segments) between a
gather and the update, inside a loop over the minibatches::

    for b in range(n_batches):
        Xb[i] = X[perm[b * bs + i]], yb[i] = y[perm[b * bs + i]]   # gather (codegen Index)
        loss, G = program(Xb, yb, params)                           # the recorded step
        update(P, G, state)                                         # the traced sgd_update
        losses[b] = loss

The rows come in ``DataLoader(shuffle=True, generator=g)``'s order (the caller draws the
permutations: :meth:`symad.Generator.permutations`); afterwards ``.grad`` (the last batch's),
optimizer state and version counters are what the same number of ``step(X, y)`` calls leave.
"""
from __future__ import annotations

import numpy as np
import sympy

from codegen import DiskCache
from codegen.loops import ELEMENT, Access, Index, LoopModule, Map, aligned_zeros, renumber
from codegen.native import slot_loads

from .native_program import NativeProgram, check_index
from .native_update import hp_names_of, hp_values, scalars_ir


def _batch_step(lw, load_base) -> str:
    """The step count of batch ``%b``: the first batch's (``hp``'s last entry) plus ``b``."""
    base, bf, v = load_base(), lw.fresh(), lw.fresh()
    lw.lines += [f"  {bf} = uitofp i64 %b to double", f"  {v} = fadd double {base}, {bf}"]
    return v


class EpochsUnavailable(Exception):
    """The program cannot run whole epochs natively (the message says why)."""


class NativeEpochs:
    """The native epoch loop of one recorded batch shape (``nat``'s) and ``flat``'s update."""

    def __init__(self, nat: NativeProgram, flat, n_rows: int) -> None:
        if nat.numpy_steps or nat.module is None:
            raise EpochsUnavailable("the program has numpy steps")
        slots = nat.lowered.slots
        loss_slot = nat.lowered.outputs[0]
        if loss_slot not in nat._buf_of:
            raise EpochsUnavailable("the loss is not in a buffer of its own")
        if any(j != 1 for j, _ in nat._index_checks):
            raise EpochsUnavailable("an index argument other than y")
        self.nat, self.flat, self.n_rows = nat, flat, int(n_rows)
        xs, ys = (slots[s] for s in nat.lowered.inputs)
        self.bs = xs.shape[0]
        self.x_spec = ((self.n_rows,) + tuple(xs.shape[1:]), xs.dtype.np)
        self.y_spec = ((self.n_rows,) + tuple(ys.shape[1:]), ys.dtype.np)
        fx = int(np.prod(xs.shape[1:], dtype=np.int64))
        fy = int(np.prod(ys.shape[1:], dtype=np.int64))
        dtypes = list(nat.dtypes)
        XA, YA, PERM = len(dtypes), len(dtypes) + 1, len(dtypes) + 2
        dtypes += [xs.dtype.np.name, ys.dtype.np.name, "int64"]
        self._perm_slot = PERM
        x = sympy.Symbol("x", real=True)
        n = self.n_rows

        def gather(dst: int, src: int, width: int) -> Map:
            return Map((self.bs, width), Access(dst, 0, (width, 1)),
                       (Access(src, 0, (0, 1), Index(Access(PERM, 0, (1, 0)), width, n)),),
                       (x,), x)
        segments = [[gather(0, XA, fx), gather(1, YA, fy)]]
        segments += [list(nat.statements[k]) for k in nat._seg_order]
        # each group's update statement after the program, on the flat buffers
        self._update_places: list = []
        upd = []
        for kern, places in flat.update_groups():
            table = {}
            for a, (buf, start) in enumerate(places):
                table[a] = len(dtypes)
                dtypes.append(flat.dtype.np.name)
                self._update_places.append((buf, start))
            table[len(places)] = len(dtypes)
            dtypes.append(flat.dtype.np.name)
            self._update_places.append((kern, None))
            upd.append(renumber(kern.stmt, table))
        segments.append(upd)
        self.kernels = [k for k, _ in flat.update_groups()]
        # the update's runtime scalars, computed per batch in the loop from the group's values
        # (``hp``, float64) and the step count: the tracer's expressions of them
        scal_slots = [j for j, (buf, start) in enumerate(self._update_places, len(nat.dtypes) + 3)
                      if start is None]
        self.HP = len(dtypes)
        dtypes.append("float64")
        try:
            self.hp_names = hp_names_of([k.tracer for k in self.kernels])
        except ValueError as e:
            raise EpochsUnavailable(str(e)) from None
        exprs = [(slot, kern.tracer.input_exprs) for kern, slot in zip(self.kernels, scal_slots)]
        # per kernel: its group's values, then the first batch's step count
        self.hp = np.zeros((len(self.kernels), len(self.hp_names) + 1))
        self.dtypes = dtypes
        ty = ELEMENT[slots[loss_slot].dtype.np.name]
        loss_buf = nat._buf_of[loss_slot]
        entry = _entry_ir(len(segments), PERM, len(dtypes), self.bs, loss_buf, ty,
                          scalars_ir(exprs, self.HP, self.hp_names,
                                     ELEMENT[flat.dtype.np.name], _batch_step))
        self.module = LoopModule("epochs", dtypes, segments, cache=DiskCache(), entry=entry)
        self._run = self.module.entry("epochs_run")
        #: one training step on the batch bound in ``nat`` (buffers 0, 1): the program and the
        #: update in one native call (``FastStep``); its argument is :meth:`step_pointers`
        self.step = self.module.entry("epochs_step")
        self._xb = aligned_zeros(xs.shape, xs.dtype.np)
        self._yb = aligned_zeros(ys.shape, ys.dtype.np)
        # the buffers' slots, then epochs_run's: all of perm, the batch count, the losses
        self._ptrs = np.zeros(len(dtypes) + 3, np.int64)

    def run(self, X: np.ndarray, y: np.ndarray, perm: np.ndarray, env_of) -> np.ndarray:
        """``len(perm) // bs`` steps over rows ``perm`` of ``(X, y)``; returns the losses
        (float64). ``env_of(kernel)``: the group values the kernel's guards are checked on."""
        nat, flat = self.nat, self.flat
        for a, (shape, dt), what in ((X, self.x_spec, "X"), (y, self.y_spec, "y")):
            if a.shape != shape or a.dtype != dt or not a.flags.c_contiguous:
                raise ValueError(f"native epochs: {what} must be a C-contiguous {dt}{list(shape)}"
                                 f" array, got {a.dtype}{list(a.shape)}")
        if perm.dtype != np.int64 or perm.ndim != 1 or not perm.flags.c_contiguous \
                or perm.size % self.bs:
            raise ValueError("native epochs: perm must be C-contiguous int64 whole batches")
        if perm.size and int(perm.view(np.uint64).max()) >= self.n_rows:
            raise ValueError(f"native epochs: perm holds rows outside [0, {self.n_rows})")
        for j, bound in nat._index_checks:            # y's class indices (see __init__)
            check_index(y, bound, j)
        for g, kern in enumerate(self.kernels):
            env = env_of(kern)
            if not kern.tracer.holds(env):
                raise ValueError("native epochs: the update's hyperparameter structure changed")
            self.set_values(g, env)
        p = self.step_pointers()
        n0 = len(nat._ptrs)
        p[0], p[1] = self._xb.ctypes.data, self._yb.ctypes.data
        p[n0], p[n0 + 1] = X.ctypes.data, y.ctypes.data
        n_b = perm.size // self.bs
        losses = np.empty(n_b, np.float64)
        p[self.HP + 1:] = perm.ctypes.data, n_b, losses.ctypes.data
        self._run(p.ctypes.data)
        return losses


    def set_values(self, g: int, env: dict) -> None:
        """Kernel ``g``'s row of ``hp``: its group's values, then the step count of the first
        batch (``env["step"]``; 0 where the update reads none)."""
        self.hp[g, :-1] = hp_values(self.hp_names, env)
        self.hp[g, -1] = env.get("step", 0.0)

    def step_pointers(self) -> np.ndarray:
        """The buffer-pointer array of a call (its address is the native functions' argument):
        the program's (the batch ``nat`` has bound, its leaves, ``.grad`` views), the flat
        update buffers and the kernels' scalar buffers, ``hp``. Call again after ``nat``
        rebinds anything."""
        nat, flat = self.nat, self.flat
        nat.bind_leaves()
        for k, j, a in zip(nat._copy_outputs, nat._out_bufs, flat.gviews):
            if nat._bound[j] is not a:
                nat._bind(j, a, f"out array for output {k}")
        p = self._ptrs
        n0 = len(nat._ptrs)
        p[:n0] = nat._ptrs
        p[n0:n0 + 3] = 0                    # the whole data and perm: bound by ``run``
        p[self.HP + 1:] = 0                 # ``run``'s own slots
        j = n0 + 3
        for buf, start in self._update_places:
            if start is None:
                p[j] = buf.scal.ctypes.data
            else:
                arr = flat.buffer(buf)
                p[j] = arr.ctypes.data + start * arr.itemsize
            j += 1
        p[self.HP] = self.hp.ctypes.data
        return p


def _entry_ir(n_segments: int, perm_slot: int, run_slot: int, bs: int, loss_buf: int, ty: str,
              scalars: tuple[str, str]) -> str:
    """``epochs_run`` (gather, program, update per batch; slots ``run_slot`` on: all of perm,
    the batch count, the losses) and ``epochs_step`` (program and update on the bound batch,
    the step count ``hp``'s base)."""
    widen, lw = ("  %lw = fpext float %lv to double", "%lw") if ty == "float" else ("", "%lv")
    prog = "\n".join(f"  call i64 @epochs_s{k}(ptr %bufs)" for k in range(1, n_segments - 1))
    upd = scalars[0] + f"\n  call i64 @epochs_s{n_segments - 1}(ptr %bufs)"
    calls = "  call i64 @epochs_s0(ptr %bufs)\n" + prog + "\n" + upd
    run_args = "\n".join(slot_loads({run_slot: ("perm", "ptr"), run_slot + 1: ("nb", "i64"),
                                     run_slot + 2: ("losses", "ptr")}, "%bufs"))
    return f"""
define i64 @epochs_step(ptr %bufs) #1 {{
entry:
  %b = add i64 0, 0
{prog}
{upd}
  ret i64 0
}}

define i64 @epochs_run(ptr %bufs) #1 {{
entry:
{run_args}
  %pq = getelementptr inbounds ptr, ptr %bufs, i64 {perm_slot}
  %lq = getelementptr inbounds ptr, ptr %bufs, i64 {loss_buf}
  br label %head
head:
  %b = phi i64 [ 0, %entry ], [ %bn, %body ]
  %more = icmp ult i64 %b, %nb
  br i1 %more, label %body, label %done
body:
  %off = mul nuw i64 %b, {bs}
  %pp = getelementptr inbounds i64, ptr %perm, i64 %off
  store ptr %pp, ptr %pq
{calls}
  %lp = load ptr, ptr %lq
  %lv = load {ty}, ptr %lp
{widen}
  %lo = getelementptr inbounds double, ptr %losses, i64 %b
  store double {lw}, ptr %lo
  %bn = add nuw i64 %b, 1
  br label %head
done:
  ret i64 0
}}
{scalars[1]}
"""
