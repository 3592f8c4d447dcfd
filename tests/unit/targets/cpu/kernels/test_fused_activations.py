"""Every fusable activation (graph_attrs.Activation) in every epilogue that takes one: the GEMM (Gemm,
MatMul + Add, NCHW and NHWC convs), the depthwise window kernels (NCHW and NHWC), and the
elementwise kernels (Add). The activation node must disappear and the compiled outputs must match
onnxruntime."""
import numpy as np
import pytest
from onnx import helper
from xdsl.context import Context
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError, VerifyException

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession, OptLevel, SessionOptions, opt
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.compiler import CompileOptions, compile_model
from pyflame_rt import dialects
from pyflame_rt.dialects import graph
from pyflame_rt.dialects.graph_attrs import ActivationAttr
from pyflame_rt.executable import Executable
from pyflame_rt.targets.cpu.kernels.elementwise import activation_spelling
from pyflame_rt.transforms.graph_pass import node_census

# ONNX activation node (type, attributes, constant inputs) -> the fused activation
ACTIVATIONS = [
    ("Relu", {}, {}, ActivationAttr("relu")),
    ("Clip", {}, {"lo": 0.0, "hi": 6.0}, ActivationAttr("relu6")),
    ("Clip", {}, {"lo": -0.5, "hi": 0.75}, ActivationAttr("clip", [-0.5, 0.75])),
    ("LeakyRelu", {"alpha": 0.2}, {}, ActivationAttr("leaky_relu", [0.2])),
    ("Sigmoid", {}, {}, ActivationAttr("sigmoid")),
    ("Tanh", {}, {}, ActivationAttr("tanh")),
    ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}, {}, ActivationAttr("hard_sigmoid", [0.3, 0.4])),
    ("HardSwish", {}, {}, ActivationAttr("hard_swish")),
    ("Gelu", {}, {}, ActivationAttr("gelu")),
    ("Gelu", {"approximate": "tanh"}, {}, ActivationAttr("gelu_tanh")),
]
IDS = [activation_spelling(a[3]) for a in ACTIVATIONS]


def _act(kind, attrs, consts, src, dst):
    inputs = [src] + [f"{dst}_{k}" for k in consts]
    return helper.make_node(kind, inputs, [dst], **attrs), {f"{dst}_{k}": np.array(v, np.float32)
                                                           for k, v in consts.items()}


def _model(rng, kind, attrs, consts):
    """Five producers, each followed by the activation: conv, depthwise conv, MatMul + Add, Gemm, Add."""
    c, m = 6, 20
    inits = {"wc": rng.standard_normal((m, c, 3, 3), np.float32) / 4, "bc": rng.standard_normal(m, np.float32),
             "wd": rng.standard_normal((c, 1, 3, 3), np.float32), "wm": rng.standard_normal((12, 19), np.float32) / 3,
             "bm": rng.standard_normal(19, np.float32), "wg": rng.standard_normal((12, 35), np.float32) / 3,
             "bg": rng.standard_normal(35, np.float32)}
    nodes = [helper.make_node("Conv", ["x", "wc", "bc"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "wd"], ["c2"], pads=[1, 1, 1, 1], group=c),
             helper.make_node("MatMul", ["t", "wm"], ["mm"]), helper.make_node("Add", ["mm", "bm"], ["c3"]),
             helper.make_node("Gemm", ["g", "wg", "bg"], ["c4"]),
             helper.make_node("Add", ["t", "t2"], ["c5"])]
    for i in range(1, 6):
        node, consts_i = _act(kind, attrs, consts, f"c{i}", f"y{i}")
        nodes.append(node)
        inits.update(consts_i)
    inputs = [("x", ["N", c, 9, 11]), ("t", ["N", 5, 12]), ("g", ["N", 12]), ("t2", ["N", 5, 12])]
    outputs = [("y1", ["N", m, 9, 11]), ("y2", ["N", c, 9, 11]), ("y3", ["N", 5, 19]), ("y4", ["N", 35]),
               ("y5", ["N", 5, 12])]
    return make_model(nodes, inputs, outputs, inits, opset=20)


