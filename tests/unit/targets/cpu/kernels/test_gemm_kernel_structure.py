"""What the generated GEMM micro-kernel is made of, stated from its spec: which register tiles
exist at which loop depth, how many independent accumulators a K loop keeps, what the epilogue
stores and reads. Targets are pinned (AVX2: 8 lanes, 16 registers; AVX-512: 16 lanes, 32; float64
kernels: 4 and 8 lanes)."""
import functools

import pytest
from xdsl.dialects import func, llvm, scf
from xdsl.dialects.builtin import f64
from xdsl.ir import BlockArgument, Operation, SSAValue

from pyflame_rt.targets.cpu.kernels.gemm import (
    A_ROW_PAD,
    CONV_A_FIELDS,
    GEMM_FIELDS,
    MIN_ACCUMULATORS,
    GemmSpec,
    PanelType,
    gemm_kernel,
)
from pyflame_rt.targets.cpu.target import CPUTarget


def _spec(cpu: str, has_bias=True, activation="relu", panel=PanelType.F32, **flags) -> GemmSpec:
    t = CPUTarget.named(cpu)
    width = t.vector_width * 4 // panel.compute_dtype.itemsize  # vector_width: float32 lanes
    return GemmSpec.for_target(width, t.num_vector_registers, has_bias, activation, panel=panel, **flags)


SPECS = [
    _spec("x86-64-v3"),
    _spec("x86-64-v4", bias_per_row=True, residual=True),
    _spec("x86-64-v3", has_bias=False, activation="none", unit_a_cs=False),
    _spec("x86-64-v4", residual=True, small=True),
    _spec("x86-64-v3", conv_a=True),
    _spec("x86-64-v3", panel=PanelType.F64),
    _spec("x86-64-v4", panel=PanelType.F64, bias_per_row=True, residual=True),
]


@functools.cache
def _ops(spec: GemmSpec) -> tuple[Operation, ...]:
    return tuple(gemm_kernel(spec).walk())


def _ancestors(op: Operation, kind: type) -> int:
    n, parent = 0, op.parent_op()
    while parent is not None:
        n += isinstance(parent, kind)
        parent = parent.parent_op()
    return n


def _int(v: SSAValue) -> int:
    return v.owner.value.value.data


def _base(ptr: SSAValue) -> SSAValue:
    while isinstance(ptr.owner, llvm.GEPOp):
        ptr = ptr.owner.ptr
    return ptr


def _field_index(v: SSAValue) -> int | None:
    """i when v is the kernel's argument i (its field i)."""
    if isinstance(v, BlockArgument) and isinstance(v.block.parent_op(), func.FuncOp):
        return v.index
    return None


def _tile_variants(spec: GemmSpec) -> dict[tuple[int, int], int]:
    """(rows, vectors) of every register tile the kernel has -> loop depth of its K loop: the
    main tile (and, with several rows and vectors, a one-vector-narrower one for a last panel of
    NR - width columns) inside row blocks > panel chunks > K slices > panels > row tiles > K; one
    tile per possible remainder row count, outside the row-tile loop."""
    main = {(spec.mr, spec.nvec): 6}
    if spec.mr > 1 and spec.nvec > 1:
        main[(spec.mr, spec.nvec - 1)] = 6
    return main | {(rows, spec.nvec): 5 for rows in range(1, spec.mr)}


def _k_loops(spec: GemmSpec) -> list[tuple[scf.ForOp, int, int]]:
    """(loop, rows, vectors) of every loop whose own body does FMAs: per k step, one scalar A
    load per row and one vector B load per vector."""
    loops = []
    for op in _ops(spec):
        if isinstance(op, scf.ForOp) and any(isinstance(o, llvm.FMAOp) for o in op.body.block.ops):
            step = _int(op.step)
            loads = [o for o in op.body.block.ops if isinstance(o, llvm.LoadOp)]
            rows = sum(not hasattr(o.dereferenced_value.type, "get_shape") for o in loads) // step
            vectors = sum(hasattr(o.dereferenced_value.type, "get_shape") for o in loads) // step
            loops.append((op, rows, vectors))
    return loops


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_register_tiles_and_their_loop_depths(spec):
    found = {(rows, vectors): _ancestors(loop, scf.ForOp) + 1 for loop, rows, vectors in _k_loops(spec)}
    assert found == _tile_variants(spec)
    for loop, rows, vectors in _k_loops(spec):
        fmas = [o for o in loop.body.block.ops if isinstance(o, llvm.FMAOp)]
        assert len(fmas) == rows * vectors * _int(loop.step)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_k_loops_keep_enough_independent_accumulators(spec):
    """A tile of fewer than MIN_ACCUMULATORS vectors runs several accumulator sets over
    consecutive k (a loop of step > 1, then a step-1 tail), as many as reach MIN_ACCUMULATORS
    within the main tile's registers; every tile has a step-1 loop."""
    budget = spec.mr * spec.nvec
    steps: dict[tuple[int, int], set[int]] = {}
    for loop, rows, vectors in _k_loops(spec):
        steps.setdefault((rows, vectors), set()).add(_int(loop.step))
    for (rows, vectors), tile_steps in steps.items():
        assert 1 in tile_steps
        accumulators = rows * vectors * max(tile_steps)
        assert accumulators <= max(budget, rows * vectors)
        assert accumulators >= MIN_ACCUMULATORS or accumulators + rows * vectors > budget, (rows, vectors)


