"""Count-based character n-gram model and the small estimators behind it."""

import math
import re
from collections import Counter
from itertools import pairwise

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aigc_course.ngram import (
    CharNGramModel,
    adapt,
    additive_smoothing,
    categorical_mle,
    context_windows,
    dirichlet_map,
    entropy,
    perplexity_from_log_probs,
    perplexity_from_nll,
    softmax_with_temperature,
)

TEXT = "abracadabra"
CHARS = sorted(set(TEXT))  # a b c d r
STOI = {c: i for i, c in enumerate(CHARS)}
V = len(CHARS)


def encode(s: str) -> torch.Tensor:
    return torch.tensor([STOI[c] for c in s])


def random_ids(n: int, vocab: int, seed: int) -> torch.Tensor:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- counting


def test_counts_exact_on_a_tiny_string():
    m = CharNGramModel(V, order=3, smoothing=0.0).fit(encode(TEXT))
    expected = Counter(TEXT[i:i + 3] for i in range(len(TEXT) - 2))
    for trigram, n in expected.items():
        assert m.counts(encode(trigram[:2]))[STOI[trigram[2]]] == n, trigram
    assert m.num_tokens == len(TEXT) - 2 == sum(expected.values())
    assert m.num_contexts == len({t[:2] for t in expected})
    # "ab" is always followed by "r": the MLE puts all mass there
    assert m.next_token_probs(encode("ab")).tolist() == [1.0 if c == "r" else 0.0 for c in CHARS]


def test_fit_replaces_earlier_counts():
    m = CharNGramModel(V, 2, 0.0).fit(encode("aaaa"))
    m.fit(encode("abab"))
    assert m.counts(encode("a")).tolist() == [0, 2, 0, 0, 0]
    assert m.num_tokens == 3


def test_order_one_is_the_unigram_frequency():
    ids = random_ids(500, 7, seed=0)
    m = CharNGramModel(7, order=1, smoothing=0.0).fit(ids)
    freq = torch.bincount(ids, minlength=7).double() / 500
    torch.testing.assert_close(m.next_token_probs(torch.zeros(0, dtype=torch.long)), freq)
    torch.testing.assert_close(m.next_token_probs(ids[:13]), freq)  # any context: order 1 ignores it


@pytest.mark.parametrize("order", [1, 2, 3, 5])
@pytest.mark.parametrize("smoothing", [0.0, 0.5, 3.0])
def test_probabilities_sum_to_one_and_match_log_prob(order, smoothing):
    ids = random_ids(400, 11, seed=order)
    m = CharNGramModel(11, order, smoothing).fit(ids)
    contexts = torch.stack([ids[i:i + 6] for i in range(0, 60, 3)] + [random_ids(6, 11, seed=99)])
    probs = m.next_token_probs(contexts)
    assert probs.shape == (contexts.shape[0], 11)
    torch.testing.assert_close(probs.sum(-1), torch.ones(contexts.shape[0], dtype=torch.float64))
    # the sparse per-token lookup agrees with the dense distribution
    seq = ids[100:160]
    lp = m.token_log_probs(seq)
    assert lp.shape == (60 - order + 1,)
    for t in range(order - 1, 60, 7):
        p = m.next_token_probs(seq[max(0, t - order + 1):t] if order > 1 else seq[:0])
        assert math.isclose(lp[t - order + 1].exp().item(), p[seq[t]].item(), rel_tol=1e-12)


def test_add_k_formula_and_unseen_context():
    m = CharNGramModel(V, 2, smoothing=0.5).fit(encode(TEXT))
    c = m.counts(encode("a"))
    torch.testing.assert_close(m.next_token_probs(encode("a")), (c + 0.5) / (c.sum() + 0.5 * V))
    m0 = CharNGramModel(V, 3, smoothing=0.0).fit(encode(TEXT))
    uniform = torch.full((V,), 1 / V, dtype=torch.float64)
    torch.testing.assert_close(m0.next_token_probs(encode("dd")), uniform)  # no data: uniform
    # MLE (no smoothing) gives an unseen continuation probability 0, so held-out NLL is infinite
    assert math.isinf(m0.nll(encode("abd")))
    assert math.isfinite(CharNGramModel(V, 3, smoothing=0.1).fit(encode(TEXT)).nll(encode("abd")))


def test_smoothing_to_infinity_gives_uniform_and_to_zero_gives_mle():
    ids = random_ids(300, 6, seed=1)
    ctx = ids[:2]
    mle = CharNGramModel(6, 3, 0.0).fit(ids).next_token_probs(ctx)
    big = CharNGramModel(6, 3, 1e9).fit(ids).next_token_probs(ctx)
    tiny = CharNGramModel(6, 3, 1e-9).fit(ids).next_token_probs(ctx)
    torch.testing.assert_close(big, torch.full((6,), 1 / 6, dtype=torch.float64))
    torch.testing.assert_close(tiny, mle)
    # in between, the distribution's entropy rises with k
    ents = [entropy(CharNGramModel(6, 3, k).fit(ids).next_token_probs(ctx)) for k in (0.0, 0.1, 1.0, 10.0)]
    assert all(a < b for a, b in pairwise(ents))


def test_perplexity_of_uniform_model_is_vocab_size():
    for vocab in (2, 17, 103):
        untrained = CharNGramModel(vocab, 3, smoothing=1.0)  # no counts: the prior, i.e. uniform
        ids = random_ids(200, vocab, seed=vocab)
        assert math.isclose(untrained.perplexity(ids), vocab, rel_tol=1e-12)
        assert math.isclose(untrained.nll(ids), math.log(vocab), rel_tol=1e-12)


def test_mle_beats_perturbed_probabilities():
    ids = random_ids(2000, 8, seed=2)
    counts = torch.bincount(ids, minlength=8).double()
    p_hat = categorical_mle(counts)

    def loglik(p):
        return float((counts * p.log()).sum())

    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        p = torch.softmax(p_hat.log() + 0.05 * torch.randn(8, generator=g, dtype=torch.float64), -1)
        assert loglik(p) < loglik(p_hat)
    # and the model's training NLL equals the entropy of the empirical distribution (order 1)
    m = CharNGramModel(8, 1, 0.0).fit(ids)
    assert math.isclose(m.nll(ids), float(entropy(p_hat)), rel_tol=1e-12)


def test_log_prob_nll_perplexity_are_consistent():
    ids = random_ids(300, 9, seed=4)
    m = CharNGramModel(9, 2, 0.3).fit(ids[:200])
    held = ids[200:]
    n_scored = held.numel() - 1
    assert math.isclose(m.nll(held), -m.log_prob(held) / n_scored, rel_tol=1e-12)
    assert math.isclose(m.perplexity(held), math.exp(m.nll(held)), rel_tol=1e-12)
    assert math.isclose(float(perplexity_from_log_probs(m.token_log_probs(held))), m.perplexity(held),
                        rel_tol=1e-12)


# ----------------------------------------------------------------------------- adaptation


