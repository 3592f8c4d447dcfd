"""Conversions from the kernel level (func, cf, arith) to the `llvm` dialect.

Each typed kernel is first put behind its task wrapper (task_wrappers.py), then `scf` is lowered to `cf` by xDSL's convert-scf-to-cf; these patterns finish
the job so the module holds only `llvm` ops, which xDSL's llvmlite backend reads.
Integer indices are i64 throughout, so no index-type conversion is needed.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import arith, cf, func, llvm
from xdsl.dialects.builtin import IntegerAttr, ModuleOp, i64
from xdsl.ir import Attribute, Region
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.transforms.convert_scf_to_cf import ConvertScfToCf

from pyflame_rt.targets.cpu.kernel_builder import type_suffix
from pyflame_rt.targets.cpu.task_wrappers import AddTaskWrappers

_INT_BINARY = {
    arith.AddiOp: llvm.AddOp, arith.SubiOp: llvm.SubOp, arith.MuliOp: llvm.MulOp,
    arith.DivSIOp: llvm.SDivOp, arith.RemSIOp: llvm.SRemOp, arith.DivUIOp: llvm.UDivOp,
    arith.RemUIOp: llvm.URemOp, arith.AndIOp: llvm.AndOp, arith.OrIOp: llvm.OrOp,
    arith.XOrIOp: llvm.XOrOp, arith.ShLIOp: llvm.ShlOp, arith.ShRSIOp: llvm.AShrOp,
    arith.ShRUIOp: llvm.LShrOp,
}
_FLOAT_BINARY = {
    arith.AddfOp: llvm.FAddOp, arith.SubfOp: llvm.FSubOp, arith.MulfOp: llvm.FMulOp,
    arith.DivfOp: llvm.FDivOp,
}
_FLOAT_INTRINSIC = {arith.MaxnumfOp: "llvm.maxnum", arith.MinnumfOp: "llvm.minnum"}
_MINMAX_INT = {arith.MinSIOp: "slt", arith.MaxSIOp: "sgt", arith.MinUIOp: "ult", arith.MaxUIOp: "ugt"}
_CASTS = {
    arith.TruncIOp: llvm.TruncOp, arith.ExtSIOp: llvm.SExtOp, arith.ExtUIOp: llvm.ZExtOp,
    arith.SIToFPOp: llvm.SIToFPOp, arith.ExtFOp: llvm.FPExtOp, arith.TruncFOp: llvm.FPTruncOp,
    arith.BitcastOp: llvm.BitcastOp,
}
_ICMP = ["eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge"]


def intrinsic_name(base: str, t: Attribute) -> str:
    """Type-mangled intrinsic name: llvm.maxnum.f32, llvm.maxnum.v8f32."""
    return f"{base}.{type_suffix(t)}"


class ArithToLLVM(RewritePattern):
    def match_and_rewrite(self, op, rewriter: PatternRewriter) -> None:
        t = type(op)
        if t in _INT_BINARY:
            rewriter.replace(op, _INT_BINARY[t](op.lhs, op.rhs))
        elif t in _FLOAT_BINARY:
            rewriter.replace(op, _FLOAT_BINARY[t](op.lhs, op.rhs))
        elif t in _FLOAT_INTRINSIC:
            rt = op.result.type
            rewriter.replace(op, llvm.CallIntrinsicOp(
                intrinsic_name(_FLOAT_INTRINSIC[t], rt), [op.lhs, op.rhs], [rt]))
        elif t in _MINMAX_INT:
            cmp = llvm.ICmpOp(op.lhs, op.rhs, IntegerAttr(_ICMP.index(_MINMAX_INT[t]), i64))
            rewriter.replace(op, [cmp, llvm.SelectOp(cmp, op.lhs, op.rhs)])
        elif t in _CASTS:
            rewriter.replace(op, _CASTS[t](op.input, op.result.type))
        elif t is arith.ConstantOp:
            rewriter.replace(op, llvm.ConstantOp(op.value, op.result.type))
        elif t is arith.CmpiOp:
            rewriter.replace(op, llvm.ICmpOp(op.lhs, op.rhs, IntegerAttr(op.predicate.value.data, i64)))
        elif t is arith.CmpfOp:
            pred = list(llvm.FCmpPredicateFlag)[op.predicate.value.data].value
            rewriter.replace(op, llvm.FCmpOp(op.lhs, op.rhs, pred))
        elif t is arith.SelectOp:
            rewriter.replace(op, llvm.SelectOp(op.cond, op.lhs, op.rhs))
        elif t is arith.NegfOp:
            rewriter.replace(op, llvm.FNegOp(op.operand))


class CfToLLVM(RewritePattern):
    def match_and_rewrite(self, op, rewriter: PatternRewriter) -> None:
        if isinstance(op, cf.BranchOp):
            rewriter.replace(op, llvm.BrOp(op.successor, *op.arguments))
        elif isinstance(op, cf.ConditionalBranchOp):
            rewriter.replace(op, llvm.CondBrOp(
                op.cond, op.then_block, op.then_arguments, op.else_block, op.else_arguments))


class FuncToLLVM(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: func.FuncOp, rewriter: PatternRewriter) -> None:
        ft = op.function_type
        out = ft.outputs.data[0] if ft.outputs.data else llvm.LLVMVoidType()
        external = op.is_declaration
        body = Region() if external else op.detach_region(op.body)
        # private definitions become internal so LLVM may inline and drop them
        private = not external and op.sym_visibility is not None and op.sym_visibility.data == "private"
        linkage = llvm.LinkageAttr("internal" if private else "external")
        new = llvm.FuncOp(op.sym_name.data, llvm.LLVMFunctionType(list(ft.inputs.data), out),
                          linkage=linkage, body=body)
        if "passthrough" in op.attributes:
            new.passthrough = op.attributes["passthrough"]
        rewriter.replace(op, new)


class CallReturnToLLVM(RewritePattern):
    def match_and_rewrite(self, op, rewriter: PatternRewriter) -> None:
        if isinstance(op, func.ReturnOp):
            rewriter.replace(op, llvm.ReturnOp(op.arguments[0] if op.arguments else None))
        elif isinstance(op, func.CallOp):
            ret = op.results[0].type if op.results else None
            rewriter.replace(op, llvm.CallOp(op.callee.string_value(), *op.arguments, return_type=ret))


@dataclass(frozen=True)
class ConvertToLLVM(ModulePass):
    """Task wrappers, scf -> cf, then arith / cf / func -> llvm: the whole kernel level to `llvm`."""

    name = "convert-to-llvm"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        AddTaskWrappers().apply(ctx, op)
        ConvertScfToCf().apply(ctx, op)
        PatternRewriteWalker(
            GreedyRewritePatternApplier([ArithToLLVM(), CfToLLVM(), CallReturnToLLVM()]),
            apply_recursively=False,
        ).rewrite_module(op)
        PatternRewriteWalker(FuncToLLVM(), apply_recursively=False).rewrite_module(op)
