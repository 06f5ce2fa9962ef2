"""examples/train_digits.py trains the 64-32-10 MLP to >= 95 % held-out accuracy."""
from __future__ import annotations

import importlib.util
import pathlib

import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"


def _load():
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_train_digits_accuracy(tmp_path):
    pytest.importorskip("sklearn")
    png = tmp_path / "loss.png"
    out = _load().main(epochs=12, batch_size=64, plot=str(png))
    assert out["accuracy"] >= 0.95
    assert out["history"][-1] < out["history"][0] / 5
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    assert png.stat().st_size > 1000


def test_train_digits_without_sklearn(monkeypatch, capsys):
    import builtins
    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("sklearn"):
            raise ImportError(name)
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", fake)
    assert _load().main(epochs=1, plot=None) is None
    assert "scikit-learn is not installed" in capsys.readouterr().out
