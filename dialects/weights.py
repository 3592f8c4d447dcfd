"""Weights in the IR: `graph.weight` symbols whose values are `dense_resource`-style blobs.

`graph.weight @name : tensor<...>` declares a module-level weight; `graph.constant @name`
(or any op of a lower level) refers to it by symbol. Its value is the `#graph.blob`
property: a read-only numpy array, compared by identity and never copied, so importing,
cloning and compiling a module never turn weights into text. `WeightTable.of(module)` is
the mapping view passes and lowerings read and write weights through (`add` inserts a new
`graph.weight`, `prune` erases unreferenced ones); the module is the only store.

Text: ops print their declaration only; `print_module` appends MLIR's file-metadata
section with the blobs (if asked for, large ones elided), hex-encoded as MLIR does (a u32
alignment, then the bytes):

    {-#
      dialect_resources: {
        graph: {
          fc1.weight: "0x04000000CDCCCC3D..."
        }
      }
    #-}

and `parse_module` reads it back. A weight whose blob is elided parses as a declaration
without a value: passes treat its value as unknown, lowering refuses it.
"""
from __future__ import annotations

import io
import math
import re
from collections.abc import Iterator, MutableMapping
from typing import IO, NoReturn

import numpy as np
from xdsl.context import Context
from xdsl.dialects.builtin import DenseIntOrFPElementsAttr, ModuleOp, StringAttr, SymbolNameConstraint, TensorType
from xdsl.ir import Attribute, Data
from xdsl.irdl import IRDLOperation, irdl_attr_definition, irdl_op_definition, opt_prop_def, prop_def, traits_def
from xdsl.parser import AttrParser, Parser
from xdsl.printer import Printer
from xdsl.traits import SymbolOpInterface
from xdsl.utils.exceptions import ParseError, VerifyException
from xdsl.utils.lexer import Input, Span
from xdsl.utils.mlir_lexer import StringLiteral

from pyflame_rt.dialects import graph
from pyflame_rt.dtype import DType
from pyflame_rt.errors import InvalidModelError

_RESOURCE_DIALECT = "graph"
_HEX_CHUNK = 1 << 24  # bytes hex-encoded per write: bounds the printer's peak memory


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only C-contiguous view of `array` (a copy only if it is not contiguous)."""
    view = np.ascontiguousarray(array).view()
    view.flags.writeable = False
    return view


def _write_hex(array: np.ndarray, out: IO[str]) -> None:
    """MLIR's blob encoding: `0x`, the alignment as a little-endian u32, the bytes."""
    data = array.reshape(-1).view(np.uint8)
    out.write("0x" + array.dtype.itemsize.to_bytes(4, "little").hex())
    for start in range(0, data.size, _HEX_CHUNK):
        out.write(data[start:start + _HEX_CHUNK].tobytes().hex())


def _read_hex(text: str, t: TensorType) -> np.ndarray:
    if not text.startswith("0x") or len(text) < 10:
        raise ValueError("a blob is `0x`, an 8-digit alignment and the bytes in hex")
    dtype = graph.dtype_of(t).numpy
    raw = bytes.fromhex(text[10:])
    shape = graph.static_shape(t)
    if len(raw) != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
        raise ValueError(f"{len(raw)} bytes do not hold a {t}")
    return np.frombuffer(raw, dtype).reshape(shape)


