"""Tests for aigc_course.gpt: shapes and the loss by hand, causal masking on both attention paths, the paths
agreeing, attention maps (stochastic rows, zero above the diagonal, layer 0 recomputed by hand), the
parameter-count formula, weight tying, init statistics, the KV cache (same tokens as a full recompute for greedy
and seeded sampling, also past block_size; one query row per step), eval mode during generation, a short real
training run whose loss drops, repeatability, Hugging Face GPT-2 interop (skipped without transformers), bf16
autocast on CPU, bad inputs with exact messages, and `cuda` tests (skipped without a GPU)."""

import math
import re
import sys

import pytest
import torch

from aigc_course.data.text import CharVocab, docs_corpus
from aigc_course.device import seed_everything
from aigc_course.gpt import GPT, GPTConfig, gpt_parameter_count
from aigc_course.train import TrainConfig, sample_batch, train

torch.set_num_threads(1)
V = 23


def exact(msg: str) -> str:
    return "^" + re.escape(msg) + "$"


def small(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16)
    return GPT(GPTConfig(**(cfg | kw)))


def ids(B: int, T: int, seed: int = 1, vocab: int = V) -> torch.Tensor:
    return torch.randint(vocab, (B, T), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- forward and loss

def test_shapes_and_loss_by_hand():
    model = small()
    x, y = ids(3, 10), ids(3, 10, seed=2)
    y[0, :4] = -1                                   # ignored targets
    logits, loss = model(x, y)
    assert logits.shape == (3, 10, V) and loss.shape == ()
    logp = logits.log_softmax(-1)
    keep = y != -1
    by_hand = -logp[keep].gather(-1, y[keep][:, None]).mean()
    assert loss.item() == pytest.approx(by_hand.item(), rel=1e-6)
    assert model(x)[1] is None
    # small init: the logits are near 0, so the first loss is near log V
    assert abs(model(x, ids(3, 10, seed=2))[1].item() - math.log(V)) < 0.05


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_future_tokens_do_not_change_past_logits(attention):
    model = small()
    x = ids(2, 12)
    x2 = x.clone()
    x2[:, 7:] = (x2[:, 7:] + 5) % V                # change every token from position 7 on
    a, b = model(x, attention=attention)[0], model(x2, attention=attention)[0]
    assert torch.allclose(a[:, :7], b[:, :7], atol=1e-6, rtol=0)
    assert (a[:, 7:] - b[:, 7:]).abs().amax() > 1e-3   # ... while the changed positions do change


def test_the_two_attention_paths_agree_in_train_and_eval_mode():
    model = small(n_layer=3)
    x = ids(4, 16)
    for mode in (True, False):
        model.train(mode)
        assert torch.allclose(model(x)[0], model(x, attention="math")[0], atol=1e-5, rtol=0)


def test_attention_maps_are_causal_distributions_and_match_layer_0_by_hand():
    model = small(n_head=4)
    x = ids(2, 9)
    maps = model.attention_maps(x)
    assert maps.shape == (2, 2, 4, 9, 9)
    assert torch.allclose(maps.sum(-1), torch.ones(2, 2, 4, 9), atol=1e-6)
    upper = torch.ones(9, 9, dtype=torch.bool).triu(1)
    assert (maps[..., upper] == 0).all() and (maps[..., ~upper] > 0).all()
    assert maps[0, 0, 0, 0, 0] == 1.0                          # the first token can only attend to itself
    # layer 0 recomputed: softmax(q kᵀ/√d + mask) from the block's own weights
    tr = model.transformer
    h = tr.h[0].ln_1(tr.wte(x) + tr.wpe(torch.arange(9)))
    q, k, _ = tr.h[0].attn.c_attn(h).split(16, dim=2)
    q, k = (t.view(2, 9, 4, 4).transpose(1, 2) for t in (q, k))
    att = (q @ k.transpose(-2, -1) / 2.0).masked_fill(upper, -math.inf).softmax(-1)
    assert torch.allclose(maps[0], att, atol=1e-6)


def test_longer_than_block_size_is_refused_and_attention_maps_keep_the_mode():
    model = small(dropout=0.1)
    with pytest.raises(ValueError, match=exact("idx has 17 tokens, more than block_size=16; pass at most the last 16")):
        model(ids(1, 17))
    model.train()
    model.attention_maps(ids(1, 4))
    assert model.training and all(m.training for m in model.modules())


# --------------------------------------------------------------------------- parameters and init

def test_parameter_count_formula_by_hand_and_against_the_model():
    cfg = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)
    # 65·128 + 64·128 + 4·(12·128² + 13·128) + 2·128
    assert gpt_parameter_count(cfg) == 809_856
    assert gpt_parameter_count(cfg, non_embedding=True) == 809_856 - 64 * 128
    model = GPT(cfg)
    assert model.num_parameters(non_embedding=False) == 809_856
    assert model.num_parameters() == 809_856 - 64 * 128
    for kw in (dict(bias=False), dict(n_layer=1, n_head=1, n_embd=8), dict(vocab_size=1, block_size=1)):
        c = GPTConfig(**{**dict(vocab_size=11, block_size=7, n_layer=3, n_head=2, n_embd=12), **kw})
        m = GPT(c)
        assert m.num_parameters(False) == gpt_parameter_count(c) == sum(p.numel() for p in m.parameters())
        assert m.num_parameters(True) == gpt_parameter_count(c, True)


