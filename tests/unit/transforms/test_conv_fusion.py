"""BatchNorm folding and the residual-add conv epilogue: optimized IR and compiled results vs onnxruntime."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import OptLevel, opt
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.compiler import CompileOptions, compile_model
from pyflame_rt.dialects import graph
from pyflame_rt.dialects.graph_attrs import ActivationAttr
from pyflame_rt.executable import Executable
from pyflame_rt.transforms.graph_pass import node_census


def _conv_bn(nodes, inits, rng, x, name, cin, cout, k, stride, group, bias):
    """Conv (+ bias) -> BatchNormalization, random weights and statistics."""
    fan_in = cin // group * k * k
    inits[f"{name}_w"] = (rng.standard_normal((cout, cin // group, k, k)) / np.sqrt(fan_in)).astype(np.float32)
    conv_in = [x, f"{name}_w"]
    if bias:
        inits[f"{name}_b"] = rng.standard_normal(cout, np.float32)
        conv_in.append(f"{name}_b")
    for p, v in (("s", rng.uniform(0.5, 1.5, cout)), ("t", rng.standard_normal(cout)),
                 ("m", rng.standard_normal(cout)), ("v", rng.uniform(0.5, 2.0, cout))):
        inits[f"{name}_{p}"] = v.astype(np.float32)
    nodes += [helper.make_node("Conv", conv_in, [f"{name}_c"], pads=[k // 2] * 4, strides=[stride] * 2, group=group),
              helper.make_node("BatchNormalization", [f"{name}_c"] + [f"{name}_{p}" for p in "stmv"], [name],
                               epsilon=1e-3)]
    return name


def _block_model(rng, cin, cout, hw, k, stride, group, bias):
    """y = relu(bn(conv(x)) + shortcut), shortcut = x or bn(conv1x1(x)) (a ResNet basic block's tail)."""
    nodes, inits = [], {}
    main = _conv_bn(nodes, inits, rng, "x", "main", cin, cout, k, stride, group, bias)
    short = "x" if cin == cout and stride == 1 else _conv_bn(nodes, inits, rng, "x", "down", cin, cout, 1, stride,
                                                              1, False)
    nodes += [helper.make_node("Add", [main, short], ["sum"]), helper.make_node("Relu", ["sum"], ["y"])]
    oh = (hw - 1) // stride + 1
    return make_model(nodes, [("x", ["N", cin, hw, hw])], [("y", ["N", cout, oh, oh])], inits)


def _entry_ops(module):
    return list(graph.entry_function(module).body.block.ops)


def _compiled_run(res, feeds):
    return Executable(compile_model(res, CompileOptions(opt_level=OptLevel.NONE)), 2).run(feeds)


# (cin, cout, hw, k, stride, group, bias, batch): remainder row tiles and panels, K over one slice,
# grouped and depthwise convolutions, identity and projection shortcuts, batch > 1
BLOCKS = [(8, 8, 7, 3, 1, 1, False, 1), (32, 100, 9, 3, 2, 1, True, 2), (16, 16, 5, 3, 1, 2, True, 3),
          (12, 12, 6, 3, 1, 12, False, 2), (40, 40, 11, 3, 1, 1, False, 1)]


@pytest.mark.parametrize("cin,cout,hw,k,stride,group,bias,batch", BLOCKS)
@pytest.mark.slow
def test_conv_bn_add_relu_block_fuses_into_convs(rng, cin, cout, hw, k, stride, group, bias, batch):
    model = _block_model(rng, cin, cout, hw, k, stride, group, bias)
    x = rng.standard_normal((batch, cin, hw, hw), np.float32)
    res = from_onnx(model)
    result = opt.optimize(res)
    ops = _entry_ops(res.module)
    names = [op.name for op in ops if op.name != "graph.constant"]
    convs = [op for op in ops if op.name == "graph.conv"]
    assert set(names) - {"graph.transpose"} == {"graph.conv", "func.return"}, names  # transposes: NHWC
    (last,) = [c for c in convs if c.residual is not None]
    assert graph.activation_of(last) == ActivationAttr("relu")
    fused = {p.name: p.stats.nodes_fused for p in result.passes}
    assert fused["fold-batch-norm"] == len(convs) and fused["fuse-residual-add"] == 1
    assert fused["fuse-activation"] == 1
    assert_close(_compiled_run(res, [x])[0], ort_run(model, {"x": x})[0], 1e-4)


def test_batch_norm_without_a_conv_becomes_mul_add_with_relu(rng):
    """BN after a Concat (no conv to fold into) -> mul_add, whose fused activation takes the Relu."""
    c = 6
    inits = {p: v.astype(np.float32) for p, v in (("s", rng.uniform(0.5, 1.5, c)), ("t", rng.standard_normal(c)),
                                                  ("m", rng.standard_normal(c)), ("v", rng.uniform(0.5, 2, c)))}
    nodes = [helper.make_node("Concat", ["a", "b"], ["cat"], axis=1),
             helper.make_node("BatchNormalization", ["cat", "s", "t", "m", "v"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["y"])]
    model = make_model(nodes, [("a", ["N", 2, 5, 19]), ("b", ["N", 4, 5, 19])], [("y", ["N", c, 5, 19])], inits)
    res = from_onnx(model)
    opt.optimize(res)
    (ma,) = [op for op in _entry_ops(res.module) if op.name == "graph.mul_add"]
    assert graph.activation_of(ma) == ActivationAttr("relu") and ma.b.type.get_shape() == (c, 1, 1)
    assert not [op for op in _entry_ops(res.module) if op.name in ("graph.batch_norm", "graph.relu")]
    feeds = {"a": rng.standard_normal((2, 2, 5, 19), np.float32), "b": rng.standard_normal((2, 4, 5, 19), np.float32)}
    assert_close(_compiled_run(res, list(feeds.values()))[0], ort_run(model, feeds)[0], 1e-5)


def test_residual_of_a_conv_is_not_fused_when_the_conv_result_is_also_an_output(rng):
    """conv result used twice (Add and a graph output): the Add stays, results still match."""
    w = rng.standard_normal((4, 4, 3, 3), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 4), helper.make_node("Add", ["c", "x"], ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    model = make_model(nodes, [("x", [1, 4, 6, 6])], [("y", [1, 4, 6, 6]), ("c", [1, 4, 6, 6])], {"w": w})
    res = from_onnx(model)
    opt.optimize(res)
    names = [op.name for op in _entry_ops(res.module)]
    assert "graph.add" in names and all(op.residual is None for op in _entry_ops(res.module) if op.name == "graph.conv")
    x = rng.standard_normal((1, 4, 6, 6), np.float32)
    for got, want in zip(_compiled_run(res, [x]), ort_run(model, {"x": x})):
        assert_close(got, want, 1e-5)


def _relus_after_convs(module) -> int:
    """Relus whose input is a conv, a BN of a conv, or an Add with such an operand (the residual
    Add of a ResNet block): each must end up as some conv's activation."""
    def conv_or_bn_of_conv(v):
        op = v.owner
        return op.name == "graph.conv" or op.name == "graph.batch_norm" and op.operands[0].owner.name == "graph.conv"

    relus = [op for op in _entry_ops(module) if op.name == "graph.relu"]
    return sum(conv_or_bn_of_conv(r.input) or r.input.owner.name == "graph.add"
               and any(conv_or_bn_of_conv(o) for o in r.input.owner.operands) for r in relus)


@pytest.mark.slow
def test_resnet50_at_extended_has_no_batch_norm_and_every_conv_its_relu(benchmark_onnx):
    """issue #4: torch's export with BatchNormalization kept (53 Conv + 53 BN + 49 Relu + 16 Add
    + 200 weight Identities = 375 nodes) optimizes to 53 convs, 4 other nodes and the 2 transposes
    optimize-layout leaves at the ends of the NHWC body."""
    res = from_onnx(benchmark_onnx("resnet50", fold_batch_norm=False))
    before = node_census(res.module)
    assert before["graph.batch_norm"] == before["graph.conv"] == 53 and sum(before.values()) == 375
    assert _relus_after_convs(res.module) == before["graph.relu"] == 49
    result = opt.optimize(res)
    after = node_census(res.module)
    assert "graph.batch_norm" not in after and "graph.relu" not in after and "graph.add" not in after
    convs = [op for op in _entry_ops(res.module) if op.name == "graph.conv"]
    assert sum(graph.activation_of(c) == ActivationAttr("relu") for c in convs) == 49
    assert sum(c.residual is not None for c in convs) == 16
    assert (result.stats.nodes_before, result.stats.nodes_after) == (375, 59)
    assert after["graph.transpose"] == 2
    fused = {p.name: p.stats.nodes_fused for p in result.passes}
    assert (fused["fold-batch-norm"], fused["fuse-residual-add"], fused["fuse-activation"]) == (53, 16, 49)


@pytest.mark.parametrize("rows,d", [(7, 24), (13, 40)])
@pytest.mark.slow
def test_linear_bias_residual_relu_becomes_one_matmul_bias(rng, rows, d):
    """A transformer skip connection relu(x @ W + b + x) on [N, S, D]: one matmul_bias with the
    residual and the relu in the GEMM epilogue (remainder rows and panels), vs onnxruntime."""
    w, b = rng.standard_normal((d, d), np.float32) / np.float32(np.sqrt(d)), rng.standard_normal(d, np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["mb"]),
             helper.make_node("Add", ["x", "mb"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    model = make_model(nodes, [("x", ["N", rows, d])], [("y", ["N", rows, d])], {"w": w, "b": b})
    res = from_onnx(model)
    opt.optimize(res)
    (mm,) = [op for op in _entry_ops(res.module) if op.name not in ("graph.constant", "func.return")]
    assert mm.name == "graph.matmul_bias" and mm.residual is not None and graph.activation_of(mm) == ActivationAttr("relu")
    x = rng.standard_normal((3, rows, d), np.float32)
    assert_close(_compiled_run(res, [x])[0], ort_run(model, {"x": x})[0], 1e-5)


@pytest.mark.parametrize("relu", [False, True])
def test_depthwise_conv1d_residual_with_and_without_activation(rng, relu):
    """A 1-D depthwise conv stays NCHW (no channels-last kernel): its fused residual is a separate add."""
    w = rng.standard_normal((6, 1, 3), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], group=6, pads=[1, 1]),
             helper.make_node("Add", ["c", "x"], ["s" if relu else "y"])]
    nodes += [helper.make_node("Relu", ["s"], ["y"])] if relu else []
    model = make_model(nodes, [("x", ["N", 6, 11])], [("y", ["N", 6, 11])], {"w": w})
    res = from_onnx(model)
    opt.optimize(res, OptLevel.EXTENDED)
    assert node_census(res.module) == {"graph.conv": 1}
    x = rng.standard_normal((2, 6, 11)).astype(np.float32)
    got = Executable(compile_model(model, CompileOptions()), 2).run([x])[0]
    assert_close(got, ort_run(model, {"x": x})[0], 1e-5)
