"""Pins for aigc_course.lm and aigc_course.tokenizers found by mutation testing: LMConfig defaults, exact
messages and what it passes to TrainConfig; what train_lm hands to train() and AdamW (groups, betas,
scheduler only when needed, device, evaluation steps and batch size, seconds); the lr factor at given steps;
_logits / _vocab_of / _token_ids edge cases; MLPLanguageModel defaults and argument names; ByteBPE's exact
save format, load/save errors, the chunk splitter on empty and skipping patterns, the encode cache, and
training counts after a merge."""

import json
import math
import re
import sys
import time
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from aigc_course import lm
from aigc_course import tokenizers as tk
from aigc_course.lm import BigramLM, LMConfig, MLPLanguageModel, perplexity, train_lm
from aigc_course.tokenizers import ByteBPE

torch.set_num_threads(1)


def exact(msg: str) -> str:
    return "^" + re.escape(msg) + "$"


def quiet(**kw) -> LMConfig:
    return LMConfig(progress=False, **kw)


def ids_of(n: int, v: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, v, (n,), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- LMConfig

def test_lm_config_defaults_and_train_config_fields():
    c = LMConfig(steps=3)
    assert (c.batch_size, c.block_size, c.lr, c.min_lr, c.weight_decay, c.betas, c.lr_schedule) == \
        (32, 64, 1e-3, 0.0, 0.0, (0.9, 0.95), "constant")
    assert (c.warmup_steps, c.eval_every, c.eval_batch_size, c.grad_clip, c.amp, c.ckpt_dir, c.ckpt_every,
            c.log_every, c.progress, c.desc) == (0, 0, 64, 1.0, None, None, 0, 10, True, "lm")
    tc = LMConfig(steps=4, grad_clip=None, amp=False, log_every=3, progress=False, desc="mine")._train_config()
    assert (tc.steps, tc.grad_clip, tc.amp, tc.log_every, tc.progress, tc.desc) == (4, None, False, 3, False, "mine")
    assert LMConfig(steps=1, amp=True)._train_config().amp is True


def test_lm_config_boundaries_accepted():
    c = LMConfig(steps=1, eval_batch_size=1, min_lr=1e-3, lr=1e-3, betas=[0.0, 0.5])
    assert c.betas == (0.0, 0.5) and isinstance(c.betas, tuple)
    assert LMConfig(steps=1, betas=(0.8, 0.9)).betas == (0.8, 0.9)


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(min_lr=-1.0), ValueError, "LMConfig.min_lr must be a finite number >= 0, got -1.0"),
    (dict(min_lr="a"), TypeError, "LMConfig.min_lr must be a number, got str 'a'"),
    (dict(weight_decay="a"), TypeError, "LMConfig.weight_decay must be a number, got str 'a'"),
    (dict(weight_decay=-0.5), ValueError, "LMConfig.weight_decay must be a finite number >= 0, got -0.5"),
    (dict(lr=math.inf), ValueError, "LMConfig.lr must be a finite number > 0, got inf"),
    (dict(betas=0.5), ValueError, "LMConfig.betas must be two numbers in [0, 1), got 0.5"),
    (dict(betas=(0.9,)), ValueError, "LMConfig.betas must be two numbers in [0, 1), got (0.9,)"),
    (dict(eval_batch_size=0), ValueError, "LMConfig.eval_batch_size must be >= 1, got 0"),
])
def test_lm_config_exact_messages(kwargs, exc, message):
    with pytest.raises(exc, match=exact(message)):
        LMConfig(steps=1, **kwargs)


# --------------------------------------------------------------------------- lr factor

def test_lr_factor_values():
    f = lm._lr_factor(LMConfig(steps=10, warmup_steps=2))                    # constant after warmup
    assert [f(0), f(1), f(2), f(9)] == [0.5, 1.0, 1.0, 1.0]
    f = lm._lr_factor(LMConfig(steps=2, lr=0.01, min_lr=0.002, lr_schedule="cosine"))
    assert f(0) == pytest.approx(1.0) and f(1) == pytest.approx(0.2)     # span 1: the last step is the floor
    f = lm._lr_factor(LMConfig(steps=5, lr=0.01, min_lr=0.001, lr_schedule="cosine"))
    assert f(2) == pytest.approx(0.1 + 0.9 * 0.5) and f(20) == pytest.approx(0.1)   # held at the floor


# --------------------------------------------------------------------------- helpers

