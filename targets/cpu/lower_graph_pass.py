"""`lower-graph-to-cpu` as a ModulePass, so pyflame-opt can show the kernel level."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.errors import InvalidModelError
from pyflame_rt.targets.cpu.lower_graph import lower_graph
from pyflame_rt.targets.cpu.target import CPUTarget


@dataclass(frozen=True)
class LowerGraphToCPU(ModulePass):
    """Replace the graph function by the generated kernels (the compiler puts their launches in the
    artifact's launch table; this pass shows the kernels only).

    Weights come from the module's WeightTable (attached by the importer when
    pyflame-opt reads an .onnx file); `cpu` picks the target (host by default).
    """

    name = "lower-graph-to-cpu"
    cpu: str = "host"
    weights: dict = field(default_factory=dict, compare=False, hash=False)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        fn = graph.entry_function(op)
        table = self.weights or WeightTable.of(op)
        missing = [c.weight_name for c in fn.walk()
                   if isinstance(c, graph.ConstantOp) and c.weight_name and c.weight_name not in table]
        if missing:
            raise InvalidModelError(
                f"weights {missing[:3]} are not available: lower an .onnx input, not bare .mlir")
        lowered = lower_graph(fn, {k: np.asarray(v) for k, v in table.items()}, CPUTarget.named(self.cpu))
        for child in list(op.body.block.ops):
            child.detach()
            child.erase()
        for child in list(lowered.module.body.block.ops):
            child.detach()
            op.body.block.add_op(child)
