"""Converters for the sequence and optional operators (values: importers/onnx/structured.py).

Positions known at import edit the element list. A position computed at run time indexes the
stacked elements: SequenceAt gathers the element (Gather's own rules: negative positions count
from the back, one out of range fails its run-time index check with an InputError); Insert and
Erase normalize the position by a Gather over the positions, which checks its range the same
way, and gather the reordered stack (an insert into a ragged input's elements reorders their
shape rows and their values alike: `_insert_order`).
"""
from __future__ import annotations

import numpy as np
import onnx
from xdsl.ir import SSAValue

from pyflame_rt.dialects import graph, graph_math as gm, graph_nn as nn, graph_reduce as gr, graph_tensor as gt
from pyflame_rt.dialects.assumptions import require_same_shape, require_sum
from pyflame_rt.dialects.symbolic import SymDim, dim_add, dim_mul, numel
from pyflame_rt.dtype import DType
from pyflame_rt.errors import InvalidModelError
from pyflame_rt.importers.onnx import shape_values
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.structured import Appended, OptionalValue, Ragged, SequenceValue, SplitPieces


def _sequence(ctx: _NodeContext, i: int, appending: bool = False) -> SequenceValue:
    """Input i, a sequence; one a run-time loop carries is only appended to in its body."""
    seq = ctx.structured(i)
    if not isinstance(seq, SequenceValue):
        raise InvalidModelError(f"{ctx.node.op_type} node '{ctx.node.name or ctx.node.output[0]}': input {i} "
                                f"is not a sequence")
    if seq.appended is not None and not appending:
        raise ctx.fail(f"the body of a loop run at run time can only append to the sequence it carries "
                       f"('{seq.appended.carried}'): SequenceInsert at the back")
    return seq


def _count(seq: SequenceValue, ctx: _NodeContext):
    if seq.ragged is not None:
        return ctx.shape(seq.ragged.shapes)[0]
    if seq.pieces is not None:
        _known_bounds(ctx, seq.pieces)
        return len(seq.pieces.bounds) - 1
    return len(seq.elements) if seq.elements is not None else ctx.shape(seq.stacked)[0]


def _constant(ctx: _NodeContext, arr: np.ndarray) -> SSAValue:
    return ctx.importer.add_constant(f"{ctx.node.output[0]}_const", arr)


def _not_ragged(ctx: _NodeContext, seq: SequenceValue) -> None:
    if seq.ragged is not None:
        raise ctx.fail("the elements of a sequence input whose type gives no element shape can only be passed "
                       "on, inserted into or counted")


def _stacked(ctx: _NodeContext, seq: SequenceValue) -> SSAValue:
    """The elements as one tensor [count, ...]; they must share a shape."""
    _not_ragged(ctx, seq)
    if seq.stacked is not None:
        return seq.stacked
    seq = SequenceValue(seq.dtype, elements=_elements(ctx, seq))
    if not seq.elements:
        raise ctx.fail("indexing an empty sequence at a run-time position")
    first = ctx.shape(seq.elements[0])
    for e in seq.elements[1:]:
        if len(ctx.shape(e)) != len(first) or any(isinstance(a, int) and isinstance(b, int) and a != b
                                                  for a, b in zip(ctx.shape(e), first)):
            raise ctx.fail(f"a run-time position into a sequence whose elements differ in shape "
                           f"({[list(ctx.shape(x)) for x in seq.elements]}) is not supported")
        require_same_shape(ctx.shape(e), first, "sequence elements indexed at a run-time position")
    parts = [ctx.emit(nn.UnsqueezeOp, [e], axes=[0])[0] for e in seq.elements]
    return parts[0] if len(parts) == 1 else ctx.emit(nn.ConcatOp, parts, axis=0)[0]


