"""A GPT (Radford et al. 2018, 2019): a decoder-only Transformer language model, written to be read.

GPT-2 is *not* "embedding → Transformer encoder → output layer": every self-attention layer is *causal*, so
position t sees only positions ≤ t and the model can be trained on all next-token predictions of a sequence
at once and then generate left to right. The layout follows nanoGPT (Karpathy) and GPT-2's parameter names:

    x = wte[idx] + wpe[0..T-1]                                  token + position embeddings (B, T, C)
    x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))                n_layer pre-LayerNorm blocks
    logits = ln_f(x) @ wteᵀ                                     the head shares the token embedding

    attn(x) = concat_h softmax(Q_h K_hᵀ / √d + M) V_h · W_O     M = 0 on and below the diagonal, −∞ above
    mlp(x)  = GELU(x W_fc) W_proj                               4·n_embd hidden units

Attention runs through ``F.scaled_dot_product_attention(is_causal=True)`` (fused kernels) or, with
``attention="math"``, the formula above written out, which can also return the attention maps
(:meth:`GPT.attention_maps`). Weights start at N(0, 0.02), the residual projections ``c_proj`` at
N(0, 0.02/√(2·n_layer)) so the residual stream's variance does not grow with depth.

:meth:`GPT.generate` has a key/value cache: each layer keeps the keys and values of the tokens seen so far,
so each new token costs one query row instead of a full forward pass. :meth:`GPT.from_hf` loads Hugging
Face GPT-2 weights (``GPT2LMHeadModel`` or its state dict); GPT-2 uses the tanh approximation of GELU
(``GPTConfig(gelu_approximate="tanh")``).

>>> model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128))
>>> logits, loss = model(idx, targets)                 # (B, T) → (B, T, V), mean cross-entropy
>>> out = model.generate(prompt, 200, temperature=0.8, top_k=20, rng=g)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .sampling import _sample, check_sampling_args
from .train import eval_mode
from .validation import int_at_least as _int_at_least

__all__ = ["GPTConfig", "CausalSelfAttention", "MLP", "Block", "GPT", "gpt_parameter_count"]

_ATTENTION = ("sdpa", "math")
_GELU = ("none", "tanh")
KV = tuple[torch.Tensor, torch.Tensor]   # one layer's cached keys and values, each (B, n_head, T, head_size)


@dataclass
class GPTConfig:
    """Sizes of a :class:`GPT` (nanoGPT's field names). The defaults after ``block_size`` are nanoGPT's
    CPU recipe (4 layers, 4 heads, 128 dimensions).

    vocab_size: number of token ids V; block_size: the longest sequence (context window);
    n_layer / n_head / n_embd: depth, heads per layer, width C (a multiple of n_head);
    dropout in [0, 1); bias: biases in the linear layers and LayerNorms;
    gelu_approximate: ``"none"`` (exact GELU) or ``"tanh"`` (GPT-2's ``gelu_new``);
    causal: True for a GPT. False removes the mask — every position sees the whole sequence, an *encoder*
    (BERT-style) layer — which lessons use to show why a generator must be causal; it cannot use a KV cache.
    """

    vocab_size: int
    block_size: int
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True
    gelu_approximate: str = "none"
    causal: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            _int_at_least(name, getattr(self, name), 1)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd must be a multiple of n_head, got n_embd={self.n_embd}, n_head={self.n_head}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, numbers.Real):
            raise TypeError(f"dropout must be a float in [0, 1), got {type(self.dropout).__name__}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        for name in ("bias", "causal"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.gelu_approximate not in _GELU:
            raise ValueError(f"gelu_approximate must be one of {_GELU}, got {self.gelu_approximate!r}")


def gpt_parameter_count(config: GPTConfig, non_embedding: bool = False) -> int:
    """Parameters of ``GPT(config)`` in closed form, with d = n_embd, L = n_layer:

        V·d + block_size·d  +  L·(12d² + 13d)  +  2d          (with biases)
        V·d + block_size·d  +  L·(12d² + 2d)   +  d           (bias=False: LayerNorm weights only)

    per block: Q, K, V and output projections 4d² (+ 4d biases), MLP 8d² (+ 5d), two LayerNorms 4d (2d);
    the head is tied to the token embedding and adds nothing. ``non_embedding`` leaves out the position
    embedding (nanoGPT's convention; the token embedding is counted as the head).
    """
    if not isinstance(config, GPTConfig):
        raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
    d, n_layer = config.n_embd, config.n_layer
    per_block = 12 * d * d + (13 * d if config.bias else 2 * d)
    total = config.vocab_size * d + config.block_size * d + n_layer * per_block + (2 * d if config.bias else d)
    return total - config.block_size * d if non_embedding else total


# --------------------------------------------------------------------------- the blocks

def _causal_mask(T: int, S: int, device: torch.device) -> torch.Tensor:
    """(T, S) bool, True where query i (at position S - T + i, the last T of S) may see key j: j <= S - T + i."""
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(S - T)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention. forward(x (B, T, C), past=None, attention="sdpa") →
    (y (B, T, C), attention maps (B, n_head, T, S) or None, (keys, values) each (B, n_head, S, C/n_head)),
    where S = T + the length of ``past``, the cached keys and values of earlier tokens."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.causal = config.causal
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)   # Q, K, V in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, past: KV | None = None,
                attention: str = "sdpa") -> tuple[torch.Tensor, torch.Tensor | None, KV]:
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2))
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        S = k.shape[2]
        att = None
        if attention == "math":
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
            if self.causal:
                att = att.masked_fill(~_causal_mask(T, S, x.device), -math.inf)
            att = att.softmax(dim=-1)
            y = self.attn_dropout(att) @ v
        else:
            p = self.dropout if self.training else 0.0
            if not self.causal:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
            elif S == T:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
            else:   # is_causal aligns the mask top-left; with a cache the queries are the *last* T positions
                mask = None if T == 1 else _causal_mask(T, S, x.device)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y)), att, (k, v)


class MLP(nn.Module):
    """Position-wise feed-forward: (B, T, C) → Linear(C, 4C) → GELU → Linear(4C, C) → dropout → (B, T, C)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate=config.gelu_approximate)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: x + attn(ln_1(x)), then + mlp(ln_2(·)). Same signature as
    :class:`CausalSelfAttention`."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, past: KV | None = None,
                attention: str = "sdpa") -> tuple[torch.Tensor, torch.Tensor | None, KV]:
        a, att, kv = self.attn(self.ln_1(x), past, attention)
        x = x + a
        return x + self.mlp(self.ln_2(x)), att, kv


# --------------------------------------------------------------------------- the model

class GPT(nn.Module):
    """The language model: forward(idx (B, T), targets (B, T) | None) → (logits (B, T, V), loss | None)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight   # weight tying: one matrix embeds and un-embeds
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):   # two residual additions per block
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, non_embedding: bool = True) -> int:
        """Number of parameters (the tied head counted once); ``non_embedding`` leaves out the position
        embedding, as nanoGPT does. Equals :func:`gpt_parameter_count`."""
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wpe.weight.numel() if non_embedding else n

    # ----------------------------------------------------------------- forward

    def _check_idx(self, idx: object, name: str = "idx", limit_length: bool = True) -> torch.Tensor:
        if not isinstance(idx, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of token ids (B, T), got {type(idx).__name__}")
        if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
            raise TypeError(f"{name} must be an integer tensor of token ids, got dtype {idx.dtype}")
        if idx.ndim != 2 or idx.shape[0] == 0:
            raise ValueError(f"{name} must have shape (B, T) with B >= 1, got {tuple(idx.shape)}")
        if idx.shape[1] == 0:
            raise ValueError(f"{name} must hold at least one token, got shape {tuple(idx.shape)}")
        bs, V = self.config.block_size, self.config.vocab_size
        if limit_length and idx.shape[1] > bs:
            raise ValueError(f"{name} has {idx.shape[1]} tokens, more than block_size={bs}; "
                             f"pass at most the last {bs}")
        if torch.compiler.is_compiling():   # reading values would break the compiled graph
            return idx.long()
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= V:
            raise ValueError(f"{name} must hold token ids in [0, {V - 1}], got values in [{lo}, {hi}]")
        return idx.long()

    def _run(self, idx: torch.Tensor, past: list[KV] | None = None,
             attention: str = "sdpa") -> tuple[torch.Tensor, list[torch.Tensor | None], list[KV]]:
        """Logits (B, T, V) of tokens at positions t0 .. t0+T-1, t0 = the cached length; maps; new cache."""
        t0 = 0 if past is None else past[0][0].shape[2]
        pos = torch.arange(t0, t0 + idx.shape[1], device=idx.device)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        maps, cache = [], []
        for i, block in enumerate(self.transformer.h):
            x, att, kv = block(x, None if past is None else past[i], attention)
            maps.append(att)
            cache.append(kv)
        return self.lm_head(self.transformer.ln_f(x)), maps, cache

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, *,
                attention: str = "sdpa") -> tuple[torch.Tensor, torch.Tensor | None]:
        """idx (B, T) int with T <= block_size → (logits (B, T, V), loss). ``loss`` is the mean cross-entropy
        (nats per token) against ``targets`` (B, T), entries of -1 ignored; None without targets.
        ``attention``: ``"sdpa"`` (fused) or ``"math"`` (the explicit formula; same numbers up to rounding)."""
        idx = self._check_idx(idx)
        if attention not in _ATTENTION:
            raise ValueError(f"attention must be one of {_ATTENTION}, got {attention!r}")
        if targets is not None:
            targets = self._check_targets(targets, idx.shape)
        logits, _, _ = self._run(idx, attention=attention)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    def _check_targets(self, targets: object, shape: torch.Size) -> torch.Tensor:
        if not isinstance(targets, torch.Tensor):
            raise TypeError(f"targets must be a torch.Tensor of token ids or None, got {type(targets).__name__}")
        if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
            raise TypeError(f"targets must be an integer tensor of token ids, got dtype {targets.dtype}")
        if targets.shape != shape:
            raise ValueError(f"targets must have the shape of idx {tuple(shape)}, got {tuple(targets.shape)}")
        if torch.compiler.is_compiling():
            return targets.long()
        V = self.config.vocab_size
        lo, hi = int(targets.min()), int(targets.max())
        if lo < -1 or hi >= V:
            raise ValueError(f"targets must hold token ids in [0, {V - 1}] or -1 (ignored), got values in "
                             f"[{lo}, {hi}]")
        if hi == -1:
            raise ValueError("targets are all -1 (ignored): nothing to compute a loss on")
        return targets.long()

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> torch.Tensor:
        """Attention probabilities of every layer and head for idx (B, T), computed with the explicit
        formula in eval mode: (n_layer, B, n_head, T, T); each row sums to 1, zero above the diagonal."""
        idx = self._check_idx(idx)
        with eval_mode(self):
            _, maps, _ = self._run(idx, attention="math")
        return torch.stack(maps)

    # ----------------------------------------------------------------- generation

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, use_cache: bool = True,
                 rng: torch.Generator | None = None) -> torch.Tensor:
        """Continue each prompt of idx (B, T) by ``max_new_tokens`` tokens → (B, T + max_new_tokens).

        Each step samples with :func:`aigc_course.sampling.sample_next_token` (temperature 0 = greedy) from
        the logits of the last position, given at most the last ``block_size`` tokens (longer prompts are
        cropped, as in nanoGPT). With ``use_cache`` each layer keeps the keys and values of the tokens so far
        and a step only runs the newest token. Position embeddings are absolute, so once the sequence is
        longer than ``block_size`` the window slides, every cached key is stale, and each step falls back to
        a full pass over the last ``block_size`` tokens. The output equals ``use_cache=False`` (same ``rng``
        state → same tokens, up to floating-point rounding in the logits). Runs in eval mode and gives the
        model its previous mode back.
        """
        idx = self._check_idx(idx, "idx", limit_length=False)
        max_new_tokens = _int_at_least("max_new_tokens", max_new_tokens, 0)
        sampling = check_sampling_args(temperature, top_k, top_p, rng)
        if not isinstance(use_cache, bool):
            raise TypeError(f"use_cache must be True or False, got {use_cache!r}")
        if use_cache and not self.config.causal:
            raise ValueError("use_cache=True needs a causal model: without the mask every new token changes the "
                             "keys' outputs of all earlier positions; pass use_cache=False")
        bs = self.config.block_size
        cache: list[KV] | None = None
        with eval_mode(self):
            for _ in range(max_new_tokens):
                if use_cache and idx.shape[1] <= bs:
                    if cache is None:   # prefill: the whole prompt at once
                        logits, _, cache = self._run(idx)
                    else:               # one new token, attending to the cached keys and values
                        logits, _, cache = self._run(idx[:, -1:], cache)
                else:
                    logits, _, _ = self._run(idx[:, -bs:])
                nxt = _sample(logits[:, -1], **sampling)
                idx = torch.cat([idx, nxt[:, None]], dim=1)
        return idx

    # ----------------------------------------------------------------- GPT-2 weights

    @classmethod
    def from_hf(cls, model_or_state_dict: object, config: GPTConfig | None = None) -> GPT:
        """Our GPT with the weights of a Hugging Face ``GPT2LMHeadModel`` (or ``GPT2Model``), or of its state
        dict. With a model the config is read from ``model.config`` (dropout 0); a state dict needs ``config``
        (the number of heads is not in the weights; GPT-2 wants ``gelu_approximate="tanh"``).

        HF's ``Conv1D`` layers store weights as (in, out), so ``c_attn``, ``c_proj`` and ``c_fc`` are
        transposed; the causal-mask buffers (``attn.bias``, ``attn.masked_bias``) are dropped; the head is
        tied to the token embedding (an untied ``lm_head.weight`` is refused). The new model is float32 on
        the CPU; move it with ``.to(device)``.
        """
        if isinstance(model_or_state_dict, nn.Module):
            hf_config = getattr(model_or_state_dict, "config", None)
            if config is None:
                if hf_config is None:
                    raise TypeError("model_or_state_dict has no .config; pass config=GPTConfig(...)")
                config = _config_from_hf(hf_config)
            state = model_or_state_dict.state_dict()
        elif isinstance(model_or_state_dict, Mapping):
            if config is None:
                raise ValueError("config is required with a state dict: the number of heads is not in the "
                                 "weights (GPT-2 also needs gelu_approximate='tanh')")
            state = dict(model_or_state_dict)
        else:
            raise TypeError(f"model_or_state_dict must be a GPT2LMHeadModel or its state dict, got "
                            f"{type(model_or_state_dict).__name__}")
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig or None, got {type(config).__name__}")
        model = cls(config)
        model.load_state_dict(_convert_hf_state(state, model))
        return model

    @classmethod
    def from_pretrained(cls, name: str = "gpt2") -> GPT:
        """Download a GPT-2 checkpoint (``"gpt2"``, ``"gpt2-medium"``, ...) with ``transformers`` and load it
        with :meth:`from_hf`. Needs the ``hf`` extra and internet access (or the Hugging Face cache)."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        try:
            from transformers import GPT2LMHeadModel
        except ImportError as err:
            raise ImportError("GPT.from_pretrained needs transformers: pip install 'aigc-course[hf]'") from err
        try:
            hf = GPT2LMHeadModel.from_pretrained(name)
        except OSError as err:
            raise RuntimeError(f"could not load {name!r} from the Hugging Face hub or its local cache (offline? "
                               f"see the error above); GPT.from_hf accepts a model you load yourself") from err
        return cls.from_hf(hf)


def _config_from_hf(hf: object) -> GPTConfig:
    """GPTConfig of a transformers ``GPT2Config``; variants our model does not implement are refused."""
    act = getattr(hf, "activation_function", None)
    gelu = {"gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu": "none"}.get(act)
    if gelu is None:
        raise ValueError(f"activation_function {act!r} is not supported (gelu_new, gelu_pytorch_tanh, gelu)")
    n_embd = hf.n_embd
    unsupported = {"n_inner": (None, 4 * n_embd), "layer_norm_epsilon": (1e-5,), "scale_attn_weights": (True,),
                   "scale_attn_by_inverse_layer_idx": (False,), "reorder_and_upcast_attn": (False,)}
    for key, ok in unsupported.items():
        if getattr(hf, key, ok[0]) not in ok:
            raise ValueError(f"GPT-2 config {key}={getattr(hf, key)!r} is not supported (expected {ok[-1]!r})")
    return GPTConfig(vocab_size=hf.vocab_size, block_size=hf.n_positions, n_layer=hf.n_layer, n_head=hf.n_head,
                     n_embd=n_embd, dropout=0.0, bias=True, gelu_approximate=gelu)


_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def _convert_hf_state(state: dict, model: GPT) -> dict:
    """HF GPT-2 state dict → ours: transposed Conv1D weights, no mask buffers, tied head; clear key errors."""
    state = {k: v for k, v in state.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    if "wte.weight" in state:   # a GPT2Model (no head, no "transformer." prefix)
        state = {f"transformer.{k}": v for k, v in state.items()}
    wte = state.get("transformer.wte.weight")
    head = state.pop("lm_head.weight", None)
    if head is not None and wte is not None and not torch.equal(head, wte):
        raise ValueError("lm_head.weight differs from transformer.wte.weight: this GPT ties them")
    out = {k: (v.t() if k.endswith(_TRANSPOSED) else v) for k, v in state.items()}
    ours = model.state_dict()
    ours.pop("lm_head.weight")   # the same tensor as transformer.wte.weight
    missing, unexpected = sorted(set(ours) - set(out)), sorted(set(out) - set(ours))
    if missing or unexpected:
        raise ValueError(f"the state dict does not fit {model.config}: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    for k, v in out.items():
        if v.shape != ours[k].shape:
            raise ValueError(f"{k} has shape {tuple(v.shape)} in the state dict, {tuple(ours[k].shape)} in "
                             f"{model.config}")
    out["lm_head.weight"] = out["transformer.wte.weight"]
    return out
