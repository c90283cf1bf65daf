"""Fine-tuning: choose which parameters train, at which learning rate, and LoRA (Hu et al. 2021).

Parameters are chosen by *name pattern* over ``model.named_parameters()``, shell-style (``fnmatch``): ``*``
matches any run of characters including dots, so ``"transformer.h.1.*"`` is everything in block 1 and
``"*.c_attn.*"`` every attention input projection. Tied weights are one tensor with several names (the GPT's
``lm_head.weight`` *is* ``transformer.wte.weight``): a pattern may match any of its names, it is counted once,
and it is reported under its first name, as ``named_parameters()`` lists it.

LoRA freezes a pre-trained weight W (out, in) and learns a low-rank change ΔW = (α/r)·B A with A (r, in) and
B (out, r), r ≪ min(in, out), so a layer trains r·(in + out) numbers instead of in·out:

    y = x Wᵀ + b + (α/r) · dropout(x) Aᵀ Bᵀ          A ~ Kaiming-uniform, B = 0: y is unchanged at init

:meth:`LoRALinear.merge` folds ΔW into W (inference at no extra cost), :meth:`~LoRALinear.unmerge` takes it out.

>>> freeze(model); unfreeze(model, ["transformer.h.3.*", "transformer.ln_f.*"])     # last block only
>>> opt = torch.optim.AdamW(param_groups(model, {"*.h.3.*": 3e-4}, default_lr=1e-4))
>>> apply_lora(model, ["*.c_attn", "*.c_fc"], r=8, alpha=16)        # only the A/B matrices train
>>> print(trainable_report(model)); torch.save(lora_state_dict(model), "adapter.pt")
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase

import torch
from torch import nn
from torch.nn import functional as F

from .validation import int_at_least

__all__ = ["freeze", "unfreeze", "trainable_parameters", "count_parameters", "trainable_report", "param_groups",
           "LoRALinear", "apply_lora", "lora_layers", "merge_lora", "unmerge_lora", "lora_state_dict",
           "load_lora_state_dict", "remove_lora"]


# --------------------------------------------------------------------------- names and patterns

def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


def _patterns(patterns: object, what: str = "patterns") -> tuple[str, ...]:
    """One pattern or an iterable of them → a non-empty tuple of non-empty strings."""
    pats = (patterns,) if isinstance(patterns, str) else patterns
    if not isinstance(pats, Iterable) or isinstance(pats, Mapping):
        raise TypeError(f"{what} must be a string or a list of strings, got {type(patterns).__name__}")
    pats = tuple(pats)
    if not pats:
        raise ValueError(f"{what} must hold at least one pattern, got none")
    for p in pats:
        if not isinstance(p, str) or not p:
            raise (ValueError if p == "" else TypeError)(f"{what} must be non-empty strings, got {p!r}")
    return pats


def _examples(names: list[str], k: int = 5) -> str:
    more = f", ... ({len(names)} in all)" if len(names) > k else ""
    return ", ".join(names[:k]) + more


def _aliases(model: nn.Module) -> dict[int, list[str]]:
    """id(parameter) → all its names, first name first (in named_parameters() order)."""
    names: dict[int, list[str]] = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(n)
    return names


def _select(model: nn.Module, patterns: object, what: str = "patterns") -> list[tuple[str, nn.Parameter]]:
    """(first name, parameter) of every parameter with a name matching a pattern; ValueError for a pattern that
    matches nothing."""
    pats = _patterns(patterns, what)
    params = dict(model.named_parameters())
    aliases = _aliases(model)
    hit: set[int] = set()
    for pat in pats:
        found = {i for i, ns in aliases.items() if any(fnmatchcase(n, pat) for n in ns)}
        if not found:
            all_names = [n for ns in aliases.values() for n in ns]
            raise ValueError(f"{what}: {pat!r} matches no parameter name; the names look like: "
                             f"{_examples(all_names) or '(the model has no parameters)'}")
        hit |= found
    return [(n, p) for n, p in params.items() if id(p) in hit]


def _set_requires_grad(model: object, patterns: object, flag: bool) -> list[str]:
    chosen = _select(_check_model(model), patterns)
    for _, p in chosen:
        p.requires_grad_(flag)
    return [n for n, _ in chosen]


def freeze(model: nn.Module, patterns: str | Iterable[str] = ("*",)) -> list[str]:
    """Set ``requires_grad=False`` on every parameter whose name matches one of ``patterns`` (default: all);
    return their names. A pattern that matches no name is a ValueError (a typo would otherwise train it all).
    Freezing a tied name freezes the shared tensor, i.e. every name it has."""
    return _set_requires_grad(model, patterns, False)


def unfreeze(model: nn.Module, patterns: str | Iterable[str]) -> list[str]:
    """Set ``requires_grad=True`` on the parameters matching ``patterns``; return their names. Unfreezing
    ``"lm_head.*"`` of the GPT also trains the token embedding: it is the same tensor."""
    return _set_requires_grad(model, patterns, True)


# --------------------------------------------------------------------------- counting

def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of each parameter with ``requires_grad``, tied ones once."""
    return [(n, p) for n, p in _check_model(model).named_parameters() if p.requires_grad]


