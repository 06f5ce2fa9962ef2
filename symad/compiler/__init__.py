"""symad.compile and the compiled functional transforms."""
from .compiled import CompiledFunction, CompileWarning, compile
from .program import NotCompilable
from .step import CompiledStep, compile_step  # noqa: F401  (symad.compile_step)
from .transforms import grad, hessian, jacobian, value_and_grad

__all__ = ["compile", "CompiledFunction", "CompileWarning", "NotCompilable", "grad",
           "value_and_grad", "jacobian", "hessian"]