def test_adaptation_is_dirichlet_map_with_pretrained_prior():
    ids = random_ids(3000, 6, seed=5)
    pre = CharNGramModel(6, 2, 0.5).fit(ids)
    target = torch.tensor([0, 1, 0, 1, 0, 1, 0, 2, 0, 1])
    lam = 4.0
    ad = adapt(pre, target, strength=lam)
    for c in range(6):
        ctx = torch.tensor([c])
        n = CharNGramModel(6, 2, 0.0).fit(target).counts(ctx)
        want = dirichlet_map(n, pre.next_token_probs(ctx), lam)
        torch.testing.assert_close(ad.next_token_probs(ctx), want)
    # λ → ∞ returns the pre-trained model; the pre-trained model itself is untouched
    far = adapt(pre, target, strength=1e12)
    zero = torch.tensor([0])
    torch.testing.assert_close(far.next_token_probs(zero), pre.next_token_probs(zero))
    assert pre.prior is None and ad.prior is pre


def test_adaptation_moves_held_out_nll_as_expected():
    # pre-train on a source that follows 0 → 1 → 2 → 0; the target prefers 0 → 2 → 1 → 0
    g = torch.Generator().manual_seed(6)
    src = torch.tensor([0, 1, 2] * 400)
    noise = torch.rand(src.shape, generator=g) < 0.1
    src = torch.where(noise, torch.randint(0, 4, src.shape, generator=g), src)
    pre = CharNGramModel(4, 2, 0.1).fit(src)
    target_train = torch.tensor([0, 2, 1] * 5)
    target_val = torch.tensor([0, 2, 1] * 30)
    target_only = CharNGramModel(4, 2, 0.1).fit(target_train)
    nll_pre = pre.nll(target_val)
    nll_adapted = [adapt(pre, target_train, lam).nll(target_val) for lam in (1e6, 100.0, 10.0, 1.0)]
    # the more we trust the target counts, the better on target-like text
    assert all(a > b for a, b in pairwise(nll_adapted))
    assert math.isclose(nll_adapted[0], nll_pre, rel_tol=1e-4)
    # on source-like text the same adaptation hurts
    src_val = torch.tensor([0, 1, 2] * 30)
    assert adapt(pre, target_train, 1.0).nll(src_val) > pre.nll(src_val)
    # and with a *useful* prior, adaptation beats training on the tiny target set alone
    related = CharNGramModel(4, 2, 0.1).fit(torch.tensor([0, 2, 1] * 300 + [3]))
    assert adapt(related, target_train, 10.0).nll(target_val) < target_only.nll(target_val)


# ----------------------------------------------------------------------------- sampling and temperature


def test_sampling_is_deterministic_with_a_generator():
    ids = random_ids(1000, 10, seed=7)
    m = CharNGramModel(10, 3, 0.1).fit(ids)
    a = m.sample(50, generator=torch.Generator().manual_seed(0))
    b = m.sample(50, generator=torch.Generator().manual_seed(0))
    c = m.sample(50, generator=torch.Generator().manual_seed(1))
    assert a.shape == (50,) and a.dtype == torch.long and torch.equal(a, b) and not torch.equal(a, c)
    assert int(a.min()) >= 0 and int(a.max()) < 10
    assert m.sample(0).shape == (0,)


def test_sampling_follows_the_model():
    # a deterministic cycle a→b→c→a is reproduced exactly by an MLE bigram model
    m = CharNGramModel(3, 2, 0.0).fit(torch.tensor([0, 1, 2] * 10))
    out = m.sample(9, context=[2], generator=torch.Generator().manual_seed(0))
    assert out.tolist() == [0, 1, 2] * 3
    # empirical next-char frequencies approach the model's probabilities
    m1 = CharNGramModel(4, 1, 0.0).fit(torch.tensor([0] * 5 + [1] * 3 + [2] * 2))
    draws = m1.sample(4000, generator=torch.Generator().manual_seed(1))
    freq = torch.bincount(draws, minlength=4).double() / 4000
    want = torch.tensor([0.5, 0.3, 0.2, 0.0], dtype=torch.float64)
    torch.testing.assert_close(freq, want, atol=0.03, rtol=0)


def test_greedy_sampling_at_zero_temperature():
    ids = encode(TEXT * 5)
    m = CharNGramModel(V, 2, 0.1).fit(ids)
    out = m.sample(6, context=encode("a"), temperature=0.0)
    ctx = encode("a")
    for x in out:
        assert int(x) == int(m.next_token_probs(ctx).argmax())
        ctx = x[None]


def test_temperature_limits_and_entropy_order():
    logits = torch.tensor([2.0, 0.5, 0.5, -1.0, -math.inf], dtype=torch.float64)
    greedy = softmax_with_temperature(logits, 0.0)
    assert greedy.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    flat = softmax_with_temperature(logits, math.inf)
    assert flat.tolist() == [0.25, 0.25, 0.25, 0.25, 0.0]  # -inf stays impossible
    torch.testing.assert_close(softmax_with_temperature(logits, 1e-4), greedy)
    torch.testing.assert_close(softmax_with_temperature(logits, 1e6), flat, atol=1e-5, rtol=0)
    torch.testing.assert_close(softmax_with_temperature(logits, 1.0), torch.softmax(logits, -1))
    ents = [float(entropy(softmax_with_temperature(logits, T))) for T in (0.0, 0.3, 1.0, 3.0, math.inf)]
    assert all(a < b for a, b in pairwise(ents))
    assert ents[0] == 0.0 and math.isclose(ents[-1], math.log(4))
    ties = softmax_with_temperature(torch.tensor([1.0, 3.0, 3.0]), 0.0)
    assert ties.tolist() == [0.0, 0.5, 0.5]


# ----------------------------------------------------------------------------- small functions


def test_small_estimators():
    counts = torch.tensor([[3, 1, 0, 4], [1, 1, 1, 1]])
    torch.testing.assert_close(categorical_mle(counts)[0],
                               torch.tensor([3 / 8, 1 / 8, 0, 4 / 8], dtype=torch.float64))
    torch.testing.assert_close(additive_smoothing(counts.double(), 1.0)[0],
                               torch.tensor([4 / 12, 2 / 12, 1 / 12, 5 / 12], dtype=torch.float64))
    q = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float64)
    counts = counts.double()
    torch.testing.assert_close(dirichlet_map(counts, q, 4.0), additive_smoothing(counts, 1.0))
    assert math.isclose(perplexity_from_nll(math.log(7.0)), 7.0)
    assert math.isclose(float(perplexity_from_nll(torch.tensor(math.log(3.0)))), 3.0, rel_tol=1e-6)
    assert math.isclose(float(entropy(torch.tensor([0.5, 0.5, 0.0]))), math.log(2), rel_tol=1e-6)


F64 = torch.float64
INF, NAN = math.inf, math.nan


# ----------------------------------------------------------------------------- exact values, asymmetric


