"""The target interface: what the compiler driver and the graph passes ask of a target.

A target supplies
- its capabilities: what its kernels support, in the terms target-independent graph passes
  decide by (the passes are handed the target object; they never import a target);
- its graph legalizations, run at every optimization level before the optimizer, and its
  pass pipeline of each optimization level;
- its lowering (graph module -> its lowered model) and its emission (lowered model -> the
  artifact's target fields, weight blob and code);
- the passes it adds to `pyflame-opt` (its lowering and conversions, by name).

`pyflame_rt.compiler.compile_model` runs whichever target it is given. A leaf module: the
driver, the passes and every target import it; it imports none of them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

if TYPE_CHECKING:
    import numpy as np
    from xdsl.dialects.builtin import ModuleOp
    from xdsl.ir import Operation
    from xdsl.passes import ModulePass

    from pyflame_rt.dialects.assumptions import Assumption
    from pyflame_rt.options import CompileOptions, OptLevel


def no_op(op: Operation) -> bool:
    return False


@dataclass(frozen=True)
class Capabilities:
    """What a target's kernels support. The defaults claim nothing: no float32-only op types
    (every op runs in its own element type), no channels-last kernel, no integer GEMM."""

    float32_only: frozenset[type] = frozenset()  # op types whose float kernels compute in float32 only
    channels_last: Callable[[Operation], bool] = no_op  # has a channels-last kernel for this NCHW op
    # has kernels for quant.dynamic_quantize and quant.matmul_integer by a constant int8 weight
    int8_kernels: bool = False


class Lowered(Protocol):
    """What the driver reads of a target's lowered model."""

    symbols: list[str]  # the dims a run binds
    assumptions: list[Assumption]  # requirements over dims the lowering relies on


@dataclass
class Emission:
    """What a target emits for a lowered model."""

    header: dict[str, Any]  # the artifact header's target fields (target, io, buffers, kernels, ...)
    weights: np.ndarray  # the weight blob, uint8
    code: tuple[bytes, ...]  # the object files


class Target(ABC):
    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    def legalizations(self) -> tuple[str, ...]:
        """Graph passes every optimization level runs first (the element types its kernels take, ...)."""
        return ()

    @abstractmethod
    def pipeline(self, level: OptLevel) -> tuple[str, ...]:
        """The graph passes of an optimization level."""

    @property
    def passes(self) -> tuple[type[ModulePass], ...]:
        """The passes this target adds to `pyflame-opt -p`."""
        return ()

    @abstractmethod
    def lower(self, module: ModuleOp, options: CompileOptions) -> Lowered:
        """Lower an optimized graph module (`options.checked`: bounds-check every load and store)."""

    @abstractmethod
    def emit(self, lowered: Lowered, options: CompileOptions, times: dict[str, float]) -> Emission:
        """The artifact parts of a lowered model; adds the time of each of its stages (ms) to `times`."""
