"""ONNX -> graph dialect.

Each ONNX node is translated by a converter registered per op type; weights become
the module's `graph.weight`s (`ImportResult.weights` views them) and `graph.constant`s
refer to them by name.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from math import prod
from typing import Union

import numpy as np
import onnx
import onnx.external_data_helper
import onnx.version_converter
from onnx import numpy_helper
from xdsl.builder import Builder
from xdsl.dialects import func
from xdsl.dialects.builtin import ArrayAttr, DictionaryAttr, ModuleOp, StringAttr
from xdsl.ir import Block, BlockArgument, Region, SSAValue
from xdsl.rewriter import InsertPoint

from pyflame_rt.dialects import graph
from pyflame_rt.dialects.assumptions import at_node
from pyflame_rt.dialects.graph_tensor import BindDimsOp, DimValuesOp
from pyflame_rt.dialects.symbolic import Shape, SymDim
from pyflame_rt.dialects.weights import WeightOp, WeightTable
from pyflame_rt.dtype import DType
from pyflame_rt.files import read_regular
from pyflame_rt.importers.onnx import legacy_scan, ops, shape_values, structured  # ops: converters register
from pyflame_rt.importers.onnx.converters import _CONVERTERS, _NEWER_ATTRIBUTES, _NodeContext, converts
from pyflame_rt.importers.onnx.ops.control import rank_padding
from pyflame_rt.limits import check_tensor_bytes
from pyflame_rt.options import ImportOptions
from pyflame_rt.structured_io import layout_tensors
from pyflame_rt.errors import (
    DTypeMismatchError,
    InvalidModelError,
    ShapeMismatchError,
    UnsupportedFormatError,
    UnsupportedOperatorError,
)

MIN_OPSET, MAX_OPSET = 9, 21
# Newer opsets (up to what the installed onnx defines) are read with the opset-21 semantics:
# the operator versions after 21 add element types and a few attributes (Cast round_mode, ...),
# so a node is refused only if it sets an attribute its opset-21 schema does not have.
NEWEST_OPSET = max(MAX_OPSET, onnx.defs.onnx_opset_version())


@dataclass
class ImportResult:
    module: ModuleOp
    opset: int
    producer: str = ""  # ONNX producer_name
    producer_version: str = ""
    graph_name: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    node_count: int = 0
    initializer_count: int = 0
    parameter_count: int = 0
    import_time_ms: float = 0.0
    warnings: list[str] = field(default_factory=list)
    # how sequence / optional inputs and outputs map to the compiled tensors (None: tensors only)
    structured_io: dict | None = None

    @property
    def weights(self) -> WeightTable:
        return WeightTable.of(self.module)

    @property
    def main(self) -> func.FuncOp:
        return graph.entry_function(self.module)


def supported_op_types() -> list[str]:
    """Op types with a converter, and the shape queries the import-time evaluation always answers
    (their results are materialized as `graph.dim_values` where used as data)."""
    return sorted({*_CONVERTERS, *shape_values.SHAPE_QUERIES})


def load_model(model) -> onnx.ModelProto:
    """Accept a path, bytes or ModelProto; raise the seed's errors for bad files. External data
    of a model file is read from the model's folder (of bytes / a ModelProto: the working directory)."""
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
        where = "<bytes>"
    elif not isinstance(model, (str, os.PathLike)):
        raise InvalidModelError(f"cannot read a model from a {type(model).__name__}: pass a path, "
                                f"bytes or a ModelProto")
    else:
        where = os.fspath(model)
        data = read_regular(where, "model file")
    if not data:
        raise InvalidModelError(f"model file is empty: {where}")
    try:
        proto = onnx.ModelProto()
        proto.ParseFromString(data)
    except Exception as e:
        raise InvalidModelError(f"not a valid ONNX protobuf ({where}): {e}") from None
    if not proto.graph.node and not proto.graph.output:
        raise InvalidModelError(f"ONNX model has an empty graph or is truncated: {where}")
    if where != "<bytes>":
        _load_external_data(proto, os.path.dirname(os.path.abspath(where)))
    return proto


