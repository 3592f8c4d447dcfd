"""Kernels of Unique: the distinct slices found and counted (their number a dim the run binds),
then the four results written.

The input is [outer, n, inner]: slice p along the axis is in[o, p, i], compared lexicographically
in (o, i) order. Both kernels run as one work item and share an int64 scratch of 6n elements:
the sort's ping-pong [0, 2n), each position's group (groups numbered in ascending order) [2n, 3n),
each group's first position [3n, 4n), its size [4n, 5n) and its rank in the output [5n, 6n).
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.dialects import arith, func, llvm
from xdsl.dialects.builtin import i32, i64

from pyflame_rt.dtype import SUB_BYTE_INTS, DType
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder, Signature
from pyflame_rt.targets.cpu.kernels.sorting import merge_sort, ordered_bits, packed_key
from pyflame_rt.targets.cpu.kernels.typed import Typed

UNIQUE_GROUPS_FIELDS = ("in", "work", "count", "n", "outer", "inner")
UNIQUE_WRITE_FIELDS = ("in", "work", "out", "indices", "inverse", "counts", "n", "outer", "inner", "unique")
_GROUP, _FIRST, _SIZE, _RANK = 2, 3, 4, 5  # scratch sections, in units of n


@dataclass(frozen=True)
class UniqueSpec:
    dtype: DType
    sorted: bool
    single: bool  # slices of one element (outer = inner = 1): compared with one load each

    @property
    def name(self) -> str:
        return f"unique_groups_{self.dtype.value}{'_sorted' if self.sorted else ''}{'_single' if self.single else ''}"

    @property
    def packed(self) -> bool:
        """Whether the sort keys are the values and positions packed (single elements of at most
        32 bits): a merge step compares two keys, no loads of the values."""
        return self.single and self.dtype.itemsize <= 4 and self.dtype not in SUB_BYTE_INTS


class _PositionKeys:
    """Sort keys that are the positions; compares read the slices."""

    def __init__(self, kb: KernelBuilder, spec: UniqueSpec):
        self.kb, self.t, self.single = kb, Typed(kb, spec.dtype, 1), spec.single

    def key(self, position):
        return position

    def before(self, x, y):
        return _less(self.kb, self.t, self.single, x, y)

    def position(self, key):
        return key

    def differ(self, earlier, later):
        """Whether sorted neighbours hold different slices."""
        return self.before(earlier, later)


class _PackedKeys(_PositionKeys):
    """Sort keys that are an element's order-preserving 32 bits above its position."""

    def key(self, position):
        kb, t = self.kb, self.t
        v = t.load(kb.fields["in"], position)
        if t.is_float:  # float32, or a narrower float computed in float32
            high = ordered_bits(kb, v)
        else:
            wide = kb.cast(llvm.ZExtOp if t.unsigned else llvm.SExtOp, v, i64) if v.type != i64 else v
            high = kb.trunc(wide if t.unsigned else kb.add(wide, kb.const(1 << 31)), i32)
        return packed_key(kb, high, position)

    def before(self, x, y):
        return self.kb.cmp("ult", x, y)

    def position(self, key):
        return self.kb.and_(key, self.kb.const((1 << 32) - 1))

    def differ(self, earlier, later):
        kb = self.kb
        return kb.cmp("ne", kb._ins(arith.ShRUIOp(earlier, kb.const(32))), kb._ins(arith.ShRUIOp(later, kb.const(32))))


def _section(kb: KernelBuilder, k: int, index):
    return kb.add(kb.mul(kb.const(k), kb.fields["n"]), index)


def _less(kb: KernelBuilder, t: Typed, single: bool, x, y):
    """Whether slice x comes before slice y: at their first unequal element, x's is smaller."""
    f = kb.fields
    if single:
        return t.cmp("lt", t.load(f["in"], x), t.load(f["in"], y))
    n, inner = f["n"], f["inner"]
    with kb.loop(0, f["outer"], carried=[kb.const(0)]) as o:
        base = kb.mul(kb.mul(o.iv, n), inner)
        x_at, y_at = kb.add(base, kb.mul(x, inner)), kb.add(base, kb.mul(y, inner))
        with kb.loop(0, inner, carried=list(o.carried)) as k:
            state = k.carried[0]  # 0: equal so far, 1: x before y, 2: y before x
            a, b = t.load(f["in"], kb.add(x_at, k.iv)), t.load(f["in"], kb.add(y_at, k.iv))
            decided = kb.select(t.cmp("lt", a, b), kb.const(1), kb.select(t.cmp("lt", b, a), kb.const(2), kb.const(0)))
            k.next = [kb.select(kb.cmp("eq", state, kb.const(0)), decided, state)]
        o.next = list(k.results)
    return kb.cmp("eq", o.results[0], kb.const(1))


