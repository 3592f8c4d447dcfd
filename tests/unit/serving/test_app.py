"""The HTTP endpoints on a real server: the guide's v1 API, the Open Inference Protocol v2 through
tritonclient.http itself, and bad requests answered 4xx with a clear message."""
from __future__ import annotations

import base64
import json

import httpx
import numpy as np
import pytest

X = np.array([[-1.0, 2.0, -3.0, 4.0], [0.5, -0.5, 1.5, -1.5]], np.float32)


def v1_body(array=X, **extra) -> dict:
    return {"inputs": {"x": {"shape": list(array.shape), "dtype": array.dtype.name,
                             "data": base64.b64encode(array.tobytes()).decode()}}, **extra}


def test_v1_infer_answers_with_the_guides_fields(server):
    r = httpx.post(f"{server.url}/v1/models/scale/infer", json=v1_body(request_id="req-7"))
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["request_id"] == "req-7" and doc["model_name"] == "scale" and doc["model_version"] == "2"
    assert doc["success"] is True and doc["latency_us"] > 0
    out = doc["outputs"]["y"]
    assert out["shape"] == [2, 4] and out["dtype"] == "float32"
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(out["data"]), np.float32).reshape(2, 4), X * 3)
    assert r.headers["x-request-id"]


def test_v1_infer_a_given_version_and_an_output_subset(server):
    r = httpx.post(f"{server.url}/v1/models/scale/infer?version=1", json=v1_body())
    assert r.json()["model_version"] == "1"
    assert np.frombuffer(base64.b64decode(r.json()["outputs"]["y"]["data"]), np.float32)[1] == 4.0
    x = np.ones((1, 3), np.float32)
    r = httpx.post(f"{server.url}/v1/models/pair/infer", json=v1_body(x, outputs=["neg"]))
    assert list(r.json()["outputs"]) == ["neg"]


def test_v1_model_listing_metadata_stats_health(server):
    models = httpx.get(f"{server.url}/v1/models").json()["models"]
    assert {m["name"]: m["versions"] for m in models} == {"pair": ["1"], "scale": ["1", "2"]}
    meta = httpx.get(f"{server.url}/v1/models/pair").json()
    assert [o["name"] for o in meta["outputs"]] == ["relu", "neg"]
    assert meta["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 3]}]
    httpx.post(f"{server.url}/v1/models/pair/infer", json=v1_body(np.ones((1, 3), np.float32)))
    stats = httpx.get(f"{server.url}/v1/models/pair/stats").json()["versions"]["1"]
    assert stats["request_count"] >= 1 and stats["success_count"] >= 1
    assert httpx.get(f"{server.url}/health/live").status_code == 200
    assert httpx.get(f"{server.url}/health/ready").json()["ready"] is True


def test_v2_server_and_model_metadata(server):
    assert "binary_tensor_data" in httpx.get(f"{server.url}/v2").json()["extensions"]
    meta = httpx.get(f"{server.url}/v2/models/scale/versions/1").json()
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["versions"] == ["1", "2"]
    assert httpx.get(f"{server.url}/v2/models/scale/ready").status_code == 200
    assert httpx.get(f"{server.url}/v2/models/nope/ready").status_code == 404


def test_v2_json_infer(server):
    body = {"id": "a1", "inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": X.ravel().tolist()}]}
    doc = httpx.post(f"{server.url}/v2/models/scale/versions/1/infer", json=body).json()
    assert doc["id"] == "a1" and doc["model_version"] == "1"
    (out,) = doc["outputs"]
    assert out["name"] == "y" and out["shape"] == [2, 4] and out["datatype"] == "FP32"
    np.testing.assert_array_equal(np.array(out["data"], np.float32).reshape(2, 4), X * 2)


@pytest.mark.parametrize("binary", [False, True])
def test_tritonclient_http_health_metadata_and_infer(server, binary):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("pair")
    meta = client.get_model_metadata("pair")
    assert [o["name"] for o in meta["outputs"]] == ["relu", "neg"]
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)
    inp = triton.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=binary)
    outs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("relu", "neg")]
    result = client.infer("pair", [inp], outputs=outs, request_id="t1")
    np.testing.assert_array_equal(result.as_numpy("relu"), np.maximum(x, 0))
    np.testing.assert_array_equal(result.as_numpy("neg"), -x)
    assert result.get_response()["id"] == "t1"
    client.close()


