"""Static memory plan: intermediates share one arena by liveness.

Buffer sizes are symbolic in the dynamic dims; the placement is computed once per
distinct set of dim values (cached by the executable) with a greedy best-fit over
lifetimes, largest first, every offset 64-byte aligned.
"""
from __future__ import annotations

from dataclasses import dataclass

from pyflame_rt.dialects.symbolic import Dim, evaluate

ALIGN = 64


@dataclass(frozen=True)
class Buffer:
    nbytes: Dim
    first: int  # index of the step that writes it first
    last: int   # index of the last step that reads it


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan(buffers: list[Buffer], bindings: dict[str, int]) -> tuple[list[int], int]:
    """Offsets for every buffer and the arena size, for concrete dim values."""
    sizes = [_align(max(1, evaluate(b.nbytes, bindings))) for b in buffers]
    order = sorted(range(len(buffers)), key=lambda i: (-sizes[i], buffers[i].first))
    offsets = [0] * len(buffers)
    placed: list[int] = []
    total = 0
    for i in order:
        b = buffers[i]
        busy = sorted(
            (offsets[j], offsets[j] + sizes[j]) for j in placed
            if not (buffers[j].last < b.first or b.last < buffers[j].first)
        )
        best, best_gap, cursor = None, None, 0
        for lo, hi in busy:
            gap = lo - cursor
            if gap >= sizes[i] and (best_gap is None or gap < best_gap):
                best, best_gap = cursor, gap
            cursor = max(cursor, hi)
        offsets[i] = best if best is not None else cursor
        placed.append(i)
        total = max(total, offsets[i] + sizes[i])
    return offsets, total
