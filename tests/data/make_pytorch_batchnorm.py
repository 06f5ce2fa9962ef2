"""Record PyTorch's BatchNorm results for tests/batchnorm_sequence.py (read by
tests/test_batchnorm.py).

    /path/to/python-with-torch tests/data/make_pytorch_batchnorm.py

PyTorch is never a symad dependency: run this where torch and numpy are installed."""
from __future__ import annotations

import json
import os
import sys

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from batchnorm_sequence import run  # noqa: E402

if __name__ == "__main__":
    out = run(torch, nn)
    out["torch"] = torch.__version__
    with open(os.path.join(HERE, "pytorch_batchnorm.json"), "w") as f:
        json.dump(out, f, indent=0)
    print("recorded with torch", torch.__version__)
