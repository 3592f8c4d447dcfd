"""optimize-layout and the channels-last (NHWC) CPU kernels, compiled and compared with onnxruntime."""
import numpy as np
import onnx
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run, repo_module
from pyflame_rt import InferenceSession, OptLevel, SessionOptions, opt
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.dialects import graph
from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.dialects.graph_attrs import ActivationAttr
from pyflame_rt.dtype import DType
from pyflame_rt.dialects.reference import evaluate
from pyflame_rt.errors import ShapeMismatchError


def _x(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def _layout_ops(model) -> list[str]:
    """(op name, layout) of every layout-carrying op after the ALL pipeline, and the transposes."""
    res = from_onnx(model)
    opt.optimize(res, OptLevel.ALL)
    out = []
    for op in graph.entry_function(res.module).body.block.ops:
        layout = op.properties.get("layout")
        if layout is not None or op.name == "graph.transpose":
            out.append(f"{op.name.split('.')[1]}:{layout.data if layout is not None else ''}")
    return out


def _check(model, batches, converted=True, rtol=1e-4):
    """Compile with the layout pass (level ALL), compare each batch size with onnxruntime; the
    reference evaluator on the optimized (NHWC) graph agrees too."""
    ops = _layout_ops(model)
    assert any(o.endswith(":NHWC") for o in ops) == converted, ops
    sess = InferenceSession(model.SerializeToString(), SessionOptions(optimization_level=OptLevel.ALL))
    x = model.graph.input[0].type.tensor_type.shape.dim
    rng = np.random.default_rng(7)
    res = from_onnx(model)
    opt.optimize(res, OptLevel.ALL)
    for b in batches:
        feed = {"x": _x(rng, b, *[d.dim_value for d in x[1:]])}
        want = ort_run(model, feed)
        for got, w in zip(sess.run(None, feed), want):
            assert_close(got, w, rtol)
        for got, w in zip(evaluate(res.module, res.weights, feed), want):
            assert_close(got, w, rtol)
    return ops


def _single(op, x_shape, rng, attrs=None, inits=None, extra=(), batches=(1, 3), converted=True):
    node = helper.make_node(op, ["x", *extra], ["y"], **(attrs or {}))
    m = make_model([node], [("x", ["N", *x_shape])], [("y", ["N", None, None, None])], dict(inits or {}))
    return _check(m, batches, converted)


CONV_CASES = [  # (C in, M out, kernel, attrs): odd channel counts, strides, dilations, asymmetric pads
    (13, 21, 1, {}),
    (13, 21, 1, dict(strides=[2, 2])),
    (5, 8, 3, dict(pads=[1, 1, 1, 1])),
    (3, 17, 3, dict(strides=[2, 2], pads=[1, 1, 1, 1])),
    (6, 9, 3, dict(strides=[2, 1], dilations=[2, 1], pads=[0, 2, 1, 0])),
    (4, 10, 5, dict(pads=[2, 2, 2, 2], dilations=[2, 2])),
    (3, 16, 7, dict(strides=[2, 2], pads=[3, 3, 3, 3])),
    # K = 900 and 5400: the GEMM's 512-deep K slices end inside a tap (and inside C)
    (100, 20, 3, dict(pads=[1, 1, 1, 1])),
    (600, 8, 3, dict(strides=[2, 2], pads=[0, 1, 1, 0])),
]


@pytest.mark.parametrize("cin,cout,k,attrs", CONV_CASES)
@pytest.mark.slow
def test_conv_nhwc_gemm(cin, cout, k, attrs, rng):
    ops = _single("Conv", (cin, 11, 12), rng, attrs, {"w": _x(rng, cout, cin, k, k), "b": _x(rng, cout)},
                  ["w", "b"])
    assert ops == ["transpose:", "conv:NHWC", "transpose:"]


@pytest.mark.parametrize("c,attrs", [
    (13, dict(pads=[1, 1, 1, 1])),
    (16, dict(strides=[2, 2], pads=[1, 1, 1, 1])),
    (24, dict(strides=[2, 2], pads=[0, 1, 0, 1])),
    (9, dict(dilations=[2, 2], pads=[2, 2, 2, 2])),
    (11, dict(strides=[3, 2], dilations=[1, 2], pads=[2, 0, 1, 3])),
    (8, {}),
])
@pytest.mark.slow
def test_depthwise_conv_nhwc(c, attrs, rng):
    _single("Conv", (c, 10, 9), rng, dict(group=c, **attrs), {"w": _x(rng, c, 1, 3, 3), "b": _x(rng, c)},
            ["w", "b"])


@pytest.mark.parametrize("hi", [1.5, 6.0])
@pytest.mark.slow
def test_conv_relu_and_clip_run_in_the_nhwc_chain(hi, rng):
    """Conv+Relu keeps its fused epilogue; Clip(0, 6) becomes the depthwise conv's relu6, another
    Clip its clip(0, hi)."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"]), helper.make_node("Relu", ["c1"], ["r"]),
             helper.make_node("Conv", ["r", "wd"], ["c2"], group=12, strides=[2, 2], pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c2", "lo", "hi"], ["cl"]),
             helper.make_node("Conv", ["cl", "w3", "b3"], ["y"])]
    inits = {"w1": _x(rng, 12, 5, 1, 1), "b1": _x(rng, 12), "wd": _x(rng, 12, 1, 3, 3), "w3": _x(rng, 7, 12, 1, 1),
             "b3": _x(rng, 7), "lo": np.array(0, np.float32), "hi": np.array(hi, np.float32)}
    m = make_model(nodes, [("x", ["N", 5, 14, 14])], [("y", ["N", 7, 7, 7])], inits)
    assert _check(m, (1, 2)) == ["transpose:", "conv:NHWC", "conv:NHWC", "conv:NHWC", "transpose:"]
    res = from_onnx(m)
    opt.optimize(res)
    convs = [op for op in graph.entry_function(res.module).body.block.ops if op.name == "graph.conv"]
    assert [graph.activation_of(c) for c in convs] == [
        ActivationAttr("relu"), ActivationAttr("relu6") if hi == 6.0 else ActivationAttr("clip", [0.0, 1.5]), None]


def opt_ops(model) -> list[str]:
    res = from_onnx(model)
    opt.optimize(res)
    return [op.name for op in graph.entry_function(res.module).body.block.ops]


def test_relu6_epilogues_of_nchw_convs_and_adds(rng):
    """Clip(0, 6) fused into a grouped (NCHW) conv's GEMM epilogue and into an elementwise Add."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], group=2, pads=[1, 1, 1, 1]),
             helper.make_node("Clip", ["c", "lo", "hi"], ["c6"]), helper.make_node("Add", ["c6", "x"], ["s"]),
             helper.make_node("Clip", ["s", "lo", "hi"], ["y"])]
    inits = {"w": 3 * _x(rng, 6, 3, 3, 3), "lo": np.array(0, np.float32), "hi": np.array(6, np.float32)}
    m = make_model(nodes, [("x", ["N", 6, 7, 7])], [("y", ["N", 6, 7, 7])], inits)
    assert "graph.clip" not in opt_ops(m)
    _check(m, (1, 2), converted=False)


