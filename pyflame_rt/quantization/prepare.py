"""The graph a quantization works on: the decomposed LayerNorm, GELU and Softmax subgraphs
exporters emit are fused first, so their internals (a variance's squares, an exp's sum) are one
op that stays float32 instead of Sub / Mul / Add nodes a mode would narrow. Calibration and the
Quantizer both prepare their copy, so they name the same tensors."""
from __future__ import annotations

from xdsl.dialects.builtin import ModuleOp

from pyflame_rt.dialects.weights import WeightTable
from pyflame_rt.transforms.fuse_gelu import FuseGelu
from pyflame_rt.transforms.fuse_layer_norm import FuseLayerNorm
from pyflame_rt.transforms.fuse_softmax import FuseSoftmax
from pyflame_rt.transforms.graph_pass import PassStats

_FUSIONS = (FuseLayerNorm(), FuseGelu(), FuseSoftmax())


def prepare(module: ModuleOp) -> ModuleOp:
    """Fuse the precision-sensitive subgraphs of `module` in place; returns it."""
    weights = WeightTable.of(module)
    for fusion in _FUSIONS:
        fusion.rewrite(module, weights, PassStats())
    return module
