"""SymPy expression DAG -> LLVM IR text, by type dispatch.

Like SymPy's printers: for a node of class ``C`` the lowerer calls the first ``_lower_<name>``
found along ``C.__mro__``; the fallback raises :class:`LoweringError` naming the class. Boolean
nodes (relationals, And/Or/Not) go through ``_bool_<name>`` the same way and yield ``i1``.
Every node is lowered once (memo on the node), so a DAG after ``sympy.cse`` is emitted as a DAG.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import sympy
from sympy import S


class LoweringError(NotImplementedError):
    """A SymPy construct that codegen cannot translate to LLVM IR."""


def _cannot(expr: sympy.Basic, why: str = "") -> LoweringError:
    cls = type(expr)
    module = getattr(cls, "__module__", None) or ""
    mod = "sympy" if module.startswith("sympy") or not module else module
    msg = f"cannot lower {mod}.{cls.__name__} to LLVM"
    return LoweringError(msg + (f" ({why})" if why else "") + f": {expr}")


# ---------------------------------------------------------------------------------------------
# Constants: rounded once, correctly, to the kernel type.

def _exact(value: sympy.Expr) -> Fraction | float:
    if value is S.NaN:
        return math.nan
    if value is S.Infinity:
        return math.inf
    if value is S.NegativeInfinity:
        return -math.inf
    if isinstance(value, sympy.Rational):
        return Fraction(int(value.p), int(value.q))
    if isinstance(value, sympy.Float):
        return Fraction(sympy.Rational(value).p, sympy.Rational(value).q)
    approx = sympy.N(value, 40)  # NumberSymbol (pi, E, ...) or other real constant
    if not isinstance(approx, sympy.Float):
        raise _cannot(value, "not a real constant")
    r = sympy.Rational(approx)
    return Fraction(int(r.p), int(r.q))


def _frac_to_f64(x: Fraction) -> float:
    try:
        return x.numerator / x.denominator  # int / int is correctly rounded in Python
    except OverflowError:
        return math.copysign(math.inf, x)


def round_constant(value: sympy.Expr, dtype: str) -> float:
    """The value of a SymPy number/constant correctly rounded to float64 or float32."""
    exact = _exact(value)
    if isinstance(exact, float):  # nan, +-inf
        return exact
    d = _frac_to_f64(exact)
    if dtype == "float64":
        return d
    # float32: rounding the float64 again could double-round; pick the nearest float32
    # neighbour against the exact value instead (ties to even).
    with np.errstate(over="ignore"):
        f = np.float32(d)
    if not np.isfinite(f):
        return float(f)
    cands = [f, np.nextafter(f, np.float32(np.inf)), np.nextafter(f, np.float32(-np.inf))]
    best = min((c for c in cands if np.isfinite(c)),
               key=lambda c: (abs(Fraction(float(c)) - exact), int(c.view(np.uint32)) & 1))
    return float(best)


def ir_float(value: float) -> str:
    """An LLVM IR literal for ``value`` (hex form is exact; float constants use double hex)."""
    return f"0x{struct.unpack('<Q', struct.pack('<d', value))[0]:016X}"


# ---------------------------------------------------------------------------------------------
# Function tables (rules as data). SymPy class name -> libm base name.

#: One-argument libm functions; float32 uses the ``f`` suffix (``sinf``).
LIBM_UNARY = {
    "exp": "exp", "log": "log", "sin": "sin", "cos": "cos", "tan": "tan",
    "sinh": "sinh", "cosh": "cosh", "tanh": "tanh", "asin": "asin", "acos": "acos",
    "atan": "atan", "asinh": "asinh", "acosh": "acosh", "atanh": "atanh",
    "erf": "erf", "erfc": "erfc",
    # sympy.codegen.cfunctions
    "log1p": "log1p", "expm1": "expm1", "log2": "log2", "log10": "log10", "exp2": "exp2",
    "Cbrt": "cbrt",
}
LIBM_BINARY = {"atan2": "atan2", "hypot": "hypot"}
#: One-argument LLVM intrinsics (exactly rounded / exact on every target).
INTRINSIC_UNARY = {"Abs": "fabs", "floor": "floor", "ceiling": "ceil", "Sqrt": "sqrt",
                   "round_half_even": "roundeven"}  # symad.ops.rounding's round()

#: Integer powers with |n| up to this become multiplication chains (error grows ~ |n|/2 ulp);
#: larger ones call pow().
MAX_POW_CHAIN = 16

_FCMP = {"StrictLessThan": "olt", "LessThan": "ole", "StrictGreaterThan": "ogt",
         "GreaterThan": "oge", "Equality": "oeq", "Unequality": "une"}


class Lowerer:
    """Emits the straight-line IR for one loop iteration (or one scalar evaluation).

    ``symbols`` maps each input Symbol to a callable returning its IR value (so batched inputs
    are loaded lazily, only when used). ``lines`` collects the instructions; ``declarations``
    the ``declare`` lines; ``vector_calls`` the libm functions whose call sites got a
    vector-variant attribute (so the module can declare the variants).
    """

    def __init__(self, ty: str, symbols: dict[sympy.Basic, Callable[[], str]], *,
                 fast_math: bool = False, vector_attrs: dict[str, str] | None = None):
        self.ty = ty
        self.dtype = "float64" if ty == "double" else "float32"
        self.suffix = "f64" if ty == "double" else "f32"
        self.fm = "fast " if fast_math else ""
        self.symbols = symbols
        self.vector_attrs = vector_attrs or {}
        self.lines: list[str] = []
        self.declarations: dict[str, str] = {}
        self.attr_groups: dict[str, int] = {}  # libm name -> attribute group id used
        self.memo: dict[object, str] = {}
        self._n = 0

    # -- plumbing ---------------------------------------------------------------------------
    def fresh(self) -> str:
        self._n += 1
        return f"%t{self._n}"

    def emit(self, rhs: str) -> str:
        name = self.fresh()
        self.lines.append(f"  {name} = {rhs}")
        return name

    def const(self, value: float) -> str:
        return ir_float(value)

    def number(self, expr: sympy.Expr) -> str:
        return self.const(round_constant(expr, self.dtype))

    def binop(self, op: str, a: str, b: str) -> str:
        return self.emit(f"{op} {self.fm}{self.ty} {a}, {b}")

    def intrinsic(self, name: str, *args: str) -> str:
        fn = f"llvm.{name}.{self.suffix}"
        sig = ", ".join([self.ty] * len(args))
        self.declarations[fn] = f"declare {self.ty} @{fn}({sig})"
        arglist = ", ".join(f"{self.ty} {a}" for a in args)
        return self.emit(f"call {self.fm}{self.ty} @{fn}({arglist})")

    def libm(self, base: str, *args: str) -> str:
        fn = base if self.ty == "double" else base + "f"
        sig = ", ".join([self.ty] * len(args))
        # libm functions only touch errno, which we never read: declare them pure so they can
        # be hoisted, CSE'd and vectorized.
        self.declarations[fn] = (f"declare {self.ty} @{fn}({sig}) "
                                 "#0")
        arglist = ", ".join(f"{self.ty} {a}" for a in args)
        attr = ""
        if fn in self.vector_attrs:
            gid = self.attr_groups.setdefault(fn, 10 + len(self.attr_groups))
            attr = f" #{gid}"
        return self.emit(f"call {self.fm}{self.ty} @{fn}({arglist}){attr}")

    def select(self, cond: str, a: str, b: str) -> str:
        return self.emit(f"select i1 {cond}, {self.ty} {a}, {self.ty} {b}")

    def fcmp(self, pred: str, a: str, b: str) -> str:
        return self.emit(f"fcmp {pred} {self.ty} {a}, {b}")

    # -- dispatch ---------------------------------------------------------------------------
    def value(self, expr: sympy.Basic) -> str:
        """IR value (of the kernel float type) of ``expr``; lowered once per distinct node."""
        hit = self.memo.get(expr)
        if hit is not None:
            return hit
        for cls in type(expr).__mro__:
            method = getattr(self, "_lower_" + cls.__name__, None)
            if method is not None:
                break
        else:  # pragma: no cover - Basic always reaches the fallback below
            method = self._lower_Basic
        result = method(expr)
        self.memo[expr] = result
        return result

    def boolean(self, expr: sympy.Basic) -> str:
        """IR ``i1`` value of a boolean/relational expression."""
        key = ("bool", expr)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        for cls in type(expr).__mro__:
            method = getattr(self, "_bool_" + cls.__name__, None)
            if method is not None:
                break
        else:
            raise _cannot(expr, "unsupported condition")
        result = method(expr)
        self.memo[key] = result
        return result

    def _lower_Basic(self, expr: sympy.Basic) -> str:
        raise _cannot(expr)

    # -- atoms ------------------------------------------------------------------------------
    def _lower_Symbol(self, expr: sympy.Symbol) -> str:
        getter = self.symbols.get(expr)
        if getter is None:
            raise LoweringError(f"free symbol {expr} is not one of the kernel inputs")
        return getter()

    def _lower_Number(self, expr: sympy.Number) -> str:
        if expr is S.ComplexInfinity:
            raise _cannot(expr, "complex infinity")
        return self.number(expr)

    def _lower_NumberSymbol(self, expr: sympy.Expr) -> str:
        return self.number(expr)

    def _lower_Boolean(self, expr: sympy.Basic) -> str:
        # A condition used as a number (or as an output): 1.0 / 0.0.
        return self.emit(f"uitofp i1 {self.boolean(expr)} to {self.ty}")

    # -- arithmetic -------------------------------------------------------------------------
    def _lower_Add(self, expr: sympy.Add) -> str:
        args = [self.value(a) for a in expr.args]
        acc = args[0]
        for a in args[1:]:
            acc = self.binop("fadd", acc, a)
        return acc

    def _lower_Mul(self, expr: sympy.Mul) -> str:
        # Split into numerator / denominator so x/y is one correctly rounded fdiv, not x*(1/y).
        num: list[str] = []
        den: list[str] = []
        negate = False
        divisor: str | None = None
        for arg in expr.args:
            if arg.is_Number and arg is not S.NaN and arg.is_finite:
                if arg == -1:
                    negate = not negate
                elif arg.is_Integer or not arg.is_Rational:
                    num.append(self.number(arg))
                elif abs(arg.p) == 1 and arg.q < 2**24:
                    negate ^= arg.p < 0
                    divisor = self.const(float(arg.q))  # x/3, exact divisor
                else:
                    num.append(self.number(arg))
            elif arg.is_Pow and arg.exp.is_Number and arg.exp.is_negative and arg.exp.is_Rational:
                den.append(self._pow_rational(arg.base, -arg.exp))
            else:
                num.append(self.value(arg))
        if divisor is not None:
            den.append(divisor)
        result = num[0] if num else self.const(1.0)
        for v in num[1:]:
            result = self.binop("fmul", result, v)
        if den:
            d = den[0]
            for v in den[1:]:
                d = self.binop("fmul", d, v)
            result = self.binop("fdiv", result, d)
        if negate:
            result = self.emit(f"fneg {self.fm}{self.ty} {result}")
        return result

    def _lower_Pow(self, expr: sympy.Pow) -> str:
        base, e = expr.args
        if e.is_Rational and e.is_Number:
            if e.is_negative:
                return self.binop("fdiv", self.const(1.0), self._pow_rational(base, -e))
            return self._pow_rational(base, e)
        return self.libm_pow(base, e)

    def libm_pow(self, base: sympy.Expr, e: sympy.Expr) -> str:
        return self.libm("pow", self.value(base), self.value(e))

    def _pow_rational(self, base: sympy.Expr, e: sympy.Rational) -> str:
        """base**e for a positive rational e: chains for n and n/2, else pow()."""
        key = ("pow", base, e)
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        if e.is_Integer and e <= MAX_POW_CHAIN:
            result = self._chain(self.value(base), int(e))
        elif e.q == 2 and e.p <= MAX_POW_CHAIN:
            result = self._chain(self.intrinsic("sqrt", self.value(base)), int(e.p))
        else:
            result = self.libm("pow", self.value(base), self.number(e))
        self.memo[key] = result
        return result

    def _chain(self, x: str, n: int) -> str:
        """x**n (n >= 1) by binary powering: x**2 -> x*x, x**5 -> (x*x)*(x*x)*x."""
        result: str | None = None
        square = x
        while True:
            if n & 1:
                result = square if result is None else self.binop("fmul", result, square)
            n >>= 1
            if not n:
                break
            square = self.binop("fmul", square, square)
        assert result is not None
        return result

    # -- elementary functions ---------------------------------------------------------------
    def _lower_Function(self, expr: sympy.Function) -> str:
        name = type(expr).__name__
        if name in LIBM_UNARY and len(expr.args) == 1:
            return self.libm(LIBM_UNARY[name], self.value(expr.args[0]))
        if name in LIBM_BINARY and len(expr.args) == 2:
            return self.libm(LIBM_BINARY[name], *(self.value(a) for a in expr.args))
        if name in INTRINSIC_UNARY and len(expr.args) == 1:
            return self.intrinsic(INTRINSIC_UNARY[name], self.value(expr.args[0]))
        # A user-defined Function states its meaning once, as SymPy's rewrite protocol:
        # ``_eval_rewrite_as_elementary`` (symad's sigmoid: 1/(1+exp(-x))). Lower that.
        if hasattr(expr, "_eval_rewrite_as_elementary"):
            r = expr.rewrite("elementary")
            if r != expr:
                return self.value(r)
        raise _cannot(expr)

    def _lower_fma(self, expr: sympy.Function) -> str:
        return self.intrinsic("fma", *(self.value(a) for a in expr.args))

    def _lower_Min(self, expr: sympy.Expr) -> str:
        return self._fold("minimum", expr.args)

    def _lower_Max(self, expr: sympy.Expr) -> str:
        return self._fold("maximum", expr.args)

    def _fold(self, intrinsic: str, args: tuple) -> str:
        # llvm.minimum/maximum: NaN-propagating, -0 < +0 (like numpy.minimum / torch.min).
        acc = self.value(args[0])
        for a in args[1:]:
            acc = self.intrinsic(intrinsic, acc, self.value(a))
        return acc

    def _lower_sign(self, expr: sympy.Expr) -> str:
        x = self.value(expr.args[0])
        zero = self.const(0.0)
        neg = self.select(self.fcmp("olt", x, zero), self.const(-1.0), x)  # 0, -0, nan -> x
        return self.select(self.fcmp("ogt", x, zero), self.const(1.0), neg)

    def _lower_Heaviside(self, expr: sympy.Expr) -> str:
        """PyTorch convention: H(0) = second argument if given, else 0; H(nan) = nan."""
        x = self.value(expr.args[0])
        at_zero = self.value(expr.args[1]) if len(expr.args) > 1 else self.const(0.0)
        zero = self.const(0.0)
        r = self.select(self.fcmp("oeq", x, zero), at_zero, x)  # x is nan here unless 0
        r = self.select(self.fcmp("olt", x, zero), zero, r)
        return self.select(self.fcmp("ogt", x, zero), self.const(1.0), r)

    def _lower_Piecewise(self, expr: sympy.Piecewise) -> str:
        """Nested ``select`` from the last piece backwards (no branches: loops vectorize)."""
        result = self.const(math.nan)  # no condition true -> undefined -> nan
        for piece_expr, cond in reversed(expr.args):
            if cond is S.true:
                result = self.value(piece_expr)
            elif cond is S.false:
                continue
            else:
                result = self.select(self.boolean(cond), self.value(piece_expr), result)
        return result

    # -- conditions -------------------------------------------------------------------------
    def _bool_Relational(self, expr: sympy.Basic) -> str:
        pred = _FCMP.get(type(expr).__name__)
        if pred is None:
            raise _cannot(expr, "unsupported relation")
        return self.fcmp(pred, self.value(expr.lhs), self.value(expr.rhs))

    def _bool_And(self, expr: sympy.Basic) -> str:
        return self._bool_fold("and", expr.args)

    def _bool_Or(self, expr: sympy.Basic) -> str:
        return self._bool_fold("or", expr.args)

    def _bool_Xor(self, expr: sympy.Basic) -> str:
        return self._bool_fold("xor", expr.args)

    def _bool_fold(self, op: str, args: tuple) -> str:
        acc = self.boolean(args[0])
        for a in args[1:]:
            acc = self.emit(f"{op} i1 {acc}, {self.boolean(a)}")
        return acc

    def _bool_Not(self, expr: sympy.Basic) -> str:
        return self.emit(f"xor i1 {self.boolean(expr.args[0])}, true")

    def _bool_BooleanTrue(self, expr: sympy.Basic) -> str:
        return "true"

    def _bool_BooleanFalse(self, expr: sympy.Basic) -> str:
        return "false"


def hp_scalars_ir(exprs, hp_ptr: str, offset: int, names: list[str], step, ty: str,
                  prefix: str, declarations: dict) -> tuple[list[str], list[str]]:
    """``(IR lines, values)``: ``exprs`` — SymPy expressions of the symbols ``names`` and
    ``step`` (an optimizer's hyperparameter arithmetic) — evaluated in double precision, as
    Python evaluates floats (the same IEEE operations and libm calls in the expressions' order),
    each rounded to ``ty``. ``names[k]`` is read from the float64 array ``hp_ptr`` at
    ``offset + k``; ``step(lowerer, load_base)`` returns the IR value of ``step`` given a loader
    of ``hp_ptr[offset + len(names)]`` (the step base). IR names start with ``%<prefix>``;
    declarations go into ``declarations``."""
    lw = Lowerer("double", {})
    lw.declarations = declarations

    def load(k: int):
        def get():
            p, v = lw.fresh(), lw.fresh()
            lw.lines += [f"  {p} = getelementptr inbounds double, ptr {hp_ptr}, i64 {offset + k}",
                         f"  {v} = load double, ptr {p}"]
            return v
        return get
    syms = {sym for e in exprs for sym in sympy.sympify(e).free_symbols}
    lw.symbols = {sym: (lambda: step(lw, load(len(names)))) if sym.name == "step"
                  else load(names.index(sym.name)) for sym in syms}
    values = []
    for e in exprs:
        v = lw.value(sympy.sympify(e))
        if ty == "float":
            r = lw.fresh()
            lw.lines.append(f"  {r} = fptrunc double {v} to float")
            v = r
        values.append(v)

    def rename(text: str) -> str:
        return text.replace("%t", f"%{prefix}")
    return [rename(ln) for ln in lw.lines], [rename(v) for v in values]
