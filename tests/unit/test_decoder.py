"""StreamingInference on a torch-exported decoder with past key / values (benchmarks/models.py's
DecoderWithPast, 2 small layers): greedy tokens equal torch's greedy decode, every step's logits
equal onnxruntime's step-by-step run, and the cache stays in the same buffers across steps."""
import numpy as np
import pytest
from onnx import helper

from conftest import assert_close, make_model, repo_module
from pyflame_rt import InferenceSession
from pyflame_rt.errors import InputError, ValidationError
from pyflame_rt.streaming import StreamingInference

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]  # a compile: ~10-90 s

CONFIG = dict(layers=2, d=32, heads=4, vocab=50, max_len=64)
HEADS, HEAD_DIM = 4, 8


@pytest.fixture(scope="module")
def decoder_path(tmp_path_factory):
    pytest.importorskip("torch")
    path = str(tmp_path_factory.mktemp("decoder") / "decoder_with_past.onnx")
    repo_module("benchmarks/models.py").export_decoder_with_past(path, **CONFIG)
    return path


@pytest.fixture(scope="module")
def session(decoder_path):
    return InferenceSession(decoder_path)


def torch_greedy(prompt: np.ndarray, new: int) -> np.ndarray:
    """torch's greedy decode, the whole sequence recomputed each step (no cache)."""
    import torch

    torch.manual_seed(0)
    model = repo_module("benchmarks/models.py").DecoderWithPast(**CONFIG).eval()
    ids = torch.tensor(prompt)
    with torch.no_grad():
        for _ in range(new):
            b, t = ids.shape
            empty = [torch.zeros(b, HEADS, 0, HEAD_DIM)] * (2 * CONFIG["layers"])
            logits = model(ids, torch.ones(b, t, dtype=torch.long), torch.arange(t).repeat(b, 1), *empty)[0]
            ids = torch.cat([ids, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return ids.numpy()


def test_signature_pairs_past_and_present(session):
    sig = StreamingInference(session).signature
    assert [(p.past, p.present, p.axis) for p in sig.pairs][:2] == [
        ("past_key_values.0.key", "present.0.key", 2), ("past_key_values.0.value", "present.0.value", 2)]
    assert len(sig.pairs) == 4 and sig.logits == "logits" and sig.attention_mask and sig.position_ids


def test_greedy_generate_equals_torch_greedy(session):
    prompt = np.array([[5, 17, 3, 9, 30], [1, 2, 3, 4, 5]])
    tokens = StreamingInference(session, max_length=8).generate(prompt, 10)  # the cache grows past 8
    assert (tokens == torch_greedy(prompt, 10)).all()


def test_steps_match_onnxruntime_step_by_step_and_keep_the_cache_in_place(session, decoder_path):
    import onnxruntime as ort

    ref = ort.InferenceSession(decoder_path, providers=["CPUExecutionProvider"])
    decoder, seen = StreamingInference(session, max_length=16), []
    decoder.set_step_callback(seen.append)
    prompt = np.array([[4, 8, 15, 16, 23, 42]])
    logits = decoder.start({"input_ids": prompt})
    buffers = {a.ctypes.data for a in decoder.cache.front + decoder.cache.back}
    names = [p.past for p in decoder.signature.pairs]
    past = {n: np.zeros((1, HEADS, 0, HEAD_DIM), np.float32) for n in names}
    ids, feeds_pos = prompt, np.arange(6)[None]
    for step in range(6):
        total = 6 + step
        want = ref.run(None, {"input_ids": ids, "attention_mask": np.ones((1, total), np.int64),
                              "position_ids": feeds_pos, **past})
        assert_close(logits, want[0][:, -1])
        pasts = decoder.cache.pasts()
        for n, w in zip(names, want[1:]):  # the presents the runtime wrote are the next step's pasts
            assert_close(pasts[n], w)
            assert pasts[n].ctypes.data in buffers
        past = dict(zip(names, want[1:]))
        ids, feeds_pos = want[0][:, -1].argmax(-1)[:, None].astype(np.int64), np.array([[total]])
        logits = decoder.step(int(ids[0, 0]))
    assert {a.ctypes.data for a in decoder.cache.front + decoder.cache.back} == buffers  # never reallocated
    assert decoder.length == 12
    assert len(decoder.get_outputs()) == len(seen) == 7
    assert all(a is b for a, b in zip(decoder.get_outputs(), seen))
    decoder.generate(prompt, 3)
    assert decoder.get_outputs() == [] and len(seen) == 10  # generate keeps no logits, calls the callback
    decoder.stop()
    with pytest.raises(InputError, match="not started"):
        decoder.step(1)


def test_left_padded_batch_matches_each_sequence_alone(session):
    """A padded prompt row decodes as the same prompt without padding does."""
    decoder = StreamingInference(session)
    short, full = [7, 11, 13], [2, 3, 5, 7, 9]
    padded = np.array([[0, 0, *short], full])
    mask = np.array([[0, 0, 1, 1, 1], [1] * 5])
    together = decoder.generate(padded, 6, attention_mask=mask)
    assert (together[0, 5:] == decoder.generate(np.array([short]), 6)[0, 3:]).all()
    assert (together[1] == decoder.generate(np.array([full]), 6)[0]).all()


def test_sampling_is_seeded_and_stop_tokens_end_a_sequence(session):
    decoder = StreamingInference(session)
    prompt = np.array([[3, 1, 4, 1, 5]])
    kwargs = dict(do_sample=True, temperature=0.8, top_k=10, top_p=0.9)
    first = decoder.generate(prompt, 12, seed=1, **kwargs)
    assert (decoder.generate(prompt, 12, seed=1, **kwargs) == first).all()
    assert (decoder.generate(prompt, 12, seed=2, **kwargs) != first).any()
    assert (decoder.generate(prompt, 8, do_sample=True, top_k=1, seed=5) == decoder.generate(prompt, 8)).all()

    greedy = decoder.generate(prompt, 12)
    stop = int(greedy[0, 8])  # the 4th new token
    got = []
    stopped = decoder.generate(prompt, 12, stop_tokens=[stop], callback=lambda t: got.append(int(t[0])))
    end = 5 + list(greedy[0, 5:]).index(stop) + 1
    assert (stopped == greedy[:, :end]).all()
    assert got == list(greedy[0, 5:end])


def test_models_that_are_not_decoders_with_past_are_refused():
    mlp = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["n", 4])], [("y", ["n", 4])])
    with pytest.raises(ValidationError, match="not a decoder with past key / values: it has no input_ids"):
        StreamingInference(InferenceSession(mlp.SerializeToString()))
    unpaired = make_model([helper.make_node("Identity", ["input_ids"], ["logits"]),
                           helper.make_node("Identity", ["past.0"], ["cache.0"])],
                          [("input_ids", ["b", "s"], np.int64), ("past.0", ["b", 2, "p", 4])],
                          [("logits", ["b", "s"], np.int64), ("cache.0", ["b", 2, "p", 4])])
    with pytest.raises(ValidationError, match="input 'past.0' has no output 'present.0'"):
        StreamingInference(InferenceSession(unpaired.SerializeToString()))


def test_bad_tokens_are_refused(session):
    decoder = StreamingInference(session)
    with pytest.raises(InputError, match="integer token ids"):
        decoder.start({"input_ids": np.zeros((1, 3), np.float32)})
    with pytest.raises(InputError, match="not started"):
        decoder.step(1)
    with pytest.raises(InputError, match="Gather"):
        decoder.start({"input_ids": np.array([[1, CONFIG["vocab"]]])})
    with pytest.raises(InputError, match="not started"):  # a failed prompt starts nothing
        decoder.step(1)
    decoder.start({"input_ids": np.array([[1, 2]])})
    with pytest.raises(InputError, match="one row per sequence"):
        decoder.step(np.array([[1], [2]]))
    with pytest.raises(InputError, match="stop_tokens must be token ids"):
        decoder.generate(np.array([[1, 2]]), 3, stop_tokens=[0.5])
    with pytest.raises(InputError, match="Gather"):  # a token id past the vocabulary: the run-time index check
        decoder.step(CONFIG["vocab"] + 5)
    assert decoder.length == 2  # a failed step leaves the decode where it was
    decoder.step(3)
    assert decoder.length == 3
