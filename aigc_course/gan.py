"""GANs: losses named after the math, the models, and one training function (Goodfellow 2014; DCGAN, Radford
2015; WGAN, Arjovsky 2017; WGAN-GP, Gulrajani 2017).

The discriminator outputs *logits* ``l`` with ``D(x) = σ(l)``; every log-probability is formed from the logit
with ``softplus`` so that logits of ±100 give exact, finite losses and gradients:

    −log D(x)       = −log σ(l)     = softplus(−l)
    −log(1 − D(x))  = −log σ(−l)    = softplus(l)

A Wasserstein critic outputs unbounded *scores* ``f(x)`` instead. Logits and scores have shape ``(B,)`` or
``(B, 1)``; every loss returns a 0-d tensor (float32 for float16/bfloat16 inputs). Real and fake batches may
have different sizes (each expectation is its own mean).

>>> discriminator_loss(torch.zeros(4), torch.zeros(4))   # D = 1/2 everywhere: log 4 ≈ 1.386, V(D, G) = −log 4

Models: :class:`MLPGenerator` / :class:`MLPDiscriminator` for 2D toy data, :class:`DCGANGenerator` /
:class:`DCGANDiscriminator` for images whose side is a multiple of 4 (8×8 digits, 28×28 MNIST). Each takes
``num_classes`` to become class-conditional. :func:`train_gan` trains a pair with any of the four losses on
top of :func:`aigc_course.train.train` and returns the history and fixed-noise snapshots.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from .device import check_seed
from .distributed import is_main_process
from .train import Callback, History, StepContext, TrainConfig, eval_mode, sample_batch, train
from .validation import check_finite as _check_finite
from .validation import check_generator as _check_generator
from .validation import check_labels as _check_labels
from .validation import conv_image_size as _image_size
from .validation import float_tensor as _float_tensor
from .validation import int_at_least as _int_at_least
from .validation import num_classes as _num_classes

__all__ = [
    "discriminator_loss", "generator_loss", "critic_loss", "wasserstein_generator_loss",
    "clip_weights", "gradient_penalty", "input_gradient_norms",
    "MLPGenerator", "MLPDiscriminator", "DCGANGenerator", "DCGANDiscriminator", "init_dcgan_weights",
    "latent_noise", "generate", "GANConfig", "GANResult", "train_gan",
]

GeneratorLossKind = Literal["non_saturating", "minimax"]
_KINDS = ("non_saturating", "minimax")


# --------------------------------------------------------------------------- input validation

def _batch_values(name: str, x: object) -> torch.Tensor:
    """Logits or scores of shape (B,) or (B, 1), B ≥ 1, finite → a (B,) view."""
    x = _float_tensor(name, x)
    if not (x.ndim == 1 or (x.ndim == 2 and x.shape[1] == 1)):
        raise ValueError(f"{name} must have shape (B,) or (B, 1), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty batch, got batch size 0")
    _check_finite(name, x)
    if x.dtype in (torch.float16, torch.bfloat16):   # e.g. under autocast: reduce in float32
        x = x.float()
    return x.reshape(-1)


# --------------------------------------------------------------------------- the original GAN

def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−E_x[log D(x)] − E_z[log(1 − D(G(z)))] from logits: (B,) or (B, 1) each → 0-d.

    This is −V(D, G), so minimising it maximises the value function; at D = 1/2 it equals log 4.
    """
    real = _batch_values("real_logits", real_logits)
    fake = _batch_values("fake_logits", fake_logits)
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def generator_loss(fake_logits: torch.Tensor, kind: GeneratorLossKind = "non_saturating") -> torch.Tensor:
    """The generator's loss from the discriminator's logits on fakes: (B,) or (B, 1) → 0-d.

    - ``"minimax"``: minimise E_z[log(1 − D(G(z)))], the value function's own term. Its gradient w.r.t. the
      logit is −D(G(z)), which vanishes when D confidently rejects fakes (D(G(z)) → 0): it saturates.
    - ``"non_saturating"`` (default): minimise −E_z[log D(G(z))]; the gradient is −(1 − D(G(z))) → −1 there.

    Sign note: the article this course corrects writes L_G = E_z[log D(G(z))] *to be minimised*. That is the
    wrong sign — minimising it pushes D(G(z)) towards 0, i.e. helps the discriminator. The non-saturating loss
    minimises the *negative*, −E_z[log D(G(z))].
    """
    if not isinstance(kind, str) or kind not in _KINDS:
        raise ValueError(f"kind must be one of 'non_saturating', 'minimax', got {kind!r}")
    fake = _batch_values("fake_logits", fake_logits)
    if kind == "minimax":
        return -F.softplus(fake).mean()      # log(1 − σ(l)) = −softplus(l)
    return F.softplus(-fake).mean()          # −log σ(l) = softplus(−l)


