"""`graph` ops for CNNs: convolution, pooling, normalization, resizing and data movement.

Attributes are normalized at import (auto_pad resolved to explicit pads, opset
differences between attribute and input forms removed), so every op here carries
plain integer lists. Spatial dims of conv / pool / resize inputs must be static;
batch and channel dims may be symbolic and flow through `infer_shapes`.

`graph.conv` takes an optional `residual` operand and `activation`, both applied in
the kernel's epilogue; the optimizer's fusion passes set them (Conv + Add, Conv +
Relu), importers do not. Its format names every property:

    graph.conv %x, %w, %b residual %r : tensor<...> strides [1, 1] dilations [1, 1] pads [1, 1, 1, 1]
        group 4 layout NHWC activation <relu> : (tensor<...>, tensor<...>, tensor<...>) -> tensor<...>

(group, layout, residual and activation only when not the default / present).

Conv, the pools and the global pools carry a `layout`: NCHW (ONNX's, the default)
or NHWC (channels last, 2-D only), set by `optimize-layout` for the ops the
target has channels-last kernels for. The layout applies to the input and the
result; conv weights keep ONNX's [M, C/group, kh, kw].
"""
from __future__ import annotations

from typing import Callable, ClassVar, Sequence

from xdsl.dialects.builtin import (
    ArrayAttr, BoolAttr, DenseArrayBase, FloatAttr, IntegerAttr, StringAttr, TensorType, f32, f64, i64)
from xdsl.ir import Attribute, SSAValue
from xdsl.irdl import (
    AttrSizedOperandSegments,
    ParsePropInAttrDict,
    irdl_op_definition,
    operand_def,
    opt_operand_def,
    opt_prop_def,
    prop_def,
    result_def,
)

from pyflame_rt.dialects.assumptions import (
    require_at_most, require_equal, require_multiple, require_same_shape, require_sum)
from pyflame_rt.dialects.graph import (
    GraphOp, UnaryOp, VariadicOp, activation_prop, activation_props, keep_node_name)
from pyflame_rt.dialects.graph_attrs import (
    ActivationAttr, CoordinateMode, CoordinateModeAttr, GridPaddingMode, GridPaddingModeAttr, Layout, LayoutAttr,
    NearestMode, NearestModeAttr, PadMode, PadModeAttr, ResizeMode, ResizeModeAttr, enum_attr)
from pyflame_rt.dialects.symbolic import Dim, Shape, dim_add, dim_div, dim_mul, parse_dim
from pyflame_rt.dialects.graph_math import FLOAT_DTYPES
from pyflame_rt.dialects.graph_tensor import attr_dims, dims_attr
from pyflame_rt.dtype import DType
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError


def _ints(values: Sequence[int]) -> DenseArrayBase:
    """An i64 array property."""
    return DenseArrayBase.from_list(i64, [int(v) for v in values])


def _vals(attr: DenseArrayBase | None) -> list:
    return list(attr.get_values()) if attr is not None else []


def _static(d: Dim, what: str) -> int:
    if not isinstance(d, int):
        raise ShapeMismatchError(f"{what} must be static, got '{d}'")
    return d


def _axis(axis: int, rank: int, what: str = "axis") -> int:
    if not -rank <= axis < rank:
        raise ShapeMismatchError(f"{what} {axis} out of range for rank {rank}")
    return axis % rank


