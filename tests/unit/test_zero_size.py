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
from pyflame_rt import InferenceSession
from pyflame_rt.errors import PyFlameRTError

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
    feeds: dict = field(default_factory=dict)  # fixed feeds (e.g. indices) by input name

    def model(self):
        return make_model(self.nodes, self.inputs, self.outputs, self.initializers, opset=self.opset)

    def feed_sets(self):
        rng = np.random.default_rng(0)
        for dims in self.dims:
            feeds = {}
            for name, shape, *dtype in self.inputs:
                if name in self.feeds:
                    feeds[name] = self.feeds[name](dims) if callable(self.feeds[name]) else self.feeds[name]
                    continue
                concrete = [dims[d] if isinstance(d, str) else d for d in shape]
                dt = np.dtype(dtype[0]) if dtype else np.dtype(np.float32)
                feeds[name] = (rng.integers(-5, 5, concrete) if dt.kind in "iu" else
                               rng.standard_normal(concrete)).astype(dt)
            yield feeds


def node(op, ins, outs, **attrs):
    return helper.make_node(op, ins, outs, **attrs)


def unary(op, **attrs):
    return Case(f"{op.lower()}", [node(op, ["x"], ["y"], **attrs)], [("x", [2, "n"])], [("y", [2, "n"])])


def reduce(op, axes, keepdims, shape, out_shape, dims=({"n": 0},)):
    return Case(f"{op}-axes{axes}-keep{keepdims}-{shape}", [node(op, ["x", "axes"], ["y"], keepdims=keepdims)],
                [("x", shape)], [("y", out_shape)], {"axes": np.array(axes, np.int64)}, opset=18, dims=dims)


REDUCE_OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]

