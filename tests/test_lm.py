"""Tests for aigc_course.lm: next-token batches, whole-split evaluation against hand loops (every target
once, the documented window layouts), the uniform model's loss log V, the bigram learned by gradient descent
against lesson 00's counts, the MLP model's causality and padding, a real train_lm run on the docs corpus
(val loss drops, the MLP beats the bigram), exact resume and determinism, the lr schedule, models returning
(logits, loss), generation (greedy = hand argmax loop, seeded sampling reproducible, context window fed,
modes restored), bad inputs with exact messages, and a `cuda` test (skipped without a GPU)."""

import functools
import math
import re

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from aigc_course.data.text import CharVocab, docs_corpus, train_val_split_text
from aigc_course.device import seed_everything
from aigc_course.lm import (
    BigramLM,
    LMConfig,
    LMResult,
    MLPLanguageModel,
    evaluate_loss,
    generate,
    next_token_batch,
    perplexity,
    sampling_explorer,
    train_lm,
)
from aigc_course.ngram import CharNGramModel, perplexity_from_nll

torch.set_num_threads(1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class Uniform(nn.Module):
    """Zero logits: p = 1/V everywhere. No parameters, no vocab_size attribute (the size is probed)."""

    def __init__(self, V: int) -> None:
        super().__init__()
        self.V = V

    def forward(self, idx):
        return torch.zeros(*idx.shape, self.V)


class TupleModel(nn.Module):
    """nanoGPT's interface: forward(idx, targets=None) → (logits (B, T, V), loss or None); config.block_size."""

    def __init__(self, inner: nn.Module, block_size: int) -> None:
        super().__init__()
        self.inner = inner
        self.config = type("Cfg", (), {"block_size": block_size, "vocab_size": inner.vocab_size})()

    def forward(self, idx, targets=None):
        logits = self.inner(idx)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


@functools.lru_cache(maxsize=1)
def docs_data():
    text = docs_corpus(60_000)
    train_text, val_text = train_val_split_text(text, 0.1)
    vocab = CharVocab.from_text(text)
    return vocab, vocab.encode(train_text), vocab.encode(val_text)


def quiet(**kw) -> LMConfig:
    return LMConfig(progress=False, **kw)


# --------------------------------------------------------------------------- next_token_batch

def test_next_token_batch_shapes_and_shift():
    ids = torch.arange(100, 150)
    x, y = next_token_batch(ids, 8, 5, rng=gen(0))
    assert x.shape == y.shape == (5, 8) and x.dtype == y.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:])
    assert torch.equal(y[:, -1], x[:, -1] + 1)
    assert torch.equal(x, x[:, :1] + torch.arange(8))            # contiguous windows of the stream
    assert int(x.min()) >= 100 and int(y.max()) <= 149


def test_next_token_batch_covers_every_start_and_only_those():
    ids = torch.arange(10)
    x, _ = next_token_batch(ids, 3, 2000, rng=gen(1))
    assert set(x[:, 0].tolist()) == set(range(7))               # starts 0 .. N - T - 1
    x, y = next_token_batch(ids, 9, 3, rng=gen(1))              # exactly one window fits
    assert torch.equal(x, torch.arange(9).repeat(3, 1)) and torch.equal(y, torch.arange(1, 10).repeat(3, 1))


