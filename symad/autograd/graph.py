"""Graph nodes (``grad_fn`` objects) and the reverse-mode engine.

A node records which op produced a tensor, the tensors its VJP needs, and ``next_functions``
(edges to the nodes of its inputs). ``backward`` walks nodes in topological order, sums incoming
gradients per output, runs tensor hooks and ``retain_grad``, and calls each node's VJP. Leaves that
require grad end in an :class:`AccumulateGrad` node.
"""
from __future__ import annotations

import itertools
import weakref
from typing import Any, Sequence

from .grad_mode import enable_grad, no_grad

_seq = itertools.count()
_run_vjp = None  # symad.ops.dispatch.run_vjp, bound on first use (import cycle)


class Node:
    """Base of all grad_fn classes; subclasses are named like PyTorch's (``MulBackward0``)."""

    __slots__ = ("next_functions", "_seq", "_tensor_hooks", "_retained", "_hooks",
                 "_pre_hooks", "__weakref__")

    def __init__(self, next_functions: tuple) -> None:
        self.next_functions = next_functions
        self._seq = next(_seq)
        self._tensor_hooks: dict[int, list] | None = None
        self._retained: dict[int, Any] | None = None
        self._hooks: list | None = None
        self._pre_hooks: list | None = None

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} object at {id(self):#x}>"

    def register_hook(self, hook):
        """``hook(grad_inputs, grad_outputs)`` runs after this node computed its input grads."""
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return _Handle(self._hooks, hook)

    def register_prehook(self, hook):
        if self._pre_hooks is None:
            self._pre_hooks = []
        self._pre_hooks.append(hook)
        return _Handle(self._pre_hooks, hook)

    # interface for the engine
    num_outputs = 1

    def apply(self, grads: list) -> tuple:
        raise NotImplementedError

    def release(self) -> None:
        pass


class _Handle:
    def __init__(self, lst, item) -> None:
        self._lst, self._item = lst, item

    def remove(self) -> None:
        try:
            self._lst.remove(self._item)
        except ValueError:
            pass


class AccumulateGrad(Node):
    """The node a leaf's gradient flows into; adds it to ``leaf.grad``."""

    __slots__ = ("variable",)

    def __init__(self, variable) -> None:
        super().__init__(())
        self.variable = variable

    def apply(self, grads):
        return ()


_node_classes: dict[str, type] = {}


def node_class(name: str, base: type) -> type:
    key = (name, base)
    cls = _node_classes.get(key)
    if cls is None:
        cls = type(name, (base,), {"__slots__": ()})
        _node_classes[key] = cls
    return cls


class SavedContext:
    """What a VJP rule sees: ``inputs``, ``output``, ``params``, ``needs_input_grad``."""

    __slots__ = ("inputs", "_output", "_out_version", "params", "needs_input_grad", "versions")

    def __init__(self, inputs, output, params, needs_input_grad) -> None:
        self.inputs = inputs
        self.output = output
        self.params = params
        self.needs_input_grad = needs_input_grad
        self.versions = tuple(t._version.value for t in inputs)

    @property
    def output(self):
        """The op's result, for VJPs that reuse it (softmax, prod, ...). Reading it after it
        was modified in place is PyTorch's "modified by an inplace operation" error."""
        out = self._output
        if out is not None and out._version.value != self._out_version:
            raise RuntimeError(
                "one of the variables needed for gradient computation has been modified by an "
                f"inplace operation: [{out.type()} {list(out.shape)}], which is output 0 of "
                f"this op, is at version {out._version.value}; expected version "
                f"{self._out_version} instead. Hint: use .clone() before modifying the result "
                "in place.")
        return out

    @output.setter
    def output(self, t) -> None:
        self._output = t
        self._out_version = t._version.value if t is not None else 0


class OpNode(Node):
    """A node for a registered op: its VJP comes from the op registry."""

    __slots__ = ("op", "ctx", "_kept")

    def __init__(self, op, ctx: SavedContext, next_functions) -> None:
        super().__init__(next_functions)
        self.op = op
        self.ctx: SavedContext | None = ctx
        self._kept = None

    def _check_saved(self):
        ctx = self.ctx
        if ctx is None:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access saved "
                "tensors after they have already been freed). Saved intermediate values of the "
                "graph are freed when you call .backward() or autograd.grad(). Specify "
                "retain_graph=True if you need to backward through the graph a second time or if "
                "you need to access saved tensors after calling backward.")
        for i, (t, v) in enumerate(zip(ctx.inputs, ctx.versions)):
            if t._version.value != v:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified by an "
                    f"inplace operation: [{t.type()} {list(t.shape)}] is at version "
                    f"{t._version.value}; expected version {v} instead. Hint: the input {i} of "
                    f"{self.name()} was changed in place after it was used; use .clone() before "
                    "modifying it, or do the in-place change after backward().")
        return ctx

    def apply(self, grads):
        ctx = self._check_saved()
        global _run_vjp
        if _run_vjp is None:
            from ..ops.dispatch import run_vjp as _run_vjp
        return _run_vjp(self.op, ctx, grads[0])

    def release(self) -> None:
        ctx = self.ctx
        if ctx is not None:
            # keep what a symbolic re-evaluation (symad.explain after backward) needs: the op's
            # parameters and its constant inputs; tensors on the graph and the output are freed
            self._kept = (ctx.params, tuple(t if fn is None else None
                                            for t, (fn, _) in zip(ctx.inputs,
                                                                  self.next_functions)))
        self.ctx = None

    @property
    def metadata(self) -> dict:
        return {}

    def __getattr__(self, item):
        # PyTorch exposes saved values as _saved_self, _saved_other, ...
        if item.startswith("_saved_") and self.ctx is not None:
            names = {"self": 0, "other": 1, "mat2": 1, "exponent": 1}
            key = item[len("_saved_"):]
            if key in names and names[key] < len(self.ctx.inputs):
                return self.ctx.inputs[names[key]]
            if key == "result":
                return self.ctx.output
            if key in self.ctx.params:
                return self.ctx.params[key]
        raise AttributeError(item)


