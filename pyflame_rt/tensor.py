"""`Tensor`: a typed, shaped wrapper over a host numpy array (seed API)."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dtype import DType


class Tensor:
    def __init__(self, data, dtype: DType | None = None):
        arr = np.asarray(data, dtype=dtype.numpy if dtype is not None else None)
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
