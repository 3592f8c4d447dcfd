"""`MappedFile` and `MMapLoader`: the guide's memory-mapped loading names, kept safe.

A shared mapping of a file is not used: a file truncated or rewritten while mapped changes the
data under the reader or kills the process with SIGBUS (docs/security.md, "Sessions and their
files"). A `MappedFile` is instead the whole file read once into page-aligned private anonymous
memory (`files.read_private`), read-only; `advise` and `lock` act on that memory. `MMapLoader.load`
reads an artifact the same way and verifies it (digest, and signature with a key) before anything
in it is used, as every artifact load does.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from enum import Enum

import numpy as np

from pyflame_rt import files
from pyflame_rt.compiled_model import CompiledModel
from pyflame_rt.errors import BackendError, InvalidModelError, ValidationError


class MMapAdvice(Enum):
    """madvise hints: how the memory will be read."""

    Normal = mmap.MADV_NORMAL
    Sequential = mmap.MADV_SEQUENTIAL
    Random = mmap.MADV_RANDOM
    WillNeed = mmap.MADV_WILLNEED


class MappedFile:
    """A file's bytes in private read-only memory. `open` returns one; `close` releases it."""

    def __init__(self, image: np.ndarray, path: str):
        self._image: np.ndarray | None = image
        self.path = path

    @classmethod
    def open(cls, path: str | os.PathLike) -> "MappedFile":
        """InvalidModelError if `path` is missing, not a regular file or changes while it is read."""
        where = os.fspath(path)
        fd = files.open_regular(path, "file")
        try:
            image, _ = files.read_private(fd, where)
        finally:
            os.close(fd)
        return cls(image, where)

    def is_valid(self) -> bool:
        return self._image is not None

    def size(self) -> int:
        return self._held().size

    def data(self) -> np.ndarray:
        """The bytes, as a read-only uint8 array (no copy)."""
        return self._held()

    def advise(self, advice: MMapAdvice) -> None:
        if not isinstance(advice, MMapAdvice):
            raise ValidationError(f"advice must be an MMapAdvice, got {type(advice).__name__}")
        self._buffer().madvise(advice.value)

    def lock(self) -> None:
        """Keep the bytes in RAM (mlock); BackendError if the system refuses (RLIMIT_MEMLOCK)."""
        image = self._held()
        if image.size and _libc().mlock(ctypes.c_void_p(image.ctypes.data), ctypes.c_size_t(image.size)) != 0:
            raise BackendError(f"cannot lock {self.path} in memory: {os.strerror(ctypes.get_errno())}")

    def close(self) -> None:
        self._image = None

    def __enter__(self) -> "MappedFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _held(self) -> np.ndarray:
        if self._image is None:
            raise ValidationError(f"{self.path} was closed")
        return self._image

    def _buffer(self) -> mmap.mmap:
        return self._held().base.obj  # the anonymous mapping read_private copied the file into


class MMapLoader:
    @staticmethod
    def can_mmap(path: str | os.PathLike) -> bool:
        """Whether `path` is a regular file this process can read."""
        try:
            os.close(files.open_regular(path, "file"))
            return True
        except InvalidModelError:
            return False

    @staticmethod
    def page_alignment() -> int:
        return mmap.PAGESIZE

    @staticmethod
    def load(path: str | os.PathLike, sign_key: bytes | None = None) -> CompiledModel:
        """The artifact at `path`, verified (InvalidModelError otherwise), shared with sessions
        that opened the same unchanged file."""
        from pyflame_rt.cache import LOADER

        return LOADER.load(path, sign_key)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
