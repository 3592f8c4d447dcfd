"""Scan of opset 8 (a batch axis) rewritten as two nested Loops, before onnx's version converter
(whose Scan 8 -> 9 adapter drops the batch axis and so changes the model's input shapes).

Scan 8 takes its initial states as [batch, ...] and its scan inputs as [batch, sequence, ...] and
runs its body over the sequence of every batch element. The rewrite is exact:

    outer Loop over the batch (b):  the states' and scan inputs' element b (Gather, axis 0)
        inner Loop over the sequence (t), carrying the states: element t of each scan input
        (sequence - 1 - t where its `directions` is 1), then the Scan's body
        yields the final states and the stacked scan outputs, which the outer Loop stacks

so the model's shapes stay and the Loops are converted like any other (unrolled where the batch or
the sequence length is known at import, else run as loops). Loop, Gather, Shape, Sub and Identity
mean the same in opsets 8 and 9, and the body's nodes are upgraded by the version converter inside
the Loop like any Loop body's. `sequence_lens` (per-element lengths) is refused by name.
"""
from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from pyflame_rt.errors import UnsupportedOperatorError

SCAN_8 = 8  # the last opset whose Scan has a batch axis


def scans_as_loops(graph: onnx.GraphProto) -> None:
    """Rewrite every Scan of `graph` and of its subgraphs (the model's opset is 8) in place."""
    nodes = []
    for node in graph.node:
        for attr in node.attribute:
            for g in (*([attr.g] if attr.type == onnx.AttributeProto.GRAPH else []), *attr.graphs):
                scans_as_loops(g)
        nodes += _scan_as_loops(node) if node.op_type == "Scan" and node.domain in ("", "ai.onnx") else [node]
    del graph.node[:]
    graph.node.extend(nodes)


def _scan_as_loops(scan: onnx.NodeProto) -> list[onnx.NodeProto]:
    label = scan.name or scan.output[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in scan.attribute}
    body: onnx.GraphProto = attrs["body"]
    m = int(attrs["num_scan_inputs"])
    if scan.input and scan.input[0]:
        raise UnsupportedOperatorError(f"Scan (opset {SCAN_8}) node '{label}': sequence_lens is not supported")
    states, xs = list(scan.input[1:len(scan.input) - m]), list(scan.input[len(scan.input) - m:])
    n, k = len(states), len(body.output) - len(states)
    reverse = list(attrs.get("directions", [0] * m))
    if len(body.input) != n + m or k < 0 or len(scan.output) > n + k or len(reverse) != m:
        raise UnsupportedOperatorError(f"Scan (opset {SCAN_8}) node '{label}': its body's {len(body.input)} inputs "
                                       f"and {len(body.output)} outputs do not fit {n} states and {m} scan inputs")
    name = _Names(label)
    batch, steps = name("batch"), name("steps")
    nodes = [*_dim(xs[0], 0, batch, name), *_dim(xs[0], 1, steps, name)]
    b, t, outer_cond, inner_cond = name("b"), name("t"), name("outer_cond"), name("inner_cond")
    elements = [name(f"element_{j}") for j in range(n + m)]
    outer_nodes = [helper.make_node("Gather", [v, b], [e], axis=0) for v, e in zip(states + xs, elements)]
    inner_nodes = [*_sequence_elements(elements[n:], body.input[n:], reverse, t, steps, name), *body.node]
    inner_nodes.append(helper.make_node("Identity", [inner_cond], [name("inner_cond_out")]))
    inner = helper.make_graph(
        inner_nodes, f"{body.name}_sequence", [_scalar(t, TensorProto.INT64), _scalar(inner_cond, TensorProto.BOOL),
                                               *body.input[:n]],
        [_scalar(name("inner_cond_out"), TensorProto.BOOL), *body.output], list(body.initializer))
    finals, scanned = [name(f"final_{j}") for j in range(n)], [name(f"scanned_{j}") for j in range(k)]
    outer_nodes.append(helper.make_node("Loop", [steps, "", *elements[:n]], [*finals, *scanned], body=inner))
    outer_nodes.append(helper.make_node("Identity", [outer_cond], [name("outer_cond_out")]))
    outer = helper.make_graph(
        outer_nodes, f"{body.name}_batch", [_scalar(b, TensorProto.INT64), _scalar(outer_cond, TensorProto.BOOL)],
        [_scalar(name("outer_cond_out"), TensorProto.BOOL),
         *(_typed(v, out) for v, out in zip(finals + scanned, body.output))])
    nodes.append(helper.make_node("Loop", [batch, ""], list(scan.output), name=scan.name, body=outer))
    return nodes


class _Names:
    """Names of the rewrite's values, scoped by the Scan node's (distinct from the model's)."""

    def __init__(self, label: str):
        self.prefix = f"{label}/scan{SCAN_8}"

    def __call__(self, part: str) -> str:
        return f"{self.prefix}/{part}"


def _dim(x: str, axis: int, out: str, name: _Names) -> list[onnx.NodeProto]:
    """Dim `axis` of x as an int64 scalar `out`."""
    shape, index = name(f"{out}_shape"), name(f"{out}_axis")
    return [helper.make_node("Shape", [x], [shape]),
            helper.make_node("Constant", [], [index], value=helper.make_tensor(index, TensorProto.INT64, [], [axis])),
            helper.make_node("Gather", [shape, index], [out], axis=0)]


def _sequence_elements(xs: list[str], names, reverse: list, t: str, steps: str, name: _Names) -> list[onnx.NodeProto]:
    """Element t of each scan input (steps - 1 - t of a reversed one), named as the body's input."""
    nodes = []
    if any(reverse):
        one, last, back = name("one"), name("last"), name("back")
        nodes += [helper.make_node("Constant", [], [one], value=helper.make_tensor(one, TensorProto.INT64, [], [1])),
                  helper.make_node("Sub", [steps, one], [last]), helper.make_node("Sub", [last, t], [back])]
    return nodes + [helper.make_node("Gather", [x, back if r else t], [vi.name], axis=0)
                    for x, vi, r in zip(xs, names, reverse)]


def _scalar(name: str, elem: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, [])


def _typed(name: str, like: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    """A Loop body output of the element type of `like` (its shape is the Loop's to infer)."""
    return helper.make_tensor_value_info(name, like.type.tensor_type.elem_type, None)
