"""Speed of the course's GPT (aigc_course.gpt) against baselines measured in the same process.

    python benchmarks/lm_speed.py                     # all parts, 1 torch thread
    python benchmarks/lm_speed.py --parts a --rounds 9 --threads 2
    python benchmarks/lm_speed.py --quick             # tiny sizes, a few seconds: a smoke test

(a) Training ms/iteration at nanoGPT's published CPU config (``n_layer 4, n_head 4, n_embd 128, block_size 64,
    batch 12, dropout 0``, 65 characters): our ``GPT`` + AdamW step against :class:`RefGPT`, a plain
    nanoGPT-style model written below (same structure, same parameter count: asserted; it gets our initial
    weights, so both compute the same loss on the first batch: asserted). Both run the same bare loop (forward
    with targets, backward, clip to 1.0, AdamW as in nanoGPT's ``configure_optimizers``) on the same pre-drawn
    batches. Rounds alternate the order (AB, BA, ...), 3 timed steps per model per round after 5 untimed
    warm-up steps; the ratio ours / reference is computed per round and its median is the verdict
    (target ≤ 1.0; "within noise" when above 1 by less than half the interquartile range of the round ratios).
    A second table times ``aigc_course.lm.train_lm`` (on top of ``aigc_course.train.train``: checks, history,
    NaN guard, window drawing) against a bare loop doing the same optimisation with our GPT: the per-step
    overhead, with train_lm's setup (input checks, a new optimizer) spread over the round's 20 steps, and the
    part of it spent in train()'s NaN/inf check of every weight after each step, timed alone.
(b) KV cache vs full recompute: tokens/s of ``GPT.generate`` with ``use_cache=True`` / ``False``, 256 new
    tokens after a 16-token prompt, batch 1, temperature 1 with a seeded ``torch.Generator`` (the same seed for
    both: the outputs must be identical, asserted). ``block_size`` covers prompt + new tokens (320), since past
    block_size the window slides and the cache cannot help. Two sizes: the nanoGPT CPU model and a 6-layer,
    384-dimensional one (6 heads). Target ≥ 5×.
(c) Against Hugging Face ``GPT2LMHeadModel.generate`` on the same weights (skipped when transformers is
    absent): the HF model is built from a ``GPT2Config`` matching ours (``gelu_new`` ↔ ``gelu_approximate="tanh"``)
    and ours is loaded from it with ``GPT.from_hf``; greedy decoding with the cache in both, tokens asserted
    equal, tokens/s ratio ours / HF. Target ≥ 1×.

Every timing is wall-clock (``time.perf_counter``); rounds interleave the two sides, so load from other
processes on a shared machine hits both alike and the ratios stay meaningful even when the absolute times move.
The weights are random (speed does not depend on them); the token stream is seeded random characters.
With CUDA available, part (a) adds rows with bf16 autocast + ``torch.compile`` for both models.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from _args import int_at_least, parts_of
from torch import nn
from torch.nn import functional as F

from aigc_course.checkpoint import nonfinite_tensor
from aigc_course.device import configure_threads, seed_everything
from aigc_course.gpt import GPT, GPTConfig
from aigc_course.lm import LMConfig, next_token_batch, train_lm

VOCAB = 65                       # Tiny Shakespeare's characters
LR, BETAS, WEIGHT_DECAY, GRAD_CLIP = 1e-3, (0.9, 0.99), 0.1, 1.0   # nanoGPT's shakespeare_char recipe
PROMPT_LEN, NEW_TOKENS = 16, 256
TARGET_TRAIN, TARGET_CACHE, TARGET_HF = 1.0, 5.0, 1.0


@dataclass(frozen=True)
class Sizes:
    """What a run measures (FULL, or QUICK for the smoke test)."""

    train: dict                  # GPTConfig fields of part (a) (nanoGPT's CPU config in FULL)
    batch_size: int
    gen: tuple[tuple[str, dict], ...]   # (label, GPTConfig fields) of parts (b) and (c)
    new_tokens: int
    prompt_len: int
    steps: int                   # timed training steps per model per round
    warmup: int
    overhead_steps: int          # steps per train_lm call in the overhead table
    rounds: int


TRAIN_CFG = dict(vocab_size=VOCAB, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
FULL = Sizes(train=TRAIN_CFG, batch_size=12,
             gen=(("4 layers, 128 dims", dict(vocab_size=VOCAB, block_size=320, n_layer=4, n_head=4, n_embd=128)),
                  ("6 layers, 384 dims", dict(vocab_size=VOCAB, block_size=320, n_layer=6, n_head=6, n_embd=384))),
             new_tokens=NEW_TOKENS, prompt_len=PROMPT_LEN, steps=3, warmup=5, overhead_steps=20, rounds=30)
QUICK = Sizes(train=dict(vocab_size=VOCAB, block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0), batch_size=4,
              gen=(("2 layers, 32 dims", dict(vocab_size=VOCAB, block_size=48, n_layer=2, n_head=2, n_embd=32)),),
              new_tokens=32, prompt_len=8, steps=3, warmup=1, overhead_steps=4, rounds=3)


# --------------------------------------------------------------------------- the nanoGPT-style reference

@dataclass
class RefConfig:
    """nanoGPT's GPTConfig."""

    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True


