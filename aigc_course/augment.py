"""Small-image augmentations (integer shifts, small rotations, Gaussian noise) as batched tensor ops.

Every function takes a batch of images ``x`` of shape ``(N, C, H, W)`` — or ``(N, H, W)``, one channel, as
:func:`aigc_course.data.load_digits_split` returns them — as a floating-point tensor on any device, and returns a
new tensor of the same shape, dtype and device (the input is never modified). Each image gets its own transform,
with no Python loop over images.

Conventions, in image coordinates (row 0 at the top, as ``imshow`` draws it):

- :func:`shift` moves the content by ``dx`` columns to the right and ``dy`` rows down (negative: left / up);
  pixels that enter the frame are zero, nothing wraps around. It is one ``gather`` with clamped indices,
  then zero wherever the source pixel lies outside the image.
- :func:`rotate` turns the content by ``degrees`` counter-clockwise as displayed (90° takes the top-right
  corner to the top-left, like ``torch.rot90(x, 1, (-2, -1))``) about the image centre, with
  ``affine_grid`` / ``grid_sample`` (bilinear, zero padding).

The random versions draw their amounts on the generator's device (the CPU, from torch's global RNG, when
``generator`` is None) and then move them to ``x``'s device, so one seed gives the same augmentation on every
device. Inside :func:`aigc_course.train.train` leave ``generator=None``: the global RNG is part of its
checkpoints, so a resumed run repeats the same augmentations.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import torch
from torch.nn import functional as F

from .validation import check_generator as _check_generator
from .validation import float_tensor as _float_tensor
from .validation import int_at_least as _int_at_least

__all__ = ["Augmenter", "add_noise", "augment", "random_rotation", "random_shift", "rotate", "shift"]

Clamp = tuple[float, float] | None


# --------------------------------------------------------------------------- argument checks

def _images(x: object) -> tuple[torch.Tensor, bool]:
    """``x`` as (N, C, H, W) and whether it came as (N, H, W)."""
    x = _float_tensor("x", x)
    if x.ndim not in (3, 4) or any(s == 0 for s in x.shape[1:]):
        raise ValueError(f"x must be a batch of images of shape (N, C, H, W) or (N, H, W) with C, H, W >= 1, "
                         f"got shape {tuple(x.shape)}")
    return (x.unsqueeze(1), True) if x.ndim == 3 else (x, False)


def _number(name: str, v: object, low: float, high: float = float("inf")) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(v).__name__} {v!r}")
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v!r}")
    if not low <= float(v) <= high:
        where = f">= {low:g}" if high == float("inf") else f"in [{low:g}, {high:g}]"
        raise ValueError(f"{name} must be {where}, got {v!r}")
    return float(v)


def _clamp(v: object) -> Clamp:
    if v is None:
        return None
    if (not isinstance(v, (tuple, list)) or len(v) != 2
            or not all(isinstance(b, numbers.Real) and not isinstance(b, bool) for b in v)):
        raise TypeError(f"clamp must be None or a pair (low, high) of numbers, got {v!r}")
    if not float(v[0]) < float(v[1]):
        raise ValueError(f"clamp must have low < high, got {tuple(v)!r}")
    return float(v[0]), float(v[1])


def _per_image(name: str, v: object, n: int, integer: bool) -> torch.Tensor:
    """A number or a tensor of shape () or (n,) → a tensor of shape (n,) (int64 or float64)."""
    kind = "an int" if integer else "a number"
    if isinstance(v, torch.Tensor):
        if integer and (v.is_floating_point() or v.is_complex() or v.dtype == torch.bool):
            raise TypeError(f"{name} must be an int or an integer tensor, got dtype {v.dtype}")
        if not integer and (v.is_complex() or v.dtype == torch.bool):
            raise TypeError(f"{name} must be a number or a real tensor, got dtype {v.dtype}")
        if v.ndim > 1 or (v.ndim == 1 and v.shape[0] != n):
            raise ValueError(f"{name} must be {kind} or a tensor of shape ({n},), one per image, "
                             f"got shape {tuple(v.shape)}")
        t = v.to(torch.int64 if integer else torch.float64)
    elif isinstance(v, bool) or not isinstance(v, numbers.Integral if integer else numbers.Real):
        raise TypeError(f"{name} must be {kind} or a tensor of shape ({n},), got {type(v).__name__}")
    elif integer:
        big = 2 ** 62  # a shift this large already empties the image; keeps huge Python ints inside int64
        t = torch.tensor(max(-big, min(big, v)), dtype=torch.int64)
    else:
        t = torch.tensor(float(v), dtype=torch.float64)
    if not integer and not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")
    return t.expand(n)


def _max_shift(name: str, v: object, img: torch.Tensor) -> int:
    m = _int_at_least(name, v, 0)
    h, w = img.shape[-2:]
    if m >= min(h, w):
        raise ValueError(f"{name} must be < the image size {h}×{w}, got {m}")
    return m


def _draw_device(generator: torch.Generator | None) -> torch.device:
    return torch.device("cpu") if generator is None else generator.device


# --------------------------------------------------------------------------- deterministic transforms

def shift(x: torch.Tensor, dx: int | torch.Tensor, dy: int | torch.Tensor) -> torch.Tensor:
    """Move image ``n`` by ``dx[n]`` columns right and ``dy[n]`` rows down, filling with zeros (no wrap-around).

    x: (N, C, H, W) or (N, H, W); dx, dy: ints (the same for every image) or integer tensors of shape (N,).
    ``out[n, c, i, j] = x[n, c, i - dy[n], j - dx[n]]`` where that pixel exists, else 0.
    """
    x, squeeze = _images(x)
    n, c, h, w = x.shape
    dx = _per_image("dx", dx, n, integer=True).to(x.device)
    dy = _per_image("dy", dy, n, integer=True).to(x.device)
    rows = torch.arange(h, device=x.device) - dy[:, None]             # (N, H): source row of each output row
    cols = torch.arange(w, device=x.device) - dx[:, None]             # (N, W)
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    src = rows.clamp(0, h - 1)[:, :, None] * w + cols.clamp(0, w - 1)[:, None, :]     # (N, H, W) flat index
    out = x.reshape(n, c, h * w).gather(2, src.reshape(n, 1, h * w).expand(n, c, h * w)).reshape(n, c, h, w)
    out = torch.where(inside[:, None], out, torch.zeros((), dtype=x.dtype, device=x.device))
    return out.squeeze(1) if squeeze else out


def rotate(x: torch.Tensor, degrees: float | torch.Tensor) -> torch.Tensor:
    """Rotate image ``n`` by ``degrees[n]`` counter-clockwise (as displayed) about its centre.

    x: (N, C, H, W) or (N, H, W); degrees: a number or a tensor of shape (N,). Bilinear interpolation, zero
    outside the frame; non-square images rotate in pixel units (not distorted). float16/bfloat16 are computed
    in float32.
    """
    x, squeeze = _images(x)
    n, c, h, w = x.shape
    a = torch.deg2rad(_per_image("degrees", degrees, n, integer=False).to(x.device))
    cos, sin, zero = a.cos(), a.sin(), torch.zeros_like(a)
    # Output pixel (u, v) (pixel units from the centre, v down) samples the input at R(−θ)(u, v) — a
    # counter-clockwise turn on screen — written in affine_grid's normalised coordinates u/(W/2), v/(H/2).
    theta = torch.stack([torch.stack([cos, -sin * (h / w), zero], -1),
                         torch.stack([sin * (w / h), cos, zero], -1)], -2)          # (N, 2, 3)
    if n == 0:  # affine_grid refuses an empty batch
        return x.squeeze(1).clone() if squeeze else x.clone()
    work = x if x.dtype in (torch.float32, torch.float64) else x.float()
    grid = F.affine_grid(theta.to(work.dtype), [n, c, h, w], align_corners=False)
    out = F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros", align_corners=False).to(x.dtype)
    return out.squeeze(1) if squeeze else out


# --------------------------------------------------------------------------- random transforms

def random_shift(x: torch.Tensor, max_shift: int = 1, generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`shift` each image by its own dx, dy drawn uniformly from {−max_shift, …, max_shift}.

    x: (N, C, H, W) or (N, H, W); max_shift: an int, 0 <= max_shift < min(H, W).
    """
    img, _ = _images(x)
    m = _max_shift("max_shift", max_shift, img)
    g = _check_generator(generator)
    dx, dy = torch.randint(-m, m + 1, (2, img.shape[0]), generator=g, device=_draw_device(g))
    return shift(x, dx, dy)


