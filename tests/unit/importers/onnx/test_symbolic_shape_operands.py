"""Shape operands computed by Shape arithmetic over the input dims import with symbolic sizes:
Slice bounds, Tile repeats, Reshape targets with several symbolic dims or that the verifier sees
only as `?`, reduce axes and ReduceProd of a shape. Each model compiles once and is compared with onnxruntime at two shapes."""
import numpy as np
import pytest
from onnx import helper

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import ShapeMismatchError
from pyflame_rt.importers.onnx import from_onnx


def _const(name, values):
    return helper.make_node("Constant", [], [name], value=helper.make_tensor(name, 7, [len(values)], values))


def _dim(name, src, axis):
    """dims[axis] of src as a 1-element vector: Shape -> Gather -> Unsqueeze, as torch exports it."""
    return [helper.make_node("Shape", [src], [f"{name}_shape"]),
            helper.make_node("Constant", [], [f"{name}_axis"], value=helper.make_tensor("a", 7, [], [axis])),
            helper.make_node("Gather", [f"{name}_shape", f"{name}_axis"], [f"{name}_scalar"], axis=0),
            _const(f"{name}_zero", [0]), helper.make_node("Unsqueeze", [f"{name}_scalar", f"{name}_zero"], [name])]


def _run_both(model, feeds_list):
    sess = InferenceSession(model.SerializeToString())
    for feeds in feeds_list:
        for got, want in zip(sess.run(None, feeds), ort_run(model, feeds)):
            assert got.dtype == want.dtype and got.shape == want.shape, (got.shape, want.shape)
            np.testing.assert_allclose(got, want, rtol=1e-6)


def _result_dims(model):
    """The symbolic dims the importer derived for the first output."""
    return [d.data for d in from_onnx(model).main.res_attrs.data[0].data["graph.dims"].data]


def _position_table_model():
    """BERT's position ids: a [1, 16] table sliced to the input's sequence length."""
    nodes = [*_dim("seq", "ids", 1), _const("start", [0]), _const("axis", [1]),
             helper.make_node("Slice", ["table", "start", "seq", "axis"], ["pos"]),
             helper.make_node("Add", ["ids", "pos"], ["y"])]
    table = np.arange(16, dtype=np.int64).reshape(1, 16) * 10
    return make_model(nodes, [("ids", ["b", "s"], np.int64)], [("y", ["b", "s"], np.int64)], {"table": table})


def test_slice_of_a_static_table_to_a_sequence_length_is_symbolic(rng):
    model = _position_table_model()
    assert _result_dims(model) == ["b", "s"]
    _run_both(model, [{"ids": rng.integers(0, 9, (b, s))} for b, s in ((1, 5), (3, 16))])


def test_slice_past_the_table_is_refused_before_native_code(rng):
    sess = InferenceSession(_position_table_model().SerializeToString())
    with pytest.raises(ShapeMismatchError, match="within the dim"):
        sess.run(None, {"ids": rng.integers(0, 9, (1, 17))})


def test_causal_mask_window_of_a_static_buffer(rng):
    """GPT-2's `bias[:, :, k - q : k, :k]` without a past: k - q is 0, both ends the sequence."""
    nodes = [*_dim("q", "scores", 2), *_dim("k", "scores", 3),
             helper.make_node("Sub", ["k", "q"], ["first"]), _const("zero", [0]),
             helper.make_node("Concat", ["first", "zero"], ["starts"], axis=0),
             helper.make_node("Concat", ["k", "k"], ["ends"], axis=0), _const("axes", [2, 3]),
             helper.make_node("Slice", ["bias", "starts", "ends", "axes"], ["window"]),
             helper.make_node("Add", ["scores", "window"], ["y"])]
    bias = np.tril(np.ones((16, 16), np.float32)).reshape(1, 1, 16, 16)
    model = make_model(nodes, [("scores", ["b", 2, "s", "s"])], [("y", ["b", 2, "s", "s"])], {"bias": bias})
    _run_both(model, [{"scores": rng.standard_normal((b, 2, s, s)).astype(np.float32)} for b, s in ((1, 3), (2, 16))])


@pytest.mark.parametrize("start,axis_end", [(0, "same"), (2, 5)])
def test_slice_of_a_dynamic_axis(start, axis_end, rng):
    """x[:, start:s] on the s axis itself (the whole axis) and x[:, 2:5] (static, assumed in range)."""
    nodes = [_const("start", [start]), _const("axis", [1])]
    if axis_end == "same":
        nodes += _dim("end", "x", 1)
    else:
        nodes.append(_const("end", [axis_end]))
    nodes.append(helper.make_node("Slice", ["x", "start", "end", "axis"], ["y"]))
    n = "s" if start == 0 else axis_end - start
    model = make_model(nodes, [("x", ["b", "s", 3])], [("y", ["b", n, 3])])
    _run_both(model, [{"x": rng.standard_normal((b, s, 3)).astype(np.float32)} for b, s in ((1, 5), (2, 9))])


def test_slice_whose_count_is_not_a_dim_is_refused():
    """x[:, 1:s]: s - 1 is not a monomial of the input dims."""
    nodes = [*_dim("end", "x", 1), _const("start", [1]), _const("axis", [1]),
             helper.make_node("Slice", ["x", "start", "end", "axis"], ["y"])]
    model = make_model(nodes, [("x", ["b", "s"])], [("y", ["b", "t"])])
    with pytest.raises(ShapeMismatchError, match="is not a dim"):
        from_onnx(model)


