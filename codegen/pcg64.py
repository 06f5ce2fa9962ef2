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
import threading

import numpy as np

from .cache import DiskCache
from .native import NativeModule, Slots, data_pointer, slot_loads

MULT = 0x2360ED051FC65DA44385DF649FCCF645      # PCG_DEFAULT_MULTIPLIER_128
_NAME = "symad_pcg64_permutations"
#: interleaved generator chains; each advances CHAINS steps at once: s * MULT_C + inc * SUM_C
CHAINS = 4
MULT_C = pow(MULT, CHAINS, 1 << 128)
SUM_C = sum(pow(MULT, j, 1 << 128) for j in range(CHAINS)) % (1 << 128)


#: 64-bit outputs generated per block (their 32-bit halves are consumed one per draw)
BLOCK = 128


def _fill_ir() -> str:
    """``@fill``: the block's outputs 1..BLOCK from the state in ``states[0]``, as ``CHAINS``
    interleaved chains, each advancing ``CHAINS`` steps at a time (``s * MULT_C + c4`` with
    ``c4 = inc * SUM_C``), so the 128-bit multiplies of neighbouring outputs overlap."""
    ch = "abcd"[:CHAINS]
    first, prev = [], "%s0"
    for c in ch:                                    # the first output of each chain, serially
        first += [f"  %m{c}0 = mul i128 {prev}, {MULT}", f"  %{c}0 = add i128 %m{c}0, %inc"]
        prev = f"%{c}0"
    body = [f"  %{c} = phi i128 [ %{c}0, %entry ], [ %{c}n, %h ]" for c in ch]
    for j, c in enumerate(ch):
        body += [f"  %t{j} = add nuw i64 %t, {j}",
                 f"  call void @out(i128 %{c}, i64 %t{j}, ptr %states, ptr %halves)"]
    for c in ch:
        body += [f"  %m{c} = mul i128 %{c}, {MULT_C}", f"  %{c}n = add i128 %m{c}, %c4"]
    lines = ["define internal void @fill(ptr %states, ptr %halves, i128 %inc, i128 %c4) "
             "alwaysinline {", "entry:", "  %s0 = load i128, ptr %states", *first,
             "  br label %h", "h:", "  %t = phi i64 [ 1, %entry ], [ %tn, %h ]", *body,
             f"  %tn = add nuw i64 %t, {CHAINS}",
             f"  %more = icmp ult i64 %tn, {BLOCK + 1}",
             "  br i1 %more, label %h, label %x", "x:", "  ret void", "}", ""]
    return "\n".join(lines)


