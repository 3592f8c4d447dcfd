"""PyFlameRT's xDSL dialects. `graph` is the tensor level every importer targets."""
from xdsl.ir import Dialect

from pyflame_rt.dialects import graph

Graph = Dialect("graph", [*graph.CORE_OPS], [])

ALL_DIALECTS = [Graph]
