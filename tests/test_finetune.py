"""Tests for aigc_course.finetune: freezing by name pattern on a small GPT (tied weights matched under either
name, counted once), parameter counts and the report table by hand, parameter groups checked against a real
optimizer step (per-group lr, decay only on >= 2-D tensors, first pattern wins, every parameter once); LoRA:
output unchanged at init (B = 0), A's init range, gradients by hand and only into A/B, training changes the
output but leaves the base weights bit-identical, merge/unmerge (equal outputs, base restored, double merge
refused), trainable count r·(in + out) per layer, apply_lora on the GPT (names, freezing, tying kept, float64),
a LoRA fine-tune of a pre-trained tiny GPT with train_lm that lowers the loss, adapter save/load round trip,
remove_lora, a hypothesis property over shapes and ranks, bad inputs with exact messages, `peft` agreement
(skipped without peft) and a `cuda` bf16 test (skipped without a GPU)."""

import io
import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from aigc_course.data.text import CharVocab, docs_corpus
from aigc_course.device import seed_everything
from aigc_course.finetune import (
    LoRALinear,
    apply_lora,
    count_parameters,
    freeze,
    load_lora_state_dict,
    lora_layers,
    lora_state_dict,
    merge_lora,
    param_groups,
    remove_lora,
    trainable_parameters,
    trainable_report,
    unfreeze,
    unmerge_lora,
)
from aigc_course.gpt import GPT, GPTConfig
from aigc_course.lm import LMConfig, evaluate_loss, train_lm

torch.set_num_threads(1)
V, D, L = 13, 16, 2          # vocabulary, width, layers of the small GPT
N_GPT = V * D + 16 * D + L * (12 * D * D + 13 * D) + 2 * D   # = 7056: embeddings, blocks, ln_f (head tied)
LORA_TARGETS = ["*.c_attn", "*.mlp.c_proj"]


def exact(msg: str) -> str:
    return "^" + re.escape(msg) + "$"


def small_gpt(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(**(dict(vocab_size=V, block_size=16, n_layer=L, n_head=2, n_embd=D) | kw)))


def ids(B: int = 3, T: int = 10, seed: int = 1) -> torch.Tensor:
    return torch.randint(V, (B, T), generator=torch.Generator().manual_seed(seed))


def linear(i: int = 5, o: int = 7, seed: int = 0, **kw) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(i, o, **kw)


def randomize_b(layer: LoRALinear, seed: int = 3) -> None:
    with torch.no_grad():
        layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=torch.Generator().manual_seed(seed)))


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


# --------------------------------------------------------------------------- freezing and counting

def test_freeze_and_unfreeze_by_pattern_on_gpt():
    model = small_gpt()
    assert len(freeze(model)) == len(list(model.parameters()))
    assert trainable_parameters(model) == [] and count_parameters(model)["trainable"] == 0
    names = unfreeze(model, "transformer.h.1.*")
    parts = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
             "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
             "mlp.c_proj.weight", "mlp.c_proj.bias"]
    assert names == [f"transformer.h.1.{p}" for p in parts]
    assert [n for n, _ in trainable_parameters(model)] == names
    assert count_parameters(model)["trainable"] == 12 * D * D + 13 * D == 3280
    # several patterns, overlapping: each parameter once, in model order
    assert freeze(model, ["*.c_fc.*", "transformer.h.1.mlp.*"]) == [
        "transformer.h.0.mlp.c_fc.weight", "transformer.h.0.mlp.c_fc.bias", "transformer.h.1.mlp.c_fc.weight",
        "transformer.h.1.mlp.c_fc.bias", "transformer.h.1.mlp.c_proj.weight", "transformer.h.1.mlp.c_proj.bias"]
    assert count_parameters(model)["trainable"] == 3280 - (4 * D * D + 4 * D + 4 * D * D + D)


def test_tied_weight_matched_under_either_name_and_counted_once():
    model = small_gpt()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert freeze(model, "lm_head.weight") == ["transformer.wte.weight"]
    assert not model.transformer.wte.weight.requires_grad
    c = count_parameters(model)
    assert c == {"total": N_GPT, "trainable": N_GPT - V * D, "frozen": V * D, "fraction": (N_GPT - V * D) / N_GPT}
    assert unfreeze(model, ["lm_head.*", "transformer.wte.weight"]) == ["transformer.wte.weight"]
    assert count_parameters(model)["frozen"] == 0


