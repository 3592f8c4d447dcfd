"""Reference semantics of the linear-algebra ops (see dialects/graph_linalg.py)."""
from __future__ import annotations

import numpy as np

from pyflame_rt.dialects import graph_linalg as gl
from pyflame_rt.dialects.reference.evaluator import reference


@reference(gl.DetOp)
def _det(op, x):
    return np.linalg.det(x[0].astype(np.float64))
