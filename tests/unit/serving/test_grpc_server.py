"""The Open Inference Protocol v2 over gRPC, through tritonclient.grpc and the raw service stub."""
from __future__ import annotations

import grpc
import numpy as np
import pytest

from .conftest import start_server



@pytest.fixture(scope="module")
def served(repo):
    s = start_server(repo, grpc=True, api_keys=["k1"])
    yield s
    s.stop()


def client(server):
    import tritonclient.grpc as triton

    return triton.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")


AUTH = {"authorization": "Bearer k1"}


def test_tritonclient_grpc_health_metadata_and_infer(served):
    import tritonclient.grpc as triton

    c = client(served)
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("scale", "1", headers=AUTH) and not c.is_model_ready("scale", "9", headers=AUTH)
    meta = c.get_model_metadata("pair", headers=AUTH, as_json=True)
    assert [o["name"] for o in meta["outputs"]] == ["relu", "neg"] and meta["inputs"][0]["shape"] == ["-1", "3"]
    x = np.array([[-1.0, 0.5, 2.0], [3.0, -4.0, 0.0]], np.float32)
    inp = triton.InferInput("x", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = c.infer("pair", [inp], outputs=[triton.InferRequestedOutput("neg")], request_id="g1", headers=AUTH)
    np.testing.assert_array_equal(result.as_numpy("neg"), -x)
    assert result.as_numpy("relu") is None and result.get_response().id == "g1"
    result = c.infer("scale", [_scale_input(triton)], model_version="1", headers=AUTH)
    np.testing.assert_array_equal(result.as_numpy("y"), np.full((1, 4), 2.0, np.float32))
    c.close()


def _scale_input(triton, shape=(1, 4)):
    inp = triton.InferInput("x", list(shape), "FP32")
    inp.set_data_from_numpy(np.ones(shape, np.float32))
    return inp


def test_typed_contents_are_accepted(served):
    from tritonclient.grpc import service_pb2 as pb
    from tritonclient.grpc import service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name="scale", model_version="2")
        request.inputs.add(name="x", datatype="FP32", shape=[1, 4]).contents.fp32_contents.extend([1, 2, 3, 4])
        response = stub.ModelInfer(request, metadata=[("x-api-key", "k1")])
    y = np.frombuffer(response.raw_output_contents[0], np.float32)
    assert response.model_version == "2" and y.tolist() == [3.0, 6.0, 9.0, 12.0]


def test_errors_map_to_status_codes(served):
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    c = client(served)
    cases = [(dict(model_name="nope", inputs=[_scale_input(triton)], headers=AUTH), "NOT_FOUND"),
             (dict(model_name="scale", inputs=[_scale_input(triton, (1, 5))], headers=AUTH), "INVALID_ARGUMENT"),
             (dict(model_name="scale", inputs=[_scale_input(triton)]), "UNAUTHENTICATED")]
    for kwargs, status in cases:
        with pytest.raises(InferenceServerException) as info:
            c.infer(**kwargs)
        assert status in info.value.status(), (kwargs, info.value)
    assert c.is_server_ready()  # and it goes on serving
    c.close()


def test_rate_limit_per_client_is_resource_exhausted(repo):
    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    s = start_server(repo, grpc=True, rate_limit_rps=1.0, rate_limit_burst=2)
    try:
        c = client(s)
        for _ in range(2):
            c.infer("scale", [_scale_input(triton)], model_version="1")
        with pytest.raises(InferenceServerException) as info:
            c.infer("scale", [_scale_input(triton)], model_version="1")
        assert "RESOURCE_EXHAUSTED" in info.value.status() and "rate limit of 1 requests/s" in info.value.message()
        assert c.is_server_live()  # probes are never limited
        c.close()
    finally:
        s.stop()


def test_access_log_has_one_json_line_per_rpc_with_its_id(served, caplog):
    import json
    import logging
    import time

    import tritonclient.grpc as triton
    from tritonclient.utils import InferenceServerException

    c = client(served)
    with caplog.at_level(logging.INFO, logger="pyflame_rt.serving.access"):
        c.infer("scale", [_scale_input(triton)], model_version="1", headers={**AUTH, "x-request-id": "trace-7"})
        with pytest.raises(InferenceServerException):
            c.get_model_metadata("nope", headers=AUTH)
        for _ in range(100):  # logged after the response is sent: the client may see it first
            lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "pyflame_rt.serving.access"]
            if len(lines) >= 2:
                break
            time.sleep(0.02)
    c.close()
    assert [(line["method"], line["path"], line["status"]) for line in lines] == \
        [("grpc", "ModelInfer", "OK"), ("grpc", "ModelMetadata", "NOT_FOUND")]
    assert lines[0]["request_id"] == "trace-7" and len(lines[1]["request_id"]) == 32
    assert "127.0.0.1" in lines[0]["client"] and lines[0]["duration_ms"] > 0
