"""Variational autoencoders (Kingma & Welling 2014), their ELBO and the importance-weighted bound (Burda 2016).

A VAE pairs an *encoder* q(z|x) = N(μ(x), diag exp(logvar(x))) with a *decoder* p(x|z) and the prior
p(z) = N(0, I). For every sample x the evidence lower bound is

    ELBO(x) = E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)) ≤ log p(x),

with the reconstruction term estimated by one reparameterised sample z = μ + σ·ε, ε ~ N(0, I), and the KL
in closed form (:func:`aigc_course.divergences.gaussian_kl`). The gap log p(x) − ELBO(x) is exactly
KL(q(z|x) ‖ p(z|x)). The IWAE bound log (1/k) Σᵢ p(x, zᵢ)/q(zᵢ|x), zᵢ ~ q, is tighter and grows to log p(x).

Models: :class:`GaussianEncoder` (MLP) and :class:`ConvEncoder` give (μ, logvar); :class:`BernoulliDecoder`
gives per-pixel logits, :class:`GaussianDecoder` a mean in (0, 1) and a fixed or learned log-variance;
:class:`LinearGaussianEncoder` / :class:`LinearGaussianDecoder` make probabilistic PCA (a linear-Gaussian
model whose log p(x) and posterior are exact) a VAE;
:class:`VAE` joins an encoder and a decoder, and :func:`build_vae` builds a standard one. Images are
(B, 1, s, s) with s a multiple of 4 (8 for the sklearn digits, 28 for MNIST). Each model takes
``num_classes`` to become class-conditional: a learned label embedding is concatenated to the encoder's
input features and to z.

Training and exploring: :func:`train_vae` (Adam on the negative β-ELBO with optional KL warm-up, on top of
:func:`aigc_course.train.train`); :func:`interpolate`, :func:`latent_traversal`, :func:`latent_map` (2-D
coordinates of the posterior means), :func:`decoded_manifold` and :func:`latent_explorer` (ipywidgets sliders).

Any encoder/decoder pair works if it follows the same protocol: ``encoder.in_shape`` (shape of one x),
``encoder.latent_dim``, ``encoder(x, labels) → (mu, logvar)`` each (B, D); ``decoder.latent_dim``,
``decoder.likelihood`` ("bernoulli" or "gaussian"), ``decoder(z, labels)`` → logits (B, *in_shape) or a
(mean, logvar) pair; both with an optional ``num_classes`` (labels are passed only when it is set).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .device import check_seed
from .distributed import no_sync
from .divergences import gaussian_kl
from .train import Callback, History, StepContext, TrainConfig, eval_mode, sample_batch, train
from .validation import check_finite as _check_finite
from .validation import check_labels as _check_labels
from .validation import conv_image_size as _image_size
from .validation import float_tensor as _float_tensor
from .validation import int_at_least as _int_at_least
from .validation import num_classes as _num_classes

__all__ = [
    "reparameterize", "GaussianEncoder", "ConvEncoder", "BernoulliDecoder", "GaussianDecoder",
    "LinearGaussianEncoder", "LinearGaussianDecoder", "VAE",
    "build_vae", "conditional_log_likelihood", "decoded_mean", "ELBOTerms", "elbo",
    "importance_weighted_log_likelihood", "sample", "reconstruct", "VAEConfig", "VAEResult", "train_vae",
    "interpolate_latents", "interpolate", "latent_traversal", "encode_mean", "posterior_activity",
    "kl_per_dimension", "latent_map", "decoded_manifold",
    "LatentExplorer", "latent_explorer",
]

Likelihood = Literal["bernoulli", "gaussian"]
_LIKELIHOODS = ("bernoulli", "gaussian")
_LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------- helpers

def _check_rng(rng: object) -> None:
    if rng is not None and not isinstance(rng, torch.Generator):
        raise TypeError(f"rng must be a torch.Generator or None, got {type(rng).__name__}")


def _randn(shape: tuple[int, ...], like: torch.Tensor, rng: torch.Generator | None) -> torch.Tensor:
    """ε ~ N(0, I) of ``shape``, drawn on ``rng``'s device (or ``like``'s, from the global RNG), like's dtype."""
    dev = rng.device if rng is not None else like.device
    return torch.randn(shape, generator=rng, device=dev, dtype=like.dtype).to(like.device)


def _shape(name: str, v: object) -> tuple[int, ...]:
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):
        v = (int(v),)
    if not isinstance(v, (tuple, list)) or not v or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1 for s in v):
        raise ValueError(f"{name} must be a positive int or a tuple of positive ints, got {v!r}")
    return tuple(int(s) for s in v)


def _image_shape(name: str, v: object) -> tuple[int, int, int]:
    """(C, s, s) with s a multiple of 4 (two stride-2 layers)."""
    shape = _shape(name, v)
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] % 4:
        raise ValueError(f"{name} must be (channels, s, s) with s a multiple of 4 for a conv model, got {shape}")
    return shape  # type: ignore[return-value]


def _embed(num_classes: int | None, dim: int) -> nn.Embedding | None:
    return nn.Embedding(num_classes, dim) if num_classes is not None else None


# --------------------------------------------------------------------------- the reparameterisation trick

def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, *, rng: torch.Generator | None = None) -> torch.Tensor:
    """z = μ + exp(logvar/2)·ε with ε ~ N(0, I) from ``rng`` (or the global RNG): (B, D), (B, D) → (B, D).

    z is a differentiable function of μ and logvar, so gradients of E_q[f(z)] flow into the encoder.
    """
    mu, logvar = _float_tensor("mu", mu), _float_tensor("logvar", logvar)
    if mu.ndim != 2 or mu.shape[0] == 0:
        raise ValueError(f"mu must have shape (B, D) with B >= 1, got {tuple(mu.shape)}")
    if logvar.shape != mu.shape:
        raise ValueError(f"logvar must have the same shape as mu {tuple(mu.shape)}, got {tuple(logvar.shape)}")
    _check_rng(rng)
    eps = _randn(tuple(mu.shape), mu, rng)
    return mu + torch.exp(0.5 * logvar) * eps


# --------------------------------------------------------------------------- encoders

