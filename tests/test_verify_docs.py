"""Every python block of docs/verify.md runs (in order, one namespace)."""
from __future__ import annotations

import pathlib
import re

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "verify.md"


def test_docs_verify_blocks_run(capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 6
    ns: dict = {}
    for b in blocks:
        exec(compile(b, str(DOC), "exec"), ns)
    out = capsys.readouterr().out
    assert "does not use input 'w'" in out and "transposed" in out
