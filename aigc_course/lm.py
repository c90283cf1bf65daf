"""Neural language models over token ids: next-token batches, whole-split evaluation, two small models,
training and generation.

An autoregressive model factorises p(x_1..x_N) = Π_t p(x_t | x_<t). Every model here maps ids
``idx`` (B, T) to logits (B, T, V), where ``logits[:, t]`` scores the token that follows ``idx[:, t]``
(it may look at ``idx[:, :t+1]`` only). Training minimises the mean cross-entropy of those predictions
against the targets ``y = x`` shifted by one; evaluation reports it in nats per token, and the perplexity
exp(loss) (:func:`aigc_course.ngram.perplexity_from_nll`) is the effective number of equally likely next
tokens.

Models: :class:`BigramLM` (a V×V table of logits, the neural twin of lesson 00's count model) and
:class:`MLPLanguageModel` (Bengio et al. 2003: embed the previous ``context`` tokens, concatenate,
one tanh layer). :func:`train_lm` trains any module whose ``forward(idx)`` returns logits (B, T, V), a
``(logits, loss)`` pair like nanoGPT's ``GPT`` or an object with ``.logits`` (Hugging Face); it sits on
:func:`aigc_course.train.train`, so checkpoints and exact resume work as there. :func:`generate` samples
continuations with :func:`aigc_course.sampling.sample_next_token`.

>>> x, y = next_token_batch(train_ids, block_size=64, batch_size=32)          # (32, 64) each
>>> result = train_lm(MLPLanguageModel(V, context=8), train_ids, LMConfig(steps=2000), val_ids=val_ids)
>>> perplexity(model, val_ids, block_size=64)
>>> vocab.decode(generate(model, vocab.encode("The "), 200, temperature=0.8, rng=g))
"""

from __future__ import annotations

import math
import numbers
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .distributed import no_sync
from .ngram import perplexity_from_nll
from .optim import Muon, muon_param_groups
from .sampling import check_sampling_args, sample_next_token
from .train import Callback, History, StepContext, TrainConfig, eval_mode, train
from .validation import int_at_least as _int_at_least

__all__ = [
    "next_token_batch", "evaluate_loss", "perplexity", "BigramLM", "MLPLanguageModel", "LMConfig", "LMResult",
    "train_lm", "generate", "SamplingExplorer", "sampling_explorer",
]


# --------------------------------------------------------------------------- helpers

def _token_ids(name: str, ids: object, min_len: int = 1, vocab_size: int | None = None) -> torch.Tensor:
    """A 1-D int64 tensor of token ids (N,) with N >= min_len, in [0, vocab_size) when that is known."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a 1-D LongTensor of token ids, got {type(ids).__name__}")
    if ids.dtype != torch.long:
        raise TypeError(f"{name} must be a LongTensor (torch.int64) of token ids, got dtype {ids.dtype}")
    if ids.ndim != 1:
        raise ValueError(f"{name} must have shape (N,), got {tuple(ids.shape)}")
    if ids.numel() < min_len:
        raise ValueError(f"{name} must hold at least {min_len} tokens, got {ids.numel()}")
    _check_range(name, ids, vocab_size)
    return ids


def _check_range(name: str, ids: torch.Tensor, vocab_size: int | None) -> None:
    if ids.numel() == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or (vocab_size is not None and hi >= vocab_size):
        bound = f"[0, {vocab_size})" if vocab_size is not None else ">= 0"
        raise ValueError(f"{name} must hold token ids {bound}, got values in [{lo}, {hi}]")


def _check_idx(idx: object, vocab_size: int) -> torch.Tensor:
    """forward()'s input: int64 (B, T) ids in [0, vocab_size)."""
    if not isinstance(idx, torch.Tensor) or idx.dtype != torch.long:
        what = f"dtype {idx.dtype}" if isinstance(idx, torch.Tensor) else type(idx).__name__
        raise TypeError(f"idx must be a LongTensor (B, T) of token ids, got {what}")
    if idx.ndim != 2:
        raise ValueError(f"idx must have shape (B, T), got {tuple(idx.shape)}")
    _check_range("idx", idx, vocab_size)
    return idx


