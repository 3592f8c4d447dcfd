"""The header's structured_io: saved in the artifact, reloaded, and checked by the loader."""
import copy

import numpy as np
import pytest
from onnx import TensorProto, helper

from pyflame_rt import InferenceSession, artifact
from pyflame_rt.compiler import compile_model
from pyflame_rt.errors import InvalidModelError


@pytest.fixture(scope="module")
def compiled():
    """s: a sequence input, o: an optional one; outputs the appended sequence and o passed through."""
    seq = helper.make_tensor_sequence_value_info
    opt = helper.make_value_info("o", helper.make_optional_type_proto(helper.make_tensor_type_proto(
        TensorProto.FLOAT, [2])))
    out_opt = helper.make_value_info("p", opt.type)
    nodes = [helper.make_node("SequenceInsert", ["s", "x"], ["t"]), helper.make_node("Identity", ["o"], ["p"])]
    graph = helper.make_graph(nodes, "g", [seq("s", TensorProto.FLOAT, [2]), helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [2]), opt], [seq("t", TensorProto.FLOAT, [2]), out_opt])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    return compile_model(model)


def test_an_artifact_keeps_its_sequence_and_optional_io(compiled, tmp_path):
    path = tmp_path / "m.pfm"
    artifact.save(compiled, path)
    sess = InferenceSession(str(path))
    assert [(i.name, i.type) for i in sess.get_inputs()] == [
        ("s", "seq(tensor(float))"), ("x", "tensor(float)"), ("o", "optional(tensor(float))")]
    x = np.array([1, 2], np.float32)
    t, p = sess.run(None, {"s": [x + 1, x + 2], "x": x, "o": None})
    assert [a.tolist() for a in t] == [[2, 3], [3, 4], [1, 2]] and p is None
    p, t = sess.run(["p", "t"], {"s": [], "x": x, "o": x})
    assert p.tolist() == [1, 2] and [a.tolist() for a in t] == [[1, 2]]


@pytest.mark.parametrize("corrupt", [
    lambda io: io["inputs"].pop(),
    lambda io: io["outputs"][0]["layout"].update(stacked="nothing"),
    lambda io: io["inputs"][2]["layout"]["optional"].update(flag="x"),
    lambda io: io["inputs"][0].update(layout={"stacked": "o.has_element"}),
    lambda io: io.update(inputs=None),
])
def test_the_loader_refuses_a_malformed_structured_io(compiled, tmp_path, corrupt):
    bad = copy.copy(compiled)
    bad.header = copy.deepcopy(compiled.header)
    corrupt(bad.header["structured_io"])
    path = tmp_path / "bad.pfm"
    artifact.save(bad, path)
    with pytest.raises(InvalidModelError, match="structured_io"):
        InferenceSession(str(path))
