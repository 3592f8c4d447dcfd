"""The graph optimizer's Python API.

    from pyflame_rt import opt
    from pyflame_rt.importers.onnx import from_onnx
    imported = from_onnx("model.onnx")
    result = opt.optimize(imported, level=opt.OptLevel.EXTENDED, verbose=True)
    print(result.report())            # per-pass node counts and statistics

Every function takes a graph `ModuleOp` or an `ImportResult` and rewrites it in
place (weights included: see `WeightTable`); each returns a `PassResult`. The
passes are the registered ones (`pyflame-opt --list-passes`), so a pipeline here
and `pyflame-opt -p ...` do the same thing. Passes that depend on the target's
kernels (optimize-layout, legalize-half-precision) are handed `target`: the host
CPU unless another is given.
"""
from __future__ import annotations

from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.options import OptLevel, PassManagerConfig
from pyflame_rt.targets.cpu.target import CPUTarget
from pyflame_rt.targets.target import Target
from pyflame_rt.transforms.eliminate_common_subexpressions import EliminateCommonSubexpressions
from pyflame_rt.transforms.eliminate_dead_code import EliminateDeadCode
from pyflame_rt.transforms.fold_constants import FoldConstants
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats
from pyflame_rt.transforms.pass_manager import FUSION_PASSES, LEVEL_PIPELINES, PassManager, PassResult
from pyflame_rt.transforms.registry import register_pass

# The per-pass configuration classes are the passes themselves (frozen dataclasses
# whose fields are the pass options): opt.FoldConstants(max_bytes=1 << 20).
ConstantFoldingConfig = FoldConstants


def optimize(module, level: OptLevel | int = OptLevel.EXTENDED, target: Target | None = None,
             **config) -> PassResult:
    """Run the target's pipeline of `level` to a fixed point (config: PassManagerConfig fields)."""
    return PassManager.create_default(level, target=target or CPUTarget.host(), **config).run(module)


def fold_constants(module, config: FoldConstants | None = None, **config_kwargs) -> PassResult:
    """Constant folding (options: max_bytes, fold_expensive, exclude, inline_elements)."""
    return _run_one(module, config or FoldConstants(**config_kwargs))


def eliminate_dead_code(module) -> PassResult:
    return _run_one(module, EliminateDeadCode())


def eliminate_common_subexpressions(module) -> PassResult:
    return _run_one(module, EliminateCommonSubexpressions())


def fuse_operators(module, max_iterations: int = 10, **config) -> PassResult:
    """All fusion passes (and DCE for what they leave behind) to a fixed point."""
    pm = PassManager([*FUSION_PASSES, "eliminate-dead-code"],
                     PassManagerConfig(max_iterations=max_iterations, **config))
    return pm.run(module)


def _run_one(module, pass_: GraphPass) -> PassResult:
    return PassManager([pass_]).run_pass(module, pass_)


__all__ = [
    "optimize", "fold_constants", "eliminate_dead_code", "eliminate_common_subexpressions",
    "fuse_operators", "PassManager", "PassManagerConfig", "PassResult", "PassStats", "OptLevel",
    "LEVEL_PIPELINES", "ConstantFoldingConfig", "FoldConstants", "EliminateDeadCode",
    "EliminateCommonSubexpressions", "GraphPass", "WeightTable", "register_pass", "Target", "CPUTarget",
]
