"""numpy's ``Generator(PCG64).permutation(n)``, k times in one native call, bit for bit.

``step.fit`` shuffles every epoch the way ``DataLoader(shuffle=True, generator=g)`` does: one
``g.permutation(n)`` per epoch (~9 ns per element in numpy). This module draws the same
permutations from the same stream natively and hands the generator's state back, so the
stream continues exactly as if numpy had drawn them:

* PCG64 is PCG's XSL-RR 128/64 generator (the state advances ``s = s * MULT + inc`` mod 2^128,
  the output is ``rotr64(hi(s) ^ lo(s), s >> 122)`` of the advanced state);
* 32-bit draws are buffered as numpy's ``pcg64_next32`` does (the low half now, the high half
  on the next 32-bit draw: ``has_uint32`` / ``uinteger`` in the state);
* a permutation is ``arange(n)`` shuffled by Fisher-Yates from the last index down, each index
  drawn by numpy's ``random_interval``: the smallest all-ones mask covering ``i``, 32-bit draws
  (64-bit above 2^32 - 1) masked and rejected until ``<= i``.

``tests/test_pcg64.py`` checks permutations and the state afterwards against numpy.
Knows LLVM only (never imports ``symad``).
"""
from __future__ import annotations

import ctypes
import struct

import numpy as np

from . import target as _target
from .cache import DiskCache, cache_key
from .jit import Engine, object_code

MULT = 0x2360ED051FC65DA44385DF649FCCF645      # PCG_DEFAULT_MULTIPLIER_128
_NAME = "symad_pcg64_permutations"


def permutations_ir() -> str:
    """IR of ``void symad_pcg64_permutations(ptr st, ptr out, i64 n, i64 k)``; ``st`` holds
    six i64: state low/high, increment low/high, has_uint32, uinteger (read and written)."""
    return f"""
define internal i64 @pcg_next64(ptr %sp, i128 %inc) alwaysinline {{
  %s = load i128, ptr %sp
  %m = mul i128 %s, {MULT}
  %t = add i128 %m, %inc
  store i128 %t, ptr %sp
  %h = lshr i128 %t, 64
  %hi = trunc i128 %h to i64
  %lo = trunc i128 %t to i64
  %x = xor i64 %hi, %lo
  %r128 = lshr i128 %t, 122
  %r = trunc i128 %r128 to i64
  %o = call i64 @llvm.fshr.i64(i64 %x, i64 %x, i64 %r)
  ret i64 %o
}}

declare i64 @llvm.fshr.i64(i64, i64, i64)

define internal i128 @pair(ptr %p) alwaysinline {{
  %lo = load i64, ptr %p
  %q = getelementptr inbounds i64, ptr %p, i64 1
  %hi = load i64, ptr %q
  %l = zext i64 %lo to i128
  %h0 = zext i64 %hi to i128
  %h = shl i128 %h0, 64
  %v = or i128 %h, %l
  ret i128 %v
}}

define void @{_NAME}(ptr %st, ptr %out, i64 %n, i64 %k) nounwind {{
entry:
  %sp = alloca i128, align 16
  %hp = alloca i64
  %up = alloca i64
  %s0 = call i128 @pair(ptr %st)
  store i128 %s0, ptr %sp
  %ip = getelementptr inbounds i64, ptr %st, i64 2
  %inc = call i128 @pair(ptr %ip)
  %hq = getelementptr inbounds i64, ptr %st, i64 4
  %h0 = load i64, ptr %hq
  store i64 %h0, ptr %hp
  %uq = getelementptr inbounds i64, ptr %st, i64 5
  %u0 = load i64, ptr %uq
  store i64 %u0, ptr %up
  br label %eh
eh:
  %e = phi i64 [ 0, %entry ], [ %en, %el ]
  %ec = icmp ult i64 %e, %k
  br i1 %ec, label %eb, label %done
eb:
  %base = mul i64 %e, %n
  %bp = getelementptr inbounds i64, ptr %out, i64 %base
  br label %fh
fh:
  %f = phi i64 [ 0, %eb ], [ %fn, %fb ]
  %fc = icmp ult i64 %f, %n
  br i1 %fc, label %fb, label %sh0
fb:
  %fp = getelementptr inbounds i64, ptr %bp, i64 %f
  store i64 %f, ptr %fp
  %fn = add nuw i64 %f, 1
  br label %fh
sh0:
  %i0 = sub i64 %n, 1
  br label %sh
sh:
  %i = phi i64 [ %i0, %sh0 ], [ %inext, %swap ]
  %ic = icmp sgt i64 %i, 0
  br i1 %ic, label %draw, label %el
draw:
  %a1 = lshr i64 %i, 1
  %b1 = or i64 %i, %a1
  %a2 = lshr i64 %b1, 2
  %b2 = or i64 %b1, %a2
  %a4 = lshr i64 %b2, 4
  %b4 = or i64 %b2, %a4
  %a8 = lshr i64 %b4, 8
  %b8 = or i64 %b4, %a8
  %a16 = lshr i64 %b8, 16
  %b16 = or i64 %b8, %a16
  %a32 = lshr i64 %b16, 32
  %mask = or i64 %b16, %a32
  %small = icmp ule i64 %i, 4294967295
  br i1 %small, label %d32, label %d64
d32:
  %hv = load i64, ptr %hp
  %hc = icmp ne i64 %hv, 0
  br i1 %hc, label %buf, label %gen
buf:
  store i64 0, ptr %hp
  %ub = load i64, ptr %up
  br label %got
gen:
  %r = call i64 @pcg_next64(ptr %sp, i128 %inc)
  store i64 1, ptr %hp
  %rh = lshr i64 %r, 32
  store i64 %rh, ptr %up
  %rl = and i64 %r, 4294967295
  br label %got
got:
  %v = phi i64 [ %ub, %buf ], [ %rl, %gen ]
  %vm = and i64 %v, %mask
  %ok = icmp ule i64 %vm, %i
  br i1 %ok, label %swap, label %d32
d64:
  %r64 = call i64 @pcg_next64(ptr %sp, i128 %inc)
  %vm64 = and i64 %r64, %mask
  %ok64 = icmp ule i64 %vm64, %i
  br i1 %ok64, label %swap, label %d64
swap:
  %j = phi i64 [ %vm, %got ], [ %vm64, %d64 ]
  %pi = getelementptr inbounds i64, ptr %bp, i64 %i
  %pj = getelementptr inbounds i64, ptr %bp, i64 %j
  %xi = load i64, ptr %pi
  %xj = load i64, ptr %pj
  store i64 %xi, ptr %pj
  store i64 %xj, ptr %pi
  %inext = sub i64 %i, 1
  br label %sh
el:
  %en = add nuw i64 %e, 1
  br label %eh
done:
  %sf = load i128, ptr %sp
  %slo = trunc i128 %sf to i64
  %sh64 = lshr i128 %sf, 64
  %shi = trunc i128 %sh64 to i64
  store i64 %slo, ptr %st
  %sq = getelementptr inbounds i64, ptr %st, i64 1
  store i64 %shi, ptr %sq
  %hf = load i64, ptr %hp
  store i64 %hf, ptr %hq
  %uf = load i64, ptr %up
  store i64 %uf, ptr %uq
  ret void
}}
"""


