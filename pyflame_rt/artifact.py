"""The `.pfm` artifact: header + 64-byte-aligned weight blob + native object code.

Layout (little endian):
  0   4  magic b"PFM\\0"
  4   4  format version (u32)
  8   8  header length (u64)
  16  n  header: UTF-8 JSON (metadata, target, sections with offsets and checksums)
  ... sections, each starting at a 64-byte-aligned file offset
See docs/pfm-format.md.
"""
from __future__ import annotations

import json
import mmap
import os
import struct
import zlib

import numpy as np

from pyflame_rt.compiler import CompiledModel
from pyflame_rt.errors import InvalidModelError, UnsupportedFormatError

MAGIC = b"PFM\0"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<4sIQ")
_ALIGN = 64
MAX_HEADER = 64 << 20


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def save(compiled: CompiledModel, path: str | os.PathLike) -> None:
    weights = compiled.weights.tobytes()
    sections = {"weights": weights, "object": compiled.object_code}
    header = dict(compiled.header, format_version=FORMAT_VERSION, sections={})
    # two passes: section offsets depend on the header length
    for _ in range(2):
        raw = json.dumps(header, sort_keys=True).encode()
        pos = _align(_PREFIX.size + len(raw) + 256)
        layout = {}
        for name, data in sections.items():
            layout[name] = {"offset": pos, "size": len(data), "crc32": zlib.crc32(data)}
            pos = _align(pos + len(data))
        header["sections"] = layout
    raw = json.dumps(header, sort_keys=True).encode()
    assert _PREFIX.size + len(raw) <= header["sections"]["weights"]["offset"]
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(raw)))
        f.write(raw)
        for name, data in sections.items():
            f.seek(header["sections"][name]["offset"])
            f.write(data)
        f.truncate(_align(f.tell()))
    os.replace(tmp, path)


def is_artifact(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


def load(path: str | os.PathLike, verify: bool = True) -> CompiledModel:
    """Map the artifact; the weights stay in the page cache (zero copy)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InvalidModelError(f"artifact not found: {path}")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < _PREFIX.size:
            raise InvalidModelError(f"artifact is truncated ({size} bytes): {path}")
        magic, version, hlen = _PREFIX.unpack(f.read(_PREFIX.size))
        if magic != MAGIC:
            raise UnsupportedFormatError(f"not a PyFlameRT artifact (bad magic {magic!r}): {path}")
        if version != FORMAT_VERSION:
            raise UnsupportedFormatError(
                f"artifact format version {version} is not supported (this build reads {FORMAT_VERSION})")
        if hlen > min(MAX_HEADER, size - _PREFIX.size):
            raise InvalidModelError(f"artifact header length {hlen} exceeds the file: {path}")
        try:
            header = json.loads(f.read(hlen))
            sections = header["sections"]
            w, o = sections["weights"], sections["object"]
            for s in (w, o):
                if not (isinstance(s["offset"], int) and isinstance(s["size"], int)
                        and 0 <= s["offset"] and s["offset"] + s["size"] <= size and s["offset"] % _ALIGN == 0):
                    raise ValueError(f"section {s} lies outside the file")
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise InvalidModelError(f"artifact header is corrupt ({e}): {path}") from None
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    weights = np.frombuffer(mm, dtype=np.uint8, count=w["size"], offset=w["offset"]) if w["size"] \
        else np.zeros(0, np.uint8)
    obj = bytes(mm[o["offset"]:o["offset"] + o["size"]])
    if verify:
        if zlib.crc32(obj) != o["crc32"]:
            raise InvalidModelError(f"artifact object code checksum mismatch: {path}")
        if zlib.crc32(weights) != w["crc32"]:
            raise InvalidModelError(f"artifact weights checksum mismatch: {path}")
    return CompiledModel(header, weights, obj)
