"""int16 and bfloat16 tensors, Mod and integer Pow compiled to native code vs onnxruntime (and numpy
where onnxruntime has no kernel): int16 runs through the same typed elementwise kernels as the other
integer widths, bfloat16 is stored as its 16 bits and computed in float32 (rounded to nearest even)."""
import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper

from conftest import make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.errors import InputError

BF16 = np.dtype(ml_dtypes.bfloat16)


def _run(model, feeds):
    return InferenceSession(model.SerializeToString()).run(None, feeds)


def test_int16_arithmetic_and_compares_match_onnxruntime(rng):
    ops = ["Add", "Sub", "Mul", "Div", "Equal", "Less", "GreaterOrEqual"]
    nodes = [helper.make_node(op, ["x", "y"], [op]) for op in ops]
    nodes.append(helper.make_node("Cast", ["x"], ["to_f32"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("Cast", ["f"], ["from_f32"], to=TensorProto.INT16))
    outputs = [(op, [3, 17], np.bool_ if op in ("Equal", "Less", "GreaterOrEqual") else np.int16) for op in ops]
    outputs += [("to_f32", [3, 17], np.float32), ("from_f32", [3, 17], np.int16)]
    model = make_model(nodes, [("x", [3, 17], np.int16), ("y", [17], np.int16), ("f", [3, 17], np.float32)],
                       outputs, opset=17)
    feeds = {"x": rng.integers(-30000, 30000, (3, 17)).astype(np.int16),
             "y": rng.integers(-200, 200, (17,)).astype(np.int16),
             "f": rng.uniform(-32768, 32767, (3, 17)).astype(np.float32)}  # out of range is undefined
    feeds["y"][feeds["y"] == 0] = 7
    for (name, _, _), got, want in zip(outputs, _run(model, feeds), ort_run(model, feeds)):
        assert got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)


def test_int16_max_min_match_numpy(rng):  # onnxruntime has no int16 Max / Min kernels
    x, y = rng.integers(-30000, 30000, (2, 3, 9)).astype(np.int16), rng.integers(-30000, 30000, 9).astype(np.int16)
    model = make_model([helper.make_node("Max", ["x", "y"], ["max"]), helper.make_node("Min", ["x", "y"], ["min"])],
                       [("x", [2, 3, 9], np.int16), ("y", [9], np.int16)],
                       [("max", [2, 3, 9], np.int16), ("min", [2, 3, 9], np.int16)], opset=13)
    got_max, got_min = _run(model, {"x": x, "y": y})
    np.testing.assert_array_equal(got_max, np.maximum(x, y))
    np.testing.assert_array_equal(got_min, np.minimum(x, y))


def test_bfloat16_casts_round_to_nearest_even_and_keep_specials():
    # float32 values at and around bfloat16 ties, plus specials
    base = np.array([1.0, 1.00390625, 1.01171875, -2.5, 3.0e38, 1e-40, 0.0, -0.0, np.inf, -np.inf, np.nan],
                    np.float32)
    bits = base.view(np.uint32)
    x = np.concatenate([base, (bits + 0x8000).view(np.float32), (bits + 0x7FFF).view(np.float32)])
    x[np.isnan(base).nonzero()[0] + len(base)] = np.nan
    n = len(x)
    nodes = [helper.make_node("Cast", ["x"], ["bf"], to=TensorProto.BFLOAT16),
             helper.make_node("Cast", ["bf"], ["back"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["bf"], ["as_int"], to=TensorProto.INT32)]
    model = make_model(nodes, [("x", [n], np.float32)],
                       [("bf", [n], BF16), ("back", [n], np.float32), ("as_int", [n], np.int32)], opset=17)
    bf, back, as_int = _run(model, {"x": x})
    want = x.astype(BF16)  # ml_dtypes: round to nearest even
    assert bf.dtype == BF16
    np.testing.assert_array_equal(bf.view(np.uint16)[~np.isnan(x)], want.view(np.uint16)[~np.isnan(x)])
    assert np.isnan(back[np.isnan(x)]).all()
    np.testing.assert_array_equal(back, want.astype(np.float32))
    in_range = np.abs(x) < 2.0 ** 31  # int32 casts out of range are undefined
    np.testing.assert_array_equal(as_int[in_range], want.astype(np.float32)[in_range].astype(np.int32))


def test_bfloat16_arithmetic_and_einsum_compute_in_float32(rng):
    a = rng.standard_normal((2, 3, 4)).astype(BF16)
    b = rng.standard_normal((2, 4, 5)).astype(BF16)
    nodes = [helper.make_node("Add", ["a", "a"], ["sum"]),
             helper.make_node("Einsum", ["a", "b"], ["prod"], equation="bij,bjk->bik")]
    model = make_model(nodes, [("a", [2, 3, 4], BF16), ("b", [2, 4, 5], BF16)],
                       [("sum", [2, 3, 4], BF16), ("prod", [2, 3, 5], BF16)], opset=17)
    total, prod = _run(model, {"a": a, "b": b})
    np.testing.assert_array_equal(total, (a.astype(np.float32) * 2).astype(BF16))
    want = np.einsum("bij,bjk->bik", a.astype(np.float32), b.astype(np.float32))
    np.testing.assert_allclose(prod.astype(np.float32), want, rtol=1e-2, atol=1e-2)


def test_float64_einsum_contractions_match_numpy(rng):
    a = rng.standard_normal((3, 5, 7))
    b = rng.standard_normal((3, 7, 2))
    v = rng.standard_normal(7)
    nodes = [helper.make_node("Einsum", ["a", "b"], ["bmm"], equation="bij,bjk->bki"),
             helper.make_node("Einsum", ["v", "v"], ["dot"], equation="i,i")]
    model = make_model(nodes, [("a", [3, 5, 7], np.float64), ("b", [3, 7, 2], np.float64), ("v", [7], np.float64)],
                       [("bmm", [3, 2, 5], np.float64), ("dot", [], np.float64)], opset=17)
    bmm, dot = _run(model, {"a": a, "b": b, "v": v})
    np.testing.assert_allclose(bmm, np.einsum("bij,bjk->bki", a, b), rtol=1e-12)
    np.testing.assert_allclose(dot, v @ v, rtol=1e-12)


MOD_X = [-7, 7, -8, 8, 5, -5, 0, 3, 100, -100, 127, -128, 1, -1, 13, -13, 6]
MOD_Y = [3, 3, -3, -3, -5, 5, 4, -7, 7, -7, -1, -1, 2, 2, 5, 5, 3]


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8])
@pytest.mark.parametrize("fmod", [0, 1])
def test_integer_mod_signs_match_onnxruntime(dtype, fmod):
    x, y = np.array(MOD_X), np.array(MOD_Y)
    if dtype == np.uint8:
        x, y = np.abs(x) % 256, np.abs(y)
    x, y = x.astype(dtype).reshape(1, -1).repeat(2, 0), y.astype(dtype)  # y broadcast over rows
    model = make_model([helper.make_node("Mod", ["x", "y"], ["z"], fmod=fmod)],
                       [("x", list(x.shape), dtype), ("y", [len(y)], dtype)], [("z", list(x.shape), dtype)], opset=13)
    (got,) = _run(model, {"x": x, "y": y})
    np.testing.assert_array_equal(got, ort_run(model, {"x": x, "y": y})[0])
    np.testing.assert_array_equal(got, (np.fmod if fmod else np.mod)(x, y))


