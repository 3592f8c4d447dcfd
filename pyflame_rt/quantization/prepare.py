"""The graph a quantization works on: Identity nodes are forwarded (torch's exporter puts them
between a shared weight and its readers, which then read no constant), and the decomposed
LayerNorm, GELU and Softmax subgraphs exporters emit are fused, so their internals (a variance's
squares, an exp's sum) are one op that stays float32 instead of Sub / Mul / Add nodes a mode
would narrow. Calibration and the
Quantizer both prepare their copy, so they name the same tensors."""
from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp

from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.eliminate_dead_code import EliminateDeadCode
from pyflame_rt.transforms.fuse_gelu import FuseGelu
from pyflame_rt.transforms.fuse_layer_norm import FuseLayerNorm
from pyflame_rt.transforms.fuse_softmax import FuseSoftmax
from pyflame_rt.transforms.graph_pass import PassStats

_FUSIONS = (EliminateDeadCode(), FuseLayerNorm(), FuseGelu(), FuseSoftmax())


def prepare(module: ModuleOp) -> ModuleOp:
    """Forward the Identities and fuse the precision-sensitive subgraphs of `module` in place; returns it."""
    weights = WeightTable.of(module)
    for fusion in _FUSIONS:
        fusion.rewrite(module, weights, PassStats())
    return module