def test_estimators_exact_on_asymmetric_batches():
    counts = torch.tensor([[3, 1, 0, 4], [0, 2, 5, 1], [0, 0, 0, 0]])
    q = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [0.7, 0.1, 0.1, 0.1]], dtype=F64)
    mle = categorical_mle(counts)
    assert mle.dtype == F64
    assert mle[:2].tolist() == [[3 / 8, 1 / 8, 0.0, 4 / 8], [0.0, 2 / 8, 5 / 8, 1 / 8]]
    assert torch.isnan(mle[2]).all()  # no data: no MLE (documented)
    lam = 3.0
    got = dirichlet_map(counts, q, lam)
    for r in range(3):
        n = counts[r].tolist()
        want = [(n[x] + lam * q[r, x].item()) / (sum(n) + lam) for x in range(4)]
        assert got[r].tolist() == pytest.approx(want, rel=1e-15)
    # the interpolation form w·MLE + (1-w)·q with w = N / (N + λ)
    w = 8 / (8 + lam)
    torch.testing.assert_close(got[0], w * mle[0] + (1 - w) * q[0])
    torch.testing.assert_close(additive_smoothing(counts, 0.5)[1],
                               torch.tensor([0.5, 2.5, 5.5, 1.5], dtype=F64) / 10.0)
    lp = torch.log(torch.tensor([0.5, 0.25, 0.125, 0.5], dtype=F64))
    assert perplexity_from_log_probs(lp).item() == pytest.approx(math.exp(-lp.mean().item()), rel=1e-15)
    assert perplexity_from_log_probs(lp).item() == pytest.approx((0.5 * 0.25 * 0.125 * 0.5) ** -0.25)


def test_dirichlet_map_with_no_data_and_no_strength_is_the_prior():
    q = torch.tensor([0.1, 0.6, 0.3], dtype=F64)
    counts = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 6.0]], dtype=F64)
    out = dirichlet_map(counts, q, 0.0)
    assert out[0].tolist() == q.tolist()  # N = λ = 0: the prior, not 0/0
    assert out[1].tolist() == [0.25, 0.0, 0.75]  # λ = 0 with data: the MLE
    assert dirichlet_map(counts, q, 5.0)[0].tolist() == pytest.approx(q.tolist(), rel=1e-15)  # N = 0, λ > 0
    assert not torch.isnan(out).any()
    # the same convention as the model: an unseen context keeps the prior even with strength 0
    pre = CharNGramModel(3, 2, 0.5).fit(torch.tensor([0, 1, 2, 1, 1, 0, 2, 2]))
    ad = adapt(pre, torch.tensor([0, 1, 0, 1]), 0.0)  # context 2 never seen in the target
    ctx = torch.tensor([2])
    torch.testing.assert_close(ad.next_token_probs(ctx), pre.next_token_probs(ctx))
    torch.testing.assert_close(ad.next_token_probs(ctx), dirichlet_map(ad.counts(ctx), pre.next_token_probs(ctx),
                                                                       0.0))
    assert math.isfinite(ad.nll(torch.tensor([2, 0])))  # scored only after the unseen context


def test_dirichlet_map_broadcasts_and_promotes():
    q = torch.tensor([0.25, 0.75])
    counts = torch.tensor([[1, 3], [0, 0], [4, 0]])
    out = dirichlet_map(counts, q, 4.0)  # int counts → float64; float32 prior promotes to float64
    assert out.shape == (3, 2) and out.dtype == F64
    torch.testing.assert_close(out[2], torch.tensor([(4 + 1) / 8, 3 / 8], dtype=F64))
    rows = torch.tensor([[0.5, 0.5], [0.9, 0.1], [0.2, 0.8]], dtype=F64)
    torch.testing.assert_close(dirichlet_map(torch.tensor([2.0, 0.0], dtype=F64), rows, 2.0),
                               (torch.tensor([2.0, 0.0], dtype=F64) + 2 * rows) / 4)
    half = dirichlet_map(torch.tensor([30000.0, 40000.0], dtype=torch.float16),
                         torch.tensor([0.5, 0.5], dtype=torch.float16), 1.0)
    assert half.dtype == torch.float16  # the fp16 total 70 000 would overflow; computed in float64
    torch.testing.assert_close(half.double(), torch.tensor([30000.5 / 70001, 40000.5 / 70001], dtype=F64),
                               atol=1e-3, rtol=0)


def test_categorical_mle_keeps_float_dtype_and_survives_fp16_overflow():
    c16 = torch.tensor([40000.0, 30000.0], dtype=torch.float16)  # sum 70 000 > fp16 max
    out = categorical_mle(c16)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.double(), torch.tensor([4 / 7, 3 / 7], dtype=F64), atol=1e-3, rtol=0)
    assert categorical_mle(torch.tensor([1.0, 3.0])).dtype == torch.float32
    assert categorical_mle(torch.zeros(0, 3)).shape == (0, 3)


# ----------------------------------------------------------------------------- context windows


def loop_windows(ids, n):
    ctx = [ids[t - n + 1:t] for t in range(n - 1, len(ids))]
    tgt = [ids[t] for t in range(n - 1, len(ids))]
    return ctx, tgt


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=12), st.integers(1, 6))
def test_context_windows_matches_a_loop(ids, order):
    ctx, tgt = context_windows(torch.tensor(ids, dtype=torch.long), order)
    want_ctx, want_tgt = loop_windows(ids, order)
    pairs = max(len(ids) - order + 1, 0)
    assert ctx.shape == (pairs, order - 1) and tgt.shape == (pairs,)
    assert ctx.dtype == tgt.dtype == torch.long
    assert ctx.tolist() == want_ctx and tgt.tolist() == want_tgt


def test_context_windows_edges():
    ids = torch.tensor([4, 1, 3, 3, 0], dtype=torch.uint8)
    ctx, tgt = context_windows(ids, 1)
    assert ctx.shape == (5, 0) and tgt.tolist() == [4, 1, 3, 3, 0] and tgt.dtype == torch.long
    ctx, tgt = context_windows(ids, 3)
    assert ctx.tolist() == [[4, 1], [1, 3], [3, 3]] and tgt.tolist() == [3, 3, 0]
    ctx, tgt = context_windows(ids, 5)  # T = order: exactly one pair
    assert ctx.tolist() == [[4, 1, 3, 3]] and tgt.tolist() == [0]
    ctx, tgt = context_windows(ids, 6)  # T < order: no pairs
    assert ctx.shape == (0, 5) and tgt.shape == (0,) and ctx.dtype == torch.long
    ctx, tgt = context_windows(torch.zeros(0, dtype=torch.long), 2)
    assert ctx.shape == (0, 1) and tgt.shape == (0,)
    # the outputs are copies: writing to them leaves the input alone
    src = torch.tensor([1, 2, 3, 4])
    ctx, tgt = context_windows(src, 2)
    ctx[0, 0], tgt[0] = 9, 9
    assert src.tolist() == [1, 2, 3, 4]


def test_context_windows_are_what_the_model_counts():
    ids = random_ids(300, 6, seed=11)
    for order in (1, 2, 4):
        m = CharNGramModel(6, order, 0.0).fit(ids)
        ctx, tgt = context_windows(ids, order)
        pairs = Counter((tuple(c), t) for c, t in zip(ctx.tolist(), tgt.tolist(), strict=True))
        assert sum(pairs.values()) == m.num_tokens
        for (c, t), n in list(pairs.items())[:20]:
            assert m.counts(torch.tensor(c, dtype=torch.long))[t].item() == n
        # and they are the positions token_log_probs scores
        lp = m.token_log_probs(ids)
        probs = m.next_token_probs(ctx)
        torch.testing.assert_close(lp, probs[torch.arange(len(tgt)), tgt].log())


