"""A Slice read only by Transposes (through Reshapes that split dims) is a strided view of its input:
attention's Split -> Reshape [.., heads, dim] -> Transpose copies once. Every other reader makes the
Slice copy. Compiled and compared with onnxruntime bit for bit."""
import numpy as np
import pytest
from onnx import helper

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.compiler import CompileOptions, compile_model


def _attention_split(extra_reader: str | None):
    """x [N, S, 3*H*D] -> Split -> Reshape [N, S, H, D] -> Transpose (q, v: 0213; k: 0231)."""
    h, d = 3, 8
    nodes = [helper.make_node("Split", ["x"], ["q", "k", "v"], axis=2, num_outputs=3)]
    for name, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
        nodes += [helper.make_node("Reshape", [name, "shape"], [f"{name}r"]),
                  helper.make_node("Transpose", [f"{name}r"], [f"{name}t"], perm=perm)]
    outputs = [("qt", ["N", h, "S", d]), ("kt", ["N", h, d, "S"]), ("vt", ["N", h, "S", d])]
    if extra_reader == "relu":  # q also feeds an elementwise op: it must be stored contiguously
        nodes.append(helper.make_node("Relu", ["q"], ["qrelu"]))
        outputs.append(("qrelu", ["N", "S", h * d]))
    elif extra_reader == "output":  # k is also a graph output
        outputs.append(("k", ["N", "S", h * d]))
    elif extra_reader == "merge":  # v reshaped to [N, S*H*D]: not a split of the slice's dims
        nodes.append(helper.make_node("Reshape", ["v", "flat"], ["vflat"]))
        outputs.append(("vflat", ["N", None]))
    inits = {"shape": np.array([0, 0, h, d], np.int64), "flat": np.array([0, -1], np.int64)}
    return make_model(nodes, [("x", ["N", "S", 3 * h * d])], outputs, inits, opset=18)


@pytest.mark.parametrize("extra_reader,copies", [(None, 0), ("relu", 1), ("output", 1), ("merge", 1)])
def test_split_for_attention_is_a_strided_view(extra_reader, copies, rng):
    model = _attention_split(extra_reader)
    kernels = compile_model(from_onnx(model), CompileOptions()).header["kernels"]
    assert sum(k.startswith("copy_r2") for k in kernels) == copies, kernels  # the Slice's own copy
    sess = InferenceSession(model.SerializeToString())
    for n, s in ((1, 1), (2, 5), (3, 17)):
        x = rng.standard_normal((n, s, 72)).astype(np.float32)
        for got, want in zip(sess.run(None, {"x": x}), ort_run(model, {"x": x})):
            np.testing.assert_array_equal(got, want)
