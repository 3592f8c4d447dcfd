"""Robust edges: odd paths, names, sizes, options and processes get a clear error or just work."""
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import helper
from xdsl.dialects.builtin import FunctionType

from conftest import assert_close, make_model, ort_run
from test_cli import _cli
from test_session_api import deep_mlp
from pyflame_rt import (DType, InferenceSession, InvalidModelError, PyFlameRTError, RunOptions, SessionOptions,
                        Tensor, ValidationError)
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt import artifact
from pyflame_rt.compiler import compile_model
from pyflame_rt.targets.cpu.memory_plan import Buffer, plan


def _one_error_line(r) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_cli_save_dir_keeps_odd_output_names_inside_it(tmp_path):
    names = ["../../x", "/abs", "a/b", "a_b", ".hidden", "..", "A_B"]
    nodes = [helper.make_node("Relu", ["x"], [n]) for n in names]
    model = make_model(nodes, [("x", [2])], [(n, [2]) for n in names])
    onnx.save(model, tmp_path / "m.onnx")
    out = tmp_path / "deep" / "er" / "out"
    out.mkdir(parents=True)
    r = _cli("run", str(tmp_path / "m.onnx"), "--save-dir", str(out))
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == len(names) and all(not f.startswith(".") for f in files)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.npy")) == \
        [f"deep/er/out/{f}" for f in files]


def test_cli_anticipated_errors_are_one_line_without_traceback(tmp_path):
    assert "required: artifact" in _one_error_line(_cli("run"))
    assert "invalid choice" in _one_error_line(_cli("frobnicate"))
    assert "--gemm" in _one_error_line(_cli("bench", "--gemm", "x"))
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2])], [("y", [2])]),
              tmp_path / "m.onnx")
    assert "--dim" in _one_error_line(_cli("run", str(tmp_path / "m.onnx"), "--dim", "b=\u00b2"))
    line = _one_error_line(_cli("run", str(tmp_path / "m.onnx"), "--save-dir", str(tmp_path / "missing")))
    assert "cannot write" in line and "missing" in line
    line = _one_error_line(_cli("compile", str(tmp_path / "m.onnx"), "-q", "-o", str(tmp_path / "no" / "m.pfm")))
    assert "No such file or directory" in line
    debug = _cli("--debug", "run", str(tmp_path / "missing.pfm"))
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "InvalidModelError" in debug.stderr


_FORK_WHILE_RUNNING = r"""
import os, sys, threading, time
import numpy as np
from pyflame_rt import InferenceSession, SessionOptions

sess = InferenceSession(sys.argv[1], SessionOptions(num_threads=2))
x = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)
want = sess.run(None, {"x": x})[0]
stop = threading.Event()
busy = threading.Thread(target=lambda: [sess.run(None, {"x": x}) for _ in iter(stop.is_set, True)])
busy.start()
results = []
for _ in range(10):
    time.sleep(0.005)
    pid = os.fork()
    if pid == 0:  # the child: the session works, with a fresh pool of its own workers
        ok = np.array_equal(sess.run(None, {"x": x})[0], want) and len(os.listdir("/proc/self/task")) >= 2
        os._exit(0 if ok else 3)
    deadline = time.monotonic() + 20
    while not (done := os.waitpid(pid, os.WNOHANG))[0] and time.monotonic() < deadline:
        time.sleep(0.01)
    if not done[0]:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    results.append(os.waitstatus_to_exitcode(done[1]) if done[0] else "hung")
stop.set()
busy.join()
print(results)
"""


def test_fork_while_another_thread_runs_gives_the_child_a_working_pool(tmp_path):
    artifact.save(compile_model(deep_mlp(layers=4, width=256)), tmp_path / "m.pfm")
    r = subprocess.run([sys.executable, "-c", _FORK_WHILE_RUNNING, str(tmp_path / "m.pfm")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str([0] * 10), r.stdout


@pytest.mark.parametrize("timeout_ms", [9223372036854, 2**63, 10**30, np.int64(60_000)])
def test_huge_timeouts_mean_no_deadline(timeout_ms):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [3])], [("y", [3])])
    sess = InferenceSession(model.SerializeToString())
    y = sess.run(None, {"x": np.array([-1, 0, 2], np.float32)}, RunOptions(timeout_ms=timeout_ms))[0]
    np.testing.assert_array_equal(y, [0, 0, 2])


