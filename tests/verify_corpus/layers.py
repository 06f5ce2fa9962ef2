"""Affine, ReLU, sigmoid, tanh and dropout layers (CS231n assignment 2, layers.py)."""
from __future__ import annotations

import numpy as np

import symad

rng = np.random.default_rng(231)
N, D, M = 3, 2, 3


def t(*shape):
    return symad.tensor(rng.standard_normal(shape))


# -- affine ---------------------------------------------------------------------------------

def affine_f(x, w, b, dout):
    out = x.reshape(x.shape[0], -1) @ w + b
    return np.sum(out * dout)


def affine_backward(x, w, b, dout):
    dx = (dout @ w.T).reshape(*x.shape)
    dw = x.reshape(x.shape[0], -1).T @ dout
    db = np.sum(dout, axis=0)
    return dx, dw, db


def affine_backward_dw_transposed(x, w, b, dout):
    dx = dout @ w.T
    dw = dout.T @ x                      # (M, D): the transpose of the (D, M) gradient
    db = np.sum(dout, axis=0)
    return dx, dw, db


def affine_backward_db_mean(x, w, b, dout):
    dx = dout @ w.T
    dw = x.T @ dout
    db = np.mean(dout, axis=0)           # averaged instead of summed over the batch
    return dx, dw, db


def affine_backward_dx_w_untransposed(x, w, b, dout):
    dx = dout @ w.T
    dw = x.T @ dout
    db = dout.sum(axis=1).sum() * np.ones_like(b)   # sums the wrong axis
    return dx, dw, db


# -- relu -------------------------------------------------------------------------------------

def relu_f(x, dout):
    return np.sum(np.maximum(0, x) * dout)


def relu_backward_mask(x, dout):
    return dout * (x > 0)


def relu_backward_assign(x, dout):
    dx = dout.clone()
    dx[x <= 0] = 0
    return dx


def relu_backward_where(x, dout):
    return np.where(x > 0, dout, 0.0)


def relu_backward_ge(x, dout):
    return dout * (x >= 0)               # differs from the mask above only at x = 0 (a kink)


def relu_backward_no_dout(x, dout):
    return 1.0 * (x > 0)                 # forgets the upstream gradient


def relu_backward_wrong_side(x, dout):
    return dout * (x < 0)


# -- sigmoid / tanh ---------------------------------------------------------------------------

def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def sigmoid_f(x, dout):
    return np.sum(sigmoid(x) * dout)


def sigmoid_backward(x, dout):
    s = sigmoid(x)
    return dout * s * (1 - s)


def sigmoid_backward_missing_one_minus(x, dout):
    s = sigmoid(x)
    return dout * s * s


def tanh_f(x, dout):
    return np.sum(np.tanh(x) * dout)


def tanh_backward(x, dout):
    return dout * (1 - np.tanh(x) ** 2)


def tanh_backward_no_square(x, dout):
    return dout * (1 - np.tanh(x))


# -- dropout (inverted; the mask is a fixed input) --------------------------------------------

P = 0.5
MASK = symad.tensor((rng.random((N, D)) < P) / P)


def dropout_f(x, mask, dout):
    return np.sum(x * mask * dout)


def dropout_backward(x, mask, dout):
    return dout * mask, None             # no gradient for the mask: PyTorch's None


def dropout_backward_rescaled_twice(x, mask, dout):
    return dout * mask / P, None         # the mask already holds 1/p


def cases() -> list[dict]:
    x, w, b, dout = t(N, D), t(D, M), t(M), t(N, M)
    aff = dict(f=affine_f, inputs=dict(x=x, w=w, b=b, dout=dout), wrt=["x", "w", "b"],
               source="CS231n A2 layers.affine_backward")
    xr, dr = t(N, D), t(N, D)
    relu = dict(f=relu_f, inputs=dict(x=xr, dout=dr), wrt=["x"],
                source="CS231n A2 layers.relu_backward")
    sig = dict(f=sigmoid_f, inputs=dict(x=t(N, D), dout=t(N, D)), wrt=["x"],
               source="sigmoid'(x) = s(1 - s)")
    th = dict(f=tanh_f, inputs=dict(x=t(N, D), dout=t(N, D)), wrt=["x"],
              source="tanh'(x) = 1 - tanh(x)^2")
    drop = dict(f=dropout_f, inputs=dict(x=t(N, D), mask=MASK, dout=t(N, D)), wrt=["x"],
                constants=["mask"], source="CS231n A2 layers.dropout_backward (inverted)")
    return [
        dict(name="affine", claimed=affine_backward, expect="right", **aff),
        dict(name="affine dw transposed", claimed=affine_backward_dw_transposed,
             expect="wrong", **aff),
        dict(name="affine db mean", claimed=affine_backward_db_mean, expect="wrong", **aff),
        dict(name="affine db wrong axis", claimed=affine_backward_dx_w_untransposed,
             expect="wrong", **aff),
        dict(name="relu mask", claimed=relu_backward_mask, expect="right", **relu),
        dict(name="relu mask assignment", claimed=relu_backward_assign, expect="right", **relu),
        dict(name="relu np.where", claimed=relu_backward_where, expect="right", **relu),
        dict(name="relu >= (kink only)", claimed=relu_backward_ge, expect="right", **relu),
        dict(name="relu forgets dout", claimed=relu_backward_no_dout, expect="wrong", **relu),
        dict(name="relu wrong side", claimed=relu_backward_wrong_side, expect="wrong", **relu),
        dict(name="sigmoid", claimed=sigmoid_backward, expect="right", **sig),
        dict(name="sigmoid s*s", claimed=sigmoid_backward_missing_one_minus, expect="wrong",
             **sig),
        dict(name="tanh", claimed=tanh_backward, expect="right", **th),
        dict(name="tanh not squared", claimed=tanh_backward_no_square, expect="wrong", **th),
        dict(name="dropout", claimed=dropout_backward, expect="right", **drop),
        dict(name="dropout rescaled twice", claimed=dropout_backward_rescaled_twice,
             expect="wrong", **drop),
    ]
