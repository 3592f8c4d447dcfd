"""Weights live in the IR: `graph.weight` ops, printed and parsed as a file-metadata section,
so a printed module compiles end to end (dialects/weights.py)."""
from __future__ import annotations

import io

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import helper
from xdsl.dialects import arith
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp, VectorType, f16, f32
from xdsl.printer import Printer
from xdsl.utils.exceptions import ParseError

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession, artifact, cli, opt_tool
from pyflame_rt.compiler import compile_model
from pyflame_rt.dialects.weights import WeightOp, WeightTable, parse_module, print_module
from pyflame_rt.errors import InvalidModelError
from pyflame_rt.importers.onnx import from_onnx


def _mlp(rng) -> onnx.ModelProto:
    nodes = [helper.make_node("MatMul", ["x", "onnx::w/1"], ["h"]), helper.make_node("Add", ["h", "b"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("MatMul", ["r", "main"], ["y"])]
    weights = {"onnx::w/1": rng.standard_normal((8, 16), np.float32), "b": rng.standard_normal(16, np.float32),
               "main": rng.standard_normal((16, 3), np.float32)}  # "main" is also the entry function's name
    return make_model(nodes, [("x", ["N", 8])], [("y", ["N", 3])], weights)


def _text(module, elide_larger_than=None) -> str:
    out = io.StringIO()
    print_module(module, out, True, elide_larger_than)
    return out.getvalue()


def test_printed_module_with_weights_compiles_and_matches_onnxruntime(rng, tmp_path):
    model = _mlp(rng)
    onnx.save(model, tmp_path / "m.onnx")
    mlir, pfm = tmp_path / "m.mlir", tmp_path / "m.pfm"
    assert opt_tool.main([str(tmp_path / "m.onnx"), "-O2", "--print-weights", "-o", str(mlir)]) == 0
    assert cli.main(["compile", "-q", str(mlir), "-o", str(pfm)]) == 0
    x = rng.standard_normal((5, 8), np.float32)
    assert_close(InferenceSession(str(pfm)).run(None, {"x": x})[0], ort_run(model, {"x": x})[0], 1e-5)


def test_weights_survive_print_and_parse_bit_exactly(rng):
    module = from_onnx(_mlp(rng)).module
    table = WeightTable.of(module)
    table.add("half", rng.standard_normal((2, 3)).astype(np.float16))
    table.add("bf16", rng.standard_normal(5).astype(ml_dtypes.bfloat16))
    table.add("ints", np.arange(-3, 3, dtype=np.int64).reshape(3, 2))
    table.add("mask", np.array([True, False, True]))
    table.add("scalar", np.float32(2.5).reshape(()))
    parsed = parse_module(opt_tool.make_context(), _text(module))
    parsed.verify()
    back = WeightTable.of(parsed)
    assert list(back) == list(table)
    for name, arr in table.items():
        assert back[name].dtype == arr.dtype and back[name].shape == arr.shape
        assert back[name].tobytes() == arr.tobytes(), name


def test_float_literals_with_infinities_and_nans_survive_print_and_parse_bit_exactly():
    neg_inf, nan = np.float32(-np.inf), np.array([0x7FC00123], np.uint32).view(np.float32)[0]
    values = [(f32, [neg_inf] * 4), (f32, [1.5, np.inf, nan, -0.0]), (f16, [-np.inf] * 4), (f32, [1.0] * 4)]
    module = ModuleOp([arith.ConstantOp(DenseIntOrFPElementsAttr.from_list(VectorType(t, [4]), v))
                       for t, v in values])
    text = _text(module)
    assert 'dense<"0x000080FF">' in text and "dense<1.000000e+00>" in text  # finite ones print as before
    parsed = parse_module(opt_tool.make_context(), text)
    assert [op.value.data.data for op in parsed.ops] == [op.value.data.data for op in module.ops]


def test_elided_weights_parse_as_declarations_and_do_not_compile(rng, tmp_path):
    module = from_onnx(_mlp(rng)).module
    text = _text(module, elide_larger_than=64)  # only b (16 floats) is small enough
    assert '"onnx::w/1": "0x' not in text and 'b: "0x' in text
    parsed = parse_module(opt_tool.make_context(), text)
    assert [op.sym_name.data for op in parsed.ops if isinstance(op, WeightOp)] == ["onnx::w/1", "b", "main_1"]
    assert list(WeightTable.of(parsed)) == ["b"]
    (tmp_path / "m.mlir").write_text(text)
    with pytest.raises(InvalidModelError, match=r"weights \['main_1', 'onnx::w/1'\] have no value.*--print-weights"):
        compile_model(str(tmp_path / "m.mlir"))


@pytest.mark.parametrize("section, message", [
    ('graph: { nothere: "0x0400000000000000" }', "resource 'nothere' names no graph.weight"),
    ('graph: { w: "0x040000000000" }', r"2 bytes do not hold a tensor<2xf32>"),
    ('graph: { w: "0x04" }', "an 8-digit alignment"),
    ('builtin: { w: "0x0400000000000000" }', "resources of dialect 'builtin' are not supported"),
])
def test_bad_resources_are_parse_errors(section, message):
    text = ("graph.weight @w : tensor<2xf32>\nfunc.func @main() {\n  func.return\n}\n"
            f"{{-#\n  dialect_resources: {{ {section} }}\n#-}}\n")
    with pytest.raises(ParseError, match=message):
        parse_module(opt_tool.make_context(), text)


def test_pyflame_opt_reports_a_bad_resource(tmp_path, capsys):
    (tmp_path / "bad.mlir").write_text('graph.weight @w : tensor<2xf32>\n{-# dialect_resources: { graph: '
                                       '{ w: "0x04000000zz" } } #-}\n')
    assert opt_tool.main([str(tmp_path / "bad.mlir")]) == 1
    assert "pyflame-opt: error:" in capsys.readouterr().err


def test_the_module_is_the_only_store(rng):
    res = from_onnx(_mlp(rng))
    assert "main" not in res.weights and "main_1" in res.weights  # the entry function keeps its name
    clone = res.module.clone()
    assert WeightTable.of(clone)["b"] is res.weights["b"]  # cloning shares the read-only arrays
    assert not res.weights["b"].flags.writeable
    WeightTable.of(clone).prune({"b"})
    assert list(WeightTable.of(clone)) == ["b"] and len(res.weights) == 3
    res.weights["b"] = np.zeros(16, np.float32)
    assert not res.weights["b"].any()
    del res.weights["b"]
    assert "b" not in WeightTable.of(res.module)
    assert not any(op.sym_name.data == "b" for op in res.module.ops if isinstance(op, WeightOp))


def test_generic_form_carries_the_blob(rng):
    module = from_onnx(_mlp(rng)).module
    out = io.StringIO()
    Printer(stream=out, print_generic_format=True).print_op(module)
    parsed = parse_module(opt_tool.make_context(), out.getvalue())
    assert WeightTable.of(parsed)["b"].tobytes() == WeightTable.of(module)["b"].tobytes()


def test_a_blob_of_the_wrong_type_does_not_verify():
    op = WeightOp("w", np.zeros(3, np.float32))
    op.type = WeightOp("v", np.zeros(4, np.float32)).type
    with pytest.raises(Exception, match="its blob is a tensor<3xf32>, not a tensor<4xf32>"):
        op.verify()


def test_a_comment_mentioning_the_section_is_not_the_section():
    text = ('// a file ends with {-# dialect_resources #-}\ngraph.weight @w : tensor<1xf32>\n'
            'func.func @main() {\n  func.return\n}\n{-# dialect_resources: { graph: { w: "0x040000000000803f" } } #-}\n')
    assert WeightTable.of(parse_module(opt_tool.make_context(), text))["w"].tolist() == [1.0]


@pytest.mark.slow
def test_folded_and_permuted_conv_weights_compile_from_mlir(rng, tmp_path):
    """-O2 folds the BatchNorm into new conv weights and makes the conv channels-last (permuted
    weights): the printed module carries those new weights, and compiling it again is exact."""
    c = 4
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1] * 4),
             helper.make_node("BatchNormalization", ["c", "s", "t", "m", "v"], ["bn"]),
             helper.make_node("Relu", ["bn"], ["y"])]
    inits = {"w": rng.standard_normal((c, 3, 3, 3), np.float32), "s": rng.uniform(0.5, 2, c).astype(np.float32),
             "t": rng.standard_normal(c, np.float32), "m": rng.standard_normal(c, np.float32),
             "v": rng.uniform(0.5, 2, c).astype(np.float32)}
    model = make_model(nodes, [("x", ["N", 3, 8, 8])], [("y", ["N", c, 8, 8])], inits)
    onnx.save(model, tmp_path / "conv.onnx")
    mlir = tmp_path / "conv.mlir"
    assert opt_tool.main([str(tmp_path / "conv.onnx"), "-O2", "--print-weights", "-o", str(mlir)]) == 0
    assert "graph.weight @w :" not in mlir.read_text()  # replaced by the folded weights
    x = rng.standard_normal((2, 3, 8, 8), np.float32)
    artifact.save(compile_model(str(mlir)), str(tmp_path / "conv.pfm"))
    assert_close(InferenceSession(str(tmp_path / "conv.pfm")).run(None, {"x": x})[0], ort_run(model, {"x": x})[0])
