"""Sequence and optional operators compiled and run against onnxruntime: positions known at import and
computed at run time, session inputs / outputs as lists and None, and the errors of bad feeds."""
import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import InputError, InvalidModelError, ShapeMismatchError, UnsupportedOperatorError
from pyflame_rt.importers.onnx import from_onnx

F = TensorProto.FLOAT


def _seq(name, shape, elem=F):
    return helper.make_tensor_sequence_value_info(name, elem, shape)


def _opt(name, shape, elem=F):
    return helper.make_value_info(name, helper.make_optional_type_proto(helper.make_tensor_type_proto(elem, shape)))


def _model(nodes, inputs, outputs, opset=18):
    model = helper.make_model(helper.make_graph(nodes, "seq", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def _same(got, want):
    if want is None:
        assert got is None
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            _same(g, w)
    elif want.dtype == bool or want.size == 0:
        np.testing.assert_array_equal(got, want)
    else:
        assert_close(got, want)


def _check(model, feeds):
    got = InferenceSession(model.SerializeToString()).run(None, feeds)
    want = ort_run(model, feeds)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        _same(g, w)
    return got


@pytest.fixture(scope="module")
def xyz():
    r = np.random.default_rng(0)
    return [r.standard_normal((2, 3)).astype(np.float32) for _ in range(3)]


@pytest.fixture(scope="module")
def run_time_positions():
    """Construct [x, y, z], erase at p, insert x at q, take the element at r: p, q, r fed at run time."""
    nodes = [helper.make_node("SequenceConstruct", ["x", "y", "z"], ["s"]),
             helper.make_node("SequenceErase", ["s", "p"], ["s1"]),
             helper.make_node("SequenceInsert", ["s1", "x", "q"], ["s2"]),
             helper.make_node("SequenceAt", ["s2", "r"], ["out"]),
             helper.make_node("SequenceLength", ["s2"], ["n"])]
    ins = [helper.make_tensor_value_info(n, F, [2, 3]) for n in "xyz"]
    ins += [helper.make_tensor_value_info(n, TensorProto.INT64, []) for n in "pqr"]
    outs = [helper.make_tensor_value_info("out", F, [2, 3]), helper.make_tensor_value_info("n", TensorProto.INT64, [])]
    model = _model(nodes, ins, outs)
    return model, InferenceSession(model.SerializeToString())


@pytest.mark.parametrize("p, q, r", [(0, 0, 0), (-1, 2, -1), (1, -2, 1), (2, 1, 2)])
def test_run_time_positions(run_time_positions, xyz, p, q, r):
    model, sess = run_time_positions
    feeds = {"x": xyz[0], "y": xyz[1], "z": xyz[2], "p": np.array(p), "q": np.array(q), "r": np.array(r)}
    got, want = sess.run(None, feeds), ort_run(model, feeds)
    assert_close(got[0], want[0])
    assert int(got[1]) == 3


@pytest.mark.parametrize("p, q, r", [(3, 0, 0), (-4, 0, 0), (0, 3, 0), (0, -3, 0), (0, 0, 3), (0, 0, -4)])
def test_a_position_out_of_range_is_an_input_error(run_time_positions, xyz, p, q, r):
    _, sess = run_time_positions
    feeds = {"x": xyz[0], "y": xyz[1], "z": xyz[2], "p": np.array(p), "q": np.array(q), "r": np.array(r)}
    with pytest.raises(InputError):
        sess.run(None, feeds)


def test_a_constant_position_out_of_range_is_refused_at_import():
    nodes = [helper.make_node("SequenceConstruct", ["x", "x"], ["s"]),
             helper.make_node("Constant", [], ["p"], value=helper.make_tensor("p", TensorProto.INT64, [], [2])),
             helper.make_node("SequenceAt", ["s", "p"], ["y"])]
    with pytest.raises(InvalidModelError, match="position 2 is out of range for a sequence of 2"):
        from_onnx(_model(nodes, [helper.make_tensor_value_info("x", F, [2])],
                         [helper.make_tensor_value_info("y", F, [2])]))


def test_sequence_input_and_output_are_lists(xyz):
    """A sequence input of a run-time length, appended to and concatenated; the sequence is returned."""
    nodes = [helper.make_node("SequenceInsert", ["s", "x"], ["s1"]),
             helper.make_node("ConcatFromSequence", ["s1"], ["cat"], axis=1),
             helper.make_node("ConcatFromSequence", ["s1"], ["stack"], axis=-1, new_axis=1),
             helper.make_node("SequenceLength", ["s1"], ["n"])]
    model = _model(nodes, [_seq("s", [2, 3]), helper.make_tensor_value_info("x", F, [2, 3])],
                   [_seq("s1", [2, 3]), helper.make_tensor_value_info("cat", F, [2, "c"]),
                    helper.make_tensor_value_info("stack", F, [2, 3, "n"]),
                    helper.make_tensor_value_info("n", TensorProto.INT64, [])])
    sess = InferenceSession(model.SerializeToString())
    assert [(i.name, i.type) for i in sess.get_inputs()] == [("s", "seq(tensor(float))"), ("x", "tensor(float)")]
    assert sess.get_outputs()[0].type == "seq(tensor(float))"
    for n in (1, 2):
        got = _check(model, {"s": xyz[:n], "x": xyz[2]})
        assert len(got[0]) == n + 1 and int(got[3]) == n + 1
    with pytest.raises(ShapeMismatchError, match="element 1 has shape"):
        sess.run(None, {"s": [xyz[0], xyz[0][:1]], "x": xyz[2]})
    with pytest.raises(InputError, match="feed a list of arrays"):
        sess.run(None, {"s": xyz[0], "x": xyz[2]})
    with pytest.raises(InputError, match="element type"):
        sess.run(None, {"s": [xyz[0].astype(np.float64)], "x": xyz[2]})


def test_split_process_concat():
    """A torch-style split -> per-chunk work -> concat graph (static splits, elements of different sizes)."""
    split = helper.make_tensor("split", TensorProto.INT64, [3], [1, 2, 3])
    nodes = [helper.make_node("Constant", [], ["sizes"], value=split),
             helper.make_node("SplitToSequence", ["x", "sizes"], ["s"], axis=1),
             helper.make_node("SequenceAt", ["s", "i0"], ["a"]),
             helper.make_node("SequenceAt", ["s", "i2"], ["b"]),
             helper.make_node("Relu", ["a"], ["ra"]),
             helper.make_node("Sigmoid", ["b"], ["sb"]),
             helper.make_node("SequenceConstruct", ["sb", "ra"], ["t"]),
             helper.make_node("ConcatFromSequence", ["t"], ["y"], axis=1)]
    consts = [helper.make_node("Constant", [], [n], value=helper.make_tensor(n, TensorProto.INT64, [], [v]))
              for n, v in (("i0", 0), ("i2", -1))]
    model = _model(consts + nodes, [helper.make_tensor_value_info("x", F, ["batch", 6])],
                   [helper.make_tensor_value_info("y", F, ["batch", 4])])
    for batch in (1, 3):
        _check(model, {"x": np.random.default_rng(batch).standard_normal((batch, 6)).astype(np.float32)})


def test_split_to_sequence_output_without_sizes():
    nodes = [helper.make_node("SplitToSequence", ["x"], ["s"], axis=1, keepdims=0)]
    model = _model(nodes, [helper.make_tensor_value_info("x", F, [2, "n"])], [_seq("s", [2])])
    got = _check(model, {"x": np.arange(8, dtype=np.float32).reshape(2, 4)})
    assert len(got[0]) == 4


def test_run_time_split_sizes_bind_dims():
    """Sizes fed as a graph input: the count is static, the sizes are checked to add up before native code."""
    nodes = [helper.make_node("SplitToSequence", ["x", "sizes"], ["s"]),
             helper.make_node("SequenceLength", ["s"], ["n"]),
             helper.make_node("Constant", [], ["first"], value=helper.make_tensor("first", TensorProto.INT64, [], [0])),
             helper.make_node("SequenceAt", ["s", "first"], ["head"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", F, ["m"]),
                           helper.make_tensor_value_info("sizes", TensorProto.INT64, [3])],
                   [helper.make_tensor_value_info("n", TensorProto.INT64, []),
                    helper.make_tensor_value_info("head", F, ["h"])])
    sess = InferenceSession(model.SerializeToString())
    x = np.arange(5, dtype=np.float32)
    n, head = sess.run(None, {"x": x, "sizes": np.array([2, 1, 2])})
    assert int(n) == 3 and head.tolist() == [0, 1]
    with pytest.raises(ShapeMismatchError):
        sess.run(None, {"x": x, "sizes": np.array([1, 2, 3])})


def test_optional_input_and_output(xyz):
    nodes = [helper.make_node("OptionalHasElement", ["o"], ["has"]),
             helper.make_node("Identity", ["o"], ["same"])]
    model = _model(nodes, [_opt("o", [2, 3])], [helper.make_tensor_value_info("has", TensorProto.BOOL, []),
                                                _opt("same", [2, 3])])
    sess = InferenceSession(model.SerializeToString())
    assert [i.type for i in sess.get_inputs()] == ["optional(tensor(float))"]
    assert [o.type for o in sess.get_outputs()] == ["tensor(bool)", "optional(tensor(float))"]
    _check(model, {"o": xyz[0]})
    has, same = sess.run(None, {"o": None})
    assert not has and same is None


def test_optional_get_element_of_an_empty_input_is_an_input_error(xyz):
    nodes = [helper.make_node("OptionalGetElement", ["o"], ["y"])]
    model = _model(nodes, [_opt("o", [2, 3])], [helper.make_tensor_value_info("y", F, [2, 3])])
    sess = InferenceSession(model.SerializeToString())
    _check(model, {"o": xyz[1]})
    with pytest.raises(InputError, match="is None"):
        sess.run(None, {"o": None})


def test_optional_built_in_the_graph(xyz):
    nodes = [helper.make_node("Optional", ["x"], ["o"]),
             helper.make_node("Optional", [], ["e"], type=helper.make_tensor_type_proto(F, [2, 3])),
             helper.make_node("OptionalHasElement", ["o"], ["has"]),
             helper.make_node("OptionalHasElement", ["e"], ["has_e"]),
             helper.make_node("OptionalGetElement", ["o"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", F, [2, 3])],
                   [helper.make_tensor_value_info(n, TensorProto.BOOL, []) for n in ("has", "has_e")]
                   + [helper.make_tensor_value_info("y", F, [2, 3]), _opt("e", [2, 3])])
    got = _check(model, {"x": xyz[0]})
    assert got[0] and not got[1] and got[3] is None


def test_ragged_elements_at_a_run_time_position_are_refused():
    nodes = [helper.make_node("SequenceConstruct", ["x", "y"], ["s"]),
             helper.make_node("SequenceAt", ["s", "p"], ["out"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", F, [2]), helper.make_tensor_value_info("y", F, [3]),
                           helper.make_tensor_value_info("p", TensorProto.INT64, [])],
                   [helper.make_tensor_value_info("out", F, ["n"])])
    with pytest.raises(UnsupportedOperatorError, match="elements differ in shape"):
        from_onnx(model)


def test_models_without_sequences_record_no_structured_io():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2])], [("y", [2])])
    assert from_onnx(model).structured_io is None


def test_a_sequence_split_at_run_time_sizes_is_an_output():
    """Pieces of sizes fed at run time differ in shape: returned as the pieces of the split input."""
    model = _model([helper.make_node("SplitToSequence", ["x", "sizes"], ["s"], axis=1)],
                   [helper.make_tensor_value_info("x", F, [2, 5]),
                    helper.make_tensor_value_info("sizes", TensorProto.INT64, [3])], [_seq("s", [2, None])])
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    for sizes in ([1, 2, 2], [0, 5, 0]):
        got = _check(model, {"x": x, "sizes": np.array(sizes)})
        assert [p.shape[1] for p in got[0]] == sizes
    with pytest.raises(ShapeMismatchError):
        InferenceSession(model.SerializeToString()).run(None, {"x": x, "sizes": np.array([1, 2, 3])})


def test_a_sequence_input_without_element_shape_is_ragged():
    """Elements of any shapes of one rank: passed on and appended to; indexing them is refused."""
    ragged = helper.make_value_info("s", helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(TensorProto.INT64, None)))
    out = helper.make_value_info("t", ragged.type)
    model = _model([helper.make_node("SequenceInsert", ["s", "x"], ["t"]), helper.make_node("SequenceLength", ["t"], ["n"])],
                   [ragged, helper.make_tensor_value_info("x", TensorProto.INT64, [3])],
                   [out, helper.make_tensor_value_info("n", TensorProto.INT64, [])])
    x = np.array([7, 8, 9])
    got = _check(model, {"s": [np.arange(4), np.arange(2), np.arange(0)], "x": x})
    assert [a.tolist() for a in got[0]] == [[0, 1, 2, 3], [0, 1], [], [7, 8, 9]] and int(got[1]) == 4
    got = _check(model, {"s": [], "x": x})  # fed with the rank the insert gives the elements
    assert [a.tolist() for a in got[0]] == [[7, 8, 9]]
    sess = InferenceSession(model.SerializeToString())
    with pytest.raises(ShapeMismatchError):  # rank 2 elements cannot take a rank-1 tensor
        sess.run(None, {"s": [np.zeros((2, 2), np.int64)], "x": x})
    with pytest.raises(ShapeMismatchError, match="rank"):
        sess.run(None, {"s": [np.zeros(2, np.int64), np.zeros((1, 2), np.int64)], "x": x})
    at = _model([helper.make_node("SequenceAt", ["s", "p"], ["y"])],
                [ragged, helper.make_tensor_value_info("p", TensorProto.INT64, [])],
                [helper.make_tensor_value_info("y", TensorProto.INT64, ["n"])])
    with pytest.raises(UnsupportedOperatorError, match="gives no element shape"):
        from_onnx(at)


def test_a_split_at_a_run_time_scalar_size_is_an_output():
    """Pieces of a size fed at run time, the last one smaller: their count is known only at run time."""
    model = _model([helper.make_node("SplitToSequence", ["x", "size"], ["s"], axis=1)],
                   [helper.make_tensor_value_info("x", F, [2, 5]),
                    helper.make_tensor_value_info("size", TensorProto.INT64, [])], [_seq("s", [2, None])])
    x = np.arange(10, dtype=np.float32).reshape(2, 5)
    for size in (1, 2, 5, 7):
        got = _check(model, {"x": x, "size": np.array(size)})
        assert len(got[0]) == -(-5 // size)
    with pytest.raises(InputError):
        InferenceSession(model.SerializeToString()).run(None, {"x": x, "size": np.array(0)})
    counted = _model([helper.make_node("SplitToSequence", ["x", "size"], ["s"]),
                      helper.make_node("SequenceLength", ["s"], ["n"])],
                     [helper.make_tensor_value_info("x", F, [5]), helper.make_tensor_value_info("size", TensorProto.INT64, [])],
                     [helper.make_tensor_value_info("n", TensorProto.INT64, [])])
    with pytest.raises(UnsupportedOperatorError, match="known only at run time"):
        from_onnx(counted)


@pytest.mark.parametrize("p", [0, 1, 3, -1, -3])
def test_an_insert_into_a_ragged_sequence_at_a_run_time_position(p):
    ragged = helper.make_value_info("s", helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(TensorProto.FLOAT, None)))
    model = _model([helper.make_node("SequenceInsert", ["s", "x", "p"], ["t"])],
                   [ragged, helper.make_tensor_value_info("x", F, [2, 2]),
                    helper.make_tensor_value_info("p", TensorProto.INT32, [1])], [helper.make_value_info("t", ragged.type)])
    s = [np.full((2, 3), 1, np.float32), np.full((1, 2), 2, np.float32), np.full((4, 1), 3, np.float32)]
    got = _check(model, {"s": s, "x": np.arange(4, dtype=np.float32).reshape(2, 2), "p": np.array([p], np.int32)})
    assert len(got[0]) == 4
    sess = InferenceSession(model.SerializeToString())
    for bad in (4, -4):
        with pytest.raises(InputError):
            sess.run(None, {"s": s, "x": np.zeros((2, 2), np.float32), "p": np.array([bad], np.int32)})


def test_optional_of_a_sequence_has_an_element(xyz):
    nodes = [helper.make_node("SequenceConstruct", ["x", "x"], ["s"]),
             helper.make_node("OptionalHasElement", ["s"], ["has"]),
             helper.make_node("Optional", ["s"], ["o"]),
             helper.make_node("OptionalGetElement", ["o"], ["t"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", F, [2, 3])],
                   [helper.make_tensor_value_info("has", TensorProto.BOOL, []), _seq("t", [2, 3])])
    got = _check(model, {"x": xyz[0]})
    assert got[0] and len(got[1]) == 2
