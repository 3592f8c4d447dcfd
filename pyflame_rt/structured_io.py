"""Sequence and optional model inputs / outputs over the compiled model's tensors.

A compiled model takes and returns tensors. A model whose ONNX inputs or outputs are sequences or
optionals records in its header's `structured_io` (docs/pfm-format.md) each one's onnxruntime type
string and layout, the tensors it is made of:
  {"tensor": t}                      a tensor
  {"stacked": t}                     a sequence as one tensor [count, ...] (its elements share a shape)
  {"elements": [t0, t1, ...]}        a sequence of a count fixed by the model, one tensor per element
  {"ragged": {"values": t, "shapes": s, "rank": r}}
                                     a sequence of elements of any shapes of one rank: their values
                                     one after the other (1-D t) and their shapes (int64 [count, rank]);
                                     `rank` (inputs, when the model sets it): an empty list's rank
  {"split": {"tensor": t, "sizes": s, "axis": a, "drop_empty": bool}}
                                     (outputs) a sequence of the pieces of t along axis a, of the
                                     sizes the int64 vector s gives (drop_empty: the sizes that
                                     are 0 give no piece)
  {"optional": {"element": L | None, "flag": t | None, "required": bool}}
                                     an optional: its element's layout (None: always empty) and the
                                     bool scalar saying whether it holds one (None: it always does);
                                     `required` (inputs): the model takes its element, None is refused
Like onnxruntime, a session takes a sequence as a list of arrays and an optional as its value or
None, and returns them so.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pyflame_rt.errors import InputError, InvalidModelError, ShapeMismatchError


def layout_tensors(layout: dict) -> list[str]:
    """The tensor names a layout is made of, in the order they are inputs / outputs."""
    if "optional" in layout:
        opt = layout["optional"]
        return [*(layout_tensors(opt["element"]) if opt["element"] else []), *([opt["flag"]] if opt["flag"] else [])]
    if "elements" in layout:
        return list(layout["elements"])
    if "split" in layout:
        return [layout["split"]["tensor"], layout["split"]["sizes"]]
    if "ragged" in layout:
        return [layout["ragged"]["values"], layout["ragged"]["shapes"]]
    return [layout["tensor"] if "tensor" in layout else layout["stacked"]]


@dataclass(frozen=True)
class Entry:
    """One model input or output: its name, onnxruntime type string and layout."""

    name: str
    type: str
    layout: dict


class StructuredIO:
    """The model-level inputs / outputs of a header's `structured_io`, checked against the tensor
    inputs / outputs (specs with name, shape, dtype) they flatten to."""

    def __init__(self, header: dict, inputs: list, outputs: list):
        try:
            self.inputs = [Entry(e["name"], e["type"], e["layout"]) for e in header["inputs"]]
            self.outputs = [Entry(e["name"], e["type"], e["layout"]) for e in header["outputs"]]
            for entries, specs, what in ((self.inputs, inputs, "inputs"), (self.outputs, outputs, "outputs")):
                _check(entries, specs, what)
        except (KeyError, TypeError, AttributeError) as e:
            raise InvalidModelError(f"artifact header: malformed structured_io ({type(e).__name__}: {e})") from None
        self.input_specs = {s.name: s for s in inputs}
        self.output_index = {s.name: j for j, s in enumerate(outputs)}

    def feeds(self, input_feed: dict) -> dict:
        """The tensor feeds of a model-level feed (lists for sequences, None for empty optionals)."""
        flat: dict = {}
        for e in self.inputs:
            if e.name in input_feed:
                self._flatten(e.name, e.layout, input_feed[e.name], flat)
        return flat

    def results(self, outs: list[np.ndarray]) -> list:
        """The model-level outputs (lists, None) of the tensor outputs."""
        return [self._rebuild(e.layout, outs) for e in self.outputs]

    def _flatten(self, name: str, layout: dict, value, flat: dict) -> None:
        if "optional" in layout:
            opt = layout["optional"]
            present = value is not None
            if not present and opt.get("required"):
                raise InputError(f"optional input '{name}' is None, but the model takes its element "
                                 f"(OptionalGetElement of an empty optional)")
            if opt["element"] is not None:
                if present:
                    self._flatten(name, opt["element"], value, flat)
                else:
                    flat.update(self._empty(opt["element"]))
            flat[opt["flag"]] = np.array(present)
        elif "stacked" in layout:
            flat[layout["stacked"]] = self._stack(name, value, self.input_specs[layout["stacked"]])
        elif "ragged" in layout:
            values, shapes = layout["ragged"]["values"], layout["ragged"]["shapes"]
            flat[values], flat[shapes] = self._concatenate(name, value, self.input_specs[values],
                                                           layout["ragged"].get("rank", 0))
        else:
            if value is None or isinstance(value, (list, tuple)):
                raise InputError(f"input '{name}' must be an array, got {type(value).__name__}")
            flat[layout["tensor"]] = value

    def _stack(self, name: str, value, spec) -> np.ndarray:
        arrays = _elements(name, value, spec)
        if not arrays:
            return self._empty({"stacked": spec.name})[spec.name]
        for i, a in enumerate(arrays):
            if a.shape != arrays[0].shape:
                raise ShapeMismatchError(f"sequence input '{name}': element {i} has shape {list(a.shape)}, element "
                                         f"0 {list(arrays[0].shape)}; the elements of this sequence input must "
                                         f"share a shape")
        return np.stack(arrays)

    @staticmethod
    def _concatenate(name: str, value, spec, empty_rank: int) -> tuple[np.ndarray, np.ndarray]:
        arrays = _elements(name, value, spec)
        for i, a in enumerate(arrays):
            if a.ndim != arrays[0].ndim:
                raise ShapeMismatchError(f"sequence input '{name}': element {i} has rank {a.ndim}, element 0 "
                                         f"{arrays[0].ndim}; the elements of a sequence input must share a rank")
        values = np.concatenate([a.reshape(-1) for a in arrays]) if arrays else np.zeros(0, spec.dtype.numpy)
        return values, np.array([a.shape for a in arrays], np.int64).reshape(len(arrays), -1 if arrays else empty_rank)

    def _empty(self, layout: dict) -> dict:
        """Placeholders for an absent element or an empty sequence: every run-time dim 0."""
        return {t: np.zeros([d if isinstance(d, int) else 0 for d in self.input_specs[t].shape],
                            self.input_specs[t].dtype.numpy) for t in layout_tensors(layout)}

    def _rebuild(self, layout: dict, outs: list):
        if "optional" in layout:
            opt = layout["optional"]
            if opt["element"] is None or (opt["flag"] is not None and not outs[self.output_index[opt["flag"]]]):
                return None
            return self._rebuild(opt["element"], outs)
        if "stacked" in layout:
            return list(outs[self.output_index[layout["stacked"]]])
        if "elements" in layout:
            return [outs[self.output_index[t]] for t in layout["elements"]]
        if "ragged" in layout:
            values = outs[self.output_index[layout["ragged"]["values"]]]
            shapes = outs[self.output_index[layout["ragged"]["shapes"]]]
            ends = np.cumsum(np.prod(shapes, axis=1, dtype=np.int64))
            return [values[end - size:end].reshape(shape) for end, size, shape in
                    zip(ends, np.prod(shapes, axis=1, dtype=np.int64), shapes)]
        if "split" in layout:
            split = layout["split"]
            sizes = outs[self.output_index[split["sizes"]]]
            if split["drop_empty"]:
                sizes = sizes[sizes > 0]
            return np.split(outs[self.output_index[split["tensor"]]], np.cumsum(sizes)[:-1], axis=split["axis"])
        return outs[self.output_index[layout["tensor"]]]


def _elements(name: str, value, spec) -> list[np.ndarray]:
    """The arrays of a sequence feed, each of the input's element type."""
    if not isinstance(value, (list, tuple)):
        raise InputError(f"input '{name}' is a sequence: feed a list of arrays, got {type(value).__name__}")
    for i, a in enumerate(value):
        if not isinstance(a, np.ndarray):
            raise InputError(f"element {i} of sequence input '{name}' must be a numpy array, got {type(a).__name__}")
        if a.dtype != spec.dtype.numpy:
            raise InputError(f"element {i} of sequence input '{name}' has element type {a.dtype}, "
                             f"expected {spec.dtype.numpy}")
    return list(value)