def test_next_token_batch_rng_and_global_rng():
    ids = torch.arange(1000)
    a, _ = next_token_batch(ids, 4, 6, rng=gen(3))
    b, _ = next_token_batch(ids, 4, 6, rng=gen(3))
    c, _ = next_token_batch(ids, 4, 6, rng=gen(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(5)
    d, _ = next_token_batch(ids, 4, 6)
    torch.manual_seed(5)
    e, _ = next_token_batch(ids, 4, 6)
    assert torch.equal(d, e)


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(ids=torch.arange(5), block_size=5, batch_size=2), ValueError,
     r"^block_size must be <= len\(ids\) - 1 = 4 \(each window needs block_size \+ 1 tokens\), got 5$"),
    (dict(ids=torch.arange(5.0), block_size=2, batch_size=2), TypeError,
     r"^ids must be a LongTensor \(torch.int64\) of token ids, got dtype torch.float32$"),
    (dict(ids=torch.arange(5, dtype=torch.int32), block_size=2, batch_size=2), TypeError,
     r"^ids must be a LongTensor \(torch.int64\) of token ids, got dtype torch.int32$"),
    (dict(ids=[1, 2, 3], block_size=1, batch_size=2), TypeError,
     r"^ids must be a 1-D LongTensor of token ids, got list$"),
    (dict(ids=torch.zeros(2, 5, dtype=torch.long), block_size=2, batch_size=2), ValueError,
     r"^ids must have shape \(N,\), got \(2, 5\)$"),
    (dict(ids=torch.tensor([0, -1, 2]), block_size=1, batch_size=2), ValueError,
     r"^ids must hold token ids >= 0, got values in \[-1, 2\]$"),
    (dict(ids=torch.arange(5), block_size=0, batch_size=2), ValueError, r"^block_size must be >= 1, got 0$"),
    (dict(ids=torch.arange(5), block_size=2, batch_size=0), ValueError, r"^batch_size must be >= 1, got 0$"),
    (dict(ids=torch.arange(5), block_size=2, batch_size=2, rng=0), TypeError,
     r"^rng must be a torch.Generator or None, got int$"),
])
def test_next_token_batch_bad_inputs(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        next_token_batch(**kwargs)


# --------------------------------------------------------------------------- evaluate_loss / perplexity

def test_uniform_model_loss_is_log_v():
    ids = torch.randint(0, 37, (501,), generator=gen(0))
    assert evaluate_loss(Uniform(37), ids, 16) == pytest.approx(math.log(37), rel=1e-7)
    assert perplexity(Uniform(37), ids, 16) == pytest.approx(37.0, rel=1e-6)


def _hand_nll(model, ids, context_start) -> float:
    """Mean over targets t = 1..N-1 of -log p(ids[t] | ids[context_start(t):t]), one forward per target."""
    total = 0.0
    with torch.no_grad():
        for t in range(1, ids.numel()):
            ctx = ids[context_start(t):t]
            logp = model(ctx[None])[0, -1].double().log_softmax(-1)
            total -= float(logp[ids[t]])
    return total / (ids.numel() - 1)


@pytest.fixture
def small_mlp():
    torch.manual_seed(0)
    model = MLPLanguageModel(7, context=3, embed_dim=4, hidden=8)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)                                              # peaked predictions: contexts matter
    return model


def test_evaluate_loss_default_layout_by_hand(small_mlp):
    ids = torch.randint(0, 7, (11,), generator=gen(2))              # 10 targets, T = 4
    # windows start at 0, 4 and (moved back to end at the last token) 6; each target scored once
    expected = _hand_nll(small_mlp, ids, lambda t: 0 if t <= 4 else (4 if t <= 8 else 6))
    assert evaluate_loss(small_mlp, ids, 4) == pytest.approx(expected, rel=1e-6)
    assert evaluate_loss(small_mlp, ids, 4, stride=4, batch_size=1) == pytest.approx(expected, rel=1e-6)


def test_evaluate_loss_sliding_window_by_hand(small_mlp):
    ids = torch.randint(0, 7, (40,), generator=gen(3))
    expected = _hand_nll(small_mlp, ids, lambda t: max(0, t - 5))   # every target: up to 5 tokens of context
    assert evaluate_loss(small_mlp, ids, 5, stride=1) == pytest.approx(expected, rel=1e-6)
    assert evaluate_loss(small_mlp, ids, 5, stride=1, batch_size=3) == pytest.approx(expected, rel=1e-6)
    # the layouts differ for this model (pads at each window start), so the test above can fail
    assert abs(evaluate_loss(small_mlp, ids, 5) - expected) > 1e-3
    # stride = T - context + 1 gives each target its full context, as stride 1 does
    assert evaluate_loss(small_mlp, ids, 5, stride=3) == pytest.approx(expected, rel=1e-6)


def test_evaluate_loss_whole_sequence_in_one_window(small_mlp):
    ids = torch.randint(0, 7, (9,), generator=gen(4))
    expected = _hand_nll(small_mlp, ids, lambda t: 0)
    assert evaluate_loss(small_mlp, ids, 8) == pytest.approx(expected, rel=1e-6)


def test_evaluate_loss_bigram_equals_count_model_nll():
    vocab = CharVocab.from_text("abcde ")
    ids = vocab.encode("abc abd bad cab dace bead ace")
    counts = CharNGramModel(len(vocab), order=2, smoothing=1.0).fit(ids)
    model = BigramLM(len(vocab))
    with torch.no_grad():
        model.logit_table.copy_(counts.next_token_probs(torch.arange(len(vocab))[:, None]).log())
    assert evaluate_loss(model, ids, 7) == pytest.approx(counts.nll(ids), rel=1e-6)
    assert perplexity(model, ids, 7) == pytest.approx(perplexity_from_nll(evaluate_loss(model, ids, 7)), rel=1e-12)