# ---------------------------------------------------------------------------------------------
# the engine

def _edge_of(t):
    """The (node, output_nr) a gradient for tensor ``t`` flows into."""
    if t.grad_fn is not None:
        return (t.grad_fn, t._output_nr)
    if t.requires_grad:
        return (t._get_accumulator(), 0)
    return None


def _collect(roots: Sequence[Node], needed_targets: set | None):
    """Dependency counts over the graph reachable from ``roots``; optional pruning to nodes from
    which one of ``needed_targets`` is reachable."""
    deps: dict[Node, int] = {}
    seen = set()
    order = []
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        order.append(n)
        for nxt, _ in n.next_functions:
            if nxt is not None:
                deps[nxt] = deps.get(nxt, 0) + 1
                if nxt not in seen:
                    stack.append(nxt)
    useful = None
    if needed_targets is not None:
        useful = set()
        # reverse reachability: iterate until fixed point over the discovered nodes
        changed = True
        while changed:
            changed = False
            for n in order:
                if n in useful:
                    continue
                if n in needed_targets or any(nx in useful for nx, _ in n.next_functions
                                              if nx is not None):
                    useful.add(n)
                    changed = True
    return deps, useful


def run_backward(tensors, grad_tensors, *, retain_graph: bool, create_graph: bool,
                 inputs=None, accumulate: bool = True, allow_unused: bool = False):
    """Reverse sweep. With ``accumulate`` grads land in ``.grad`` of leaves (restricted to
    ``inputs`` when given); otherwise the grads of ``inputs`` are returned (autograd.grad)."""
    from ..tensor import Tensor

    roots, root_grads = [], []
    for t, g in zip(tensors, grad_tensors):
        edge = _edge_of(t)
        if edge is None:
            raise RuntimeError("element 0 of tensors does not require grad and does not have a "
                               "grad_fn")
        roots.append(edge)
        root_grads.append(g)

    targets: dict[tuple, list] = {}  # edge -> positions in ``inputs`` (an input may repeat)
    if inputs is not None:
        for i, t in enumerate(inputs):
            if not isinstance(t, Tensor):
                raise TypeError("inputs must be tensors")
            edge = _edge_of(t)
            if edge is None:
                raise RuntimeError(f"One of the differentiated Tensors (input {i}) does not "
                                   "require grad")
            targets.setdefault((edge[0], edge[1]), []).append(i)
    target_nodes = {n for n, _ in targets} if inputs is not None else None

    deps, useful = _collect([n for n, _ in roots], target_nodes)
    buffers: dict[Node, list] = {}
    for (node, nr), g in zip(roots, root_grads):
        _add_to_buffer(buffers, node, nr, g)

    captured: list = [None] * (len(inputs) if inputs is not None else 0)
    ready = [n for n, _ in roots if deps.get(n, 0) == 0]
    ready = list(dict.fromkeys(ready))
    mode = enable_grad() if create_graph else no_grad()
    visited = []
    with mode:
        while ready:
            ready.sort(key=lambda n: n._seq)
            node = ready.pop()  # newest first, like PyTorch
            grads = buffers.pop(node, None) or [None] * max(node.num_outputs, 1)
            visited.append(node)
            if useful is None or node in useful:
                _process(node, grads, targets, captured, accumulate, create_graph, buffers)
            for nxt, _ in node.next_functions:
                if nxt is None:
                    continue
                deps[nxt] -= 1
                if deps[nxt] == 0:
                    ready.append(nxt)
    if not retain_graph:
        for n in visited:
            n.release()
    if inputs is not None and not accumulate:
        for i, g in enumerate(captured):
            if g is None and not allow_unused:
                raise RuntimeError(
                    f"One of the differentiated Tensors (input {i}) appears to not have been used "
                    "in the graph. Set allow_unused=True if this is the desired behavior.")
        return tuple(captured)
    return None