class Permutations:
    """``Permutations()(bit_generator, n, k) -> (k, n) int64``: what ``k`` calls of
    ``numpy.random.Generator(bit_generator).permutation(n)`` return, drawn natively; the bit
    generator's state is advanced exactly as those calls would."""

    _shared: "Permutations | None" = None

    def __init__(self, cache: DiskCache | None = None) -> None:
        tgt = _target.host_target()
        ir = permutations_ir()
        key = cache_key("pcg64", ir, tgt.triple, tgt.cpu, tgt.features, _target.version_tag())
        obj, *_ = object_code(lambda: ir, tgt, cache, key)
        self._engine = Engine(obj, tgt)
        self._fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                    ctypes.c_int64)(self._engine.address(_NAME))
        self._st = ctypes.create_string_buffer(48)      # six uint64, packed by struct
        self._st_addr = ctypes.addressof(self._st)

    @classmethod
    def shared(cls) -> "Permutations":
        if cls._shared is None:
            cls._shared = cls(DiskCache())
        return cls._shared

    def __call__(self, bit_generator, n: int, k: int) -> np.ndarray:
        if not isinstance(bit_generator, np.random.PCG64):
            raise TypeError(f"native permutations follow numpy's PCG64, not "
                            f"{type(bit_generator).__name__}")
        n, k = int(n), int(k)
        if n < 0 or k < 0:
            raise ValueError(f"permutations: n and k must be >= 0, got n={n}, k={k}")
        out = np.empty((k, n), np.int64)
        state = bit_generator.state
        s, inc = state["state"]["state"], state["state"]["inc"]
        m64 = (1 << 64) - 1
        struct.pack_into("<6Q", self._st, 0, s & m64, s >> 64, inc & m64, inc >> 64,
                         state["has_uint32"], state["uinteger"])
        self._fn(self._st_addr, out.ctypes.data, n, k)
        lo, hi, _, _, has, u = struct.unpack_from("<6Q", self._st, 0)
        state["state"]["state"] = lo | (hi << 64)
        state["has_uint32"] = has
        state["uinteger"] = u
        bit_generator.state = state
        return out
