r"""Scores for image models on the 8x8 digits, shared by every lesson so all models are judged alike.

A small convolutional classifier, trained once (deterministically) on the digits training split, gives:

- :func:`classifier_confidence`: the mean max-softmax probability. Sharp, digit-like samples score near 1;
  blurry or ambiguous ones lower. It measures *quality* only: a generator that draws one perfect digit scores
  as well as one that draws all ten.
- :func:`class_histogram`: the fraction of samples predicted as each digit. A collapsed generator shows up as
  a spike; the real data is close to uniform. It measures *coverage* only.
- :func:`frechet_distance`: FID's formula, which measures both at once. Fit a Gaussian to each set of
  features (mean :math:`\mu`, covariance :math:`\Sigma`) and take the squared 2-Wasserstein distance between
  the two Gaussians,

  .. math::

      d^2 = \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{Tr}\bigl(\Sigma_1 + \Sigma_2
            - 2 (\Sigma_1 \Sigma_2)^{1/2}\bigr).

  The mean term punishes samples that look wrong on average; the trace term punishes a spread that is too
  small (mode collapse) or too large (noise). The matrix square root is taken as
  :math:`\operatorname{Tr}(\Sigma_1\Sigma_2)^{1/2} = \operatorname{Tr}(\Sigma_1^{1/2}\Sigma_2\Sigma_1^{1/2})^{1/2}`
  (same eigenvalues), whose argument is symmetric positive semi-definite, so one symmetric eigen-decomposition
  gives it stably, in float64.

Why this classifier's features and not Inception's (as the FID paper uses)? Inception-v3 was trained on
299x299 photographs; 8x8 grey digits upsampled to that size are far outside what it has seen, and its 2048-d
features would need thousands of samples for a covariance estimate. The penultimate layer of a classifier
trained on the digits themselves (``FEATURE_DIM`` = 32 features) knows what makes a digit a digit, and its
covariance is well estimated from a few hundred images. The numbers are therefore *not* comparable with
published FIDs, only between models scored here.

A Fréchet distance estimated from samples is biased upwards, by more for fewer samples: even real images
do not score 0 against other real images. :func:`digits_frechet_floor` (real test split vs real training
split) is the score a perfect generator would get, and the reference point for :func:`digits_frechet_distance`.

The classifier's weights are cached as safetensors under :func:`aigc_course.config.cache_dir`, in a file
whose name carries a hash of the architecture and training recipe (a changed recipe retrains); a missing or
damaged file is rebuilt (a few seconds on one CPU thread). Images are float ``(B, 1, 8, 8)``,
``(B, 8, 8)`` or ``(B, 64)`` with values in [0, 1]; map tanh outputs with
:func:`aigc_course.data.digits.from_symmetric` first.

>>> clf = digit_classifier()
>>> digits_frechet_distance(samples), digits_frechet_floor()   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_weights, save_weights
from .config import cache_dir, require_bool
from .device import rng_state_kept
from .train import eval_mode

if TYPE_CHECKING:
    from .data.digits import DigitsSplit

__all__ = [
    "FEATURE_DIM", "IMAGE_TOLERANCE", "NUM_CLASSES", "TRAIN_RECIPE", "DigitClassifier",
    "class_histogram", "classifier_cache_path", "classifier_confidence", "classifier_features",
    "digit_classifier", "digits_frechet_distance", "digits_frechet_floor", "frechet_distance",
    "gaussian_frechet_distance", "predict_digits",
]

NUM_CLASSES = 10
FEATURE_DIM = 32
IMAGE_TOLERANCE = 1e-3  # pixel values may stray this far outside [0, 1] (rounding in a sigmoid or a resize)
# Everything that decides the trained weights; its hash (with the architecture's) names the cache file.
TRAIN_RECIPE: dict[str, float | int] = {
    "seed": 0, "epochs": 20, "batch_size": 64, "lr": 3e-3, "test_fraction": 0.2, "split_seed": 0,
}

_loaded: dict[Path, DigitClassifier] = {}  # in-process cache, keyed by the cache file


class DigitClassifier(nn.Module):
    """A small conv net for 8x8 digits: two 3x3 convolutions, a 2x2 max-pool, a 32-unit feature layer.

    ``features(x)`` gives the penultimate activations ``(B, FEATURE_DIM)``, ``forward(x)`` the logits
    ``(B, 10)``; ``x`` is ``(B, 1, 8, 8)``. SiLU activations (not ReLU) keep every feature alive, so the
    feature covariance has full rank. No dropout or batch norm: train and eval mode compute the same thing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.SiLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.SiLU(),
            nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(32 * 4 * 4, FEATURE_DIM), nn.SiLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 8, 8) -> (B, FEATURE_DIM) penultimate features."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 8, 8) -> (B, 10) logits."""
        return self.head(self.body(x))


