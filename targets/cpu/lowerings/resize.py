"""Resampling: Resize / Upsample -> the table-driven resize kernel (an axis's tables are computed here,
at compile time, when its dims and scale are known then; else a table kernel computes them at run
time); GridSample and AffineGrid -> their kernels."""
from __future__ import annotations

import numpy as np
from xdsl.pattern_rewriter import PatternRewriter, op_type_rewrite_pattern

from pyflame_rt.dialects import graph_nn as nn
from pyflame_rt.dialects.assumptions import require_at_most, require_equal
from pyflame_rt.dialects.symbolic import Dim, dim_mul, numel
from pyflame_rt.errors import UnsupportedOperatorError
from pyflame_rt.limits import check_compile_array
from pyflame_rt.targets.cpu.kernels.affine_grid import AffineGridSpec, affine_grid_kernel
from pyflame_rt.targets.cpu.kernels.grid_sample import GridSampleSpec, grid_sample_kernel
from pyflame_rt.targets.cpu.kernels.resize import (
    RESIZE_FIELDS, RESIZE_TABLE_FIELDS, ResizeSpec, ResizeTableSpec, resize_kernel, resize_table_kernel)
from pyflame_rt.targets.cpu.lowerings.pattern import GraphToKernelPattern
from pyflame_rt.targets.cpu.lowerings.conv import require_float32

_NEAREST = {
    "round_prefer_floor": lambda x: np.ceil(x - 0.5),
    "round_prefer_ceil": lambda x: np.floor(x + 0.5),
    "floor": np.floor,
    "ceil": np.ceil,
}

# per output index: float64 coordinates and their temporaries, two int64 indices, a float32 weight
_TABLE_BYTES_PER_INDEX = 4 * 8 + 2 * 8 + 4


def source_coords(out: int, size: int, scale: float, mode: str) -> np.ndarray:
    """ONNX coordinate_transformation_mode: output index -> input coordinate."""
    o = np.arange(out, dtype=np.float64)
    if mode == "half_pixel":
        return (o + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (o + 0.5) / scale - 0.5 if out > 1 else np.zeros(out)
    if mode == "asymmetric":
        return o / scale
    if mode == "align_corners":
        # the spec's length_resized is size * scale, fractional for some scales
        return o * (size - 1) / (size * scale - 1) if out > 1 else np.zeros(out)
    if mode == "half_pixel_symmetric":
        return size / 2 * (1 - out / (scale * size)) + (o + 0.5) / scale - 0.5
    raise UnsupportedOperatorError(f"Resize coordinate_transformation_mode {mode} is not supported")


def cubic_tables(x: np.ndarray, size: int, a: float, exclude_outside: bool):
    """Cubic: the indices (clamped to the edge) and weights of the 4 taps of each output, row-major;
    with exclude_outside, taps outside the input weigh 0 and the others are renormalized."""
    first = np.floor(x)
    t = (x - first)[:, None]
    idx = first[:, None].astype(np.int64) + np.arange(-1, 3)
    d = np.abs(np.concatenate([t + 1, t, 1 - t, 2 - t], axis=1))
    w = np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a)
    if exclude_outside:
        w = np.where((idx >= 0) & (idx < size), w, 0)
        w /= w.sum(axis=1, keepdims=True)
    idx = np.clip(idx, 0, size - 1).ravel()
    return idx, idx, w.astype(np.float32).ravel()


def axis_tables(out: int, size: int, scale: float, op: nn.ResizeOp):
    """(first source index, second source index, weight of the second) per output index; cubic:
    `cubic_tables` (4 indices, the same table twice, and 4 weights per output index)."""
    x = source_coords(out, size, scale, op.coordinate_transformation_mode.data)
    if op.mode.data == "cubic":
        return cubic_tables(x, size, op.cubic_coeff_a.value.data, bool(op.exclude_outside.value.data))
    if op.mode.data == "nearest":
        i0 = np.clip(_NEAREST[op.nearest_mode.data](x), 0, size - 1).astype(np.int64)
        return i0, i0, np.zeros(out, np.float32)
    x = np.clip(x, 0, size - 1)
    i0 = np.floor(x).astype(np.int64)
    i1 = np.minimum(i0 + 1, size - 1)
    return i0, i1, (x - i0).astype(np.float32)