@irdl_attr_definition
class BlobAttr(Data[np.ndarray]):
    """The value of a weight: a read-only C-contiguous array; equal only to itself."""

    name = "graph.blob"

    def __init__(self, array: np.ndarray):
        super().__init__(_read_only(array))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BlobAttr) and other.data is self.data

    def __hash__(self) -> int:
        return id(self.data)

    # generic form `#graph.blob<tensor<2xf32>, "0x...">`; `print_module` keeps blobs out of the ops
    @classmethod
    def parse_parameter(cls, parser: AttrParser) -> np.ndarray:
        with parser.in_angle_brackets():
            t = parser.parse_type()
            parser.parse_punctuation(",")
            text = parser.parse_str_literal()
        if not isinstance(t, TensorType):
            parser.raise_error(f"a blob needs a tensor type, got {t}")
        try:
            return _read_only(_read_hex(text, t))
        except (ValueError, VerifyException) as e:
            parser.raise_error(str(e))

    def print_parameter(self, printer: Printer) -> None:
        with printer.in_angle_brackets():
            printer.print_attribute(_tensor_type(self.data))
            printer.print_string(', "')
            out = io.StringIO()
            _write_hex(self.data, out)
            printer.print_string(out.getvalue())
            printer.print_string('"')


def _tensor_type(array: np.ndarray) -> TensorType:
    return graph.tensor_type(array.shape, DType.from_numpy(array.dtype))


@irdl_op_definition
class WeightOp(IRDLOperation):
    """A named module-level weight; without a blob only its type is known (its value was elided)."""

    name = "graph.weight"
    sym_name = prop_def(SymbolNameConstraint())
    type = prop_def(TensorType)
    blob = opt_prop_def(BlobAttr)
    traits = traits_def(SymbolOpInterface())

    def __init__(self, name: str, array: np.ndarray | None = None, t: TensorType | None = None):
        blob = None if array is None else BlobAttr(array)
        super().__init__(properties={"sym_name": StringAttr(name), "blob": blob,
                                     "type": t if t is not None else _tensor_type(blob.data)})

    # `graph.weight @name : type`: the blob is printed in the file metadata (`print_module`), not here
    def print(self, printer: Printer) -> None:
        printer.print_string(" ")
        printer.print_symbol_name(self.sym_name.data)
        printer.print_op_attributes(self.attributes)
        printer.print_string(" : ")
        printer.print_attribute(self.type)

    @classmethod
    def parse(cls, parser: Parser) -> "WeightOp":
        name = parser.parse_symbol_name().data
        attrs = parser.parse_optional_attr_dict()
        parser.parse_punctuation(":")
        t = parser.parse_type()
        if not isinstance(t, TensorType):
            parser.raise_error(f"graph.weight needs a tensor type, got {t}")
        op = cls(name, t=t)
        op.attributes.update(attrs)
        return op

    @property
    def value(self) -> np.ndarray | None:
        return None if self.blob is None else self.blob.data

    def verify_(self) -> None:
        if self.blob is not None and _tensor_type(self.blob.data) != self.type:
            raise VerifyException(f"weight @{self.sym_name.data}: its blob is a {_tensor_type(self.blob.data)}, "
                                  f"not a {self.type}")


WEIGHT_OPS = [WeightOp]
WEIGHT_ATTRS = [BlobAttr]


def weight_ops(module: ModuleOp) -> Iterator[WeightOp]:
    return (op for op in module.ops if isinstance(op, WeightOp))