def _recipe_hash() -> str:
    with rng_state_kept():  # building the module to print it draws its initial weights
        architecture = repr(DigitClassifier())
    text = json.dumps({"architecture": architecture, "recipe": TRAIN_RECIPE}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def classifier_cache_path() -> Path:
    """Where :func:`digit_classifier` keeps its weights: ``cache_dir()/digit_classifier-<recipe hash>.safetensors``."""
    return cache_dir() / f"digit_classifier-{_recipe_hash()}.safetensors"


def _train_classifier() -> DigitClassifier:
    """Train a fresh classifier on the training split; bit-identical on every call (same machine and threads).

    The global random streams are left untouched (everything runs under :func:`rng_state_kept`; loading
    the split imports scikit-learn, which draws from Python's ``random`` once), and minibatches come from
    the classifier's own ``torch.Generator``.
    """
    with rng_state_kept():
        split = _split()
        torch.manual_seed(int(TRAIN_RECIPE["seed"]))
        model = DigitClassifier()
        return _fit(model, split.train_images[:, None], split.train_labels)


def _split() -> DigitsSplit:
    """The digits split the classifier is trained on (global random streams left untouched)."""
    from .data.digits import load_digits_split

    r = TRAIN_RECIPE
    with rng_state_kept():
        return load_digits_split(test_fraction=float(r["test_fraction"]), seed=int(r["split_seed"]))


def _fit(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor) -> DigitClassifier:
    """Adam on the cross-entropy, ``TRAIN_RECIPE["epochs"]`` shuffled passes over ``x`` (N, 1, 8, 8)."""
    r = TRAIN_RECIPE
    gen = torch.Generator().manual_seed(int(r["seed"]))
    opt = torch.optim.Adam(model.parameters(), lr=float(r["lr"]))
    bs = int(r["batch_size"])
    model.train()
    with torch.enable_grad():
        for _ in range(int(r["epochs"])):
            perm = torch.randperm(len(x), generator=gen)
            for i in range(0, len(x), bs):
                idx = perm[i:i + bs]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
    return model.eval().requires_grad_(False)


def _load_cached(path: Path) -> DigitClassifier | None:
    """The classifier stored at ``path``; None (with a warning) when the file is damaged or wrong."""
    model = DigitClassifier()
    try:
        load_weights(model, path)
    except ValueError as e:
        warnings.warn(f"retraining the digit classifier: {e}", RuntimeWarning, stacklevel=3)
        return None
    if not all(torch.isfinite(p).all() for p in model.parameters()):
        warnings.warn(f"retraining the digit classifier: weights in {path} are not finite", RuntimeWarning,
                      stacklevel=3)
        return None
    return model.eval().requires_grad_(False)


def digit_classifier(*, retrain: bool = False) -> DigitClassifier:
    """The shared digit classifier (eval mode, CPU, no gradients), trained once and then cached.

    Looked up in this process first, then in :func:`classifier_cache_path`; a missing file is rebuilt by
    training (``TRAIN_RECIPE``: a few seconds on one CPU thread), and so is a damaged one (truncated, other
    tensors, non-finite values), with a ``RuntimeWarning`` saying what was wrong. ``retrain=True`` trains
    afresh and overwrites the file. The same object is returned on every call; do not train it further.
    """
    require_bool(retrain, "retrain")
    path = classifier_cache_path()
    if not retrain and path in _loaded:
        return _loaded[path]
    model = None if retrain or not path.is_file() else _load_cached(path)
    if model is None:
        model = _train_classifier()
        save_weights(model, path)
    _loaded[path] = model
    return model


# --- inputs --------------------------------------------------------------------------------------------


def _check_classifier(classifier: object) -> DigitClassifier:
    if classifier is None:
        return digit_classifier()
    if not isinstance(classifier, DigitClassifier):
        raise TypeError(f"classifier must be a DigitClassifier (from digit_classifier()) or None, got "
                        f"{type(classifier).__name__}")
    return classifier


def _images(images: object, min_batch: int = 1) -> torch.Tensor:
    """Validate images and return them as float32 ``(B, 1, 8, 8)``."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a floating-point tensor with values in [0, 1], got dtype {images.dtype}")
    shape = tuple(images.shape)
    if shape[1:] not in ((1, 8, 8), (8, 8), (64,)):
        raise ValueError(f"images must have shape (B, 1, 8, 8), (B, 8, 8) or (B, 64), got {list(shape)}")
    if shape[0] < min_batch:
        raise ValueError(f"images must hold at least {min_batch} image{'s' if min_batch > 1 else ''}, "
                         f"got {shape[0]}")
    x = images.detach().to(torch.float32)
    if not torch.isfinite(x).all():
        raise ValueError("images must be finite, got NaN or inf values")
    lo, hi = x.min().item(), x.max().item()
    if lo < -IMAGE_TOLERANCE or hi > 1 + IMAGE_TOLERANCE:
        raise ValueError(f"images must have values in [0, 1], got values in [{lo:.3g}, {hi:.3g}]; map tanh "
                         "outputs in [-1, 1] with aigc_course.data.digits.from_symmetric first")
    return x.reshape(shape[0], 1, 8, 8)


def _forward(images: object, classifier: object, min_batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (B, F), logits (B, 10)) on the classifier's device, in eval mode, without gradients."""
    x = _images(images, min_batch)
    clf = _check_classifier(classifier)
    device = next(clf.parameters()).device
    with eval_mode(clf), torch.no_grad():
        feats = clf.features(x.to(device))
        return feats, clf.head(feats)


# --- classifier scores ---------------------------------------------------------------------------------


def classifier_features(images: torch.Tensor, classifier: DigitClassifier | None = None) -> torch.Tensor:
    """(B, 1, 8, 8) | (B, 8, 8) | (B, 64) in [0, 1] -> (B, FEATURE_DIM) penultimate features (float32,
    on the classifier's device)."""
    return _forward(images, classifier)[0]


def predict_digits(images: torch.Tensor, classifier: DigitClassifier | None = None) -> torch.Tensor:
    """(B, ...) images in [0, 1] -> (B,) int64 predicted digits (on the classifier's device)."""
    return _forward(images, classifier)[1].argmax(dim=1)


def classifier_confidence(images: torch.Tensor, classifier: DigitClassifier | None = None) -> float:
    """Mean over the batch of the max softmax probability: near 1 for clear digits, 0.1 at worst."""
    logits = _forward(images, classifier)[1]
    return logits.softmax(dim=1).max(dim=1).values.mean().item()


def class_histogram(images: torch.Tensor, classifier: DigitClassifier | None = None) -> torch.Tensor:
    """(B, ...) images in [0, 1] -> (10,) float32 fraction of images predicted as each digit (sums to 1)."""
    pred = predict_digits(images, classifier)
    return torch.bincount(pred, minlength=NUM_CLASSES).to(torch.float32) / pred.numel()


# --- Fréchet distance ----------------------------------------------------------------------------------


def _array(x: object, name: str, ndim: int) -> np.ndarray:
    """A finite float64 NumPy copy of a tensor or array with ``ndim`` dimensions."""
    if isinstance(x, torch.Tensor):
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        a = x.detach().to("cpu", torch.float64).numpy()
    elif isinstance(x, np.ndarray):
        if not np.issubdtype(x.dtype, np.floating):
            raise TypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")
        a = x.astype(np.float64)
    else:
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension{'s' if ndim > 1 else ''}, got shape {list(a.shape)}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} must be finite, got NaN or inf values")
    return a


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (tiny negative eigenvalues from rounding -> 0)."""
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def _check_cov(cov: np.ndarray, name: str, dim: int, mu_name: str) -> None:
    if cov.shape[0] != cov.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {list(cov.shape)}")
    if cov.shape[0] != dim:
        raise ValueError(f"{name} has shape {list(cov.shape)} but {mu_name} has {dim} entries")
    scale = max(float(np.abs(cov).max()), 1e-300)
    if not np.allclose(cov, cov.T, rtol=0.0, atol=1e-8 * scale):
        raise ValueError(f"{name} must be symmetric, got max |{name} - {name}.T| = "
                         f"{float(np.abs(cov - cov.T).max()):.3g}")
    lowest = float(np.linalg.eigvalsh(cov).min())
    if lowest < -1e-8 * scale * dim:
        raise ValueError(f"{name} must be positive semi-definite, got an eigenvalue of {lowest:.3g}")


def gaussian_frechet_distance(mu1: torch.Tensor | np.ndarray, cov1: torch.Tensor | np.ndarray,
                              mu2: torch.Tensor | np.ndarray, cov2: torch.Tensor | np.ndarray) -> float:
    r"""Squared 2-Wasserstein (Fréchet) distance between :math:`N(\mu_1, \Sigma_1)` and :math:`N(\mu_2, \Sigma_2)`.

    ``mu`` (F,), ``cov`` (F, F) symmetric PSD; tensors or arrays, computed in float64. Returns
    :math:`\lVert\mu_1-\mu_2\rVert^2 + \operatorname{Tr}(\Sigma_1+\Sigma_2-2(\Sigma_1\Sigma_2)^{1/2})`,
    with a rounding-level negative result returned as 0.
    """
    m1, m2 = _array(mu1, "mu1", 1), _array(mu2, "mu2", 1)
    s1, s2 = _array(cov1, "cov1", 2), _array(cov2, "cov2", 2)
    if m1.shape != m2.shape:
        raise ValueError(f"mu1 and mu2 must have the same length, got {m1.shape[0]} and {m2.shape[0]}")
    _check_cov(s1, "cov1", m1.shape[0], "mu1")
    _check_cov(s2, "cov2", m2.shape[0], "mu2")
    r1 = _psd_sqrt(s1)
    inner = r1 @ s2 @ r1
    inner = (inner + inner.T) / 2  # symmetric in exact arithmetic; remove rounding asymmetry before eigh
    tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh(inner), 0.0, None)).sum())
    d = m1 - m2
    value = float(d @ d) + float(np.trace(s1)) + float(np.trace(s2)) - 2.0 * tr_sqrt
    return max(value, 0.0)


def frechet_distance(features_a: torch.Tensor | np.ndarray, features_b: torch.Tensor | np.ndarray) -> float:
    """FID's formula on two feature sets ``(Na, F)`` and ``(Nb, F)`` (Na, Nb >= 2): fit a Gaussian to each
    (sample mean, unbiased covariance) and return :func:`gaussian_frechet_distance` between them."""
    a, b = _array(features_a, "features_a", 2), _array(features_b, "features_b", 2)
    for name, f in (("features_a", a), ("features_b", b)):
        if f.shape[0] < 2:
            raise ValueError(f"{name} must hold at least 2 samples to estimate a covariance, got {f.shape[0]}")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"features_a and features_b must have the same feature width, got {a.shape[1]} "
                         f"and {b.shape[1]}")
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    return gaussian_frechet_distance(a.mean(axis=0), cov_a, b.mean(axis=0), cov_b)


def _split_features(classifier: DigitClassifier) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier features of the real (test, train) images of the split the classifier was trained on."""
    split = _split()
    return (classifier_features(split.test_images, classifier),
            classifier_features(split.train_images, classifier))