class GaussianEncoder(nn.Module):
    """MLP q(z|x): flatten x → [‖ label embedding] → ``depth`` ReLU layers of ``hidden`` → (μ, logvar).

    forward(x (B, *in_shape), labels (B,) | None) → mu, logvar, each (B, latent_dim).
    """

    def __init__(self, in_shape: int | tuple[int, ...] = (1, 8, 8), latent_dim: int = 8, hidden: int = 256,
                 depth: int = 2, num_classes: int | None = None) -> None:
        super().__init__()
        self.in_shape = _shape("in_shape", in_shape)
        self.latent_dim = _int_at_least("latent_dim", latent_dim, 1)
        hidden = _int_at_least("hidden", hidden, 1)
        depth = _int_at_least("depth", depth, 1)
        self.num_classes = _num_classes(num_classes)
        in_dim = math.prod(self.in_shape)
        self.embed = _embed(self.num_classes, min(in_dim, 32))
        width = in_dim + (self.embed.embedding_dim if self.embed is not None else 0)
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(width if i == 0 else hidden, hidden), nn.ReLU()]
        self.net = nn.Sequential(*layers)
        self.mu = nn.Linear(hidden, self.latent_dim)
        self.logvar = nn.Linear(hidden, self.latent_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = _check_x(x, self.in_shape, "GaussianEncoder")
        labels = _check_labels(labels, self.num_classes, x.shape[0], "this encoder")
        h = x.flatten(1)
        if self.embed is not None:
            h = torch.cat([h, self.embed(labels).to(h.dtype)], dim=1)
        h = self.net(h)
        return self.mu(h), self.logvar(h)


class ConvEncoder(nn.Module):
    """Conv q(z|x): two stride-2 convolutions (s → s/4) → flatten [‖ label embedding] → ReLU layer → (μ, logvar).

    forward(x (B, C, s, s), labels (B,) | None) → mu, logvar, each (B, latent_dim); s a multiple of 4.
    """

    def __init__(self, image_size: int = 8, latent_dim: int = 8, channels: int = 1, width: int = 32,
                 hidden: int = 256, num_classes: int | None = None) -> None:
        super().__init__()
        size = _image_size(image_size)
        self.in_shape = (_int_at_least("channels", channels, 1), size, size)
        self.latent_dim = _int_at_least("latent_dim", latent_dim, 1)
        w = _int_at_least("width", width, 1)
        hidden = _int_at_least("hidden", hidden, 1)
        self.num_classes = _num_classes(num_classes)
        base = size // 4
        self.features = nn.Sequential(
            nn.Conv2d(self.in_shape[0], w, 4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        self.embed = _embed(self.num_classes, 32)
        feat = 2 * w * base * base + (32 if self.embed is not None else 0)
        self.net = nn.Sequential(nn.Linear(feat, hidden), nn.ReLU())
        self.mu = nn.Linear(hidden, self.latent_dim)
        self.logvar = nn.Linear(hidden, self.latent_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = _check_x(x, self.in_shape, "ConvEncoder")
        labels = _check_labels(labels, self.num_classes, x.shape[0], "this encoder")
        h = self.features(x)
        if self.embed is not None:
            h = torch.cat([h, self.embed(labels).to(h.dtype)], dim=1)
        h = self.net(h)
        return self.mu(h), self.logvar(h)


# --------------------------------------------------------------------------- decoders

class _DecoderBody(nn.Module):
    """z [‖ label embedding] → raw outputs (B, *out_shape), by an MLP or by linear → (2w, s/4, s/4) → 2 ConvT."""

    def __init__(self, latent_dim: int, out_shape: tuple[int, ...], kind: str, hidden: int, width: int,
                 num_classes: int | None) -> None:
        super().__init__()
        if not isinstance(kind, str) or kind not in ("mlp", "conv"):
            raise ValueError(f"kind must be 'mlp' or 'conv', got {kind!r}")
        self.out_shape = out_shape
        self.embed = _embed(num_classes, latent_dim)
        width_in = latent_dim * (2 if self.embed is not None else 1)
        if kind == "mlp":
            self.net = nn.Sequential(
                nn.Linear(width_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                nn.Linear(hidden, math.prod(out_shape)), nn.Unflatten(1, out_shape))
        else:
            c, s, _ = _image_shape("out_shape", out_shape)
            base = s // 4
            self.net = nn.Sequential(
                nn.Linear(width_in, 2 * width * base * base), nn.ReLU(), nn.Unflatten(1, (2 * width, base, base)),
                nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1), nn.ReLU(),
                nn.ConvTranspose2d(width, c, 4, stride=2, padding=1))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels).to(z.dtype)], dim=1)
        return self.net(z)


class BernoulliDecoder(nn.Module):
    """p(x|z) = Π Bernoulli(σ(logits)): forward(z (B, latent_dim), labels (B,) | None) → logits (B, *out_shape).

    ``kind="mlp"`` for any ``out_shape``; ``kind="conv"`` for (C, s, s) images, s a multiple of 4.
    """

    likelihood = "bernoulli"

    def __init__(self, latent_dim: int = 8, out_shape: int | tuple[int, ...] = (1, 8, 8), kind: str = "mlp",
                 hidden: int = 256, width: int = 32, num_classes: int | None = None) -> None:
        super().__init__()
        self.latent_dim = _int_at_least("latent_dim", latent_dim, 1)
        self.out_shape = _shape("out_shape", out_shape)
        self.num_classes = _num_classes(num_classes)
        self.body = _DecoderBody(self.latent_dim, self.out_shape, kind, _int_at_least("hidden", hidden, 1),
                                 _int_at_least("width", width, 1), self.num_classes)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = _check_x(z, (self.latent_dim,), "BernoulliDecoder", name="z")
        labels = _check_labels(labels, self.num_classes, z.shape[0], "this decoder")
        return self.body(z, labels)


class GaussianDecoder(nn.Module):
    """p(x|z) = N(mean(z), diag σ²): forward(z, labels) → (mean in (0, 1), logvar), each (B, *out_shape).

    mean = σ(raw output) keeps images in (0, 1). The log-variance log σ² is one scalar shared by every pixel:
    fixed at ``logvar`` (``learn_logvar=False``, then −log p(x|z) is a scaled squared error plus a constant)
    or learned, starting there.
    """

    likelihood = "gaussian"

    def __init__(self, latent_dim: int = 8, out_shape: int | tuple[int, ...] = (1, 8, 8), kind: str = "mlp",
                 hidden: int = 256, width: int = 32, num_classes: int | None = None, logvar: float = 0.0,
                 learn_logvar: bool = True) -> None:
        super().__init__()
        self.latent_dim = _int_at_least("latent_dim", latent_dim, 1)
        self.out_shape = _shape("out_shape", out_shape)
        self.num_classes = _num_classes(num_classes)
        if isinstance(logvar, bool) or not isinstance(logvar, numbers.Real) or not math.isfinite(logvar):
            raise ValueError(f"logvar must be a finite number, got {logvar!r}")
        if not isinstance(learn_logvar, bool):
            raise TypeError(f"learn_logvar must be True or False, got {learn_logvar!r}")
        self.body = _DecoderBody(self.latent_dim, self.out_shape, kind, _int_at_least("hidden", hidden, 1),
                                 _int_at_least("width", width, 1), self.num_classes)
        t = torch.tensor(float(logvar))
        if learn_logvar:
            self.logvar = nn.Parameter(t)
        else:
            self.register_buffer("logvar", t)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z = _check_x(z, (self.latent_dim,), "GaussianDecoder", name="z")
        labels = _check_labels(labels, self.num_classes, z.shape[0], "this decoder")
        mean = torch.sigmoid(self.body(z, labels))
        return mean, self.logvar.to(mean.dtype).expand_as(mean)


class _FixedLogvar(nn.Module):
    """A log-variance that does not depend on the input: a scalar or one per output unit, fixed or learned."""

    def __init__(self, dim: int, logvar: float | torch.Tensor, learn: bool, name: str) -> None:
        super().__init__()
        t = None
        if isinstance(logvar, torch.Tensor) and logvar.is_floating_point():
            t = logvar.detach().clone()
        elif isinstance(logvar, numbers.Real) and not isinstance(logvar, bool):
            t = torch.tensor(float(logvar))
        if t is None or t.shape not in ((), (dim,)) or not torch.isfinite(t).all():
            raise ValueError(f"{name} must be a finite number or a tensor of shape ({dim},), got {logvar!r}")
        if not isinstance(learn, bool):
            raise TypeError(f"learn_logvar must be True or False, got {learn!r}")
        if learn:
            self.value = nn.Parameter(t)
        else:
            self.register_buffer("value", t)

    def expand(self, like: torch.Tensor) -> torch.Tensor:
        return self.value.to(like.dtype).expand_as(like)


class LinearGaussianEncoder(nn.Module):
    """q(z|x) = N(A·x + a, diag exp(logvar)) with an input-independent log-variance — the family that holds the
    exact posterior of probabilistic PCA. forward(x (B, in_dim)) → mu, logvar, each (B, latent_dim).

    ``logvar``: a number or a (latent_dim,) tensor; fixed (``learn_logvar=False``) or learned from there.
    Set A and a through ``encoder.linear.weight`` / ``.bias``.
    """

    def __init__(self, in_dim: int, latent_dim: int, logvar: float | torch.Tensor = 0.0,
                 learn_logvar: bool = True) -> None:
        super().__init__()
        self.in_shape = (_int_at_least("in_dim", in_dim, 1),)
        self.latent_dim = _int_at_least("latent_dim", latent_dim, 1)
        self.linear = nn.Linear(in_dim, latent_dim)
        self.logvar = _FixedLogvar(self.latent_dim, logvar, learn_logvar, "logvar")

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = _check_x(x, self.in_shape, "LinearGaussianEncoder")
        _check_labels(labels, None, x.shape[0], "this encoder")
        mu = self.linear(x)
        return mu, self.logvar.expand(mu)


class LinearGaussianDecoder(nn.Module):
    """p(x|z) = N(W·z + b, diag exp(logvar)): probabilistic PCA's likelihood (with a scalar logvar = log σ²).
    forward(z (B, latent_dim)) → (mean, logvar), each (B, out_dim). Set W and b through ``decoder.linear``.
    """

    likelihood = "gaussian"

    def __init__(self, latent_dim: int, out_dim: int, logvar: float | torch.Tensor = 0.0,
                 learn_logvar: bool = True) -> None:
        super().__init__()
        self.latent_dim = _int_at_least("latent_dim", latent_dim, 1)
        self.out_dim = _int_at_least("out_dim", out_dim, 1)
        self.linear = nn.Linear(latent_dim, out_dim)
        self.logvar = _FixedLogvar(self.out_dim, logvar, learn_logvar, "logvar")

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        z = _check_x(z, (self.latent_dim,), "LinearGaussianDecoder", name="z")
        _check_labels(labels, None, z.shape[0], "this decoder")
        mean = self.linear(z)
        return mean, self.logvar.expand(mean)


# --------------------------------------------------------------------------- the VAE

class VAE(nn.Module):
    """An encoder q(z|x) and a decoder p(x|z) with the prior N(0, I); see the module docstring's protocol.

    forward(x, labels) returns the decoder's output for one reparameterised z (global RNG); train with
    ``-elbo(model, x).elbo.mean()``.
    """

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        for name, m in (("encoder", encoder), ("decoder", decoder)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(m).__name__}")
            dim = getattr(m, "latent_dim", None)
            if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
                raise TypeError(f"{name} must have a positive int attribute latent_dim, got {dim!r}")
        if encoder.latent_dim != decoder.latent_dim:
            raise ValueError(f"encoder and decoder must agree on latent_dim, got {encoder.latent_dim} and "
                             f"{decoder.latent_dim}")
        if getattr(decoder, "likelihood", None) not in _LIKELIHOODS:
            raise TypeError(f"decoder must have an attribute likelihood in {_LIKELIHOODS}, got "
                            f"{getattr(decoder, 'likelihood', None)!r}")
        self.in_shape = _shape("encoder.in_shape", getattr(encoder, "in_shape", None))
        n_enc, n_dec = getattr(encoder, "num_classes", None), getattr(decoder, "num_classes", None)
        if n_enc != n_dec:
            raise ValueError(f"encoder and decoder must agree on num_classes, got {n_enc} and {n_dec}")
        self.encoder, self.decoder = encoder, decoder
        self.latent_dim: int = encoder.latent_dim
        self.num_classes: int | None = n_enc
        self.likelihood: str = decoder.likelihood

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, logvar) of q(z|x), each (B, latent_dim), in float32 or wider."""
        out = self.encoder(x) if labels is None else self.encoder(x, labels)
        if not (isinstance(out, tuple) and len(out) == 2 and all(isinstance(t, torch.Tensor) for t in out)):
            raise TypeError("encoder must return a (mu, logvar) pair of tensors")
        mu, logvar = (_wide(t) for t in out)
        want = (x.shape[0], self.latent_dim)
        if tuple(mu.shape) != want or tuple(logvar.shape) != want:
            raise ValueError(f"encoder must return mu and logvar of shape {want}, got {tuple(mu.shape)} and "
                             f"{tuple(logvar.shape)}")
        return mu, logvar

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """The decoder's output for z (B, latent_dim): logits, or (mean, logvar), in float32 or wider."""
        out = self.decoder(z) if labels is None else self.decoder(z, labels)
        return tuple(_wide(t) for t in out) if isinstance(out, tuple) else _wide(out)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        x, labels = _check_data(self, x, labels)
        mu, logvar = self.encode(x, labels)
        return self.decode(reparameterize(mu, logvar), labels)


