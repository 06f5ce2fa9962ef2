"""The docstring examples of codegen and the example in docs/codegen.md run as written."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

import codegen.cache
import codegen.kernel
import codegen.target

DOC = Path(__file__).resolve().parents[2] / "docs" / "codegen.md"


@pytest.mark.parametrize("module", [codegen.kernel, codegen.cache, codegen.target],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMAD_CACHE_DIR", str(tmp_path))  # the example uses the default cache
    first = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)[0]
    code = compile(first.replace("print(", "(lambda *a: None)("), str(DOC), "exec")
    exec(code, {})  # noqa: S102 - our own documentation
