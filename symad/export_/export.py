"""``symad.export``: trace a function once, write its forward/gradient kernels as C-callable code.

Pipeline: eager run (finds the parameters) → :func:`symad.compiler.program.trace_program`
(per-sample SymPy program + batch reduction) → exact gradients by
:func:`symad.symbolic.reverse.reverse_gradient` → :mod:`codegen.c_entry` (kernel + C-ABI entry
point per function) → ``.ll`` / ``.o`` / ``.so`` / ``.h`` / test harness / manifest.
See docs/export.md for the ABI.
"""
from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sympy

from .. import _dtype as D
from .elf import EM_NAMES, e_machine, undefined_symbols

FORMATS = ("h", "o", "so", "ll")
WHAT = ("forward", "grad")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: Harness bound |got - want| <= TOL * max(1, |want|), per dtype (see docs/export.md).
TOLERANCE = {"float64": 1e-12, "float32": 1e-4}


class ExportError(Exception):
    """The export cannot be produced as asked (the message says why and what to do)."""


@dataclass
class ArgSpec:
    """One C pointer argument (an input array)."""
    name: str
    shape: tuple          # full shape; batched inputs have "N" first
    batched: bool
    requires_grad: bool
    symbols: np.ndarray   # per-sample (batched) or full (parameter) object array
    value: np.ndarray     # the example value (embedded in the test harness)


@dataclass
class OutSpec:
    name: str
    shape: tuple
    batched: bool
    reduce: str           # "none" | "sum" | "mean"
    exprs: list           # per-sample SymPy expressions, one per element
    expected: np.ndarray  # symad's eager value on the example inputs
    formulas: list | None = None  # display strings, filled by formulas()


@dataclass
class FunctionSpec:
    what: str
    c_name: str
    outputs: list[OutSpec]


@dataclass
class ExportResult:
    """What :func:`export` wrote: ``files`` (format -> path) and the ``manifest`` dict."""
    out_dir: Path
    files: dict[str, Path]
    manifest: dict
    functions: list[FunctionSpec] = field(default_factory=list)


def _as_tensor(v):
    from ..tensor import Tensor, tensor
    if isinstance(v, Tensor):
        return v
    return tensor(np.asarray(v, dtype=np.float64 if np.asarray(v).dtype.kind != "f"
                             else np.asarray(v).dtype))


