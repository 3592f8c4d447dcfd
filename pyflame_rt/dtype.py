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
    UINT16 = "uint16"
    UINT32 = "uint32"
    UINT64 = "uint64"
    # narrow storage types (ml_dtypes' numpy types), one element per byte in memory; ONNX packs the
    # 4-bit and 2-bit ones two / four per byte in its tensors, the importer unpacks them
    FLOAT8E4M3FN = "float8_e4m3fn"
    FLOAT8E4M3FNUZ = "float8_e4m3fnuz"
    FLOAT8E5M2 = "float8_e5m2"
    FLOAT8E5M2FNUZ = "float8_e5m2fnuz"
    FLOAT8E8M0 = "float8_e8m0fnu"
    FLOAT4E2M1 = "float4_e2m1fn"
    INT4 = "int4"
    UINT4 = "uint4"
    INT2 = "int2"
    UINT2 = "uint2"

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
            if self in _ML_DTYPES:
                import ml_dtypes  # numpy's bfloat16, float8, ...; slow to import, so only when used

                dt = np.dtype(getattr(ml_dtypes, self.value))
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
# float8 / float4: computed in float32, stored as their codes
NARROW_FLOATS = (DType.FLOAT8E4M3FN, DType.FLOAT8E4M3FNUZ, DType.FLOAT8E5M2, DType.FLOAT8E5M2FNUZ, DType.FLOAT8E8M0,
                 DType.FLOAT4E2M1)
# int4 / uint4 / int2 / uint2 -> their bits, stored in a byte's low bits (the others 0, as ml_dtypes)
SUB_BYTE_INTS = {DType.INT4: 4, DType.UINT4: 4, DType.INT2: 2, DType.UINT2: 2}
_ML_DTYPES = frozenset({DType.BFLOAT16, *NARROW_FLOATS, *SUB_BYTE_INTS})

_ORT_NAMES = {
    DType.FLOAT32: "float", DType.FLOAT64: "double", DType.FLOAT16: "float16",
    DType.BFLOAT16: "bfloat16", DType.INT8: "int8", DType.UINT8: "uint8",
    DType.INT16: "int16", DType.INT32: "int32", DType.INT64: "int64", DType.BOOL: "bool",
    DType.UINT16: "uint16", DType.UINT32: "uint32", DType.UINT64: "uint64",
    DType.FLOAT8E4M3FN: "float8e4m3fn", DType.FLOAT8E4M3FNUZ: "float8e4m3fnuz", DType.FLOAT8E5M2: "float8e5m2",
    DType.FLOAT8E5M2FNUZ: "float8e5m2fnuz", DType.FLOAT8E8M0: "float8e8m0", DType.FLOAT4E2M1: "float4e2m1",
    DType.INT4: "int4", DType.UINT4: "uint4", DType.INT2: "int2", DType.UINT2: "uint2",
}

# onnx.TensorProto.DataType codes (fixed by onnx.proto); spelled out so that running an
# artifact does not import onnx (tests/unit/test_cold_start.py checks them against onnx)
_TO_ONNX = {
    DType.FLOAT32: 1, DType.FLOAT64: 11, DType.FLOAT16: 10, DType.BFLOAT16: 16, DType.INT8: 3,
    DType.UINT8: 2, DType.INT16: 5, DType.INT32: 6, DType.INT64: 7, DType.BOOL: 9, DType.UINT16: 4,
    DType.UINT32: 12, DType.UINT64: 13, DType.FLOAT8E4M3FN: 17, DType.FLOAT8E4M3FNUZ: 18, DType.FLOAT8E5M2: 19,
    DType.FLOAT8E5M2FNUZ: 20, DType.FLOAT8E8M0: 24, DType.UINT4: 21, DType.INT4: 22, DType.FLOAT4E2M1: 23,
    DType.UINT2: 25, DType.INT2: 26,
}