def _crop_check(L, op: nn.ResizeOp):
    return L.check(f"Resize node '{op.result.name_hint}': the CPU backend crops (tf_crop_and_resize) only the two "
                   f"trailing axes: the roi of any other axis must be [0, 1]")


def _leading_crops(op: nn.ResizeOp, axis: int) -> int:
    """The roi elements of axes before the two trailing ones (checked by the first trailing axis's
    table kernel); they must come first in `axes`, and both trailing axes must be cropped."""
    axes, rank = op.scale_axes(), len(op.scales)
    leading = sum(a < rank - 2 for a in axes)
    if sorted(axes[leading:]) != [rank - 2, rank - 1] or any(a >= rank - 2 for a in axes[:leading]):
        raise UnsupportedOperatorError("tf_crop_and_resize: the CPU backend crops the two trailing axes, listed "
                                       "last in axes")
    return leading if axis == rank - 2 else 0


def _taps(op: nn.ResizeOp) -> int:
    """Table entries per output index."""
    return 4 if op.mode.data == "cubic" else 1


class LowerResize(GraphToKernelPattern):
    float32_only = (nn.ResizeOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.ResizeOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.ResizeOp) -> None:
        require_float32(L, op)
        shape, out_shape = L.shapes[op.input], L.shapes[op.result]
        if op.nearest_mode.data not in _NEAREST:
            raise UnsupportedOperatorError(f"Resize nearest_mode {op.nearest_mode.data} is not supported")
        if len(shape) < 2 or any(isinstance(a, int) and isinstance(b, int) and a != b
                                 for a, b in zip(shape[:-2], out_shape[:-2])):
            raise UnsupportedOperatorError("the CPU backend resizes only the two trailing dims")
        for a, b in zip(shape[:-2], out_shape[:-2]):
            require_equal(b, a, "the CPU backend resizes only the two trailing dims")
        (ih, iw), (oh, ow) = shape[-2:], out_shape[-2:]
        tables = [loc for axis, names in ((len(shape) - 2, ("h0", "h1", "lh")), (len(shape) - 1, ("w0", "w1", "lw")))
                  for loc in self.tables(L, op, axis, names)]
        crop = op.coordinate_transformation_mode.data == "tf_crop_and_resize"
        spec = ResizeSpec(op.mode.data, op.extrapolation_value.value.data if crop else None)
        name = L.kernel(spec.name, lambda: resize_kernel(spec))
        fields = [L.loc(op.input), L.result_loc(op.result), *tables, ih, iw, oh, ow]
        assert len(fields) == len(RESIZE_FIELDS)
        # the grain: 4 per output for nearest and linear, a tap pair's loads for cubic
        L.call(name, fields, dim_mul(numel(shape[:-2]), oh), work_per_item=dim_mul(max(4, spec.taps ** 2), ow))

    @staticmethod
    def tables(L, op: nn.ResizeOp, axis: int, names: tuple[str, str, str]) -> list:
        """The (first index, second index, weight) tables of `axis`: weights when its dims and scale
        are known at compile time, else buffers a table kernel fills at run time."""
        size, out = L.shapes[op.input][axis], L.shapes[op.result][axis]
        run_time_scale = op.run_time_scales is not None and axis in op.scale_axes()
        crop = op.roi is not None
        if isinstance(size, int) and isinstance(out, int) and not run_time_scale and not crop:
            check_compile_array(out * _TABLE_BYTES_PER_INDEX * _taps(op),
                                f"Resize node '{op.result.name_hint}' (to {out})")
            scale = out / size if op.sizes is not None else float(op.scales.get_values()[axis])
            return [L.add_weight(f"resize_{n}", t) for n, t in zip(names, axis_tables(out, size, scale, op))]
        return run_time_tables(L, op, axis, size, out, run_time_scale)