def _elements(ctx: _NodeContext, seq: SequenceValue) -> tuple[SSAValue, ...]:
    """The elements one by one; the count must be known at import."""
    _not_ragged(ctx, seq)
    if seq.elements is not None:
        return seq.elements
    if seq.pieces is not None:
        return tuple(_piece(ctx, seq.pieces, i) for i in range(len(seq.pieces.bounds) - 1))
    count = _count(seq, ctx)
    if not isinstance(count, int):
        raise ctx.fail(f"this needs the sequence's element count at compile time; it is {count}")
    return tuple(ctx.emit(gt.GatherOp, [seq.stacked, _constant(ctx, np.array(i, np.int64))], axis=0)[0]
                 for i in range(count))


def _known_bounds(ctx: _NodeContext, pieces: SplitPieces) -> None:
    if pieces.bounds is None:
        raise ctx.fail("the pieces of a split at a size computed at run time can only be a model output: "
                       "their count is known only at run time")


def _piece(ctx: _NodeContext, pieces: SplitPieces, i: int) -> SSAValue:
    _known_bounds(ctx, pieces)
    start, end = pieces.bounds[i], pieces.bounds[i + 1]
    return ctx.emit(nn.SliceOp, [pieces.input], starts=[start], ends=[end], axes=[pieces.axis], steps=[1])[0]


def _static_position(ctx: _NodeContext, i: int, count: int, extra: int) -> int | None:
    """A position input known at import, normalized (positions -count..count-1+extra), or None."""
    pos = ctx.const_input(i)
    if pos is None:
        return None
    p = int(np.asarray(pos).reshape(-1)[0])
    if not -count <= p < count + extra:
        raise InvalidModelError(f"{ctx.node.op_type} node '{ctx.node.name or ctx.node.output[0]}': position {p} is "
                                f"out of range for a sequence of {count} element(s)")
    return p + count if p < 0 else p


def _int64(ctx: _NodeContext, v: SSAValue) -> SSAValue:
    return ctx.emit(gm.CastOp, [v], to=DType.INT64.value)[0] if graph.dtype_of(v.type) != DType.INT64 else v


def _scalar_int64(ctx: _NodeContext, i: int) -> SSAValue:
    pos = _int64(ctx, ctx.input(i))
    if ctx.shape(pos) != ():
        (pos,) = ctx.emit(graph.ReshapeOp, [pos], shape=[])
    return pos


def _erase_position(ctx: _NodeContext, i: int, count: int) -> SSAValue:
    """Position input i (-count..count-1) as 0..count-1: Gather over the positions checks its range."""
    return ctx.emit(gt.GatherOp, [_positions(ctx, count), _scalar_int64(ctx, i)], axis=0)[0]


def _insert_position(ctx: _NodeContext, i: int, count) -> SSAValue:
    """Position input i (-count..count) as 0..count: a negative one counts from the back, and one still
    negative is made an index past the positions so that the Gather over them refuses it."""
    pos, n, zero = _scalar_int64(ctx, i), _dim_value(ctx, count, "count"), _int(ctx, 0)
    (negative,) = ctx.emit(gm.LessOp, [pos, zero])
    (wrapped,) = ctx.emit(graph.AddOp, [pos, n])
    (pos,) = ctx.emit(gm.WhereOp, [negative, wrapped, pos])
    (negative,) = ctx.emit(gm.LessOp, [pos, zero])
    (pos,) = ctx.emit(gm.WhereOp, [negative, _dim_value(ctx, dim_add(count, 1), "past"), pos])
    return ctx.emit(gt.GatherOp, [_positions(ctx, dim_add(count, 1)), pos], axis=0)[0]


