"""Record PyTorch's values for the fuzzer's random programs (tests/test_fuzz_pytorch.py reads them).

    /path/to/python-with-torch tests/data/make_fuzz_pytorch.py [N]

PyTorch is never a symad dependency: this script runs in a separate environment with torch,
numpy and hypothesis (``python -m venv /tmp/torchvenv; /tmp/torchvenv/bin/pip install torch
numpy hypothesis``). It draws the first N programs of ``tests/fuzz_programs.py`` (derandomized),
evaluates each in float64 with ``symad`` bound to ``torch`` (the programs are written with
PyTorch's names), and writes the loss and the gradients with respect to w, s and M — or the
exception PyTorch raised — to ``tests/data/fuzz_pytorch.json``.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, given, settings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from fuzz_programs import programs  # noqa: E402

PARAMS = ("w", "s", "M")


def run_torch(prog) -> dict:
    torch.set_default_dtype(torch.float64)
    ts = {n: torch.tensor(np.asarray(v, np.float64), requires_grad=n in PARAMS)
          for n, v in prog.values.items()}
    fn = eval(prog.source, {"symad": torch})  # noqa: S307 - the fuzzer's own generated source
    try:
        out = fn(ts["w"], ts["s"], ts["M"], ts["x"])
        grads = torch.autograd.grad(out, [ts[n] for n in PARAMS], allow_unused=True)
    except Exception as e:  # noqa: BLE001 - recorded: PyTorch refuses this program
        return {"error": type(e).__name__, "message": str(e)[:200]}
    return {"value": float(out.detach()),
            "grads": [None if g is None else g.numpy().tolist() for g in grads]}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    records = []

    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(programs())
    def collect(prog):
        rec = {"expr": prog.expr, "final": prog.final, "k": prog.k, "b": prog.b,
               "kinks": prog.kinks,
               "values": {k: np.asarray(v).tolist() for k, v in prog.values.items()}}
        rec.update(run_torch(prog))
        records.append(rec)

    collect()
    out = {"torch": torch.__version__, "programs": records}
    with open(os.path.join(HERE, "fuzz_pytorch.json"), "w") as f:
        json.dump(out, f, indent=0)
    errors = sum("error" in r for r in records)
    print(f"{len(records)} programs, {errors} refused by PyTorch, torch {torch.__version__}")


if __name__ == "__main__":
    main()
