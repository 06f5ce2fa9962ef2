"""Batch normalization and layer normalization (CS231n assignment 2; Ioffe & Szegedy 2015,
Ba et al. 2016), with the staged and the simplified backward, and the usual slips."""
from __future__ import annotations

import numpy as np

import symad

rng = np.random.default_rng(3)
N, D = 3, 2
EPS = 1e-5


def t(*shape):
    return symad.tensor(rng.standard_normal(shape))


def _bn_stats(x, eps=EPS):
    mu = np.mean(x, axis=0)
    xc = x - mu
    var = np.mean(xc ** 2, axis=0)
    std = np.sqrt(var + eps)
    return xc, std, xc / std


def batchnorm_f(x, gamma, beta, dout):
    _, _, xhat = _bn_stats(x)
    return np.sum((gamma * xhat + beta) * dout)


def batchnorm_backward(x, gamma, beta, dout):
    """The staged graph, node by node (the CS231n walk through the computational graph)."""
    n = x.shape[0]
    xc, std, xhat = _bn_stats(x)
    dbeta = np.sum(dout, axis=0)
    dgamma = np.sum(dout * xhat, axis=0)
    dxhat = dout * gamma
    dxc = dxhat / std
    dstd = -np.sum(dxhat * xc, axis=0) / std ** 2
    dvar = 0.5 * dstd / std
    dxc = dxc + 2 * xc * dvar / n
    dmu = -np.sum(dxc, axis=0)
    dx = dxc + dmu / n
    return dx, dgamma, dbeta


def batchnorm_backward_alt(x, gamma, beta, dout, eps=EPS):
    """The simplified one-line dx (keyword argument eps, a helper for the statistics)."""
    n = x.shape[0]
    _, std, xhat = _bn_stats(x, eps=eps)
    dxhat = dout * gamma
    dx = (n * dxhat - np.sum(dxhat, axis=0) - xhat * np.sum(dxhat * xhat, axis=0)) / (n * std)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def batchnorm_backward_no_mean_term(x, gamma, beta, dout):
    """Drops the path through the mean (dx = dxhat / std - ... without -sum(dxhat)/N)."""
    n = x.shape[0]
    _, std, xhat = _bn_stats(x)
    dxhat = dout * gamma
    dx = (n * dxhat - xhat * np.sum(dxhat * xhat, axis=0)) / (n * std)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def batchnorm_backward_unbiased(x, gamma, beta, dout):
    """Differentiates the unbiased variance (N - 1) while the forward uses the biased one."""
    n = x.shape[0]
    xc, std, xhat = _bn_stats(x)
    dxhat = dout * gamma
    dvar = np.sum(dxhat * xc, axis=0) * -0.5 * std ** -3
    dmu = -np.sum(dxhat, axis=0) / std
    dx = dxhat / std + dvar * 2 * xc / (n - 1) + dmu / n
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def batchnorm_backward_dgamma_unsummed(x, gamma, beta, dout):
    n = x.shape[0]
    _, std, xhat = _bn_stats(x)
    dxhat = dout * gamma
    dx = (n * dxhat - np.sum(dxhat, axis=0) - xhat * np.sum(dxhat * xhat, axis=0)) / (n * std)
    return dx, dout * xhat, np.sum(dout, axis=0)     # (N, D): the batch sum is missing


# -- layer norm: batch norm over the features of each sample ----------------------------------

def _ln_stats(x, eps=EPS):
    mu = np.mean(x, axis=1, keepdims=True)
    xc = x - mu
    var = np.mean(xc ** 2, axis=1, keepdims=True)
    std = np.sqrt(var + eps)
    return xc, std, xc / std


def layernorm_f(x, gamma, beta, dout):
    _, _, xhat = _ln_stats(x)
    return np.sum((gamma * xhat + beta) * dout)


def layernorm_backward(x, gamma, beta, dout):
    d = x.shape[1]
    _, std, xhat = _ln_stats(x)
    dxhat = dout * gamma
    dx = (d * dxhat - np.sum(dxhat, axis=1, keepdims=True)
          - xhat * np.sum(dxhat * xhat, axis=1, keepdims=True)) / (d * std)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def layernorm_backward_batch_axis(x, gamma, beta, dout):
    """Batch norm's backward reused: the sums run over the batch instead of the features."""
    d = x.shape[1]
    _, std, xhat = _ln_stats(x)
    dxhat = dout * gamma
    dx = (d * dxhat - np.sum(dxhat, axis=0)
          - xhat * np.sum(dxhat * xhat, axis=0)) / (d * std)
    return dx, np.sum(dout * xhat, axis=0), np.sum(dout, axis=0)


def cases() -> list[dict]:
    bn = dict(f=batchnorm_f, inputs=dict(x=t(N, D), gamma=t(D), beta=t(D), dout=t(N, D)),
              wrt=["x", "gamma", "beta"], source="CS231n A2 layers.batchnorm_backward")
    ln = dict(f=layernorm_f, inputs=dict(x=t(2, 3), gamma=t(3), beta=t(3), dout=t(2, 3)),
              wrt=["x", "gamma", "beta"], source="CS231n A2 layers.layernorm_backward")
    return [
        dict(name="batchnorm staged", claimed=batchnorm_backward, expect="right", **bn),
        dict(name="batchnorm simplified", claimed=batchnorm_backward_alt, expect="right", **bn),
        dict(name="batchnorm no mean term", claimed=batchnorm_backward_no_mean_term,
             expect="wrong", **bn),
        dict(name="batchnorm unbiased var", claimed=batchnorm_backward_unbiased,
             expect="wrong", **bn),
        dict(name="batchnorm dgamma unsummed", claimed=batchnorm_backward_dgamma_unsummed,
             expect="wrong", **bn),
        dict(name="layernorm", claimed=layernorm_backward, expect="right", **ln),
        dict(name="layernorm batch axis", claimed=layernorm_backward_batch_axis,
             expect="wrong", **ln),
    ]
