"""Task wrappers: the runtime's entry into each typed kernel.

The runtime calls the kernel of every launch as `(ptr ctx, i64 begin, i64 end)`, ctx holding
the launch's fields as i64 (in a checked build with a header and each field's bounds:
checked.py). `AddTaskWrappers` turns each kernel `@k` of a module into a private `@k.fields`
that LLVM always inlines, and a wrapper `@k` with the task signature that reads the fields from
ctx and calls it: the symbol the launch table names is unchanged, and LLVM compiles the pair
to the code of one function. A kernel the module only declares (its object comes from the
kernel cache) is declared with the task signature.
"""
from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, ModuleOp, StringAttr
from xdsl.passes import ModulePass

from pyflame_rt.dialects.kernel import FIELDS_ATTR, kernel_fields
from pyflame_rt.targets.cpu.kernel_builder import TASK_ARGS, KernelBuilder, Signature, checked_kernels

# the typed kernel `@k` is renamed `@k.fields` (its wrapper takes the name `@k`)
TYPED_SUFFIX = ".fields"
# llvm.func `passthrough` attributes of the typed kernel (llvm_compile applies them)
ALWAYS_INLINE = ArrayAttr([StringAttr("alwaysinline")])


def task_wrapper(kernel: func.FuncOp) -> func.FuncOp:
    """The task entry `@k` calling the kernel `@k`, which becomes `@k.fields` (private)."""
    sig = Signature.of_kernel(kernel)
    checked = sig.is_checked(kernel)
    name = kernel.sym_name.data
    kernel.sym_name = StringAttr(name + TYPED_SUFFIX)
    kernel.sym_visibility = StringAttr("private")
    del kernel.attributes[FIELDS_ATTR]
    kernel.attributes["passthrough"] = ALWAYS_INLINE
    with checked_kernels(checked):
        kb = KernelBuilder(name, visibility="public")
    values = [kb.field(i) for i in range(len(sig.fields))]
    args = [kb.as_ptr(v) if n in sig.buffers else v for n, v in zip(sig.fields, values)] + [kb.begin, kb.end]
    if checked:
        args += kb.guard.reported_as()
        for i in sig.buffer_fields():
            bounds = kb.guard.bounds[values[i]]
            args += [bounds.lo, bounds.size]
    kb.call(kernel.sym_name.data, args)
    return kb.finish()


@dataclass(frozen=True)
class AddTaskWrappers(ModulePass):
    """Every kernel of the module behind a task wrapper of its name (the runtime's entry)."""

    name = "add-task-wrappers"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for fn in list(op.ops):
            if kernel_fields(fn) is None:
                continue
            if fn.is_declaration:
                decl = func.FuncOp.external(fn.sym_name.data, list(TASK_ARGS), [])
                op.body.block.insert_op_before(decl, fn)
                fn.detach()
                fn.erase()
            else:
                op.body.block.insert_op_after(task_wrapper(fn), fn)
