"""``symad.trace``: run a function on symbolic stand-ins and keep its outputs as SymPy.

>>> import symad
>>> tr = symad.trace(lambda w: 2 * w ** 2, 10.0)
>>> tr.outputs[0], tr.gradient()
(2*w**2, 4*w)
>>> float(tr.evaluate(tr.gradient()))
40.0
"""
from __future__ import annotations

import inspect
import os
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import sympy

from ..errors import TracingError
from .reverse import (display_simplify, exactify_floats, expression_size, kinks,
                      reverse_gradient, reverse_jacobian)
from .symbols import symbol_array

__all__ = ["trace", "Trace", "Variable", "trace_function_backward", "FunctionBackwardTrace",
           "to_sympy", "user_source_line"]

_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ---------------------------------------------------------------------------------------------
# small conversions

def to_sympy(arr: np.ndarray):
    """A 0-d object array -> Expr; 1-d/2-d -> ``sympy.Matrix`` (1-d as a column); else ndarray."""
    arr = np.asarray(arr, dtype=object)
    if arr.ndim == 0:
        return sympy.sympify(arr[()])
    if arr.ndim == 1:
        return sympy.Matrix(arr.shape[0], 1, [sympy.sympify(v) for v in arr])
    if arr.ndim == 2:
        return sympy.Matrix(arr.shape[0], arr.shape[1],
                            [sympy.sympify(v) for v in arr.reshape(-1)])
    return np.vectorize(sympy.sympify, otypes=[object])(arr)


def _as_object_array(v) -> np.ndarray:
    from ..tensor import Tensor
    if isinstance(v, Tensor):
        v = v._data
    if isinstance(v, sympy.MatrixBase):
        return np.array(v.tolist(), dtype=object)
    a = np.asarray(v)
    if a.dtype != object:
        a = a.astype(object)
    return np.vectorize(lambda e: exactify_floats(sympy.sympify(e)), otypes=[object])(a) \
        if a.size else a


def user_source_line(tb) -> str | None:
    """``file:line: code`` of the innermost traceback frame outside the symad package."""
    best = None
    for fs in traceback.extract_tb(tb):
        if not os.path.abspath(fs.filename).startswith(_PKG_DIR + os.sep):
            best = fs
    if best is None:
        return None
    return f"{best.filename}:{best.lineno}: {(best.line or '').strip()}"


def _reraise_tracing(exc: TracingError) -> None:
    where = user_source_line(exc.__traceback__)
    msg = str(exc)
    if where:
        msg = (f"{msg}\n  traced value used in Python control flow at {where}\n  hint: write the "
               "choice as symad.where(cond, a, b) (or clamp/relu/maximum), which traces to a "
               "Piecewise expression")
    raise TracingError(msg).with_traceback(exc.__traceback__) from None


# ---------------------------------------------------------------------------------------------

@dataclass
class Variable:
    """One traced input or module parameter: its name, symbols (object array) and example."""
    name: str
    symbols: np.ndarray
    example: np.ndarray
    kind: str = "input"  # input | parameter

    @property
    def shape(self) -> tuple:
        return self.symbols.shape

    @property
    def flat(self) -> list:
        return list(self.symbols.reshape(-1))

    @property
    def expr(self):
        """The symbol (scalar) or ``sympy.Matrix`` of symbols."""
        return to_sympy(self.symbols)


def _find_modules(fn, examples) -> list[tuple[str, Any]]:
    """Modules whose parameters become symbols: ``fn`` itself, modules passed in, and modules
    ``fn`` closes over or reads as globals."""
    def is_module(o):
        return hasattr(o, "named_parameters") and callable(o.named_parameters)

    found: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def add(name, o):
        if is_module(o) and id(o) not in seen:
            seen.add(id(o))
            found.append((name, o))

    add("model", fn)
    for i, e in enumerate(examples):
        add(f"arg{i}", e)
    code = getattr(fn, "__code__", None)
    if code is not None:
        for name, cell in zip(code.co_freevars, fn.__closure__ or ()):
            try:
                add(name, cell.cell_contents)
            except ValueError:  # empty cell
                pass
        g = getattr(fn, "__globals__", {})
        for name in code.co_names:
            if name in g:
                add(name, g[name])
    return found