def build_vae(latent_dim: int = 8, image_size: int = 8, *, kind: str = "mlp", likelihood: str = "bernoulli",
              num_classes: int | None = None, channels: int = 1, hidden: int = 256, width: int = 32) -> VAE:
    """A standard VAE for (B, channels, s, s) images: MLP or conv encoder and decoder of the same ``kind``."""
    if not isinstance(kind, str) or kind not in ("mlp", "conv"):
        raise ValueError(f"kind must be 'mlp' or 'conv', got {kind!r}")
    if not isinstance(likelihood, str) or likelihood not in _LIKELIHOODS:
        raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
    size = _image_size(image_size)
    shape = (_int_at_least("channels", channels, 1), size, size)
    enc: nn.Module
    if kind == "mlp":
        enc = GaussianEncoder(shape, latent_dim, hidden=hidden, num_classes=num_classes)
    else:
        enc = ConvEncoder(size, latent_dim, channels, width=width, hidden=hidden, num_classes=num_classes)
    dec_cls = BernoulliDecoder if likelihood == "bernoulli" else GaussianDecoder
    dec = dec_cls(latent_dim, shape, kind, hidden=hidden, width=width, num_classes=num_classes)
    return VAE(enc, dec)


# --------------------------------------------------------------------------- validation of data

