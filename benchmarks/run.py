"""Build the benchmark models with torch and time PyFlameRT against onnxruntime.

    python benchmarks/run.py [--models mlp,resnet50,...] [--batches 1,8] [--threads 2] [--markdown OUT.md]

For each model and batch: median latency of both runtimes (interleaved rounds in one
process, see pyflame_rt/bench.py), the ratio, and the distance from the FLOP floor
(model FLOPs / the machine's fp32 GEMM peak, measured with numpy/OpenBLAS in the same run).
First, the GEMM efficiency section: our compiled N^3 MatMul vs numpy/OpenBLAS at 1 thread
and at --threads (the largest BLAS number at --threads is the peak used for the floors).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import date
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CACHE = HERE / ".models"


def model_flops(name: str, batch: int) -> float:
    """FLOPs of one forward pass (torch's flop counter: matmuls and convolutions)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from models import MODELS

    ctor, example, _, _ = MODELS[name]
    torch.manual_seed(0)
    model = ctor().eval()
    inputs = tuple(t[:1].expand(batch, *t.shape[1:]).contiguous() for t in example())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*inputs)
    return float(counter.get_total_flops())


def ensure_model(name: str) -> str:
    from models import export

    CACHE.mkdir(exist_ok=True)
    path = CACHE / f"{name}.onnx"
    if not path.exists():
        export(name, str(path))
    return str(path)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mlp,resnet50,mobilenetv2,squeezenet,bert,gpt")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--min-round-ms", type=float, default=100.0,
                    help="more runs per round for fast models, until a round lasts this long")
    ap.add_argument("--gemm-sizes", default="1024,2048", help="N of the N^3 GEMM efficiency runs")
    ap.add_argument("--markdown", help="write the result table to this file")
    args = ap.parse_args()

    from pyflame_rt.bench import bench, bench_gemm
    from pyflame_rt.errors import PyFlameRTError

    gemms = []
    for n in (int(x) for x in args.gemm_sizes.split(",")):
        for threads in sorted({1, args.threads}):
            gemms.append(bench_gemm(n, threads))
            print(gemms[-1].report(), flush=True)
    peak = max(g.blas_gflops for g in gemms if g.threads == args.threads)
    print(f"fp32 GEMM peak (numpy, {args.threads} threads): {peak:.0f} GFLOP/s", flush=True)
    rows = []
    for name in args.models.split(","):
        path = ensure_model(name)
        for batch in (int(b) for b in args.batches.split(",")):
            try:
                r = bench(path, batch=batch, dims={"seq": 128}, threads=args.threads,
                          rounds=args.rounds, runs_per_round=args.runs, min_round_s=args.min_round_ms / 1e3)
            except PyFlameRTError as e:
                print(f"{name} batch {batch}: {type(e).__name__}: {e}", flush=True)
                rows.append((name, batch, None, None, None, None, None, f"{type(e).__name__}: {str(e)[:80]}"))
                continue
            print(r.report(), flush=True)
            floor_ms = model_flops(name, batch) / (peak * 1e9) * 1e3
            rows.append((name, batch, r.ours.median_ms, r.theirs.median_ms, r.ratio, floor_ms,
                         r.max_rel_error, ""))
    ratios = [r[4] for r in rows if r[4]]
    geo = float(np.exp(np.mean(np.log(ratios)))) if ratios else float("nan")
    table = render(rows, peak, args.threads, geo) + render_gemm(gemms)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


def render(rows, peak, threads, geo) -> str:
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    out = [f"Date {date.today()}, machine: {cpu}, {os.cpu_count()} cores, {threads} threads for both "
           f"runtimes; fp32 GEMM peak measured in the same run: {peak:.0f} GFLOP/s.", "",
           "| model | batch | PyFlameRT ms | onnxruntime ms | ratio | FLOP floor ms | ours / floor | max rel err | note |",
           "|---|---|---|---|---|---|---|---|---|"]
    for name, batch, ours, theirs, ratio, floor, err, note in rows:
        if ours is None:
            out.append(f"| {name} | {batch} | — | — | — | — | — | — | {note} |")
        else:
            out.append(f"| {name} | {batch} | {ours:.3f} | {theirs:.3f} | {ratio:.2f} | {floor:.3f} | "
                       f"{ours / floor:.1f}x | {err:.1e} | {note} |")
    out += ["", f"Geometric mean ratio (ours / onnxruntime, models that run): {geo:.2f}", ""]
    return "\n".join(out)


def render_gemm(gemms) -> str:
    out = ["", "## GEMM efficiency (fp32, compiled MatMul vs numpy/OpenBLAS, same process and thread count)", "",
           "| N (N^3) | threads | PyFlameRT GFLOP/s | OpenBLAS GFLOP/s | ours / OpenBLAS |", "|---|---|---|---|---|"]
    out += [f"| {g.n} | {g.threads} | {g.ours_gflops:.1f} | {g.blas_gflops:.1f} | {g.ratio:.2f} |" for g in gemms]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
