"""The integer GEMM behind MatMulInteger by a constant int8 weight (quantize_dynamic's matmuls):
each dot-product path the host runs is compared with onnxruntime bit for bit, and every path is
compiled for its pinned target with its instruction checked in the assembly."""

import llvmlite.binding as llvm
import numpy as np
import pytest
from onnx import helper
from xdsl.dialects.builtin import ModuleOp

from conftest import kernels_run, make_model, ort_run
from pyflame_rt import InferenceSession, SessionOptions
from pyflame_rt.targets.cpu.kernel_cache import _convert
from pyflame_rt.targets.cpu.kernels.gemm_int8 import DOT_PRODUCTS, Int8GemmSpec, int8_gemm_kernel, panel_block
from pyflame_rt.targets.cpu.llvm_compile import to_llvm_ir
from pyflame_rt.targets.cpu.target import CPUTarget

HOST = CPUTarget.host()


def _model(k: int, n: int, rng):
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("MatMulInteger", ["q", "w", "z", "wz"], ["y"])]
    return make_model(nodes, [("x", ["B", 5, k])], [("y", ["B", 5, n], np.int32)],
                      {"w": rng.integers(-128, 128, (k, n)).astype(np.int8), "wz": np.zeros((), np.int8)})


@pytest.mark.parametrize("cpu", ["host", "x86-64-v3"])
def test_matches_onnxruntime_exactly(cpu, rng):
    """K = 64, N = 40: two full panels of 16 columns and a partial one on AVX2 (a partial of 32 with
    AVX-512); 5 to 40 rows: full tiles (32 rows with AMX) and every remainder, run by 8-row tiles
    (short of an AMX tile) and tiles of halving height."""
    spec = Int8GemmSpec.for_features(CPUTarget.named(cpu).features, k=64)
    if spec is None:
        pytest.skip(f"{cpu} has no integer dot product")
    model = _model(64, 40, rng)
    sess = InferenceSession(model.SerializeToString(), SessionOptions(enable_profiling=True, cpu=cpu))
    for b in range(1, 9):
        x = (rng.standard_normal((b, 5, 64)) * 3).astype(np.float32)
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0])
    assert spec.name in kernels_run(sess, {"x": x})


@pytest.mark.parametrize("cpu", ["host", "x86-64-v3"])
def test_panel_blocks_cover_every_tile(cpu, rng):
    """K = 2048: 64 KB packed panels, 4 to a block; N = 300: 10 panels of 32 (blocks of 4, 4, 2) or
    19 of 16 (4, 4, 4, 4, 3); 10, 20 or 35 rows: remainder row tiles in every block (35: after a
    full tile, 32 rows with AMX)."""
    spec = Int8GemmSpec.for_features(CPUTarget.named(cpu).features)
    if spec is None:
        pytest.skip(f"{cpu} has no integer dot product")
    assert panel_block(2048 // spec.group, -(-300 // spec.nr), spec) == 4
    model = _model(2048, 300, rng)
    sess = InferenceSession(model.SerializeToString(), SessionOptions(cpu=cpu))
    for b in (2, 4, 7):
        x = (rng.standard_normal((b, 5, 2048)) * 3).astype(np.float32)
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0])