def test_weight_tying_shares_one_matrix_and_its_gradient():
    model = small()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert "lm_head.weight" in model.state_dict()
    _, loss = model(ids(2, 5), ids(2, 5, seed=3))
    loss.backward()
    g = model.transformer.wte.weight.grad
    assert g is not None and g.abs().sum() > 0
    with torch.no_grad():
        model.transformer.wte.weight[0, 0] = 7.0
    assert model.lm_head.weight[0, 0] == 7.0


def test_init_statistics():
    model = small(n_layer=8, n_embd=128, n_head=4, vocab_size=500, block_size=64)
    scaled = 0.02 / math.sqrt(2 * 8)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            assert p.std().item() == pytest.approx(scaled, rel=0.05), name
        elif name.endswith(("c_attn.weight", "c_fc.weight", "wte.weight", "wpe.weight")):
            assert p.std().item() == pytest.approx(0.02, rel=0.05), name
            assert abs(p.mean().item()) < 0.002, name
        elif "ln" in name:
            assert torch.equal(p, torch.ones_like(p) if name.endswith("weight") else torch.zeros_like(p)), name
        else:
            assert name.endswith("bias") and (p == 0).all(), name


def test_same_seed_same_numbers():
    a, b, c = small(seed=5), small(seed=5), small(seed=6)
    x = ids(2, 8)
    assert torch.equal(a(x)[0], b(x)[0])
    assert not torch.equal(a(x)[0], c(x)[0])
    g = [a.generate(x[:, :3], 10, rng=torch.Generator().manual_seed(9)) for _ in range(2)]
    assert torch.equal(g[0], g[1])


# --------------------------------------------------------------------------- generation and the KV cache

def _gen(model, prompt, n, cache, seed=0, **kw):
    return model.generate(prompt, n, use_cache=cache, rng=torch.Generator().manual_seed(seed), **kw)


@pytest.mark.parametrize("kw", [dict(temperature=0.0), dict(temperature=1.0), dict(temperature=0.8, top_k=5),
                                dict(temperature=1.2, top_p=0.9)])
def test_kv_cache_gives_the_same_tokens_also_past_block_size(kw):
    model = small(seed=3)
    prompt = ids(3, 4)
    for n in (6, 30):                        # 4 + 30 tokens: 18 beyond block_size=16
        a, b = _gen(model, prompt, n, True, **kw), _gen(model, prompt, n, False, **kw)
        assert a.shape == (3, 4 + n) and torch.equal(a[:, :4], prompt)
        assert torch.equal(a, b), (kw, n)
    # sampling does depend on the rng: another seed gives other tokens
    if kw["temperature"] > 0:
        assert not torch.equal(_gen(model, prompt, 30, True, **kw), _gen(model, prompt, 30, True, seed=1, **kw))


def test_kv_cache_runs_one_query_row_per_step_until_the_window_slides():
    model = small()
    seen: list[int] = []
    model.transformer.h[0].attn.c_attn.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[1]))
    model.generate(ids(1, 5), 15, temperature=0.0)
    # prefill 5 tokens, then one token per step while the sequence fits (6..16 tokens), then full windows
    assert seen == [5] + [1] * 11 + [16] * 3
    seen.clear()
    model.generate(ids(1, 5), 4, temperature=0.0, use_cache=False)
    assert seen == [5, 6, 7, 8]


