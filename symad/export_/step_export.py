"""``symad.export(step, (X, y), out_dir, name=...)``: a compiled training step as one C function.

The step (:func:`symad.compile_step`) is exported as it runs: its recorded tensor program
(forward, loss, registry VJPs) lowered to loop statements by
:class:`symad.compiler.native_program.NativeProgram` with every matmul as the register-tiled
loop nest (no BLAS), followed by the optimizer update statement that
:mod:`symad.compiler.native_update` traced from ``sgd_update`` — the same statements the JIT
runs, in one module whose single entry point is::

    int NAME_step(const T *X, const Y *y, T *params, T *state, T *grad, T *loss,
                  void *workspace);

(``Y``: int64_t for class indices, else ``T``.)

``params``: the trained parameters, flat, in the layout the manifest lists (the optimizer's
param-group order); ``state``: the optimizer state buffers, flat, one after the other (SGD's
``momentum_buffer``; NULL when there is none); ``grad``: receives the step's gradients;
``loss``: receives the loss (before the update); ``workspace``: ``NAME_WORKSPACE_BYTES`` bytes,
64-byte aligned, for intermediates. The batch shape is the one exported. Status: 0 ok, 1 a null
pointer, 3 a target class index out of range (checked before anything is written).

Only libm / libmvec (and memset) are needed to link it. Hyperparameters are the values at export
time (baked in); the update's scalars are computed per call from them in double precision, from
the expressions the update tracer reads off ``sgd_update`` / ``adam_update`` / ``adam_scalars``
(Adam's step size and bias correction from the step counter, kept in ``state`` after the
buffers: one per param group, incremented by each call).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from .export import ExportError, ExportResult

_ALIGN = 64
#: every matmul native (the exported code never calls BLAS)
_ALL_NATIVE = 1 << 62


def _const(ty: str, values: np.ndarray) -> str:
    flat = np.asarray(values).reshape(-1)
    if not flat.any():
        return "zeroinitializer"
    if ty in ("double", "float"):
        items = [f"{ty} 0x{struct.unpack('>Q', struct.pack('>d', float(v)))[0]:016X}"
                 for v in flat]
    else:
        items = [f"{ty} {int(v)}" for v in flat]
    return "[" + ", ".join(items) + "]"


def export_step(step, example_inputs, out_dir, *, name: str, formats=None,
                target: str | None = None, cpu: str | None = None) -> ExportResult:
    from codegen import target as cg_target
    from codegen.loops import ELEMENT, build_loops_ir, renumber

    from .. import __version__
    from ..compiler.native_program import NativeProgram
    from ..compiler.native_update import (_ADAM_KEYS, _SGD_KEYS, hp_names_of, hp_values,
                                          scalars_ir)
    from ..tensor import Tensor
    from .elf import undefined_symbols
    from .export import _IDENT

    if not isinstance(name, str) or not _IDENT.match(name):
        raise ExportError(f"name must be a C identifier, got {name!r}")
    formats = ("h", "o", "ll") if formats is None else \
        ((formats,) if isinstance(formats, str) else tuple(formats))
    if any(f not in ("h", "o", "ll") for f in formats):
        raise ExportError(f"a training step exports formats among ('h', 'o', 'll'), got "
                          f"{formats!r} (link the object into your program or library)")
    if not isinstance(example_inputs, (tuple, list)) or len(example_inputs) != 2:
        raise ExportError("a training step is exported with example_inputs=(X, y): one batch")
    X, y = (a._data if isinstance(a, Tensor) else np.asarray(a) for a in example_inputs)
    runner = step._runners.get(step._key(X, y))
    key = (X.shape, X.dtype.str, y.shape, y.dtype.str)
    if runner is None or getattr(runner, "kind", "") != "program" or key not in runner.runners:
        raise ExportError("run the compiled step once on a batch of this shape first "
                          "(step(X, y)): the export is the step as it runs, and the C function "
                          "continues training from that state (structured models only: "
                          "compile_step(..., structured=True) for small ones)")
    flat = runner.flat
    if any(g.kernel is None for g in flat.groups):
        raise ExportError("the step's update did not run natively on its last call (the "
                          "momentum buffer's first fill runs with numpy): take one more step, "
                          "then export")
    prog = runner.runners[key].prog
    grads = tuple(1 + i for i in runner._grad_idx)
    try:
        nat = NativeProgram(prog, copy_outputs=(0,) + grads, max_matmul=_ALL_NATIVE, jit=False,
                            threads=1)
    except Exception as e:  # noqa: BLE001
        raise ExportError(f"the step's program has no complete loop lowering: {e}") from e
    if nat.numpy_steps:
        raise ExportError(f"{nat.numpy_steps} step(s) of the program have no loop lowering "
                          "(symad.compiler.native_program.last_fallback and describe() say which "
                          "run as numpy); only fully native programs export")
    dt = flat.dtype.np
    ty = ELEMENT[dt.name]
    isz = dt.itemsize
    n_in = len(nat._inputs)
    param_off = {id(p): o for p, o in zip(flat.params, flat.offsets)}

    # where every buffer lives: ("arg", name, byte offset) | ("const", global) | ("work", off)
    dtypes = list(nat.dtypes)
    where: list = []
    globals_: list[str] = []
    work = 0

    def workspace(nbytes: int) -> tuple:
        nonlocal work
        off = work
        work += -(-max(nbytes, 1) // _ALIGN) * _ALIGN
        return ("work", off)
    out_of = dict(zip(nat._out_bufs, range(len(nat._out_bufs))))
    for j, d in enumerate(dtypes):
        s = nat._buffer_slot[j]
        if j < n_in:
            where.append(("arg", ("X", "y")[j], 0))
        elif j < nat._n_external:
            _, t = nat._leaves[j - n_in]
            off = param_off.get(id(t))
            if off is not None:
                where.append(("arg", "P", off * isz))
            else:
                g = f"@{name}_c{j}"
                globals_.append(f"{g} = internal constant [{max(t._data.size, 1)} x "
                                f"{ELEMENT[d]}] {_const(ELEMENT[d], t._data)}, align 64")
                where.append(("const", g))
        elif j in out_of:
            m = out_of[j]
            where.append(("arg", "L", 0) if m == 0 else
                         ("arg", "G", flat.offsets[m - 1] * isz))
        else:
            shape = nat._scratch_shapes.get(j) if s < 0 else nat.lowered.slots[s].shape
            where.append(workspace(int(np.prod(shape, dtype=np.int64)) * np.dtype(d).itemsize))
    # the update of each group: its flat slices; its scalars computed per call from the
    # group's values (baked in) and, for Adam, the step counter kept after the state buffers
    keys = list(flat.S)
    adam = flat.kind == "adam"
    n_state = len(keys) * flat.size + (len(flat.groups) if adam else 0)
    segments = [list(seg) for seg in nat.statements]
    upd, scal_slots = [], []
    for kern, places in flat.update_groups():
        table = {}
        for a, (buf, start) in enumerate(places):
            table[a] = len(dtypes)
            dtypes.append(dt.name)
            if buf in ("P", "G"):
                where.append(("arg", buf, start * isz))
            else:
                where.append(("arg", "S", (keys.index(buf) * flat.size + start) * isz))
        table[len(kern.names)] = len(dtypes)
        scal_slots.append(len(dtypes))
        dtypes.append(dt.name)
        where.append(workspace(kern.scal.size * isz))
        upd.append(renumber(kern.stmt, table))
    segments.append(upd)
    kernels = [k for k, _ in flat.update_groups()]
    hp_names = hp_names_of([k.tracer for k in kernels])
    width = len(hp_names) + 1
    hp_slot = len(dtypes)
    dtypes.append("float64")
    where.append(workspace(8 * width * len(kernels)))
    keys_env = _ADAM_KEYS if adam else _SGD_KEYS
    hp_rows = [hp_values(hp_names, {k: g.group[k] for k in keys_env}) for g in flat.groups]
    prologue = _hyper_ir(hp_rows, width, ty, adam, len(keys) * flat.size)
    scal_ir, scal_decls = scalars_ir(list(zip(scal_slots, [k.tracer.input_exprs
                                                            for k in kernels])),
                                     hp_slot, hp_names, ty, lambda lw, load: load())

    tinfo = cg_target.resolve_target(target, cpu, None)
    host = cg_target.host_target()
    variants = cg_target.libmvec_variants(tinfo) if tinfo.triple == host.triple else {}
    body = build_loops_ir(name, dtypes, segments, vector_variants=variants, internal=True)
    entry = _entry_ir(name, where, len(segments), nat._index_checks, nat, bool(n_state),
                      prologue + "\n" + scal_ir)
    decls = "\n".join(ln for ln in scal_decls.splitlines() if ln not in body)
    ir = body + "\n".join(globals_) + "\n\n" + entry + "\n" + decls + "\n"
    module, tm = cg_target.compile_ir(ir, tinfo, reloc="pic")
    obj = bytes(tm.emit_object(module))

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if "ll" in formats:
        files["ll"] = out / f"{name}.ll"
        files["ll"].write_text(ir)
    if "o" in formats:
        files["o"] = out / f"{name}.o"
        files["o"].write_bytes(obj)
    undefined = undefined_symbols(obj)
    mvec = [s for s in undefined if s.startswith("_ZGV")]
    deps = ([{"library": "libmvec", "link": "-lmvec", "symbols": mvec}] if mvec else []) + \
        [{"library": "libm/libc", "link": "-lm",
          "symbols": [s for s in undefined if not s.startswith("_ZGV")]}]
    ctype = "double" if dt == np.float64 else "float"
    ytype = "int64_t" if y.dtype == np.int64 else ctype
    layout = [{"name": runner._names.get(id(p), f"param{i}"), "shape": list(p.shape),
               "offset": o} for i, (p, o) in enumerate(zip(flat.params, flat.offsets))]
    signature = (f"int {name}_step(const {ctype} *X, const {ytype} *y, {ctype} *params, "
                 f"{ctype} *state, {ctype} *grad, {ctype} *loss, void *workspace)")
    manifest = {
        "name": name, "symad_version": __version__, "kind": "training_step",
        "dtype": dt.name, "c_type": ctype, "c_signature": signature,
        "target": {"triple": tinfo.triple, "cpu": tinfo.cpu or "generic"},
        "X": {"shape": list(X.shape), "dtype": X.dtype.name},
        "y": {"shape": list(y.shape), "dtype": y.dtype.name},
        "params": {"size": flat.size, "layout": layout},
        "state": {"buffers": keys, "step_counters": len(flat.groups) if adam else 0,
                  "size": n_state},
        "workspace_bytes": work,
        "optimizer": {"type": type(flat.optimizer).__name__,
                      "groups": [{k: v for k, v in g.group.items() if k != "params"}
                                 for g in flat.groups]},
        "status_codes": {"0": "ok", "1": "a null pointer argument",
                         "3": "a target class index out of range"},
        "runtime_dependencies": deps,
        "link_flags": " ".join(d["link"] for d in deps),
        "files": {},
    }
    if "h" in formats:
        files["h"] = out / f"{name}.h"
        files["h"].write_text(_header(name, manifest, X, y, ctype))
    files["json"] = out / f"{name}.json"
    manifest["files"] = {k: p.name for k, p in files.items()}
    files["json"].write_text(json.dumps(manifest, indent=2) + "\n")
    return ExportResult(out, files, manifest)


def _hyper_ir(rows: list, width: int, ty: str, adam: bool, counters_at: int) -> str:
    """Entry lines filling the ``hp`` workspace (after ``%bufs`` is set): each group's values,
    then (Adam) its step counter — ``state[counters_at + g]`` incremented in the state's type,
    as the optimizer's float32 counter is — as the step the scalars are computed for."""
    from codegen.lowering import ir_float
    lines = ["  %hw0 = getelementptr inbounds ptr, ptr %bufs, i64 HPSLOT",
             "  %hw = load ptr, ptr %hw0"]
    for g, row in enumerate(rows):
        for k, v in enumerate(row):
            lines += [f"  %hv{g}_{k} = getelementptr inbounds double, ptr %hw, i64 "
                      f"{g * width + k}",
                      f"  store double {ir_float(v)}, ptr %hv{g}_{k}"]
        if adam:
            c = f"%sc{g}"
            lines += [f"  {c}p = getelementptr inbounds {ty}, ptr %S, i64 {counters_at + g}",
                      f"  {c} = load {ty}, ptr {c}p",
                      f"  {c}n = fadd {ty} {c}, 1.0",
                      f"  store {ty} {c}n, ptr {c}p"]
            d = f"{c}n" if ty == "double" else f"{c}d"
            if ty == "float":
                lines.append(f"  {d} = fpext float {c}n to double")
            lines += [f"  %hw{g}step = getelementptr inbounds double, ptr %hw, i64 "
                      f"{g * width + width - 1}",
                      f"  store double {d}, ptr %hw{g}step"]
    return "\n".join(lines)


