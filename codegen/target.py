"""Targets, the O3 pipeline, and IR text -> optimized module / object code / assembly.

Everything here is a pure function of its arguments: no JIT engine, no cached target machine
(a TargetMachine handed to MCJIT is owned by that engine, see DESIGN.md field notes), so the
export feature can call :func:`emit_object` for any triple.
"""

from __future__ import annotations

import ctypes.util
import functools
from dataclasses import dataclass

import llvmlite
import llvmlite.binding as llvm

#: Bump when the generated IR layout or calling convention changes (part of the cache key).
FORMAT_VERSION = 1


@functools.cache
def _init_native() -> None:
    # llvmlite >= 0.45 no longer needs (or allows) llvm.initialize().
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@functools.cache
def _init_all() -> None:
    # Only for foreign triples (export); costs ~10 ms, so not on the JIT path.
    _init_native()
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()


@dataclass(frozen=True)
class TargetInfo:
    """Triple + CPU + feature string: the identity of the machine code we produce."""

    triple: str
    cpu: str
    features: str

    @property
    def is_x86_64(self) -> bool:
        return self.triple.startswith("x86_64")

    def has_feature(self, name: str) -> bool:
        return f"+{name}" in self.features.split(",")


@functools.cache
def host_target() -> TargetInfo:
    """The machine we run on (process triple, host CPU name and its feature flags)."""
    _init_native()
    return TargetInfo(
        llvm.get_process_triple(), llvm.get_host_cpu_name(),
        llvm.get_host_cpu_features().flatten(),
    )


def resolve_target(triple: str | None, cpu: str | None, features: str | None) -> TargetInfo:
    """Fill in host defaults; a foreign triple defaults to a generic CPU with no extra features."""
    host = host_target()
    if triple is None or triple == host.triple:
        return TargetInfo(host.triple, host.cpu if cpu is None else cpu,
                          host.features if features is None else features)
    return TargetInfo(triple, cpu or "", features or "")


def create_target_machine(target: TargetInfo, *, reloc: str = "default", opt: int = 3,
                          jit: bool = False) -> llvm.TargetMachine:
    """A fresh TargetMachine (never share one between engines: MCJIT takes ownership)."""
    if target.triple != host_target().triple:
        _init_all()
    if reloc not in ("default", "pic", "static"):
        raise ValueError(f"reloc must be 'default', 'pic' or 'static', not {reloc!r}")
    return llvm.Target.from_triple(target.triple).create_target_machine(
        cpu=target.cpu, features=target.features, opt=opt, reloc=reloc,
        codemodel="jitdefault" if jit else "default", jit=jit)


def optimize(module: llvm.ModuleRef, tm: llvm.TargetMachine, opt: int = 3) -> None:
    """Run the new-pass-manager O<opt> pipeline with loop and SLP vectorization, in place."""
    pto = llvm.create_pipeline_tuning_options(speed_level=opt)
    pto.loop_vectorization = opt >= 2
    pto.slp_vectorization = opt >= 2
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(module, pb)


def parse(ir_text: str, tm: llvm.TargetMachine) -> llvm.ModuleRef:
    """Parse IR text, stamp it with the machine's triple and data layout, verify it."""
    module = llvm.parse_assembly(ir_text)
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    module.verify()
    return module


def compile_ir(ir_text: str, target: TargetInfo, *, reloc: str = "default", opt: int = 3,
               jit: bool = False) -> tuple[llvm.ModuleRef, llvm.TargetMachine]:
    """Parse + optimize; returns the optimized module and the target machine that made it."""
    tm = create_target_machine(target, reloc=reloc, opt=opt, jit=jit)
    module = parse(ir_text, tm)
    if opt > 0:
        optimize(module, tm, opt)
    return module, tm


