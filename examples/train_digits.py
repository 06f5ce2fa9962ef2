"""Train a 64->32->10 MLP on sklearn's digits with ``symad.compile_step`` (tensor-program path).

Run: ``python examples/train_digits.py`` (needs scikit-learn; matplotlib optional for the loss
curve PNG). ``main()`` returns the key numbers.
"""
from __future__ import annotations

import sys
import time

import numpy as np

import symad
from symad import nn, optim


def load_digits_split(seed: int = 0, test_fraction: float = 0.2):
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return None
    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)           # pixel values 0..16 -> 0..1
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(X))
    n_test = int(len(X) * test_fraction)
    te, tr = perm[:n_test], perm[n_test:]
    return (symad.tensor(X[tr]), symad.tensor(y[tr]), symad.tensor(X[te]), symad.tensor(y[te]))


def progress(epochs: int, width: int = 30):
    """A per-epoch callback drawing a text progress bar with the epoch loss."""
    t0 = time.perf_counter()

    def callback(epoch: int, loss: float) -> None:
        done = (epoch + 1) * width // epochs
        bar = "#" * done + "." * (width - done)
        end = "\n" if epoch + 1 == epochs else ""
        print(f"\r[{bar}] epoch {epoch + 1:3d}/{epochs} loss {loss:.4f} "
              f"({time.perf_counter() - t0:.2f} s)", end=end, flush=True)
    return callback


def main(epochs: int = 60, batch_size: int = 32, seed: int = 0,
         plot: str | None = "digits_loss.png") -> dict | None:
    split = load_digits_split(seed)
    if split is None:
        print("train_digits: scikit-learn is not installed (pip install scikit-learn); skipping")
        return None
    X_tr, y_tr, X_te, y_te = split
    symad.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=1e-2)
    t0 = time.perf_counter()
    step = symad.compile_step(model, loss_fn, opt)
    step(X_tr[:batch_size], y_tr[:batch_size])     # first call builds the kernels
    build = time.perf_counter() - t0
    print(f"compiled in {build:.2f} s; one step runs {step.native_calls}")
    g = symad.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    history = step.fit(X_tr, y_tr, epochs=epochs, batch_size=batch_size, generator=g,
                       callback=progress(epochs))
    train_s = time.perf_counter() - t0
    steps = epochs * -(-len(X_tr) // batch_size)
    with symad.no_grad():
        pred = model(X_te).argmax(dim=1)
    acc = float((pred == y_te).float().mean())
    print(f"{steps} steps in {train_s:.2f} s ({train_s / steps * 1e6:.0f} us/step); "
          f"held-out accuracy {acc * 100:.1f} %")
    if plot:
        try:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: no loss curve plot")
        else:
            fig, ax = plt.subplots(figsize=(5, 3.2))
            ax.plot(range(1, len(history) + 1), history)
            ax.set_xlabel("epoch")
            ax.set_ylabel("mean minibatch loss")
            ax.set_yscale("log")
            ax.set_title("digits 64-32-10 MLP, symad.compile_step")
            fig.tight_layout()
            fig.savefig(plot, dpi=120)
            plt.close(fig)
            print(f"loss curve written to {plot}")
    return {"accuracy": acc, "history": history, "build_seconds": build,
            "train_seconds": train_s, "steps": steps}


if __name__ == "__main__":
    out = main(plot=sys.argv[1] if len(sys.argv) > 1 else "digits_loss.png")
