"""The textual graph IR of an optimized CNN (convs in both layouts with bias, groups, residuals and
fused activations; pools; reflect padding; a reduction) prints in the dialect's own syntax and
parses back to the same module."""
import numpy as np
from onnx import helper
from xdsl.parser import Parser

from conftest import make_model
from pyflame_rt import OptLevel, opt
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.opt_tool import make_context


def _cnn():
    rng = np.random.default_rng(0)

    def w(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["xp"], mode="reflect"),
        helper.make_node("Conv", ["xp", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c1", "lo", "hi"], ["r1"]),
        helper.make_node("Conv", ["r1", "wd"], ["c2"], pads=[1, 1, 1, 1], group=8),
        helper.make_node("Add", ["c2", "r1"], ["s"]),
        helper.make_node("LeakyRelu", ["s"], ["a"], alpha=0.1),
        helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p", "w3"], ["c3"], dilations=[2, 2], pads=[2, 2, 2, 2]),
        helper.make_node("ReduceMean", ["c3"], ["y"], axes=[2, 3], keepdims=1),
    ]
    inits = {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "w1": w(8, 3, 3, 3), "b1": w(8),
             "lo": np.array(0, np.float32), "hi": np.array(6, np.float32), "wd": w(8, 1, 3, 3), "w3": w(4, 8, 3, 3)}
    return make_model(nodes, [("x", ["N", 3, 10, 10])], [("y", ["N", 4, 1, 1])], inits)


def test_optimized_graph_ir_round_trips():
    res = from_onnx(_cnn())
    opt.optimize(res, OptLevel.ALL)
    text = str(res.module)
    for spelled in ("#graph<pad_mode reflect>", "activation <relu6>", "residual %", "activation <leaky_relu, 0.1>",
                    "layout NHWC", "group 8", "dilations [2, 2]", "#graph<reduce_kind mean>"):
        assert spelled in text, (spelled, text)
    reparsed = Parser(make_context(), text).parse_module()
    reparsed.verify()
    assert str(reparsed) == text