def _entry_ir(name: str, where: list, n_segments: int, index_checks, nat, state: bool,
              scalars: str) -> str:
    args = {"X": "%X", "y": "%y", "P": "%P", "S": "%S", "G": "%G", "L": "%L"}
    lines = [f"define i32 @{name}_step(ptr %X, ptr %y, ptr %P, ptr %S, ptr %G, ptr %L, "
             f"ptr %W) #1 {{", "entry:"]
    needed = ["%X", "%y", "%P", "%G", "%L", "%W"] + (["%S"] if state else [])
    acc = "false"
    for k, p in enumerate(needed):
        lines.append(f"  %n{k} = icmp eq ptr {p}, null")
        lines.append(f"  %a{k} = or i1 {acc}, %n{k}")
        acc = f"%a{k}"
    lines += [f"  br i1 {acc}, label %null, label %check0", "null:", "  ret i32 1"]
    # index arguments within their bounds before anything is written
    for c, (j, bound) in enumerate(index_checks):
        kind, arg, _ = where[j]
        n = int(np.prod(nat.lowered.slots[nat._buffer_slot[j]].shape, dtype=np.int64))
        lines += [f"check{c}:", f"  br label %ih{c}", f"ih{c}:",
                  f"  %i{c} = phi i64 [ 0, %check{c} ], [ %in{c}, %il{c} ]",
                  f"  %ic{c} = icmp ult i64 %i{c}, {n}",
                  f"  br i1 %ic{c}, label %ib{c}, label %check{c + 1}", f"ib{c}:",
                  f"  %ip{c} = getelementptr inbounds i64, ptr {args[arg]}, i64 %i{c}",
                  f"  %iv{c} = load i64, ptr %ip{c}",
                  f"  %ik{c} = icmp uge i64 %iv{c}, {bound}",     # negative: huge unsigned
                  f"  br i1 %ik{c}, label %range, label %il{c}", f"il{c}:",
                  f"  %in{c} = add nuw i64 %i{c}, 1", f"  br label %ih{c}"]
    lines += [f"check{len(index_checks)}:", "  br label %run", "range:", "  ret i32 3",
              "run:", f"  %bufs = alloca [{len(where)} x ptr], align 16"]
    for j, w in enumerate(where):
        if w[0] == "arg":
            p = f"%p{j}"
            lines.append(f"  {p} = getelementptr inbounds i8, ptr {args[w[1]]}, i64 {w[2]}")
        elif w[0] == "work":
            p = f"%p{j}"
            lines.append(f"  {p} = getelementptr inbounds i8, ptr %W, i64 {w[1]}")
        else:
            p = w[1]
        lines += [f"  %q{j} = getelementptr inbounds ptr, ptr %bufs, i64 {j}",
                  f"  store ptr {p}, ptr %q{j}"]
    hp_slot = next(j for j, w in enumerate(where) if w[0] == "work" and j == len(where) - 1)
    lines.append(scalars.replace("HPSLOT", str(hp_slot)))
    for k in range(n_segments):
        lines.append(f"  call i64 @{name}_s{k}(ptr %bufs)")
    lines += ["  ret i32 0", "}", ""]
    return "\n".join(lines)


