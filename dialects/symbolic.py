"""Symbolic tensor dimensions: a dim is a monomial `coef * sym1 * sym2 ...`.

Dynamic ONNX dims (batch, sequence) flow through shape functions as monomials, so
that Flatten / Reshape of a dynamic tensor stay exact and the CPU lowering can
compute sizes from the dims a run binds. A sum of dims (Concat along a dynamic axis)
is one symbol named by its terms, `past+seq` (`dim_add`), bound from them (`bind_sums`).

A verifier sees only `?` for a dynamic dim: it gives each one its own *unknown* symbol
(`unknown_dim`), which stands for any positive size, so relations between dims the types
do not show (a `?` that is 3*batch) cannot be refuted: an exact division of an unknown
is another unknown.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod
from typing import Mapping, Union

from pyflame_rt.errors import ShapeMismatchError


@dataclass(frozen=True)
class SymDim:
    coef: int
    syms: tuple[str, ...]  # sorted, with repetition

    @staticmethod
    def of(name: str) -> "SymDim":
        return SymDim(1, (name,))

    def __mul__(self, other: "Dim") -> "Dim":
        if isinstance(other, int):
            return normalize(SymDim(self.coef * other, self.syms))
        return normalize(SymDim(self.coef * other.coef, tuple(sorted(self.syms + other.syms))))

    __rmul__ = __mul__

    def exact_div(self, other: "Dim") -> "Dim":
        other = other if isinstance(other, SymDim) else SymDim(other, ())
        rest = list(self.syms)
        for s in other.syms:
            if s not in rest:
                return self._unknown_quotient(other, f"cannot divide dim {self} by {other}")
            rest.remove(s)
        if other.coef == 0:
            raise ShapeMismatchError(f"dim {self} is not divisible by {other}")
        if self.coef % other.coef:
            return self._unknown_quotient(other, f"dim {self} is not divisible by {other}")
        return normalize(SymDim(self.coef // other.coef, tuple(rest)))

    def _unknown_quotient(self, other: "SymDim", why: str) -> "SymDim":
        """self / other where only the value of an unknown symbol of self can make it exact."""
        if not any(is_unknown(s) for s in self.syms):
            raise ShapeMismatchError(why)
        return unknown_dim(f"({self})/({other})")

    def evaluate(self, bindings: Mapping[str, int]) -> int:
        return self.coef * prod(bindings[s] for s in self.syms)

    def __str__(self) -> str:
        parts = ([str(self.coef)] if self.coef != 1 else []) + list(self.syms)
        return "*".join(parts)


Dim = Union[int, SymDim]
Shape = tuple[Dim, ...]
UNKNOWN = "?"  # the prefix of unknown symbols (model dims are identifiers: never one of them)


def unknown_dim(name: str) -> SymDim:
    return SymDim.of(UNKNOWN + name)


def is_unknown(sym: str) -> bool:
    return sym.startswith(UNKNOWN)


def normalize(d: Dim) -> Dim:
    if isinstance(d, SymDim) and not d.syms:
        return d.coef
    return d


def dim_mul(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a * b
    return (a if isinstance(a, SymDim) else b) * (b if isinstance(a, SymDim) else a)


def dim_div(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        if b == 0 or a % b:
            raise ShapeMismatchError(f"dim {a} is not divisible by {b}")
        return a // b
    if isinstance(a, int):
        raise ShapeMismatchError(f"cannot divide static dim {a} by dynamic dim {b}")
    return a.exact_div(b)


def numel(shape: Shape) -> Dim:
    out: Dim = 1
    for d in shape:
        out = dim_mul(out, d)
    return out


def dim_add(a: Dim, b: Dim) -> Dim:
    """a + b. A sum with a dynamic dim is a *sum symbol* named by its terms, plain symbols (sorted,
    with repetition) then a constant: `past+seq`, `past+1`. No input binds it: runs compute it from
    its terms (`bind_sums`). Sums of other monomials (2*seq, batch*seq) are refused."""
    if isinstance(a, int) and isinstance(b, int):
        return a + b
    if a == 0 or b == 0:
        return b if a == 0 else a
    names, constant = [], 0
    for d in (a, b):
        if isinstance(d, int):
            constant += d
            continue
        if d.coef != 1 or len(d.syms) != 1:
            raise ShapeMismatchError(f"cannot add dims {a} and {b}: only sums of plain symbols are supported")
        terms, c = sum_terms(d.syms[0])
        names += terms
        constant += c
    return SymDim.of("+".join(sorted(names) + ([str(constant)] if constant else [])))


def sum_terms(sym: str) -> tuple[list[str], int]:
    """The symbols and the constant a symbol adds up (a plain symbol: itself and 0)."""
    names, constant = [], 0
    for term in sym.split("+"):
        if term.isdigit():
            constant += int(term)
        else:
            names.append(term)
    return names, constant


def bind_sums(bindings: dict[str, int], symbols) -> None:
    """Add the values of the sum symbols among `symbols` to `bindings`, computed from their terms'.
    A sum symbol an input binds too (an ONNX dim named `a+b`) must agree: sizes derive from both."""
    for sym in symbols:
        names, constant = sum_terms(sym)
        if len(names) + bool(constant) < 2 or any(n not in bindings for n in names):
            continue
        value = constant + sum(bindings[n] for n in names)
        if bindings.setdefault(sym, value) != value:
            raise ShapeMismatchError(f"dim '{sym}' is bound to {bindings[sym]} by an input, not to the sum {value}")


SIZE_OPS = {"mul": lambda a, b: a * b, "add": lambda a, b: a + b, "min": min, "max": max,
            "ceildiv": lambda a, b: -(-a // max(b, 1))}  # a ceildiv by 0 (an empty tensor's size) divides by 1


def fold_size(op: str, a, b):
    """The size expression (op, a, b), computed as far as its operands are known: a product of dims
    stays a dim, constants are combined, and a multiplication or ceildiv by 1 and an addition of 0
    leave the other operand."""
    if op == "mul" and not isinstance(a, tuple) and not isinstance(b, tuple):
        return dim_mul(a, b)
    if isinstance(a, int) and isinstance(b, int):
        return SIZE_OPS[op](a, b)
    if op == "mul" and a == 1 or op == "add" and a == 0:
        return b
    if op == "mul" and b == 1 or op == "add" and b == 0 or op == "ceildiv" and isinstance(b, int) and b <= 1:
        return a
    return (op, a, b)


def evaluate(d, bindings: Mapping[str, int]) -> int:
    """Value of a Dim, or of a size expression (op, a, b) built from Dims, op one of SIZE_OPS."""
    if isinstance(d, int):
        return d
    if isinstance(d, SymDim):
        return d.evaluate(bindings)
    op, a, b = d
    return SIZE_OPS[op](evaluate(a, bindings), evaluate(b, bindings))


def evaluate_shape(shape: Shape, bindings: Mapping[str, int]) -> tuple[int, ...]:
    return tuple(evaluate(d, bindings) for d in shape)


def dim_to_public(d: Dim) -> int | str:
    """How get_inputs()/get_outputs() show a dim: an int, or the symbol's name."""
    return d if isinstance(d, int) else str(d)


def parse_dim(text: str) -> Dim:
    """Inverse of str(): '784' -> 784, 'batch' -> SymDim, '3*batch*seq' -> monomial."""
    coef, syms = 1, []
    for part in text.split("*"):
        if part.lstrip("-").isdigit():
            coef *= int(part)
        elif is_unknown(part):  # a verifier's symbol: never bound by a run
            raise ShapeMismatchError(f"dim '{text}': a dim name may not start with '{UNKNOWN}'")
        else:
            syms.append(part)
    return normalize(SymDim(coef, tuple(sorted(syms))))
