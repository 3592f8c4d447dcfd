"""Kernel-level IR printed with its weights (`pyflame-opt --to kernel --print-weights`) compiles to a
working artifact: the printed level is a real interface, not a debugging view."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import assert_close, ort_run
from pyflame_rt import InferenceSession, artifact
from pyflame_rt.compiler import compile_model
from pyflame_rt.errors import InvalidModelError, ShapeMismatchError
from pyflame_rt.opt_tool import main as pyflame_opt


def matmul_bias_relu():
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 24)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(24).astype(np.float32), "b")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["mm"], name="mm"),
             helper.make_node("Add", ["mm", "b"], ["s"], name="add"),
             helper.make_node("Relu", ["s"], ["y"], name="relu")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "k"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 24])], [w, b])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.fixture(scope="module")
def kernel_mlir(tmp_path_factory):
    d = tmp_path_factory.mktemp("kernel_level")
    model = matmul_bias_relu()
    (d / "m.onnx").write_bytes(model.SerializeToString())
    out = d / "m.kernel.mlir"
    assert pyflame_opt([str(d / "m.onnx"), "--to", "kernel", "--cpu", "x86-64-v3", "--print-weights",
                        "-o", str(out)]) == 0
    return model, out


def test_printed_kernel_ir_compiles_and_matches_onnxruntime(kernel_mlir, tmp_path):
    model, path = kernel_mlir
    text = path.read_text()
    assert "kernel.schedule" in text and "kernel.launch" in text and "dialect_resources" in text
    compiled = compile_model(str(path))
    assert "optimization" not in compiled.header  # lowered when it was printed
    artifact.save(compiled, tmp_path / "m.pfm")
    sess = InferenceSession(str(tmp_path / "m.pfm"))
    for batch in (1, 7):  # the schedule's sizes are index arithmetic over the run's dims
        x = np.random.default_rng(batch).standard_normal((batch, 4)).astype(np.float32)
        assert_close(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0])
    # the shape assumptions travel as kernel.assume ops: a wrong inner dim is refused before any kernel
    with pytest.raises(ShapeMismatchError, match="mm"):
        sess.run(None, {"x": np.ones((2, 5), np.float32)})


def test_kernel_ir_without_weight_values_is_refused(kernel_mlir, tmp_path):
    _, path = kernel_mlir
    text = path.read_text()
    bare = tmp_path / "bare.mlir"
    bare.write_text(text[:text.index("{-#")])  # the declarations only
    with pytest.raises(InvalidModelError, match="packed_b|bias|w"):
        compile_model(str(bare))


def test_a_checked_compile_of_unchecked_kernel_ir_is_refused(kernel_mlir):
    from pyflame_rt.compiler import CompileOptions
    from pyflame_rt.errors import ValidationError

    _, path = kernel_mlir
    with pytest.raises(ValidationError, match="normal build"):
        compile_model(str(path), CompileOptions(checked=True))


def max_pool_reduce_max():
    """Kernels whose initial value is -inf: a max pool and a max reduction."""
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("ReduceMax", ["p", "axes"], ["y"], keepdims=0, name="rmax")]
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [3])
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4])], [axes])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def test_kernel_ir_with_infinities_parses_back_exactly_and_compiles(tmp_path):
    model = max_pool_reduce_max()
    (tmp_path / "m.onnx").write_bytes(model.SerializeToString())
    printed, reprinted = tmp_path / "m.kernel.mlir", tmp_path / "again.kernel.mlir"
    assert pyflame_opt([str(tmp_path / "m.onnx"), "--to", "kernel", "--print-weights", "-o", str(printed)]) == 0
    assert 'dense<"0x000080FF"> : vector<' in printed.read_text()  # a -inf splat, as its bytes
    assert pyflame_opt([str(printed), "--to", "kernel", "--print-weights", "-o", str(reprinted)]) == 0
    assert reprinted.read_text() == printed.read_text()
    artifact.save(compile_model(str(printed)), tmp_path / "m.pfm")
    x = -np.abs(np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)) - 1
    y = InferenceSession(str(tmp_path / "m.pfm")).run(None, {"x": x})[0]
    assert_close(y, ort_run(model, {"x": x})[0])


def test_kernel_ir_calling_c_functions_declares_them_and_compiles(tmp_path):
    """float64 Erf / Asinh call the C library's erf / asinh (no LLVM intrinsic): the printed kernel level
    declares them, parses back and compiles to the same results."""
    import math

    nodes = [helper.make_node("Erf", ["x"], ["e"]), helper.make_node("Asinh", ["x"], ["a"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [3, 7])],
                          [helper.make_tensor_value_info(o, TensorProto.DOUBLE, [3, 7]) for o in ("e", "a")])
    (tmp_path / "m.onnx").write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    out = tmp_path / "m.kernel.mlir"
    assert pyflame_opt([str(tmp_path / "m.onnx"), "--to", "kernel", "--cpu", "x86-64-v3", "-o", str(out)]) == 0
    text = out.read_text()
    assert "func.func private @erf(f64) -> f64" in text and "func.func private @asinh(f64) -> f64" in text
    artifact.save(compile_model(str(out)), tmp_path / "m.pfm")
    x = np.random.default_rng(0).uniform(-5, 5, (3, 7))
    e, a = InferenceSession(str(tmp_path / "m.pfm")).run(None, {"x": x})
    np.testing.assert_allclose(e, np.vectorize(math.erf)(x), rtol=1e-15)
    np.testing.assert_allclose(a, np.arcsinh(x), rtol=1e-15)
