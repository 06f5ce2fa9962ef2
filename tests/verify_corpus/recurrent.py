"""Vanilla RNN and LSTM single-step backward passes (CS231n assignment 3, rnn_layers.py),
correct and with the slips people make."""
from __future__ import annotations

import numpy as np

import symad

rng = np.random.default_rng(5)
N, D, H = 1, 2, 2


def t(*shape):
    return symad.tensor(0.5 * rng.standard_normal(shape))


# -- vanilla RNN: next_h = tanh(x Wx + prev_h Wh + b) ---------------------------------------------

def rnn_f(x, prev_h, Wx, Wh, b, dnext_h):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    return np.sum(next_h * dnext_h)


def rnn_step_backward(x, prev_h, Wx, Wh, b, dnext_h):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    dz = dnext_h * (1 - next_h ** 2)
    return dict(x=dz @ Wx.T, prev_h=dz @ Wh.T, Wx=x.T @ dz, Wh=prev_h.T @ dz,
                b=np.sum(dz, axis=0))


def rnn_step_backward_tanh_prime(x, prev_h, Wx, Wh, b, dnext_h):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    dz = dnext_h * (1 - next_h)                       # tanh' written as 1 - tanh
    return dict(x=dz @ Wx.T, prev_h=dz @ Wh.T, Wx=x.T @ dz, Wh=prev_h.T @ dz,
                b=np.sum(dz, axis=0))


def rnn_step_backward_wh_swapped(x, prev_h, Wx, Wh, b, dnext_h):
    next_h = np.tanh(x @ Wx + prev_h @ Wh + b)
    dz = dnext_h * (1 - next_h ** 2)
    return dict(x=dz @ Wx.T, prev_h=dz @ Wh, Wx=x.T @ dz, Wh=prev_h.T @ dz,   # Wh not Wh.T
                b=np.sum(dz, axis=0))


# -- LSTM: gates i, f, o, g from a = x Wx + prev_h Wh + b --------------------------------------------

def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _lstm(x, prev_h, prev_c, Wx, Wh, b):
    h = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = _sigmoid(a[:, :h])
    f = _sigmoid(a[:, h:2 * h])
    o = _sigmoid(a[:, 2 * h:3 * h])
    g = np.tanh(a[:, 3 * h:])
    next_c = f * prev_c + i * g
    next_h = o * np.tanh(next_c)
    return i, f, o, g, next_c, next_h


def lstm_f(x, prev_h, prev_c, Wx, Wh, b, dnext_h, dnext_c):
    *_, next_c, next_h = _lstm(x, prev_h, prev_c, Wx, Wh, b)
    return np.sum(next_h * dnext_h) + np.sum(next_c * dnext_c)


def _lstm_backward(x, prev_h, prev_c, Wx, Wh, b, dnext_h, dnext_c, bug=None):
    i, f, o, g, next_c, next_h = _lstm(x, prev_h, prev_c, Wx, Wh, b)
    tc = np.tanh(next_c)
    dc = dnext_c + dnext_h * o * (1 - tc ** 2)
    if bug == "cell path":
        dc = dnext_c                                  # forgets next_h's path into next_c
    do = dnext_h * tc
    di = dc * g
    df = dc * prev_c
    dg = dc * i
    da_i = di * i * (1 - i)
    da_f = df * f * (1 - f) if bug != "forget gate" else df * f * (1 - i)
    da_o = do * o * (1 - o)
    da_g = dg * (1 - g ** 2)
    da = np.concatenate([da_i, da_f, da_o, da_g], axis=1)
    return dict(x=da @ Wx.T, prev_h=da @ Wh.T, prev_c=dc * f, Wx=x.T @ da, Wh=prev_h.T @ da,
                b=np.sum(da, axis=0))


def lstm_step_backward(x, prev_h, prev_c, Wx, Wh, b, dnext_h, dnext_c):
    return _lstm_backward(x, prev_h, prev_c, Wx, Wh, b, dnext_h, dnext_c)


def lstm_step_backward_forget_gate(x, prev_h, prev_c, Wx, Wh, b, dnext_h, dnext_c):
    return _lstm_backward(x, prev_h, prev_c, Wx, Wh, b, dnext_h, dnext_c, bug="forget gate")


def lstm_step_backward_cell_path(x, prev_h, prev_c, Wx, Wh, b, dnext_h, dnext_c):
    return _lstm_backward(x, prev_h, prev_c, Wx, Wh, b, dnext_h, dnext_c, bug="cell path")


def cases() -> list[dict]:
    rnn = dict(f=rnn_f, inputs=dict(x=t(N, D), prev_h=t(N, H), Wx=t(D, H), Wh=t(H, H),
                                    b=t(H), dnext_h=t(N, H)),
               wrt=["x", "prev_h", "Wx", "Wh", "b"], source="CS231n A3 rnn_step_backward")
    h = 1
    lstm = dict(f=lstm_f, inputs=dict(x=t(1, 2), prev_h=t(1, h), prev_c=t(1, h),
                                      Wx=t(2, 4 * h), Wh=t(h, 4 * h), b=t(4 * h),
                                      dnext_h=t(1, h), dnext_c=t(1, h)),
                wrt=["x", "prev_h", "prev_c", "Wx", "Wh", "b"],
                source="CS231n A3 lstm_step_backward")
    return [
        dict(name="rnn step", claimed=rnn_step_backward, expect="right", **rnn),
        dict(name="rnn step tanh' = 1 - tanh", claimed=rnn_step_backward_tanh_prime,
             expect="wrong", **rnn),
        dict(name="rnn step Wh untransposed", claimed=rnn_step_backward_wh_swapped,
             expect="wrong", **rnn),
        dict(name="lstm step", claimed=lstm_step_backward, expect="right", **lstm),
        dict(name="lstm step forget gate", claimed=lstm_step_backward_forget_gate,
             expect="wrong", **lstm),
        dict(name="lstm step cell path", claimed=lstm_step_backward_cell_path,
             expect="wrong", **lstm),
    ]