def permutations_ir() -> str:
    """IR of ``void symad_pcg64_permutations(ptr st, ptr out, ptr js, i64 n, i64 k)``; ``st``
    holds six i64: state low/high, increment low/high, has_uint32, uinteger (read and
    written); ``js`` is a workspace of ``n`` i64; ``n - 1 < 2^32`` (numpy's 32-bit draws).

    Each permutation runs in two branch-light passes instead of numpy's rejection loop:
    the draws (``js[i]``: the accepted index for position ``i``; a rejected draw writes ``js[i]``
    and leaves ``i`` where it is, so the next draw overwrites it), with the mask fixed over each
    power-of-two range of ``i``; then the swaps. The 32-bit halves come from blocks of
    ``BLOCK`` outputs (low half first, as ``pcg64_next32``), slot 0 holding the buffered half
    of the incoming state; the state after each output is kept, so the state handed back is the
    one after the last half consumed."""
    half_n = 2 * BLOCK + 1
    return f"""
define internal void @out(i128 %s, i64 %t, ptr %states, ptr %halves) alwaysinline {{
  %sq = getelementptr inbounds i128, ptr %states, i64 %t
  store i128 %s, ptr %sq
  %sh = lshr i128 %s, 64
  %hi = trunc i128 %sh to i64
  %lo = trunc i128 %s to i64
  %xx = xor i64 %hi, %lo
  %r128 = lshr i128 %s, 122
  %r = trunc i128 %r128 to i64
  %o = call i64 @llvm.fshr.i64(i64 %xx, i64 %xx, i64 %r)
  %o32 = lshr i64 %o, 32
  %ol = trunc i64 %o to i32
  %oh = trunc i64 %o32 to i32
  %k1 = shl nuw i64 %t, 1
  %k0 = sub i64 %k1, 1
  %q1 = getelementptr inbounds i32, ptr %halves, i64 %k0
  store i32 %ol, ptr %q1
  %q2 = getelementptr inbounds i32, ptr %q1, i64 1
  store i32 %oh, ptr %q2
  ret void
}}

{_fill_ir()}
declare i64 @llvm.fshr.i64(i64, i64, i64)
declare i64 @llvm.ctlz.i64(i64, i1)

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

define internal void @draw(ptr %st, ptr %out, ptr %js, i64 %n, i64 %k) nounwind {{
entry:
  %states = alloca [{BLOCK + 1} x i128], align 16
  %halves = alloca [{half_n} x i32], align 16
  %pp = alloca i64
  %ip = alloca i64
  %s0 = call i128 @pair(ptr %st)
  store i128 %s0, ptr %states
  %iq = getelementptr inbounds i64, ptr %st, i64 2
  %inc = call i128 @pair(ptr %iq)
  %c4 = mul i128 %inc, {SUM_C}
  %hq = getelementptr inbounds i64, ptr %st, i64 4
  %h0 = load i64, ptr %hq
  %uq = getelementptr inbounds i64, ptr %st, i64 5
  %u0 = load i64, ptr %uq
  %u32 = trunc i64 %u0 to i32
  store i32 %u32, ptr %halves
  call void @fill(ptr %states, ptr %halves, i128 %inc, i128 %c4)
  %hz = icmp ne i64 %h0, 0
  %pos0 = select i1 %hz, i64 0, i64 1
  store i64 %pos0, ptr %pp
  br label %eh
eh:
  %e = phi i64 [ 0, %entry ], [ %en, %el ]
  %ec = icmp ult i64 %e, %k
  br i1 %ec, label %eb, label %done
eb:
  %base = mul i64 %e, %n
  %bp = getelementptr inbounds i64, ptr %out, i64 %base
  %i0 = sub i64 %n, 1
  store i64 %i0, ptr %ip
  br label %ph
ph:
  %ir = load i64, ptr %ip
  %pc = icmp sgt i64 %ir, 0
  br i1 %pc, label %range, label %f0
range:
  %lz = call i64 @llvm.ctlz.i64(i64 %ir, i1 true)
  %tb = sub i64 63, %lz
  %lo = shl i64 1, %tb
  %lo2 = shl i64 %lo, 1
  %mask = sub i64 %lo2, 1
  br label %inner
inner:
  %pos = load i64, ptr %pp
  %atend = icmp eq i64 %pos, {half_n}
  br i1 %atend, label %refill, label %take, !prof !0
refill:
  %lastp = getelementptr inbounds i128, ptr %states, i64 {BLOCK}
  %last = load i128, ptr %lastp
  store i128 %last, ptr %states
  %lhp = getelementptr inbounds i32, ptr %halves, i64 {2 * BLOCK}
  %lh = load i32, ptr %lhp
  store i32 %lh, ptr %halves
  call void @fill(ptr %states, ptr %halves, i128 %inc, i128 %c4)
  store i64 1, ptr %pp
  br label %take
take:
  %p2 = load i64, ptr %pp
  %hv = getelementptr inbounds i32, ptr %halves, i64 %p2
  %h32 = load i32, ptr %hv
  %h64 = zext i32 %h32 to i64
  %j = and i64 %h64, %mask
  %i = load i64, ptr %ip
  %jq = getelementptr inbounds i64, ptr %js, i64 %i
  store i64 %j, ptr %jq
  %ok = icmp ule i64 %j, %i
  %okz = zext i1 %ok to i64
  %inx = sub i64 %i, %okz
  store i64 %inx, ptr %ip
  %pn = add nuw i64 %p2, 1
  store i64 %pn, ptr %pp
  %more = icmp uge i64 %inx, %lo
  br i1 %more, label %inner, label %ph
f0:
  br label %fh
fh:
  %f = phi i64 [ 0, %f0 ], [ %fn, %fb ]
  %fc = icmp ult i64 %f, %n
  br i1 %fc, label %fb, label %sw0
fb:
  %fp = getelementptr inbounds i64, ptr %bp, i64 %f
  store i64 %f, ptr %fp
  %fn = add nuw i64 %f, 1
  br label %fh
sw0:
  br label %sw
sw:
  %si = phi i64 [ %i0, %sw0 ], [ %sin, %swb ]
  %sc = icmp sgt i64 %si, 0
  br i1 %sc, label %swb, label %el
swb:
  %sjq = getelementptr inbounds i64, ptr %js, i64 %si
  %sj = load i64, ptr %sjq
  %pi = getelementptr inbounds i64, ptr %bp, i64 %si
  %pj = getelementptr inbounds i64, ptr %bp, i64 %sj
  %xi = load i64, ptr %pi
  %xj = load i64, ptr %pj
  store i64 %xi, ptr %pj
  store i64 %xj, ptr %pi
  %sin = sub i64 %si, 1
  br label %sw
el:
  %en = add nuw i64 %e, 1
  br label %eh
done:
  %pf = load i64, ptr %pp
  %ti = lshr i64 %pf, 1
  %sfp = getelementptr inbounds i128, ptr %states, i64 %ti
  %sf = load i128, ptr %sfp
  %slo = trunc i128 %sf to i64
  %sh64 = lshr i128 %sf, 64
  %shi = trunc i128 %sh64 to i64
  store i64 %slo, ptr %st
  %sq = getelementptr inbounds i64, ptr %st, i64 1
  store i64 %shi, ptr %sq
  %odd = and i64 %pf, 1
  %even = icmp eq i64 %odd, 0
  %hf = zext i1 %even to i64
  store i64 %hf, ptr %hq
  %ui = sub i64 %pf, %odd
  %ufp = getelementptr inbounds i32, ptr %halves, i64 %ui
  %uf = load i32, ptr %ufp
  %ufz = zext i32 %uf to i64
  store i64 %ufz, ptr %uq
  ret void
}}

; the same on numpy's own state struct (``PCG64().ctypes.state_address``: a pointer to the
; 128-bit state and increment, then has_uint32 and uinteger as 32-bit integers)
define internal void @draw_np(ptr %np, ptr %out, ptr %js, i64 %n, i64 %k) nounwind {{
entry:
  %st = alloca [6 x i64], align 16
  %inner = load ptr, ptr %np
  %s = load i128, ptr %inner, align 16
  %incp = getelementptr inbounds i128, ptr %inner, i64 1
  %inc = load i128, ptr %incp, align 16
  store i128 %s, ptr %st, align 16
  %st2 = getelementptr inbounds i64, ptr %st, i64 2
  store i128 %inc, ptr %st2, align 16
  %hq = getelementptr inbounds i8, ptr %np, i64 8
  %h = load i32, ptr %hq
  %hz = zext i32 %h to i64
  %st4 = getelementptr inbounds i64, ptr %st, i64 4
  store i64 %hz, ptr %st4
  %uq = getelementptr inbounds i8, ptr %np, i64 12
  %u = load i32, ptr %uq
  %uz = zext i32 %u to i64
  %st5 = getelementptr inbounds i64, ptr %st, i64 5
  store i64 %uz, ptr %st5
  call void @draw(ptr %st, ptr %out, ptr %js, i64 %n, i64 %k)
  %s2 = load i128, ptr %st, align 16
  store i128 %s2, ptr %inner, align 16
  %h2 = load i64, ptr %st4
  %h32 = trunc i64 %h2 to i32
  store i32 %h32, ptr %hq
  %u2 = load i64, ptr %st5
  %u32 = trunc i64 %u2 to i32
  store i32 %u32, ptr %uq
  ret void
}}

{_entries()}
!0 = !{{!"branch_weights", i32 1, i32 256}}
"""


