"""Pinning tests for aigc_course.gpt and aigc_course.sampling (from mutation testing): reading a Hugging Face
GPT-2 config (activation variants, n_inner, layer_norm_epsilon and the attention flags, missing attributes,
exact refusal messages), from_hf / from_pretrained plumbing (no .config, a wrong config type, the default
checkpoint name, with transformers' from_pretrained replaced by a tiny local model), exact state-dict key
errors, the attention paths (no maps on the fused path, the "math" path really used, dropout only in training
on both fused branches, several new tokens at once against a KV cache), a 1-layer cached generation, target and
idx validation (bool tensors, an id equal to V), the init mean of the residual projections, and the sampling
fast path (default temperature, per-row max shift, temperature + filters) against a hand computation."""

import re
import types

import pytest
import torch
from torch import nn

from aigc_course import gpt as gpt_module
from aigc_course.gpt import GPT, CausalSelfAttention, GPTConfig, gpt_parameter_count
from aigc_course.sampling import sample_next_token, top_k_filter, top_p_filter

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


# --------------------------------------------------------------------------- reading a GPT-2 config

def _hf_config(**kw):
    transformers = pytest.importorskip("transformers")
    base = dict(n_layer=1, n_head=2, n_embd=32, vocab_size=50, n_positions=24, activation_function="gelu_new")
    return transformers.GPT2Config(**(base | kw))


@pytest.mark.parametrize(("act", "gelu"), [("gelu_new", "tanh"), ("gelu_pytorch_tanh", "tanh"), ("gelu", "none")])
def test_config_from_hf_reads_every_field_and_the_activation(act, gelu):
    cfg = gpt_module._config_from_hf(_hf_config(activation_function=act, n_layer=3, n_inner=128, n_ctx=7,
                                                resid_pdrop=0.3, embd_pdrop=0.2, attn_pdrop=0.1))
    # n_positions (not n_ctx) is the context window; HF's dropouts are not carried over
    assert cfg == GPTConfig(vocab_size=50, block_size=24, n_layer=3, n_head=2, n_embd=32, dropout=0.0, bias=True,
                            gelu_approximate=gelu)


def test_config_from_hf_accepts_a_plain_object_without_the_optional_fields():
    hf = types.SimpleNamespace(vocab_size=11, n_positions=9, n_layer=2, n_head=4, n_embd=8, activation_function="gelu")
    assert gpt_module._config_from_hf(hf) == GPTConfig(11, 9, 2, 4, 8)
    del hf.activation_function
    with pytest.raises(ValueError, match=exact("activation_function None is not supported (gelu_new, "
                                               "gelu_pytorch_tanh, gelu)")):
        gpt_module._config_from_hf(hf)


@pytest.mark.parametrize(("kw", "msg"), [
    (dict(n_inner=160), "GPT-2 config n_inner=160 is not supported (expected 128)"),
    (dict(n_inner=8), "GPT-2 config n_inner=8 is not supported (expected 128)"),
    (dict(layer_norm_epsilon=1e-6), "GPT-2 config layer_norm_epsilon=1e-06 is not supported (expected 1e-05)"),
    (dict(scale_attn_weights=False), "GPT-2 config scale_attn_weights=False is not supported (expected True)"),
    (dict(scale_attn_by_inverse_layer_idx=True),
     "GPT-2 config scale_attn_by_inverse_layer_idx=True is not supported (expected False)"),
    (dict(reorder_and_upcast_attn=True), "GPT-2 config reorder_and_upcast_attn=True is not supported (expected False)"),
])
def test_config_from_hf_refuses_unsupported_variants_exactly(kw, msg):
    hc = _hf_config(**kw)
    with pytest.raises(ValueError, match=exact(msg)):
        gpt_module._config_from_hf(hc)
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=exact(msg)):
        GPT.from_hf(transformers.GPT2LMHeadModel(hc))


# --------------------------------------------------------------------------- from_hf / from_pretrained plumbing

def test_from_hf_refuses_a_module_without_config_and_a_wrong_config_type():
    with pytest.raises(TypeError, match=exact("model_or_state_dict has no .config; pass config=GPTConfig(...)")):
        GPT.from_hf(nn.Linear(2, 2))
    with pytest.raises(TypeError, match=exact("config must be a GPTConfig or None, got str")):
        GPT.from_hf(small().state_dict(), "gpt2")
    with pytest.raises(TypeError, match=exact("config must be a GPTConfig or None, got dict")):
        GPT.from_hf(nn.Linear(2, 2), dict(vocab_size=3))
    with pytest.raises(TypeError, match=exact("config must be a GPTConfig, got str")):
        gpt_parameter_count("gpt2")