def _wide(t: torch.Tensor) -> torch.Tensor:
    """float16/bfloat16 (e.g. under autocast) → float32 for log-likelihoods and sums."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _check_x(x: object, shape: tuple[int, ...], where: str, name: str = "x") -> torch.Tensor:
    x = _float_tensor(name, x)
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape or x.shape[0] == 0:
        want = ", ".join(["B", *map(str, shape)])
        raise ValueError(f"{name} must have shape ({want}) with B >= 1 for {where}, got {tuple(x.shape)}")
    return x


def _check_vae(model: object) -> VAE:
    if not isinstance(model, VAE):
        raise TypeError(f"model must be an aigc_course.vae.VAE, got {type(model).__name__}")
    return model


def _check_data(model: VAE, x: object, labels: object) -> tuple[torch.Tensor, torch.Tensor | None]:
    x = _check_x(x, model.in_shape, "this VAE")
    _check_finite("x", x)
    y = _check_labels(labels, model.num_classes, x.shape[0], "this VAE")
    if model.likelihood == "bernoulli" and x.numel() and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"x must lie in [0, 1] for a Bernoulli likelihood, got values in "
                         f"[{float(x.min()):.4g}, {float(x.max()):.4g}]")
    return x, y


# --------------------------------------------------------------------------- likelihoods

def conditional_log_likelihood(decoder_output: torch.Tensor | tuple[torch.Tensor, torch.Tensor], x: torch.Tensor,
                   likelihood: str) -> torch.Tensor:
    """log p(x|z) per sample, summed over every non-batch dim: x (B, ...) → (B,).

    - ``"bernoulli"``: ``decoder_output`` is logits l shaped like x; log p = Σ x·log σ(l) + (1−x)·log σ(−l),
      stable for any logit. x must lie in [0, 1] (continuous values allowed: the "continuous Bernoulli"
      shortcut everyone uses for grey pixels, not a normalised density).
    - ``"gaussian"``: ``decoder_output`` is (mean, logvar) shaped like x (logvar broadcastable);
      log p = −½ Σ [log 2π + logvar + (x − mean)²·exp(−logvar)]. With a fixed variance σ² this is
      −‖x − mean‖²/(2σ²) − (N/2)·log(2πσ²) for N pixels: the squared error up to scale and that constant.
    """
    if not isinstance(likelihood, str) or likelihood not in _LIKELIHOODS:
        raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")
    x = _float_tensor("x", x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (B, ...) with B >= 1, got {tuple(x.shape)}")
    _check_finite("x", x)
    if likelihood == "bernoulli":
        logits = _float_tensor("decoder_output", decoder_output)
        if logits.shape != x.shape:
            raise ValueError(f"decoder_output (logits) must have the shape of x {tuple(x.shape)}, got "
                             f"{tuple(logits.shape)}")
        if x.numel() and (x.min() < 0 or x.max() > 1):
            raise ValueError(f"x must lie in [0, 1] for a Bernoulli likelihood, got values in "
                             f"[{float(x.min()):.4g}, {float(x.max()):.4g}]")
        logits = _wide(logits)
        ll = -F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")
        return ll.reshape(x.shape[0], -1).sum(1)
    if not (isinstance(decoder_output, tuple) and len(decoder_output) == 2):
        raise TypeError("decoder_output must be a (mean, logvar) pair for a Gaussian likelihood, got "
                        f"{type(decoder_output).__name__}")
    mean = _wide(_float_tensor("mean", decoder_output[0]))
    logvar = _wide(_float_tensor("logvar", decoder_output[1]))
    if mean.shape != x.shape:
        raise ValueError(f"mean must have the shape of x {tuple(x.shape)}, got {tuple(mean.shape)}")
    try:
        fits = torch.broadcast_shapes(logvar.shape, x.shape) == x.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"logvar must broadcast to the shape of x {tuple(x.shape)}, got {tuple(logvar.shape)}")
    x = x.to(mean.dtype)
    ll = -0.5 * (_LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar))
    return ll.expand_as(x).reshape(x.shape[0], -1).sum(1)


def decoded_mean(decoder_output: torch.Tensor | tuple[torch.Tensor, torch.Tensor], likelihood: str) -> torch.Tensor:
    """E[x|z]: σ(logits) for Bernoulli, the mean for Gaussian; shape (B, ...) like the data."""
    if likelihood == "bernoulli":
        return torch.sigmoid(decoder_output)  # type: ignore[arg-type]
    if likelihood == "gaussian":
        return decoder_output[0]
    raise ValueError(f"likelihood must be 'bernoulli' or 'gaussian', got {likelihood!r}")


# --------------------------------------------------------------------------- bounds

class ELBOTerms(NamedTuple):
    """Per-sample (B,) tensors: elbo = reconstruction − β·kl; reconstruction = log p(x|z), one z ~ q(z|x)."""

    elbo: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def _beta(beta: object) -> float:
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
        raise TypeError(f"beta must be a number, got {type(beta).__name__} {beta!r}")
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    return float(beta)


def elbo(model: VAE, x: torch.Tensor, *, labels: torch.Tensor | None = None, beta: float = 1.0,
         rng: torch.Generator | None = None) -> ELBOTerms:
    """The (β-)ELBO per sample, with gradients: x (B, *in_shape) → ELBOTerms of (B,) tensors (float32+).

    reconstruction = log p(x|z) for one z = μ + σ·ε, ε from ``rng`` (or the global RNG);
    kl = KL(q(z|x) ‖ N(0, I)) in closed form; elbo = reconstruction − beta·kl (beta = 1: the true ELBO;
    β-VAE uses beta > 1). The model's train/eval mode is left as it is.
    """
    model = _check_vae(model)
    beta = _beta(beta)
    _check_rng(rng)
    x, labels = _check_data(model, x, labels)
    mu, logvar = model.encode(x, labels)
    z = reparameterize(mu, logvar, rng=rng)
    rec = conditional_log_likelihood(model.decode(z, labels), x, model.likelihood)
    kl = gaussian_kl(mu, logvar)
    return ELBOTerms(rec - beta * kl, rec, kl)


def _normal_log_prob(z: torch.Tensor, mu: torch.Tensor | None = None,
                     logvar: torch.Tensor | None = None) -> torch.Tensor:
    """log N(z; μ, diag exp(logvar)) summed over the last dim (standard normal without μ, logvar)."""
    if mu is None or logvar is None:
        return -0.5 * (z ** 2 + _LOG_2PI).sum(-1)
    return -0.5 * ((z - mu) ** 2 * torch.exp(-logvar) + logvar + _LOG_2PI).sum(-1)


@torch.no_grad()
def importance_weighted_log_likelihood(model: VAE, x: torch.Tensor, k: int, *, labels: torch.Tensor | None = None,
                                       batch_size: int = 4096, rng: torch.Generator | None = None) -> torch.Tensor:
    """The IWAE bound log (1/k) Σᵢ p(x|zᵢ)p(zᵢ)/q(zᵢ|x), zᵢ ~ q(z|x): x (B, *in_shape) → (B,).

    An evaluation: no gradients, the model in eval mode during the call. It is ≤ log p(x), grows with k on
    average and tends to log p(x); k = 1 is a one-sample ELBO with the KL estimated by log q − log p. The k
    samples are decoded in chunks of at most ``batch_size`` rows and combined with a running logsumexp, so
    k = 1000 fits in memory. ε comes from ``rng`` (or the global RNG) as (chunk, B, D) draws in order.
    """
    model = _check_vae(model)
    k = _int_at_least("k", k, 1)
    batch_size = _int_at_least("batch_size", batch_size, 1)
    _check_rng(rng)
    x, labels = _check_data(model, x, labels)
    b = x.shape[0]
    per_chunk = max(1, batch_size // b)
    with eval_mode(model):
        mu, logvar = model.encode(x, labels)
        total = torch.full((b,), -math.inf, dtype=mu.dtype, device=mu.device)
        done = 0
        while done < k:
            c = min(per_chunk, k - done)
            eps = _randn((c, b, model.latent_dim), mu, rng)
            z = mu + torch.exp(0.5 * logvar) * eps                        # (c, B, D)
            xs = x.unsqueeze(0).expand(c, *x.shape).reshape(c * b, *x.shape[1:])
            ys = None if labels is None else labels.repeat(c)
            out = model.decode(z.reshape(c * b, -1), ys)
            log_px_z = conditional_log_likelihood(out, xs, model.likelihood).reshape(c, b)
            log_w = log_px_z + _normal_log_prob(z) - _normal_log_prob(z, mu, logvar)
            total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
            done += c
        return total - math.log(k)


# --------------------------------------------------------------------------- sampling and reconstruction

@torch.no_grad()
def sample(model: VAE, n: int, *, labels: torch.Tensor | None = None,
           rng: torch.Generator | None = None) -> torch.Tensor:
    """``n`` decoded means E[x|z], z ~ N(0, I) from ``rng`` (or the global RNG): (n, *in_shape), float32+.

    Bernoulli: pixel probabilities σ(logits) in [0, 1]; Gaussian: the decoder's mean (in (0, 1) for
    :class:`GaussianDecoder`). ``labels`` (n,) for a conditional model. No gradients, eval mode.
    """
    model = _check_vae(model)
    n = _int_at_least("n", n, 1)
    _check_rng(rng)
    labels = _check_labels(labels, model.num_classes, n, "this VAE")
    p = next(model.parameters(), None)
    ref = torch.empty(0) if p is None else torch.empty(0, device=p.device, dtype=p.dtype)
    dev = ref.device
    z = _randn((n, model.latent_dim), ref, rng)
    with eval_mode(model):
        return decoded_mean(model.decode(z, None if labels is None else labels.to(dev)), model.likelihood)


@torch.no_grad()
def reconstruct(model: VAE, x: torch.Tensor, *, labels: torch.Tensor | None = None) -> torch.Tensor:
    """E[x|z = μ(x)], the decoded posterior mean (deterministic): (B, *in_shape) → same shape. Eval mode."""
    model = _check_vae(model)
    x, labels = _check_data(model, x, labels)
    dev = _model_device(model)
    x, labels = x.to(dev), (None if labels is None else labels.to(dev))
    with eval_mode(model):
        mu, _ = model.encode(x, labels)
        return decoded_mean(model.decode(mu, labels), model.likelihood)


# --------------------------------------------------------------------------- training

def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _number(name: str, v: object, *, low: float = 0.0, allow_low: bool = True) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"VAEConfig.{name} must be a number, got {type(v).__name__} {v!r}")
    if not math.isfinite(v) or v < low or (v == low and not allow_low):
        raise ValueError(f"VAEConfig.{name} must be a finite number {'>=' if allow_low else '>'} {low:g}, got {v!r}")
    return float(v)


@dataclass
class VAEConfig:
    """Settings of :func:`train_vae`: Adam on the negative (β-)ELBO, one reparameterised z per image.

    kl_warmup: β grows linearly from 0 to ``beta`` over the first ``kl_warmup`` steps (β_t = β·t/kl_warmup;
        0 = no warm-up), a common remedy for posterior collapse.
    eval_every: with ``test`` data, evaluate every ``eval_every`` steps and at the last step (0: last only);
        ``eval_k`` > 1 adds the IWAE bound with k = eval_k. Evaluation draws its ε from its own generator
        seeded with ``seed``, so evaluating never changes the training run.
    grad_accum: micro-batches of ``batch_size`` images per Adam step; their gradients add up to the gradient
        of one batch of ``grad_accum · batch_size`` images.
    """

    steps: int
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    beta: float = 1.0
    kl_warmup: int = 0
    lr_schedule: str = "constant"
    eval_every: int = 0
    eval_k: int = 1
    seed: int = 0
    grad_clip: float | None = None
    amp: bool | None = None
    ckpt_dir: str | None = None
    ckpt_every: int = 0
    log_every: int = 10
    progress: bool = True
    desc: str = "vae"
    grad_accum: int = 1

    def __post_init__(self) -> None:
        for name, low in (("steps", 0), ("batch_size", 1), ("kl_warmup", 0), ("eval_every", 0), ("eval_k", 1),
                          ("grad_accum", 1)):
            _int_at_least(f"VAEConfig.{name}", getattr(self, name), low)
        _number("lr", self.lr, allow_low=False)
        _number("weight_decay", self.weight_decay)
        _number("beta", self.beta)
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"VAEConfig.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        check_seed(self.seed)


@dataclass
class VAEResult:
    """What :func:`train_vae` returns.

    history: one row per step with loss (the minimised −(reconstruction − β_t·kl), batch mean), elbo
        (β = 1), reconstruction (log p(x|z)), kl, beta (β_t) and grad_norm, all per-image means in nats;
        with test data also test_elbo (and test_iwae for eval_k > 1) at the evaluation steps.
    """

    history: History
    seconds: float = 0.0


def _beta_at(config: VAEConfig, step: int) -> float:
    if config.kl_warmup == 0:
        return config.beta
    return config.beta * min(1.0, step / config.kl_warmup)


@torch.no_grad()
def _evaluate(model: VAE, x: torch.Tensor, labels: torch.Tensor | None, k: int, seed: int,
              chunk: int = 1024) -> dict[str, float]:
    """Mean test ELBO (and IWAE bound for k > 1) in eval mode, ε from a generator seeded with ``seed``."""
    rng = torch.Generator().manual_seed(seed)
    with eval_mode(model):
        elbos, iwaes = [], []
        for i in range(0, x.shape[0], chunk):
            xb = x[i:i + chunk]
            yb = None if labels is None else labels[i:i + chunk]
            elbos.append(elbo(model, xb, labels=yb, rng=rng).elbo)
            if k > 1:
                iwaes.append(importance_weighted_log_likelihood(model, xb, k, labels=yb, rng=rng))
    out = {"test_elbo": float(torch.cat(elbos).mean())}
    if k > 1:
        out["test_iwae"] = float(torch.cat(iwaes).mean())
    return out


class _ELBOTerms(nn.Module):
    """forward(x, labels) = :func:`elbo` (β = 1) of the wrapped VAE as a plain (elbo, reconstruction, kl) tuple."""

    def __init__(self, vae: VAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        return tuple(elbo(self.vae, x, labels=labels))


def train_vae(model: VAE, data: torch.Tensor, config: VAEConfig, *, labels: torch.Tensor | None = None,
              test: torch.Tensor | None = None, test_labels: torch.Tensor | None = None,
              callbacks: Sequence[Callback] = (), device: torch.device | str | None = None) -> VAEResult:
    """Train ``model`` on ``data`` (N, *in_shape) for ``config.steps`` Adam steps; returns a VAEResult.

    Minibatches are drawn with replacement from torch's global RNG (seed it with
    :func:`aigc_course.device.seed_everything`), as is each step's ε. ``labels`` (N,) for a conditional
    VAE; ``test`` / ``test_labels`` for the evaluation columns of the history. Built on
    :func:`~aigc_course.train.train` with the model and optimizer named "vae", so checkpoints and exact
    resume work as there.

    ``grad_accum`` = k: each step averages the gradients of k batches (the history columns are their means).
    Under torchrun the ELBO's forward and backward run through DistributedDataParallel and each rank draws
    its own batches, so a step sees world_size · k · batch_size images.
    """
    model = _check_vae(model)
    if not isinstance(config, VAEConfig):
        raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
    dev = torch.device(device) if device is not None else _model_device(model)
    model.to(dev)
    data, labels = _check_data(model, data, labels)
    data = data.to(dev)
    labels = None if labels is None else labels.to(dev)
    if test is not None:
        test, test_labels = _check_data(model, test, test_labels)
        test = test.to(dev)
        test_labels = None if test_labels is None else test_labels.to(dev)
    elif test_labels is not None:
        raise ValueError("test_labels were given without test data")

    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedulers = None
    if config.lr_schedule == "cosine" and config.steps > 0:
        schedulers = {"vae": torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.steps)}

    k = config.grad_accum
    terms_of = _ELBOTerms(model)  # elbo() as a module's forward, so that DDP can wrap it

    def step(ctx: StepContext) -> dict[str, float]:
        net = ctx.ddp(terms_of)
        beta_t = _beta_at(config, ctx.step)
        sums = dict.fromkeys(("loss", "elbo", "reconstruction", "kl"), 0.0)
        for i in range(k):
            if labels is None:
                x, y = sample_batch(data, batch_size=config.batch_size)[0], None
            else:
                x, y = sample_batch(data, labels, batch_size=config.batch_size)
            last = i == k - 1
            with no_sync(net, not last):  # DDP averages the summed gradients once, after the last one
                with ctx.autocast():
                    terms = ELBOTerms(*net(x, y))
                loss = -(terms.reconstruction - beta_t * terms.kl).mean()
                # the mean over k equal micro-batches is the mean over all k·B images
                if last:
                    grad_norm = ctx.optimize(loss / k, "vae")
                else:
                    ctx.accumulate(loss / k, "vae")
            for key, v in (("loss", loss), ("elbo", terms.elbo.mean()), ("reconstruction", terms.reconstruction.mean()),
                           ("kl", terms.kl.mean())):
                sums[key] += float(v.detach())
        metrics = {"grad_norm": grad_norm, **{key: v / k for key, v in sums.items()}, "beta": beta_t}
        done = ctx.step + 1
        if test is not None and (done == config.steps or (config.eval_every and done % config.eval_every == 0)):
            metrics.update(_evaluate(model, test, test_labels, config.eval_k, config.seed))
        return metrics

    tc = TrainConfig(steps=config.steps, grad_clip=config.grad_clip, amp=config.amp, ckpt_dir=config.ckpt_dir,
                     ckpt_every=config.ckpt_every, log_every=config.log_every, progress=config.progress,
                     desc=config.desc)
    start = time.perf_counter()
    history = train(step, models={"vae": model}, optimizers={"vae": opt}, config=tc, schedulers=schedulers,
                    callbacks=callbacks, device=dev, settings={"grad_accum": k} if k > 1 else None)
    return VAEResult(history, time.perf_counter() - start)


# --------------------------------------------------------------------------- exploring the latent space

def _vector(name: str, v: object, dim: int | None = None) -> torch.Tensor:
    v = _float_tensor(name, v)
    if v.ndim == 2 and v.shape[0] == 1:
        v = v[0]
    if v.ndim != 1 or v.shape[0] == 0 or (dim is not None and v.shape[0] != dim):
        want = f"({dim},)" if dim is not None else "(D,)"
        raise ValueError(f"{name} must be a latent vector of shape {want}, got {tuple(v.shape)}")
    _check_finite(name, v)
    return v


def interpolate_latents(z_a: torch.Tensor, z_b: torch.Tensor, steps: int, *, method: str = "linear") -> torch.Tensor:
    """``steps`` points from z_a to z_b (both included): (D,), (D,) → (steps, D).

    ``"linear"``: (1 − t)·z_a + t·z_b. ``"slerp"``: along the great circle, sin((1 − t)ω)/sin ω · z_a +
    sin(tω)/sin ω · z_b with ω the angle between them (linear when they are parallel). Under N(0, I) in
    many dimensions, linear midpoints have a smaller norm than typical samples; slerp keeps it.
    """
    z_a = _vector("z_a", z_a)
    z_b = _vector("z_b", z_b, z_a.shape[0])
    steps = _int_at_least("steps", steps, 2)
    if method not in ("linear", "slerp"):
        raise ValueError(f"method must be 'linear' or 'slerp', got {method!r}")
    z_a, z_b = torch.broadcast_tensors(z_a, z_b.to(z_a.dtype))
    t = torch.linspace(0, 1, steps, dtype=z_a.dtype, device=z_a.device)[:, None]
    linear = (1 - t) * z_a + t * z_b
    if method == "linear":
        return linear
    na, nb = z_a.norm(), z_b.norm()
    if na == 0 or nb == 0:
        return linear
    ua, ub = z_a / na, z_b / nb
    # ω from atan2 stays accurate for nearly parallel and nearly opposite vectors (acos does not)
    omega = 2 * torch.atan2((ua - ub).norm(), (ua + ub).norm())
    so = torch.sin(omega)
    if so < 1e-6:
        return linear
    return (torch.sin((1 - t) * omega) * z_a + torch.sin(t * omega) * z_b) / so


def _one_label(model: VAE, label: object, n: int) -> torch.Tensor | None:
    """A class index for every one of n decoded points (conditional VAEs), or None."""
    if model.num_classes is None:
        if label is not None:
            raise ValueError("label was given, but this VAE is unconditional (num_classes=None)")
        return None
    if isinstance(label, torch.Tensor) and label.numel() == 1 and not label.is_floating_point():
        label = int(label.item())
    if isinstance(label, bool) or not isinstance(label, numbers.Integral) or not 0 <= label < model.num_classes:
        raise ValueError(f"this VAE is class-conditional: pass label as an int in [0, {model.num_classes - 1}], "
                         f"got {label!r}")
    return torch.full((n,), int(label), dtype=torch.long)


@torch.no_grad()
def _decode_mean(model: VAE, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """E[x|z] for z (n, D) in eval mode on the model's device; returned on the CPU as float32."""
    dev = _model_device(model)
    with eval_mode(model):
        out = model.decode(z.to(dev, torch.float32), None if labels is None else labels.to(dev))
        return decoded_mean(out, model.likelihood).float().cpu()


