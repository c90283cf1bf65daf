"""scikit-learn's 8x8 handwritten digits (1,797 images, ships with the package): a fixed stratified split."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from numbers import Real

import numpy as np
import torch

from ..device import check_seed, rng_state_kept

DIGITS_MAX = 16.0  # raw pixel values of the 8x8 digits are integers 0..16


@dataclass(frozen=True, eq=False)  # eq=False: tensors have no single truth value
class DigitsSplit:
    """A train/test split of the 8x8 digits.

    Images are float32 ``(N, 8, 8)`` in [0, 1]; labels are int64 ``(N,)`` in 0..9.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    def __repr__(self) -> str:
        return (f"DigitsSplit(train={tuple(self.train_images.shape)}, test={tuple(self.test_images.shape)}, "
                f"classes={int(self.train_labels.max()) + 1})")


def _require_tensor(x: object, name: str, floating: bool = True) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    return x


def to_unit(x: torch.Tensor, max_value: float = DIGITS_MAX) -> torch.Tensor:
    """Scale raw pixel values [0, max_value] to [0, 1] (any shape; integer input becomes float32)."""
    x = _require_tensor(x, "x", floating=False)
    if isinstance(max_value, bool) or not isinstance(max_value, Real) or not max_value > 0:
        raise ValueError(f"max_value must be a positive number, got {max_value!r}")
    if not x.is_floating_point():
        x = x.to(torch.float32)
    return x / float(max_value)


def to_symmetric(x: torch.Tensor) -> torch.Tensor:
    """Map images in [0, 1] to [-1, 1] (the range tanh decoders and diffusion models use); any shape."""
    return _require_tensor(x, "x") * 2.0 - 1.0


def from_symmetric(x: torch.Tensor) -> torch.Tensor:
    """Map [-1, 1] back to [0, 1], clamping model outputs that overshoot; any shape."""
    return ((_require_tensor(x, "x") + 1.0) / 2.0).clamp(0.0, 1.0)


@functools.lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    with rng_state_kept():          # importing sklearn.datasets draws from Python's global `random`
        from sklearn.datasets import load_digits

        bunch = load_digits()
    return bunch.images.astype(np.float32), bunch.target.astype(np.int64)


def load_digits_split(test_fraction: float = 0.2, seed: int = 0) -> DigitsSplit:
    """Load the 8x8 digits and split them, stratified by class, into train and test.

    In every class, ``round(test_fraction * n_class)`` images (at least one, at most ``n_class - 1``) go to
    the test set. The shuffle uses numpy's legacy ``RandomState(seed)``, whose stream is frozen, so the
    split is identical on every machine. Returns images float32 ``(N, 8, 8)`` in [0, 1] and labels int64
    ``(N,)``.
    """
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, Real):
        raise TypeError(f"test_fraction must be a float in (0, 1), got {type(test_fraction).__name__}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    seed = check_seed(seed)

    images, labels = _raw_digits()
    rng = np.random.RandomState(seed)
    train_idx: list[np.ndarray] = []
    test_idx: list[np.ndarray] = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = min(max(int(round(float(test_fraction) * len(idx))), 1), len(idx) - 1)
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    # Shuffle across classes so that consecutive batches mix digits.
    train = rng.permutation(np.concatenate(train_idx))
    test = rng.permutation(np.concatenate(test_idx))

    def tensors(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_unit(torch.from_numpy(images[idx].copy()))
        return x, torch.from_numpy(labels[idx].copy())

    train_x, train_y = tensors(train)
    test_x, test_y = tensors(test)
    return DigitsSplit(train_x, train_y, test_x, test_y)
