"""The batch kernel as LLVM IR text: one loop over [start, end) with fused reductions.

The kernel body (internal; all pointers ``noalias``; array outputs are indexed by the absolute
element index, so threads write disjoint ranges of the same arrays)::

    void NAME(i64 start, i64 end,
              <per input: ptr (batched array) or T (scalar parameter)>,
              <per output with reduce="none": ptr>,
              ptr partials)        ; ACC[n_reductions]: sums over [start, end) are stored here

T is double or float; ACC is T, or double when float32 kernels accumulate in float64.

Its entry point (:func:`run_entry_ir`; codegen.native's convention) runs it over chunks::

    i64 NAME_run(ptr args)   ; slots: c0, c1, n, chunk, <inputs>, <array outputs>, partials
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from .lowering import Lowerer
from .native import slot_loads
from .target import libm_element_type

REDUCTIONS = ("none", "sum", "mean")

ELEMENT_TYPE = {"float64": "double", "float32": "float"}


@dataclass(frozen=True)
class KernelSpec:
    """Everything that determines the IR of a batch kernel."""

    name: str
    inputs: tuple[sympy.Symbol, ...]
    batched: tuple[bool, ...]
    outputs: tuple[sympy.Expr, ...]
    reduce: tuple[str, ...]
    dtype: str = "float64"
    accumulate: str = "float64"
    fast_math: bool = False
    cse: bool = True
    #: Element stride of each batched input / array output (None: all 1, i.e. separate
    #: contiguous columns). Export's C entry points pass row-major ``(n, k)`` arrays as k
    #: pointers ``base + c`` with stride k. :class:`codegen.Kernel` requires None.
    input_strides: tuple[int, ...] | None = None
    output_strides: tuple[int, ...] | None = None

    @property
    def ty(self) -> str:
        return ELEMENT_TYPE[self.dtype]

    @property
    def acc_ty(self) -> str:
        return ELEMENT_TYPE[self.accumulate]


def vector_attr(scalar: str, variants: list[tuple[int, str, str]]) -> str:
    maps = ",".join(f"_ZGV_LLVM_N{vf}{params}_{scalar}({vname})" for vf, vname, params in variants)
    return f'"vector-function-abi-variant"="{maps}"'


def build_kernel_ir(spec: KernelSpec,
                    vector_variants: dict[str, list[tuple[int, str, str]]] | None = None,
                    entry_linkage: str = "") -> str:
    """IR text of the module holding the kernel ``spec.name`` (internal), its entry point
    ``spec.name + "_run"`` (:func:`run_entry_ir`, with ``entry_linkage``) and the libm/libmvec
    declarations."""
    ty, acc_ty = spec.ty, spec.acc_ty
    vector_variants = vector_variants or {}
    params = ["i64 %start", "i64 %end"]
    loads: list[str] = []
    symbols = {}
    lowerer: Lowerer

    def index(prefix: str, strides: tuple[int, ...] | None, j: int, out: list[str]) -> str:
        stride = 1 if strides is None else strides[j]
        if stride == 1:
            return "%i"
        out.append(f"  %{prefix}{j}.i = mul nsw i64 %i, {stride}")
        return f"%{prefix}{j}.i"

    def batched_getter(j: int):
        def get() -> str:
            name = f"%x{j}"
            i = index("x", spec.input_strides, j, lowerer.lines)
            lowerer.lines.append(f"  %x{j}.p = getelementptr inbounds {ty}, ptr %a{j}, i64 {i}")
            lowerer.lines.append(f"  {name} = load {ty}, ptr %x{j}.p")
            return name
        return get

    for j, (sym, is_batched) in enumerate(zip(spec.inputs, spec.batched)):
        if is_batched:
            params.append(f"ptr noalias nocapture readonly %a{j}")
            symbols[sym] = batched_getter(j)
        else:
            params.append(f"{ty} %s{j}")
            symbols[sym] = (lambda j=j: f"%s{j}")
    array_outs = [k for k, r in enumerate(spec.reduce) if r == "none"]
    red_outs = [k for k, r in enumerate(spec.reduce) if r != "none"]
    for k in array_outs:
        params.append(f"ptr noalias nocapture writeonly %o{k}")
    params.append("ptr noalias nocapture writeonly %partials")

    lowerer = Lowerer(ty, symbols, fast_math=spec.fast_math,
                      vector_attrs={s: "" for s in vector_variants})
    outputs = list(spec.outputs)
    replacements: list = []
    if spec.cse:
        try:
            replacements, outputs = sympy.cse(
                outputs, symbols=sympy.numbered_symbols("_cse", cls=sympy.Dummy), order="none")
        except (AssertionError, RecursionError):
            # SymPy's cse rebuilds nodes with evaluation, which can trip its own assertion on a
            # Piecewise whose conditions hold a Piecewise: lower the DAG as it is (the lowerer
            # emits each distinct node once anyway)
            replacements, outputs = [], list(spec.outputs)
        for sym, sub in replacements:
            if isinstance(sub, sympy.logic.boolalg.Boolean):  # a shared condition (i1)
                lowerer.memo[("bool", sym)] = lowerer.boolean(sub)
            else:
                lowerer.memo[sym] = lowerer.value(sub)
    values = [lowerer.value(sympy.sympify(e)) for e in outputs]

    body = list(loads) + lowerer.lines
    stores: list[str] = []
    for k in array_outs:
        i = index("o", spec.output_strides, k, stores)
        stores.append(f"  %o{k}.p = getelementptr inbounds {ty}, ptr %o{k}, i64 {i}")
        stores.append(f"  store {ty} {values[k]}, ptr %o{k}.p")
    phis, accs, finals, final_stores = [], [], [], []
    red_flags = "fast" if spec.fast_math else "reassoc"  # reductions always reassociate
    for r, k in enumerate(red_outs):
        v = values[k]
        if acc_ty != ty:
            accs.append(f"  %r{r}.ext = fpext {ty} {v} to {acc_ty}")
            v = f"%r{r}.ext"
        phis.append(f"  %acc{r} = phi {acc_ty} [ 0.0, %entry ], [ %acc{r}.next, %loop ]")
        accs.append(f"  %acc{r}.next = fadd {red_flags} {acc_ty} %acc{r}, {v}")
        finals.append(f"  %acc{r}.out = phi {acc_ty} [ 0.0, %entry ], [ %acc{r}.next, %loop ]")
        final_stores.append(f"  %acc{r}.p = getelementptr inbounds {acc_ty}, ptr %partials, "
                            f"i64 {r}")
        final_stores.append(f"  store {acc_ty} %acc{r}.out, ptr %acc{r}.p")

    # noinline: the loop is vectorized as a function of its own (interleaved as before the
    # entry point existed), not inside NAME_run's chunk loop
    lines = [
        f"define internal void @{spec.name}({', '.join(params)}) noinline #1 {{",
        "entry:",
        "  %nonempty = icmp slt i64 %start, %end",
        "  br i1 %nonempty, label %loop, label %exit",
        "loop:",
        "  %i = phi i64 [ %start, %entry ], [ %i.next, %loop ]",
        *phis, *body, *stores, *accs,
        "  %i.next = add nsw i64 %i, 1",
        "  %more = icmp slt i64 %i.next, %end",
        "  br i1 %more, label %loop, label %exit",
        "exit:",
        *finals, *final_stores,
        "  ret void",
        "}",
        "",
    ]
    lines.append(run_entry_ir(spec, entry_linkage))
    lines += sorted(lowerer.declarations.values())
    attr_lines = [
        "attributes #0 = { nounwind willreturn memory(none) }",
        "attributes #1 = { nounwind" + prefer_width(vector_variants) + " }",
    ]
    attrs, decls = vector_declarations(lowerer.attr_groups, vector_variants)
    return "\n".join(lines + decls + [""] + attr_lines + attrs) + "\n"


def run_slots(spec: KernelSpec) -> list[tuple[str, str]]:
    """The slots of ``NAME_run``, in order (see the module docstring)."""
    slots = [("c0", "i64"), ("c1", "i64"), ("n", "i64"), ("chunk", "i64")]
    slots += [(f"a{j}", "ptr") if b else (f"s{j}", spec.ty) for j, b in enumerate(spec.batched)]
    slots += [(f"o{k}", "ptr") for k, r in enumerate(spec.reduce) if r == "none"]
    return slots + [("partials", "ptr")]


def run_entry_ir(spec: KernelSpec, linkage: str = "") -> str:
    """``i64 NAME_run(ptr args)``: the kernel over chunks ``c0 .. c1 - 1`` of ``chunk`` rows (the
    last ends at ``n``), chunk ``c``'s partial sums into row ``c`` of ``partials`` (a thread's
    share of a call in one native call; a whole call is ``c0, c1, chunk = 0, 1, max(n, 1)``)."""
    slots = run_slots(spec)
    args = ["i64 %s", "i64 %e", *(f"{ty} %{reg}" for reg, ty in slots[4:-1]), "ptr %pp"]
    width = max(sum(r != "none" for r in spec.reduce), 1)
    return "\n".join([
        f"define {linkage}i64 @{spec.name}_run(ptr %args) #1 {{",
        "entry:", *slot_loads(slots), "  br label %head", "head:",
        "  %c = phi i64 [ %c0, %entry ], [ %c.next, %body ]",
        "  %more = icmp slt i64 %c, %c1",
        "  br i1 %more, label %body, label %done", "body:",
        "  %s = mul nsw i64 %c, %chunk",
        "  %e0 = add nsw i64 %s, %chunk",
        "  %short = icmp slt i64 %e0, %n",
        "  %e = select i1 %short, i64 %e0, i64 %n",
        f"  %row = mul nsw i64 %c, {width}",
        f"  %pp = getelementptr inbounds {spec.acc_ty}, ptr %partials, i64 %row",
        f"  call void @{spec.name}({', '.join(args)})",
        "  %c.next = add nsw i64 %c, 1",
        "  br label %head", "done:", "  ret i64 0", "}", ""])


def prefer_width(vector_variants: dict) -> str:
    """With AVX-512 vector math available, let the loop vectorizer use 512-bit vectors (LLVM
    prefers 256 bits on these CPUs unless told otherwise)."""
    wide = any(vname.startswith("_ZGVe") for vs in vector_variants.values() for _, vname, _ in vs)
    return ' "prefer-vector-width"="512"' if wide else ""


def vector_declarations(attr_groups: dict[str, int], vector_variants: dict):
    """``(attribute lines, declaration lines)`` for the libm calls that got a vector-variant
    attribute group: each group's mapping, the vector functions' declarations, and
    ``@llvm.compiler.used`` keeping them alive until the vectorizer has used them."""
    attrs, decls, used = [], [], []
    for scalar, gid in sorted(attr_groups.items()):
        variants = vector_variants[scalar]
        attrs.append(f"attributes #{gid} = {{ {vector_attr(scalar, variants)} }}")
        ty = libm_element_type(scalar)
        for vf, vname, params_code in variants:
            vt = f"<{vf} x {ty}>"
            decls.append(f"declare {vt} @{vname}({', '.join([vt] * len(params_code))}) #0")
            used.append(vname)
    if used:
        refs = ", ".join(f"ptr @{u}" for u in used)
        decls.append(f'@llvm.compiler.used = appending global [{len(used)} x ptr] [{refs}], '
                     'section "llvm.metadata"')
    return attrs, decls
