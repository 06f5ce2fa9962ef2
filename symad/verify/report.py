"""Reports of gradient checks: one :class:`GradientItem` per variable (or tensor element)."""
from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass, field
from typing import Any

import sympy as sp

from .decide import Counterexample, fmt_number


DETAIL = 8        # reports with more components print a summary per input
SHOW_WRONG = 3    # ... and this many wrong components in detail
MAX_EXPR = 240    # characters of an expression in the summary form


@dataclass
class GradientItem:
    """One gradient component: the exact derivative, the claim, and the verdict."""

    name: str                       # "x", "w[1]", ...
    exact: Any                      # SymPy expression (or a value, when checking at a point)
    claimed: Any
    equal: bool | None
    proved: bool
    residual: Any = None            # simplified exact - claimed
    counterexample: Counterexample | None = None
    hint: str | None = None
    method: str = ""
    at: dict | None = None          # the point for value checks
    exact_value: Any = None         # exact derivative at ``at``
    claimed_value: Any = None

    @property
    def ok(self) -> bool:
        return self.equal is True

    def verdict(self) -> str:
        if self.equal is True:
            return "correct" + ("" if self.proved else " (numerically; not proved)")
        if self.equal is False:
            return "WRONG" + ("" if self.proved else " (numerically; not proved)")
        return "undecided"

    def to_dict(self) -> dict:
        ce = self.counterexample
        return {
            "name": self.name, "exact": str(self.exact), "claimed": str(self.claimed),
            "equal": self.equal, "proved": self.proved,
            "residual": None if self.residual is None else str(self.residual),
            "counterexample": None if ce is None else {
                "point": {k: str(v) for k, v in ce.items()},
                "exact": str(ce.exact), "claimed": str(ce.claimed)},
            "hint": self.hint, "method": self.method,
            "at": None if self.at is None else {str(k): str(v) for k, v in self.at.items()},
            "exact_value": None if self.exact_value is None else str(self.exact_value),
            "claimed_value": None if self.claimed_value is None else str(self.claimed_value),
        }