def _param_names(fn, n: int, names) -> list[str]:
    if names is not None:
        names = list(names)
        if len(names) != n:
            raise ValueError(f"trace: got {len(names)} names for {n} example inputs")
        return names
    target = fn.forward if hasattr(fn, "named_parameters") and hasattr(fn, "forward") else fn
    out: list[str] = []
    try:
        params = [p for p in inspect.signature(target).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        out = [p.name for p in params[:n]]
        if any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(target).parameters.values()):
            pass
    except (TypeError, ValueError):
        out = []
    return out + [f"x{i}" for i in range(len(out), n)]


def _is_float_tensor_like(e) -> bool:
    from ..tensor import Tensor
    if isinstance(e, Tensor):
        return e.dtype.is_floating_point
    if isinstance(e, np.ndarray):
        return e.dtype.kind == "f"
    return isinstance(e, (float, int, np.floating, np.integer)) and not isinstance(e, bool)


class _Swap:
    """Temporarily replaces module parameters' data by symbol arrays (restored on exit)."""

    def __init__(self, modules) -> None:
        self.variables: list[Variable] = []
        self._saved: list[tuple[Any, np.ndarray]] = []
        prefix = len(modules) > 1
        seen: set[int] = set()
        for mname, m in modules:
            for pname, p in m.named_parameters():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                name = f"{mname}.{pname}" if prefix else pname
                syms = symbol_array(name, p.shape)
                self.variables.append(Variable(name, syms, np.array(p._data, dtype=np.float64),
                                               "parameter"))
                self._saved.append((p, p._data))
                p._data = syms

    def restore(self) -> None:
        for p, data in self._saved:
            p._data = data


def _collect_outputs(out) -> list[np.ndarray]:
    from ..tensor import Tensor
    if isinstance(out, (tuple, list)):
        return [a for o in out for a in _collect_outputs(o)]
    if isinstance(out, (Tensor, np.ndarray, sympy.Basic, int, float, np.number)):
        return [_as_object_array(out)]
    raise TypeError(f"trace: cannot record an output of type {type(out).__name__}; return "
                    "tensors, numbers or tuples of them")


def trace(fn: Callable, *example_inputs, names: Sequence[str] | None = None,
          constants: Sequence[int | str] = (), _elements: bool = False):
    """Run ``fn`` on symbolic stand-ins shaped like ``example_inputs`` and record its outputs.

    Floating tensors, arrays and Python numbers become real symbols named after ``fn``'s
    parameters (``w``; ``W[0,1]`` for tensor elements); integer/bool tensors and the inputs named
    in ``constants`` keep their example values. Parameters of ``nn.Module`` objects passed in,
    being ``fn``, or closed over become symbols named after their parameter names
    (``0.weight[0,1]``).

    >>> import symad
    >>> tr = symad.trace(lambda x, y: x**2 + 3*x*y + y**2, 2.0, 3.0)
    >>> tr.gradient()
    [2*x + 3*y, 3*x + 2*y]
    """
    from .. import float64
    from ..autograd import no_grad
    from ..tensor import Tensor

    from ..tensor import Tensor as _T
    if isinstance(fn, _T) and not example_inputs:
        # symad.trace(matrix): PyTorch's torch.trace (a tensor is never a traced function)
        from ..linalg import matrix_trace
        return matrix_trace(fn)
    arg_names = _param_names(fn, len(example_inputs), names)
    const = {c if isinstance(c, int) else arg_names.index(c) for c in constants}
    if not _elements:
        big = _program_trace(fn, example_inputs, arg_names, const)
        if big is not None:
            return big
    variables: list[Variable] = []
    args = []
    for i, (name, e) in enumerate(zip(arg_names, example_inputs)):
        if isinstance(e, Tensor) and e._data.dtype == object:  # already symbolic: keep it
            syms = e._data
            if all(isinstance(s, sympy.Symbol) for s in syms.reshape(-1)):
                variables.append(Variable(name, syms, None))
            args.append(e)
            continue
        if i in const or not _is_float_tensor_like(e) or hasattr(e, "named_parameters"):
            # constants keep their values; numpy arrays become tensors like the traced inputs
            args.append(Tensor._wrap(np.asarray(e)) if isinstance(e, np.ndarray) else e)
            continue
        ex = e._data if isinstance(e, Tensor) else np.asarray(e)
        syms = symbol_array(name, ex.shape)
        variables.append(Variable(name, syms, np.array(ex, dtype=np.float64)))
        args.append(Tensor._wrap(syms, float64))
    swap = _Swap(_find_modules(fn, example_inputs))
    try:
        with no_grad():
            out = fn(*args)
    except TracingError as exc:
        _reraise_tracing(exc)
    finally:
        swap.restore()
    return Trace(getattr(fn, "__name__", type(fn).__name__), variables + swap.variables,
                 _collect_outputs(out), single_output=not isinstance(out, (tuple, list)))


