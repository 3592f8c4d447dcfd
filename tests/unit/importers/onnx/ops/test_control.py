"""If, Loop and Scan against onnxruntime: subgraphs capturing outer values, run-time If conditions,
unrolled Loops (early exit, scan outputs) and Scans (directions, axes)."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import InputError, InvalidModelError, ShapeMismatchError, UnsupportedOperatorError
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.options import ImportOptions

F = TensorProto.FLOAT


def _graph(name, nodes, inputs, outputs):
    return helper.make_graph(nodes, name, inputs, outputs)


def _vi(name, elem=F, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def _check(model, feed):
    got = InferenceSession(model.SerializeToString()).run(None, feed)
    for g, e in zip(got, ort_run(model, feed)):
        assert_close(g, e)


def _branches(then_nodes, else_nodes):
    return dict(then_branch=_graph("then", then_nodes, [], [_vi("t")]),
                else_branch=_graph("else", else_nodes, [], [_vi("e")]))


def test_if_with_a_run_time_condition_selects_the_taken_branch():
    # the branches capture x and w from the outer graph
    branches = _branches([helper.make_node("Mul", ["x", "w"], ["t"])], [helper.make_node("Sub", ["x", "w"], ["e"])])
    model = make_model([helper.make_node("If", ["c"], ["y"], **branches)],
                       [("c", [], np.bool_), ("x", ["batch", 3])], [("y", ["batch", 3])],
                       {"w": np.array([2.0, -1.0, 0.5], np.float32)})
    sess = InferenceSession(model.SerializeToString())
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    for c in (True, False):
        feed = {"c": np.array(c), "x": x}
        assert_close(sess.run(None, feed)[0], ort_run(model, feed)[0])


def test_if_with_a_condition_known_at_import_becomes_its_branch():
    # rank(x) == 2 is known from the shapes: only the then branch is compiled
    nodes = [helper.make_node("Shape", ["x"], ["s"]), helper.make_node("Size", ["s"], ["r"]),
             helper.make_node("Equal", ["r", "two"], ["c"]),
             helper.make_node("If", ["c"], ["y"], **_branches([helper.make_node("Relu", ["x"], ["t"])],
                                                                  [helper.make_node("Neg", ["x"], ["e"])]))]
    model = make_model(nodes, [("x", ["batch", 3])], [("y", ["batch", 3])], {"two": np.array(2, np.int64)})
    ops = {op.name for op in from_onnx(model).main.walk()}
    assert "graph.relu" in ops and "graph.neg" not in ops and "graph.where" not in ops
    _check(model, {"x": np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)})


def test_if_branches_of_different_ranks_need_a_condition_known_at_import():
    branches = dict(then_branch=_graph("then", [helper.make_node("Identity", ["x"], ["t"])], [], [_vi("t")]),
                    else_branch=_graph("else", [helper.make_node("ReduceSum", ["x"], ["e"], keepdims=0)], [],
                                       [_vi("e")]))
    model = make_model([helper.make_node("If", ["c"], ["y"], **branches)], [("c", [], np.bool_), ("x", [2, 3])],
                       [("y", [2, 3])])
    with pytest.raises(UnsupportedOperatorError, match="the branches must give the same element type and rank"):
        from_onnx(model)


def test_if_branches_of_different_dims_give_the_taken_branchs_shape():
    # the result's dims are bound before the If from the branch the condition selects
    branches = dict(then_branch=_graph("then", [helper.make_node("Identity", ["x"], ["t"])], [], [_vi("t")]),
                    else_branch=_graph("else", [helper.make_node("Concat", ["x", "x"], ["e"], axis=1)], [],
                                       [_vi("e")]))
    model = make_model([helper.make_node("If", ["c"], ["y0"], **branches), helper.make_node("Relu", ["y0"], ["y"])],
                       [("c", [], np.bool_), ("x", ["batch", 3])], [("y", ["batch", "w"])])
    sess = InferenceSession(model.SerializeToString())
    for batch in (2, 5):
        x = np.random.default_rng(batch).standard_normal((batch, 3)).astype(np.float32)
        for c in (True, False):
            feed = {"c": np.array(c), "x": x}
            got, expected = sess.run(None, feed)[0], ort_run(model, feed)[0]
            assert got.shape == expected.shape
            assert_close(got, expected)


def _rank_branches():
    """then: the sum of x, a scalar; else: the max of x kept as [1]."""
    return dict(then_branch=_graph("then", [helper.make_node("ReduceSum", ["x"], ["t"], keepdims=0)], [], [_vi("t")]),
                else_branch=_graph("else", [helper.make_node("ReduceMax", ["x"], ["e"], keepdims=1)], [], [_vi("e")]))


def test_if_branches_differing_in_leading_1s_feed_a_broadcast():
    model = make_model([helper.make_node("If", ["c"], ["r"], **_rank_branches()),
                        helper.make_node("Mul", ["x", "r"], ["y"])], [("c", [], np.bool_), ("x", [3])], [("y", [3])])
    sess = InferenceSession(model.SerializeToString())
    for c in (True, False):
        feed = {"c": np.array(c), "x": np.array([1.0, -2.0, 4.0], np.float32)}
        assert_close(sess.run(None, feed)[0], ort_run(model, feed)[0])


def test_if_branches_differing_in_rank_are_refused_where_the_rank_shows():
    model = make_model([helper.make_node("If", ["c"], ["r"], **_rank_branches()),
                        helper.make_node("Relu", ["r"], ["y"])], [("c", [], np.bool_), ("x", [3])], [("y", ["n"])])
    with pytest.raises(UnsupportedOperatorError, match="Relu node .* come from an If whose branches differ in rank"):
        from_onnx(model)
    model = make_model([helper.make_node("If", ["c"], ["r"], **_rank_branches()),
                        helper.make_node("Cast", ["r"], ["y"], to=F)],
                       [("c", [], np.bool_), ("x", [3])], [("y", ["n"])])
    with pytest.raises(UnsupportedOperatorError, match="graph output 'y' comes from an If whose branches differ"):
        from_onnx(model)


def _loop_body():
    """i, cond, acc -> cond = i != 2 (an exit after 3 iterations), acc + x * i, scan output acc * 2;
    an If on the iteration number (known in each unrolled copy) nested in the body."""
    inner = _branches([helper.make_node("Mul", ["acc_out", "two"], ["t"])],
                      [helper.make_node("Add", ["acc_out", "acc_out"], ["e"])])
    nodes = [helper.make_node("Equal", ["i", "limit"], ["last"]), helper.make_node("Not", ["last"], ["cond_out"]),
             helper.make_node("Cast", ["i"], ["fi"], to=F),
             helper.make_node("Mul", ["x", "fi"], ["xi"]),
             helper.make_node("Add", ["acc", "xi"], ["acc_out"]),
             helper.make_node("If", ["cond_out"], ["doubled"], **inner)]
    return _graph("body", nodes, [_vi("i", TensorProto.INT64, []), _vi("cond", TensorProto.BOOL, []), _vi("acc")],
                  [_vi("cond_out", TensorProto.BOOL, []), _vi("acc_out"), _vi("doubled")])


def test_loop_with_an_early_exit_carries_values_and_stacks_scan_outputs():
    model = make_model([helper.make_node("Loop", ["trips", "go", "acc0"], ["acc", "scan"], body=_loop_body())],
                       [("x", [2, 3]), ("acc0", [2, 3])], [("acc", [2, 3]), ("scan", [None, 2, 3])],
                       {"trips": np.array(10, np.int64), "go": np.array(True), "limit": np.array(2, np.int64),
                        "two": np.array(2.0, np.float32)})
    rng = np.random.default_rng(2)
    feed = {"x": rng.standard_normal((2, 3)).astype(np.float32), "acc0": rng.standard_normal((2, 3)).astype(np.float32)}
    got = InferenceSession(model.SerializeToString()).run(None, feed)
    expected = ort_run(model, feed)
    assert got[1].shape == expected[1].shape == (3, 2, 3)
    for g, e in zip(got, expected):
        assert_close(g, e)


def _run_time_loop_model():
    """trips and the exit condition known only at run time: acc += x * i while sum(acc) < limit;
    scan output: acc * 2 or acc - x by a nested If on the graph input `double` (captured)."""
    inner = _branches([helper.make_node("Mul", ["acc_out", "two"], ["t"])],
                      [helper.make_node("Sub", ["acc_out", "x"], ["e"])])
    nodes = [helper.make_node("Cast", ["i"], ["fi"], to=F),
             helper.make_node("Mul", ["x", "fi"], ["xi"]),
             helper.make_node("Add", ["acc", "xi"], ["acc_out"]),
             helper.make_node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
             helper.make_node("Less", ["total", "limit"], ["cond_out"]),
             helper.make_node("If", ["double"], ["slice"], **inner)]
    body = _graph("body", nodes, [_vi("i", TensorProto.INT64, []), _vi("cond", TensorProto.BOOL, []), _vi("acc")],
                  [_vi("cond_out", TensorProto.BOOL, []), _vi("acc_out"), _vi("slice")])
    return make_model([helper.make_node("Loop", ["trips", "", "acc0"], ["acc", "scan"], body=body)],
                      [("trips", [], np.int64), ("limit", []), ("double", [], np.bool_), ("x", [2, 3]),
                       ("acc0", [2, 3])],
                      [("acc", [2, 3]), ("scan", ["count", 2, 3])], {"two": np.array(2.0, np.float32)})


def test_a_loop_with_a_run_time_trip_count_and_exit_condition():
    model = _run_time_loop_model()
    assert any(op.name == "graph.loop" for op in from_onnx(model).main.walk())
    sess = InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(4)
    x, acc0 = np.abs(rng.standard_normal((2, 3))).astype(np.float32), np.zeros((2, 3), np.float32)
    for trips, limit, double in ((5, 1e9, True), (8, 20.0, False), (1, 1e9, True), (6, -1.0, False), (0, 1e9, True)):
        feed = {"trips": np.array(trips), "limit": np.array(limit, np.float32), "double": np.array(double),
                "x": x, "acc0": acc0}
        got, expected = sess.run(None, feed), ort_run(model, feed)
        if trips == 0:  # onnxruntime gives shape [0]: it does not know the slices' shape
            assert got[1].shape == (0, 2, 3) and expected[1].size == 0
            got, expected = got[:1], expected[:1]
        for g, e in zip(got, expected):
            assert_close(g, e)


def test_a_loop_whose_carried_value_changes_shape_at_run_time_is_refused_by_name():
    body = _graph("body", [helper.make_node("Concat", ["acc", "acc"], ["acc_out"], axis=0),
                           helper.make_node("Identity", ["cond"], ["cond_out"])],
                  [_vi("i", TensorProto.INT64, []), _vi("cond", TensorProto.BOOL, []), _vi("acc")],
                  [_vi("cond_out", TensorProto.BOOL, []), _vi("acc_out")])
    model = make_model([helper.make_node("Loop", ["trips", "", "acc0"], ["acc"], body=body)],
                       [("trips", [], np.int64), ("acc0", [2, 3])], [("acc", ["n", 3])])
    with pytest.raises(UnsupportedOperatorError, match="loop-carried value 0 comes in as \\[2, 3\\] and leaves"):
        from_onnx(model)


@pytest.mark.slow
def test_a_carried_value_whose_shape_is_computed_per_iteration_must_keep_it():
    """acc + x[i : i + 1] (a [1] while i < len(x), a [0] after): checked in every iteration."""
    body = _graph("body", [helper.make_node("Identity", ["cond"], ["cond_out"]),
                           helper.make_node("Add", ["i", "one"], ["end"]),
                           helper.make_node("Unsqueeze", ["i", "zero"], ["s"]),
                           helper.make_node("Unsqueeze", ["end", "zero"], ["e"]),
                           helper.make_node("Slice", ["x", "s", "e"], ["part"]),
                           helper.make_node("Add", ["acc", "part"], ["acc_out"]),
                           helper.make_node("Identity", ["acc_out"], ["scan"])],
                  [_vi("i", TensorProto.INT64, []), _vi("cond", TensorProto.BOOL, []), _vi("acc", F, [1])],
                  [_vi("cond_out", TensorProto.BOOL, []), _vi("acc_out"), _vi("scan")])
    model = make_model([helper.make_node("Loop", ["trips", "", "acc0"], ["acc", "scans"], body=body)],
                       [("trips", [], np.int64), ("x", ["n"]), ("acc0", [1])], [("acc", [1]), ("scans", ["t", 1])],
                       {"one": np.array(1, np.int64), "zero": np.array([0], np.int64)})
    sess = InferenceSession(model.SerializeToString())
    x = np.array([1.0, -2.0, 4.0, 0.5], np.float32)
    for trips in (4, 2):
        feed = {"trips": np.array(trips, np.int64), "x": x, "acc0": np.array([0.25], np.float32)}
        for got, expected in zip(sess.run(None, feed), ort_run(model, feed)):
            assert_close(got, expected)
    with pytest.raises(ShapeMismatchError, match="element counts differ"):  # x[4 : 5] is empty
        sess.run(None, {"trips": np.array(5, np.int64), "x": x, "acc0": np.array([0.25], np.float32)})


def _seq_vi(name, shape=None):
    return helper.make_tensor_sequence_value_info(name, F, shape)


def _seq_model(nodes, inputs, outputs):
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _same(got, want):
    if want is None or isinstance(want, list):
        assert (got is None) == (want is None) and len(got or []) == len(want or [])
        for g, w in zip(got or [], want or []):
            _same(g, w)
    else:
        assert_close(got, want)


def _check_structured(model, feeds):
    sess = InferenceSession(model.SerializeToString())
    for feed in feeds:
        got, want = sess.run(None, feed), ort_run(model, feed)
        for g, w in zip(got, want):
            _same(g, w)


def test_if_on_a_run_time_condition_yields_a_sequence_and_an_optional():
    """Both branches give two elements; only the else branch fills the optional."""
    opt_t = helper.make_optional_type_proto(helper.make_sequence_type_proto(
        helper.make_tensor_type_proto(F, [3])))
    then = _graph("then", [helper.make_node("SequenceConstruct", ["x", "y"], ["s"]),
                           helper.make_node("Optional", [], ["o"], type=opt_t.optional_type.elem_type)],
                  [], [_seq_vi("s", [3]), helper.make_value_info("o", opt_t)])
    other = _graph("else", [helper.make_node("Neg", ["x"], ["nx"]),
                            helper.make_node("SequenceConstruct", ["y", "nx"], ["s"]),
                            helper.make_node("SequenceConstruct", ["x"], ["one"]),
                            helper.make_node("Optional", ["one"], ["o"])],
                   [], [_seq_vi("s", [3]), helper.make_value_info("o", opt_t)])
    model = _seq_model([helper.make_node("If", ["c"], ["s", "o"], then_branch=then, else_branch=other)],
                       [_vi("c", TensorProto.BOOL, []), _vi("x", F, [3]), _vi("y", F, [3])],
                       [_seq_vi("s", [3]), helper.make_value_info("o", opt_t)])
    x, y = np.arange(3, dtype=np.float32), np.ones(3, np.float32)
    _check_structured(model, [{"c": np.array(c), "x": x, "y": y} for c in (True, False)])


def _appending_body(extra_nodes=(), appended="y"):
    """Loop body: y = x * i appended to the carried sequence s (`appended` None: extra_nodes give s_out),
    acc += x."""
    nodes = [helper.make_node("Identity", ["cond"], ["cond_out"]),
             helper.make_node("Cast", ["i"], ["fi"], to=F),
             helper.make_node("Mul", ["x", "fi"], ["y"]),
             helper.make_node("Add", ["acc", "x"], ["acc_out"]),
             *extra_nodes,
             *([helper.make_node("SequenceInsert", ["s", appended], ["s_out"])] if appended else [])]
    return _graph("body", nodes, [_vi("i", TensorProto.INT64, []), _vi("cond", TensorProto.BOOL, []),
                                  _seq_vi("s", [2]), _vi("acc", F, [2])],
                  [_vi("cond_out", TensorProto.BOOL, []), _seq_vi("s_out", [2]), _vi("acc_out", F, [2])])


def _appending_loop(trips_input: bool, body=None):
    inputs = [_vi("x", F, [2])] + ([_vi("trips", TensorProto.INT64, [])] if trips_input else [])
    initializers = [] if trips_input else [helper.make_tensor("trips", TensorProto.INT64, [], [3])]
    graph = helper.make_graph(
        [helper.make_node("SequenceConstruct", ["x"], ["s0"]),
         helper.make_node("Loop", ["trips", "", "s0", "x"], ["s", "acc"], body=body or _appending_body())],
        "g", inputs, [_seq_vi("s", [2]), _vi("acc", F, [2])], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_loop_carrying_a_sequence_unrolled_and_at_run_time():
    """Trip count known at import: unrolled; fed at run time: the appended elements are a scan output
    stacked after the initial ones (none appended for 0 trips)."""
    x = np.array([1.5, -2.0], np.float32)
    _check_structured(_appending_loop(False), [{"x": x}])
    run_time = _appending_loop(True)
    assert any(op.name == "graph.loop" for op in from_onnx(run_time).main.walk())
    _check_structured(run_time, [{"x": x, "trips": np.array(t, np.int64)} for t in (0, 1, 4)])


def test_an_unrolled_loop_appends_elements_of_growing_shape():
    """Element i is x[:i + 1]: the unrolled sequence has elements of different shapes."""
    body = _graph("body", [helper.make_node("Identity", ["cond"], ["cond_out"]),
                           helper.make_node("Add", ["i", "one"], ["end"]),
                           helper.make_node("Unsqueeze", ["end", "zero"], ["ends"]),
                           helper.make_node("Slice", ["x", "zeros", "ends"], ["piece"]),
                           helper.make_node("SequenceInsert", ["s", "piece"], ["s_out"])],
                  [_vi("i", TensorProto.INT64, []), _vi("cond", TensorProto.BOOL, []), _seq_vi("s")],
                  [_vi("cond_out", TensorProto.BOOL, []), _seq_vi("s_out")])
    consts = [helper.make_tensor(name, TensorProto.INT64, shape, [v])
              for name, shape, v in (("trips", [], 3), ("one", [], 1), ("zero", [1], 0), ("zeros", [1], 0))]
    graph = helper.make_graph([helper.make_node("SequenceEmpty", [], ["s0"], dtype=F),
                               helper.make_node("Loop", ["trips", "", "s0"], ["s"], body=body)],
                              "g", [_vi("x", F, [4])], [_seq_vi("s")], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    _check_structured(model, [{"x": np.arange(4, dtype=np.float32)}])


def test_a_run_time_if_in_a_run_time_loop_appends_from_either_branch():
    """Iterations 0 and 1 append x * i, the later ones -x * i."""
    then = _graph("then", [helper.make_node("SequenceInsert", ["s", "y"], ["t"])], [], [_seq_vi("t", [2])])
    other = _graph("else", [helper.make_node("Neg", ["y"], ["ny"]),
                            helper.make_node("SequenceInsert", ["s", "ny"], ["e"])], [], [_seq_vi("e", [2])])
    two = helper.make_tensor("two", TensorProto.INT64, [], [2])
    body = _appending_body([helper.make_node("Constant", [], ["two"], value=two),
                            helper.make_node("Less", ["i", "two"], ["early"]),
                            helper.make_node("If", ["early"], ["s_out"], then_branch=then, else_branch=other)],
                           appended=None)
    model = _appending_loop(True, body)
    x = np.array([1.5, -2.0], np.float32)
    _check_structured(model, [{"x": x, "trips": np.array(t, np.int64)} for t in (0, 4)])


@pytest.mark.parametrize("extra, appended, match", [
    ([helper.make_node("SequenceLength", ["s"], ["n"]), helper.make_node("Cast", ["n"], ["fn"], to=F),
      helper.make_node("Mul", ["y", "fn"], ["z"])], "z", "can only append to the sequence it carries"),
    ([helper.make_node("Constant", [], ["front"], value=helper.make_tensor("front", TensorProto.INT64, [], [0])),
      helper.make_node("SequenceInsert", ["s", "y", "front"], ["s2"]),
      helper.make_node("SequenceAt", ["s2", "front"], ["z"])], "z", "can only append"),
])
def test_a_run_time_loop_that_reads_its_carried_sequence_is_refused(extra, appended, match):
    with pytest.raises(UnsupportedOperatorError, match=match):
        from_onnx(_appending_loop(True, _appending_body(extra, appended)))


def test_a_run_time_loop_appending_twice_per_iteration_is_refused():
    body = _appending_body()
    body.node[-1].output[0] = "s_once"
    body.node.append(helper.make_node("SequenceInsert", ["s_once", "y"], ["s_out"]))
    with pytest.raises(UnsupportedOperatorError, match="must append exactly one element to the sequence 's'"):
        from_onnx(_appending_loop(True, body))


def _map_body(nodes, inputs, outputs):
    return _graph("map", nodes, inputs, outputs)


def test_sequence_map_over_a_run_time_count_and_a_count_known_at_import():
    add = _map_body([helper.make_node("Add", ["a", "b"], ["c"])], [_vi("a", F, [3]), _vi("b", F, [3])],
                    [_vi("c", F, [3])])
    run_time = _seq_model([helper.make_node("SequenceMap", ["xs", "t"], ["ys"], body=add)],
                          [_seq_vi("xs", [3]), _vi("t", F, [3])], [_seq_vi("ys", [3])])
    assert any(op.name == "graph.loop" for op in from_onnx(run_time).main.walk())
    r = np.random.default_rng(3)
    t = r.standard_normal(3).astype(np.float32)
    _check_structured(run_time, [{"xs": [r.standard_normal(3).astype(np.float32) for _ in range(n)], "t": t}
                                 for n in (0, 1, 3)])
    shape = _map_body([helper.make_node("Shape", ["a"], ["c"])], [_vi("a", F, None)],
                      [_vi("c", TensorProto.INT64, [None])])
    known = _seq_model([helper.make_node("SequenceConstruct", ["x", "z"], ["xs"]),
                        helper.make_node("SequenceMap", ["xs"], ["ys"], body=shape)],
                       [_vi("x", F, [2, 3]), _vi("z", F, [4])],
                       [helper.make_tensor_sequence_value_info("ys", TensorProto.INT64, None)])
    _check_structured(known, [{"x": np.zeros((2, 3), np.float32), "z": np.zeros(4, np.float32)}])


def test_sequence_map_over_sequences_of_different_lengths_fails_before_native_code():
    add = _map_body([helper.make_node("Add", ["a", "b"], ["c"])], [_vi("a", F, [3]), _vi("b", F, [3])],
                    [_vi("c", F, [3])])
    model = _seq_model([helper.make_node("SequenceMap", ["xs", "zs"], ["ys"], body=add)],
                       [_seq_vi("xs", [3]), _seq_vi("zs", [3])], [_seq_vi("ys", [3])])
    sess = InferenceSession(model.SerializeToString())
    x = np.ones(3, np.float32)
    _same(sess.run(None, {"xs": [x, x], "zs": [x, 2 * x]})[0], [2 * x, 3 * x])
    with pytest.raises(ShapeMismatchError):
        sess.run(None, {"xs": [x, x], "zs": [x]})


def test_scan_cumulative_sum_in_both_directions():
    body = _graph("body", [helper.make_node("Add", ["s", "x_t"], ["s_out"]),
                           helper.make_node("Mul", ["s_out", "scale"], ["y_t"])],  # scale: captured
                  [_vi("s", F, [2]), _vi("x_t", F, [2])], [_vi("s_out", F, [2]), _vi("y_t", F, [2])])
    scan = helper.make_node("Scan", ["s0", "x"], ["s", "y"], num_scan_inputs=1, body=body,
                            scan_input_axes=[1], scan_input_directions=[1], scan_output_axes=[-1],
                            scan_output_directions=[0])
    model = make_model([scan], [("s0", [2]), ("x", [2, 5])], [("s", [2]), ("y", [2, 5])],
                       {"scale": np.array(0.5, np.float32)}, opset=16)
    rng = np.random.default_rng(3)
    _check(model, {"s0": rng.standard_normal(2).astype(np.float32), "x": rng.standard_normal((2, 5)).astype(np.float32)})


def test_a_scan_over_a_dynamic_axis_runs_as_a_loop():
    body = _graph("body", [helper.make_node("Add", ["s", "x_t"], ["s_out"]),
                           helper.make_node("Mul", ["s_out", "x_t"], ["y_t"])],
                  [_vi("s", F, [2]), _vi("x_t", F, [2])], [_vi("s_out", F, [2]), _vi("y_t", F, [2])])
    scan = helper.make_node("Scan", ["s0", "x"], ["s", "y"], num_scan_inputs=1, body=body,
                            scan_input_directions=[1], scan_output_axes=[1])
    model = make_model([scan], [("s0", [2]), ("x", ["steps", 2])], [("s", [2]), ("y", [2, "steps"])], opset=16)
    assert any(op.name == "graph.loop" for op in from_onnx(model).main.walk())
    sess = InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(5)
    for steps in (5, 1):
        feed = {"s0": rng.standard_normal(2).astype(np.float32), "x": rng.standard_normal((steps, 2)).astype(np.float32)}
        for g, e in zip(sess.run(None, feed), ort_run(model, feed)):
            assert_close(g, e)


def test_branches_with_a_different_number_of_outputs_are_a_malformed_model():
    branches = dict(then_branch=_graph("then", [helper.make_node("Identity", ["x"], ["t"])], [], [_vi("t")]),
                    else_branch=_graph("else", [helper.make_node("Identity", ["x"], ["e"])], [], [_vi("e"), _vi("x")]))
    model = make_model([helper.make_node("If", ["c"], ["y"], **branches)], [("c", [], np.bool_), ("x", [2, 3])],
                       [("y", [2, 3])])
    with pytest.raises(InvalidModelError, match="If node 'y': 1 outputs, its branches give 1 and 2"):
        from_onnx(model, ImportOptions(check_model=False))


@pytest.mark.slow
def test_a_torchscript_export_with_a_data_dependent_branch_in_a_loop():
    """torch.onnx exports the scripted Python loop as a Loop over x.shape[0] (a dynamic axis: a loop
    run at run time) and the branch on y's values as an If with a run-time condition; one session
    runs three lengths."""
    torch = pytest.importorskip("torch")
    import io

    class Step(torch.nn.Module):
        def forward(self, x):
            y = x[0] * 0
            for i in range(x.shape[0]):
                if bool(y.sum() > 0):
                    y = y * 0.5 + x[i]
                else:
                    y = y - x[i] + 1.0
            return y

    buf = io.BytesIO()
    torch.onnx.export(torch.jit.script(Step()), (torch.randn(4, 3),), buf, dynamo=False, input_names=["x"],
                      output_names=["y"], opset_version=17, dynamic_axes={"x": {0: "n"}})
    model = onnx.load_from_string(buf.getvalue())
    assert any(op.name == "graph.loop" for op in from_onnx(model).main.walk())
    sess = InferenceSession(buf.getvalue())
    for n in (4, 7, 1):
        x = np.random.default_rng(n).standard_normal((n, 3)).astype(np.float32)
        assert_close(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0])


@pytest.mark.slow
def test_a_torchscript_export_whose_branches_give_different_widths():
    """The branch on x's values widens or narrows it: one session gives each batch the taken
    branch's shape."""
    torch = pytest.importorskip("torch")
    import io

    class Pick(torch.nn.Module):
        def forward(self, x):
            if bool(x.sum() > 0):
                y = torch.cat([x, x * 2.0], dim=1)
            else:
                y = x[:, :2]
            return torch.relu(y) + 1.0

    buf = io.BytesIO()
    torch.onnx.export(torch.jit.script(Pick()), (torch.randn(4, 3),), buf, dynamo=False, input_names=["x"],
                      output_names=["y"], opset_version=17, dynamic_axes={"x": {0: "n"}, "y": {0: "n", 1: "w"}})
    model = onnx.load_from_string(buf.getvalue())
    sess = InferenceSession(buf.getvalue())
    for n, sign in ((4, 1.0), (4, -1.0), (2, 1.0), (6, -1.0)):
        x = (np.abs(np.random.default_rng(n).standard_normal((n, 3))) * sign).astype(np.float32)
        got, expected = sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0]
        assert got.shape == expected.shape
        assert_close(got, expected)


