"""The loops a compiled model runs (a graph.loop, kernel.loop_begin ... kernel.loop_end): the
launches [begin, end) of the table are a body the run executes once per iteration.

In the artifact header (`loops`, docs/pfm-format.md) each loop is

    {"begin": launch, "end": launch, "counter": place, "flag": place, "init": place | null,
     "cond": place, "trips": size, "copies": [[kind, place, place, size], ...], "inner": [loop, ...]}

a place being [kind, index, byte offset] in io slot / weight blob (index: its byte offset) /
arena buffer `index`, a size a size expression (compiled_model.expr_to_json). Before the first
iteration the run stores 0 into `counter` (int64) and 1 into `flag` (a bool: the body's
condition argument) and makes the "enter" copies; the loop goes on while `init` (absent: true),
then `cond` after each iteration, holds and fewer than `trips` iterations ran. Before iteration i
the counter holds i; after it the run makes the "next" copies (every source read before any
destination is written) and the "scan" copies (to byte i * size of the destination); after the
loop the counter holds the number of iterations run. `inner` (absent: none) are the loops within
the body, in order, their launches inside the body's: each iteration runs the body's launches up to
the first, that loop (from its counter, flag and "enter" copies on), the launches up to the next,
and so on. The body of an outermost loop without inner loops may bind dims (the header's
`computed_dims` with a step inside it): they are bound anew in every iteration, and the buffers
they size placed for it (stepped_run.py); no copy's size names them. Kept free of the compiler side.
"""
from __future__ import annotations

from typing import NamedTuple

from pyflame_rt.compiled_model import expr_from_json, expr_to_json
from pyflame_rt.dialects.symbolic import SIZE_OPS
from pyflame_rt.value_dims import expr_symbols

COPY_KINDS = ("enter", "next", "scan")
MAX_DEPTH = 32  # loops within loops: bounds the runtime's recursion
PLACE_KINDS = ("io", "weight", "arena")


class Place(NamedTuple):
    kind: str    # "io" | "weight" | "arena"
    index: int   # io slot, weight blob offset or arena buffer
    offset: int  # bytes into it


class Copy(NamedTuple):
    kind: str  # COPY_KINDS
    source: Place
    dest: Place
    nbytes: object  # size expression


class Loop(NamedTuple):
    begin: int
    end: int
    counter: Place
    flag: Place
    init: Place | None
    cond: Place
    trips: object  # size expression
    copies: list[Copy]
    inner: list["Loop"]

    def to_json(self) -> dict:
        return {"begin": self.begin, "end": self.end, "counter": list(self.counter), "flag": list(self.flag),
                "init": None if self.init is None else list(self.init), "cond": list(self.cond),
                "trips": expr_to_json(self.trips),
                "copies": [[c.kind, list(c.source), list(c.dest), expr_to_json(c.nbytes)] for c in self.copies],
                **({"inner": [loop.to_json() for loop in self.inner]} if self.inner else {})}


def loops_from_header(entries: list, launches: int, io_slots: int, buffers: int, weight_bytes: int,
                      symbols: list[str], computed_steps: list[int]) -> list[Loop]:
    """The header's loops, checked (ValueError if not): their launches inside the table (an inner
    loop's inside its body), in order and not overlapping, at most MAX_DEPTH deep, no dim bound
    from a computed value inside a body, every place inside the io slots, weight blob or arena
    buffers it names, every size over the model's dims."""
    limits = {"io": io_slots, "weight": weight_bytes, "arena": buffers}

    def place(p) -> Place:
        if not (isinstance(p, list) and len(p) == 3 and p[0] in PLACE_KINDS and all(isinstance(x, int) for x in p[1:])
                and 0 <= p[1] < limits[p[0]] and p[2] >= 0):
            raise ValueError(f"loop place {p!r} is not [io|weight|arena, index, offset] inside the artifact")
        return Place(*p)

    def size(e):
        expr = expr_from_json(e)
        if not _known_ops(expr):
            raise ValueError(f"loop size {e!r} uses an unknown size operation")
        if not expr_symbols(expr) <= set(symbols):
            raise ValueError(f"loop size {e!r} names a dim the model does not bind")
        return expr

    def within(entries: list, first: int, last: int, depth: int) -> list[Loop]:
        """The loops `entries`, their launches inside [first, last)."""
        if not isinstance(entries, list) or (entries and depth == MAX_DEPTH):
            raise ValueError(f"loops nest more than {MAX_DEPTH} deep or are not a list")
        loops, previous_end = [], first
        for entry in entries:
            begin, end = entry["begin"], entry["end"]
            if not (isinstance(begin, int) and isinstance(end, int) and previous_end <= begin <= end <= last):
                raise ValueError(f"loop launches [{begin!r}, {end!r}) are not inside the table (or the enclosing "
                                 f"loop's body) after the previous loop")
            if any(begin < step < end for step in computed_steps) and (depth or entry.get("inner")):
                raise ValueError(f"a dim is bound inside the loop body [{begin}, {end}), which is not an "
                                 f"outermost loop's without loops")
            copies = []
            for c in entry["copies"]:
                kind, source, dest, nbytes = c
                if kind not in COPY_KINDS:
                    raise ValueError(f"loop copy kind {kind!r} is not one of {COPY_KINDS}")
                copies.append(Copy(kind, place(source), place(dest), size(nbytes)))
            loops.append(Loop(begin, end, place(entry["counter"]), place(entry["flag"]),
                              None if entry["init"] is None else place(entry["init"]), place(entry["cond"]),
                              size(entry["trips"]), copies, within(entry.get("inner", []), begin, end, depth + 1)))
            previous_end = end
        return loops

    return within(entries, 0, launches, 0)


def _known_ops(e) -> bool:
    return not isinstance(e, tuple) or (e[0] in SIZE_OPS and _known_ops(e[1]) and _known_ops(e[2]))