def test_count_parameters_by_hand():
    model = small_gpt()
    assert N_GPT == 7056 and count_parameters(model) == {"total": 7056, "trainable": 7056, "frozen": 0,
                                                         "fraction": 1.0}
    freeze(model, ["transformer.wpe.*", "*.ln_*"])   # 16·16 position table; 5 LayerNorms × 2 × 16
    assert count_parameters(model) == {"total": 7056, "trainable": 7056 - 256 - 160, "frozen": 416,
                                       "fraction": 6640 / 7056}
    assert count_parameters(nn.Sequential()) == {"total": 0, "trainable": 0, "frozen": 0, "fraction": 0.0}


def test_trainable_report_table():
    model = small_gpt()
    freeze(model, "transformer.h.0.*")
    assert trainable_report(model) == "\n".join([
        "module              total     trainable       %",
        "transformer         7,056         3,776   53.51",
        "lm_head                 0             0       -",
        "-----------------------------------------------",
        "total               7,056         3,776   53.51",
        "tied (counted once): lm_head.weight is transformer.wte.weight"])
    rows = trainable_report(model, depth=3).splitlines()
    assert rows[3] == "transformer.h.0          3,280             0    0.00"
    assert rows[4] == "transformer.h.1          3,280         3,280  100.00"
    assert trainable_report(nn.Linear(2, 3)).splitlines()[1] == "(own parameters)             9             9  100.00"


def test_pattern_that_matches_nothing_names_it():
    model = small_gpt()
    msg = ("patterns: 'transformer.h.9.*' matches no parameter name; the names look like: transformer.wte.weight, "
           "lm_head.weight, transformer.wpe.weight, transformer.h.0.ln_1.weight, transformer.h.0.ln_1.bias, ... "
           "(29 in all)")
    with pytest.raises(ValueError, match=exact(msg)):
        freeze(model, ["*.c_fc.*", "transformer.h.9.*"])
    assert count_parameters(model)["frozen"] == 0, "an error must leave the model unchanged"
    with pytest.raises(ValueError, match="'Transformer.\\*' matches no parameter name"):
        unfreeze(model, "Transformer.*")   # case-sensitive


# --------------------------------------------------------------------------- parameter groups

def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))


def test_param_groups_against_an_sgd_step():
    model = mlp()
    groups = param_groups(model, {"2.*": 0.3, "*.weight": 0.01}, default_lr=0.5, weight_decay=0.2)
    assert [(g["name"], g["param_names"], g["lr"], g["weight_decay"]) for g in groups] == [
        ("2.* (decay)", ["2.weight"], 0.3, 0.2),          # first match wins over *.weight
        ("2.* (no_decay)", ["2.bias"], 0.3, 0.0),
        ("*.weight (decay)", ["0.weight"], 0.01, 0.2),
        ("*.weight (no_decay)", ["1.weight"], 0.01, 0.0),  # a LayerNorm gain is 1-D: no decay
        ("default (no_decay)", ["0.bias", "1.bias"], 0.5, 0.0)]
    before = snapshot(model)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    model(x).pow(2).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    torch.optim.SGD(groups).step()
    want = {"0.weight": (0.01, 0.2), "0.bias": (0.5, 0.0), "1.weight": (0.01, 0.0), "1.bias": (0.5, 0.0),
            "2.weight": (0.3, 0.2), "2.bias": (0.3, 0.0)}
    for n, p in model.named_parameters():
        lr, wd = want[n]
        assert torch.allclose(p.detach(), before[n] - lr * (grads[n] + wd * before[n]), atol=1e-7), n


def test_param_groups_on_gpt_leave_frozen_out_and_hold_each_parameter_once():
    model = small_gpt()
    freeze(model, "transformer.h.0.*")
    groups = param_groups(model, {"transformer.h.*": 1e-3}, default_lr=1e-4, weight_decay=0.1)
    names = [n for g in groups for n in g["param_names"]]
    assert sorted(names) == sorted(n for n, _ in trainable_parameters(model)) and len(set(names)) == len(names)
    assert not any(n.startswith("transformer.h.0.") for n in names)
    for g in groups:
        assert [p for p in g["params"]] == [dict(model.named_parameters())[n] for n in g["param_names"]]
        assert all((p.ndim >= 2) == (g["weight_decay"] == 0.1) for p in g["params"])
    opt = torch.optim.AdamW(groups)   # torch accepts the extra keys
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-3, 1e-4, 1e-4]
    assert param_groups(model, {}, default_lr=0.1)[0]["name"] == "default (decay)"