def _entries() -> str:
    """``NAME`` (state: 6 x i64 of :meth:`Permutations.__call__`) and ``NAME_np`` (numpy's state
    struct), each ``i64 (ptr args)`` with slots state, out, js, n, k."""
    loads = "\n".join(slot_loads([("st", "ptr"), ("out", "ptr"), ("js", "ptr"), ("n", "i64"),
                                  ("k", "i64")]))
    return "\n".join(f"""define i64 @{_NAME}{suffix}(ptr %args) nounwind {{
entry:
{loads}
  call void @{body}(ptr %st, ptr %out, ptr %js, i64 %n, i64 %k)
  ret i64 0
}}
""" for suffix, body in (("", "draw"), ("_np", "draw_np")))


class Permutations:
    """``Permutations()(bit_generator, n, k) -> (k, n) int64``: what ``k`` calls of
    ``numpy.random.Generator(bit_generator).permutation(n)`` return, drawn natively; the bit
    generator's state is advanced exactly as those calls would."""

    _shared: "Permutations | None" = None

    def __init__(self, cache: DiskCache | None = None) -> None:
        ir = permutations_ir()
        self.module = NativeModule("pcg64", lambda: ir, (ir,), cache=cache)
        self._fn = self.module.entry(_NAME)
        self._fn_np = self.module.entry(_NAME + "_np")
        self._tls = threading.local()
        self._direct: dict = {}         # id(bit generator) -> (it, its state struct's address)

    def _state_address(self, bg) -> int | None:
        """The address of ``bg``'s C state when its layout is the one ``_np`` reads (checked
        once per generator against ``bg.state``), else None (the state dict is used)."""
        hit = self._direct.get(id(bg))
        if hit is not None and hit[0] is bg:
            return hit[1]
        addr = None
        try:
            a = bg.ctypes.state_address
            inner = ctypes.c_void_p.from_address(a).value
            if inner and inner % 16 == 0:
                w = (ctypes.c_uint64 * 4).from_address(inner)
                st = bg.state
                if (w[0] | (w[1] << 64) == st["state"]["state"]
                        and w[2] | (w[3] << 64) == st["state"]["inc"]
                        and ctypes.c_int32.from_address(a + 8).value == st["has_uint32"]
                        and ctypes.c_uint32.from_address(a + 12).value == st["uinteger"]):
                    addr = a
        except (AttributeError, ValueError, TypeError):
            addr = None
        if len(self._direct) > 64:
            self._direct.clear()
        self._direct[id(bg)] = (bg, addr)
        return addr

    def _args(self, state: int, out: np.ndarray, js: np.ndarray, n: int, k: int) -> Slots:
        try:                            # one argument array per thread (the call cannot re-enter)
            args = self._tls.args
        except AttributeError:
            args = self._tls.args = Slots(5)
        args.i[:] = (state, data_pointer(out), data_pointer(js), n, k)
        return args

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
        if n - 1 > 0xFFFFFFFF:          # numpy's 64-bit draws: its own loop (>= 32 GiB arrays)
            g = np.random.Generator(bit_generator)
            return np.stack([g.permutation(n) for _ in range(k)]) if k else \
                np.zeros((0, n), np.int64)
        out = np.empty((k, n), np.int64)
        js = np.empty(max(n, 1), np.int64)          # per call: a generator may run on threads
        addr = self._state_address(bit_generator)
        if addr is not None:            # numpy's state, read and written in place
            with bit_generator.lock:
                args = self._args(addr, out, js, n, k)
                self._fn_np(args.address)
            return out
        state = bit_generator.state
        s, inc = state["state"]["state"], state["state"]["inc"]
        m64 = (1 << 64) - 1
        st = np.array([s & m64, s >> 64, inc & m64, inc >> 64, state["has_uint32"],
                       state["uinteger"]], np.uint64)
        args = self._args(st.ctypes.data, out, js, n, k)
        self._fn(args.address)
        lo, hi, _, _, has, u = st.tolist()
        state["state"]["state"] = lo | (hi << 64)
        state["has_uint32"] = has
        state["uinteger"] = u
        bit_generator.state = state
        return out