def count_parameters(model: nn.Module) -> dict[str, int | float]:
    """{"total", "trainable", "frozen": numbers of scalars, tied tensors once; "fraction": trainable / total}."""
    params = list(_check_model(model).parameters())
    total = sum(p.numel() for p in params)
    trainable = sum(p.numel() for p in params if p.requires_grad)
    return {"total": total, "trainable": trainable, "frozen": total - trainable,
            "fraction": trainable / total if total else 0.0}


def trainable_report(model: nn.Module, depth: int = 1) -> str:
    """A table of total / trainable parameters per submodule, named by the first ``depth`` parts of the
    parameter names (depth=1: the top-level modules), then the whole model and any tied names."""
    depth = int_at_least("depth", depth, 1)
    rows: dict[str, list[int]] = {}
    seen: set[int] = set()
    for n, p in _check_model(model).named_parameters(remove_duplicate=False):
        row = rows.setdefault(".".join(n.split(".")[:-1][:depth]) or "(own parameters)", [0, 0])
        if id(p) not in seen:   # a tied tensor counts in its first module; the others show 0
            seen.add(id(p))
            row[0] += p.numel()
            row[1] += p.numel() if p.requires_grad else 0
    c = count_parameters(model)
    rows["total"] = [c["total"], c["trainable"]]
    width = max(len(k) for k in rows) if rows else 5
    lines = [f"{'module':<{width}}  {'total':>12}  {'trainable':>12}  {'%':>6}"]
    for k, (tot, tr) in rows.items():
        if k == "total":
            lines.append("-" * len(lines[0]))
        pct = f"{100 * tr / tot:.2f}" if tot else "-"
        lines.append(f"{k:<{width}}  {tot:>12,}  {tr:>12,}  {pct:>6}")
    tied = [ns for ns in _aliases(model).values() if len(ns) > 1]
    lines += [f"tied (counted once): {' = '.join(ns[1:])} is {ns[0]}" for ns in tied]
    return "\n".join(lines)


# --------------------------------------------------------------------------- optimizer groups

def _real(name: str, v: object, expected: str, ok) -> float:
    """``v`` as a float if it is a finite real number with ``ok(v)``; else TypeError / ValueError."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(v).__name__} {v!r}")
    if not (math.isfinite(v) and ok(v)):
        raise ValueError(f"{name} must be {expected}, got {v!r}")
    return float(v)


def param_groups(model: nn.Module, lrs: Mapping[str, float], default_lr: float | None = None,
                 weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups with a learning rate per name pattern: ``torch.optim.AdamW(param_groups(...))``.

    Each trainable parameter takes the lr of the first pattern in ``lrs`` that matches one of its names, else
    ``default_lr`` (None: an unmatched trainable parameter is a ValueError). Frozen parameters are left out.
    Weight decay goes to tensors with >= 2 dims only (weights, embeddings; not biases or norm gains), as in
    :func:`aigc_course.lm.train_lm`. Every trainable parameter lands in exactly one group; each group also has
    ``"name"`` (its pattern, or "default", and "decay" / "no_decay") and ``"param_names"``.
    """
    _check_model(model)
    if not isinstance(lrs, Mapping):
        raise TypeError(f"lrs must be a mapping of name pattern to learning rate, got {type(lrs).__name__}")
    rate = ("a finite number >= 0", lambda v: v >= 0)
    rates = {pat: _real(f"lrs[{pat!r}]", lrs[pat], *rate) for pat in (_patterns(list(lrs), "lrs") if lrs else ())}
    default = None if default_lr is None else _real("default_lr", default_lr, *rate)
    decay = _real("weight_decay", weight_decay, *rate)
    for pat in rates:
        _select(model, pat, "lrs")   # a pattern that matches no name at all is a typo
    aliases = _aliases(model)
    groups: dict[tuple[str, bool], dict] = {}
    unmatched = []
    for n, p in trainable_parameters(model):
        pat = next((q for q in rates if any(fnmatchcase(a, q) for a in aliases[id(p)])), None)
        if pat is None and default is None:
            unmatched.append(n)
            continue
        key = (pat or "default", p.ndim >= 2)
        lr = default if pat is None else rates[pat]
        group = groups.setdefault(key, {"params": [], "param_names": [], "lr": lr,
                                        "weight_decay": decay if key[1] else 0.0,
                                        "name": f"{key[0]} ({'decay' if key[1] else 'no_decay'})"})
        group["params"].append(p)
        group["param_names"].append(n)
    if unmatched:
        raise ValueError(f"no pattern in lrs matches the trainable parameters {_examples(unmatched)}; add a "
                         "pattern or pass default_lr")
    if not groups:
        raise ValueError("model has no trainable parameters")
    order = [*rates, "default"]
    return [groups[k] for k in sorted(groups, key=lambda k: (order.index(k[0]), not k[1]))]