def test_param_groups_errors():
    model = mlp()
    with pytest.raises(ValueError, match=exact("no pattern in lrs matches the trainable parameters 0.bias, "
                                               "1.bias; add a pattern or pass default_lr")):
        param_groups(model, {"*.weight": 0.1, "2.bias": 0.2})
    with pytest.raises(ValueError, match=exact("lrs: '3.*' matches no parameter name; the names look like: "
                                               "0.weight, 0.bias, 1.weight, 1.bias, 2.weight, ... (6 in all)")):
        param_groups(model, {"3.*": 0.1}, default_lr=0.1)
    with pytest.raises(ValueError, match=exact("lrs['0.*'] must be a finite number >= 0, got -0.1")):
        param_groups(model, {"0.*": -0.1}, default_lr=0.1)
    with pytest.raises(TypeError, match=exact("default_lr must be a number, got str '0.1'")):
        param_groups(model, {}, default_lr="0.1")
    with pytest.raises(ValueError, match=exact("weight_decay must be a finite number >= 0, got nan")):
        param_groups(model, {}, default_lr=0.1, weight_decay=math.nan)
    with pytest.raises(TypeError, match=exact("lrs must be a mapping of name pattern to learning rate, got list")):
        param_groups(model, ["*"])
    freeze(model)
    with pytest.raises(ValueError, match=exact("model has no trainable parameters")):
        param_groups(model, {"*": 0.1})


# --------------------------------------------------------------------------- LoRALinear

def test_lora_output_unchanged_at_init_and_init_ranges():
    base = linear(40, 7)
    x = torch.randn(4, 3, 40)
    y = base(x)
    layer = LoRALinear(base, r=3, alpha=6.0)
    assert layer.lora_A.shape == (3, 40) and layer.lora_B.shape == (7, 3) and layer.scaling == 2.0
    assert torch.equal(layer.lora_B, torch.zeros(7, 3)) and torch.equal(layer(x), y)
    bound = 1 / math.sqrt(40)                       # Kaiming-uniform with a = √5, as nn.Linear
    assert layer.lora_A.abs().max() <= bound and layer.lora_A.abs().max() > 0.8 * bound
    assert layer.weight is base.weight and layer.bias is base.bias
    assert not base.weight.requires_grad and not base.bias.requires_grad
    assert repr(layer).startswith("LoRALinear(\n  in_features=40, out_features=7, r=3, alpha=6, merged=False")


def test_gradients_by_hand_and_only_into_a_and_b():
    layer = LoRALinear(linear(5, 7), r=2, alpha=3.0)
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(1))
    c = torch.randn(4, 7, generator=torch.Generator().manual_seed(2))
    (layer(x) * c).sum().backward()                  # dL/dy = c
    assert layer.weight.grad is None and layer.bias.grad is None
    assert torch.equal(layer.lora_A.grad, torch.zeros(2, 5)), "B = 0 at init, so no gradient reaches A yet"
    assert torch.allclose(layer.lora_B.grad, 1.5 * c.t() @ (x @ layer.lora_A.t()), atol=1e-6)
    randomize_b(layer)
    layer.lora_A.grad = layer.lora_B.grad = None
    (layer(x) * c).sum().backward()
    assert torch.allclose(layer.lora_A.grad, 1.5 * layer.lora_B.t() @ c.t() @ x, atol=1e-5)


