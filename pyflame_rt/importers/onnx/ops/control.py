"""If, Loop and Scan: their subgraphs converted in place (`ONNXImporter.inline_graph`).

An If whose condition is known at import becomes its branch; one whose condition is known only
at run time a graph.if (dialects/graph_control.py), each branch converted into a region of its
own (the branches agree on every output's element type and rank; where their dims differ, the
results' are bound before the If from the branch it takes), also inside a loop's body. A
Scan, and a Loop whose trip count and condition are known at import
(the iteration number is known in each copy, so shape arithmetic over it folds), are unrolled:
the body is converted once per iteration, each copy bound to the previous one's loop-carried
values, and the per-iteration scan outputs are stacked along their axis. A Loop whose trip count
or condition is known only at run time becomes a graph.loop (dialects/graph_control.py): its
trip count a dim bound from its value, its body converted once into the op's region; so does a
Scan over a dynamic axis.

Sequences and optionals cross these boundaries (importers/onnx/structured.py): a run-time If yields
their tensors and rebuilds them; a run-time Loop carries a sequence its body only appends to (one
element per iteration, stacked like a scan output). SequenceMap is unrolled over a count known at
import, else a graph.loop over the stacked elements.
"""
from __future__ import annotations

from contextlib import contextmanager
from math import prod
from typing import Callable, Iterator

import numpy as np
import onnx
from xdsl.builder import Builder
from xdsl.ir import Block, Region
from xdsl.rewriter import InsertPoint

from pyflame_rt.dialects import graph, graph_nn as nn, graph_tensor as gt
from pyflame_rt.dialects.assumptions import require_equal, require_same_shape
from pyflame_rt.dialects.graph_control import IfOp, LoopOp, YieldOp
from pyflame_rt.dialects.symbolic import parse_dim
from pyflame_rt.dtype import DType
from pyflame_rt.errors import InvalidModelError, UnsupportedOperatorError
from pyflame_rt.importers.onnx.converters import _NodeContext, converter
from pyflame_rt.importers.onnx.ops import sequence as seq_ops
from pyflame_rt.importers.onnx.run_time_shapes import ShapeArithmetic
from pyflame_rt.importers.onnx.shape_values import Known
from pyflame_rt.importers.onnx.structured import Appended, OptionalValue, SequenceValue

# body nodes an unrolled Loop or Scan may convert in total: bounds the compile time and the
# program size of a loop with many iterations (and of a Loop whose condition never turns false)
MAX_UNROLLED_NODES = 4096


def _scope(ctx: _NodeContext, part) -> str:
    return f"{ctx.node.name or ctx.node.output[0]}/{part}"


def _check_budget(ctx: _NodeContext, iterations: int, body: onnx.GraphProto) -> None:
    if iterations * max(len(body.node), 1) > MAX_UNROLLED_NODES:
        raise ctx.fail(f"unrolling {iterations} iterations of a {len(body.node)}-node body exceeds "
                       f"{MAX_UNROLLED_NODES} nodes (loops are unrolled at compile time)")


def _known_flag(ctx: _NodeContext, i: int, what: str) -> bool:
    known = ctx.sym_input(i)
    if known is None or not known.is_static:
        raise ctx.fail(f"the {what} must be known at compile time (a constant or computed from input shapes)")
    if known.values.size != 1:
        raise ctx.fail(f"the {what} has {known.values.size} elements, not one")
    return bool(known.values.flat[0])


def _malformed(ctx: _NodeContext, why: str) -> InvalidModelError:
    return InvalidModelError(f"{ctx.node.op_type} node '{ctx.node.name or ctx.node.output[0]}': {why}")


def _tensor_inputs(ctx: _NodeContext) -> list:
    """A Scan's inputs; a sequence or optional one is refused."""
    structured = [name for i, name in enumerate(ctx.node.input) if ctx.structured(i) is not None]
    if structured:
        raise ctx.fail(f"inputs {structured} are sequence or optional values: control flow over them is not "
                       f"supported yet")
    return [ctx.input(i) for i in range(len(ctx.node.input))]


