"""symad.compile and the compiled functional transforms."""
from .compiled import CompiledFunction, CompileWarning, compile
from .program import NotCompilable

__all__ = ["compile", "CompiledFunction", "CompileWarning", "NotCompilable"]