def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module mapping idx (B, T) to logits (B, T, V), "
                        f"got {type(model).__name__}")
    return model


def _declared_vocab(model: nn.Module) -> int | None:
    """``model.vocab_size`` or ``model.config.vocab_size`` when the model declares one."""
    for owner in (model, getattr(model, "config", None)):
        v = getattr(owner, "vocab_size", None)
        if isinstance(v, numbers.Integral) and not isinstance(v, bool):
            return int(v)
    return None


def _model_context(model: nn.Module) -> int | None:
    """How many tokens the model can look at: ``model.context`` or ``model.config.block_size`` (None if neither)."""
    for owner, attr in ((model, "context"), (getattr(model, "config", None), "block_size")):
        v = getattr(owner, attr, None)
        if isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1:
            return int(v)
    return None


def _logits(out: object, idx: torch.Tensor) -> torch.Tensor:
    """The logits (B, T, V) of a forward pass: a tensor, the first item of a (logits, loss) tuple, or ``.logits``."""
    if isinstance(out, (tuple, list)) and out:
        out = out[0]
    elif not isinstance(out, torch.Tensor) and isinstance(getattr(out, "logits", None), torch.Tensor):
        out = out.logits
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"model(idx) must return logits (B, T, V), a (logits, loss) pair or an object with "
                        f".logits; got {type(out).__name__}")
    b, t = idx.shape
    if out.ndim != 3 or tuple(out.shape[:2]) != (b, t):
        hint = (" (nanoGPT's GPT returns only the last position when called without targets; return every "
                "position's logits)" if out.ndim == 3 and out.shape[1] == 1 and t > 1 else "")
        raise ValueError(f"model(idx) with idx of shape {(b, t)} must return logits of shape ({b}, {t}, V), "
                         f"got {tuple(out.shape)}{hint}")
    return out


def _vocab_of(model: nn.Module, device: torch.device) -> int:
    """The model's vocabulary size: declared, or read off the logits of a one-token forward pass (eval mode)."""
    v = _declared_vocab(model)
    if v is not None:
        return v
    with torch.no_grad(), eval_mode(model):
        idx = torch.zeros(1, 1, dtype=torch.long, device=device)
        return int(_logits(model(idx), idx).shape[-1])


# --------------------------------------------------------------------------- batches and evaluation

