"""Tests for aigc_course.sampling: hand-computed top-k / top-p on asymmetric rows (ties included), equality with
Hugging Face's TopKLogitsWarper / TopPLogitsWarper on random logits (skipped without transformers), hypothesis
properties (top-k keeps exactly k without ties; top-p keeps a minimal set of mass >= p), sampling frequencies
against softmax(l / T), seeded repeatability, and every bad input with its exact message."""

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aigc_course.sampling import check_sampling_args, sample_next_token, top_k_filter, top_p_filter

torch.set_num_threads(1)
INF = math.inf


def kept(x: torch.Tensor) -> list[int]:
    return torch.isfinite(x).nonzero().flatten().tolist()


def exact(msg: str) -> str:
    return "^" + re.escape(msg) + "$"


# --------------------------------------------------------------------------- top-k

def test_top_k_hand_computed():
    x = torch.tensor([1.0, 3.0, 2.0, 0.0, -1.0])
    out = top_k_filter(x, 2)
    assert out.tolist() == [-INF, 3.0, 2.0, -INF, -INF]
    assert top_k_filter(x, 1).tolist() == [-INF, 3.0, -INF, -INF, -INF]
    assert torch.equal(top_k_filter(x, 5), x) and torch.equal(top_k_filter(x, 99), x)   # k >= V keeps all
    assert x.tolist() == [1.0, 3.0, 2.0, 0.0, -1.0]                                        # input untouched


def test_top_k_keeps_ties_at_the_cut_and_works_per_row():
    x = torch.tensor([[1.0, 2.0, 2.0, 0.0], [5.0, -1.0, 4.0, 4.5]])
    out = top_k_filter(x, 1)
    assert kept(out[0]) == [1, 2]          # both 2.0 tie for first place
    assert kept(out[1]) == [0]
    out3 = top_k_filter(x[None], 2)        # (..., V): a leading batch dimension
    assert out3.shape == (1, 2, 4)
    assert kept(out3[0, 1]) == [0, 3]


def test_top_k_leaves_minus_inf_alone_and_keeps_dtype():
    x = torch.tensor([-INF, 0.5, -INF, 0.25], dtype=torch.float64)
    out = top_k_filter(x, 3)   # only two finite entries: the k-th largest is -inf, nothing new is removed
    assert out.dtype == torch.float64 and kept(out) == [1, 3]


# --------------------------------------------------------------------------- top-p

PROBS = [0.15, 0.5, 0.05, 0.3]


@pytest.mark.parametrize(("p", "expected"), [(0.4, [1]), (0.7, [1, 3]), (0.9, [0, 1, 3]), (0.97, [0, 1, 2, 3]),
                                             (1.0, [0, 1, 2, 3])])
def test_top_p_hand_computed(p, expected):
    x = torch.tensor(PROBS).log() + 3.0    # a shift must not matter
    out = top_p_filter(x, p)
    assert kept(out) == expected
    assert torch.equal(out[expected], x[expected])


def test_top_p_keeps_the_top_token_for_tiny_p_and_is_per_row():
    x = torch.tensor([[0.0, 1.0, 0.5], [2.0, 2.0, -3.0]])
    out = top_p_filter(x, 1e-9)
    assert kept(out[0]) == [1]
    assert len(kept(out[1])) == 1          # a tie at the top: exactly one of the two (torch.sort's order)
    # mass exactly p is enough: four equal tokens (probabilities 1/4, exact in binary)
    for p, n in ((0.25, 1), (0.5, 2), (0.75, 3), (0.76, 4)):
        assert len(kept(top_p_filter(torch.zeros(4), p))) == n, p
    out3 = top_p_filter(torch.stack([x, x]), 0.6)
    assert out3.shape == (2, 2, 3) and kept(out3[1, 1]) == [0, 1]


# --------------------------------------------------------------------------- equality with Hugging Face

def _random_logits(seed: int, ties: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 50, generator=g) * 3
    if ties:
        x = x.round()   # many exact ties, at the top-k cut and inside the nucleus
    x[0, :10] = -INF    # masked entries, as after an earlier filter
    return x