# ----------------------------------------------------------------------------- temperature at the edges


TEMPS = [0.0, 5e-324, 1e-300, 1e-30, 1e-3, 0.3, 1.0, 7.0, 1e30, 1e300, INF]
DTYPES = [torch.float16, torch.bfloat16, torch.float32, F64]


@settings(max_examples=120, deadline=None)
@given(st.sampled_from(DTYPES), st.sampled_from(TEMPS), st.integers(0, 2**31 - 1),
       st.sampled_from([1.0, 30.0, 1e4]), st.booleans())
def test_softmax_with_temperature_is_always_a_distribution(dtype, T, seed, scale, with_neg_inf):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(3, 6, generator=g, dtype=F64) * scale).clamp(-6e4, 6e4)
    if with_neg_inf:
        logits[:, 2] = -INF
    logits = logits.to(dtype)
    out = softmax_with_temperature(logits, T)
    assert out.dtype == dtype and out.shape == (3, 6)
    p = out.double()
    assert torch.isfinite(p).all() and (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(3, dtype=F64), atol=8 * torch.finfo(dtype).eps, rtol=0)
    if with_neg_inf:
        assert (p[:, 2] == 0).all()  # impossible stays impossible at every T
    ref = logits.double()
    if T == 0.0 or T <= 1e-30:  # argmax, uniform over ties
        top = ref == ref.amax(-1, keepdim=True)
        torch.testing.assert_close(p, top.double() / top.sum(-1, keepdim=True), atol=1e-2, rtol=0)
    elif T == 1.0:
        torch.testing.assert_close(p, torch.softmax(ref, -1), atol=8 * torch.finfo(dtype).eps, rtol=0)
    elif T >= 1e30:
        fin = torch.isfinite(ref)
        torch.testing.assert_close(p, fin.double() / fin.sum(-1, keepdim=True), atol=8 * torch.finfo(dtype).eps,
                                   rtol=0)


def test_softmax_with_temperature_exact_values():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0], [1000.0, 999.0, -1000.0, 998.0]], dtype=F64)
    T = 0.7
    for row in range(2):
        z = [v / T for v in logits[row].tolist()]
        m = max(z)
        e = [math.exp(v - m) for v in z]
        want = [v / sum(e) for v in e]
        assert softmax_with_temperature(logits, T)[row].tolist() == pytest.approx(want, rel=1e-12, abs=1e-300)
    # tiny T: the limit is the argmax; ties share the mass; fp16 logits too
    assert softmax_with_temperature(logits, 1e-300).tolist() == [[1.0, 0, 0, 0], [1.0, 0, 0, 0]]
    ties = torch.tensor([1.0, 3.0, 3.0, -INF], dtype=torch.float16)
    for T in (0.0, 1e-300, 1e-8):
        assert softmax_with_temperature(ties, T).tolist() == [0.0, 0.5, 0.5, 0.0]
    # T = inf and a huge T agree: uniform over the finite logits
    big = torch.tensor([5.0, -3.0, -INF, 0.0])
    assert softmax_with_temperature(big, INF).tolist() == pytest.approx([1 / 3, 1 / 3, 0.0, 1 / 3])
    assert softmax_with_temperature(big, 1e300).tolist() == pytest.approx([1 / 3, 1 / 3, 0.0, 1 / 3])
    # a single symbol, and an empty batch
    assert softmax_with_temperature(torch.tensor([[-2.0]]), 0.5).tolist() == [[1.0]]
    assert softmax_with_temperature(torch.zeros(0, 4), 0.5).shape == (0, 4)
    # the input is not modified in place
    x = torch.tensor([1.0, 2.0, 3.0])
    softmax_with_temperature(x, 0.5)
    assert x.tolist() == [1.0, 2.0, 3.0]


def test_sampling_at_tiny_temperature_never_breaks_multinomial():
    # an MLE model has zero probabilities (log p = -inf); T ≈ 0 once gave NaN and a multinomial error
    m = CharNGramModel(4, 2, 0.0).fit(torch.tensor([0, 1, 1, 2, 0, 1, 3, 0, 1, 1, 2]))
    for T in (5e-324, 1e-300, 1e-12):
        out = m.sample(12, context=[0], temperature=T, generator=torch.Generator().manual_seed(0))
        greedy = m.sample(12, context=[0], temperature=0.0, generator=torch.Generator().manual_seed(0))
        assert torch.equal(out, greedy)
    # after 0 the most likely next id is 1; after 1 it is 1 again (1→1 twice, 1→2 twice, 1→3 once: a tie)
    assert m.sample(1, context=[0], temperature=1e-300).tolist() == [1]
    draws = m.sample(400, context=[0], temperature=INF, generator=torch.Generator().manual_seed(1))
    assert set(draws.tolist()) <= {0, 1, 2, 3}


def test_entropy_validates_and_accepts_low_precision():
    p = torch.softmax(torch.randn(4, 300, generator=torch.Generator().manual_seed(0), dtype=F64), -1)
    ref = entropy(p)
    for dtype, tol in ((torch.float16, 1e-2), (torch.bfloat16, 5e-2), (torch.float32, 1e-6)):
        out = entropy(p.to(dtype))
        assert out.dtype == dtype
        torch.testing.assert_close(out.double(), ref, rtol=tol, atol=tol)
    assert entropy(torch.tensor([0, 0, 1])).tolist() == 0.0  # int one-hot → float64 0.0
    assert entropy(torch.tensor([0, 0, 1])).dtype == F64
    assert entropy(torch.tensor([[0.2, 0.8], [0.5, 0.5]], dtype=F64)).tolist() == pytest.approx(
        [-(0.2 * math.log(0.2) + 0.8 * math.log(0.8)), math.log(2)], rel=1e-15)


def test_perplexity_overflows_to_inf():
    assert perplexity_from_nll(1000) == INF
    assert perplexity_from_nll(1000.0) == INF
    assert perplexity_from_nll(10**400) == INF
    assert perplexity_from_nll(-10**400) == 0.0
    assert perplexity_from_nll(-INF) == 0.0 and perplexity_from_nll(INF) == INF
    assert perplexity_from_nll(2) == pytest.approx(math.e**2)
    t = perplexity_from_nll(torch.tensor([1000.0, 1.0, -2.0]))
    assert t.dtype == torch.float32 and t.tolist() == [INF, pytest.approx(math.e), pytest.approx(math.exp(-2))]
    assert perplexity_from_nll(torch.tensor([1, 0])).tolist() == [math.e, 1.0]  # ints → float64
    assert perplexity_from_nll(torch.tensor([1, 0])).dtype == F64
    assert perplexity_from_log_probs(torch.tensor([-INF, -1.0])).item() == INF
    assert perplexity_from_log_probs(torch.tensor([0, 0])).tolist() == 1.0
    assert perplexity_from_log_probs(torch.tensor([-1.0, -3.0], dtype=torch.float16)).dtype == torch.float16
    # a long sequence (the 856-character Zen): a product of probabilities would underflow, this does not
    lp = torch.full((856,), math.log(0.05), dtype=F64)
    assert perplexity_from_log_probs(lp).item() == pytest.approx(20.0, rel=1e-12)


# ----------------------------------------------------------------------------- the model: exact behaviour


