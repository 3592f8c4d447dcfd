"""A GEMM with a fused residual writes its result into the residual's buffer when the residual dies
there and K is one slice (`GraphLowering.result_and_residual_locs`); never when the residual is read
later, is also the op's input, or C holds partial sums between K slices. Each case is checked
against onnxruntime and by where the lowering put the result."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.dialects import graph
from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.opt import PassManager
from pyflame_rt.targets.cpu.lower_graph import GraphLowering
from pyflame_rt.targets.cpu.lowerings import PATTERNS
from pyflame_rt.targets.cpu.target import CPUTarget


def _conv(rng, name, cin, cout):
    return {f"{name}_w": (rng.standard_normal((cout, cin, 1, 1)) * 0.2).astype(np.float32),
            f"{name}_b": rng.standard_normal(cout).astype(np.float32)}


def _conv_model(rng, cin, tail):
    """a = ConvA(x), b = ConvB(x), y = Relu(b + a), then `tail` nodes (reading y, a or x)."""
    weights = {**_conv(rng, "A", cin, 8), **_conv(rng, "B", cin, 8)}
    nodes = [helper.make_node("Conv", ["x", "A_w", "A_b"], ["a"]),
             helper.make_node("Conv", ["x", "B_w", "B_b"], ["b"]),
             helper.make_node("Add", ["b", "a"], ["s"]), helper.make_node("Relu", ["s"], ["y"]), *tail]
    return make_model(nodes, [("x", [2, cin, 5, 6])], [("out", [2, 8, 5, 6])], weights)


def _residual_sharing(model) -> list[bool]:
    """For each op with a fused residual: whether its result was placed in the residual's buffer."""
    module = from_onnx(model).module
    target = CPUTarget.host()
    PassManager(target.legalizations, target=target).run(module)
    PassManager.create_default(2, target=target).run(module)
    fn = graph.entry_function(module)
    ops = list(fn.body.block.ops)
    fused = [(ops.index(op), ops.index(op.residual.owner)) for op in ops if getattr(op, "residual", None) is not None]
    assert fused, "the Add was not fused into a GEMM"
    lowering = GraphLowering(fn, WeightTable.of(module), target)
    lowering.lower(PATTERNS)
    # each op (of one result, as these are) was replaced in place by its result's materialization
    ops = list(fn.body.block.ops)
    return [lowering.locs[ops[op].results[0]] == lowering.locs[ops[residual].results[0]] for op, residual in fused]


def _check(model, x):
    assert_close(InferenceSession(model).run(None, {"x": x})[0], ort_run(model, {"x": x})[0])


@pytest.mark.parametrize("case,cin,tail,shared", [
    ("residual dies at the conv", 16, [helper.make_node("Identity", ["y"], ["out"])], True),
    ("residual read afterwards", 16, [helper.make_node("Mul", ["y", "a"], ["out"])], False),
    ("K = 600: two K slices", 600, [helper.make_node("Identity", ["y"], ["out"])], False),
])
@pytest.mark.slow
def test_conv_residual_in_place(case, cin, tail, shared, rng):
    model = _conv_model(rng, cin, tail)
    assert _residual_sharing(model) == [shared], case
    _check(model, rng.standard_normal((2, cin, 5, 6)).astype(np.float32))


def test_residual_that_is_also_the_input_is_not_overwritten(rng):
    """y = Relu(Conv(x) + x): x is read as A while C is written, so it keeps its own buffer."""
    weights = _conv(rng, "A", 8, 8)
    model = make_model([helper.make_node("Conv", ["h", "A_w", "A_b"], ["a"]),
                        helper.make_node("Add", ["a", "h"], ["s"]), helper.make_node("Relu", ["s"], ["out"])],
                       [("x", [2, 8, 5, 6])], [("out", [2, 8, 5, 6])], weights)
    model.graph.node.insert(0, helper.make_node("Relu", ["x"], ["h"]))
    assert _residual_sharing(model) == [False]
    _check(model, rng.standard_normal((2, 8, 5, 6)).astype(np.float32))


def test_matmul_bias_residual_in_place(rng):
    """A transformer's projection + residual: h = x @ W1 dies at the second MatMul's epilogue."""
    w1, w2 = (rng.standard_normal((32, 32)).astype(np.float32) * 0.2 for _ in range(2))
    b = rng.standard_normal(32).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
                        helper.make_node("MatMul", ["r", "w2"], ["m"]), helper.make_node("Add", ["m", "b"], ["mb"]),
                        helper.make_node("Add", ["mb", "h"], ["o"]), helper.make_node("Mul", ["o", "o"], ["out"])],
                       [("x", [3, 7, 32])], [("out", [3, 7, 32])], {"w1": w1, "w2": w2, "b": b})
    assert _residual_sharing(model) == [True]
    _check(model, rng.standard_normal((3, 7, 32)).astype(np.float32))


@pytest.mark.parametrize("rows,k,shared", [
    (40, 576, True),    # K = KC: one slice, C takes over the residual's buffer
    (40, 700, False),   # 5 row tiles share each B slice: 6 slices of 128, partial sums in C
    (5, 700, False),    # one row tile: 2 slices of 352
])
@pytest.mark.slow
def test_matmul_bias_residual_over_k_slices(rows, k, shared, rng):
    """h = x @ W0 dies as the last GEMM's residual, which is added once, after the last K slice:
    K deeper than KC is cut into KC_REUSED-deep slices when several row tiles share them."""
    n = 64
    w0 = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
    w1 = (rng.standard_normal((n, k)) / np.sqrt(n)).astype(np.float32)
    w2 = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    model = make_model([helper.make_node("MatMul", ["x", "w0"], ["h"]), helper.make_node("MatMul", ["h", "w1"], ["g"]),
                        helper.make_node("MatMul", ["g", "w2"], ["t"]), helper.make_node("Add", ["t", "b"], ["u"]),
                        helper.make_node("Add", ["u", "h"], ["o"]), helper.make_node("Mul", ["o", "o"], ["out"])],
                       [("x", ["B", "S", n])], [("out", ["B", "S", n])], {"w0": w0, "w1": w1, "w2": w2, "b": b})
    assert _residual_sharing(model) == [shared]
    _check(model, rng.standard_normal((1, rows, n)).astype(np.float32))