def test_evaluate_loss_eval_mode_no_grad_modes_restored():
    class Dropped(nn.Module):
        def __init__(self):
            super().__init__()
            self.lm = MLPLanguageModel(5, context=2, embed_dim=3, hidden=6)
            self.drop = nn.Dropout(0.5)
            self.vocab_size = 5

        def forward(self, idx):
            return self.drop(self.lm(idx))

    torch.manual_seed(0)
    model = Dropped()
    ids = torch.randint(0, 5, (50,), generator=gen(0))
    a, b = evaluate_loss(model, ids, 8), evaluate_loss(model, ids, 8)
    assert a == b                                                   # dropout off
    assert model.training and model.drop.training                   # modes given back
    assert all(p.grad is None for p in model.parameters())


def test_evaluate_loss_accepts_tuple_output_and_rejects_last_position_only():
    torch.manual_seed(0)
    inner = MLPLanguageModel(6, context=2)
    ids = torch.randint(0, 6, (30,), generator=gen(0))
    assert evaluate_loss(TupleModel(inner, 8), ids, 8) == evaluate_loss(inner, ids, 8)

    class LastOnly(nn.Module):
        def forward(self, idx):
            return torch.zeros(idx.shape[0], 1, 6), None

    with pytest.raises(ValueError, match=r"^model\(idx\) with idx of shape \(4, 8\) must return logits of "
                                         r"shape \(4, 8, V\), got \(4, 1, 6\) \(nanoGPT's GPT returns only the last "
                                         r"position when called without targets; return every position's logits\)$"):
        evaluate_loss(LastOnly(), ids, 8)

    class Bad(nn.Module):
        def forward(self, idx):
            return "logits"

    with pytest.raises(TypeError, match=r"^model\(idx\) must return logits \(B, T, V\), a \(logits, loss\) pair "
                                        r"or an object with \.logits; got str$"):
        evaluate_loss(Bad(), ids, 8)


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(ids=torch.arange(6), block_size=6), ValueError,
     r"^block_size must be <= len\(ids\) - 1 = 5 \(each window needs block_size \+ 1 tokens\), got 6$"),
    (dict(ids=torch.tensor([1]), block_size=1), ValueError, r"^ids must hold at least 2 tokens, got 1$"),
    (dict(ids=torch.tensor([0, 9, 3]), block_size=2), ValueError,
     r"^ids must hold token ids \[0, 9\), got values in \[0, 9\]$"),
    (dict(ids=torch.arange(6.0), block_size=2), TypeError,
     r"^ids must be a LongTensor \(torch.int64\) of token ids, got dtype torch.float32$"),
    (dict(ids=torch.arange(6), block_size=2, stride=3), ValueError,
     r"^stride must be <= block_size = 2 \(else some targets are never scored\), got 3$"),
    (dict(ids=torch.arange(6), block_size=2, batch_size=0), ValueError, r"^batch_size must be >= 1, got 0$"),
])
def test_evaluate_loss_bad_inputs(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        evaluate_loss(BigramLM(9), **kwargs)


def test_evaluate_loss_out_of_range_for_probed_vocab():
    with pytest.raises(ValueError, match=r"^ids must hold token ids \[0, 4\), got values in \[0, 4\]$"):
        evaluate_loss(Uniform(4), torch.tensor([0, 1, 4, 2]), 2)
    with pytest.raises(TypeError, match=r"^model must be a torch.nn.Module mapping idx \(B, T\) to logits "
                                        r"\(B, T, V\), got function$"):
        evaluate_loss(lambda x: x, torch.arange(5), 2)


# --------------------------------------------------------------------------- models

def test_bigram_forward_and_bad_idx():
    model = BigramLM(4)
    with torch.no_grad():
        model.logit_table.copy_(torch.arange(16.0).reshape(4, 4))
    out = model(torch.tensor([[2, 0]]))
    assert torch.equal(out, torch.tensor([[[8.0, 9, 10, 11], [0, 1, 2, 3]]]))
    assert torch.allclose(BigramLM(3).probs(), torch.full((3, 3), 1 / 3))
    with pytest.raises(ValueError, match=r"^idx must hold token ids \[0, 4\), got values in \[0, 4\]$"):
        model(torch.tensor([[0, 4]]))
    with pytest.raises(TypeError, match=r"^idx must be a LongTensor \(B, T\) of token ids, got dtype torch.int32$"):
        model(torch.tensor([[0, 1]], dtype=torch.int32))
    with pytest.raises(ValueError, match=r"^idx must have shape \(B, T\), got \(2,\)$"):
        model(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"^vocab_size must be >= 1, got 0$"):
        BigramLM(0)


def test_bigram_by_gradient_descent_matches_counts():
    text = "the cat sat on the mat. the rat ate the oat; a bat at a hat."
    vocab = CharVocab.from_text(text)
    ids = vocab.encode(text)
    V = len(vocab)
    counts = CharNGramModel(V, order=2, smoothing=0.0).fit(ids)
    seen = torch.unique(ids[:-1])
    mle = counts.next_token_probs(seen[:, None]).float()              # (contexts seen, V)
    torch.manual_seed(0)
    model = BigramLM(V)
    # batch_size 1 with block_size N - 1: the one window is the whole text, i.e. full-batch gradient descent
    # (a cosine decay lets Adam settle; at a constant rate it hovers around the optimum at ~1e-3)
    train_lm(model, ids, quiet(steps=500, batch_size=1, block_size=ids.numel() - 1, lr=0.1, grad_clip=None,
                               lr_schedule="cosine"))
    learned = model.probs()[seen]
    assert (learned - mle).abs().max() < 1e-4
    before = (BigramLM(V).probs()[seen] - mle).abs().max()
    assert before > 0.3                                                 # the uniform start is far from it


def test_mlp_shapes_padding_and_causality(small_mlp):
    idx = torch.randint(0, 7, (2, 6), generator=gen(0))
    out = small_mlp(idx)
    assert out.shape == (2, 6, 7)
    assert small_mlp.context == 3 and small_mlp.token_embeddings.shape == (7, 4)
    assert small_mlp.embedding.weight.shape == (8, 4)                  # + the padding row
    # position t sees idx[t-2..t] only: changing idx[:, 2] moves positions 2, 3, 4 and nothing else
    changed = idx.clone()
    changed[:, 2] = (changed[:, 2] + 1) % 7
    moved = (small_mlp(changed) - out).abs().amax(dim=(0, 2)) > 1e-6
    assert moved.tolist() == [False, False, True, True, True, False]
    # a prefix is padded: the first positions equal the model on the short sequence alone
    assert torch.allclose(small_mlp(idx[:, :2]), out[:, :2])
    # the padding token is not token 0: a sequence starting with two 0s differs from a padded start
    z = torch.tensor([[0, 0, 5]])
    assert not torch.allclose(small_mlp(z)[:, -1], small_mlp(z[:, 2:])[:, -1])


def test_mlp_bad_arguments():
    with pytest.raises(ValueError, match=r"^context must be >= 1, got 0$"):
        MLPLanguageModel(5, context=0)
    with pytest.raises(TypeError, match=r"^hidden must be an int, got float 2.0$"):
        MLPLanguageModel(5, hidden=2.0)
    with pytest.raises(ValueError, match=r"^idx must hold token ids \[0, 5\), got values in \[-1, 2\]$"):
        MLPLanguageModel(5)(torch.tensor([[2, -1]]))


# --------------------------------------------------------------------------- training

@functools.lru_cache(maxsize=1)
def docs_runs() -> dict[str, LMResult]:
    vocab, train_ids, val_ids = docs_data()
    out = {}
    for name, lr in (("bigram", 3e-2), ("mlp", 3e-3)):
        seed_everything(0)
        model = BigramLM(len(vocab)) if name == "bigram" else MLPLanguageModel(len(vocab), context=6, hidden=128)
        cfg = quiet(steps=300, batch_size=32, block_size=32, lr=lr, eval_every=100, lr_schedule="cosine")
        out[name] = train_lm(model, train_ids, cfg, val_ids=val_ids)
        out[name + "_model"] = model
    return out


def test_train_lm_real_run_val_loss_drops_and_mlp_beats_bigram():
    runs = docs_runs()
    vocab, _, val_ids = docs_data()
    for name in ("bigram", "mlp"):
        h = runs[name].history
        assert len(h["loss"]) == 300 and h["step"] == list(map(float, range(300)))
        assert len(h["val_loss"]) == 3                                  # steps 100, 200, 300
        assert h["val_loss"][-1] < math.log(len(vocab)) - 1.0           # far below uniform (4.4 nats)
        assert h["val_loss"][-1] < h["val_loss"][0]
        assert sum(h["loss"][-20:]) / 20 < sum(h["loss"][:20]) / 20 - 1.0
    assert runs["mlp"].history["val_loss"][-1] < runs["bigram"].history["val_loss"][-1] - 0.15
    # val_loss is evaluate_loss on the whole split at the end
    assert runs["mlp"].history["val_loss"][-1] == pytest.approx(evaluate_loss(runs["mlp_model"], val_ids, 32),
                                                                 rel=1e-9)
    assert runs["mlp"].seconds > 0


def test_train_lm_cosine_warmup_schedule_in_history():
    ids = torch.randint(0, 5, (100,), generator=gen(0))
    torch.manual_seed(0)
    cfg = quiet(steps=10, block_size=4, lr=0.01, min_lr=0.001, warmup_steps=2, lr_schedule="cosine")
    lrs = train_lm(BigramLM(5), ids, cfg).history["lr"]
    expected = [0.005, 0.01] + [0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi * k / 7)) for k in range(8)]
    assert lrs == pytest.approx(expected, rel=1e-9)
    lrs = train_lm(BigramLM(5), ids, quiet(steps=3, block_size=4, lr=0.02)).history["lr"]
    assert lrs == [0.02] * 3