def test_training_lora_changes_the_output_but_not_the_base_weights():
    layer = LoRALinear(linear(6, 4), r=2, alpha=2.0)
    w0, b0 = layer.weight.clone(), layer.bias.clone()
    x = torch.randn(32, 6, generator=torch.Generator().manual_seed(1))
    target = torch.randn(32, 4, generator=torch.Generator().manual_seed(2))
    y0 = layer(x).detach()
    opt = torch.optim.AdamW([p for p in layer.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    losses = []
    for _ in range(30):
        loss = (layer(x) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert torch.equal(layer.weight, w0) and torch.equal(layer.bias, b0)
    assert (layer(x) - y0).abs().max() > 1e-2 and losses[-1] < losses[0]


def test_merge_and_unmerge():
    layer = LoRALinear(linear(6, 9), r=3, alpha=5.0)
    randomize_b(layer)
    w0 = layer.weight.clone()
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    y = layer(x)
    delta = layer.delta_weight()
    assert torch.allclose(delta, 5.0 / 3 * layer.lora_B @ layer.lora_A) and torch.linalg.matrix_rank(delta) == 3
    assert not torch.allclose(y, nn.functional.linear(x, w0, layer.bias), atol=1e-3)
    layer.merge()
    assert layer.merged and torch.allclose(layer.weight, w0 + delta, atol=1e-6)
    assert torch.allclose(layer(x), y, atol=1e-5)
    with pytest.raises(RuntimeError, match=exact("this LoRALinear is already merged; unmerge() it first")):
        layer.merge()
    layer.unmerge()
    assert not layer.merged and torch.allclose(layer.weight, w0, atol=1e-6) and torch.allclose(layer(x), y, atol=1e-5)
    with pytest.raises(RuntimeError, match=exact("this LoRALinear is not merged; nothing to unmerge")):
        layer.unmerge()


def test_bf16_merge_rounds_once():
    layer = LoRALinear(linear(16, 24, dtype=torch.bfloat16), r=4, alpha=8.0)
    assert layer.lora_A.dtype == layer.lora_B.dtype == torch.bfloat16
    randomize_b(layer)
    w0 = layer.weight.clone()
    want = (w0.float() + 2.0 * layer.lora_B.float() @ layer.lora_A.float()).bfloat16()
    x = torch.randn(8, 16, dtype=torch.bfloat16)
    y = layer(x)
    layer.merge()
    assert torch.equal(layer.weight, want), "ΔW is added in float32, then rounded to bf16 once"
    assert (layer(x).float() - y.float()).abs().max() < 0.1


def test_dropout_acts_on_the_lora_branch_only():
    layer = LoRALinear(linear(6, 9), r=3, alpha=3.0, dropout=0.5)
    randomize_b(layer)
    x = torch.randn(8, 6)
    torch.manual_seed(0)
    train_out = layer(x)
    layer.eval()
    y = layer(x)
    assert not torch.allclose(train_out, y)
    layer.merge()
    assert torch.allclose(layer(x), y, atol=1e-5)   # merged == unmerged in eval mode


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 12), st.data(), st.integers(0, 2**16), st.floats(0.1, 64.0))
def test_property_merged_equals_unmerged(i, o, data, seed, alpha):
    r = data.draw(st.integers(1, min(i, o)))
    torch.manual_seed(seed)
    base = nn.Linear(i, o, bias=bool(seed % 2), dtype=torch.float64)
    w0 = base.weight.clone()
    layer = LoRALinear(base, r, alpha)
    randomize_b(layer, seed)
    x = torch.randn(3, i, dtype=torch.float64)
    y = layer(x)
    layer.merge()
    assert torch.allclose(layer(x), y, atol=1e-10)
    assert torch.linalg.matrix_rank(layer.delta_weight()) <= r
    layer.unmerge()
    assert torch.allclose(layer.weight, w0, atol=1e-12)


# --------------------------------------------------------------------------- apply_lora on the GPT

def test_apply_lora_on_gpt():
    model = small_gpt()
    x = ids()
    before = model(x)[0]
    names = apply_lora(model, LORA_TARGETS, r=2, alpha=4)
    assert names == ["transformer.h.0.attn.c_attn", "transformer.h.0.mlp.c_proj", "transformer.h.1.attn.c_attn",
                     "transformer.h.1.mlp.c_proj"]
    assert list(lora_layers(model)) == names and isinstance(model.transformer.h[1].mlp.c_proj, LoRALinear)
    assert isinstance(model.transformer.h[1].attn.c_proj, nn.Linear), "*.mlp.c_proj must not take attn.c_proj"
    assert torch.equal(model(x)[0], before)
    # only A and B train: r·(in + out) per layer, c_attn d → 3d, mlp.c_proj 4d → d
    per_block = 2 * (D + 3 * D) + 2 * (4 * D + D)
    assert count_parameters(model) == {"total": N_GPT + L * per_block, "trainable": L * per_block,
                                       "frozen": N_GPT, "fraction": L * per_block / (N_GPT + L * per_block)}
    assert all(n.rsplit(".", 1)[1] in ("lora_A", "lora_B") for n, _ in trainable_parameters(model))
    assert model.lm_head.weight is model.transformer.wte.weight   # tying kept
    # the base weights keep their state-dict names: a pre-trained checkpoint loads, only A/B missing
    missing, unexpected = model.load_state_dict(small_gpt(seed=1).state_dict(), strict=False)
    assert unexpected == [] and missing == [f"{n}.lora_{k}" for n in names for k in "AB"]
    assert torch.equal(model.transformer.h[0].attn.c_attn.weight, small_gpt(seed=1).transformer.h[0].attn.c_attn.weight)


def test_apply_lora_follows_the_models_dtype_and_validates_first():
    model = small_gpt().to(torch.float64)
    with pytest.raises(ValueError, match=exact("r must be <= min(in_features, out_features) = 16, got 17")):
        apply_lora(model, "*.c_fc", r=17, alpha=1)
    assert lora_layers(model) == {} and count_parameters(model)["frozen"] == 0, "nothing changed on error"
    apply_lora(model, "*.c_fc", r=4, alpha=1)
    layer = model.transformer.h[0].mlp.c_fc
    assert layer.lora_A.dtype == layer.lora_B.dtype == torch.float64 and layer.lora_A.shape == (4, D)
    assert model(ids())[0].dtype == torch.float64


def test_apply_lora_twice_keeps_the_first_adapters_trainable():
    model = small_gpt()
    apply_lora(model, "*.c_attn", r=2, alpha=2)
    apply_lora(model, "*.c_fc", r=1, alpha=2)
    assert count_parameters(model)["trainable"] == L * (2 * (D + 3 * D) + 1 * (D + 4 * D))
    with pytest.raises(ValueError, match=exact("targets: '*.c_attn' matches no nn.Linear module; it matches only "
                                               "layers already wrapped by LoRA: transformer.h.0.attn.c_attn, "
                                               "transformer.h.1.attn.c_attn")):
        apply_lora(model, "*.c_attn", r=2, alpha=2)


def test_lora_finetune_of_a_pretrained_gpt_lowers_the_loss():
    text = docs_corpus(20000)
    target = "a small target text that the adapter learns to continue. " * 40
    vocab = CharVocab.from_text(text + target)
    src, tgt = vocab.encode(text), vocab.encode(target)
    seed_everything(0)
    model = GPT(GPTConfig(vocab_size=len(vocab), block_size=32, n_layer=2, n_head=2, n_embd=32))
    train_lm(model, src, LMConfig(steps=150, batch_size=16, block_size=32, lr=3e-3, progress=False))
    pretrained = snapshot(model)
    before = evaluate_loss(model, tgt, 32)
    apply_lora(model, ["*.c_attn", "*.c_fc", "*.c_proj"], r=4, alpha=8)
    assert count_parameters(model)["trainable"] == 2 * 4 * ((32 + 96) + (32 + 32) + (32 + 128) + (128 + 32))
    train_lm(model, tgt, LMConfig(steps=80, batch_size=16, block_size=32, lr=1e-2, progress=False))
    after = evaluate_loss(model, tgt, 32)
    assert before > 2.0 and after < before - 0.7, (before, after)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in pretrained.items()), "the pre-trained weights must not move"
    # merged for inference: the same loss
    merge_lora(model)
    assert evaluate_loss(model, tgt, 32) == pytest.approx(after, abs=1e-4)


