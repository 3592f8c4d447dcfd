"""`Tensor`: a typed, shaped host tensor over a C-contiguous numpy array (the guide's API).

`Tensor(shape, dtype)` allocates a zero-filled tensor; `from_numpy(array)` wraps an array and
shares its memory (no copy when it is already C-contiguous). Sessions take either as a feed.
"""
from __future__ import annotations

from numbers import Integral

import numpy as np

from pyflame_rt.dtype import DType
from pyflame_rt.errors import InputError, ShapeMismatchError


class Tensor:
    def __init__(self, shape, dtype: DType):
        if not isinstance(dtype, DType):
            raise InputError(f"dtype must be a DType, got {type(dtype).__name__}")
        dims = _dims(shape)
        try:
            array = np.zeros(dims, dtype.numpy)
        except (MemoryError, ValueError) as e:  # ValueError: a size past the address space
            raise InputError(f"cannot allocate a tensor of shape {list(dims)} and dtype {dtype.value}: {e}") from None
        self._init(array, owns_data=True)

    @classmethod
    def _over(cls, array: np.ndarray, owns_data: bool) -> "Tensor":
        tensor = cls.__new__(cls)
        tensor._init(array, owns_data)
        return tensor

    def _init(self, array: np.ndarray, owns_data: bool) -> None:
        self.dtype = DType.from_numpy(array.dtype)
        self._array = array
        self._owns_data = owns_data

    @property
    def shape(self) -> tuple[int, ...]:
        return self._array.shape

    @property
    def ndim(self) -> int:
        return self._array.ndim

    @property
    def num_elements(self) -> int:
        return self._array.size

    @property
    def size_bytes(self) -> int:
        return self._array.nbytes

    nbytes = size_bytes  # numpy's name

    @property
    def owns_data(self) -> bool:
        """False for `from_numpy` tensors and reshapes: they share another array's memory."""
        return self._owns_data

    @property
    def is_valid(self) -> bool:
        """Always True: a Python tensor always holds its data (the guide's C++ tensor may be moved from)."""
        return True

    def numpy(self) -> np.ndarray:
        """The tensor's memory as an array (no copy)."""
        return self._array

    def clone(self) -> "Tensor":
        """A deep copy that owns its memory."""
        return Tensor._over(self._array.copy(), owns_data=True)

    def reshape(self, shape) -> "Tensor":
        """A tensor of the same elements in another shape, sharing this tensor's memory."""
        dims = _dims(shape)
        if int(np.prod(dims, dtype=object)) != self.num_elements:
            raise ShapeMismatchError(f"cannot reshape a tensor of shape {list(self.shape)} "
                                     f"({self.num_elements} elements) to {list(dims)}")
        return Tensor._over(self._array.reshape(dims), owns_data=False)

    def fill(self, value) -> None:
        if not self._array.flags.writeable:
            raise InputError("this tensor wraps a read-only array and cannot be written")
        try:
            self._array[...] = value
        except (TypeError, ValueError, OverflowError) as e:
            raise InputError(f"cannot fill a {self.dtype.value} tensor with {value!r}: {e}") from None

    def zero(self) -> None:
        self.fill(0)

    def __array__(self, dtype=None, copy=None):
        return self._array if dtype is None else self._array.astype(dtype)

    def __repr__(self) -> str:
        return f"Tensor(shape={list(self.shape)}, dtype={self.dtype.value})"


def from_numpy(array: np.ndarray) -> Tensor:
    """Wrap a numpy array, sharing its memory (a C-contiguous copy only when it is not one)."""
    if not isinstance(array, np.ndarray):
        raise InputError(f"from_numpy takes a numpy array, got {type(array).__name__}")
    return Tensor._over(np.ascontiguousarray(array), owns_data=False)


def to_numpy(tensor: Tensor) -> np.ndarray:
    """The tensor's memory as an array (no copy): `tensor.numpy()`."""
    if not isinstance(tensor, Tensor):
        raise InputError(f"to_numpy takes a Tensor, got {type(tensor).__name__}")
    return tensor.numpy()


def _dims(shape) -> tuple[int, ...]:
    if isinstance(shape, np.ndarray):
        raise InputError("Tensor(shape, dtype) takes a shape; wrap an array with pyflame_rt.from_numpy")
    if not isinstance(shape, (list, tuple)) or not all(
            isinstance(d, Integral) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InputError(f"a tensor shape is a list of ints >= 0, got {shape!r}")
    return tuple(int(d) for d in shape)