@pytest.mark.parametrize("ties", [False, True])
def test_filters_equal_hugging_face_warpers(ties):
    lp = pytest.importorskip("transformers.generation.logits_process")
    ids = torch.zeros(6, 1, dtype=torch.long)
    for seed in range(5):
        x = _random_logits(seed, ties)
        for k in (1, 2, 5, 17, 50, 80):
            assert torch.equal(top_k_filter(x, k), lp.TopKLogitsWarper(top_k=k)(ids, x.clone())), (seed, k)
        for p in (1e-6, 0.1, 0.5, 0.9, 0.95, 0.999, 1.0):
            assert torch.equal(top_p_filter(x, p), lp.TopPLogitsWarper(top_p=p)(ids, x.clone())), (seed, p)


# --------------------------------------------------------------------------- properties

_rows = st.integers(2, 40).flatmap(lambda v: st.lists(
    st.floats(-20, 20, allow_nan=False, width=32), min_size=v, max_size=v, unique=True))


@settings(max_examples=60, deadline=None)
@given(row=_rows, k=st.integers(1, 50))
def test_top_k_keeps_exactly_the_k_largest_without_ties(row, k):
    x = torch.tensor(row)
    out = top_k_filter(x, k)
    keep = kept(out)
    assert len(keep) == min(k, len(row))
    assert set(keep) == set(torch.argsort(x, descending=True)[:k].tolist())


@settings(max_examples=60, deadline=None)
@given(row=_rows, p=st.floats(0.01, 1.0))
def test_top_p_keeps_a_minimal_top_set_of_mass_at_least_p(row, p):
    x = torch.tensor(row, dtype=torch.float64)
    probs = x.softmax(-1)
    keep = torch.isfinite(top_p_filter(x, p))
    mass = probs[keep].sum().item()
    assert mass >= p - 1e-12
    assert probs[keep].min() >= probs[~keep].max() if (~keep).any() else True   # the most probable tokens
    assert mass - probs[keep].min().item() < p + 1e-12 or keep.sum() == 1        # minimal: one fewer misses p


# --------------------------------------------------------------------------- sampling

def test_greedy_is_argmax_and_ignores_rng_and_filters():
    x = torch.tensor([[0.1, 2.0, -1.0], [3.0, 3.0, 0.0], [-INF, -5.0, -6.0]])
    before = torch.get_rng_state()
    out = sample_next_token(x, temperature=0.0, top_k=1, top_p=0.5)
    assert out.dtype == torch.long and out.tolist() == [1, 0, 1]    # ties: the first index
    assert torch.equal(torch.get_rng_state(), before)               # greedy draws nothing


def test_sampling_frequencies_follow_the_tempered_softmax():
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0])
    g = torch.Generator().manual_seed(0)
    for t in (0.5, 1.0, 2.0):
        draws = sample_next_token(logits.expand(40_000, 4), temperature=t, rng=g)
        freq = torch.bincount(draws, minlength=4).double() / draws.numel()
        assert torch.allclose(freq, (logits.double() / t).softmax(-1), atol=0.01), t


def test_sampling_respects_the_filters_and_never_draws_minus_inf():
    logits = torch.tensor([[1.0, 0.5, -INF, 0.9, -2.0]]).expand(5000, 5)
    g = torch.Generator().manual_seed(1)
    assert set(sample_next_token(logits, top_k=2, rng=g).tolist()) == {0, 3}
    assert set(sample_next_token(logits, top_p=1e-6, rng=g).tolist()) == {0}
    assert set(sample_next_token(logits, rng=g).tolist()) == {0, 1, 3, 4}


