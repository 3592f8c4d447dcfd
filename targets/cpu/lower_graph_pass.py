"""The CPU lowering as ModulePasses, so pyflame-opt can show every level.

`lower-graph-to-kernel` turns the graph function into the kernel level (kernels and a
`kernel.schedule`), `plan-memory` (plan_memory.py) plans its arena, and
`lower-kernel-schedule` leaves the kernels alone (a compile turns the schedule's launches into
the artifact's launch table, data the runtime executes); `lower-graph-to-cpu` runs all three.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import require_values
from pyflame_rt.targets.cpu.lower_graph import lower_schedule, lower_to_kernel
from pyflame_rt.targets.cpu.lowerings import PATTERNS
from pyflame_rt.targets.cpu.plan_memory import PlanMemory
from pyflame_rt.targets.cpu.target import CPUTarget


@dataclass(frozen=True)
class LowerGraphToKernel(ModulePass):
    """Replace the graph function by generated kernels and the `kernel.schedule` launching them:
    the CPU target's patterns (lowerings/) lower each graph op in program order.

    Weights are the module's `graph.weight`s; the kernel module keeps those the kernels read and
    adds derived ones (packed GEMM operands, padded biases). `cpu` picks the target (host by
    default).
    """

    name = "lower-graph-to-kernel"
    cpu: str = "host"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        lowered = lower_to_kernel(graph.entry_function(op), require_values(op), CPUTarget.named(self.cpu), PATTERNS)
        _replace_body(op, lowered)


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

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for step in (LowerGraphToKernel(self.cpu), PlanMemory(), LowerKernelSchedule()):
            step.apply(ctx, op)


def _replace_body(module: ModuleOp, new: ModuleOp) -> None:
    for child in list(module.body.block.ops):
        child.detach()
        child.erase()
    for child in list(new.body.block.ops):
        child.detach()
        module.body.block.add_op(child)
