"""The `.pfm` artifact: authenticated prefix + header + 64-byte-aligned weight blob + native object code.

Layout (little endian; docs/pfm-format.md is the specification):
  0   4  magic b"PFM\\0"
  4   4  format version (u32)
  8   8  header length n (u64)
  16  32 SHA-256 of the file without bytes 16..80 (these two fields)
  48  32 HMAC-SHA256(key, that digest) for a signed artifact, else zero
  80  n  header: UTF-8 JSON (metadata, target, sections with offsets and sizes)
  ... zero padding, then each section at a 64-byte-aligned offset; the file ends at the
      aligned end of the last section. The digest covers every other byte, so nothing in
      the file is trusted (or handed to the loader) before it matched.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np

from pyflame_rt import __version__, signing
from pyflame_rt.compiled_model import CompiledModel
from pyflame_rt.errors import InvalidModelError, UnsupportedFormatError
from pyflame_rt.files import atomic_write, open_regular, read_private

MAGIC = b"PFM\0"
FORMAT_VERSION = 4
SECTIONS = ("weights", "object")
OBJECT_FORMAT = "elf64-relocatable"
ALIGN = 64
MAX_HEADER = 64 << 20
_PREFIX = struct.Struct("<4sIQ32s32s")
_AUTH = slice(16, _PREFIX.size)  # the digest and signature fields, outside what they cover
_UNSIGNED = bytes(32)


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def save(compiled: CompiledModel, path: str | os.PathLike, sign_key: bytes | None = None,
         mode: int = 0o666, dir_fd: int | None = None) -> None:
    """Write atomically (files.atomic_write), signed with `sign_key` if given."""
    atomic_write(path, serialize(compiled, sign_key), mode, dir_fd)


def serialize(compiled: CompiledModel, sign_key: bytes | None = None) -> list:
    """The artifact's bytes as a list of chunks (the weights are not copied)."""
    data = {"weights": memoryview(np.ascontiguousarray(compiled.weights)).cast("B"),
            "object": compiled.object_code}
    header = dict(compiled.header, format_version=FORMAT_VERSION)
    header["sections"] = {}
    while True:  # section offsets depend on the header's own length
        raw = json.dumps(header, separators=(",", ":")).encode()
        pos, layout = _align(_PREFIX.size + len(raw)), {}
        for name in SECTIONS:
            layout[name] = {"offset": pos, "size": len(data[name])}
            pos = _align(pos + len(data[name]))
        layout["object"]["format"] = OBJECT_FORMAT
        if header["sections"] == layout:
            break
        header["sections"] = layout
    body, end = [raw], _PREFIX.size + len(raw)
    for name in SECTIONS:
        body += [bytes(layout[name]["offset"] - end), data[name]]
        end = layout[name]["offset"] + len(data[name])
    body.append(bytes(pos - end))
    start = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(raw), _UNSIGNED, _UNSIGNED)[:_AUTH.start]
    h = hashlib.sha256(start)
    for chunk in body:
        h.update(chunk)
    digest = h.digest()
    signature = signing.mac(sign_key, digest) if sign_key is not None else _UNSIGNED
    return [_PREFIX.pack(MAGIC, FORMAT_VERSION, len(raw), digest, signature), *body]


def is_artifact(path: str | os.PathLike) -> bool:
    """Whether `path` starts with the artifact magic. InvalidModelError if it is missing or not
    a regular file (nothing is read from devices or FIFOs)."""
    fd = open_regular(path, "model file")
    try:
        return os.pread(fd, len(MAGIC), 0) == MAGIC
    except OSError:
        return False
    finally:
        os.close(fd)


def load(path: str | os.PathLike, sign_key: bytes | None = None) -> CompiledModel:
    """Read the whole artifact into private memory, verify it, and parse it."""
    fd = open_regular(path, "artifact")
    try:
        return read(fd, os.fspath(path), sign_key)[0]
    finally:
        os.close(fd)


def read(fd: int, where: str, sign_key: bytes | None = None) -> tuple[CompiledModel, tuple]:
    """(the artifact open on fd, parsed and verified, its file identity). It is hashed piece by
    piece as it is copied into private memory, and only that copy is used afterwards."""
    h = hashlib.sha256()

    def hash_outside_auth(offset: int, chunk: memoryview) -> None:
        end = offset + len(chunk)
        if offset < _AUTH.start:
            h.update(chunk[:_AUTH.start - offset])
        if end > _AUTH.stop:
            h.update(chunk[max(0, _AUTH.stop - offset):])

    image, identity = read_private(fd, where, hash_outside_auth)
    return _parse(image, h.digest(), where, sign_key), identity


