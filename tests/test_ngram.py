"""Count-based character n-gram model and the small estimators behind it."""

import math
from collections import Counter
from itertools import pairwise

import pytest
import torch

from aigc_course.ngram import (
    CharNGramModel,
    adapt,
    additive_smoothing,
    categorical_mle,
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


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("call, exc, match", [
    (lambda: CharNGramModel(0, 2), ValueError, "vocab_size"),
    (lambda: CharNGramModel(5.0, 2), TypeError, "vocab_size"),
    (lambda: CharNGramModel(5, 0), ValueError, "order"),
    (lambda: CharNGramModel(5, 2, smoothing=-1.0), ValueError, "smoothing"),
    (lambda: CharNGramModel(5, 2, smoothing="1"), TypeError, "smoothing"),
    (lambda: CharNGramModel(1000, 9), ValueError, "vocab_size\\*\\*order"),
    (lambda: CharNGramModel(5, 3).fit(torch.tensor([0, 1])), ValueError, "length >= 3"),
    (lambda: CharNGramModel(5, 2).fit(torch.tensor([0.0, 1.0, 2.0])), TypeError, "integer token ids"),
    (lambda: CharNGramModel(5, 2).fit(torch.tensor([[0, 1], [2, 3]])), ValueError, "shape \\(T,\\)"),
    (lambda: CharNGramModel(5, 2).fit(torch.tensor([0, 5, 1])), ValueError, "\\[0, 5\\)"),
    (lambda: CharNGramModel(5, 2).fit("abc"), TypeError, "LongTensor"),
    (lambda: CharNGramModel(5, 3).next_token_probs(torch.tensor([1])), ValueError, "at least order - 1"),
    (lambda: CharNGramModel(5, 3).next_token_probs(torch.zeros(1, 2, 2, dtype=torch.long)), ValueError,
     "shape \\(L,\\) or \\(B, L\\)"),
    (lambda: CharNGramModel(5, 2).nll(torch.tensor([1])), ValueError, "length >= 2"),
    (lambda: CharNGramModel(5, 2).sample(-1), ValueError, "n must be >= 0"),
    (lambda: CharNGramModel(5, 2).sample(3), ValueError, "fitted model"),
    (lambda: CharNGramModel(5, 2).sample(3, context=[1], temperature=-1.0), ValueError, "temperature"),
    (lambda: CharNGramModel(5, 2).sample(3, context=[1], generator=0), TypeError, "generator"),
    (lambda: adapt("model", torch.tensor([0, 1]), 1.0), TypeError, "pretrained"),
    (lambda: adapt(CharNGramModel(5, 2), torch.tensor([0, 1]), -2.0), ValueError, "strength"),
    (lambda: categorical_mle([1, 2]), TypeError, "counts"),
    (lambda: categorical_mle(torch.tensor([-1.0, 2.0])), ValueError, "counts must be >= 0"),
    (lambda: dirichlet_map(torch.ones(3), torch.ones(4) / 4, 1.0), ValueError, "same last dimension"),
    (lambda: additive_smoothing(torch.ones(3), 0.0), ValueError, "k must be > 0"),
    (lambda: softmax_with_temperature(torch.ones(3), -0.5), ValueError, "temperature"),
    (lambda: softmax_with_temperature(torch.ones(3, dtype=torch.long), 1.0), TypeError, "floating-point"),
    (lambda: perplexity_from_log_probs(torch.zeros(0)), ValueError, "N >= 1"),
    (lambda: perplexity_from_nll("2.0"), TypeError, "nll"),
])
def test_bad_inputs_raise_clear_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