def _arg_names(fn, n: int) -> list[str]:
    target = fn.forward if hasattr(fn, "forward") and hasattr(fn, "named_parameters") else fn
    try:
        ps = [p.name for p in inspect.signature(target).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        ps = []
    return [ps[j] if j < len(ps) else f"arg{j}" for j in range(n)]


def _c_ident(s: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", s)
    return s if _IDENT.match(s) else f"_{s}"


def _discover(fn, example_inputs, batched_names):
    """Tensors, names, batched flags and the parameters (graph leaves) of one example call."""
    from ..autograd.grad_mode import enable_grad
    from ..compiler.compiled import _leaves
    if isinstance(example_inputs, dict):
        names = [str(k) for k in example_inputs]
        args = [_as_tensor(v) for v in example_inputs.values()]
    else:
        args = [_as_tensor(v) for v in example_inputs]
        names = _arg_names(fn, len(args))
    names = [_c_ident(n) for n in names]
    if batched_names is None:
        data = [(nm, a.shape[0]) for nm, a in zip(names, args)
                if a.ndim >= 1 and not (a.is_leaf and a.requires_grad)]
        module_grad = hasattr(fn, "parameters") and any(
            p.requires_grad for p in fn.parameters())
        if len({k for _, k in data}) > 1 and not module_grad and not any(
                a.requires_grad for a in args):
            raise ExportError(
                "no input requires grad, so export cannot tell parameters from batched data "
                f"(leading dimensions {dict(data)}): set requires_grad=True on the parameters, "
                "or name the data inputs with batched=[...]")
        n = next((k for _, k in data), None)
        batched = [n is not None and a.ndim >= 1 and a.shape[0] == n
                   and not (a.is_leaf and a.requires_grad) for a in args]
    else:
        unknown = set(batched_names) - set(names)
        if unknown:
            raise ExportError(f"batched names {sorted(unknown)} are not inputs {names}")
        batched = [nm in set(batched_names) for nm in names]
    sizes = {args[j].shape[0] for j in range(len(args)) if batched[j]}
    if not sizes:
        raise ExportError("no batched input: export needs at least one data input whose leading "
                          "dimension is the batch (mark it in batched= or as N on the CLI)")
    if len(sizes) > 1:
        raise ExportError(f"batched inputs disagree on the batch size: {sorted(sizes)}")
    from ..program.effects import Watch
    with enable_grad(), Watch(fn, show=False) as watch:
        ref = fn(*args)
    effect = watch.found()
    if effect is not None:              # an exported kernel would not repeat it: say so, and
        watch.undo()                    # leave the model as it was (running statistics, streams)
        raise ExportError(f"cannot export {getattr(fn, '__name__', type(fn).__name__)}: "
                          f"{effect}")
    arg_ids = {id(a) for a in args}
    extra = [t for t in _leaves(ref) if id(t) not in arg_ids]
    pnames = {}
    if hasattr(fn, "named_parameters"):
        pnames = {id(p): _c_ident(k) for k, p in fn.named_parameters()}
    extra_names = [pnames.get(id(t), f"param{k}") for k, t in enumerate(extra)]
    return args, names, batched, extra, extra_names, ref


def _trace(fn, args, batched, extra, dtype):
    from ..compiler.program import symbolic_caller, trace_program
    params = [a for a, b in zip(args, batched) if not b] + list(extra)
    bpos = [j for j, b in enumerate(batched) if b]

    run = symbolic_caller(fn, args, params, bpos)

    bshapes = [tuple(args[j].shape[1:]) for j in bpos]
    return trace_program(run, [(id(p), p._data) for p in params], bshapes, dtype), params, bpos


def _eager_values(fn, args, grad_params, ref, want_grad):
    from ..autograd import grad as agrad
    value = np.asarray(ref._data, dtype=np.float64)
    grads = []
    if want_grad and grad_params:
        gs = agrad([ref], grad_params, allow_unused=True)
        grads = [np.zeros(p.shape) if g is None else np.asarray(g._data, np.float64)
                 for g, p in zip(gs, grad_params)]
    return value, grads


def _find_cc(cc: str | None) -> str | None:
    for cand in ([cc] if cc else []) + [os.environ.get("CC"), "cc", "gcc", "clang"]:
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def export(fn, example_inputs, out_dir, *, name: str, what=WHAT, formats=None,
           target: str | None = None, cpu: str | None = None, dtype=None,
           batched=None, cc: str | None = None) -> ExportResult:
    """Export ``fn``'s forward and/or exact gradient as a C library for one input signature.

    ``example_inputs``: positional arguments (tensors or arrays; names from ``fn``'s signature)
    or a dict name -> value. Batched (data) inputs share a leading dimension N, which becomes
    the C argument ``n``; by default inputs that require grad are parameters and the others with
    the common leading dimension are batched (override with ``batched=[names]``). An
    ``nn.Module``'s own parameters become further inputs after the arguments.
    ``formats``: any of ``"h"`` (header + ``NAME_test.c`` harness), ``"o"``, ``"so"``, ``"ll"``;
    ``NAME.json`` (the manifest) is always written. ``target``: an LLVM triple (default host).

    >>> import symad, tempfile
    >>> def loss(x, y, a):
    ...     return ((a * x - y) ** 2).mean()
    >>> x = symad.linspace(0, 1, 4, dtype=symad.float64)
    >>> a = symad.tensor([2.0], dtype=symad.float64, requires_grad=True)
    >>> r = symad.export(loss, (x, 3 * x, a), tempfile.mkdtemp(), name="fit", formats=("h",))
    >>> [f["name"] for f in r.manifest["functions"]]
    ['fit_forward', 'fit_grad']
    """
    from codegen import target as cg_target
    from codegen.c_entry import CArray, build_c_module_ir, strides_for
    from codegen.kernel_ir import KernelSpec

    from ..compiler.step import CompiledStep
    if isinstance(fn, CompiledStep):            # a training step: one C function per step
        from .step_export import export_step
        return export_step(fn, example_inputs, out_dir, name=name, formats=formats,
                           target=target, cpu=cpu)

    from .. import __version__
    from ..symbolic.reverse import reverse_gradient
    from .c_files import render_harness, render_header

    if not isinstance(name, str) or not _IDENT.match(name):
        raise ExportError(f"name must be a C identifier, got {name!r}")
    what = (what,) if isinstance(what, str) else tuple(what)
    if not what or any(w not in WHAT for w in what):
        raise ExportError(f"what must be a subset of {WHAT}, got {what!r}")
    host = cg_target.host_target()
    tinfo = cg_target.resolve_target(target, cpu, None)
    is_host = tinfo.triple == host.triple
    if formats is None:
        formats = FORMATS if is_host else ("h", "o", "ll")
    formats = (formats,) if isinstance(formats, str) else tuple(formats)
    if any(f not in FORMATS for f in formats):
        raise ExportError(f"formats must be a subset of {FORMATS}, got {formats!r}")
    cc_path = None
    if "so" in formats:
        if not is_host:
            raise ExportError(f"a .so for {tinfo.triple} needs a cross toolchain: export "
                              "formats=('h', 'o', 'll') and link the object with that target's "
                              "compiler (e.g. aarch64-linux-gnu-gcc -shared NAME.o -lm)")
        cc_path = _find_cc(cc)
        if cc_path is None:
            raise ExportError("formats include 'so' but no C compiler was found on PATH ($CC, "
                              "cc, gcc, clang); install one or leave 'so' out of formats")

    args, names, batched_flags, extra, extra_names, ref = _discover(fn, example_inputs, batched)
    flags = batched_flags + [False] * len(extra)
    if "grad" in what and not any(t.requires_grad for t, b in zip(list(args) + list(extra), flags)
                                  if not b):
        raise ExportError("what='grad': no parameter requires grad (set requires_grad=True "
                          "on the tensors to differentiate, or export what=('forward',))")
    all_tensors = list(args) + list(extra)
    all_names = names + extra_names
    all_batched = batched_flags + [False] * len(extra)
    if len(set(all_names)) != len(all_names):
        raise ExportError(f"input names are not distinct: {all_names}")
    if dtype is not None:
        dt = D.as_dtype(dtype)
    else:
        dt = D.float64 if any(t.dtype == D.float64 for t in all_tensors) else D.float32
    if dt.name not in TOLERANCE:
        raise ExportError(f"dtype must be float32 or float64, got {dt.name}")
    prog, params, bpos = _trace(fn, args, batched_flags, extra, dt.name)
    red = prog.reduction
    n = args[bpos[0]].shape[0]

    # C arguments in order: the call's arguments, then the module's own parameters
    psyms = {id(p): pi.symbols for p, pi in zip(params, prog.params)}
    bsyms = {j: b.symbols for j, b in zip(bpos, prog.batched)}
    specs: list[ArgSpec] = []
    for k, (t, nm, b) in enumerate(zip(all_tensors, all_names, all_batched)):
        syms = bsyms[k] if b else psyms[id(t)]
        shape = ("N",) + tuple(t.shape[1:]) if b else tuple(t.shape)
        specs.append(ArgSpec(nm, shape, b, bool(t.requires_grad) and not b, syms,
                             np.asarray(t._data, dtype=dt.np)))
    inputs = [s for a in specs for s in np.asarray(a.symbols).reshape(-1)]
    in_flags = tuple(a.batched for a in specs for _ in np.asarray(a.symbols).reshape(-1))
    c_inputs = [CArray(a.name, int(np.asarray(a.symbols).size), a.batched) for a in specs]
    want_grad = "grad" in what
    grad_args = [a for a in specs if a.requires_grad]
    grad_tensors = [t for t, a in zip(all_tensors, specs) if a.requires_grad]
    value, _ = _eager_values(fn, args, grad_tensors, ref, False)

    def out_name(base: str) -> str:
        while base in all_names:
            base += "_out"
        return base

    functions: list[FunctionSpec] = []
    if "forward" in what:
        per_sample = red == "none"
        functions.append(FunctionSpec("forward", f"{name}_forward", [OutSpec(
            out_name("out"), (("N",) if per_sample else ()) + tuple(prog.out_shape), per_sample,
            red, list(prog.per_sample), value)]))
    if want_grad:
        if red == "none" or len(prog.per_sample) != 1:
            kind = "per sample" if red == "none" else "not a scalar"
            raise ExportError("what='grad' needs a scalar loss that is a sum or mean over the "
                              f"batch; this function's output is {kind} (export "
                              "what=('forward',) instead)")
        if not grad_args:
            raise ExportError("what='grad': no parameter requires grad (set requires_grad=True "
                              "on the tensors to differentiate)")
        _, grads = _eager_values(fn, args, grad_tensors, ref, True)
        (q,) = prog.per_sample
        wrt = [s for a in grad_args for s in np.asarray(a.symbols).reshape(-1)]
        g = reverse_gradient(q, wrt)
        outs = [OutSpec(out_name("loss"), (), False, red, [q], value)]
        pos = 0
        for a, gv in zip(grad_args, grads):
            m = int(np.asarray(a.symbols).size)
            outs.append(OutSpec(out_name(f"grad_{a.name}"), a.shape, False, red, g[pos:pos + m],
                                gv))
            pos += m
        functions.append(FunctionSpec("grad", f"{name}_grad", outs))

    variants = cg_target.libmvec_variants(tinfo) if is_host else {}
    kernels = []
    for f in functions:
        c_outs = [CArray(o.name, len(o.exprs), o.batched) for o in f.outputs]
        si, so = strides_for(c_inputs, c_outs)
        exprs = tuple(e for o in f.outputs for e in o.exprs)
        reduce = tuple(o.reduce for o in f.outputs for _ in o.exprs)
        spec = KernelSpec(f"{f.c_name}_kernel", tuple(inputs), in_flags, exprs, reduce,
                          dt.name, "float64", input_strides=si, output_strides=so)
        kernels.append((spec, f.c_name, c_inputs, c_outs))
    ir = build_c_module_ir(kernels, variants)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    module, tm = cg_target.compile_ir(ir, tinfo, reloc="pic")
    obj = bytes(tm.emit_object(module))
    if "ll" in formats:
        tm_text = cg_target.create_target_machine(tinfo, reloc="pic")
        files["ll"] = out / f"{name}.ll"
        files["ll"].write_text(str(cg_target.parse(ir, tm_text)))
    if "o" in formats or "so" in formats:
        files["o"] = out / f"{name}.o"
        files["o"].write_bytes(obj)
    undefined = undefined_symbols(obj)
    mvec = [s for s in undefined if s.startswith("_ZGV")]
    libm = [s for s in undefined if not s.startswith("_ZGV")]
    deps = [{"library": "libm", "soname": "libm.so.6", "link": "-lm", "symbols": libm}]
    if mvec:
        deps.insert(0, {"library": "libmvec", "soname": "libmvec.so.1", "link": "-lmvec",
                        "symbols": mvec})
    link_flags = " ".join(d["link"] for d in deps)
    if "so" in formats:
        files["so"] = out / f"lib{name}.so"
        cmd = [cc_path, "-shared", "-o", str(files["so"]), str(files["o"])] + link_flags.split()
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise ExportError(f"linking the shared library failed: {' '.join(cmd)}\n{res.stderr}")
        if "o" not in formats:
            files.pop("o").unlink()
    ctype = "double" if dt == D.float64 else "float"
    machine = e_machine(obj) if obj[:4] == b"\x7fELF" else None
    manifest = {
        "name": name,
        "symad_version": __version__,
        "dtype": dt.name,
        "c_type": ctype,
        "target": {"triple": tinfo.triple, "cpu": tinfo.cpu or "generic",
                   "features": tinfo.features, "elf_machine": machine,
                   "elf_machine_name": EM_NAMES.get(machine) if machine else None},
        "inputs": [{"name": a.name, "shape": list(a.shape), "dtype": dt.name,
                    "role": "data" if a.batched else "parameter",
                    "requires_grad": a.requires_grad} for a in specs],
        "batch_reduction": red,
        "functions": [],
        "status_codes": {"0": "ok", "1": "a null pointer argument", "2": "n < 0"},
        "runtime_dependencies": deps,
        "vector_math": (f"glibc libmvec ({', '.join(mvec)}); glibc documents its error bound "
                        "as 4 ulp" if mvec else
                        "none: scalar libm calls" + ("" if is_host else
                                                     " (libmvec is only used for the host)")),
        "link_flags": link_flags,
        "harness_tolerance": {"bound": "|got - want| <= tol * max(1, |want|)",
                              "tol": TOLERANCE[dt.name]},
        "files": {},
    }
    for f in functions:
        manifest["functions"].append({
            "name": f.c_name, "what": f.what,
            "c_signature": _signature(f, specs, ctype),
            "outputs": [{"name": o.name, "shape": list(o.shape),
                         "reduction": o.reduce if not o.batched else "none",
                         "formulas": formulas(o, specs)} for o in f.outputs]})
    if "h" in formats:
        files["h"] = out / f"{name}.h"
        files["h"].write_text(render_header(name, specs, functions, manifest))
        files["test"] = out / f"{name}_test.c"
        files["test"].write_text(render_harness(name, specs, functions, n, dt.name,
                                                TOLERANCE[dt.name]))
    files["json"] = out / f"{name}.json"
    manifest["files"] = {k: p.name for k, p in files.items()}
    files["json"].write_text(json.dumps(manifest, indent=2) + "\n")
    return ExportResult(out, files, manifest, functions)


def _signature(f: FunctionSpec, specs: list[ArgSpec], ctype: str) -> str:
    ps = ["int64_t n"] + [f"const {ctype} *{a.name}" for a in specs]
    ps += [f"{ctype} *{o.name}" for o in f.outputs]
    return f"int {f.c_name}({', '.join(ps)})"


def display_symbols(specs: list[ArgSpec]) -> dict:
    """SymPy symbol -> a readable stand-in: ``X[i,1]`` for sample i of data, ``w[3]``."""
    sub = {}
    for a in specs:
        flat = np.asarray(a.symbols).reshape(-1)
        for c, s in enumerate(flat):
            if a.batched:
                label = f"{a.name}[i]" if flat.size == 1 else f"{a.name}[i,{c}]"
            else:
                label = f"{a.name}[{c}]"
            sub[s] = sympy.Symbol(label, real=True)
    return sub


def formulas(o: OutSpec, specs: list[ArgSpec]) -> list[str]:
    """Exact per-sample formula of each element of ``o``, as traced (no simplify: it can take
    seconds per formula; exact short binary fractions such as 0.5 are shown as 1/2)."""
    from ..symbolic.reverse import exactify_floats
    if o.formulas is None:
        sub = display_symbols(specs)
        o.formulas = [str(exactify_floats(sympy.sympify(e).xreplace(sub))) for e in o.exprs]
    return o.formulas
