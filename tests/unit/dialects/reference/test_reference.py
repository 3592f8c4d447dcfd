"""The numpy reference evaluator of graph IR agrees with onnxruntime, and rejects bad feeds."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.dialects import graph
from pyflame_rt.errors import DTypeMismatchError, InputError, ShapeMismatchError, UnsupportedOperatorError
from pyflame_rt.dialects.reference import evaluate, evaluate_op


def _check(model, feeds, rtol=1e-5):
    res = from_onnx(model)
    got = evaluate(res.module, res.weights, feeds)
    want = ort_run(model, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        if w.dtype.kind in "bi":
            np.testing.assert_array_equal(g, w)
        else:
            assert_close(g, w, rtol)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
def test_broadcasting_binary(op, rng):
    nodes = [helper.make_node(op, ["x", "w"], ["y"])]
    w = rng.uniform(0.5, 2.0, (1, 4)).astype(np.float32)
    _check(make_model(nodes, [("x", ["N", 3, 4])], [("y", ["N", 3, 4])], {"w": w}),
           {"x": rng.standard_normal((2, 3, 4), np.float32)})


def test_mlp_with_relu_identity_flatten(rng):
    w1 = rng.standard_normal((12, 8), np.float32)
    b1 = rng.standard_normal(8, np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w1"], ["h"]),
             helper.make_node("Add", ["h", "b1"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("Identity", ["r"], ["y"])]
    _check(make_model(nodes, [("x", ["N", 3, 4])], [("y", ["N", 8])], {"w1": w1, "b1": b1}),
           {"x": rng.standard_normal((5, 3, 4), np.float32)})


@pytest.mark.parametrize("trans_a,trans_b,alpha,beta,c_shape", [
    (0, 0, 1.0, 1.0, (6,)), (1, 0, 0.5, 2.0, (4, 6)), (0, 1, 1.5, 0.0, (1, 6)), (1, 1, 1.0, 1.0, None)])
def test_gemm_attributes(trans_a, trans_b, alpha, beta, c_shape, rng):
    a = rng.standard_normal((5, 4) if trans_a else (4, 5), np.float32)
    b = rng.standard_normal((6, 5) if trans_b else (5, 6), np.float32)
    inits = {"b": b}
    inputs = ["a", "b"]
    if c_shape is not None:
        inits["c"] = rng.standard_normal(c_shape, np.float32)
        inputs.append("c")
    nodes = [helper.make_node("Gemm", inputs, ["y"], transA=trans_a, transB=trans_b, alpha=alpha, beta=beta)]
    _check(make_model(nodes, [("a", list(a.shape))], [("y", [4, 6])], inits), {"a": a})


@pytest.mark.parametrize("a_shape,b_shape", [((3,), (3, 4)), ((2, 3, 4), (4,)), ((2, 1, 3, 4), (5, 4, 2)),
                                             ((3, 4), (2, 4, 5))])
def test_matmul_promotion_and_batch_broadcast(a_shape, b_shape, rng):
    out = np.matmul(np.zeros(a_shape), np.zeros(b_shape)).shape
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"])]
    _check(make_model(nodes, [("a", list(a_shape)), ("b", list(b_shape))], [("y", list(out))]),
           {"a": rng.standard_normal(a_shape, np.float32), "b": rng.standard_normal(b_shape, np.float32)})


@pytest.mark.parametrize("axis", [0, 2, -1, 3])
def test_flatten_axes(axis, rng):
    x = rng.standard_normal((2, 3, 4), np.float32)
    nodes = [helper.make_node("Flatten", ["x"], ["y"], axis=axis)]
    a = axis if axis >= 0 else axis + 3
    out = [int(np.prod(x.shape[:a])), int(np.prod(x.shape[a:]))]
    _check(make_model(nodes, [("x", [2, 3, 4])], [("y", out)]), {"x": x})


def test_reshape_zero_and_inferred_dims_with_dynamic_batch(rng):
    shape = np.array([0, -1, 2], np.int64)
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"]), helper.make_node("Mul", ["y", "y"], ["z"])]
    model = make_model(nodes, [("x", ["N", 4, 3])], [("z", ["N", 6, 2])], {"s": shape})
    for n in (1, 3):
        _check(model, {"x": rng.standard_normal((n, 4, 3), np.float32)})


def test_constant_node_and_multiple_outputs(rng):
    c = helper.make_tensor("cv", 1, [3], [1.0, -2.0, 3.0])
    nodes = [helper.make_node("Constant", [], ["c"], value=c), helper.make_node("Mul", ["x", "c"], ["y"]),
             helper.make_node("Sub", ["y", "x"], ["z"])]
    _check(make_model(nodes, [("x", [2, 3])], [("y", [2, 3]), ("z", [2, 3])]),
           {"x": rng.standard_normal((2, 3), np.float32)})


def test_feeds_by_position_and_by_name_agree(rng):
    nodes = [helper.make_node("Sub", ["a", "b"], ["y"])]
    res = from_onnx(make_model(nodes, [("a", [3]), ("b", [3])], [("y", [3])]))
    a, b = rng.standard_normal(3, np.float32), rng.standard_normal(3, np.float32)
    (by_name,) = evaluate(res.module, res.weights, {"b": b, "a": a})
    (by_pos,) = evaluate(res.module, res.weights, [a, b])
    np.testing.assert_array_equal(by_name, a - b)
    np.testing.assert_array_equal(by_pos, a - b)


def test_bad_feeds_raise_specific_errors():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    res = from_onnx(make_model(nodes, [("x", ["N", 3])], [("y", ["N", 3])]))
    with pytest.raises(InputError, match="missing input"):
        evaluate(res.module, res.weights, {})
    with pytest.raises(DTypeMismatchError, match="'x'"):
        evaluate(res.module, res.weights, {"x": np.zeros((2, 3), np.float64)})
    with pytest.raises(ShapeMismatchError, match="input 'x'"):
        evaluate(res.module, res.weights, {"x": np.zeros((2, 4), np.float32)})


def test_missing_weight_is_reported():
    nodes = [helper.make_node("Add", ["x", "w"], ["y"])]
    res = from_onnx(make_model(nodes, [("x", [2])], [("y", [2])], {"w": np.ones(2, np.float32)}))
    with pytest.raises(InputError, match="weight 'w'"):
        evaluate(res.module, {}, {"x": np.zeros(2, np.float32)})


def test_op_without_reference_is_unsupported():
    class NotAGraphOp(graph.IdentityOp):
        name = "test.no_reference"

    x = graph.ConstantOp(graph.tensor_type((2,), graph.DType.FLOAT32), weight="w")
    with pytest.raises(UnsupportedOperatorError, match="test.no_reference"):
        evaluate_op(NotAGraphOp(x.result), [np.zeros(2, np.float32)])


def _typed_model(nodes, inputs, outputs, opset=17):
    """inputs/outputs: (name, onnx elem type, shape)."""
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                          [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


F, B, I64 = 1, 9, 7


@pytest.mark.parametrize("op,attrs", [
    ("Sqrt", {}), ("Exp", {}), ("Log", {}), ("Erf", {}), ("Tanh", {}), ("Sigmoid", {}), ("Reciprocal", {}),
    ("Floor", {}), ("Ceil", {}), ("Softplus", {}), ("HardSwish", {}), ("Neg", {}), ("Abs", {}),
    ("LeakyRelu", {"alpha": 0.2}), ("Elu", {"alpha": 0.7}), ("Selu", {}), ("HardSigmoid", {"alpha": 0.3}),
    ("Gelu", {}), ("Gelu", {"approximate": "tanh"})])
def test_unary_math(op, attrs, rng):
    x = rng.uniform(-4, 4, (3, 5)).astype(np.float32)
    if op in ("Sqrt", "Log"):
        x = np.abs(x) + 0.1
    nodes = [helper.make_node(op, ["x"], ["y"], **attrs)]
    _check(_typed_model(nodes, [("x", F, [3, 5])], [("y", F, [3, 5])], opset=20), {"x": x})


@pytest.mark.parametrize("op", ["Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual"])
def test_comparisons_and_where(op, rng):
    a = rng.integers(-2, 3, (2, 4)).astype(np.float32)
    b = rng.integers(-2, 3, (4,)).astype(np.float32)
    nodes = [helper.make_node(op, ["a", "b"], ["c"]), helper.make_node("Not", ["c"], ["n"]),
             helper.make_node("Xor", ["c", "n"], ["t"]), helper.make_node("And", ["c", "t"], ["u"]),
             helper.make_node("Or", ["u", "n"], ["o"]), helper.make_node("Where", ["o", "a", "b"], ["y"])]
    _check(_typed_model(nodes, [("a", F, [2, 4]), ("b", F, [4])], [("c", B, [2, 4]), ("y", F, [2, 4])]),
           {"a": a, "b": b})


def test_variadic_pow_prelu_clip_cast(rng):
    a, b = rng.uniform(0.5, 2, (2, 3)).astype(np.float32), rng.uniform(-2, 2, (3,)).astype(np.float32)
    nodes = [helper.make_node("Sum", ["a", "b", "a"], ["s"]), helper.make_node("Min", ["a", "b"], ["mn"]),
             helper.make_node("Max", ["s", "mn"], ["mx"]), helper.make_node("Mean", ["mx", "a"], ["me"]),
             helper.make_node("Pow", ["a", "b"], ["p"]), helper.make_node("PRelu", ["b", "a"], ["pr"]),
             helper.make_node("Clip", ["me", "lo", "hi"], ["cl"]),
             helper.make_node("Cast", ["cl"], ["ci"], to=I64)]
    m = _typed_model(nodes, [("a", F, [2, 3]), ("b", F, [3])],
                     [("p", F, [2, 3]), ("pr", F, [2, 3]), ("cl", F, [2, 3]), ("ci", I64, [2, 3])])
    m.graph.initializer.extend([helper.make_tensor("lo", F, [], [0.5]), helper.make_tensor("hi", F, [], [2.5])])
    _check(m, {"a": a, "b": b})


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1",
                                "ReduceL2", "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reductions(op, keepdims, rng):
    x = rng.uniform(0.5, 1.5, (2, 3, 4)).astype(np.float32)
    axes = np.array([0, -1], np.int64)
    out = [3] if not keepdims else [1, 3, 1]
    nodes = [helper.make_node(op, ["x", "axes"], ["y"], keepdims=keepdims)]
    m = _typed_model(nodes, [("x", F, [2, 3, 4])], [("y", F, out)], opset=18)
    m.graph.initializer.append(helper.make_tensor("axes", I64, [2], axes))
    _check(m, {"x": x})


@pytest.mark.parametrize("op,last", [("ArgMax", 0), ("ArgMin", 0), ("ArgMax", 1), ("ArgMin", 1)])
def test_arg_reductions_with_ties(op, last, rng):
    x = rng.integers(0, 3, (3, 5)).astype(np.float32)
    nodes = [helper.make_node(op, ["x"], ["y"], axis=1, keepdims=0, select_last_index=last)]
    _check(_typed_model(nodes, [("x", F, [3, 5])], [("y", I64, [3])]), {"x": x})


@pytest.mark.parametrize("op,opset,axis", [("Softmax", 11, 1), ("Softmax", 13, 1), ("LogSoftmax", 11, -2),
                                           ("LogSoftmax", 17, -1)])
def test_softmax_both_axis_semantics(op, opset, axis, rng):
    x = rng.standard_normal((2, 3, 4), np.float32) * 3
    nodes = [helper.make_node(op, ["x"], ["y"], axis=axis)]
    _check(_typed_model(nodes, [("x", F, [2, 3, 4])], [("y", F, [2, 3, 4])], opset=opset), {"x": x})


@pytest.mark.parametrize("stats", [False, True])
def test_layer_norm(stats, rng):
    x = rng.standard_normal((2, 3, 8), np.float32)
    outs = ["y", "mean", "inv_std"] if stats else ["y"]
    nodes = [helper.make_node("LayerNormalization", ["x", "s", "b"], outs, axis=-1, epsilon=1e-3)]
    m = _typed_model(nodes, [("x", F, [2, 3, 8])],
                     [("y", F, [2, 3, 8])] + [(n, F, [2, 3, 1]) for n in outs[1:]])
    m.graph.initializer.extend([helper.make_tensor("s", F, [8], rng.standard_normal(8)),
                                helper.make_tensor("b", F, [8], rng.standard_normal(8))])
    _check(m, {"x": x})


def test_shape_driven_tensor_ops_with_dynamic_batch(rng):
    """Shape -> Gather -> ConstantOfShape / Range / Expand over a symbolic batch dim, plus Trilu, Einsum."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
             helper.make_node("ConstantOfShape", ["s"], ["c"], value=helper.make_tensor("v", F, [1], [2.0])),
             helper.make_node("Range", ["zero", "n", "one"], ["r"]),
             helper.make_node("Expand", ["x", "s"], ["e"]),
             helper.make_node("Gather", ["x", "neg"], ["g"], axis=1),
             helper.make_node("Trilu", ["x"], ["t"], upper=0),
             helper.make_node("Einsum", ["x", "x"], ["es"], equation="bij,bkj->bik")]
    m = _typed_model(nodes, [("x", F, ["B", 4, 4])],
                     [("s", I64, [3]), ("c", F, ["B", 4, 4]), ("r", I64, ["B"]), ("e", F, ["B", 4, 4]), ("g", F, ["B", 2, 4]),
                      ("t", F, ["B", 4, 4]), ("es", F, ["B", 4, 4])])
    m.graph.initializer.extend([helper.make_tensor("i0", I64, [], [0]), helper.make_tensor("zero", I64, [], [0]),
                                helper.make_tensor("one", I64, [], [1]), helper.make_tensor("neg", I64, [2], [-1, 0])])
    for b in (1, 3):
        _check(m, {"x": rng.standard_normal((b, 4, 4), np.float32)})