def test_state_dict_key_errors_list_the_first_five_sorted_keys():
    sd2 = small(n_layer=2).state_dict()
    cfg1, cfg3 = GPTConfig(V, 16, 1, 2, 16), GPTConfig(V, 16, 3, 2, 16)
    h2 = [f"'transformer.h.2.{k}'" for k in ("attn.c_attn.bias", "attn.c_attn.weight", "attn.c_proj.bias",
                                             "attn.c_proj.weight", "ln_1.bias")]
    with pytest.raises(ValueError, match=exact(f"the state dict does not fit {cfg3}: missing [{', '.join(h2)}], "
                                               "unexpected []")):
        GPT.from_hf(sd2, cfg3)
    h1 = [k.replace(".h.2.", ".h.1.") for k in h2]
    with pytest.raises(ValueError, match=exact(f"the state dict does not fit {cfg1}: missing [], "
                                               f"unexpected [{', '.join(h1)}]")):
        GPT.from_hf(sd2, cfg1)


def test_from_pretrained_loads_the_default_name_through_from_hf(monkeypatch):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    tiny = transformers.GPT2LMHeadModel(_hf_config()).eval()
    names = []

    def fake(name, *a, **k):
        names.append(name)
        return tiny

    monkeypatch.setattr(transformers.GPT2LMHeadModel, "from_pretrained", fake)
    ours = GPT.from_pretrained()
    assert names == ["gpt2"]
    assert ours.config == GPTConfig(50, 24, 1, 2, 32, gelu_approximate="tanh")
    x = ids(2, 6, vocab=50)
    with torch.no_grad():
        assert torch.allclose(ours(x)[0], tiny(x).logits, atol=1e-5, rtol=0)
    GPT.from_pretrained("gpt2-medium")
    assert names == ["gpt2", "gpt2-medium"]


# --------------------------------------------------------------------------- attention paths

def _attn(dropout: float = 0.0) -> CausalSelfAttention:
    torch.manual_seed(0)
    attn = CausalSelfAttention(GPTConfig(V, 16, 1, 2, 16, dropout=dropout))
    attn.resid_dropout = nn.Identity()   # leave only the attention dropout
    return attn