def _carried_inputs(ctx: _NodeContext) -> list:
    """A Loop's inputs: tensors, and sequences or optionals as loop-carried values."""
    structured_bounds = [name for i, name in enumerate(ctx.node.input[:2]) if ctx.structured(i) is not None]
    if structured_bounds:
        raise _malformed(ctx, f"its trip count / condition {structured_bounds} are sequence or optional values")
    return [ctx.structured(i) or ctx.input(i) for i in range(len(ctx.node.input))]


def _values(ctx: _NodeContext, outs: list, part: str) -> list:
    """A subgraph's outputs as SSA values, for a region to yield or a loop to stack (where their rank
    shows); values known at import made constants."""
    structured = [k for k, v in enumerate(outs) if isinstance(v, (SequenceValue, OptionalValue))]
    if structured:
        raise ctx.fail(f"outputs {structured} of its {part} subgraph are sequence or optional values where the "
                       f"node takes tensors")
    padded = [k for k, v in enumerate(outs) if v in ctx.importer.rank_padded]
    if padded:
        raise ctx.fail(f"outputs {padded} of its {part} subgraph come from an If whose branches differ in rank")
    return [ctx.importer.materialized(v, f"{_scope(ctx, part)}_{k}") for k, v in enumerate(outs)]


# An If whose branches give the same shape but for leading 1s yields the narrower one padded with
# them (ONNXImporter.rank_padded: the result -> its rank). The padding is invisible to an op that
# broadcasts the result against an operand of at least that rank, and passed on by one that keeps
# its input's shape; any other use (a graph output, a Reshape, a Concat, ...) would show it.
_HIDING_PADDING = frozenset({
    "Add", "Sub", "Mul", "Div", "Pow", "Mod", "Max", "Min", "Sum", "Mean", "Where", "Equal", "Less",
    "LessOrEqual", "Greater", "GreaterOrEqual", "And", "Or", "Xor", "BitwiseAnd", "BitwiseOr", "BitwiseXor"})
_PASSING_PADDING_ON = frozenset({"Identity", "Cast", "CastLike", "Neg", "Abs", "Reciprocal", "Sqrt", "Exp", "Log"})
_TYPE_ONLY_INPUTS = {"CastLike": 1}  # inputs whose shape is not read


def rank_padding(imp, node: onnx.NodeProto) -> int | None:
    """The rank node's input 0 is padded to where the node passes the padding on to its outputs,
    else None; an UnsupportedOperatorError where the padding of an input would show."""
    ranks = [None if _TYPE_ONLY_INPUTS.get(node.op_type) == i else imp.rank_padded.get(imp.values.get(name))
             for i, name in enumerate(node.input)]
    if not any(ranks):
        return None
    if node.op_type in _PASSING_PADDING_ON and not any(ranks[1:]):
        return ranks[0]
    others = [_rank(imp, name) for name, r in zip(node.input, ranks) if name and r is None]
    if node.op_type in _HIDING_PADDING and max(others, default=-1) >= max(r or 0 for r in ranks):
        return None
    raise UnsupportedOperatorError(
        f"{node.op_type} node '{node.name or node.output[0]}': inputs {[n for n, r in zip(node.input, ranks) if r]} "
        f"come from an If whose branches differ in rank, which this node would show (only a broadcast "
        f"against an operand of at least their rank hides it)")


def _rank(imp, name: str) -> int:
    known = imp.known.get(name)
    return known.values.ndim if known is not None else len(imp.shapes[imp.values[name]])


