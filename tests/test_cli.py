"""The `symad` command line as a new user meets it: help with examples everywhere, one exit-code
convention (0 ok / proved right, 1 negative verdict, 2 usage error or undecided), --json that
parses, and the commands shown in docs/getting_started.md behaving as the page says."""
from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from symad import cli

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(cli.SUBCOMMANDS)
F = "x**2 + 3*x*y + y**2"


def main(capsys, *argv) -> tuple[int, str, str]:
    try:
        code = cli.main(list(argv))
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_subcommand_is_available():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == COMMANDS == ["check", "demo", "diff", "export"]


def test_top_level_help_lists_commands_examples_and_exit_codes(capsys):
    code, out, _ = main(capsys, "--help")
    assert code == 0
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", out, re.M), name
    assert "examples:" in out and "exit codes:" in out


@pytest.mark.parametrize("name", COMMANDS)
def test_subcommand_help_has_examples_and_exit_codes(capsys, name):
    code, out, _ = main(capsys, name, "--help")
    assert code == 0
    assert f"usage: symad {name}" in out
    assert "examples:" in out and "exit codes:" in out
    examples = out.split("examples:", 1)[1]
    assert f"symad {name}" in examples  # the examples show the command itself


def test_no_command_prints_help_and_exits_2(capsys):
    code, out, _ = main(capsys)
    assert code == 2 and "usage: symad" in out


def test_unknown_command_and_bad_option_exit_2(capsys):
    assert main(capsys, "frobnicate")[0] == 2
    for name in COMMANDS:
        code, _, err = main(capsys, name, "--no-such-option")
        assert code == 2 and "error:" in err, name


def test_version(capsys):
    import symad
    code, out, _ = main(capsys, "--version")
    assert code == 0 and out.strip() == f"symad {symad.__version__}"


# -- exit codes of the verdicts ------------------------------------------------------------------
def test_check_exit_codes_and_json(capsys):
    code, out, _ = main(capsys, "check", F, "--claim", "x=2*x+3*y", "y=3*x+2*y", "--json")
    assert code == 0
    assert json.loads(out)["status"] == "proved right"
    # the seed 002 slip: claims 10 and 13 at (2, 3)
    code, out, _ = main(capsys, "check", F, "--claim", "x=10", "--claim", "y=13",
                        "--at", "x=2", "--at", "y=3", "--json")
    rep = json.loads(out)
    assert code == 1 and rep["status"] == "proved wrong"
    assert {i["name"]: i["exact_value"] for i in rep["items"]} == {"x": "13", "y": "12"}
    code, _, err = main(capsys, "check", F)
    assert code == 2 and "--claim" in err
    code, _, err = main(capsys, "check", "x**2 +", "--claim", "x=1")
    assert code == 2 and "error" in err


def test_diff_values_json_and_repeated_at(capsys):
    code, out, _ = main(capsys, "diff", F, "--at", "x=2", "y=3", "--json")
    assert code == 0
    partials = json.loads(out)["partials"]
    x, y = 2, 3
    assert partials["x"]["value"] == 2 * x + 3 * y and partials["y"]["value"] == 3 * x + 2 * y
    # --at repeated (as `symad check` takes it) means the same thing
    code, out2, _ = main(capsys, "diff", F, "--at", "x=2", "--at", "y=3", "--json")
    assert code == 0 and json.loads(out2) == json.loads(out)
    code, out, err = main(capsys, "diff", "x**+")
    assert code == 2 and "cannot parse" in err and out == ""


def test_export_usage_errors_exit_2(capsys, tmp_path):
    code, _, err = main(capsys, "export", str(tmp_path / "missing.py") + ":f",
                        "--input", "x=float64[N]")
    assert code == 2 and "no such file" in err
    code, _, err = main(capsys, "export", "f.py:f", "--input", "x=float16[N]")
    assert code == 2 and "error" in err


def test_demo_json_is_machine_readable(capsys):
    code, out, _ = main(capsys, "demo", "--part", "2", "--json")
    data = json.loads(out)
    assert code == data["exit_code"] == 0
    assert data["parts"]["2"]["verdict"] == "proved wrong"


# -- the commands docs/getting_started.md shows ------------------------------------------------
def _doc_commands() -> list[tuple[list[str], int]]:
    text = (ROOT / "docs" / "getting_started.md").read_text()
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", text, re.S):
        for line in block.splitlines():
            if not line.startswith("symad "):
                continue
            cmd, _, comment = line.partition("#")
            m = re.search(r"exit (\d)", comment)
            cmds.append((shlex.split(cmd)[1:], int(m.group(1)) if m else 0))
    return cmds


def test_getting_started_commands_behave_as_documented(capsys):
    cmds = _doc_commands()
    assert len(cmds) >= 4
    for argv, want in cmds:
        code, out, err = main(capsys, *argv)
        assert code == want, (argv, code, out[-500:], err[-500:])


def test_console_script_entry_point():
    """`python -m symad.cli` and the installed `symad` script are the same program."""
    p = subprocess.run([sys.executable, "-m", "symad.cli", "check", F, "--claim", "x=10",
                        "y=13", "--at", "x=2", "y=3"], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 1 and "proved wrong" in p.stdout


def test_export_of_a_function_that_raises_is_a_usage_error(tmp_path, capsys):
    from symad.cli import main
    src = tmp_path / "bad.py"
    src.write_text("def f(x, w):\n    raise RuntimeError('boom')\n")
    code = main(["export", f"{src}:f", "--input", "x=float64[N]", "--input", "w=float64[2]",
                 "--out-dir", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert "RuntimeError" in err and "boom" in err
