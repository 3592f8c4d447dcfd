"""`Tensor`: a typed, shaped wrapper over a host numpy array (seed API)."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dtype import DType
from pyflame_rt.errors import InputError


class Tensor:
    def __init__(self, data, dtype: DType | None = None):
        if dtype is not None and not isinstance(dtype, DType):
            raise InputError(f"dtype must be a DType, got {type(dtype).__name__}")
        try:
            arr = np.asarray(data, dtype=dtype.numpy if dtype is not None else None)
        except (TypeError, ValueError, OverflowError) as e:  # ragged nesting, values the dtype cannot hold
            raise InputError(f"cannot make a tensor of this data: {e}") from None
        self.dtype = DType.from_numpy(arr.dtype)
        self._array = np.asarray(arr, order="C")

    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    @property
    def nbytes(self) -> int:
        return self._array.nbytes

    def numpy(self) -> np.ndarray:
        return self._array

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)

    def __repr__(self) -> str:
        return f"Tensor(shape={list(self.shape)}, dtype={self.dtype.value})"


def from_numpy(array: np.ndarray) -> Tensor:
    """Wrap a numpy array (no copy when it is already C-contiguous)."""
    return Tensor(array)
