"""One formula parser for `symad diff`, `symad check` and check_gradient's strings: every registry
function is known with the registry's meaning, `2x` is a product, names are never split, and an
unknown function is an error naming it."""
from __future__ import annotations

import json

import pytest
import sympy

import symad
from symad import cli
from symad.ops.parse import FormulaError, known_functions, parse
from symad.ops.registry import REGISTRY

x, y = sympy.Symbol("x", real=True), sympy.Symbol("y", real=True)


def run(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", sorted(n for n, op in REGISTRY.items() if op.formula is not None))
def test_every_registry_function_is_known_with_its_formula(name):
    op = REGISTRY[name]
    args = [x, y][:op.nargs] + [sympy.Integer(k + 2) for k in range(len(op.params))]
    text = f"{name}({', '.join(map(str, args))})"
    expected = op.formula(*args[:op.nargs], **dict(zip(op.params, args[op.nargs:])))
    assert parse(text) == expected
    assert name in known_functions()


@pytest.mark.parametrize("text,expected", [
    ("2x", 2 * x),
    ("2x + 3y", 2 * x + 3 * y),
    ("3 x y", 3 * x * y),
    ("2(x + 1)", 2 * x + 2),
    ("x^2", x ** 2),
    ("2sigmoid(x)", 2 * REGISTRY["sigmoid"].formula(x)),
    ("sin x", sympy.sin(x)),
])
def test_implicit_products(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("text", ["sigmoid(x)", "relu(x) + expm1(x)", "softplus(x)",
                                  "maximum(x, 2x)"])
def test_known_names_are_never_split(text):
    assert parse(text).free_symbols == {x}


def test_long_variable_names_stay_whole():
    e = parse("weight*xin + bias")
    assert sorted(s.name for s in e.free_symbols) == ["bias", "weight", "xin"]
    assert all(s.is_real for s in e.free_symbols)


@pytest.mark.parametrize("text,name", [("foo(x)", "foo"), ("sigmoi(x) + 1", "sigmoi"),
                                       ("2x + blorp(y)", "blorp")])
def test_unknown_function_is_an_error_naming_it(text, name):
    with pytest.raises(FormulaError, match=f"unknown function '{name}'"):
        parse(text)


def test_relu_parsed_has_the_registry_kink_rule():
    # relu'(0) = 0 (PyTorch), the same rule the tensor op uses
    code = symad.check_gradient("relu(x)", {"x": 0}, at={"x": 0})
    assert code.ok


def test_diff_sigmoid_has_one_partial(capsys):
    code, out, _ = run(capsys, "diff", "sigmoid(x)", "--at", "x=0", "--json")
    assert code == 0
    partials = json.loads(out)["partials"]
    assert list(partials) == ["x"]  # not d, g, i, m, o, s, x
    assert partials["x"]["value"] == 0.25  # sigmoid'(0) = 1/4


def test_diff_accepts_implicit_products(capsys):
    code, out, _ = run(capsys, "diff", "2x y + x^2", "--at", "x=1", "y=3", "--json")
    assert code == 0
    partials = json.loads(out)["partials"]
    assert partials["x"]["value"] == 8 and partials["y"]["value"] == 2


def test_diff_unknown_function_exit_2(capsys):
    code, _, err = run(capsys, "diff", "frob(x)")
    assert code == 2 and "unknown function 'frob'" in err


def test_check_accepts_2x(capsys):
    code, out, _ = run(capsys, "check", "2x", "--claim", "x=2", "--json")
    assert code == 0 and json.loads(out)["ok"] is True
    code, _, _ = run(capsys, "check", "x^2 + 2x", "--claim", "x=2x + 2")
    assert code == 0


def test_check_unknown_function_exit_2(capsys):
    code, _, err = run(capsys, "check", "frob(x)", "--claim", "x=1")
    assert code == 2 and "frob" in err


def test_check_gradient_string_uses_the_same_parser():
    r = symad.check_gradient("2x + sigmoid(x)", {"x": "2 + sigmoid(x)(1 - sigmoid(x))"})
    assert r.ok
    with pytest.raises(ValueError, match="unknown function 'frob'"):
        symad.check_gradient("frob(x)", {"x": "1"})