def _header(name: str, m: dict, X, y, ctype: str) -> str:
    up = name.upper()
    layout = "\n".join(f" *   {p['name']:<24} {str(tuple(p['shape'])):<14} offset {p['offset']}"
                       for p in m["params"]["layout"])
    return f"""/* {name}.h: a symad training step ({m['optimizer']['type']}, {m['dtype']}), exported by
 * symad {m['symad_version']} for {m['target']['triple']}. Link: cc main.c {name}.o {m['link_flags']}
 *
 * One call = one training step on one batch of {X.shape[0]} rows: loss and gradients of the
 * recorded program, then the optimizer update of params and state, in place.
 *   X: {ctype}{list(X.shape)} row-major   y: {y.dtype.name}{list(y.shape)} row-major
 *   params: {m['params']['size']} values, laid out as
{layout}
 *   state: {m['state']['size']} values ({', '.join(m['state']['buffers']) or 'none: may be NULL'}{', then one step counter per param group' if m['state']['step_counters'] else ''})
 *   grad: {m['params']['size']} values (written), loss: 1 value (written, before the update)
 *   workspace: {up}_WORKSPACE_BYTES bytes, 64-byte aligned (e.g. aligned_alloc)
 * Returns 0; 1 if a pointer is NULL; 3 if a class index is out of range (nothing written).
 * Hyperparameters are the values at export time: {m['optimizer']['groups']}
 */
#ifndef {up}_H
#define {up}_H
#include <stdint.h>
#define {up}_BATCH {X.shape[0]}
#define {up}_X_SIZE {X.size}
#define {up}_Y_SIZE {y.size}
#define {up}_N_PARAMS {m['params']['size']}
#define {up}_N_STATE {m['state']['size']}
#define {up}_WORKSPACE_BYTES {m['workspace_bytes']}
#ifdef __cplusplus
extern "C" {{
#endif
{m['c_signature']};
#ifdef __cplusplus
}}
#endif
#endif
"""