def window_out(size: int, k: int, stride: int, dilation: int, pad: int, ceil_mode: bool = False) -> int:
    """Output extent of a sliding window (ONNX Conv / Pool formula)."""
    span = dilation * (k - 1) + 1
    num = size + pad - span
    if num < 0:
        raise ShapeMismatchError(f"window of extent {span} does not fit input {size} padded by {pad}")
    return (-(-num // stride) if ceil_mode else num // stride) + 1


def ints_prop():
    """An i64 array property: `[1, 2]` where a format names it, `array<i64: 1, 2>` in attr-dict."""
    return prop_def(DenseArrayBase.constr(i64))


def layout_prop():
    """The `layout` property of the layout-carrying ops (default NCHW)."""
    return prop_def(LayoutAttr, default_value=LayoutAttr(Layout.NCHW))


def channels_first(shape: Shape, layout: str) -> Shape:
    """An NHWC shape as NCHW (identity for NCHW)."""
    if layout == Layout.NCHW:
        return tuple(shape)
    if len(shape) != 4:
        raise ShapeMismatchError(f"the NHWC layout needs a rank-4 tensor, got rank {len(shape)}")
    return (shape[0], shape[3], shape[1], shape[2])


def channels_last(shape: Shape, layout: str) -> Shape:
    """An NCHW shape in `layout` (the inverse of channels_first)."""
    return (shape[0], shape[2], shape[3], shape[1]) if layout == Layout.NHWC else tuple(shape)


class _Attrs:
    """Shared accessors for windowed ops' integer-list properties."""

    def ints(self, name: str) -> list[int]:
        return [int(v) for v in _vals(getattr(self, name))]

    @property
    def data_layout(self) -> Layout:
        return self.layout.data


# ------------------------------------------------------------ convolution


class _ConvBase(GraphOp, _Attrs):
    input = operand_def(TensorType)
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    strides = ints_prop()
    dilations = ints_prop()
    pads = ints_prop()  # begin..., end...
    group = prop_def(IntegerAttr.constr(i64), default_value=IntegerAttr(1, i64))
    result = result_def(TensorType)

    @property
    def groups(self) -> int:
        return self.group.value.data

    def _check_attrs(self, nsp: int, min_pad: int | None = 0) -> None:
        """min_pad None: pads may be negative (a ConvTranspose output_shape beyond the full output)."""
        for name, n in (("strides", nsp), ("dilations", nsp), ("pads", 2 * nsp)):
            vals = self.ints(name)
            if len(vals) != n:
                raise ShapeMismatchError(f"{self.name}: {name} has {len(vals)} values, expected {n}")
            if name != "pads" and min(vals) < 1 or name == "pads" and min_pad is not None and min(vals) < min_pad:
                raise ShapeMismatchError(f"{self.name}: invalid {name} {vals}")
        if self.groups < 1:
            raise ShapeMismatchError(f"{self.name}: group must be >= 1")


@irdl_op_definition
class ConvOp(_ConvBase):
    """N-d convolution, NC<spatial> (or 2-D NHWC) layout, weight [M, C/group, k...] (ONNX Conv).

    The optional `residual` (a tensor of the result's shape) is added in the
    epilogue before the activation: relu(conv(x) + bias + residual), the ResNet
    block's Add + Relu fused into the convolution.
    """

    name = "graph.conv"
    input = operand_def(TensorType)  # restated: subclass operands come first in IRDL's order
    weight = operand_def(TensorType)
    bias = opt_operand_def(TensorType)
    residual = opt_operand_def(TensorType)
    activation = activation_prop()
    layout = layout_prop()
    irdl_options = (ParsePropInAttrDict(), AttrSizedOperandSegments(as_property=True))
    assembly_format = ("$input `,` $weight (`,` $bias^)? (`residual` $residual^ `:` type($residual))? "
                       "`strides` $strides `dilations` $dilations `pads` $pads (`group` $group^)? (`layout` $layout^)? "
                       "(`activation` $activation^)? attr-dict "
                       "`:` `(` type($input) `,` type($weight) (`,` type($bias)^)? `)` `->` type($result)")

    def __init__(self, input, weight, bias, result_type, *, strides, dilations, pads, group=1,
                 activation: ActivationAttr | None = None, residual=None, layout: str = "NCHW"):
        super().__init__(operands=[input, weight, [bias] if bias is not None else [],
                                   [residual] if residual is not None else []],
                         result_types=[result_type],
                         properties={"strides": _ints(strides), "dilations": _ints(dilations), "pads": _ints(pads),
                                     "group": IntegerAttr(group, i64), "layout": enum_attr(LayoutAttr, layout),
                                     **activation_props(activation)})

    def rebuilt(self, *, weight=None, bias=None, result_type=None, activation=None, residual=None) -> "ConvOp":
        """The same convolution (input, window attributes, layout) with the given operands replaced and
        the given epilogue; what the fusion passes build."""
        return keep_node_name(self, ConvOp(
            self.input, weight or self.weight, bias or self.bias, result_type or self.result.type,
            strides=self.ints("strides"), dilations=self.ints("dilations"), pads=self.ints("pads"),
            group=self.groups, activation=activation, residual=residual, layout=self.data_layout))

    def infer_shapes(self, shapes):
        x, w = channels_first(shapes[0], self.data_layout), shapes[1]
        if len(x) < 3 or len(w) != len(x):
            raise ShapeMismatchError(f"Conv needs input and weight of equal rank >= 3, got {len(x)} and {len(w)}")
        nsp = len(x) - 2
        self._check_attrs(nsp)
        g = self.groups
        require_equal(x[1], dim_mul(w[1], g), f"Conv input channels differ from weight channels x group {g}")
        require_multiple(w[0], g, f"Conv output channels are not divisible by group {g}")
        if self.bias is not None:
            require_same_shape(shapes[2], (w[0],), "Conv bias shape differs from [output channels]")
        st, dl, pd = self.ints("strides"), self.ints("dilations"), self.ints("pads")
        sp = [window_out(_static(x[2 + i], "Conv spatial dim"), _static(w[2 + i], "Conv kernel dim"),
                         st[i], dl[i], pd[i] + pd[nsp + i]) for i in range(nsp)]
        out = channels_last((x[0], w[0], *sp), self.data_layout)
        if self.residual is not None:
            require_same_shape(shapes[-1], out, "Conv residual shape differs from the result's")
        return [out]


@irdl_op_definition
class ConvTransposeOp(_ConvBase):
    """Transposed convolution, weight [C, M/group, k...] (ONNX ConvTranspose, explicit pads; a
    negative pad extends the output, as an output_shape larger than the full output does)."""

    name = "graph.conv_transpose"
    output_padding = ints_prop()
    assembly_format = ("$input `,` $weight (`,` $bias^)? `strides` $strides `dilations` $dilations `pads` $pads "
                       "`output_padding` $output_padding (`group` $group^)? attr-dict "
                       "`:` functional-type(operands, results)")

    def __init__(self, input, weight, bias, result_type, *, strides, dilations, pads, output_padding,
                 group=1):
        super().__init__(operands=[input, weight, [bias] if bias is not None else []],
                         result_types=[result_type],
                         properties={"strides": _ints(strides), "dilations": _ints(dilations),
                                     "pads": _ints(pads), "output_padding": _ints(output_padding),
                                     "group": IntegerAttr(group, i64)})

    def infer_shapes(self, shapes):
        x, w = shapes[0], shapes[1]
        if len(x) < 3 or len(w) != len(x):
            raise ShapeMismatchError("ConvTranspose needs input and weight of equal rank >= 3")
        nsp = len(x) - 2
        self._check_attrs(nsp, min_pad=None)
        require_equal(x[1], w[0], "ConvTranspose input channels differ from the weight's")
        require_multiple(w[0], self.groups, f"ConvTranspose input channels are not divisible by group {self.groups}")
        st, dl, pd, op = (self.ints(n) for n in ("strides", "dilations", "pads", "output_padding"))
        if len(op) != nsp:
            raise ShapeMismatchError("ConvTranspose output_padding length differs from the spatial rank")
        sp = []
        for i in range(nsp):
            n = (st[i] * (_static(x[2 + i], "ConvTranspose spatial dim") - 1) + op[i]
                 + (_static(w[2 + i], "kernel dim") - 1) * dl[i] + 1 - pd[i] - pd[nsp + i])
            if n < 1:
                raise ShapeMismatchError(f"ConvTranspose output spatial dim {n} < 1")
            sp.append(n)
        return [(x[0], dim_mul(w[1], self.groups), *sp)]


@irdl_op_definition
class Col2ImOp(UnaryOp, _Attrs):
    """Sum sliding blocks back into an image (ONNX Col2Im): input [N, C * prod(block_shape), L] with
    L the number of block positions, result [N, C, *image_shape]; ConvTranspose's scatter-add."""

    name = "graph.col2im"
    image_shape = ints_prop()
    block_shape = ints_prop()
    strides = ints_prop()
    dilations = ints_prop()
    pads = ints_prop()  # begin..., end...
    assembly_format = ("$input `image` $image_shape `block` $block_shape `strides` $strides `dilations` $dilations "
                       "`pads` $pads attr-dict `:` functional-type(operands, results)")

    def __init__(self, input, result_type, *, image_shape, block_shape, strides, dilations, pads):
        super().__init__(input, result_type, image_shape=_ints(image_shape), block_shape=_ints(block_shape),
                         strides=_ints(strides), dilations=_ints(dilations), pads=_ints(pads))

    def block_counts(self) -> list[int]:
        """The block positions along each spatial dim."""
        image, block, st, dl, pd = (self.ints(n) for n in
                                    ("image_shape", "block_shape", "strides", "dilations", "pads"))
        nsp = len(image)
        if not 1 <= nsp <= 3 or any(len(v) != nsp for v in (block, st, dl)) or len(pd) != 2 * nsp:
            raise ShapeMismatchError(f"Col2Im needs 1 to 3 spatial dims and one block, stride and dilation per dim "
                                     f"and two pads, got image {image}, block {block}, strides {st}, "
                                     f"dilations {dl}, pads {pd}")
        if min(image + block + st + dl) < 1 or min(pd) < 0:
            raise ShapeMismatchError("Col2Im sizes, strides and dilations must be >= 1 and pads >= 0")
        return [window_out(image[i], block[i], st[i], dl[i], pd[i] + pd[nsp + i]) for i in range(nsp)]

    def infer_shapes(self, shapes):
        x = shapes[0]
        if len(x) != 3:
            raise ShapeMismatchError(f"Col2Im needs an input of rank 3, got rank {len(x)}")
        taps, blocks = 1, 1
        for k, n in zip(self.ints("block_shape"), self.block_counts()):
            taps, blocks = taps * k, blocks * n
        require_multiple(x[1], taps, f"Col2Im input dim 1 is not a multiple of the block size {taps}")
        require_equal(x[2], blocks, f"Col2Im input dim 2 differs from the {blocks} block positions")
        return [(x[0], dim_div(x[1], taps), *self.ints("image_shape"))]


# ---------------------------------------------------------------- pooling


class WindowOp(UnaryOp, _Attrs):
    """A pooling window slid over the spatial dims of one input."""

    kernel_shape = ints_prop()
    strides = ints_prop()
    dilations = ints_prop()
    pads = ints_prop()
    ceil_mode = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    layout = layout_prop()

    def __init__(self, input, result_type, **window):
        super().__init__(input, result_type, **self.window_props(**window))

    @staticmethod
    def window_props(*, kernel_shape, strides, dilations, pads, ceil_mode=False, layout="NCHW",
                     **properties: Attribute) -> dict[str, Attribute]:
        return {"kernel_shape": _ints(kernel_shape), "strides": _ints(strides), "dilations": _ints(dilations),
                "pads": _ints(pads), "ceil_mode": BoolAttr.from_bool(ceil_mode),
                "layout": enum_attr(LayoutAttr, layout), **properties}

    def infer_shapes(self, shapes):
        x = channels_first(shapes[0], self.data_layout)
        k = self.ints("kernel_shape")
        nsp = len(k)
        if len(x) != nsp + 2:
            raise ShapeMismatchError(f"{self.name}: input rank {len(x)} but kernel_shape has {nsp} dims")
        st, dl, pd = self.ints("strides"), self.ints("dilations"), self.ints("pads")
        if len(st) != nsp or len(dl) != nsp or len(pd) != 2 * nsp or min(k + st + dl) < 1 or min(pd) < 0:
            raise ShapeMismatchError(f"{self.name}: inconsistent kernel_shape/strides/dilations/pads")
        ceil = self.ceil_mode.value.data
        sp = []
        for i in range(nsp):
            size = _static(x[2 + i], f"{self.name} spatial dim")
            out = window_out(size, k[i], st[i], dl[i], pd[i] + pd[nsp + i], ceil)
            if ceil and (out - 1) * st[i] >= size + pd[i]:
                out -= 1  # the last window must start inside the input or its begin padding
            sp.append(out)
        return [channels_last((x[0], x[1], *sp), self.data_layout)]


@irdl_op_definition
class MaxPoolOp(WindowOp):
    name = "graph.max_pool"


@irdl_op_definition
class AveragePoolOp(WindowOp):
    name = "graph.average_pool"
    count_include_pad = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))

    def __init__(self, input, result_type, *, count_include_pad=False, **window):
        super().__init__(input, result_type, count_include_pad=BoolAttr.from_bool(count_include_pad), **window)


