"""Unary math (trigonometric, hyperbolic, Sign, Round, IsInf, IsNaN, Softsign, Celu, Mish, Shrink,
ThresholdedRelu) and the bitwise operators compiled to native code, vs numpy in float64 (accuracy of
the vectorized approximations) and onnxruntime (semantics, edge values)."""
import numpy as np
import pytest
from onnx import helper

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession

# op -> (numpy reference, input range): ranges cover reduction boundaries and the branch points
TRIG = {
    "Sin": (np.sin, (-60.0, 60.0)), "Cos": (np.cos, (-60.0, 60.0)), "Tan": (np.tan, (-1.5, 1.5)),
    "Asin": (np.arcsin, (-1.0, 1.0)), "Acos": (np.arccos, (-1.0, 1.0)), "Atan": (np.arctan, (-30.0, 30.0)),
    "Sinh": (np.sinh, (-9.0, 9.0)), "Cosh": (np.cosh, (-9.0, 9.0)), "Asinh": (np.arcsinh, (-3000.0, 3000.0)),
    "Acosh": (np.arccosh, (1.0, 3000.0)), "Atanh": (np.arctanh, (-0.999, 0.999)),
}
N = 4099  # not a multiple of the vector width: the scalar tail runs too


def _run(model, feeds):
    return InferenceSession(model.SerializeToString()).run(None, feeds)


def test_trig_and_hyperbolic_are_accurate_in_float32(rng):
    feeds, nodes = {}, []
    for op, (_, (lo, hi)) in TRIG.items():
        x = rng.uniform(lo, hi, N).astype(np.float32)
        x[:5] = [lo, hi, min(max(0.0, lo), hi), (lo + hi) / 2, min(max(0.5, lo), hi)]
        feeds[f"x_{op}"] = x
        nodes.append(helper.make_node(op, [f"x_{op}"], [op]))
    model = make_model(nodes, [(k, [N]) for k in feeds], [(op, [N]) for op in TRIG], opset=17)
    for op, got in zip(TRIG, _run(model, feeds)):
        want = TRIG[op][0](feeds[f"x_{op}"].astype(np.float64))
        err = np.abs(got - want) / np.maximum(np.abs(want), 1e-3)  # absolute near the zeros
        assert err.max() < 2e-6, f"{op}: max error {err.max():.3g} at x = {feeds[f'x_{op}'][err.argmax()]}"


def test_trig_special_values_match_numpy():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1.5, -1.5], np.float32)
    ops = list(TRIG)
    model = make_model([helper.make_node(op, ["x"], [op]) for op in ops], [("x", [9])], [(op, [9]) for op in ops],
                       opset=17)
    for op, got in zip(ops, _run(model, {"x": x})):
        with np.errstate(all="ignore"):
            want = TRIG[op][0](x)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=op)
        finite = ~np.isnan(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=2e-6, atol=1e-7, err_msg=op)


def test_sign_round_isnan_isinf_edge_values_match_onnxruntime():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 3.7, -3.7, 0.0, -0.0, np.inf, -np.inf, np.nan,
                  1e30, -7.0, 2.0], np.float32)
    ints = np.array([-5, 0, 3, -2147483648, 2147483647, 1, -1, 0, 9, -9, 4, 2, 7, -7, 5, 6, 0], np.int32)
    nodes = [helper.make_node("Round", ["x"], ["round"]), helper.make_node("Sign", ["x"], ["sign"]),
             helper.make_node("Sign", ["i"], ["isign"]), helper.make_node("IsNaN", ["x"], ["isnan"]),
             helper.make_node("IsInf", ["x"], ["isinf"]),
             helper.make_node("IsInf", ["x"], ["ispos"], detect_negative=0),
             helper.make_node("IsInf", ["x"], ["isneg"], detect_positive=0)]
    n = len(x)
    outputs = [("round", [n]), ("sign", [n]), ("isign", [n], np.int32)] + [
        (name, [n], np.bool_) for name in ("isnan", "isinf", "ispos", "isneg")]
    model = make_model(nodes, [("x", [n]), ("i", [n], np.int32)], outputs, opset=20)
    feeds = {"x": x, "i": ints}
    for (name, *_), got, want in zip(outputs, _run(model, feeds), ort_run(model, feeds)):
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    np.testing.assert_array_equal(_run(model, feeds)[0][:6], [0, 2, 2, -0, -2, -2])  # half to even