def test_tile_repeats_from_the_batch(rng):
    """A class token tiled to the batch: Tile(token, Concat(Shape(x)[0], [1, 1]))."""
    nodes = [*_dim("batch", "x", 0), _const("ones", [1, 1]),
             helper.make_node("Concat", ["batch", "ones"], ["repeats"], axis=0),
             helper.make_node("Tile", ["token", "repeats"], ["tokens"]),
             helper.make_node("Concat", ["tokens", "x"], ["y"], axis=1)]
    token = np.arange(4, dtype=np.float32).reshape(1, 1, 4)
    model = make_model(nodes, [("x", ["b", 3, 4])], [("y", ["b", 4, 4])], {"token": token})
    _run_both(model, [{"x": rng.standard_normal((b, 3, 4)).astype(np.float32)} for b in (1, 3)])


def test_heads_folded_into_the_batch_and_back_verify(rng):
    """[b, s, h*d] -> [b*h, s, d] -> [b, h, s, d] with targets from Shape: the second Reshape's
    operand type is [?, s, d], its -1 dim divides a `?` the verifier cannot relate to b."""
    nodes = [*_dim("b", "x", 0), _const("heads_first", [-1, 5, 4]), _const("rest", [2, 5, 4]),
             helper.make_node("Reshape", ["x", "heads_first"], ["folded"]),
             helper.make_node("Concat", ["b", "rest"], ["target"], axis=0),
             helper.make_node("Reshape", ["folded", "target"], ["y"])]
    model = make_model(nodes, [("x", ["b", 5, 8])], [("y", ["b", 2, 5, 4])])
    assert _result_dims(model) == ["b", "2", "5", "4"]
    _run_both(model, [{"x": rng.standard_normal((b, 5, 8)).astype(np.float32)} for b in (1, 3)])


def test_tokens_flattened_and_back_keep_both_dims(rng):
    """GPT-2's Conv1D: [b, s, d] viewed as [b*s, d] for the GEMM, then as Shape(x)[:-1] + [n]: two
    symbolic dims that no single -1 infers, so the target holds them."""
    nodes = [_const("flat", [-1, 4]), helper.make_node("Reshape", ["x", "flat"], ["rows"]),
             helper.make_node("MatMul", ["rows", "w"], ["proj"]),
             helper.make_node("Shape", ["x"], ["shape"]), _const("zero", [0]), _const("last", [-1]),
             helper.make_node("Slice", ["shape", "zero", "last"], ["lead"]), _const("n", [6]),
             helper.make_node("Concat", ["lead", "n"], ["target"], axis=0),
             helper.make_node("Reshape", ["proj", "target"], ["y"])]
    w = rng.standard_normal((4, 6)).astype(np.float32)
    model = make_model(nodes, [("x", ["b", "s", 4])], [("y", ["b", "s", 6])], {"w": w})
    assert _result_dims(model) == ["b", "s", "6"]
    sess = InferenceSession(model.SerializeToString())
    for b, s in ((1, 5), (3, 2)):
        x = rng.standard_normal((b, s, 4)).astype(np.float32)
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0], rtol=1e-5, atol=1e-6)


def test_reduce_prod_of_a_shape_and_axes_from_the_rank(rng):
    """Reshape(x, [ReduceProd(Shape(x)[:2]), -1]) and ReduceSum over the last axis, its number
    computed as Size(Shape(flat)) - 1: both known at import, no kernel computes them."""
    nodes = [helper.make_node("Shape", ["x"], ["shape"]), _const("zero", [0]), _const("two", [2]),
             helper.make_node("Slice", ["shape", "zero", "two"], ["lead"]),
             helper.make_node("ReduceProd", ["lead"], ["rows"], keepdims=1),
             _const("rest", [-1]), helper.make_node("Concat", ["rows", "rest"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["flat"]),
             helper.make_node("Shape", ["flat"], ["flat_shape"]), helper.make_node("Size", ["flat_shape"], ["rank"]),
             _const("one", [1]),
             helper.make_node("Sub", ["rank", "one"], ["last"]),
             helper.make_node("ReduceSum", ["flat", "last"], ["y"], keepdims=0)]
    model = make_model(nodes, [("x", ["b", "s", 4])], [("y", ["n"])], opset=13)
    ops = [op.name for op in from_onnx(model).main.walk()]
    assert not {"graph.dim_values", "graph.sub"} & set(ops) and ops.count("graph.reduce") == 1, ops
    _run_both(model, [{"x": rng.standard_normal((b, s, 4)).astype(np.float32)} for b, s in ((1, 5), (3, 2))])


def test_shape_operand_from_data_binds_dims():
    """Slice bounds given by graph inputs are neither constants nor Shape arithmetic: the count is
    bound from their values and the slice is a Gather (ops/run_time_slices.py); constant bounds
    stay one static graph.slice."""
    model = make_model([helper.make_node("Slice", ["x", "s", "e"], ["y"])],
                       [("x", [4]), ("s", [1], np.int64), ("e", [1], np.int64)], [("y", ["n"])])
    ops = [op.name for op in from_onnx(model).main.walk()]
    assert {"graph.bind_dims", "graph.gather"} <= set(ops) and "graph.slice" not in ops
    model = make_model([helper.make_node("Slice", ["x", "s", "e"], ["y"])], [("x", [4])], [("y", ["n"])],
                       initializers={"s": np.array([1]), "e": np.array([3])})
    assert [op.name for op in from_onnx(model).main.walk() if op.name.startswith("graph.")] == [
        "graph.constant", "graph.constant", "graph.slice"]