def test_logits_of_objects_and_hints():
    idx = torch.zeros(1, 2, dtype=torch.long)
    t = torch.randn(1, 2, 3)
    assert lm._logits(SimpleNamespace(logits=t), idx) is t
    assert lm._logits([t, None], idx) is t
    with pytest.raises(ValueError, match=exact("model(idx) with idx of shape (1, 2) must return logits of shape "
                                               "(1, 2, V), got (1, 3, 3)")):
        lm._logits(torch.zeros(1, 3, 3), idx)
    with pytest.raises(ValueError, match=exact("model(idx) with idx of shape (2, 1) must return logits of shape "
                                               "(2, 1, V), got (1, 1, 3)")):
        lm._logits(torch.zeros(1, 1, 3), torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"got \(1, 1, 3\) \(nanoGPT's GPT returns only the last position"):
        lm._logits(torch.zeros(1, 1, 3), idx)
    with pytest.raises(TypeError, match=exact("model(idx) must return logits (B, T, V), a (logits, loss) pair or "
                                              "an object with .logits; got SimpleNamespace")):
        lm._logits(SimpleNamespace(logits=None), idx)


class Probe(nn.Module):
    def __init__(self, width: int, declared=None, config=None):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.width, self.shapes = width, []
        if declared is not None:
            self.vocab_size = declared
        if config is not None:
            self.config = config

    def forward(self, idx):
        self.shapes.append(tuple(idx.shape))
        return torch.zeros(*idx.shape, self.width) + self.w


def test_vocab_of_declared_config_and_probe():
    m = Probe(7, declared=5)
    assert lm._vocab_of(m, torch.device("cpu")) == 5 and m.shapes == []
    m = Probe(7, config=SimpleNamespace(vocab_size=4, block_size=3))
    assert lm._vocab_of(m, torch.device("cpu")) == 4 and m.shapes == []
    assert lm._model_context(m) == 3
    m = Probe(7)
    assert lm._vocab_of(m, torch.device("cpu")) == 7 and m.shapes == [(1, 1)]


def test_model_context_one_and_bigram_context():
    assert BigramLM(3).context == 1
    assert lm._model_context(BigramLM(3)) == 1
    assert lm._model_context(SimpleNamespace(context=2)) == 2


def test_token_ids_single_token_and_check_idx_message():
    one = torch.tensor([3])
    assert lm._token_ids("x", one) is one
    assert lm._token_ids("x", one, min_len=1) is one
    with pytest.raises(TypeError, match=exact("idx must be a LongTensor (B, T) of token ids, got list")):
        BigramLM(3)([[0]])


def test_perplexity_passes_its_arguments(monkeypatch):
    seen = []
    monkeypatch.setattr(lm, "evaluate_loss", lambda *a, **kw: seen.append((a, kw)) or 0.5)
    m, ids = BigramLM(3), torch.tensor([0, 1, 2, 0])
    assert perplexity(m, ids, 2, batch_size=3, stride=1) == pytest.approx(math.exp(0.5))
    perplexity(m, ids, 2)
    assert seen == [((m, ids, 2), dict(batch_size=3, stride=1)), ((m, ids, 2), dict(batch_size=64, stride=None))]


# --------------------------------------------------------------------------- MLPLanguageModel

def test_mlp_defaults_and_minimal_sizes():
    m = MLPLanguageModel(5)
    assert (m.context, m.embed_dim, m.hidden.in_features, m.hidden.out_features, m.out.out_features) == \
        (8, 16, 128, 256, 5)
    m = MLPLanguageModel(1, context=1, embed_dim=1, hidden=1)
    assert m(torch.zeros(1, 2, dtype=torch.long)).shape == (1, 2, 1)


@pytest.mark.parametrize("kwargs, exc, message", [
    (dict(vocab_size="a"), TypeError, "vocab_size must be an int, got str 'a'"),
    (dict(vocab_size=5, embed_dim=1.5), TypeError, "embed_dim must be an int, got float 1.5"),
    (dict(vocab_size=5, embed_dim=0), ValueError, "embed_dim must be >= 1, got 0"),
])
def test_mlp_argument_names(kwargs, exc, message):
    with pytest.raises(exc, match=exact(message)):
        MLPLanguageModel(**kwargs)


# --------------------------------------------------------------------------- train_lm

@pytest.fixture
def spy(monkeypatch):
    calls = {"train": [], "eval": []}
    real_train, real_eval = lm.train, lm.evaluate_loss

    def train(step, **kw):
        calls["train"].append(kw)
        return real_train(step, **kw)

    def evaluate(*a, **kw):
        calls["eval"].append(kw)
        return real_eval(*a, **kw)

    monkeypatch.setattr(lm, "train", train)
    monkeypatch.setattr(lm, "evaluate_loss", evaluate)
    return calls


