"""examples/train_cnn_digits.py: a LeNet-style CNN trains eagerly to >= 95 % held-out accuracy on
sklearn's 8x8 digits, and the trained network's outputs equal a numpy re-implementation (scalar
loop convolution from tests/layer_op_rows.py, reshape-max pooling, dense layers)."""
from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest
from layer_op_rows import conv_ref

import symad

pytest.importorskip("sklearn")
EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "train_cnn_digits.py"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("train_cnn_digits", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod, mod.main(verbose=False)


def test_cnn_reaches_95_percent_held_out(run):
    _, out = run
    assert out["accuracy"] >= 0.95
    h = out["history"]
    assert h[-1] < 0.3 < h[0] and h[-1] < min(h[:3])
    assert out["parameters"] == (8 * 9 + 8) + (16 * 8 * 9 + 16) + (64 * 32 + 32) + (32 * 10 + 10)


def _numpy_lenet(sd, x):
    def pool(a):  # 2x2 max pooling by reshape
        n, c, h, w = a.shape
        return a.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))

    geom = {"stride": (1, 1), "padding": ((1, 1), (1, 1)), "dilation": (1, 1), "groups": 1}
    a = pool(np.maximum(conv_ref(x, sd["conv1.weight"], sd["conv1.bias"], **geom), 0))
    a = pool(np.maximum(conv_ref(a, sd["conv2.weight"], sd["conv2.bias"], **geom), 0))
    a = np.maximum(a.reshape(len(x), -1) @ sd["fc1.weight"].T + sd["fc1.bias"], 0)
    return a @ sd["fc2.weight"].T + sd["fc2.bias"]


def test_trained_cnn_matches_a_numpy_reimplementation(run):
    mod, out = run
    model = out["model"]
    sd = {k: v.numpy().astype(np.float64) for k, v in model.state_dict().items()}
    _, _, X_te, _ = mod.load_digit_images(0)
    x = X_te[:6]
    with symad.no_grad():
        got = model(x).numpy()
    np.testing.assert_allclose(got, _numpy_lenet(sd, x.numpy().astype(np.float64)),
                               rtol=1e-4, atol=1e-4)


def test_compiled_cnn_trains_to_the_same_parameters_as_eager(run):
    """symad.compile(model) in the same loop: a recorded tensor program (conv, pooling and their
    registry VJPs), no eager fallback, the same parameters as eager (float32 rtol 1e-5)."""
    import warnings
    mod, eager = run
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        comp = mod.main(verbose=False, compiled=True)      # the same 12 epochs as ``run``
    assert comp["accuracy"] >= 0.95
    assert comp["accuracy"] == eager["accuracy"]
    for (name, a), (_, b) in zip(comp["model"].state_dict().items(),
                                 eager["model"].state_dict().items()):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=name)