@converter("If")
def _if(ctx: _NodeContext):
    imp = ctx.importer
    then_branch, else_branch = ctx.attrs["then_branch"], ctx.attrs["else_branch"]
    if not len(then_branch.output) == len(else_branch.output) == len(ctx.node.output):
        raise _malformed(ctx, f"{len(ctx.node.output)} outputs, its branches give {len(then_branch.output)} "
                              f"and {len(else_branch.output)}")
    known = ctx.sym_input(0)
    if known is not None and known.is_static:
        taken = _known_flag(ctx, 0, "condition")
        return imp.inline_graph(then_branch if taken else else_branch, {}, _scope(ctx, "then" if taken else "else"))
    cond = ctx.input(0)
    if prod(ctx.shape(cond)) != 1:
        raise ctx.fail(f"the condition has shape {list(ctx.shape(cond))}, not one element")
    (cond,) = ctx.emit(graph.ReshapeOp, [cond], shape=[])
    (then_block, thens), (else_block, elses) = (_branch(ctx, branch, part) for branch, part in
                                                ((then_branch, "then"), (else_branch, "else")))
    then_outs = _branch_values(ctx, then_block, thens, elses, "then")
    else_outs = _branch_values(ctx, else_block, elses, thens, "else")
    _check_branches(ctx, then_outs, else_outs)
    ranks = [max(len(ctx.shape(t)), len(ctx.shape(e))) for t, e in zip(then_outs, else_outs)]
    padded = [len(ctx.shape(t)) != len(ctx.shape(e)) for t, e in zip(then_outs, else_outs)]
    then_outs = [_padded(ctx, then_block, t, rank) for t, rank in zip(then_outs, ranks)]
    else_outs = [_padded(ctx, else_block, e, rank) for e, rank in zip(else_outs, ranks)]
    for block, outs in ((then_block, then_outs), (else_block, else_outs)):
        block.add_op(YieldOp(*outs))
    dims = _selected_dims(ctx, cond, then_outs, else_outs)
    op = IfOp(cond, [t.type if dims is None or t.type == e.type else graph.tensor_type(d, graph.dtype_of(t.type))
                     for t, e, d in zip(then_outs, else_outs, dims or then_outs)],
              Region(then_block), Region(else_block), dims)
    imp.builder.insert(op)
    for r, t, d, p in zip(op.outs, then_outs, dims or then_outs, padded):
        imp.shapes[r] = imp.shapes[t] if dims is None else d
        if p:
            imp.rank_padded[r] = len(imp.shapes[r])
    results = iter(op.outs)
    return [_rebuilt(t, e, results) for t, e in zip(thens, elses)]


def _check_branches(ctx: _NodeContext, thens, elses) -> None:
    """The branches' outputs must agree in element type and, but for leading 1s, in rank."""
    for k, (t, e) in enumerate(zip(thens, elses)):
        narrow, wide = sorted((ctx.shape(t), ctx.shape(e)), key=len)
        if graph.dtype_of(t.type) is not graph.dtype_of(e.type) or any(d != 1 for d in wide[:len(wide) - len(narrow)]):
            raise ctx.fail(f"output {k} is {t.type} in the then branch and {e.type} in the else branch: with a "
                           f"condition known only at run time, the branches must give the same element type and "
                           f"rank (or one the other's shape with leading 1s)")


def _branch(ctx: _NodeContext, branch: onnx.GraphProto, part: str) -> tuple[Block, list]:
    """An If branch converted into a block of its own (not yet ended by its graph.yield), and its outputs."""
    imp = ctx.importer
    block = Block()
    with _converting_into(imp, block):
        outs = imp.inline_graph(branch, {}, _scope(ctx, part))
    return block, outs


def _branch_values(ctx: _NodeContext, block: Block, mine: list, other: list, part: str) -> list:
    """The tensors a branch's block yields for its outputs `mine` (`_branch_tensors`), as values in it."""
    with _converting_into(ctx.importer, block):
        return _values(ctx, [t for v, o in zip(mine, other) for t in _branch_tensors(ctx, v, o)], part)


def _branch_tensors(ctx: _NodeContext, value, other) -> list:
    """The tensors a branch of a run-time If yields for an output `value` (the other branch's: `other`):
    a tensor itself; a sequence its elements (both branches as many, also of those appended to a
    run-time loop's carried sequence) or its stack; an optional its
    presence flag, then its element's tensors, zeros standing in for an element only the other
    branch has (never read: the flag says it is absent)."""
    if isinstance(value, OptionalValue) and isinstance(other, OptionalValue):
        flag = value.flag
        if flag is None:
            flag = ctx.importer.add_constant(f"{ctx.node.output[0]}_has_element", np.array(value.element is not None))
        if value.element is None and other.element is None:
            return [flag]
        element = value.element if value.element is not None else _stand_in(ctx, other.element)
        return [flag, *_branch_tensors(ctx, element, other.element if other.element is not None else element)]
    if isinstance(value, SequenceValue) and isinstance(other, SequenceValue):
        if value.elements is not None and other.elements is not None and len(value.elements) == len(other.elements):
            return list(value.elements)
        if value.stacked is not None and other.stacked is not None:
            return [value.stacked]
        if value.appended is not None and other.appended is not None \
                and value.appended.carried == other.appended.carried \
                and len(value.appended.elements) == len(other.appended.elements):
            return list(value.appended.elements)
        raise ctx.fail("with a condition known only at run time, both branches must give a sequence output as "
                       "many elements known at compile time (or append as many to a loop's carried sequence), "
                       "or both a sequence of a run-time count whose elements share a shape")
    if any(isinstance(v, (SequenceValue, OptionalValue)) for v in (value, other)):
        raise _malformed(ctx, "its branches give an output as different kinds of value (tensor, sequence, optional)")
    return [value]


