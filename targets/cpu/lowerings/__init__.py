"""Graph op -> kernel call lowerings, one module per op family.

A lowering is `fn(L: GraphLowering, op)` registered with `@lowering(OpType, ...)`;
it asks `L` for operand storage and emits kernel calls (see lower_graph.py). Ops
with a `layout` property have one lowering per layout (`layout="NHWC"`). A lowering
whose kernels compute float32 only says so (`float32_only=True`): the
`legalize-half-precision` pass runs the float16 / bfloat16 instances of its ops in
float32 between graph Casts.
"""
from pyflame_rt.targets.cpu.lowerings.registry import FLOAT32_ONLY, lowering_for, node_label  # noqa: F401
from pyflame_rt.targets.cpu.lowerings import elementwise, index, linalg, math, reduce, tensor, views  # noqa: F401
from pyflame_rt.targets.cpu.lowerings import conv, conv_transpose, movement, normalization, pooling, resize  # noqa: F401
from pyflame_rt.targets.cpu.lowerings import channels_last, determinant  # noqa: F401
