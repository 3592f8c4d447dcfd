"""`graph` ops of dense linear algebra beyond matrix products: Det."""
from __future__ import annotations

from xdsl.irdl import irdl_op_definition

from pyflame_rt.dialects.assumptions import require_equal
from pyflame_rt.dialects.graph import UnaryOp
from pyflame_rt.dtype import DType
from pyflame_rt.errors import DTypeMismatchError, ShapeMismatchError

DET_DTYPES = (DType.FLOAT32, DType.FLOAT64)


@irdl_op_definition
class DetOp(UnaryOp):
    """The determinant of each square matrix in the last two dims: [..., M, M] -> [...]."""

    name = "graph.det"

    def infer_shapes(self, shapes):
        x = shapes[0]
        if len(x) < 2:
            raise ShapeMismatchError(f"{self.name} needs square matrices [..., M, M], got {list(map(str, x))}")
        require_equal(x[-2], x[-1], f"{self.name} needs square matrices (rows vs columns)")
        return [tuple(x[:-2])]

    def infer_dtypes(self, dtypes):
        if dtypes[0] not in DET_DTYPES:
            raise DTypeMismatchError(f"{self.name} takes float32 or float64, got {dtypes[0].value}")
        return [dtypes[0]]


LINALG_OPS = [DetOp]
