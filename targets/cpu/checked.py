"""The checked build's contract between generated code, the C runtime and the executable.

In a checked build (`CompileOptions(checked=True)`) every load and store of generated code
passes its address and the byte range of the buffer its pointer was derived from through the
runtime's `pfrt_checked_address`, which redirects an access outside it (the first of a run is
recorded and the remaining kernels are skipped); the executable then raises MemoryAccessError
with the text `describe_violation` builds. docs/checked-build.md describes the design.

Kernel context in a checked build (i64 slots), built by the runtime's `pfrt_execute` (which
repeats CTX_HEADER and CTX_STRIDE): a header, then per field its value and the [lo, hi) byte
addresses of the buffer it points into (0, 0 for a field that is not a pointer):

    ctx[0] = number of slots, ctx[1] = the run handle, ctx[2] = the step (launch) index,
    ctx[CTX_HEADER + CTX_STRIDE * i + 0 / 1 / 2] = field i / its buffer's lo / hi

Kept free of the compiler side: the executable imports it.
"""
from __future__ import annotations

CHECK_FN = "pfrt_checked_address"

CTX_SLOTS, CTX_RUN, CTX_STEP = 0, 1, 2
CTX_HEADER = 3
CTX_STRIDE = 3

# buffers that are not a kernel field (fields are regions 0, 1, ...)
REGION_SCRATCH = -1     # a kernel's stack scratch (KernelBuilder.scratch)
REGION_CTX = -2         # the kernel context itself
REGION_NAMES = {REGION_SCRATCH: "its stack scratch", REGION_CTX: "its kernel context"}


def ctx_slots(num_fields: int) -> int:
    return CTX_HEADER + CTX_STRIDE * num_fields


def describe_violation(kernel: str, step: int, region: int, offset: int, size: int, nbytes: int, store: bool,
                       step_ops: list[str], step_fields: list[list]) -> str:
    """One line naming the kernel (and the graph op of the call), the buffer, the byte offset."""
    call = f" (step {step}: {step_ops[step]})" if 0 <= step < len(step_ops) else ""
    if region >= 0:
        fields = step_fields[step] if 0 <= step < len(step_fields) else []
        what = fields[region] if region < len(fields) and fields[region] else None
        buffer = f"field {region}" + (f" ({what})" if what else "")
    else:
        buffer = REGION_NAMES.get(region, f"region {region}")
    access = f"{nbytes}-byte {'store' if store else 'load'}"
    return (f"kernel {kernel}{call}: {access} at byte offset {offset} of {buffer}, "
            f"outside its buffer of {size} bytes")