def random_rotation(x: torch.Tensor, max_degrees: float = 10.0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`rotate` each image by its own angle drawn uniformly from [−max_degrees, max_degrees].

    x: (N, C, H, W) or (N, H, W); max_degrees in [0, 180].
    """
    img, _ = _images(x)
    m = _number("max_degrees", max_degrees, 0.0, 180.0)
    g = _check_generator(generator)
    u = torch.rand(img.shape[0], generator=g, device=_draw_device(g), dtype=torch.float64)
    return rotate(x, (2.0 * u - 1.0) * m)


def add_noise(x: torch.Tensor, std: float = 0.05, generator: torch.Generator | None = None,
              clamp: Clamp = (0.0, 1.0)) -> torch.Tensor:
    """``x + std·ε`` with ε ~ N(0, I) of x's shape, then clamped to ``clamp`` = (low, high) (None: not clamped).

    x: any floating-point tensor of shape (N, C, H, W) or (N, H, W); std >= 0.
    """
    img, _ = _images(x)
    s = _number("std", std, 0.0)
    bounds = _clamp(clamp)
    g = _check_generator(generator)
    wide = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    eps = torch.randn(x.shape, generator=g, device=_draw_device(g), dtype=wide).to(x.device)
    out = (x.to(wide) + s * eps).to(x.dtype)
    return out if bounds is None else out.clamp(*bounds)


def augment(x: torch.Tensor, shift: int = 1, degrees: float = 10.0, noise: float = 0.0,
            generator: torch.Generator | None = None, clamp: Clamp = (0.0, 1.0)) -> torch.Tensor:
    """:func:`random_rotation` (±``degrees``), then :func:`random_shift` (±``shift`` pixels), then
    :func:`add_noise` (std ``noise``, clamped to ``clamp``), each per image. A step whose amount is 0 is
    skipped and draws nothing. x: (N, C, H, W) or (N, H, W); returns the same shape.

    Rotation and shift keep [0, 1] data in [0, 1] (bilinear weights, zero fill); ``clamp`` applies to the noise
    step only — pass ``clamp=(-1.0, 1.0)`` for data in [−1, 1].
    """
    img, _ = _images(x)
    _check(shift, degrees, noise, clamp)
    _max_shift("shift", shift, img)
    out = x
    if degrees > 0:
        out = random_rotation(out, degrees, generator)
    if shift > 0:
        out = random_shift(out, shift, generator)
    if noise > 0:
        out = add_noise(out, noise, generator, clamp)
    return out.clone() if out is x else out


def _check(shift: object, degrees: object, noise: object, clamp: object) -> None:
    _int_at_least("shift", shift, 0)
    _number("degrees", degrees, 0.0, 180.0)
    _number("noise", noise, 0.0)
    _clamp(clamp)


@dataclass(frozen=True)
class Augmenter:
    """A callable ``x → augment(x, shift, degrees, noise, generator, clamp)`` for a training step, e.g.
    ``aug = Augmenter(shift=1, degrees=10)`` then ``x = aug(x)`` on each minibatch. Its settings are checked
    when it is built; the image-size check on ``shift`` when it is called.
    """

    shift: int = 1
    degrees: float = 10.0
    noise: float = 0.0
    clamp: Clamp = (0.0, 1.0)
    generator: torch.Generator | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check(self.shift, self.degrees, self.noise, self.clamp)
        _check_generator(self.generator)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return augment(x, self.shift, self.degrees, self.noise, self.generator, self.clamp)
