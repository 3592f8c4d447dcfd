"""The schedule as data: the launch table a `.pfm` holds and the C runtime executes.

A launch runs one kernel over a number of work items (chunks of at least `grain`), its context
built from its fields. In the artifact header (docs/pfm-format.md, `launches`):

    {"exprs": [size expression, ...],     # the distinct sizes: a dim, or [op, expr, expr] of earlier ones
     "weights": [[offset, nbytes], ...],  # the constants in the weight blob
     "table": [[kernel, items, grain, [field, ...]], ...]}

`kernel` indexes the header's `kernels`, `items` and `grain` index `exprs`; a field is
[FIELD_VALUE, expr, 0], or an address [kind, index, byte offset] inside io slot `index`, weight
`index` or arena buffer `index`. The executable resolves the sizes once per input-shape
signature (`resolve`) into the arrays `pfrt_execute` takes; the C side adds the run's base
addresses. Kept free of the compiler side: the executable imports it.
"""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects.symbolic import SIZE_OPS, SymDim, evaluate, parse_dim
from pyflame_rt.errors import InvalidModelError

# field kinds, as runtime/pfrt.h's PFRT_FIELD_*
FIELD_VALUE, FIELD_IO, FIELD_WEIGHTS, FIELD_ARENA = range(4)
_LOC_KINDS = {"io": FIELD_IO, "weight": FIELD_WEIGHTS, "arena": FIELD_ARENA}
# columns of the resolved arrays: pfrt_field and pfrt_launch, one int64 each
_KIND, _SLOT, _VALUE, _START, _SIZE = range(5)
_KERNEL, _FIRST, _COUNT, _ITEMS, _GRAIN = range(5)


def encode(steps: list, kernels: list[str], weights: list[tuple[int, int]]) -> dict:
    """The header entry for `steps` (lower_graph's kernel calls: kernel symbol, fields that are
    size expressions or Locs, items, grain); `weights` are the blob's (offset, nbytes)."""
    exprs: list = []
    expr_index: dict = {}
    kernel_index = {k: i for i, k in enumerate(kernels)}
    weight_index = {offset: i for i, (offset, _) in enumerate(weights)}

    def expr(e) -> int:
        """The index of e, appended after its operands if new (sizes share subexpressions)."""
        if e not in expr_index:
            node = [e[0], expr(e[1]), expr(e[2])] if isinstance(e, tuple) else str(e)
            expr_index[e] = len(exprs)
            exprs.append(node)
        return expr_index[e]

    def field(f) -> list[int]:
        if isinstance(f, (int, SymDim, tuple)):
            return [FIELD_VALUE, expr(f), 0]
        index = weight_index[f.index] if f.kind == "weight" else f.index
        return [_LOC_KINDS[f.kind], index, f.offset]

    table = [[kernel_index[c.kernel], expr(c.items), expr(c.grain), [field(f) for f in c.fields]] for c in steps]
    return {"exprs": exprs, "weights": [list(w) for w in weights], "table": table}


