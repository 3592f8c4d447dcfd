"""Dynamic batching, measured (BENCHMARKS.md, "Issue 23: dynamic batching").

`throughput`: N client threads send batch-1 requests of a benchmarks/models.py model for a fixed time,
straight to `InferenceSession.run` or through a `DynamicBatcher`, in alternating rounds; prints the
medians of requests/s and of the rounds' p50 / p99 latencies, and the run time of one batch of the
batcher's mean batch size.
`stress`: requests through a PriorityBatcher from many threads with random cancellations and
timeouts; checks that none is lost or duplicated and that every output equals a direct run (up to
float rounding), and prints the process's RSS as it goes.

    python benchmarks/batching.py throughput --model mobilenetv2 --clients 64 --seconds 10 --rounds 3
    python benchmarks/batching.py stress --requests 100000
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pyflame_rt  # noqa: E402
from pyflame_rt.batching import BatchConfig, DynamicBatcher, PriorityBatcher  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def closed_loop(call, feeds, clients: int, seconds: float) -> tuple[float, list[float]]:
    """clients threads calling call(feeds) back to back for `seconds`: (requests/s, latencies ms)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds

    def client(k):
        while time.perf_counter() < stop:
            t = time.perf_counter()
            call(feeds)
            latencies[k].append((time.perf_counter() - t) * 1e3)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [x for per in latencies for x in per]
    return len(flat) / (time.perf_counter() - start), flat


def throughput(args) -> None:
    models = __import__("models")
    path = os.path.join(tempfile.mkdtemp(), f"{args.model}.onnx")
    models.export(args.model, path)
    sess = pyflame_rt.InferenceSession(path)
    spec = sess.get_inputs()[0]
    shape = [1 if isinstance(d, str) else d for d in spec.shape]
    feeds = {spec.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
    config = BatchConfig(max_batch_size=args.max_batch, max_latency_us=args.max_latency_us,
                         queue_capacity=4 * args.clients)
    sess.run(None, feeds)
    results = {"direct": [], "batched": []}
    batch_sizes = []
    for _ in range(args.rounds):
        results["direct"].append(closed_loop(lambda f: sess.run(None, f), feeds, args.clients, args.seconds))
        with DynamicBatcher(sess, config) as b:
            results["batched"].append(closed_loop(b.infer, feeds, args.clients, args.seconds))
        batch_sizes.append(b.get_stats().avg_batch_size)
    mean_batch = round(statistics.median(batch_sizes))
    big = {spec.name: np.repeat(feeds[spec.name], mean_batch, axis=0)}
    sess.run(None, big)
    batch_ms = statistics.median(_time_ms(lambda: sess.run(None, big)) for _ in range(5))
    print(f"{args.model}, {args.clients} clients x batch 1, {args.rounds} rounds of {args.seconds} s, "
          f"max_batch_size={args.max_batch}, max_latency_us={args.max_latency_us}, cores={os.cpu_count()}")
    for mode, rounds in results.items():
        rps = statistics.median(r for r, _ in rounds)
        p50 = statistics.median(float(np.percentile(lat, 50)) for _, lat in rounds)
        p99 = statistics.median(float(np.percentile(lat, 99)) for _, lat in rounds)
        print(f"  {mode:8s} {rps:8.1f} req/s  p50 {p50:8.1f} ms  p99 {p99:8.1f} ms  "
              f"(rounds: {', '.join(f'{r:.1f}' for r, _ in rounds)})")
    ratio = statistics.median(r for r, _ in results["batched"]) / statistics.median(r for r, _ in results["direct"])
    print(f"  batched / direct throughput: {ratio:.2f}x; mean batch size {statistics.median(batch_sizes):.1f}; "
          f"one batch of {mean_batch} runs in {batch_ms:.1f} ms; bound max_latency + batch = "
          f"{args.max_latency_us / 1e3 + batch_ms:.1f} ms")


def _time_ms(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def stress(args) -> None:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((64, 32)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])], "stress",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 32])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = pyflame_rt.InferenceSession(model)
    xs = rng.standard_normal((args.requests, 64)).astype(np.float32)
    expected = sess.run(None, {"x": xs})[0]
    config = BatchConfig(max_batch_size=32, max_latency_us=500, queue_capacity=1024, num_workers=2)  # back-pressure
    outcome = np.zeros(args.requests, np.int64)  # 1 ok, 2 cancelled, 3 timed out, 4 failed; 10+: twice
    worst = [0.0]
    lock = threading.Lock()

    def record(i, f):
        """Without raising: a raised exception's traceback would tie it to this frame in a cycle."""
        if f.cancelled():
            code = 2
        elif f.exception() is not None:
            code = 3 if isinstance(f.exception(), pyflame_rt.RunTimeoutError) else 4
        else:
            y = f.result()["y"][0]
            err = float(np.abs(y - expected[i]).max() / max(np.abs(expected[i]).max(), 1e-6))
            code = 1
            with lock:
                worst[0] = max(worst[0], err)
        outcome[i] = code if outcome[i] == 0 else 10 + code

    start, rss = time.perf_counter(), [rss_mb()]
    with PriorityBatcher(sess, config) as b:
        def client(k):
            r = random.Random(k)
            for i in range(k, args.requests, args.clients):
                while True:
                    try:
                        f = b.submit_priority({"x": xs[i:i + 1]}, r.randrange(4), timeout_us=r.choice([0, 0, 0, 200]))
                        break
                    except pyflame_rt.QueueFullError:
                        time.sleep(0.001)
                f.add_done_callback(lambda f, i=i: record(i, f))
                if r.random() < 0.1:
                    f.cancel()
                if k == 0 and i % (args.requests // 10) < args.clients:
                    rss.append(rss_mb())

        threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        while b.get_stats().pending_requests:
            time.sleep(0.01)
        stats = b.get_stats()
    rss.append(rss_mb())
    names = {1: "ok", 2: "cancelled", 3: "timed out", 4: "failed"}
    counts = {name: int((outcome == code).sum()) for code, name in names.items()}
    print(f"{args.requests} requests from {args.clients} threads in {time.perf_counter() - start:.1f} s: {counts}; "
          f"lost {int((outcome == 0).sum())}, delivered twice {int((outcome >= 10).sum())}; "
          f"max relative error vs a direct run {worst[0]:.2g}")
    print(f"  batcher stats: completed {stats.completed_requests}, cancelled {stats.cancelled_requests}, timed out "
          f"{stats.timed_out_requests}, failed {stats.failed_requests}, batches {stats.total_batches}, "
          f"mean batch {stats.avg_batch_size:.1f}")
    print(f"  RSS MB over the run: {', '.join(f'{m:.0f}' for m in rss)}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("throughput")
    t.add_argument("--model", default="mobilenetv2")
    t.add_argument("--clients", type=int, default=64)
    t.add_argument("--seconds", type=float, default=10)
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("--max-batch", type=int, default=32)
    t.add_argument("--max-latency-us", type=int, default=2000)
    s = sub.add_parser("stress")
    s.add_argument("--requests", type=int, default=100_000)
    s.add_argument("--clients", type=int, default=16)
    args = p.parse_args()
    throughput(args) if args.cmd == "throughput" else stress(args)


if __name__ == "__main__":
    main()