class WeightTable(MutableMapping[str, np.ndarray]):
    """Weight name -> array, a view over the module's `graph.weight` ops that have a value.

    Views are cheap and hold no weights; any number of them over one module agree.
    """

    def __init__(self, module: ModuleOp):
        self.module = module
        self._index: dict[str, WeightOp] = {}

    @staticmethod
    def of(module: ModuleOp) -> "WeightTable":
        return WeightTable(module)

    def _op(self, name: str) -> WeightOp | None:
        op = self._index.get(name)
        if op is None or op.parent is not self.module.body.block or op.sym_name.data != name:
            self._index = {w.sym_name.data: w for w in weight_ops(self.module)}
            op = self._index.get(name)
        return op

    def __getitem__(self, name: str) -> np.ndarray:
        op = self._op(name)
        if op is None or op.blob is None:
            raise KeyError(name)
        return op.blob.data

    def __iter__(self) -> Iterator[str]:
        return (op.sym_name.data for op in weight_ops(self.module) if op.blob is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __setitem__(self, name: str, array: np.ndarray) -> None:
        op = self._op(name)
        if op is None:
            self._insert(WeightOp(name, array))
        else:
            op.blob = BlobAttr(array)
            op.type = _tensor_type(op.blob.data)

    def __delitem__(self, name: str) -> None:
        op = self._op(name)
        if op is None:
            raise KeyError(name)
        op.detach()
        op.erase()

    def add(self, hint: str, array: np.ndarray) -> str:
        """Store `array` under a fresh symbol name derived from `hint`; returns the name."""
        taken = {s.data for op in self.module.ops if isinstance(s := op.properties.get("sym_name"), StringAttr)}
        name, n = hint, 1
        while name in taken:
            name, n = f"{hint}_{n}", n + 1
        self._insert(WeightOp(name, array))
        return name

    def prune(self, used: set[str]) -> int:
        """Erase the weights nothing refers to; returns how many were erased."""
        unused = [op for op in weight_ops(self.module) if op.sym_name.data not in used]
        for op in unused:
            op.detach()
            op.erase()
        return len(unused)

    def _insert(self, op: WeightOp) -> None:
        """Weights precede the functions that use them."""
        block = self.module.body.block
        after = next((o for o in block.ops if not isinstance(o, WeightOp)), None)
        if after is None:
            block.add_op(op)
        else:
            block.insert_op_before(op, after)
        self._index[op.sym_name.data] = op


def require_values(module: ModuleOp) -> WeightTable:
    """The module's weights, once every weight a `graph.constant` reads is known to have a value."""
    table = WeightTable.of(module)
    missing = sorted({op.weight_name for op in module.walk()
                      if isinstance(op, graph.ConstantOp) and op.weight_name and op.weight_name not in table})
    if missing:
        raise InvalidModelError(f"weights {missing[:3]} have no value: give an .onnx model, or .mlir printed "
                                f"with its weights (pyflame-opt --print-weights)")
    return table


# ------------------------------------------------------------------ text


def print_module(module: ModuleOp, out: IO[str], print_weights: bool = False,
                 elide_larger_than: int | None = None) -> None:
    """The module; with `print_weights`, then the blobs (but those above `elide_larger_than` bytes)."""
    _ExactPrinter(stream=out).print_op(module)
    out.write("\n")
    blobs = [op for op in weight_ops(module) if print_weights and op.blob is not None
             and (elide_larger_than is None or op.blob.data.nbytes <= elide_larger_than)]
    if not blobs:
        return
    out.write(f"\n{{-#\n  dialect_resources: {{\n    {_RESOURCE_DIALECT}: {{\n")
    for i, op in enumerate(blobs):
        key = io.StringIO()
        Printer(stream=key).print_identifier_or_string_literal(op.sym_name.data)
        out.write(f"      {key.getvalue()}: \"")
        _write_hex(op.blob.data, out)
        out.write('",\n' if i + 1 < len(blobs) else '"\n')
    out.write("    }\n  }\n#-}\n")


class _ExactPrinter(Printer):
    """Prints a float `dense` literal holding an infinity or NaN as a hex string of its bytes
    (`dense<"0x000080FF">`, one element for a splat), which parses back bit for bit: xDSL 0.74 prints
    such an element as a hex integer (`dense<0xff800000>`) but reads that back as the integer's value."""

    def print_attribute(self, attribute: Attribute) -> None:
        if isinstance(attribute, DenseIntOrFPElementsAttr) and _has_non_finite(attribute.get_values()):
            data = attribute.data.data
            if attribute.is_splat():
                data = data[:attribute.get_element_type().compile_time_size]
            self.print_string(f'dense<"0x{data.hex().upper()}"> : ')
            self.print_attribute(attribute.get_type())
        else:
            super().print_attribute(attribute)


def _has_non_finite(values) -> bool:
    return any(isinstance(v, float) and not math.isfinite(v) for v in values)


def parse_module(ctx: Context, text: str, name: str = "<input>") -> ModuleOp:
    """A module with the blobs of its file-metadata section (verification is the caller's)."""
    section = _metadata_span(text)
    if section is None:
        return Parser(ctx, text, name).parse_module()
    module = Parser(ctx, text[:section[0]], name).parse_module()
    _ResourceReader(Input(text, name), module).read(section[0] + 3, section[1] - 3)
    return module


def _metadata_span(text: str) -> tuple[int, int] | None:
    """Where the `{-# ... #-}` section that ends the file (as MLIR prints it) starts and ends
    (searched from the front, skipping comments: the blobs behind it are most of the text)."""
    end = len(text)
    while end and text[end - 1].isspace():
        end -= 1
    if not text.endswith("#-}", 0, end):
        return None
    start = text.find("{-#", 0, end)
    while start >= 0 and "//" in text[text.rfind("\n", 0, start) + 1:start]:
        start = text.find("{-#", start + 3, end)
    return None if start < 0 else (start, end)


_WORD_BRACE = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_$.]*)\s*:\s*\{")
_KEY_QUOTE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_$.]*|"(?:[^"\\\n]|\\.)*")\s*:\s*"')
_COMMA_OR_CLOSE = re.compile(r"\s*([,}])")
_CLOSE = re.compile(r"\s*}\s*")