def run_time_tables(L, op: nn.ResizeOp, axis: int, size: Dim, out: Dim, run_time_scale: bool) -> list:
    """Buffers the resize table kernel fills at run time (the resized dims are checked non-empty
    before any kernel runs: an empty input axis has no element to sample)."""
    require_at_most(1, size, f"Resize input dim {axis} must not be empty")
    require_at_most(1, out, f"Resize output dim {axis} must be positive")
    mode = op.mode.data
    spec = ResizeTableSpec(op.coordinate_transformation_mode.data, op.nearest_mode.data if mode == "nearest" else mode,
                           run_time_scale, op.cubic_coeff_a.value.data if mode == "cubic" else 0.0,
                           mode == "cubic" and bool(op.exclude_outside.value.data))
    name = L.kernel(spec.name, lambda: resize_table_kernel(spec))
    taps = _taps(op)
    first = L.new_buffer(dim_mul(out, 8 * taps))
    second = first if mode == "cubic" else L.new_buffer(dim_mul(out, 8))
    tables = [first, second, L.new_buffer(dim_mul(out, 4 * taps))]
    scales = L.loc(op.run_time_scales) if run_time_scale else L.null_buffer
    roi, status, code, leading = L.null_buffer, L.null_buffer, 0, 0
    if op.roi is not None:
        roi, (status, code), leading = L.loc(op.roi), _crop_check(L, op), _leading_crops(op, axis)
    k = op.scale_axes().index(axis) if run_time_scale or op.roi is not None else 0
    fields = [*tables, scales, roi, status, size, out, k, k, k + len(op.scale_axes()), code, leading]
    assert len(fields) == len(RESIZE_TABLE_FIELDS)
    L.call(name, fields, out, work_per_item=8)
    return tables


class LowerGridSample(GraphToKernelPattern):
    float32_only = (nn.GridSampleOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.GridSampleOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.GridSampleOp) -> None:
        require_float32(L, op)
        shape, out_shape = L.shapes[op.input], L.shapes[op.result]
        spatial = shape[2:]
        for k, d in enumerate(spatial):
            require_at_most(1, d, f"GridSample input spatial dim {k} must not be empty")
        spec = GridSampleSpec(len(spatial), op.mode.data, op.padding_mode.data, bool(op.align_corners.value.data))
        name = L.kernel(spec.name, lambda: grid_sample_kernel(spec))
        points = numel(out_shape[2:])
        fields = [L.loc(op.input), L.loc(op.grid), L.result_loc(op.result), shape[1], points, *spatial]
        assert len(fields) == len(spec.fields)
        taps = {"nearest": 1, "linear": 2, "cubic": 4}[op.mode.data] ** len(spatial)
        L.call(name, fields, dim_mul(shape[0], points), work_per_item=dim_mul(shape[1], taps))


class LowerAffineGrid(GraphToKernelPattern):
    float32_only = (nn.AffineGridOp,)

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: nn.AffineGridOp, rewriter: PatternRewriter) -> None:
        self.convert(op, rewriter)

    def lower(self, L, op: nn.AffineGridOp) -> None:
        require_float32(L, op)
        out_shape = L.shapes[op.result]
        spatial = out_shape[1:-1]
        spec = AffineGridSpec(len(spatial), bool(op.align_corners.value.data))
        name = L.kernel(spec.name, lambda: affine_grid_kernel(spec))
        points = numel(spatial)
        fields = [L.loc(op.input), L.result_loc(op.result), points, *spatial]
        assert len(fields) == len(spec.fields)
        L.call(name, fields, dim_mul(out_shape[0], points), work_per_item=len(spatial) ** 2)


PATTERNS = (LowerResize, LowerGridSample, LowerAffineGrid)