def test_cached_logits_equal_full_logits():
    model = small(seed=4)
    x = ids(2, 12)
    full, _, _ = model._run(x)
    _, _, cache = model._run(x[:, :7])
    step, _, _ = model._run(x[:, 7:], cache)          # five new tokens at once on top of the cache
    assert torch.allclose(step, full[:, 7:], atol=1e-5, rtol=0)


def test_generate_runs_in_eval_mode_and_restores_the_mode():
    model = small(dropout=0.5)
    modes: list[bool] = []
    model.transformer.drop.register_forward_hook(lambda m, i, o: modes.append(m.training))
    model.train()
    model.transformer.h[1].eval()                    # a mixed state must come back as it was
    a = model.generate(ids(2, 3), 5, temperature=0.0)
    assert modes and not any(modes)
    assert model.training and not model.transformer.h[1].training and model.transformer.h[0].training
    model.eval()
    assert torch.equal(a, model.generate(ids(2, 3), 5, temperature=0.0))   # dropout was off


def test_long_prompts_are_cropped_to_the_last_block():
    model = small()
    long = ids(1, 40)
    a = model.generate(long, 3, temperature=0.0)
    b = model.generate(long[:, -16:], 3, temperature=0.0)
    assert torch.equal(a[:, 40:], b[:, 16:]) and torch.equal(a[:, :40], long)


def test_generate_zero_tokens_returns_the_prompt():
    x = ids(2, 3)
    assert torch.equal(small().generate(x, 0), x)


# --------------------------------------------------------------------------- a real training run

def test_training_on_a_character_corpus_lowers_the_loss():
    seed_everything(0)
    text = docs_corpus(max_chars=20_000)
    vocab = CharVocab.from_text(text)
    data = vocab.encode(text)
    T = 32
    starts = torch.arange(len(data) - T - 1)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=T, n_layer=2, n_head=2, n_embd=48))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    held = torch.randint(len(starts), (64,), generator=torch.Generator().manual_seed(1))
    hx = torch.stack([data[s:s + T] for s in held])
    hy = torch.stack([data[s + 1:s + T + 1] for s in held])

    def held_loss() -> float:
        with torch.no_grad():
            return model(hx, hy)[1].item()

    def step(ctx):
        (s,) = sample_batch(starts, batch_size=16)
        x = torch.stack([data[i:i + T] for i in s])
        y = torch.stack([data[i + 1:i + T + 1] for i in s])
        with ctx.autocast():
            _, loss = model(x, y)
        ctx.optimize(loss)
        return {"loss": loss}

    before = held_loss()
    history = train(step, models=model, optimizers=opt, config=TrainConfig(steps=150, progress=False))
    after = held_loss()
    assert before == pytest.approx(math.log(len(vocab)), abs=0.1)
    assert after < before - 1.2, (before, after)
    assert len(history) == 150 and history["loss"][-1] < history["loss"][0] - 1.0


# --------------------------------------------------------------------------- mixed precision (CPU)

def test_bf16_autocast_forward_backward_and_generate_on_cpu():
    model = small()
    x, y = ids(2, 8), ids(2, 8, seed=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for attention in ("sdpa", "math"):
            logits, loss = model(x, y, attention=attention)
            assert logits.dtype == torch.bfloat16 and torch.isfinite(loss)
            loss.backward()
        out = model.generate(x[:, :3], 20, top_k=5, rng=torch.Generator().manual_seed(0))
    assert out.shape == (2, 23) and all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_compiles_as_one_graph():
    # the checks that read token values step aside under torch.compile: no graph break (fullgraph=True)
    model = small()
    x, y = ids(2, 10), ids(2, 10, seed=2)
    logits, loss = torch.compile(model, backend="eager", fullgraph=True)(x, y)
    ref, ref_loss = model(x, y)
    assert torch.allclose(logits, ref, atol=1e-6) and loss.item() == pytest.approx(ref_loss.item(), rel=1e-6)


# --------------------------------------------------------------------------- Hugging Face GPT-2

def _hf_pair(seed: int = 0):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    hc = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=100, n_positions=64,
                                 activation_function="gelu_new", initializer_range=0.1,   # larger activations
                                 bos_token_id=None, eos_token_id=None)
    hf = transformers.GPT2LMHeadModel(hc).eval()
    return hf, GPT.from_hf(hf)