class _ResourceReader:
    """`dialect_resources: { graph: { key: "0x...", ... } }`: each blob goes to its graph.weight.

    Blobs are cut out of the text by position (`str.find`): a tokenizer's regex over hundreds of
    megabytes of hex is what makes large modules slow to parse."""

    def __init__(self, source: Input, module: ModuleOp):
        self.source, self.text = source, source.content
        self.ops = {op.sym_name.data: op for op in weight_ops(module)}

    def read(self, pos: int, end: int) -> None:
        m = self._expect(_WORD_BRACE, pos, end, "`dialect_resources: {`")
        if m[1] != "dialect_resources":
            self._fail(m.start(1), "the file metadata supports only 'dialect_resources'")
        m = self._expect(_WORD_BRACE, m.end(), end, "`graph: {`")
        if m[1] != _RESOURCE_DIALECT:
            self._fail(m.start(1), f"resources of dialect '{m[1]}' are not supported "
                                   f"(weights are '{_RESOURCE_DIALECT}' resources)")
        pos, sep = m.end(), ","
        while sep == ",":
            pos = self._entry(pos, end)
            m = self._expect(_COMMA_OR_CLOSE, pos, end, "`,` or `}`")
            pos, sep = m.end(), m[1]
        if not _CLOSE.fullmatch(self.text, pos, end):
            self._fail(pos, "expected `}` ending the file metadata")

    def _entry(self, pos: int, end: int) -> int:
        m = self._expect(_KEY_QUOTE, pos, end, 'a resource `key: "0x..."`')
        key = m[1] if m[1][0] != '"' else StringLiteral(m.start(1), m.end(1), self.source).string_contents
        close = self.text.find('"', m.end(), end)
        if close < 0:
            self._fail(m.end(), "unterminated resource blob")
        op = self.ops.get(key)
        if op is None:
            self._fail(m.start(1), f"resource '{key}' names no graph.weight")
        try:
            op.blob = BlobAttr(_read_hex(self.text[m.end():close], op.type))
        except (ValueError, VerifyException) as e:
            self._fail(m.end(), f"resource '{key}': {e}")
        return close + 1

    def _expect(self, pattern: re.Pattern, pos: int, end: int, what: str) -> re.Match:
        m = pattern.match(self.text, pos, end)
        if m is None:
            self._fail(pos, f"expected {what} in the file metadata")
        return m

    def _fail(self, pos: int, message: str) -> NoReturn:
        raise ParseError(Span(pos, pos + 1, self.source), message)
