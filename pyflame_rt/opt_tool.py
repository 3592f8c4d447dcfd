"""`pyflame-opt`: an xdsl-opt-style driver over PyFlameRT's dialects and passes."""
from __future__ import annotations

import argparse
import sys

from xdsl.context import Context
from xdsl.dialects import arith, builtin, cf, func, scf
from xdsl.passes import PassPipeline
from xdsl.utils.exceptions import ArgSpecParseError, ParseError, VerifyException

from pyflame_rt.dialects import ALL_DIALECTS, graph, kernel
from pyflame_rt.dialects.weights import parse_module, print_module
from pyflame_rt.errors import PyFlameRTError
from pyflame_rt.options import OptLevel, PassManagerConfig
from pyflame_rt.targets.cpu.target import CPUTarget
from pyflame_rt.transforms.pass_manager import PassManager
from pyflame_rt.transforms.registry import all_passes, load_pass_plugin, register_pass


def make_context() -> Context:
    ctx = Context(allow_unregistered=False)
    from pyflame_rt.targets.cpu.kernel_builder import llvm_dialect

    for d in (builtin.Builtin, func.Func, arith.Arith, scf.Scf, cf.Cf, llvm_dialect(), *ALL_DIALECTS):
        ctx.load_dialect(d)
    return ctx


def load_module(path: str, ctx: Context):
    """Parse .mlir text (with the weights of its file metadata, if any), or import an .onnx model."""
    if path.endswith(".onnx"):
        from pyflame_rt.importers.onnx import from_onnx

        return from_onnx(path).module
    text = sys.stdin.read() if path == "-" else open(path).read()
    return parse_module(ctx, text, path)


LEVELS = ("graph", "kernel", "llvm")


def level_of(module) -> str:
    """The IR level a module is at: graph (a graph entry function), kernel (a schedule) or llvm."""
    if kernel.schedule_of(module) is not None:
        return "kernel"
    try:
        graph.entry_function(module)
    except Exception:
        return "llvm"
    return "graph"


def lower_to(module, level: str, cpu: str, opt_level: OptLevel, ctx: Context) -> list:
    """Run the compiler's pipeline for CPU `cpu` (host or a portable level) on `module` from its
    level down to `level`; returns the graph pipelines' PassResults."""
    from pyflame_rt.targets.cpu.convert_to_llvm import ConvertToLLVM
    from pyflame_rt.targets.cpu.lower_graph_pass import LowerGraphToKernel, LowerKernelSchedule
    from pyflame_rt.targets.cpu.plan_memory import PlanMemory

    target = CPUTarget.named(cpu)
    start = level_of(module)
    if LEVELS.index(level) < LEVELS.index(start):
        raise ValueError(f"the input is at the {start} level, below --to {level}")
    results = []
    if start == "graph":
        results += [PassManager(target.legalizations, target=target).run(module),
                    PassManager.create_default(opt_level, target=target).run(module)]
    if start == "graph" and level != "graph":
        LowerGraphToKernel(cpu).apply(ctx, module)
        PlanMemory().apply(ctx, module)
    if start != "llvm" and level == "llvm":
        if start == "kernel" and any(a.live is None for a in module.walk() if isinstance(a, kernel.AllocOp)):
            PlanMemory().apply(ctx, module)
        LowerKernelSchedule().apply(ctx, module)
        ConvertToLLVM().apply(ctx, module)
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pyflame-opt", description="run PyFlameRT passes on IR")
    p.add_argument("input", nargs="?", default="-", help=".mlir file, .onnx model, or - for stdin")
    p.add_argument("-p", "--passes", default="", help="comma-separated pipeline, e.g. pass-a,pass-b{opt=1}")
    p.add_argument("-O", dest="opt_level", type=int, choices=range(4),
                   help="run an optimization level's pipeline first: -O0 none .. -O3 all")
    p.add_argument("--to", choices=LEVELS,
                   help="after the passes, run the compiler's pipeline down to this level (graph: CPU "
                        "legalizations and the -O pipeline; kernel: kernels, schedule, memory plan; llvm)")
    p.add_argument("--cpu", default="host", help="CPU target of --to kernel|llvm: host or a portable level "
                                                  "such as x86-64-v3")
    p.add_argument("--print-stats", action="store_true", help="per-pass statistics on stderr")
    p.add_argument("-o", "--output", default="-")
    p.add_argument("--print-weights", action="store_true",  # off by default: the values dwarf the ops
                   help="print the weights' values (a file-metadata section) so the output compiles")
    p.add_argument("--elide-weights-larger-than", type=int, metavar="BYTES",
                   help="with --print-weights: leave out the values of weights above BYTES")
    p.add_argument("--list-passes", action="store_true")
    p.add_argument("--load", action="append", default=[], metavar="PLUGIN",
                   help="import a .py file or module that registers passes (repeatable)")
    p.add_argument("--verify-each", action="store_true", default=True)
    args = p.parse_args(argv)
    target = CPUTarget.named(args.cpu)
    for cls in target.passes:
        register_pass(cls)
    try:
        for plugin in args.load:
            load_pass_plugin(plugin)
    except (ImportError, FileNotFoundError) as e:
        print(f"pyflame-opt: error: cannot load pass plugin: {e}", file=sys.stderr)
        return 1
    registry = all_passes()
    if args.list_passes:
        for name, get in registry.items():
            doc = (get().__doc__ or "").strip().splitlines()
            print(f"{name:<32} {doc[0] if doc else ''}")
        return 0
    ctx = make_context()
    try:
        module = load_module(args.input, ctx)
        module.verify()
        results = []
        if args.opt_level is not None and args.to is None:
            results.append(PassManager.create_default(args.opt_level, target=target).run(module))  # graph passes only
        if args.passes:
            pipeline = PassPipeline.parse_spec(registry, args.passes)
            results.append(PassManager(pipeline.passes, PassManagerConfig(max_iterations=1), ctx=ctx,
                                       target=target).run(module))
        if args.to is not None:
            level = OptLevel.EXTENDED if args.opt_level is None else OptLevel(args.opt_level)
            results += lower_to(module, args.to, args.cpu, level, ctx)
        if args.print_stats:
            for r in results:
                print(r.report(), file=sys.stderr)
    except (ParseError, ArgSpecParseError, VerifyException, PyFlameRTError, ValueError, FileNotFoundError) as e:
        print(f"pyflame-opt: error: {e}", file=sys.stderr)
        return 1
    out = sys.stdout if args.output == "-" else open(args.output, "w")
    try:
        print_module(module, out, args.print_weights, args.elide_weights_larger_than)
    except BrokenPipeError:  # e.g. piped into `head`
        sys.stderr.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