def header_field(fd: int, key: str):
    """`key` of the header of the artifact open on fd, unverified (None if absent or unreadable):
    enough to recognise a file, never to trust it."""
    try:
        magic, version, hlen = struct.unpack("<4sIQ", os.pread(fd, 16, 0))
        if magic != MAGIC or version != FORMAT_VERSION or hlen > MAX_HEADER:
            return None
        header = json.loads(os.pread(fd, hlen, _PREFIX.size))
        return header.get(key) if isinstance(header, dict) else None
    except (OSError, ValueError, struct.error):
        return None


def _parse(image: np.ndarray, computed: bytes, where: str, sign_key: bytes | None) -> CompiledModel:
    """Check and parse an artifact copied into private memory whose SHA-256 (without the
    authentication fields) is `computed`. Nothing in it is trusted before that matched the
    stored digest (and, with a key, the signature matched), so modified object code is never
    handed to the loader; the weights are a view of `image`."""
    size = image.size
    if size < 16:
        if image[:4].tobytes() != MAGIC[:size]:
            raise UnsupportedFormatError(f"not a PyFlameRT artifact: {where}")
        raise InvalidModelError(f"artifact is truncated ({size} bytes): {where}")
    magic, version, hlen = struct.unpack("<4sIQ", image[:16].tobytes())
    if magic != MAGIC:
        raise UnsupportedFormatError(f"not a PyFlameRT artifact (bad magic {magic!r}): {where}")
    if version != FORMAT_VERSION:
        raise UnsupportedFormatError(
            f"artifact format version {version} is not supported (pyflame-rt {__version__} reads version "
            f"{FORMAT_VERSION}); recompile the model with this version: {where}")
    if size < _PREFIX.size:
        raise InvalidModelError(f"artifact is truncated ({size} bytes): {where}")
    _, _, _, digest, signature = _PREFIX.unpack(image[:_PREFIX.size].tobytes())
    if computed != digest:
        raise InvalidModelError(f"artifact checksum mismatch (SHA-256; corrupt or modified file): {where}")
    if sign_key is not None:
        if signature == _UNSIGNED:
            raise InvalidModelError(f"artifact is not signed, but a signing key is configured: {where}")
        if not signing.verify(sign_key, digest, signature):
            raise InvalidModelError(f"artifact signature does not match the configured signing key: {where}")
    if hlen > min(MAX_HEADER, size - _PREFIX.size):
        raise InvalidModelError(f"artifact header length {hlen} exceeds the file ({size} bytes): {where}")
    try:
        header = json.loads(image[_PREFIX.size:_PREFIX.size + hlen].tobytes())
        sections = _check_sections(header, _PREFIX.size + hlen, size)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise InvalidModelError(f"artifact header is corrupt ({e}): {where}") from None
    _check_padding(image, sections, _PREFIX.size + hlen, where)
    w, o = sections["weights"], sections["object"]
    weights = image[w["offset"]:w["offset"] + w["size"]]
    obj = image[o["offset"]:o["offset"] + o["size"]].tobytes()
    return CompiledModel(header, weights, obj, digest, signature != _UNSIGNED)


def _check_sections(header: dict, header_end: int, file_size: int) -> dict:
    if not isinstance(header, dict) or header.get("format_version") != FORMAT_VERSION:
        raise ValueError("header is not an object of this format version")
    sections = header["sections"]
    pos = _align(header_end)
    for name in SECTIONS:
        s = sections[name]
        if not all(isinstance(s.get(k), int) and s[k] >= 0 for k in ("offset", "size")):
            raise ValueError(f"section '{name}' has no valid offset/size")
        if s["offset"] != pos:
            raise ValueError(f"section '{name}' starts at {s['offset']}, expected {pos}")
        pos = _align(pos + s["size"])
    if sections["object"].get("format") != OBJECT_FORMAT:
        raise ValueError(f"object section format must be {OBJECT_FORMAT}")
    if pos != file_size:
        raise ValueError(f"file is {file_size} bytes but its sections end at {pos} (truncated or extended)")
    return sections


def _check_padding(image: np.ndarray, sections: dict, header_end: int, where: str) -> None:
    """Bytes between the header and the sections are zero (one canonical file per content)."""
    gaps, pos = [], header_end
    for name in SECTIONS:
        gaps.append((pos, sections[name]["offset"]))
        pos = sections[name]["offset"] + sections[name]["size"]
    gaps.append((pos, image.size))
    for start, end in gaps:
        if end > start and image[start:end].any():
            raise InvalidModelError(f"artifact padding at bytes {start}..{end} is not zero (corrupt file): {where}")