def test_tritonclient_model_config_and_repository_index(server):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    config = client.get_model_config("scale")
    assert config["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [-1, 4]}]
    assert config["instance_group"][0]["count"] == 2  # from the repository's config.yaml
    index = client.get_model_repository_index()
    assert {(m["name"], m["version"]) for m in index} == {("pair", "1"), ("scale", "1"), ("scale", "2")}
    client.close()


def test_tritonclient_sees_a_bad_request_as_its_exception(server):
    import tritonclient.http as triton
    from tritonclient.utils import InferenceServerException

    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    inp = triton.InferInput("x", [1, 5], "FP32")
    inp.set_data_from_numpy(np.zeros((1, 5), np.float32))
    with pytest.raises(InferenceServerException, match="ShapeMismatchError|shape"):
        client.infer("scale", [inp])
    client.close()


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


BAD_V1 = {
    "malformed JSON": (b'{"inputs": ', "not valid JSON"),
    "bad base64": (json.dumps({"inputs": {"x": {"shape": [1, 4], "dtype": "float32", "data": "@@@"}}}).encode(),
                   "not valid base64"),
    "data size vs shape": (json.dumps({"inputs": {"x": {"shape": [1, 4], "dtype": "float32",
                                                        "data": _b64(b"\0" * 12)}}}).encode(), "needs 16"),
    "wrong shape": (json.dumps({"inputs": {"x": {"shape": [1, 5], "dtype": "float32",
                                                 "data": _b64(b"\0" * 20)}}}).encode(), "ShapeMismatchError"),
    "wrong dtype": (json.dumps({"inputs": {"x": {"shape": [1, 4], "dtype": "int32",
                                                 "data": _b64(b"\0" * 16)}}}).encode(), "DTypeMismatchError"),
    "unknown dtype": (json.dumps({"inputs": {"x": {"shape": [1], "dtype": "float99", "data": ""}}}).encode(),
                      "unknown dtype"),
    "unknown input": (json.dumps({"inputs": {"z": {"shape": [1, 4], "dtype": "float32",
                                                   "data": _b64(b"\0" * 16)}}}).encode(), "unknown input"),
    "no inputs": (b'{"inputs": {}}', "'inputs' must be"),
    "overflowing shape": (json.dumps({"inputs": {"x": {"shape": [2**40, 2**40, 0], "dtype": "float32",
                                                       "data": ""}}}).encode(), "shape must be"),
    "zero-size shape": (json.dumps({"inputs": {"x": {"shape": [2**31 - 1, 0], "dtype": "float32",
                                                     "data": ""}}}).encode(), "ShapeMismatchError"),
    "structured dtype": (json.dumps({"inputs": {"x": {"shape": [1], "dtype": [["a", "<f4"]], "data": ""}}}).encode(),
                         "dtype"),
    "dtype list": (json.dumps({"inputs": {"x": {"shape": [1], "dtype": ["nonsense"], "data": ""}}}).encode(),
                   "unknown dtype"),
}


@pytest.mark.parametrize("case", BAD_V1)
def test_bad_v1_requests_get_400_with_the_reason(server, case):
    body, reason = BAD_V1[case]
    r = httpx.post(f"{server.url}/v1/models/scale/infer", content=body, timeout=1.0)
    assert r.status_code == 400 and reason in r.json()["error"], r.text


BAD_V2 = {
    "datatype": ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP99", "data": [0, 0, 0, 0]}]}, None,
                 "unsupported datatype"),
    "count": ({"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, 0]}]}, None,
              "2 values given"),
    "values": ({"inputs": [{"name": "x", "shape": [1, 1], "datatype": "FP32", "data": ["a"]}]}, None,
               "not a list of FP32"),
    "header length": ({"inputs": []}, "99999", "outside the body"),
}


@pytest.mark.parametrize("case", BAD_V2)
def test_bad_v2_requests_get_400_with_the_reason(server, case):
    doc, header_length, reason = BAD_V2[case]
    headers = {"Inference-Header-Content-Length": header_length} if header_length else {}
    r = httpx.post(f"{server.url}/v2/models/scale/infer", content=json.dumps(doc).encode(), headers=headers)
    assert r.status_code == 400 and reason in r.json()["error"], r.text


def test_unknown_models_and_versions_are_404(server):
    assert httpx.post(f"{server.url}/v1/models/nope/infer", json=v1_body()).status_code == 404
    r = httpx.get(f"{server.url}/v2/models/scale/versions/9")
    assert r.status_code == 404 and "no loaded version '9'" in r.json()["error"]