def test_activations_match_onnxruntime(rng):
    x = np.concatenate([rng.uniform(-8, 8, 1000), [0.0, 0.5, -0.5, 1.0, -1.0, 30.0, -30.0, 2.0]]).astype(np.float32)
    n = len(x)
    nodes = [helper.make_node("Softsign", ["x"], ["softsign"]), helper.make_node("Mish", ["x"], ["mish"]),
             helper.make_node("Celu", ["x"], ["celu"], alpha=2.0), helper.make_node("Celu", ["x"], ["celu1"]),
             helper.make_node("Shrink", ["x"], ["shrink"], lambd=1.0, bias=0.5),
             helper.make_node("Shrink", ["x"], ["hard"]),
             helper.make_node("ThresholdedRelu", ["x"], ["trelu"], alpha=2.0)]
    names = [nd.output[0] for nd in nodes]
    model = make_model(nodes, [("x", [n])], [(nm, [n]) for nm in names], opset=18)
    for name, got, want in zip(names, _run(model, {"x": x}), ort_run(model, {"x": x})):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-7, err_msg=name)


INT_TYPES = [np.int8, np.uint8, np.int16, np.int32, np.int64]


@pytest.mark.parametrize("dtype", INT_TYPES)
def test_bitwise_ops_match_numpy(dtype, rng):
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, (3, 11), endpoint=True).astype(dtype)
    y = rng.integers(info.min, info.max, 11, endpoint=True).astype(dtype)
    ops = {"BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or, "BitwiseXor": np.bitwise_xor}
    nodes = [helper.make_node(op, ["x", "y"], [op]) for op in ops] + [helper.make_node("BitwiseNot", ["x"], ["not"])]
    model = make_model(nodes, [("x", [3, 11], dtype), ("y", [11], dtype)],
                       [(op, [3, 11], dtype) for op in [*ops, "not"]], opset=18)
    got = _run(model, {"x": x, "y": y})
    for (op, fn), g in zip(ops.items(), got):
        np.testing.assert_array_equal(g, fn(x, y), err_msg=op)
    np.testing.assert_array_equal(got[-1], np.invert(x))


@pytest.mark.parametrize("dtype", INT_TYPES)
def test_bit_shift_in_and_out_of_range_amounts(dtype):
    bits = np.dtype(dtype).itemsize * 8
    signed = np.issubdtype(dtype, np.signedinteger)
    x = np.array([1, 5, 0x40, 3, 1, 7, 1, 9] + ([-8, -1, -8, -8] if signed else [200, 255, 128, 6]), dtype)
    y = np.array([0, 1, 2, bits - 1, bits, bits + 3, 3, 2] + ([1, 3, -1, bits] if signed else [1, 3, bits, 2]),
                 dtype)
    model = make_model([helper.make_node("BitShift", ["x", "y"], ["l"], direction="LEFT"),
                        helper.make_node("BitShift", ["x", "y"], ["r"], direction="RIGHT")],
                       [("x", [12], dtype), ("y", [12], dtype)], [("l", [12], dtype), ("r", [12], dtype)], opset=11)
    left, right = _run(model, {"x": x, "y": y})
    ok = (y >= 0) & (y < bits)
    safe = np.where(ok, y, 0).astype(dtype)
    np.testing.assert_array_equal(left, np.where(ok, x << safe, 0).astype(dtype))
    np.testing.assert_array_equal(right, np.where(ok, x >> safe, np.where(x < 0, -1, 0)).astype(dtype))
    if dtype == np.uint8:  # onnxruntime's BitShift takes unsigned types
        want_l, want_r = ort_run(model, {"x": x, "y": y})
        np.testing.assert_array_equal(left[ok], want_l[ok])
        np.testing.assert_array_equal(right[ok], want_r[ok])