# --------------------------------------------------------------------------- Wasserstein GAN

def critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """E_z[f(G(z))] − E_x[f(x)] (the negated Kantorovich–Rubinstein estimate): (B,) or (B, 1) each → 0-d."""
    real = _batch_values("real_scores", real_scores)
    fake = _batch_values("fake_scores", fake_scores)
    return fake.mean() - real.mean()


def wasserstein_generator_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    """−E_z[f(G(z))]: (B,) or (B, 1) → 0-d."""
    return -_batch_values("fake_scores", fake_scores).mean()


def clip_weights(module: nn.Module, c: float) -> nn.Module:
    """Clamp every parameter of ``module`` to [−c, c] in place (WGAN's crude Lipschitz constraint); returns it.

    Buffers (e.g. batch-norm running statistics) are left alone.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        raise TypeError(f"c must be a number, got {type(c).__name__}")
    if not c > 0 or c == float("inf"):
        raise ValueError(f"c must be a positive finite number, got {c}")
    with torch.no_grad():
        for p in module.parameters():
            p.clamp_(-c, c)
    return module


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """WGAN-GP's penalty without its weight λ: mean over the batch of (‖∇f(x̂)‖₂ − 1)², a 0-d tensor.

    ``real`` and ``fake`` have the same shape (B, ...), e.g. (B, D) or (B, C, H, W). x̂ = ε·real + (1 − ε)·fake
    with one ε ~ U(0, 1) per sample, drawn from ``generator`` (or the global RNG); the norm is taken over all
    non-batch dimensions. ``real`` and ``fake`` are detached (the penalty trains the critic only); the gradient
    is built with ``create_graph=True``, so the result backpropagates into the critic's parameters.
    """
    if not callable(critic):
        raise TypeError(f"critic must be callable, got {type(critic).__name__}")
    real = _float_tensor("real", real)
    fake = _float_tensor("fake", fake)
    if real.ndim < 2:
        raise ValueError(f"real must have shape (B, ...) with at least 2 dimensions, got {tuple(real.shape)}")
    if fake.shape != real.shape:
        raise ValueError(f"fake must have the same shape as real {tuple(real.shape)}, got {tuple(fake.shape)}")
    if real.dtype != fake.dtype:
        raise TypeError(f"fake must have the same dtype as real ({real.dtype}), got {fake.dtype}")
    if real.device != fake.device:
        raise ValueError(f"fake must be on the same device as real ({real.device}), got {fake.device}")
    if real.shape[0] == 0:
        raise ValueError("real must be a non-empty batch, got batch size 0")
    _check_finite("real", real)
    _check_finite("fake", fake)
    _check_generator(generator)
    if generator is not None:
        if generator.device.type != real.device.type:
            raise ValueError(f"generator must be on real's device type ({real.device.type}), "
                             f"got {generator.device.type}")

    batch = real.shape[0]
    eps = torch.rand(batch, generator=generator, device=real.device, dtype=real.dtype)
    eps = eps.reshape(batch, *([1] * (real.ndim - 1)))
    x_hat = eps * real.detach() + (1 - eps) * fake.detach()
    with torch.enable_grad():                   # the penalty trains the critic, even when called under no_grad
        norms = _grad_norms(critic, x_hat, create_graph=True)
        return ((norms - 1) ** 2).mean()


def _grad_norms(critic: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, create_graph: bool) -> torch.Tensor:
    """‖∇ₓ f(x_i)‖₂ for every sample of ``x`` (B, ...) → (B,), float32 or wider."""
    batch = x.shape[0]
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        scores = critic(x)
        if not isinstance(scores, torch.Tensor):
            raise TypeError(f"critic must return a torch.Tensor, got {type(scores).__name__}")
        if not (scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1)) or scores.shape[0] != batch:
            raise ValueError(f"critic must return scores of shape ({batch},) or ({batch}, 1), "
                             f"got {tuple(scores.shape)}")
        if not scores.requires_grad:
            raise ValueError("critic's output must depend on its input through autograd (it does not require grad)")
        (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=create_graph, allow_unused=True)
        if grad is None:                        # the critic ignores x: its gradient is zero
            grad = torch.zeros_like(x)
        # Each score depends only on its own sample, so the gradient of the sum gives every ∇f(x_i) at once.
        grad = grad.flatten(1)
        if grad.dtype in (torch.float16, torch.bfloat16):   # too few bits for a sum of squares
            grad = grad.float()
        return torch.linalg.vector_norm(grad, dim=1)


def input_gradient_norms(
    critic: Callable[..., torch.Tensor], x: torch.Tensor, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """‖∇ₓ f(x_i)‖₂ per sample of ``x`` (B, ...) → (B,), detached: how steep the critic is at each point.

    A 1-Lipschitz critic has norms ≤ 1 everywhere; WGAN-GP pushes them towards 1 between real and fake data.
    ``labels`` (B,) are passed on as ``critic(x, labels)`` for a conditional critic. The critic is called in
    whatever mode it is in (a batch-norm critic in training mode updates its running statistics).
    """
    if not callable(critic):
        raise TypeError(f"critic must be callable, got {type(critic).__name__}")
    x = _float_tensor("x", x)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"x must have shape (B, ...) with B >= 1 and at least 2 dimensions, got {tuple(x.shape)}")
    _check_finite("x", x)
    fn = critic if labels is None else (lambda t: critic(t, labels))
    return _grad_norms(fn, x, create_graph=False).detach()


# --------------------------------------------------------------------------- models

def _check_input(name: str, x: object, shape: tuple[int, ...], where: str) -> torch.Tensor:
    """A float tensor of shape (B, *shape) with B >= 1."""
    x = _float_tensor(name, x)
    if tuple(x.shape[1:]) != shape or x.ndim != len(shape) + 1 or x.shape[0] == 0:
        want = ", ".join(["B", *map(str, shape)])
        raise ValueError(f"{name} must have shape ({want}) with B >= 1 for {where}, got {tuple(x.shape)}")
    return x


def init_dcgan_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """DCGAN's init, in place: conv/linear/embedding weights ~ N(0, std²), norm scales ~ N(1, std²), biases 0."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if isinstance(std, bool) or not isinstance(std, numbers.Real) or not (std > 0 and math.isfinite(std)):
        raise ValueError(f"std must be a positive finite number, got {std!r}")
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
        bias = getattr(m, "bias", None)
        if isinstance(bias, torch.Tensor):
            nn.init.zeros_(bias)
    return module


