"""codegen.native: the one front door and the one calling convention.

Every module symad JITs goes through ``NativeModule`` and every function it exports is
``i64 NAME(ptr args)``; the slot loads, the pointer reader and the cache are checked against
independent values (numpy, ``ctypes.data``, hand-computed numbers)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import sympy as sp

import codegen
import codegen.fpmode
import codegen.pcg64
import symad
from codegen import native
from codegen.cache import DiskCache
from codegen.native import NativeModule, Slots, data_pointer, slot_loads
from symad import nn, optim

ENTRY = re.compile(r"^define (?:noundef )?i64 @[\w.]+\(ptr(?: noalias)? %\w+\)")


def _slots_ir() -> str:
    loads = "\n".join(slot_loads([("p", "ptr"), ("n", "i64"), ("d", "double"), ("f", "float")]))
    return f"""
define i64 @probe(ptr %args) {{
entry:
{loads}
  %fd = fpext float %f to double
  %nd = sitofp i64 %n to double
  %s0 = fadd double %d, %fd
  %s1 = fmul double %s0, %nd
  store double %s1, ptr %p
  %q = getelementptr inbounds double, ptr %p, i64 1
  store double %fd, ptr %q
  %r = add i64 %n, 7
  ret i64 %r
}}
"""


def test_slots_carry_pointers_counts_and_scalars(tmp_path):
    ir = _slots_ir()
    cache = DiskCache(tmp_path)
    mod = NativeModule("probe", lambda: ir, (ir,), cache=cache)
    assert not mod.cache_hit and mod.compile_seconds > 0
    out = np.zeros(2)
    args = Slots(4)
    args.i[0], args.i[1] = data_pointer(out), 3
    args.f[2], args.f[3] = 0.25, 0.1
    assert mod.entry("probe")(args.address) == 10                # the status comes back
    f32 = float(np.float32(0.1))                                 # a float slot truncates
    assert out[1] == f32
    assert out[0] == (0.25 + f32) * 3
    again = NativeModule("probe", lambda: pytest.fail("a warm hit makes no IR"), (ir,),
                         cache=cache)
    assert again.cache_hit and again.compile_seconds == 0
    out[:] = 0
    assert again.entry("probe")(args.address) == 10 and out[1] == f32
    with pytest.raises(KeyError, match="no function 'nope'"):
        mod.entry("nope")
    with pytest.raises(ValueError, match="not one of"):
        slot_loads([("x", "i32")])


def test_data_pointer_matches_ctypes():
    base = np.arange(40.0)
    for a in (base, base[3:], base[::2], base.reshape(5, 8)[1:], np.zeros(0),
              np.zeros(3, np.float32), np.ones((2, 2), np.int64).T):
        assert data_pointer(a) == a.ctypes.data


def _modules_of_symad_paths(monkeypatch) -> dict[str, list[NativeModule]]:
    made: dict[str, list[NativeModule]] = {}
    init = NativeModule.__init__

    def record(self, kind, make_ir, key, *, cache):
        init(self, kind, make_ir, key, cache=cache)
        made.setdefault(kind, []).append(self)
    monkeypatch.setattr(native.NativeModule, "__init__", record)
    monkeypatch.setattr(codegen.fpmode, "_fns", None)
    monkeypatch.setattr(codegen.pcg64.Permutations, "_shared", None)

    x, a = sp.symbols("x a")
    k = codegen.compile_kernel([x, a], [sp.sin(a * x)], batched=[x], reduce="sum", cache=False)
    xs = np.linspace(0, 1, 50)
    assert k(xs, 2.0)[0] == pytest.approx(np.sin(2.0 * xs).sum(), rel=1e-13)

    rng = np.random.default_rng(0)
    X = symad.tensor(rng.normal(size=(40, 2)).astype(np.float32))
    y = symad.tensor(rng.normal(size=(40, 1)).astype(np.float32))
    net = nn.Linear(2, 1)                                    # scalarized: the fit loop
    step = symad.compile_step(net, nn.MSELoss(), optim.SGD(net.parameters(), lr=0.05))
    step.fit(X, y, epochs=2, batch_size=10, generator=symad.Generator().manual_seed(1),
             native=True)
    big = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))   # tensor program
    step = symad.compile_step(big, nn.MSELoss(), optim.SGD(big.parameters(), lr=0.05))
    step(X[:10], y[:10])
    step.fit(X, y, epochs=2, batch_size=10, generator=symad.Generator().manual_seed(1),
             native=True)
    step(X[:10], y[:10])
    codegen.fpmode.flushing()
    return made


def test_every_symad_module_goes_through_the_front_door(monkeypatch):
    made = _modules_of_symad_paths(monkeypatch)
    assert {"kernel", "fit_loop", "loops", "pcg64"} <= set(made), sorted(made)
    if codegen.fpmode.supported():
        assert "fpmode" in made
    for kind, mods in made.items():
        for mod in mods:
            exported = [ln for ln in mod.llvm_ir.splitlines()
                        if ln.startswith("define ") and " internal " not in ln]
            assert exported, kind
            for ln in exported:
                assert ENTRY.match(ln), f"{kind}: {ln}"


def test_export_entry_points_call_the_jit_entry_point():
    x, a = sp.symbols("x a")
    spec = codegen.KernelSpec("k", (x, a), (True, False), (a * x,), ("sum",), "float32",
                              "float64", input_strides=(1, 1), output_strides=(1,))
    from codegen.c_entry import CArray, build_c_module_ir
    ir = build_c_module_ir([(spec, "k_sum", [CArray("x", 1, True), CArray("a", 1, False)],
                             [CArray("s", 1, False)])])
    defines = [ln for ln in ir.splitlines() if ln.startswith("define ")]
    public = [ln for ln in defines if " internal " not in ln]
    assert len(public) == 1 and public[0].startswith("define i32 @k_sum(")
    assert any(ln.startswith("define internal i64 @k_run(ptr %args)") for ln in defines)
    assert "call i64 @k_run(ptr %args)" in ir