def test_adapter_state_dict_round_trip():
    model = small_gpt()
    apply_lora(model, LORA_TARGETS, r=2, alpha=4)
    for m in lora_layers(model).values():
        randomize_b(m)
    adapter = lora_state_dict(model)
    assert list(adapter) == [f"{n}.lora_{k}" for n in lora_layers(model) for k in "AB"]
    assert adapter["transformer.h.1.mlp.c_proj.lora_B"].shape == (D, 2)
    buf = io.BytesIO()
    torch.save(adapter, buf)
    with torch.no_grad():
        model.transformer.h[0].attn.c_attn.lora_A.zero_()
    assert not torch.equal(adapter["transformer.h.0.attn.c_attn.lora_A"], torch.zeros(2, D)), "copies, not views"
    fresh = small_gpt()                       # the same base weights, new random A, B = 0
    apply_lora(fresh, LORA_TARGETS, r=2, alpha=4)
    load_lora_state_dict(fresh, torch.load(io.BytesIO(buf.getvalue())))
    load_lora_state_dict(model, adapter)
    x = ids()
    assert torch.equal(fresh(x)[0], model(x)[0])
    with pytest.raises(ValueError, match=exact("state does not fit the model's LoRA layers: missing "
                                               "transformer.h.0.attn.c_attn.lora_A; unexpected none")):
        load_lora_state_dict(fresh, {k: v for k, v in adapter.items() if k != "transformer.h.0.attn.c_attn.lora_A"})
    bad = adapter | {"transformer.h.0.attn.c_attn.lora_A": torch.zeros(3, D)}
    with pytest.raises(ValueError, match=exact("state['transformer.h.0.attn.c_attn.lora_A'] must be a tensor of "
                                               "shape (2, 16), got (3, 16)")):
        load_lora_state_dict(fresh, bad)
    merge_lora(fresh)
    with pytest.raises(RuntimeError, match=exact("the model's LoRA layers are merged; unmerge_lora before "
                                                 "loading an adapter")):
        load_lora_state_dict(fresh, adapter)