def _projection_logit(h: torch.Tensor, head: nn.Linear, embed: nn.Embedding | None,
                      labels: torch.Tensor | None) -> torch.Tensor:
    """Features h (B, F) → logits (B,): w·h + b, plus embed(y)·h for a conditional (projection) discriminator."""
    out = head(h).squeeze(1)
    if embed is not None:
        out = out + (embed(labels).to(h.dtype) * h).sum(1)
    return out


class MLPGenerator(nn.Module):
    """G(z) for low-dimensional data: ``depth`` hidden ReLU layers of width ``hidden``, a linear output.

    forward(z (B, latent_dim), labels (B,) | None) → (B, out_dim). Conditional (``num_classes``): a learned
    label embedding of size ``latent_dim`` is concatenated to z.
    """

    def __init__(self, latent_dim: int = 2, out_dim: int = 2, hidden: int = 128, depth: int = 3,
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.latent_dim = _int_at_least("latent_dim", latent_dim, 1)
        self.out_dim = _int_at_least("out_dim", out_dim, 1)
        hidden = _int_at_least("hidden", hidden, 1)
        depth = _int_at_least("depth", depth, 1)
        self.num_classes = _num_classes(num_classes)
        self.embed = nn.Embedding(self.num_classes, self.latent_dim) if self.num_classes else None
        width_in = self.latent_dim * (2 if self.embed is not None else 1)
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(width_in if i == 0 else hidden, hidden), nn.ReLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, self.out_dim))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = _check_input("z", z, (self.latent_dim,), "MLPGenerator")
        labels = _check_labels(labels, self.num_classes, z.shape[0], "this generator")
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels).to(z.dtype)], dim=1)
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """D(x) for low-dimensional data: ``depth`` hidden LeakyReLU(0.2) layers, one logit (or critic score) per row.

    forward(x (B, in_dim), labels (B,) | None) → (B,). Conditional: a projection discriminator
    (Miyato & Koyama 2018), logit = w·h(x) + embed(y)·h(x).
    """

    def __init__(self, in_dim: int = 2, hidden: int = 128, depth: int = 3, num_classes: int | None = None) -> None:
        super().__init__()
        self.in_dim = _int_at_least("in_dim", in_dim, 1)
        hidden = _int_at_least("hidden", hidden, 1)
        depth = _int_at_least("depth", depth, 1)
        self.num_classes = _num_classes(num_classes)
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(self.in_dim if i == 0 else hidden, hidden), nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, 1)
        self.embed = nn.Embedding(self.num_classes, hidden) if self.num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = _check_input("x", x, (self.in_dim,), "MLPDiscriminator")
        labels = _check_labels(labels, self.num_classes, x.shape[0], "this discriminator")
        return _projection_logit(self.features(x), self.head, self.embed, labels)