def test_train_lm_hands_train_and_adamw_the_right_things(spy):
    m = MLPLanguageModel(5, context=2, embed_dim=3, hidden=4)
    cfg = quiet(steps=2, block_size=4, batch_size=2, lr=0.02, weight_decay=0.3, betas=(0.8, 0.9), desc="x",
                log_every=1)
    t0 = time.perf_counter()
    res = train_lm(m, ids_of(50, 5), cfg, device="cpu")
    wall = time.perf_counter() - t0
    assert 0.0 < res.seconds <= wall
    kw = spy["train"][0]
    assert kw["models"] == {"lm": m} and list(kw["optimizers"]) == ["lm"]
    assert kw["schedulers"] is None and kw["device"] == torch.device("cpu")
    assert (kw["config"].steps, kw["config"].desc, kw["config"].log_every, kw["config"].progress) == (2, "x", 1, False)
    opt = kw["optimizers"]["lm"]
    assert isinstance(opt, torch.optim.AdamW)
    g0, g1 = opt.param_groups
    assert {id(p) for p in g0["params"]} == {id(m.embedding.weight), id(m.hidden.weight), id(m.out.weight)}
    assert {id(p) for p in g1["params"]} == {id(m.hidden.bias), id(m.out.bias)}
    assert (g0["weight_decay"], g1["weight_decay"]) == (0.3, 0.0)
    assert g0["betas"] == (0.8, 0.9) and g0["lr"] == 0.02
    assert res.history["grad_norm"][0] > 0 and res.history["lr"] == [0.02, 0.02]


def test_train_lm_scheduler_named_lm_only_when_needed(spy):
    train_lm(BigramLM(5), ids_of(50, 5), quiet(steps=1, block_size=4, warmup_steps=1))
    train_lm(BigramLM(5), ids_of(50, 5), quiet(steps=1, block_size=4, lr_schedule="cosine"))
    for kw in spy["train"]:
        assert list(kw["schedulers"]) == ["lm"]
        assert isinstance(kw["schedulers"]["lm"], torch.optim.lr_scheduler.LambdaLR)


def test_train_lm_evaluation_steps_and_batch_size(spy):
    ids = ids_of(60, 5)
    res = train_lm(BigramLM(5), ids, quiet(steps=5, block_size=3, eval_every=2, eval_batch_size=7),
                   val_ids=ids[:20])
    assert [r["step"] for r in res.history.records if "val_loss" in r] == [1, 3, 4]
    assert [kw["batch_size"] for kw in spy["eval"]] == [7, 7, 7]
    res = train_lm(BigramLM(5), ids, quiet(steps=3, block_size=3), val_ids=ids[:20])
    assert [r["step"] for r in res.history.records if "val_loss" in r] == [2]


def test_train_lm_length_boundaries():
    ids = torch.arange(10) % 5
    with pytest.raises(ValueError, match=exact("LMConfig.block_size must be <= len(train_ids) - 1 = 9, got 10")):
        train_lm(BigramLM(5), ids, quiet(steps=1, block_size=10))
    with pytest.raises(ValueError, match=exact("val_ids must hold at least 2 tokens, got 1")):
        train_lm(BigramLM(5), ids, quiet(steps=1, block_size=1), val_ids=ids[:1])
    res = train_lm(BigramLM(5), ids, quiet(steps=1, block_size=1), val_ids=ids[:2])
    assert math.isfinite(res.history.last("val_loss"))
    res = train_lm(BigramLM(5), ids, quiet(steps=1, block_size=2), val_ids=ids[:3])
    assert math.isfinite(res.history.last("val_loss"))


# --------------------------------------------------------------------------- tokenizers

def test_split_edges():
    assert tk._split("", None) == []
    assert tk._split("ab", re.compile("b")) == ["a", "b"]
    assert tk._split("ab", re.compile("a|b")) == ["a", "b"]
    assert tk._split("ab", re.compile("x*")) == ["a", "b"]
    assert tk._split("ab", re.compile("ab")) == ["ab"]


def test_compile_without_regex_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "regex", None)
    pat = r"\p{L}+"
    with pytest.raises(ValueError) as err:
        tk._compile(pat)
    msg = str(err.value)
    assert msg.startswith(f"pattern {pat!r} is not a valid regular expression for Python's re (")
    assert msg.endswith("); classes such as \\p{L} need the `regex` package (pip install regex)")


def test_equality_needs_same_merges_and_pattern():
    assert ByteBPE([(97, 98)]) != ByteBPE([])
    assert ByteBPE([]) != ByteBPE([(97, 98)])
    assert ByteBPE([], pattern=None) != ByteBPE([])
    assert ByteBPE([(97, 98)]) == ByteBPE([[97, 98]])


def test_merges_edge_values():
    assert ByteBPE([(0, 0), (0, 256)]).token_bytes(257) == b"\x00\x00\x00"
    with pytest.raises(ValueError, match=exact("merges[0] must be a pair of existing token ids in [0, 256) "
                                               "(token 256 is made from earlier ones), got 5")):
        ByteBPE([5])