def test_merge_lora_unmerge_lora_and_remove_lora():
    model = small_gpt()
    base = snapshot(model)
    x = ids()
    y_base = model(x)[0]
    apply_lora(model, LORA_TARGETS, r=2, alpha=4)
    for m in lora_layers(model).values():
        randomize_b(m)
    y = model(x)[0]
    assert (y - y_base).abs().max() > 0.1
    greedy = model.generate(x[:, :2], 30, temperature=0.0)   # the KV cache goes through the LoRA layers too
    assert merge_lora(model) == list(lora_layers(model))
    assert torch.allclose(model(x)[0], y, atol=1e-5)
    assert torch.equal(model.generate(x[:, :2], 30, temperature=0.0), greedy)
    with pytest.raises(RuntimeError, match=exact("LoRA layers already merged: transformer.h.0.attn.c_attn, "
                                                 "transformer.h.0.mlp.c_proj, transformer.h.1.attn.c_attn, "
                                                 "transformer.h.1.mlp.c_proj; unmerge_lora first")):
        merge_lora(model)
    unmerge_lora(model)
    assert all(torch.allclose(model.state_dict()[k], v, atol=1e-6) for k, v in base.items())
    with pytest.raises(RuntimeError, match="^LoRA layers not merged: .*; merge_lora first$"):
        unmerge_lora(model)
    kept = small_gpt()
    apply_lora(kept, LORA_TARGETS, r=2, alpha=4)
    load_lora_state_dict(kept, lora_state_dict(model))
    assert remove_lora(kept) == list(lora_layers(model))
    assert type(kept.transformer.h[0].attn.c_attn) is nn.Linear and lora_layers(kept) == {}
    assert set(kept.state_dict()) == set(base) and torch.allclose(kept(x)[0], y, atol=1e-5)
    remove_lora(model, merge=False)
    assert torch.allclose(model(x)[0], y_base, atol=1e-5)
    with pytest.raises(ValueError, match=exact("model has no LoRALinear layers; call apply_lora first")):
        merge_lora(model)