def test_if_with_a_run_time_condition_runs_only_the_taken_branch():
    """The else branch gathers with indices fed as an input: out of range, it fails only when taken."""
    branches = _branches([helper.make_node("Identity", ["x"], ["t"])], [helper.make_node("Gather", ["x", "idx"], ["e"])])
    model = make_model([helper.make_node("If", ["c"], ["y"], **branches)],
                       [("c", [], np.bool_), ("x", [2, 3]), ("idx", [2], np.int64)], [("y", [2, 3])])
    assert any(op.name == "graph.if" for op in from_onnx(model).main.walk())
    sess = InferenceSession(model.SerializeToString())
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for c, idx in ((True, [10, 10]), (False, [1, 0])):
        feed = {"c": np.array(c), "x": x, "idx": np.array(idx)}
        assert_close(sess.run(None, feed)[0], ort_run(model, feed)[0])
    with pytest.raises(InputError, match="Gather"):
        sess.run(None, {"c": np.array(False), "x": x, "idx": np.array([10, 10])})


def _counting_body(nodes, carried_in, carried_out, prefix=""):
    """A Loop body of `nodes` over the iteration number `<prefix>i` and carried float values, its
    condition passed on."""
    cond, cond_out = f"{prefix}cond", f"{prefix}cond_out"
    return _graph(f"{prefix}body", [helper.make_node("Identity", [cond], [cond_out]), *nodes],
                  [_vi(f"{prefix}i", TensorProto.INT64, []), _vi(cond, TensorProto.BOOL, []), *map(_vi, carried_in)],
                  [_vi(cond_out, TensorProto.BOOL, []), *map(_vi, carried_out)])


