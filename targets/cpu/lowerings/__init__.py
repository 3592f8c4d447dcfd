"""Graph -> kernel patterns, one module per op family.

Each family module defines `GraphToKernelPattern`s (pattern.py) whose typed `match_and_rewrite`
picks the ops they lower, and lists them in its `PATTERNS`; `PATTERNS` here is the CPU target's
pattern list (lower-graph-to-kernel applies it, lower_graph.py). Ops with a `layout` property
have one pattern per layout (`layout = "NHWC"`). A pattern whose kernels compute float32 only
names those op types (`float32_only`): the `legalize-half-precision` pass runs their float16 /
bfloat16 instances in float32 between graph Casts.
"""
from pyflame_rt.targets.cpu.lowerings import (
    channels_last, control, conv, conv_transpose, detection, determinant, elementwise, index, linalg, math,
    movement, normalization, pooling, quant, recurrent, reduce, resize, tensor, views)

FAMILIES = (elementwise, math, views, movement, reduce, linalg, conv, conv_transpose, channels_last, pooling,
            normalization, resize, index, tensor, detection, determinant, recurrent, quant, control)
PATTERNS = tuple(pattern for family in FAMILIES for pattern in family.PATTERNS)
FLOAT32_ONLY = frozenset(op_type for pattern in PATTERNS for op_type in pattern.float32_only)