def next_token_batch(ids: torch.Tensor, block_size: int, batch_size: int, *,
                     rng: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random training windows of a token stream: ids (N,) → x, y each (batch_size, block_size), int64.

    Row b is ``x = ids[s : s + T]`` and ``y = ids[s + 1 : s + T + 1]`` (x shifted by one) for a start s drawn
    uniformly from [0, N - T - 1], with replacement, from ``rng`` (a CPU generator) or torch's global RNG,
    which checkpoints save, so a resumed :func:`train_lm` draws the same batches. On ``ids``' device.
    """
    block_size = _int_at_least("block_size", block_size, 1)
    batch_size = _int_at_least("batch_size", batch_size, 1)
    ids = _token_ids("ids", ids)
    n = ids.numel()
    if block_size > n - 1:
        raise ValueError(f"block_size must be <= len(ids) - 1 = {n - 1} (each window needs block_size + 1 "
                         f"tokens), got {block_size}")
    return _draw_windows(ids, block_size, batch_size, check_sampling_args(rng=rng)["rng"])


def _draw_windows(ids: torch.Tensor, block_size: int, batch_size: int,
                  rng: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """next_token_batch without the checks (train_lm checks its data once, not every step)."""
    starts = torch.randint(ids.numel() - block_size, (batch_size,), generator=rng,
                           device=rng.device if rng is not None else "cpu")
    pos = starts.to(ids.device)[:, None] + torch.arange(block_size + 1, device=ids.device)
    windows = ids[pos]                                                   # (B, T + 1)
    return windows[:, :-1], windows[:, 1:]


def _eval_windows(n: int, block_size: int, stride: int) -> list[tuple[int, int]]:
    """(start, first scored offset) of each evaluation window over a stream of n tokens (see evaluate_loss)."""
    windows, scored_to = [], 0                      # targets 1..scored_to are done
    while scored_to < n - 1:
        start = min(len(windows) * stride, n - 1 - block_size)
        # the window predicts targets start+1 .. start+T; score those not scored yet
        windows.append((start, scored_to - start))
        scored_to = start + block_size
    return windows


@torch.no_grad()
def evaluate_loss(model: nn.Module, ids: torch.Tensor, block_size: int, *, batch_size: int = 64,
                  stride: int | None = None) -> float:
    """Mean cross-entropy in nats/token over *every* next-token prediction of ``ids`` (N,): each of the
    N − 1 targets ids[1:] is predicted exactly once, in eval mode, without gradients.

    Windows of ``block_size`` = T input tokens start at 0, S, 2S, ... (S = ``stride``, default T; the last
    window is moved back to end at the last token). Window k scores only the targets no earlier window
    scored, so a target gets the tokens before it in its window as context, at most T:

    * S = T (default): non-overlapping windows; contexts cycle through 1..T tokens, as in the random
      training windows of :func:`next_token_batch`, so the number is comparable to the training loss.
    * S < T: every target after the first window gets at least T − S + 1 tokens of context; S = 1 gives
      every target min(t, T) tokens (only the first T positions of the split have shorter contexts), at
      T times the cost. For a fixed-context model such as :class:`MLPLanguageModel`, S = T − context + 1
      gives each target its full context at little cost.

    The sum is taken in float64 over float32 log-probabilities. ``batch_size`` windows go through the
    model at once (memory only; the result does not depend on it).
    """
    model = _check_model(model)
    block_size = _int_at_least("block_size", block_size, 1)
    batch_size = _int_at_least("batch_size", batch_size, 1)
    stride = block_size if stride is None else _int_at_least("stride", stride, 1)
    if stride > block_size:
        raise ValueError(f"stride must be <= block_size = {block_size} (else some targets are never scored), "
                         f"got {stride}")
    ids = _token_ids("ids", ids, min_len=2)
    n = ids.numel()
    if block_size > n - 1:
        raise ValueError(f"block_size must be <= len(ids) - 1 = {n - 1} (each window needs block_size + 1 "
                         f"tokens), got {block_size}")
    dev = _model_device(model)
    _check_range("ids", ids, _vocab_of(model, dev))
    ids = ids.to(dev)
    windows = _eval_windows(n, block_size, stride)
    offsets = torch.arange(block_size + 1, device=dev)
    total, count = torch.zeros((), dtype=torch.float64, device=dev), 0
    with eval_mode(model):
        for i in range(0, len(windows), batch_size):
            chunk = windows[i:i + batch_size]
            starts = torch.tensor([s for s, _ in chunk], device=dev)
            first = torch.tensor([f for _, f in chunk], device=dev)
            w = ids[starts[:, None] + offsets]                                # (b, T + 1)
            x, y = w[:, :-1], w[:, 1:]
            logits = _logits(model(x), x)
            nll = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none")   # (b, T)
            keep = torch.arange(block_size, device=dev)[None, :] >= first[:, None]
            total += nll.masked_fill(~keep, 0.0).sum(dtype=torch.float64)
            count += int(keep.sum())
    assert count == n - 1, (count, n)  # every target exactly once
    return float(total) / count


def perplexity(model: nn.Module, ids: torch.Tensor, block_size: int, *, batch_size: int = 64,
               stride: int | None = None) -> float:
    """exp(:func:`evaluate_loss`): the model's perplexity on the whole split ``ids`` (N,)."""
    return float(perplexity_from_nll(evaluate_loss(model, ids, block_size, batch_size=batch_size, stride=stride)))


# --------------------------------------------------------------------------- models

class BigramLM(nn.Module):
    """p(x_{t+1} | x_t) = softmax(W[x_t]): a V×V table of logits (zeros at first: the uniform model).

    forward(idx (B, T)) → logits (B, T, V). Trained by gradient descent to convergence, softmax(W) is the
    count-based bigram MLE N(a, b) / N(a) of :class:`aigc_course.ngram.CharNGramModel` (order 2, no
    smoothing) for every context a seen in training.
    """

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = _int_at_least("vocab_size", vocab_size, 1)
        self.context = 1
        self.logit_table = nn.Parameter(torch.zeros(self.vocab_size, self.vocab_size))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logit_table[_check_idx(idx, self.vocab_size)]

    def probs(self) -> torch.Tensor:
        """The table as probabilities p(next = b | previous = a): (V, V), rows summing to 1."""
        return self.logit_table.detach().softmax(dim=-1)


class MLPLanguageModel(nn.Module):
    """Bengio et al. (2003): the previous ``context`` tokens → embeddings, concatenated → tanh layer → logits.

    forward(idx (B, T)) → logits (B, T, V); position t sees idx[:, t - context + 1 : t + 1]. Positions
    closer than ``context`` to the start of idx are left-padded with a padding token (id ``vocab_size``, an
    extra learned embedding row that is never predicted), so every position gets a prediction and a
    sequence start is visible to the model as such. ``embedding`` holds the V + 1 embeddings;
    ``token_embeddings`` the V real ones (for plots).
    """

    def __init__(self, vocab_size: int, context: int = 8, embed_dim: int = 16, hidden: int = 256) -> None:
        super().__init__()
        self.vocab_size = _int_at_least("vocab_size", vocab_size, 1)
        self.context = _int_at_least("context", context, 1)
        self.embed_dim = _int_at_least("embed_dim", embed_dim, 1)
        hidden = _int_at_least("hidden", hidden, 1)
        self.pad_id = self.vocab_size
        self.embedding = nn.Embedding(self.vocab_size + 1, self.embed_dim)
        self.hidden = nn.Linear(self.context * self.embed_dim, hidden)
        self.out = nn.Linear(hidden, self.vocab_size)

    @property
    def token_embeddings(self) -> torch.Tensor:
        """The learned embeddings of the V tokens: (V, embed_dim), detached."""
        return self.embedding.weight[: self.vocab_size].detach()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        idx = _check_idx(idx, self.vocab_size)
        b, _ = idx.shape
        padded = torch.cat([idx.new_full((b, self.context - 1), self.pad_id), idx], dim=1)
        windows = padded.unfold(1, self.context, 1)                      # (B, T, context)
        e = self.embedding(windows).flatten(2)                           # (B, T, context · embed_dim)
        return self.out(torch.tanh(self.hidden(e)))


# --------------------------------------------------------------------------- training

def _number(name: str, v: object, low: float, *, allow_low: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"LMConfig.{name} must be a number, got {type(v).__name__} {v!r}")
    if not math.isfinite(v) or v < low or (v == low and not allow_low):
        raise ValueError(f"LMConfig.{name} must be a finite number {'>=' if allow_low else '>'} {low:g}, got {v!r}")
    return float(v)


@dataclass
class LMConfig:
    """Settings of :func:`train_lm`: AdamW (or Muon + AdamW) on the next-token cross-entropy of random windows.

    block_size: window length T of the training batches (and of evaluation).
    betas / weight_decay: AdamW's; weight decay applies to weight matrices and embeddings (tensors with
        >= 2 dims), not to biases or norm gains, as in nanoGPT.
    lr_schedule: "constant", or "cosine" from ``lr`` down to ``min_lr`` at the last step; ``warmup_steps``
        first ramp the rate linearly up to ``lr`` (step s uses lr·(s + 1)/warmup_steps).
    eval_every: with ``val_ids``, the loss on the whole validation split (:func:`evaluate_loss`, windows of
        block_size, ``eval_batch_size`` at once) every ``eval_every`` steps and at the last step (0: last only).
    optimizer: "adamw", or "muon": :class:`aigc_course.optim.Muon` at ``muon_lr`` (momentum ``muon_momentum``)
        for the hidden layers' weight matrices and AdamW at ``lr`` for embeddings, the output layer, biases
        and gains (:func:`aigc_course.optim.muon_param_groups`); the schedule scales both rates alike.
    grad_accum: micro-batches of ``batch_size`` windows per optimizer step; their gradients add up to the
        gradient of one batch of ``grad_accum · batch_size`` windows (less memory, same update).
    grad_clip, amp, ckpt_dir, ckpt_every, log_every, progress, desc: as in :class:`aigc_course.train.TrainConfig`.
    """

    steps: int
    batch_size: int = 32
    block_size: int = 64
    lr: float = 1e-3
    min_lr: float = 0.0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    eval_every: int = 0
    eval_batch_size: int = 64
    grad_clip: float | None = 1.0
    amp: bool | None = None
    ckpt_dir: str | os.PathLike | None = None
    ckpt_every: int = 0
    log_every: int = 10
    progress: bool = True
    desc: str = "lm"
    grad_accum: int = 1
    optimizer: str = "adamw"
    muon_lr: float = 0.02
    muon_momentum: float = 0.95

    def __post_init__(self) -> None:
        for name, low in (("steps", 0), ("batch_size", 1), ("block_size", 1), ("warmup_steps", 0),
                          ("eval_every", 0), ("eval_batch_size", 1), ("grad_accum", 1)):
            _int_at_least(f"LMConfig.{name}", getattr(self, name), low)
        _number("lr", self.lr, 0.0, allow_low=False)
        _number("min_lr", self.min_lr, 0.0)
        if self.min_lr > self.lr:
            raise ValueError(f"LMConfig.min_lr must be <= lr = {self.lr!r}, got {self.min_lr!r}")
        _number("weight_decay", self.weight_decay, 0.0)
        if (not isinstance(self.betas, (tuple, list)) or len(self.betas) != 2 or not all(
                isinstance(b, numbers.Real) and not isinstance(b, bool) and 0.0 <= b < 1.0 for b in self.betas)):
            raise ValueError(f"LMConfig.betas must be two numbers in [0, 1), got {self.betas!r}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if self.optimizer not in ("adamw", "muon"):
            raise ValueError(f"LMConfig.optimizer must be 'adamw' or 'muon', got {self.optimizer!r}")
        _number("muon_lr", self.muon_lr, 0.0, allow_low=False)
        _number("muon_momentum", self.muon_momentum, 0.0)
        if not self.muon_momentum < 1.0:
            raise ValueError(f"LMConfig.muon_momentum must be in [0, 1), got {self.muon_momentum!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"LMConfig.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        # the rest is checked, with TrainConfig's messages, when train_lm builds its TrainConfig
        self._train_config()

    def _train_config(self) -> TrainConfig:
        return TrainConfig(steps=self.steps, grad_clip=self.grad_clip, amp=self.amp, ckpt_dir=self.ckpt_dir,
                           ckpt_every=self.ckpt_every, log_every=self.log_every, progress=self.progress,
                           desc=self.desc)


@dataclass
class LMResult:
    """What :func:`train_lm` returns.

    history: one row per step with loss (the batch's mean cross-entropy, nats/token), lr and grad_norm
        (before clipping); with ``val_ids`` also val_loss (whole validation split) at the evaluation steps.
    seconds: wall time of the run.
    """

    history: History
    seconds: float = 0.0


def _lr_factor(config: LMConfig):
    """step → multiplier of lr (a plain function, so the scheduler's state dict stays small)."""
    warm, total, floor = config.warmup_steps, config.steps, config.min_lr / config.lr

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if config.lr_schedule == "constant":
            return 1.0
        span = max(total - 1 - warm, 1)
        progress = min((step - warm) / span, 1.0)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def train_lm(model: nn.Module, train_ids: torch.Tensor, config: LMConfig, *, val_ids: torch.Tensor | None = None,
             callbacks: Sequence[Callback] = (), device: torch.device | str | None = None) -> LMResult:
    """Train ``model`` (idx (B, T) → logits (B, T, V)) on the token stream ``train_ids`` (N,)
    with AdamW (or Muon, see ``LMConfig.optimizer``).

    Each step draws ``batch_size`` windows with :func:`next_token_batch` from torch's global RNG (seed it
    with :func:`aigc_course.device.seed_everything`) and minimises the mean cross-entropy of every position.
    The model may also return ``(logits, loss)`` (nanoGPT) or an object with ``.logits``; the loss is always
    recomputed from the logits. Built on :func:`~aigc_course.train.train` with the model and optimizer named
    "lm", so ``ckpt_dir`` gives checkpoints and an exact resume (rerun the same call).

    ``grad_accum`` = k: each step draws k batches and averages their gradients (the loss column is their mean).
    Under torchrun (a process group set up with :func:`aigc_course.distributed.setup_distributed`) the forward
    and backward run through DistributedDataParallel and each rank draws its own batches, so a step sees
    world_size · k · batch_size windows; the checkpoint holds the unwrapped model.
    """
    model = _check_model(model)
    if not isinstance(config, LMConfig):
        raise TypeError(f"config must be an LMConfig, got {type(config).__name__}")
    dev = torch.device(device) if device is not None else _model_device(model)
    model.to(dev)
    train_ids = _token_ids("train_ids", train_ids)
    if config.block_size > train_ids.numel() - 1:
        raise ValueError(f"LMConfig.block_size must be <= len(train_ids) - 1 = {train_ids.numel() - 1}, got "
                         f"{config.block_size}")
    vocab = _vocab_of(model, dev)
    _check_range("train_ids", train_ids, vocab)
    if val_ids is not None:
        val_ids = _token_ids("val_ids", val_ids, min_len=2, vocab_size=vocab)
        if config.block_size > val_ids.numel() - 1:
            raise ValueError(f"LMConfig.block_size must be <= len(val_ids) - 1 = {val_ids.numel() - 1} to "
                             f"evaluate, got {config.block_size}")
        val_ids = val_ids.to(dev)
    train_ids = train_ids.to(dev)

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters")
    if config.optimizer == "muon":
        opt = Muon(muon_param_groups(model, lr=config.muon_lr, adamw_lr=config.lr, weight_decay=config.weight_decay,
                                     head_features=vocab), momentum=config.muon_momentum, betas=config.betas)
    else:
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=config.lr, betas=config.betas)
    # the history's "lr" is AdamW's rate (Muon's, if any, is "muon_lr"); the schedule scales both alike
    # indices, not the dicts: a resume's opt.load_state_dict replaces the group dicts
    adamw_index = next((i for i, g in enumerate(opt.param_groups) if not g.get("muon", False)), None)
    muon_index = next((i for i, g in enumerate(opt.param_groups) if g.get("muon", False)), None)
    schedulers = None
    if config.lr_schedule != "constant" or config.warmup_steps:
        schedulers = {"lm": torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(config))}

    k = config.grad_accum

    def step(ctx: StepContext) -> dict[str, float]:
        net = ctx.ddp(model)  # DistributedDataParallel(model) in a distributed run
        groups = opt.param_groups
        lr = (groups[adamw_index]["lr"] if adamw_index is not None
              else groups[muon_index]["lr"] * config.lr / config.muon_lr)
        total = 0.0
        for i in range(k):
            x, y = _draw_windows(train_ids, config.block_size, config.batch_size, None)
            last = i == k - 1
            with no_sync(net, not last):  # DDP averages the summed gradients once, after the last one
                with ctx.autocast():
                    logits = _logits(net(x), x)
                loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
                # the mean over k equal micro-batches is the mean over all k·B windows
                if last:
                    grad_norm = ctx.optimize(loss / k, "lm")
                else:
                    ctx.accumulate(loss / k, "lm")
            total += float(loss.detach())
        metrics = {"grad_norm": grad_norm, "loss": total / k, "lr": float(lr)}
        if muon_index is not None:
            metrics["muon_lr"] = float(groups[muon_index]["lr"])
        done = ctx.step + 1
        if val_ids is not None and (done == config.steps or (config.eval_every and done % config.eval_every == 0)):
            metrics["val_loss"] = evaluate_loss(model, val_ids, config.block_size,
                                                batch_size=config.eval_batch_size)
        return metrics

    start = time.perf_counter()
    history = train(step, models={"lm": model}, optimizers={"lm": opt}, config=config._train_config(),
                    schedulers=schedulers, callbacks=callbacks, device=dev,
                    settings={"grad_accum": k} if k > 1 else None)
    return LMResult(history, time.perf_counter() - start)


# --------------------------------------------------------------------------- generation

@torch.no_grad()
def generate(model: nn.Module, prompt_ids: torch.Tensor, max_new_tokens: int, *, context: int | None = None,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             rng: torch.Generator | None = None) -> torch.Tensor:
    """Continue ``prompt_ids`` (T0,) or (B, T0) by ``max_new_tokens`` sampled tokens; returns the prompt
    followed by them, (T0 + n,) or (B, T0 + n), int64 on the prompt's device.

    Each step feeds the last ``context`` tokens (default ``model.context``, else ``model.config.block_size``)
    to the model, in eval mode (the model's modes are restored afterwards), and draws the next token from
    the last position's logits with :func:`aigc_course.sampling.sample_next_token`: ``temperature`` 0 is
    greedy, ``top_k`` / ``top_p`` filter, ``rng`` (a torch.Generator) makes the draws reproducible.
    """
    model = _check_model(model)
    if not isinstance(prompt_ids, torch.Tensor) or prompt_ids.dtype != torch.long:
        what = f"dtype {prompt_ids.dtype}" if isinstance(prompt_ids, torch.Tensor) else type(prompt_ids).__name__
        raise TypeError(f"prompt_ids must be a LongTensor (T0,) or (B, T0) of token ids, got {what}")
    if prompt_ids.ndim not in (1, 2):
        raise ValueError(f"prompt_ids must have shape (T0,) or (B, T0), got {tuple(prompt_ids.shape)}")
    if prompt_ids.shape[-1] == 0 or prompt_ids.numel() == 0:
        raise ValueError(f"prompt_ids must not be empty (the model needs at least one token to condition on), "
                         f"got shape {tuple(prompt_ids.shape)}")
    max_new_tokens = _int_at_least("max_new_tokens", max_new_tokens, 0)
    if context is None:
        context = _model_context(model)
        if context is None:
            raise ValueError("context is needed: the model has neither .context nor .config.block_size")
    context = _int_at_least("context", context, 1)
    sampling = check_sampling_args(temperature, top_k, top_p, rng)
    _check_range("prompt_ids", prompt_ids, _declared_vocab(model))

    batched = prompt_ids.ndim == 2
    seq = prompt_ids if batched else prompt_ids[None]
    dev = _model_device(model)
    out_dev = seq.device
    seq = seq.to(dev)
    with eval_mode(model):
        for _ in range(max_new_tokens):
            window = seq[:, -context:]
            logits = _logits(model(window), window)[:, -1, :]
            nxt = sample_next_token(logits, **sampling)
            seq = torch.cat([seq, nxt[:, None].to(seq.device)], dim=1)
    seq = seq.to(out_dev)
    return seq if batched else seq[0]


# --------------------------------------------------------------------------- the interactive explorer

def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SamplingExplorer:
    """Widgets for the decoding rule → a continuation of the prompt, regenerated on every change (ipywidgets).

    ``controls`` maps "prompt", "temperature", "top_k" (0: off), "top_p" (1: off), "length" and "seed" to their
    widgets; ``output`` is the HTML widget that shows the prompt in bold and the continuation; ``text`` is the
    prompt plus continuation as a str; ``widget`` is the box to display (displaying the explorer works too).
    Setting a control's ``value`` in Python regenerates, as dragging it does. Characters of the prompt that the
    vocabulary does not know are dropped (a CharVocab has a ``stoi``); an empty prompt becomes its first token.
    """

    def __init__(self, model: nn.Module, vocab: object, *, prompt: str = "", temperature: float = 0.8,
                 top_k: int = 0, top_p: float = 1.0, length: int = 200, seed: int = 0,
                 max_length: int = 600) -> None:
        import ipywidgets as widgets

        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not (callable(getattr(vocab, "encode", None)) and callable(getattr(vocab, "decode", None))):
            raise TypeError(f"vocab must have encode(text) and decode(ids), got {type(vocab).__name__}")
        if not isinstance(prompt, str):
            raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
        max_length = _int_at_least("max_length", max_length, 1)
        length = _int_at_least("length", length, 1)
        if length > max_length:
            raise ValueError(f"length must be <= max_length = {max_length}, got {length}")
        sampling = check_sampling_args(temperature, top_k or None, top_p if top_p != 1 else None)
        if sampling["temperature"] > 5:
            raise ValueError(f"temperature must be <= 5 for the slider, got {temperature}")
        self.model, self.vocab = model, vocab
        self.controls = dict(
            prompt=widgets.Text(value=prompt, description="prompt"),
            temperature=widgets.FloatSlider(value=float(temperature), min=0.0, max=max(2.0, float(temperature)),
                                            step=0.05, description="temperature"),
            top_k=widgets.IntSlider(value=int(top_k), min=0, max=max(100, int(top_k)), description="top-k (0: off)"),
            top_p=widgets.FloatSlider(value=float(top_p), min=0.05, max=1.0, step=0.05, description="top-p (1: off)"),
            length=widgets.IntSlider(value=length, min=1, max=max_length, description="tokens"),
            seed=widgets.IntSlider(value=_int_at_least("seed", seed, 0), min=0, max=max(99, int(seed)),
                                   description="seed"),
        )
        self.output = widgets.HTML()
        self.widget = widgets.VBox([*self.controls.values(), self.output])
        self.text = ""
        self.update()
        for w in self.controls.values():
            w.observe(self.update, names="value")

    def known_prompt(self) -> str:
        """The prompt without the characters the vocabulary does not know (never empty)."""
        prompt = self.controls["prompt"].value
        stoi = getattr(self.vocab, "stoi", None)
        if stoi is not None:
            prompt = "".join(ch for ch in prompt if ch in stoi)
            if not prompt:
                prompt = self.vocab.decode([0])
        return prompt or self.vocab.decode([0])

    def update(self, change: object = None) -> str:
        """Regenerate from the controls' values; returns (and shows) the prompt plus its continuation."""
        c = {name: w.value for name, w in self.controls.items()}
        prompt = self.known_prompt()
        ids = generate(self.model, self.vocab.encode(prompt), c["length"], temperature=c["temperature"],
                       top_k=c["top_k"] or None, top_p=c["top_p"] if c["top_p"] < 1 else None,
                       rng=torch.Generator().manual_seed(c["seed"]))
        self.text = self.vocab.decode(ids)
        continuation = self.text[len(prompt):] if self.text.startswith(prompt) else self.text
        self.output.value = (f"<pre style='white-space: pre-wrap'><b>{_escape(prompt)}</b>"
                             f"{_escape(continuation)}</pre>")
        return self.text

    def _repr_mimebundle_(self, **kwargs: object) -> object:
        return self.widget._repr_mimebundle_(**kwargs)


def sampling_explorer(model: nn.Module, vocab: object, **kwargs: object) -> SamplingExplorer:
    """An ipywidgets explorer of :func:`generate`: a prompt box and sliders for temperature, top-k, top-p, length
    and seed (keyword arguments set their starting values, see :class:`SamplingExplorer`). Display the result."""
    return SamplingExplorer(model, vocab, **kwargs)
