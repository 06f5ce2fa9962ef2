"""Seed 001: autograd warm-up, then d2l's linear regression from scratch and the concise version
(TensorDataset, DataLoader, nn.Sequential(nn.Linear(2, 1)), nn.MSELoss, optim.SGD).

Run: ``python examples/seed001_linear_regression.py``. ``main()`` returns the key numbers.
"""
from __future__ import annotations

import symad
from symad import nn, optim
from symad.utils import data

# the x the tutorial drew with torch.randn((2, 3)) (symad's generator is not PyTorch's)
SEED_X = [[-1.5443, -0.0354, -0.8403], [1.5566, 0.7182, 1.5884]]


def warm_up() -> dict:
    x = symad.ones(3, 2, requires_grad=True)
    y = x + 2
    print(x)
    print(y)  # grad_fn=<AddBackward0>
    add_name = y.grad_fn.name()

    x = symad.tensor(SEED_X, requires_grad=True)
    y = (x + 2).sum()  # backward() needs a scalar
    y.backward()
    print(x.grad)  # all ones
    doublings = 0
    while y.data.norm() < 1000:
        y = y * 2
        doublings += 1
    print(y)  # ≈ tensor(1720.73, grad_fn=<MulBackward0>)
    return {"add_grad_fn": add_name, "x_grad": x.grad.numpy(), "doublings": doublings,
            "y_final": y.item(), "y_grad_fn": y.grad_fn.name()}


def synthetic_data(w: symad.Tensor, b: float, num_examples: int):
    """y = Xw + b + noise (noise std 0.01)."""
    X = symad.normal(0, 1, (num_examples, len(w)))
    y = symad.matmul(X, w) + b
    y += symad.normal(0, 0.01, y.shape)
    return X, y.reshape((-1, 1))


def data_iter(batch_size: int, features: symad.Tensor, labels: symad.Tensor):
    """Random minibatches (the tutorial uses random.shuffle; symad.randperm keeps it seeded)."""
    num_examples = len(features)
    indices = symad.randperm(num_examples).tolist()
    for i in range(0, num_examples, batch_size):
        batch_indices = symad.tensor(indices[i:min(i + batch_size, num_examples)])
        yield features[batch_indices], labels[batch_indices]


def linreg(X, w, b):
    return symad.matmul(X, w) + b


def squared_loss(y_hat, y):
    return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2


def sgd(params, lr: float, batch_size: int) -> None:
    with symad.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


def from_scratch(features, labels, lr=0.03, num_epochs=3, batch_size=10) -> dict:
    w = symad.normal(0, 0.01, size=(2, 1), requires_grad=True)
    b = symad.zeros(1, requires_grad=True)
    losses = []
    for epoch in range(num_epochs):
        for X, y in data_iter(batch_size, features, labels):
            l = squared_loss(linreg(X, w, b), y)
            l.sum().backward()
            sgd([w, b], lr, batch_size)
        with symad.no_grad():
            train_l = squared_loss(linreg(features, w, b), labels)
            losses.append(float(train_l.mean()))
            print(f"epoch {epoch + 1}, loss {losses[-1]:f}")
    return {"w": w.detach().reshape(-1).tolist(), "b": b.item(), "losses": losses}


def load_array(data_arrays, batch_size: int, is_train: bool = True) -> data.DataLoader:
    dataset = data.TensorDataset(*data_arrays)
    return data.DataLoader(dataset, batch_size, shuffle=is_train)


def concise(features, labels, lr=0.03, num_epochs=3, batch_size=10) -> dict:
    data_iter_ = load_array((features, labels), batch_size)
    first_batch = next(iter(data_iter_))
    net = nn.Sequential(nn.Linear(2, 1))
    net[0].weight.data.normal_(0, 0.01)
    net[0].bias.data.fill_(0)
    loss = nn.MSELoss()
    trainer = optim.SGD(net.parameters(), lr=lr)
    losses = []
    for epoch in range(num_epochs):
        for X, y in data_iter_:
            l = loss(net(X), y)
            trainer.zero_grad()
            l.backward()
            trainer.step()
        l = loss(net(features), labels)
        losses.append(l.item())
        print(f"epoch {epoch + 1}, loss {l:f}")
    return {"w": net[0].weight.detach().reshape(-1).tolist(), "b": net[0].bias.item(),
            "losses": losses, "first_batch_shapes": [tuple(t.shape) for t in first_batch],
            "net_repr": repr(net)}


def main(seed: int = 0) -> dict:
    warm = warm_up()
    symad.manual_seed(seed)
    true_w = symad.tensor([2, -3.4])
    true_b = 4.2
    features, labels = synthetic_data(true_w, true_b, 1000)
    print("features", features[0], "\nlabels", labels[0])
    scratch = from_scratch(features, labels)
    print(f"w的估计误差: {true_w - symad.tensor(scratch['w'])}")
    print(f"b的估计误差: {true_b - scratch['b']}")
    brief = concise(features, labels)
    print("w的估计误差:", true_w - symad.tensor(brief["w"]))
    print("b的估计误差:", true_b - brief["b"])
    return {**warm, "scratch": scratch, "concise": brief, "features": features, "labels": labels}


if __name__ == "__main__":
    main()