# --------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize(("call", "exc", "msg"), [
    (lambda: LoRALinear(nn.Conv1d(3, 3, 1), 1, 1), TypeError, "LoRALinear wraps an nn.Linear, got Conv1d"),
    (lambda: LoRALinear(linear(), 0, 1), ValueError, "r must be >= 1, got 0"),
    (lambda: LoRALinear(linear(), 2.0, 1), TypeError, "r must be an int, got float 2.0"),
    (lambda: LoRALinear(linear(), 6, 1), ValueError, "r must be <= min(in_features, out_features) = 5, got 6"),
    (lambda: LoRALinear(linear(), 1, 0), ValueError, "alpha must be a finite number > 0, got 0"),
    (lambda: LoRALinear(linear(), 1, True), TypeError, "alpha must be a number, got bool True"),
    (lambda: LoRALinear(linear(), 1, math.inf), ValueError, "alpha must be a finite number > 0, got inf"),
    (lambda: LoRALinear(linear(), 1, 1, dropout=1.0), ValueError, "dropout must be in [0, 1), got 1.0"),
    (lambda: LoRALinear(linear(), 1, 1, dropout="0.1"), TypeError, "dropout must be a number, got str '0.1'"),
    (lambda: apply_lora(small_gpt(), "lm_head", 1, 1), ValueError,
     "lm_head.weight is tied to transformer.wte.weight: merging LoRA into it would change both; leave lm_head "
     "out of targets"),
    (lambda: apply_lora(small_gpt(), ["*.c_fc", "*.attn"], 1, 1), ValueError,
     "targets: '*.attn' matches no nn.Linear module; the nn.Linear modules are named: transformer.h.0.attn.c_attn, "
     "transformer.h.0.attn.c_proj, transformer.h.0.mlp.c_fc, transformer.h.0.mlp.c_proj, "
     "transformer.h.1.attn.c_attn, ... (9 in all)"),
    (lambda: apply_lora(small_gpt(), [], 1, 1), ValueError, "targets must hold at least one pattern, got none"),
    (lambda: apply_lora(small_gpt(), 3, 1, 1), TypeError, "targets must be a string or a list of strings, got int"),
    (lambda: apply_lora(linear(), "*", 1, 1), ValueError,
     "targets: '*' matches no nn.Linear module; the nn.Linear modules are named: (none)"),
    (lambda: apply_lora("gpt", "*", 1, 1), TypeError, "model must be a torch.nn.Module, got str"),
    (lambda: freeze(small_gpt(), [""]), ValueError, "patterns must be non-empty strings, got ''"),
    (lambda: freeze(small_gpt(), ["*", None]), TypeError, "patterns must be non-empty strings, got None"),
    (lambda: unfreeze(nn.ReLU(), "*"), ValueError,
     "patterns: '*' matches no parameter name; the names look like: (the model has no parameters)"),
    (lambda: trainable_report(small_gpt(), depth=0), ValueError, "depth must be >= 1, got 0"),
    (lambda: count_parameters(None), TypeError, "model must be a torch.nn.Module, got NoneType"),
    (lambda: remove_lora(small_gpt(), merge="yes"), TypeError, "merge must be True or False, got 'yes'"),
    (lambda: lora_state_dict(small_gpt()), ValueError, "model has no LoRALinear layers; call apply_lora first"),
])
def test_bad_inputs(call, exc, msg):
    with pytest.raises(exc, match=exact(msg)):
        call()


# --------------------------------------------------------------------------- peft and cuda

def test_agrees_with_peft():
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))
    theirs = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))
    theirs.load_state_dict(ours.state_dict())
    apply_lora(ours, ["0", "2"], r=2, alpha=6)
    theirs = peft.get_peft_model(theirs, peft.LoraConfig(r=2, lora_alpha=6, target_modules=["0", "2"]))
    for m in lora_layers(ours).values():
        randomize_b(m)
    with torch.no_grad():
        for name, m in lora_layers(ours).items():
            layer = theirs.get_submodule(f"base_model.model.{name}")
            layer.lora_A["default"].weight.copy_(m.lora_A)
            layer.lora_B["default"].weight.copy_(m.lora_B)
    x = torch.randn(5, 6)
    assert torch.allclose(ours(x), theirs(x), atol=1e-6)
    assert count_parameters(ours)["trainable"] == sum(p.numel() for p in theirs.parameters() if p.requires_grad)


@pytest.mark.cuda
def test_cuda_bf16_model_gets_adapters_on_its_device():
    model = small_gpt().to("cuda", torch.bfloat16)
    apply_lora(model, LORA_TARGETS, r=2, alpha=4)
    for m in lora_layers(model).values():
        assert m.lora_A.device.type == m.lora_B.device.type == "cuda"
        assert m.lora_A.dtype == m.lora_B.dtype == torch.bfloat16
        randomize_b(m)
    x = ids().cuda()
    y = model(x)[0]
    merge_lora(model)
    assert y.dtype == torch.bfloat16 and (model(x)[0].float() - y.float()).abs().max() < 0.1
    unmerge_lora(model)
    model(x, ids(seed=2).cuda())[1].backward()
    assert all((p.grad is None) == ("lora" not in n) for n, p in model.named_parameters())