class DCGANGenerator(nn.Module):
    """DCGAN's generator: z → linear → (2w, s/4, s/4) → two stride-2 transposed convolutions → tanh image.

    forward(z (B, latent_dim), labels (B,) | None) → (B, channels, s, s) in (−1, 1), s = ``image_size`` (a
    multiple of 4: 8 for the sklearn digits, 28 for MNIST). Batch norm and ReLU between layers, N(0, 0.02) init.
    Each ConvTranspose2d(kernel 4, stride 2, padding 1) doubles the side: out = (in − 1)·2 − 2·1 + 4 = 2·in.
    """

    def __init__(self, latent_dim: int = 32, image_size: int = 8, channels: int = 1, width: int = 64,
                 num_classes: int | None = None) -> None:
        super().__init__()
        self.latent_dim = _int_at_least("latent_dim", latent_dim, 1)
        self.image_size = _image_size(image_size)
        self.channels = _int_at_least("channels", channels, 1)
        w = _int_at_least("width", width, 1)
        self.num_classes = _num_classes(num_classes)
        base = self.image_size // 4
        self.embed = nn.Embedding(self.num_classes, self.latent_dim) if self.num_classes else None
        width_in = self.latent_dim * (2 if self.embed is not None else 1)
        self.project = nn.Sequential(
            nn.Linear(width_in, 2 * w * base * base, bias=False), nn.Unflatten(1, (2 * w, base, base)),
            nn.BatchNorm2d(2 * w), nn.ReLU())
        self.body = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            nn.ConvTranspose2d(w, self.channels, 4, stride=2, padding=1), nn.Tanh())
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        z = _check_input("z", z, (self.latent_dim,), "DCGANGenerator")
        labels = _check_labels(labels, self.num_classes, z.shape[0], "this generator")
        if self.embed is not None:
            z = torch.cat([z, self.embed(labels).to(z.dtype)], dim=1)
        return self.body(self.project(z))


_NORMS = ("batch", "layer", "none")


