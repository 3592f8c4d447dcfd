"""`lower-graph-to-cpu` as a ModulePass, so pyflame-opt can show the kernel level."""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import require_values
from pyflame_rt.targets.cpu.lower_graph import lower_graph
from pyflame_rt.targets.cpu.target import CPUTarget


@dataclass(frozen=True)
class LowerGraphToCPU(ModulePass):
    """Replace the graph function by generated kernels and the `pfm_main` entry point.

    Weights are the module's `graph.weight`s; `cpu` picks the target (host by default).
    """

    name = "lower-graph-to-cpu"
    cpu: str = "host"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        fn = graph.entry_function(op)
        lowered = lower_graph(fn, require_values(op), CPUTarget.named(self.cpu))
        for child in list(op.body.block.ops):
            child.detach()
            child.erase()
        for child in list(lowered.module.body.block.ops):
            child.detach()
            op.body.block.add_op(child)
