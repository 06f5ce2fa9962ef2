"""Record PyTorch's values for tests/pytorch_edge_cases.py (tests/test_pytorch_edges.py reads them).

    /path/to/python-with-torch tests/data/make_pytorch_edges.py

PyTorch is never a symad dependency: run this in a separate environment with torch and numpy
(``python -m venv /tmp/torchvenv; /tmp/torchvenv/bin/pip install torch numpy``). Each case is
evaluated in float64 with ``symad`` bound to ``torch``; the value, the gradients of its sum with
respect to x and y, the dtype and the grad_fn name -- or the exception -- go to
``tests/data/pytorch_edges.json``.
"""
from __future__ import annotations

import json
import math
import os
import sys
import warnings

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from pytorch_edge_cases import CASES  # noqa: E402


def encode(v):
    """Lists of floats with inf/nan as strings (JSON has neither)."""
    if isinstance(v, list):
        return [encode(a) for a in v]
    if v is None or not isinstance(v, float) or math.isfinite(v):
        return v
    return repr(v)


def run(src: str, xv, yv) -> dict:
    x = torch.tensor(xv, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(0.0 if yv is None else yv, dtype=torch.float64, requires_grad=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = eval(src, {"symad": torch, "F": F, "x": x, "y": y})  # noqa: S307
            gx, gy = torch.autograd.grad(out.sum(), [x, y], allow_unused=True)
    except Exception as e:  # noqa: BLE001 - recorded: PyTorch refuses this case
        return {"error": type(e).__name__, "message": str(e)[:200]}
    return {"value": encode(out.detach().tolist()),
            "gx": None if gx is None else encode(gx.tolist()),
            "gy": None if gy is None else encode(gy.tolist()),
            "dtype": str(out.dtype).replace("torch.", ""),
            "grad_fn": None if out.grad_fn is None else out.grad_fn.name()}


def main() -> None:
    torch.set_default_dtype(torch.float64)
    records = [{"src": s, "x": x, "y": y, **run(s, x, y)} for s, x, y in CASES]
    with open(os.path.join(HERE, "pytorch_edges.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": records}, f, indent=1)
    print(f"{len(records)} cases, {sum('error' in r for r in records)} refused, "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
