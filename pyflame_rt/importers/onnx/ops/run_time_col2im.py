"""Col2Im whose image_shape or block_shape is known only at run time (a graph input, or computed
from tensor values).

The geometry graph.col2im fixes at compile time is computed by graph ops on the two small argument
tensors (`ShapeArithmetic`): the block positions per spatial dim, and for every (block tap, block
position) pair of the input's last two dims the flat image element it adds into. One
ScatterElements with reduction add then sums the input into a zero image with one extra element,
which collects the taps that fall into the padding and is dropped.

Arguments the operator refuses (a size below 1, a block larger than the padded image, an input
whose dims do not match the block size and positions) make the bound `..._valid` dim -1: a
ShapeMismatchError before any kernel that depends on them runs.
"""
from __future__ import annotations

from xdsl.ir import SSAValue

from pyflame_rt.dialects import graph, graph_index as gi, graph_math as gm, graph_tensor as gt
from pyflame_rt.dialects.symbolic import dim_mul
from pyflame_rt.importers.onnx.converters import _NodeContext
from pyflame_rt.importers.onnx.ops.run_time_slices import positions
from pyflame_rt.importers.onnx.run_time_shapes import ShapeArithmetic


def _element(sa: ShapeArithmetic, v: SSAValue, i: int) -> SSAValue:
    """Element i of the 1-D v as [1]."""
    return sa.ctx.emit(gt.GatherOp, [v, sa.const([i])])[0]


def _suffix_products(sa: ShapeArithmetic, values: list[SSAValue]) -> list[SSAValue]:
    """For each position, the product of the values after it (row-major strides)."""
    out = [sa.const([1])]
    for v in reversed(values[1:]):
        out.insert(0, sa.mul(out[0], v))
    return out


def _coordinates(sa: ShapeArithmetic, flat: SSAValue, sizes: list[SSAValue]) -> list[SSAValue]:
    """The row-major multi-index of the flat positions over `sizes`."""
    return [sa.ctx.emit(gm.ModOp, [sa.div(flat, stride), sa.max(size, 1)])[0]
            for stride, size in zip(_suffix_products(sa, sizes), sizes)]


def col2im_at_run_time(ctx: _NodeContext, strides: list[int], dilations: list[int], pads: list[int]) -> list[SSAValue]:
    sa = ShapeArithmetic(ctx)
    x = ctx.input(0)
    image, block = sa.operand(1), sa.operand(2)
    spatial = sa.size(image)
    if sa.size(block) != spatial or not 1 <= spatial <= 3 or \
            any(len(v) != spatial for v in (strides, dilations)) or len(pads) != 2 * spatial:
        raise ctx.fail(f"needs 1 to 3 spatial dims and one image size, block size, stride and dilation per dim and "
                       f"two pads, got {spatial} image sizes, {sa.size(block)} block sizes, strides {strides}, "
                       f"dilations {dilations}, pads {pads}")
    if min(strides + dilations) < 1 or min(pads) < 0:
        raise ctx.fail("strides and dilations must be >= 1 and pads >= 0")
    span = sa.sub(sa.add(image, [p + q for p, q in zip(pads[:spatial], pads[spatial:])]),
                  sa.add(sa.mul(sa.sub(block, 1), dilations), 1))
    counts = sa.add(sa.div(span, strides), 1)
    taps, blocks, pixels = (sa.reduce("prod", v, keepdims=True) for v in (block, counts, image))
    channels_taps, length = (_element(sa, sa.dims(ctx.shape(x)[1:]), i) for i in (0, 1))
    channels = sa.div(channels_taps, taps)
    ok = sa.eq(sa.reduce("sum", sa.lt(sa.concat([image, block, sa.add(span, 1)]), 1)), 0)
    ok = sa.both(ok, sa.both(sa.eq(sa.mul(channels, taps), channels_taps), sa.eq(blocks, length)))
    c_dim, taps_dim, blocks_dim, pixels_dim, slots_dim, *image_dims = sa.bind(
        sa.concat([channels, taps, blocks, pixels, sa.add(pixels, 1), image]), "dims", ok,
        "the image and block sizes must be positive, the blocks fit the padded image and match the input")
    batch = ctx.shape(x)[0]
    count = dim_mul(taps_dim, blocks_dim)
    (x,) = ctx.emit(graph.ReshapeOp, [x], shape=[batch, c_dim, count])
    where = positions(sa, count)
    tap, place = sa.div(where, blocks), ctx.emit(gm.ModOp, [where, sa.max(blocks, 1)])[0]
    sizes = [[_element(sa, v, i) for i in range(spatial)] for v in (block, counts, image)]
    outside, flat = sa.const([0]), sa.const([0])
    for i, (k, b, stride) in enumerate(zip(_coordinates(sa, tap, sizes[0]), _coordinates(sa, place, sizes[1]),
                                           _suffix_products(sa, sizes[2]))):
        at = sa.sub(sa.add(sa.mul(b, strides[i]), sa.mul(k, dilations[i])), pads[i])
        outside = sa.add(outside, sa.cast(sa.lt(at, 0)))
        outside = sa.add(outside, sa.cast(sa.lt(sa.sub(sizes[2][i], 1), at)))
        flat = sa.add(flat, sa.mul(at, stride))
    inside = sa.eq(outside, 0)
    target = sa.reshape(sa.where(inside, flat, pixels), [1, 1, count])
    (target,) = ctx.emit(gt.ExpandOp, [target], shape=[batch, c_dim, count])
    (zeros,) = ctx.emit(gt.ConstantOfShapeOp, [], shape=[batch, c_dim, slots_dim],
                        dtype=graph.dtype_of(x.type).value)
    (out,) = ctx.emit(gi.ScatterElementsOp, [zeros, target, x], axis=2, reduction="add")
    (out,) = ctx.emit(gt.GatherOp, [out, positions(sa, pixels_dim)], axis=2)
    return ctx.emit(graph.ReshapeOp, [out], shape=[batch, c_dim, *image_dims])
