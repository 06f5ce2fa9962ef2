"""`symad demo`: every number it prints is computed; parts degrade gracefully; exit codes."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from symad import cli, demo


def run_demo(capsys, *argv) -> tuple[int, str]:
    code = cli.main(["demo", *argv])
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def results():
    """One full --json run shared by the tests below (the demo takes a few seconds)."""
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(["demo", "--json"])
    data = json.loads(buf.getvalue())
    assert code == data["exit_code"] == 0, data
    return data


def test_runs_under_a_minute_and_every_part_ran(results):
    assert results["seconds"] < 60
    assert set(results["parts"]) == {"1", "2", "3", "4"}
    assert all(p["status"] == "ok" for p in results["parts"].values()), results["parts"]


def test_part1_derivative_matches_independent_value(results):
    p = results["parts"]["1"]
    w = 10.0
    assert p["w_grad"] == 4 * w == 40.0        # d(2w^2)/dw = 4w, computed here by hand
    assert p["dloss_dw_value"] == 40.0
    assert p["dloss_dw"] == "4*w"
    assert p["loss"] == 2 * w ** 2
    step = np.float32(w) - np.float32(0.01) * np.float32(40.0)
    assert p["sgd_step"] == pytest.approx(float(step), rel=1e-6)
    assert p["sgd_step_grad_fn"] == "SubBackward0"
    x, y = 2.0, 3.0
    assert p["dz"]["x"]["value"] == p["z_grad"]["x"] == 2 * x + 3 * y == 13.0
    assert p["dz"]["y"]["value"] == p["z_grad"]["y"] == 3 * x + 2 * y == 12.0


def test_part2_catches_seed002_slip(results):
    p = results["parts"]["2"]
    assert p["claimed"] == {"x": 10, "y": 13}
    assert p["items"]["x"]["exact_value"] == "13" and p["items"]["y"]["exact_value"] == "12"
    assert p["items"]["x"]["verdict"].startswith("WRONG")
    assert p["items"]["y"]["verdict"].startswith("WRONG")
    assert p["verdict"] == "proved wrong" and p["exit_code"] == 1
    assert p["corrected_verdict"] == "proved right"


def test_part3_compiled_training_matches_eager(results):
    p = results["parts"]["3"]
    assert not p["fell_back"]
    assert p["compiled_count"] >= 1
    e, c = p["eager"], p["compiled"]
    assert e["steps"] == c["steps"] == demo.EPOCHS * demo.N_SAMPLES // demo.BATCH
    np.testing.assert_allclose(c["w"], e["w"], atol=1e-5)
    assert c["b"] == pytest.approx(e["b"], abs=1e-5)
    np.testing.assert_allclose(c["w"], demo.TRUE_W, atol=0.01)
    assert c["b"] == pytest.approx(demo.TRUE_B, abs=0.01)
    assert p["speedup"] == pytest.approx(e["per_step"] / c["per_step"])
    assert p["max_param_diff"] < 1e-5


@pytest.mark.skipif(demo._find_cc() is None, reason="needs a C compiler")
def test_part4_c_program_agrees_with_numpy(results):
    p = results["parts"]["4"]
    X, y = demo._d2l_data()
    X = X.numpy().astype(np.float64)
    y = y.numpy().astype(np.float64)
    r = -y  # residual at w = 0, b = 0
    want = [np.mean(r ** 2 / 2), *np.mean(X * r, axis=0), np.mean(r)]
    np.testing.assert_allclose(p["c_start"], want, rtol=1e-12)
    assert p["max_rel_diff"] < 1e-12
    np.testing.assert_allclose(p["c_final"]["w"], demo.TRUE_W, atol=0.01)
    assert p["c_final"]["b"] == pytest.approx(demo.TRUE_B, abs=0.01)
    assert p["self_test_exit"] == 0
    assert "linreg.h" in p["files"] and "linreg.o" in p["files"]


def test_text_output_plain_when_not_a_tty(capsys):
    code, out = run_demo(capsys, "--part", "1", "--no-color")
    assert code == 0
    assert "d loss/d w = 4*w = 40.0" in out
    assert "w.grad = 40.0" in out
    assert "\033[" not in out
    assert "== 2." not in out  # only part 1


def test_color_only_on_a_tty(capsys, monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True, raising=False)
    code, out = run_demo(capsys, "--part", "2")
    assert code == 0 and "\033[" in out
    code, out = run_demo(capsys, "--part", "2", "--no-color")
    assert "\033[" not in out


def test_part2_text(capsys):
    code, out = run_demo(capsys, "--part", "2")
    assert code == 0
    assert "claimed 10   exact 2*x + 3*y = 13" in out
    assert "claimed 13   exact 3*x + 2*y = 12" in out
    assert "proved wrong" in out


def test_missing_feature_is_skipped_with_reason(capsys, monkeypatch):
    real = demo._need

    def fake(module, attr=None):
        if attr == "explain":
            raise demo.Skip("symad.symbolic.explain is not available in this build (test)")
        return real(module, attr)
    monkeypatch.setattr(demo, "_need", fake)
    code, out = run_demo(capsys, "--part", "1", "--part", "2")
    assert code == 0
    assert "skipped: symad.symbolic.explain is not available" in out
    assert "proved wrong" in out  # part 2 still ran


def test_no_c_compiler_degrades(capsys, monkeypatch):
    monkeypatch.setattr(demo, "_find_cc", lambda: None)
    code = cli.main(["demo", "--part", "4", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    p = data["parts"]["4"]
    assert p["status"] == "ok" and "no C compiler" in p["skipped_c"]
    assert "linreg.h" in p["files"] and "liblinreg.so" not in p["files"]


def test_failing_part_gives_exit_1(capsys, monkeypatch):
    def boom(out):
        raise RuntimeError("boom")
    monkeypatch.setattr(demo, "part2", boom)
    code, out = run_demo(capsys, "--part", "2")
    assert code == 1
    assert "failed: RuntimeError: boom" in out
    capsys.readouterr()


def test_usage_error_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["demo", "--part", "7"])
    assert e.value.code == 2


def test_out_dir_keeps_files(tmp_path, capsys):
    if shutil.which("cc") is None and demo._find_cc() is None:
        pytest.skip("needs a C compiler")
    code, out = run_demo(capsys, "--part", "4", "--out-dir", str(tmp_path))
    assert code == 0
    assert (tmp_path / "linreg.h").is_file() and (tmp_path / "demo_main.c").is_file()
    assert f"in {tmp_path}" in out