class GlobalPoolOp(UnaryOp, _Attrs):
    """A reduction over all spatial dims, which stay as size 1."""

    layout = layout_prop()

    def __init__(self, input, result_type, layout: str = "NCHW"):
        super().__init__(input, result_type, layout=enum_attr(LayoutAttr, layout))

    def infer_shapes(self, shapes):
        x = channels_first(shapes[0], self.data_layout)
        if len(x) < 3:
            raise ShapeMismatchError(f"{self.name} needs rank >= 3, got {len(x)}")
        return [channels_last((x[0], x[1]) + (1,) * (len(x) - 2), self.data_layout)]


@irdl_op_definition
class GlobalAveragePoolOp(GlobalPoolOp):
    name = "graph.global_average_pool"


@irdl_op_definition
class GlobalMaxPoolOp(GlobalPoolOp):
    name = "graph.global_max_pool"


# ---------------------------------------------------------- normalization


class NormalizationOp(GraphOp):
    """Normalizes `input` by statistics (its own or given ones), then scales and shifts it; `epsilon`
    keeps the variance off zero. The input and the parameters are float tensors, the parameters of
    the input's type unless the operator lets them differ; results beyond the first (statistics)
    are float32."""

    epsilon = prop_def(FloatAttr, default_value=FloatAttr(1e-5, f32))
    PARAMETERS_LIKE_INPUT: ClassVar[bool] = True

    def infer_dtypes(self, dtypes):
        x, params = dtypes[0], dtypes[1:]
        if x not in FLOAT_DTYPES or any(p not in FLOAT_DTYPES for p in params):
            raise DTypeMismatchError(f"{self.name} needs float tensors, got {[d.value for d in dtypes]}")
        if self.PARAMETERS_LIKE_INPUT and any(p is not x for p in params):
            raise DTypeMismatchError(f"{self.name}: the parameters must be {x.value}, got {[p.value for p in params]}")
        return [x] + [DType.FLOAT32] * (len(self.results) - 1)


