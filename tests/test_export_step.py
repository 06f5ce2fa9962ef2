"""symad.export of a compiled training step: the exported C function, linked into a C program
with only libm/libmvec, continues training exactly as symad does (float64 1e-12 after 10 steps)."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import symad
from symad import nn, optim
from symad.export_ import ExportError

CC = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "NAME.h"
static void *slurp(const char *path, size_t bytes) {
    FILE *f = fopen(path, "rb"); void *p = malloc(bytes);
    if (!f || fread(p, 1, bytes, f) != bytes) { fprintf(stderr, "read %s\n", path); exit(2); }
    fclose(f); return p;
}
int main(int argc, char **argv) {
    int steps = atoi(argv[1]);
    double *P = slurp("P.bin", sizeof(double) * UP_N_PARAMS);
    double *S = slurp("S.bin", sizeof(double) * UP_N_STATE);
    double *X = slurp("X.bin", sizeof(double) * UP_X_SIZE * steps);
    int64_t *y = slurp("y.bin", sizeof(int64_t) * UP_Y_SIZE * steps);
    double *G = malloc(sizeof(double) * UP_N_PARAMS), *loss = malloc(sizeof(double) * steps);
    void *work = aligned_alloc(64, (UP_WORKSPACE_BYTES + 63) / 64 * 64);
    for (int k = 0; k < steps; k++) {
        int rc = NAME_step(X + (size_t)k * UP_X_SIZE, y + (size_t)k * UP_Y_SIZE, P, S, G,
                           loss + k, work);
        if (rc != 0) { fprintf(stderr, "status %d\n", rc); return 3; }
    }
    y[0] = 10;                                   /* a class out of range: status 3 */
    if (NAME_step(X, y, P, S, G, loss, work) != 3) return 4;
    if (NAME_step(X, y, NULL, S, G, loss, work) != 1) return 5;
    FILE *f = fopen("out.bin", "wb");
    fwrite(P, sizeof(double), UP_N_PARAMS, f); fwrite(S, sizeof(double), UP_N_STATE, f);
    fwrite(loss, sizeof(double), steps, f); fclose(f);
    return 0;
}
"""


def _flat(tensors):
    return np.concatenate([t.detach().numpy().reshape(-1) for t in tensors])


def _state(opt, params, manifest):
    """The exported state layout: each buffer over all parameters, then Adam's step counters
    (one per param group)."""
    parts = [_flat([opt.state[p][key] for p in params]) for key in manifest["buffers"]]
    if manifest["step_counters"]:
        parts.append(np.array([float(opt.state[g["params"][0]]["step"])
                               for g in opt.param_groups]))
    return np.concatenate(parts)


@pytest.mark.skipif(CC is None, reason="no C compiler on PATH")
@pytest.mark.parametrize("make_opt", [
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-4),
    lambda ps: optim.AdamW(ps, lr=1e-3, amsgrad=True),
], ids=["sgd-momentum", "adamw-amsgrad"])
def test_exported_784_training_step_continues_training_like_symad(tmp_path, make_opt):
    symad.manual_seed(0)
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                        nn.Linear(256, 10)).double()
    opt = make_opt(net.parameters())
    step = symad.compile_step(net, nn.CrossEntropyLoss(), opt)
    rng = np.random.default_rng(0)
    steps, b = 10, 32
    batches = [(rng.normal(size=(b, 784)), rng.integers(0, 10, b)) for _ in range(steps + 2)]
    for X, y in batches[:2]:            # the momentum buffer's first fill, then a native update
        step(symad.tensor(X), symad.tensor(y))
    res = symad.export(step, batches[1], tmp_path, name="mlp784")
    assert res.manifest["params"]["size"] == 784 * 256 + 256 + 256 * 256 + 256 + 256 * 10 + 10
    params = [p for g in opt.param_groups for p in g["params"]]
    P0 = _flat(params)
    P0.tofile(tmp_path / "P.bin")
    _state(opt, params, res.manifest["state"]).tofile(tmp_path / "S.bin")
    data = batches[2:]
    np.stack([X for X, _ in data]).tofile(tmp_path / "X.bin")
    np.stack([y for _, y in data]).astype(np.int64).tofile(tmp_path / "y.bin")
    losses = [step(symad.tensor(X), symad.tensor(y)).item() for X, y in data]

    (tmp_path / "main.c").write_text(DRIVER.replace("NAME", "mlp784").replace("UP", "MLP784"))
    link = res.manifest["link_flags"].split()
    subprocess.run([CC, "-O2", "-o", "main", "main.c", "mlp784.o", *link], cwd=tmp_path,
                   check=True, capture_output=True)
    run = subprocess.run(["./main", str(steps)], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    n = res.manifest["params"]["size"]
    out = np.fromfile(tmp_path / "out.bin")
    ns = res.manifest["state"]["size"]
    P, S, L = out[:n], out[n:n + ns], out[n + ns:]
    want_P = _flat(params)
    assert np.abs(want_P - P0).max() > 1e-3          # ten steps moved the parameters ...
    assert np.abs(P - want_P).max() <= 1e-12 * max(1.0, np.abs(want_P).max())   # ... alike
    print("max |P_c - P_symad|", np.abs(P - want_P).max(), "max step", np.abs(want_P - P0).max())
    np.testing.assert_allclose(S, _state(opt, params, res.manifest["state"]), rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(L, losses, rtol=1e-12)
    # the object needs nothing beyond libm / libmvec (and libc's memset/memcpy)
    from symad.export_.elf import undefined_symbols
    undefined = undefined_symbols((tmp_path / "mlp784.o").read_bytes())
    # an independent oracle: the same 12 steps written the eager way (numpy BLAS matmuls)
    symad.manual_seed(0)
    ref = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                        nn.Linear(256, 10)).double()
    ropt = make_opt(ref.parameters())
    for X, y in batches:
        ropt.zero_grad()
        nn.CrossEntropyLoss()(ref(symad.tensor(X)), symad.tensor(y)).backward()
        ropt.step()
    eager_P = _flat([p for g in ropt.param_groups for p in g["params"]])
    assert np.abs(P - eager_P).max() <= 1e-10 * max(1.0, np.abs(eager_P).max())
    libm_libc = {"expf", "exp", "logf", "log", "pow", "memset", "memcpy", "memmove"}
    assert all(s.startswith("_ZGV") or s in libm_libc for s in undefined), undefined


def test_export_step_errors_name_the_fix(tmp_path):
    symad.manual_seed(0)
    net = nn.Sequential(nn.Linear(20, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    X = symad.tensor(np.random.default_rng(1).normal(size=(8, 20)))
    y = symad.tensor(np.arange(8) % 3)
    step = symad.compile_step(net, nn.CrossEntropyLoss(),
                              optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
                              structured=True)
    with pytest.raises(ExportError, match="run the compiled step once"):
        symad.export(step, (X, y), tmp_path, name="s")
    step(X, y)              # the momentum buffer's first fill runs with numpy
    with pytest.raises(ExportError, match="take one more step"):
        symad.export(step, (X, y), tmp_path, name="s")
    step(X, y)
    with pytest.raises(ExportError, match="C identifier"):
        symad.export(step, (X, y), tmp_path, name="no good")

    def cumsum_loss(out, y):                # a step with no loop lowering (a scan)
        return ((out.cumsum(1) - 1.0) ** 2).mean()
    step = symad.compile_step(net, cumsum_loss, optim.SGD(net.parameters(), lr=0.1),
                              structured=True)
    step(X, y)
    with pytest.raises(ExportError, match="no loop lowering"):
        symad.export(step, (X, y), tmp_path, name="s")