def unique_groups_kernel(spec: UniqueSpec) -> func.FuncOp:
    """Sort the positions (stable: a group's first position leads it), number the groups in
    ascending order, record each group's first position and size, rank the groups (ascending, or
    by first position), and store their number to count[0]."""
    kb = KernelBuilder(spec.name, Signature.of(UNIQUE_GROUPS_FIELDS, buffers=("in", "work", "count")))
    f, keys = kb.fields, (_PackedKeys if spec.packed else _PositionKeys)(kb, spec)
    work, n, zero, one = f["work"], f["n"], kb.const(0), kb.const(1)
    with kb.loop(0, n) as p:
        kb.store(keys.key(p.iv), work, p.iv, elem=i64)
    at = merge_sort(kb, work, zero, n, n, keys.before)
    with kb.loop(0, n, carried=[zero]) as k:
        groups = k.carried[0]
        key = kb.load(work, kb.add(at, k.iv), elem=i64)
        previous = kb.load(work, kb.add(at, kb.max(kb.sub(k.iv, one), zero)), elem=i64)
        starts = kb.or_(kb.cmp("eq", k.iv, zero), keys.differ(previous, key))
        position = keys.position(key)

        def start_group():
            kb.store(position, work, _section(kb, _FIRST, groups), elem=i64)
            kb.store(zero, work, _section(kb, _SIZE, groups), elem=i64)
            kb.store(groups, work, _section(kb, _RANK, groups), elem=i64)
            return [kb.add(groups, one)]

        groups = kb.if_else(starts, start_group, lambda: [groups])[0]
        group = kb.sub(groups, one)
        kb.store(group, work, _section(kb, _GROUP, position), elem=i64)
        size_at = _section(kb, _SIZE, group)
        kb.store(kb.add(kb.load(work, size_at, elem=i64), one), work, size_at, elem=i64)
        k.next = [groups]
    if not spec.sorted:  # rank by first position: walk the positions, counting the firsts
        with kb.loop(0, n, carried=[zero]) as p:
            group = kb.load(work, _section(kb, _GROUP, p.iv), elem=i64)
            first = kb.cmp("eq", kb.load(work, _section(kb, _FIRST, group), elem=i64), p.iv)
            with kb.if_(first):
                kb.store(p.carried[0], work, _section(kb, _RANK, group), elem=i64)
            p.next = [kb.add(p.carried[0], kb.select(first, one, zero))]
    kb.store(k.results[0], f["count"], zero, elem=i64)
    return kb.finish()


def unique_write_kernel(dtype: DType) -> func.FuncOp:
    """Each group's slice, first position and size at its rank in out / indices / counts; each
    position's group's rank in inverse."""
    kb = KernelBuilder(f"unique_write_{dtype.value}", Signature.of(
        UNIQUE_WRITE_FIELDS, buffers=("in", "work", "out", "indices", "inverse", "counts")))
    f, t = kb.fields, Typed(kb, dtype, 1)
    work, n, inner, unique = f["work"], f["n"], f["inner"], f["unique"]
    with kb.loop(0, unique) as g:
        rank = kb.load(work, _section(kb, _RANK, g.iv), elem=i64)
        first = kb.load(work, _section(kb, _FIRST, g.iv), elem=i64)
        kb.store(first, f["indices"], rank, elem=i64)
        kb.store(kb.load(work, _section(kb, _SIZE, g.iv), elem=i64), f["counts"], rank, elem=i64)
        with kb.loop(0, kb.mul(f["outer"], inner)) as k:
            o, i = kb.div(k.iv, inner), kb.rem(k.iv, inner)
            src = kb.add(kb.mul(kb.add(kb.mul(o, n), first), inner), i)
            dst = kb.add(kb.mul(kb.add(kb.mul(o, unique), rank), inner), i)
            t.store(t.load(f["in"], src), f["out"], dst)
    with kb.loop(0, n) as p:
        group = kb.load(work, _section(kb, _GROUP, p.iv), elem=i64)
        kb.store(kb.load(work, _section(kb, _RANK, group), elem=i64), f["inverse"], p.iv, elem=i64)
    return kb.finish()
