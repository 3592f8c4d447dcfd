"""The runner a model's config picks: with batching on, requests of concurrent clients become one
batched run of the runtime's DynamicBatcher (real server on loopback, real httpx clients)."""
from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from onnx import helper

from conftest import make_model
from pyflame_rt.errors import ValidationError
from pyflame_rt.serving import BatchingRunner, ModelConfig, ThreadPoolRunner
from pyflame_rt.serving.runner import runner_for

from .conftest import scale_model, start_server, write_version

BATCHING = "batching: {enabled: true, max_batch_size: 4, max_queue_delay_us: 5000000}\n"


def _row_body(row: np.ndarray) -> dict:
    return {"inputs": {"x": {"shape": [1, 4], "dtype": "float32", "data": base64.b64encode(row.tobytes()).decode()}}}


def _decoded(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.frombuffer(base64.b64decode(response.json()["outputs"]["y"]["data"]), np.float32)


def test_concurrent_requests_become_one_batched_run(tmp_path):
    write_version(tmp_path, "batched", "1", scale_model(2.0))
    (tmp_path / "batched" / "config.yaml").write_text(BATCHING)
    server = start_server(tmp_path)
    try:
        rows = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
        with ThreadPoolExecutor(4) as pool:  # the batch runs once it is full: all four requests in it
            responses = list(pool.map(lambda row: httpx.post(f"{server.url}/v1/models/batched/infer",
                                                             json=_row_body(row), timeout=60), rows))
        for row, response in zip(rows, responses):
            np.testing.assert_array_equal(_decoded(response), row * 2)
        with server.registry.lease("batched") as version:
            assert isinstance(version.runner, BatchingRunner)
            stats = version.runner.batch_stats()
        assert (stats.total_batches, stats.avg_batch_size, stats.completed_requests) == (1, 4.0, 4)
    finally:
        server.stop()


def test_runner_for_follows_the_config_and_batching_needs_a_batch_dim(tmp_path):
    path = write_version(tmp_path, "scale", "1", scale_model(2.0))
    plain = runner_for(str(path), ModelConfig(name="scale"))
    assert isinstance(plain, ThreadPoolRunner)
    plain.close()
    fixed = tmp_path / "fixed.onnx"
    fixed.write_bytes(make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2, 4])],
                                 [("y", [2, 4])]).SerializeToString())
    with pytest.raises(ValidationError, match="batch"):
        runner_for(str(fixed), ModelConfig(name="fixed", enable_batching=True))