class DCGANDiscriminator(nn.Module):
    """DCGAN's discriminator: two stride-2 convolutions with LeakyReLU(0.2) → one logit (or critic score).

    forward(x (B, channels, s, s), labels (B,) | None) → (B,). ``norm`` after the second convolution:
    ``"batch"`` (DCGAN), ``"layer"`` (per-sample, for a WGAN-GP critic, whose penalty is per sample) or
    ``"none"``. Conditional: projection, logit = w·h(x) + embed(y)·h(x). N(0, 0.02) init.
    """

    def __init__(self, image_size: int = 8, channels: int = 1, width: int = 64, num_classes: int | None = None,
                 norm: str = "batch") -> None:
        super().__init__()
        self.image_size = _image_size(image_size)
        self.channels = _int_at_least("channels", channels, 1)
        w = _int_at_least("width", width, 1)
        self.num_classes = _num_classes(num_classes)
        if not isinstance(norm, str) or norm not in _NORMS:
            raise ValueError(f"norm must be one of 'batch', 'layer', 'none', got {norm!r}")
        norm_layer: nn.Module = {"batch": lambda: nn.BatchNorm2d(2 * w), "layer": lambda: nn.GroupNorm(1, 2 * w),
                                 "none": nn.Identity}[norm]()
        base = self.image_size // 4
        self.features = nn.Sequential(
            nn.Conv2d(self.channels, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1, bias=norm == "none"), norm_layer, nn.LeakyReLU(0.2),
            nn.Flatten())
        self.head = nn.Linear(2 * w * base * base, 1)
        self.embed = nn.Embedding(self.num_classes, 2 * w * base * base) if self.num_classes else None
        init_dcgan_weights(self)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        x = _check_input("x", x, (self.channels, self.image_size, self.image_size), "DCGANDiscriminator")
        labels = _check_labels(labels, self.num_classes, x.shape[0], "this discriminator")
        return _projection_logit(self.features(x), self.head, self.embed, labels)


# --------------------------------------------------------------------------- sampling

def _model_device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _latent_dim(model: object, name: str = "generator") -> int:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    dim = getattr(model, "latent_dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise TypeError(f"{name} must have a positive int attribute latent_dim (like MLPGenerator), got {dim!r}")
    return dim


def latent_noise(n: int, latent_dim: int, *, rng: torch.Generator | None = None,
                 device: torch.device | str | None = None) -> torch.Tensor:
    """z ~ N(0, I): (n, latent_dim) float32, drawn on ``rng``'s device (or the global CPU RNG), then moved."""
    n = _int_at_least("n", n, 0)
    latent_dim = _int_at_least("latent_dim", latent_dim, 1)
    if rng is not None and not isinstance(rng, torch.Generator):
        raise TypeError(f"rng must be a torch.Generator or None, got {type(rng).__name__}")
    z = torch.randn(n, latent_dim, generator=rng, device=rng.device if rng is not None else None)
    return z if device is None else z.to(device)


@torch.no_grad()
def generate(model: nn.Module, n: int, *, labels: torch.Tensor | None = None, rng: torch.Generator | None = None,
             batch_size: int = 1024) -> torch.Tensor:
    """``n`` samples G(z) on the model's device, without gradients, the model in eval mode during the call.

    z is drawn from ``rng`` (or the global RNG). ``labels`` (n,) class indices for a conditional generator.
    """
    dim = _latent_dim(model, "model")
    n = _int_at_least("n", n, 1)
    batch_size = _int_at_least("batch_size", batch_size, 1)
    dev = _model_device(model)
    labels = _check_labels(labels, getattr(model, "num_classes", None), n, "this generator")
    z = latent_noise(n, dim, rng=rng, device=dev)
    with eval_mode(model):
        parts = []
        for i in range(0, n, batch_size):
            y = None if labels is None else labels[i:i + batch_size].to(dev)
            parts.append(model(z[i:i + batch_size], y) if y is not None else model(z[i:i + batch_size]))
        return torch.cat(parts)


# --------------------------------------------------------------------------- training

LossKind = Literal["non_saturating", "minimax", "wgan", "wgan_gp"]
_LOSSES = ("non_saturating", "minimax", "wgan", "wgan_gp")


def _positive(name: str, v: object, allow_zero: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"GANConfig.{name} must be a number, got {type(v).__name__} {v!r}")
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"GANConfig.{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {v!r}")
    return float(v)


