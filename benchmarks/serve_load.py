"""Load test of the model server with locust (headless), against the obvious alternative a user
would write: a FastAPI endpoint calling onnxruntime, speaking the same v1 JSON.

    python benchmarks/serve_load.py [--models mobilenetv2,bert] [--clients 1,16,64] [--duration 60]
                                    [--servers pyflame,pyflame-batching,onnxruntime] [--markdown OUT.md]
                                    [--reload-after SECONDS]

Each case starts the server in its own process on loopback (pyflame: `pyflame-rt serve` on a
repository of the model; onnxruntime: this file with --anchor-server), warms it up, then runs
locust for --duration seconds with N users that each send batch-1 requests back to back (no
think time), and reports requests/s, p50 / p99 latency and the failures. `pyflame-batching` is the
same server with the model's dynamic batching on (--max-batch, --max-delay-us). With
--reload-after, a pyflame server runs with --hot-reload and a new version of the model (version 2,
the same file) is added to its repository that many seconds into each case: the table's failures
then count the requests that failed across the swap.

This file is also the locustfile (the users are defined only when locust loads it with
PYFLAME_RT_LOAD_BODY set).
"""
from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request  # module level: the endpoint's annotations name them
from starlette.concurrency import run_in_threadpool

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
BODY_ENV = "PYFLAME_RT_LOAD_BODY"
MODEL_ENV = "PYFLAME_RT_LOAD_MODEL"

if os.environ.get(BODY_ENV):  # loaded by locust as its locustfile
    from locust import constant, task
    from locust.contrib.fasthttp import FastHttpUser

    class InferUser(FastHttpUser):
        wait_time = constant(0)
        body = Path(os.environ[BODY_ENV]).read_bytes()
        path = f"/v1/models/{os.environ[MODEL_ENV]}/infer"

        @task
        def infer(self):
            with self.client.post(self.path, data=self.body, headers={"content-type": "application/json"},
                                  catch_response=True) as r:
                if r.status_code != 200 or b'"success":true' not in r.content:
                    r.failure(f"HTTP {r.status_code}: {r.text[:200]}")