def test_train_lm_weight_decay_only_on_matrices():
    # with a zero gradient, one AdamW step only decays: w ← (1 − lr·wd)·w = 0.95 for decayed tensors
    ids = torch.randint(0, 5, (100,), generator=gen(0))
    model2 = MLPLanguageModel(5, context=2, embed_dim=3, hidden=4)
    with torch.no_grad():
        for p in model2.parameters():
            p.fill_(1.0)

    class Frozen(nn.Module):                                            # logits do not depend on the weights
        def __init__(self, m):
            super().__init__()
            self.m = m
            self.vocab_size = 5

        def forward(self, idx):
            return torch.zeros(*idx.shape, 5) + 0.0 * sum(p.sum() for p in self.m.parameters())

    train_lm(Frozen(model2), ids, quiet(steps=1, block_size=4, lr=0.1, weight_decay=0.5))
    assert torch.allclose(model2.hidden.weight, torch.full_like(model2.hidden.weight, 0.95))
    assert torch.allclose(model2.embedding.weight, torch.full_like(model2.embedding.weight, 0.95))
    assert torch.equal(model2.hidden.bias, torch.ones_like(model2.hidden.bias))


def test_train_lm_same_seed_same_numbers():
    ids = torch.randint(0, 9, (300,), generator=gen(0))

    def run(seed):
        seed_everything(seed)
        model = MLPLanguageModel(9, context=3, embed_dim=4, hidden=16)
        h = train_lm(model, ids, quiet(steps=15, block_size=8, batch_size=4), val_ids=ids[:50]).history
        return h.records, model.state_dict()

    (h1, s1), (h2, s2), (h3, _) = run(0), run(0), run(1)
    assert h1 == h2 and all(torch.equal(s1[k], s2[k]) for k in s1)
    assert h1 != h3