def _stand_in(ctx: _NodeContext, element):
    """Zeros of the shape of a tensor / sequence `element` of the other branch (static shapes only)."""
    if isinstance(element, SequenceValue):
        if element.elements is not None:
            return SequenceValue(element.dtype, elements=tuple(_stand_in(ctx, e) for e in element.elements))
        if element.stacked is None:
            raise ctx.fail("an optional sequence only one branch of a run-time If fills must have elements of "
                           "one shape")
        return SequenceValue(element.dtype, stacked=_stand_in(ctx, element.stacked))
    shape = ctx.shape(element)
    if not all(isinstance(d, int) for d in shape):
        raise ctx.fail(f"an optional only one branch of a run-time If fills needs a static shape, not {list(shape)}")
    return ctx.importer.add_constant(f"{ctx.node.output[0]}_absent",
                                     np.zeros(shape, graph.dtype_of(element.type).numpy))


def _rebuilt(value, other, results: Iterator):
    """A run-time If's output from its `results` (`_branch_tensors`' tensors of `value` and `other`)."""
    if isinstance(value, OptionalValue):
        flag = next(results)
        some = value if value.element is not None else other
        element = None if some.element is None else _rebuilt(some.element, some.element, results)
        return OptionalValue(element, some.type, flag=flag)
    if isinstance(value, SequenceValue):
        if value.elements is not None:
            return SequenceValue(value.dtype, elements=tuple(next(results) for _ in value.elements))
        if value.appended is not None:
            elements = tuple(next(results) for _ in value.appended.elements)
            return SequenceValue(value.dtype, appended=Appended(value.appended.carried, elements))
        return SequenceValue(value.dtype, stacked=next(results))
    return next(results)


def _padded(ctx: _NodeContext, block: Block, v, rank: int):
    """v with leading 1s up to `rank`, computed in `block`."""
    shape = ctx.shape(v)
    if len(shape) == rank:
        return v
    with _converting_into(ctx.importer, block):
        return ctx.emit(graph.ReshapeOp, [v], shape=[1] * (rank - len(shape)) + list(shape))[0]


def _selected_dims(ctx: _NodeContext, cond, thens, elses) -> list | None:
    """None if the branches' outputs have the same shapes; else the results' dims, those of the
    branch `cond` selects, bound before the If runs (no dim is bound inside a branch, so both
    branches' shapes are known before it)."""
    if all(ctx.shape(t) == ctx.shape(e) for t, e in zip(thens, elses)):
        return None
    sa = ShapeArithmetic(ctx)
    return [sa.bind(sa.where(cond, sa.dims(ctx.shape(t)), sa.dims(ctx.shape(e))), f"{k}_dims")
            if ctx.shape(t) != ctx.shape(e) else ctx.shape(t) for k, (t, e) in enumerate(zip(thens, elses))]


@contextmanager
def _converting_into(imp, block: Block) -> Iterator[None]:
    """The importer builds into `block`, a region's."""
    outer = imp.builder
    imp.builder = Builder(InsertPoint.at_end(block))
    try:
        yield
    finally:
        imp.builder = outer


def _take(ctx: _NodeContext, x, axis: int, i: int):
    """Element i of x along axis (the axis removed)."""
    (s,) = ctx.emit(nn.SliceOp, [x], starts=[i], ends=[i + 1], axes=[axis], steps=[1])
    return ctx.emit(nn.SqueezeOp, [s], axes=[axis])[0]