class ChannelNormOp(NormalizationOp):
    """A normalization whose parameters (every operand after the input) are [C], C the input's dim 1."""

    result = result_def(TensorType)
    assembly_format = "operands attr-dict `:` functional-type(operands, results)"
    MIN_RANK: ClassVar[int] = 2

    def __init__(self, *operands: SSAValue, result_type: TensorType, epsilon: float = 1e-5):
        super().__init__(operands=list(operands), result_types=[result_type],
                         properties={"epsilon": FloatAttr(epsilon, f32)})

    def infer_shapes(self, shapes):
        x = shapes[0]
        if len(x) < self.MIN_RANK:
            raise ShapeMismatchError(f"{self.name} needs rank >= {self.MIN_RANK}, got {len(x)}")
        for p in shapes[1:]:
            require_same_shape(p, (x[1],), f"{self.name} parameter shape differs from [channels]")
        return [x]


@irdl_op_definition
class BatchNormOp(ChannelNormOp):
    """Inference-mode batch normalization with running statistics (ONNX BatchNormalization, whose
    scale / bias and mean / var may each have their own float type)."""

    name = "graph.batch_norm"
    input = operand_def(TensorType)
    scale = operand_def(TensorType)
    bias = operand_def(TensorType)
    mean = operand_def(TensorType)
    var = operand_def(TensorType)
    PARAMETERS_LIKE_INPUT: ClassVar[bool] = False


