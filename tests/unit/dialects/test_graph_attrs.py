"""graph_attrs: element types are an enum attribute (DType's names), spelled bare in Cast's format."""
import pytest
from xdsl.parser import Parser
from xdsl.utils.exceptions import ParseError

from pyflame_rt.dialects.graph_attrs import ElementType, ElementTypeAttr, enum_attr
from pyflame_rt.dtype import DType
from pyflame_rt.errors import ShapeMismatchError
from pyflame_rt.opt_tool import make_context

CAST = """func.func @main(%x: tensor<2xi64>) -> tensor<2xbf16> {{
  %y = graph.cast %x to {to} : (tensor<2xi64>) -> tensor<2xbf16>
  func.return %y : tensor<2xbf16>
}}"""


def test_element_types_are_the_dtypes():
    assert [DType(e) for e in ElementType] == list(DType)


def test_cast_round_trips_with_its_target_type():
    module = Parser(make_context(), CAST.format(to="bfloat16")).parse_module()
    module.verify()
    assert "graph.cast %x to bfloat16 : (tensor<2xi64>) -> tensor<2xbf16>" in str(module)
    assert str(Parser(make_context(), str(module)).parse_module()) == str(module)


def test_an_unknown_element_type_is_a_parse_error():
    with pytest.raises(ParseError, match="bfloat8"):
        Parser(make_context(), CAST.format(to="bfloat8")).parse_module()


def test_an_unknown_element_type_is_refused_by_the_constructor():
    with pytest.raises(ShapeMismatchError, match="element_type must be one of float32, .*, got 'float8'"):
        enum_attr(ElementTypeAttr, "float8")
