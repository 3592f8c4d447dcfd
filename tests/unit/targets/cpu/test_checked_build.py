"""The checked build (CompileOptions(checked=True)): every load and store of generated code is
bounds-checked against its own buffer and a violation raises MemoryAccessError naming the kernel,
the buffer and the byte offset, without performing the access.

The violations are real: a kernel built with KernelBuilder that accesses one element past (or
before) its buffer replaces the Relu kernel of a real compile, whose code then runs in the
runtime. Real models compiled checked give what the normal build gives, with no violation.
"""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession, SessionOptions, artifact, cli
from pyflame_rt.cache import CacheConfig, CompileCache
from pyflame_rt.compiler import CompileOptions, compile_model
from pyflame_rt.errors import MemoryAccessError
from pyflame_rt.executable import Executable
from pyflame_rt.options import OptLevel
from pyflame_rt.targets.cpu import lower_graph as lower_graph_module
from pyflame_rt.targets.cpu.checked import CHECK_FN
from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder
from pyflame_rt.targets.cpu.kernels.elementwise import INNER_CHUNK, elementwise_kernel

CHECKED = CompileOptions(checked=True, opt_level=OptLevel.NONE)


def off_by_one_relu(spec, load_shift: int = 0, store_field: int = 0, store_shift: int = 0):
    """A deliberately miscompiled Relu with the elementwise kernel's signature (rows of one
    chunk): out[i] = max(x[i + load_shift], 0), stored at field `store_field` (0 out, 1 x)
    index i + store_shift."""
    kb = KernelBuilder(spec.name, spec.signature)
    fields = [kb.fields["out"], kb.fields["in0"]]
    inner = kb.fields["inner"]
    chunk = kb.const(INNER_CHUNK)
    with kb.loop(kb.mul(kb.begin, chunk), kb.min(kb.mul(kb.end, chunk), inner)) as i:
        v = kb.fmax(kb.load(fields[1], kb.add(i.iv, kb.const(load_shift))), kb.fconst(0.0))
        kb.store(v, fields[store_field], kb.add(i.iv, kb.const(store_shift)))
    return kb.finish()


@pytest.fixture
def miscompiled_relu(monkeypatch):
    """Compile with the Relu kernel replaced by off_by_one_relu(**faults)."""
    def install(**faults):
        def kernel(spec):
            return off_by_one_relu(spec, **faults) if spec.op == "relu" else elementwise_kernel(spec)
        monkeypatch.setattr(lower_graph_module, "elementwise_kernel", kernel)
    return install


def relu_model():
    return make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["n"])], [("y", ["n"])])


def test_store_past_the_output_is_reported_with_kernel_and_offset(miscompiled_relu):
    miscompiled_relu(store_shift=1)
    exe = Executable(compile_model(relu_model(), CHECKED))
    with pytest.raises(MemoryAccessError) as e:
        exe.run([np.ones(10, np.float32)])
    msg = str(e.value)
    kernel = next(k for k in exe.kernel_names if k.startswith("ew_relu"))
    assert msg.startswith(f"kernel {kernel} (step 0: relu#1): 4-byte store at byte offset 40 of field 0 "
                          f"(output 'y'), outside its buffer of 40 bytes"), msg


def test_load_before_the_input_is_reported(miscompiled_relu):
    miscompiled_relu(load_shift=-1)
    exe = Executable(compile_model(relu_model(), CHECKED))
    with pytest.raises(MemoryAccessError, match=r"4-byte load at byte offset -4 of field 1 \(input 'x'\), "
                                                r"outside its buffer of 12 bytes"):
        exe.run([np.ones(3, np.float32)])


def test_a_violating_store_is_not_performed(miscompiled_relu):
    """The feed is the first 8 floats of a larger array: the faulty store into x[8] would
    overwrite the sentinel behind it."""
    miscompiled_relu(store_field=1, store_shift=1)
    exe = Executable(compile_model(relu_model(), CHECKED))
    memory = np.full(16, 7.0, np.float32)
    with pytest.raises(MemoryAccessError, match="store at byte offset 32 of field 1 \\(input 'x'\\)"):
        exe.run([memory[:8]])
    np.testing.assert_array_equal(memory[8:], 7.0)


def test_overflow_into_the_neighbouring_arena_buffer_is_caught(miscompiled_relu):
    """a = Relu(x) and b = Neg(x) are adjacent arena buffers: a[16] is inside the arena (it is
    b[0]) but outside a's own buffer."""
    miscompiled_relu(store_shift=1)
    model = make_model([helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Neg", ["x"], ["b"]),
                        helper.make_node("Add", ["a", "b"], ["y"])], [("x", ["n"])], [("y", ["n"])])
    exe = Executable(compile_model(model, CHECKED))
    assert exe.arena_bytes({"n": 16}) >= 2 * 64
    with pytest.raises(MemoryAccessError, match=r"store at byte offset 64 of field 0 \(intermediate buffer \d "
                                                r"\(written first by relu#1\)\), outside its buffer of 64 bytes"):
        exe.run([np.ones(16, np.float32)])


