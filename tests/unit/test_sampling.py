"""Next-token choice: greedy, and seeded sampling with temperature, top-k and top-p."""
import numpy as np
import pytest

from pyflame_rt.errors import InputError, ValidationError
from pyflame_rt.sampling import Sampler


@pytest.fixture
def logits(rng):
    return rng.standard_normal((3, 50)).astype(np.float32) * 3


def test_greedy_is_argmax(logits):
    assert (Sampler()(logits) == logits.argmax(-1)).all()
    assert Sampler()(logits).dtype == np.int64


def test_sampling_is_reproducible_with_a_seed(logits):
    a, b = Sampler(True, seed=1), Sampler(True, seed=1)
    assert [a(logits).tolist() for _ in range(20)] == [b(logits).tolist() for _ in range(20)]
    c = Sampler(True, seed=2)
    assert [a(logits).tolist() for _ in range(20)] != [c(logits).tolist() for _ in range(20)]


def test_top_k_and_top_p_keep_only_the_most_likely(logits):
    sampler = Sampler(True, top_k=3, seed=0)
    top3 = np.argsort(-logits, -1)[:, :3]
    draws = np.array([sampler(logits) for _ in range(300)])
    for row in range(3):
        assert set(draws[:, row]) <= set(top3[row])
        assert len(set(draws[:, row])) > 1
    assert (Sampler(True, top_k=1, seed=0)(logits) == logits.argmax(-1)).all()
    assert (Sampler(True, top_p=1e-6, seed=0)(logits) == logits.argmax(-1)).all()
    cold = np.array([Sampler(True, temperature=0.01, seed=s)(logits) for s in range(20)])
    assert (cold == logits.argmax(-1)).all()


@pytest.mark.parametrize("kwargs", [dict(temperature=0), dict(top_k=-1), dict(top_p=0), dict(top_p=1.5),
                                    dict(seed=-1), dict(do_sample=1), dict(top_k=2.0)])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValidationError):
        Sampler(**kwargs)


def test_logits_must_be_batch_by_vocab():
    with pytest.raises(InputError, match=r"\[batch, vocab\]"):
        Sampler()(np.zeros(5, np.float32))