def test_integer_mod_by_zero_raises():
    model = make_model([helper.make_node("Mod", ["x", "y"], ["z"])],
                       [("x", [3], np.int32), ("y", [3], np.int32)], [("z", [3], np.int32)], opset=13)
    with pytest.raises(InputError, match="integer modulo by zero"):  # as onnxruntime
        _run(model, {"x": np.array([5, -5, 0], np.int32), "y": np.zeros(3, np.int32)})


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("fmod", [0, 1])
def test_float_mod_matches_numpy_including_signs_and_specials(dtype, fmod):
    x = np.array([5.5, -5.5, 5.5, -5.5, 0.0, -0.0, 7.0, 1e6 + 0.5, 3.0, -1.0, np.inf, 1.0, np.nan, 2.0, -0.75],
                 dtype)
    y = np.array([2.0, 2.0, -2.0, -2.0, -3.0, 3.0, 3.5, 3.0, np.inf, np.inf, 2.0, 0.0, 1.0, np.nan, 0.25], dtype)
    model = make_model([helper.make_node("Mod", ["x", "y"], ["z"], fmod=fmod)],
                       [("x", [len(x)], dtype), ("y", [len(y)], dtype)], [("z", [len(x)], dtype)],
                       opset=13 if fmod else 21)
    (got,) = _run(model, {"x": x, "y": y})
    with np.errstate(all="ignore"):
        want = (np.fmod if fmod else np.mod)(x, y)
    np.testing.assert_array_equal(got, want)
    real = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[real]), np.signbit(want[real]))
    if fmod:
        np.testing.assert_array_equal(got, ort_run(model, {"x": x, "y": y})[0])


@pytest.mark.parametrize("base_t,exp_t", [(np.int32, np.int32), (np.int64, np.int64), (np.int32, np.float32),
                                          (np.int64, np.float32), (np.int8, np.int64)])
@pytest.mark.slow
def test_integer_pow_is_exact_and_matches_onnxruntime(base_t, exp_t):
    x = np.array([2, 3, -3, 0, 1, -1, 7, 2, -2, 5], base_t)
    y = np.array([10, 5, 3, 0, 9, 7, 4, 0, 6, 1], exp_t)
    if np.dtype(base_t).itemsize >= 4:
        x[-1], y[-1] = 3, 19 if base_t == np.int32 else 39  # 3**19 and 3**39: beyond float32's exact range
    model = make_model([helper.make_node("Pow", ["x", "y"], ["z"])],
                       [("x", [10], base_t), ("y", [10], exp_t)], [("z", [10], base_t)], opset=15)
    (got,) = _run(model, {"x": x, "y": y})
    assert got.dtype == base_t
    np.testing.assert_array_equal(got, np.array([int(a) ** int(b) for a, b in zip(x, y)]).astype(base_t))
    if base_t != np.int8:  # onnxruntime has no int8 Pow kernel; it computes in double (3**39 is inexact)
        np.testing.assert_array_equal(got[:-1], ort_run(model, {"x": x, "y": y})[0][:-1])


def test_integer_pow_with_fractional_or_negative_exponents_truncates():
    x = np.array([2, 9, 2, 1, -1, -1, 4], np.int32)
    y = np.array([2.5, 0.5, -1.0, -3.0, -3.0, -2.0, 1.5], np.float32)
    model = make_model([helper.make_node("Pow", ["x", "y"], ["z"])],
                       [("x", [7], np.int32), ("y", [7], np.float32)], [("z", [7], np.int32)], opset=15)
    (got,) = _run(model, {"x": x, "y": y})
    np.testing.assert_array_equal(got, [5, 3, 0, 1, -1, 1, 8])
