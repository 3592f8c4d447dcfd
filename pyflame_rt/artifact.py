"""The `.pfm` artifact: checksummed header + 64-byte-aligned weight blob + native object code.

Layout (little endian; docs/pfm-format.md is the specification):
  0   4  magic b"PFM\\0"
  4   4  format version (u32)
  8   8  header length n (u64)
  16  4  crc32 of the header bytes (u32)
  20  4  reserved, 0
  24  n  header: UTF-8 JSON (metadata, target, sections with offsets, sizes, crc32)
  ... zero padding, then each section at a 64-byte-aligned offset; the file ends at the
      aligned end of the last section. Every byte is covered by a checksum or must be zero.
"""
from __future__ import annotations

import json
import os
import struct
import zlib

import numpy as np

from pyflame_rt.compiled_model import CompiledModel
from pyflame_rt.errors import InvalidModelError, UnsupportedFormatError
from pyflame_rt.mapped_file import MappedFile

MAGIC = b"PFM\0"
FORMAT_VERSION = 2
SECTIONS = ("weights", "object")
OBJECT_FORMAT = "elf64-relocatable"
ALIGN = 64
MAX_HEADER = 64 << 20
_PREFIX = struct.Struct("<4sIQII")


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def save(compiled: CompiledModel, path: str | os.PathLike) -> None:
    """Write atomically (temp file + rename), so readers never see a half-written artifact."""
    data = {"weights": memoryview(np.ascontiguousarray(compiled.weights)).cast("B"),
            "object": compiled.object_code}
    header = dict(compiled.header, format_version=FORMAT_VERSION)
    fixed = {name: {"crc32": zlib.crc32(data[name])} for name in SECTIONS}
    fixed["object"]["format"] = OBJECT_FORMAT
    header["sections"] = {}
    while True:  # section offsets depend on the header's own length
        raw = json.dumps(header, separators=(",", ":")).encode()
        pos, layout = _align(_PREFIX.size + len(raw)), {}
        for name in SECTIONS:
            layout[name] = dict(fixed[name], offset=pos, size=len(data[name]))
            pos = _align(pos + len(data[name]))
        if header["sections"] == layout:
            break
        header["sections"] = layout
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(raw), zlib.crc32(raw), 0))
        f.write(raw)
        for name in SECTIONS:
            f.write(bytes(layout[name]["offset"] - f.tell()))
            f.write(data[name])
        f.write(bytes(pos - f.tell()))
    os.replace(tmp, path)


def is_artifact(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == MAGIC
    except OSError:
        return False


def load(path: str | os.PathLike, verify: bool = True) -> CompiledModel:
    """Map the artifact; the weights stay in the page cache (zero copy)."""
    return from_mapping(MappedFile(path), verify)


def from_mapping(mf: MappedFile, verify: bool = True) -> CompiledModel:
    """Parse and check a mapped artifact. Nothing in it is trusted before its checksum matched,
    so corrupt object code is never handed to the loader."""
    where = mf.path
    if mf.size < _PREFIX.size:
        if mf.read(0, 4) != MAGIC[:mf.size]:
            raise UnsupportedFormatError(f"not a PyFlameRT artifact: {where}")
        raise InvalidModelError(f"artifact is truncated ({mf.size} bytes): {where}")
    magic, version, hlen, hcrc, reserved = _PREFIX.unpack(mf.read(0, _PREFIX.size))
    if magic != MAGIC:
        raise UnsupportedFormatError(f"not a PyFlameRT artifact (bad magic {magic!r}): {where}")
    if version != FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"artifact format version {version} is not supported (this build reads {FORMAT_VERSION}); "
            f"recompile the model: {where}")
    if hlen > min(MAX_HEADER, mf.size - _PREFIX.size):
        raise InvalidModelError(f"artifact is truncated or corrupt: header length {hlen} exceeds the file "
                                f"({mf.size} bytes): {where}")
    raw = mf.read(_PREFIX.size, hlen)
    if zlib.crc32(raw) != hcrc or reserved != 0:
        raise InvalidModelError(f"artifact header checksum mismatch (corrupt file): {where}")
    try:
        header = json.loads(raw)
        sections = _check_sections(header, _PREFIX.size + hlen, mf.size)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise InvalidModelError(f"artifact header is corrupt ({e}): {where}") from None
    w, o = sections["weights"], sections["object"]
    weights = mf.view(w["offset"], w["size"])
    obj = mf.read(o["offset"], o["size"])
    if verify:
        _check_padding(mf, sections, _PREFIX.size + hlen)
        if zlib.crc32(obj) != o["crc32"]:
            raise InvalidModelError(f"artifact object code checksum mismatch (corrupt file): {where}")
        if zlib.crc32(weights) != w["crc32"]:
            raise InvalidModelError(f"artifact weights checksum mismatch (corrupt file): {where}")
    return CompiledModel(header, weights, obj)


def _check_sections(header: dict, header_end: int, file_size: int) -> dict:
    if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
        raise ValueError("header is not an object of this format version")
    sections = header["sections"]
    pos = _align(header_end)
    for name in SECTIONS:
        s = sections[name]
        if not all(isinstance(s.get(k), int) and s[k] >= 0 for k in ("offset", "size", "crc32")):
            raise ValueError(f"section '{name}' has no valid offset/size/crc32")
        if s["offset"] != pos:
            raise ValueError(f"section '{name}' starts at {s['offset']}, expected {pos}")
        pos = _align(pos + s["size"])
    if sections["object"].get("format") != OBJECT_FORMAT:
        raise ValueError(f"object section format must be {OBJECT_FORMAT}")
    if pos != file_size:
        raise ValueError(f"file is {file_size} bytes but its sections end at {pos} (truncated or extended)")
    return sections


def _check_padding(mf: MappedFile, sections: dict, header_end: int) -> None:
    """Bytes between the header and the sections are zero (so every byte is checked)."""
    gaps, pos = [], header_end
    for name in SECTIONS:
        gaps.append((pos, sections[name]["offset"]))
        pos = sections[name]["offset"] + sections[name]["size"]
    gaps.append((pos, mf.size))
    for start, end in gaps:
        if end > start and mf.read(start, end - start).strip(b"\0"):
            raise InvalidModelError(f"artifact padding at bytes {start}..{end} is not zero (corrupt file): {mf.path}")
