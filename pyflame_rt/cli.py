"""`pyflame-rt`: compile, run and inspect models from the command line."""
from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
import time

import numpy as np

from pyflame_rt import artifact, signing
from pyflame_rt.errors import InputError, PyFlameRTError
from pyflame_rt.options import KernelCacheConfig, OptLevel
from pyflame_rt.version import __version__


def _compile(args) -> int:
    from pyflame_rt.compiler import CompileOptions, compile_model  # `run`/`inspect` do not need it

    t0 = time.perf_counter()

    def progress(msg: str) -> None:  # one line per finished stage, with the time so far
        print(f"  [{time.perf_counter() - t0:6.1f} s] {msg}", file=sys.stderr, flush=True)

    log = None if args.quiet else progress
    sign_key = signing.configured_key(args.sign_key)
    options = CompileOptions(cpu=args.cpu, opt_level=OptLevel(args.opt_level),
                             verbose_optimization=args.verbose_optimization, checked=args.checked,
                             kernel_cache=KernelCacheConfig(enabled=not args.no_kernel_cache),
                             quantization=_quant_config(args))
    if args.calibration:
        from pyflame_rt.importers.onnx import from_onnx
        from pyflame_rt.quantization.calibration import Calibrator, load_calibration_feeds

        model = from_onnx(args.model)
        calibrator = Calibrator(model, options.quantization)
        for feeds in load_calibration_feeds(args.calibration):
            calibrator.observe(feeds)
        if log:
            log(f"calibrate: {calibrator.batches} batches")
        compiled = compile_model(model, options, log=log, calibration=calibrator.compute_quant_params())
    else:
        compiled = compile_model(args.model, options, log=log)
    out = args.output or _default_output(args.model)
    artifact.save(compiled, out, sign_key)
    if log:
        log(f"write: {os.path.getsize(out)} bytes{', signed' if sign_key else ''}")
    h = compiled.header
    print(f"compiled {args.model} -> {out} in {time.perf_counter() - t0:.2f} s "
          f"({h['target']['cpu']}, {sum(h['op_summary'].values())} ops, {h['kernel_count']} kernels, "
          f"{compiled.weights.nbytes} bytes of weights, {sum(map(len, compiled.objects))} bytes of code)")
    return 0


def _quant_config(args):
    """The QuantConfig the --quantize flags ask for, or None."""
    if args.quantize is None:
        if args.calibration or args.calibration_method or args.granularity or args.sqnr_budget is not None:
            raise UsageError("--calibration, --calibration-method, --per-channel, --per-tensor and --sqnr-budget "
                             "need --quantize")
        return None
    from pyflame_rt.quantization import CalibrationMethod, QuantConfig, QuantGranularity, QuantMode

    mode = QuantMode.parse(args.quantize)
    if mode is QuantMode.StaticInt8 and not args.calibration:
        raise UsageError("--quantize int8-static needs --calibration DIR_OR_NPZ")
    config = {QuantMode.FP16: QuantConfig.fp16, QuantMode.BFloat16: QuantConfig.bfloat16,
              QuantMode.DynamicInt8: QuantConfig.dynamic_int8, QuantMode.StaticInt8: QuantConfig.static_int8}[mode]()
    if args.calibration_method:
        config.calibration_method = CalibrationMethod.parse(args.calibration_method)
    if args.granularity:
        config.granularity = QuantGranularity.parse(args.granularity)
    config.sqnr_budget_db = args.sqnr_budget
    return config.validated()


def _add_quantization_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quantize", choices=["fp16", "bf16", "int8-dynamic", "int8-static"],
                   help="compile in reduced precision (docs/quantization.md)")
    p.add_argument("--calibration", metavar="DIR_OR_NPZ",
                   help="calibration feeds: an .npz of arrays named after the inputs, batches stacked on a new "
                        "first axis, or a directory of .npz files holding one feed each")
    p.add_argument("--calibration-method", choices=["minmax", "entropy", "percentile"])
    granularity = p.add_mutually_exclusive_group()
    granularity.add_argument("--per-channel", dest="granularity", action="store_const", const="per_channel",
                             help="one int8 scale per output channel of a weight (the default)")
    granularity.add_argument("--per-tensor", dest="granularity", action="store_const", const="per_tensor",
                             help="one int8 scale per weight (onnxruntime's default)")
    p.add_argument("--sqnr-budget", type=float, metavar="DB",
                   help="keep in float32 every layer whose output SQNR against float32 is below DB")


