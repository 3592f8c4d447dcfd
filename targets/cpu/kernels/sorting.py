"""Sorting inside a kernel: a stable bottom-up merge sort of int64 keys (O(n log n) compares), a
binary min-heap of unique int64 keys (unsigned order) for taking the smallest few of many, and the
order-preserving integer image of a float that packs a value and its position into one key."""
from __future__ import annotations

from typing import Callable

from xdsl.dialects import arith, llvm
from xdsl.dialects.builtin import IntegerType, f32, i32, i64
from xdsl.ir import SSAValue

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder

# merge passes of widths 1, 2, 4, ...: enough for any count below 2**62
_MAX_PASSES = 62


def merge_sort(kb: KernelBuilder, buf: SSAValue, keys: SSAValue, spare: SSAValue, count: SSAValue,
               before: Callable[[SSAValue, SSAValue], SSAValue]) -> SSAValue:
    """Sort the `count` int64 keys at buf[keys:] so that `before(x, y)` (i1) puts x before y, keys
    neither before the other keeping their order; buf[spare:] (`count` keys) is the other half of
    the ping-pong. Returns the offset (keys or spare) of the sorted keys."""
    zero, one = kb.const(0), kb.const(1)
    with kb.loop(0, _MAX_PASSES, carried=[keys, spare, one]) as p:
        src, dst, width = p.carried

        def merge_pass():
            with kb.loop(0, count, kb.add(width, width)) as run:
                lo = run.iv
                mid, hi = kb.min(kb.add(lo, width), count), kb.min(kb.add(kb.add(lo, width), width), count)
                last = kb.sub(hi, one)
                with kb.loop(lo, hi, carried=[lo, mid]) as k:
                    i, j = k.carried
                    left = kb.load(buf, kb.add(src, kb.min(i, last)), elem=i64)
                    right = kb.load(buf, kb.add(src, kb.min(j, last)), elem=i64)
                    right_first = kb.or_(kb.cmp("sge", i, mid),
                                         kb.and_(kb.cmp("slt", j, hi), before(right, left)))
                    kb.store(kb.select(right_first, right, left), buf, kb.add(dst, k.iv), elem=i64)
                    took = kb.select(right_first, one, zero)
                    k.next = [kb.add(i, kb.sub(one, took)), kb.add(j, took)]
            return [dst, src]

        swapped = kb.if_else(kb.cmp("slt", width, count), merge_pass, lambda: [src, dst])
        p.next = [*swapped, kb.add(width, width)]
    return p.results[0]


def heapify(kb: KernelBuilder, buf: SSAValue, at: SSAValue, count: SSAValue) -> None:
    """Make the `count` keys at buf[at:] a min-heap (O(count))."""
    half = kb.div(count, kb.const(2))
    with kb.loop(0, half) as k:
        _sift_down(kb, buf, at, kb.sub(kb.sub(half, kb.const(1)), k.iv), count)


def pop_min(kb: KernelBuilder, buf: SSAValue, at: SSAValue, count: SSAValue) -> SSAValue:
    """The smallest key of the heap of `count` > 0 keys at buf[at:], removed: the last key takes
    the root and sifts down in the `count - 1` left."""
    smallest = kb.load(buf, at, elem=i64)
    rest = kb.sub(count, kb.const(1))
    kb.store(kb.load(buf, kb.add(at, rest), elem=i64), buf, at, elem=i64)
    _sift_down(kb, buf, at, kb.const(0), rest)
    return smallest


def _sift_down(kb: KernelBuilder, buf: SSAValue, at: SSAValue, start: SSAValue, size: SSAValue) -> None:
    """Move the key at heap position `start` down until no child is smaller: at most as many steps
    as `size` has bits; a position of `size` marks the key settled."""
    one = kb.const(1)
    levels = kb.sub(kb.const(64), kb.intrinsic("llvm.ctlz", size, kb.const(0, IntegerType(1)), result_type=i64,
                                               overloads=[i64]))
    with kb.loop(0, levels, carried=[start]) as level:
        position = level.carried[0]
        left = kb.add(kb.add(position, position), one)

        def step():
            right = kb.add(left, one)
            left_key = kb.load(buf, kb.add(at, left), elem=i64)
            right_key = kb.load(buf, kb.add(at, kb.min(right, kb.sub(size, one))), elem=i64)
            take_right = kb.and_(kb.cmp("slt", right, size), kb.cmp("ult", right_key, left_key))
            child, child_key = kb.select(take_right, right, left), kb.select(take_right, right_key, left_key)
            key = kb.load(buf, kb.add(at, position), elem=i64)
            swap = kb.cmp("ult", child_key, key)
            with kb.if_(swap):
                kb.store(child_key, buf, kb.add(at, position), elem=i64)
                kb.store(key, buf, kb.add(at, child), elem=i64)
            return [kb.select(swap, child, size)]

        level.next = kb.if_else(kb.cmp("slt", left, size), step, lambda: [position])


def ordered_bits(kb: KernelBuilder, value: SSAValue) -> SSAValue:
    """An i32 whose unsigned order is the order of the float32 `value` (-0 counted as +0): the
    sign bit flipped for positive floats, every bit for negative ones."""
    bits = kb.cast(llvm.BitcastOp, kb.fadd(value, kb.vconst(0.0, f32)), i32)
    negative = kb.cmp("slt", bits, kb.const(0, i32))
    return kb.select(negative, kb._ins(arith.XOrIOp(bits, kb.const(-1, i32))),
                     kb._ins(arith.XOrIOp(bits, kb.const(-(1 << 31), i32))))


def packed_key(kb: KernelBuilder, high: SSAValue, index: SSAValue) -> SSAValue:
    """(high as unsigned 32 bits) << 32 | index: unsigned order is high's, then the index's."""
    return kb.or_(kb._ins(arith.ShLIOp(kb.cast(llvm.ZExtOp, high, i64), kb.const(32))), index)