def test_repr_custom_pattern_and_bool_ids():
    assert repr(ByteBPE([], pattern=r"\w+")) == "ByteBPE(vocab_size=256, merges=0, pattern=custom)"
    with pytest.raises(TypeError, match=exact("ids must be an integer tensor, got dtype torch.bool")):
        ByteBPE().decode(torch.tensor([True]))


def test_encode_respects_chunks_and_caches(monkeypatch):
    tok = ByteBPE([(97, 32)])                                    # "a " never occurs inside a GPT-2 chunk
    assert tok.encode("a b").tolist() == [97, 32, 98]
    assert ByteBPE([(97, 32)], pattern=None).encode("a b").tolist() == [256, 98]
    tok = ByteBPE([(97, 98)])
    calls = []
    real = tok._encode_chunk
    monkeypatch.setattr(tok, "_encode_chunk", lambda c: calls.append(c) or real(c))
    assert tok.encode("ab ab ab").tolist() == [256, 32, 256, 32, 256]
    assert calls == ["ab", " ab"] and tok._cache == {"ab": [256], " ab": [32, 256]}
    tok._cache = {str(i): [] for i in range(100_000)}
    assert tok.encode("q").tolist() == [113] and "q" not in tok._cache


def test_train_vocab_256_and_counts_after_a_merge():
    assert ByteBPE.train("abab", 256).merges == []
    text = "ab ab ab ab ab xy xy xy efef"
    # after (a, b): xy occurs 3 times, ef twice (both in "efef"); counts must not change after merging
    assert ByteBPE.train(text, 258, pattern=r"\w+").merges == [(97, 98), (120, 121)]


def test_save_writes_exact_json(tmp_path):
    p = ByteBPE([(97, 98)], pattern=r"\w+").save(tmp_path / "t.json")
    data = {"format": "aigc_course.ByteBPE", "version": 1, "pattern": r"\w+", "merges": [[97, 98]]}
    assert p.read_text(encoding="utf-8") == json.dumps(data, indent=0) + "\n"
    assert p.read_text(encoding="utf-8").startswith('{\n"format": "aigc_course.ByteBPE",\n')


@pytest.mark.parametrize("method", ["save", "load"])
def test_save_load_path_type(method):
    tok = ByteBPE()
    with pytest.raises(TypeError, match=exact("path must be a str or os.PathLike, got int")):
        getattr(tok, method)(5) if method == "save" else ByteBPE.load(5)


@pytest.mark.parametrize("merges, tail", [
    (["ab"], "got 'ab'"),
    ([5], "got 5"),
])
def test_load_non_list_merge_message(tmp_path, merges, tail):
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"format": "aigc_course.ByteBPE", "version": 1, "pattern": None, "merges": merges}))
    with pytest.raises(ValueError, match=exact(f"tokenizer file {p} is damaged: merges[0] must be a pair of "
                                               f"existing token ids in [0, 256) (token 256 is made from earlier "
                                               f"ones), {tail}")):
        ByteBPE.load(p)


# ----------------------------------------------------- devices (the meta device stands in for a GPU)

def test_model_device_is_the_parameters_device():
    assert lm._model_device(nn.Linear(1, 1, device="meta")) == torch.device("meta")
    assert lm._model_device(nn.Identity()) == torch.device("cpu")


def test_draw_windows_stays_on_the_ids_device():
    ids = torch.arange(10)
    with torch.device("meta"):                                   # a default device must not leak in
        x, y = lm._draw_windows(ids, 3, 2, None)
    assert x.device == y.device == torch.device("cpu") and torch.equal(y[:, :-1], x[:, 1:])
    x, y = lm._draw_windows(ids.to("meta"), 3, 2, None)
    assert x.device == torch.device("meta") and x.shape == y.shape == (2, 3)


def test_vocab_of_probes_on_the_given_device():
    seen = []

    class Dev(nn.Module):
        def forward(self, idx):
            seen.append(idx.device)
            return torch.zeros(*idx.shape, 4, device=idx.device)

    with torch.device("meta"):
        assert lm._vocab_of(Dev(), torch.device("cpu")) == 4
    assert seen == [torch.device("cpu")]


def test_train_lm_probes_the_vocab_on_the_model_device():
    ids = torch.arange(20) % 5

    class Table(nn.Module):                                      # no vocab_size: the vocabulary is probed
        def __init__(self):
            super().__init__()
            self.t = nn.Parameter(torch.zeros(5, 5))

        def forward(self, idx):
            assert idx.device == self.t.device
            return self.t[idx]

    m = Table()
    with torch.device("meta"):                                   # a default device must not leak in
        res = train_lm(m, ids, quiet(steps=2, block_size=3), val_ids=ids)
    assert [r["step"] for r in res.history.records if "val_loss" in r] == [1]
    assert math.isfinite(res.history.last("loss"))