def _c_accesses(spec: GemmSpec, field: str) -> tuple[int, int]:
    """(plain vector accesses, masked accesses) of the buffer in field `field`."""
    index = GEMM_FIELDS.index(field)
    plain = masked = 0
    for op in _ops(spec):
        if isinstance(op, (llvm.StoreOp, llvm.LoadOp)):
            ptr = op.ptr
            plain += _field_index(_base(ptr)) == index and hasattr(
                (op.value if isinstance(op, llvm.StoreOp) else op.dereferenced_value).type, "get_shape")
        elif isinstance(op, llvm.CallIntrinsicOp) and op.intrin.data.startswith("llvm.masked."):
            ptr = op.args[1] if "store" in op.intrin.data else op.args[0]
            masked += _field_index(_base(ptr)) == index
    return plain, masked


def _epilogue_vectors(spec: GemmSpec) -> tuple[int, int]:
    """(whole-tile vectors, last-panel vectors) over all tile variants: every tile has a store per
    vector for whole panels; a tile of all the panel's vectors also a masked one for the last panel."""
    variants = _tile_variants(spec)
    whole = sum(rows * vectors for rows, vectors in variants)
    last = sum(rows * vectors for rows, vectors in variants if vectors == spec.nvec)
    return whole, last


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_epilogue_stores_each_vector_once_per_path(spec):
    """Whole panels store with plain stores, twice when an epilogue is fused (after the last K slice
    and before it); the last panel with masked stores that pick the epilogue per vector. C is read
    back (partial sums of earlier K slices) by plain loads for whole panels and masked loads for
    the last one, emitted in every tile variant."""
    whole, last = _epilogue_vectors(spec)
    fused = spec.has_bias or spec.residual or spec.activation != "none"
    plain_c, masked_c = _c_accesses(spec, "c")
    assert (plain_c, masked_c) == (whole * (2 if fused else 1) + whole, last + whole)
    residual = _c_accesses(spec, "residual")
    assert residual == ((whole, last) if spec.residual else (0, 0))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_activation_runs_once_per_fused_vector(spec):
    """relu is one compare (and select) per stored vector of the fused epilogue."""
    whole, last = _epilogue_vectors(spec)
    compares = sum(op.name == "llvm.fcmp" for op in _ops(spec))
    assert compares == (whole + last if spec.activation == "relu" else 0)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_one_packed_a_block_and_conv_fields_only_in_conv_kernels(spec):
    """The packed A block is one stack buffer (mc rows of kc + A_ROW_PAD floats). Only a conv_a
    kernel takes the implicit im2col's fields (after GEMM_FIELDS); its geometry fields hold a
    convolution's only when conv_c != 0, so they are read only inside the branch that packs a
    convolution's input."""
    allocas = [op for op in _ops(spec) if isinstance(op, llvm.AllocaOp)]
    assert len(allocas) == 1 and _ancestors(allocas[0], scf.ForOp) == 0
    assert _int(allocas[0].size) == spec.mc * (spec.kc + A_ROW_PAD)
    kernel = _ops(spec)[0]
    assert isinstance(kernel, func.FuncOp)
    fields = GEMM_FIELDS + (CONV_A_FIELDS if spec.conv_a else ())
    assert spec.signature.fields == fields and len(kernel.body.block.args) == len(fields) + 2
    conv_args = kernel.body.block.args[len(GEMM_FIELDS):len(fields)]
    assert all(arg.uses for arg in conv_args)
    geometry = conv_args[CONV_A_FIELDS.index("conv_c") + 1:]
    assert all(_ancestors(use.operation, scf.IfOp) >= 1 for arg in geometry for use in arg.uses)


@pytest.mark.parametrize("cpu, lanes, mr", [("x86-64-v3", 4, 6), ("x86-64-v4", 8, 8)])
def test_float64_kernel_is_register_blocked_in_doubles(cpu, lanes, mr):
    """F64 panels: the fp32 generator's tiles with 4 doubles per ymm / 8 per zmm (mr rows x 2 vectors
    of accumulators), every FMA and vector access in f64; K slices half as deep, so the packed A
    block keeps its bytes."""
    spec = _spec(cpu, panel=PanelType.F64)
    assert (spec.width, spec.nvec, spec.mr) == (lanes, 2, mr)
    assert spec.kc * 8 == _spec(cpu).kc * 4
    fmas = [op for op in _ops(spec) if isinstance(op, llvm.FMAOp)]
    assert fmas and all(op.res.type.get_element_type() == f64 and op.res.type.get_shape() == (lanes,) for op in fmas)
    vector_accesses = [(op.value if isinstance(op, llvm.StoreOp) else op.dereferenced_value).type
                       for op in _ops(spec) if isinstance(op, (llvm.StoreOp, llvm.LoadOp))]
    vector_accesses = [t for t in vector_accesses if hasattr(t, "get_shape")]
    assert vector_accesses and all(t.get_element_type() == f64 for t in vector_accesses)