def _default_output(model: str) -> str:
    return (model[:-5] if model.endswith((".onnx", ".mlir")) else model) + ".pfm"


def _parse_dims(items: list[str]) -> dict[str, int]:
    dims = {}
    for item in items:
        name, _, value = item.partition("=")
        if not (value.isascii() and value.isdigit()):
            raise InputError(f"--dim expects NAME=INT, got '{item}'")
        dims[name] = int(value)
    return dims


def _parse_sizes(text: str) -> list[int]:
    sizes = text.split(",")
    if not all(s.isascii() and s.isdigit() and int(s) > 0 for s in sizes):
        raise InputError(f"--gemm expects N[,N...] with positive ints, got '{text}'")
    return [int(s) for s in sizes]


def _run(args) -> int:
    from pyflame_rt.options import SessionOptions
    from pyflame_rt.session import InferenceSession

    sess = InferenceSession(args.artifact, SessionOptions(sign_key_file=args.sign_key))
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
            try:
                feeds[spec.name] = rng.standard_normal(shape).astype(np.float32)
            except (ValueError, MemoryError) as e:
                raise InputError(f"cannot make a random input '{spec.name}' of shape {shape}: {e}") from None
            print(f"input  {spec.name}: random {shape} (seed {args.seed})")
        else:
            print(f"input  {spec.name}: {list(feeds[spec.name].shape)} from file")
    t0 = time.perf_counter()
    outs = sess.run(None, feeds)
    ms = (time.perf_counter() - t0) * 1e3
    files = _output_files([spec.name for spec in sess.get_outputs()])
    for spec, out, file in zip(sess.get_outputs(), outs, files):
        digest = hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest()[:16]
        print(f"output {spec.name}: shape {list(out.shape)} {out.dtype} sha256:{digest} {_summary(out)}")
        if args.save_dir:
            _save(os.path.join(args.save_dir, file), out)
    print(f"run: {ms:.3f} ms (first run)")
    return 0


def _output_files(names: list[str]) -> list[str]:
    """One distinct plain file name per output: a name is the model's, not a path, so every
    character but letters, digits, '-', '_' and '.' becomes '_', leading dots are dropped (no
    '..', no hidden files) and a clash gets a numeric suffix."""
    files, taken = [], set()
    for name in names:
        stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name).lstrip(".")[:200] or "output"
        file, n = f"{stem}.npy", 1
        while file.lower() in taken:  # lower(): distinct on case-insensitive file systems too
            file, n = f"{stem}_{n}.npy", n + 1
        taken.add(file.lower())
        files.append(file)
    return files


def _save(path: str, array: np.ndarray) -> None:
    try:
        with open(path, "wb") as f:
            np.save(f, array)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror or e}") from None


def _summary(out: np.ndarray) -> str:
    """Mean, min and max of an output; an empty one (a dim of 0) has none."""
    if out.size == 0:
        return "empty"
    return f"mean {out.mean():.6g} min {out.min():.6g} max {out.max():.6g}"


def _inspect(args) -> int:
    key = signing.configured_key(args.sign_key)
    c = artifact.load(args.artifact, key)
    h = c.header
    t, m, sec = h["target"], h["model"], h["sections"]
    w, objects = sec["weights"], sec["objects"]
    print(f"artifact      {args.artifact} (format {h['format_version']}, compiler {h['compiler_version']}, "
          f"{os.path.getsize(args.artifact)} bytes)")
    print(f"target        {t['triple']} cpu={t['cpu']} features={','.join(t['features'])}")
    print(f"model         graph '{m['graph_name']}' opset {m['opset']} producer '{m['producer']}' {m.get('producer_version', '')}")
    if m.get("metadata"):
        print("metadata      " + ", ".join(f"{k}={v}" for k, v in sorted(m["metadata"].items())))
    for kind in ("inputs", "outputs"):
        for io in h[kind]:
            print(f"{kind[:-1]:<13} {io['name']}: [{', '.join(io['shape'])}] {io['dtype']}")
    print(f"header        {w['offset']} bytes incl. padding")
    print(f"weights       {w['size']} bytes at offset {w['offset']} ({h['parameter_count']} parameters)")
    print(f"objects       {len(objects)} ({objects[0]['format']}), {sum(o['size'] for o in objects)} bytes from offset "
          f"{objects[0]['offset']}, {h['kernel_count']} kernels")
    print(f"sha256        {c.digest.hex()}")
    print(f"signature     {_signature_state(c.signed, key is not None)}")
    print("ops           " + ", ".join(f"{k} x{v}" for k, v in sorted(h["op_summary"].items())))
    print("kernels       " + ", ".join(h.get("kernels", [])))
    print("compile       " + ", ".join(f"{k} {v:.0f} ms" for k, v in h.get("compile_ms", {}).items()))
    print(f"checked       {'yes (every load and store bounds-checked)' if h.get('checked') else 'no'}")
    if "optimization" in h:
        o = h["optimization"]
        print(f"optimization  {o['level']}: {o['nodes_before']} -> {o['nodes_after']} graph nodes")
    if "quantization" in h:
        from pyflame_rt.quantization.report import QuantizationReport

        first, *rest = QuantizationReport.from_json(h["quantization"]).summary().splitlines()
        print(f"quantization  {first}")
        for line in rest:
            print(f"              {line}")
    return 0


