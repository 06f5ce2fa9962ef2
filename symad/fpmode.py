"""``symad.set_flush_denormal`` (PyTorch's name): flush subnormal floats to zero on the CPU.

IEEE arithmetic on subnormal numbers (below ~1.2e-38 in float32, ~2.2e-308 in float64) is
~100x slower on x86. Training a model until its gradients are tiny produces them: Adam's
moments of dead units decay into that range, as do the gradients of a saturated softmax. With
``set_flush_denormal(True)`` the calling thread computes with FTZ and DAZ set — subnormal
results become 0 and subnormal inputs read as 0 — for numpy (eager symad) and native code
alike, so eager and compiled steps still agree; the worker threads of a native call take the
calling thread's mode. PyTorch keeps subnormals by default (as symad does); JAX (XLA) flushes
them always.
"""
from __future__ import annotations


def set_flush_denormal(mode: bool) -> bool:
    """Flush subnormal floats to zero (``True``) or keep IEEE subnormals (``False``, the
    default) in the calling thread. Returns ``True`` when the machine supports it (x86-64), else
    ``False`` and nothing changes — as ``torch.set_flush_denormal``."""
    if not isinstance(mode, bool):
        raise TypeError(f"set_flush_denormal(): argument 'mode' must be bool, not "
                        f"{type(mode).__name__}")
    from codegen import fpmode
    return fpmode.set_flush(mode)