# --------------------------------------------------------------------------- LoRA

class LoRALinear(nn.Module):
    """``base`` (an nn.Linear, in → out) plus a trainable low-rank change: forward(x (..., in)) → (..., out).

    Keeps the base layer's ``weight`` (out, in) and ``bias`` (out,) — the same Parameter objects, frozen, under
    the same state-dict names — and adds ``lora_A`` (r, in), Kaiming-uniform like nn.Linear's weight, and
    ``lora_B`` (out, r), zeros, on the base weight's device and dtype; scaling = alpha / r. Dropout acts on the
    LoRA branch's input only, so merged and unmerged outputs agree in eval mode (or with dropout=0).
    :meth:`merge` on a merged layer (and :meth:`unmerge` on an unmerged one) is a RuntimeError, never a no-op:
    a second merge would otherwise be indistinguishable from a silent double update.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
        self.in_features, self.out_features = base.in_features, base.out_features
        r = int_at_least("r", r, 1)
        if r > min(self.in_features, self.out_features):
            raise ValueError(f"r must be <= min(in_features, out_features) = "
                             f"{min(self.in_features, self.out_features)}, got {r}")
        alpha = _real("alpha", alpha, "a finite number > 0", lambda v: v > 0)
        dropout = _real("dropout", dropout, "in [0, 1)", lambda v: 0 <= v < 1)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        self.weight, self.bias = base.weight, base.bias
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        kw = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, self.in_features, **kw))
        self.lora_B = nn.Parameter(torch.zeros(self.out_features, r, **kw))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))   # as nn.Linear: U(-1/√in, 1/√in)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """ΔW = (alpha / r) · B A, shape (out, in), rank <= r; differentiable in A and B."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        if self.merged:
            return y
        return y + (self.lora_dropout(x) @ self.lora_A.t() @ self.lora_B.t()) * self.scaling

    @torch.no_grad()
    def _shift(self, sign: float) -> None:
        w = self.weight   # added in float32 at least, so a bf16 weight is rounded once
        acc = torch.promote_types(w.dtype, torch.float32)
        delta = (self.lora_B.to(acc) @ self.lora_A.to(acc)) * self.scaling
        w.copy_((w.to(acc) + sign * delta).to(w.dtype))

    def merge(self) -> None:
        """W ← W + ΔW in place; forward then skips the LoRA branch (for inference: A and B get no gradient
        while merged). RuntimeError if already merged."""
        if self.merged:
            raise RuntimeError("this LoRALinear is already merged; unmerge() it first")
        self._shift(1.0)
        self.merged = True

    def unmerge(self) -> None:
        """W ← W − ΔW (the base weight again, to rounding); RuntimeError if not merged. Unmerge before
        changing A or B: W − ΔW subtracts the *current* ΔW."""
        if not self.merged:
            raise RuntimeError("this LoRALinear is not merged; nothing to unmerge")
        self._shift(-1.0)
        self.merged = False

    def to_linear(self) -> nn.Linear:
        """A plain nn.Linear holding this layer's (frozen) weight and bias Parameters, merged or not."""
        lin = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        lin.weight, lin.bias = self.weight, self.bias
        return lin

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, r={self.r}, "
                f"alpha={self.alpha:g}, merged={self.merged}")


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def apply_lora(model: nn.Module, targets: str | Iterable[str], r: int, alpha: float,
               dropout: float = 0.0) -> list[str]:
    """Replace, in place, every nn.Linear whose qualified module name (as in ``model.named_modules()``, e.g.
    ``transformer.h.0.attn.c_attn``) matches a pattern of ``targets`` by a :class:`LoRALinear`, and **freeze
    every other parameter of the model** (embeddings, LayerNorms, heads, untargeted layers): afterwards only
    the LoRA A/B matrices (of these and of earlier calls) train; :func:`unfreeze` more if wanted. Returns the
    wrapped names.

    A pattern that matches no nn.Linear is a ValueError; so is a Linear whose weight is tied to another
    parameter (the GPT's ``lm_head``), since merging into it would change the tied tensor too. Works on a
    model already moved to a device or dtype: A and B are created next to each base weight.
    """
    model = _check_model(model)
    pats = _patterns(targets, "targets")
    linears = {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear) and n}
    chosen: dict[str, nn.Linear] = {}
    for pat in pats:
        found = {n: m for n, m in linears.items() if fnmatchcase(n, pat)}
        if not found:
            wrapped = [n for n, m in model.named_modules() if isinstance(m, LoRALinear) and fnmatchcase(n, pat)]
            hint = (f"it matches only layers already wrapped by LoRA: {_examples(wrapped)}" if wrapped else
                    f"the nn.Linear modules are named: {_examples(list(linears)) or '(none)'}")
            raise ValueError(f"targets: {pat!r} matches no nn.Linear module; {hint}")
        chosen.update(found)
    aliases = _aliases(model)
    for n, m in chosen.items():
        other = [a for a in aliases[id(m.weight)] if a != f"{n}.weight"]
        if other:
            raise ValueError(f"{n}.weight is tied to {other[0]}: merging LoRA into it would change both; leave "
                             f"{n} out of targets")
    wrappers = {n: LoRALinear(m, r, alpha, dropout) for n, m in chosen.items()}   # validates before any change
    freeze(model)
    for n, w in wrappers.items():
        _replace(model, n, w)
    for w in lora_layers(model).values():   # earlier adapters keep training too
        w.lora_A.requires_grad_(True)
        w.lora_B.requires_grad_(True)
    return [n for n in linears if n in wrappers]


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """{qualified name: LoRALinear} of the model's LoRA layers, in module order."""
    return {n: m for n, m in _check_model(model).named_modules() if isinstance(m, LoRALinear)}


