"""Torch-exported sequence models with recurrent layers (torch.nn.LSTM / GRU: 2 layers, the second
bidirectional, with a linear head; dynamic batch and sequence) compiled once and checked against
onnxruntime at two batch sizes and two sequence lengths from the one artifact."""
import io

import numpy as np
import onnx
import pytest

from conftest import assert_close, ort_run
from pyflame_rt import InferenceSession

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]
torch = pytest.importorskip("torch")

FEATURES, HIDDEN = 12, 32


class SequenceModel(torch.nn.Module):
    """Two recurrent layers (the second bidirectional) over [batch, seq, features], then a linear
    head on every step's output and the last states."""

    def __init__(self, cell):
        super().__init__()
        self.first = cell(FEATURES, HIDDEN, batch_first=True)
        self.second = cell(HIDDEN, HIDDEN, batch_first=True, bidirectional=True)
        self.head = torch.nn.Linear(2 * HIDDEN, 5)

    def forward(self, x):
        y, _ = self.first(x)
        y, state = self.second(y)
        last = state[0] if isinstance(state, tuple) else state
        return self.head(y), last


def _export(cell) -> onnx.ModelProto:
    torch.manual_seed(0)
    buf = io.BytesIO()
    dynamic = {"x": {0: "batch", 1: "seq"}, "out": {0: "batch", 1: "seq"}, "last": {1: "batch"}}
    with torch.no_grad():
        torch.onnx.export(SequenceModel(cell).eval(), (torch.zeros(2, 7, FEATURES),), buf, input_names=["x"],
                          output_names=["out", "last"], dynamic_axes=dynamic, opset_version=17, dynamo=False)
    return onnx.load_from_string(buf.getvalue())


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_sequence_model_two_batches_two_lengths(cell):
    model = _export(getattr(torch.nn, cell))
    assert {n.op_type for n in model.graph.node} >= {cell}
    session = InferenceSession(model.SerializeToString())
    rng = np.random.default_rng(0)
    for batch in (1, 4):
        for seq in (3, 20):
            feeds = {"x": rng.standard_normal((batch, seq, FEATURES)).astype(np.float32)}
            got, want = session.run(None, feeds), ort_run(model, feeds)
            assert got[0].shape == (batch, seq, 5) and got[1].shape == (2, batch, HIDDEN)
            for g, w in zip(got, want):
                assert_close(g, w, rtol=1e-4)
