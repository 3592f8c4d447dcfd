"""`Graph`: the guide's programmatic model builder.

A `Graph` collects ONNX-level inputs, initializers, nodes and outputs; `to_onnx()` turns it into
an ONNX model, so a built graph takes the one import path every model takes (importer -> `graph`
dialect -> compiler): `to_ir()` is that import, and `InferenceSession(graph)` compiles and runs it.
onnx is imported only when a graph is converted, so building one costs nothing at start-up.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np

from pyflame_rt.dtype import DType
from pyflame_rt.errors import ValidationError
from pyflame_rt.tensor import Tensor

DEFAULT_OPSET = 17


@dataclass
class TensorInfo:
    """A graph input or output: shape items are ints, None (dynamic) or a dim name."""

    name: str = ""
    shape: list = field(default_factory=list)
    dtype: DType = DType.FLOAT32

    def is_dynamic(self) -> bool:
        return any(not isinstance(d, int) for d in self.shape)


@dataclass(frozen=True)
class Node:
    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attributes: dict = field(default_factory=dict)


class Graph:
    def __init__(self, name: str = "graph", opset: int = DEFAULT_OPSET):
        """opset: the default-domain ONNX opset the nodes are written for."""
        _check_name("graph", name)
        if isinstance(opset, bool) or not isinstance(opset, int) or opset < 1:
            raise ValidationError(f"opset must be an int >= 1, got {opset!r}")
        self.name = name
        self.opset = opset
        self.inputs: list[TensorInfo] = []
        self.outputs: list[TensorInfo] = []
        self.initializers: dict[str, np.ndarray] = {}
        self.nodes: list[Node] = []

    def add_input(self, name: str, shape, dtype: DType = DType.FLOAT32) -> None:
        self.inputs.append(_value_info("input", name, shape, dtype))

    def add_output(self, name: str, shape, dtype: DType = DType.FLOAT32) -> None:
        self.outputs.append(_value_info("output", name, shape, dtype))

    def add_initializer(self, name: str, value) -> None:
        """A constant tensor (numpy array or Tensor); the graph keeps its own copy."""
        _check_name("initializer", name)
        array = value.numpy() if isinstance(value, Tensor) else value
        if not isinstance(array, np.ndarray):
            raise ValidationError(f"initializer '{name}' must be a numpy array or Tensor, got {type(value).__name__}")
        DType.from_numpy(array.dtype)  # DTypeMismatchError for types PyFlameRT has no DType for
        self.initializers[name] = np.array(array, order="C")

    def add_node(self, name: str, op_type: str, inputs: list[str], outputs: list[str],
                 attributes: dict | None = None) -> None:
        """An ONNX operator; attributes as onnx.helper.make_node takes them (ints, floats, lists, ...).
        An empty input name is an omitted optional input, as in ONNX."""
        _check_name("node", name)
        _check_name("op_type", op_type)
        for kind, names in (("inputs", inputs), ("outputs", outputs)):
            if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
                raise ValidationError(f"node '{name}': {kind} must be a list of tensor names, got {names!r}")
        if attributes is not None and not isinstance(attributes, dict):
            raise ValidationError(f"node '{name}': attributes must be a dict, got {type(attributes).__name__}")
        self.nodes.append(Node(name, op_type, list(inputs), list(outputs), dict(attributes or {})))

    def validate(self) -> list[str]:
        """Every structural problem, one message each (empty: valid): duplicate names, tensors used
        before any input, initializer or node defines them, outputs nothing produces, cycles."""
        errors = []
        defined: dict[str, str] = {}
        for what, names in (("input", [i.name for i in self.inputs]), ("initializer", list(self.initializers)),
                            *((f"output of node '{n.name}'", n.outputs) for n in self.nodes)):
            for tensor in names:
                if tensor in defined:
                    errors.append(f"tensor '{tensor}' is defined twice: {defined[tensor]} and {what}")
                defined.setdefault(tensor, what)
        node_names = [n.name for n in self.nodes]
        errors += [f"node name '{n}' is used twice" for n in sorted({n for n in node_names if node_names.count(n) > 1})]
        for node in self.nodes:
            errors += [f"node '{node.name}' ({node.op_type}) reads '{t}', which nothing defines"
                       for t in node.inputs if t and t not in defined]
        errors += [f"graph output '{o.name}' is not produced by any node, input or initializer"
                   for o in self.outputs if o.name not in defined]
        if not self.outputs:
            errors.append("the graph has no outputs")
        if not errors:
            try:
                self.topological_sort()
            except ValidationError as e:
                errors.append(str(e))
        return errors

    def topological_sort(self) -> list[Node]:
        """The nodes in an order where each comes after the producers of its inputs (stable:
        insertion order among independent nodes). ValidationError naming the nodes of a cycle."""
        producer = {t: i for i, n in enumerate(self.nodes) for t in n.outputs}
        consumers: list[list[int]] = [[] for _ in self.nodes]
        pending = []
        for i, node in enumerate(self.nodes):
            producers = {producer[t] for t in node.inputs if t in producer}
            pending.append(len(producers))
            for p in producers:
                consumers[p].append(i)
        ready = [i for i, count in enumerate(pending) if count == 0]
        order = []
        while ready:
            i = heapq.heappop(ready)
            order.append(self.nodes[i])
            for c in consumers[i]:
                pending[c] -= 1
                if pending[c] == 0:
                    heapq.heappush(ready, c)
        if len(order) < len(self.nodes):
            cycle = [n.name for n, count in zip(self.nodes, pending) if count]
            raise ValidationError(f"the graph has a cycle through node(s) {cycle}")
        return order

    def to_onnx(self):
        """The graph as an ONNX ModelProto, nodes in topological order. ValidationError listing
        every problem if the graph is not valid."""
        errors = self.validate()
        if errors:
            raise ValidationError(f"graph '{self.name}' is invalid: " + "; ".join(errors), errors)
        from onnx import helper, numpy_helper

        def value_info(v: TensorInfo):
            return helper.make_tensor_value_info(v.name, v.dtype.onnx, v.shape)

        try:
            nodes = [helper.make_node(n.op_type, n.inputs, n.outputs, name=n.name, **n.attributes)
                     for n in self.topological_sort()]
        except (TypeError, ValueError) as e:  # an attribute value ONNX has no type for
            raise ValidationError(f"graph '{self.name}': an attribute cannot be stored in ONNX: {e}") from None
        graph = helper.make_graph(nodes, self.name, [value_info(i) for i in self.inputs],
                                  [value_info(o) for o in self.outputs],
                                  [numpy_helper.from_array(a, k) for k, a in self.initializers.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="pyflame_rt.Graph")
        model.ir_version = 8  # readable by every onnx / onnxruntime this package supports
        return model

    def to_ir(self, options=None):
        """The graph imported into graph IR (an `ImportResult`), as the importer imports any model."""
        from pyflame_rt.importers.onnx import from_onnx

        return from_onnx(self.to_onnx(), options)


def _check_name(kind: str, name) -> None:
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{kind} name must be a non-empty str, got {name!r}")


def _value_info(kind: str, name: str, shape, dtype: DType) -> TensorInfo:
    _check_name(kind, name)
    if not isinstance(dtype, DType):
        raise ValidationError(f"{kind} '{name}': dtype must be a DType, got {type(dtype).__name__}")
    if not isinstance(shape, (list, tuple)) or not all(
            d is None or (isinstance(d, str) and d) or (isinstance(d, int) and not isinstance(d, bool) and d >= 0)
            for d in shape):
        raise ValidationError(f"{kind} '{name}': shape items are ints >= 0, None (dynamic) or dim names, "
                              f"got {shape!r}")
    return TensorInfo(name, list(shape), dtype)
