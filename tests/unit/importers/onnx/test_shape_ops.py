"""Shape queries (Shape with start/end, Size) as run-time int64 data over dynamic dims, and shape
arithmetic (Neg, Max, Min, Range over dims) evaluated at import, compiled and compared with onnxruntime."""
import numpy as np
import pytest
from onnx import helper

from conftest import make_model, ort_run
from pyflame_rt import ImportOptions, InferenceSession
from pyflame_rt.importers.onnx import from_onnx


def _const(name, values):
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(
        name, 7, [len(values)] if isinstance(values, list) else [], values if isinstance(values, list) else [values]))


def _run_both(model, feeds_list):
    sess = InferenceSession(model.SerializeToString())
    for feeds in feeds_list:
        for got, want in zip(sess.run(None, feeds), ort_run(model, feeds)):
            assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, want.dtype, got.shape, want.shape)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("start,end", [(None, None), (1, None), (None, -1), (-2, None), (1, 2), (-10, 10), (2, 1)])
def test_shape_start_end_and_size_of_dynamic_input(start, end, rng):
    attrs = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    n = len(range(4)[slice(start, end)])
    model = make_model([helper.make_node("Shape", ["x"], ["s"], **attrs), helper.make_node("Size", ["x"], ["n"])],
                       [("x", ["b", 3, "t", 2])], [("s", [n], np.int64), ("n", [], np.int64)], opset=15)
    _run_both(model, [{"x": rng.standard_normal((b, 3, t, 2)).astype(np.float32)} for b, t in ((1, 5), (4, 2))])


def test_shape_used_as_data_in_arithmetic(rng):
    """shape * 2 + size: the dims become an int64 tensor the Mul/Add kernels read at run time."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Size", ["x"], ["n"]), _const("two", 2),
             helper.make_node("Mul", ["s", "two"], ["s2"]), helper.make_node("Add", ["s2", "n"], ["y"])]
    model = make_model(nodes, [("x", ["b", "t"])], [("y", [2], np.int64)])
    _run_both(model, [{"x": np.zeros((b, t), np.float32)} for b, t in ((2, 3), (5, 1))])


def test_layer_norm_expanded_shape_arithmetic_is_evaluated_at_import(rng):
    """The pattern of onnx's expanded LayerNormalization / RMSNormalization functions: reduce axes
    from Range(axis, Size(Shape(x)), 1), a ones-suffix from ConstantOfShape(Neg(axis)), a padded
    shape from Max / Min with constants; all known at import, so no kernel computes them."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]), helper.make_node("Size", ["shape"], ["rank"]),
        _const("axis", 1), _const("one", 1), _const("axis1d", [-2]), _const("zero1d", [0]),
        helper.make_node("Range", ["axis", "rank", "one"], ["axes"]),
        helper.make_node("ReduceMean", ["x", "axes"], ["mean"], keepdims=1),
        helper.make_node("Slice", ["shape", "zero1d", "axis1d"], ["prefix"]),
        helper.make_node("Neg", ["axis1d"], ["n_reduced"]),
        helper.make_node("ConstantOfShape", ["n_reduced"], ["suffix"], value=helper.make_tensor("v", 7, [1], [1])),
        helper.make_node("Concat", ["prefix", "suffix"], ["reduced_shape"], axis=0),
        helper.make_node("Reshape", ["mean", "reduced_shape"], ["y"]),
        _const("floor", [1, 4, 1]), _const("ceil", [1, 2, 100]),
        helper.make_node("Max", ["shape", "floor"], ["at_least"]),
        helper.make_node("Min", ["at_least", "ceil"], ["clamped"]),
        helper.make_node("Expand", ["bias", "clamped"], ["z"]),
    ]
    model = make_model(nodes, [("x", ["b", 2, 5])], [("y", ["b", 1, 1]), ("z", [1, 2, 5])], {"bias": np.float32(0.5)},
                       opset=18)
    ops = [op.name for op in from_onnx(model).main.walk()]
    assert not {"graph.neg", "graph.max", "graph.min", "graph.range", "graph.dim_values"} & set(ops), ops
    _run_both(model, [{"x": rng.standard_normal((b, 2, 5)).astype(np.float32)} for b in (1, 3)])


