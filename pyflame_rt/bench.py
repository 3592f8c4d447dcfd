"""Side-by-side latency of PyFlameRT and onnxruntime on one model, in one process.

Rounds interleave the two runtimes (alternating which goes first) so that drift on a
shared, noisy machine hits both equally; the reported numbers are medians over all
timed runs, and the ratio is ours / theirs (below 1.0 means we are faster).
With a `quantization` config our side is compiled in that precision (calibrated on the given
feeds for static INT8), and `compare="float32"` times it against our own float32 compile instead
of onnxruntime. `bench_gemm` measures a large fp32 MatMul against numpy's BLAS (the machine's
practical peak) the same way, at a fixed thread count for both.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from pyflame_rt.errors import BackendError, InputError
from pyflame_rt.options import QuantConfig, SessionOptions
from pyflame_rt.runtime import num_cores


@dataclass
class Timing:
    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int

    @staticmethod
    def of(samples: list[float]) -> "Timing":
        s = sorted(samples)
        pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]  # noqa: E731
        return Timing(statistics.median(s) * 1e3, pick(0.1) * 1e3, pick(0.9) * 1e3, len(s))


@dataclass
class BenchResult:
    model: str
    batch: int
    threads: int
    ours: Timing
    theirs: Timing | None = None
    compile_s: float = 0.0
    max_rel_error: float | None = None
    feeds_shapes: dict = field(default_factory=dict)
    baseline: str = "onnxruntime"  # what `theirs` timed: onnxruntime, or our float32 compile
    quantization: str | None = None  # our side's quantization mode

    @property
    def ratio(self) -> float | None:
        return self.ours.median_ms / self.theirs.median_ms if self.theirs else None

    def throughput(self, t: Timing) -> float:
        return self.batch / (t.median_ms / 1e3)

    def report(self) -> str:
        ours = "pyflame-rt" if self.quantization is None else f"pyflame-rt {self.quantization}"
        lines = [f"model {self.model}  batch {self.batch}  threads {self.threads}  "
                 f"inputs {self.feeds_shapes}",
                 f"  {ours:<12} median {self.ours.median_ms:9.3f} ms  p10 {self.ours.p10_ms:.3f}  "
                 f"p90 {self.ours.p90_ms:.3f}  {self.throughput(self.ours):10.1f} samples/s  ({self.ours.runs} runs)"
                 + (f"  (compile {self.compile_s:.2f} s)" if self.compile_s else "")]
        if self.theirs:
            theirs = "pyflame-rt float32" if self.baseline == "float32" else self.baseline
            lines.append(f"  {theirs:<12} median {self.theirs.median_ms:9.3f} ms  p10 {self.theirs.p10_ms:.3f}  "
                         f"p90 {self.theirs.p90_ms:.3f}  {self.throughput(self.theirs):10.1f} samples/s")
            lines.append(f"  ratio ours/{self.baseline} {self.ratio:.3f}   max relative error {self.max_rel_error:.2e}")
        return "\n".join(lines)


def make_feeds(inputs, batch: int, dims: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Random feeds: the first dynamic dim of each input is the batch, others come from `dims`."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        shape = []
        for axis, d in enumerate(spec.shape):
            if isinstance(d, int):
                shape.append(d)
            elif d in dims:
                shape.append(dims[d])
            elif axis == 0:
                shape.append(batch)
            else:
                raise InputError(f"input '{spec.name}' dim {axis} ('{d}') is dynamic: give it with --dim {d}=N")
        if spec.type == "tensor(float)":
            feeds[spec.name] = rng.standard_normal(shape).astype(np.float32)
        elif spec.type in ("tensor(int64)", "tensor(int32)"):
            feeds[spec.name] = rng.integers(0, 2, shape).astype(np.int64 if "64" in spec.type else np.int32)
        elif spec.type == "tensor(bool)":
            feeds[spec.name] = np.ones(shape, dtype=bool)
        else:
            raise InputError(f"cannot make random data for input '{spec.name}' of {spec.type}")
    return feeds


# pause before each block of timed runs: both runtimes' worker threads spin for a while after
# their last run, and a spinner of one would otherwise take a core from the other's next block
# (measured: the MLP at batch 8 timed 0.45 ms right after onnxruntime's block, 0.29 ms alone)
SETTLE_S = 0.05


def _settled_best(fn, n: int = 5) -> float:
    """The fastest of n runs after the settling pause (another runtime's spinners would slow them)."""
    time.sleep(SETTLE_S)
    return min(_time(fn, n))


def _time(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def bench(model: str, batch: int = 1, dims: dict[str, int] | None = None, threads: int = 0,
          rounds: int = 5, runs_per_round: int = 10, warmup: int = 3, compare: str | None = "onnxruntime",
          onnx_path: str | None = None, min_round_s: float = 0.0, quantization: QuantConfig | None = None,
          calibration: list[dict] | None = None) -> BenchResult:
    """Median latencies over `rounds` interleaved rounds of `runs_per_round` runs per runtime, or more
    runs when a round would last less than `min_round_s` (a 0.15 ms model needs hundreds of
    samples for a stable median on a shared machine; both runtimes get the same count).
    `quantization` compiles ours in reduced precision (onnxruntime runs the given model)."""
    from pyflame_rt.session import InferenceSession

    threads = threads or num_cores()
    t0 = time.perf_counter()
    options = SessionOptions(num_threads=threads, quantization=quantization)
    if calibration:
        batches = iter(calibration)
        options.calibration_data, options.calibration_batches = lambda: next(batches), len(calibration)
    ours = InferenceSession(model, options)
    compile_s = time.perf_counter() - t0 if not model.endswith(".pfm") else 0.0
    feeds = make_feeds(ours.get_inputs(), batch, dims or {})
    run_ours = lambda: ours.run(None, feeds)  # noqa: E731
    theirs = None
    if compare:
        if compare not in ("onnxruntime", "float32"):
            raise InputError(f"--compare supports onnxruntime and float32, not '{compare}'")
        src = onnx_path or model
        if src.endswith(".pfm"):
            raise InputError("comparing a .pfm artifact needs the source model: pass --onnx MODEL.onnx")
        if compare == "float32":
            theirs = InferenceSession(src, SessionOptions(num_threads=threads))
        else:
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.intra_op_num_threads = threads
            so.inter_op_num_threads = 1
            theirs = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        run_theirs = lambda: theirs.run(None, feeds)  # noqa: E731
    for _ in range(warmup):
        run_ours()
        if theirs:
            run_theirs()
    if min_round_s > 0:
        slowest = max(_settled_best(fn) for fn in ([run_ours, run_theirs] if theirs else [run_ours]))
        runs_per_round = max(runs_per_round, int(min_round_s / max(slowest, 1e-6)))
    ours_t, theirs_t = [], []
    for r in range(rounds):
        order = [(run_ours, ours_t)] + ([(run_theirs, theirs_t)] if theirs else [])
        for fn, sink in (order if r % 2 == 0 else order[::-1]):
            time.sleep(SETTLE_S)
            sink.extend(_time(fn, runs_per_round))
    result = BenchResult(model, batch, threads, Timing.of(ours_t), compile_s=compile_s,
                         feeds_shapes={k: list(v.shape) for k, v in feeds.items()}, baseline=compare or "onnxruntime",
                         quantization=ours.quantization_report().mode if ours.is_quantized() else None)
    if theirs:
        result.theirs = Timing.of(theirs_t)
        errs = []
        for a, b in zip(run_ours(), run_theirs()):
            scale = max(float(np.abs(b).max()), 1e-6) if b.size else 1.0
            errs.append(float(np.abs(a.astype(np.float64) - b).max()) / scale if b.size else 0.0)
        result.max_rel_error = max(errs, default=0.0)
    return result


@dataclass
class GemmResult:
    n: int
    threads: int
    ours_gflops: float
    blas_gflops: float

    @property
    def ratio(self) -> float:
        """Our GFLOP/s as a fraction of the BLAS peak (1.0 = as fast as OpenBLAS)."""
        return self.ours_gflops / self.blas_gflops

    def report(self) -> str:
        return (f"gemm {self.n}^3  threads {self.threads}  pyflame-rt {self.ours_gflops:7.1f} GFLOP/s  "
                f"numpy BLAS {self.blas_gflops:7.1f} GFLOP/s  ratio {self.ratio:.3f}")


def gemm_model(n: int, seed: int = 0):
    """MatMul of an [n, n] input by a constant [n, n] weight (packed at compile time)."""
    from onnx import TensorProto, helper, numpy_helper

    b = np.random.default_rng(seed).standard_normal((n, n)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], f"gemm{n}",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, n])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
                              [numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, b


def bench_gemm(n: int, threads: int, rounds: int = 5, runs_per_round: int = 3) -> GemmResult:
    """Best GFLOP/s of our compiled MatMul and of numpy's `a @ b` (OpenBLAS) with the same
    thread count, interleaved rounds; the result is checked against numpy."""
    from threadpoolctl import threadpool_limits

    from pyflame_rt.session import InferenceSession

    model, b = gemm_model(n)
    ours = InferenceSession(model, SessionOptions(num_threads=threads))
    a = np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)
    feeds = {"a": a}
    with threadpool_limits(threads):
        want = a @ b
        got = ours.run(None, feeds)[0]
        err = float(np.abs(got - want).max()) / float(np.abs(want).max())
        if err > 1e-4:
            raise BackendError(f"gemm {n}: compiled MatMul is off by {err:.2e} (relative) from numpy")
        ours_t, blas_t = [], []
        for r in range(rounds):
            order = [(lambda: ours.run(None, feeds), ours_t), (lambda: a @ b, blas_t)]
            for fn, sink in (order if r % 2 == 0 else order[::-1]):
                sink.extend(_time(fn, runs_per_round))
    flop = 2.0 * n ** 3 / 1e9
    return GemmResult(n, threads, flop / min(ours_t), flop / min(blas_t))