def test_from_hf_logits_match():
    hf, ours = _hf_pair()
    assert ours.config == GPTConfig(vocab_size=100, block_size=64, n_layer=2, n_head=2, n_embd=32,
                                    gelu_approximate="tanh")
    x = ids(3, 40, vocab=100)
    with torch.no_grad():
        ref = hf(x).logits
    assert torch.allclose(ours(x)[0], ref, atol=1e-5, rtol=0)
    assert torch.allclose(ours(x, attention="math")[0], ref, atol=1e-5, rtol=0)
    # the exact GELU is measurably different: the tanh approximation is what makes them match
    exact_gelu = GPT.from_hf(hf, GPTConfig(100, 64, 2, 2, 32))
    assert (exact_gelu(x)[0] - ref).abs().amax() > 1e-4


def test_from_hf_greedy_tokens_match_hf_generate():
    hf, ours = _hf_pair(1)
    prompt = ids(2, 5, seed=4, vocab=100)
    with torch.no_grad():
        ref = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=20, do_sample=False,
                          pad_token_id=0)
    assert ref.shape == (2, 25)
    assert torch.equal(ours.generate(prompt, 20, temperature=0.0), ref)
    assert torch.equal(ours.generate(prompt, 20, temperature=0.0, use_cache=False), ref)


def test_from_hf_state_dict_with_mask_buffers_and_without_prefix():
    hf, ours = _hf_pair(2)
    sd = hf.state_dict()
    for i in range(2):                                # older transformers keep the causal mask as buffers
        sd[f"transformer.h.{i}.attn.bias"] = torch.ones(1, 1, 64, 64, dtype=torch.bool).tril()
        sd[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    cfg = GPTConfig(100, 64, 2, 2, 32, gelu_approximate="tanh")
    x = ids(2, 10, vocab=100)
    assert torch.equal(GPT.from_hf(sd, cfg)(x)[0], ours(x)[0])
    body = {k.removeprefix("transformer."): v for k, v in sd.items() if k != "lm_head.weight"}   # GPT2Model
    assert torch.equal(GPT.from_hf(body, cfg)(x)[0], ours(x)[0])
    w = hf.transformer.h[0].attn.c_attn.weight                                # Conv1D: (in, out)
    assert w.shape == (32, 96) and torch.equal(ours.transformer.h[0].attn.c_attn.weight, w.t())
    assert ours.lm_head.weight is ours.transformer.wte.weight


def test_from_hf_bad_inputs():
    hf, _ = _hf_pair()
    sd = hf.state_dict()
    with pytest.raises(ValueError, match=exact("config is required with a state dict: the number of heads is not "
                                               "in the weights (GPT-2 also needs gelu_approximate='tanh')")):
        GPT.from_hf(sd)
    with pytest.raises(TypeError, match=exact("model_or_state_dict must be a GPT2LMHeadModel or its state dict, "
                                              "got str")):
        GPT.from_hf("gpt2")
    untied = dict(sd, **{"lm_head.weight": sd["lm_head.weight"] + 1})
    with pytest.raises(ValueError, match=exact("lm_head.weight differs from transformer.wte.weight: this GPT ties "
                                               "them")):
        GPT.from_hf(untied, GPTConfig(100, 64, 2, 2, 32))
    with pytest.raises(ValueError, match=r"^the state dict does not fit GPTConfig\(.*n_layer=3.*\): missing "
                                         r"\['transformer\.h\.2\.attn\.c_attn\.bias', .*\], unexpected \[\]$"):
        GPT.from_hf(sd, GPTConfig(100, 64, 3, 2, 32))
    with pytest.raises(ValueError, match=r"^transformer\.wpe\.weight has shape \(64, 32\) in the state dict, "
                                         r"\(32, 32\) in GPTConfig\(.*\)$"):
        GPT.from_hf(sd, GPTConfig(100, 32, 2, 2, 32))
    hf.config.activation_function = "relu"
    with pytest.raises(ValueError, match=exact("activation_function 'relu' is not supported (gelu_new, "
                                               "gelu_pytorch_tanh, gelu)")):
        GPT.from_hf(hf)


def test_from_pretrained_offline_and_without_transformers(monkeypatch):
    transformers = pytest.importorskip("transformers")

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(transformers.GPT2LMHeadModel, "from_pretrained", offline)
    with pytest.raises(RuntimeError, match=r"^could not load 'gpt2' from the Hugging Face hub or its local cache"):
        GPT.from_pretrained("gpt2")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match=exact("GPT.from_pretrained needs transformers: pip install "
                                                "'aigc-course[hf]'")):
        GPT.from_pretrained()


