"""Build examples/mlp.onnx: a 784-128-64-10 MLP with a dynamic batch dim (onnx.helper, fixed seed).

    python examples/build_mlp.py [OUT.onnx] [--hidden 128,64]
"""
from __future__ import annotations

import argparse

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build_mlp(sizes: list[int], seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes, inits = [], []
    x = "input"
    nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
    x = "flat"
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.standard_normal((fan_out, fan_in)).astype(np.float32) * np.float32(np.sqrt(2.0 / fan_in))
        b = rng.standard_normal(fan_out).astype(np.float32) * np.float32(0.01)
        inits += [numpy_helper.from_array(w, f"fc{i}.weight"), numpy_helper.from_array(b, f"fc{i}.bias")]
        y = f"fc{i}" if i < len(sizes) - 2 else "logits"
        nodes.append(helper.make_node("Gemm", [x, f"fc{i}.weight", f"fc{i}.bias"], [y], transB=1))
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [y], [f"relu{i}"]))
            y = f"relu{i}"
        x = y
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", sizes[-1]])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="pyflame-rt examples")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("output", nargs="?", default="examples/mlp.onnx")
    ap.add_argument("--hidden", default="128,64")
    args = ap.parse_args()
    sizes = [784, *[int(h) for h in args.hidden.split(",")], 10]
    onnx.save(build_mlp(sizes), args.output)
    print(f"wrote {args.output} ({'-'.join(map(str, sizes))} MLP)")