def _program_trace(fn, examples, arg_names, const):
    """A :class:`ProgramTrace` when element-level SymPy would exceed ``ELEMENT_LIMIT`` symbols."""
    from ..tensor import Tensor
    from .program_trace import ELEMENT_LIMIT, ProgramTrace
    modules = _find_modules(fn, examples)
    params = []
    seen: set[int] = set()
    prefix = len(modules) > 1
    for mname, m in modules:
        for pname, p in m.named_parameters():
            if id(p) not in seen:
                seen.add(id(p))
                params.append((f"{mname}.{pname}" if prefix else pname, p))
    floats = [i for i, e in enumerate(examples) if i not in const and _is_float_tensor_like(e)
              and not hasattr(e, "named_parameters")]
    # the element-level cost grows with every element, constants included (X @ w with a
    # numeric X still builds one SymPy sum per row)
    n = sum(int(np.size(getattr(e, "_data", e))) for e in examples
            if isinstance(e, (Tensor, np.ndarray)))
    n += sum(p.numel() for _, p in params)
    if n <= ELEMENT_LIMIT or any(isinstance(e, Tensor) and e._data.dtype == object
                                 for e in examples):
        return None
    args, wrt, wrt_names = [], [], []
    for i, e in enumerate(examples):
        if i in floats:
            arr = np.asarray(getattr(e, "_data", e))
            t = Tensor._wrap(np.array(arr, dtype=arr.dtype if arr.dtype.kind == "f"
                                      else np.float64)).requires_grad_(True)
            args.append(t)
            wrt.append(t)
            wrt_names.append(arg_names[i])
        else:
            args.append(Tensor._wrap(np.asarray(e)) if isinstance(e, np.ndarray) else e)
    for name, p in params:
        wrt.append(p)
        wrt_names.append(name)
    return ProgramTrace(fn, examples, args, arg_names, wrt, wrt_names)


