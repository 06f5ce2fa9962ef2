"""Softmax and SVM losses (CS231n assignment 1, vectorized), stable log-sum-exp, logistic
regression, GELU-tanh, Huber."""
from __future__ import annotations

import math

import numpy as np

import symad

rng = np.random.default_rng(7)
N, D, C = 3, 2, 3
Y = symad.tensor([0, 2, 1])          # labels: integer inputs stay concrete


def t(*shape):
    return symad.tensor(rng.standard_normal(shape))


# -- softmax loss on scores (CS231n softmax_loss) ----------------------------------------------

def softmax_loss_f(x, y):
    shifted = x - np.max(x, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    return -np.sum(log_probs[np.arange(x.shape[0]), y]) / x.shape[0]


def softmax_loss_backward(x, y):
    shifted = x - np.max(x, axis=1, keepdims=True)
    probs = np.exp(shifted) / np.sum(np.exp(shifted), axis=1, keepdims=True)
    dx = probs.clone()
    dx[np.arange(x.shape[0]), y] -= 1
    return dx / x.shape[0], None


def softmax_loss_backward_no_mean(x, y):
    probs = np.exp(x) / np.sum(np.exp(x), axis=1, keepdims=True)
    dx = probs.clone()
    dx[np.arange(x.shape[0]), y] -= 1
    return dx, None                      # forgets the 1/N of the mean


def softmax_loss_backward_sign(x, y):
    probs = np.exp(x) / np.sum(np.exp(x), axis=1, keepdims=True)
    dx = -probs.clone()
    dx[np.arange(x.shape[0]), y] += 1
    return dx / x.shape[0], None         # the gradient of +log p: sign flipped


# -- linear softmax classifier with L2 regularization (softmax_loss_vectorized) -----------------

def softmax_vec_f(W, X, y, reg=0.1):
    scores = X @ W
    scores = scores - np.max(scores, axis=1, keepdims=True)
    p = np.exp(scores) / np.sum(np.exp(scores), axis=1, keepdims=True)
    loss = -np.sum(np.log(p[np.arange(X.shape[0]), y])) / X.shape[0]
    return loss + reg * np.sum(W * W)


def softmax_vec_grad(W, X, y, reg=0.1):
    scores = X @ W
    p = np.exp(scores) / np.sum(np.exp(scores), axis=1, keepdims=True)
    p[np.arange(X.shape[0]), y] -= 1
    return X.T @ p / X.shape[0] + 2 * reg * W


def softmax_vec_grad_reg(W, X, y, reg=0.1):
    scores = X @ W
    p = np.exp(scores) / np.sum(np.exp(scores), axis=1, keepdims=True)
    p[np.arange(X.shape[0]), y] -= 1
    return X.T @ p / X.shape[0] + reg * W    # d(reg*|W|^2) is 2*reg*W


# -- multiclass SVM (svm_loss_vectorized) --------------------------------------------------------

def svm_f(W, X, y, reg=0.05):
    scores = X @ W
    correct = scores[np.arange(X.shape[0]), y].reshape(-1, 1)
    margins = np.maximum(0, scores - correct + 1.0)
    margins[np.arange(X.shape[0]), y] = 0
    return np.sum(margins) / X.shape[0] + reg * np.sum(W * W)


def svm_grad(W, X, y, reg=0.05):
    scores = X @ W
    correct = scores[np.arange(X.shape[0]), y].reshape(-1, 1)
    margins = scores - correct + 1.0
    mask = (margins > 0) * 1.0
    mask[np.arange(X.shape[0]), y] = 0
    mask[np.arange(X.shape[0]), y] = -np.sum(mask, axis=1)
    return X.T @ mask / X.shape[0] + 2 * reg * W


def svm_grad_no_correct_class(W, X, y, reg=0.05):
    scores = X @ W
    correct = scores[np.arange(X.shape[0]), y].reshape(-1, 1)
    mask = (scores - correct + 1.0 > 0) * 1.0
    mask[np.arange(X.shape[0]), y] = 0       # forgets the -count for the correct class
    return X.T @ mask / X.shape[0] + 2 * reg * W


def svm_grad_ge(W, X, y, reg=0.05):
    scores = X @ W
    correct = scores[np.arange(X.shape[0]), y].reshape(-1, 1)
    mask = (scores - correct + 1.0 >= 0) * 1.0   # >= : differs only on the hinge (a kink)
    mask[np.arange(X.shape[0]), y] = 0
    mask[np.arange(X.shape[0]), y] = -np.sum(mask, axis=1)
    return X.T @ mask / X.shape[0] + 2 * reg * W


# -- stable log-sum-exp ----------------------------------------------------------------------------

def lse_f(x, dout):
    m = np.max(x, axis=1, keepdims=True)
    return np.sum((m + np.log(np.sum(np.exp(x - m), axis=1, keepdims=True))) * dout)


def lse_grad(x, dout):
    m = np.max(x, axis=1, keepdims=True)
    e = np.exp(x - m)
    return dout * e / np.sum(e, axis=1, keepdims=True)


def lse_grad_unnormalized(x, dout):
    m = np.max(x, axis=1, keepdims=True)
    return dout * np.exp(x - m)              # forgets to divide by the sum


# -- logistic regression (float constants folded while tracing: 0.2 * 3) -------------------------

def logreg_f(w, X, y):
    z = X @ w * 0.2 * 3
    return np.sum(np.log(1 + np.exp(-y * z)))


def logreg_grad(w, X, y):
    z = X @ w * 0.6
    return X.T @ (-y * 0.6 / (1 + np.exp(y * z)))


def logreg_grad_missing_scale(w, X, y):
    z = X @ w * 0.6
    return X.T @ (-y / (1 + np.exp(y * z)))


# -- GELU, tanh approximation ---------------------------------------------------------------------

K = math.sqrt(2 / math.pi)


def gelu_f(x, dout):
    return np.sum(0.5 * x * (1 + np.tanh(K * (x + 0.044715 * x ** 3))) * dout)


def gelu_grad(x, dout):
    th = np.tanh(K * (x + 0.044715 * x ** 3))
    return dout * (0.5 * (1 + th) + 0.5 * x * (1 - th ** 2) * K * (1 + 3 * 0.044715 * x ** 2))


def gelu_grad_no_inner(x, dout):
    th = np.tanh(K * (x + 0.044715 * x ** 3))
    return dout * (0.5 * (1 + th) + 0.5 * x * (1 - th ** 2) * K)


# -- Huber loss (a kink at |r| = delta) -------------------------------------------------------------

def huber_f(pred, target, delta=1.0):
    r = pred - target
    quad = 0.5 * r * r
    lin = delta * (np.abs(r) - 0.5 * delta)
    return np.sum(np.where(np.abs(r) <= delta, quad, lin))


def huber_grad(pred, target, delta=1.0):
    r = pred - target
    return np.clip(r, -delta, delta), None


def huber_grad_unclipped(pred, target, delta=1.0):
    return pred - target, None               # the quadratic branch everywhere


def cases() -> list[dict]:
    sm = dict(f=softmax_loss_f, inputs=dict(x=t(N, C), y=Y), wrt=["x"],
              source="CS231n A2 layers.softmax_loss")
    sv = dict(f=softmax_vec_f, inputs=dict(W=t(D, C), X=t(N, D), y=Y), wrt=["W"],
              constants=["X"], source="CS231n A1 softmax_loss_vectorized")
    svm = dict(f=svm_f, inputs=dict(W=t(D, C), X=t(N, D), y=Y), wrt=["W"], constants=["X"],
               source="CS231n A1 svm_loss_vectorized")
    lse = dict(f=lse_f, inputs=dict(x=t(2, 3), dout=t(2, 1)), wrt=["x"],
               source="stable log-sum-exp, d/dx = softmax")
    yl = symad.tensor([1.0, -1.0, 1.0])
    lr = dict(f=logreg_f, inputs=dict(w=t(D), X=t(N, D), y=yl), wrt=["w"],
              constants=["X", "y"], source="logistic regression, labels ±1")
    ge = dict(f=gelu_f, inputs=dict(x=t(2), dout=t(2)), wrt=["x"],
              source="GELU tanh approximation (Hendrycks & Gimpel)")
    hu = dict(f=huber_f, inputs=dict(pred=t(4), target=symad.tensor([0.0, 2.0, -3.0, 0.5])),
              wrt=["pred"], source="Huber loss, d/dr = clip(r, -delta, delta)")
    return [
        dict(name="softmax loss", claimed=softmax_loss_backward, expect="right", **sm),
        dict(name="softmax loss no 1/N", claimed=softmax_loss_backward_no_mean,
             expect="wrong", **sm),
        dict(name="softmax loss sign", claimed=softmax_loss_backward_sign, expect="wrong",
             **sm),
        dict(name="softmax classifier", claimed=softmax_vec_grad, expect="right", **sv),
        dict(name="softmax classifier reg", claimed=softmax_vec_grad_reg, expect="wrong",
             **sv),
        dict(name="svm", claimed=svm_grad, expect="right", **svm),
        dict(name="svm no correct-class term", claimed=svm_grad_no_correct_class,
             expect="wrong", **svm),
        dict(name="svm >= (kink only)", claimed=svm_grad_ge, expect="right", **svm),
        dict(name="stable logsumexp", claimed=lse_grad, expect="right", **lse),
        dict(name="stable logsumexp unnormalized", claimed=lse_grad_unnormalized,
             expect="wrong", **lse),
        dict(name="logistic regression 0.2*3", claimed=logreg_grad, expect="right", **lr),
        dict(name="logistic regression scale", claimed=logreg_grad_missing_scale,
             expect="wrong", **lr),
        dict(name="gelu tanh", claimed=gelu_grad, expect="right", **ge),
        dict(name="gelu tanh inner derivative", claimed=gelu_grad_no_inner, expect="wrong",
             **ge),
        dict(name="huber", claimed=huber_grad, expect="right", **hu),
        dict(name="huber unclipped", claimed=huber_grad_unclipped, expect="wrong", **hu),
    ]
