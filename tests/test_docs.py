"""The documentation cannot drift: every ```python block in docs/**/*.md and README.md runs.

Blocks of one page run in order in one namespace, in a temporary working directory. A block is
skipped only when the line right before it is ``<!-- no-run: REASON -->`` (the reason is
required). A page holding ``<!-- requires: mod1, mod2 -->`` (modules of an optional extra such
as ``symad[dask]``) is skipped when one is not installed, except under ``SYMAD_REQUIRE_EXTRAS=1``
(CI), where a missing one fails. Other fence languages that look like Python (```py, ```pycon,
```python3) are rejected, so nothing escapes the test by its spelling. C blocks of
docs/export.md are compiled by tests/test_export_docs.py.
"""
from __future__ import annotations

import fnmatch
import importlib
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
                   re.S | re.M)
NO_RUN = re.compile(r"<!--\s*no-run:\s*(?P<reason>\S.*?)\s*-->\s*$")
REQUIRES = re.compile(r"<!--\s*requires:\s*(?P<mods>[\w., ]+?)\s*-->")
PYTHONISH = {"py", "pycon", "python3", "ipython", "python3-console"}


def python_blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """(line number, code, skip reason or None) for each ```python block of a page."""
    text = page.read_text()
    out = []
    for m in FENCE.finditer(text):
        info = m.group("info").strip()
        lang = info.split()[0] if info else ""
        line = text.count("\n", 0, m.start()) + 1
        if lang in PYTHONISH:
            raise AssertionError(f"{page.relative_to(ROOT)}:{line}: fence ```{info} is not run "
                                 "by the docs test; use ```python")
        if lang != "python":
            continue
        before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        skip = NO_RUN.search(before)
        body = m.group("body")
        if m.group("indent"):
            body = "\n".join(ln[len(m.group("indent")):] for ln in body.splitlines())
        out.append((line, body, skip.group("reason") if skip else None))
    return out


def page_id(p: Path) -> str:
    return str(p.relative_to(ROOT))


@pytest.mark.parametrize("page", [p for p in PAGES if p.is_file()], ids=page_id)
def test_page_python_blocks_run(page, tmp_path, monkeypatch, capsys):
    blocks = python_blocks(page)
    if not blocks:
        pytest.skip("no python blocks")
    for m in REQUIRES.finditer(page.read_text()):
        for mod in (x.strip() for x in m.group("mods").split(",")):
            if os.environ.get("SYMAD_REQUIRE_EXTRAS"):
                importlib.import_module(mod)  # CI installs every extra: missing is a failure
            else:
                pytest.importorskip(mod)
    monkeypatch.chdir(tmp_path)  # blocks that write files (export) write them here
    ns: dict = {"__name__": f"docs_{page.stem}"}
    for line, code, skip in blocks:
        if skip:
            continue
        # pad so tracebacks point at the page's own line numbers
        src = "\n" * line + code
        try:
            exec(compile(src, str(page), "exec"), ns)
        except Exception as e:
            raise AssertionError(f"{page_id(page)}: the block at line {line} failed: "
                                 f"{type(e).__name__}: {e}") from e
    capsys.readouterr()


def test_every_page_has_been_seen_and_skips_have_reasons():
    total = 0
    for page in PAGES:
        for line, _, skip in python_blocks(page):
            total += 1
            if skip is not None:
                assert len(skip) >= 10, f"{page_id(page)}:{line}: give a real reason to skip"
    assert total >= 20  # the docs have many runnable examples; a parser regression shows here


def test_fence_parser():
    page = ROOT / "tests" / "_fence_probe.md"
    try:
        page.write_text("x\n```python\na = 1\n```\n<!-- no-run: needs a GPU we do not have -->\n"
                        "```python\nraise SystemExit\n```\n```sh\nls\n```\n"
                        "- item\n\n    ```python\n    b = 2\n    ```\n")
        got = python_blocks(page)
        assert [(c.strip(), s) for _, c, s in got] == [
            ("a = 1", None), ("raise SystemExit", "needs a GPU we do not have"), ("b = 2", None)]
        page.write_text("```pycon\n>>> 1\n```\n")
        with pytest.raises(AssertionError, match="is not run"):
            python_blocks(page)
    finally:
        page.unlink()


