"""The PassManager: level pipelines, fixed-point iteration, validation and statistics.

Passes are named as in `pyflame-opt -p` (any registered pass, options included:
`fold-constants{max-bytes=1024}`) or given as ModulePass instances. After every
pass that changed the module it is verified, and every weight it refers to must
still have its `graph.weight`; node counts and new weights are taken before and
after every pass.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.utils.exceptions import ArgSpecParseError

from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.errors import ValidationError
from pyflame_rt.options import OptLevel, PassManagerConfig
from pyflame_rt.transforms.eliminate_dead_code import referenced_weights
from pyflame_rt.targets.target import Target
from pyflame_rt.transforms.graph_pass import GraphPass, PassStats, handed, node_census
from pyflame_rt.transforms.registry import all_passes

BASIC_PASSES = ("fold-constants", "eliminate-dead-code", "eliminate-common-subexpressions")
# subgraph fusions first (they look for the Mul/Add chains the generic ones would take); BN folds
# into convs before the residual Add does, and both before Relu looks for its producer
FUSION_PASSES = ("fuse-layer-norm", "fuse-gelu", "fuse-softmax", "fuse-matmul-integer-to-float", "fold-batch-norm",
                 "fuse-residual-add", "fuse-matmul-add", "fuse-mul-add", "fuse-activation")
# after the fusions, so the ops it converts already carry their fused activations and residuals
LAYOUT_PASSES = ("optimize-layout",)
LEVEL_PIPELINES: dict[OptLevel, tuple[str, ...]] = {
    OptLevel.NONE: (),
    OptLevel.BASIC: BASIC_PASSES,
    OptLevel.EXTENDED: BASIC_PASSES + FUSION_PASSES + LAYOUT_PASSES,
    OptLevel.ALL: BASIC_PASSES + FUSION_PASSES + LAYOUT_PASSES,
}


@dataclass
class PassResult:
    """One pass run, or a pipeline run (then `passes` holds one merged result per pass)."""

    name: str
    changed: bool
    stats: PassStats
    time_ms: float
    iterations: int = 1
    passes: list["PassResult"] = field(default_factory=list)

    def report(self) -> str:
        lines = [f"{self.name}: {self.stats.summary()} in {self.time_ms:.1f} ms"
                 + (f", {self.iterations} iteration(s)" if self.passes else "")]
        lines += [f"  {p.name:<34} {p.stats.summary(node_counts=False)} ({p.time_ms:.1f} ms)" for p in self.passes]
        return "\n".join(lines)


def resolve_passes(passes: Iterable[ModulePass | str]) -> list[ModulePass]:
    """Pass instances from instances or pipeline specs (`name` or `name{opt=value}`)."""
    out: list[ModulePass] = []
    for p in passes:
        if isinstance(p, ModulePass):
            out.append(p)
            continue
        try:
            out.extend(PassPipeline.parse_spec(all_passes(), p).passes)
        except (ValueError, ArgSpecParseError) as e:
            raise ValidationError(f"bad pass '{p}': {e}") from None
    return out


class PassManager:
    """Runs a pass pipeline over a graph module (ModuleOp or ImportResult). `target`: the target
    the passes that depend on one are handed (TargetGraphPass)."""

    def __init__(self, passes: Sequence[ModulePass | str] = (), config: PassManagerConfig | None = None,
                 log: Callable[[str], None] | None = None, ctx: Context | None = None,
                 target: Target | None = None):
        self.config = config or PassManagerConfig()
        self.ctx = ctx or Context(allow_unregistered=True)
        if self.config.max_iterations < 1:
            raise ValidationError(f"max_iterations must be >= 1, got {self.config.max_iterations}")
        skip = set(self.config.skip_passes)
        unknown = skip - set(all_passes())
        if unknown:
            raise ValidationError(f"skip_passes names unknown passes {sorted(unknown)}")
        self.passes = [handed(p, target) for p in resolve_passes(passes) if p.name not in skip]
        self._log = log or (lambda msg: print(msg, file=sys.stderr))

    @classmethod
    def create_default(cls, level: OptLevel | int = OptLevel.EXTENDED, target: Target | None = None,
                       **config) -> "PassManager":
        """The pipeline of an optimization level (NONE, BASIC, EXTENDED, ALL): the target's, if given."""
        try:
            level = OptLevel(int(level))
        except ValueError:
            raise ValidationError(f"invalid optimization level {level!r}") from None
        cfg = PassManagerConfig(level=level, **config)
        return cls(target.pipeline(level) if target else LEVEL_PIPELINES[level], cfg, target=target)

    @property
    def pass_names(self) -> list[str]:
        return [p.name for p in self.passes]

    def log(self, msg: str) -> None:
        if self.config.verbose:
            self._log(f"[opt] {msg}")

    # ------------------------------------------------------------------ running
    def run(self, module) -> PassResult:
        """The pipeline, repeated until a sweep changes nothing (at most max_iterations sweeps)."""
        return self.run_until_fixed_point(module, self.config.max_iterations)

    def run_until_fixed_point(self, module, max_iterations: int = 10) -> PassResult:
        module = _module_of(module)
        t0 = time.perf_counter()
        merged: dict[str, PassResult] = {}
        total = PassStats()
        total.nodes_before = total.nodes_after = sum(node_census(module).values())
        iterations, changed_any = 0, False
        while iterations < max_iterations:
            iterations += 1
            changed = False
            for p in self.passes:
                r = self.run_pass(module, p)
                changed |= r.changed
                total.merge(r.stats)
                if p.name in merged:
                    m = merged[p.name]
                    m.stats.merge(r.stats)
                    m.changed |= r.changed
                    m.time_ms += r.time_ms
                    m.iterations += 1
                else:
                    merged[p.name] = r
            changed_any |= changed
            if not changed:
                break
        result = PassResult("pipeline", changed_any, total, (time.perf_counter() - t0) * 1e3,
                            iterations, list(merged.values()))
        self.log(f"pipeline: {result.stats.summary()} in {result.time_ms:.1f} ms, {iterations} iteration(s)")
        return result

    def run_pass(self, module, pass_: ModulePass | str) -> PassResult:
        """One pass with its statistics; the module is validated afterwards (if configured)."""
        module = _module_of(module)
        (p,) = resolve_passes([pass_])
        weights = WeightTable.of(module)
        missing_before = referenced_weights(module) - weights.keys()
        names_before = set(weights)
        before = node_census(module)
        stats = PassStats()
        t0 = time.perf_counter()
        if isinstance(p, GraphPass):
            changed = p.rewrite(module, weights, stats)
        else:  # any other xDSL pass: compare the printed IR
            text = str(module)
            p.apply(self.ctx, module)
            changed = str(module) != text
        ms = (time.perf_counter() - t0) * 1e3
        stats.record_census(before, node_census(module))
        stats.initializers_added += len(weights.keys() - names_before)
        if self.config.validate and changed:  # an unchanged module was valid before
            self._validate(module, p.name, missing_before)
        result = PassResult(p.name, changed, stats, ms)
        self.log(f"{p.name}: {stats.summary()} ({ms:.1f} ms)")
        return result

    @staticmethod
    def _validate(module: ModuleOp, pass_name: str, missing_before: set[str]) -> None:
        try:
            module.verify()
        except Exception as e:
            raise ValidationError(f"IR is invalid after pass '{pass_name}': {e}") from None
        lost = referenced_weights(module) - WeightTable.of(module).keys() - missing_before
        if lost:
            raise ValidationError(f"after pass '{pass_name}' weights {sorted(lost)[:3]} are missing from "
                                  f"the module")


def _module_of(x) -> ModuleOp:
    """A ModuleOp, or the module of an ImportResult."""
    module = getattr(x, "module", x)
    if not isinstance(module, ModuleOp):
        raise ValidationError(f"expected a graph ModuleOp or an ImportResult, got {type(x).__name__}")
    return module
