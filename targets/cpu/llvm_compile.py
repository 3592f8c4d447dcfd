"""xDSL `llvm` dialect -> llvmlite -> optimized native object code (loading it: native_object.py)."""
from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
from xdsl.backend.llvm.convert import convert_module
from xdsl.dialects import llvm as llvm_dialect
from xdsl.dialects.builtin import ModuleOp

from pyflame_rt.errors import BackendError
from pyflame_rt.targets.cpu.target import CPUTarget, init_llvm


def to_llvm_ir(module: ModuleOp, target: CPUTarget) -> str:
    try:
        ir_module = convert_module(module, fallback_target_triple=target.triple)
    except Exception as e:
        raise BackendError(f"translating to LLVM IR failed: {e}") from e
    _function_attributes(module, ir_module)
    return str(ir_module)


def _function_attributes(module: ModuleOp, ir_module: ir.Module) -> None:
    """What xDSL's translation leaves out: internal linkage and `passthrough` attributes
    (alwaysinline) of function definitions."""
    for op in module.ops:
        if isinstance(op, llvm_dialect.FuncOp) and op.body.blocks:
            fn = ir_module.get_global(op.sym_name.data)
            if op.linkage.linkage.data == "internal":
                fn.linkage = "internal"
            for attr in op.passthrough.data if op.passthrough is not None else ():
                fn.attributes.add(attr.data)


def compile_object(ir_text: str, target: CPUTarget) -> bytes:
    """Optimize at O3 for the target CPU and emit an object file."""
    init_llvm()
    try:
        mod = llvm.parse_assembly(ir_text)
        mod.verify()
    except RuntimeError as e:
        raise BackendError(f"LLVM rejected the generated IR: {e}") from e
    tm = target.target_machine()
    mod.triple = target.triple
    mod.data_layout = str(tm.target_data)
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_unrolling = True
    pb = llvm.create_pass_builder(tm, pto)
    pm = pb.getModulePassManager()
    pm.run(mod, pb)
    return tm.emit_object(mod)