def _stack(ctx: _NodeContext, values: list, axis: int):
    """values stacked along a new axis."""
    rank = len(ctx.shape(values[0])) + 1
    parts = [ctx.emit(nn.UnsqueezeOp, [v], axes=[axis % rank])[0] for v in values]
    return parts[0] if len(parts) == 1 else ctx.emit(nn.ConcatOp, parts, axis=axis % rank)[0]


def _stack_all(ctx: _NodeContext, per_iteration: list[list], axes, reverse) -> list:
    if per_iteration and not per_iteration[0]:
        raise ctx.fail("a loop of zero iterations with scan outputs: their shape is unknown at compile time")
    return [_stack(ctx, vals[::-1] if r else vals, a) for vals, a, r in zip(per_iteration, axes, reverse)]


@converter("Scan")
def _scan(ctx: _NodeContext):
    body = ctx.attrs["body"]
    m = int(ctx.attrs["num_scan_inputs"])
    inputs = _tensor_inputs(ctx)
    n = len(inputs) - m
    k = len(body.output) - n
    if n < 0 or k < 0 or len(body.input) != n + m or len(ctx.node.output) > n + k:
        raise _malformed(ctx, f"the body's {len(body.input)} inputs and {len(body.output)} outputs do not fit "
                              f"{n} states, {m} scan inputs and {len(ctx.node.output)} outputs")
    xs = inputs[n:]
    in_axes = [int(a) % len(ctx.shape(x)) for a, x in zip(ctx.attrs.get("scan_input_axes", [0] * m), xs)]
    in_reverse = list(ctx.attrs.get("scan_input_directions", [0] * m))
    lengths = {ctx.shape(x)[a] for x, a in zip(xs, in_axes)}
    if len(lengths) != 1:
        raise ctx.fail(f"the scan inputs' lengths {sorted(map(str, lengths))} differ")
    length = lengths.pop()
    if not isinstance(length, int):
        return _run_time_scan(ctx, body, inputs, n, length)
    _check_budget(ctx, length, body)
    carried: list = inputs[:n]
    per_iteration: list[list] = [[] for _ in range(k)]
    for t in range(length):
        slices = [_take(ctx, x, a, length - 1 - t if r else t) for x, a, r in zip(xs, in_axes, in_reverse)]
        outs = ctx.importer.inline_graph(body, dict(zip((i.name for i in body.input), [*carried, *slices])),
                                         _scope(ctx, t))
        carried = outs[:n]
        for j, v in enumerate(_values(ctx, outs[n:], t)):
            per_iteration[j].append(v)
    return [*carried, *_stack_all(ctx, per_iteration, ctx.attrs.get("scan_output_axes", [0] * k),
                                  ctx.attrs.get("scan_output_directions", [0] * k))]


@converter("Loop")
def _loop(ctx: _NodeContext):
    body = ctx.attrs["body"]
    inputs = _carried_inputs(ctx)
    n = len(inputs) - 2
    k = len(body.output) - 1 - n
    if n < 0 or k < 0 or len(body.input) != n + 2 or len(ctx.node.output) > n + k:
        raise _malformed(ctx, f"the body's {len(body.input)} inputs and {len(body.output)} outputs do not fit "
                              f"{n} loop-carried values and {len(ctx.node.output)} outputs")
    trips = ctx.sym_input(0) if inputs[0] is not None else None
    cond = ctx.sym_input(1) if inputs[1] is not None else None
    if ((inputs[0] is None or (trips is not None and trips.is_static))
            and (inputs[1] is None or (cond is not None and cond.is_static))):
        unrolled = _unrolled_loop(ctx, body, inputs, n, k)
        if unrolled is not None:
            return unrolled
    return _run_time_loop(ctx, body, inputs, n, k)


def _unrolled_loop(ctx: _NodeContext, body: onnx.GraphProto, inputs: list, n: int, k: int) -> list | None:
    """The loop unrolled (its trip count and condition are known at import), or None if its body
    computes the condition at run time."""
    trips = max(int(ctx.sym_input(0).values.flat[0]), 0) if inputs[0] is not None else None
    go = _known_flag(ctx, 1, "condition") if inputs[1] is not None else True
    carried: list = inputs[2:]
    per_iteration: list[list] = [[] for _ in range(k)]
    i = 0
    while go and (trips is None or i < trips):
        _check_budget(ctx, i + 1, body)
        bound = [Known(np.array(i, object), DType.INT64), Known(np.array(True, object), DType.BOOL), *carried]
        outs = ctx.importer.inline_graph(body, dict(zip((v.name for v in body.input), bound)), _scope(ctx, i))
        cond = outs[0]
        if not isinstance(cond, Known) or not cond.is_static or cond.values.size != 1:
            return None
        go = bool(cond.values.flat[0])
        carried = outs[1:1 + n]
        for j, v in enumerate(_values(ctx, outs[1 + n:], i)):
            per_iteration[j].append(v)
        i += 1
    return [*carried, *_stack_all(ctx, per_iteration, [0] * k, [0] * k)]