def test_gather_index_out_of_range_is_an_input_error():
    nodes = [helper.make_node("Gather", ["x", "i"], ["y"], axis=0)]
    m = _typed_model(nodes, [("x", F, [3]), ("i", I64, [1])], [("y", F, [1])])
    res = from_onnx(m)
    with pytest.raises(InputError, match="out of range"):
        evaluate(res.module, res.weights, {"x": np.zeros(3, np.float32), "i": np.array([3])})


@pytest.mark.parametrize("largest", [0, 1])
def test_topk_with_ties(largest, rng):
    x = rng.integers(0, 4, (3, 6)).astype(np.float32)
    nodes = [helper.make_node("TopK", ["x", "k"], ["v", "i"], axis=1, largest=largest)]
    m = _typed_model(nodes, [("x", F, [3, 6])], [("v", F, [3, 4]), ("i", I64, [3, 4])])
    m.graph.initializer.append(helper.make_tensor("k", I64, [1], [4]))
    _check(m, {"x": x})


@pytest.mark.parametrize("exclusive,reverse", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_cumsum(exclusive, reverse, rng):
    x = rng.standard_normal((3, 5), np.float32)
    nodes = [helper.make_node("CumSum", ["x", "axis"], ["y"], exclusive=exclusive, reverse=reverse)]
    m = _typed_model(nodes, [("x", F, [3, 5])], [("y", F, [3, 5])])
    m.graph.initializer.append(helper.make_tensor("axis", I64, [], [1]))
    _check(m, {"x": x})
