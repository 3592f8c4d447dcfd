"""Zero-size tensors: every op family the CPU backend lowers, on a dynamic dim fed 0 (and static zero
dims where the importer keeps them), gives onnxruntime's outputs and shapes, or raises a PyFlameRTError
where onnxruntime raises. Each compiled run happens in a forked child, so a crash (SIGFPE, SIGSEGV) or
a hang is reported as that case's failure instead of ending pytest."""
from __future__ import annotations

import faulthandler
import os
import pickle
import select
import signal
import time
from dataclasses import dataclass, field

import numpy as np
import pytest
from onnx import helper

from conftest import make_model, ort_run
from test_cli import _cli as cli
from pyflame_rt import InferenceSession
from pyflame_rt.errors import PyFlameRTError, ShapeMismatchError

CHILD_TIMEOUT_S = 120


def run_forked(fn):
    """fn() in a forked child: its return value, or the exception it raised (returned, not raised).
    A child killed by a signal, or alive after CHILD_TIMEOUT_S, fails the test."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        os.close(read_end)
        faulthandler.disable()  # the parent reports the signal
        try:
            try:
                result = fn()
            except Exception as e:  # noqa: BLE001 (reported to the parent)
                result = e
            payload = pickle.dumps(result)
        except Exception as e:  # noqa: BLE001 (an unpicklable result)
            payload = pickle.dumps(RuntimeError(f"unpicklable result: {e!r}"))
        with os.fdopen(write_end, "wb") as w:
            w.write(payload)
        os._exit(0)
    os.close(write_end)
    chunks, deadline = [], time.monotonic() + CHILD_TIMEOUT_S
    with os.fdopen(read_end, "rb") as r:
        while True:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the run did not finish within {CHILD_TIMEOUT_S} s")
            chunk = os.read(r.fileno(), 1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        pytest.fail(f"the run was killed by {signal.Signals(os.WTERMSIG(status)).name}")
    return pickle.loads(b"".join(chunks))


@dataclass
class Case:
    id: str
    nodes: list
    inputs: list  # (name, shape[, dtype]); str dims are dynamic and bound from `dims`
    outputs: list
    initializers: dict = field(default_factory=dict)
    opset: int = 17
    dims: tuple = ({"n": 0},)  # one run per binding
    feeds: dict = field(default_factory=dict)  # input name -> (dims -> array): valid indices
    slow: bool = False  # compiles several GEMM / convolution kernels

    def model(self):
        return make_model(self.nodes, self.inputs, self.outputs, self.initializers, opset=self.opset)

    def feed_sets(self):
        rng = np.random.default_rng(0)
        for dims in self.dims:
            feeds = {}
            for name, shape, *dtype in self.inputs:
                if name in self.feeds:
                    feeds[name] = self.feeds[name](dims)
                    continue
                concrete = [dims[d] if isinstance(d, str) else d for d in shape]
                dt = np.dtype(dtype[0]) if dtype else np.dtype(np.float32)
                feeds[name] = (rng.integers(-5, 5, concrete) if dt.kind in "iu" else
                               rng.standard_normal(concrete)).astype(dt)
            yield feeds


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, **attrs)


def per_op(id, ops, make_node, inputs, out_shape, dtype=np.float32, **kw):
    """A model with one node per op, each reading the inputs into its own output y_<op>."""
    return Case(id, [make_node(op, f"y_{op}") for op in ops], inputs,
                [(f"y_{op}", out_shape, dtype) for op in ops], **kw)


def reductions(ops, axes, keepdims, shape, out_shape, dtype=np.float32):
    return per_op(f"reduce-axes{axes}-keep{keepdims}-{shape}-{np.dtype(dtype)}", ops,
                  lambda op, y: node(op, ["x", "axes"], [y], keepdims=keepdims), [("x", shape, dtype)], out_shape,
                  dtype, initializers={"axes": np.array(axes, np.int64)}, opset=18)


UNARY_OPS = ["Relu", "Exp", "Sigmoid", "Tanh", "Neg", "Sqrt", "Erf", "Softplus", "Abs"]
REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]
INT_REDUCE_OPS = ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"]


def _indices(shape):
    """Feed: int64 zeros of `shape` (str dims bound from the run's dims): valid indices for any axis."""
    return lambda dims: np.zeros([dims[d] if isinstance(d, str) else d for d in shape], np.int64)


CASES = [
    # elementwise: unary, broadcasting binary, compare / select, clip, cast
    per_op("unary", UNARY_OPS, lambda op, y: node(op, ["x"], [y]), [("x", [2, "n"])], [2, "n"]),
    Case("binary-broadcast", [node("Add", ["x", "b"], ["y_add"]), node("Mul", ["x", "z"], ["y_mul"]),
                              node("Greater", ["x", "z"], ["c"]), node("Where", ["c", "x", "z"], ["y_where"]),
                              node("Clip", ["x", "lo", "hi"], ["k"]), node("Cast", ["k"], ["y_cast"], to=7)],
         [("x", ["n", 3]), ("z", [1, 3])],
         [("y_add", ["n", 3]), ("y_mul", ["n", 3]), ("y_where", ["n", 3]), ("y_cast", ["n", 3], np.int64)],
         {"b": np.ones(3, np.float32), "lo": np.float32(-1), "hi": np.float32(1)}),
    Case("binary-empty-inner", [node("Mul", ["x", "z"], ["y"])], [("x", [2, "n"]), ("z", [1, "n"])],
         [("y", [2, "n"])]),
    # row kernels: softmax, reductions (over an empty axis, and over a full axis of an empty tensor)
    Case("softmax", [node(op, ["x"], [f"y_{op}_{axis}"], axis=axis)
                     for op in ("Softmax", "LogSoftmax") for axis in (-1, 0)],
         [("x", [2, "n"])], [(f"y_{op}_{axis}", [2, "n"]) for op in ("Softmax", "LogSoftmax") for axis in (-1, 0)]),
    reductions(REDUCE_OPS, [1], 1, [2, "n"], [2, 1]),
    reductions(REDUCE_OPS, [1], 0, ["n", 3], ["n"]),
    reductions(REDUCE_OPS, [0, 2], 1, ["n", 2, 3], [1, 2, 1]),
    reductions(["ReduceSum", "ReduceMean"], [0, 2], 0, [2, "n", 3], ["n"]),
    *[reductions(INT_REDUCE_OPS, [1], 1, [2, "n"], [2, 1], dtype) for dtype in (np.int64, np.int32)],
    Case("argmax-empty-rows", [node("ArgMax", ["x"], ["y"], axis=1)], [("x", ["n", 3])], [("y", ["n"], np.int64)]),
    *[Case(f"{op}-empty-axis-last{last}", [node(op, ["x"], ["y"], axis=1, select_last_index=last)],
           [("x", [2, "n"])], [("y", [2, 1], np.int64)], dims=({"n": 0}, {"n": 3}))
      for op in ("ArgMax", "ArgMin") for last in (0, 1)],
    Case("cumsum-topk-layernorm", [node("CumSum", ["x", "a"], ["y_cumsum"]),
                                   node("TopK", ["x", "k"], ["y_values", "y_indices"], axis=0),
                                   node("LayerNormalization", ["t", "s", "b"], ["y_norm"], axis=-1)],
         [("x", [2, "n"]), ("t", ["n", 4])],
         [("y_cumsum", [2, "n"]), ("y_values", [1, "n"]), ("y_indices", [1, "n"], np.int64), ("y_norm", ["n", 4])],
         {"a": np.array(1, np.int64), "k": np.array([1], np.int64), "s": np.ones(4, np.float32),
          "b": np.zeros(4, np.float32)}),
    *[Case(f"{op}-empty-spatial", [node(op, ["x"], ["y"])], [("x", [1, 3, "n", 2])], [("y", [1, 3, 1, 1])],
           dims=({"n": 0}, {"n": 2})) for op in ("GlobalAveragePool", "GlobalMaxPool")],
    # matrix products with M, N or K = 0 (K = 0: zeros, then the epilogue: bias and activation)
    Case("matmul-gemm-k0", [node("MatMul", ["x", "z"], ["y_matmul"]),
                            node("Gemm", ["x", "z", "bias"], ["g"], beta=2.0), node("Relu", ["g"], ["y_gemm_relu"])],
         [("x", [2, "n"]), ("z", ["n", 3])], [("y_matmul", [2, 3]), ("y_gemm_relu", [2, 3])],
         {"bias": np.array([-1, 0.5, 1], np.float32)}),
    Case("matmul-mn0-batched-k0", [node("MatMul", ["a", "w"], ["y_m0"]), node("MatMul", ["d", "e"], ["y_n0"]),
                                   node("MatMul", ["f", "g"], ["y_batched_k0"]),
                                   node("Einsum", ["b", "c"], ["y_einsum_k0"], equation="ij,jk->ik")],
         [("a", ["n", 4]), ("b", [2, "n"]), ("c", ["n", 3]), ("d", [2, 4]), ("e", [4, "n"]), ("f", [2, 3, "n"]),
          ("g", [2, "n", 4])],
         [("y_m0", ["n", 3]), ("y_n0", [2, "n"]), ("y_batched_k0", [2, 3, 4]), ("y_einsum_k0", [2, 3])],
         {"w": np.ones((4, 3), np.float32)}, slow=True),
    Case("linear-relu-m0", [node("Gemm", ["x", "w", "c"], ["h"], transB=1), node("Relu", ["h"], ["y"])],
         [("x", ["n", 4])], [("y", ["n", 3])], {"w": np.ones((3, 4), np.float32), "c": np.ones(3, np.float32)},
         slow=True),
    Case("matmul-k0-float64", [node("MatMul", ["x", "z"], ["y"])],
         [("x", [2, "n"], np.float64), ("z", ["n", 3], np.float64)], [("y", [2, 3], np.float64)]),
    Case("static-matmul-k0", [node("MatMul", ["x", "w"], ["y"])], [("x", [2, 0])], [("y", [2, 3])],
         {"w": np.ones((0, 3), np.float32)}, dims=({},)),
    # convolution, pooling, normalization over a batch of 0
    Case("conv", [node("Conv", ["x", "w", "b"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])],
         [("x", ["n", 32, 16, 16])], [("y", ["n", 64, 8, 8])],
         {"w": np.ones((64, 32, 3, 3), np.float32), "b": np.ones(64, np.float32)}),
    Case("conv-depthwise-transpose", [node("Conv", ["x", "dw"], ["d"], group=3), node("Relu", ["d"], ["y_depthwise"]),
                                      node("ConvTranspose", ["x", "tw"], ["y_transpose"], strides=[2, 2])],
         [("x", ["n", 3, 4, 4])], [("y_depthwise", ["n", 3, 2, 2]), ("y_transpose", ["n", 2, 9, 9])],
         {"dw": np.ones((3, 1, 3, 3), np.float32), "tw": np.ones((3, 2, 3, 3), np.float32)}, slow=True),
    Case("pool-norm", [node("MaxPool", ["x"], ["y_max"], kernel_shape=[2, 2], strides=[2, 2]),
                       node("AveragePool", ["x"], ["y_avg"], kernel_shape=[2, 2], strides=[2, 2]),
                       node("GlobalAveragePool", ["x"], ["y_gavg"]), node("GlobalMaxPool", ["x"], ["y_gmax"]),
                       node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y_batch"]),
                       node("InstanceNormalization", ["x", "s", "b"], ["y_instance"]),
                       node("LRN", ["x"], ["y_lrn"], size=3),
                       node("Resize", ["x", "", "scales"], ["y_resize"], mode="linear")],
         [("x", ["n", 3, 4, 4])],
         [("y_max", ["n", 3, 2, 2]), ("y_avg", ["n", 3, 2, 2]), ("y_gavg", ["n", 3, 1, 1]), ("y_gmax", ["n", 3, 1, 1]),
          ("y_batch", ["n", 3, 4, 4]), ("y_instance", ["n", 3, 4, 4]), ("y_lrn", ["n", 3, 4, 4]),
          ("y_resize", ["n", 3, 8, 8])],
         {**{k: np.ones(3, np.float32) for k in "sbmv"}, "scales": np.array([1, 1, 2, 2], np.float32)}, opset=13),
    # data movement
    Case("concat-empty-part", [node("Concat", ["x", "z"], ["y"], axis=1)], [("x", ["n", 0]), ("z", ["n", 3])],
         [("y", ["n", 3])], dims=({"n": 0}, {"n": 2})),
    Case("movement", [node("Concat", ["x", "z"], ["y_concat"], axis=1),
                      node("Slice", ["x", "one", "three", "one"], ["y_slice"]),
                      node("Transpose", ["t"], ["y_transpose"], perm=[2, 0, 1]),
                      node("Reshape", ["x", "shape"], ["r"]), node("Flatten", ["r"], ["y_flatten"]),
                      node("Pad", ["x", "pads", "seven"], ["y_pad"]),
                      node("Tile", ["x", "reps"], ["y_tile"]),
                      node("Expand", ["col", "wide"], ["y_expand"]),
                      node("DepthToSpace", ["image"], ["y_d2s"], blocksize=2),
                      node("Trilu", ["t"], ["y_trilu"]), node("Det", ["square"], ["y_det"])],
         [("x", ["n", 4]), ("z", ["n", 3]), ("t", ["n", 3, 3]), ("col", ["n", 1]), ("image", ["n", 4, 2, 2]),
          ("square", ["n", 2, 2])],
         [("y_concat", ["n", 7]), ("y_slice", ["n", 2]), ("y_transpose", [3, "n", 3]), ("y_flatten", ["n", 4]),
          ("y_pad", ["n", 6]), ("y_tile", ["n", 8]), ("y_expand", ["n", 3]), ("y_d2s", ["n", 1, 4, 4]),
          ("y_trilu", ["n", 3, 3]), ("y_det", ["n"])],
         {"one": np.array([1], np.int64), "three": np.array([3], np.int64), "shape": np.array([0, 2, 2], np.int64),
          "pads": np.array([0, 1, 0, 1], np.int64), "seven": np.float32(7), "reps": np.array([1, 2], np.int64),
          "wide": np.array([1, 3], np.int64)}, opset=14),
    Case("shape-split", [node("Shape", ["x"], ["s"]), node("ConstantOfShape", ["s"], ["y_filled"],
                                                          value=helper.make_tensor("v", 1, [1], [2.0])),
                         node("Split", ["x"], ["y_left", "y_right"], axis=1, num_outputs=2)],
         [("x", ["n", 4])], [("y_filled", ["n", 4]), ("y_left", ["n", 2]), ("y_right", ["n", 2])], opset=18),
    Case("slice-empty-result", [node("Slice", ["x", "s", "e", "a"], ["y"])], [("x", ["n", 4])], [("y", ["n", 0])],
         {"s": np.array([2], np.int64), "e": np.array([2], np.int64), "a": np.array([1], np.int64)},
         dims=({"n": 0}, {"n": 3})),
    Case("static-zero-dims", [node("Relu", ["x"], ["y_relu"]), node("Softmax", ["x"], ["y_softmax"]),
                              node("ReduceSum", ["x", "axes"], ["y_sum"]), node("Transpose", ["x"], ["y_transpose"]),
                              node("TopK", ["x", "zero"], ["y_values", "y_indices"], axis=1)],
         [("x", [2, 0])], [("y_relu", [2, 0]), ("y_softmax", [2, 0]), ("y_sum", [2, 1]), ("y_transpose", [0, 2]),
                           ("y_values", [2, 0]), ("y_indices", [2, 0], np.int64)],
         {"axes": np.array([1], np.int64), "zero": np.array([0], np.int64)}, opset=18, dims=({},)),
    *[Case(f"resize-{mode}-static-empty", [node("Resize", ["x", "", "s"], ["y"], mode=mode)], [("x", [1, 3, 0, 4])],
           [("y", [1, 3, 0, 8])], {"s": np.array([1, 1, 2, 2], np.float32)}, opset=13, dims=({},))
      for mode in ("nearest", "linear")],
    Case("layer-norm-static-empty", [node("LayerNormalization", ["x", "s", "b"], ["y"], axis=1)], [("x", [2, 0])],
         [("y", [2, 0])], {"s": np.ones(0, np.float32), "b": np.zeros(0, np.float32)}, dims=({},)),
    Case("pad-empty-input", [node("Pad", ["x", "p"], ["y"], mode="constant")], [("x", [2, 0])],
         [("y", [4, 2])], {"p": np.array([1, 1, 1, 1], np.int64)}, dims=({},)),
    # indexing with empty indices or empty data
    Case("indexing", [node("Gather", ["table", "i"], ["y_gather"], axis=0),
                      node("Gather", ["x", "cols"], ["y_gather_data"], axis=1),
                      node("GatherElements", ["x", "ij"], ["y_elements"], axis=1),
                      node("GatherND", ["table", "i1"], ["y_nd"]),
                      node("ScatterND", ["table", "i1", "u"], ["y_scatter_nd"]),
                      node("ScatterElements", ["table", "ij", "u"], ["y_scatter_elements"], axis=0)],
         [("table", [4, 3]), ("x", ["n", 3]), ("i", ["n"], np.int64), ("ij", ["n", 3], np.int64),
          ("i1", ["n", 1], np.int64), ("u", ["n", 3])],
         [("y_gather", ["n", 3]), ("y_gather_data", ["n", 2]), ("y_elements", ["n", 3]), ("y_nd", ["n", 3]),
          ("y_scatter_nd", [4, 3]), ("y_scatter_elements", [4, 3])],
         {"cols": np.array([0, 2], np.int64)},
         feeds={"i": _indices(["n"]), "ij": _indices(["n", 3]), "i1": _indices(["n", 1])}, opset=16),
    Case("gather-from-empty-data", [node("Gather", ["x", "i"], ["y"], axis=0)], [("x", ["n", 3])], [("y", [2, 3])],
         {"i": np.array([0, 1], np.int64)}),
]


def _outputs_or_error(run, feeds):
    try:
        return run(feeds)
    except Exception as e:  # noqa: BLE001 (compared with the other runtime's outcome)
        return e


def _run_ours(model_bytes: bytes, feed_sets: list):
    sess = InferenceSession(model_bytes)
    return [_outputs_or_error(lambda f: sess.run(None, f), feeds) for feeds in feed_sets]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else [])
                                  for c in CASES])