@irdl_op_definition
class InstanceNormOp(ChannelNormOp):
    """Normalization over the spatial dims of each (batch, channel) plane."""

    name = "graph.instance_norm"
    input = operand_def(TensorType)
    scale = operand_def(TensorType)
    bias = operand_def(TensorType)
    MIN_RANK: ClassVar[int] = 3


@irdl_op_definition
class LRNOp(UnaryOp):
    """Local response normalization across channels (ONNX LRN)."""

    name = "graph.lrn"
    size = prop_def(IntegerAttr)
    alpha = prop_def(FloatAttr, default_value=FloatAttr(1e-4, f32))
    beta = prop_def(FloatAttr, default_value=FloatAttr(0.75, f32))
    bias = prop_def(FloatAttr, default_value=FloatAttr(1.0, f32))

    def __init__(self, input, result_type, *, size, alpha=1e-4, beta=0.75, bias=1.0):
        super().__init__(input, result_type, size=IntegerAttr(size, i64), alpha=FloatAttr(alpha, f32),
                         beta=FloatAttr(beta, f32), bias=FloatAttr(bias, f32))

    def infer_shapes(self, shapes):
        if len(shapes[0]) < 3 or self.size.value.data < 1:
            raise ShapeMismatchError("LRN needs rank >= 3 and size >= 1")
        return [shapes[0]]


# ---------------------------------------------------------- data movement


@irdl_op_definition
class PadOp(UnaryOp):
    """Pad with a constant, by reflection or by edge replication; pads = begin..., end... (>= 0)."""

    name = "graph.pad"
    pads = ints_prop()
    mode = prop_def(PadModeAttr, default_value=PadModeAttr(PadMode.CONSTANT))
    value = prop_def(FloatAttr, default_value=FloatAttr(0.0, f32))

    def __init__(self, input, result_type, *, pads, mode="constant", value=0.0):
        super().__init__(input, result_type, pads=_ints(pads), mode=enum_attr(PadModeAttr, mode),
                         value=FloatAttr(value, f32))

    def infer_shapes(self, shapes):
        x = shapes[0]
        pads = [int(p) for p in _vals(self.pads)]
        mode = self.mode.data
        if len(pads) != 2 * len(x) or min(pads, default=0) < 0:
            raise ShapeMismatchError(f"Pad needs {2 * len(x)} non-negative pads, got {pads}")
        out = []
        for i, d in enumerate(x):
            b, e = pads[i], pads[len(x) + i]
            if b == 0 and e == 0:
                out.append(d)
                continue
            d = _static(d, "a padded dim")
            if mode == "reflect" and max(b, e) >= d or mode == "edge" and d == 0:
                raise ShapeMismatchError(f"Pad mode {mode} cannot pad dim {d} by {b},{e}")
            out.append(d + b + e)
        return [tuple(out)]


