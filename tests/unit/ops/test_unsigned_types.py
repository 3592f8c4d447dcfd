"""uint8 / uint16 / uint32 / uint64 tensors compiled to native code vs onnxruntime (numpy where onnxruntime has
no kernel): the integer kernels in their unsigned forms (division, compares, right shifts, widening,
conversion to float of values >= 2**63)."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession

BINARY = ["Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "BitwiseAnd", "BitwiseXor", "BitShift"]
COMPARES = ["Equal", "Less", "GreaterOrEqual"]


def _model(dtype):
    shape, onnx_type = [4, 9], helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    nodes = [helper.make_node(op, ["x", "y"], [op], **({"direction": "RIGHT"} if op == "BitShift" else {}))
             for op in BINARY + COMPARES]
    nodes += [helper.make_node("BitwiseNot", ["x"], ["BitwiseNot"]),
              helper.make_node("ReduceMax", ["x", "axes"], ["ReduceMax"], keepdims=0),
              helper.make_node("ReduceMin", ["x", "axes"], ["ReduceMin"], keepdims=0),
              helper.make_node("Cast", ["x"], ["to_f32"], to=TensorProto.FLOAT),
              helper.make_node("Cast", ["x"], ["to_f64"], to=TensorProto.DOUBLE),
              helper.make_node("Cast", ["x"], ["to_i64"], to=TensorProto.INT64),
              helper.make_node("Cast", ["f"], ["from_f32"], to=onnx_type),
              helper.make_node("Transpose", ["x"], ["Transpose"], perm=[1, 0]),
              helper.make_node("Gather", ["x", "i"], ["Gather"], axis=1),
              helper.make_node("Concat", ["x", "x"], ["Concat"], axis=0)]
    outputs = [(op, shape, dtype) for op in BINARY + ["BitwiseNot"]] + [(op, shape, np.bool_) for op in COMPARES]
    outputs += [("ReduceMax", [4], dtype), ("ReduceMin", [4], dtype), ("to_f32", shape, np.float32), ("to_f64", shape, np.float64),
                ("to_i64", shape, np.int64), ("from_f32", shape, dtype), ("Transpose", [9, 4], dtype),
                ("Gather", [4, 3], dtype), ("Concat", [8, 9], dtype)]
    inputs = [("x", shape, dtype), ("y", [9], dtype), ("f", shape, np.float32), ("i", [3], np.int64)]
    return make_model(nodes, inputs, outputs, {"axes": np.array([1])}, opset=18), [o[0] for o in outputs]


@pytest.mark.parametrize("dtype", [np.uint64, *(pytest.param(t, marks=pytest.mark.slow)  # ~7 s each
                                                for t in (np.uint8, np.uint16, np.uint32))])
def test_unsigned_ops_match_onnxruntime(rng, dtype):
    info = np.iinfo(dtype)
    x = rng.integers(0, info.max, (4, 9), dtype=dtype, endpoint=True)
    x[0, :3] = [info.max, info.max - 1, 0]  # the top bit set: wrong in any signed form
    x[1] = np.arange(9)  # a max below the signed midpoint: wrong from a signed identity
    x[2] = info.max - np.arange(9, dtype=dtype)  # a min above it, likewise
    y = rng.integers(1, info.max, 9, dtype=dtype)
    y[:3] = [1, 7, info.max]
    y[3:] %= info.bits  # shift amounts in range
    y[3:] += 1
    feeds = {"x": x, "y": y, "f": rng.uniform(0, min(info.max, 2**40), (4, 9)).astype(np.float32),
             "i": np.array([8, 0, 3], np.int64)}
    model, names = _model(dtype)
    got = dict(zip(names, InferenceSession(model.SerializeToString()).run(None, feeds)))
    numpy = dict(Max=np.maximum(x, y), Min=np.minimum(x, y), BitwiseAnd=x & y, BitwiseXor=x ^ y, BitwiseNot=~x,
                 Mod=x % y, ReduceMax=x.max(axis=1), ReduceMin=x.min(axis=1))  # onnxruntime lacks some of these kernels
    want = dict(zip([n for n in names if n not in numpy], ort_run(_strip(model, numpy), feeds)), **numpy)
    for name in names:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def _strip(model, ops):
    """The model without the nodes (and outputs) of `ops`."""
    m = type(model)()
    m.CopyFrom(model)
    keep = [n for n in m.graph.node if n.op_type not in ops]
    del m.graph.node[:]
    m.graph.node.extend(keep)
    outs = [o for o in m.graph.output if o.name not in ops]
    del m.graph.output[:]
    m.graph.output.extend(outs)
    return m