def test_model_repr_and_limits():
    m = CharNGramModel(5, 3, 0.5).fit(encode(TEXT))
    assert repr(m) == "CharNGramModel(vocab_size=5, order=3, prior=uniform, strength=2.5, contexts=7, tokens=9)"
    ad = adapt(m, encode("abra"), 4.0)
    assert repr(ad) == "CharNGramModel(vocab_size=5, order=3, prior=order-3 model, strength=4, contexts=2, tokens=2)"
    CharNGramModel(2, 61)  # 2**61 < 2**62 fits
    with pytest.raises(ValueError, match=r"^vocab_size\*\*order must be < 2\*\*62 for int64 keys, got 2\*\*62$"):
        CharNGramModel(2, 62)
    with pytest.raises(ValueError, match=r"got 2\*\*10000000000$"):
        CharNGramModel(2, 10**10)  # refused without computing 2**(10**10)
    assert CharNGramModel(1, 100).vocab_size == 1  # 1**order = 1 always fits


def test_unfitted_and_order_one_models_sample_from_the_prior():
    m = CharNGramModel(4, 1, 1.0)
    out = m.sample(200, generator=torch.Generator().manual_seed(0))
    assert out.shape == (200,) and set(out.tolist()) == {0, 1, 2, 3}
    assert m.perplexity(torch.tensor([0, 3, 2])) == pytest.approx(4.0)
    assert m.num_contexts == 0 and m.num_tokens == 0.0
    # context=None starts from a training context ("ab", "br" or "ra"); the MLE then repeats the cycle a→b→r
    m2 = CharNGramModel(5, 3, 0.0).fit(encode("abr" * 4))
    starts = {tuple(m2.sample(3, generator=torch.Generator().manual_seed(s)).tolist()) for s in range(20)}
    assert starts == {tuple(encode(w).tolist()) for w in ("rab", "abr", "bra")}
    # ... in proportion to its count: context 0 occurs 30 times, context 1 once (and 1 is always followed by 2)
    m3 = CharNGramModel(3, 2, 0.0).fit(torch.tensor([0] * 30 + [1, 2]))
    firsts = [int(m3.sample(1, generator=torch.Generator().manual_seed(s))) for s in range(300)]
    assert firsts.count(2) < 30  # a uniform choice of context would give ≈ 150


def test_batched_queries_and_empty_batches():
    m = CharNGramModel(V, 2, 0.5).fit(encode(TEXT))
    ctx = torch.tensor([[0], [1], [4]])
    probs = m.next_token_probs(ctx)
    for i in range(3):
        torch.testing.assert_close(probs[i], m.next_token_probs(ctx[i]))
    assert m.counts(torch.zeros(0, 1, dtype=torch.long)).shape == (0, V)
    assert m.next_token_probs(torch.zeros(0, 1, dtype=torch.long)).shape == (0, V)
    # longer contexts: only the last order - 1 ids matter
    torch.testing.assert_close(m.next_token_probs(encode("dcba")), m.next_token_probs(encode("a")))


# ----------------------------------------------------------------------------- bad-input sweep


CPLX = torch.tensor([0.5 + 0j, 0.5 + 0j])
BOOL = torch.tensor([True, False])
Q2 = torch.tensor([0.5, 0.5])
FITTED = CharNGramModel(5, 2, 0.5).fit(torch.tensor([0, 1, 2, 3, 4, 0]))