@irdl_op_definition
class ResizeOp(GraphOp):
    """Resize: out = sizes (dims, possibly bound at run time), or floor(in * scales) (ONNX Resize /
    Upsample). With `run_time_scales` (a float32 tensor computed or fed at run time; element k scales
    axis `axes[k]`) `sizes` are the dims the run binds from floor(in * scale), and the coordinate
    transform reads the scale from the tensor: it is not out / in. With coordinate_transformation_mode
    tf_crop_and_resize, `roi` (float32, starts then ends of the `axes`) is the crop, and an output
    sampling outside the input is `extrapolation_value`."""

    name = "graph.resize"
    input = operand_def(TensorType)
    run_time_scales = opt_operand_def(TensorType)
    roi = opt_operand_def(TensorType)
    result = result_def(TensorType)
    scales = prop_def(DenseArrayBase)
    sizes = opt_prop_def(ArrayAttr)
    axes = opt_prop_def(DenseArrayBase)
    mode = prop_def(ResizeModeAttr, default_value=ResizeModeAttr(ResizeMode.NEAREST))
    coordinate_transformation_mode = prop_def(CoordinateModeAttr,
                                              default_value=CoordinateModeAttr(CoordinateMode.HALF_PIXEL))
    nearest_mode = prop_def(NearestModeAttr, default_value=NearestModeAttr(NearestMode.ROUND_PREFER_FLOOR))
    cubic_coeff_a = prop_def(FloatAttr, default_value=FloatAttr(-0.75, f64))
    exclude_outside = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    extrapolation_value = prop_def(FloatAttr, default_value=FloatAttr(0.0, f64))
    irdl_options = (ParsePropInAttrDict(), AttrSizedOperandSegments(as_property=True))
    assembly_format = ("$input (`scales` $run_time_scales^ `:` type($run_time_scales))? (`roi` $roi^ `:` type($roi))? "
                       "attr-dict `:` `(` type($input) `)` `->` type($result)")

    def __init__(self, input, run_time_scales=None, roi=None, *, result_type, scales, sizes=None, axes=None,
                 mode="nearest", coordinate_transformation_mode="half_pixel", nearest_mode="round_prefer_floor",
                 cubic_coeff_a=-0.75, exclude_outside=False, extrapolation_value=0.0):
        super().__init__(operands=[input, [run_time_scales] if run_time_scales is not None else [],
                                   [roi] if roi is not None else []],
                         result_types=[result_type],
                         properties={"scales": DenseArrayBase.from_list(f64, [float(s) for s in scales]),
                                     "mode": enum_attr(ResizeModeAttr, mode),
                                     "coordinate_transformation_mode": enum_attr(CoordinateModeAttr,
                                                                                 coordinate_transformation_mode),
                                     "nearest_mode": enum_attr(NearestModeAttr, nearest_mode),
                                     "cubic_coeff_a": FloatAttr(float(cubic_coeff_a), f64),
                                     "exclude_outside": BoolAttr.from_bool(bool(exclude_outside)),
                                     "extrapolation_value": FloatAttr(float(extrapolation_value), f64),
                                     **({} if sizes is None else {"sizes": dims_attr(sizes)}),
                                     **({} if axes is None else {"axes": _ints(axes)})})

    def scale_axes(self) -> list[int]:
        """The axis each element of `run_time_scales` scales (and each start / end of `roi` crops)."""
        return [int(a) for a in self.axes.get_values()] if self.axes is not None else list(range(len(self.scales)))

    def infer_shapes(self, shapes):
        x = shapes[0]
        scales = [float(s) for s in _vals(self.scales)]
        sizes = attr_dims(self.sizes) if self.sizes is not None else ()
        if len(scales) != len(x) or sizes and len(sizes) != len(x):
            raise ShapeMismatchError(f"Resize needs {len(x)} scales/sizes")
        out = []
        for i, d in enumerate(x):
            if sizes:
                out.append(sizes[i])
            elif scales[i] == 1.0:
                out.append(d)
            elif not isinstance(d, int) and scales[i].is_integer():
                out.append(dim_mul(d, int(scales[i])))
            else:
                out.append(int(_static(d, "a dim resized by a fractional scale") * scales[i]))
            if isinstance(out[-1], int) and out[-1] < 1 and d != 0:  # an empty dim stays empty
                raise ShapeMismatchError(f"Resize output dim {out[-1]} < 1")
        return [tuple(out)]


@irdl_op_definition
class GridSampleOp(GraphOp):
    """Sample input [N, C, D1..Dr] at the points of grid [N, O1..Or, r] (ONNX GridSample): grid[..., k]
    is the normalized coordinate in [-1, 1] of spatial axis r - 1 - k (x, y, z: last axis first);
    the result is [N, C, O1..Or]."""

    name = "graph.grid_sample"
    input = operand_def(TensorType)
    grid = operand_def(TensorType)
    result = result_def(TensorType)
    mode = prop_def(ResizeModeAttr, default_value=ResizeModeAttr(ResizeMode.LINEAR))
    padding_mode = prop_def(GridPaddingModeAttr, default_value=GridPaddingModeAttr(GridPaddingMode.ZEROS))
    align_corners = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))
    assembly_format = "$input `,` $grid attr-dict `:` functional-type(operands, results)"

    def __init__(self, input, grid, *, result_type, mode="linear", padding_mode="zeros", align_corners=False):
        super().__init__(operands=[input, grid], result_types=[result_type],
                         properties={"mode": enum_attr(ResizeModeAttr, mode),
                                     "padding_mode": enum_attr(GridPaddingModeAttr, padding_mode),
                                     "align_corners": BoolAttr.from_bool(bool(align_corners))})

    def infer_shapes(self, shapes):
        x, grid = shapes
        if len(x) < 3 or len(grid) != len(x) or grid[-1] != len(x) - 2:
            raise ShapeMismatchError(f"GridSample of a {len(x)}-d input needs a grid [N, ..., {len(x) - 2}], "
                                     f"got {len(grid)}-d grid with last dim {grid[-1] if grid else None}")
        return [(require_equal(grid[0], x[0], "GridSample grid batch"), x[1], *grid[1:-1])]

    def infer_dtypes(self, dtypes):
        if dtypes[1] not in FLOAT_DTYPES:
            raise DTypeMismatchError(f"GridSample grid must be a float tensor, got {dtypes[1].value}")
        return [dtypes[0]]