def test_seeded_sampling_repeats_and_tiny_temperature_is_safe():
    logits = torch.randn(8, 30, generator=torch.Generator().manual_seed(2)) * 50
    a = sample_next_token(logits, temperature=0.7, top_k=10, top_p=0.9, rng=torch.Generator().manual_seed(3))
    b = sample_next_token(logits, temperature=0.7, top_k=10, top_p=0.9, rng=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (8,)
    big = torch.tensor([[1e38, -1e38, 3e37]])   # dividing these by 1e-3 overflows without the max shift
    assert sample_next_token(big, temperature=1e-3).tolist() == [0]


def test_check_sampling_args_normalises_once_for_loops():
    g = torch.Generator()
    assert check_sampling_args(1, 3, 1, g) == dict(temperature=1.0, top_k=3, top_p=1.0, rng=g)
    assert check_sampling_args() == dict(temperature=1.0, top_k=None, top_p=None, rng=None)
    assert type(check_sampling_args(2)["temperature"]) is float


# --------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize(("call", "exc", "msg"), [
    (lambda: top_k_filter([1.0, 2.0], 1), TypeError, "logits must be a torch.Tensor, got list"),
    (lambda: top_k_filter(torch.tensor([1, 2]), 1), TypeError,
     "logits must be a floating-point tensor, got dtype torch.int64"),
    (lambda: top_k_filter(torch.tensor(1.0), 1), ValueError, "logits must have shape (..., V) with V >= 1, got ()"),
    (lambda: top_k_filter(torch.zeros(2, 0), 1), ValueError,
     "logits must have shape (..., V) with V >= 1, got (2, 0)"),
    (lambda: top_k_filter(torch.tensor([0.0, math.nan]), 1), ValueError,
     "logits must be finite or -inf, got NaN or +inf"),
    (lambda: top_p_filter(torch.tensor([0.0, INF]), 0.5), ValueError, "logits must be finite or -inf, got NaN or +inf"),
    (lambda: top_p_filter(torch.tensor([[0.0, 1.0], [-INF, -INF]]), 0.5), ValueError,
     "logits must have at least one finite entry in every row, got a row of -inf"),
    (lambda: top_k_filter(torch.zeros(3), 0), ValueError, "k must be >= 1, got 0"),
    (lambda: top_k_filter(torch.zeros(3), 2.0), TypeError, "k must be an int, got float 2.0"),
    (lambda: top_k_filter(torch.zeros(3), True), TypeError, "k must be an int, got bool True"),
    (lambda: top_p_filter(torch.zeros(3), 0), ValueError, "p must be in (0, 1], got 0"),
    (lambda: top_p_filter(torch.zeros(3), 1.5), ValueError, "p must be in (0, 1], got 1.5"),
    (lambda: top_p_filter(torch.zeros(3), math.nan), ValueError, "p must be in (0, 1], got nan"),
    (lambda: top_p_filter(torch.zeros(3), "0.5"), TypeError, "p must be a float in (0, 1], got str"),
    (lambda: sample_next_token(torch.zeros(3)), ValueError, "logits must have shape (B, V), got (3,)"),
    (lambda: sample_next_token(torch.zeros(1, 3), temperature=-0.1), ValueError,
     "temperature must be finite and >= 0, got -0.1"),
    (lambda: sample_next_token(torch.zeros(1, 3), temperature=math.inf), ValueError,
     "temperature must be finite and >= 0, got inf"),
    (lambda: sample_next_token(torch.zeros(1, 3), temperature=None), TypeError,
     "temperature must be a float >= 0, got NoneType"),
    (lambda: sample_next_token(torch.zeros(1, 3), top_k=0), ValueError, "top_k must be >= 1, got 0"),
    (lambda: sample_next_token(torch.zeros(1, 3), top_p=0.0), ValueError, "top_p must be in (0, 1], got 0.0"),
    (lambda: sample_next_token(torch.zeros(1, 3), rng=0), TypeError, "rng must be a torch.Generator or None, got int"),
    (lambda: check_sampling_args(top_p=-1), ValueError, "top_p must be in (0, 1], got -1"),
])
def test_bad_inputs_exact_messages(call, exc, msg):
    with pytest.raises(exc, match=exact(msg)):
        call()