def _signature_state(signed: bool, verified: bool) -> str:
    if not signed:
        return "none"
    return "HMAC-SHA256, verified with the signing key" if verified else "HMAC-SHA256 (not verified: no key given)"


def _bench(args) -> int:
    from pyflame_rt.bench import bench, bench_gemm
    from pyflame_rt.runtime import num_cores

    if args.gemm:
        threads = [args.threads] if args.threads else sorted({1, num_cores()})
        for n in _parse_sizes(args.gemm):
            for t in threads:
                print(bench_gemm(n, t).report(), flush=True)
        return 0
    if args.model is None:
        raise InputError("bench needs a MODEL (or --gemm N)")
    calibration = None
    if args.calibration:
        from pyflame_rt.quantization.calibration import load_calibration_feeds

        calibration = load_calibration_feeds(args.calibration)
    result = bench(args.model, batch=args.batch, dims=_parse_dims(args.dim), threads=args.threads,
                   rounds=args.rounds, runs_per_round=args.runs, warmup=args.warmup,
                   min_round_s=args.min_round_ms / 1e3, compare=None if args.compare == "none" else args.compare,
                   onnx_path=args.onnx, quantization=_quant_config(args), calibration=calibration)
    print(result.report())
    return 0


def _serve(args) -> int:
    try:
        from pyflame_rt.serving import ModelServer, ServerConfig  # only this command needs the serve extra
    except ImportError as e:
        raise UsageError(f"pyflame-rt serve needs the serve extra (pip install 'pyflame-rt[serve]'): {e}") from None

    config = ServerConfig(model_dir=args.model_repository, hot_reload=args.hot_reload,
                          enable_metrics=not args.no_metrics)
    config.http.host, config.http.port, config.http.num_workers = args.host, args.port, args.workers
    config.http.ssl_certfile, config.http.ssl_keyfile = args.ssl_certfile, args.ssl_keyfile
    if args.grpc_port is not None:
        config.grpc.enabled, config.grpc.host, config.grpc.port = True, args.host, args.grpc_port
    config.security.api_keys = [k for k in os.environ.get(args.api_keys_env, "").split(",") if k]
    config.security.rate_limit_rps = args.rate_limit
    server = ModelServer(config)

    def announce() -> None:
        where = server.url + (f" and grpc://{config.grpc.host}:{server.grpc_port}" if config.grpc.enabled else "")
        print(f"serving {server.registry.list_models()} on {where}", flush=True)

    server.on_ready(announce)
    server.serve_forever()
    return 0


class UsageError(Exception):
    """Bad command-line arguments."""