def _add_to_buffer(buffers, node, nr, g):
    if g is None:
        return
    buf = buffers.get(node)
    if buf is None:
        buf = buffers[node] = [None] * max(node.num_outputs, 1)
    buf[nr] = g if buf[nr] is None else buf[nr] + g


def _process(node, grads, targets, captured, accumulate, create_graph, buffers):
    # tensor hooks and retain_grad on non-leaf outputs (leaf hooks run in AccumulateGrad)
    if node._pre_hooks:
        for h in node._pre_hooks:
            r = h(tuple(grads))
            if r is not None:
                grads = list(r)
    if node._tensor_hooks:
        for nr, hooks in node._tensor_hooks.items():
            for h in hooks:
                if grads[nr] is not None:
                    r = h(grads[nr])
                    if r is not None:
                        grads[nr] = r
    if node._retained:
        for nr, ref in node._retained.items():
            t = ref()
            if t is not None and grads[nr] is not None:
                g = grads[nr] if create_graph else grads[nr].detach()
                t.grad = g if t.grad is None else t.grad + g
    for nr, g in enumerate(grads):
        for idx in targets.get((node, nr), ()):
            captured[idx] = g if captured[idx] is None else captured[idx] + g
    if isinstance(node, AccumulateGrad):
        g = grads[0]
        var = node.variable
        if var._hooks:
            for h in var._hooks:
                r = h(g)
                if r is not None:
                    g = r
        if accumulate and g is not None and (not targets or (node, 0) in targets):
            var._accumulate_grad(g, create_graph)
        return
    if all(g is None for g in grads):
        return
    in_grads = node.apply(grads)
    if node._hooks:
        for h in node._hooks:
            r = h(in_grads, tuple(grads))
            if r is not None:
                in_grads = r
    for (nxt, nr), g in zip(node.next_functions, in_grads):
        if nxt is not None and g is not None:
            _add_to_buffer(buffers, nxt, nr, g)


def node_for(tensor_inputs, make_node):
    """Edges for a new node; ``make_node(next_functions)`` builds it."""
    nf = []
    for t in tensor_inputs:
        e = _edge_of(t) if t is not None else None
        nf.append(e if e is not None else (None, 0))
    return make_node(tuple(nf))


_ = weakref  # re-exported for node subclasses that keep weak references
