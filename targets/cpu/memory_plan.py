"""Static memory plan: intermediates share one arena by liveness.

Buffer sizes are symbolic in the dynamic dims; the placement is computed once per
distinct set of dim values (cached by the executable) with a greedy best-fit over
lifetimes, largest first, every offset 64-byte aligned. Placing a buffer looks only
at the placed buffers whose lifetimes overlap its own (`_PlacedLifetimes`), so a plan
costs O(n log n + overlaps), not O(n^2): a 10k-node chain plans in milliseconds.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right
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
    placed = _PlacedLifetimes(buffers)
    total = 0
    for i in order:
        busy = sorted((offsets[j], offsets[j] + sizes[j]) for j in placed.overlapping(i))
        offsets[i] = _best_fit(busy, sizes[i])
        placed.add(i)
        total = max(total, offsets[i] + sizes[i])
    return offsets, total


def _best_fit(busy: list[tuple[int, int]], size: int) -> int:
    """The lowest offset of the smallest gap between the busy ranges (sorted) that holds `size`
    bytes, else the end of the highest."""
    best, best_gap, cursor = None, None, 0
    for lo, hi in busy:
        gap = lo - cursor
        if gap >= size and (best_gap is None or gap < best_gap):
            best, best_gap = cursor, gap
        cursor = max(cursor, hi)
    return best if best is not None else cursor


class _PlacedLifetimes:
    """The placed buffers, queried by lifetime overlap. Lifetimes [first, last] overlap
    [a, b] iff they contain a or start in (a, b]: a segment tree over the distinct first
    steps answers the first (each lifetime listed at O(log n) canonical nodes, a query
    walks one leaf-to-root path) and a count tree over the same steps the second (a query
    descends only into subtrees holding a placed start)."""

    def __init__(self, buffers: list[Buffer]):
        self._buffers = buffers
        self._steps = sorted({b.first for b in buffers})
        self._leaves = 1 << max(0, len(self._steps) - 1).bit_length()
        self._covering: list[list[int]] = [[] for _ in range(2 * self._leaves)]
        self._starts: list[list[int]] = [[] for _ in range(self._leaves)]
        self._start_counts = [0] * (2 * self._leaves)

    def _span(self, b: Buffer) -> tuple[int, int]:
        """Leaf range [lo, hi) of the first steps within b's lifetime."""
        return bisect_left(self._steps, b.first), bisect_right(self._steps, b.last)

    def add(self, i: int) -> None:
        lo, hi = self._span(self._buffers[i])
        start = lo
        lo, hi = lo + self._leaves, hi + self._leaves
        while lo < hi:
            if lo & 1:
                self._covering[lo].append(i)
                lo += 1
            if hi & 1:
                hi -= 1
                self._covering[hi].append(i)
            lo, hi = lo >> 1, hi >> 1
        self._starts[start].append(i)
        node = start + self._leaves
        while node:
            self._start_counts[node] += 1
            node >>= 1

    def overlapping(self, i: int) -> list[int]:
        lo, hi = self._span(self._buffers[i])
        found = []
        node = lo + self._leaves
        while node:  # lifetimes containing buffer i's first step
            found.extend(self._covering[node])
            node >>= 1
        stack, lo, hi = [], lo + 1 + self._leaves, hi + self._leaves
        while lo < hi:  # lifetimes starting after it, within its lifetime
            if lo & 1:
                stack.append(lo)
                lo += 1
            if hi & 1:
                hi -= 1
                stack.append(hi)
            lo, hi = lo >> 1, hi >> 1
        while stack:
            node = stack.pop()
            if not self._start_counts[node]:
                continue
            if node >= self._leaves:
                found.extend(self._starts[node - self._leaves])
            else:
                stack += (2 * node, 2 * node + 1)
        return found