@dataclass
class GANConfig:
    """Settings of :func:`train_gan` (steps count generator updates; each follows ``n_critic`` D updates).

    Defaults are DCGAN's (Adam, lr 2e-4, betas (0.5, 0.999)). The WGAN papers use ``loss="wgan"`` with
    ``optimizer="rmsprop"``, lr 5e-5, ``clip=0.01``, ``n_critic=5``, and ``loss="wgan_gp"`` with Adam, lr 1e-4,
    betas (0, 0.9), ``gp_weight=10``, ``n_critic=5`` and a critic without batch norm.

    ``grad_accum`` = k: every discriminator and generator update averages the gradients of k micro-batches of
    ``batch_size`` (equal to one batch of k·batch_size for models without batch norm; batch norm normalises
    each micro-batch with its own statistics).
    """

    steps: int
    loss: str = "non_saturating"
    batch_size: int = 64
    n_critic: int = 1
    optimizer: str = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    clip: float = 0.01
    gp_weight: float = 10.0
    lr_schedule: str = "constant"
    snapshot_every: int = 0
    num_snapshot: int = 64
    seed: int = 0
    grad_clip: float | None = None
    amp: bool | None = None
    ckpt_dir: str | None = None
    ckpt_every: int = 0
    log_every: int = 10
    progress: bool = True
    desc: str = "gan"
    grad_accum: int = 1

    def __post_init__(self) -> None:
        for name, low in (("steps", 0), ("batch_size", 1), ("n_critic", 1), ("snapshot_every", 0),
                          ("num_snapshot", 1), ("grad_accum", 1)):
            _int_at_least(f"GANConfig.{name}", getattr(self, name), low)
        if not isinstance(self.loss, str) or self.loss not in _LOSSES:
            raise ValueError(f"GANConfig.loss must be one of {', '.join(map(repr, _LOSSES))}, got {self.loss!r}")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"GANConfig.optimizer must be 'adam' or 'rmsprop', got {self.optimizer!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"GANConfig.lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        _positive("lr_g", self.lr_g)
        _positive("lr_d", self.lr_d)
        _positive("clip", self.clip)
        _positive("gp_weight", self.gp_weight, allow_zero=True)
        b = self.betas
        if (not isinstance(b, Sequence) or len(b) != 2
                or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v < 1 for v in b)):
            raise ValueError(f"GANConfig.betas must be two numbers in [0, 1), got {b!r}")
        check_seed(self.seed)


@dataclass
class GANResult:
    """What :func:`train_gan` returns.

    history: one row per generator step: d_loss, g_loss, grad_norm_d, grad_norm_g; for the GAN losses
        d_real, d_fake = mean D(x) and mean D(G(z)) (probabilities); for the WGAN losses wasserstein =
        E f(x) − E f(G(z)) (the critic's estimate of W1), and gp for "wgan_gp".
    snapshots: (step, G(fixed_noise)) pairs, samples float32 on the CPU; step 0 is before training.
    """

    history: History
    snapshots: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    fixed_noise: torch.Tensor | None = None
    fixed_labels: torch.Tensor | None = None
    seconds: float = 0.0


def _sample_shape(generator: nn.Module) -> tuple[int, ...]:
    """Shape of one sample, found by one probe batch in eval mode (no RNG and no statistics touched)."""
    probe_labels = torch.zeros(2, dtype=torch.long) if getattr(generator, "num_classes", None) else None
    out = generate(generator, 2, labels=probe_labels, rng=torch.Generator().manual_seed(0))
    if not isinstance(out, torch.Tensor) or out.ndim < 2:
        raise TypeError("generator must return a tensor of shape (B, ...)")
    return tuple(out.shape[1:])