class RefLayerNorm(nn.Module):
    """LayerNorm with an optional bias (nanoGPT's, from before torch had ``bias=False``)."""

    def __init__(self, ndim: int, bias: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class RefCausalSelfAttention(nn.Module):
    def __init__(self, config: RefConfig) -> None:
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0,
                                           is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class RefMLP(nn.Module):
    def __init__(self, config: RefConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class RefBlock(nn.Module):
    def __init__(self, config: RefConfig) -> None:
        super().__init__()
        self.ln_1 = RefLayerNorm(config.n_embd, bias=config.bias)
        self.attn = RefCausalSelfAttention(config)
        self.ln_2 = RefLayerNorm(config.n_embd, bias=config.bias)
        self.mlp = RefMLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class RefGPT(nn.Module):
    """nanoGPT's GPT (model.py) for training: forward(idx, targets) → (logits, loss); no generation."""

    def __init__(self, config: RefConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([RefBlock(config) for _ in range(config.n_layer)]),
            ln_f=RefLayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        b, t = idx.size()
        assert t <= self.config.block_size, f"Cannot forward sequence of length {t}, block size is only " \
                                            f"{self.config.block_size}"
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        else:
            logits, loss = self.lm_head(x[:, [-1], :]), None
        return logits, loss


def adamw(model: nn.Module) -> torch.optim.AdamW:
    """nanoGPT's configure_optimizers: weight decay on tensors with ≥ 2 dims only (fused off: CPU)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": WEIGHT_DECAY},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LR, betas=BETAS)


def build_pair(cfg: dict, seed: int = 0) -> tuple[GPT, RefGPT]:
    """Our GPT and the reference with the same sizes and the same (our) initial weights."""
    seed_everything(seed)
    ours = GPT(GPTConfig(**cfg))
    ref = RefGPT(RefConfig(**cfg))
    n_ours, n_ref = (sum(p.numel() for p in m.parameters()) for m in (ours, ref))
    assert n_ours == n_ref, f"parameter counts differ: ours {n_ours}, reference {n_ref}"
    ref.load_state_dict(ours.state_dict())
    return ours, ref


# --------------------------------------------------------------------------- timing helpers

def spread(values: Sequence[float]) -> dict[str, float]:
    """median, min, max and the quartiles (statistics.quantiles, 'inclusive') of a sample."""
    v = sorted(values)
    if len(v) == 1:
        q1 = q3 = v[0]
    else:
        q1, _, q3 = statistics.quantiles(v, n=4, method="inclusive")
    return {"median": statistics.median(v), "min": v[0], "max": v[-1], "q1": q1, "q3": q3}


def train_verdict(ratios: Sequence[float], target: float = TARGET_TRAIN) -> str:
    """'met' when the median ratio ours / reference ≤ target; 'met within noise' when it is above by less than
    half the interquartile range of the per-round ratios; else 'missed' with by how much."""
    s = spread(ratios)
    over = s["median"] - target
    noise = (s["q3"] - s["q1"]) / 2
    if over <= 0:
        return "met"
    if over <= noise:
        return f"met within noise (+{100 * over:.1f} % ≤ half IQR {100 * noise:.1f} %)"
    return f"missed: ours slower by {100 * over:.1f} % (half IQR {100 * noise:.1f} %)"


def speedup_verdict(ratio: float, target: float) -> str:
    return "met" if ratio >= target else f"missed: {ratio:.2f}× < {target:g}×"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved(sides: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Run each side once per round, the order reversed every other round (AB, BA, ...); each call returns a
    measurement; returns name → list of its measurements."""
    names = list(sides)
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in (names if r % 2 == 0 else names[::-1]):
            out[n].append(sides[n]())
    return out


# --------------------------------------------------------------------------- (a) training

def make_batches(n: int, block_size: int, batch_size: int, seed: int = 0,
                 device: torch.device | str = "cpu") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """n (x, y) batches of next-token windows from a seeded random character stream."""
    g = torch.Generator().manual_seed(seed)
    stream = torch.randint(VOCAB, (20_000,), generator=g)
    return [tuple(t.contiguous().to(device) for t in next_token_batch(stream, block_size, batch_size, rng=g))
            for _ in range(n)]   # contiguous, like nanoGPT's torch.stack


def bare_steps(model: nn.Module, opt: torch.optim.Optimizer, batches: list, steps: int, start: int = 0,
               ctx: Callable[[], object] | None = None) -> float:
    """nanoGPT's inner loop for ``steps`` steps on batches[start:]; returns the loss of the last one."""
    loss = torch.zeros(())
    for i in range(steps):
        x, y = batches[(start + i) % len(batches)]
        if ctx is None:
            _, loss = model(x, y)
        else:
            with ctx():
                _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def time_training(sizes: Sizes, rounds: int, device: torch.device, compiled: bool = False) -> dict:
    """Part (a): ms/step of ours and the reference, interleaved; per-round ratios."""
    ours, ref = build_pair(sizes.train)
    ours, ref = ours.to(device), ref.to(device)
    batches = make_batches(16, sizes.train["block_size"], sizes.batch_size, device=device)
    with torch.no_grad():   # same weights → same loss: the reference computes our function
        l_ours, l_ref = float(ours(*batches[0])[1]), float(ref(*batches[0])[1])
    assert math.isclose(l_ours, l_ref, rel_tol=1e-5 if device.type == "cpu" else 1e-3), (
        f"initial losses differ: ours {l_ours}, reference {l_ref}")
    ctx = None
    if compiled:
        ctx = lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)   # noqa: E731
    opts = {"ours": adamw(ours), "reference": adamw(ref)}
    runners = {"ours": torch.compile(ours) if compiled else ours, "reference": torch.compile(ref) if compiled else ref}
    position = {"ours": 0, "reference": 0}
    for name in runners:   # warm-up, untimed (and compilation)
        bare_steps(runners[name], opts[name], batches, sizes.warmup + (3 if compiled else 0), ctx=ctx)

    def side(name: str) -> Callable[[], float]:
        def run() -> float:
            _sync(device)
            t0 = time.perf_counter()
            bare_steps(runners[name], opts[name], batches, sizes.steps, position[name], ctx)
            _sync(device)
            position[name] += sizes.steps
            return 1e3 * (time.perf_counter() - t0) / sizes.steps
        return run

    ms = interleaved({"ours": side("ours"), "reference": side("reference")}, rounds)
    ratios = [a / b for a, b in zip(ms["ours"], ms["reference"], strict=True)]
    return {"ms": ms, "ratios": ratios, "params": sum(p.numel() for p in ours.parameters()),
            "ref_params": sum(p.numel() for p in ref.parameters()), "initial_loss": (l_ours, l_ref)}


def time_train_lm_overhead(sizes: Sizes, rounds: int) -> dict:
    """ms/step of train_lm vs a bare loop doing the same (windows drawn from the global RNG, logits →
    cross-entropy, backward, clip, AdamW with nanoGPT's groups, float(loss) every step like train's history)."""
    seed_everything(1)
    stream = torch.randint(VOCAB, (20_000,))
    base = GPT(GPTConfig(**sizes.train))
    bare_model, lm_model = copy.deepcopy(base), copy.deepcopy(base)
    T, B, K = sizes.train["block_size"], sizes.batch_size, sizes.overhead_steps
    config = LMConfig(steps=K, batch_size=B, block_size=T, lr=LR, weight_decay=WEIGHT_DECAY, betas=BETAS,
                      grad_clip=GRAD_CLIP, progress=False)

    def bare() -> float:
        t0 = time.perf_counter()
        opt = adamw(bare_model)   # train_lm builds its optimizer on every call too
        for _ in range(K):
            x, y = next_token_batch(stream, T, B)
            logits, _ = bare_model(x)
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(bare_model.parameters(), GRAD_CLIP)
            opt.step()
            float(loss.detach())
        return 1e3 * (time.perf_counter() - t0) / K

    def with_train_lm() -> float:
        t0 = time.perf_counter()
        train_lm(lm_model, stream, config)
        return 1e3 * (time.perf_counter() - t0) / K

    bare()
    with_train_lm()   # warm-up
    ms = interleaved({"train_lm": with_train_lm, "bare loop": bare}, rounds)
    diffs = [a - b for a, b in zip(ms["train_lm"], ms["bare loop"], strict=True)]
    # train() checks every weight for NaN/inf after each update: time that check alone
    n = 5 * K
    t0 = time.perf_counter()
    for _ in range(n):
        nonfinite_tensor({"lm": lm_model})
    return {"ms": ms, "diffs": diffs, "nonfinite_ms": 1e3 * (time.perf_counter() - t0) / n}


# --------------------------------------------------------------------------- (b) and (c) generation

def prompt_ids(length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(VOCAB, (1, length), generator=torch.Generator().manual_seed(seed))


def time_cache(cfg: dict, sizes: Sizes, rounds: int) -> dict:
    """Part (b): tokens/s of generate(use_cache=True / False), same weights and rng seed; outputs compared."""
    seed_everything(0)
    model = GPT(GPTConfig(**cfg)).eval()
    prompt = prompt_ids(sizes.prompt_len)
    outputs: dict[str, torch.Tensor] = {}

    def side(use_cache: bool) -> Callable[[], float]:
        def run() -> float:
            rng = torch.Generator().manual_seed(1234)
            t0 = time.perf_counter()
            out = model.generate(prompt, sizes.new_tokens, temperature=1.0, use_cache=use_cache, rng=rng)
            seconds = time.perf_counter() - t0
            key = "cache" if use_cache else "no cache"
            if key in outputs:
                assert torch.equal(outputs[key], out), f"{key}: generate is not repeatable with a seeded rng"
            outputs[key] = out
            return sizes.new_tokens / seconds
        return run

    model.generate(prompt, 4, use_cache=True)   # warm-up
    model.generate(prompt, 4, use_cache=False)
    tps = interleaved({"cache": side(True), "no cache": side(False)}, rounds)
    identical = torch.equal(outputs["cache"], outputs["no cache"])
    assert identical, "generate(use_cache=True) and use_cache=False gave different tokens with the same rng seed"
    ratios = [a / b for a, b in zip(tps["cache"], tps["no cache"], strict=True)]
    return {"tps": tps, "ratios": ratios, "identical": identical, "params": model.num_parameters(False),
            "tokens": outputs["cache"]}


def hf_available() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def time_hf(cfg: dict, sizes: Sizes, rounds: int) -> dict:
    """Part (c): greedy tokens/s of our generate vs HF generate on the same weights (cache on in both)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    seed_everything(0)
    hf_cfg = GPT2Config(vocab_size=cfg["vocab_size"], n_positions=cfg["block_size"], n_embd=cfg["n_embd"],
                        n_layer=cfg["n_layer"], n_head=cfg["n_head"], activation_function="gelu_new",
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=None,
                        pad_token_id=0)
    hf = GPT2LMHeadModel(hf_cfg).eval()
    ours = GPT.from_hf(hf).eval()
    assert ours.config.gelu_approximate == "tanh"
    prompt = prompt_ids(sizes.prompt_len)
    mask = torch.ones_like(prompt)
    outputs: dict[str, torch.Tensor] = {}

    def run_ours() -> torch.Tensor:
        return ours.generate(prompt, sizes.new_tokens, temperature=0.0, use_cache=True)

    @torch.no_grad()
    def run_hf() -> torch.Tensor:
        return hf.generate(prompt, attention_mask=mask, max_new_tokens=sizes.new_tokens,
                           min_new_tokens=sizes.new_tokens, do_sample=False, use_cache=True, pad_token_id=0)

    def side(name: str, fn: Callable[[], torch.Tensor]) -> Callable[[], float]:
        def run() -> float:
            t0 = time.perf_counter()
            out = fn()
            seconds = time.perf_counter() - t0
            outputs[name] = out
            return (out.shape[1] - prompt.shape[1]) / seconds
        return run

    run_ours()
    run_hf()   # warm-up
    tps = interleaved({"ours": side("ours", run_ours), "HF": side("HF", run_hf)}, rounds)
    assert outputs["HF"].shape == outputs["ours"].shape, (
        f"HF generated {outputs['HF'].shape[1] - prompt.shape[1]} tokens, ours {sizes.new_tokens}")
    equal = torch.equal(outputs["ours"], outputs["HF"])
    assert equal, "greedy tokens differ between our generate and HF generate on the same weights"
    ratios = [a / b for a, b in zip(tps["ours"], tps["HF"], strict=True)]
    return {"tps": tps, "ratios": ratios, "equal": equal, "attn_implementation": getattr(
        hf.config, "_attn_implementation", "?")}


# --------------------------------------------------------------------------- tables

def fmt_spread(values: Sequence[float], digits: int = 2) -> str:
    s = spread(values)
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}–{s['max']:.{digits}f})"


def table_a(res: dict, label: str = "") -> list[str]:
    r = spread(res["ratios"])
    lines = [f"| model{label} | parameters | ms/iter median (min–max) | × reference |", "|---|---|---|---|"]
    lines.append(f"| reference (nanoGPT-style) | {res['ref_params']:,} | {fmt_spread(res['ms']['reference'])} "
                 f"| 1.00 |")
    lines.append(f"| ours (aigc_course.gpt.GPT) | {res['params']:,} | {fmt_spread(res['ms']['ours'])} "
                 f"| {r['median']:.3f} |")
    lines.append(f"ratio ours / reference per round: median {r['median']:.3f}, quartiles {r['q1']:.3f}–{r['q3']:.3f}, "
                 f"min–max {r['min']:.3f}–{r['max']:.3f} ({len(res['ratios'])} rounds)")
    lines.append(f"target (ours / reference ≤ {TARGET_TRAIN:g}): {train_verdict(res['ratios'])}")
    return lines


def table_overhead(res: dict) -> list[str]:
    d = spread(res["diffs"])
    base = statistics.median(res["ms"]["bare loop"])
    return ["| loop | ms/iter median (min–max) |", "|---|---|",
            f"| bare loop (our GPT) | {fmt_spread(res['ms']['bare loop'])} |",
            f"| aigc_course.lm.train_lm | {fmt_spread(res['ms']['train_lm'])} |",
            f"train_lm − bare loop per step: median {d['median']:+.2f} ms ({100 * d['median'] / base:+.1f} %), "
            f"min–max {d['min']:+.2f}–{d['max']:+.2f} ms ({len(res['diffs'])} rounds)",
            f"of which the NaN/inf check of every weight after each step (aigc_course.checkpoint.nonfinite_tensor, "
            f"called by train): {res['nonfinite_ms']:.2f} ms"]


def table_b(results: list[tuple[str, dict]]) -> list[str]:
    lines = ["| model | parameters | tokens/s, cache | tokens/s, no cache | × no cache (min–max) | identical "
             "| target ≥ 5× |", "|---|---|---|---|---|---|---|"]
    for label, res in results:
        r = spread(res["ratios"])
        lines.append(f"| {label} | {res['params']:,} | {fmt_spread(res['tps']['cache'], 0)} "
                     f"| {fmt_spread(res['tps']['no cache'], 0)} | {r['median']:.2f} ({r['min']:.2f}–{r['max']:.2f}) "
                     f"| {'yes' if res['identical'] else 'NO'} | {speedup_verdict(r['median'], TARGET_CACHE)} |")
    return lines


def table_c(results: list[tuple[str, dict]]) -> list[str]:
    lines = ["| model | tokens/s, ours | tokens/s, HF generate | ours / HF (min–max) | tokens equal | target ≥ 1× |",
             "|---|---|---|---|---|---|"]
    for label, res in results:
        r = spread(res["ratios"])
        lines.append(f"| {label} | {fmt_spread(res['tps']['ours'], 0)} | {fmt_spread(res['tps']['HF'], 0)} "
                     f"| {r['median']:.2f} ({r['min']:.2f}–{r['max']:.2f}) | {'yes' if res['equal'] else 'NO'} "
                     f"| {speedup_verdict(r['median'], TARGET_HF)} |")
    return lines


# --------------------------------------------------------------------------- main

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds (smoke test)")
    ap.add_argument("--threads", type=int_at_least("--threads"), default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--rounds", type=int_at_least("--rounds"), default=None,
                    help="interleaved rounds per comparison (default 30; 3 with --quick); the larger model "
                         "of (b) and (c) runs a tenth as many, at least 3")
    ap.add_argument("--parts", type=parts_of("abc"), default="abc", help="which parts to run (default abc)")
    return ap.parse_args(argv)


def _rounds_for(i: int, rounds: int) -> int:
    """Rounds for the i-th generation model: all for the first, a tenth (at least 3) for the larger ones."""
    return rounds if i == 0 else min(rounds, max(3, rounds // 10))


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rounds = args.rounds or sizes.rounds
    threads = configure_threads(args.threads)
    results: dict = {"threads": threads, "torch": torch.__version__}
    print(f"torch {torch.__version__}, {threads} torch thread(s), CPU"
          f"{' (+ CUDA rows)' if torch.cuda.is_available() else ''}; {'quick' if args.quick else 'full'} mode, "
          f"{rounds} interleaved rounds")
    cpu = torch.device("cpu")

    if "a" in args.parts:
        cfg = sizes.train
        which = "a tiny config (quick)" if args.quick else "nanoGPT's CPU config"
        print(f"\n(a) training, {which}: n_layer {cfg['n_layer']}, n_head {cfg['n_head']}, n_embd "
              f"{cfg['n_embd']}, block_size {cfg['block_size']}, batch {sizes.batch_size}, dropout 0, vocab "
              f"{cfg['vocab_size']}; AdamW lr {LR:g} betas {BETAS} wd {WEIGHT_DECAY:g}, clip {GRAD_CLIP:g}; "
              f"{sizes.steps} timed steps per model per round after {sizes.warmup} warm-up steps")
        res = time_training(sizes, rounds, cpu)
        results["a"] = res
        print("\n".join(table_a(res)))
        if torch.cuda.is_available():
            cuda = time_training(sizes, rounds, torch.device("cuda"), compiled=True)
            results["a_cuda"] = cuda
            print("\n".join(table_a(cuda, ", CUDA bf16 autocast + torch.compile")))
        print(f"\ntrain_lm overhead: {sizes.overhead_steps} steps per call (train_lm's setup included)")
        over = time_train_lm_overhead(sizes, rounds)
        results["overhead"] = over
        print("\n".join(table_overhead(over)))

    if "b" in args.parts:
        print(f"\n(b) KV cache: GPT.generate, {sizes.new_tokens} new tokens after a {sizes.prompt_len}-token prompt, "
              f"batch 1, temperature 1, same seeded rng; tokens/s median (min–max)")
        cache_results = [(f"{label}, block {cfg['block_size']}", time_cache(cfg, sizes, _rounds_for(i, rounds)))
                         for i, (label, cfg) in enumerate(sizes.gen)]
        results["b"] = cache_results
        print("\n".join(table_b(cache_results)))

    if "c" in args.parts:
        if not hf_available():
            print("\n(c) skipped: transformers is not installed (pip install 'aigc-course[hf]')")
            results["c"] = None
        else:
            import transformers

            print(f"\n(c) against Hugging Face transformers {transformers.__version__} GPT2LMHeadModel.generate, "
                  f"same weights (GPT.from_hf), greedy, cache on, {sizes.new_tokens} new tokens, batch 1; "
                  f"tokens/s median (min–max)")
            hf_results = [(f"{label}, block {cfg['block_size']}", time_hf(cfg, sizes, _rounds_for(i, rounds)))
                          for i, (label, cfg) in enumerate(sizes.gen)]
            results["c"] = hf_results
            print(f"HF attention implementation: {hf_results[0][1]['attn_implementation']}")
            print("\n".join(table_c(hf_results)))
    sys.stdout.flush()
    return results


if __name__ == "__main__":
    main()