def test_an_if_in_a_run_time_loop_runs_only_the_taken_branch():
    """Each iteration gathers x at idx only when i >= skip: an out-of-range idx fails only when an
    iteration takes that branch (the If is control flow inside the loop, not a select)."""
    branches = _branches([helper.make_node("Add", ["y", "x"], ["t"])],
                         [helper.make_node("Gather", ["x", "idx"], ["g"]), helper.make_node("Add", ["y", "g"], ["e"])])
    body = _counting_body([helper.make_node("Less", ["i", "skip"], ["early"]),
                       helper.make_node("If", ["early"], ["y_out"], **branches)], ["y"], ["y_out"])
    model = make_model([helper.make_node("Loop", ["trips", "", "x"], ["y"], body=body)],
                       [("trips", [], np.int64), ("skip", [], np.int64), ("x", [3]), ("idx", [3], np.int64)],
                       [("y", [3])])
    loop = next(op for op in from_onnx(model).main.walk() if op.name == "graph.loop")
    assert any(op.name == "graph.if" for op in loop.walk())
    sess = InferenceSession(model.SerializeToString())
    x = np.array([1.0, 2.0, 3.0], np.float32)
    for trips, skip, idx in ((4, 2, [2, 0, 1]), (3, 5, [7, 7, 7]), (0, 0, [7, 7, 7])):
        feed = {"trips": np.array(trips), "skip": np.array(skip), "x": x, "idx": np.array(idx)}
        assert_close(sess.run(None, feed)[0], ort_run(model, feed)[0])
    with pytest.raises(InputError, match="Gather"):
        sess.run(None, {"trips": np.array(4), "skip": np.array(3), "x": x, "idx": np.array([7, 7, 7])})


