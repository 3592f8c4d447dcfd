"""The schedule as data: the `.pfm` launch table (pyflame_rt/launch_table.py) and the C runtime's
`pfrt_execute`, which runs its kernels in order over the buffers the table binds, with sizes
resolved from the dims of each run."""
from __future__ import annotations

import struct
import threading

import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession, InvalidModelError, UnsupportedFormatError, artifact
from pyflame_rt.compiled_model import CompiledModel
from pyflame_rt.compiler import CompileOptions, compile_model
from pyflame_rt.executable import Executable
from pyflame_rt.launch_table import FIELD_ARENA, FIELD_IO, FIELD_VALUE
from pyflame_rt.options import OptLevel
from pyflame_rt.profiling import Profiler

C = np.linspace(-1, 1, 8, dtype=np.float32)


def chain_model():
    """y = (tanh(x) + c) * x: three kernels at optimization level 0 (nothing fused)."""
    return make_model([helper.make_node("Tanh", ["x"], ["t"]), helper.make_node("Add", ["t", "c"], ["a"]),
                       helper.make_node("Mul", ["a", "x"], ["y"])],
                      [("x", ["n", 8])], [("y", ["n", 8])], {"c": C})


@pytest.fixture(scope="module")
def compiled():
    return compile_model(chain_model(), CompileOptions(opt_level=OptLevel.NONE))


def feed(n: int) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 8)).astype(np.float32)


def test_the_table_binds_each_kernel_to_its_buffers(compiled):
    h = compiled.header
    table, kernels = h["launches"]["table"], h["kernels"]
    assert [kernels[k].split("_")[1] for k, *_ in table] == ["tanh", "add", "mul"]
    (_, _, _, tanh), (_, _, _, add), (_, _, _, mul) = table
    # out, ins...: tanh writes an arena buffer from input x (io slot 0); add reads it; mul writes y (slot 1)
    assert tanh[0][0] == FIELD_ARENA and tanh[1] == [FIELD_IO, 0, 0]
    assert add[1] == tanh[0]
    assert mul[0] == [FIELD_IO, 1, 0] and mul[2] == [FIELD_IO, 0, 0]
    assert all(f[0] == FIELD_VALUE for f in tanh[2:])  # sizes
    assert h["step_ops"] == ["tanh#1", "add#1", "mul#1"]


def test_one_artifact_runs_at_two_batch_sizes_in_table_order(compiled, tmp_path):
    """The sizes are resolved per run's dims: n = 3 and n = 1000 give different work items
    from the same table, and the runtime runs the kernels in the table's order."""
    artifact.save(compiled, tmp_path / "chain.pfm")
    exe = Executable(artifact.load(tmp_path / "chain.pfm"), num_threads=2)
    kernels = [compiled.header["kernels"][launch[0]] for launch in compiled.header["launches"]["table"]]
    items = {}
    for n in (3, 1000):
        profiler = Profiler()
        x = feed(n)
        assert_close(exe.run([x], profiler=profiler)[0], ort_run(chain_model(), {"x": x})[0])
        calls = [e["args"] for e in profiler.events if e["cat"] == "Kernel"]
        assert [c["kernel"] for c in calls] == kernels
        items[n] = [c["work_items"] for c in calls]
    assert items[3] != items[1000]


def test_runs_of_one_session_at_once_do_not_share_contexts(compiled, tmp_path):
    """Each run builds its kernels' contexts in its own memory: two threads with different
    batch sizes get their own results."""
    artifact.save(compiled, tmp_path / "chain.pfm")
    sess = InferenceSession(str(tmp_path / "chain.pfm"))
    expected = {n: ort_run(chain_model(), {"x": feed(n)})[0] for n in (5, 300)}
    failures = []

    def work(n):
        for _ in range(30):
            out = sess.run(None, {"x": feed(n)})[0]
            if out.shape != expected[n].shape or not np.allclose(out, expected[n], rtol=1e-5, atol=1e-6):
                failures.append(n)

    threads = [threading.Thread(target=work, args=(n,)) for n in (5, 300)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures


def test_an_older_artifact_is_refused_with_recompile(compiled, tmp_path):
    data = bytearray(b"".join(artifact.serialize(compiled)))
    data[4:8] = struct.pack("<I", 3)  # format 3: the entry point in the object, no launch table
    (tmp_path / "v3.pfm").write_bytes(bytes(data))
    with pytest.raises(UnsupportedFormatError, match=r"format version 3 is not supported \(this build reads 4\); "
                                                     r"recompile the model"):
        InferenceSession(str(tmp_path / "v3.pfm"))


@pytest.mark.parametrize("launch", [[9, 0, 0, []],                         # no such kernel
                                    [0, 99, 0, []],                        # no such size expression
                                    [0, 0, 0, [[FIELD_IO, 7, 0]]],         # no such io slot
                                    [0, 0, 0, [[FIELD_ARENA, 5, 0]]]])     # no such arena buffer
def test_a_table_pointing_outside_the_model_is_refused(compiled, tmp_path, launch):
    header = dict(compiled.header, launches=dict(compiled.header["launches"], table=[launch]))
    artifact.save(CompiledModel(header, compiled.weights, compiled.objects), tmp_path / "bad.pfm")
    with pytest.raises(InvalidModelError, match="artifact metadata is invalid.*launch table index"):
        InferenceSession(str(tmp_path / "bad.pfm"))
