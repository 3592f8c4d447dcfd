"""Importing this module registers every in-tree graph pass (see registry.py)."""
from pyflame_rt.transforms import (  # noqa: F401
    convert_to_half,
    eliminate_common_subexpressions,
    eliminate_dead_code,
    expand_quant,
    fold_batch_norm,
    fold_constants,
    fold_qdq,
    fuse_activation,
    fuse_gelu,
    fuse_layer_norm,
    fuse_matmul_add,
    fuse_mul_add,
    fuse_residual_add,
    fuse_softmax,
    legalize_half_precision,
    optimize_layout,
)