def _run_time_loop(ctx: _NodeContext, body: onnx.GraphProto, inputs: list, n: int, k: int) -> list:
    """A graph.loop: its trip count a dim bound from its value at run time."""
    if inputs[0] is None:
        raise ctx.fail("a loop without a trip count whose condition is computed at run time has no bound: "
                       "give it a trip count")
    trips = ctx.dims_input(0)
    if trips is None or trips.values.size != 1:
        raise ctx.fail("the trip count must be one int64 element computed by the model or fed as an input")
    cond = inputs[1]
    if cond is not None:
        if prod(ctx.shape(cond)) != 1:
            raise ctx.fail(f"the condition has shape {list(ctx.shape(cond))}, not one element")
        (cond,) = ctx.emit(graph.ReshapeOp, [cond], shape=[])
    count = ctx.importer.new_dim(_scope(ctx, "count"))
    carried = inputs[2:]
    optional = [body.input[2 + j].name for j, v in enumerate(carried) if isinstance(v, OptionalValue)]
    if optional:
        raise ctx.fail(f"a loop run at run time cannot carry the optional values {optional}")
    sequences = [j for j, v in enumerate(carried) if isinstance(v, SequenceValue)]
    names = [v.name for v in body.input[2:]]

    def body_inputs(block: Block) -> list:  # a carried sequence: the elements the body appends to it
        args = iter(block.args[2:])
        return [*block.args[:2], *(SequenceValue(v.dtype, appended=Appended(names[j])) if j in sequences
                                   else next(args) for j, v in enumerate(carried))]

    def body_outputs(outs: list) -> list:  # the element appended to a carried sequence: a scan output
        leaving = outs[1:1 + n]
        for j in sequences:
            seq = leaving[j]
            if not (isinstance(seq, SequenceValue) and seq.appended is not None
                    and seq.appended.carried == names[j] and len(seq.appended.elements) == 1):
                raise ctx.fail(f"the body of a loop run at run time must append exactly one element to the "
                               f"sequence '{names[j]}' it carries (SequenceInsert at the back)")
        return [outs[0], *(v for j, v in enumerate(leaving) if j not in sequences), *outs[1 + n:],
                *(leaving[j].appended.elements[0] for j in sequences)]

    results = _graph_loop(ctx, body, cond, [v for j, v in enumerate(carried) if j not in sequences],
                          trips.values.flat[0], count, body_inputs, body_outputs)
    tensors = iter(results[:n - len(sequences)])
    appended = iter(results[n - len(sequences) + k:])
    return [*(_sequence_after(ctx, v, next(appended)) if j in sequences else next(tensors)
              for j, v in enumerate(carried)), *results[n - len(sequences):n - len(sequences) + k]]


def _sequence_after(ctx: _NodeContext, initial: SequenceValue, stack) -> SequenceValue:
    """The elements of `initial` followed by the `stack`ed ones a run-time loop appended."""
    if initial.elements == ():
        return SequenceValue(initial.dtype, stacked=stack)
    if initial.elements is not None:
        first = _stack(ctx, list(initial.elements), 0)
    elif initial.stacked is not None:
        first = initial.stacked
    else:
        raise ctx.fail("a loop run at run time can only append to a sequence whose elements share a shape")
    require_same_shape(ctx.shape(first)[1:], ctx.shape(stack)[1:],
                       "the elements of the sequence a loop carries and those it appends")
    return SequenceValue(initial.dtype, stacked=ctx.emit(nn.ConcatOp, [first, stack], axis=0)[0])