def test_fused_path_returns_no_maps_and_the_math_path_is_really_used(monkeypatch):
    attn = _attn()
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(1))
    y, att, (k, v) = attn(x)
    assert att is None and k.shape == v.shape == (2, 2, 5, 8)
    model = small()
    _, maps, _ = model._run(ids(1, 4))
    assert maps == [None, None]
    ref = model(ids(2, 6))[0]

    def boom(*a, **k):
        raise AssertionError("the fused kernel was called on the math path")

    monkeypatch.setattr(gpt_module.F, "scaled_dot_product_attention", boom)
    assert torch.allclose(model(ids(2, 6), attention="math")[0], ref, atol=1e-5, rtol=0)
    assert torch.allclose(model(ids(2, 6), ids(2, 6, seed=2), attention="math")[0], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("past_len", [0, 3])
def test_attention_dropout_only_in_training_on_both_fused_branches(past_len):
    attn = _attn(dropout=0.5)
    g = torch.Generator().manual_seed(2)
    x, old = torch.randn(1, 4, 16, generator=g), torch.randn(1, past_len, 16, generator=g)
    past = None if past_len == 0 else attn.eval()(old)[2]
    attn.eval()
    torch.manual_seed(3)
    y_eval, _, _ = attn(x, past)
    torch.manual_seed(4)
    assert torch.equal(attn(x, past)[0], y_eval)                                      # no dropout in eval mode
    assert torch.allclose(attn(x, past, "math")[0], y_eval, atol=1e-6, rtol=0)
    attn.train()
    torch.manual_seed(3)
    y_train, _, _ = attn(x, past)
    assert (y_train - y_eval).abs().amax() > 1e-3                                    # dropout in training


@pytest.mark.parametrize("new", [2, 3])
def test_several_new_tokens_at_once_against_the_cache_equal_a_full_pass(new):
    model = small(seed=4).eval()
    x = ids(2, 7 + new, seed=5)
    full, _, _ = model._run(x)
    _, _, cache = model._run(x[:, :7])
    part, _, _ = model._run(x[:, 7:], cache)
    assert part.shape == (2, new, V)
    assert torch.allclose(part, full[:, 7:], atol=1e-5, rtol=0)
    part_math, _, _ = model._run(x[:, 7:], cache, attention="math")
    assert torch.allclose(part_math, full[:, 7:], atol=1e-5, rtol=0)


def test_one_layer_model_generates_with_the_cache():
    model = small(seed=6, n_layer=1)
    prompt = ids(2, 3)
    a = model.generate(prompt, 5, temperature=0.0)
    b = model.generate(prompt, 5, temperature=0.0, use_cache=False)
    assert a.shape == (2, 8) and torch.equal(a, b)


def test_residual_projections_start_centred():
    model = small(n_layer=4, n_embd=64, n_head=4)
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            assert abs(p.mean().item()) < 0.002, name


# --------------------------------------------------------------------------- idx and targets

MODEL = small()


@pytest.mark.parametrize(("call", "exc", "msg"), [
    (lambda: MODEL(torch.ones(1, 3, dtype=torch.bool)), TypeError,
     "idx must be an integer tensor of token ids, got dtype torch.bool"),
    (lambda: MODEL(ids(1, 3), [[0, 1, 2]]), TypeError, "targets must be a torch.Tensor of token ids or None, got list"),
    (lambda: MODEL(ids(1, 3), torch.ones(1, 3, dtype=torch.bool)), TypeError,
     "targets must be an integer tensor of token ids, got dtype torch.bool"),
    (lambda: MODEL(ids(1, 3), torch.tensor([[0, V, 1]])), ValueError,
     f"targets must hold token ids in [0, {V - 1}] or -1 (ignored), got values in [0, {V}]"),
    (lambda: sample_next_token(torch.zeros(1, 3), temperature="0.5"), TypeError,
     "temperature must be a float >= 0, got str"),
])
def test_bad_inputs_exact_messages(call, exc, msg):
    with pytest.raises(exc, match=exact(msg)):
        call()


def test_targets_equal_to_the_last_id_are_accepted():
    _, loss = MODEL(ids(1, 3), torch.tensor([[V - 1, -1, 0]]))
    assert torch.isfinite(loss)


# --------------------------------------------------------------------------- sampling fast path

def _draw(probs: torch.Tensor, seed: int) -> torch.Tensor:
    return torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(seed)).squeeze(-1)


def test_default_temperature_is_one_by_hand():
    logits = torch.tensor([[2.0, 0.5, -1.0, 1.0, 0.0]]).repeat(300, 1)
    got = sample_next_token(logits, rng=torch.Generator().manual_seed(7))
    ref = _draw((logits - 2.0).softmax(dim=-1), 7)
    assert torch.equal(got, ref)
    assert not torch.equal(got, _draw(((logits - 2.0) / 2.0).softmax(dim=-1), 7))


def test_temperature_and_filters_by_hand():
    logits = torch.randn(50, 12, generator=torch.Generator().manual_seed(8)) * 3
    t = 0.7
    z = (logits - logits.amax(dim=-1, keepdim=True)) / t
    probs = top_p_filter(top_k_filter(z, 6), 0.8).softmax(dim=-1)
    got = sample_next_token(logits, temperature=t, top_k=6, top_p=0.8, rng=torch.Generator().manual_seed(9))
    assert torch.equal(got, _draw(probs, 9))


def test_each_row_is_shifted_by_its_own_max():
    # with a tiny temperature, shifting row 1 by row 0's max would send all of row 1 to -inf
    logits = torch.tensor([[0.0, 1.0], [-2e9, -1e9]])
    for seed in range(3):
        got = sample_next_token(logits, temperature=1e-30, rng=torch.Generator().manual_seed(seed))
        assert got.tolist() == [1, 1]


@pytest.mark.parametrize("attention", ["sdpa", "math"])
def test_the_cache_mask_is_built_on_the_inputs_device(attention):
    # the "meta" device stands in for a GPU: a mask left on the CPU is refused next to meta queries
    assert gpt_module._causal_mask(2, 5, torch.device("meta")).device.type == "meta"
    attn = CausalSelfAttention(GPTConfig(V, 16, 1, 2, 16)).to("meta").eval()
    past = (torch.empty(1, 2, 3, 8, device="meta"), torch.empty(1, 2, 3, 8, device="meta"))
    y, att, (k, v) = attn(torch.empty(1, 2, 16, device="meta"), past, attention)
    assert y.device.type == "meta" and y.shape == (1, 2, 16) and k.shape == (1, 2, 5, 8)
    assert (att is None) == (attention == "sdpa")