def request_body(model_path: str, seq: int) -> bytes:
    """One batch-1 v1 request with random inputs of the model's input types: the first dynamic dim
    (the batch) is 1, any other (a sequence) is `seq`."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    inputs = {}
    for arg in ort.InferenceSession(model_path, providers=["CPUExecutionProvider"]).get_inputs():
        shape = [d if isinstance(d, int) else 1 if i == 0 else seq for i, d in enumerate(arg.shape)]
        if arg.name == "input_ids":
            array = rng.integers(0, 1000, shape).astype(np.int64)
        elif arg.type == "tensor(int64)":
            array = np.ones(shape, np.int64)
        else:
            array = rng.standard_normal(shape).astype(np.float32)
        inputs[arg.name] = {"shape": list(array.shape), "dtype": array.dtype.name,
                            "data": base64.b64encode(array.tobytes()).decode()}
    return json.dumps({"inputs": inputs}).encode()


def anchor_app(model_path: str):
    """What a user writes without a model server: FastAPI + onnxruntime, decoding the same JSON."""
    import onnxruntime as ort
    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    app = FastAPI()

    @app.get("/health/ready")
    def ready():
        return {"ready": True}

    @app.post("/v1/models/{model}/infer")
    async def infer(model: str, request: Request):
        doc = await request.json()
        feeds = {k: np.frombuffer(base64.b64decode(t["data"]), t["dtype"]).reshape(t["shape"])
                 for k, t in doc["inputs"].items()}
        names = [o.name for o in session.get_outputs()]
        outs = await run_in_threadpool(session.run, names, feeds)
        return {"model_name": model, "success": True,
                "outputs": {n: {"shape": list(o.shape), "dtype": o.dtype.name,
                                "data": base64.b64encode(o.tobytes()).decode()} for n, o in zip(names, outs)}}

    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(kind: str, name: str, model_path: str, port: int, workdir: Path, args) -> subprocess.Popen:
    if kind.startswith("pyflame"):
        repo = workdir / f"repo-{kind}-{port}"
        (repo / name / "1").mkdir(parents=True)
        shutil.copy(model_path, repo / name / "1" / "model.onnx")
        config = f"instance: {{count: {args.instances}}}\n"
        if kind == "pyflame-batching":
            config += (f"batching: {{enabled: true, max_batch_size: {args.max_batch}, "
                       f"max_queue_delay_us: {args.max_delay_us}}}\n")
        (repo / name / "config.yaml").write_text(config)
        exe = shutil.which("pyflame-rt") or str(Path(sys.executable).parent / "pyflame-rt")
        cmd = [exe, "serve", "--model-repository", str(repo), "--port", str(port)]
        if args.reload_after:
            cmd.append("--hot-reload")
    else:
        cmd = [sys.executable, __file__, "--anchor-server", model_path, "--port", str(port)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def add_version(repo: Path, name: str, version: int) -> None:
    """A new version of the model appears in the repository (written aside, then renamed in)."""
    staging = repo / name / f".v{version}"
    staging.mkdir()
    shutil.copy(repo / name / "1" / "model.onnx", staging / "model.onnx")
    staging.rename(repo / name / str(version))


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 600) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout} s")


def run_locust(url: str, name: str, body_file: Path, clients: int, duration: float, workdir: Path,
               reload_repo: Path | None = None, reload_after: float = 0.0, version: int = 2) -> dict:
    prefix = workdir / f"locust-{clients}"
    env = dict(os.environ, **{BODY_ENV: str(body_file), MODEL_ENV: name})
    exe = shutil.which("locust") or str(Path(sys.executable).parent / "locust")
    locust = subprocess.Popen([exe, "-f", __file__, "--headless", "-u", str(clients), "-r", str(clients), "-t",
                               f"{int(duration)}s", "--host", url, "--csv", str(prefix), "--only-summary",
                               "--loglevel", "WARNING", "--stop-timeout", "10"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if reload_repo is not None:
        time.sleep(reload_after)
        add_version(reload_repo, name, version)
    locust.wait()
    with open(f"{prefix}_stats.csv") as f:
        total = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    with open(f"{prefix}_failures.csv") as f:
        for row in csv.DictReader(f):
            print(f"  {row['Occurrences']} x {row['Error']}", file=sys.stderr)
    return {"requests": int(total["Request Count"]), "failures": int(total["Failure Count"]),
            "rps": float(total["Requests/s"]), "p50_ms": float(total["50%"]), "p99_ms": float(total["99%"])}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="mobilenetv2,bert")
    ap.add_argument("--clients", default="1,16,64")
    ap.add_argument("--servers", default="pyflame,pyflame-batching,onnxruntime")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load per case")
    ap.add_argument("--warmup", type=int, default=5, help="requests before the load")
    ap.add_argument("--instances", type=int, default=1, help="pyflame: concurrent runs per model (instance.count)")
    ap.add_argument("--seq", type=int, default=128, help="sequence length of text models' requests")
    ap.add_argument("--max-batch", type=int, default=16, help="pyflame-batching: batching.max_batch_size")
    ap.add_argument("--max-delay-us", type=int, default=2000, help="pyflame-batching: batching.max_queue_delay_us")
    ap.add_argument("--reload-after", type=float, default=0.0,
                    help="pyflame: add a new model version this many seconds into each case (hot reload)")
    ap.add_argument("--markdown", help="also write the table to this file")
    ap.add_argument("--anchor-server", metavar="MODEL", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.anchor_server:
        import uvicorn

        uvicorn.run(anchor_app(args.anchor_server), host="127.0.0.1", port=args.port, log_level="warning",
                    access_log=False)
        return 0

    import httpx

    from run import ensure_model

    rows = ["| model | server | clients | requests/s | p50 ms | p99 ms | requests | failures |",
            "|---|---|---|---|---|---|---|---|"]
    for name in args.models.split(","):
        model_path = ensure_model(name)
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            body_file = workdir / "body.json"
            body_file.write_bytes(request_body(model_path, args.seq))
            for kind in args.servers.split(","):
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                proc = start_server(kind, name, model_path, port, workdir, args)
                try:
                    wait_ready(url, proc)
                    for _ in range(args.warmup):
                        httpx.post(f"{url}/v1/models/{name}/infer", content=body_file.read_bytes(), timeout=60)
                    for case, clients in enumerate(map(int, args.clients.split(","))):
                        reload_repo = workdir / f"repo-{kind}-{port}" \
                            if args.reload_after and kind.startswith("pyflame") else None
                        r = run_locust(url, name, body_file, clients, args.duration, workdir, reload_repo,
                                       args.reload_after, case + 2)
                        row = (f"| {name} | {kind} | {clients} | {r['rps']:.1f} | {r['p50_ms']:.0f} | "
                               f"{r['p99_ms']:.0f} | {r['requests']} | {r['failures']} |")
                        print(row, flush=True)
                        rows.append(row)
                        if reload_repo is not None:
                            served = httpx.get(f"{url}/v1/models/{name}").json()["version"]
                            print(f"  hot reload: version {case + 2} added, version {served} serving after the case",
                                  file=sys.stderr)
                finally:
                    proc.terminate()
                    proc.wait(30)
    table = "\n".join(rows)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
