"""A numpy reference evaluator for graph IR, kept apart from the compiled path.

Each graph op family states its semantics once, with `@reference(OpClass)`; the
evaluator interprets a graph function op by op. Used for constant folding and as a
test oracle for the compiled code.
"""
from pyflame_rt.dialects.reference.evaluator import dim_value, evaluate, evaluate_op, has_reference, reference

# Op families register their semantics on import.
from pyflame_rt.dialects.reference import bitwise, core, fused, index, math, nn, reduce, tensor  # noqa: E402,F401
from pyflame_rt.dialects.reference import control, detection, linalg, pool_indices, quant, recurrent  # noqa: E402,F401

__all__ = ["dim_value", "evaluate", "evaluate_op", "has_reference", "reference"]
