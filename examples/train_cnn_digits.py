"""Train a LeNet-style CNN (two Conv2d + max pooling + two Linear) on sklearn's 8x8 digits.

Run: ``python examples/train_cnn_digits.py [--compile]`` (needs scikit-learn). ``main()`` returns
the key numbers; the script is written exactly as the PyTorch version would be (``import symad as
torch`` is the only change). With ``--compile`` the model runs as ``symad.compile(model)``: its
3,658 parameters make it a recorded tensor program (conv, pooling and their registry VJPs), and
training gives the same parameters as eager.
"""
from __future__ import annotations

import time

import numpy as np

import symad as torch
from symad import nn, optim
from symad.utils.data import DataLoader, TensorDataset


class LeNet(nn.Module):
    """conv(1→c1, 3x3) → ReLU → maxpool 2 → conv(c1→c2, 3x3) → ReLU → maxpool 2 → 2 Linear."""

    def __init__(self, c1: int = 8, c2: int = 16, hidden: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, kernel_size=3, padding=1)    # 8x8 -> 8x8
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, padding=1)   # 4x4 -> 4x4
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(c2 * 2 * 2, hidden)
        self.fc2 = nn.Linear(hidden, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))                   # -> (N, c1, 4, 4)
        x = self.pool(torch.relu(self.conv2(x)))                   # -> (N, c2, 2, 2)
        x = torch.flatten(x, 1)
        return self.fc2(torch.relu(self.fc1(x)))


def load_digit_images(seed: int = 0, test_fraction: float = 0.2):
    """(X_train, y_train, X_test, y_test) as (N, 1, 8, 8) float32 images in [0, 1], or None."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        return None
    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(X))
    n_test = int(len(X) * test_fraction)
    te, tr = perm[:n_test], perm[n_test:]
    return (torch.tensor(X[tr]), torch.tensor(y[tr]), torch.tensor(X[te]), torch.tensor(y[te]))


def main(epochs: int = 12, batch_size: int = 32, lr: float = 1e-2, seed: int = 0,
         verbose: bool = True, compiled: bool = False) -> dict | None:
    data = load_digit_images(seed)
    if data is None:
        print("train_cnn_digits: scikit-learn is not installed (pip install scikit-learn)")
        return None
    X_tr, y_tr, X_te, y_te = data
    torch.manual_seed(seed)
    model = LeNet()
    net = torch.compile(model) if compiled else model
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(X_tr, y_tr), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    history = []
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        total, n = 0.0, 0
        for xb, yb in loader:
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(yb)
            n += len(yb)
        history.append(total / n)
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: train loss {history[-1]:.4f}")
    seconds = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        accuracy = float((model(X_te).argmax(dim=1) == y_te).float().mean())
    n_params = sum(p.numel() for p in model.parameters())
    if verbose:
        print(f"{n_params} parameters, {epochs} epochs in {seconds:.1f} s; held-out accuracy "
              f"{accuracy * 100:.1f} % ({len(y_te)} test images)")
    return {"accuracy": accuracy, "history": history, "seconds": seconds,
            "parameters": n_params, "model": model}


if __name__ == "__main__":
    import sys
    main(compiled="--compile" in sys.argv[1:])