# --------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize(("kw", "exc", "msg"), [
    (dict(vocab_size=0), ValueError, "vocab_size must be >= 1, got 0"),
    (dict(block_size=2.0), TypeError, "block_size must be an int, got float 2.0"),
    (dict(n_layer=0), ValueError, "n_layer must be >= 1, got 0"),
    (dict(n_head=3), ValueError, "n_embd must be a multiple of n_head, got n_embd=16, n_head=3"),
    (dict(n_embd=True), TypeError, "n_embd must be an int, got bool True"),
    (dict(dropout=1.0), ValueError, "dropout must be in [0, 1), got 1.0"),
    (dict(dropout=-0.1), ValueError, "dropout must be in [0, 1), got -0.1"),
    (dict(dropout="0.1"), TypeError, "dropout must be a float in [0, 1), got str"),
    (dict(bias=1), TypeError, "bias must be True or False, got 1"),
    (dict(gelu_approximate="fast"), ValueError, "gelu_approximate must be one of ('none', 'tanh'), got 'fast'"),
])
def test_bad_config_exact_messages(kw, exc, msg):
    base = dict(vocab_size=V, block_size=16, n_layer=2, n_head=2, n_embd=16)
    with pytest.raises(exc, match=exact(msg)):
        GPTConfig(**(base | kw))


MODEL = small()


@pytest.mark.parametrize(("call", "exc", "msg"), [
    (lambda: GPT(dict(vocab_size=3)), TypeError, "config must be a GPTConfig, got dict"),
    (lambda: gpt_parameter_count(None), TypeError, "config must be a GPTConfig, got NoneType"),
    (lambda: MODEL([[1, 2]]), TypeError, "idx must be a torch.Tensor of token ids (B, T), got list"),
    (lambda: MODEL(torch.zeros(1, 3)), TypeError,
     "idx must be an integer tensor of token ids, got dtype torch.float32"),
    (lambda: MODEL(torch.zeros(3, dtype=torch.long)), ValueError, "idx must have shape (B, T) with B >= 1, got (3,)"),
    (lambda: MODEL(torch.zeros(0, 3, dtype=torch.long)), ValueError,
     "idx must have shape (B, T) with B >= 1, got (0, 3)"),
    (lambda: MODEL(torch.zeros(2, 0, dtype=torch.long)), ValueError,
     "idx must hold at least one token, got shape (2, 0)"),
    (lambda: MODEL(torch.tensor([[0, 23]])), ValueError, "idx must hold token ids in [0, 22], got values in [0, 23]"),
    (lambda: MODEL(torch.tensor([[-1, 2]])), ValueError, "idx must hold token ids in [0, 22], got values in [-1, 2]"),
    (lambda: MODEL(ids(1, 3), attention="flash"), ValueError, "attention must be one of ('sdpa', 'math'), got 'flash'"),
    (lambda: MODEL(ids(1, 3), ids(1, 4)), ValueError, "targets must have the shape of idx (1, 3), got (1, 4)"),
    (lambda: MODEL(ids(1, 3), ids(1, 3).float()), TypeError,
     "targets must be an integer tensor of token ids, got dtype torch.float32"),
    (lambda: MODEL(ids(1, 3), torch.tensor([[0, -2, 1]])), ValueError,
     "targets must hold token ids in [0, 22] or -1 (ignored), got values in [-2, 1]"),
    (lambda: MODEL(ids(1, 2), torch.tensor([[-1, -1]])), ValueError,
     "targets are all -1 (ignored): nothing to compute a loss on"),
    (lambda: MODEL.generate(torch.zeros(1, 0, dtype=torch.long), 5), ValueError,
     "idx must hold at least one token, got shape (1, 0)"),
    (lambda: MODEL.generate(ids(1, 3), -1), ValueError, "max_new_tokens must be >= 0, got -1"),
    (lambda: MODEL.generate(ids(1, 3), 2, temperature=-1.0), ValueError,
     "temperature must be finite and >= 0, got -1.0"),
    (lambda: MODEL.generate(ids(1, 3), 2, top_k=0), ValueError, "top_k must be >= 1, got 0"),
    (lambda: MODEL.generate(ids(1, 3), 2, top_p=1.5), ValueError, "top_p must be in (0, 1], got 1.5"),
    (lambda: MODEL.generate(ids(1, 3), 2, rng=1), TypeError, "rng must be a torch.Generator or None, got int"),
    (lambda: MODEL.generate(ids(1, 3), 2, use_cache="yes"), TypeError, "use_cache must be True or False, got 'yes'"),
    (lambda: MODEL.attention_maps(ids(1, 17)), ValueError,
     "idx has 17 tokens, more than block_size=16; pass at most the last 16"),
    (lambda: GPT.from_pretrained(2), TypeError, "name must be a str, got int"),
])
def test_bad_inputs_exact_messages(call, exc, msg):
    with pytest.raises(exc, match=exact(msg)):
        call()


