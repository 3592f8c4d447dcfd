"""Half-precision panels of the GEMM (PanelType): the packed layouts, each path compiled for its
pinned target with its instructions in the assembly, and each path the host runs against
onnxruntime's float32 with the accuracy its mode allows."""

import llvmlite.binding as llvm
import ml_dtypes
import numpy as np
import pytest
from onnx import helper
from xdsl.dialects.builtin import ModuleOp

from conftest import kernels_run, make_model, ort_run
from pyflame_rt import InferenceSession, SessionOptions
from pyflame_rt.dtype import DType
from pyflame_rt.quantization import QuantConfig
from pyflame_rt.targets.cpu.half_panels import panel_type
from pyflame_rt.targets.cpu.kernel_cache import _convert
from pyflame_rt.targets.cpu.kernels.gemm import GemmSpec, PanelType, gemm_kernel, pack_b
from pyflame_rt.targets.cpu.llvm_compile import to_llvm_ir
from pyflame_rt.targets.cpu.target import CPUTarget

HOST = CPUTarget.host()
AVX512_BF16 = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512bf16")
AVX2 = ("avx", "avx2", "fma", "f16c")
AMX = AVX512_BF16 + ("amx-tile", "amx-bf16")

# the bf16 path the host runs: AMX tiles, vdpbf16ps, or bf16 storage widened to float32
HOST_BF16 = panel_type(HOST, DType.BFLOAT16, np.zeros(1, np.float32)).value


def test_bf16_pairs_layout_pads_odd_k_with_zeros(rng):
    b = rng.standard_normal((5, 20)).astype(np.float32)
    packed = pack_b(b, 16, PanelType.BF16_PAIRS)
    assert packed.shape == (2, 3, 32) and packed.dtype == ml_dtypes.bfloat16  # [panel][K / 2][NR pairs]
    words = packed.reshape(2, 3, 16, 2).astype(np.float32)
    padded = np.zeros((6, 32), np.float32)
    padded[:5, :20] = b.astype(ml_dtypes.bfloat16).astype(np.float32)
    for p in range(2):
        for kp in range(3):
            for h in range(2):
                np.testing.assert_array_equal(words[p, kp, :, h], padded[2 * kp + h, p * 16:(p + 1) * 16])


@pytest.mark.parametrize("panel", [PanelType.F16, PanelType.BF16])
def test_half_panels_are_the_float32_layout_rounded(panel, rng):
    b = rng.standard_normal((2, 7, 20)).astype(np.float32)
    half = pack_b(b, 16, panel)
    assert half.dtype == panel.dtype.numpy and half.nbytes * 2 == pack_b(b, 16).nbytes
    np.testing.assert_array_equal(half, pack_b(b, 16).astype(panel.dtype.numpy))


@pytest.mark.parametrize("panel,features,instructions", [
    (PanelType.BF16_TILES, AMX, ("ldtilecfg", "tileloadd", "tdpbf16ps", "tilestored", "tilerelease",
                                 "vcvtne2ps2bf16")),
    (PanelType.BF16_PAIRS, AVX512_BF16, ("vdpbf16ps", "vcvtne2ps2bf16")),
    (PanelType.BF16, AVX2, ("vpmovzxwd", "vpslld\t$16", "vfmadd231ps\t%ymm")),
    (PanelType.F16, AVX2, ("vcvtph2ps", "vfmadd231ps\t%ymm")),
])
def test_each_path_compiles_to_its_instructions(panel, features, instructions):
    target = CPUTarget(HOST.triple, "x86-64-v3", features)
    spec = GemmSpec.for_target(target.vector_width, target.num_vector_registers, True, "relu", panel=panel)
    module = ModuleOp([gemm_kernel(spec)])
    _convert(module)
    asm = target.target_machine().emit_assembly(llvm.parse_assembly(to_llvm_ir(module, target)))
    for instruction in instructions:
        assert instruction in asm
    assert ("vdpbf16ps" in asm) == (panel is PanelType.BF16_PAIRS)


def _mlp(rng, k: int, n: int):
    """MatMul (+ bias, relu) then Gemm(transB): odd K (a zero-padded last pair), N = 40 (a partial
    panel), K = 1200 in the second (three K slices)."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]),
             helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1)]
    inits = {"w1": (rng.standard_normal((k, 1200)) / np.sqrt(k)).astype(np.float32),
             "b1": rng.standard_normal(1200).astype(np.float32),
             "w2": (rng.standard_normal((n, 1200)) / 35).astype(np.float32), "b2": rng.standard_normal(n).astype(np.float32)}
    return make_model(nodes, [("x", ["B", k])], [("y", ["B", n])], inits)


def _cosine(a, b) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.slow
@pytest.mark.parametrize("cpu,config,panel", [
    ("host", QuantConfig.bfloat16(), HOST_BF16),
    ("x86-64-v3", QuantConfig.bfloat16(), "bf16"),
    ("x86-64-v3", QuantConfig.fp16(), "f16"),
])
def test_half_gemms_match_onnxruntime(cpu, config, panel, rng):
    missing = CPUTarget.named(cpu).missing_on_host()
    if missing:
        pytest.skip(f"the host lacks {missing}")
    model = _mlp(rng, 37, 40)
    sess = InferenceSession(model.SerializeToString(),
                            SessionOptions(enable_profiling=True, cpu=cpu, quantization=config))
    x = rng.standard_normal((11, 37)).astype(np.float32)  # 11 rows: full register tiles and a remainder
    y = sess.run(None, {"x": x})[0]
    assert _cosine(y, ort_run(model, {"x": x})[0]) >= (0.999 if panel.startswith("bf16") else 0.9999)
    gemms = {k for k in kernels_run(sess, {"x": x}) if k.startswith("gemm_")}
    assert gemms and all(k.endswith("_" + panel) for k in gemms), gemms


@pytest.mark.slow
def test_checked_build_has_no_violation(rng):
    """Every access of the half GEMMs is inside its buffer: the half panels, and the A pack that
    becomes bf16 pairs in place (zero-filled up to whole vectors within its rows)."""
    from pyflame_rt.compiler import compile_model
    from pyflame_rt.executable import Executable
    from pyflame_rt.options import CompileOptions

    model = _mlp(rng, 37, 40)
    exe = Executable(compile_model(model, CompileOptions(checked=True, quantization=QuantConfig.bfloat16())))
    x = rng.standard_normal((3, 37)).astype(np.float32)
    assert _cosine(exe.run([x])[0], ort_run(model, {"x": x})[0]) >= 0.999


@pytest.mark.slow
def test_one_packed_half_matrix_per_batch(rng):
    """A constant B of 3 matrices: each packed with its K padded (to whole tiles with AMX), the
    batch stride counting the padding."""
    model = make_model([helper.make_node("MatMul", ["x", "w"], ["y"])], [("x", [3, 40, 100])], [("y", [3, 40, 33])],
                       {"w": rng.standard_normal((3, 100, 33)).astype(np.float32)})
    sess = InferenceSession(model.SerializeToString(),
                            SessionOptions(enable_profiling=True, quantization=QuantConfig.bfloat16()))
    x = rng.standard_normal((3, 40, 100)).astype(np.float32)
    assert _cosine(sess.run(None, {"x": x})[0], ort_run(model, {"x": x})[0]) >= 0.999
    gemms = {k for k in kernels_run(sess, {"x": x}) if k.startswith("gemm_")}
    assert gemms and all(k.endswith("_" + HOST_BF16) for k in gemms), gemms
