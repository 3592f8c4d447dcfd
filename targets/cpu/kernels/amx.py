"""AMX tiles as the GEMM kernels use them: palette 1, tiles 0-7 each TILE_ROWS rows of 64 bytes,
by convention a 2 x 2 register tile of C in tiles 0-3, two A tiles in 4-5 and two B tiles in 6-7.
The OS must have granted the process the tile state (CPUTarget.host drops the amx features
otherwise)."""
from __future__ import annotations

from xdsl.dialects.builtin import IntegerType, i32

from pyflame_rt.targets.cpu.kernel_builder import KernelBuilder

TILE_ROWS = 16
AMX_TILE_CONFIG = 64  # bytes of the ldtilecfg operand


def amx(kb: KernelBuilder, name: str, *args) -> None:
    """An AMX intrinsic; tile operands are immediates (ints)."""
    kb.call_intrinsic(f"llvm.x86.{name}", *(kb.const(a, IntegerType(8)) if isinstance(a, int) else a for a in args),
                      result_type=None)


def load_tile_config(kb: KernelBuilder) -> None:
    """ldtilecfg: palette 1, tiles 0-7 of TILE_ROWS rows x 64 bytes."""
    cfg = kb.scratch(AMX_TILE_CONFIG // 4, i32)
    words = [1, 0, 0, 0] + [64 | 64 << 16] * 4 + [0] * 4 + [TILE_ROWS * 0x01010101] * 2 + [0] * 2
    for i, word in enumerate(words):
        kb.store(kb.const(word, i32), cfg, kb.const(i), elem=i32)
    amx(kb, "ldtilecfg", cfg)