@pytest.mark.parametrize("bad", [-1, -2**70, 1.0, "5", None, True])
def test_negative_or_non_int_timeouts_are_validation_errors(bad):
    with pytest.raises(ValidationError, match="timeout_ms"):
        RunOptions(timeout_ms=bad).validate()


def _save_with_external_data(model, folder, location="w.bin"):
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, folder / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return folder / "m.onnx"


def test_external_data_is_read_from_the_models_folder_not_the_working_directory(tmp_path, monkeypatch):
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    model = make_model([helper.make_node("Add", ["x", "w"], ["y"])], [("x", [2, 3])], [("y", [2, 3])], {"w": w})
    path = _save_with_external_data(model, tmp_path / "model")
    decoy = tmp_path / "cwd"  # a w.bin in the working directory must not be picked up instead
    _save_with_external_data(make_model(model.graph.node, [("x", [2, 3])], [("y", [2, 3])], {"w": -w}), decoy)
    monkeypatch.chdir(decoy)
    x = np.ones((2, 3), np.float32)
    np.testing.assert_array_equal(InferenceSession(str(path)).run(None, {"x": x})[0], x + w)


def test_external_data_outside_the_models_folder_is_refused(tmp_path):
    model = make_model([helper.make_node("Add", ["x", "w"], ["y"])], [("x", [2])], [("y", [2])],
                       {"w": np.ones(2, np.float32)})
    path = _save_with_external_data(model, tmp_path / "model")
    (tmp_path / "w.bin").write_bytes((tmp_path / "model" / "w.bin").read_bytes())
    proto = onnx.load(path, load_external_data=False)
    proto.graph.initializer[0].external_data[0].value = "../w.bin"
    onnx.save(proto, path)
    with pytest.raises(InvalidModelError, match="external data"):
        from_onnx(str(path))


def test_memory_plan_of_10k_buffers_is_tight():
    # a residual chain: buffer i is written by step i and read by steps i+1 and i+2
    buffers = [Buffer(64 * (1 + i % 7), i, i + 2) for i in range(10_000)]
    offsets, total = plan(buffers, {})
    sizes = [b.nbytes for b in buffers]
    for i in range(len(buffers) - 2):  # buffers live at the same time never share bytes
        spans = sorted((offsets[j], offsets[j] + sizes[j]) for j in (i, i + 1, i + 2))
        assert spans[0][1] <= spans[1][0] and spans[1][1] <= spans[2][0]
    assert total == 64 * (7 + 6 + 5)  # the most bytes ever live at once: nothing wasted


_COMPILE_UNDER_A_MEMORY_LIMIT = r"""
import resource, sys
import numpy as np
import onnx
from pyflame_rt.compiler import compile_model
from pyflame_rt.errors import PyFlameRTError

resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # the old compiler wanted 15 GB and more
for path in sys.argv[1:]:
    try:
        compile_model(path)
        print("compiled")
    except PyFlameRTError as e:
        print(f"{type(e).__name__}: {e}")
    except MemoryError:
        print("MemoryError")
"""


def _resize(scales, x_shape=(1, 1, 2, 2)):
    return make_model([helper.make_node("Resize", ["x", "", "s"], ["y"], mode="linear")], [("x", list(x_shape))],
                      [("y", ["a", "b", "c", "d"])], {"s": np.array(scales, np.float32)})


def test_sizes_stated_by_a_tiny_model_do_not_make_the_compiler_allocate_gigabytes(tmp_path):
    models = {
        "resize_rows": _resize([1, 1, 1e9, 1]),       # 2e9 x 2 output: index tables of 100 GB
        "resize_both": _resize([1, 1, 1e9, 1e9]),     # 1.6e19 bytes: past int64
        "eye": make_model([helper.make_node("EyeLike", ["x"], ["y"])], [("x", [100_000, 100_000])],
                          [("y", [100_000, 100_000])]),
        "wide_input": make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2**40, 2**40])],
                                 [("y", [2**40, 2**40])]),
        "resize_ok": _resize([1, 1, 2, 2]),
    }
    paths = []
    for name, model in models.items():
        onnx.save(model, tmp_path / f"{name}.onnx")
        paths.append(str(tmp_path / f"{name}.onnx"))
    assert len(models["resize_rows"].SerializeToString()) < 200
    r = subprocess.run([sys.executable, "-c", _COMPILE_UNDER_A_MEMORY_LIMIT, *paths],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows, both, eye, wide, ok = r.stdout.strip().splitlines()
    assert rows.startswith("InvalidModelError: Resize node 'y'") and "MAX_COMPILE_BYTES" in rows
    assert both.startswith("InvalidModelError: Resize node 'y' result has shape [1, 1, 2000000000, 2000000000]")
    assert eye.startswith("InvalidModelError: EyeLike node 'y' (the identity matrix) needs a 40,000,000,000-byte")
    assert wide.startswith("InvalidModelError: input 'x' has shape [1099511627776, 1099511627776]")
    assert ok == "compiled"


def _relu():
    return make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["n"])], [("y", ["n"])])


