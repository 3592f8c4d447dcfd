"""`plan-memory`: the lifetimes of a kernel module's arena buffers, from the launch order.

An alloc lives from the first launch after it to the last launch that reads or writes
it (through any subview), or the last one before a `kernel.bind_dim` that reads it; one a loop's
copies touch or that lives during a loop body lives through the whole body. The executable places the buffers with `memory_plan.plan`
once per set of dim values; when every size is static the pass places them now too and
records each alloc's `offset` and the schedule's `arena_bytes`, so the plan shows in the IR.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith
from xdsl.dialects.builtin import DenseArrayBase, IntegerAttr, ModuleOp, i64
from xdsl.ir import SSAValue
from xdsl.passes import ModulePass

from pyflame_rt.dialects import kernel
from pyflame_rt.errors import InvalidModelError
from pyflame_rt.targets.cpu.memory_plan import Buffer, plan


@dataclass(frozen=True)
class PlanMemory(ModulePass):
    """Record every kernel.alloc's lifetime [first, last] in launch numbers (and, for static
    sizes, its arena offset)."""

    name = "plan-memory"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        schedule = kernel.schedule_of(op)
        if schedule is None:
            raise InvalidModelError("plan-memory needs a kernel-level module (a kernel.schedule)")
        allocs: list[kernel.AllocOp] = []
        live: dict[kernel.AllocOp, list[int]] = {}
        launch = 0
        loops: list[tuple[int, list[kernel.AllocOp]]] = []  # the loops open, outermost first: begin, buffers
        for child in schedule.body.block.ops:
            if isinstance(child, kernel.AllocOp):
                allocs.append(child)
                live[child] = [launch, launch]
            elif isinstance(child, kernel.LaunchOp):
                for field in child.fields:
                    alloc = _alloc_of(field)
                    if alloc is not None:
                        live[alloc][1] = launch
                launch += 1
            elif isinstance(child, kernel.BindDimOp):  # read between the launches before it and after it
                alloc = _alloc_of(child.source)
                if alloc is not None:
                    live[alloc][1] = max(live[alloc][1], launch - 1)
            elif isinstance(child, kernel.LoopBeginOp):
                loops.append((launch, []))
            if isinstance(child, (kernel.LoopBeginOp, kernel.LoopCopyOp, kernel.LoopEndOp)):
                for _, loop_buffers in loops:  # an inner loop's copies run within every enclosing body
                    loop_buffers += [a for a in map(_alloc_of, child.operands) if a is not None]
            if isinstance(child, kernel.LoopEndOp):
                loop_begin, loop_buffers = loops.pop()
                _span_loop(live, loop_buffers, loop_begin, max(loop_begin, launch - 1))
        for alloc in allocs:
            alloc.live = DenseArrayBase.from_list(i64, live[alloc])
        sizes = [_static_size(a) for a in allocs]
        if allocs and None not in sizes:
            offsets, total = plan([Buffer(n, *live[a]) for n, a in zip(sizes, allocs)], {})
            for alloc, offset in zip(allocs, offsets):
                alloc.attributes["offset"] = IntegerAttr(offset, i64)
            schedule.attributes["arena_bytes"] = IntegerAttr(total, i64)


def _span_loop(live: dict, loop_buffers: list, begin: int, end: int) -> None:
    """A loop body's launches [begin, end] run again and again: a buffer the loop's copies touch or
    live during the body lives through all of it (a value the body reads from before the loop,
    or carries to the next iteration, must not share memory with one the body writes)."""
    for alloc, span in live.items():
        if alloc in loop_buffers or (span[0] <= end and span[1] >= begin):
            span[0], span[1] = min(span[0], begin), max(span[1], end)


def _alloc_of(buffer: SSAValue) -> kernel.AllocOp | None:
    """The arena buffer a buffer value lies in (None for io and weights)."""
    owner = buffer.owner
    while isinstance(owner, kernel.SubviewOp):
        owner = owner.source.owner
    return owner if isinstance(owner, kernel.AllocOp) else None


def _static_size(alloc: kernel.AllocOp) -> int | None:
    owner = alloc.nbytes.owner
    return owner.value.value.data if isinstance(owner, arith.ConstantOp) else None
