"""How sequence and optional inputs / outputs flatten to the compiled model's tensors."""
import pytest
from onnx import TensorProto, helper

from pyflame_rt.dialects.symbolic import SymDim
from pyflame_rt.dtype import DType
from pyflame_rt.errors import UnsupportedFormatError
from pyflame_rt.importers.onnx import structured
from pyflame_rt.importers.onnx.importer import ONNXImporter

_tensor = helper.make_tensor_type_proto
_seq = helper.make_sequence_type_proto
_opt = helper.make_optional_type_proto


def _info(name, tt):
    return tuple(d.dim_value for d in tt.shape.dim), DType.from_onnx(tt.elem_type)


@pytest.mark.parametrize("t, text", [
    (_tensor(TensorProto.FLOAT, [2]), "tensor(float)"),
    (_seq(_tensor(TensorProto.INT64, None)), "seq(tensor(int64))"),
    (_opt(_seq(_tensor(TensorProto.DOUBLE, [1]))), "optional(seq(tensor(double)))"),
])
def test_type_strings_are_onnxruntime_s(t, text):
    assert structured.type_string(t) == text


def test_a_sequence_input_is_stacked_with_a_count_dim():
    args, layout = structured.flatten_input("s", _seq(_tensor(TensorProto.FLOAT, [3])), _info, ONNXImporter().new_dim)
    assert layout == {"stacked": "s"}
    assert args == [structured.FlatInput("s", (SymDim.of("s_count"), 3), DType.FLOAT32)]


def test_a_sequence_input_without_element_shape_is_ragged():
    args, layout = structured.flatten_input("s", _seq(_tensor(TensorProto.INT64, None)), _info, ONNXImporter().new_dim)
    assert layout == {"ragged": {"values": "s", "shapes": "s.shapes"}}
    assert [(a.name, a.shape, a.dtype) for a in args] == [
        ("s", (SymDim.of("s_total"),), DType.INT64),
        ("s.shapes", (SymDim.of("s_count"), SymDim.of("s_rank")), DType.INT64)]


def test_an_optional_input_adds_a_flag():
    args, layout = structured.flatten_input("o", _opt(_tensor(TensorProto.FLOAT, [2])), _info, ONNXImporter().new_dim)
    assert layout == {"optional": {"element": {"tensor": "o"}, "flag": "o.has_element"}}
    assert args[-1] == structured.FlatInput("o.has_element", (), DType.BOOL)


def test_a_sequence_of_sequences_is_refused():
    with pytest.raises(UnsupportedFormatError, match="a sequence of seq"):
        structured.flatten_input("s", _seq(_seq(_tensor(TensorProto.FLOAT, [2]))), _info, ONNXImporter().new_dim)


def test_a_map_input_is_refused():
    t = helper.make_map_type_proto(TensorProto.INT64, _tensor(TensorProto.FLOAT, [1]))
    with pytest.raises(UnsupportedFormatError, match="map_type values are not supported"):
        structured.flatten_input("m", t, _info, ONNXImporter().new_dim)