def _insert_order(ctx: _NodeContext, at: SSAValue, start: SSAValue, length: SSAValue, old: SSAValue) -> SSAValue:
    """Where each item `at` of the result of inserting `length` items at `start` into `old` items is in
    those items followed by the inserted ones."""
    (end,) = ctx.emit(graph.AddOp, [start, length])
    (offset,) = ctx.emit(graph.SubOp, [old, start])
    (inserted,) = ctx.emit(graph.AddOp, [at, offset])
    (after,) = ctx.emit(graph.SubOp, [at, length])
    (in_block,) = ctx.emit(gm.LessOp, [at, end])
    (index,) = ctx.emit(gm.WhereOp, [in_block, inserted, after])
    (before,) = ctx.emit(gm.LessOp, [at, start])
    return ctx.emit(gm.WhereOp, [before, at, index])[0]


def _int(ctx: _NodeContext, v: int) -> SSAValue:
    return _constant(ctx, np.array(v, np.int64))


def _dim_value(ctx: _NodeContext, d, what: str) -> SSAValue:
    """An int64 scalar of the dim d (a constant when static)."""
    name = f"{ctx.node.output[0]}_{what}"
    ctx.importer.known[name] = shape_values.Known(np.array(d, object), DType.INT64)
    return ctx.importer.value(name)


def _positions(ctx: _NodeContext, size) -> SSAValue:
    """0, 1, ..., size - 1 (int64)."""
    if isinstance(size, int):
        return _constant(ctx, np.arange(size, dtype=np.int64))
    return ctx.emit(gt.RangeOp, [], start=0, delta=1, size=size, dtype=DType.INT64.value)[0]


def _known_count(ctx: _NodeContext, seq: SequenceValue) -> int:
    _not_ragged(ctx, seq)
    count = _count(seq, ctx)
    if not isinstance(count, int):
        raise ctx.fail(f"a run-time position needs the sequence's element count at compile time; it is {count}")
    return count


@converter("SequenceEmpty")
def _sequence_empty(ctx: _NodeContext):
    return [SequenceValue(DType.from_onnx(int(ctx.attrs.get("dtype", onnx.TensorProto.FLOAT))), elements=())]


@converter("SequenceConstruct")
def _sequence_construct(ctx: _NodeContext):
    elements = tuple(ctx.input(i) for i in range(len(ctx.node.input)))
    return [SequenceValue(graph.dtype_of(elements[0].type), elements=elements)]


@converter("SequenceLength")
def _sequence_length(ctx: _NodeContext):
    name = ctx.node.output[0]
    ctx.importer.known[name] = shape_values.Known(np.array(_count(_sequence(ctx, 0), ctx), object), DType.INT64)
    return [ctx.importer.value(name)]


@converter("SequenceAt")
def _sequence_at(ctx: _NodeContext):
    seq = _sequence(ctx, 0)
    _not_ragged(ctx, seq)
    if seq.stacked is None:
        p = _static_position(ctx, 1, _count(seq, ctx), 0)
        if p is not None:
            return [_piece(ctx, seq.pieces, p) if seq.pieces is not None else _elements(ctx, seq)[p]]
    return ctx.emit(gt.GatherOp, [_stacked(ctx, seq), _scalar_int64(ctx, 1)], axis=0)


@converter("SequenceErase")
def _sequence_erase(ctx: _NodeContext):
    seq = _sequence(ctx, 0)
    count = _known_count(ctx, seq)
    if count == 0:
        raise InvalidModelError(f"SequenceErase node '{ctx.node.name or ctx.node.output[0]}': the sequence is empty")
    p = count - 1 if ctx.input(1) is None else _static_position(ctx, 1, count, 0)
    if p is not None:
        elements = _elements(ctx, seq)
        return [SequenceValue(seq.dtype, elements=elements[:p] + elements[p + 1:])]
    pos = _erase_position(ctx, 1, count)
    kept = _positions(ctx, count - 1)
    after = _constant(ctx, np.arange(1, count, dtype=np.int64))
    (before,) = ctx.emit(gm.LessOp, [kept, pos])
    (index,) = ctx.emit(gm.WhereOp, [before, kept, after])
    return [SequenceValue(seq.dtype, stacked=ctx.emit(gt.GatherOp, [_stacked(ctx, seq), index], axis=0)[0])]


