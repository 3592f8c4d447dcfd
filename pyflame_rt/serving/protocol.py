"""Tensor encodings of the two wire protocols: the guide's v1 JSON (base64 data, numpy dtype
names) and the Open Inference Protocol v2 (JSON data lists, or the binary tensor data extension:
raw little-endian bytes after the JSON header). Bad input raises RequestError (HTTP 400)."""
from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass

import numpy as np

V2_HEADER_LENGTH = "Inference-Header-Content-Length"

V2_DTYPES = {"BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64",
             "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64", "FP16": "float16",
             "FP32": "float32", "FP64": "float64"}
_V2_NAMES = {np.dtype(v): k for k, v in V2_DTYPES.items()}


class RequestError(Exception):
    """A request the server refuses: `status` is its HTTP status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass
class InferRequest:
    """A decoded request of either protocol."""

    id: str
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None  # None: all
    binary_outputs: set[str]  # v2: outputs to return as binary data


def parse_json(body: bytes, what: str = "request body"):
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RequestError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise RequestError(f"{what} must be a JSON object")
    return value


MAX_ELEMENTS = 2**62  # numpy's limit on the product of a shape's non-zero dims is intp's range


def check_shape(value, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) > 32 or \
            not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value) or \
            math.prod(d for d in value if d) > MAX_ELEMENTS:
        raise RequestError(f"{where}: shape must be a list of at most 32 non-negative ints whose non-zero "
                           f"product is at most 2**62, got {value!r}")
    return tuple(value)


def element_count(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def tensor_from_bytes(raw: bytes, dtype: np.dtype, shape: tuple, where: str) -> np.ndarray:
    """Little-endian row-major bytes as an array; RequestError if their size does not fit."""
    expected = element_count(shape) * dtype.itemsize
    if len(raw) != expected:
        raise RequestError(f"{where}: {len(raw)} bytes of data, but shape {list(shape)} of {dtype} needs {expected}")
    return np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype, copy=False).reshape(shape)


def little_endian_bytes(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array)
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


# --------------------------------------------------------------------------- v1
def decode_v1(body: bytes) -> InferRequest:
    doc = parse_json(body)
    inputs = doc.get("inputs")
    if not isinstance(inputs, dict) or not inputs:
        raise RequestError("'inputs' must be a non-empty object of name -> {shape, dtype, data}")
    outputs = doc.get("outputs")
    if outputs is not None and not (isinstance(outputs, list) and all(isinstance(o, str) for o in outputs)):
        raise RequestError("'outputs' must be a list of output names")
    return InferRequest(str(doc.get("request_id", "")), {k: _v1_tensor(k, v) for k, v in inputs.items()},
                        outputs, set())


def _v1_tensor(name: str, t) -> np.ndarray:
    where = f"input '{name}'"
    if not isinstance(t, dict):
        raise RequestError(f"{where} must be an object with shape, dtype and data")
    try:
        dtype = np.dtype(t.get("dtype"))
    except (TypeError, ValueError):
        raise RequestError(f"{where}: unknown dtype {t.get('dtype')!r}") from None
    if dtype not in _V2_NAMES:
        raise RequestError(f"{where}: unsupported dtype {dtype}")
    data = t.get("data")
    if not isinstance(data, str):
        raise RequestError(f"{where}: data must be a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(f"{where}: data is not valid base64") from None
    return tensor_from_bytes(raw, dtype, check_shape(t.get("shape"), where), where)


def encode_v1_tensor(array: np.ndarray) -> dict:
    return {"shape": list(array.shape), "dtype": array.dtype.name,
            "data": base64.b64encode(little_endian_bytes(array)).decode()}


def decode_v1_tensor(t: dict) -> np.ndarray:
    return _v1_tensor(t.get("name", "output"), t)


# --------------------------------------------------------------------------- v2
def v2_datatype(dtype: np.dtype) -> str:
    return _V2_NAMES[np.dtype(dtype)]


def v2_shape(shape: list) -> list[int]:
    """A model's shape as v2 metadata spells it: a dynamic (named) dim is -1."""
    return [d if isinstance(d, int) else -1 for d in shape]


def decode_v2(body: bytes, header_length: str | None) -> InferRequest:
    """A v2 infer request; with the binary extension the JSON is the first `header_length` bytes."""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise RequestError(f"{V2_HEADER_LENGTH} must be an int, got {header_length!r}") from None
        if not 0 < n <= len(body):
            raise RequestError(f"{V2_HEADER_LENGTH} {n} is outside the body of {len(body)} bytes")
        doc, blob = parse_json(body[:n]), memoryview(body)[n:]
    else:
        doc, blob = parse_json(body), memoryview(b"")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RequestError("'inputs' must be a non-empty list of tensors")
    arrays, offset = {}, 0
    for t in inputs:
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise RequestError("each input must be an object with a name, shape, datatype and data")
        arrays[t["name"]], used = _v2_tensor(t, blob[offset:])
        offset += used
    if offset != len(blob):
        raise RequestError(f"{len(blob) - offset} bytes of binary data follow the inputs that no input claims")
    return InferRequest(str(doc.get("id", "")), arrays, *_v2_outputs(doc))


def v2_dtype(datatype, where: str) -> np.dtype:
    if datatype not in V2_DTYPES:
        raise RequestError(f"{where}: unsupported datatype {datatype!r}; use one of {sorted(V2_DTYPES)}")
    return np.dtype(V2_DTYPES[datatype])


def _v2_tensor(t: dict, blob: memoryview) -> tuple[np.ndarray, int]:
    where = f"input '{t['name']}'"
    datatype = t.get("datatype")
    dtype, shape = v2_dtype(datatype, where), check_shape(t.get("shape"), where)
    params = t.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(blob):
            raise RequestError(f"{where}: binary_data_size {size!r} exceeds the {len(blob)} bytes left in the body")
        return tensor_from_bytes(bytes(blob[:size]), dtype, shape, where), size
    data = t.get("data")
    if data is None:
        raise RequestError(f"{where}: neither data nor parameters.binary_data_size given")
    try:
        array = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError):
        raise RequestError(f"{where}: data is not a list of {datatype} values") from None
    if array.size != element_count(shape):
        raise RequestError(f"{where}: {array.size} values given, shape {list(shape)} needs {element_count(shape)}")
    return array.reshape(shape), 0


def _v2_outputs(doc: dict) -> tuple[list[str] | None, set[str]]:
    params = doc.get("parameters") or {}
    all_binary = isinstance(params, dict) and params.get("binary_data_output") is True
    outputs = doc.get("outputs")
    if outputs is None:
        return None, {"*"} if all_binary else set()
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise RequestError("'outputs' must be a list of objects with a name")
    binary = {o["name"] for o in outputs if all_binary or (o.get("parameters") or {}).get("binary_data") is True}
    return [o["name"] for o in outputs], binary


def encode_v2(model: str, version: str, request_id: str, outputs: dict[str, np.ndarray],
              binary: set[str]) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length."""
    entries, blobs = [], []
    for name, array in outputs.items():
        array = np.ascontiguousarray(array)
        entry = {"name": name, "datatype": v2_datatype(array.dtype), "shape": list(array.shape)}
        if name in binary or "*" in binary:
            raw = little_endian_bytes(array)
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = array.ravel().tolist()
        entries.append(entry)
    doc = {"model_name": model, "model_version": version, "outputs": entries}
    if request_id:
        doc["id"] = request_id
    header = json.dumps(doc, separators=(",", ":")).encode()
    return (header + b"".join(blobs), len(header)) if blobs else (header, None)