def test_a_violation_stops_the_run_and_the_next_run_is_clean(miscompiled_relu):
    miscompiled_relu(store_shift=1)
    exe = Executable(compile_model(relu_model(), CHECKED))
    with pytest.raises(MemoryAccessError):
        exe.run([np.ones(4, np.float32)])
    with pytest.raises(MemoryAccessError):  # every run reports its own first violation
        exe.run([np.ones(4, np.float32)])


def test_checked_build_code_calls_the_check_and_the_normal_build_does_not():
    model = relu_model()
    normal, checked = compile_model(model), compile_model(model, CompileOptions(checked=True))
    assert not any(CHECK_FN.encode() in obj for obj in normal.objects) and normal.header["checked"] is False
    assert all(CHECK_FN.encode() in obj for obj in checked.objects) and checked.header["checked"] is True
    x = np.linspace(-2, 2, 9, dtype=np.float32)
    np.testing.assert_array_equal(Executable(checked).run([x])[0], np.maximum(x, 0))


def test_checked_is_part_of_the_cache_key_and_the_session_option(tmp_path):
    cache = CompileCache(CacheConfig(dir=str(tmp_path)))
    data = relu_model().SerializeToString()
    assert cache.key(data, CompileOptions()) != cache.key(data, CompileOptions(checked=True))
    sess = InferenceSession(data, SessionOptions(checked=True, cache=CacheConfig(dir=str(tmp_path))))
    assert sess.header["checked"] is True
    x = np.array([-1, 2], np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], [0, 2])
    assert InferenceSession(data, SessionOptions(cache=CacheConfig(dir=str(tmp_path)))).header["checked"] is False


def test_cli_compile_checked_and_inspect(tmp_path, capsys):
    src, out = tmp_path / "m.onnx", tmp_path / "m.pfm"
    src.write_bytes(relu_model().SerializeToString())
    assert cli.main(["compile", str(src), "-o", str(out), "--checked", "-q"]) == 0
    assert artifact.load(out).header["checked"] is True
    capsys.readouterr()
    assert cli.main(["inspect", str(out)]) == 0
    assert "checked       yes" in capsys.readouterr().out


# ------------------------------------------------------------ real models


def _mlp():
    rng = np.random.default_rng(0)
    w = lambda *s: rng.standard_normal(s).astype(np.float32) * 0.3  # noqa: E731
    model = make_model([helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
                        helper.make_node("Gemm", ["r", "w2", "b2"], ["o"]),
                        helper.make_node("Softmax", ["o"], ["y"], axis=-1)],
                       [("x", ["b", 20])], [("y", ["b", 10])],
                       {"w1": w(20, 48), "b1": w(48), "w2": w(48, 10), "b2": w(10)})
    return model, {"x": rng.standard_normal((5, 20)).astype(np.float32)}