def test_train_lm_resume_is_bit_identical(tmp_path):
    ids = torch.randint(0, 9, (300,), generator=gen(0))
    cfg = dict(steps=20, block_size=8, batch_size=4, lr_schedule="cosine", warmup_steps=3, log_every=1)

    seed_everything(0)
    straight = MLPLanguageModel(9, context=3, embed_dim=4, hidden=16)
    h_straight = train_lm(straight, ids, quiet(**cfg), val_ids=ids[:40]).history

    class Crash(Exception):
        pass

    def crash_at_12(step, metrics):
        if step == 12:
            raise Crash

    seed_everything(0)
    model = MLPLanguageModel(9, context=3, embed_dim=4, hidden=16)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Crash):
        train_lm(model, ids, quiet(ckpt_dir=ckpt, ckpt_every=5, **cfg), val_ids=ids[:40], callbacks=[crash_at_12])
    torch.manual_seed(123)                                              # the resume restores the RNG anyway
    h_resumed = train_lm(model, ids, quiet(ckpt_dir=ckpt, ckpt_every=5, **cfg), val_ids=ids[:40]).history
    assert h_resumed.records == h_straight.records
    for k, v in straight.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_train_lm_tuple_model_and_probed_vocab():
    ids = torch.randint(0, 6, (200,), generator=gen(0))
    torch.manual_seed(0)
    wrapped = TupleModel(MLPLanguageModel(6, context=2), block_size=8)
    h = train_lm(wrapped, ids, quiet(steps=5, block_size=8)).history
    assert len(h["loss"]) == 5

    class NoVocab(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = BigramLM(6)

        def forward(self, idx):
            return self.inner(idx)

    with pytest.raises(ValueError, match=r"^train_ids must hold token ids \[0, 4\), got values in \[0, 5\]$"):
        train_lm(Uniform(4), ids, quiet(steps=1, block_size=4))
    assert len(train_lm(NoVocab(), ids, quiet(steps=2, block_size=4)).history) == 2


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(steps=-1), ValueError, r"^LMConfig.steps must be >= 0, got -1$"),
    (dict(steps=1, block_size=0), ValueError, r"^LMConfig.block_size must be >= 1, got 0$"),
    (dict(steps=1, lr=0.0), ValueError, r"^LMConfig.lr must be a finite number > 0, got 0.0$"),
    (dict(steps=1, lr="1e-3"), TypeError, r"^LMConfig.lr must be a number, got str '1e-3'$"),
    (dict(steps=1, lr=1e-3, min_lr=1e-2), ValueError, r"^LMConfig.min_lr must be <= lr = 0.001, got 0.01$"),
    (dict(steps=1, betas=(0.9, 1.0)), ValueError,
     r"^LMConfig.betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)$"),
    (dict(steps=1, lr_schedule="linear"), ValueError,
     r"^LMConfig.lr_schedule must be 'constant' or 'cosine', got 'linear'$"),
    (dict(steps=1, ckpt_every=5), ValueError, r"^TrainConfig.ckpt_every=5 needs ckpt_dir"),
    (dict(steps=1, grad_clip=0.0), ValueError, r"^TrainConfig.grad_clip must be positive or None, got 0.0$"),
])
def test_lm_config_bad_values(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        LMConfig(**kwargs)


def test_train_lm_bad_inputs():
    ids = torch.arange(10)
    with pytest.raises(ValueError, match=r"^LMConfig.block_size must be <= len\(train_ids\) - 1 = 9, got 64$"):
        train_lm(BigramLM(10), ids, quiet(steps=1))
    with pytest.raises(ValueError, match=r"^LMConfig.block_size must be <= len\(val_ids\) - 1 = 2 to evaluate, "
                                         r"got 4$"):
        train_lm(BigramLM(10), ids, quiet(steps=1, block_size=4), val_ids=ids[:3])
    with pytest.raises(ValueError, match=r"^val_ids must hold token ids \[0, 10\), got values in \[0, 12\]$"):
        train_lm(BigramLM(10), ids, quiet(steps=1, block_size=2), val_ids=torch.tensor([0, 12, 3]))
    with pytest.raises(TypeError, match=r"^config must be an LMConfig, got dict$"):
        train_lm(BigramLM(10), ids, {"steps": 1})
    with pytest.raises(TypeError, match=r"^train_ids must be a LongTensor \(torch.int64\) of token ids, got dtype "
                                        r"torch.float32$"):
        train_lm(BigramLM(10), ids.float(), quiet(steps=1, block_size=2))
    with pytest.raises(ValueError, match=r"^model has no trainable parameters$"):
        train_lm(Uniform(10), ids, quiet(steps=1, block_size=2))


# --------------------------------------------------------------------------- generation

def test_generate_greedy_equals_hand_argmax_loop(small_mlp):
    prompt = torch.tensor([1, 2])
    out = generate(small_mlp, prompt, 10, temperature=0.0)
    assert out.shape == (12,) and torch.equal(out[:2], prompt)
    seq = prompt.tolist()
    with torch.no_grad():
        for _ in range(10):
            seq.append(int(small_mlp(torch.tensor([seq[-3:]]))[0, -1].argmax()))
    assert out.tolist() == seq
    assert torch.equal(generate(small_mlp, prompt, 10, temperature=0.0), out)


def test_generate_seeded_sampling_reproducible_and_batched(small_mlp):
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])
    a = generate(small_mlp, prompt, 30, rng=gen(0), top_k=4, top_p=0.9)
    b = generate(small_mlp, prompt, 30, rng=gen(0), top_k=4, top_p=0.9)
    c = generate(small_mlp, prompt, 30, rng=gen(1), top_k=4, top_p=0.9)
    assert a.shape == (2, 33) and a.dtype == torch.long
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.equal(a[:, :3], prompt)
    assert torch.equal(generate(small_mlp, prompt, 0), prompt)