CASES = [
    # elementwise and unary
    *[unary(op) for op in ("Relu", "Exp", "Sigmoid", "Tanh", "Neg", "Sqrt", "Erf")],
    Case("add-broadcast", [node("Add", ["x", "b"], ["y"])], [("x", ["n", 3])], [("y", ["n", 3])],
         {"b": np.ones(3, np.float32)}),
    Case("mul-two-dynamic", [node("Mul", ["x", "z"], ["y"])], [("x", [2, "n"]), ("z", [1, "n"])],
         [("y", [2, "n"])]),
    Case("where", [node("Greater", ["x", "z"], ["c"]), node("Where", ["c", "x", "z"], ["y"])],
         [("x", ["n", 3]), ("z", ["n", 3])], [("y", ["n", 3])]),
    Case("cast-clip", [node("Clip", ["x", "lo", "hi"], ["c"]), node("Cast", ["c"], ["y"], to=7)],
         [("x", ["n", 3])], [("y", ["n", 3], np.int64)],
         {"lo": np.float32(-1), "hi": np.float32(1)}),
    Case("gemm-relu-chain", [node("MatMul", ["x", "w"], ["m"]), node("Add", ["m", "b"], ["a"]),
                             node("Relu", ["a"], ["y"])],
         [("x", ["n", 4])], [("y", ["n", 3])], {"w": np.ones((4, 3), np.float32), "b": np.ones(3, np.float32)}),
    # softmax family, reductions, row kernels
    *[Case(f"{op}-{axis}", [node(op, ["x"], ["y"], axis=axis)], [("x", [2, "n"])], [("y", [2, "n"])])
      for op in ("Softmax", "LogSoftmax") for axis in (-1, 0)],
    *[reduce(op, [1], 1, [2, "n"], [2, 1]) for op in REDUCE_OPS],
    *[reduce(op, [1], 0, ["n", 3], ["n"]) for op in REDUCE_OPS],
    *[reduce(op, [0, 2], 0, [2, "n", 3], ["n"]) for op in ("ReduceSum", "ReduceMean")],
    *[reduce(op, [0, 2], 1, ["n", 2, 3], [1, 2, 1]) for op in REDUCE_OPS],
    Case("argmax-empty-rows", [node("ArgMax", ["x"], ["y"], axis=1)], [("x", ["n", 3])], [("y", ["n"], np.int64)]),
    Case("argmax-empty-axis", [node("ArgMax", ["x"], ["y"], axis=1)], [("x", [2, "n"])], [("y", [2, 1], np.int64)]),
    Case("cumsum", [node("CumSum", ["x", "a"], ["y"])], [("x", [2, "n"])], [("y", [2, "n"])],
         {"a": np.array(1, np.int64)}),
    Case("topk", [node("TopK", ["x", "k"], ["v", "i"], axis=1)], [("x", ["n", 5])],
         [("v", ["n", 2]), ("i", ["n", 2], np.int64)], {"k": np.array([2], np.int64)}),
    Case("layer-norm", [node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1)], [("x", ["n", 4])],
         [("y", ["n", 4])], {"s": np.ones(4, np.float32), "b": np.zeros(4, np.float32)}),
    # matrix products
    Case("matmul-m0", [node("MatMul", ["x", "w"], ["y"])], [("x", ["n", 4])], [("y", ["n", 3])],
         {"w": np.ones((4, 3), np.float32)}),
    Case("matmul-k0", [node("MatMul", ["x", "z"], ["y"])], [("x", [2, "n"]), ("z", ["n", 3])], [("y", [2, 3])]),
    Case("matmul-n0", [node("MatMul", ["x", "z"], ["y"])], [("x", [2, 4]), ("z", [4, "n"])], [("y", [2, "n"])]),
    Case("matmul-batched-k0", [node("MatMul", ["x", "z"], ["y"])], [("x", [2, 3, "n"]), ("z", [2, "n", 4])],
         [("y", [2, 3, 4])]),
    Case("gemm-k0-bias", [node("Gemm", ["x", "z", "c"], ["y"], beta=2.0)], [("x", [2, "n"]), ("z", ["n", 3])],
         [("y", [2, 3])], {"c": np.arange(3, dtype=np.float32)}),
    Case("gemm-m0", [node("Gemm", ["x", "w", "c"], ["y"], transB=1)], [("x", ["n", 4])], [("y", ["n", 3])],
         {"w": np.ones((3, 4), np.float32), "c": np.ones(3, np.float32)}),
    Case("static-matmul-k0", [node("MatMul", ["x", "w"], ["y"])], [("x", [2, 0])], [("y", [2, 3])],
         {"w": np.ones((0, 3), np.float32)}, dims=({},)),
    Case("einsum-k0", [node("Einsum", ["x", "z"], ["y"], equation="ij,jk->ik")],
         [("x", [2, "n"]), ("z", ["n", 3])], [("y", [2, 3])], opset=12),
    # convolution, pooling, normalisation over a batch of 0
    Case("conv", [node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])], [("x", ["n", 3, 5, 5])],
         [("y", ["n", 4, 5, 5])], {"w": np.ones((4, 3, 3, 3), np.float32), "b": np.ones(4, np.float32)}),
    Case("conv-depthwise-relu", [node("Conv", ["x", "w"], ["c"], group=3), node("Relu", ["c"], ["y"])],
         [("x", ["n", 3, 5, 5])], [("y", ["n", 3, 3, 3])], {"w": np.ones((3, 1, 3, 3), np.float32)}),
    Case("conv-transpose", [node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2])], [("x", ["n", 3, 4, 4])],
         [("y", ["n", 2, 9, 9])], {"w": np.ones((3, 2, 3, 3), np.float32)}),
    *[Case(op, [node(op, ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2])], [("x", ["n", 3, 4, 4])],
           [("y", ["n", 3, 2, 2])]) for op in ("MaxPool", "AveragePool")],
    *[Case(op, [node(op, ["x"], ["y"])], [("x", ["n", 3, 4, 4])], [("y", ["n", 3, 1, 1])])
      for op in ("GlobalAveragePool", "GlobalMaxPool")],
    Case("batch-norm", [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])], [("x", ["n", 3, 4, 4])],
         [("y", ["n", 3, 4, 4])], {k: np.ones(3, np.float32) for k in "sbmv"}),
    Case("instance-norm", [node("InstanceNormalization", ["x", "s", "b"], ["y"])], [("x", ["n", 3, 4, 4])],
         [("y", ["n", 3, 4, 4])], {k: np.ones(3, np.float32) for k in "sb"}),
    Case("lrn", [node("LRN", ["x"], ["y"], size=3)], [("x", ["n", 3, 4, 4])], [("y", ["n", 3, 4, 4])]),
    Case("resize", [node("Resize", ["x", "", "s"], ["y"], mode="linear")], [("x", ["n", 3, 4, 4])],
         [("y", ["n", 3, 8, 8])], {"s": np.array([1, 1, 2, 2], np.float32)}, opset=13),
    # data movement
    Case("concat-empty-part", [node("Concat", ["x", "z"], ["y"], axis=1)], [("x", ["n", 0]), ("z", ["n", 3])],
         [("y", ["n", 3])], dims=({"n": 0}, {"n": 2})),
    Case("concat-empty-rows", [node("Concat", ["x", "z"], ["y"], axis=1)], [("x", ["n", 2]), ("z", ["n", 3])],
         [("y", ["n", 5])]),
    Case("slice-empty-result", [node("Slice", ["x", "s", "e", "a"], ["y"])], [("x", ["n", 4])], [("y", ["n", 0])],
         {"s": np.array([2], np.int64), "e": np.array([2], np.int64), "a": np.array([1], np.int64)},
         dims=({"n": 0}, {"n": 3})),
    Case("slice-of-empty", [node("Slice", ["x", "s", "e", "a"], ["y"])], [("x", ["n", 4])], [("y", ["n", 2])],
         {"s": np.array([1], np.int64), "e": np.array([3], np.int64), "a": np.array([1], np.int64)}),
    Case("transpose", [node("Transpose", ["x"], ["y"], perm=[2, 0, 1])], [("x", ["n", 3, 4])],
         [("y", [4, "n", 3])]),
    Case("reshape-flatten", [node("Reshape", ["x", "s"], ["r"]), node("Flatten", ["r"], ["f"]),
                             node("Relu", ["f"], ["y"])],
         [("x", ["n", 6])], [("y", ["n", 6])], {"s": np.array([0, 2, 3], np.int64)}),
    Case("pad-empty-input", [node("Pad", ["x", "p"], ["y"], mode="constant")], [("x", [2, 0])],
         [("y", [4, 2])], {"p": np.array([1, 1, 1, 1], np.int64)}, dims=({},)),
    Case("pad-empty-batch", [node("Pad", ["x", "p", "v"], ["y"])], [("x", ["n", 3])],
         [("y", ["n", 5])], {"p": np.array([0, 1, 0, 1], np.int64), "v": np.float32(7)}),
    Case("tile", [node("Tile", ["x", "r"], ["y"])], [("x", ["n", 3])], [("y", ["n", 6])],
         {"r": np.array([2, 2], np.int64)}),
    Case("expand", [node("Expand", ["x", "s"], ["y"])], [("x", ["n", 1])], [("y", ["n", 3])],
         {"s": np.array([1, 3], np.int64)}),
    Case("depth-to-space", [node("DepthToSpace", ["x"], ["y"], blocksize=2)], [("x", ["n", 4, 2, 2])],
         [("y", ["n", 1, 4, 4])], opset=13),
    Case("trilu", [node("Trilu", ["x"], ["y"])], [("x", ["n", 3, 3])], [("y", ["n", 3, 3])], opset=14),
    Case("det", [node("Det", ["x"], ["y"])], [("x", ["n", 2, 2])], [("y", ["n"])]),
    # indexing
    Case("gather-empty-indices", [node("Gather", ["x", "i"], ["y"], axis=0)], [("x", [5, 3]), ("i", ["n"], np.int64)],
         [("y", ["n", 3])], feeds={"i": lambda d: np.zeros(d["n"], np.int64)}),
    Case("gather-empty-data", [node("Gather", ["x", "i"], ["y"], axis=1)], [("x", ["n", 3])],
         [("y", ["n", 2])], {"i": np.array([0, 2], np.int64)}),
    Case("gather-elements", [node("GatherElements", ["x", "i"], ["y"], axis=1)],
         [("x", ["n", 3]), ("i", ["n", 2], np.int64)], [("y", ["n", 2])],
         feeds={"i": lambda d: np.zeros((d["n"], 2), np.int64)}),
    Case("gather-nd", [node("GatherND", ["x", "i"], ["y"])], [("x", [4, 3]), ("i", ["n", 1], np.int64)],
         [("y", ["n", 3])], feeds={"i": lambda d: np.zeros((d["n"], 1), np.int64)}),
    Case("scatter-nd-no-updates", [node("ScatterND", ["x", "i", "u"], ["y"])],
         [("x", [4, 3]), ("i", ["n", 1], np.int64), ("u", ["n", 3])], [("y", [4, 3])],
         feeds={"i": lambda d: np.zeros((d["n"], 1), np.int64)}),
    Case("scatter-elements-no-updates", [node("ScatterElements", ["x", "i", "u"], ["y"], axis=0)],
         [("x", [4, 3]), ("i", ["n", 3], np.int64), ("u", ["n", 3])], [("y", [4, 3])],
         feeds={"i": lambda d: np.zeros((d["n"], 3), np.int64)}),
]


def _outputs_or_error(run, feeds):
    try:
        return run(feeds)
    except Exception as e:  # noqa: BLE001 (compared with the other runtime's outcome)
        return e


def _run_ours(model_bytes: bytes, feed_sets: list):
    sess = InferenceSession(model_bytes)
    return [_outputs_or_error(lambda f: sess.run(None, f), feeds) for feeds in feed_sets]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
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