def _feeds(rng, n):
    return {"x": rng.standard_normal((n, 6, 9, 11), np.float32) * 2, "t": rng.standard_normal((n, 5, 12), np.float32),
            "g": rng.standard_normal((n, 12), np.float32) * 2, "t2": rng.standard_normal((n, 5, 12), np.float32)}


# Relu in the quick loop (-m "not slow"); every other activation in CI
@pytest.mark.parametrize("kind,attrs,consts,fused", [
    pytest.param(*a, marks=[pytest.mark.slow] if a[3] != "relu" else []) for a in ACTIVATIONS], ids=IDS)
def test_activation_fuses_into_every_epilogue(rng, kind, attrs, consts, fused):
    model = _model(rng, kind, attrs, consts)
    res = from_onnx(model)
    opt.fuse_operators(res)
    census = node_census(res.module)
    assert census.get(f"graph.{kind.lower()}", 0) == 0 and census.get("graph.gelu", 0) == 0, census
    acts = [graph.activation_of(op) for op in graph.entry_function(res.module).body.block.ops]
    assert acts.count(fused) == 5, acts
    nchw = Executable(compile_model(res, CompileOptions(opt_level=OptLevel.NONE)), 2)
    nhwc = InferenceSession(model.SerializeToString(), SessionOptions(optimization_level=OptLevel.ALL))
    for n in (1, 3):
        feeds = _feeds(rng, n)
        want = ort_run(model, feeds)
        for got in (nchw.run(list(feeds.values())), nhwc.run(None, feeds)):
            for g, w in zip(got, want):
                assert_close(g, w, 1e-5)


def _parse_attr(text: str):
    ctx = Context()
    ctx.load_dialect(dialects.Graph)
    return Parser(ctx, text).parse_attribute()


def test_activation_attribute_round_trips_and_is_verified():
    for act in (ActivationAttr("clip", [-1, float("inf")]), ActivationAttr("leaky_relu", [0.01]),
                ActivationAttr("hard_sigmoid", [1e-5, 0.5]), ActivationAttr("relu")):
        assert _parse_attr(str(act)) == act
    assert str(ActivationAttr("clip", [-1, float("inf")])) == "#graph.activation<clip, -1.0, inf>"
    assert activation_spelling(ActivationAttr("leaky_relu", [0.01])) == "leaky_relu(0.01)"
    for bad, error in (("clip, 1.0", "clip takes 2 parameters"), ("leaky_relu", "leaky_relu takes 1 parameters"),
                       ("gelu, 1.0", "gelu takes 0 parameters"), ("swish", "Expected `relu`")):
        with pytest.raises((VerifyException, ParseError), match=error):
            _parse_attr(f"#graph.activation<{bad}>")


def test_float_activations_stay_off_integer_results(rng):
    """Relu fuses into an int32 Add; Sigmoid needs a float result, so the Add keeps it out (and the
    verifier rejects it when written by hand)."""
    nodes = [helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Relu", ["s"], ["y"]),
             helper.make_node("Add", ["a", "b"], ["s2"]), helper.make_node("Cast", ["s2"], ["f"], to=1),
             helper.make_node("Sigmoid", ["f"], ["z"])]
    model = make_model(nodes, [("a", [4], np.int32), ("b", [4], np.int32)], [("y", [4], np.int32), ("z", [4])])
    res = from_onnx(model)
    opt.fuse_operators(res)
    adds = [op for op in graph.entry_function(res.module).body.block.ops if op.name == "graph.add"]
    assert sorted(str(graph.activation_of(a)) for a in adds) == ["#graph.activation<relu>", "None"]
    assert node_census(res.module).get("graph.sigmoid") == 1
    adds[0].properties["activation"] = ActivationAttr("sigmoid")
    with pytest.raises(VerifyException, match="needs a float32, float16 or bfloat16 result"):
        adds[0].verify()
    feeds = {"a": np.array([-3, 1, 2, -7], np.int32), "b": np.array([1, 1, -5, 2], np.int32)}
    got = InferenceSession(model.SerializeToString()).run(None, feeds)
    for g, w in zip(got, ort_run(model, feeds)):
        assert_close(g, w, 1e-6)