def _graph_loop(ctx: _NodeContext, body: onnx.GraphProto, cond, carried: list, trips, count: str,
                body_inputs: Callable[[Block], list], body_outputs: Callable[[list], list] = list) -> list:
    """The results of a graph.loop running `body`, its inputs `body_inputs(block)` (built in the
    body's block), its outputs as `body_outputs` orders them (the condition, the carried values,
    the scan outputs). A body whose outputs start with the condition (a Loop's) may exit early:
    `count` is then a new dim; else (a Scan's) the body yields its condition argument and `count`
    is `trips`."""
    imp = ctx.importer
    carried = [imp.materialized(v, f"{_scope(ctx, 'in')}_{j}") for j, v in enumerate(carried)]
    block = LoopOp.body_block(carried)
    for arg, shape in zip(block.args, [(), (), *(ctx.shape(v) for v in carried)]):
        imp.shapes[arg] = shape
    with _converting_into(imp, block):
        outs = imp.inline_graph(body, dict(zip((v.name for v in body.input), body_inputs(block))),
                                _scope(ctx, "body"))
        yielded = _values(ctx, body_outputs(outs), "body")
        if count == str(trips):
            yielded.insert(0, block.args[1])
        elif ctx.shape(yielded[0]):
            yielded[0] = ctx.emit(graph.ReshapeOp, [yielded[0]], shape=[])[0]
        n = len(carried)
        checked = {tuple(ctx.shape(out)): ctx.shape(v) for v, out in zip(carried, yielded[1:1 + n])}
        yielded[1:1 + n] = [_kept_shape(ctx, j, v, out) for j, (v, out) in enumerate(zip(carried, yielded[1:1 + n]))]
        # a scan slice of a checked carried value's shape (a scan of it) is of the shape it came in with
        yielded[1 + n:] = [s if checked.get(tuple(ctx.shape(s)), ctx.shape(s)) == ctx.shape(s) else
                           ctx.emit(graph.ReshapeOp, [s], shape=list(checked[tuple(ctx.shape(s))]))[0]
                           for s in yielded[1 + n:]]
        block.add_op(YieldOp(*yielded))
    scans = [((parse_dim(count), *ctx.shape(s)), graph.dtype_of(s.type)) for s in yielded[1 + n:]]
    op = LoopOp(cond, carried, [*(v.type for v in carried), *(graph.tensor_type(s, d) for s, d in scans)],
                trips, count, Region(block))
    imp.builder.insert(op)
    for r, s in zip(op.results, [*(ctx.shape(v) for v in carried), *(s for s, _ in scans)]):
        imp.shapes[r] = s
    return list(op.results)


def _kept_shape(ctx: _NodeContext, j: int, v, out):
    """Carried value j as it leaves an iteration (`out`) in the shape it came in with (v's). Where
    the shapes differ only in dims known at run time (a size computed in the body), the body
    checks that they are equal in every iteration (a dim `..._carried_<j>_valid`, 0 where they are
    not: a ShapeMismatchError before the next launch): its storage keeps v's size. Shapes that
    differ at compile time are refused."""
    shape, out_shape = ctx.shape(v), ctx.shape(out)
    if shape == out_shape and v.type == out.type:
        return out
    if (graph.dtype_of(v.type) is not graph.dtype_of(out.type) or len(shape) != len(out_shape)
            or any(isinstance(a, int) and isinstance(b, int) and a != b for a, b in zip(shape, out_shape))):
        raise ctx.fail(f"loop-carried value {j} comes in as {list(shape)} and leaves an iteration as "
                       f"{list(out_shape)}: a loop run at run time needs fixed shapes")
    sa = ShapeArithmetic(ctx)
    same = sa.eq(sa.reduce("min", sa.eq(sa.dims(out_shape), sa.dims(shape))), 1)
    sa.bind(None, f"carried_{j}", same, f"loop-carried value {j} changes its shape in an iteration: a loop run "
                                        f"at run time keeps its carried values' shapes")
    return ctx.emit(graph.ReshapeOp, [out], shape=list(shape))[0]


