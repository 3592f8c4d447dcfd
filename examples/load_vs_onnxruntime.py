"""Cold start, side by side: load a compiled .pfm + first run vs onnxruntime session creation + first run.

    python examples/load_vs_onnxruntime.py [model.onnx] [--trials 3]

Without a model it builds a 4-layer MLP with 23M parameters. Every trial starts a fresh
process per engine (alternating), so imports, page faults and peak RSS are measured cold
in the interpreter and warm in the page cache. Dynamic dims are set to 1.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
engine, path = sys.argv[1], sys.argv[2]

def status_mb(field):  # VmHWM, unlike ru_maxrss, starts afresh at exec
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field)) / 1024

def rss_mb():
    return status_mb("VmRSS")

if engine == "ort":
    import onnxruntime as ort
    t1, base = time.perf_counter(), rss_mb()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
else:
    import pyflame_rt as rt
    t1, base = time.perf_counter(), rss_mb()
    sess = rt.InferenceSession(path)
t2 = time.perf_counter()
rng = np.random.default_rng(0)
feeds = {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
         for i in sess.get_inputs()}
sess.run(None, feeds)
t3 = time.perf_counter()
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "create_ms": (t2 - t1) * 1e3, "first_run_ms": (t3 - t2) * 1e3,
                  "rss_after_import_mb": base,
                  "peak_rss_mb": status_mb("VmHWM")}))
"""


def build_mlp(path: str) -> None:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper, save

    rng = np.random.default_rng(0)
    widths = [2048, 4096, 2048, 2048, 1000]
    nodes, inits, x = [], [], "x"
    for i, (k, n) in enumerate(zip(widths, widths[1:])):
        inits += [numpy_helper.from_array((rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32), f"w{i}"),
                  numpy_helper.from_array(np.zeros(n, np.float32), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [x, f"w{i}", f"b{i}"], [f"g{i}"], transB=1))
        x = f"g{i}"
        if i < len(widths) - 2:
            nodes.append(helper.make_node("Relu", [x], [f"r{i}"]))
            x = f"r{i}"
    nodes.append(helper.make_node("Identity", [x], ["y"]))
    graph = helper.make_graph(nodes, "mlp23m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2048])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, path)


def trial(engine: str, path: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, engine, path], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?")
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="pfm-load-")
    onnx_path = args.model or os.path.join(tmp, "mlp23m.onnx")
    if not args.model:
        build_mlp(onnx_path)
    pfm_path = os.path.join(tmp, "model.pfm")
    subprocess.run([sys.executable, "-m", "pyflame_rt.cli", "compile", "-q", onnx_path, "-o", pfm_path], check=True)
    runs: dict[str, list[dict]] = {"ort": [], "pfm": []}
    for _ in range(args.trials):
        runs["ort"].append(trial("ort", onnx_path))
        runs["pfm"].append(trial("pfm", pfm_path))
    med = {e: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for e, rs in runs.items()}
    for engine, m in med.items():
        print(f"{engine:4} " + "  ".join(f"{k} {v:8.1f}" for k, v in m.items()))
    load = {e: m["create_ms"] + m["first_run_ms"] for e, m in med.items()}
    print(f"create + first run: pfm {load['pfm']:.1f} ms, onnxruntime {load['ort']:.1f} ms, "
          f"ratio {load['ort'] / load['pfm']:.1f}x")
    print(f"peak RSS: pfm {med['pfm']['peak_rss_mb']:.0f} MB, onnxruntime {med['ort']['peak_rss_mb']:.0f} MB; "
          f"above the imports: pfm {med['pfm']['peak_rss_mb'] - med['pfm']['rss_after_import_mb']:.0f} MB, "
          f"onnxruntime {med['ort']['peak_rss_mb'] - med['ort']['rss_after_import_mb']:.0f} MB")


if __name__ == "__main__":
    main()
