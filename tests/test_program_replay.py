"""Differential test of the tensor program's central promise: a program recorded on one call
replays ANY later call exactly like eager does.

Each case is a small model over registry ops (structural ops with their registry VJPs, elementwise
formulas, index inputs, kinks, broadcasting). It is recorded on batch A; then, on a fresh batch B
(new data, new class labels / indices) and after a parameter update, the replay's loss and
gradients must equal eager on B (float64, rtol 1e-12) — a VJP that baked this call's values into
the program (an index key computed from data, a stale constant) fails here."""
from __future__ import annotations

import numpy as np
import pytest

import symad
from symad import nn
from symad.nn import functional as F
from symad.program import Runner, capture

N, D, C = 6, 5, 4
RNG = np.random.default_rng(7)
W1 = symad.tensor(RNG.normal(size=(D, D)), requires_grad=True)
B1 = symad.tensor(RNG.normal(size=(D,)), requires_grad=True)
W2 = symad.tensor(RNG.normal(size=(C, D)), requires_grad=True)
EMB = symad.tensor(RNG.normal(size=(10, D)), requires_grad=True)
CONV = symad.tensor(RNG.normal(size=(2, 1, 3, 3)), requires_grad=True)
GAMMA = symad.tensor(RNG.normal(size=(D,)), requires_grad=True)
PARAMS = [W1, B1, W2, EMB, CONV, GAMMA]


def head(h):
    return h @ W2.T


CASES = {
    # name: (loss(x, y, idx), uses)
    "mlp_tanh_mse": lambda x, y, i: F.mse_loss(head(symad.tanh(x @ W1 + B1)), y),
    "relu_ce_labels": lambda x, y, i: F.cross_entropy(head(symad.relu(x @ W1 - B1)), i % C),
    "softmax_attention": lambda x, y, i: (symad.softmax((x @ W1) @ x.T / 2.0, dim=-1) @ x
                                          @ W2.T).square().mean(),
    "log_softmax_nll_sum": lambda x, y, i: F.nll_loss(F.log_softmax(head(x * B1), dim=1), i % C,
                                                      reduction="sum"),
    "maximum_minimum_clamp": lambda x, y, i: (symad.maximum(x @ W1, x) - symad.minimum(x, B1)
                                              ).clamp(-0.5, 0.7).sum(),
    "where_mask": lambda x, y, i: symad.where(x > 0.1, x @ W1, x * B1).abs().mean(),
    "amax_logsumexp": lambda x, y, i: (symad.logsumexp(x @ W1, dim=1)
                                       - (x * B1).amax(dim=1)).sum(),
    "index_slices_cat": lambda x, y, i: symad.cat([x[:, 1:3] @ W1[1:3], x[::2] @ W1], 0)
                                        .tanh().sum(),
    "reshape_transpose": lambda x, y, i: ((x @ W1).reshape(-1, N).t() ** 2).sum() / 3,
    "embedding_labels": lambda x, y, i: (F.embedding(i, EMB) * (x @ W1)).sigmoid().sum(),
    "gather_labels": lambda x, y, i: symad.gather(x @ W1, 1, (i % D).unsqueeze(1)).exp().sum(),
    "conv_maxpool": lambda x, y, i: F.max_pool2d(
        F.conv2d(symad.cat([x[:, :4], x[:, 1:5]], 1).reshape(N, 1, 2, 4), CONV, padding=1), 2)
        .square().sum(),
    "layer_norm_gelu": lambda x, y, i: F.gelu(F.layer_norm(x @ W1, (D,), GAMMA, B1)).sum(),
    "bce_logits": lambda x, y, i: F.binary_cross_entropy_with_logits(
        (x @ W1)[:, :1], (y[:, :1] > 0).to(symad.float64)),
    "cumsum_var": lambda x, y, i: (symad.cumsum(x @ W1, dim=1) + (x * B1).var(dim=0)).mean(),
    "softplus_silu_chain": lambda x, y, i: F.silu(F.softplus(x @ W1) - 1).pow(3).mean(),
}


def batch(seed):
    g = np.random.default_rng(seed)
    return (symad.tensor(g.normal(size=(N, D))), symad.tensor(g.normal(size=(N, C))),
            symad.tensor(g.integers(0, 10, size=N)))


def eager(fn, args):
    for p in PARAMS:
        p.grad = None
    loss = fn(*args)
    loss.backward()
    return loss._data, [None if p.grad is None else p.grad._data.copy() for p in PARAMS]


@pytest.mark.parametrize("name", sorted(CASES))
def test_replay_on_new_data_and_parameters_equals_eager(name):
    fn = CASES[name]
    prog, out, grads, wrt = capture(fn, batch(1), wrt=PARAMS, arg_names=["x", "y", "i"])
    run = Runner(prog)
    saved = [p._data.copy() for p in PARAMS]
    try:
        for seed, scale in ((2, 1.0), (3, 0.7)):
            with symad.no_grad():            # parameters change between calls (read live)
                for p in PARAMS:
                    p.mul_(scale)
            args = batch(seed)
            got = run(*[a._data for a in args])
            value, ref = eager(fn, args)
            np.testing.assert_allclose(got[0], value, rtol=1e-12, atol=1e-14, err_msg=name)
            for k, (a, b) in enumerate(zip(got[1:], ref)):
                if b is None:
                    assert a is None or not np.any(a), (name, k)
                    continue
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14,
                                           err_msg=f"{name}: gradient {k}")
    finally:
        for p, d in zip(PARAMS, saved):
            p._data[...] = d
