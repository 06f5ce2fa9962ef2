"""symad.export: the generated C library, linked from C, against numpy closed-form oracles.

Bound (also the harness's): |got - want| <= 1e-12 * max(1, |want|) in float64. Why: each
per-sample term is a handful of IEEE operations plus libm/libmvec calls (libmvec <= 4 ulp), and
the batch sum is reassociated by the vectorizer (<= N * eps * sum|terms|, N <= 64 here, with
sum|terms| within a small factor of |sum| for this data): ~1e-14, far below 1e-12, while a wrong
formula, layout or reduction is off by >= 1e-3. The .o and .so runs execute the same machine
code, so their printed values must be identical bit for bit.
"""
from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess

import numpy as np
import pytest

import symad
from symad.export_ import ExportError

CC = shutil.which("cc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler `cc` on PATH: cannot compile "
                              "and link the exported library from C")
TOL = 1e-12


def linreg_loss(X, y, w, b):
    """d2l's linear regression: squared_loss(linreg(X, w, b), y), averaged over the batch."""
    return (((symad.matmul(X, w) + b - y.reshape((-1, 1))) ** 2) / 2).mean()


def curve_mse(x, y, theta):
    f = theta[0] * symad.exp(-theta[1] * x) * symad.sin(theta[2] * x + theta[3]) + theta[4]
    return ((f - y) ** 2).mean()


def linreg_oracle(X, y, w, b):
    r = X @ w + b - y                       # (N, 1)
    n = X.shape[0]
    return (r ** 2 / 2).mean(), X.T @ r / n, np.array([r.sum() / n])


def curve_oracle(x, y, t):
    e, s, c = np.exp(-t[1] * x), np.sin(t[2] * x + t[3]), np.cos(t[2] * x + t[3])
    r = t[0] * e * s + t[4] - y
    d = [e * s, -t[0] * x * e * s, t[0] * e * c * x, t[0] * e * c, np.ones_like(x)]
    return np.mean(r ** 2), np.array([np.mean(2 * r * di) for di in d])


@pytest.fixture(scope="module")
def linreg(tmp_path_factory):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(13, 2))            # 13: not a multiple of the vector width
    w_true = np.array([[2.0], [-3.4]])
    y = X @ w_true + 4.2 + 0.01 * rng.normal(size=(13, 1))
    w = rng.normal(0, 0.01, size=(2, 1))
    b = np.zeros(1)
    out = tmp_path_factory.mktemp("linreg")
    res = symad.export(linreg_loss, (symad.tensor(X), symad.tensor(y),
                                     symad.tensor(w, requires_grad=True),
                                     symad.tensor(b, requires_grad=True)), out, name="linreg")
    return res, (X, y, w, b)


@pytest.fixture(scope="module")
def curve(tmp_path_factory):
    rng = np.random.default_rng(3)
    x = np.linspace(0.0, 4.0, 37)
    y = 1.5 * np.exp(-0.7 * x) * np.sin(2.0 * x + 0.3) + 0.1 + 0.01 * rng.normal(size=37)
    theta = np.array([1.2, 0.5, 1.8, 0.1, 0.0])
    out = tmp_path_factory.mktemp("curve")
    res = symad.export(curve_mse, (symad.tensor(x), symad.tensor(y),
                                   symad.tensor(theta, requires_grad=True)), out, name="curve")
    return res, (x, y, theta)


