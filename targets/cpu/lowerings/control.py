"""graph.loop: its body's launches between a kernel.loop_begin and a kernel.loop_end, which the
run executes once per iteration (pyflame_rt/loops.py); graph.if: each region a loop of at most
one iteration, entered when the condition (then) or its negation (else) holds.

The walker meets the loop before the ops of its body: `LowerLoop` opens the loop (storage for the
iteration number, the condition argument, the carried values and the scan outputs, the copies
of the initial values), the body's ops are lowered by their own patterns, and `LowerLoopYield`
closes it (the copies after each iteration, the dim `count` bound to the iterations run) and
replaces the loop by its results: the carried values' storage, and the scan outputs' (sized for
`trips` iterations, of which the first `count` are the result).
"""
from __future__ import annotations

from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import kernel
from pyflame_rt.dialects.graph_control import IfOp, LoopOp, YieldOp
from pyflame_rt.dialects.symbolic import dim_mul, fold_size, numel
from pyflame_rt.dtype import DType
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern

OPENED = "kernel.opened"  # set on a graph.loop whose body is being lowered


def _nbytes(L, v):
    return dim_mul(numel(L.shapes[v]), L.dtype(v).itemsize)


class LowerLoop(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: LoopOp, rewriter: PatternRewriter) -> None:
        if OPENED in op.attributes:
            return
        self.lower(self.lowering, op)  # the loop counts in op_summary once, when it closes
        op.attributes[OPENED] = op.trips
        rewriter.notify_op_modified(op)

    def lower(self, L, op: LoopOp) -> None:
        args = op.body.block.args
        counter, flag = L.new_buffer(8), L.new_buffer(1)
        states = [L.new_buffer(_nbytes(L, v)) for v in op.carried]
        L.begin_loop(op, counter, flag, L.loc(op.cond[0]) if op.cond else L.null_buffer, op.trip_dim)
        for v, state in zip(op.carried, states):
            L.loop_copy(kernel.LoopCopy.ENTER, L.loc(v), state, _nbytes(L, v))
        for arg, loc in zip(args, [counter, flag, *states]):
            L.locs[arg] = loc


class LowerLoopYield(GraphToKernelPattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: YieldOp, rewriter: PatternRewriter) -> None:
        loop = op.parent_op()
        if isinstance(loop, LoopOp):
            self.convert(loop, rewriter)

    def lower(self, L, op: LoopOp) -> None:
        n = len(op.carried)
        yielded = op.yielded
        args = op.body.block.args
        states = [L.loc(a) for a in args[2:]]
        for v, state in zip(yielded[1:1 + n], states):
            if L.loc(v) != state:
                L.loop_copy(kernel.LoopCopy.NEXT, L.loc(v), state, _nbytes(L, v))
        for v, out in zip(yielded[1 + n:], op.outs[n:]):
            L.locs[out] = L.new_buffer(dim_mul(op.trip_dim, _nbytes(L, v)))
            L.loop_copy(kernel.LoopCopy.SCAN, L.loc(v), L.locs[out], _nbytes(L, v))
        L.end_loop(L.loc(yielded[0]))
        if len(op.outs) > n and op.count != op.trips:  # `count` sizes the scan outputs only
            L.bind_dims([op.count.data], L.loc(args[0]), DType.INT64)
        for out, state in zip(op.outs, states):
            L.locs[out] = state


class LowerIf(GraphToKernelPattern):
    """Opens the then region: a loop of one iteration entered only when the condition holds."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: IfOp, rewriter: PatternRewriter) -> None:
        if OPENED in op.attributes:
            return
        self.lower(self.lowering, op)
        op.attributes[OPENED] = op.cond.type
        rewriter.notify_op_modified(op)

    def lower(self, L, op: IfOp) -> None:
        for r, t, e in zip(op.outs, *(region.block.last_op.operands for region in op.regions)):
            # with op.dims the result's dims are the taken branch's: its storage holds either branch's
            nbytes = _nbytes(L, r) if op.dims is None else fold_size("max", _nbytes(L, t), _nbytes(L, e))
            L.locs[r] = L.new_buffer(nbytes)
        open_branch(L, op, L.loc(op.cond))


def open_branch(L, op: IfOp, enter) -> None:
    """A loop of at most one iteration, entered when the bool at `enter` holds."""
    L.begin_loop(op, L.new_buffer(8), L.new_buffer(1), enter, 1)


class LowerIfYield(GraphToKernelPattern):
    """Closes a region of a graph.if: its yielded values copied into the results. The then region
    then opens the else region (entered when the negated condition holds); the else region
    replaces the op by its results."""

    def __init__(self, lowering):
        super().__init__(lowering)
        self.negated: dict[IfOp, object] = {}  # the else region's entry flag (a Loc) while it is open

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: YieldOp, rewriter: PatternRewriter) -> None:
        parent = op.parent_op()
        if not isinstance(parent, IfOp):
            return
        L = self.lowering
        for v, r in zip(op.values, parent.outs):
            L.loop_copy(kernel.LoopCopy.NEXT, L.loc(v), L.locs[r], _nbytes(L, v))
        if op.parent_region() is parent.then_region:
            L.end_loop(L.loc(parent.cond))
            self.negated[parent] = L.new_buffer(1)
            L.emit_elementwise("not", [parent.cond], self.negated[parent], ())
            open_branch(L, parent, self.negated[parent])
            rewriter.notify_op_modified(op)  # handled: no later pattern refuses it
        else:
            self.convert(parent, rewriter)

    def lower(self, L, op: IfOp) -> None:
        L.end_loop(self.negated.pop(op))


PATTERNS = (LowerLoop, LowerLoopYield, LowerIf, LowerIfYield)