def _cnn():
    rng = np.random.default_rng(1)
    w = lambda *s: rng.standard_normal(s).astype(np.float32) * 0.3  # noqa: E731
    model = make_model([
        helper.make_node("Conv", ["x", "k1", "c1"], ["a"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p", "k2"], ["c"], strides=[2, 2], group=2),
        helper.make_node("AveragePool", ["c"], ["q"], kernel_shape=[2, 2], pads=[0, 0, 1, 1]),
        helper.make_node("GlobalAveragePool", ["q"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "wf"], ["y"], transB=1)],
        [("x", ["n", 3, 12, 12])], [("y", ["n", 5])], {"k1": w(8, 3, 3, 3), "c1": w(8), "k2": w(6, 4, 3, 3),
                                                      "wf": w(5, 6)})
    return model, {"x": rng.standard_normal((2, 3, 12, 12)).astype(np.float32)}


def _transformer_block():
    rng = np.random.default_rng(2)
    d, heads = 16, 2
    w = lambda *s: rng.standard_normal(s).astype(np.float32) * 0.2  # noqa: E731
    n = helper.make_node
    c = {"wq": w(d, d), "wk": w(d, d), "wv": w(d, d), "wo": w(d, d), "w1": w(d, 2 * d), "b1": w(2 * d),
         "w2": w(2 * d, d), "g": w(d) + 1, "be": w(d), "split": np.array([0, 0, heads, d // heads], np.int64),
         "merge": np.array([0, 0, d], np.int64), "scale": np.array(1 / np.sqrt(d // heads), np.float32)}
    nodes = [n("LayerNormalization", ["x", "g", "be"], ["ln"], axis=-1)]
    for t in "qkv":
        nodes += [n("MatMul", ["ln", f"w{t}"], [f"{t}0"]), n("Reshape", [f"{t}0", "split"], [f"{t}1"]),
                  n("Transpose", [f"{t}1"], [t], perm=[0, 2, 3, 1] if t == "k" else [0, 2, 1, 3])]
    nodes += [n("MatMul", ["q", "k"], ["s0"]), n("Mul", ["s0", "scale"], ["s"]), n("Softmax", ["s"], ["p"], axis=-1),
              n("MatMul", ["p", "v"], ["o0"]), n("Transpose", ["o0"], ["o1"], perm=[0, 2, 1, 3]),
              n("Reshape", ["o1", "merge"], ["o2"]), n("MatMul", ["o2", "wo"], ["o"]), n("Add", ["x", "o"], ["h"]),
              n("LayerNormalization", ["h", "g", "be"], ["hn"], axis=-1), n("MatMul", ["hn", "w1"], ["f0"]),
              n("Add", ["f0", "b1"], ["f1"]), n("Relu", ["f1"], ["f2"]), n("MatMul", ["f2", "w2"], ["f"]),
              n("Add", ["h", "f"], ["y"])]
    model = make_model(nodes, [("x", ["b", "s", d])], [("y", ["b", "s", d])], c)
    return model, {"x": rng.standard_normal((2, 7, d)).astype(np.float32)}


@pytest.mark.slow
@pytest.mark.parametrize("build", [_mlp, _cnn, _transformer_block], ids=["mlp", "cnn", "transformer"])
def test_checked_build_of_real_models_matches_the_normal_build(build):
    model, feeds = build()
    normal = Executable(compile_model(model)).run(list(feeds.values()))
    checked = Executable(compile_model(model, CompileOptions(checked=True)))
    for _ in range(2):  # no violation, same result, run after run
        for got, want, ref in zip(checked.run(list(feeds.values())), normal, ort_run(model, feeds)):
            assert_close(got, want, rtol=1e-5)
            assert_close(got, ref)


def _unchecked_accesses(module) -> list[str]:
    """Loads and stores (plain and masked) whose address is not the result of the check call, or
    a constant offset from one (a field's three slots, a vector store's retyped address); only a
    task's ctx header (checked.py) is read directly."""
    from xdsl.dialects import func, llvm
    from xdsl.ir import BlockArgument

    from pyflame_rt.targets.cpu.checked import CTX_HEADER

    def checked(addr, task: bool) -> bool:
        op = addr.owner
        if isinstance(op, llvm.CallOp):
            return op.callee.string_value() == CHECK_FN
        if not isinstance(op, llvm.GEPOp):
            return False
        if checked(op.ptr, task):
            return True
        index = op.ssa_indices[0].owner if op.ssa_indices else None
        return (task and isinstance(op.ptr, BlockArgument) and op.ptr.index == 0
                and isinstance(index, llvm.ConstantOp) and index.value.value.data < CTX_HEADER)

    bad = []
    for fn in module.ops:
        if not isinstance(fn, func.FuncOp) or fn.is_declaration:
            continue
        task = len(fn.args) == 3
        for op in fn.walk():
            if isinstance(op, (llvm.LoadOp, llvm.StoreOp)):
                addr = op.ptr
            elif isinstance(op, llvm.CallIntrinsicOp) and ".masked." in op.intrin.data:
                addr = op.args[0 if ".load." in op.intrin.data else 1]
            else:
                continue
            if not checked(addr, task):
                bad.append(f"{fn.sym_name.data}: {op.name}")
    return bad


@pytest.mark.slow
@pytest.mark.parametrize("build", [_mlp, _cnn, _transformer_block], ids=["mlp", "cnn", "transformer"])
def test_every_load_and_store_of_a_checked_build_goes_through_the_check(build):
    from pyflame_rt.dialects import graph
    from pyflame_rt.dialects.weights import WeightTable
    from pyflame_rt.importers.onnx import from_onnx
    from pyflame_rt.targets.cpu.lower_graph import lower_graph
    from pyflame_rt.targets.cpu.lowerings import PATTERNS
    from pyflame_rt.targets.cpu.target import CPUTarget

    model = build()[0]

    def lower(checked: bool):  # lowering replaces the graph function's ops: a fresh import each time
        imported = from_onnx(model)
        return lower_graph(graph.entry_function(imported.module), WeightTable.of(imported.module),
                           CPUTarget.named("x86-64-v3"), PATTERNS, checked=checked)

    assert not _unchecked_accesses(lower(checked=True).module)
    assert _unchecked_accesses(lower(checked=False).module)  # the walk sees the accesses the checks guard
