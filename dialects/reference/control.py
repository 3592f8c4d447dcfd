"""graph.loop (its body once per iteration) and graph.if (its taken region), evaluated in the enclosing
block's values."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects.graph_control import IfOp, LoopOp
from pyflame_rt.dialects.reference.evaluator import bind_dims, dim_value, enclosing, reference, run_block


@reference(LoopOp)
def _loop(op: LoopOp, inputs):
    env, weights = enclosing()
    go = bool(inputs[0]) if op.cond else True
    carried = inputs[len(op.cond):]
    n, block, trips = len(carried), op.body.block, dim_value(op.trip_dim)
    slices: list[list[np.ndarray]] = []
    while go and len(slices) < trips:
        args = [np.array(len(slices), np.int64), np.array(True), *carried]
        yielded = run_block(block, {**env, **dict(zip(block.args, args))}, weights)
        go, carried = bool(yielded[0]), yielded[1:1 + n]
        slices.append(yielded[1 + n:])
    if op.count != op.trips:
        bind_dims({op.count.data: len(slices)})
    scans = [np.stack([s[j] for s in slices]) if slices else
             np.zeros([0, *(max(d, 0) for d in r.type.get_shape()[1:])]) for j, r in enumerate(op.outs[n:])]
    return [*carried, *scans]


@reference(IfOp)
def _if(op: IfOp, inputs):
    env, weights = enclosing()
    return run_block((op.then_region if bool(inputs[0]) else op.else_region).block, dict(env), weights)
