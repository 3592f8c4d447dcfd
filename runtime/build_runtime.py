"""cffi build script for the C runtime; run by setup.py (paths relative to the repo root)."""

import os

from cffi import FFI


def _cdef(header: str) -> str:
    """The C API for cffi: pfrt.h without its include guard and #includes (one source of truth)."""
    skip = ("#ifndef PFRT_H", "#define PFRT_H", "#endif", "#include")
    return "\n".join(line for line in header.splitlines() if not line.startswith(skip))


CDEF = _cdef(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pfrt.h")).read())

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "pyflame_rt.runtime._pfrt",
    '#include "pfrt.h"',
    sources=["runtime/pfrt.c", "runtime/pfrt_mempool.c", "runtime/pfrt_queue.c"],
    include_dirs=["runtime"],
    extra_compile_args=["-O2", "-pthread", "-std=gnu11"],
    extra_link_args=["-pthread"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
