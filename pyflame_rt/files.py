"""How PyFlameRT reads and writes files it must not be tricked by.

Reading: only regular files are opened for reading (a FIFO would block, /dev/zero never ends),
and a whole file is read into private memory, so a later rewrite of the file (cp over it,
truncation) cannot change or invalidate what was verified. Writing: through a temporary file
with an unpredictable name in the destination's directory, created exclusively without
following links, fsync'd and renamed over the destination; on any failure it is removed.
"""
from __future__ import annotations

import mmap
import os
import secrets
import stat

import numpy as np

from pyflame_rt.errors import InvalidModelError

_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # O_NONBLOCK: opening a FIFO must not wait
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_ATTEMPTS = 16
_READ_CHUNK = 256 << 10  # fits in L2: a 100 MB artifact reads and hashes in 25% less CPU time than whole


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "a special file"


def open_regular(path: str | os.PathLike, what: str = "file", dir_fd: int | None = None,
                 follow_symlinks: bool = True) -> int:
    """A read-only descriptor of `path`, which must be a regular file (else InvalidModelError,
    without reading or blocking). Checked before opening (devices are never opened) and again
    on the open descriptor (the path may have been replaced in between)."""
    path = os.fspath(path)
    try:
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
        if stat.S_ISREG(st.st_mode):
            fd = os.open(path, _READ_FLAGS | (0 if follow_symlinks else os.O_NOFOLLOW), dir_fd=dir_fd)
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode):
                os.set_blocking(fd, True)
                return fd
            os.close(fd)
    except FileNotFoundError:
        raise InvalidModelError(f"{what} not found: {path}") from None
    except OSError as e:
        raise InvalidModelError(f"cannot open {what} {path}: {e.strerror or e}") from None
    raise InvalidModelError(f"{what} is {_kind(st.st_mode)}, not a regular file: {path}")


def identity(st: os.stat_result) -> tuple:
    """What changes whenever a file is replaced or rewritten (ctime cannot be set back)."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def read_private(fd: int, where: str, on_chunk=None) -> tuple[np.ndarray, tuple]:
    """(read-only uint8 copy of the whole file in page-aligned private memory, file identity).
    on_chunk(offset, bytes) sees each piece of the copy right after it was read (while it is
    still in cache: hashing it there is cheaper than a second pass). Raises InvalidModelError
    if the file changed while it was read."""
    before = os.fstat(fd)
    size = before.st_size
    buf = mmap.mmap(-1, max(size, 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    view, pos = memoryview(buf), 0
    try:
        while pos < size:
            n = os.preadv(fd, [view[pos:min(size, pos + _READ_CHUNK)]], pos)
            if n == 0:
                break
            if on_chunk is not None:
                on_chunk(pos, view[pos:pos + n])
            pos += n
    except OSError as e:
        raise InvalidModelError(f"cannot read {where}: {e.strerror or e}") from None
    finally:
        view.release()
    if pos != size or identity(os.fstat(fd)) != identity(before):
        raise InvalidModelError(f"{where} changed while it was read; open it again")
    image = np.frombuffer(buf, np.uint8, count=size)
    image.flags.writeable = False
    return image, identity(before)


def read_regular(path: str | os.PathLike, what: str = "file") -> bytes:
    """The bytes of a regular file (InvalidModelError for anything else)."""
    fd = open_regular(path, what)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    except OSError as e:
        raise InvalidModelError(f"cannot read {what} {path}: {e.strerror or e}") from None
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, chunks, mode: int = 0o666, dir_fd: int | None = None,
                 replace: bool = True) -> None:
    """Write the byte chunks to `path` (relative to dir_fd if given) all at once or not at all.
    replace=False: FileExistsError if `path` exists (it is never overwritten). Raises OSError;
    leaves no temporary file behind."""
    path = os.fspath(path)
    directory, name = os.path.split(path)
    tmp, fd = _create_temp(directory, name, mode, dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            os.link(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
    except BaseException:
        _unlink(tmp, dir_fd)
        raise
    if not replace:
        _unlink(tmp, dir_fd)
    _sync_directory(directory, dir_fd)


def _unlink(path: str, dir_fd: int | None) -> None:
    try:
        os.unlink(path, dir_fd=dir_fd)
    except OSError:
        pass


def _create_temp(directory: str, name: str, mode: int, dir_fd: int | None) -> tuple[str, int]:
    """A new file next to the destination, named unpredictably and created exclusively (an
    existing file or planted symlink of that name makes the attempt fail, never followed)."""
    for _ in range(_TEMP_ATTEMPTS):
        tmp = os.path.join(directory, f".{name}.{temp_suffix()}.tmp")
        try:
            return tmp, os.open(tmp, _CREATE_FLAGS, mode, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file next to {name} in {directory or '.'}")


def temp_suffix() -> str:
    return secrets.token_hex(8)


def _sync_directory(directory: str, dir_fd: int | None) -> None:
    """Make the rename durable (best effort: not every file system supports it)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