@torch.no_grad()
def encode_mean(model: VAE, x: torch.Tensor, *, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The posterior means μ(x): (B, *in_shape) → (B, latent_dim), on the CPU, eval mode."""
    model = _check_vae(model)
    x, labels = _check_data(model, x, labels)
    dev = _model_device(model)
    with eval_mode(model):
        mu, _ = model.encode(x.to(dev), None if labels is None else labels.to(dev))
        return mu.float().cpu()


def posterior_activity(model: VAE, x: torch.Tensor, *, labels: torch.Tensor | None = None) -> torch.Tensor:
    """How much each posterior mean moves across the data, Var_x(E_q[z_d]): (B, *in_shape) → (D,), CPU.

    Burda et al. (2016) call unit d *active* when this exceeds 0.01; an inactive unit's q(z_d|x) is the same
    for every x, so the decoder cannot use it (posterior collapse). Population variance over the B images.
    """
    mu = encode_mean(model, x, labels=labels)
    return mu.var(dim=0, unbiased=False)


@torch.no_grad()
def kl_per_dimension(model: VAE, x: torch.Tensor, *, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The mean over x of each latent unit's KL(q(z_d|x) ‖ N(0, 1)): (B, *in_shape) → (D,), CPU, eval mode.

    The units' KLs add up to the ELBO's KL term (the "rate"); a collapsed unit has KL ≈ 0.
    """
    model = _check_vae(model)
    x, labels = _check_data(model, x, labels)
    dev = _model_device(model)
    with eval_mode(model):
        mu, logvar = model.encode(x.to(dev), None if labels is None else labels.to(dev))
    return gaussian_kl(mu.unsqueeze(-1), logvar.unsqueeze(-1)).mean(0).float().cpu()


def _single_image(model: VAE, x: object, name: str) -> torch.Tensor:
    x = _float_tensor(name, x)
    if tuple(x.shape) == model.in_shape:
        x = x.unsqueeze(0)
    if tuple(x.shape) != (1, *model.in_shape):
        raise ValueError(f"{name} must be one image of shape {model.in_shape} (or (1, ...)), got {tuple(x.shape)}")
    return x


def interpolate(model: VAE, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8, *, label: int | None = None,
                method: str = "linear") -> torch.Tensor:
    """Decoded means along the path between μ(x_a) and μ(x_b): one image each → (steps, *in_shape), CPU.

    ``label``: the class for a conditional VAE (used for encoding both images and for decoding).
    """
    model = _check_vae(model)
    x_a, x_b = _single_image(model, x_a, "x_a"), _single_image(model, x_b, "x_b")
    y1 = _one_label(model, label, 1)
    mu = encode_mean(model, torch.cat([x_a, x_b.to(x_a.device)]), labels=None if y1 is None else y1.repeat(2))
    z = interpolate_latents(mu[0], mu[1], steps, method=method)
    return _decode_mean(model, z, _one_label(model, label, z.shape[0]))


def latent_traversal(model: VAE, z: torch.Tensor | None = None, *, dims: Sequence[int] | None = None,
                     values: torch.Tensor | Sequence[float] | None = None, label: int | None = None) -> torch.Tensor:
    """Decode z with one coordinate at a time set to each value: → (len(dims), len(values), *in_shape), CPU.

    z: the starting point (D,), zeros (the prior's mode) by default; dims: the coordinates to vary (all by
    default); values: what to set them to (default −3…3 in 7 steps).
    """
    model = _check_vae(model)
    d = model.latent_dim
    z0 = torch.zeros(d) if z is None else _vector("z", z, d).detach().float().cpu()
    if dims is None:
        dims = list(range(d))
    if isinstance(dims, (str, bytes)) or not isinstance(dims, Sequence) or not dims or not all(
            isinstance(i, numbers.Integral) and not isinstance(i, bool) and 0 <= i < d for i in dims):
        raise ValueError(f"dims must be a non-empty list of latent indices in [0, {d - 1}], got {dims!r}")
    vals = torch.linspace(-3, 3, 7) if values is None else torch.as_tensor(values, dtype=torch.float32)
    if vals.ndim != 1 or vals.numel() == 0 or not torch.isfinite(vals).all():
        raise ValueError(f"values must be a non-empty 1-D list of finite numbers, got {values!r}")
    zs = z0.repeat(len(dims), len(vals), 1)                            # (len(dims), len(values), D)
    for row, i in enumerate(dims):
        zs[row, :, int(i)] = vals
    flat = zs.reshape(-1, d)
    out = _decode_mean(model, flat, _one_label(model, label, flat.shape[0]))
    return out.reshape(len(dims), len(vals), *model.in_shape)


def latent_map(model: VAE, x: torch.Tensor, *, labels: torch.Tensor | None = None) -> torch.Tensor:
    """2-D coordinates of the posterior means: (B, *in_shape) → (B, 2), CPU.

    The means themselves when latent_dim = 2; otherwise their projection on the two leading principal
    components (centred; each component's sign fixed so its largest loading is positive).
    """
    model = _check_vae(model)
    if model.latent_dim < 2:
        raise ValueError(f"latent_map needs latent_dim >= 2, got {model.latent_dim}")
    mu = encode_mean(model, x, labels=labels).double()
    if model.latent_dim == 2:
        return mu.float()
    if mu.shape[0] < 2:
        raise ValueError(f"x must hold at least 2 images to find principal components, got {mu.shape[0]}")
    centred = mu - mu.mean(0)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    comps = vh[:2]
    idx = comps.abs().argmax(dim=1)
    comps = comps * torch.sign(comps[torch.arange(2), idx])[:, None]
    return (centred @ comps.T).float()


def decoded_manifold(model: VAE, n: int = 15, *, quantile: float = 0.95, label: int | None = None) -> torch.Tensor:
    """Decoded means on an n×n grid of a 2-D latent space: → (n·n, *in_shape), CPU, rows top to bottom.

    The grid is evenly spaced in probability, z = Φ⁻¹(p) for p from 1 − quantile to quantile (Kingma &
    Welling's figure), so each cell covers the same prior mass. Row r holds z₂ decreasing (top of a
    scatter plot first), column c holds z₁ increasing: image r·n + c.
    """
    model = _check_vae(model)
    if model.latent_dim != 2:
        raise ValueError(f"decoded_manifold needs latent_dim == 2, got {model.latent_dim}")
    n = _int_at_least("n", n, 2)
    if isinstance(quantile, bool) or not isinstance(quantile, numbers.Real) or not 0.5 < quantile < 1:
        raise ValueError(f"quantile must be a number in (0.5, 1), got {quantile!r}")
    grid = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(1 - quantile, quantile, n, dtype=torch.float64))
    z1, z2 = torch.meshgrid(grid, grid.flip(0), indexing="xy")
    z = torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1).float()
    return _decode_mean(model, z, _one_label(model, label, n * n))


