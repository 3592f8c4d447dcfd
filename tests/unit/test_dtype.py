"""DType: the guide's member names next to the existing ones, numpy / ONNX / onnxruntime mappings."""
import numpy as np
import pytest

import pyflame_rt
from pyflame_rt import DType, DTypeMismatchError

GUIDE_NAMES = {  # the guide's DType table: name -> numpy equivalent (None: bfloat16, from ml_dtypes)
    "Float32": np.float32, "Float16": np.float16, "BFloat16": None, "Float64": np.float64, "Int64": np.int64,
    "Int32": np.int32, "Int16": np.int16, "Int8": np.int8, "UInt8": np.uint8, "Bool": np.bool_,
}


@pytest.mark.parametrize("name", GUIDE_NAMES)
def test_guide_names_are_the_existing_members(name):
    member = getattr(pyflame_rt.DType, name)
    assert member is DType[name.upper()]  # an alias: same member, same value
    if GUIDE_NAMES[name] is not None:
        assert member.numpy == np.dtype(GUIDE_NAMES[name])
        assert DType.from_numpy(GUIDE_NAMES[name]) is member
    assert member.itemsize == np.dtype(member.numpy).itemsize


def test_members_values_and_onnxruntime_type_strings_are_unchanged():
    assert len(DType) == 23  # the aliases add no members
    assert DType("float32") is DType.Float32 and DType.Float32.value == "float32"
    assert DType.Float32.ort_type == "tensor(float)" and DType.Float64.ort_type == "tensor(double)"
    assert DType.from_onnx(DType.Int64.onnx) is DType.INT64


def test_unknown_numpy_dtype_is_refused():
    with pytest.raises(DTypeMismatchError, match="complex64"):
        DType.from_numpy(np.complex64)


NARROW = {  # ml_dtypes' numpy type -> onnxruntime's type string
    "float8_e4m3fn": "float8e4m3fn", "float8_e4m3fnuz": "float8e4m3fnuz", "float8_e5m2": "float8e5m2",
    "float8_e5m2fnuz": "float8e5m2fnuz", "float8_e8m0fnu": "float8e8m0", "float4_e2m1fn": "float4e2m1",
    "int4": "int4", "uint4": "uint4", "int2": "int2", "uint2": "uint2",
}


@pytest.mark.parametrize("name", ["uint16", "uint32", "uint64", *NARROW])
def test_unsigned_and_narrow_types_map_to_numpy_and_onnxruntime(name):
    import ml_dtypes

    np_type = np.dtype(getattr(ml_dtypes, name, None) or name)
    member = DType.from_numpy(np_type)
    assert member.value == name and member.numpy == np_type
    assert member.itemsize == np_type.itemsize  # the 4-bit types too: one element per byte in memory
    assert member.ort_type == f"tensor({NARROW.get(name, name)})"