def train_gan(
    generator: nn.Module,
    discriminator: nn.Module,
    data: torch.Tensor | Callable[[int], torch.Tensor | tuple[torch.Tensor, torch.Tensor]],
    config: GANConfig,
    *,
    labels: torch.Tensor | None = None,
    callbacks: Sequence[Callback] = (),
    on_snapshot: Callable[[int, torch.Tensor], None] | None = None,
    device: torch.device | str | None = None,
) -> GANResult:
    """Train ``generator`` against ``discriminator`` for ``config.steps`` generator updates; returns a GANResult.

    ``data``: real samples (N, ...) drawn with replacement, or a callable ``batch_size → batch`` drawing from
    torch's global RNG (e.g. ``lambda n: mixture.sample(n)``); for conditional models it returns
    ``(x, labels)``. ``labels`` (N,) go with a tensor ``data`` for conditional models (fakes get the labels of
    the real batch, so classes are as frequent as in the data). Built on :func:`~aigc_course.train.train`:
    models and optimizers are named "generator" and "discriminator", so checkpoints and exact resume work
    as there (snapshots are kept in memory only). ``on_snapshot(step, samples)`` runs at every snapshot
    (on rank 0 only in a distributed run, see :mod:`aigc_course.distributed`).
    """
    dim = _latent_dim(generator)
    if not isinstance(discriminator, nn.Module):
        raise TypeError(f"discriminator must be a torch.nn.Module, got {type(discriminator).__name__}")
    if not isinstance(config, GANConfig):
        raise TypeError(f"config must be a GANConfig, got {type(config).__name__}")
    if on_snapshot is not None and not callable(on_snapshot):
        raise TypeError(f"on_snapshot must be callable or None, got {type(on_snapshot).__name__}")
    n_classes = getattr(generator, "num_classes", None)
    if getattr(discriminator, "num_classes", None) != n_classes:
        raise ValueError(f"generator and discriminator must agree on num_classes, got {n_classes} and "
                         f"{getattr(discriminator, 'num_classes', None)}")
    dev = torch.device(device) if device is not None else _model_device(generator)
    generator.to(dev)
    discriminator.to(dev)
    shape = _sample_shape(generator)

    def check_batch(x: object, what: str) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{what} must be a floating-point tensor of samples, got "
                            f"{x.dtype if isinstance(x, torch.Tensor) else type(x).__name__}")
        if tuple(x.shape[1:]) != shape or x.shape[0] == 0:
            raise ValueError(f"{what} must have shape (N, {', '.join(map(str, shape))}) like the generator's "
                             f"samples, got {tuple(x.shape)}")
        _check_finite(what, x)
        return x

    if callable(data) and not isinstance(data, torch.Tensor):
        if labels is not None:
            raise ValueError("labels go with a tensor data; a callable data returns (x, labels) itself")
        checked = False

        def real_batch(bs: int) -> tuple[torch.Tensor, torch.Tensor | None]:
            nonlocal checked
            out = data(bs)
            x, y = out if n_classes is not None and isinstance(out, tuple) else (out, None)
            if not checked:
                check_batch(x, "data(batch_size)")
                _check_labels(y, n_classes, x.shape[0], "this generator")
                checked = True
            return x.to(dev), (None if y is None else y.to(dev))
    else:
        data = check_batch(data, "data").to(dev)
        y_all = _check_labels(labels, n_classes, data.shape[0], "this generator")
        y_all = None if y_all is None else y_all.to(dev)

        def real_batch(bs: int) -> tuple[torch.Tensor, torch.Tensor | None]:
            if y_all is None:
                return sample_batch(data, batch_size=bs)[0], None
            return sample_batch(data, y_all, batch_size=bs)   # type: ignore[return-value]

    if config.optimizer == "adam":
        opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=tuple(config.betas))
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=tuple(config.betas))
    else:
        opt_g = torch.optim.RMSprop(generator.parameters(), lr=config.lr_g)
        opt_d = torch.optim.RMSprop(discriminator.parameters(), lr=config.lr_d)
    optimizers = {"generator": opt_g, "discriminator": opt_d}
    schedulers = None
    if config.lr_schedule == "cosine" and config.steps > 0:
        schedulers = {k: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=config.steps)
                      for k, o in optimizers.items()}

    rng = torch.Generator().manual_seed(config.seed)
    fixed_noise = latent_noise(config.num_snapshot, dim, rng=rng)
    fixed_labels = (torch.arange(config.num_snapshot) % n_classes) if n_classes is not None else None
    result = GANResult(History(), [], fixed_noise, fixed_labels)
    wasserstein = config.loss in ("wgan", "wgan_gp")
    G, D = generator, discriminator

    def G_(z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return G(z) if y is None else G(z, y)

    def D_(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        return D(x) if y is None else D(x, y)

    def snapshot(step: int) -> None:
        with eval_mode(G), torch.no_grad():
            y = None if fixed_labels is None else fixed_labels.to(dev)
            samples = G_(fixed_noise.to(dev), y).float().cpu()
        result.snapshots.append((step, samples))
        if on_snapshot is not None and is_main_process():  # one writer in a distributed run
            on_snapshot(step, samples)

    k = config.grad_accum

    def update(ctx: StepContext, name: str, i: int, loss: torch.Tensor) -> float | None:
        """Micro-batch i of k: its gradient is added; the last one applies the update (returns the norm)."""
        if i < k - 1:
            ctx.accumulate(loss / k, name)
            return None
        return ctx.optimize(loss / k, name)

    # Distributed runs: no DDP wrapper here. A step runs D several times (real, fake, the gradient penalty,
    # then D(G(z)) for the generator) before one backward, which DDP's per-forward gradient hooks do not
    # allow; instead train()'s ctx.optimize averages each optimizer's gradients over the ranks before
    # clipping, and train() averages batch norm's running statistics after every step. Batch norm still
    # normalises each rank's batch with that batch's own statistics.
    def step(ctx: StepContext) -> dict[str, float]:
        bs = config.batch_size
        metrics: dict[str, float] = {}
        ys: list[torch.Tensor | None] = []
        for _ in range(config.n_critic):
            sums: dict[str, float] = {}
            ys = []
            for i in range(k):
                x, y = real_batch(bs)
                ys.append(y)
                z = torch.randn(bs, dim, device=dev)
                with torch.no_grad(), ctx.autocast():
                    fake = G_(z, y)
                fake = fake.to(x.dtype)
                with ctx.autocast():
                    real_out, fake_out = D_(x, y), D_(fake, y)
                micro: dict[str, float] = {}
                if wasserstein:
                    d_loss = critic_loss(real_out, fake_out)
                    micro["wasserstein"] = float(real_out.detach().float().mean() - fake_out.detach().float().mean())
                    if config.loss == "wgan_gp":
                        gp = gradient_penalty(lambda t, y=y: D_(t, y), x, fake)
                        d_loss = d_loss + config.gp_weight * gp
                        micro["gp"] = float(gp.detach())
                else:
                    d_loss = discriminator_loss(real_out, fake_out)
                    micro["d_real"] = float(torch.sigmoid(real_out.detach().float()).mean())
                    micro["d_fake"] = float(torch.sigmoid(fake_out.detach().float()).mean())
                norm = update(ctx, "discriminator", i, d_loss)
                micro["d_loss"] = float(d_loss.detach())
                for key, v in micro.items():
                    sums[key] = sums.get(key, 0.0) + v
            d_loss_mean = sums.pop("d_loss") / k
            metrics.update({key: v / k for key, v in sums.items()})
            metrics["grad_norm_d"] = norm  # type: ignore[assignment]
            metrics["d_loss"] = d_loss_mean
            if config.loss == "wgan":
                clip_weights(D, config.clip)
        g_sum = 0.0
        for i, y in enumerate(ys):  # the labels of the last critic round's real batches
            z = torch.randn(bs, dim, device=dev)
            with ctx.autocast():
                fake_out = D_(G_(z, y), y)
            if wasserstein:
                g_loss = wasserstein_generator_loss(fake_out)
            else:
                g_loss = generator_loss(fake_out, kind=config.loss)   # type: ignore[arg-type]
            norm = update(ctx, "generator", i, g_loss)
            g_sum += float(g_loss.detach())
        metrics["grad_norm_g"] = norm  # type: ignore[assignment]
        metrics["g_loss"] = g_sum / k
        done = ctx.step + 1
        if done == config.steps or (config.snapshot_every and done % config.snapshot_every == 0):
            snapshot(done)
        return metrics

    if config.snapshot_every:
        snapshot(0)
    tc = TrainConfig(steps=config.steps, grad_clip=config.grad_clip, amp=config.amp, ckpt_dir=config.ckpt_dir,
                     ckpt_every=config.ckpt_every, log_every=config.log_every, progress=config.progress,
                     desc=config.desc)
    start = time.perf_counter()
    result.history = train(step, models={"generator": G, "discriminator": D}, optimizers=optimizers,
                           config=tc, schedulers=schedulers, callbacks=callbacks, device=dev,
                           settings={"grad_accum": k} if k > 1 else None)
    result.seconds = time.perf_counter() - start
    return result