class Trace:
    """A traced function: its input symbols, its outputs as SymPy, and exact derivatives.

    * ``variables``: the traced inputs then module parameters (:class:`Variable`);
      ``symbols``: all their symbols, flat.
    * ``outputs``: one entry per output — an Expr (scalar), ``sympy.Matrix`` (1-d as a column,
      or 2-d), or an object ndarray (3-d and up). ``output_arrays`` holds them as object arrays.
    * ``gradient(output=0, wrt=None)``: for a scalar output, the gradient shaped like each
      variable in ``wrt`` (default: all): Expr for a scalar, Matrix/ndarray for a tensor; a list
      with one entry per variable, or the entry itself when ``wrt`` names a single variable or
      there is only one variable. Computed by reverse mode over the expression DAG.
    * ``jacobian(output=0, wrt=None)``, ``hessian(output=0, wrt=None)``: Matrices over the
      flattened outputs/variables.
    * ``evaluate(what=None, *values)``: numbers (float64, via ``lambdify``) at the example
      values or the given ones; ``subs(mapping)``: outputs with symbols substituted.
    * ``kinks()``: the conditions where an output may be non-differentiable.
    """

    def __init__(self, name: str, variables: list[Variable], output_arrays: list[np.ndarray],
                 single_output: bool = True) -> None:
        self.name = name
        self.variables = variables
        self.output_arrays = output_arrays
        self.single_output = single_output and len(output_arrays) == 1
        self._grad_cache: dict = {}

    # -- basic views --------------------------------------------------------------------------
    @property
    def symbols(self) -> list:
        return [s for v in self.variables for s in v.flat]

    @property
    def inputs(self) -> list:
        """The input symbols per variable (Symbol or Matrix of symbols)."""
        return [v.expr for v in self.variables]

    @property
    def outputs(self) -> list:
        return [to_sympy(a) for a in self.output_arrays]

    @property
    def output(self):
        """The first output (Expr or Matrix)."""
        return to_sympy(self.output_arrays[0])

    def variable(self, key) -> Variable:
        if isinstance(key, Variable):
            return key
        if isinstance(key, int):
            return self.variables[key]
        for v in self.variables:
            if v.name == key:
                return v
        raise KeyError(f"trace has no input or parameter named {key!r}; it has "
                       f"{[v.name for v in self.variables]}")

    def _wrt(self, wrt) -> tuple[list[Variable], bool]:
        if wrt is None:
            return list(self.variables), len(self.variables) == 1
        if isinstance(wrt, (str, int, Variable)):
            return [self.variable(wrt)], True
        return [self.variable(w) for w in wrt], False

    def _scalar_output(self, output: int):
        a = self.output_arrays[output]
        if a.size != 1:
            raise ValueError(f"gradient needs a scalar output; output {output} has shape "
                             f"{a.shape} (use jacobian())")
        return sympy.sympify(a.reshape(-1)[0])

    # -- derivatives ----------------------------------------------------------------------------
    def gradient_arrays(self, output: int = 0, wrt=None) -> list[np.ndarray]:
        """The gradient as object arrays shaped like each variable in ``wrt``."""
        vars_, _ = self._wrt(wrt)
        key = (output, tuple(v.name for v in vars_))
        if key not in self._grad_cache:
            flat = [s for v in vars_ for s in v.flat]
            g = reverse_gradient(self._scalar_output(output), flat)
            out, k = [], 0
            for v in vars_:
                n = v.symbols.size
                arr = np.empty(n, dtype=object)
                arr[:] = g[k:k + n]
                out.append(arr.reshape(v.shape))
                k += n
            self._grad_cache[key] = out
        return self._grad_cache[key]

    def gradient(self, output: int = 0, wrt=None):
        """Exact gradient of scalar output ``output`` (see the class docstring for its shape)."""
        _, single = self._wrt(wrt)
        out = [to_sympy(a) for a in self.gradient_arrays(output, wrt)]
        return out[0] if single else out

    def jacobian(self, output: int = 0, wrt=None) -> sympy.Matrix:
        vars_, _ = self._wrt(wrt)
        flat = [s for v in vars_ for s in v.flat]
        return reverse_jacobian(list(self.output_arrays[output].reshape(-1)), flat)

    def hessian(self, output: int = 0, wrt=None) -> sympy.Matrix:
        """d²(scalar output)/d(wrt)², by reverse mode over the reverse-mode gradient."""
        vars_, _ = self._wrt(wrt)
        flat = [s for v in vars_ for s in v.flat]
        g = [e for a in self.gradient_arrays(output, [v.name for v in vars_])
             for e in a.reshape(-1)]
        return reverse_jacobian(g, flat)

    # -- numbers --------------------------------------------------------------------------------
    def environment(self, *values) -> dict:
        """{symbol: float} for the given values per variable (default: the example values)."""
        if values and len(values) > len(self.variables):
            raise ValueError(f"got {len(values)} values for {len(self.variables)} variables")
        env = {}
        for i, v in enumerate(self.variables):
            val = values[i] if i < len(values) else v.example
            if val is None:
                raise ValueError(f"no value given for {v.name!r} (it has no example value)")
            val = np.broadcast_to(np.asarray(getattr(val, "_data", val), dtype=np.float64),
                                  v.shape)
            for s, x in zip(v.flat, val.reshape(-1)):
                env[s] = float(x)
        return env

    def evaluate(self, what=None, *values):
        """Evaluate ``what`` (an Expr, Matrix, object array or list of them; default: the outputs)
        in float64 at the example values, or at ``values`` (one per variable)."""
        env = self.environment(*values)
        if what is None:
            res = [evaluate_numeric(a, env) for a in self.output_arrays]
            return res[0] if self.single_output else res
        return evaluate_numeric(what, env)

    def subs(self, mapping: dict) -> list:
        """The outputs with symbols (or variable names -> values) substituted."""
        rep = {}
        for k, val in mapping.items():
            if isinstance(k, str):
                v = self.variable(k)
                vals = np.broadcast_to(np.asarray(getattr(val, "_data", val), dtype=object),
                                       v.shape)
                rep.update({s: sympy.nsimplify(x) if isinstance(x, float) and x == int(x)
                            else sympy.sympify(x) for s, x in zip(v.flat, vals.reshape(-1))})
            else:
                rep[k] = sympy.sympify(val)
        return [o.xreplace(rep) if not isinstance(o, np.ndarray)
                else np.vectorize(lambda e: e.xreplace(rep), otypes=[object])(o)
                for o in self.outputs]

    # -- inspection -----------------------------------------------------------------------------
    def kinks(self) -> list:
        """Conditions (``Eq(lhs, rhs)``) where an output may not be differentiable."""
        return kinks([e for a in self.output_arrays for e in a.reshape(-1)])

    def size(self) -> int:
        """Distinct nodes in the outputs' expression DAG."""
        return expression_size([e for a in self.output_arrays for e in a.reshape(-1)])

    def __str__(self) -> str:
        ins = ", ".join(f"{v.name}{list(v.shape) if v.shape else ''}" for v in self.variables)
        lines = [f"Trace of {self.name}({ins})"]
        for i, o in enumerate(self.outputs):
            lines.append(f"  out[{i}] = {_short(o)}")
        return "\n".join(lines)

    __repr__ = __str__

    def latex(self, simplify: bool = False) -> str:
        outs = self.outputs
        if simplify:
            outs = [display_simplify(o) for o in outs]
        parts = [sympy.latex(o) for o in outs]
        return r" ,\quad ".join(parts)

    def _repr_latex_(self) -> str:
        return f"$\\displaystyle {self.latex()}$"