class _ArgumentParser(argparse.ArgumentParser):
    """Reports bad arguments by raising (main prints one line) instead of printing the usage and exiting."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _ArgumentParser(prog="pyflame-rt", description="PyFlameRT ahead-of-time compiler and runtime")
    p.add_argument("--version", action="version", version=f"pyflame-rt {__version__}")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile an ONNX model to a .pfm artifact")
    c.add_argument("model", help=".onnx model, or graph-level .mlir with weights (pyflame-opt --print-weights)")
    c.add_argument("-o", "--output")
    c.add_argument("--cpu", default=None, help="host (default) or x86-64, x86-64-v2, x86-64-v3, x86-64-v4")
    c.add_argument("--opt-level", type=int, choices=range(4), default=int(OptLevel.EXTENDED),
                   help="graph optimization: 0 none, 1 basic, 2 extended (default), 3 all")
    c.add_argument("--verbose-optimization", action="store_true", help="log every pass's statistics")
    c.add_argument("--sign-key", metavar="FILE", help="sign the artifact (HMAC-SHA256) with the key in FILE "
                   f"(default: ${signing.ENV_KEY_FILE} if set)")
    c.add_argument("--checked", action="store_true",
                   help="checked build: bounds-check every load and store (slower; for testing)")
    c.add_argument("--no-kernel-cache", action="store_true",
                   help="generate and compile every kernel (neither read nor fill the kernel cache)")
    _add_quantization_arguments(c)
    c.add_argument("-q", "--quiet", action="store_true")
    c.set_defaults(fn=_compile)
    r = sub.add_parser("run", help="run a compiled artifact (random inputs unless given)")
    r.add_argument("artifact")
    r.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy")
    r.add_argument("--dim", action="append", default=[], metavar="NAME=INT",
                   help="value of a dynamic dim for random inputs (default 1)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--save-dir", help="write each output as NAME.npy into this folder")
    r.add_argument("--sign-key", metavar="FILE", help="refuse the artifact unless signed with the key in FILE "
                   f"(default: ${signing.ENV_KEY_FILE} if set)")
    r.set_defaults(fn=_run)
    b = sub.add_parser("bench", help="time the model against onnxruntime in one process")
    b.add_argument("model", nargs="?", help=".onnx model (or .pfm with --onnx for the comparison)")
    b.add_argument("--gemm", metavar="N[,N...]",
                   help="instead of a model: an N^3 fp32 MatMul vs numpy's BLAS (the machine's peak) "
                        "at 1 and all threads (or --threads)")
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--dim", action="append", default=[], metavar="NAME=INT")
    b.add_argument("--threads", type=int, default=0, help="threads for both runtimes (0 = all cores)")
    b.add_argument("--compare", default="onnxruntime",
                   help="onnxruntime (default), float32 (our own float32 compile: with --quantize) or none")
    b.add_argument("--onnx", help="source .onnx when MODEL is a .pfm artifact")
    b.add_argument("--rounds", type=int, default=5)
    b.add_argument("--runs", type=int, default=10, help="timed runs per round and runtime")
    b.add_argument("--min-round-ms", type=float, default=0.0,
                   help="more runs per round (the same for both) until a round lasts this long")
    b.add_argument("--warmup", type=int, default=3)
    _add_quantization_arguments(b)
    b.set_defaults(fn=_bench)
    i = sub.add_parser("inspect", help="print an artifact's metadata")
    i.add_argument("artifact")
    i.add_argument("--sign-key", metavar="FILE", help="verify the artifact's signature with the key in FILE "
                   f"(default: ${signing.ENV_KEY_FILE} if set)")
    i.set_defaults(fn=_inspect)
    s = sub.add_parser("serve", help="serve a model repository over HTTP (v1 REST and Open Inference Protocol v2)")
    s.add_argument("--model-repository", required=True, metavar="DIR",
                   help="DIR/<model>/<version>/model.pfm|model.onnx, optional DIR/<model>/config.yaml")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    s.add_argument("--grpc-port", type=int, metavar="PORT", help="also serve the v2 protocol over gRPC (one worker)")
    s.add_argument("--hot-reload", action="store_true", help="reload models whose files change")
    s.add_argument("--no-metrics", action="store_true", help="do not serve /metrics")
    s.add_argument("--ssl-certfile")
    s.add_argument("--ssl-keyfile")
    s.add_argument("--api-keys-env", default="PYFLAME_RT_API_KEYS", metavar="VAR",
                   help="environment variable with comma-separated API keys (unset or empty: no auth)")
    s.add_argument("--rate-limit", type=float, default=0.0, metavar="RPS", help="requests/s per client (0: none)")
    s.set_defaults(fn=_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    """Anticipated failures (our errors, bad arguments, files that cannot be read or written,
    Ctrl-C) exit with status 2 and one line on stderr; `--debug` shows their traceback instead.
    Anything else is a bug and keeps its traceback."""
    args = None
    try:
        args = build_parser().parse_args(argv)
        return args.fn(args)
    except (PyFlameRTError, UsageError, OSError, KeyboardInterrupt) as e:
        if getattr(args, "debug", False):
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2


def _one_line(e: BaseException) -> str:
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    text = " ".join(str(e).split())
    return text if isinstance(e, UsageError) else f"{type(e).__name__}: {text}"


if __name__ == "__main__":
    sys.exit(main())