@pytest.mark.parametrize("mode", ["DCR", "CRD"])
def test_depth_to_space_and_back(mode, rng):
    """DepthToSpace (both modes) vs onnxruntime with a dynamic batch; SpaceToDepth with the same
    mode (a `mode` attribute newer than opset 21 for SpaceToDepth) is its inverse."""
    d2s = make_model([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode)],
                     [("x", ["n", 8, 3, 5])], [("y", ["n", 2, 6, 10])], opset=13)
    _run_both(d2s, [{"x": rng.standard_normal((n, 8, 3, 5)).astype(np.float32)} for n in (1, 3)])
    round_trip = make_model([helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode=mode),
                             helper.make_node("SpaceToDepth", ["y"], ["z"], blocksize=2, mode=mode)],
                            [("x", ["n", 8, 3, 5])], [("z", ["n", 8, 3, 5])], opset=28)
    x = rng.standard_normal((2, 8, 3, 5)).astype(np.float32)
    np.testing.assert_array_equal(InferenceSession(round_trip.SerializeToString()).run(None, {"x": x})[0], x)


def test_space_to_depth_matches_onnxruntime_and_refuses_bad_blocks(rng):
    from pyflame_rt.errors import UnsupportedOperatorError
    model = make_model([helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=3)],
                       [("x", ["n", 2, 6, 9])], [("y", ["n", 18, 2, 3])], opset=13)
    _run_both(model, [{"x": rng.standard_normal((2, 2, 6, 9)).astype(np.float32)}])
    bad = make_model([helper.make_node("SpaceToDepth", ["x"], ["y"], blocksize=4)],
                     [("x", ["n", 2, 6, 9])], [("y", ["n", 32, 1, 2])], opset=13)
    with pytest.raises(UnsupportedOperatorError, match="not divisible by blocksize 4"):
        from_onnx(bad, ImportOptions(check_model=False))


def test_grouped_query_head_ratio_is_evaluated_at_import(rng):
    """The expanded Attention function's GQA test: Mod / And / Not / Where over head counts pick the
    repeat factor of the key heads; all known at import, so the Expand target is static."""
    nodes = [helper.make_node("Shape", ["q"], ["hq"], start=1, end=2), helper.make_node("Shape", ["k"], ["hk"], start=1, end=2),
             helper.make_node("Equal", ["hq", "hk"], ["same"]), helper.make_node("Not", ["same"], ["differ"]),
             helper.make_node("Mod", ["hq", "hk"], ["rem"]), _const("zero", [0]), _const("one", [1]),
             helper.make_node("Equal", ["rem", "zero"], ["divides"]), helper.make_node("And", ["differ", "divides"], ["gqa"]),
             helper.make_node("Div", ["hq", "hk"], ["ratio"]), helper.make_node("Where", ["gqa", "ratio", "one"], ["rep"]),
             helper.make_node("Shape", ["k"], ["b"], start=0, end=1), helper.make_node("Shape", ["k"], ["d"], start=2),
             helper.make_node("Concat", ["b", "hk", "rep", "d"], ["target"], axis=0),
             _const("axes", [2]), helper.make_node("Unsqueeze", ["k", "axes"], ["k5"]),
             helper.make_node("Expand", ["k5", "target"], ["y"])]
    model = make_model(nodes, [("q", ["b", 6, 3]), ("k", ["b", 2, 3])], [("y", ["b", 2, 3, 3])], opset=18)
    assert "graph.dim_values" not in [op.name for op in from_onnx(model).main.walk()]
    _run_both(model, [{"q": np.zeros((b, 6, 3), np.float32), "k": rng.standard_normal((b, 2, 3)).astype(np.float32)}
                      for b in (1, 2)])
