"""Element types: one enum that maps between ONNX, numpy, xDSL and ORT type strings."""
from __future__ import annotations

from enum import Enum

import numpy as np

from pyflame_rt.errors import DTypeMismatchError


class DType(Enum):
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    INT8 = "int8"
    UINT8 = "uint8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    BOOL = "bool"

    # The guide's spellings: aliases of the members above (same values, same identity)
    Float32 = "float32"
    Float64 = "float64"
    Float16 = "float16"
    BFloat16 = "bfloat16"
    Int8 = "int8"
    UInt8 = "uint8"
    Int16 = "int16"
    Int32 = "int32"
    Int64 = "int64"
    Bool = "bool"

    @property
    def numpy(self) -> np.dtype:
        dt = _NUMPY.get(self)  # cached: every run checks its feeds' dtypes against it
        if dt is None:
            if self is DType.BFLOAT16:
                import ml_dtypes  # numpy's bfloat16; slow to import, so only when it is used

                dt = np.dtype(ml_dtypes.bfloat16)
            else:
                dt = np.dtype(self.value)
            _NUMPY[self] = dt
        return dt

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def ort_type(self) -> str:
        """The type string onnxruntime's NodeArg.type uses, e.g. 'tensor(float)'."""
        return f"tensor({_ORT_NAMES[self]})"

    @property
    def onnx(self) -> int:
        return _TO_ONNX[self]

    @staticmethod
    def from_numpy(dt) -> "DType":
        dt = np.dtype(dt)
        if dt.name == "bfloat16":  # ml_dtypes.bfloat16
            return DType.BFLOAT16
        try:
            return DType(dt.name)
        except ValueError:
            raise DTypeMismatchError(f"numpy dtype {dt} has no PyFlameRT equivalent") from None

    @staticmethod
    def from_onnx(elem_type: int) -> "DType":
        for k, v in _TO_ONNX.items():
            if v == elem_type:
                return k
        from onnx import TensorProto

        name = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else elem_type
        raise DTypeMismatchError(f"ONNX element type {name} is not supported")


_NUMPY: dict = {}

_ORT_NAMES = {
    DType.FLOAT32: "float", DType.FLOAT64: "double", DType.FLOAT16: "float16",
    DType.BFLOAT16: "bfloat16", DType.INT8: "int8", DType.UINT8: "uint8",
    DType.INT16: "int16", DType.INT32: "int32", DType.INT64: "int64", DType.BOOL: "bool",
}

# onnx.TensorProto.DataType codes (fixed by onnx.proto); spelled out so that running an
# artifact does not import onnx (tests/unit/test_cold_start.py checks them against onnx)
_TO_ONNX = {
    DType.FLOAT32: 1, DType.FLOAT64: 11, DType.FLOAT16: 10, DType.BFLOAT16: 16, DType.INT8: 3,
    DType.UINT8: 2, DType.INT16: 5, DType.INT32: 6, DType.INT64: 7, DType.BOOL: 9,
}