def build_and_run(res, how: str) -> tuple[int, str]:
    d, name = res.out_dir, res.manifest["name"]
    exe = d / f"test_{how}"
    libs = res.manifest["link_flags"].split()
    if how == "o":
        cmd = [CC, "-O2", "-Wall", "-Werror", f"{name}_test.c", f"{name}.o", "-o", exe.name, *libs]
    else:
        cmd = [CC, "-O2", "-Wall", "-Werror", f"{name}_test.c", "-L.", f"-l{name}",
               f"-Wl,-rpath,{d}", "-o", exe.name, "-lm"]
    subprocess.run(cmd, cwd=d, check=True, capture_output=True)
    p = subprocess.run([str(exe)], cwd=d, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stdout


def results(stdout: str) -> dict:
    out: dict = {}
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            _, fn, name, k, got, _want, _ok = line.split()
            out.setdefault((fn, name), {})[int(k)] = float(got)
    return {key: np.array([v[k] for k in sorted(v)]) for key, v in out.items()}


def assert_close(got, want):
    got, want = np.asarray(got, float).ravel(), np.asarray(want, float).ravel()
    assert got.shape == want.shape
    bound = TOL * np.maximum(1.0, np.abs(want))
    assert np.all(np.abs(got - want) <= bound), (got, want, np.abs(got - want))


@needs_cc
@pytest.mark.parametrize("how", ["o", "so"])
def test_linreg_harness_matches_closed_form(linreg, how):
    res, (X, y, w, b) = linreg
    rc, out = build_and_run(res, how)
    assert rc == 0, out
    r = results(out)
    loss, gw, gb = linreg_oracle(X, y, w, b)
    assert_close(r[("linreg_forward", "out")], loss)
    assert_close(r[("linreg_grad", "loss")], loss)
    assert_close(r[("linreg_grad", "grad_w")], gw)
    assert_close(r[("linreg_grad", "grad_b")], gb)


@needs_cc
@pytest.mark.parametrize("how", ["o", "so"])
def test_curve_fit_harness_matches_hand_derivative(curve, how):
    res, (x, y, theta) = curve
    rc, out = build_and_run(res, how)
    assert rc == 0, out
    r = results(out)
    loss, g = curve_oracle(x, y, theta)
    assert_close(r[("curve_grad", "loss")], loss)
    assert_close(r[("curve_grad", "grad_theta")], g)
    assert_close(r[("curve_forward", "out")], loss)


@needs_cc
def test_o_and_so_agree_bit_for_bit(curve):
    res, _ = curve
    _, a = build_and_run(res, "o")
    _, b = build_and_run(res, "so")
    ra, rb = results(a), results(b)
    assert ra.keys() == rb.keys() and len(ra) == 3
    for k in ra:
        assert ra[k].tobytes() == rb[k].tobytes()


@needs_cc
def test_bad_arguments_return_status_from_c(linreg):
    res, _ = linreg
    rc, out = build_and_run(res, "o")
    status = [ln.split() for ln in out.splitlines() if ln.startswith("STATUS")]
    # per function: the good call, n=-1, and one NULL per pointer (4 inputs + its outputs)
    assert len(status) == (1 + 1 + 4 + 1) + (1 + 1 + 4 + 3)
    assert all(s[-1] == "ok" for s in status), out
    bad = {s[1]: int(s[2]) for s in status}
    assert bad["linreg_grad(n=-1)"] == 2 and bad["linreg_grad(grad_w=NULL)"] == 1
    assert bad["linreg_forward(in_X=NULL)"] == 1 and bad["linreg_forward"] == 0


@needs_cc
def test_harness_detects_a_wrong_value(curve, tmp_path):
    """The harness can fail: perturb one expected value and it must exit nonzero."""
    res, _ = curve
    src = (res.out_dir / "curve_test.c").read_text()
    m = re.search(r"(want_curve_grad_loss\[1\] = \{\n\s*)([-0-9.e]+)", src)
    bad = src[:m.start(2)] + repr(float(m[2]) * (1 + 1e-9)) + src[m.end(2):]
    (tmp_path / "t.c").write_text(bad)
    subprocess.run([CC, "t.c", str(res.out_dir / "curve.o"), f"-I{res.out_dir}", "-o", "t",
                    *res.manifest["link_flags"].split()], cwd=tmp_path, check=True)
    p = subprocess.run(["./t"], cwd=tmp_path, capture_output=True, text=True)
    assert p.returncode == 1 and "FAIL curve_grad loss" not in p.stdout
    assert re.search(r"RESULT curve_grad loss 0 \S+ \S+ FAIL", p.stdout)


def test_manifest_and_header(curve):
    res, _ = curve
    m = json.loads((res.out_dir / "curve.json").read_text())
    assert m["symad_version"] == symad.__version__ and m["dtype"] == "float64"
    assert [i["name"] for i in m["inputs"]] == ["x", "y", "theta"]
    assert m["inputs"][0]["shape"] == ["N"] and m["inputs"][2]["shape"] == [5]
    assert [i["role"] for i in m["inputs"]] == ["data", "data", "parameter"]
    libs = [d["library"] for d in m["runtime_dependencies"]]
    assert "libm" in libs
    assert ("libmvec" in libs) == m["vector_math"].startswith("glibc libmvec")
    grad = next(f for f in m["functions"] if f["name"] == "curve_grad")
    assert grad["c_signature"] == ("int curve_grad(int64_t n, const double *x, const double *y, "
                                   "const double *theta, double *loss, double *grad_theta)")
    assert [o["name"] for o in grad["outputs"]] == ["loss", "grad_theta"]
    assert len(grad["outputs"][1]["formulas"]) == 5
    header = (res.out_dir / "curve.h").read_text()
    assert grad["c_signature"] + ";" in header
    assert "exp(-theta[1]*x[i])" in header and "#define CURVE_ERR_N 2" in header


def test_formulas_are_the_exact_derivatives(curve):
    """The header's gradient formulas, parsed back, equal sympy.diff of the loss formula."""
    import sympy
    res, _ = curve
    grad = next(f for f in res.manifest["functions"] if f["name"] == "curve_grad")
    names = {f"theta[{k}]": sympy.Symbol(f"t{k}") for k in range(5)}
    names.update({"x[i]": sympy.Symbol("x"), "y[i]": sympy.Symbol("y")})

    def parse(s):
        for k, v in names.items():
            s = s.replace(k, str(v))
        return sympy.sympify(s)
    loss = parse(grad["outputs"][0]["formulas"][0])
    for k, f in enumerate(grad["outputs"][1]["formulas"]):
        assert sympy.simplify(parse(f) - sympy.diff(loss, sympy.Symbol(f"t{k}"))) == 0


def _e_machine(path) -> int:
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF"
    return struct.unpack("<H", head[18:20])[0]


@pytest.mark.parametrize("triple,machine", [("aarch64-unknown-linux-gnu", 183),
                                            ("riscv64-unknown-linux-gnu", 243)])
def test_cross_target_object(tmp_path, triple, machine):
    x = symad.tensor(np.linspace(0, 1, 5))
    theta = symad.tensor([1.0, 0.5, 2.0, 0.1, 0.0], dtype=symad.float64, requires_grad=True)
    res = symad.export(curve_mse, (x, 2 * x, theta), tmp_path, name="curve", target=triple)
    assert set(res.files) == {"h", "test", "o", "ll", "json"}
    assert _e_machine(res.files["o"]) == machine
    m = res.manifest
    assert m["target"]["triple"] == triple and m["target"]["elf_machine"] == machine
    assert [d["library"] for d in m["runtime_dependencies"]] == ["libm"]
    assert m["vector_math"].startswith("none: scalar libm calls")
    assert b"_ZGV" not in res.files["o"].read_bytes()
    assert f'target triple = "{triple}"' in res.files["ll"].read_text()


def test_host_object_is_host_architecture(linreg):
    res, _ = linreg
    assert _e_machine(res.files["o"]) == {"x86_64": 62, "aarch64": 183, "riscv64": 243}[
        res.manifest["target"]["triple"].split("-")[0]]


def test_errors_are_explained(tmp_path):
    x = symad.tensor(np.linspace(0, 1, 4))
    a = symad.tensor([2.0], dtype=symad.float64, requires_grad=True)
    with pytest.raises(ExportError, match="cross toolchain"):
        symad.export(lambda x, a: ((a * x) ** 2).mean(), (x, a), tmp_path, name="k",
                     target="aarch64-unknown-linux-gnu", formats=("o", "so"))
    with pytest.raises(ExportError, match="scalar loss"):
        symad.export(lambda x, a: a * x, (x, a), tmp_path, name="k", formats=("h",))
    with pytest.raises(ExportError, match="C identifier"):
        symad.export(lambda x, a: (a * x).sum(), (x, a), tmp_path, name="my-lib")


def test_cli_json_manifest(tmp_path, capsys):
    from symad.cli import main
    src = tmp_path / "model.py"
    src.write_text("import symad\n\ndef loss(X, y, w, b):\n"
                   "    return (((X @ w + b - y) ** 2) / 2).mean()\n")
    rc = main(["export", f"{src}:loss", "--input", "X=float64[N,2]", "--input", "y=float64[N,1]",
               "--input", "w=float64[2,1]", "--input", "b=float64[1]", "--name", "lr",
               "--out-dir", str(tmp_path / "out"), "--formats", "h,ll", "--json"])
    assert rc == 0
    m = json.loads(capsys.readouterr().out)
    assert [(i["name"], i["shape"], i["role"]) for i in m["inputs"]] == [
        ("X", ["N", 2], "data"), ("y", ["N", 1], "data"), ("w", [2, 1], "parameter"),
        ("b", [1], "parameter")]
    assert sorted(m["files"]) == ["h", "json", "ll", "test"]
    assert main(["export", f"{src}:loss", "--input", "X=float64[2,N]"]) == 2
    assert "N (the batch) must be the first" in capsys.readouterr().err


@needs_cc
def test_large_batch_through_ctypes(tmp_path):
    """n = 1003 (vector body + remainder) through the .so, against the numpy oracle."""
    import ctypes
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 4, 1003)
    y = rng.normal(size=1003)
    theta = np.array([1.2, 0.5, 1.8, 0.1, 0.3])
    res = symad.export(curve_mse, (symad.tensor(x[:4]), symad.tensor(y[:4]),
                                   symad.tensor(theta, requires_grad=True)), tmp_path,
                       name="big", what=("grad",), formats=("so",))
    lib = ctypes.CDLL(str(res.files["so"]))
    f = lib.big_grad
    f.restype = ctypes.c_int
    P = ctypes.POINTER(ctypes.c_double)
    f.argtypes = [ctypes.c_int64, P, P, P, P, P]
    loss, g = np.zeros(1), np.zeros(5)
    ptr = (lambda a: a.ctypes.data_as(P))
    assert f(len(x), ptr(x), ptr(y), ptr(theta), ptr(loss), ptr(g)) == 0
    want_loss, want_g = curve_oracle(x, y, theta)
    assert_close(loss, want_loss)
    assert_close(g, want_g)
    assert f(-5, ptr(x), ptr(y), ptr(theta), ptr(loss), ptr(g)) == 2
    assert f(len(x), ptr(x), None, ptr(theta), ptr(loss), ptr(g)) == 1


@needs_cc
def test_float32_module_export(tmp_path):
    """An nn.Module (its weights become inputs) exported in float32, per-sample forward."""
    symad.manual_seed(0)
    model = symad.nn.Linear(3, 2)
    X = np.random.default_rng(2).normal(size=(9, 3)).astype(np.float32)
    res = symad.export(model, (symad.tensor(X),), tmp_path, name="lin", what=("forward",),
                       formats=("h", "o"))
    m = res.manifest
    assert m["dtype"] == "float32" and m["c_type"] == "float"
    assert [i["name"] for i in m["inputs"]] == ["input", "weight", "bias"]
    assert m["functions"][0]["outputs"][0]["shape"] == ["N", 2]
    rc, out = build_and_run(res, "o")
    assert rc == 0, out
    got = results(out)[("lin_forward", "out")].reshape(9, 2)
    W, b = model.weight.detach().numpy(), model.bias.detach().numpy()
    want = X.astype(np.float64) @ W.T.astype(np.float64) + b
    assert np.all(np.abs(got - want) <= 1e-5 * np.maximum(1, np.abs(want)))
