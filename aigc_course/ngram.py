"""Count-based character n-gram language models: the smallest generative model worth pre-training.

An order-``n`` model predicts each character from the ``n - 1`` characters before it (a Markov chain),

    p(x_t | x_{<t}) ≈ p(x_t | x_{t-n+1}, ..., x_{t-1}),

and its maximum-likelihood estimate is "count and divide". Every estimate in this module is the
*Dirichlet MAP* (pseudo-count) form

    p(x | c) = (N(c, x) + λ q(x | c)) / (N(c) + λ),

where ``N(c, x)`` counts ``x`` after context ``c``, ``N(c) = Σ_x N(c, x)``, ``q`` is a prior distribution
and ``λ >= 0`` its strength. Add-k (Laplace) smoothing is the uniform prior ``q = 1/V`` with ``λ = kV``;
adaptation of a pre-trained model is the same formula with ``q`` = the pre-trained model.

Counts are stored sparsely: only (context, next-character) pairs that occur, as sorted integer keys
``key = c_1 V^{n-1} + ... + c_{n-1} V + x``, so looking up a batch of n-grams is one ``searchsorted``.

>>> model = CharNGramModel(vocab_size=len(vocab), order=4, smoothing=0.1).fit(train_ids)
>>> model.perplexity(val_ids)
>>> adapted = adapt(model, target_ids, strength=20.0)
>>> vocab.decode(adapted.sample(200, context=vocab.encode("The "), generator=g))
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .divergences import _broadcast, _check_probs, _real_tensor
from .validation import check_generator as _check_generator

__all__ = [
    "CharNGramModel",
    "adapt",
    "additive_smoothing",
    "categorical_mle",
    "context_windows",
    "dirichlet_map",
    "entropy",
    "perplexity_from_log_probs",
    "perplexity_from_nll",
    "softmax_with_temperature",
]

_MAX_KEY = 2**62  # keys live in int64; keep a factor of two of head room


# ----------------------------------------------------------------------------------------------------
# The math, as small pure functions
# ----------------------------------------------------------------------------------------------------

def _check_tensor(x: object, name: str, shape_hint: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape_hint}, got {type(x).__name__}")
    if x.dim() == 0:
        raise ValueError(f"{name} must have shape {shape_hint}, got a 0-d tensor")
    return x


def _check_nonneg_number(x: object, name: str, allow_inf: bool = False) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{name} must be a number (int or float), got {type(x).__name__}")
    try:
        x = float(x)
    except OverflowError:  # an int beyond the float range
        x = math.inf
    if math.isnan(x) or x < 0 or (math.isinf(x) and not allow_inf):
        bound = "a number >= 0 (inf allowed)" if allow_inf else "a finite number >= 0"
        raise ValueError(f"{name} must be {bound}, got {x}")
    return x


def _check_int_dtype(name: str, ids: torch.Tensor) -> None:
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer token ids, got dtype {ids.dtype}")


def _check_counts(counts: object) -> torch.Tensor:
    """Validate counts (..., V), V >= 1: real, finite, >= 0. Integer counts become float64."""
    counts = _real_tensor("counts", _check_tensor(counts, "counts", "(..., V)"))
    if counts.shape[-1] == 0:
        raise ValueError(f"counts must have V >= 1 symbols on the last dim, got shape {tuple(counts.shape)}")
    if not torch.isfinite(counts).all():
        raise ValueError("counts must be finite, got NaN or inf")
    if (counts < 0).any():
        raise ValueError("counts must be >= 0")
    return counts


def categorical_mle(counts: torch.Tensor) -> torch.Tensor:
    """Maximum-likelihood categorical probabilities ``counts / counts.sum(-1)``.

    counts: (..., V) non-negative counts; each row is normalised over its last axis. Returns (..., V) in the
    dtype of ``counts`` (float64 for integer counts), computed in float64.
    A row with zero total has no MLE; it becomes NaN (use smoothing for such rows).
    """
    counts = _check_counts(counts)
    c = counts.to(torch.float64)
    return (c / c.sum(dim=-1, keepdim=True)).to(counts.dtype)


def dirichlet_map(counts: torch.Tensor, prior_probs: torch.Tensor, strength: float) -> torch.Tensor:
    """MAP estimate of a categorical under a Dirichlet(1 + λ q) prior: ``(N_x + λ q_x) / (N + λ)``.

    counts: (..., V); prior_probs q: (..., V) or (V,), rows summing to 1; strength λ >= 0.
    Equals the interpolation ``w · counts/N + (1 - w) · q`` with ``w = N / (N + λ)``. A row with no data
    and no prior strength (N = λ = 0) has no estimate: it gets the prior q (as an unseen context keeps the
    prior in :class:`CharNGramModel`). Computed in float64; returns (..., V) in the promoted dtype of the
    inputs (float64 for integer counts).
    """
    counts = _check_counts(counts)
    prior_probs = _check_probs("prior_probs", _check_tensor(prior_probs, "prior_probs", "(..., V)"))
    lam = _check_nonneg_number(strength, "strength")
    if counts.shape[-1] != prior_probs.shape[-1]:
        raise ValueError(f"counts (..., {counts.shape[-1]}) and prior_probs (..., {prior_probs.shape[-1]}) "
                         "must have the same last dimension V")
    _broadcast(counts=counts, prior_probs=prior_probs)
    dtype = torch.promote_types(counts.dtype, prior_probs.dtype)
    c, q = counts.to(torch.float64), prior_probs.to(torch.float64)
    denom = c.sum(dim=-1, keepdim=True) + lam
    return torch.where(denom > 0, (c + lam * q) / denom, q).to(dtype)


def additive_smoothing(counts: torch.Tensor, k: float) -> torch.Tensor:
    """Add-k (Laplace for k = 1) estimate ``(N_x + k) / (N + kV)``: the uniform Dirichlet prior.

    counts: (..., V); k > 0 pseudo-count per symbol. Returns (..., V), float64.
    """
    counts = _check_counts(counts)
    k = _check_nonneg_number(k, "k")
    if k == 0:
        raise ValueError("k must be > 0 (k = 0 is the plain MLE: use categorical_mle)")
    V = counts.shape[-1]
    uniform = torch.full((V,), 1.0 / V, dtype=torch.float64)
    return dirichlet_map(counts, uniform, k * V)


def perplexity_from_nll(nll: float | torch.Tensor) -> float | torch.Tensor:
    """Perplexity ``exp(NLL)`` from an average negative log-likelihood per token in nats.

    A float gives a float, a tensor a tensor of the same shape (computed in float64, returned in its float
    dtype; integer tensors give float64). Too large an NLL gives ``inf`` (the exact value overflows).
    """
    if isinstance(nll, torch.Tensor):
        nll = _real_tensor("nll", nll)
        if torch.isnan(nll).any():
            raise ValueError("nll must not be NaN")
        return nll.to(torch.float64).exp().to(nll.dtype)
    if isinstance(nll, bool) or not isinstance(nll, (int, float)):
        raise TypeError(f"nll must be a float or a tensor, got {type(nll).__name__}")
    if isinstance(nll, float) and math.isnan(nll):
        raise ValueError("nll must not be NaN")
    try:
        return math.exp(nll)
    except OverflowError:  # exp(nll) beyond 1.8e308, or an int too large for a float
        return math.inf if nll > 0 else 0.0


def perplexity_from_log_probs(log_probs: torch.Tensor) -> torch.Tensor:
    """Perplexity ``exp(-mean(log p))`` of a sequence from its per-token natural-log probabilities (N,).

    Values must be <= 0 (``-inf`` for p = 0 gives ``inf``). Computed in float64, returned in the dtype of
    ``log_probs`` (float64 for integers).
    """
    log_probs = _real_tensor("log_probs", _check_tensor(log_probs, "log_probs", "(N,)"))
    if log_probs.dim() != 1 or log_probs.numel() == 0:
        raise ValueError(f"log_probs must have shape (N,) with N >= 1, got {tuple(log_probs.shape)}")
    if torch.isnan(log_probs).any():
        raise ValueError("log_probs must not contain NaN")
    if (log_probs > 0).any():
        raise ValueError(f"log_probs must be <= 0 (logs of probabilities), got max {log_probs.max().item():.3g}")
    return (-log_probs.to(torch.float64).mean()).exp().to(log_probs.dtype)


def softmax_with_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(logits / T)`` over the last axis, with the limits T = 0 and T = ∞ handled exactly.

    logits: (..., V), ``-inf`` allowed (impossible symbols), NaN and ``+inf`` not, and every row needs a
    finite logit. T = 0 is the limit T → 0: equal mass on the argmax(es), 0 elsewhere (greedy decoding);
    T = ∞ is uniform over the symbols with finite logits. For 0 < T < ∞ the logits are shifted by their
    row maximum and divided by T in float64, so any T (even 1e-300) and fp16/bf16 logits give valid
    probabilities that tend continuously to these limits. Returns (..., V) in the dtype of ``logits``.
    """
    logits = _check_tensor(logits, "logits", "(..., V)")
    T = _check_nonneg_number(temperature, "temperature", allow_inf=True)
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.shape[-1] == 0:
        raise ValueError(f"logits must have V >= 1 symbols on the last dim, got shape {tuple(logits.shape)}")
    if torch.isnan(logits).any() or (logits == math.inf).any():
        raise ValueError("logits must not contain NaN or +inf (-inf marks an impossible symbol)")
    z = logits.to(torch.float64)
    finite = z > -math.inf
    if not finite.any(dim=-1).all():
        raise ValueError("every row of logits needs a finite value (a row of -inf has no possible symbol)")
    if 0.0 < T < math.inf:
        # shifted logits are <= 0 with 0 at the argmax: no overflow, and no 0/0 or inf/inf for any T
        z = z - z.amax(dim=-1, keepdim=True)
        return torch.softmax(z / T, dim=-1).to(logits.dtype)
    mask = (z == z.amax(dim=-1, keepdim=True)) if T == 0.0 else finite
    mask = mask.to(torch.float64)
    return (mask / mask.sum(dim=-1, keepdim=True)).to(logits.dtype)


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Shannon entropy ``-Σ p log p`` in nats over the last axis (with 0 log 0 = 0). (..., V) → (...).

    ``probs`` must be a probability tensor: finite, >= 0, rows summing to 1 (within the precision of its
    dtype). Computed in float64, returned in the dtype of ``probs`` (float64 for integers).
    """
    probs = _check_probs("probs", probs)
    p = probs.to(torch.float64)
    return (-torch.xlogy(p, p).sum(dim=-1) + 0.0).to(probs.dtype)  # + 0.0 turns -0.0 into 0.0


def context_windows(ids: torch.Tensor, order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (context, target) pairs an order-``n`` model counts: for every position t >= n - 1,
    the context is the ``n - 1`` ids *before* t, ``ids[t-n+1 : t]``, and the target is ``ids[t]``.

    ids: (T,) integer ids → contexts (T - n + 1, n - 1) and targets (T - n + 1,), both int64.
    ``order = 1`` gives empty contexts (T, 0); a sequence shorter than ``order`` gives no pairs.
    Negative ids raise a ValueError.
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ValueError(f"order must be an int >= 1, got {order!r}")
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"ids must be a LongTensor of shape (T,), got {type(ids).__name__}")
    _check_int_dtype("ids", ids)
    if ids.dim() != 1:
        raise ValueError(f"ids must have shape (T,), got {tuple(ids.shape)}")
    ids = ids.to(torch.long)
    if ids.numel() and ids.min() < 0:
        raise ValueError(f"ids must be token ids >= 0, got min {int(ids.min())}")
    if ids.numel() < order:
        return ids.new_empty((0, order - 1)), ids.new_empty((0,))
    windows = ids.unfold(0, order, 1)  # (T - n + 1, n): row j is ids[j : j + n]
    return windows[:, :-1].clone(), windows[:, -1].clone()


# ----------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------

def _as_ids(ids: object, name: str, vocab_size: int, min_len: int) -> torch.Tensor:
    """Validate a 1-D sequence of token ids in [0, V) and return it as a CPU int64 tensor (T,)."""
    if isinstance(ids, (list, tuple)):
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise TypeError(f"{name} must be a LongTensor (T,) or a list of ints")
        if any(i < 0 or i >= vocab_size for i in ids):
            raise ValueError(f"{name} must hold ids in [0, {vocab_size}), got range [{min(ids)}, {max(ids)}]")
        ids = torch.tensor(ids, dtype=torch.long)
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a LongTensor of shape (T,), got {type(ids).__name__}")
    _check_int_dtype(name, ids)
    if ids.dim() != 1:
        raise ValueError(f"{name} must have shape (T,), got {tuple(ids.shape)}")
    if ids.numel() < min_len:
        raise ValueError(f"{name} must have length >= {min_len}, got {ids.numel()}")
    ids = ids.to("cpu", torch.long)
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"{name} must hold ids in [0, {vocab_size}), got range "
                         f"[{int(ids.min())}, {int(ids.max())}]")
    return ids


def _lookup(sorted_keys: torch.Tensor, values: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """values[i] where sorted_keys[i] == query, else 0. query: any shape; returns the same shape."""
    if sorted_keys.numel() == 0:
        return torch.zeros(query.shape, dtype=values.dtype)
    idx = torch.searchsorted(sorted_keys, query).clamp_max(sorted_keys.numel() - 1)
    return torch.where(sorted_keys[idx] == query, values[idx], torch.zeros((), dtype=values.dtype))


class CharNGramModel:
    """Order-``n`` character model ``p(x_t | previous n-1 chars)`` with add-k smoothing or a model prior.

    ``p(x | c) = (N(c, x) + λ q(x | c)) / (N(c) + λ)``; without a prior ``q = 1/V`` and ``λ = k V``
    (add-k smoothing). ``smoothing = 0`` is the plain MLE: unseen continuations get probability 0 and an
    unseen context (no data at all) gets the uniform distribution. Build an adapted model with
    :func:`adapt`, which uses a pre-trained model as ``q``.

    Scoring convention: the first ``order - 1`` characters of a sequence have no full context and are not
    scored; ``nll``/``perplexity`` average over the remaining ``T - order + 1`` positions.
    """

    def __init__(self, vocab_size: int, order: int, smoothing: float = 1.0) -> None:
        for name, v, lo in (("vocab_size", vocab_size, 1), ("order", order, 1)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{name} must be an int, got {type(v).__name__}")
            if v < lo:
                raise ValueError(f"{name} must be >= {lo}, got {v}")
        if vocab_size > 1 and (order >= 63 or vocab_size**order >= _MAX_KEY):  # 2**63 > 2**62: skip the power
            raise ValueError(f"vocab_size**order must be < 2**62 for int64 keys, got {vocab_size}**{order}")
        self.vocab_size = vocab_size
        self.order = order
        self.smoothing = _check_nonneg_number(smoothing, "smoothing")
        self.prior: CharNGramModel | None = None
        self.prior_strength = self.smoothing * vocab_size  # λ; q is uniform while prior is None
        self._pair_keys = torch.zeros(0, dtype=torch.long)  # sorted keys of observed (context, x) pairs
        self._pair_counts = torch.zeros(0, dtype=torch.float64)
        self._ctx_keys = torch.zeros(0, dtype=torch.long)  # sorted keys of observed contexts
        self._ctx_counts = torch.zeros(0, dtype=torch.float64)  # N(c)

    def __repr__(self) -> str:
        prior = "uniform" if self.prior is None else f"order-{self.prior.order} model"
        return (f"CharNGramModel(vocab_size={self.vocab_size}, order={self.order}, prior={prior}, "
                f"strength={self.prior_strength:g}, contexts={self.num_contexts}, "
                f"tokens={int(self.num_tokens)})")

    # -- counting ------------------------------------------------------------------------------------

    def _keys(self, windows: torch.Tensor) -> torch.Tensor:
        """Base-V integer key of each row. windows: (N, L) ids → (N,) int64."""
        key = torch.zeros(windows.shape[0], dtype=torch.long)
        for j in range(windows.shape[1]):  # a loop over the n-gram order, not over occurrences
            key = key * self.vocab_size + windows[:, j]
        return key

    def fit(self, ids: torch.Tensor) -> CharNGramModel:
        """Count every n-gram of ``ids`` (T,), replacing earlier counts. Returns ``self``."""
        ids = _as_ids(ids, "ids", self.vocab_size, min_len=self.order)
        pair_keys = self._keys(ids.unfold(0, self.order, 1))  # (T - n + 1,)
        self._pair_keys, counts = torch.unique(pair_keys, sorted=True, return_counts=True)
        self._pair_counts = counts.to(torch.float64)
        # pair keys are sorted, so their contexts (key // V) are sorted too: sum counts per run
        ctx, inverse = torch.unique_consecutive(self._pair_keys // self.vocab_size, return_inverse=True)
        self._ctx_keys = ctx
        self._ctx_counts = torch.zeros(ctx.numel(), dtype=torch.float64).index_add_(0, inverse,
                                                                                    self._pair_counts)
        return self

    @property
    def num_contexts(self) -> int:
        """Number of distinct contexts seen in training."""
        return int(self._ctx_keys.numel())

    @property
    def num_tokens(self) -> float:
        """Number of n-grams counted (T - order + 1 for a training sequence of length T)."""
        return float(self._pair_counts.sum())

    def _context_keys(self, context: torch.Tensor) -> torch.Tensor:
        """Keys of the last ``order - 1`` ids of each row. context: (B, L) with L >= order - 1 → (B,)."""
        k = self.order - 1
        return self._keys(context[:, context.shape[1] - k:] if k else context[:, :0])

    def _dense_counts(self, ctx_keys: torch.Tensor) -> torch.Tensor:
        """Count vectors N(c, ·) for a batch of context keys (B,) → (B, V) float64."""
        V = self.vocab_size
        lo = torch.searchsorted(self._pair_keys, ctx_keys * V)
        hi = torch.searchsorted(self._pair_keys, ctx_keys * V + V)
        lengths = hi - lo
        rows = torch.repeat_interleave(torch.arange(ctx_keys.numel()), lengths)
        starts = torch.repeat_interleave(lo - (lengths.cumsum(0) - lengths), lengths)
        pos = starts + torch.arange(rows.numel())  # index into the pair arrays, run by run
        out = torch.zeros(ctx_keys.numel(), V, dtype=torch.float64)
        out[rows, self._pair_keys[pos] % V] = self._pair_counts[pos]
        return out

    def _probs(self, ctx_keys: torch.Tensor) -> torch.Tensor:
        """Next-token distributions for context keys (B,) → (B, V)."""
        counts = self._dense_counts(ctx_keys)
        q = (torch.full_like(counts, 1.0 / self.vocab_size) if self.prior is None
             else self.prior._probs(ctx_keys))
        return self._combine(counts, counts.sum(-1, keepdim=True), q)

    def _target_probs(self, ctx_keys: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """p(target | context) for a batch of (B,) context keys and (B,) targets → (B,)."""
        n_cx = _lookup(self._pair_keys, self._pair_counts, ctx_keys * self.vocab_size + targets)
        n_c = _lookup(self._ctx_keys, self._ctx_counts, ctx_keys)
        q = (torch.full_like(n_cx, 1.0 / self.vocab_size) if self.prior is None
             else self.prior._target_probs(ctx_keys, targets))
        return self._combine(n_cx, n_c, q)

    def _combine(self, n_cx: torch.Tensor, n_c: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        """(N(c,x) + λ q) / (N(c) + λ), and q itself where the denominator is 0 (unseen context, λ = 0)."""
        lam = self.prior_strength
        denom = n_c + lam
        return torch.where(denom > 0, (n_cx + lam * q) / denom.clamp_min(1e-300), q)

    # -- public queries ------------------------------------------------------------------------------

    def _check_context(self, context: object) -> tuple[torch.Tensor, bool]:
        """Validate (L,) or (B, L) context ids → ((B, L) int64 rows, whether the input was batched)."""
        if isinstance(context, (list, tuple)):
            context = _as_ids(context, "context_ids", self.vocab_size, 0)
        if not isinstance(context, torch.Tensor):
            raise TypeError(f"context_ids must be a LongTensor (L,) or (B, L), got {type(context).__name__}")
        if context.dim() not in (1, 2):
            raise ValueError(f"context_ids must have shape (L,) or (B, L), got {tuple(context.shape)}")
        batched = context.dim() == 2
        rows = context if batched else context[None]
        _check_int_dtype("context_ids", rows)
        if rows.shape[1] < self.order - 1:
            raise ValueError(f"context_ids must have at least order - 1 = {self.order - 1} ids per row, "
                             f"got {rows.shape[1]}")
        if rows.numel() and (rows.min() < 0 or rows.max() >= self.vocab_size):
            raise ValueError(f"context_ids must hold ids in [0, {self.vocab_size})")
        return rows.to("cpu", torch.long), batched

    def counts(self, context_ids: torch.Tensor) -> torch.Tensor:
        """Raw counts N(c, ·) after the last ``order - 1`` ids. (L,) → (V,) or (B, L) → (B, V)."""
        rows, batched = self._check_context(context_ids)
        out = self._dense_counts(self._context_keys(rows))
        return out if batched else out[0]

    def next_token_probs(self, context_ids: torch.Tensor) -> torch.Tensor:
        """p(· | last ``order - 1`` ids of the context). (L,) → (V,) or (B, L) → (B, V); L >= order - 1."""
        rows, batched = self._check_context(context_ids)
        out = self._probs(self._context_keys(rows))
        return out if batched else out[0]

    def token_log_probs(self, ids: torch.Tensor) -> torch.Tensor:
        """ln p(x_t | x_{t-n+1..t-1}) for t = order-1, ..., T-1. ids: (T,) → (T - order + 1,) float64."""
        ids = _as_ids(ids, "ids", self.vocab_size, min_len=self.order)
        windows = ids.unfold(0, self.order, 1)  # (T - n + 1, n)
        ctx_keys = self._keys(windows[:, :-1])
        return self._target_probs(ctx_keys, windows[:, -1]).log()

    def log_prob(self, ids: torch.Tensor) -> float:
        """Total log-likelihood (nats) of the scored positions of ``ids`` (T,)."""
        return float(self.token_log_probs(ids).sum())

    def nll(self, ids: torch.Tensor) -> float:
        """Average negative log-likelihood per scored character, in nats (``inf`` if any p = 0)."""
        return float(-self.token_log_probs(ids).mean())

    def perplexity(self, ids: torch.Tensor) -> float:
        """``exp(nll(ids))``: the effective number of equally likely next characters."""
        return float(perplexity_from_nll(self.nll(ids)))

    def sample(
        self,
        n: int,
        *,
        context: torch.Tensor | Sequence[int] | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Generate ``n`` ids (n,) that continue ``context`` (at least ``order - 1`` ids, not returned).

        ``context=None`` starts from a training context drawn in proportion to its count.
        ``temperature`` reshapes each step's distribution as ``softmax(log p / T)`` (0 = greedy).
        """
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n must be an int, got {type(n).__name__}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        _check_nonneg_number(temperature, "temperature", allow_inf=True)
        _check_generator(generator)
        k, V = self.order - 1, self.vocab_size
        if context is None:
            if self.num_contexts == 0 and k > 0:
                raise ValueError("context=None needs a fitted model (call fit first) or an explicit context")
            if k == 0:
                key = 0
            else:
                i = torch.multinomial(self._ctx_counts, 1, generator=generator)
                key = int(self._ctx_keys[i])
        else:
            ctx = _as_ids(context, "context", V, min_len=k)
            key = int(self._keys(ctx[ctx.numel() - k:][None])) if k else 0
        modulus = V**k  # keeps only the last k ids in the running key
        out = torch.empty(n, dtype=torch.long)
        for t in range(n):
            probs = self._probs(torch.tensor([key]))[0]
            probs = softmax_with_temperature(probs.log(), temperature)
            x = int(torch.multinomial(probs, 1, generator=generator))
            out[t] = x
            key = (key * V + x) % modulus
        return out


def adapt(pretrained: CharNGramModel, target_ids: torch.Tensor, strength: float) -> CharNGramModel:
    """Fine-tune a count model: MAP on ``target_ids`` (T,) with the pre-trained model as Dirichlet prior.

    ``p(x | c) = (N_target(c, x) + λ p_pre(x | c)) / (N_target(c) + λ)`` with ``λ = strength``: small λ
    trusts the target counts, λ → ∞ returns the pre-trained model. Returns a new model (same order and
    vocabulary); ``pretrained`` is not modified.
    """
    if not isinstance(pretrained, CharNGramModel):
        raise TypeError(f"pretrained must be a CharNGramModel, got {type(pretrained).__name__}")
    lam = _check_nonneg_number(strength, "strength")
    model = CharNGramModel(pretrained.vocab_size, pretrained.order, smoothing=0.0).fit(target_ids)
    model.prior = pretrained
    model.prior_strength = lam
    return model
