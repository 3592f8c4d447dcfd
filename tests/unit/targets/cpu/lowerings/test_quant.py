"""Quantized convolutions by the requantizing integer GEMM reading the input as its im2col rows
(lowerings/quant.py), on each dot-product path the host runs, against onnxruntime's QLinearConv."""
import numpy as np
import pytest
from onnx import helper

from conftest import kernels_run, make_model, ort_run
from pyflame_rt import InferenceSession, OptLevel, SessionOptions
from pyflame_rt.targets.cpu.kernels.gemm_int8 import Int8GemmSpec
from pyflame_rt.targets.cpu.target import CPUTarget


def _qlinear_conv(rng, c: int, m: int, kernel: int, per_channel: bool, bias: bool, group: int = 1,
                  signed: bool = False, **attrs):
    """uint8 activations, or int8 ones (`signed`)."""
    w = rng.integers(-127, 128, (m, c // group, kernel, kernel)).astype(np.int8)
    ws = (rng.random(m if per_channel else 1) * 0.01 + 0.002).astype(np.float32).reshape(-1 if per_channel else ())
    act, shift = (np.int8, 128) if signed else (np.uint8, 0)
    inits = {"xs": np.array(0.03, np.float32), "xz": np.array(118 - shift, act), "w": w, "ws": ws,
             "wz": np.zeros(ws.shape, np.int8), "ys": np.array(0.4, np.float32), "yz": np.array(125 - shift, act)}
    inputs = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    if bias:
        inits["b"] = rng.integers(-3000, 3000, m).astype(np.int32)
        inputs.append("b")
    node = helper.make_node("QLinearConv", inputs, ["y"], group=group, **attrs)
    return make_model([node], [("x", ["N", c, 9, 10], act)], [("y", ["N", m, "H", "W"], act)], inits)


def _activations(rng, shape, signed: bool = False) -> np.ndarray:
    return rng.integers(-128, 128, shape).astype(np.int8) if signed else rng.integers(0, 256, shape).astype(np.uint8)


@pytest.mark.parametrize("cpu, opt_level", [("host", OptLevel.EXTENDED), ("x86-64-v3", OptLevel.EXTENDED),
                                            ("host", OptLevel.BASIC)], ids=["host", "x86-64-v3", "host-nchw"])
@pytest.mark.parametrize("case", [
    dict(c=3, m=20, kernel=3, per_channel=True, bias=True, pads=[1, 1, 1, 1]),  # C = 3: padded to 4
    dict(c=8, m=5, kernel=3, per_channel=False, bias=False, strides=[2, 2], dilations=[1, 2], pads=[0, 2, 1, 0]),
    dict(c=16, m=33, kernel=1, per_channel=True, bias=True),
    dict(c=6, m=9, kernel=1, per_channel=False, bias=True, strides=[2, 2]),  # C = 6: padded to 8
    dict(c=3, m=20, kernel=3, per_channel=True, bias=True, pads=[1, 1, 1, 1], signed=True),  # int8 x, y
], ids=["pad-bias-per-channel", "stride-dilation-per-tensor", "pointwise", "pointwise-stride", "int8-activations"])
def test_qlinear_conv_matches_onnxruntime_within_one_step(cpu, opt_level, case, rng):
    """NHWC (optimize-layout, from EXTENDED on: the transposes at the graph's ends) and NCHW (BASIC);
    two images: row tiles across the images' boundary. A pointwise stride-1 convolution runs the
    plain GEMM, the others its convolution variant."""
    conv = case["kernel"] > 1 or "strides" in case
    spec = Int8GemmSpec.for_features(CPUTarget.named(cpu).features, requant=True, signed_a=case.get("signed", False),
                                     conv=conv)
    if spec is None:
        pytest.skip(f"{cpu} has no integer dot product")
    model = _qlinear_conv(rng, **case)
    sess = InferenceSession(model.SerializeToString(),
                            SessionOptions(enable_profiling=True, cpu=cpu, optimization_level=opt_level))
    for n in (1, 2):
        x = _activations(rng, (n, case["c"], 9, 10), case.get("signed", False))
        ours, ref = sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0]
        assert ours.shape == ref.shape and np.abs(ours.astype(np.int32) - ref).max() <= 1
    assert spec.name in kernels_run(sess, {"x": x})


@pytest.mark.slow  # compiles the float32 window kernels
def test_grouped_conv_is_expanded(rng):
    """Two groups: no integer kernel yet, the float32 expansion (also within one step)."""
    model = _qlinear_conv(rng, c=4, m=4, kernel=3, per_channel=False, bias=False, group=2)
    sess = InferenceSession(model.SerializeToString(), SessionOptions(enable_profiling=True))
    x = rng.integers(0, 256, (1, 4, 9, 10)).astype(np.uint8)
    ours, ref = sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0]
    assert np.abs(ours.astype(np.int32) - ref).max() <= 1
    assert not any(k.startswith("gemm_u8s8") for k in kernels_run(sess, {"x": x}))


@pytest.mark.parametrize("opt_level", ["NONE", "EXTENDED"], ids=["nchw", "nhwc"])
def test_checked_build_has_no_violation(opt_level, rng):
    """Every access of the padding, GEMM and transpose copies is inside its buffer (the GEMM reads the
    padded input's windows in place, C = 3 padded to 4)."""
    from pyflame_rt.compiler import compile_model
    from pyflame_rt.executable import Executable
    from pyflame_rt.options import CompileOptions

    if Int8GemmSpec.for_features(CPUTarget.host().features, requant=True) is None:
        pytest.skip("the host has no integer dot product")
    model = _qlinear_conv(rng, c=3, m=20, kernel=3, per_channel=True, bias=True, pads=[1, 1, 1, 1], strides=[2, 1])
    exe = Executable(compile_model(model, CompileOptions(checked=True, opt_level=OptLevel[opt_level])))
    x = rng.integers(0, 256, (2, 3, 9, 10)).astype(np.uint8)
    assert np.abs(exe.run([x])[0].astype(np.int32) - ort_run(model, {"x": x})[0]).max() <= 1


@pytest.mark.parametrize("signed", [False, True], ids=["uint8", "int8"])
def test_qlinear_add_runs_one_requantizing_pass(signed, rng):
    """com.microsoft QLinearAdd of one shape (630 elements: a masked last vector), within one
    step of onnxruntime."""
    act, shift = (np.int8, 128) if signed else (np.uint8, 0)
    inits = {"as": np.array(0.03, np.float32), "az": np.array(118 - shift, act),
             "bs": np.array(0.05, np.float32), "bz": np.array(3 - shift, act),
             "ys": np.array(0.07, np.float32), "yz": np.array(140 - shift, act)}
    node = helper.make_node("QLinearAdd", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"], domain="com.microsoft")
    model = make_model([node], [("a", [2, 5, 7, 9], act), ("b", [2, 5, 7, 9], act)], [("y", [2, 5, 7, 9], act)], inits)
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    sess = InferenceSession(model.SerializeToString(), SessionOptions(enable_profiling=True))
    feeds = {k: _activations(rng, (2, 5, 7, 9), signed) for k in "ab"}
    ours, ref = sess.run(None, feeds)[0], ort_run(model, feeds)[0]
    assert ours.dtype == ref.dtype and np.abs(ours.astype(np.int32) - ref).max() <= 1
    assert any(k.startswith("quant_add_") for k in kernels_run(sess, feeds))