# --------------------------------------------------------------------------- CUDA

@pytest.mark.cuda
def test_cuda_bf16_training_and_cached_generation():
    seed_everything(0)
    dev = torch.device("cuda")
    model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128)).to(dev)
    x = torch.randint(65, (8, 65), device=dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(20):   # memorise one batch under bf16 autocast
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits, loss = model(x[:, :-1], x[:, 1:])
        assert logits.dtype == torch.bfloat16
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0] - 0.5
    with torch.no_grad():
        assert torch.allclose(model(x[:, :-1])[0], model(x[:, :-1], attention="math")[0], atol=1e-4)
    # float32: the cache gives the full recompute's tokens, greedy and seeded, across block_size
    for kw in (dict(temperature=0.0), dict(top_k=10)):
        a, b = (model.generate(x[:2, :5], 80, use_cache=c, rng=torch.Generator(device=dev).manual_seed(0), **kw)
                for c in (True, False))
        assert a.device.type == "cuda" and a.shape == (2, 85) and torch.equal(a, b), kw
    with torch.autocast("cuda", dtype=torch.bfloat16):
        s = model.generate(x[:2, :5], 80, top_p=0.9, rng=torch.Generator().manual_seed(0))   # a CPU generator
    assert s.device.type == "cuda" and s.shape == (2, 85) and 0 <= int(s.min()) and int(s.max()) < 65


def test_non_causal_config_sees_the_future_on_both_paths_and_refuses_the_cache():
    torch.manual_seed(0)
    causal = GPT(GPTConfig(vocab_size=20, block_size=12, n_layer=2, n_head=2, n_embd=16))
    enc = GPT(GPTConfig(vocab_size=20, block_size=12, n_layer=2, n_head=2, n_embd=16, causal=False))
    enc.load_state_dict(causal.state_dict())
    idx = torch.randint(20, (2, 12), generator=torch.Generator().manual_seed(1))
    other = idx.clone()
    other[:, 8:] = (other[:, 8:] + 1) % 20
    with torch.no_grad():
        for attention in ("sdpa", "math"):
            a, b = enc(idx, attention=attention)[0], enc(other, attention=attention)[0]
            assert (a[:, :8] - b[:, :8]).abs().amax() > 1e-4                  # earlier positions see the change
            c, d = causal(idx, attention=attention)[0], causal(other, attention=attention)[0]
            assert torch.equal(c[:, :8], d[:, :8]) or (c[:, :8] - d[:, :8]).abs().amax() < 1e-6
        torch.testing.assert_close(enc(idx, attention="math")[0], enc(idx)[0], atol=1e-5, rtol=1e-5)
        maps = enc.attention_maps(idx)
    assert (maps.triu(1) > 0).any() and torch.allclose(maps.sum(-1), torch.ones_like(maps.sum(-1)))
    with pytest.raises(ValueError, match="^use_cache=True needs a causal model"):
        enc.generate(idx[:, :3], 2)
    assert enc.generate(idx[:, :3], 2, use_cache=False, temperature=0.0).shape == (2, 5)
    with pytest.raises(TypeError, match=r"^causal must be True or False, got 1$"):
        GPTConfig(vocab_size=20, block_size=12, causal=1)
