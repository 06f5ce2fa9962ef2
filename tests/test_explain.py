"""symad.explain on the seeds' examples: exact formulas and values, names, rendering."""
from __future__ import annotations

import numpy as np
import pytest
import sympy

import symad
from symad import nn


def test_seed_000():
    w = symad.tensor(10.0, requires_grad=True)
    loss = 2 * w ** 2
    e = symad.explain(loss)
    assert str(e).splitlines()[-1] == "d loss/d w = 4*w = 40.0"
    entry = e["w"]
    assert entry.exact == 4 * entry.symbols[()]
    assert float(entry.value) == 40.0
    assert r"\frac{\partial\, \mathrm{loss}}{\partial w} &= 4 w = 40.0" in e._repr_latex_()
    assert "<table>" in e._repr_html_() and "4*w" in e._repr_html_()


def test_seed_001():
    x = symad.ones(2, 2, requires_grad=True)
    y = x + 2
    z = y * y * 3
    out = z.mean()
    e = symad.explain(out)
    d = e["x"]
    xs = d.symbols
    for idx in np.ndindex(2, 2):
        assert sympy.expand(d.derivative[idx] - sympy.Rational(3, 2) * (xs[idx] + 2)) == 0
    np.testing.assert_array_equal(d.value, np.full((2, 2), 4.5))
    out.backward()
    np.testing.assert_array_equal(x.grad._data, d.value)
    assert "d out/d x[0,0] = 3*x[0,0]/2 + 3 = 4.5" in str(e)


def test_explain_names_and_modules():
    symad.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 1)).double()
    X = symad.randn(4, 2, dtype=symad.float64)
    y = symad.randn(4, 1, dtype=symad.float64)
    loss = nn.MSELoss()(net(X), y)
    e = symad.explain(loss)
    assert [en.name for en in e.entries] == ["net.0.weight", "net.0.bias"]
    loss.backward()
    np.testing.assert_allclose(e["net.0.weight"].value, net[0].weight.grad._data, rtol=1e-12)
    np.testing.assert_allclose(e["net.0.bias"].value, net[0].bias.grad._data, rtol=1e-12)


def test_explain_custom_function_and_freed_graph():
    from seed_functions import Square

    a = symad.tensor(3.0, dtype=symad.float64, requires_grad=True)
    c = Square.apply(a).sin()
    e = symad.explain(c)
    s = e["a"].symbols[()]
    assert e["a"].exact == 2 * s * sympy.cos(s ** 2)
    assert float(e["a"].value) == pytest.approx(6 * np.cos(9.0), rel=1e-14)
    c.backward()
    # after backward the graph may be freed: explain then says so, else it gives the same answer
    try:
        again = symad.explain(c)
    except RuntimeError as exc:
        assert "freed" in str(exc)
    else:
        assert again["a"].exact == e["a"].exact


def test_docs_tracing_code_blocks_run():
    import pathlib
    import re
    src = (pathlib.Path(__file__).parent.parent / "docs" / "tracing.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", src, re.S)
    assert len(blocks) >= 5
    for i, b in enumerate(blocks):
        exec(compile(b, f"docs/tracing.md block {i}", "exec"), {})