def _layers_or_error(model: nn.Module) -> dict[str, LoRALinear]:
    layers = lora_layers(model)
    if not layers:
        raise ValueError("model has no LoRALinear layers; call apply_lora first")
    return layers


def _merge_all(model: nn.Module, merge: bool) -> list[str]:
    layers = _layers_or_error(model)
    wrong = [n for n, m in layers.items() if m.merged == merge]
    if wrong:
        raise RuntimeError(f"LoRA layers {'already' if merge else 'not'} merged: {_examples(wrong)}; "
                           f"{'unmerge' if merge else 'merge'}_lora first")
    for m in layers.values():
        m.merge() if merge else m.unmerge()
    return list(layers)


def merge_lora(model: nn.Module) -> list[str]:
    """Merge every LoRA layer (RuntimeError, before any change, if one is already merged); return the names."""
    return _merge_all(model, True)


def unmerge_lora(model: nn.Module) -> list[str]:
    """Unmerge every LoRA layer (RuntimeError, before any change, if one is not merged); return the names."""
    return _merge_all(model, False)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the A and B tensors only, {"<layer>.lora_A": (r, in), "<layer>.lora_B": (out, r), ...}: the
    adapter, a small file next to the base model's weights."""
    layers = _layers_or_error(model)
    return {f"{n}.lora_{k}": getattr(m, f"lora_{k}").detach().clone() for n, m in layers.items() for k in "AB"}


def load_lora_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Copy an adapter saved by :func:`lora_state_dict` into a model with the same LoRA layers (unmerged)."""
    layers = _layers_or_error(model)
    if not isinstance(state, Mapping):
        raise TypeError(f"state must be a mapping of name to tensor, got {type(state).__name__}")
    want = {f"{n}.lora_{k}": getattr(m, f"lora_{k}") for n, m in layers.items() for k in "AB"}
    missing, extra = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing or extra:
        raise ValueError(f"state does not fit the model's LoRA layers: missing {_examples(missing) or 'none'}; "
                         f"unexpected {_examples(extra) or 'none'}")
    for k, p in want.items():
        v = state[k]
        if not isinstance(v, torch.Tensor) or v.shape != p.shape:
            got = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
            raise ValueError(f"state[{k!r}] must be a tensor of shape {tuple(p.shape)}, got {got}")
    if any(m.merged for m in layers.values()):
        raise RuntimeError("the model's LoRA layers are merged; unmerge_lora before loading an adapter")
    with torch.no_grad():
        for k, p in want.items():
            p.copy_(state[k])


def remove_lora(model: nn.Module, merge: bool = True) -> list[str]:
    """Put plain nn.Linear layers back in place of the LoRA layers; return their names. ``merge=True`` keeps
    the learned change (W + ΔW), ``merge=False`` discards it (W again). The weights stay frozen as they were."""
    if not isinstance(merge, bool):
        raise TypeError(f"merge must be True or False, got {merge!r}")
    layers = _layers_or_error(model)
    for n, m in layers.items():
        if merge and not m.merged:
            m.merge()
        elif not merge and m.merged:
            m.unmerge()
        _replace(model, n, m.to_linear())
    return list(layers)