def test_panel_blocks_are_even():
    """Blocks of at most 10 panels of 768 x 32 bytes (BERT-base's K): 24 panels in 3 blocks of 8, not
    10, 10 and 4 (a row tile by a block is a work item: two threads split them evenly)."""
    spec = Int8GemmSpec("avx512vnni", mr=8)
    assert [panel_block(768 // 4, n, spec) for n in (1, 10, 11, 24, 96)] == [1, 10, 6, 8, 10]


@pytest.mark.slow
def test_other_products_are_expanded(rng):
    """K not a multiple of 4: the float32 expansion, still exact at this size."""
    model = _model(30, 7, rng)
    sess = InferenceSession(model.SerializeToString(), SessionOptions(enable_profiling=True))
    x = rng.standard_normal((2, 5, 30)).astype(np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0])
    assert not any(k.startswith("gemm_u8s8") for k in kernels_run(sess, {"x": x}))


@pytest.mark.parametrize("dot,features,instruction", [
    ("avx512vnni", ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512vnni"), "vpdpbusd\t%zmm"),
    ("avxvnni", ("avx2", "avxvnni"), "{vex}\tvpdpbusd\t%ymm"),
    ("avx2", ("avx2",), "vpmaddwd\t%ymm"),
])
@pytest.mark.parametrize("variant", [{}, dict(requant=True, signed_a=True), dict(requant=True, conv=True)],
                         ids=["u8", "s8", "conv"])
def test_each_path_compiles_to_its_instruction(dot, features, instruction, variant):
    target = CPUTarget(HOST.triple, "x86-64-v3", features)
    spec = Int8GemmSpec.for_features(features, **variant)
    assert spec.dot == dot
    module = ModuleOp([int8_gemm_kernel(spec)])
    _convert(module)
    mod = llvm.parse_assembly(to_llvm_ir(module, target))
    asm = target.target_machine().emit_assembly(mod)
    assert instruction in asm


def test_dot_products_are_ordered_best_first():
    assert [name for name, *_ in DOT_PRODUCTS] == ["amxint8", "avx512vnni", "avxvnni", "avx2"]
    assert Int8GemmSpec.for_features(("sse2",)) is None


AMX_FEATURES = ("amx-int8", "amx-tile", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512vnni")


def test_amx_tiles_need_whole_tiles_of_k_and_a_uint8_a():
    assert Int8GemmSpec.for_features(AMX_FEATURES, k=128).dot == "amxint8"
    assert Int8GemmSpec.for_features(AMX_FEATURES, k=128).mr == 32
    for k, signed_a in ((0, False), (96, False), (128, True)):
        assert Int8GemmSpec.for_features(AMX_FEATURES, k=k, signed_a=signed_a).dot == "avx512vnni"


@pytest.mark.parametrize("dequant", [False, True], ids=["int32", "float32"])
def test_amx_path_compiles_to_tdpbusd(dequant):
    target = CPUTarget(HOST.triple, "sapphirerapids", AMX_FEATURES)
    module = ModuleOp([int8_gemm_kernel(Int8GemmSpec.for_features(AMX_FEATURES, dequant=dequant, k=64))])
    _convert(module)
    asm = target.target_machine().emit_assembly(llvm.parse_assembly(to_llvm_ir(module, target)))
    assert "tdpbusd\t%tmm" in asm and "\tvpdpbusd\t" in asm  # the tiles, and the rows short of one


@pytest.mark.skipif(Int8GemmSpec.for_features(HOST.features, k=64).dot != "amxint8", reason="no AMX on this host")
def test_amx_tiles_match_onnxruntime_exactly(rng):
    """K = 128 (two tile steps), N = 40 (a partial panel), 15 x 5 rows: two 32-row register tiles
    and 11 rows short of one (an 8-row VNNI tile and 3 rows)."""
    model = _model(128, 40, rng)
    sess = InferenceSession(model.SerializeToString(), SessionOptions(enable_profiling=True))
    x = (rng.standard_normal((15, 5, 128)) * 3).astype(np.float32)
    np.testing.assert_array_equal(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0])
    assert "gemm_u8s8_amxint8_32x32" in kernels_run(sess, {"x": x})


def test_checked_build_has_no_violation(rng):
    """Every access of the integer GEMM and the dynamic quantize kernels is inside its buffer
    (the A words, the packed B and column sums, the masked last panel)."""
    from pyflame_rt.compiler import compile_model
    from pyflame_rt.executable import Executable
    from pyflame_rt.options import CompileOptions, OptLevel

    model = _model(64, 40, rng)
    exe = Executable(compile_model(model, CompileOptions(checked=True, opt_level=OptLevel.NONE)))
    x = rng.standard_normal((3, 5, 64)).astype(np.float32)
    np.testing.assert_array_equal(exe.run([x])[0], ort_run(model, {"x": x})[0])


@pytest.mark.parametrize("cpu", ["host", "x86-64-v3"])
def test_qlinear_matmul_requantizes_in_the_epilogue(cpu, rng):
    """QLinearMatMul (per-column weight scales) by the requantizing GEMM: within one
    output step of onnxruntime (the float multipliers round differently from its own)."""
    spec = Int8GemmSpec.for_features(CPUTarget.named(cpu).features, requant=True)
    if spec is None:
        pytest.skip(f"{cpu} has no integer dot product")
    w = rng.integers(-127, 128, (32, 20)).astype(np.int8)
    nodes = [helper.make_node("QLinearMatMul", ["a", "as", "az", "w", "ws", "wz", "ys", "yz"], ["y"])]
    model = make_model(nodes, [("a", ["B", 3, 32], np.uint8)], [("y", ["B", 3, 20], np.uint8)],
                       {"as": np.array(0.02, np.float32), "az": np.array(120, np.uint8), "w": w,
                        "ws": (rng.random(20) * 0.01 + 0.001).astype(np.float32), "wz": np.zeros(20, np.int8),
                        "ys": np.array(0.5, np.float32), "yz": np.array(130, np.uint8)})
    sess = InferenceSession(model.SerializeToString(), SessionOptions(enable_profiling=True, cpu=cpu))
    a = rng.integers(0, 256, (2, 3, 32)).astype(np.uint8)
    ours, ref = sess.run(None, {"a": a})[0], ort_run(model, {"a": a})[0]
    assert np.abs(ours.astype(np.int32) - ref).max() <= 1
    assert spec.name in kernels_run(sess, {"a": a})


@pytest.mark.parametrize("cpu", ["host", "x86-64-v3"])
@pytest.mark.parametrize("per_column,activation", [(False, None), (True, "Tanh")], ids=["tensor", "column-tanh"])
def test_dequantizing_epilogue_matches_onnxruntime(cpu, per_column, activation, rng):
    """quantize_dynamic's MatMul (MatMulInteger, Cast, Mul by the scales' product, bias Add; an
    activation after it) runs as one GEMM dequantizing in its epilogue (N = 40: a partial last
    panel), within float32 rounding of onnxruntime's separate ops."""
    spec = Int8GemmSpec.for_features(CPUTarget.named(cpu).features, dequant=True, k=64,
                                     activation=activation.lower() if activation else "none")
    if spec is None:
        pytest.skip(f"{cpu} has no integer dot product")
    ws = (rng.random(40 if per_column else ()) * 0.01 + 0.001).astype(np.float32)
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
             helper.make_node("MatMulInteger", ["q", "w", "z", "wz"], ["p"]),
             helper.make_node("Cast", ["p"], ["f"], to=1), helper.make_node("Mul", ["s", "ws"], ["r"]),
             helper.make_node("Mul", ["f", "r"], ["m"]),
             helper.make_node("Add", ["m", "bias"], ["a" if activation else "y"])]
    nodes += [helper.make_node(activation, ["a"], ["y"])] if activation else []
    model = make_model(nodes, [("x", ["B", 5, 64])], [("y", ["B", 5, 40])],
                       {"w": rng.integers(-127, 128, (64, 40)).astype(np.int8), "wz": np.zeros((), np.int8),
                        "ws": ws, "bias": rng.standard_normal(40).astype(np.float32)})
    sess = InferenceSession(model.SerializeToString(), SessionOptions(enable_profiling=True, cpu=cpu))
    x = (rng.standard_normal((2, 5, 64)) * 3).astype(np.float32)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0], rtol=1e-6, atol=1e-6)
    kernels = kernels_run(sess, {"x": x})
    assert spec.name in kernels and not any(k.startswith("ew_") for k in kernels)