def test_a_run_time_loop_inside_a_run_time_loop():
    """y += x * (i + j) over i < trips, j < inner: the inner loop runs anew in every outer iteration
    (its iteration number and carried value start again), reading the outer one's number."""
    inner_body = _counting_body([helper.make_node("Add", ["inner_i", "i"], ["ij"]), helper.make_node("Cast", ["ij"], ["f"], to=F),
                             helper.make_node("Mul", ["x", "f"], ["xf"]), helper.make_node("Add", ["z", "xf"], ["z_out"])],
                            ["z"], ["z_out"], prefix="inner_")
    outer_body = _counting_body([helper.make_node("Loop", ["inner", "", "y"], ["y_out"], body=inner_body)], ["y"], ["y_out"])
    model = make_model([helper.make_node("Loop", ["trips", "", "x"], ["y"], body=outer_body)],
                       [("trips", [], np.int64), ("inner", [], np.int64), ("x", [3])], [("y", [3])])
    sess = InferenceSession(model.SerializeToString())
    x = np.array([1.0, -2.0, 0.5], np.float32)
    for trips, inner in ((3, 4), (1, 0), (0, 2), (5, 1)):
        feed = {"trips": np.array(trips), "inner": np.array(inner), "x": x}
        assert_close(sess.run(None, feed)[0], ort_run(model, feed)[0])
