"""The external-data files an ONNX model references, and digests of their bytes.

The compile cache keys a model by these digests too, so changing `w.bin` next to a model
compiles it again instead of serving the old weights.
"""
from __future__ import annotations

import hashlib
import os

import onnx

from pyflame_rt.files import open_regular

_CHUNK = 1 << 20


def _tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    for node in graph.node:
        for a in node.attribute:
            if a.HasField("t"):
                yield a.t
            yield from a.tensors
            if a.HasField("g"):
                yield from _tensors(a.g)
            for g in a.graphs:
                yield from _tensors(g)


def locations(model: onnx.ModelProto | bytes) -> list[str]:
    """Sorted distinct `location`s of the model's external-data tensors (subgraphs included)."""
    if isinstance(model, (bytes, bytearray)):
        if b"location" not in model:  # every external-data entry carries this key: nothing to parse
            return []
        try:
            model = onnx.ModelProto.FromString(bytes(model))
        except Exception:  # noqa: BLE001 - protobuf's DecodeError; the importer reports a bad file
            return []
    found = set()
    for t in _tensors(model.graph):
        if t.data_location == onnx.TensorProto.EXTERNAL:
            found.update(e.value for e in t.external_data if e.key == "location")
    return sorted(found)


def digests(model: onnx.ModelProto | bytes, base_dir: str) -> list[tuple[str, str]] | None:
    """(location, sha256 of the file's bytes) per external-data file, resolved against base_dir;
    None if a file is missing (the importer reports that). InvalidModelError for a location that
    is not a regular file (a FIFO or /dev/zero is neither waited on nor read)."""
    out = []
    for location in locations(model):
        path = os.path.join(base_dir, location)
        if not os.path.lexists(path):
            return None
        fd = open_regular(path, f"external data file of the model ('{location}')")
        h = hashlib.sha256()
        try:
            while chunk := os.read(fd, _CHUNK):
                h.update(chunk)
        finally:
            os.close(fd)
        out.append((location, h.hexdigest()))
    return out