@converter("SequenceInsert")
def _sequence_insert(ctx: _NodeContext):
    seq, tensor = _sequence(ctx, 0, appending=ctx.input(2) is None), ctx.input(1)
    if ctx.input(2) is None:  # at the back
        if seq.appended is not None:
            if graph.dtype_of(tensor.type) != seq.dtype:
                raise InvalidModelError(f"SequenceInsert node '{ctx.node.name or ctx.node.output[0]}': a "
                                        f"{graph.dtype_of(tensor.type).value} tensor inserted into a sequence of "
                                        f"{seq.dtype.value}")
            appended = Appended(seq.appended.carried, (*seq.appended.elements, tensor))
            return [SequenceValue(seq.dtype, appended=appended)]
        if seq.ragged is not None:
            return [_append_ragged(ctx, seq, tensor)]
        if seq.stacked is None:
            return [SequenceValue(seq.dtype, elements=(*_elements(ctx, seq), tensor))]
        (row,) = ctx.emit(nn.UnsqueezeOp, [tensor], axes=[0])
        return [SequenceValue(seq.dtype, stacked=ctx.emit(nn.ConcatOp, [seq.stacked, row], axis=0)[0])]
    if seq.ragged is not None:
        return [_insert_ragged(ctx, seq, tensor)]
    count = _known_count(ctx, seq)
    p = _static_position(ctx, 2, count, 1)
    if p is not None:
        elements = _elements(ctx, seq)
        return [SequenceValue(seq.dtype, elements=(*elements[:p], tensor, *elements[p:]))]
    pos = _insert_position(ctx, 2, count)
    stacked = _stacked(ctx, SequenceValue(seq.dtype, elements=(*_elements(ctx, seq), tensor)))
    index = _insert_order(ctx, _positions(ctx, count + 1), pos, _int(ctx, 1), _int(ctx, count))
    return [SequenceValue(seq.dtype, stacked=ctx.emit(gt.GatherOp, [stacked, index], axis=0)[0])]


def _insert_ragged(ctx: _NodeContext, seq: SequenceValue, tensor: SSAValue) -> SequenceValue:
    """Appended, then the new shape row moved to the position, and the new values to the offset of the
    element there (the sum of the sizes of the elements before it)."""
    count, total = ctx.shape(seq.ragged.shapes)[0], ctx.shape(seq.ragged.values)[0]
    size = numel(ctx.shape(tensor))
    pos = _insert_position(ctx, 2, count)
    appended = _append_ragged(ctx, seq, tensor).ragged
    rows = _insert_order(ctx, _positions(ctx, dim_add(count, 1)), pos, _int(ctx, 1), _dim_value(ctx, count, "rows"))
    (shapes,) = ctx.emit(gt.GatherOp, [appended.shapes, rows], axis=0)
    (sizes,) = ctx.emit(gr.ReduceOp, [seq.ragged.shapes], kind="prod", axes=[1], keepdims=False)
    (before,) = ctx.emit(gm.LessOp, [_positions(ctx, count), pos])
    (sizes,) = ctx.emit(gm.WhereOp, [before, sizes, _int(ctx, 0)])
    (offset,) = ctx.emit(gr.ReduceOp, [sizes], kind="sum", axes=[0], keepdims=False)
    at = _positions(ctx, dim_add(total, size))
    order = _insert_order(ctx, at, offset, _dim_value(ctx, size, "size"), _dim_value(ctx, total, "total"))
    (values,) = ctx.emit(gt.GatherOp, [appended.values, order], axis=0)
    return SequenceValue(seq.dtype, ragged=Ragged(values, shapes))