@pytest.mark.parametrize("call, exc, match", [
    # CharNGramModel
    (lambda: CharNGramModel(0, 2), ValueError, r"^vocab_size must be >= 1, got 0"),
    (lambda: CharNGramModel(5.0, 2), TypeError, r"^vocab_size must be an int, got float"),
    (lambda: CharNGramModel(True, 2), TypeError, r"^vocab_size must be an int, got bool"),
    (lambda: CharNGramModel(5, 0), ValueError, r"^order must be >= 1, got 0"),
    (lambda: CharNGramModel(5, "2"), TypeError, r"^order must be an int, got str"),
    (lambda: CharNGramModel(5, 2, smoothing=-1.0), ValueError, r"^smoothing must be a finite number >= 0, got -1\.0"),
    (lambda: CharNGramModel(5, 2, smoothing=INF), ValueError, r"^smoothing must be a finite number >= 0, got inf"),
    (lambda: CharNGramModel(5, 2, smoothing=NAN), ValueError, r"^smoothing must be a finite number >= 0, got nan"),
    (lambda: CharNGramModel(5, 2, smoothing="1"), TypeError, r"^smoothing must be a number \(int or float\), got str"),
    (lambda: CharNGramModel(5, 2, smoothing=torch.tensor(1.0)), TypeError, r"^smoothing must be a number"),
    (lambda: CharNGramModel(1000, 9), ValueError, r"^vocab_size\*\*order must be < 2\*\*62"),
    (lambda: CharNGramModel(5, 3).fit(torch.tensor([0, 1])), ValueError, r"^ids must have length >= 3, got 2"),
    (lambda: CharNGramModel(5, 2).fit(torch.tensor([0.0, 1.0, 2.0])), TypeError,
     r"^ids must hold integer token ids, got dtype torch\.float32"),
    (lambda: CharNGramModel(5, 2).fit(torch.tensor([True, False])), TypeError, r"^ids must hold integer token ids"),
    (lambda: CharNGramModel(5, 2).fit(torch.tensor([1 + 0j, 2])), TypeError, r"^ids must hold integer token ids"),
    (lambda: CharNGramModel(5, 2).fit(torch.tensor([[0, 1], [2, 3]])), ValueError,
     r"^ids must have shape \(T,\), got \(2, 2\)"),
    (lambda: CharNGramModel(5, 2).fit(torch.tensor([0, 5, 1])), ValueError,
     r"^ids must hold ids in \[0, 5\), got range \[0, 5\]"),
    (lambda: CharNGramModel(5, 2).fit(torch.tensor([0, -1, 1])), ValueError, r"^ids must hold ids in \[0, 5\)"),
    (lambda: CharNGramModel(5, 2).fit([0, 2**70, 1]), ValueError,
     r"^ids must hold ids in \[0, 5\), got range \[0, 1180591620717411303424\]"),
    (lambda: CharNGramModel(5, 2).fit([0, 1.0]), TypeError, r"^ids must be a LongTensor \(T,\) or a list of ints"),
    (lambda: CharNGramModel(5, 2).fit([0, True]), TypeError, r"^ids must be a LongTensor \(T,\) or a list of ints"),
    (lambda: CharNGramModel(5, 2).fit("abc"), TypeError, r"^ids must be a LongTensor of shape \(T,\), got str"),
    (lambda: CharNGramModel(5, 3).next_token_probs(torch.tensor([1])), ValueError,
     r"^context_ids must have at least order - 1 = 2 ids per row, got 1"),
    (lambda: CharNGramModel(5, 3).next_token_probs(torch.zeros(1, 2, 2, dtype=torch.long)), ValueError,
     r"^context_ids must have shape \(L,\) or \(B, L\), got \(1, 2, 2\)"),
    (lambda: CharNGramModel(5, 2).next_token_probs(torch.tensor([0.0])), TypeError,
     r"^context_ids must hold integer token ids, got dtype torch\.float32"),
    (lambda: CharNGramModel(5, 2).counts(torch.tensor([7])), ValueError, r"^context_ids must hold ids in \[0, 5\)"),
    (lambda: CharNGramModel(5, 2).counts(torch.tensor([[-1]])), ValueError, r"^context_ids must hold ids in"),
    (lambda: CharNGramModel(5, 2).counts("a"), TypeError, r"^context_ids must be a LongTensor \(L,\) or \(B, L\), "
                                                          r"got str"),
    (lambda: CharNGramModel(5, 2).counts([9]), ValueError, r"^context_ids must hold ids in \[0, 5\)"),
    (lambda: CharNGramModel(5, 2).nll(torch.tensor([1])), ValueError, r"^ids must have length >= 2, got 1"),
    (lambda: CharNGramModel(5, 2).token_log_probs([1, 9]), ValueError, r"^ids must hold ids in \[0, 5\)"),
    (lambda: CharNGramModel(5, 2).log_prob(torch.zeros(3)), TypeError, r"^ids must hold integer token ids"),
    (lambda: CharNGramModel(5, 2).sample(-1), ValueError, r"^n must be >= 0, got -1"),
    (lambda: CharNGramModel(5, 2).sample(2.0), TypeError, r"^n must be an int, got float"),
    (lambda: CharNGramModel(5, 2).sample(True), TypeError, r"^n must be an int, got bool"),
    (lambda: CharNGramModel(5, 2).sample(3), ValueError,
     r"^context=None needs a fitted model \(call fit first\) or an explicit context"),
    (lambda: CharNGramModel(5, 2).sample(3, context=[1], temperature=-1.0), ValueError,
     r"^temperature must be a number >= 0 \(inf allowed\), got -1\.0"),
    (lambda: CharNGramModel(5, 2).sample(3, context=[1], temperature=NAN), ValueError, r"^temperature must be"),
    (lambda: CharNGramModel(5, 2).sample(3, context=[1], temperature="hot"), TypeError,
     r"^temperature must be a number \(int or float\), got str"),
    (lambda: CharNGramModel(5, 2).sample(3, context=[1], generator=0), TypeError,
     r"^generator must be a torch\.Generator or None, got int"),
    (lambda: CharNGramModel(5, 3).sample(3, context=[1]), ValueError, r"^context must have length >= 2, got 1"),
    (lambda: CharNGramModel(5, 2).sample(3, context=torch.zeros(2, 2, dtype=torch.long)), ValueError,
     r"^context must have shape \(T,\), got \(2, 2\)"),
    (lambda: CharNGramModel(5, 2).sample(3, context=[5]), ValueError, r"^context must hold ids in \[0, 5\)"),
    # adapt
    (lambda: adapt("model", torch.tensor([0, 1]), 1.0), TypeError, r"^pretrained must be a CharNGramModel, got str"),
    (lambda: adapt(FITTED, torch.tensor([0, 1]), -2.0), ValueError, r"^strength must be a finite number >= 0"),
    (lambda: adapt(FITTED, torch.tensor([0, 1]), INF), ValueError, r"^strength must be a finite number >= 0, got inf"),
    (lambda: adapt(FITTED, torch.tensor([0, 1]), None), TypeError, r"^strength must be a number"),
    (lambda: adapt(FITTED, torch.tensor([0, 9]), 1.0), ValueError, r"^ids must hold ids in \[0, 5\)"),
    # categorical_mle
    (lambda: categorical_mle([1, 2]), TypeError, r"^counts must be a torch\.Tensor of shape \(\.\.\., V\), got list"),
    (lambda: categorical_mle(torch.tensor(3.0)), ValueError, r"^counts must have shape \(\.\.\., V\), got a 0-d"),
    (lambda: categorical_mle(torch.zeros(2, 0)), ValueError,
     r"^counts must have V >= 1 symbols on the last dim, got shape \(2, 0\)"),
    (lambda: categorical_mle(torch.tensor([-1.0, 2.0])), ValueError, r"^counts must be >= 0$"),
    (lambda: categorical_mle(torch.tensor([NAN, 2.0])), ValueError, r"^counts must be finite, got NaN or inf"),
    (lambda: categorical_mle(torch.tensor([INF, 2.0])), ValueError, r"^counts must be finite"),
    (lambda: categorical_mle(BOOL), TypeError, r"^counts must be a real-valued \(float or int\) tensor, got dtype "
                                               r"torch\.bool"),
    (lambda: categorical_mle(CPLX), TypeError, r"^counts must be a real-valued .*torch\.complex64"),
    # dirichlet_map
    (lambda: dirichlet_map(torch.ones(3), torch.ones(4) / 4, 1.0), ValueError,
     r"^counts \(\.\.\., 3\) and prior_probs \(\.\.\., 4\) must have the same last dimension V"),
    (lambda: dirichlet_map(torch.ones(2, 2), torch.full((3, 2), 0.5), 1.0), ValueError,
     r"^shapes must broadcast, got counts \(2, 2\), prior_probs \(3, 2\)"),
    (lambda: dirichlet_map(torch.ones(2), torch.tensor([0.5, 0.6]), 1.0), ValueError,
     r"^prior_probs must sum to 1 over its last dim \(shape \(2,\)\); off by up to 0\.1"),
    (lambda: dirichlet_map(torch.ones(2), torch.tensor([[0.5, 0.5], [0.3, 0.3]]), 1.0), ValueError,
     r"^prior_probs must sum to 1"),
    (lambda: dirichlet_map(torch.ones(2), torch.tensor([1.5, -0.5]), 1.0), ValueError,
     r"^prior_probs must be non-negative, got min -0\.5"),
    (lambda: dirichlet_map(torch.ones(2), torch.tensor([NAN, 0.5]), 1.0), ValueError, r"^prior_probs must be finite"),
    (lambda: dirichlet_map(torch.ones(2), [0.5, 0.5], 1.0), TypeError,
     r"^prior_probs must be a torch\.Tensor of shape \(\.\.\., V\), got list"),
    (lambda: dirichlet_map(torch.ones(2), torch.tensor(1.0), 1.0), ValueError, r"^prior_probs must have shape"),
    (lambda: dirichlet_map(torch.ones(2), CPLX, 1.0), TypeError, r"^prior_probs must be a real-valued"),
    (lambda: dirichlet_map(torch.ones(2), BOOL, 1.0), TypeError, r"^prior_probs must be a real-valued"),
    (lambda: dirichlet_map(torch.tensor([1.0, -1.0]), Q2, 1.0), ValueError, r"^counts must be >= 0$"),
    (lambda: dirichlet_map(torch.tensor([1.0, NAN]), Q2, 1.0), ValueError, r"^counts must be finite"),
    (lambda: dirichlet_map(CPLX, Q2, 1.0), TypeError, r"^counts must be a real-valued"),
    (lambda: dirichlet_map(torch.ones(2), Q2, -1.0), ValueError, r"^strength must be a finite number >= 0, got -1\.0"),
    (lambda: dirichlet_map(torch.ones(2), Q2, NAN), ValueError, r"^strength must be a finite number >= 0, got nan"),
    (lambda: dirichlet_map(torch.ones(2), Q2, INF), ValueError, r"^strength must be a finite number >= 0, got inf"),
    (lambda: dirichlet_map(torch.ones(2), Q2, "1"), TypeError, r"^strength must be a number \(int or float\), got str"),
    (lambda: dirichlet_map(torch.ones(2), Q2, True), TypeError, r"^strength must be a number .* got bool"),
    (lambda: dirichlet_map(torch.ones(2), Q2, torch.tensor(1.0)), TypeError, r"^strength must be a number"),
    # additive_smoothing
    (lambda: additive_smoothing(torch.ones(3), 0.0), ValueError,
     r"^k must be > 0 \(k = 0 is the plain MLE: use categorical_mle\)"),
    (lambda: additive_smoothing(torch.ones(3), -1.0), ValueError, r"^k must be a finite number >= 0, got -1\.0"),
    (lambda: additive_smoothing(torch.ones(3), INF), ValueError, r"^k must be a finite number >= 0, got inf"),
    (lambda: additive_smoothing(torch.ones(3), "1"), TypeError, r"^k must be a number"),
    (lambda: additive_smoothing(torch.zeros(3, 0), 1.0), ValueError, r"^counts must have V >= 1 symbols"),
    (lambda: additive_smoothing(torch.tensor([-1.0, 1.0]), 1.0), ValueError, r"^counts must be >= 0$"),
    # softmax_with_temperature
    (lambda: softmax_with_temperature(torch.ones(3), -0.5), ValueError,
     r"^temperature must be a number >= 0 \(inf allowed\), got -0\.5"),
    (lambda: softmax_with_temperature(torch.ones(3), NAN), ValueError, r"^temperature must be a number >= 0"),
    (lambda: softmax_with_temperature(torch.ones(3), None), TypeError, r"^temperature must be a number"),
    (lambda: softmax_with_temperature(torch.ones(3), True), TypeError, r"^temperature must be a number"),
    (lambda: softmax_with_temperature(torch.ones(3, dtype=torch.long), 1.0), TypeError,
     r"^logits must be a floating-point tensor, got dtype torch\.int64"),
    (lambda: softmax_with_temperature(BOOL, 1.0), TypeError, r"^logits must be a floating-point tensor, got dtype "
                                                             r"torch\.bool"),
    (lambda: softmax_with_temperature(CPLX, 1.0), TypeError, r"^logits must be a floating-point tensor, got dtype "
                                                             r"torch\.complex64"),
    (lambda: softmax_with_temperature([1.0, 2.0], 1.0), TypeError, r"^logits must be a torch\.Tensor of shape"),
    (lambda: softmax_with_temperature(torch.tensor(1.0), 1.0), ValueError, r"^logits must have shape \(\.\.\., V\)"),
    (lambda: softmax_with_temperature(torch.zeros(2, 0), 1.0), ValueError,
     r"^logits must have V >= 1 symbols on the last dim, got shape \(2, 0\)"),
    (lambda: softmax_with_temperature(torch.tensor([0.0, NAN]), 1.0), ValueError,
     r"^logits must not contain NaN or \+inf \(-inf marks an impossible symbol\)"),
    (lambda: softmax_with_temperature(torch.tensor([0.0, INF]), 0.0), ValueError, r"^logits must not contain NaN or"),
    (lambda: softmax_with_temperature(torch.tensor([[0.0, 1.0], [-INF, -INF]]), 1.0), ValueError,
     r"^every row of logits needs a finite value \(a row of -inf has no possible symbol\)"),
    (lambda: softmax_with_temperature(torch.tensor([-INF, -INF]), INF), ValueError, r"^every row of logits"),
    (lambda: softmax_with_temperature(torch.tensor([-INF, -INF]), 0.0), ValueError, r"^every row of logits"),
    # entropy
    (lambda: entropy([0.5, 0.5]), TypeError, r"^probs must be a torch\.Tensor of probabilities"),
    (lambda: entropy(torch.tensor(1.0)), ValueError, r"^probs must have shape \(\.\.\., K\)"),
    (lambda: entropy(torch.zeros(0)), ValueError, r"^probs must have at least one outcome"),
    (lambda: entropy(torch.tensor([NAN, 1.0])), ValueError, r"^probs must be finite, got NaN or inf"),
    (lambda: entropy(torch.tensor([1.5, -0.5])), ValueError, r"^probs must be non-negative, got min -0\.5"),
    (lambda: entropy(torch.tensor([0.5, 0.6])), ValueError, r"^probs must sum to 1 over its last dim"),
    (lambda: entropy(torch.tensor([0.5, 0.6], dtype=torch.float16)), ValueError, r"^probs must sum to 1"),
    (lambda: entropy(CPLX), TypeError, r"^probs must be a real-valued"),
    (lambda: entropy(BOOL), TypeError, r"^probs must be a real-valued"),
    # perplexities
    (lambda: perplexity_from_log_probs(torch.zeros(0)), ValueError,
     r"^log_probs must have shape \(N,\) with N >= 1, got \(0,\)"),
    (lambda: perplexity_from_log_probs(torch.zeros(2, 2)), ValueError, r"^log_probs must have shape \(N,\)"),
    (lambda: perplexity_from_log_probs(torch.tensor(-1.0)), ValueError,
     r"^log_probs must have shape \(N,\), got a 0-d"),
    (lambda: perplexity_from_log_probs([-1.0]), TypeError, r"^log_probs must be a torch\.Tensor of shape \(N,\)"),
    (lambda: perplexity_from_log_probs(torch.tensor([-1.0, NAN])), ValueError, r"^log_probs must not contain NaN"),
    (lambda: perplexity_from_log_probs(torch.tensor([-1.0, 0.5])), ValueError,
     r"^log_probs must be <= 0 \(logs of probabilities\), got max 0\.5"),
    (lambda: perplexity_from_log_probs(torch.tensor([-1.0, INF])), ValueError, r"^log_probs must be <= 0"),
    (lambda: perplexity_from_log_probs(torch.tensor([2, 0])), ValueError, r"^log_probs must be <= 0"),
    (lambda: perplexity_from_log_probs(BOOL), TypeError, r"^log_probs must be a real-valued"),
    (lambda: perplexity_from_log_probs(CPLX), TypeError, r"^log_probs must be a real-valued"),
    (lambda: perplexity_from_nll("2.0"), TypeError, r"^nll must be a float or a tensor, got str"),
    (lambda: perplexity_from_nll(None), TypeError, r"^nll must be a float or a tensor, got NoneType"),
    (lambda: perplexity_from_nll(True), TypeError, r"^nll must be a float or a tensor, got bool"),
    (lambda: perplexity_from_nll(NAN), ValueError, r"^nll must not be NaN"),
    (lambda: perplexity_from_nll(torch.tensor([1.0, NAN])), ValueError, r"^nll must not be NaN"),
    (lambda: perplexity_from_nll(CPLX), TypeError, r"^nll must be a real-valued"),
    (lambda: perplexity_from_nll(BOOL), TypeError, r"^nll must be a real-valued"),
    # context_windows
    (lambda: context_windows(torch.tensor([1, 2]), 0), ValueError, r"^order must be an int >= 1, got 0"),
    (lambda: context_windows(torch.tensor([1, 2]), -3), ValueError, r"^order must be an int >= 1, got -3"),
    (lambda: context_windows(torch.tensor([1, 2]), 2.0), ValueError, r"^order must be an int >= 1, got 2\.0"),
    (lambda: context_windows(torch.tensor([1, 2]), True), ValueError, r"^order must be an int >= 1, got True"),
    (lambda: context_windows(torch.tensor([1, 2]), None), ValueError, r"^order must be an int >= 1, got None"),
    (lambda: context_windows([1, 2, 3], 2), TypeError, r"^ids must be a LongTensor of shape \(T,\), got list"),
    (lambda: context_windows(torch.tensor([1.0, 2.0]), 2), TypeError,
     r"^ids must hold integer token ids, got dtype torch\.float32"),
    (lambda: context_windows(BOOL, 2), TypeError, r"^ids must hold integer token ids, got dtype torch\.bool"),
    (lambda: context_windows(torch.tensor([1 + 0j]), 1), TypeError, r"^ids must hold integer token ids"),
    (lambda: context_windows(torch.zeros(2, 3, dtype=torch.long), 2), ValueError,
     r"^ids must have shape \(T,\), got \(2, 3\)"),
    (lambda: context_windows(torch.tensor(3), 1), ValueError, r"^ids must have shape \(T,\), got \(\)"),
    (lambda: context_windows(torch.tensor([2, -1, 0]), 2), ValueError, r"^ids must be token ids >= 0, got min -1"),
])
def test_bad_inputs_raise_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@settings(max_examples=80, deadline=None)
@given(st.sampled_from(["counts", "prior_probs", "probs", "logits", "log_probs"]),
       st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_a_bad_value_anywhere_is_named(arg, shape, data):
    """NaN (or inf, or a negative count) at a random position is reported for the argument that holds it."""
    if arg == "log_probs":
        shape = shape[:1]
    good = torch.full(shape, 1.0 / shape[-1], dtype=F64)
    idx = tuple(data.draw(st.integers(0, s - 1)) for s in shape)
    value = data.draw(st.sampled_from([NAN, INF, -INF, -0.5] if arg in ("counts", "prior_probs", "probs")
                                      else [NAN]))
    bad = good.clone()
    bad[idx] = value
    call = {"counts": lambda: dirichlet_map(bad, good, 1.0),
            "prior_probs": lambda: dirichlet_map(good, bad, 1.0),
            "probs": lambda: entropy(bad),
            "logits": lambda: softmax_with_temperature(bad, 0.5),
            "log_probs": lambda: perplexity_from_log_probs(bad.log())}[arg]
    with pytest.raises(ValueError, match=f"^{arg} must"):
        call()


@pytest.mark.parametrize("fn, args", [
    (categorical_mle, ()),
    (lambda c: dirichlet_map(c, torch.full((4,), 0.25, dtype=torch.float64), 2.0), ()),
    (lambda c: additive_smoothing(c, 0.5), ()),
])
def test_estimators_do_not_modify_their_input(fn, args):
    counts = torch.tensor([[3.0, 1.0, 0.0, 4.0]])
    before = counts.clone()
    fn(counts, *args)
    assert torch.equal(counts, before)


# ----------------------------------------------------------------------------- mutation-killing details


def test_boundaries_of_the_estimators():
    q = torch.tensor([0.2, 0.3, 0.5], dtype=F64)
    # N + λ = 1 (one count, no prior) is still the MLE, not the prior
    assert dirichlet_map(torch.tensor([0.0, 1.0, 0.0]), q, 0.0).tolist() == [0.0, 1.0, 0.0]
    # N + λ < 1 with no data is the prior, not λ q / 1
    torch.testing.assert_close(dirichlet_map(torch.zeros(3), q, 0.25), q)
    m = CharNGramModel(5, 2, 0.1).fit(torch.tensor([0, 1, 0, 1]))  # λ = 0.5 < 1; context 4 unseen
    torch.testing.assert_close(m.next_token_probs(torch.tensor([4])), torch.full((5,), 0.2, dtype=F64))
    assert m.token_log_probs(torch.tensor([4, 2])).tolist() == [pytest.approx(math.log(0.2), rel=1e-15)]
    one = CharNGramModel(5, 2, 0.0).fit(torch.tensor([3, 1]))  # N = 1, λ = 0
    assert one.next_token_probs(torch.tensor([3])).tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert one.token_log_probs(torch.tensor([3, 1])).tolist() == [0.0]
    # additive smoothing on a 1-D count vector, and on (A, B, V): V is the last dim
    assert additive_smoothing(torch.tensor([1.0, 0.0, 3.0]), 1.0).tolist() == pytest.approx([2 / 7, 1 / 7, 4 / 7])
    assert additive_smoothing(torch.tensor([1.0, 0.0, 3.0]), 1.0).dtype == F64
    c3 = torch.arange(24.0).reshape(2, 3, 4)
    torch.testing.assert_close(additive_smoothing(c3, 2.0), (c3.double() + 2) / (c3.double().sum(-1, keepdim=True) + 8))
    h = entropy(torch.tensor([0.0, 1.0]))
    assert h.item() == 0.0 and math.copysign(1.0, h.item()) == 1.0
    with pytest.raises(ValueError, match=r"^smoothing must be a finite number >= 0, got inf"):
        CharNGramModel(5, 2, smoothing=10**400)
    assert adapt(FITTED, torch.tensor([0, 1]), 2.0).smoothing == 0.0


def test_contexts_given_as_lists_and_edge_ids():
    m = CharNGramModel(5, 2, 0.5).fit(torch.tensor([0, 1, 2, 3, 4, 0]))
    torch.testing.assert_close(m.counts([1]), m.counts(torch.tensor([1])))
    u = CharNGramModel(5, 1, 0.0).fit(torch.tensor([0, 0, 1]))
    torch.testing.assert_close(u.next_token_probs([]), torch.tensor([2 / 3, 1 / 3, 0, 0, 0], dtype=F64))
    for bad, exc, words in ((torch.tensor([5]), ValueError, "hold ids in"),
                            (torch.tensor([1 + 0j]), TypeError, "hold integer token ids, got dtype torch.complex64"),
                            (torch.tensor([True]), TypeError, "hold integer token ids, got dtype torch.bool")):
        with pytest.raises(exc, match=f"^context_ids must {re.escape(words)}"):
            m.counts(bad)


def test_order_one_sampling_uses_the_unigram_from_the_first_token():
    u = CharNGramModel(4, 1, 0.0).fit(torch.tensor([0] * 5 + [1] * 3 + [2] * 2))  # id 3 never occurs
    firsts = [int(u.sample(1, generator=torch.Generator().manual_seed(s))) for s in range(60)]
    firsts += [int(u.sample(1, context=[2], generator=torch.Generator().manual_seed(s))) for s in range(60)]
    assert 3 not in firsts and set(firsts) == {0, 1, 2}


def test_the_generator_alone_decides_the_sample():
    m = CharNGramModel(10, 3, 0.1).fit(random_ids(1000, 10, seed=7))
    torch.manual_seed(1)
    a = m.sample(20, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(2)  # the global RNG must not matter, including for the starting context
    b = m.sample(20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
