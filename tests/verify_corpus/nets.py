"""A two-layer net (CS231n assignment 1, neural_net.py) and scaled dot-product attention
(Vaswani et al. 2017), correct and with realistic slips."""
from __future__ import annotations

import numpy as np

import symad

rng = np.random.default_rng(11)
N, D, H, C = 2, 2, 2, 2
Y = symad.tensor([1, 0])


def t(*shape):
    return symad.tensor(rng.standard_normal(shape))


# -- two-layer net: affine - relu - affine - softmax, L2 on both weights ------------------------

REG = 0.05


def two_layer_f(W1, b1, W2, b2, X, y, reg=REG):
    hidden = np.maximum(0, X @ W1 + b1)
    scores = hidden @ W2 + b2
    p = np.exp(scores) / np.sum(np.exp(scores), axis=1, keepdims=True)
    loss = -np.sum(np.log(p[np.arange(X.shape[0]), y])) / X.shape[0]
    return loss + reg * (np.sum(W1 * W1) + np.sum(W2 * W2))


def _forward(W1, b1, W2, b2, X):
    z = X @ W1 + b1
    hidden = np.maximum(0, z)
    scores = hidden @ W2 + b2
    p = np.exp(scores) / np.sum(np.exp(scores), axis=1, keepdims=True)
    return z, hidden, p


def two_layer_grads(W1, b1, W2, b2, X, y, reg=REG):
    n = X.shape[0]
    z, hidden, p = _forward(W1, b1, W2, b2, X)
    dscores = p.clone()
    dscores[np.arange(n), y] -= 1
    dscores = dscores / n
    dW2 = hidden.T @ dscores + 2 * reg * W2
    db2 = np.sum(dscores, axis=0)
    dhidden = dscores @ W2.T
    dhidden[z <= 0] = 0
    dW1 = X.T @ dhidden + 2 * reg * W1
    db1 = np.sum(dhidden, axis=0)
    return dict(W1=dW1, b1=db1, W2=dW2, b2=db2)


def two_layer_grads_no_relu_mask(W1, b1, W2, b2, X, y, reg=REG):
    n = X.shape[0]
    z, hidden, p = _forward(W1, b1, W2, b2, X)
    dscores = p.clone()
    dscores[np.arange(n), y] -= 1
    dscores = dscores / n
    dhidden = dscores @ W2.T                    # the ReLU's mask is missing
    return dict(W1=X.T @ dhidden + 2 * reg * W1, b1=np.sum(dhidden, axis=0),
                W2=hidden.T @ dscores + 2 * reg * W2, b2=np.sum(dscores, axis=0))


def two_layer_grads_reg_half(W1, b1, W2, b2, X, y, reg=REG):
    n = X.shape[0]
    z, hidden, p = _forward(W1, b1, W2, b2, X)
    dscores = p.clone()
    dscores[np.arange(n), y] -= 1
    dscores = dscores / n
    dhidden = dscores @ W2.T * (z > 0)
    return dict(W1=X.T @ dhidden + reg * W1, b1=np.sum(dhidden, axis=0),
                W2=hidden.T @ dscores + reg * W2, b2=np.sum(dscores, axis=0))


# -- scaled dot-product attention, one head ----------------------------------------------------

def _softmax(s):
    e = np.exp(s - np.max(s, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def attention_f(Q, K, V, dout):
    A = _softmax(Q @ K.T / np.sqrt(Q.shape[1]))
    return np.sum((A @ V) * dout)


def attention_backward(Q, K, V, dout):
    d = Q.shape[1]
    A = _softmax(Q @ K.T / np.sqrt(d))
    dV = A.T @ dout
    dA = dout @ V.T
    dS = A * (dA - np.sum(dA * A, axis=-1, keepdims=True)) / np.sqrt(d)
    return dS @ K, dS.T @ Q, dV


def attention_backward_no_scale(Q, K, V, dout):
    d = Q.shape[1]
    A = _softmax(Q @ K.T / np.sqrt(d))
    dA = dout @ V.T
    dS = A * (dA - np.sum(dA * A, axis=-1, keepdims=True))     # forgets 1/sqrt(d)
    return dS @ K, dS.T @ Q, A.T @ dout


def attention_backward_softmax_diag(Q, K, V, dout):
    d = Q.shape[1]
    A = _softmax(Q @ K.T / np.sqrt(d))
    dA = dout @ V.T
    dS = A * (1 - A) * dA / np.sqrt(d)       # only the diagonal of the softmax Jacobian
    return dS @ K, dS.T @ Q, A.T @ dout


def cases() -> list[dict]:
    net = dict(f=two_layer_f, inputs=dict(W1=t(D, H), b1=t(H), W2=t(H, C), b2=t(C),
                                          X=t(N, D), y=Y),
               wrt=["W1", "b1", "W2", "b2"], constants=["X"],
               source="CS231n A1 neural_net.TwoLayerNet.loss")
    att = dict(f=attention_f, inputs=dict(Q=t(2, 2), K=t(2, 2), V=t(2, 2), dout=t(2, 2)),
               wrt=["Q", "K", "V"], source="scaled dot-product attention backward")
    return [
        dict(name="two-layer net", claimed=two_layer_grads, expect="right", **net),
        dict(name="two-layer net no relu mask", claimed=two_layer_grads_no_relu_mask,
             expect="wrong", **net),
        dict(name="two-layer net reg/2", claimed=two_layer_grads_reg_half, expect="wrong",
             **net),
        dict(name="attention", claimed=attention_backward, expect="right", **att),
        dict(name="attention no 1/sqrt(d)", claimed=attention_backward_no_scale,
             expect="wrong", **att),
        dict(name="attention diagonal softmax", claimed=attention_backward_softmax_diag,
             expect="wrong", **att),
    ]