@irdl_op_definition
class AffineGridOp(UnaryOp):
    """The sampling grid [N, D1..Dr, r] of affine matrices theta [N, r, r + 1] over an output of
    `size` [N, C, D1..Dr] (ONNX AffineGrid): point (x, y[, z]) = theta . (base x, base y[, z], 1), the
    base coordinates spanning [-1, 1] (pixel corners with align_corners, else pixel centers)."""

    name = "graph.affine_grid"
    size = prop_def(ArrayAttr)
    align_corners = prop_def(BoolAttr, default_value=BoolAttr.from_bool(False))

    def __init__(self, input, *, result_type, size, align_corners=False):
        super().__init__(input, result_type, size=dims_attr(size),
                         align_corners=BoolAttr.from_bool(bool(align_corners)))

    def infer_shapes(self, shapes):
        theta, size = shapes[0], attr_dims(self.size)
        r = len(size) - 2
        if r not in (2, 3) or len(theta) != 3 or theta[1:] != (r, r + 1):
            raise ShapeMismatchError(f"AffineGrid of a size of {len(size)} dims needs theta [N, {r}, {r + 1}], "
                                     f"got {list(theta)}")
        return [(require_equal(theta[0], size[0], "AffineGrid theta batch vs size[0]"), *size[2:], r)]


@irdl_op_definition
class ConcatOp(VariadicOp):
    """The inputs joined along `axis` (ONNX Concat: no default axis, rank >= 1). Along that axis
    the result has the sum of the extents, a sum symbol (`past+seq`, symbolic.dim_add) when some
    are dynamic; or `total`, when given: a dim the run binds from elsewhere (such as a KV cache's
    total length from the attention mask), required equal to the sum."""

    name = "graph.concat"
    axis = prop_def(IntegerAttr)
    total = opt_prop_def(StringAttr)

    def __init__(self, *inputs: SSAValue, result_type: TensorType, axis: int, total: Dim | None = None):
        super().__init__(*inputs, result_type=result_type, axis=IntegerAttr(axis, i64),
                         **({} if total is None else {"total": StringAttr(str(total))}))

    def infer_shapes(self, shapes):
        if not shapes:
            raise ShapeMismatchError("Concat needs at least one input")
        rank = len(shapes[0])
        axis = _axis(self.axis.value.data, rank)
        for s in shapes:
            if len(s) != rank:
                raise ShapeMismatchError("Concat inputs differ in rank")
            for i, (a, b) in enumerate(zip(s, shapes[0])):
                if i != axis:
                    require_equal(a, b, f"Concat inputs differ in dim {i} (an input vs the first)")
        parts = [s[axis] for s in shapes]
        if self.total is not None:
            total = parse_dim(self.total.data)
            require_sum([p for p in parts if p != 0], total,
                        "Concat extents along the axis do not add up to the declared total")
        else:
            total = 0
            for part in parts:
                total = dim_add(total, part)
        return [tuple(total if i == axis else d for i, d in enumerate(shapes[0]))]


@irdl_op_definition
class TransposeOp(UnaryOp):
    name = "graph.transpose"
    perm = ints_prop()

    def __init__(self, input, result_type, *, perm):
        super().__init__(input, result_type, perm=_ints(perm))

    def infer_shapes(self, shapes):
        perm = [int(p) for p in _vals(self.perm)]
        if sorted(perm) != list(range(len(shapes[0]))):
            raise ShapeMismatchError(f"Transpose perm {perm} is not a permutation of rank {len(shapes[0])}")
        return [tuple(shapes[0][p] for p in perm)]


class AxesOp(UnaryOp):
    """An op over a list of axes of its input."""

    axes = ints_prop()

    def __init__(self, input, result_type, *, axes):
        super().__init__(input, result_type, axes=_ints(axes))


@irdl_op_definition
class SqueezeOp(AxesOp):
    """Remove size-1 dims at `axes` (empty: every static size-1 dim)."""

    name = "graph.squeeze"

    def infer_shapes(self, shapes):
        x = shapes[0]
        axes = {_axis(int(a), len(x)) for a in _vals(self.axes)} or {i for i, d in enumerate(x) if d == 1}
        for a in axes:
            require_equal(x[a], 1, f"Squeeze axis {a} does not have size 1")
        return [tuple(d for i, d in enumerate(x) if i not in axes)]


@irdl_op_definition
class UnsqueezeOp(AxesOp):
    """Insert size-1 dims so that they sit at `axes` of the result."""

    name = "graph.unsqueeze"

    def infer_shapes(self, shapes):
        x = shapes[0]
        rank = len(x) + len(_vals(self.axes))
        axes = {_axis(int(a), rank) for a in _vals(self.axes)}
        if len(axes) != len(_vals(self.axes)):
            raise ShapeMismatchError("Unsqueeze axes repeat")
        it = iter(x)
        return [tuple(1 if i in axes else next(it) for i in range(rank))]


TO_THE_END = 2**62  # ONNX's INT64 "to the end" sentinels, clamped to fit the i64 properties
INT32_MAX = 2**31 - 1  # the exporters' other "to the end" sentinel