def emit_object(ir_text: str, triple: str | None = None, cpu: str | None = None,
                features: str | None = None, reloc: str = "default", opt: int = 3) -> bytes:
    """Relocatable object code for ``ir_text`` (host target unless ``triple`` is given).

    >>> obj = emit_object("define double @f(double %x) {\\n  ret double %x\\n}\\n", reloc="pic")
    >>> obj[:4] == b"\\x7fELF"
    True
    """
    module, tm = compile_ir(ir_text, resolve_target(triple, cpu, features), reloc=reloc, opt=opt)
    return bytes(tm.emit_object(module))


def emit_assembly(ir_text: str, triple: str | None = None, cpu: str | None = None,
                  features: str | None = None, reloc: str = "default", opt: int = 3) -> str:
    """Assembly text for ``ir_text``, same arguments as :func:`emit_object`."""
    module, tm = compile_ir(ir_text, resolve_target(triple, cpu, features), reloc=reloc, opt=opt)
    return tm.emit_assembly(module)


def version_tag() -> str:
    """Everything besides IR and target that changes the object code (for cache keys)."""
    return f"llvmlite={llvmlite.__version__};llvm={llvm.llvm_version_info};fmt={FORMAT_VERSION}"


# ---------------------------------------------------------------------------------------------
# glibc libmvec: vector variants of libm functions (x86-64 only).

# Functions with AVX2 variants in glibc >= 2.35 (sin cos exp log pow since 2.22); the ones
# actually present are checked against the loaded library, so older glibc just loses some.
_MVEC_UNARY = ("sin", "cos", "tan", "exp", "log", "sinh", "cosh", "tanh", "asin", "acos",
               "atan", "asinh", "acosh", "atanh", "erf", "erfc", "exp2", "exp10", "expm1",
               "log2", "log10", "log1p", "cbrt")
_MVEC_BINARY = ("pow", "atan2", "hypot")


def libm_element_type(scalar: str) -> str:
    """``float`` for a libm float variant (``expf``, ``erff``), else ``double``."""
    return "float" if scalar.endswith("f") and scalar[:-1] in _MVEC_UNARY + _MVEC_BINARY \
        else "double"


@functools.cache
def _libmvec_loaded() -> bool:
    try:
        llvm.load_library_permanently("libmvec.so.1")
        return True
    except RuntimeError:
        pass
    name = ctypes.util.find_library("mvec")  # slow (may run ldconfig): only as a fallback
    if name:
        try:
            llvm.load_library_permanently(name)
            return True
        except RuntimeError:
            pass
    return False


def _has_symbol(name: str) -> bool:
    return llvm.address_of_symbol(name) is not None


@functools.cache
def libmvec_variants(target: TargetInfo) -> dict[str, list[tuple[int, str, str]]]:
    """Scalar libm name -> [(VF, vector name, ISA letter)] usable on ``target`` in this process.

    Only for the host (the vector symbols must resolve when the object is loaded) and only with
    AVX2 ('d' variants: 4 doubles / 8 floats), SSE2 ('b': 2 doubles / 4 floats) and, where the
    CPU has AVX-512F, 'e' (8 doubles / 16 floats).
    """
    host = host_target()
    if not (target.is_x86_64 and target.triple == host.triple and target.has_feature("avx2")
            and _libmvec_loaded()):
        return {}
    # 'b' SSE2, 'd' AVX2, 'e' AVX-512 (used only where the CPU has avx512f: 8 doubles/16 floats)
    isas = "bde" if target.has_feature("avx512f") else "bd"
    table: dict[str, list[tuple[int, str, str]]] = {}
    for names, params in ((_MVEC_UNARY, "v"), (_MVEC_BINARY, "vv")):
        for base in names:
            for scalar, suffix, lanes in ((base, "", (2, 4, 8)), (base + "f", "f", (4, 8, 16))):
                variants = []
                for isa, vf in zip(isas, lanes):
                    vname = f"_ZGV{isa}N{vf}{params}_{base}{suffix}"
                    if _has_symbol(vname):
                        variants.append((vf, vname, params))
                if variants:
                    table[scalar] = variants
    return table