def test_zero_size_matches_onnxruntime(case):
    model, feed_sets = case.model(), list(case.feed_sets())
    got = run_forked(lambda: _run_ours(model.SerializeToString(), feed_sets))
    assert not isinstance(got, Exception), f"compiling or loading the model raised {got!r}"
    for feeds, outs in zip(feed_sets, got):
        expected = _outputs_or_error(lambda f: ort_run(model, f), feeds)
        if isinstance(expected, Exception) or isinstance(outs, Exception):
            assert isinstance(outs, PyFlameRTError) and isinstance(expected, Exception), (outs, expected)
            continue
        for g, w in zip(outs, expected):
            assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


def test_cli_run_with_a_dim_of_zero(tmp_path):
    """`pyflame-rt run model.pfm --dim batch=0`: empty outputs, reported as such (the run was killed by
    SIGFPE, and the summary's min / max of an empty output raised)."""
    model = make_model([node("Relu", ["x"], ["r"]), node("MatMul", ["r", "w"], ["h"]), node("Softmax", ["h"], ["y"])],
                       [("x", ["batch", 4])], [("y", ["batch", 3])], {"w": np.ones((4, 3), np.float32)})
    onnx_path, pfm = tmp_path / "m.onnx", tmp_path / "m.pfm"
    onnx_path.write_bytes(model.SerializeToString())
    assert cli("compile", str(onnx_path), "-o", str(pfm), "-q").returncode == 0
    r = cli("run", str(pfm), "--dim", "batch=0", "--save-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "output y: shape [0, 3] float32" in r.stdout and "empty" in r.stdout
    assert np.load(tmp_path / "y.npy").shape == (0, 3)


def test_empty_extents_with_no_results_run():
    """An empty axis or spatial extent fails a run only when there are results to compute: with a batch
    of 0 too, ArgMin and GlobalMaxPool return empty outputs, as onnxruntime's (found by the fuzzer)."""
    model = make_model([node("ArgMin", ["x"], ["a"], axis=2), node("GlobalMaxPool", ["x"], ["g"])],
                       [("x", ["n", 1, "n", 4])], [("a", ["n", 1, 1, 4], np.int64), ("g", ["n", 1, 1, 1])])
    feeds = {"x": np.zeros((0, 1, 0, 4), np.float32)}
    got = run_forked(lambda: _run_ours(model.SerializeToString(), [feeds]))[0]
    assert not isinstance(got, Exception), got
    assert [g.shape for g in got] == [e.shape for e in ort_run(model, feeds)] == [(0, 1, 1, 4), (0, 1, 1, 1)]


def test_pools_allow_only_an_empty_batch():
    """onnxruntime's pools refuse an input with an empty channel or spatial dim unless the batch is 0
    (we returned an empty output; found by the fuzzer)."""
    model = make_model([node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2]), node("GlobalAveragePool", ["x"], ["g"])],
                       [("x", ["n", "c", 3, 4])], [("y", ["n", "c", 2, 3]), ("g", ["n", "c", 1, 1])])
    feeds = [{"x": np.zeros((2, 0, 3, 4), np.float32)}, {"x": np.zeros((0, 0, 3, 4), np.float32)}]
    got = run_forked(lambda: _run_ours(model.SerializeToString(), feeds))
    assert isinstance(got[0], ShapeMismatchError) and "only the batch may be 0" in str(got[0]), got[0]
    assert [g.shape for g in got[1]] == [e.shape for e in ort_run(model, feeds[1])]


def test_empty_reduction_without_a_result_names_the_op_and_shape():
    """ArgMax over an empty axis fails the run like onnxruntime's, with a ShapeMismatchError naming the op,
    the axis and the shape, before the kernel reads the empty input (it used to read its element 0)."""
    model = make_model([node("ArgMax", ["x"], ["y"], axis=1)], [("x", [2, "n"])], [("y", [2, 1], np.int64)])
    got = run_forked(lambda: _run_ours(model.SerializeToString(), [{"x": np.zeros((2, 0), np.float32)}]))
    assert isinstance(got[0], ShapeMismatchError), got
    assert "ArgMax along axis 1 of an input of shape [2, n]: the axis is empty" in str(got[0])