def _short(o, limit: int = 2000) -> str:
    s = str(o)
    return s if len(s) <= limit else s[:limit] + f" ... ({len(s)} characters)"


def _piecewise_in_condition(expr) -> bool:
    return any(ec.cond.has(sympy.Piecewise) for p in expr.atoms(sympy.Piecewise)
               for ec in p.args)


def evaluate_numeric(what, env: dict):
    """float64 values of SymPy expressions under ``env`` ({symbol: float}), via ``lambdify``."""
    from ..ops.registry import NUMPY_FUNCS
    if isinstance(what, (list, tuple)):
        return [evaluate_numeric(w, env) for w in what]
    if isinstance(what, sympy.MatrixBase):
        arr, shape = list(what), what.shape
    else:
        a = np.asarray(what, dtype=object)
        arr, shape = list(a.reshape(-1)), a.shape
    arr = [sympy.sympify(e) for e in arr]
    syms = sorted(set().union(*[e.free_symbols for e in arr]) if arr else set(), key=str)
    missing = [s for s in syms if s not in env]
    if missing:
        raise ValueError(f"no value for symbols {missing}")
    nested = False
    if any(_piecewise_in_condition(e) for e in arr):
        # SymPy's cse rebuilds nodes with their evaluating constructors, and folding a Piecewise
        # whose condition holds another Piecewise can drop a branch; without cse the printed
        # code repeats shared subexpressions (exponential in the nesting). Evaluate the DAG
        # with the registry's own ops instead (each node once).
        from ..ops.sym2tensor import evaluate_many
        from ..tensor import tensor
        from .. import _dtype as D
        tenv = {s: tensor(env[s], dtype=np.float64) for s in syms}
        prev = D.get_default_dtype()
        try:
            # constants the DAG creates (a Piecewise's 0/1 branches) must be float64 too, not
            # the default float32 (1/6 in float32 made a fuzzed d/dw 0.06250000186 for 0.0625)
            D.set_default_dtype(D.float64)
            with np.errstate(all="ignore"):
                vals = [np.asarray(getattr(v, "_data", v), np.float64)
                        for v in evaluate_many(arr, tenv)]
            out = np.array([float(v) for v in vals], dtype=np.float64).reshape(shape)
            return out[()] if out.ndim == 0 else out
        except NotImplementedError:  # a class sym2tensor has no handler for: lambdify it,
            nested = True             # without cse (it can drop a branch of such a Piecewise)
        finally:
            D.set_default_dtype(prev)
    f = sympy.lambdify(syms, arr, modules=[NUMPY_FUNCS, "numpy"], cse=not nested)
    with np.errstate(all="ignore"):
        # numpy scalars, not Python floats: IEEE results (0.0**-1 = inf) where Python raises,
        # e.g. in the branch of pow's 0**0 rule that ``select`` then discards
        vals = f(*[np.float64(env[s]) for s in syms])
    out = np.array([float(v) for v in vals], dtype=np.float64).reshape(shape)
    return out[()] if out.ndim == 0 else out


