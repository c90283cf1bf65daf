"""Input checks shared by the package's modules: each raises a ValueError or TypeError that names the argument
and says what was expected, so that bad input never surfaces as a raw error from deep inside torch."""

from __future__ import annotations

import numbers

import torch

__all__ = ["check_finite", "check_generator", "check_labels", "conv_image_size", "float_tensor", "int_at_least",
           "num_classes"]


def check_finite(name: str, t: torch.Tensor) -> None:
    """ValueError unless every entry of ``t`` is finite."""
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")


def check_generator(generator: object) -> torch.Generator | None:
    """``generator`` if it is a torch.Generator or None, else TypeError."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    return generator


def float_tensor(name: str, x: object) -> torch.Tensor:
    """``x`` if it is a floating-point tensor, else TypeError."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def int_at_least(name: str, v: object, low: int) -> int:
    """``v`` as an int >= ``low`` (bool refused): TypeError for a non-int, ValueError below ``low``."""
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
    if v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    return int(v)


def num_classes(v: object) -> int | None:
    """A model's ``num_classes``: None (unconditional) or an int >= 2."""
    return None if v is None else int_at_least("num_classes", v, 2)


def conv_image_size(v: object) -> int:
    """The side of a square image for the conv models: an int >= 8 and a multiple of 4 (two stride-2 layers)."""
    size = int_at_least("image_size", v, 8)
    if size % 4:
        raise ValueError(f"image_size must be a multiple of 4 (two stride-2 layers), got {size}")
    return size


def check_labels(labels: object, num_classes: int | None, batch: int, where: str) -> torch.Tensor | None:
    """Class indices for a batch of ``batch`` samples of a model with ``num_classes`` (None: unconditional,
    then labels must be None too) → int64 (batch,) or None. ``where`` names the model in messages."""
    if num_classes is None:
        if labels is not None:
            raise ValueError(f"labels were given, but {where} is unconditional (num_classes=None)")
        return None
    if labels is None:
        raise ValueError(f"{where} is class-conditional (num_classes={num_classes}): pass labels of shape ({batch},)")
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor of class indices, got {type(labels).__name__}")
    if labels.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise TypeError(f"labels must be an integer tensor (class indices), got dtype {labels.dtype}")
    if tuple(labels.shape) != (batch,):
        raise ValueError(f"labels must have shape ({batch},) to match the batch, got {tuple(labels.shape)}")
    if batch and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes - 1}], got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")
    return labels.long()
