"""docs/export.md stays correct: its Python snippet exports, its C program compiles and runs."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "export.md"
CC = shutil.which("cc")


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S)


@pytest.mark.skipif(CC is None, reason="no C compiler `cc` on PATH: cannot compile the doc's "
                    "C example")
def test_doc_c_example_compiles_and_fits(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks("python")[0], str(DOC), "exec"), {})
    c_src = next(b for b in blocks("c") if "int main" in b)
    (tmp_path / "main.c").write_text(c_src)
    import json
    m = json.loads((tmp_path / "build" / "linreg.json").read_text())
    subprocess.run([CC, "-O2", "-Wall", "-Werror", "main.c", "build/linreg.o", "-Ibuild",
                    "-o", "main", *m["link_flags"].split()], check=True, cwd=tmp_path)
    p = subprocess.run(["./main"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    out = re.match(r"loss (\S+) w (\S+) (\S+) b (\S+)", p.stdout)
    loss, w0, w1, b = map(float, out.groups())
    # independent oracle: the data is exactly y = 2 x0 - 3.4 x1 + 4.2
    assert loss < 1e-8 and abs(w0 - 2.0) < 1e-3 and abs(w1 + 3.4) < 1e-3 and abs(b - 4.2) < 1e-3
    assert "w 2.0000 -3.4000 b 4.2000" in p.stdout


def test_example_export_curve_fit_runs(tmp_path):
    import importlib.util
    path = DOC.parents[1] / "examples" / "export_curve_fit.py"
    spec = importlib.util.spec_from_file_location("export_curve_fit", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(str(tmp_path / "out")) == 0
    assert (tmp_path / "out" / "curve.h").is_file()
