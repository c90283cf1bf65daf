"""Variational autoencoders (Kingma & Welling 2014), their ELBO and the importance-weighted bound (Burda 2016).

A VAE pairs an *encoder* q(z|x) = N(μ(x), diag exp(logvar(x))) with a *decoder* p(x|z) and the prior
p(z) = N(0, I). For every sample x the evidence lower bound is

    ELBO(x) = E_q[log p(x|z)] − KL(q(z|x) ‖ p(z)) ≤ log p(x),

with the reconstruction term estimated by one reparameterised sample z = μ + σ·ε, ε ~ N(0, I), and the KL
in closed form (:func:`aigc_course.divergences.gaussian_kl`). The gap log p(x) − ELBO(x) is exactly
KL(q(z|x) ‖ p(z|x)). The IWAE bound log (1/k) Σᵢ p(x, zᵢ)/q(zᵢ|x), zᵢ ~ q, is tighter and grows to log p(x).

Models: :class:`GaussianEncoder` (MLP) and :class:`ConvEncoder` give (μ, logvar); :class:`BernoulliDecoder`
gives per-pixel logits, :class:`GaussianDecoder` a mean in (0, 1) and a fixed or learned log-variance;
:class:`VAE` joins an encoder and a decoder, and :func:`build_vae` builds a standard one. Images are
(B, 1, s, s) with s a multiple of 4 (8 for the sklearn digits, 28 for MNIST). Each model takes
``num_classes`` to become class-conditional: a learned label embedding is concatenated to the encoder's
input features and to z.

Any encoder/decoder pair works if it follows the same protocol: ``encoder.in_shape`` (shape of one x),
``encoder.latent_dim``, ``encoder(x, labels) → (mu, logvar)`` each (B, D); ``decoder.latent_dim``,
``decoder.likelihood`` ("bernoulli" or "gaussian"), ``decoder(z, labels)`` → logits (B, *in_shape) or a
(mean, logvar) pair; both with an optional ``num_classes`` (labels are passed only when it is set).
"""

from __future__ import annotations

import math
import numbers
from typing import Literal, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from .divergences import _check_finite, gaussian_kl
from .gan import _check_labels, _float_tensor, _image_size, _int_at_least, _num_classes

__all__ = [
    "reparameterize", "GaussianEncoder", "ConvEncoder", "BernoulliDecoder", "GaussianDecoder", "VAE",
    "build_vae", "conditional_log_likelihood", "decoded_mean", "ELBOTerms", "elbo",
    "importance_weighted_log_likelihood", "sample", "reconstruct",
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
    if model.likelihood == "bernoulli" and (x.min() < 0 or x.max() > 1):
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
        if x.min() < 0 or x.max() > 1:
            raise ValueError(f"x must lie in [0, 1] for a Bernoulli likelihood, got values in "
                             f"[{float(x.min()):.4g}, {float(x.max()):.4g}]")
        logits = _wide(logits)
        ll = -F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")
        return ll.flatten(1).sum(1)
    if not (isinstance(decoder_output, tuple) and len(decoder_output) == 2):
        raise TypeError("decoder_output must be a (mean, logvar) pair for a Gaussian likelihood, got "
                        f"{type(decoder_output).__name__}")
    mean = _wide(_float_tensor("mean", decoder_output[0]))
    logvar = _wide(_float_tensor("logvar", decoder_output[1]))
    if mean.shape != x.shape:
        raise ValueError(f"mean must have the shape of x {tuple(x.shape)}, got {tuple(mean.shape)}")
    try:
        torch.broadcast_shapes(logvar.shape, x.shape)
    except RuntimeError:
        raise ValueError(f"logvar must broadcast to the shape of x {tuple(x.shape)}, "
                         f"got {tuple(logvar.shape)}") from None
    x = x.to(mean.dtype)
    ll = -0.5 * (_LOG_2PI + logvar + (x - mean) ** 2 * torch.exp(-logvar))
    return ll.expand_as(x).flatten(1).sum(1)


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
    was_training = model.training
    model.eval()
    try:
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
    finally:
        model.train(was_training)


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
    was_training = model.training
    model.eval()
    try:
        return decoded_mean(model.decode(z, None if labels is None else labels.to(dev)), model.likelihood)
    finally:
        model.train(was_training)


@torch.no_grad()
def reconstruct(model: VAE, x: torch.Tensor, *, labels: torch.Tensor | None = None) -> torch.Tensor:
    """E[x|z = μ(x)], the decoded posterior mean (deterministic): (B, *in_shape) → same shape. Eval mode."""
    model = _check_vae(model)
    x, labels = _check_data(model, x, labels)
    was_training = model.training
    model.eval()
    try:
        mu, _ = model.encode(x, labels)
        return decoded_mean(model.decode(mu, labels), model.likelihood)
    finally:
        model.train(was_training)