def test_generate_feeds_the_last_context_tokens_and_restores_mode():
    class Recorder(nn.Module):
        def __init__(self, context=None):
            super().__init__()
            self.lengths, self.modes = [], []
            self.lin = nn.Linear(1, 1)
            if context is not None:
                self.context = context

        def forward(self, idx):
            self.lengths.append(idx.shape[1])
            self.modes.append(self.training)
            return torch.zeros(*idx.shape, 5)

    rec = Recorder(context=4)
    out = generate(rec, torch.tensor([0, 1]), 5, temperature=0.0)
    assert rec.lengths == [2, 3, 4, 4, 4] and rec.modes == [False] * 5 and rec.training
    assert out.tolist() == [0, 1, 0, 0, 0, 0, 0]
    rec = Recorder()
    generate(rec, torch.tensor([0, 1]), 3, context=1)
    assert rec.lengths == [1, 1, 1]
    with pytest.raises(ValueError, match=r"^context is needed: the model has neither \.context nor "
                                         r"\.config\.block_size$"):
        generate(Recorder(), torch.tensor([0]), 2)
    tup = TupleModel(BigramLM(5), block_size=3)
    assert generate(tup, torch.tensor([0]), 4, rng=gen(0)).shape == (5,)


@pytest.mark.parametrize("prompt, kwargs, exc, message", [
    (torch.tensor([], dtype=torch.long), {}, ValueError,
     r"^prompt_ids must not be empty \(the model needs at least one token to condition on\), got shape \(0,\)$"),
    (torch.zeros(2, 0, dtype=torch.long), {}, ValueError, r"^prompt_ids must not be empty"),
    (torch.tensor([1.0]), {}, TypeError,
     r"^prompt_ids must be a LongTensor \(T0,\) or \(B, T0\) of token ids, got dtype torch.float32$"),
    ([1, 2], {}, TypeError, r"^prompt_ids must be a LongTensor \(T0,\) or \(B, T0\) of token ids, got list$"),
    (torch.zeros(1, 1, 1, dtype=torch.long), {}, ValueError,
     r"^prompt_ids must have shape \(T0,\) or \(B, T0\), got \(1, 1, 1\)$"),
    (torch.tensor([7]), {}, ValueError, r"^prompt_ids must hold token ids \[0, 7\), got values in \[7, 7\]$"),
    (torch.tensor([1]), dict(temperature=-0.5), ValueError, r"^temperature must be finite and >= 0, got -0.5$"),
    (torch.tensor([1]), dict(top_k=0), ValueError, r"^top_k must be >= 1, got 0$"),
    (torch.tensor([1]), dict(top_p=1.5), ValueError, r"^top_p must be in \(0, 1\], got 1.5$"),
    (torch.tensor([1]), dict(rng=1), TypeError, r"^rng must be a torch.Generator or None, got int$"),
    (torch.tensor([1]), dict(max_new_tokens=-1), ValueError, r"^max_new_tokens must be >= 0, got -1$"),
    (torch.tensor([1]), dict(context=0), ValueError, r"^context must be >= 1, got 0$"),
])
def test_generate_bad_inputs(small_mlp, prompt, kwargs, exc, message):
    kwargs = {"max_new_tokens": 3, **kwargs}
    with pytest.raises(exc, match=message):
        generate(small_mlp, prompt, **kwargs)