def _check(entries: list[Entry], specs: list, what: str) -> None:
    """Every tensor input / output belongs to exactly one entry, stacked ones have a count axis, flags
    are bool scalars."""
    by_name = {s.name: s for s in specs}
    used = [t for e in entries for t in layout_tensors(e.layout)]
    if sorted(used) != sorted(by_name):
        raise InvalidModelError(f"artifact header: structured_io {what} {used} do not match the model's tensor "
                                f"{what} {sorted(by_name)}")
    for e in entries:
        if not isinstance(e.name, str) or not isinstance(e.type, str):
            raise InvalidModelError(f"artifact header: structured_io {what} entry {e.name!r} is malformed")
        _check_layout(e.layout, by_name, what)


def _check_layout(layout: dict, specs: dict, what: str) -> None:
    if "optional" in layout:
        opt = layout["optional"]
        if opt["flag"] is not None and (specs[opt["flag"]].shape != () or specs[opt["flag"]].dtype.value != "bool"):
            raise InvalidModelError(f"artifact header: structured_io flag '{opt['flag']}' is not a bool scalar")
        if opt["element"] is not None:
            _check_layout(opt["element"], specs, what)
    elif "stacked" in layout and not specs[layout["stacked"]].shape:
        raise InvalidModelError(f"artifact header: structured_io sequence '{layout['stacked']}' has no count axis")
    elif "ragged" in layout:
        values, shapes = specs[layout["ragged"]["values"]], specs[layout["ragged"]["shapes"]]
        if len(values.shape) != 1 or len(shapes.shape) != 2 or shapes.dtype.value != "int64":
            raise InvalidModelError(f"artifact header: structured_io ragged sequence '{values.name}' is malformed")
    elif "split" in layout:
        split = layout["split"]
        sizes, rank = specs[split["sizes"]], len(specs[split["tensor"]].shape)
        if len(sizes.shape) != 1 or sizes.dtype.value != "int64" or not 0 <= split["axis"] < rank \
                or not isinstance(split["drop_empty"], bool):
            raise InvalidModelError(f"artifact header: structured_io split '{split['tensor']}' is malformed")
