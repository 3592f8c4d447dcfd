"""Shape requirements: what shape functions and lowerings rely on about dims.

Shape functions state every requirement on dims through this module (`require_equal`,
`require_same_shape`, `require_at_most`, `require_multiple`, `broadcast_dim`, `expand_dim`). A requirement that the dims decide (static
values, or identical symbolic monomials) is decided at once: a violation raises
ShapeMismatchError at compile time. One that depends on dynamic dims becomes an
`Assumption`, recorded in the active collector (`collect()`) together with the node it
comes from (`at_node()`). The compiler stores the final graph's assumptions in the
artifact; the executable checks them once per input-shape signature, before any
native code runs (generated code trusts them: a K that differs from the weight's rows
would read past it).

Without an active collector (import, verification) an undecidable requirement is
taken as given: those shape functions only compute result types.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Iterator, Mapping

from pyflame_rt.dialects.symbolic import Dim, Shape, SymDim, dim_mul, evaluate, parse_dim
from pyflame_rt.errors import ShapeMismatchError

# relation -> (holds, how a failure is shown between the two sizes)
_RELATIONS = {"==": (lambda a, b: a == b, "vs"), "<=": (lambda a, b: a <= b, ">"),
              "multiple of": (lambda a, b: b != 0 and a % b == 0, "is not a multiple of"),
              "broadcasts to": (lambda a, b: a in (1, b), "does not broadcast to")}


@dataclass(frozen=True)
class Assumption:
    """`lhs relation rhs` over the model's dims, required by `node` (a label such as
    "graph.matmul node 'mm'"); `what` says what is wrong when it fails. A side is a dim or a sum
    of dims ("add", a, b) (require_sum)."""

    relation: str
    lhs: Dim | tuple
    rhs: Dim | tuple
    what: str
    node: str

    def failure(self, bindings: Mapping[str, int]) -> str | None:
        """The error message if the assumption fails for these dim values, else None."""
        holds, sep = _RELATIONS[self.relation]
        a, b = evaluate(self.lhs, bindings), evaluate(self.rhs, bindings)
        if holds(a, b):
            return None
        return f"{self.node}: {self.what}: {_shown(self.lhs, a)} {sep} {_shown(self.rhs, b)}"

    def symbols(self) -> set[str]:
        return {s for d in (self.lhs, self.rhs) for term in _terms(d) if isinstance(term, SymDim) for s in term.syms}

    def to_json(self) -> dict:
        return {"relation": self.relation, "lhs": _text(self.lhs), "rhs": _text(self.rhs), "what": self.what,
                "node": self.node}

    @staticmethod
    def from_json(j: Mapping) -> "Assumption":
        relation = str(j["relation"])
        if relation not in _RELATIONS:
            raise ValueError(f"unknown shape assumption relation '{relation}'")
        return Assumption(relation, _parse(str(j["lhs"])), _parse(str(j["rhs"])), str(j["what"]),
                          str(j["node"]))


def _shown(d, value: int) -> str:
    return str(value) if isinstance(d, int) else f"{value} ({_text(d)})"


def _terms(d) -> list[Dim]:
    """The dims a side adds up (one for a plain dim)."""
    return [*_terms(d[1]), *_terms(d[2])] if isinstance(d, tuple) else [d]


def _text(d) -> str:
    return " + ".join(map(str, _terms(d)))


def _parse(text: str):
    """Inverse of _text."""
    terms = [parse_dim(t) for t in text.split(" + ")]
    out = terms[0]
    for t in terms[1:]:
        out = ("add", out, t)
    return out


_collector: ContextVar[dict[Assumption, None] | None] = ContextVar("shape_assumptions", default=None)
_node: ContextVar[str] = ContextVar("shape_assumption_node", default="graph")


@contextmanager
def collect() -> Iterator[list[Assumption]]:
    """Record the assumptions made inside the block; the yielded list holds them (in first-made
    order, without repeats) once the block exits."""
    found: dict[Assumption, None] = {}
    token = _collector.set(found)
    out: list[Assumption] = []
    try:
        yield out
    finally:
        _collector.reset(token)
        out.extend(found)


@contextmanager
def at_node(label: str) -> Iterator[None]:
    """Attribute the requirements stated inside the block to the node `label`."""
    token = _node.set(label)
    try:
        yield
    finally:
        _node.reset(token)


def _assume(relation: str, lhs: Dim, rhs: Dim, what: str) -> None:
    found = _collector.get()
    if found is not None:
        found.setdefault(Assumption(relation, lhs, rhs, what, _node.get()))


def require_equal(a: Dim, b: Dim, what: str) -> Dim:
    """a == b; returns the dim both stand for (the static one if either is static)."""
    if a == b:
        return a
    if isinstance(a, int) and isinstance(b, int):
        raise ShapeMismatchError(f"{what}: {a} vs {b}")
    _assume("==", a, b, what)
    return b if isinstance(b, int) else a


def require_at_most(a: Dim, b: Dim, what: str) -> None:
    """a <= b (an index count or bound against a dim)."""
    if isinstance(a, int) and isinstance(b, int):
        if a > b:
            raise ShapeMismatchError(f"{what}: {a} > {b}")
        return
    if a != b:
        _assume("<=", a, b, what)


def require_nonempty(extent: Dim, what: str, results: Dim = 1) -> None:
    """Each of `results` outputs reduces a non-empty `extent` (ArgMax of an axis, a global pool of the
    spatial dims): results <= results * extent, so an op with no outputs may have an empty extent.
    Recorded even when static and failing: such a model is valid and only its runs fail, as in
    onnxruntime."""
    if not (isinstance(extent, int) and extent > 0 or isinstance(results, int) and results == 0):
        _assume("<=", results, dim_mul(results, extent), what)


def require_sum(parts: list[Dim], total: Dim, what: str) -> None:
    """sum(parts) == total: an axis joined from several dynamic extents (a KV cache's past and new
    keys) whose size is a dim the run binds elsewhere."""
    static = sum(p for p in parts if isinstance(p, int))
    dynamic = [p for p in parts if not isinstance(p, int)]
    if not dynamic:
        require_equal(static, total, what)
        return
    side = dynamic[0]
    for p in [*dynamic[1:], *([static] if static else [])]:
        side = ("add", side, p)
    _assume("==", side, total, what)


def require_multiple(a: Dim, b: int, what: str) -> None:
    """a is a multiple of the static b (a group count, a block size)."""
    if isinstance(a, int) or b == 0:
        if b == 0 or a % b:
            raise ShapeMismatchError(f"{what}: {a} is not a multiple of {b}")
        return
    if a.coef % b:
        _assume("multiple of", a, b, what)


def require_same_shape(a: Shape, b: Shape, what: str) -> None:
    """Equal ranks (decided now) and equal dims; `what` names the two shapes in that order."""
    what = f"{what} ({list(map(str, a))} vs {list(map(str, b))})"
    if len(a) != len(b):
        raise ShapeMismatchError(f"{what}: ranks {len(a)} vs {len(b)}")
    for x, y in zip(a, b):
        require_equal(x, y, what)


def broadcast_dim(x: Dim, y: Dim, what: str) -> Dim:
    """The multidirectional broadcast of two dims. A static 1 broadcasts; any other pair must be
    equal. A dynamic dim is never taken as a broadcasting 1 (the kernels' strides are fixed at
    compile time): against another dim it is required equal, and a feed of 1 there is rejected."""
    if x == 1:
        return y
    if y == 1:
        return x
    return require_equal(x, y, what)


def expand_dim(x: Dim, target: Dim, what: str) -> Dim:
    """An Expand target dim against the input's dim x (ONNX Expand broadcasts both ways). A
    dynamic target (an element of a shape computed or fed at run time) may be 1 or x when x is
    not 1: the result is x, and the target's value is checked to be one of the two."""
    if isinstance(target, SymDim) and x not in (1, target):
        _assume("broadcasts to", target, x, what)
        return x
    return broadcast_dim(x, target, what)
