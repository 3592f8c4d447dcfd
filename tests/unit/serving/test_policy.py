"""The request policy on a real server: API keys, TLS, rate limits, body size limits and the body
read deadline against a slow-dripping client (which must not hold up anyone else)."""
from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time

import httpx
import numpy as np
import pytest

from pyflame_rt.serving import ModelClient
from pyflame_rt.serving.policy import RateLimiter

from .conftest import start_server
from .test_app import v1_body


@pytest.fixture(scope="module")
def guarded(repo):
    s = start_server(repo, api_keys=["k1", "k2"], max_body_bytes=4096, body_timeout_s=0.5)
    yield s
    s.stop()


def test_requests_without_a_valid_key_get_401(guarded):
    url = f"{guarded.url}/v1/models/scale/infer"
    r = httpx.post(url, json=v1_body())
    assert r.status_code == 401 and "authentication required" in r.json()["error"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert httpx.post(url, json=v1_body(), headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.post(url, json=v1_body(), headers={"Authorization": "Bearer k2"}).status_code == 200
    assert httpx.post(url, json=v1_body(), headers={"X-API-Key": "k1"}).status_code == 200
    assert httpx.get(f"{guarded.url}/v1/models").status_code == 401


def test_probes_and_metrics_need_no_key(guarded):
    for path in ("/health/live", "/health/ready", "/v2/health/ready", "/metrics"):
        assert httpx.get(guarded.url + path).status_code == 200, path


def test_the_client_sends_its_api_key(guarded):
    with ModelClient(guarded.url, api_key="k1") as client:
        assert client.infer("scale", {"x": np.ones((1, 4), np.float32)}).success
    with ModelClient(guarded.url) as client:
        r = client.infer("scale", {"x": np.ones((1, 4), np.float32)})
        assert not r.success and r.status_code == 401


def test_an_oversized_body_is_413_whether_declared_or_streamed(guarded):
    headers = {"X-API-Key": "k1"}
    url = f"{guarded.url}/v1/models/scale/infer"
    r = httpx.post(url, content=b"x" * 5000, headers=headers)
    assert r.status_code == 413 and "exceeds the limit of 4096 bytes" in r.json()["error"]

    def chunks():  # no Content-Length: chunked transfer encoding
        for _ in range(10):
            yield b"y" * 1000

    r = httpx.post(url, content=chunks(), headers=headers)
    assert r.status_code == 413


def _drip(url_host: str, port: int, result: dict) -> None:
    """A client that declares 1000 bytes and sends one every 0.1 s (it would need 100 s); it gives up
    after 5 s."""
    start = time.monotonic()
    with socket.create_connection((url_host, port)) as sock:
        sock.sendall(b"POST /v1/models/scale/infer HTTP/1.1\r\nHost: x\r\nX-API-Key: k1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
        sock.settimeout(0.1)
        reply = b""
        while time.monotonic() - start < 5:  # until the server closes the connection
            try:
                if not reply:
                    sock.sendall(b" ")
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            reply += chunk
        result["reply"], result["seconds"] = reply, time.monotonic() - start


def test_a_slow_dripping_body_gets_408_within_a_second_and_others_are_served(guarded):
    result = {}
    dripper = threading.Thread(target=_drip, args=("127.0.0.1", guarded.port, result))
    dripper.start()
    with ModelClient(guarded.url, api_key="k1") as client:
        while dripper.is_alive():  # served meanwhile, by the same single-process server
            assert client.infer("scale", {"x": np.ones((1, 4), np.float32)}).success
    dripper.join()
    assert result["reply"].startswith(b"HTTP/1.1 408"), result
    assert b"slower than 65536 bytes/s after 0.5 s" in result["reply"] and result["seconds"] < 5


def test_a_slow_but_steady_body_is_read_to_the_end(repo):
    s = start_server(repo, body_timeout_s=0.3, min_body_rate=1000.0)
    body = json.dumps(v1_body(np.ones((64, 4), np.float32))).encode()

    def steady():  # about 2000 bytes/s, for longer than body_timeout_s
        for i in range(0, len(body), 100):
            time.sleep(0.05)
            yield body[i:i + 100]

    try:
        assert len(body) > 600
        r = httpx.post(f"{s.url}/v1/models/scale/infer", content=steady())
        assert r.status_code == 200, r.text
    finally:
        s.stop()


def test_rate_limit_per_client_answers_429(repo):
    s = start_server(repo, rate_limit_rps=1.0, rate_limit_burst=3)
    try:
        codes = [httpx.get(f"{s.url}/v1/models").status_code for _ in range(5)]
        assert codes[:3] == [200] * 3 and codes[3:] == [429] * 2
        r = httpx.get(f"{s.url}/v1/models")
        assert "rate limit of 1 requests/s" in r.json()["error"] and r.headers["retry-after"] == "1"
    finally:
        s.stop()


def test_rate_limiter_refills_at_its_rate():
    limiter = RateLimiter(rps=1000.0, burst=2)
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b")
    time.sleep(0.005)
    assert limiter.allow("a")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls_with_a_self_signed_certificate(repo, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    s = start_server(repo, ssl_certfile=str(cert), ssl_keyfile=str(key))
    try:
        assert s.url.startswith("https://")
        with ModelClient(s.url, verify=ssl.create_default_context(cafile=str(cert))) as client:
            r = client.infer("scale", {"x": np.ones((1, 4), np.float32)}, version="1")
            assert r.success and (r.outputs["y"] == 2).all()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{s.url}/health/live")  # not trusted without the certificate
    finally:
        s.stop()


def test_access_log_has_one_json_line_per_request_with_its_id(server, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="pyflame_rt.serving.access"):
        r = httpx.post(f"{server.url}/v1/models/scale/infer", json=v1_body(), headers={"X-Request-ID": "trace-42"})
        httpx.get(f"{server.url}/v1/models/nope")
        for _ in range(100):  # a line is logged once its response is sent: the client may see it first
            lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "pyflame_rt.serving.access"]
            if len(lines) >= 2:
                break
            time.sleep(0.02)
    assert r.headers["x-request-id"] == "trace-42"
    assert [(line["method"], line["path"], line["status"]) for line in lines] == \
        [("POST", "/v1/models/scale/infer", 200), ("GET", "/v1/models/nope", 404)]
    assert lines[0]["request_id"] == "trace-42" and len(lines[1]["request_id"]) == 32
    assert lines[0]["client"].startswith("127.0.0.1:") and lines[0]["duration_ms"] > 0