# --------------------------------------------------------------------------- the interactive explorer

def _png(image: torch.Tensor, scale: int) -> bytes:
    """(C, H, W) in [0, 1] → PNG bytes, each pixel drawn as a scale×scale block (grey for one channel)."""
    import io

    import matplotlib.pyplot as plt
    import numpy as np

    arr = image.detach().float().clamp(0, 1).cpu().numpy()
    arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    arr = np.repeat(np.repeat(arr, scale, axis=0), scale, axis=1)
    buf = io.BytesIO()
    plt.imsave(buf, arr, cmap="gray", vmin=0.0, vmax=1.0, format="png")
    return buf.getvalue()


class LatentExplorer:
    """Sliders for the latent coordinates → the decoded image, live (ipywidgets).

    ``widget`` is the box to display (displaying the explorer itself works too); ``sliders`` one FloatSlider
    per shown coordinate; ``label_dropdown`` the class of a conditional VAE (else None); ``image`` the
    ipywidgets.Image whose ``value`` holds the PNG; ``z`` the current latent (D,) and ``decoded`` the current
    decoded mean (*in_shape). Setting a slider's ``value`` in Python re-decodes, as dragging it does.
    """

    def __init__(self, model: VAE, *, z: torch.Tensor | None = None, span: float = 3.0, max_sliders: int = 8,
                 label: int | None = None, scale: int = 16) -> None:
        import ipywidgets as widgets

        self.model = _check_vae(model)
        d = model.latent_dim
        self.z = torch.zeros(d) if z is None else _vector("z", z, d).detach().float().cpu().clone()
        if isinstance(span, bool) or not isinstance(span, numbers.Real) or not 0 < span < math.inf:
            raise ValueError(f"span must be a positive finite number, got {span!r}")
        shown = min(d, _int_at_least("max_sliders", max_sliders, 1))
        self.scale = _int_at_least("scale", scale, 1)
        if model.num_classes is not None and label is None:
            label = 0
        _one_label(model, label, 1)
        self.sliders = [widgets.FloatSlider(value=float(self.z[i].clamp(-span, span)), min=-float(span),
                                            max=float(span), step=float(span) / 50, description=f"z{i + 1}",
                                            continuous_update=True) for i in range(shown)]
        self.label_dropdown = None
        if model.num_classes is not None:
            self.label_dropdown = widgets.Dropdown(options=list(range(model.num_classes)), value=int(label),
                                                   description="class")
        self.image = widgets.Image(format="png", width=self.model.in_shape[-1] * self.scale)
        controls = list(self.sliders) + ([self.label_dropdown] if self.label_dropdown is not None else [])
        self.widget = widgets.HBox([widgets.VBox(controls), self.image])
        self.decoded = torch.empty(0)
        self._update()
        for w in controls:
            w.observe(self._update, names="value")

    def _update(self, change: object = None) -> None:
        for i, s in enumerate(self.sliders):
            self.z[i] = s.value
        label = None if self.label_dropdown is None else self.label_dropdown.value
        self.decoded = _decode_mean(self.model, self.z[None], _one_label(self.model, label, 1))[0]
        img = self.decoded if self.decoded.ndim == 3 else self.decoded.reshape(1, 1, -1)
        self.image.value = _png(img, self.scale)

    def _repr_mimebundle_(self, **kwargs: object) -> object:
        return self.widget._repr_mimebundle_(**kwargs)


def latent_explorer(model: VAE, *, z: torch.Tensor | None = None, span: float = 3.0, max_sliders: int = 8,
                    label: int | None = None, scale: int = 16) -> LatentExplorer:
    """An ipywidgets explorer of the decoder: one slider per latent coordinate (the first ``max_sliders``;
    the rest stay at ``z``, zeros by default) in [−span, span], a class menu for a conditional VAE (starting at
    ``label``), and the decoded mean drawn ``scale`` times enlarged. Display the result in a notebook.
    """
    return LatentExplorer(model, z=z, span=span, max_sliders=max_sliders, label=label, scale=scale)
