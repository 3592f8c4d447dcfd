"""float8 / float4 / int4 / uint4 / int2 / uint2 tensors compiled to native code: Cast in both directions bit for bit
against onnx's and ml_dtypes' conversions (onnxruntime's Python API takes no such arrays), `saturate`
and float8e8m0's `round_mode`, packed 4-bit initializers, movement ops and session type strings."""
import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import make_model
from pyflame_rt import InferenceSession

FLOAT8 = {TensorProto.FLOAT8E4M3FN: ml_dtypes.float8_e4m3fn, TensorProto.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz,
          TensorProto.FLOAT8E5M2: ml_dtypes.float8_e5m2, TensorProto.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz}


def _run(model, feeds):
    sess = InferenceSession(model.SerializeToString())
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def _float32_samples(rng) -> np.ndarray:
    """Every float16 value (all float8 rounding cases), random float32 bit patterns, the specials."""
    halves = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)
    bits = rng.integers(0, 1 << 32, 1 << 14, dtype=np.uint64).astype(np.uint32).view(np.float32)
    specials = np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 464, 470, 61440, 2.0 ** -127, 2.0 ** -130])
    return np.concatenate([halves, bits, specials])


def _same_bits(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.dtype == want.dtype, what
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8), err_msg=what)


@pytest.mark.slow  # 15 kernels to compile
def test_casts_to_float8_and_float4_round_like_onnx_bit_for_bit(rng):
    x = _float32_samples(rng)
    targets = {**FLOAT8, TensorProto.FLOAT4E2M1: ml_dtypes.float4_e2m1fn}
    nodes, outputs = [], []
    for to, np_type in targets.items():
        for saturate in (0, 1):
            name = f"{np.dtype(np_type).name}_{saturate}"
            nodes.append(helper.make_node("Cast", ["x"], [name], to=to, saturate=saturate))
            outputs.append((name, [len(x)], np_type))
        nodes.append(helper.make_node("Cast", [name], [f"{name}_f16"], to=TensorProto.FLOAT16))
        outputs.append((f"{name}_f16", [len(x)], np.float16))
    got = _run(make_model(nodes, [("x", [len(x)], np.float32)], outputs, opset=23), {"x": x})
    for np_type in targets.values():
        name = np.dtype(np_type).name
        _same_bits(got[f"{name}_1"], numpy_helper.saturate_cast(x, np_type), f"{name} saturate=1")
        _same_bits(got[f"{name}_0"], x.astype(np_type), f"{name} saturate=0")
        _same_bits(got[f"{name}_1_f16"], numpy_helper.saturate_cast(x, np_type).astype(np.float16), f"{name} -> f16")


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
def test_float8e8m0_rounds_the_exponent_by_round_mode(rng, round_mode):
    x = np.abs(_float32_samples(rng))
    nodes = [helper.make_node("Cast", ["x"], [f"e8m0_{s}"], to=TensorProto.FLOAT8E8M0, saturate=s,
                              round_mode=round_mode) for s in (0, 1)]
    nodes.append(helper.make_node("Cast", ["e8m0_1"], ["back"], to=TensorProto.FLOAT))
    outputs = [(f"e8m0_{s}", [len(x)], ml_dtypes.float8_e8m0fnu) for s in (0, 1)] + [("back", [len(x)], np.float32)]
    got = _run(make_model(nodes, [("x", [len(x)], np.float32)], outputs, opset=25), {"x": x})
    for s in (0, 1):
        _same_bits(got[f"e8m0_{s}"], numpy_helper.to_float8e8m0(x, bool(s), round_mode), f"saturate={s}")
    _same_bits(got["back"], got["e8m0_1"].astype(np.float32), "e8m0 -> float32")


def test_float64_to_float8_rounds_once():
    tie = 1.0625  # halfway between the float8e4m3fn neighbours 1.0 and 1.125
    x = np.array([tie + 1e-12, tie - 1e-12, tie, -tie - 1e-12, 1e300, -1e-300, np.nan], np.float64)
    model = make_model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT8E4M3FN, saturate=0)],
                       [("x", [len(x)], np.float64)], [("y", [len(x)], ml_dtypes.float8_e4m3fn)], opset=21)
    # Rounded once from float64: just above the tie goes up (ml_dtypes < 0.7 rounds through float32
    # and gets 1.0); 1e300 is NaN without saturation. These values are exact in float32.
    want = np.array([1.125, 1.0, 1.0, -1.125, np.nan, -0.0, np.nan], np.float32).astype(ml_dtypes.float8_e4m3fn)
    _same_bits(_run(model, {"x": x})["y"], want, "float64 -> e4m3fn")


SUB_BYTE = [(TensorProto.INT4, ml_dtypes.int4), (TensorProto.UINT4, ml_dtypes.uint4),
            (TensorProto.INT2, ml_dtypes.int2), (TensorProto.UINT2, ml_dtypes.uint2)]