def digits_frechet_distance(images: torch.Tensor, classifier: DigitClassifier | None = None) -> float:
    """Fréchet distance between the classifier features of ``images`` (B >= 2, in [0, 1]) and those of the
    real test split (359 images). Compare with ``digits_frechet_floor(num_samples=B)``: the estimate is
    biased upwards, more so for small B (use a few hundred images or more)."""
    clf = _check_classifier(classifier)
    feats = _forward(images, clf, min_batch=2)[0]
    return frechet_distance(feats, _split_features(clf)[0])


def digits_frechet_floor(classifier: DigitClassifier | None = None, *, num_samples: int | None = None) -> float:
    """The Fréchet distance of real images: the real test split vs the real training split.

    This is exactly ``digits_frechet_distance(training images)``: what a generator that samples the true
    digit distribution perfectly would score, up to sampling noise. Fewer samples score higher, so compare
    a score from B generated images with ``num_samples=B`` (2..1438; default all 1,438): the mean score of
    ``1438 // B`` disjoint chunks of B training images (the split is shuffled, so chunks mix the classes).
    """
    clf = _check_classifier(classifier)
    if num_samples is not None:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int):
            raise TypeError(f"num_samples must be an int or None, got {type(num_samples).__name__}")
    test, train = _split_features(clf)
    if num_samples is not None:
        if not 2 <= num_samples <= len(train):
            raise ValueError(f"num_samples must be in [2, {len(train)}] (the training split's size), "
                             f"got {num_samples}")
        chunks = train[: len(train) // num_samples * num_samples].split(num_samples)
        return float(np.mean([frechet_distance(c, test) for c in chunks]))
    return frechet_distance(train, test)