def _load_external_data(proto: onnx.ModelProto, folder: str) -> None:
    """Read every external tensor's bytes from `folder` (onnx refuses locations outside it)."""
    try:
        onnx.external_data_helper.load_external_data_for_model(proto, folder)
    except Exception as e:
        raise InvalidModelError(f"cannot read the model's external data from {folder}: {e}") from None


# what reading a node's attributes and constant inputs raises when they are malformed (a NaN
# Resize scale, a Constant without a value, ...): the node is invalid, not the importer
MALFORMED_NODE_ERRORS = (ValueError, TypeError, IndexError, KeyError, OverflowError, ZeroDivisionError)
# what a subgraph's inputs are bound to and its outputs are
SubgraphValue = Union[SSAValue, shape_values.Known, structured.Structured]


def _malformed(node: onnx.NodeProto, e: Exception) -> InvalidModelError:
    return InvalidModelError(f"{node.op_type} node '{node.name or (node.output or [''])[0]}' is malformed: "
                             f"{type(e).__name__}: {e}")


def _default_opset(proto: onnx.ModelProto) -> int:
    """The default-domain opset a model declares (0: none)."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


class ONNXImporter:
    def __init__(self, options: ImportOptions | None = None):
        self.options = options or ImportOptions()
        self.dims_made: set[str] = set()

    # -------------------------------------------------------------- driver
    def import_model(self, model) -> ImportResult:
        t0 = time.perf_counter()
        proto = load_model(model)
        self.warnings: list[str] = []
        self.known: dict[str, shape_values.Known] = {}
        self.value_dims: dict[str, list[str]] = {}  # input name -> the dims its values bind
        self.rank_padded: dict[SSAValue, int] = {}  # If results padded with leading 1s (ops/control.py)
        if self.options.check_model:
            try:
                onnx.checker.check_model(proto)
            except Exception as e:
                # the checker's message can be empty (a ValidationError without text)
                first_line = next(iter(str(e).splitlines()), "") or type(e).__name__
                raise InvalidModelError(f"ONNX checker rejected the model: {first_line}") from None
        # the model's own opset: a few converters keep semantics the version converter does not carry over
        self.source_opset = _default_opset(proto)
        proto = self._upgrade(proto)
        self.opset = self._opset(proto)
        g = proto.graph
        self.values: dict[str, SSAValue] = {}
        self.shapes: dict[SSAValue, Shape] = {}
        self.constants: dict[SSAValue, np.ndarray] = {}
        self.weights: dict[str, np.ndarray] = {}

        self.declared = {vi.name: vi for vi in (*g.value_info, *g.output)}
        inits = {t.name: t for t in g.initializer}
        inputs = [i for i in g.input if i.name not in inits]
        self.structured: dict[str, structured.Structured] = {}
        self.unwrapped: set[str] = set()  # optional inputs whose element OptionalGetElement takes
        self.ragged_ranks: dict[str, int] = {}  # rank dim of ragged sequence inputs -> the rank the model gives
        layouts: dict[str, dict] = {}
        flat: list[structured.FlatInput] = []
        for vi in inputs:
            args, layouts[vi.name] = structured.flatten_input(vi.name, vi.type, self._tensor_info, self.new_dim)
            flat += args
        arg_types, arg_attrs = [], []
        for a in flat:
            try:
                arg_types.append(graph.tensor_type(a.shape, a.dtype))
            except DTypeMismatchError as e:
                raise UnsupportedFormatError(f"input '{a.name}': {e}") from None
            arg_attrs.append(DictionaryAttr(graph.io_attrs(a.name, a.shape)))
        block = Block(arg_types=arg_types)
        self.builder = Builder(InsertPoint.at_end(block))
        for a, arg in zip(flat, block.args):
            arg.name_hint = _ssa_name(a.name)
            self.shapes[arg] = a.shape
        args = iter(block.args)
        for vi in inputs:
            value = structured.input_value(vi.type, vi.name, [next(args) for _ in layout_tensors(layouts[vi.name])])
            if isinstance(value, SSAValue):
                self.values[vi.name] = value
            else:
                self.structured[vi.name] = value
        for name, t in inits.items():
            try:
                arr = numpy_helper.to_array(t)
            except Exception as e:
                raise InvalidModelError(f"initializer '{name}' is corrupt: {e}") from None
            self.add_constant(name, arr)

        for node in g.node:
            self._convert_node(node)

        for name in self.unwrapped:  # an optional input the model takes the element of must hold one
            layouts[name]["optional"]["required"] = True
        flat_shapes = {a.name: a.shape for a in flat}
        for name, layout in layouts.items():  # the rank an empty ragged sequence is fed with
            shapes = flat_shapes.get(name + structured.SHAPES_SUFFIX)  # (count, rank) of a ragged input
            rank = self.ragged_ranks.get(str(shapes[1])) if shapes is not None and len(shapes) == 2 else None
            structured.note_rank(layout, rank)
        results, res_attrs = [], []
        io = {"inputs": [self._io_entry(vi.name, vi.type, layouts[vi.name]) for vi in inputs], "outputs": []}
        for vo in g.output:
            if vo.name not in self.values and vo.name not in self.known and vo.name not in self.structured:
                raise InvalidModelError(f"graph output '{vo.name}' is not produced by any node")
            value = self.structured.get(vo.name) or self.value(vo.name)
            if isinstance(value, SSAValue) and value in self.rank_padded:
                raise UnsupportedOperatorError(f"graph output '{vo.name}' comes from an If whose branches differ "
                                               f"in rank: its rank is known only at run time")
            tensors, layout = structured.flatten_output(vo.name, value)
            io["outputs"].append({"name": vo.name, "layout": layout,
                                  "type": structured.value_type_string(value, lambda v: graph.dtype_of(v.type))})
            for name, v in tensors:
                results.append(v)
                res_attrs.append(DictionaryAttr(graph.io_attrs(name, self.shapes[v])))
        self.builder.insert(func.ReturnOp(*results))
        arg_attrs = [DictionaryAttr({**attrs.data, graph.ARG_VALUES: ArrayAttr([StringAttr(d) for d in
                                                                              self.value_dims[a.name]])})
                     if a.name in self.value_dims else attrs for a, attrs in zip(flat, arg_attrs)]
        fn = func.FuncOp("main", ([a.type for a in block.args], [r.type for r in results]),
                         Region(block), arg_attrs=ArrayAttr(arg_attrs), res_attrs=ArrayAttr(res_attrs))
        module = ModuleOp([fn])
        try:
            module.verify()
        except Exception as e:
            raise InvalidModelError(f"imported graph does not verify: {e}") from None
        used = {op.weight_name for op in fn.walk() if isinstance(op, graph.ConstantOp)}
        module.body.block.insert_ops_before([WeightOp(k, v) for k, v in self.weights.items() if k in used], fn)
        return ImportResult(
            module=module, opset=self.opset,
            producer=proto.producer_name, producer_version=proto.producer_version,
            graph_name=g.name,
            metadata={p.key: p.value for p in proto.metadata_props},
            node_count=len(g.node), initializer_count=len(inits),
            parameter_count=int(sum(a.size for k, a in self.weights.items() if k in used)),
            import_time_ms=(time.perf_counter() - t0) * 1e3, warnings=self.warnings,
            structured_io=io if any("tensor" not in e["layout"] for e in (*io["inputs"], *io["outputs"])) else None,
        )

    def _upgrade(self, proto: onnx.ModelProto) -> onnx.ModelProto:
        """Models older than MIN_OPSET go through onnx's version converter (legacy broadcast etc.)."""
        v = self.source_opset
        if v == 0 or v >= MIN_OPSET:
            return proto
        if v <= legacy_scan.SCAN_8:
            rewritten = onnx.ModelProto()
            rewritten.CopyFrom(proto)
            legacy_scan.scans_as_loops(rewritten.graph)
            proto = rewritten
        try:
            upgraded = onnx.version_converter.convert_version(proto, MIN_OPSET)
        except Exception as e:
            raise UnsupportedFormatError(
                f"ONNX opset {v} is older than {MIN_OPSET} and onnx's version converter could not upgrade the "
                f"model: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        self.warnings.append(f"opset {v} model upgraded to opset {MIN_OPSET} by onnx's version converter")
        return upgraded

    def _opset(self, proto: onnx.ModelProto) -> int:
        opsets = [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")]
        if not opsets:
            raise InvalidModelError("model declares no default-domain opset")
        v = opsets[0]
        if not MIN_OPSET <= v <= NEWEST_OPSET:
            raise UnsupportedFormatError(
                f"ONNX opset {v} is outside the supported range {MIN_OPSET}-{NEWEST_OPSET}")
        if v > MAX_OPSET:
            self.warnings.append(f"opset {v} is read with the opset-{MAX_OPSET} operator semantics")
        return v

    def _tensor_info(self, name: str, tt: onnx.TypeProto.Tensor) -> tuple[Shape, DType]:
        try:
            dtype = DType.from_onnx(tt.elem_type)
        except DTypeMismatchError as e:
            raise UnsupportedFormatError(f"input '{name}': {e}") from None
        if not tt.HasField("shape"):
            raise ShapeMismatchError(f"input '{name}' has no shape; PyFlameRT needs at least its rank")
        shape: list = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value >= 0:
                shape.append(int(d.dim_value))
            else:
                dim = _symbol(d.dim_param or f"{name}_dim{i}")
                self.dims_made.add(dim)  # new_dim never reuses an input's dim
                shape.append(SymDim.of(dim))
        check_tensor_bytes(shape, dtype.itemsize, f"input '{name}'")
        return tuple(shape), dtype

    def _io_entry(self, name: str, t: onnx.TypeProto, layout: dict) -> dict:
        try:
            return {"name": name, "type": structured.type_string(t), "layout": layout}
        except DTypeMismatchError as e:
            raise UnsupportedFormatError(f"input '{name}': {e}") from None

    def _convert_node(self, node: onnx.NodeProto) -> None:
        if node.domain not in ("", "ai.onnx") and not converts(node.domain, node.op_type):
            raise UnsupportedOperatorError(
                f"{node.op_type} from domain '{node.domain}' (node '{node.name}') is not supported")
        if self.opset > MAX_OPSET:
            self._check_newer_attributes(node)
        try:
            known = shape_values.evaluate(self, node)
        except MALFORMED_NODE_ERRORS as e:
            raise _malformed(node, e) from None
        if known is not None:  # a shape computation: evaluated now, materialized only if used as data
            self.known.update((name, k) for name, k in zip(node.output, known) if name)
            return
        conv = _CONVERTERS[node.op_type] if converts(node.domain, node.op_type) else None
        if conv is None:
            raise UnsupportedOperatorError(
                f"operator {node.op_type} (opset {self.opset}) in node '{node.name or node.output[0]}' "
                f"is not supported")
        for name in node.input:
            if name and name not in self.values and name not in self.known and name not in self.structured:
                raise InvalidModelError(f"node '{node.name}' uses undefined value '{name}'")
        padding = rank_padding(self, node)
        ctx = _NodeContext(self, node)
        block = self.builder.insertion_point.block
        last = block.last_op
        try:
            with at_node(f"{node.op_type} node '{_text(node.name) or node.output[0]}'"):
                outs = conv(ctx)
        except ShapeMismatchError as e:
            raise ShapeMismatchError(f"{node.op_type} node '{node.name or node.output[0]}': {e}") from None
        except MALFORMED_NODE_ERRORS as e:
            raise _malformed(node, e) from None
        op = last.next_op if last is not None else block.first_op
        while op is not None:  # the ops the converter built for this node
            graph.set_node_name(op, _text(node.name) or node.output[0])
            op = op.next_op
        for name, v in zip(node.output, outs):
            if not name:
                continue
            if isinstance(v, shape_values.Known):  # a control-flow node passing on a value known at import
                self.known[name] = v
            elif isinstance(v, SSAValue):
                self.values[name] = v
                if padding is not None:
                    self.rank_padded[v] = padding
            else:
                self.structured[name] = v

    def _check_newer_attributes(self, node: onnx.NodeProto) -> None:
        """Refuse attributes introduced after opset MAX_OPSET: converters implement the older versions."""
        try:
            known = set(onnx.defs.get_schema(node.op_type, MAX_OPSET, "").attributes)
            known |= _NEWER_ATTRIBUTES.get(node.op_type, frozenset())
        except onnx.defs.SchemaError:
            return  # an op newer than MAX_OPSET: no converter exists, reported as unsupported
        newer = [a.name for a in node.attribute if a.name not in known]
        if newer:
            raise UnsupportedOperatorError(
                f"{node.op_type} (opset {self.opset}) node '{node.name or node.output[0]}': attribute(s) "
                f"{newer} were added after opset {MAX_OPSET} and are not supported")

    def inline_graph(self, g: onnx.GraphProto, bindings: dict[str, SubgraphValue],
                     scope: str) -> list[SubgraphValue]:
        """Convert subgraph `g` in place, its inputs bound to `bindings`, its names visible only
        inside it (the outer graph's are visible in it: captures); its outputs, values known at
        import staying known, sequences and optionals staying structured. Its nodes are named
        `scope/<node>`, so a subgraph converted more than once (an unrolled loop body) gives every
        op a distinct node name."""
        saved = dict(self.values), dict(self.known), dict(self.structured)
        try:
            for name, v in bindings.items():
                for table in (self.values, self.known, self.structured):
                    table.pop(name, None)
                if isinstance(v, shape_values.Known):
                    self.known[name] = v
                elif isinstance(v, SSAValue):
                    self.values[name] = v
                else:
                    self.structured[name] = v
            for t in g.initializer:
                self.add_constant(t.name, numpy_helper.to_array(t))
            for node in g.node:
                inner = onnx.NodeProto()
                inner.CopyFrom(node)
                inner.name = f"{scope}/{_text(node.name) or node.output[0]}"
                self._convert_node(inner)
            missing = [o.name for o in g.output if not any(o.name in t for t in (self.values, self.known,
                                                                                  self.structured))]
            if missing:
                raise InvalidModelError(f"subgraph '{g.name}' of {scope}: outputs {missing} are not produced")
            return [next(t[o.name] for t in (self.known, self.structured, self.values) if o.name in t)
                    for o in g.output]
        finally:
            self.values, self.known, self.structured = saved

    # ---------------------------------------------------------- building
    def value(self, name: str) -> SSAValue:
        if name in self.structured:
            raise InvalidModelError(f"'{name}' is a sequence or optional value where a tensor is expected")
        if name not in self.values and name in self.known:
            self._materialize(name, self.known[name])
        return self.values[name]

    def known_value(self, name: str) -> shape_values.Known | None:
        """Values known at import: evaluated shape computations and small integer constants."""
        if name in self.known:
            return self.known[name]
        arr = self.constants.get(self.values.get(name))
        if arr is not None and arr.dtype.kind in "iub" and arr.size <= shape_values.MAX_ELEMENTS:
            return shape_values.Known(arr.astype(object), DType.from_numpy(arr.dtype))
        return None

    def new_dim(self, name: str) -> str:
        """A new dim the model's values set, named after the value it comes from and distinct from
        every dim this import made before: names that differ only where symbols cannot (`r.1`,
        `r_1`), or one node binding twice, must not share a dim."""
        base = _symbol(name)
        dim, n = base, 2
        while dim in self.dims_made:
            dim, n = f"{base}_{n}", n + 1
        self.dims_made.add(dim)
        return dim

    def run_time_values(self, name: str) -> shape_values.Known | None:
        """A small integer tensor of static shape that sets sizes but is not known at import: its
        elements as new dims, bound at run time from the feed (a graph input: graph.values) or once
        computed (graph.bind_dims); None for any other value."""
        v = self.values.get(name)
        if v is None:
            return None
        shape = self.shapes[v]
        dtype = graph.dtype_of(v.type)
        if dtype not in (DType.INT64, DType.INT32) or not all(isinstance(d, int) for d in shape) \
                or prod(shape) > shape_values.MAX_ELEMENTS:
            return None
        dims = [self.new_dim(f"{name}_{i}") for i in range(prod(shape))]
        if isinstance(v, BlockArgument):  # an entry-function argument: a graph input
            self.value_dims[name] = dims
        else:
            self.builder.insert(BindDimsOp(v, dims))
        self.known[name] = shape_values.Known(np.array([SymDim.of(d) for d in dims], object).reshape(shape), dtype)
        return self.known[name]

    def materialized(self, v: SSAValue | shape_values.Known, name: str) -> SSAValue:
        """v as an SSA value: a value known at import becomes a constant (or graph.dim_values) named `name`."""
        if isinstance(v, shape_values.Known):
            self._materialize(name, v)
            return self.values[name]
        return v

    def _materialize(self, name: str, known: shape_values.Known) -> None:
        if known.is_static:
            self.add_constant(name, known.array())
            return
        op = DimValuesOp(list(known.values.flat), known.values.shape, known.dtype)
        op.result.name_hint = _ssa_name(name)
        self.builder.insert(op)
        self.values[name] = op.result
        self.shapes[op.result] = known.values.shape

    def add_constant(self, name: str, arr: np.ndarray) -> SSAValue:
        dtype = DType.from_numpy(arr.dtype)
        key = name
        n = 1
        while key in self.weights or key == "main":  # a weight may not take the entry function's symbol
            key, n = f"{name}_{n}", n + 1
        self.weights[key] = np.asarray(arr, order="C")
        op = graph.ConstantOp(graph.tensor_type(arr.shape, dtype), weight=key)
        op.result.name_hint = _ssa_name(name)
        self.builder.insert(op)
        self.values[name] = op.result
        self.shapes[op.result] = tuple(arr.shape)
        self.constants[op.result] = self.weights[key]
        return op.result

    def emit(self, op_cls, operands, props, node) -> list[SSAValue]:
        # build once with placeholder types to run the op's own shape and dtype functions
        present = [o for o in operands if o is not None]
        n = len(op_cls.get_irdl_definition().results)

        def build(types):
            return op_cls(*operands, **props, **({"result_types": types} if n > 1 else {"result_type": types[0]}))

        probe = build([graph.tensor_type((), DType.FLOAT32)] * n)
        out_shapes = probe.infer_shapes([self.shapes[o] for o in present])
        out_dtypes = probe.infer_dtypes([graph.dtype_of(o.type) for o in present])
        probe.erase()
        for s, d in zip(out_shapes, out_dtypes):
            check_tensor_bytes(s, d.itemsize, f"{node.op_type} node '{node.name or node.output[0]}' result")
        op = build([graph.tensor_type(s, d) for s, d in zip(out_shapes, out_dtypes)])
        for r, s, name in zip(op.results, out_shapes, node.output):
            r.name_hint = _ssa_name(name)
            self.shapes[r] = s
        self.builder.insert(op)
        return list(op.results)


def _text(name) -> str:
    """protobuf hands out strings that are not valid UTF-8 as bytes: such a model is corrupt."""
    if isinstance(name, bytes):
        raise InvalidModelError(f"ONNX model has a name that is not valid UTF-8: {name!r}")
    return name


def _symbol(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", _text(name))
    return s if s and not s[0].isdigit() else f"d_{s}"


def _ssa_name(name: str) -> str | None:
    s = re.sub(r"[^A-Za-z0-9_]", "_", _text(name))
    return s if s and not s[0].isdigit() else None


def from_onnx(model, options: ImportOptions | None = None) -> ImportResult:
    """Import an ONNX model (path, bytes or ModelProto) into graph IR."""
    return ONNXImporter(options).import_model(model)