def test_sub_byte_integer_casts_truncate_then_wrap():
    f = np.array([-9.5, -8.9, -8, -0.9, 0.9, 7.9, 8, 15.5, 16, np.nan, np.inf, -np.inf], np.float32)
    i = np.array([-300, -9, -8, -1, 0, 7, 8, 15, 16, 300, 2 ** 31 - 1, -2 ** 31], np.int32)
    nodes, outputs = [], []
    for to, np_type in SUB_BYTE:
        name = np.dtype(np_type).name
        nodes += [helper.make_node("Cast", ["f"], [f"{name}_from_f"], to=to),
                  helper.make_node("Cast", ["i"], [f"{name}_from_i"], to=to),
                  helper.make_node("Cast", [f"{name}_from_i"], [f"{name}_to_i8"], to=TensorProto.INT8),
                  helper.make_node("Cast", [f"{name}_from_i"], [f"{name}_to_f16"], to=TensorProto.FLOAT16)]
        outputs += [(f"{name}_from_f", [12], np_type), (f"{name}_from_i", [12], np_type),
                    (f"{name}_to_i8", [12], np.int8), (f"{name}_to_f16", [12], np.float16)]
    model = make_model(nodes, [("f", [12], np.float32), ("i", [12], np.int32)], outputs, opset=21)
    got = _run(model, {"f": f, "i": i})
    with np.errstate(invalid="ignore"):
        for _, np_type in SUB_BYTE:
            name = np.dtype(np_type).name
            _same_bits(got[f"{name}_from_f"], _truncated_and_wrapped(f, np_type), f"float32 -> {name}")
            _same_bits(got[f"{name}_from_i"], i.astype(np_type), f"int32 -> {name}")
            _same_bits(got[f"{name}_to_i8"], i.astype(np_type).astype(np.int8), f"{name} -> int8")
            _same_bits(got[f"{name}_to_f16"], i.astype(np_type).astype(np.float16), f"{name} -> float16")


def _truncated_and_wrapped(f: np.ndarray, np_type) -> np.ndarray:
    """float -> sub-byte integer Cast (out of range is undefined in ONNX): truncated toward zero as to
    int32 (NaN and infinities: 0 and the int32 limits), then the high bits dropped, as a fixed-point
    narrowing does (and ml_dtypes <= 0.5, which made onnx's node cases)."""
    info = ml_dtypes.iinfo(np_type)
    bits = int(np.log2(int(info.max) - int(info.min) + 1))
    t = np.nan_to_num(np.trunc(f.astype(np.float64)), nan=0.0, posinf=2 ** 31 - 1, neginf=-2 ** 31)
    low = np.clip(t, -2 ** 31, 2 ** 31 - 1).astype(np.int64) & ((1 << bits) - 1)
    return np.where(low > info.max, low - (1 << bits), low).astype(np_type)


def test_narrow_initializers_inputs_and_movement_ops(rng):
    # an odd count of int4 weights: ONNX packs them two per byte, the last byte half used
    w4 = rng.integers(-8, 8, (3, 5)).astype(ml_dtypes.int4)
    x4 = rng.integers(-8, 8, (2, 5)).astype(ml_dtypes.int4)
    f8 = rng.standard_normal((3, 4)).astype(np.float32).astype(ml_dtypes.float8_e5m2)
    idx = np.array([2, 0], np.int64)
    nodes = [helper.make_node("Concat", ["w4", "x4"], ["cat"], axis=0),
             helper.make_node("Transpose", ["cat"], ["t"], perm=[1, 0]),
             helper.make_node("Slice", ["t", "starts", "ends"], ["sl"]),
             helper.make_node("Gather", ["f8", "idx"], ["g"], axis=1),
             helper.make_node("Reshape", ["f8", "shape"], ["r"]),
             helper.make_node("Identity", ["f8"], ["same"])]
    model = make_model(
        nodes, [("x4", [2, 5], ml_dtypes.int4), ("f8", [3, 4], ml_dtypes.float8_e5m2)],
        [("cat", [5, 5], ml_dtypes.int4), ("t", [5, 5], ml_dtypes.int4), ("sl", [4, 5], ml_dtypes.int4),
         ("g", [3, 2], ml_dtypes.float8_e5m2), ("r", [12], ml_dtypes.float8_e5m2),
         ("same", [3, 4], ml_dtypes.float8_e5m2)],
        {"w4": w4, "idx": idx, "starts": np.array([1]), "ends": np.array([5]), "shape": np.array([12])}, opset=21)
    assert model.graph.initializer[0].data_type == TensorProto.INT4 and len(model.graph.initializer[0].raw_data) == 8
    sess = InferenceSession(model.SerializeToString())
    assert [i.type for i in sess.get_inputs()] == ["tensor(int4)", "tensor(float8e5m2)"]
    assert sess.get_outputs()[3].type == "tensor(float8e5m2)"
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"x4": x4, "f8": f8})))
    cat = np.concatenate([w4, x4])
    for name, want in (("cat", cat), ("t", cat.T), ("sl", cat.T[1:5]), ("g", f8[:, idx]), ("r", f8.reshape(12)),
                       ("same", f8)):
        _same_bits(got[name], np.ascontiguousarray(want), name)