def _tile_1e9():
    return make_model([helper.make_node("Tile", ["x", "r"], ["y"])], [("x", ["n"])], [("y", ["m"])],
                      {"r": np.array([10**9], np.int64)})


def _unverifiable_import():
    result = from_onnx(_relu())
    result.main.properties["function_type"] = FunctionType.from_lists([], [])  # its block takes one arg
    return result


_ODD_CALLS = {
    "output_names not a list": lambda: InferenceSession(_relu().SerializeToString()).run(5, {"x": np.ones(2, np.float32)}),
    "sess_options not options": lambda: InferenceSession(_relu().SerializeToString(), 5),
    "optimization_level None": lambda: InferenceSession(_relu().SerializeToString(),
                                                        SessionOptions(optimization_level=None)),
    "graph_optimization_level 99": lambda: setattr(SessionOptions(), "graph_optimization_level", 99),
    "providers not a list": lambda: InferenceSession(_relu().SerializeToString(), providers=5),
    "provider not a name": lambda: InferenceSession(_relu().SerializeToString(), providers=[[1]]),
    "compile options not options": lambda: compile_model(_relu(), 5),
    "from_onnx of an int": lambda: from_onnx(5),
    "ragged tensor": lambda: Tensor([[1.0, 2.0], [3.0]], DType.Float32),
    "tensor dtype a string": lambda: Tensor([1.0], dtype="float32"),
    "dims past int64": lambda: compile_model(make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2**40, 2**40])],
                                                        [("y", [2**40, 2**40])])),
    "NaN resize scale": lambda: compile_model(_resize([1, 1, float("nan"), 1])),
    "Constant without a value": lambda: compile_model(make_model([helper.make_node("Constant", [], ["y"])], [],
                                                                 [("y", [1])])),
    "IR failing xDSL verification": lambda: compile_model(_unverifiable_import()),
    "a feed too big to make contiguous": lambda: InferenceSession(_relu().SerializeToString()).run(
        None, {"x": np.broadcast_to(np.float32(0), (2**40,))}),
    "outputs too big to allocate": lambda: InferenceSession(_tile_1e9().SerializeToString()).run(
        None, {"x": np.ones(10**5, np.float32)}),  # 10^14 floats
}


@pytest.mark.parametrize("call", _ODD_CALLS.values(), ids=_ODD_CALLS.keys())
def test_odd_input_to_the_public_api_raises_a_pyflame_rt_error(call):
    with pytest.raises(PyFlameRTError) as err:
        call()
    assert str(err.value)


def _residual_chain(nodes: int):
    """Tanh, then Add of the Tanh and its input, repeated: one kernel call per node."""
    graph, x = [], "x"
    for i in range(nodes // 2):
        graph += [helper.make_node("Tanh", [x], [f"t{i}"]), helper.make_node("Add", [f"t{i}", x], [f"a{i}"])]
        x = f"a{i}"
    graph.append(helper.make_node("Identity", [x], ["y"]))
    return make_model(graph, [("x", ["batch", 16])], [("y", ["batch", 16])])


def _check_chain(nodes: int, tmp_path):
    model = _residual_chain(nodes)
    compiled = compile_model(model)
    assert len(compiled.header["launches"]["table"]) == len(compiled.header["step_ops"]) >= nodes - 1
    artifact.save(compiled, tmp_path / "chain.pfm")
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    assert_close(InferenceSession(str(tmp_path / "chain.pfm")).run(None, {"x": x})[0], ort_run(model, {"x": x})[0])


def test_a_long_model_runs_every_launch(tmp_path):
    _check_chain(300, tmp_path)


@pytest.mark.slow
def test_a_10k_node_chain_compiles_and_runs(tmp_path):
    _check_chain(10_000, tmp_path)