def _append_ragged(ctx: _NodeContext, seq: SequenceValue, tensor: SSAValue) -> SequenceValue:
    """The tensor's values after the others, its shape a row after theirs (of their rank: checked)."""
    rank = ctx.shape(seq.ragged.shapes)[1]
    if isinstance(rank, SymDim):  # a ragged input's: an empty feed of it is given this rank
        ctx.importer.ragged_ranks.setdefault(str(rank), len(ctx.shape(tensor)))
    (flat,) = ctx.emit(graph.ReshapeOp, [tensor], shape=[-1])
    (values,) = ctx.emit(nn.ConcatOp, [seq.ragged.values, flat], axis=0)
    row = f"{ctx.node.output[0]}_shape"
    ctx.importer.known[row] = shape_values.Known(np.array([ctx.shape(tensor)], object), DType.INT64)
    row = ctx.importer.value(row)
    (shapes,) = ctx.emit(nn.ConcatOp, [seq.ragged.shapes, row], axis=0)
    return SequenceValue(seq.dtype, ragged=Ragged(values, shapes))


@converter("ConcatFromSequence")
def _concat_from_sequence(ctx: _NodeContext):
    seq = _sequence(ctx, 0)
    axis, new_axis = int(ctx.attrs["axis"]), int(ctx.attrs.get("new_axis", 0))
    if seq.stacked is not None:  # the count axis moved to `axis`, merged with the element axis there
        shape = ctx.shape(seq.stacked)
        a = axis % (len(shape) if new_axis else len(shape) - 1)
        perm = [*range(1, a + 1), 0, *range(a + 1, len(shape))]
        (out,) = ctx.emit(nn.TransposeOp, [seq.stacked], perm=perm) if perm != sorted(perm) else \
            ctx.emit(graph.IdentityOp, [seq.stacked])
        if new_axis:
            return [out]
        moved = ctx.shape(out)
        return ctx.emit(graph.ReshapeOp, [out], shape=[*moved[:a], dim_mul(moved[a], moved[a + 1]), *moved[a + 2:]])
    elements = _elements(ctx, seq)
    if not elements:
        raise InvalidModelError(f"ConcatFromSequence node '{ctx.node.name or ctx.node.output[0]}': the sequence "
                                f"is empty")
    if new_axis:
        rank = len(ctx.shape(elements[0])) + 1
        elements = tuple(ctx.emit(nn.UnsqueezeOp, [e], axes=[axis % rank])[0] for e in elements)
    if len(elements) == 1:
        return ctx.emit(graph.IdentityOp, [elements[0]])
    return ctx.emit(nn.ConcatOp, list(elements), axis=axis)


@converter("SplitToSequence")
def _split_to_sequence(ctx: _NodeContext):
    x = ctx.input(0)
    shape = ctx.shape(x)
    axis = int(ctx.attrs.get("axis", 0)) % len(shape)
    dtype = graph.dtype_of(x.type)
    if ctx.input(1) is None:  # pieces of 1, the axis kept or removed: x with the axis in front is the stack
        perm = [axis, *(i for i in range(len(shape)) if i != axis)]
        stacked = ctx.emit(nn.TransposeOp, [x], perm=perm)[0] if axis else x
        if int(ctx.attrs.get("keepdims", 1)):
            (stacked,) = ctx.emit(nn.UnsqueezeOp, [stacked], axes=[axis + 1])
        return [SequenceValue(dtype, stacked=stacked)]
    split = ctx.sym_input(1)
    if split is None and ctx.shape(ctx.input(1)) == ():
        if not isinstance(shape[axis], int):
            raise ctx.fail("a split size computed at run time needs a static axis")
        return [SequenceValue(dtype, pieces=SplitPieces(x, axis, None, _chunk_sizes(ctx, shape[axis])))]
    split = split or ctx.dims_input(1)
    if split is None:
        raise ctx.fail("the split sizes must be known at compile time, or be a graph input of static size")
    sizes = list(split.values.flat)
    if split.values.ndim == 0:  # pieces of that size, the last one smaller
        (size,) = sizes
        if not isinstance(shape[axis], int) or isinstance(size, SymDim):
            raise ctx.fail("a scalar split of a dynamic axis gives a run-time count")
        size = int(size)
        if size <= 0:
            raise InvalidModelError(f"SplitToSequence node '{ctx.node.name or ctx.node.output[0]}': split {size} "
                                    f"is not positive")
        sizes = [min(size, shape[axis] - s) for s in range(0, shape[axis], size)]
    starts = [0]
    for s in sizes:
        starts.append(dim_add(starts[-1], s))
    require_sum(sizes, shape[axis], f"SplitToSequence sizes {sizes} do not add up to axis {axis}")
    if all(isinstance(b, int) for b in starts):
        return [SequenceValue(dtype, elements=tuple(
            ctx.emit(nn.SliceOp, [x], starts=[b], ends=[e], axes=[axis], steps=[1])[0]
            for b, e in zip(starts, starts[1:])))]
    # sliced where an element is used: a slice from a run-time start has no symbolic size
    return [SequenceValue(dtype, pieces=SplitPieces(x, axis, tuple(starts), _int64(ctx, ctx.input(1))))]


