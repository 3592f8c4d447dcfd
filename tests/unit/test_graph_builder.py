"""The guide's Graph builder: graphs built node by node run in a session and match onnxruntime."""
import numpy as np
import pytest

from conftest import assert_close, ort_run
import pyflame_rt
from pyflame_rt import DType, Graph, ImportResult, InferenceSession, TensorInfo, ValidationError


def _mlp_graph(rng) -> Graph:
    """The guide's define_simple_mlp, with PyTorch's (out, in) weight layout."""
    graph = Graph("simple_mlp")
    graph.add_input("input", [None, 784], DType.Float32)
    graph.add_initializer("fc1.weight", rng.standard_normal((32, 784)).astype(np.float32) / 28)
    graph.add_initializer("fc1.bias", rng.standard_normal(32).astype(np.float32))
    graph.add_initializer("fc2.weight", pyflame_rt.from_numpy(rng.standard_normal((10, 32)).astype(np.float32)))
    graph.add_initializer("fc2.bias", rng.standard_normal(10).astype(np.float32))
    # added out of order on purpose: the builder sorts them
    graph.add_node("fc2", "Gemm", inputs=["relu1_out", "fc2.weight", "fc2.bias"], outputs=["output"],
                   attributes={"transB": 1})
    graph.add_node("relu1", "Relu", inputs=["fc1_out"], outputs=["relu1_out"])
    graph.add_node("fc1", "Gemm", inputs=["input", "fc1.weight", "fc1.bias"], outputs=["fc1_out"],
                   attributes={"transB": 1})
    graph.add_output("output", [None, 10], DType.Float32)
    return graph


@pytest.mark.slow  # compiles two GEMM kernels (~10 s on a loaded machine)
def test_built_graph_runs_in_a_session_like_onnxruntime():
    graph = _mlp_graph(np.random.default_rng(0))
    assert graph.validate() == []
    assert [n.name for n in graph.topological_sort()] == ["fc1", "relu1", "fc2"]
    sess = InferenceSession(graph)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "input" and inp.shape[1] == 784 and isinstance(inp.shape[0], str)
    assert out.shape[1] == 10 and out.type == "tensor(float)"
    x = np.random.default_rng(1).standard_normal((5, 784)).astype(np.float32)
    assert_close(sess.run(None, {"input": x})[0], ort_run(graph.to_onnx(), {"input": x})[0])
    assert sess.get_modelmeta().graph_name == "simple_mlp"


def _scale_graph() -> Graph:
    graph = Graph("scale")
    graph.add_input("a", ["n"], DType.Int64)
    graph.add_initializer("k", np.array([3], np.int64))
    graph.add_node("mul", "Mul", ["a", "k"], ["y"])
    graph.add_output("y", ["n"], DType.Int64)
    return graph


def test_built_graph_imports_to_graph_ir_and_runs():
    imported = _scale_graph().to_ir()
    assert isinstance(imported, ImportResult) and imported.node_count == 1 and imported.graph_name == "scale"
    assert "graph.mul" in {op.name for op in imported.main.walk()}
    a = np.arange(6, dtype=np.int64)
    for model in (imported, _scale_graph()):  # the IR, and the builder straight into a session
        np.testing.assert_array_equal(InferenceSession(model).run(None, {"a": a})[0], a * 3)


def test_tensor_info():
    info = TensorInfo()
    info.name, info.dtype, info.shape = "input", DType.Float32, [None, 3, 224, 224]
    assert info.is_dynamic() and not TensorInfo("x", [2, 3]).is_dynamic() and TensorInfo("x", ["n"]).is_dynamic()


def test_validate_lists_every_problem_and_sessions_refuse_invalid_graphs():
    graph = Graph("broken")
    graph.add_input("x", [2], DType.Float32)
    graph.add_node("a", "Relu", ["x"], ["t"])
    graph.add_node("a", "Relu", ["missing"], ["t"])
    graph.add_output("y", [2], DType.Float32)
    errors = graph.validate()
    assert len(errors) == 4, errors
    assert any("'t' is defined twice" in e for e in errors) and any("node name 'a'" in e for e in errors)
    assert any("reads 'missing'" in e for e in errors) and any("output 'y'" in e for e in errors)
    with pytest.raises(ValidationError) as err:
        InferenceSession(graph)
    assert err.value.errors == errors


def test_cycles_are_named():
    graph = Graph("loop")
    graph.add_input("x", [2], DType.Float32)
    graph.add_node("p", "Add", ["x", "r"], ["q"])
    graph.add_node("r", "Relu", ["q"], ["r"])
    graph.add_output("r", [2], DType.Float32)
    with pytest.raises(ValidationError, match=r"cycle through node\(s\) \['p', 'r'\]"):
        graph.topological_sort()
    assert graph.validate() == ["the graph has a cycle through node(s) ['p', 'r']"]


@pytest.mark.parametrize("call,match", [
    (lambda g: Graph(5), "graph name"),
    (lambda g: Graph("g", opset="17"), "opset must be an int"),
    (lambda g: g.add_input("x", [2, -1], DType.Float32), "shape items"),
    (lambda g: g.add_input("x", [2], "float32"), "dtype must be a DType"),
    (lambda g: g.add_input("", [2], DType.Float32), "non-empty str"),
    (lambda g: g.add_initializer("w", [1.0, 2.0]), "numpy array or Tensor"),
    (lambda g: g.add_node("n", "Relu", "x", ["y"]), "list of tensor names"),
    (lambda g: g.add_node("n", "Relu", ["x"], ["y"], attributes=[1]), "attributes must be a dict"),
])
def test_bad_builder_calls_raise_validation_errors(call, match):
    with pytest.raises(ValidationError, match=match):
        call(Graph())


def test_unstorable_attribute_is_a_validation_error():
    graph = Graph()
    graph.add_input("x", [2], DType.Float32)
    graph.add_node("n", "LeakyRelu", ["x"], ["y"], attributes={"alpha": object()})
    graph.add_output("y", [2], DType.Float32)
    with pytest.raises(ValidationError, match="attribute"):
        graph.to_onnx()
