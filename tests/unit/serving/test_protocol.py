"""Tensor encodings of the wire protocols, for every datatype, without a server."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pyflame_rt.serving.protocol import (
    V2_DTYPES, RequestError, decode_v1, decode_v2, encode_v1_tensor, encode_v2, little_endian_bytes,
)

ARRAYS = [np.arange(6, dtype=np.dtype(d)).reshape(2, 3) for d in V2_DTYPES.values() if d != "bool"] + \
    [np.array([[True, False, True]])]


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: a.dtype.name)
def test_v1_round_trip(array):
    request = decode_v1(json.dumps({"request_id": "r", "inputs": {"x": encode_v1_tensor(array)}}).encode())
    assert request.id == "r" and request.outputs is None
    np.testing.assert_array_equal(request.inputs["x"], array)
    assert request.inputs["x"].dtype == array.dtype


@pytest.mark.parametrize("array", ARRAYS, ids=lambda a: a.dtype.name)
def test_v2_binary_request_and_response(array):
    raw = little_endian_bytes(array)
    header = json.dumps({"id": "q", "inputs": [
        {"name": "a", "shape": list(array.shape), "datatype": next(k for k, v in V2_DTYPES.items()
                                                                   if np.dtype(v) == array.dtype),
         "parameters": {"binary_data_size": len(raw)}},
        {"name": "b", "shape": [2], "datatype": "INT64", "data": [7, 8]}],
        "outputs": [{"name": "a", "parameters": {"binary_data": True}}, {"name": "b"}]}).encode()
    request = decode_v2(header + raw, str(len(header)))
    np.testing.assert_array_equal(request.inputs["a"], array)
    assert request.inputs["b"].tolist() == [7, 8] and request.outputs == ["a", "b"] and request.binary_outputs == {"a"}
    body, length = encode_v2("m", "1", "q", request.inputs, request.binary_outputs)
    doc = json.loads(body[:length])
    assert doc["id"] == "q" and doc["outputs"][0]["parameters"]["binary_data_size"] == len(raw)
    assert body[length:] == raw and doc["outputs"][1]["data"] == [7, 8]


def test_json_only_response_has_no_header_length():
    body, length = encode_v2("m", "1", "", {"y": np.ones(2, np.float32)}, set())
    assert length is None and json.loads(body)["outputs"][0]["data"] == [1.0, 1.0]


@pytest.mark.parametrize("body, header, message", [
    (b'{"inputs": [{"name": "a", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]}'
     b"\0\0\0\0", "9999", "outside the body"),
    (b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}]}'
     b"\0\0\0\0\0", None, "not valid JSON"),
    (b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32"}]}', None, "neither data nor"),
    (b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}], "outputs": [1]}', None,
     "'outputs' must be"),
])
def test_v2_errors(body, header, message):
    with pytest.raises(RequestError, match=message):
        decode_v2(body, header)


def test_v2_binary_bytes_that_no_input_claims():
    header = b'{"inputs": [{"name": "a", "shape": [1], "datatype": "FP32", "parameters": {"binary_data_size": 4}}]}'
    with pytest.raises(RequestError, match="4 bytes of binary data follow"):
        decode_v2(header + b"\0" * 8, str(len(header)))