def slice_bounds(size: Dim, start: Dim, end: Dim, step: int) -> tuple[Dim, Dim]:
    """ONNX Slice clamping: the first index and the element count along one axis."""
    if step == 0:
        raise ShapeMismatchError("Slice step must not be 0")
    if not all(isinstance(d, int) for d in (size, start, end)):
        return _symbolic_slice_bounds(size, start, end, step)
    start = start + size if start < 0 else start
    end = end + size if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), size), min(max(end, 0), size)
        count = max(0, -(-(end - start) // step))
    else:
        start, end = min(max(start, -1), size - 1), min(max(end, -1), size - 1)
        count = max(0, -(-(start - end) // -step))
    return start, count


def _symbolic_slice_bounds(size: Dim, start: Dim, end: Dim, step: int) -> tuple[Dim, Dim]:
    """Bounds where a dim is symbolic: a unit-step slice from a static start to the end of the axis,
    or to a bound assumed to be within it (a sequence length slicing a table of positions); its
    count is a dim when the start is 0 or the end is static."""
    what = f"Slice [{start}:{end}:{step}] of a dim {size}"
    if step != 1 or not isinstance(start, int) or start < 0 or isinstance(end, int) and end < 0:
        raise ShapeMismatchError(f"{what}: only unit-step slices from a static start to a non-negative "
                                 "end have a symbolic size")
    if isinstance(end, int) and end >= INT32_MAX:  # a "to the end" sentinel
        if end < TO_THE_END:
            require_at_most(size, end, f"{what}: the dim must end before the sentinel")
        end = size
    elif end != size:
        require_at_most(end, size, f"{what}: the end must be within the dim")
    if isinstance(end, int):
        return start, max(0, end - start)
    if start:
        raise ShapeMismatchError(f"{what}: the count {end} - {start} is not a dim")
    return start, end


@irdl_op_definition
class SliceOp(UnaryOp):
    """Strided slice (ONNX Slice semantics, negative steps). Starts and ends are dims as text
    ("0", "seq"): symbolic where Shape arithmetic computed them from the input dims."""

    name = "graph.slice"
    starts = prop_def(ArrayAttr)
    ends = prop_def(ArrayAttr)
    axes = ints_prop()
    steps = ints_prop()

    def __init__(self, input, result_type, *, starts: Sequence[Dim], ends: Sequence[Dim], axes, steps):
        super().__init__(input, result_type, starts=dims_attr(starts), ends=dims_attr(ends), axes=_ints(axes),
                         steps=_ints(steps))

    def per_axis(self, shape: Shape, dim: Callable[[Dim], Dim] = lambda d: d) -> dict[int, tuple[Dim, Dim, int]]:
        """axis -> (first index, count, step) for every sliced axis; `dim` gives the value of a
        symbolic start or end (the reference evaluator binds them)."""
        starts, ends = ([dim(d) for d in attr_dims(a)] for a in (self.starts, self.ends))
        axes, steps = ([int(v) for v in _vals(a)] for a in (self.axes, self.steps))
        if len({len(starts), len(ends), len(axes), len(steps)}) != 1:
            raise ShapeMismatchError("Slice starts/ends/axes/steps differ in length")
        out: dict[int, tuple[Dim, Dim, int]] = {}
        for start, end, axis, step in zip(starts, ends, axes, steps):
            a = _axis(axis, len(shape), "Slice axis")
            if a in out:
                raise ShapeMismatchError(f"Slice axis {axis} repeats")
            first, count = slice_bounds(shape[a], start, end, step)
            out[a] = (first, count, step)
        return out

    def infer_shapes(self, shapes):
        x = shapes[0]
        sl = self.per_axis(x)
        return [tuple(sl[i][1] if i in sl else d for i, d in enumerate(x))]


@irdl_op_definition
class TileOp(UnaryOp):
    """Repeat `input` along every axis; the repeats are dims as text ("2", "batch", or a dim a run
    binds from a value)."""

    name = "graph.tile"
    repeats = prop_def(ArrayAttr)

    def __init__(self, input, result_type, *, repeats: Sequence[Dim]):
        super().__init__(input, result_type, repeats=dims_attr(repeats))

    def infer_shapes(self, shapes):
        x = shapes[0]
        reps = attr_dims(self.repeats)
        if len(reps) != len(x) or min((r for r in reps if isinstance(r, int)), default=1) < 0:
            raise ShapeMismatchError(f"Tile needs {len(x)} non-negative repeats, got {list(map(str, reps))}")
        return [tuple(dim_mul(d, r) if r != 1 else d for d, r in zip(x, reps))]


NN_OPS = [ConvOp, ConvTransposeOp, Col2ImOp, MaxPoolOp, AveragePoolOp, GlobalAveragePoolOp, GlobalMaxPoolOp,
          BatchNormOp, InstanceNormOp, LRNOp, PadOp, ResizeOp, GridSampleOp, AffineGridOp, ConcatOp, TransposeOp,
          SqueezeOp, UnsqueezeOp, SliceOp, TileOp]
