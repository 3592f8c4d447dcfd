"""A read-only memory mapping of a whole file, the zero-copy base of artifact loading."""
from __future__ import annotations

import mmap
import os

import numpy as np

from pyflame_rt.errors import InvalidModelError


class MappedFile:
    """`path` mapped read-only; slices are numpy views into the page cache (no copy).

    The mapping stays valid while any view of it is alive (numpy keeps the mmap
    referenced), so `close()` only drops this object's reference.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                self.size = st.st_size
                self.identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
                self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if self.size else None
        except FileNotFoundError:
            raise InvalidModelError(f"file not found: {self.path}") from None
        except IsADirectoryError:
            raise InvalidModelError(f"path is a directory, not a file: {self.path}") from None
        except (OSError, ValueError) as e:
            raise InvalidModelError(f"cannot map {self.path}: {e}") from None

    def view(self, offset: int, size: int) -> np.ndarray:
        """uint8 view of bytes [offset, offset+size); the caller has checked the bounds."""
        if size == 0:
            return np.zeros(0, np.uint8)
        return np.frombuffer(self._mm, dtype=np.uint8, count=size, offset=offset)

    def read(self, offset: int, size: int) -> bytes:
        return bytes(self._mm[offset:offset + size]) if self._mm is not None else b""

    def close(self) -> None:
        self._mm = None

    def __enter__(self) -> "MappedFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
