"""View ops move no data: the result aliases its input's storage."""
from __future__ import annotations

from pyflame_rt.dialects import graph
from pyflame_rt.targets.cpu.lowerings import lowering


@lowering(graph.FlattenOp, graph.ReshapeOp, graph.IdentityOp)
def _lower_view(L, op) -> None:
    """Flatten / Reshape / Identity: same bytes, new shape (alias unless it is a graph output)."""
    src = op.operands[0]
    if op.result in L.out_slot:
        L.emit_elementwise("copy", [src], L.result_loc(op.result), L.shapes[src])
    else:
        L.locs[op.result] = L.loc(src)