def test_generate_from_trained_model_reads_like_text():
    runs = docs_runs()
    vocab = docs_data()[0]
    text = vocab.decode(generate(runs["mlp_model"], vocab.encode("The "), 200, temperature=0.8, rng=gen(0)))
    assert text.startswith("The ") and len(text) == 204
    words = re.findall(r"[a-z]+", text)
    assert sum(w in {"the", "a", "to", "is", "of", "and", "in"} for w in words) >= 3


def test_works_with_the_course_gpt():
    gpt = pytest.importorskip("aigc_course.gpt")
    torch.manual_seed(0)
    model = gpt.GPT(gpt.GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    ids = torch.randint(0, 11, (200,), generator=gen(0))
    h = train_lm(model, ids, quiet(steps=5, block_size=8), val_ids=ids[:60]).history
    assert len(h["loss"]) == 5 and len(h["val_loss"]) == 1
    # one window of exactly block_size: evaluate_loss is the GPT's own mean cross-entropy
    x, y = ids[None, :8], ids[None, 1:9]
    model.eval()
    with torch.no_grad():
        own = float(model(x, y)[1])
    assert evaluate_loss(model, ids[:9], 8) == pytest.approx(own, rel=1e-6)
    # generation crops to config.block_size, as GPT.generate does without its cache
    ours = generate(model, ids[:3], 20, temperature=0.0)
    assert torch.equal(ours[None], model.generate(ids[None, :3], 20, temperature=0.0, use_cache=False))


# --------------------------------------------------------------------------- GPU

@pytest.mark.cuda
def test_cuda_train_evaluate_generate():
    vocab, train_ids, val_ids = docs_data()
    seed_everything(0)
    model = MLPLanguageModel(len(vocab), context=6, hidden=128).cuda()
    result = train_lm(model, train_ids, quiet(steps=100, block_size=32, lr=3e-3, amp=True), val_ids=val_ids)
    assert next(model.parameters()).is_cuda
    assert result.history["val_loss"][-1] < math.log(len(vocab)) - 0.5
    cpu_loss = evaluate_loss(model.cpu(), val_ids, 32)
    model.cuda()
    assert evaluate_loss(model, val_ids.cuda(), 32) == pytest.approx(cpu_loss, rel=1e-4)
    out = generate(model, vocab.encode("The ").cuda(), 20, rng=torch.Generator("cuda").manual_seed(0))
    assert out.is_cuda and out.shape == (24,)
    greedy = generate(model, vocab.encode("The ").cuda(), 20, temperature=0.0)
    assert torch.equal(generate(model, vocab.encode("The ").cuda(), 20, temperature=0.0), greedy)


# --------------------------------------------------------------------------- the sampling explorer

def test_sampling_explorer_regenerates_on_every_control_and_matches_generate():
    vocab, train_ids, _ = docs_data()
    torch.manual_seed(0)
    model = MLPLanguageModel(len(vocab), context=4, embed_dim=8, hidden=32)
    ex = sampling_explorer(model, vocab, prompt="The \u00e9module ", length=30, seed=3)   # é is unknown: dropped
    assert list(ex.controls) == ["prompt", "temperature", "top_k", "top_p", "length", "seed"]
    want = generate(model, vocab.encode("The module "), 30, temperature=0.8, rng=torch.Generator().manual_seed(3))
    assert ex.text == vocab.decode(want) and ex.known_prompt() == "The module "
    assert ex.output.value.startswith("<pre style='white-space: pre-wrap'><b>The module </b>")
    first = ex.output.value
    seen = {first}
    for name, value in (("temperature", 1.5), ("top_k", 5), ("top_p", 0.5), ("length", 12), ("seed", 4),
                        ("prompt", "Return ")):
        ex.controls[name].value = value                       # what moving the control does
        assert ex.output.value not in seen, name
        seen.add(ex.output.value)
    want = generate(model, vocab.encode("Return "), 12, temperature=1.5, top_k=5, top_p=0.5,
                    rng=torch.Generator().manual_seed(4))
    assert ex.text == vocab.decode(want)
    ex.controls["temperature"].value = 0.0                       # greedy: the seed no longer matters
    greedy = ex.text
    ex.controls["seed"].value = 9
    assert ex.text == greedy
    ex.controls["prompt"].value = "\u00e9\u00e9"                       # nothing known: starts from the first token
    assert ex.known_prompt() == vocab.decode([0]) and ex.text.startswith(vocab.decode([0]))
    assert "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()
    assert model.training


def test_sampling_explorer_escapes_html_and_checks_its_arguments():
    class Letters:
        stoi = {"<": 0, "&": 1, "a": 2}

        def encode(self, text):
            return torch.tensor([self.stoi[c] for c in text])

        def decode(self, ids):
            return "".join("<&a"[int(i)] for i in ids)

    model = BigramLM(3)
    ex = sampling_explorer(model, Letters(), prompt="<&", length=5, temperature=0.0)
    assert ex.output.value.startswith("<pre style='white-space: pre-wrap'><b>&lt;&amp;</b>")
    assert "<&" not in ex.output.value[40:]
    cases = [
        (dict(model="m"), TypeError, "model must be a torch.nn.Module, got str"),
        (dict(vocab=object()), TypeError, "vocab must have encode(text) and decode(ids), got object"),
        (dict(prompt=3), TypeError, "prompt must be a str, got int"),
        (dict(length=0), ValueError, "length must be >= 1, got 0"),
        (dict(length=700), ValueError, "length must be <= max_length = 600, got 700"),
        (dict(temperature=-1.0), ValueError, None),
        (dict(temperature=6.0), ValueError, "temperature must be <= 5 for the slider, got 6.0"),
        (dict(top_p=1.5), ValueError, None),
        (dict(seed=-1), ValueError, "seed must be >= 0, got -1"),
    ]
    for kw, err, msg in cases:
        args = dict(model=model, vocab=Letters())
        args.update({k: kw.pop(k) for k in ("model", "vocab") if k in kw})
        with pytest.raises(err, match=None if msg is None else "^" + re.escape(msg) + "$"):
            sampling_explorer(args["model"], args["vocab"], **kw)