# ---------------------------------------------------------------------------------------------
# custom autograd.Function: trace the user's backward

@dataclass
class FunctionBackwardTrace:
    """The traced forward and hand-written backward of a custom ``autograd.Function``.

    ``grads[i]`` is what the user's ``backward`` returns for input ``i`` (as SymPy, in terms of
    the input symbols and the upstream-gradient symbols ``grad_outputs``), ``expected[i]`` the
    exact vector-Jacobian product of the traced forward (reverse mode). ``mismatches()`` lists
    the inputs where they differ.
    """
    inputs: list
    outputs: list
    grad_outputs: list
    grads: list
    expected: list
    input_names: list = field(default_factory=list)

    def mismatches(self) -> list[int]:
        bad = []
        for i, (g, e) in enumerate(zip(self.grads, self.expected)):
            if e is None:
                continue
            ga = np.asarray(g if g is not None else 0, dtype=object)
            ea = np.asarray(e, dtype=object)
            ga = np.broadcast_to(ga, ea.shape) if ga.shape != ea.shape else ga
            if any(not _is_zero(sympy.sympify(a) - sympy.sympify(b))
                   for a, b in zip(ga.reshape(-1), ea.reshape(-1))):
                bad.append(i)
        return bad


def _is_zero(expr) -> bool:
    """Exact zero test: structural, then ``expand``, then ``simplify`` (small expressions)."""
    if expr == 0:
        return True
    e = sympy.expand(expr)
    if e == 0:
        return True
    if sympy.count_ops(e) < 400:
        return sympy.simplify(e) == 0
    return False


