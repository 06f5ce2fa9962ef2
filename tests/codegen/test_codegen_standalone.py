"""`codegen` never imports `symad`: it imports, compiles and runs a kernel with `symad` blocked."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["symad"] = None  # any `import symad...` now raises ImportError
    import pkgutil, importlib
    import numpy as np, sympy as sp
    import codegen
    for m in pkgutil.walk_packages(codegen.__path__, "codegen."):
        importlib.import_module(m.name)
    x, a = sp.symbols("x a")
    k = codegen.compile_kernel([x, a], [a * sp.sin(x)], batched=[x], reduce="sum", cache=False)
    print(float(k(np.array([0.0, np.pi / 2]), 2.0)[0]))
    assert not any(n == "symad" or n.startswith("symad.") for n, m in sys.modules.items()
                   if m is not None)
""")


def test_codegen_imports_and_runs_with_symad_blocked():
    p = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "2.0"