class LaunchTable:
    """A header's launch table, checked against the artifact it came with."""

    def __init__(self, entry: dict, kernels: int, io_slots: int, buffers: int, weight_bytes: int,
                 symbols: list[str]):
        """The numbers of kernels, io slots and arena buffers, the weight blob's size and the dims a
        run binds (`symbols`) bound what launches refer to (ValueError if not); `bind` then gives the
        kernels' addresses."""
        bound = set(symbols)
        self.exprs = [_expr(e, k, bound) for k, e in enumerate(entry["exprs"])]
        self.weights = np.array([[int(o), int(n)] for o, n in entry["weights"]], np.int64).reshape(-1, 2)
        if ((self.weights < 0) | (self.weights[:, 0] + self.weights[:, 1] > weight_bytes)[:, None]).any():
            raise ValueError("a weight lies outside the weight blob")
        table = entry["table"]
        self.launches = np.zeros((len(table), 5), np.int64)
        fields: list[list[int]] = []
        for i, (kernel, items, grain, launch_fields) in enumerate(table):
            self.launches[i] = [_index(kernel, kernels), len(fields), len(launch_fields),
                                _index(items, len(self.exprs)), _index(grain, len(self.exprs))]
            fields += [_field(f, len(self.exprs), io_slots, len(self.weights), buffers) for f in launch_fields]
        self.fields = np.array(fields, np.int64).reshape(-1, 3)  # kind, index, byte offset

    def bind(self, addresses: list[int]) -> None:
        """Replace each launch's kernel index by the loaded kernel's address."""
        self.launches[:, _KERNEL] = np.array(addresses, np.int64)[self.launches[:, _KERNEL]]

    def __len__(self) -> int:
        return len(self.launches)

    def resolve(self, dims: dict[str, int], arena_offsets: list[int], buffer_sizes: list[int],
                io_sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The (launches, fields) arrays of pfrt_execute for these dim values, the memory plan's
        arena offsets, and the byte sizes of the arena buffers and io tensors (a checked build's
        bounds). OverflowError if a size does not fit in int64."""
        resolved: list[int] = []
        for e in self.exprs:
            resolved.append(evaluate((e[0], resolved[e[1]], resolved[e[2]]) if isinstance(e, tuple) else e, dims))
        values = np.array(resolved or [0], np.int64)
        launches = self.launches.copy()
        launches[:, _ITEMS] = values[self.launches[:, _ITEMS]]
        launches[:, _GRAIN] = values[self.launches[:, _GRAIN]]
        kind, index = self.fields[:, 0], self.fields[:, 1]
        fields = np.zeros((len(self.fields), 5), np.int64)
        fields[:, _KIND] = kind
        fields[:, _VALUE] = np.where(kind == FIELD_VALUE, values[np.where(kind == FIELD_VALUE, index, 0)],
                                     self.fields[:, 2])
        for k, starts, sizes in ((FIELD_IO, [0] * len(io_sizes), io_sizes),
                                 (FIELD_WEIGHTS, self.weights[:, 0], self.weights[:, 1]),
                                 (FIELD_ARENA, arena_offsets, buffer_sizes)):
            rows = kind == k
            fields[rows, _START] = np.asarray(starts, np.int64)[index[rows]]
            fields[rows, _SIZE] = np.asarray(sizes, np.int64)[index[rows]]
        fields[kind == FIELD_IO, _SLOT] = index[kind == FIELD_IO]
        address = kind != FIELD_VALUE
        if (fields[address, _VALUE] > fields[address, _SIZE]).any():
            raise InvalidModelError("artifact metadata is invalid: a launch field points past the end of its buffer")
        return launches, fields


def _index(i, n: int) -> int:
    if not isinstance(i, int) or not 0 <= i < n:
        raise ValueError(f"launch table index {i!r} is not below {n}")
    return i


def _expr(e, k: int, symbols: set[str]):
    """Size expression k: a dim over `symbols`, or (op, i, j) of the values of expressions i, j < k."""
    if isinstance(e, str):
        dim = parse_dim(e)
        if isinstance(dim, SymDim) and not set(dim.syms) <= symbols:
            raise ValueError(f"size {e!r} names a dim the inputs do not bind")
        return dim
    op, a, b = e
    if op not in SIZE_OPS:
        raise ValueError(f"unknown size operation {op!r}")
    return op, _index(a, k), _index(b, k)


def _field(f: list, exprs: int, io_slots: int, weights: int, buffers: int) -> list[int]:
    """A field as [kind, index, byte offset], its index checked against what it refers to. Every
    field has three entries, so one that lost an entry is never read as another kind."""
    if not isinstance(f, list) or len(f) != 3:
        raise ValueError(f"launch field {f!r} is not [kind, index, offset]")
    if f[0] == FIELD_VALUE:
        kind, index, offset = FIELD_VALUE, _index(f[1], exprs), 0
    else:
        kind, index, offset = f
        limit = {FIELD_IO: io_slots, FIELD_WEIGHTS: weights, FIELD_ARENA: buffers}[kind]
        _index(index, limit)
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"launch field offset {offset!r} is not a byte offset")
    return [kind, index, offset]
