"""Small float32 models for the quantization tests, built with onnx.helper."""
import numpy as np
from onnx import helper

from conftest import make_model


def mlp(rng) -> tuple:
    """x[batch, 8] -> MatMul -> Add -> Relu -> MatMul -> Softmax; and its weights."""
    w = {"w1": rng.standard_normal((8, 16)).astype(np.float32), "b1": rng.standard_normal(16).astype(np.float32),
         "w2": rng.standard_normal((16, 4)).astype(np.float32)}
    model = make_model([helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
                        helper.make_node("Add", ["h", "b1"], ["hb"], name="add1"),
                        helper.make_node("Relu", ["hb"], ["r"], name="relu"),
                        helper.make_node("MatMul", ["r", "w2"], ["z"], name="mm2"),
                        helper.make_node("Softmax", ["z"], ["y"], name="sm", axis=-1)],
                       [("x", ["batch", 8])], [("y", ["batch", 4])], w)
    return model, w


def cnn(rng):
    """x[batch, 3, 16, 16] -> Conv/Relu -> Conv -> + residual -> Relu -> GlobalAveragePool -> Gemm."""
    w = {"c1": rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3,
         "c1b": rng.standard_normal(8).astype(np.float32) * 0.1,
         "c2": rng.standard_normal((8, 8, 3, 3)).astype(np.float32) * 0.15,
         "fc": rng.standard_normal((10, 8)).astype(np.float32), "fcb": rng.standard_normal(10).astype(np.float32)}
    return make_model([helper.make_node("Conv", ["x", "c1", "c1b"], ["a"], name="conv1", pads=[1, 1, 1, 1]),
                       helper.make_node("Relu", ["a"], ["ar"], name="relu1"),
                       helper.make_node("Conv", ["ar", "c2"], ["b"], name="conv2", pads=[1, 1, 1, 1]),
                       helper.make_node("Add", ["b", "ar"], ["s"], name="residual"),
                       helper.make_node("Relu", ["s"], ["sr"], name="relu2"),
                       helper.make_node("GlobalAveragePool", ["sr"], ["p"], name="gap"),
                       helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
                       helper.make_node("Gemm", ["f", "fc", "fcb"], ["y"], name="fc", transB=1)],
                      [("x", ["batch", 3, 16, 16])], [("y", ["batch", 10])], w)


def matmul_layer_norm(rng):
    """x[batch, 16] -> MatMul -> LayerNorm as exporters decompose it (ReduceMean, Sub, Pow,
    ReduceMean, Add, Sqrt, Div, Mul, Add)."""
    w = {"w": rng.standard_normal((16, 16)).astype(np.float32), "two": np.array(2.0, np.float32),
         "eps": np.array(1e-5, np.float32), "gamma": rng.standard_normal(16).astype(np.float32),
         "beta": rng.standard_normal(16).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
             helper.make_node("ReduceMean", ["h"], ["mean"], axes=[-1], name="mean"),
             helper.make_node("Sub", ["h", "mean"], ["d"], name="sub"),
             helper.make_node("Pow", ["d", "two"], ["sq"], name="pow"),
             helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1], name="var"),
             helper.make_node("Add", ["var", "eps"], ["ve"], name="add_eps"),
             helper.make_node("Sqrt", ["ve"], ["std"], name="sqrt"),
             helper.make_node("Div", ["d", "std"], ["n"], name="div"),
             helper.make_node("Mul", ["n", "gamma"], ["s"], name="scale"),
             helper.make_node("Add", ["s", "beta"], ["y"], name="shift")]
    return make_model(nodes, [("x", ["batch", 16])], [("y", ["batch", 16])], w, opset=17)
