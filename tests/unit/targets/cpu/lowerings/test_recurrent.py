"""RNN / GRU / LSTM compiled to the input-projection GEMM and the step-loop kernel, vs onnxruntime:
every direction, layouts 0 and 1, sequence_lens, initial states, peepholes, input_forget,
linear_before_reset, clip, activations with alpha / beta, absent outputs, run-time weights, and a
dynamic batch and sequence (two shapes from one artifact). Hidden sizes give packed R^T several
panels, panels narrower than UNROLL vectors and zero-padded last panels."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, ort_run
from pyflame_rt import InferenceSession
from pyflame_rt.dialects.reference import evaluate
from pyflame_rt.errors import InputError
from pyflame_rt.importers.onnx import from_onnx

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
INPUT = 3


def _arrays(rng, op_type, dirs, hidden):
    g = GATES[op_type] * hidden
    return {"W": rng.uniform(-0.6, 0.6, (dirs, g, INPUT)).astype(np.float32),
            "R": rng.uniform(-0.6, 0.6, (dirs, g, hidden)).astype(np.float32),
            "B": rng.uniform(-0.5, 0.5, (dirs, 2 * g)).astype(np.float32),
            "P": rng.uniform(-0.5, 0.5, (dirs, 3 * hidden)).astype(np.float32)}


def _model(arrays, op_type, hidden, dirs, layout, inputs, state_inputs, outputs, runtime_weights, attrs):
    """One recurrent node with X [seq, batch, 3] (layout 1: [batch, seq, 3]) and, as graph inputs,
    sequence_lens and the initial states named in state_inputs (and the weights if runtime_weights)."""
    x_dims = ["batch", "seq", INPUT] if layout else ["seq", "batch", INPUT]
    state_dims = ["batch", dirs, hidden] if layout else [dirs, "batch", hidden]
    names = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"][:8 if op_type == "LSTM" else 6]
    node_inputs = [n if n == "X" or n in inputs or n in state_inputs else "" for n in names]
    while not node_inputs[-1]:
        node_inputs.pop()
    all_outputs = ["Y", "Y_h", "Y_c"][:3 if op_type == "LSTM" else 2]
    node = helper.make_node(op_type, node_inputs, [o if o in outputs else "" for o in all_outputs],
                            hidden_size=hidden, layout=layout, **attrs)
    weights = {n: arrays[n] for n in inputs}
    graph_inputs = [("X", x_dims)] + [(s, ["batch"], np.int32) if s == "sequence_lens" else (s, state_dims)
                                      for s in state_inputs]
    if runtime_weights:
        graph_inputs += [(n, list(a.shape)) for n, a in weights.items()]
    y_dims = ["batch", "seq", dirs, hidden] if layout else ["seq", dirs, "batch", hidden]
    out_dims = {"Y": y_dims, "Y_h": state_dims, "Y_c": state_dims}
    return make_model([node], graph_inputs, [(o, out_dims[o]) for o in all_outputs if o in outputs],
                      initializers={} if runtime_weights else weights, opset=14)


def _feeds(rng, model, seq, batch, dirs, hidden, layout, weights):
    feeds = dict(weights)
    for name in (vi.name for vi in model.graph.input):
        if name == "X":
            shape = (batch, seq, INPUT) if layout else (seq, batch, INPUT)
            feeds[name] = rng.standard_normal(shape).astype(np.float32)
        elif name == "sequence_lens":
            feeds[name] = rng.integers(1, seq + 1, batch).astype(np.int32)
            feeds[name][-1] = 0  # ends in zero states
        elif name in ("initial_h", "initial_c"):
            shape = (batch, dirs, hidden) if layout else (dirs, batch, hidden)
            feeds[name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


# layout 1 -> layout 0 (onnxruntime runs layout 0 only): per tensor, its axes permutation
_TO_SEQ_FIRST = {"X": (1, 0, 2), "initial_h": (1, 0, 2), "initial_c": (1, 0, 2)}
_OUTPUT_TO_BATCH_FIRST = {"Y": (2, 0, 1, 3), "Y_h": (1, 0, 2), "Y_c": (1, 0, 2)}


def _compare(rng, op_type, hidden, *, direction="forward", layout=0, inputs=("W", "R", "B"), state_inputs=(),
             outputs=("Y", "Y_h"), runtime_weights=False, shapes=((5, 2), (3, 5)), **attrs):
    """Compile once, run at each (seq, batch) of shapes (batch 5: whole work items of rows and a
    partial one), compare every output with onnxruntime (for
    layout 1: onnxruntime on the layout-0 node with the tensors transposed) and the graph's numpy
    reference semantics with onnxruntime."""
    dirs = 2 if direction == "bidirectional" else 1
    arrays = _arrays(rng, op_type, dirs, hidden)
    attrs["direction"] = direction
    args = (arrays, op_type, hidden, dirs)
    rest = (inputs, state_inputs, outputs, runtime_weights, attrs)
    model = _model(*args, layout, *rest)
    oracle = _model(*args, 0, *rest)
    weights = {n: arrays[n] for n in inputs} if runtime_weights else {}
    session, imported = InferenceSession(model), from_onnx(model)
    for seq, batch in shapes:
        feeds = _feeds(rng, model, seq, batch, dirs, hidden, layout, weights)
        oracle_feeds = {n: v.transpose(_TO_SEQ_FIRST[n]) if layout and n in _TO_SEQ_FIRST else v
                        for n, v in feeds.items()}
        wants = ort_run(oracle, oracle_feeds)
        refs = evaluate(imported.module, imported.weights, feeds)
        for out, got, ref, want in zip(model.graph.output, session.run(None, feeds), refs, wants):
            want = want.transpose(_OUTPUT_TO_BATCH_FIRST[out.name]) if layout else want
            assert_close(got, want)
            assert_close(ref, want)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_lstm_directions_with_every_input(rng, direction):
    hidden = 21  # 84 columns of R^T: panels of 4 vectors (32 or 64 columns), the last one padded
    _compare(rng, "LSTM", hidden, direction=direction, inputs=("W", "R", "B", "P"),
             state_inputs=("sequence_lens", "initial_h", "initial_c"), outputs=("Y", "Y_h", "Y_c"))


def test_lstm_batch_first_input_forget_clip_last_state_only(rng):
    _compare(rng, "LSTM", 8, direction="bidirectional", layout=1, outputs=("Y_h", "Y_c"),
             input_forget=1, clip=0.7, state_inputs=("initial_h",))


def test_lstm_clip_bounds_the_gate_inputs_not_the_cell_state(rng):
    """An affine candidate of slope 20 makes the cell state exceed the clip: onnxruntime applies h
    to it unclipped."""
    _compare(rng, "LSTM", 4, clip=0.1, activations=["Sigmoid", "Affine", "Affine"], activation_alpha=[20.0, 1.0],
             activation_beta=[0.0, 0.0])


def test_lstm_custom_activations(rng):
    _compare(rng, "LSTM", 6, activations=["HardSigmoid", "ScaledTanh", "Affine"],
             activation_alpha=[0.3, 0.8, 0.5], activation_beta=[0.4, 1.2, 0.1])


@pytest.mark.parametrize("lbr,inputs", [(0, ("W", "R", "B")), (1, ("W", "R"))])  # lbr without B: no R_h bias
def test_gru_bidirectional_sequence_lens_initial_h(rng, lbr, inputs):
    _compare(rng, "GRU", 5, direction="bidirectional", linear_before_reset=lbr, inputs=inputs,
             state_inputs=("sequence_lens", "initial_h"))


def test_gru_reverse_batch_first_activations_clip(rng):
    _compare(rng, "GRU", 11, direction="reverse", layout=1, clip=1.5,
             activations=["LeakyRelu", "Softsign"], activation_alpha=[0.2])


def test_rnn_bidirectional_per_direction_activations(rng):
    _compare(rng, "RNN", 20, direction="bidirectional",
             activations=["Relu", "Elu"], activation_alpha=[0.7], state_inputs=("sequence_lens",))


@pytest.mark.parametrize("op_type,attrs", [("GRU", {"linear_before_reset": 1}), ("LSTM", {})])
def test_runtime_weights(rng, op_type, attrs):
    """W, R, B (and P) as graph inputs: W packed, R transposed and the biases added at run time."""
    inputs = ("W", "R", "B", "P") if op_type == "LSTM" else ("W", "R", "B")
    _compare(rng, op_type, 7, direction="bidirectional", inputs=inputs, runtime_weights=True,
             outputs=("Y", "Y_h"), **attrs)


@pytest.mark.parametrize("length", [-1, 6])
def test_a_sequence_length_outside_the_sequence_fails_the_run(rng, length):
    """As in onnxruntime; the kernel clamps it meanwhile, so no step reads past X."""
    arrays = _arrays(rng, "GRU", 1, 4)
    model = _model(arrays, "GRU", 4, 1, 0, ("W", "R"), ("sequence_lens",), ("Y", "Y_h"), False, {})
    feeds = {"X": rng.standard_normal((5, 2, INPUT)).astype(np.float32), "sequence_lens": np.array([5, length], np.int32)}
    with pytest.raises(InputError, match=r"Gru node \(output 'Y'\): a sequence_lens value is outside \[0, sequence"):
        InferenceSession(model).run(None, feeds)
