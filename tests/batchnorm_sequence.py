"""A fixed sequence of BatchNorm calls (training steps, then eval) whose results PyTorch recorded
(tests/data/make_pytorch_batchnorm.py -> tests/data/pytorch_batchnorm.json) and symad repeats
(tests/test_batchnorm.py). ``run(lib, nn)``: ``lib`` is ``torch`` or ``symad``."""
from __future__ import annotations

import numpy as np


def run(lib, nn) -> dict:
    lib.set_default_dtype(lib.float64)
    rng = np.random.default_rng(0)
    X2, X3 = rng.normal(size=(4, 3)), rng.normal(size=(3, 2, 5))
    X4, G2, G4 = rng.normal(size=(2, 3, 2, 2)), rng.normal(size=(4, 3)), rng.normal(size=(2, 3, 2, 2))
    out: dict = {}

    def seq(name, mod, X, G, steps=2):
        res = []
        for s in range(steps):
            x = lib.tensor(X * (s + 1), requires_grad=True)
            y = mod(x)
            (y * lib.tensor(G)).sum().backward()
            r = {"y": y.detach().tolist(), "gx": x.grad.tolist(), "name": y.grad_fn.name()}
            if mod.weight is not None:
                r["gw"], r["gb"] = mod.weight.grad.tolist(), mod.bias.grad.tolist()
                mod.weight.grad = mod.bias.grad = None
            if mod.running_mean is not None:
                r["rm"], r["rv"] = mod.running_mean.tolist(), mod.running_var.tolist()
                r["nbt"] = int(mod.num_batches_tracked)
            res.append(r)
        mod.eval()
        x = lib.tensor(X, requires_grad=True)
        y = mod(x)
        y.sum().backward()
        res.append({"y": y.detach().tolist(), "gx": x.grad.tolist(), "name": y.grad_fn.name()})
        out[name] = res

    seq("bn1d", nn.BatchNorm1d(3), X2, G2)
    seq("bn1d_3d", nn.BatchNorm1d(2), X3, np.ones_like(X3))
    seq("bn2d", nn.BatchNorm2d(3), X4, G4)
    seq("bn2d_cumulative", nn.BatchNorm2d(3, momentum=None), X4, G4, steps=3)
    seq("bn1d_no_affine", nn.BatchNorm1d(3, affine=False), X2, G2)
    seq("bn1d_no_stats", nn.BatchNorm1d(3, track_running_stats=False), X2, G2)
    m = nn.BatchNorm2d(3, eps=1e-3, momentum=0.3)
    out["repr"] = [repr(m), repr(nn.BatchNorm1d(4, affine=False))]
    out["keys"] = [sorted(m.state_dict().keys()), [n for n, _ in m.named_buffers()]]
    seq("bn2d_eps_momentum", m, X4, G4)
    for key, make, shape in (("error_one_value", lambda: nn.BatchNorm1d(3), (1, 3)),
                             ("error_dims", lambda: nn.BatchNorm2d(3), (2, 3, 2))):
        try:
            make()(lib.tensor(rng.normal(size=shape)))
        except Exception as e:  # noqa: BLE001 - recorded
            out[key] = type(e).__name__
    return out