@dataclass
class GradientReport:
    """The result of :func:`symad.check_gradient` / :func:`symad.check_function`.

    ``ok``: every claimed component equals the exact gradient wherever f is differentiable.
    ``proved``: every verdict was established exactly (symbolically or by exact evaluation).
    """

    f: Any
    items: list[GradientItem] = field(default_factory=list)
    title: str = "gradient check"
    notes: list[str] = field(default_factory=list)
    seconds: float | None = None    # time to the verdict (hints and display excluded)

    @property
    def ok(self) -> bool:
        return bool(self.items) and all(i.equal is True for i in self.items)

    @property
    def basis(self) -> str:
        """What the verdict rests on: "symbolic proof", "counterexample at a point", "equal at
        k random exact points", "float rounding of constants" or "undecided within the time
        budget"."""
        wrong = [i for i in self.items if i.equal is False]
        if wrong:
            if any(i.counterexample is not None and i.proved for i in wrong):
                return "counterexample at a point"
            return wrong[0].method or "counterexample at a point"
        if any(i.equal is None for i in self.items):
            return "undecided within the time budget"
        graded = [i for i in self.items if not i.proved]
        if not graded:
            return "symbolic proof"
        if all("float rounding" in i.method for i in graded):
            return "float rounding of constants (otherwise a symbolic proof)"
        ks = [int(m.group(1)) for i in graded
              for m in [re.search(r"at (\d+) random", i.method)] if m]
        if ks:
            return f"equal at {min(ks)} random exact points (no symbolic proof)"
        return graded[0].method

    @property
    def proved(self) -> bool:
        if not self.items:
            return False
        if self.ok:
            return all(i.proved for i in self.items)
        # a single proved-wrong component proves the claim wrong
        return any(i.equal is False and i.proved for i in self.items)

    @property
    def status(self) -> str:
        """"proved right", "proved wrong", "right (not proved)", "wrong (not proved)", or
        "undecided"."""
        if self.ok:
            return "proved right" if self.proved else "right (not proved)"
        if any(i.equal is False for i in self.items):
            return "proved wrong" if self.proved else "wrong (not proved)"
        return "undecided"

    @property
    def exit_code(self) -> int:
        """CLI convention: 0 proved right, 1 wrong, 2 undecided."""
        if self.ok and self.proved:
            return 0
        if any(i.equal is False for i in self.items):
            return 1
        return 2

    def __getitem__(self, name: str) -> GradientItem:
        for i in self.items:
            if i.name == name:
                return i
        raise KeyError(name)

    def to_dict(self) -> dict:
        return {"f": str(self.f), "ok": self.ok, "proved": self.proved, "status": self.status,
                "basis": self.basis, "seconds": self.seconds,
                "items": [i.to_dict() for i in self.items], "notes": list(self.notes)}

    def to_json(self, **kw) -> str:
        return json.dumps(self.to_dict(), **kw)

    # -- text ---------------------------------------------------------------------------------
    def __str__(self) -> str:
        """Every component in full for small reports; for tensors (more than ``DETAIL``
        components) a line per input and the first wrong components, long expressions cut."""
        lines = [f"{self.title}: f = {self.f}"]
        compact = len(self.items) > DETAIL
        shown = self.items
        if compact:
            lines.extend(self._summary())
            shown = [it for it in self.items if it.equal is False][:SHOW_WRONG]
        for it in shown:
            lines.extend(self._item_lines(it, cut=MAX_EXPR if compact else None))
        lines.extend(f"  note: {n}" for n in self.notes)
        took = "" if self.seconds is None else f"; {self.seconds:.2f} s"
        lines.append(f"verdict: {self.status} (rests on: {self.basis}{took})")
        return "\n".join(lines)

    def _summary(self) -> list[str]:
        groups: dict[str, list[GradientItem]] = {}
        for it in self.items:
            groups.setdefault(it.name.split("[", 1)[0], []).append(it)
        out = []
        for name, items in groups.items():
            counts: dict[str, int] = {}
            for it in items:
                counts[it.verdict()] = counts.get(it.verdict(), 0) + 1
            parts = ", ".join(f"{n} {v}" for v, n in counts.items())
            how = {it.method for it in items if it.equal is not False}
            tail = f" ({next(iter(how))})" if len(how) == 1 else ""
            out.append(f"  ∂f/∂{name} ({len(items)} element(s)): {parts}{tail}")
        return out

    @staticmethod
    def _item_lines(it: GradientItem, cut: int | None) -> list[str]:
        def show(x) -> str:
            t = str(x)
            return t if cut is None or len(t) <= cut else t[:cut] + " …"
        lines = [f"  ∂f/∂{it.name}: {it.verdict()}",
                 f"      exact     {show(it.exact)}",
                 f"      claimed   {show(it.claimed)}"]
        if it.at is not None:
            at = ", ".join(f"{k}={v}" for k, v in it.at.items())
            lines.append(f"      at {at}: exact {fmt_number(it.exact_value)}, "
                         f"claimed {fmt_number(it.claimed_value)}")
        if it.equal is False and it.residual is not None:
            lines.append(f"      exact − claimed = {show(it.residual)}")
        ce = it.counterexample
        if ce is not None:
            at = ", ".join(f"{k}={v}" for k, v in ce.items())
            lines.append(f"      counterexample: at {show(at) if cut else at}: exact "
                         f"{fmt_number(ce.exact)}, claimed {fmt_number(ce.claimed)}")
        if it.hint:
            lines.append(f"      hint: {it.hint}")
        if it.method:
            lines.append(f"      ({it.method})")
        return lines

    def __repr__(self) -> str:
        return f"<GradientReport {self.status}: {len(self.items)} component(s)>"

    # -- Jupyter ------------------------------------------------------------------------------
    def _repr_latex_(self) -> str:
        rows = []
        for it in self.items:
            mark = r"\checkmark" if it.equal else (r"\times" if it.equal is False else "?")
            rows.append(r"\frac{\partial f}{\partial %s} & %s & %s & %s \\"
                        % (_tex_name(it.name), _tex(it.exact), _tex(it.claimed), mark))
        body = "\n".join(rows)
        return (r"$\begin{array}{llll}\text{component} & \text{exact} & \text{claimed} & \\"
                "\n" + body + r"\end{array}$")

    def _repr_html_(self) -> str:
        head = (f"<p><b>{html.escape(self.title)}</b>: <code>{html.escape(str(self.f))}</code> "
                f"&mdash; <b>{html.escape(self.status)}</b></p>")
        rows = ["<tr><th>component</th><th>exact</th><th>claimed</th><th>verdict</th>"
                "<th>counterexample / hint</th></tr>"]
        for it in self.items:
            extra = []
            if it.counterexample is not None:
                extra.append(html.escape(repr(it.counterexample)))
            if it.hint:
                extra.append(html.escape(it.hint))
            color = "#2a2" if it.equal else "#c22"
            rows.append(f"<tr><td>{html.escape(it.name)}</td>"
                        f"<td><code>{html.escape(str(it.exact))}</code></td>"
                        f"<td><code>{html.escape(str(it.claimed))}</code></td>"
                        f"<td style='color:{color}'>{html.escape(it.verdict())}</td>"
                        f"<td>{'<br>'.join(extra)}</td></tr>")
        return head + "<table>" + "".join(rows) + "</table>"


def _tex(e) -> str:
    try:
        return sp.latex(sp.sympify(e))
    except (sp.SympifyError, TypeError):
        return r"\text{%s}" % str(e)


def _tex_name(name: str) -> str:
    if "[" in name:
        base, idx = name.split("[", 1)
        return "%s_{%s}" % (base, idx.rstrip("]"))
    return name
