"""MaxPool's ONNX storage_order becomes the op's StorageOrder; a value ONNX does not define is refused."""
import pytest
from onnx import helper

from conftest import make_model
from pyflame_rt.importers.onnx import from_onnx
from pyflame_rt.dialects.graph_attrs import StorageOrder
from pyflame_rt.errors import PyFlameRTError


def _max_pool_with_indices(storage_order: int):
    node = helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], storage_order=storage_order)
    return make_model([node], [("x", [1, 1, 4, 4])], [("y", [1, 1, 3, 3])], opset=12)


@pytest.mark.parametrize("onnx_order, order", [(0, StorageOrder.ROW_MAJOR), (1, StorageOrder.COLUMN_MAJOR)])
def test_storage_order(onnx_order, order):
    pool = next(op for op in from_onnx(_max_pool_with_indices(onnx_order)).module.walk()
                if op.name == "graph.max_pool_with_indices")
    assert pool.storage_order.data == order
    assert pool.column_major == (order == StorageOrder.COLUMN_MAJOR)


def test_an_undefined_storage_order_is_refused():
    with pytest.raises(PyFlameRTError, match="storage_order must be one of row_major, column_major, got '2'"):
        from_onnx(_max_pool_with_indices(2))