@pytest.mark.parametrize("op,attrs", [
    ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)),
    ("MaxPool", dict(kernel_shape=[3, 2], dilations=[2, 1], strides=[1, 2], pads=[1, 0, 2, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])),
    ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1, ceil_mode=1)),
    ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2])),
])
@pytest.mark.slow
def test_pool_nhwc(op, attrs, rng):
    _single(op, (13, 13, 12), rng, attrs)


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
def test_global_pool_nhwc(op, rng):
    """The NHWC result [N, 1, 1, C] goes back to NCHW as a view (only size-1 dims move)."""
    nodes = [helper.make_node(op, ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["y"])]
    m = make_model(nodes, [("x", ["N", 19, 6, 5])], [("y", ["N", 19])])
    _check(m, (1, 4))


@pytest.mark.slow
def test_concat_and_residual_add_stay_channels_last(rng):
    """A fire module (SqueezeNet) and a residual add: transposes only at the ends."""
    nodes = [helper.make_node("Conv", ["x", "ws", "bs"], ["s"]), helper.make_node("Relu", ["s"], ["sr"]),
             helper.make_node("Conv", ["sr", "we1"], ["e1"]),
             helper.make_node("Conv", ["sr", "we3"], ["e3"], pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["e1", "e3"], ["cat"], axis=1),
             helper.make_node("Add", ["cat", "x"], ["sum"]), helper.make_node("Mul", ["sum", "scale"], ["y0"]),
             helper.make_node("MaxPool", ["y0"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    inits = {"ws": _x(rng, 3, 10, 1, 1), "bs": _x(rng, 3), "we1": _x(rng, 4, 3, 1, 1), "we3": _x(rng, 6, 3, 3, 3),
             "scale": _x(rng, 10, 1, 1)}
    m = make_model(nodes, [("x", ["N", 10, 8, 8])], [("y", ["N", 10, 4, 4])], inits)
    ops = _check(m, (1, 2))
    assert ops.count("transpose:") == 2 and ops.count("conv:NHWC") == 3


@pytest.mark.slow
def test_convs_write_their_channel_slices_of_a_concat(rng):
    """Convs whose only use is a channels-last Concat store into their slice of its output (row
    stride = all channels); the Concat copies only the other inputs: the squeeze output s (three
    uses) and e2, which is also a graph output."""
    nodes = [helper.make_node("Conv", ["x", "ws", "bs"], ["s"]),
             helper.make_node("Conv", ["s", "we1"], ["e1"]),
             helper.make_node("Conv", ["s", "we3", "be3"], ["e3"], pads=[1, 0, 1, 2]),
             helper.make_node("Conv", ["s", "we2"], ["e2"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["e3"], ["r3"]),
             helper.make_node("Concat", ["e1", "s", "r3", "e2"], ["y"], axis=1)]
    inits = {"ws": _x(rng, 5, 7, 1, 1), "bs": _x(rng, 5), "we1": _x(rng, 9, 5, 1, 1), "we3": _x(rng, 11, 5, 3, 3),
             "be3": _x(rng, 11), "we2": _x(rng, 3, 5, 3, 3)}
    m = make_model(nodes, [("x", ["N", 7, 9, 10])], [("y", ["N", 28, 9, 10]), ("e2", ["N", 3, 9, 10])], inits)
    _check(m, (1, 3))
    sess = InferenceSession(m.SerializeToString(), SessionOptions(optimization_level=OptLevel.ALL))
    concat_steps = [s for s in sess.header["step_ops"] if s.startswith("concat")]
    assert len(concat_steps) == 2, sess.header["step_ops"]


@pytest.mark.parametrize("k,group,pads", [(1, 1, [0] * 4), (3, 1, [1] * 4), (3, 14, [1] * 4)])
@pytest.mark.slow
def test_residual_conv_nhwc(k, group, pads, rng):
    """relu(conv(x) + x): fuse-residual-add puts x into the conv's epilogue, in NHWC like the result."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], group=group, pads=pads),
             helper.make_node("Add", ["c", "x"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    m = make_model(nodes, [("x", ["N", 14, 9, 7])], [("y", ["N", 14, 9, 7])],
                   {"w": _x(rng, 14, 14 // group, k, k), "b": _x(rng, 14)})
    assert _check(m, (1, 2)) == ["transpose:", "conv:NHWC", "transpose:"]


def test_ops_without_nhwc_kernels_stay_nchw(rng):
    """Grouped conv with several channels per group: no conversion, no transposes."""
    ops = _single("Conv", (6, 8, 8), rng, dict(group=2, pads=[1, 1, 1, 1]), {"w": _x(rng, 4, 3, 3, 3)}, ["w"],
                  converted=False)
    assert ops == ["conv:NCHW"]


def test_nhwc_shape_inference_and_verifier():

    x = graph.tensor_type((2, 9, 10, 4), DType.FLOAT32)
    w = graph.ConstantOp(graph.tensor_type((6, 4, 3, 3), DType.FLOAT32), weight="w")
    inp = graph.ConstantOp(x, weight="x")
    conv = nn.ConvOp(inp.result, w.result, None, graph.tensor_type((2, 5, 5, 6), DType.FLOAT32),
                     strides=[2, 2], dilations=[1, 1], pads=[1, 1, 1, 1], layout="NHWC")
    conv.verify()
    assert conv.infer_shapes([(2, 9, 10, 4), (6, 4, 3, 3)]) == [(2, 5, 5, 6)]
    pool = nn.GlobalAveragePoolOp(inp.result, graph.tensor_type((2, 1, 1, 4), DType.FLOAT32), layout="NHWC")
    pool.verify()
    with pytest.raises(ShapeMismatchError, match="layout must be one of NCHW, NHWC, got 'NCWH'"):
        nn.MaxPoolOp(inp.result, graph.tensor_type((2, 4, 5, 5), DType.FLOAT32), kernel_shape=[2, 2],
                     strides=[2, 2], dilations=[1, 1], pads=[0, 0, 0, 0], layout="NCWH")


def _small_resnet():
    """Stem, max pool, two bottlenecks (one strided with a projection), average pool, classifier."""
    torch = pytest.importorskip("torch")
    Bottleneck = repo_module("benchmarks/models.py").Bottleneck
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 7, 2, 3, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.MaxPool2d(3, 2, 1), Bottleneck(16, 8, 1), Bottleneck(32, 16, 2),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(64, 10))


def _torch_model(name: str, tmp_path) -> onnx.ModelProto:
    torch = pytest.importorskip("torch")
    models = repo_module("benchmarks/models.py")
    path = tmp_path / f"{name}.onnx"
    if name in models.MODELS:
        models.export(name, str(path))
    else:
        torch.manual_seed(0)
        model = _small_resnet().eval()
        torch.onnx.export(model, (torch.randn(2, 3, 224, 224),), str(path), input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          opset_version=17, dynamo=False)
    return onnx.load(str(path))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mobilenetv2", "squeezenet", "small_resnet"])
def test_benchmark_cnns_keep_one_transpose_at_each_end(name, tmp_path):
    """Compiled agreement with onnxruntime at EXTENDED: small_resnet here, the benchmark CNNs in
    test_opt.py::test_benchmark_models_agree_across_levels."""
    model = _torch_model(name, tmp_path)
    ops = _layout_ops(model)
    assert ops.count("transpose:") == 2, ops  # the graph input and the view after the global pool
    if name == "small_resnet":
        feed = {"input": np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)}
        sess = InferenceSession(model.SerializeToString(), SessionOptions(optimization_level=OptLevel.ALL))
        assert_close(sess.run(None, feed)[0], ort_run(model, feed)[0], 1e-4)
