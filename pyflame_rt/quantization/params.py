"""`QuantParams`: the affine map between real values and int8 / uint8 codes,
real = scale * (code - zero_point), per tensor or per slice along one axis."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyflame_rt.dtype import DType
from pyflame_rt.errors import ValidationError

_CODE_RANGE = {DType.INT8: (-128, 127), DType.UINT8: (0, 255)}


@dataclass(frozen=True)
class QuantParams:
    """scale (float32) and zero_point (int32), scalars for a whole tensor or vectors along `axis`."""

    scale: np.ndarray
    zero_point: np.ndarray
    dtype: DType = DType.INT8
    axis: int | None = None

    @classmethod
    def from_range(cls, lo, hi, dtype: DType = DType.INT8, symmetric: bool = True,
                   axis: int | None = None) -> "QuantParams":
        """The parameters that represent [lo, hi] (widened to contain 0, so zero is exact).
        Symmetric: the range is [-m, m], m = max(|lo|, |hi|), with zero point 0 for int8 and 128
        for uint8, so m maps to 127 codes; asymmetric: lo and hi map to the end codes."""
        if dtype not in _CODE_RANGE:
            raise ValidationError(f"quantized dtype must be int8 or uint8, got {dtype}")
        qmin, qmax = _CODE_RANGE[dtype]
        lo = np.minimum(np.asarray(lo, np.float64), 0.0)
        hi = np.maximum(np.asarray(hi, np.float64), 0.0)
        if symmetric:
            scale = np.maximum(-lo, hi) / 127.0
            zero_point = np.full(scale.shape, 0 if dtype is DType.INT8 else 128)
        else:
            scale = (hi - lo) / (qmax - qmin)
            safe = np.where(scale > 0, scale, 1.0)
            zero_point = np.clip(np.round(qmin - lo / safe), qmin, qmax)
        scale = np.where(scale > 0, scale, 1.0)  # an all-zero tensor: any scale represents it exactly
        return cls(scale.astype(np.float32), zero_point.astype(np.int32), dtype, axis)

    @classmethod
    def for_weight(cls, weight: np.ndarray, dtype: DType = DType.INT8, symmetric: bool = True,
                   axis: int | None = None) -> "QuantParams":
        """From a weight's own range: over the whole tensor, or per slice along `axis` (the output
        channels: axis 0 of a Conv weight, the last axis of a MatMul's)."""
        w = np.asarray(weight, np.float32)
        if axis is None:
            return cls.from_range(w.min(), w.max(), dtype, symmetric)
        axis = axis % w.ndim
        others = tuple(a for a in range(w.ndim) if a != axis)
        return cls.from_range(w.min(axis=others), w.max(axis=others), dtype, symmetric, axis)

    def _along(self, v: np.ndarray, ndim: int) -> np.ndarray:
        if self.axis is None:
            return v
        shape = [1] * ndim
        shape[self.axis] = v.size
        return v.reshape(shape)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        qmin, qmax = _CODE_RANGE[self.dtype]
        x = np.asarray(x, np.float32)
        codes = np.round(x / self._along(self.scale, x.ndim)) + self._along(self.zero_point, x.ndim)
        return np.clip(codes, qmin, qmax).astype(self.dtype.numpy)

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        codes = np.asarray(codes)
        return ((codes.astype(np.int32) - self._along(self.zero_point, codes.ndim))
                * self._along(self.scale, codes.ndim)).astype(np.float32)

    def to_json(self) -> dict:
        return {"scale": self.scale.tolist(), "zero_point": self.zero_point.tolist(), "dtype": self.dtype.value,
                "axis": self.axis}
