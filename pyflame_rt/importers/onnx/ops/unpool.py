"""MaxUnpool: the indices address the pooling geometry's unpooled size ((in - 1) * stride +
kernel - pads); the output shape is that, or output_shape when given: a constant, or, fed
at run time, the shape the model declares for the output (checked against the fed value)."""
from __future__ import annotations

from pyflame_rt.dialects import graph_pool_indices as pi
from pyflame_rt.importers.onnx.converters import _NodeContext, converter


def _default_spatial(ctx: _NodeContext, x_shape) -> list[int]:
    kernel = list(ctx.attrs["kernel_shape"])
    n = len(kernel)
    strides = list(ctx.attrs.get("strides", [1] * n))
    pads = list(ctx.attrs.get("pads", [0] * 2 * n))
    if len(x_shape) != n + 2 or len(strides) != n or len(pads) != 2 * n:
        raise ctx.fail(f"kernel_shape/strides/pads do not match input rank {len(x_shape)}")
    if not all(isinstance(d, int) for d in x_shape[2:]):
        raise ctx.fail("the input's spatial dims must be static")
    return [(x_shape[2 + i] - 1) * strides[i] + kernel[i] - pads[i] - pads[n + i] for i in range(n)]


@converter("MaxUnpool")
def _max_unpool(ctx: _NodeContext):
    x, idx, shape_in = ctx.input(0), ctx.input(1), ctx.input(2)
    x_shape = ctx.shape(x)
    spatial = box = _default_spatial(ctx, x_shape)
    fed = None
    if shape_in is not None:
        target = ctx.const_input(2)
        if target is None:
            target, fed = ctx.declared_shape(0), shape_in
            if target is None:
                raise ctx.fail("output_shape must be a constant, or the output's shape must be declared")
        target = [int(v) for v in target]
        if len(target) != len(x_shape) or any(isinstance(d, int) and d != t for d, t in zip(x_shape[:2], target)) \
                or any(t < b for t, b in zip(target[2:], box)):
            raise ctx.fail(f"output_shape {target} does not fit the input {list(map(str, x_shape))} unpooled to "
                           f"{box}")
        spatial = target[2:]
    return ctx.emit(pi.MaxUnpoolOp, [x, idx, fed], index_shape=box, spatial_shape=spatial)
