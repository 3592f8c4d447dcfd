"""`pyflame-rt`: compile, run and inspect models from the command line."""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time

import numpy as np

from pyflame_rt import __version__, artifact
from pyflame_rt.errors import InputError, PyFlameRTError
from pyflame_rt.options import OptLevel


def _compile(args) -> int:
    from pyflame_rt.compiler import CompileOptions, compile_model  # `run`/`inspect` do not need it

    t0 = time.perf_counter()

    def progress(msg: str) -> None:  # one line per finished stage, with the time so far
        print(f"  [{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    log = None if args.quiet else progress
    options = CompileOptions(cpu=args.cpu, opt_level=OptLevel(args.opt_level),
                             verbose_optimization=args.verbose_optimization)
    compiled = compile_model(args.model, options, log=log)
    out = args.output or _default_output(args.model)
    artifact.save(compiled, out)
    if log:
        log(f"write: {os.path.getsize(out)} bytes")
    h = compiled.header
    print(f"compiled {args.model} -> {out} in {time.perf_counter() - t0:.2f} s "
          f"({h['target']['cpu']}, {sum(h['op_summary'].values())} ops, {h['kernel_count']} kernels, "
          f"{compiled.weights.nbytes} bytes of weights, {len(compiled.object_code)} bytes of code)")
    return 0


def _default_output(model: str) -> str:
    return (model[:-5] if model.endswith(".onnx") else model) + ".pfm"


def _parse_dims(items: list[str]) -> dict[str, int]:
    dims = {}
    for item in items:
        name, _, value = item.partition("=")
        if not value.isdigit():
            raise InputError(f"--dim expects NAME=INT, got '{item}'")
        dims[name] = int(value)
    return dims


def _run(args) -> int:
    from pyflame_rt.session import InferenceSession

    sess = InferenceSession(args.artifact)
    feeds = {}
    for item in args.input:
        name, sep, path = item.partition("=")
        if not sep:
            raise InputError(f"--input expects NAME=FILE.npy, got '{item}'")
        try:
            feeds[name] = np.load(path)
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read input '{name}' from {path}: {e}") from None
    dims = _parse_dims(args.dim)
    rng = np.random.default_rng(args.seed)
    for spec in sess.get_inputs():
        if spec.name not in feeds:
            shape = [d if isinstance(d, int) else dims.get(d, 1) for d in spec.shape]
            feeds[spec.name] = rng.standard_normal(shape).astype(np.float32)
            print(f"input  {spec.name}: random {shape} (seed {args.seed})")
        else:
            print(f"input  {spec.name}: {list(feeds[spec.name].shape)} from file")
    t0 = time.perf_counter()
    outs = sess.run(None, feeds)
    ms = (time.perf_counter() - t0) * 1e3
    for spec, out in zip(sess.get_outputs(), outs):
        digest = hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest()[:16]
        print(f"output {spec.name}: shape {list(out.shape)} {out.dtype} sha256:{digest} {_summary(out)}")
        if args.save_dir:
            np.save(f"{args.save_dir}/{spec.name}.npy", out)
    print(f"run: {ms:.3f} ms (first run)")
    return 0


def _summary(out: np.ndarray) -> str:
    """Mean, min and max of an output; an empty one (a dim of 0) has none."""
    if out.size == 0:
        return "empty"
    return f"mean {out.mean():.6g} min {out.min():.6g} max {out.max():.6g}"


def _inspect(args) -> int:
    c = artifact.load(args.artifact)
    h = c.header
    t, m, sec = h["target"], h["model"], h["sections"]
    w, o = sec["weights"], sec["object"]
    print(f"artifact      {args.artifact} (format {h['format_version']}, compiler {h['compiler_version']}, "
          f"{os.path.getsize(args.artifact)} bytes)")
    print(f"target        {t['triple']} cpu={t['cpu']} features={','.join(t['features'])}")
    print(f"model         graph '{m['graph_name']}' opset {m['opset']} producer '{m['producer']}'")
    if m.get("metadata"):
        print("metadata      " + ", ".join(f"{k}={v}" for k, v in sorted(m["metadata"].items())))
    for kind in ("inputs", "outputs"):
        for io in h[kind]:
            print(f"{kind[:-1]:<13} {io['name']}: [{', '.join(io['shape'])}] {io['dtype']}")
    print(f"header        {w['offset']} bytes incl. padding")
    print(f"weights       {w['size']} bytes at offset {w['offset']} ({h['parameter_count']} parameters, "
          f"crc32 {w['crc32']:08x})")
    print(f"object        {o['size']} bytes at offset {o['offset']} ({o['format']}, {h['kernel_count']} kernels, "
          f"crc32 {o['crc32']:08x})")
    print("ops           " + ", ".join(f"{k} x{v}" for k, v in sorted(h["op_summary"].items())))
    print("kernels       " + ", ".join(h.get("kernels", [])))
    print("compile       " + ", ".join(f"{k} {v:.0f} ms" for k, v in h.get("compile_ms", {}).items()))
    if "optimization" in h:
        o = h["optimization"]
        print(f"optimization  {o['level']}: {o['nodes_before']} -> {o['nodes_after']} graph nodes")
    return 0


def _bench(args) -> int:
    from pyflame_rt.bench import bench, bench_gemm
    from pyflame_rt.runtime import num_cores

    if args.gemm:
        threads = [args.threads] if args.threads else sorted({1, num_cores()})
        for n in (int(x) for x in args.gemm.split(",")):
            for t in threads:
                print(bench_gemm(n, t).report(), flush=True)
        return 0
    if args.model is None:
        raise InputError("bench needs a MODEL (or --gemm N)")
    result = bench(args.model, batch=args.batch, dims=_parse_dims(args.dim), threads=args.threads,
                   rounds=args.rounds, runs_per_round=args.runs, warmup=args.warmup,
                   min_round_s=args.min_round_ms / 1e3, compare=None if args.compare == "none" else args.compare,
                   onnx_path=args.onnx)
    print(result.report())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyflame-rt", description="PyFlameRT ahead-of-time compiler and runtime")
    p.add_argument("--version", action="version", version=f"pyflame-rt {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile an ONNX model to a .pfm artifact")
    c.add_argument("model")
    c.add_argument("-o", "--output")
    c.add_argument("--cpu", default=None, help="host (default) or x86-64, x86-64-v2, x86-64-v3, x86-64-v4")
    c.add_argument("--opt-level", type=int, choices=range(4), default=int(OptLevel.EXTENDED),
                   help="graph optimization: 0 none, 1 basic, 2 extended (default), 3 all")
    c.add_argument("--verbose-optimization", action="store_true", help="log every pass's statistics")
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(fn=_compile)
    r = sub.add_parser("run", help="run a compiled artifact (random inputs unless given)")
    r.add_argument("artifact")
    r.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    r.add_argument("--dim", action="append", default=[], metavar="NAME=INT",
                   help="value of a dynamic dim for random inputs (default 1)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--save-dir", help="write each output as NAME.npy into this folder")
    r.set_defaults(fn=_run)
    b = sub.add_parser("bench", help="time the model against onnxruntime in one process")
    b.add_argument("model", nargs="?", help=".onnx model (or .pfm with --onnx for the comparison)")
    b.add_argument("--gemm", metavar="N[,N...]",
                   help="instead of a model: an N^3 fp32 MatMul vs numpy's BLAS (the machine's peak) "
                        "at 1 and all threads (or --threads)")
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--dim", action="append", default=[], metavar="NAME=INT")
    b.add_argument("--threads", type=int, default=0, help="threads for both runtimes (0 = all cores)")
    b.add_argument("--compare", default="onnxruntime", help="onnxruntime (default) or none")
    b.add_argument("--onnx", help="source .onnx when MODEL is a .pfm artifact")
    b.add_argument("--rounds", type=int, default=5)
    b.add_argument("--runs", type=int, default=10, help="timed runs per round and runtime")
    b.add_argument("--min-round-ms", type=float, default=0.0,
                   help="more runs per round (the same for both) until a round lasts this long")
    b.add_argument("--warmup", type=int, default=3)
    b.set_defaults(fn=_bench)
    i = sub.add_parser("inspect", help="print an artifact's metadata")
    i.add_argument("artifact")
    i.set_defaults(fn=_inspect)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except PyFlameRTError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