def trace_function_backward(function_cls, *example_inputs, names: Sequence[str] | None = None
                            ) -> FunctionBackwardTrace:
    """Trace a custom Function's ``forward`` and its hand-written ``backward`` symbolically.

    Tensor inputs become symbols (named after ``forward``'s parameters after ``ctx``); the
    upstream gradients are symbols ``grad_output`` (``grad_output0``, ... for several outputs).
    Globals the backward reads stay concrete, so a backward that uses a global instead of a saved
    tensor shows up in ``mismatches()``.
    """
    from .. import float64
    from ..autograd import no_grad
    from ..tensor import Tensor

    try:
        sig = list(inspect.signature(function_cls.forward).parameters)[1:]
    except (TypeError, ValueError):
        sig = []
    arg_names = list(names) if names is not None else \
        (sig[:len(example_inputs)] + [f"x{i}" for i in range(len(sig), len(example_inputs))])
    args, syms = [], []
    for name, e in zip(arg_names, example_inputs):
        if _is_float_tensor_like(e) and isinstance(e, (Tensor, np.ndarray, float, int)):
            ex = e._data if isinstance(e, Tensor) else np.asarray(e)
            s = symbol_array(name, ex.shape)
            syms.append(s)
            args.append(Tensor._wrap(s, float64))
        else:
            syms.append(None)
            args.append(e)
    ctx = function_cls._backward_cls(())
    ctx.needs_input_grad = tuple(s is not None for s in syms)
    try:
        with no_grad():
            out = function_cls.forward(ctx, *args)
            outs = out if isinstance(out, tuple) else (out,)
            g_syms = [symbol_array("grad_output" if len(outs) == 1 else f"grad_output{i}",
                                   o.shape) for i, o in enumerate(outs)]
            gs = [Tensor._wrap(g, float64) for g in g_syms]
            res = function_cls.backward(ctx, *gs)
    except TracingError as exc:
        _reraise_tracing(exc)
    res = res if isinstance(res, tuple) else (res,)
    grads = []
    for s, r in zip(syms, res):
        if s is None or r is None:
            grads.append(None if r is None else to_sympy(_as_object_array(r)))
            continue
        a = _as_object_array(r)
        if a.shape != s.shape:
            a = _sum_to(a, s.shape)
        grads.append(to_sympy(a))
    # the exact VJP: gradient of sum(grad_output * out) with respect to the inputs
    flat_in = [x for s in syms if s is not None for x in s.reshape(-1)]
    vjp = sympy.Add(*[g * o for gsym, o in zip(g_syms, outs)
                      for g, o in zip(gsym.reshape(-1), _as_object_array(o).reshape(-1))])
    d = reverse_gradient(vjp, flat_in)
    expected, k = [], 0
    for s in syms:
        if s is None:
            expected.append(None)
            continue
        n = s.size
        arr = np.empty(n, dtype=object)
        arr[:] = d[k:k + n]
        expected.append(to_sympy(arr.reshape(s.shape)))
        k += n
    return FunctionBackwardTrace(
        inputs=[to_sympy(s) if s is not None else None for s in syms],
        outputs=[to_sympy(_as_object_array(o)) for o in outs],
        grad_outputs=[to_sympy(g) for g in g_syms], grads=grads, expected=expected,
        input_names=arg_names)


def _sum_to(a: np.ndarray, shape: tuple) -> np.ndarray:
    lead = a.ndim - len(shape)
    if lead:
        a = a.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if a.ndim == len(shape) and s == 1
                 and a.shape[i] != 1)
    if axes:
        a = a.sum(axis=axes, keepdims=True)
    a = np.asarray(a, dtype=object)
    if [n for n in a.shape if n != 1] != [n for n in shape if n != 1]:
        return a  # not the input's shape (a transposed gradient): left for the caller to report
    return a.reshape(shape)
