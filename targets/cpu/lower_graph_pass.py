"""The CPU lowering as ModulePasses, so pyflame-opt can show every level.

`lower-graph-to-kernel` turns the graph function into the kernel level (kernels and a
`kernel.schedule`), `plan-memory` (plan_memory.py) plans its arena, and
`lower-kernel-schedule` leaves the kernels alone (a compile turns the schedule's launches into
the artifact's launch table, data the runtime executes); `lower-graph-to-cpu` runs all three.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.errors import InvalidModelError
from pyflame_rt.targets.cpu.lower_graph import lower_schedule, lower_to_kernel
from pyflame_rt.targets.cpu.plan_memory import PlanMemory
from pyflame_rt.targets.cpu.target import CPUTarget


@dataclass(frozen=True)
class LowerGraphToKernel(ModulePass):
    """Replace the graph function by generated kernels and the `kernel.schedule` launching them.

    Weights come from the module's WeightTable (attached by the importer when
    pyflame-opt reads an .onnx file); the kernel module's own table (graph weights and
    derived ones such as packed GEMM operands) replaces it. `cpu` picks the target
    (host by default).
    """

    name = "lower-graph-to-kernel"
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
        lowered = lower_to_kernel(fn, {k: np.asarray(v) for k, v in table.items()}, CPUTarget.named(self.cpu))
        _replace_body(op, lowered)
        WeightTable.of(lowered).attach(op)


@dataclass(frozen=True)
class LowerKernelSchedule(ModulePass):
    """Replace a planned kernel module by its kernels: a compile makes the `kernel.schedule`'s
    launches the artifact's launch table (pyflame_rt/launch_table.py), which the runtime executes."""

    name = "lower-kernel-schedule"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        lower_schedule(op)


@dataclass(frozen=True)
class LowerGraphToCPU(ModulePass):
    """Replace the graph function by its generated kernels (lower-graph-to-kernel, plan-memory,
    lower-kernel-schedule)."""

    name = "lower-graph-to-cpu"
    cpu: str = "host"
    weights: dict = field(default_factory=dict, compare=False, hash=False)

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for step in (LowerGraphToKernel(self.cpu, self.weights), PlanMemory(), LowerKernelSchedule()):
            step.apply(ctx, op)


def _replace_body(module: ModuleOp, new: ModuleOp) -> None:
    for child in list(module.body.block.ops):
        child.detach()
        child.erase()
    for child in list(new.body.block.ops):
        child.detach()
        module.body.block.add_op(child)