def _run_time_scan(ctx: _NodeContext, body: onnx.GraphProto, inputs: list, n: int, length) -> list:
    """A Scan over a dynamic length: a graph.loop whose body takes slice i (from the end: length-1-i)
    of each scan input, its scan outputs moved to their axes."""
    imp = ctx.importer
    m, k = len(inputs) - n, len(body.output) - n
    xs = inputs[n:]
    in_axes = [int(a) % len(ctx.shape(x)) for a, x in zip(ctx.attrs.get("scan_input_axes", [0] * m), xs)]
    in_reverse = list(ctx.attrs.get("scan_input_directions", [0] * m))
    if any(ctx.attrs.get("scan_output_directions", [0] * k)):
        raise ctx.fail("a reverse scan output over a dynamic length is not supported")

    def slices(block: Block) -> list:
        i = block.args[0]
        if any(in_reverse):
            last = imp.materialized(Known(np.array(length, object), DType.INT64), f"{_scope(ctx, 'length')}")
            (after,) = ctx.emit(graph.AddOp, [i, imp.add_constant(_scope(ctx, "one"), np.array(1, np.int64))])
            (back,) = ctx.emit(graph.SubOp, [last, after])
        return [*block.args[2:], *(ctx.emit(gt.GatherOp, [x, back if r else i], axis=a)[0]
                                   for x, a, r in zip(xs, in_axes, in_reverse))]

    outs = _graph_loop(ctx, body, None, inputs[:n], length, str(length), slices)
    for j, a in enumerate(ctx.attrs.get("scan_output_axes", [0] * k)):
        rank = len(ctx.shape(outs[n + j]))
        if a % rank:
            perm = [*range(1, a % rank + 1), 0, *range(a % rank + 1, rank)]
            outs[n + j] = ctx.emit(nn.TransposeOp, [outs[n + j]], perm=perm)[0]
    return outs


@converter("SequenceMap")
def _sequence_map(ctx: _NodeContext):
    """The body applied to the elements at each position of the sequence inputs (the tensor inputs
    passed whole): unrolled over a count known at import, else a graph.loop over the stacked elements."""
    body = ctx.attrs["body"]
    if len(body.input) != len(ctx.node.input) or len(body.output) != len(ctx.node.output):
        raise _malformed(ctx, f"{len(ctx.node.input)} inputs and {len(ctx.node.output)} outputs, its body "
                              f"{len(body.input)} and {len(body.output)}")
    if ctx.structured(0) is None:
        raise _malformed(ctx, "input 0 is not a sequence")
    structured = {i: seq_ops._sequence(ctx, i) for i in range(len(ctx.node.input)) if ctx.structured(i) is not None}
    counts = [seq_ops._count(seq, ctx) for seq in structured.values()]
    count = counts[0]
    for c in counts[1:]:
        count = require_equal(c, count, "SequenceMap's sequence inputs' lengths")
    passed = {i: ctx.input(i) for i in range(len(ctx.node.input)) if i not in structured}
    if not isinstance(count, int):
        return _run_time_sequence_map(ctx, body, structured, passed, count)
    _check_budget(ctx, count, body)
    elements = {i: seq_ops._elements(ctx, seq) for i, seq in structured.items()}
    per_position: list[list] = [[] for _ in body.output]
    for t in range(count):
        bound = [elements[i][t] if i in elements else passed[i] for i in range(len(body.input))]
        outs = ctx.importer.inline_graph(body, dict(zip((v.name for v in body.input), bound)), _scope(ctx, t))
        for j, v in enumerate(_values(ctx, outs, t)):
            per_position[j].append(v)
    return [SequenceValue(graph.dtype_of(vals[0].type) if vals else DType.from_onnx(o.type.tensor_type.elem_type),
                          elements=tuple(vals)) for o, vals in zip(body.output, per_position)]


def _run_time_sequence_map(ctx: _NodeContext, body: onnx.GraphProto, sequences: dict, passed: dict,
                           count) -> list:
    """SequenceMap over a run-time count: a graph.loop whose body gathers element i of each stacked sequence."""
    stacked = {i: seq_ops._stacked(ctx, seq) for i, seq in sequences.items()}

    def body_inputs(block: Block) -> list:
        return [ctx.emit(gt.GatherOp, [stacked[i], block.args[0]], axis=0)[0] if i in stacked else passed[i]
                for i in range(len(body.input))]

    outs = _graph_loop(ctx, body, None, [], count, str(count), body_inputs)
    return [SequenceValue(graph.dtype_of(s.type), stacked=s) for s in outs]
