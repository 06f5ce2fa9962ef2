"""C-ABI entry points around a batch kernel, for ahead-of-time export (``.o`` / ``.so``).

One entry point per exported function, with a stable C signature::

    int ENTRY(int64_t n, const T *in_0, ..., const T *in_m, T *out_0, ..., T *out_k);

* A *batched* array holds ``n`` samples of ``width`` elements, row-major (``in[i*width + c]``);
  an unbatched array holds ``width`` elements (model parameters in, reduced results out).
* The kernel's inputs are the arrays' elements in order (``spec.inputs`` is their
  concatenation); its outputs likewise (array outputs of batched arrays, sum/mean reductions of
  unbatched ones). Batched elements are read in place through ``spec.input_strides``.
* Status: 0 ok, 1 a null pointer, 2 ``n < 0`` (checked before any memory is touched).
  A mean over ``n == 0`` samples is NaN, as in :class:`codegen.Kernel`.

The entry point fills a stack slot array and calls the kernel's own entry point ``NAME_run`` (the
one JIT runs, codegen.native's convention) over one chunk ``[0, n)`` with a stack buffer for its
partial sums; both get internal linkage, so the object exports only the C entry points.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .kernel_ir import KernelSpec, build_kernel_ir, run_slots

STATUS_OK, STATUS_NULL, STATUS_BAD_N = 0, 1, 2


@dataclass(frozen=True)
class CArray:
    """One pointer argument of an entry point."""

    name: str
    width: int       # elements per sample (batched) or in total
    batched: bool


def strides_for(inputs: list[CArray], outputs: list[CArray]) -> tuple[tuple[int, ...],
                                                                      tuple[int, ...]]:
    """``(input_strides, output_strides)`` for a :class:`KernelSpec` fed by these arrays."""
    ins = tuple(a.width if a.batched else 1 for a in inputs for _ in range(a.width))
    outs = tuple(a.width if a.batched else 1 for a in outputs for _ in range(a.width))
    return ins, outs


def _check(spec: KernelSpec, inputs: list[CArray], outputs: list[CArray]) -> None:
    flags = [a.batched for a in inputs for _ in range(a.width)]
    if flags != list(spec.batched):
        raise ValueError(f"{spec.name}: the input arrays {[a.name for a in inputs]} do not match "
                         "the kernel's inputs (count or batched flags)")
    red = [a.batched for a in outputs for _ in range(a.width)]
    if red != [r == "none" for r in spec.reduce]:
        raise ValueError(f"{spec.name}: the output arrays {[a.name for a in outputs]} do not "
                         "match the kernel's outputs (batched arrays take reduce='none')")
    if strides_for(inputs, outputs) != (spec.input_strides, spec.output_strides):
        raise ValueError(f"{spec.name}: spec strides must be codegen.c_entry.strides_for(...)")


def c_entry_ir(spec: KernelSpec, entry: str, inputs: list[CArray], outputs: list[CArray]) -> str:
    """IR text of the entry point ``entry`` calling the kernel ``spec.name`` (not included)."""
    _check(spec, inputs, outputs)
    ty, acc = spec.ty, spec.acc_ty
    size = {"double": 8, "float": 4}
    arrays = [("in", j, a) for j, a in enumerate(inputs)] + \
             [("out", j, a) for j, a in enumerate(outputs)]
    params = ["i64 %n"] + [f"ptr %{kind}{j}" for kind, j, _ in arrays]
    lines = [f"define i32 @{entry}({', '.join(params)}) #1 {{", "entry:",
             "  %bad.n = icmp slt i64 %n, 0",
             "  br i1 %bad.n, label %err.n, label %chk0"]
    for c, (kind, j, _) in enumerate(arrays):
        nxt = f"chk{c + 1}" if c + 1 < len(arrays) else "ok"
        lines += [f"chk{c}:", f"  %null{c} = icmp eq ptr %{kind}{j}, null",
                  f"  br i1 %null{c}, label %err.null, label %{nxt}"]
    if not arrays:
        lines.append("chk0:\n  br label %ok")
    n_red = sum(r != "none" for r in spec.reduce)
    slots = run_slots(spec)
    lines += ["ok:", f"  %partials = alloca [{max(n_red, 1)} x {acc}], align 16",
              f"  %args = alloca [{len(slots)} x i64], align 8",
              "  %some = icmp sgt i64 %n, 0",
              "  %chunk = select i1 %some, i64 %n, i64 1"]
    values = ["i64 0", "i64 1", "i64 %n", "i64 %chunk"]   # one chunk over [0, n)
    for j, a in enumerate(inputs):
        for c in range(a.width):
            p = f"%in{j}.{c}"
            lines.append(f"  {p}.p = getelementptr inbounds {ty}, ptr %in{j}, i64 {c}")
            if a.batched:
                values.append(f"ptr {p}.p")
            else:               # a scalar slot holds a double
                lines.append(f"  {p} = load {ty}, ptr {p}.p, align {size[ty]}")
                if ty == "float":
                    lines.append(f"  {p}.d = fpext float {p} to double")
                    p += ".d"
                values.append(f"double {p}")
    stores = []
    r = 0
    for j, a in enumerate(outputs):
        for c in range(a.width):
            p = f"%out{j}.{c}"
            lines.append(f"  {p}.p = getelementptr inbounds {ty}, ptr %out{j}, i64 {c}")
            if a.batched:
                values.append(f"ptr {p}.p")
                continue
            k = len([1 for aa in outputs[:j] for _ in range(aa.width)]) + c
            v = f"%r{r}"
            stores += [f"  {v}.p = getelementptr inbounds {acc}, ptr %partials, i64 {r}",
                       f"  {v} = load {acc}, ptr {v}.p, align {size[acc]}"]
            if spec.reduce[k] == "mean":
                stores.append(f"  {v}.m = fdiv {acc} {v}, %nf")
                v += ".m"
            if acc != ty:
                stores.append(f"  {v}.t = fptrunc {acc} {v} to {ty}")
                v += ".t"
            stores.append(f"  store {ty} {v}, ptr {p}.p, align {size[ty]}")
            r += 1
    values.append("ptr %partials")
    for k, v in enumerate(values):
        lines += [f"  %arg{k} = getelementptr inbounds i64, ptr %args, i64 {k}",
                  f"  store {v}, ptr %arg{k}, align 8"]
    lines.append(f"  %rc = call i64 @{spec.name}_run(ptr %args)")
    if any(s.startswith("  %r") and ".m = " in s for s in stores):
        lines.append(f"  %nf = sitofp i64 %n to {acc}")
    lines += stores + [f"  ret i32 {STATUS_OK}",
                       f"err.null:\n  ret i32 {STATUS_NULL}",
                       f"err.n:\n  ret i32 {STATUS_BAD_N}", "}", ""]
    return "\n".join(lines)


def build_c_module_ir(kernels: list[tuple[KernelSpec, str, list[CArray], list[CArray]]],
                      vector_variants: dict[str, list[tuple[int, str, str]]] | None = None) -> str:
    """One module: each ``(spec, entry, inputs, outputs)`` kernel (internal) and entry point.

    ``vector_variants``: libmvec mappings for the host (:func:`codegen.target.libmvec_variants`),
    or None/{} for scalar libm calls (any other target).
    """
    parts: list[str] = []
    decls: set[str] = set()
    attrs: dict[str, str] = {}
    used: list[str] = []
    for t, (spec, entry, inputs, outputs) in enumerate(kernels):
        ir = build_kernel_ir(spec, vector_variants, entry_linkage="internal ")
        # each kernel numbers its libm attribute groups from 10: keep them apart per kernel
        ir = re.sub(r"#(\d+)\b", lambda m: f"#{int(m[1]) + 1000 * t}" if int(m[1]) >= 10
                    else m[0], ir)
        body, rest = [], []
        in_fn = False
        for line in ir.splitlines():
            if line.startswith("define "):
                in_fn = True
            if in_fn:
                body.append(line)
                if line == "}":
                    in_fn = False
            elif line.startswith("attributes #"):
                gid, _, text = line.partition(" = ")
                attrs[gid] = line
            elif line.startswith("@llvm.compiler.used"):
                used += [u.strip().removeprefix("ptr @") for u in
                         line.split("[", 2)[2].split("]")[0].split(",")]
            elif line.strip():
                rest.append(line)
        parts.append("\n".join(body))
        parts.append(c_entry_ir(spec, entry, inputs, outputs))
        decls.update(rest)
    out = parts + sorted(decls)
    used = sorted(set(used))
    if used:
        refs = ", ".join(f"ptr @{u}" for u in used)
        out.append(f'@llvm.compiler.used = appending global [{len(used)} x ptr] [{refs}], '
                   'section "llvm.metadata"')
    return "\n".join(out + [""] + sorted(attrs.values())) + "\n"
