"""A PyTorch training script run unchanged with ``import symad as torch``.

Written the way PyTorch tutorials write it: device selection, a ``DataLoader``, an
``nn.Sequential`` with ``LazyLinear``, ``CrossEntropyLoss``, Adam with a ``OneCycleLR`` schedule
stepped per batch, a checkpoint saved with ``torch.save`` and restored with ``torch.load``.
The data (two interleaved spirals) is made with numpy, so the script is deterministic.

Run: ``python examples/pytorch_port.py``
"""
from __future__ import annotations

import os
import tempfile
import warnings

import numpy as np

import symad as torch
from symad import nn
from symad.utils.data import DataLoader, TensorDataset


def spirals(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals (class 0 and 1), ``n`` points each, with a little noise."""
    rng = np.random.default_rng(seed)
    t = np.sqrt(rng.uniform(0.05, 1.0, n)) * 3 * np.pi
    a = np.stack([t * np.cos(t), t * np.sin(t)], 1) / (3 * np.pi)
    X = np.concatenate([a, -a]) + rng.normal(scale=0.02, size=(2 * n, 2))
    y = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    return X.astype(np.float32), y


def main(epochs: int = 30, verbose: bool = True) -> dict:
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if verbose:
        print(f"Using {device} device")

    X, y = spirals()
    perm = np.random.default_rng(1).permutation(len(X))
    train_idx, test_idx = perm[:300], perm[300:]
    train_ds = TensorDataset(torch.tensor(X[train_idx]), torch.tensor(y[train_idx]))
    loader = DataLoader(train_ds, batch_size=30, shuffle=True)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Lazy modules are a new feature ..."
        model = nn.Sequential(nn.LazyLinear(32), nn.Tanh(), nn.LazyLinear(32), nn.Tanh(),
                              nn.LazyLinear(2))
    model(torch.zeros(1, 2))  # a dry run gives the lazy layers their shapes
    model = model.to(device)
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, epochs=epochs,
                                                    steps_per_epoch=len(loader))

    for epoch in range(epochs):
        model.train()
        total = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(xb)
        if verbose and (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1:3d}  loss {total / len(train_ds):.4f}  "
                  f"lr {scheduler.get_last_lr()[0]:.2e}")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "checkpoint.pt")
        torch.save({"epoch": epochs, "model_state_dict": model.state_dict(),
                    "optimizer_state_dict": optimizer.state_dict()}, path)
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    restored = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(),
                             nn.Linear(32, 2))
    restored.load_state_dict(checkpoint["model_state_dict"])
    restored.eval()

    Xt = torch.tensor(X[test_idx], device=device)
    with torch.no_grad():
        logits = restored(Xt)
        same = torch.equal(logits, model(Xt))
    accuracy = float((logits.argmax(axis=1) == torch.tensor(y[test_idx])).float().mean())
    if verbose:
        print(f"held-out accuracy {accuracy:.3f} (restored model identical: {same})")
    return {"accuracy": accuracy, "restored_identical": same, "logits": logits.numpy(),
            "labels": y[test_idx], "last_lr": scheduler.get_last_lr()[0]}


if __name__ == "__main__":
    main()
