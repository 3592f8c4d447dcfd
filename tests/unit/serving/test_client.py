"""ModelClient and AsyncModelClient against a real server, in both protocols."""
from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
import pytest

from pyflame_rt.errors import ValidationError
from pyflame_rt.serving import AsyncModelClient, ModelClient

from .conftest import start_server


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_sync_client(server, protocol):
    with ModelClient(server.url, timeout=10.0, protocol=protocol) as client:
        assert client.wait_for_ready(timeout=5.0) and client.is_live()
        assert {m.name: m.versions for m in client.list_models()} == {"pair": ["1"], "scale": ["1", "2"]}
        meta = client.get_model_metadata("pair")
        assert [i.name for i in meta.inputs] == ["x"] and [o.name for o in meta.outputs] == ["relu", "neg"]
        x = np.array([[1.0, -2.0, 3.0]], np.float32)
        r = client.infer("pair", {"x": x}, outputs=["neg"], request_id="r1")
        assert r.success and list(r.outputs) == ["neg"] and r.latency_ms > 0 and r.request_id == "r1"
        np.testing.assert_array_equal(r.outputs["neg"], -x)
        batch = [{"x": np.full((1, 4), i, np.float32)} for i in range(6)]
        responses = client.infer_batch("scale", batch, max_workers=3, version="1")
        assert [float(r.outputs["y"][0, 0]) for r in responses] == [2.0 * i for i in range(6)]
        bad = client.infer("nope", {"x": x})
        assert not bad.success and bad.status_code == 404 and "not loaded" in bad.error_message


@pytest.mark.parametrize("protocol", ["v1", "v2"])
def test_async_client(server, protocol):
    async def main():
        async with AsyncModelClient(server.url, protocol=protocol) as client:
            assert await client.wait_for_ready(timeout=5.0) and await client.is_ready()
            assert [m.name for m in await client.list_models()] == ["pair", "scale"]
            assert (await client.get_model_metadata("scale", version="1")).versions == ["1", "2"]
            inputs = [{"x": np.full((2, 4), i, np.float32)} for i in range(20)]
            responses = await client.infer_batch("scale", inputs, max_concurrent=5)
            assert all(r.success for r in responses)
            assert [float(r.outputs["y"][1, 3]) for r in responses] == [3.0 * i for i in range(20)]

    asyncio.run(main())


def test_retries_back_off_until_the_rate_limit_lets_the_request_through(repo):
    s = start_server(repo, rate_limit_rps=5.0, rate_limit_burst=1)
    try:
        x = {"x": np.ones((1, 4), np.float32)}
        with ModelClient(s.url, retries=0) as impatient, ModelClient(s.url, retries=4, backoff_s=0.05) as patient:
            assert impatient.infer("scale", x).success
            r = impatient.infer("scale", x)
            assert not r.success and r.status_code == 429
            start = time.monotonic()
            assert patient.infer("scale", x).success  # 429, waits 0.05 s, 0.1 s, ... until a token is back
            assert time.monotonic() - start >= 0.05
    finally:
        s.stop()


def test_the_async_client_backs_off_too(repo):
    s = start_server(repo, rate_limit_rps=5.0, rate_limit_burst=1)
    x = {"x": np.ones((1, 4), np.float32)}

    async def main():
        async with AsyncModelClient(s.url, retries=0) as impatient, \
                AsyncModelClient(s.url, retries=4, backoff_s=0.05) as patient:
            assert (await impatient.infer("scale", x)).success
            assert (await impatient.infer("scale", x)).status_code == 429
            start = time.monotonic()
            assert (await patient.infer("scale", x)).success
            return time.monotonic() - start

    try:
        assert asyncio.run(main()) >= 0.05
    finally:
        s.stop()


def test_a_server_that_is_not_there():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with ModelClient(f"http://127.0.0.1:{port}", retries=1, backoff_s=0.01) as client:
        assert not client.is_ready() and not client.wait_for_ready(timeout=0.2, interval_s=0.05)
        r = client.infer("m", {"x": np.ones(1, np.float32)})
        assert not r.success and r.error_message

    async def unreachable():
        async with AsyncModelClient(f"http://127.0.0.1:{port}", retries=1, backoff_s=0.01) as client:
            return await client.infer("m", {"x": np.ones(1, np.float32)})

    r = asyncio.run(unreachable())
    assert not r.success and r.error_message
    with pytest.raises(ValidationError, match="protocol"):
        ModelClient("http://127.0.0.1:1", protocol="v3")