def _chunk_sizes(ctx: _NodeContext, length: int) -> SSAValue:
    """The sizes of the pieces of `length` of the run-time scalar size input 1 (checked >= 1 by a Gather
    that fails otherwise), one per position, 0 past the last piece."""
    size = _scalar_int64(ctx, 1)
    (small,) = ctx.emit(gm.LessOp, [size, _int(ctx, 1)])
    (index,) = ctx.emit(gm.WhereOp, [small, _int(ctx, 1), _int(ctx, 0)])
    (zero,) = ctx.emit(gt.GatherOp, [_constant(ctx, np.zeros(1, np.int64)), index], axis=0)
    (size,) = ctx.emit(graph.AddOp, [size, zero])
    (starts,) = ctx.emit(graph.MulOp, [_positions(ctx, length), size])
    (left,) = ctx.emit(graph.SubOp, [_int(ctx, length), starts])
    (left,) = ctx.emit(gm.MaxOp, [left, _int(ctx, 0)])
    return ctx.emit(gm.MinOp, [left, size])[0]


@converter("Optional")
def _optional(ctx: _NodeContext):
    value = ctx.structured(0) or ctx.input(0)
    t = ctx.attrs.get("type")
    if t is None and value is None:
        raise InvalidModelError(f"Optional node '{ctx.node.name or ctx.node.output[0]}': without an input it "
                                f"needs its type attribute")
    return [OptionalValue(value, t if t is not None else _type_of(value))]


def _type_of(value) -> onnx.TypeProto:
    if isinstance(value, SequenceValue):
        return onnx.helper.make_sequence_type_proto(onnx.helper.make_tensor_type_proto(value.dtype.onnx, None))
    return onnx.helper.make_tensor_type_proto(graph.dtype_of(value.type).onnx, None)


@converter("OptionalHasElement")
def _optional_has_element(ctx: _NodeContext):
    opt = ctx.structured(0)
    if isinstance(opt, OptionalValue):
        if opt.flag is not None:
            return ctx.emit(graph.IdentityOp, [opt.flag])
        present = opt.element is not None
    else:  # a tensor or sequence holds an element; no input: empty
        present = opt is not None or ctx.input(0) is not None
    return [ctx.importer.add_constant(ctx.node.output[0], np.array(present))]


@converter("OptionalGetElement")
def _optional_get_element(ctx: _NodeContext):
    opt = ctx.structured(0)
    if not isinstance(opt, OptionalValue):
        return [opt] if opt is not None else ctx.emit(graph.IdentityOp, [ctx.input(0)])
    if opt.element is None:
        raise InvalidModelError(f"OptionalGetElement node '{ctx.node.name or ctx.node.output[0]}': the optional is "
                                f"always empty")
    if opt.source is not None:
        ctx.importer.unwrapped.add(opt.source)
    return [opt.element]