# -- mkdocs.yml: every page is reachable ---------------------------------------------------------
def _nav_files(node) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [f for x in node for f in _nav_files(x)]
    if isinstance(node, dict):
        return [f for v in node.values() for f in _nav_files(v)]
    return []


def test_every_docs_page_is_in_the_nav():
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):  # mkdocs.yml may hold !!python/name tags
        pass
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda *a: None)
    cfg = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)
    nav = set(_nav_files(cfg["nav"]))
    pages = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert not pages - nav, f"add these pages to the nav in mkdocs.yml: {sorted(pages - nav)}"
    assert not nav - pages, f"the nav names missing pages: {sorted(nav - pages)}"


# -- the compatibility table is true ------------------------------------------------------------
ROOTS = ["symad", "symad.Tensor", "symad.autograd", "symad.autograd.FunctionCtx", "symad.nn",
         "symad.nn.Module", "symad.nn.functional", "symad.nn.init", "symad.optim",
         "symad.utils.data"]


def _resolve(path: str):
    obj = importlib.import_module("symad")
    for part in path.split(".")[1:]:
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(f"{obj.__name__}.{part}")
    return obj


def _exists(name: str) -> bool:
    name = name.removeprefix("ctx.").removeprefix(".")
    for root in ROOTS:
        obj = _resolve(root)
        if "*" in name:
            if fnmatch.filter(dir(obj), name):
                return True
            continue
        cur = obj
        try:
            for part in name.split("."):
                cur = getattr(cur, part)
            return True
        except AttributeError:
            continue
    return False


def _section(text: str, title: str) -> str:
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_compatibility_supported_names_exist():
    text = (ROOT / "docs" / "compatibility.md").read_text()
    names = set()
    for row in _section(text, "Supported").splitlines():
        if row.startswith("| ") and not row.startswith("| area") and "---" not in row:
            cells = row.split("|")
            names.update(re.findall(r"`([^`]+)`", cells[2]))
    import inspect

    import symad
    from symad.utils.data import DataLoader
    names -= {"@", "None", "..."}  # indexing syntax, not names
    loader_kwargs = set(inspect.signature(DataLoader.__init__).parameters)
    node = (symad.ones(1, requires_grad=True) * 2).grad_fn
    assert len(names) > 150
    missing = sorted(n for n in names if not _exists(n) and n not in loader_kwargs
                     and not hasattr(node, n))
    assert not missing, f"docs/compatibility.md lists names symad does not have: {missing}"


def test_compatibility_lists_every_registry_op_by_kind():
    from symad.ops import REGISTRY
    text = _section((ROOT / "docs" / "compatibility.md").read_text(), "The op registry")
    rows = {}
    for row in text.splitlines():
        if row.startswith("| ") and "---" not in row and not row.startswith("| kind"):
            kind, ops = row.split("|")[1:3]
            rows[kind.strip()] = set(re.findall(r"`([^`]+)`", ops))
    listed = set().union(*rows.values())
    assert listed == set(REGISTRY), (f"not listed: {sorted(set(REGISTRY) - listed)}; "
                                     f"not in the registry: {sorted(listed - set(REGISTRY))}")
    for name in rows["no gradient (piecewise constant)"]:
        assert REGISTRY[name].nondiff_reason, name
    for name in rows["elementwise, SymPy formula"]:
        assert REGISTRY[name].formula is not None, name


def test_compatibility_not_available_names_are_really_missing():
    """The 'what differs' row of missing functions must not list things symad now has."""
    text = _section((ROOT / "docs" / "compatibility.md").read_text(), "What differs")
    row = next(r for r in text.splitlines() if "Not (yet) available" in r)
    absent = row.split("Not (yet) available", 1)[1].split("(use `state_dict()`")[0]
    names = [n.split("/")[0] for n in re.findall(r"`([^`]+)`", absent)]
    roots = {"nn": "symad.nn", "optim": "symad.optim", "torch": "symad"}
    now_present = []
    for n in names:
        for piece in n.split("/"):
            head, _, rest = piece.partition(".")
            if head in roots and rest:
                obj, attr = _resolve(roots[head]), rest.rstrip("*")
                hit = [a for a in dir(obj) if a.startswith(attr)] if n.endswith("*") \
                    else ([attr] if hasattr(obj, attr) else [])
            else:
                hit = [piece] if hasattr(_resolve("symad"), piece) else []
            now_present += hit
    assert not now_present, f"symad now has {now_present}: move them to 'Supported'"
