"""Tests for aigc_course.metrics: the Fréchet distance against closed forms computed independently (1-D,
diagonal, commuting, a non-commuting 2x2 case, scipy's sqrtm, samples converging to the truth), the digit
classifier (accuracy, deterministic training, the safetensors cache and its repair, global RNG untouched),
the scores on real and broken images, and every bad input with its exact message.

The classifier is trained once for the module, in a temporary cache folder ($AIGC_DATA_DIR)."""

from __future__ import annotations

import math
import random
import re
import time
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from aigc_course import metrics as M
from aigc_course.data.digits import load_digits_split, to_symmetric

torch.set_num_threads(1)


def exact(msg: str) -> str:
    return "^" + re.escape(msg) + "$"


def f64(x) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


def rotation(theta: float) -> np.ndarray:
    return np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(classifier, training seconds, global RNG states before and after training) in a fresh cache dir."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIGC_DATA_DIR", str(tmp_path_factory.mktemp("metrics_cache")))
        before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
        t0 = time.perf_counter()
        clf = M.digit_classifier()
        seconds = time.perf_counter() - t0
        after = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
        yield clf, seconds, before, after


@pytest.fixture
def clf(trained):
    """The module's classifier ($AIGC_DATA_DIR stays on its cache folder for the whole module)."""
    return trained[0]


@pytest.fixture(scope="module")
def split():
    return load_digits_split()


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ------------------------------------------------------------------------- Fréchet distance: closed forms


def test_gaussian_1d_closed_form():
    # (m1 - m2)^2 + (s1 - s2)^2 with s the standard deviations: 2^2 + (2 - 0.5)^2
    d = M.gaussian_frechet_distance(f64([1.5]), f64([[4.0]]), f64([-0.5]), f64([[0.25]]))
    assert d == pytest.approx(6.25, rel=1e-12)


def test_gaussian_diagonal_closed_form():
    a, b = [1.0, 9.0, 0.04], [4.0, 1.0, 0.09]
    mu1, mu2 = [0.0, 1.0, -2.0], [3.0, -1.0, -2.0]
    want = sum((x - y) ** 2 for x, y in zip(mu1, mu2, strict=True)) + sum(
        (math.sqrt(x) - math.sqrt(y)) ** 2 for x, y in zip(a, b, strict=True))
    assert want == pytest.approx(13 + 1 + 4 + 0.01)
    got = M.gaussian_frechet_distance(f64(mu1), torch.diag(f64(a)), f64(mu2), torch.diag(f64(b)))
    assert got == pytest.approx(want, rel=1e-12)


def test_gaussian_commuting_closed_form():
    # S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T share eigenvectors: Tr(S1 S2)^1/2 = sum sqrt(a b)
    q = rotation(0.7)
    a, b = np.array([5.0, 0.5]), np.array([2.0, 3.0])
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    want = float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    assert M.gaussian_frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(want, rel=1e-10)


def test_gaussian_non_commuting_2x2_closed_form():
    # for 2x2: Tr (S1 S2)^1/2 = sqrt(Tr(S1 S2) + 2 sqrt(det S1 det S2)) (eigenvalues l1, l2 of S1 S2)
    s1 = np.array([[2.0, 1.0], [1.0, 2.0]])
    s2 = np.array([[1.0, 0.0], [0.0, 4.0]])
    assert not np.allclose(s1 @ s2, s2 @ s1)
    tr_sqrt = math.sqrt(10.0 + 2.0 * math.sqrt(3.0 * 4.0))
    want = 1.0 ** 2 + 2.0 ** 2 + (4.0 + 5.0 - 2.0 * tr_sqrt)
    got = M.gaussian_frechet_distance(np.array([1.0, 0.0]), s1, np.array([0.0, 2.0]), s2)
    assert got == pytest.approx(want, rel=1e-12)
    assert got == pytest.approx(5.77122, abs=1e-5)  # by hand: 5 + 9 - 2 sqrt(16.92820)


def test_gaussian_matches_scipy_sqrtm_and_is_symmetric():
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.RandomState(3)
    a, b = rng.randn(32, 32), rng.randn(32, 32)
    s1, s2 = a @ a.T / 32 + 0.1 * np.eye(32), b @ b.T / 32 + np.diag(rng.rand(32))
    m1, m2 = rng.randn(32), rng.randn(32) * 0.5
    want = float(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * linalg.sqrtm(s1 @ s2).real))
    got = M.gaussian_frechet_distance(m1, s1, m2, s2)
    assert got == pytest.approx(want, rel=1e-8)
    assert M.gaussian_frechet_distance(m2, s2, m1, s1) == pytest.approx(got, rel=1e-10)


def test_gaussian_zero_for_identical_even_when_singular():
    v = np.array([[1.0, 2.0, -1.0, 0.5, 3.0]])
    s = 1e4 * v.T @ v  # rank 1: sqrtm(S S) of a singular product is where naive code breaks
    mu = np.arange(5.0)
    assert M.gaussian_frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9 * np.trace(s))
    s1 = np.diag([1e6, 4e6, 0.0])
    s2 = np.diag([9e6, 1e6, 0.0])
    assert M.gaussian_frechet_distance(np.zeros(3), s1, np.zeros(3), s2) == pytest.approx(
        (1e3 - 3e3) ** 2 + (2e3 - 1e3) ** 2, rel=1e-10)


def test_gaussian_accepts_tensors_and_arrays_alike():
    s1, s2 = np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([[1.0, 0.0], [0.0, 4.0]])
    m1, m2 = np.array([1.0, 0.0]), np.array([0.0, 2.0])
    a = M.gaussian_frechet_distance(m1, s1, m2, s2)
    b = M.gaussian_frechet_distance(*(torch.from_numpy(x) for x in (m1, s1, m2, s2)))
    c = M.gaussian_frechet_distance(*(torch.from_numpy(x).float() for x in (m1, s1, m2, s2)))
    assert isinstance(a, float) and a == b and c == pytest.approx(a, rel=1e-6)


# ------------------------------------------------------------------------ Fréchet distance: feature sets


def test_frechet_uses_unbiased_covariance():
    # x = {0, 2}: mean 1, variance (ddof=1) 2; y = {1, 1, 1}: mean 1, variance 0 -> d = 2 (ddof=0 gives 1)
    d = M.frechet_distance(f64([[0.0], [2.0]]), f64([[1.0], [1.0], [1.0]]))
    assert d == pytest.approx(2.0, rel=1e-12)


def test_frechet_translation_is_squared_shift_and_identical_is_zero():
    x = torch.randn(200, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) @ torch.randn(
        6, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    shift = f64([0.5, -1.0, 2.0, 0.0, 0.25, -3.0])
    assert M.frechet_distance(x, x + shift) == pytest.approx(float(shift @ shift), rel=1e-9)
    assert M.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert M.frechet_distance(x, x.flip(0)) == pytest.approx(0.0, abs=1e-9)  # order does not matter


def test_frechet_is_symmetric_and_accepts_numpy():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(100, 4, generator=g), torch.rand(150, 4, generator=g) * 3
    d = M.frechet_distance(a, b)
    assert M.frechet_distance(b, a) == pytest.approx(d, rel=1e-10)
    assert M.frechet_distance(a.numpy(), b.numpy()) == d
    assert d > 1.0


def test_frechet_from_samples_converges_to_closed_form():
    rng = np.random.RandomState(0)
    s1 = np.array([[2.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
    s2 = np.array([[1.0, 0.0, 0.0], [0.0, 4.0, -1.0], [0.0, -1.0, 0.5]])
    m1, m2 = np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, -1.0])
    truth = M.gaussian_frechet_distance(m1, s1, m2, s2)
    x = rng.multivariate_normal(m1, s1, size=100_000)
    y = rng.multivariate_normal(m2, s2, size=100_000)
    assert M.frechet_distance(x, y) == pytest.approx(truth, rel=0.02)
    # from 20 samples the estimate is biased upwards (the floor effect), by far more than at 100,000
    few = np.mean([M.frechet_distance(x[i:i + 20], y[i:i + 20]) for i in range(0, 2000, 20)])
    assert few - truth > 10 * abs(M.frechet_distance(x, y) - truth)


# ------------------------------------------------------------------------------------------- classifier


def test_classifier_accuracy_timing_and_rng(trained, split):
    clf, seconds, before, after = trained
    assert isinstance(clf, M.DigitClassifier) and not clf.training
    acc = (M.predict_digits(split.test_images, clf) == split.test_labels).float().mean().item()
    assert acc >= 0.95, acc
    assert seconds < 20.0, f"training took {seconds:.1f} s"  # ~2-4 s on one thread
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and torch.equal(before[2], after[2])


def test_classifier_is_cached_in_process_and_on_disk(clf, monkeypatch):
    path = M.classifier_cache_path()
    assert path.is_file() and path.suffix == ".safetensors"
    assert re.fullmatch(r"digit_classifier-[0-9a-f]{12}\.safetensors", path.name)
    assert M.digit_classifier() is clf
    # a new process finds the file: it loads, it does not train
    monkeypatch.delitem(M._loaded, path)
    monkeypatch.setattr(M, "_train_classifier", lambda: pytest.fail("trained instead of loading the cache"))
    loaded = M.digit_classifier()
    assert loaded is not clf and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    assert_same_weights(state(loaded), state(clf))


def test_changed_recipe_changes_the_cache_file(clf, monkeypatch):
    old = M.classifier_cache_path()
    monkeypatch.setitem(M.TRAIN_RECIPE, "epochs", M.TRAIN_RECIPE["epochs"] + 1)
    assert M.classifier_cache_path() != old
    assert M.classifier_cache_path().parent == old.parent


def test_retrain_is_bit_identical_and_keeps_global_rng(clf):
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    again = M.digit_classifier(retrain=True)
    after = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state().clone())
    assert again is not clf
    assert_same_weights(state(again), state(clf))
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and torch.equal(before[2], after[2])
    assert M.digit_classifier() is again


@pytest.fixture
def fresh_cache(clf, tmp_path, monkeypatch):
    """An empty cache folder and a 'training' that hands back a copy of the real classifier (fast)."""
    monkeypatch.setenv("AIGC_DATA_DIR", str(tmp_path / "cache"))
    calls = []

    def fake_train():
        calls.append(1)
        model = M.DigitClassifier()
        model.load_state_dict(clf.state_dict())
        return model.eval().requires_grad_(False)

    monkeypatch.setattr(M, "_train_classifier", fake_train)
    return calls


def test_missing_cache_file_is_trained_without_warning(clf, fresh_cache):
    path = M.classifier_cache_path()
    assert not path.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = M.digit_classifier()
    assert fresh_cache == [1] and path.is_file()
    assert_same_weights(state(model), state(clf))
    assert M.digit_classifier() is model and fresh_cache == [1]


def _truncated(path, clf):
    from aigc_course.checkpoint import save_weights
    save_weights(clf, path)
    path.write_bytes(path.read_bytes()[:200])


def _empty(path, clf):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def _other_keys(path, clf):
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"weight": torch.zeros(3)}, str(path))


def _other_shape(path, clf):
    sd = {k: v.contiguous() for k, v in clf.state_dict().items()}
    sd["head.weight"] = torch.zeros(10, 16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))


def _not_finite(path, clf):
    sd = {k: v.clone().contiguous() for k, v in clf.state_dict().items()}
    sd["head.bias"][3] = float("nan")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(path))


@pytest.mark.parametrize(("damage", "why"), [
    (_truncated, "cannot read weights file"), (_empty, "cannot read weights file"),
    (_other_keys, "do not match the module"), (_other_shape, "do not match the module"),
    (_not_finite, "are not finite"),
])
def test_damaged_cache_file_is_retrained(clf, fresh_cache, monkeypatch, damage, why):
    path = M.classifier_cache_path()
    damage(path, clf)
    with pytest.warns(RuntimeWarning, match=f"^retraining the digit classifier: .*{why}") as record:
        model = M.digit_classifier()
    # the warning points at the caller of digit_classifier(), i.e. this file (under mutation testing, mutmut's
    # trampoline sits between the caller and the package and takes that frame)
    files = [w.filename for w in record if issubclass(w.category, RuntimeWarning)]
    assert files == [__file__] or (len(files) == 1 and files[0].endswith("mutmut/mutation/trampoline.py"))
    assert fresh_cache == [1]
    assert_same_weights(state(model), state(clf))
    # the file was rewritten: a new process loads it without training
    monkeypatch.delitem(M._loaded, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_weights(state(M.digit_classifier()), state(clf))
    assert fresh_cache == [1]


def test_input_layouts_modes_and_dtypes_agree(clf, split):
    x = split.test_images[:50]
    ref = M.classifier_features(x, clf)
    assert ref.shape == (50, M.FEATURE_DIM) and ref.dtype == torch.float32
    assert torch.equal(M.classifier_features(x[:, None], clf), ref)
    assert torch.equal(M.classifier_features(x.reshape(50, 64), clf), ref)
    assert torch.allclose(M.classifier_features(x.double(), clf), ref)
    assert torch.equal(M.predict_digits(x.half(), clf), M.predict_digits(x, clf))
    clf.train()
    try:
        assert torch.equal(M.classifier_features(x, clf), ref)
        assert clf.training  # the mode the caller set is restored
    finally:
        clf.eval()
    assert not M.classifier_features(x, clf).requires_grad
    assert (ref.std(dim=0) > 0).all()  # no dead features: the covariance has full rank


def test_small_overshoot_is_accepted(clf, split):
    x = split.test_images[:4].clone()
    x[0, 0, 0] = 1.0 + 0.5 * M.IMAGE_TOLERANCE
    x[1, 0, 0] = -0.5 * M.IMAGE_TOLERANCE
    assert M.predict_digits(x, clf).shape == (4,)


# ---------------------------------------------------------------------------------------------- scores


def test_confidence_real_vs_noise(clf, split):
    real = M.classifier_confidence(split.test_images)  # classifier=None: the cached one
    noise = M.classifier_confidence(torch.rand(359, 64, generator=torch.Generator().manual_seed(0)), clf)
    assert isinstance(real, float) and real >= 0.95
    assert noise < 0.9 and real - noise > 0.1


def test_class_histogram(clf, split):
    h = M.class_histogram(split.test_images, clf)
    labels = torch.bincount(split.test_labels, minlength=10).float() / len(split.test_labels)
    assert h.shape == (10,) and h.dtype == torch.float32
    assert h.sum().item() == pytest.approx(1.0)
    assert (h - labels).abs().max().item() < 0.03
    threes = split.test_images[split.test_labels == 3]
    h3 = M.class_histogram(threes, clf)
    assert h3[3].item() >= 0.9 and h3.argmax().item() == 3
    pred = M.predict_digits(threes, clf)
    assert pred.dtype == torch.int64 and pred.shape == (len(threes),)


def test_floor_is_small_and_is_the_score_of_real_training_images(clf, split):
    floor = M.digits_frechet_floor(clf)
    assert 0.5 < floor < 20.0, floor
    assert M.digits_frechet_distance(split.train_images, clf) == pytest.approx(floor, rel=1e-9)
    assert M.digits_frechet_distance(split.test_images) == pytest.approx(0.0, abs=1e-6)  # the reference
    assert M.digits_frechet_floor() == pytest.approx(floor, rel=1e-12)  # classifier=None: the cached one


def test_floor_grows_for_fewer_samples_and_real_subsets_score_near_it(clf, split):
    floor = M.digits_frechet_floor(clf)
    floor_719 = M.digits_frechet_floor(clf, num_samples=719)
    floor_100 = M.digits_frechet_floor(clf, num_samples=100)
    assert floor < floor_719 < floor_100
    half = split.train_images[torch.randperm(1438, generator=torch.Generator().manual_seed(2))[:719]]
    score = M.digits_frechet_distance(half, clf)
    assert 0.5 * floor_719 < score < 2.0 * floor_719, (score, floor_719)


def test_broken_samples_score_far_above_the_floor(clf, split):
    floor = M.digits_frechet_floor(clf)
    g = torch.Generator().manual_seed(0)
    x = split.train_images
    broken = {
        "noise": torch.rand(len(x), 8, 8, generator=g),
        "one repeated digit": x[:1].repeat(len(x), 1, 1) + 0.01 * torch.rand(len(x), 8, 8, generator=g),
        "only threes": x[split.train_labels == 3],
        "blurred": F.avg_pool2d(x[:, None], 3, stride=1, padding=1, count_include_pad=False),
    }
    for name, images in broken.items():
        score = M.digits_frechet_distance(images.clamp(0, 1), clf)
        assert score > 20 * floor, (name, score, floor)


# ------------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(("images", "error", "msg"), [
    ([[0.0] * 64], TypeError, "images must be a torch.Tensor, got list"),
    (torch.zeros(2, 64, dtype=torch.int64), TypeError,
     "images must be a floating-point tensor with values in [0, 1], got dtype torch.int64"),
    (torch.zeros(5, 8), ValueError, "images must have shape (B, 1, 8, 8), (B, 8, 8) or (B, 64), got [5, 8]"),
    (torch.zeros(2, 3, 8, 8), ValueError,
     "images must have shape (B, 1, 8, 8), (B, 8, 8) or (B, 64), got [2, 3, 8, 8]"),
    (torch.zeros(64), ValueError, "images must have shape (B, 1, 8, 8), (B, 8, 8) or (B, 64), got [64]"),
    (torch.zeros(0, 64), ValueError, "images must hold at least 1 image, got 0"),
    (torch.full((2, 64), float("nan")), ValueError, "images must be finite, got NaN or inf values"),
    (to_symmetric(torch.linspace(0, 1, 128).reshape(2, 64)), ValueError,
     "images must have values in [0, 1], got values in [-1, 1]; map tanh outputs in [-1, 1] with "
     "aigc_course.data.digits.from_symmetric first"),
    (torch.full((2, 8, 8), 1.01), ValueError,
     "images must have values in [0, 1], got values in [1.01, 1.01]; map tanh outputs in [-1, 1] with "
     "aigc_course.data.digits.from_symmetric first"),
])
@pytest.mark.parametrize("fn", [M.classifier_features, M.predict_digits, M.classifier_confidence,
                                M.class_histogram, M.digits_frechet_distance])
def test_bad_images(clf, fn, images, error, msg):
    if fn is M.digits_frechet_distance:
        msg = msg.replace("at least 1 image,", "at least 2 images,")
    with pytest.raises(error, match=exact(msg)):
        fn(images, clf)


def test_frechet_needs_two_images(clf, split):
    with pytest.raises(ValueError, match=exact("images must hold at least 2 images, got 1")):
        M.digits_frechet_distance(split.test_images[:1], clf)


@pytest.mark.parametrize("fn", [M.classifier_features, M.predict_digits, M.classifier_confidence,
                                M.class_histogram, M.digits_frechet_distance, M.digits_frechet_floor])
def test_wrong_classifier_type(fn, split):
    msg = "classifier must be a DigitClassifier (from digit_classifier()) or None, got Linear"
    args = () if fn is M.digits_frechet_floor else (split.test_images[:4],)
    with pytest.raises(TypeError, match=exact(msg)):
        fn(*args, nn.Linear(64, 10))


def test_bad_retrain_and_num_samples(clf):
    with pytest.raises(TypeError, match=exact("retrain must be a bool (True or False), got int 1")):
        M.digit_classifier(retrain=1)
    with pytest.raises(TypeError, match=exact("num_samples must be an int or None, got float")):
        M.digits_frechet_floor(clf, num_samples=100.0)
    with pytest.raises(TypeError, match=exact("num_samples must be an int or None, got bool")):
        M.digits_frechet_floor(clf, num_samples=True)
    for n in (1, 1439):
        with pytest.raises(ValueError, match=exact(
                f"num_samples must be in [2, 1438] (the training split's size), got {n}")):
            M.digits_frechet_floor(clf, num_samples=n)


S2 = np.eye(2)
Z2 = np.zeros(2)


@pytest.mark.parametrize(("args", "error", "msg"), [
    (([0.0, 0.0], S2, Z2, S2), TypeError, "mu1 must be a torch.Tensor or numpy.ndarray, got list"),
    ((Z2, torch.eye(2, dtype=torch.int64), Z2, S2), TypeError,
     "cov1 must be a floating-point tensor, got dtype torch.int64"),
    ((Z2, S2, np.zeros(2, dtype=np.int64), S2), TypeError, "mu2 must be a floating-point array, got dtype int64"),
    ((np.zeros((2, 1)), S2, Z2, S2), ValueError, "mu1 must have 1 dimension, got shape [2, 1]"),
    ((Z2, np.ones(2), Z2, S2), ValueError, "cov1 must have 2 dimensions, got shape [2]"),
    ((Z2, S2, Z2, np.array([[1.0, np.inf], [np.inf, 1.0]])), ValueError, "cov2 must be finite, got NaN or inf values"),
    ((Z2, S2, np.zeros(3), np.eye(3)), ValueError, "mu1 and mu2 must have the same length, got 2 and 3"),
    ((Z2, np.ones((2, 3)), Z2, S2), ValueError, "cov1 must be a square matrix, got shape [2, 3]"),
    ((Z2, S2, Z2, np.eye(3)), ValueError, "cov2 has shape [3, 3] but mu2 has 2 entries"),
    ((Z2, np.eye(3), Z2, S2), ValueError, "cov1 has shape [3, 3] but mu1 has 2 entries"),
    # the symmetry tolerance is relative to the largest entry, and purely absolute (rtol = 0)
    ((Z2, np.array([[1e-6, 1e-9], [0.0, 1e-6]]), Z2, S2), ValueError,
     "cov1 must be symmetric, got max |cov1 - cov1.T| = 1e-09"),
    ((Z2, np.array([[1.0, 1.0 + 1e-7], [1.0, 2.0]]), Z2, S2), ValueError,
     "cov1 must be symmetric, got max |cov1 - cov1.T| = 1e-07"),
    ((Z2, np.array([[1.0, 0.5], [0.0, 1.0]]), Z2, S2), ValueError,
     "cov1 must be symmetric, got max |cov1 - cov1.T| = 0.5"),
    ((Z2, S2, Z2, np.diag([1.0, -1.0])), ValueError, "cov2 must be positive semi-definite, got an eigenvalue of -1"),
])
def test_gaussian_frechet_bad_inputs(args, error, msg):
    with pytest.raises(error, match=exact(msg)):
        M.gaussian_frechet_distance(*args)


@pytest.mark.parametrize(("a", "b", "error", "msg"), [
    (torch.zeros(1, 3), torch.zeros(4, 3), ValueError,
     "features_a must hold at least 2 samples to estimate a covariance, got 1"),
    (torch.zeros(4, 3), torch.zeros(1, 3), ValueError,
     "features_b must hold at least 2 samples to estimate a covariance, got 1"),
    (torch.zeros(4, 3), torch.zeros(4, 4), ValueError,
     "features_a and features_b must have the same feature width, got 3 and 4"),
    (torch.zeros(4, 3), torch.zeros(5), ValueError, "features_b must have 2 dimensions, got shape [5]"),
    (torch.zeros(4, 3, dtype=torch.int32), torch.zeros(4, 3), TypeError,
     "features_a must be a floating-point tensor, got dtype torch.int32"),
    ([[0.0]], torch.zeros(4, 3), TypeError, "features_a must be a torch.Tensor or numpy.ndarray, got list"),
    (torch.zeros(4, 3), torch.full((4, 3), float("nan")), ValueError,
     "features_b must be finite, got NaN or inf values"),
])
def test_frechet_bad_inputs(a, b, error, msg):
    with pytest.raises(error, match=exact(msg)):
        M.frechet_distance(a, b)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_images_on_another_device_are_moved_to_the_classifier(clf, split):
    x = split.test_images[:20]
    assert torch.equal(M.predict_digits(x.cuda(), clf), M.predict_digits(x, clf))
    assert M.digits_frechet_distance(x.cuda(), clf) == pytest.approx(M.digits_frechet_distance(x, clf))


# ------------------------------------------------------------------------------- internals, pinned exactly


def test_rounding_level_negative_eigenvalue_is_accepted():
    # -1e-8 is above the PSD tolerance -1e-8 * scale * dim = -2e-8
    for low in (-1e-8, -2e-8):                                        # -2e-8: exactly at the tolerance
        assert M.gaussian_frechet_distance(np.zeros(2), np.diag([1.0, low]), np.zeros(2), np.diag([1.0, 0.0])) == 0.0


def test_classifier_architecture():
    assert [type(m).__name__ for m in M.DigitClassifier().body] == [
        "Conv2d", "SiLU", "Conv2d", "SiLU", "MaxPool2d", "Flatten", "Linear", "SiLU"]


def test_cache_name_hashes_architecture_and_sorted_recipe(monkeypatch):
    import hashlib
    import json
    name = M.classifier_cache_path().name
    text = json.dumps({"architecture": repr(M.DigitClassifier()), "recipe": M.TRAIN_RECIPE}, sort_keys=True)
    assert name == f"digit_classifier-{hashlib.sha256(text.encode()).hexdigest()[:12]}.safetensors"
    monkeypatch.setattr(M, "TRAIN_RECIPE", dict(reversed(list(M.TRAIN_RECIPE.items()))))
    assert M.classifier_cache_path().name == name                     # the order of the recipe's keys is not hashed
    monkeypatch.setattr(M.DigitClassifier, "extra_repr", lambda self: "changed")
    assert M.classifier_cache_path().name != name                     # the architecture is


def test_split_follows_the_recipe(monkeypatch):
    monkeypatch.setitem(M.TRAIN_RECIPE, "test_fraction", 0.5)
    monkeypatch.setitem(M.TRAIN_RECIPE, "split_seed", 3)
    got, want = M._split(), load_digits_split(test_fraction=0.5, seed=3)
    assert torch.equal(got.test_images, want.test_images) and torch.equal(got.train_labels, want.train_labels)


def test_fit_is_adam_on_shuffled_minibatches_from_its_own_generator(monkeypatch):
    monkeypatch.setattr(M, "TRAIN_RECIPE", {"seed": 5, "epochs": 2, "batch_size": 4, "lr": 0.05,
                                            "test_fraction": 0.2, "split_seed": 0})
    torch.manual_seed(0)
    x, y = torch.randn(10, 3), torch.randint(0, 10, (10,))
    model, ref = nn.Linear(3, 10), nn.Linear(3, 10)
    ref.load_state_dict(model.state_dict())
    gen = torch.Generator().manual_seed(5)
    opt = torch.optim.Adam(ref.parameters(), lr=0.05)
    for _ in range(2):
        perm = torch.randperm(10, generator=gen)
        for i in range(0, 10, 4):                                     # batches of 4, 4, 2
            idx = perm[i:i + 4]
            opt.zero_grad()
            F.cross_entropy(ref(x[idx]), y[idx]).backward()
            opt.step()
    torch.manual_seed(123)                                            # the global stream plays no part
    out = M._fit(model, x, y)
    assert out is model and not out.training and not any(p.requires_grad for p in out.parameters())
    assert_same_weights(state(out), state(ref))


def test_single_images_and_the_classifier_device():
    other = M.DigitClassifier()
    assert M.classifier_features(torch.rand(1, 64), other).shape == (1, M.FEATURE_DIM)
    # images follow the classifier: a meta-device classifier gets meta images (CPU images would fail)
    assert M.classifier_features(torch.rand(2, 64), other.to("meta")).device.type == "meta"


def test_class_histogram_always_has_ten_bins():
    c = M.DigitClassifier()
    with torch.no_grad():
        c.head.weight.zero_()
        c.head.bias.zero_()
        c.head.bias[0] = 1.0                                          # always predicts 0
    hist = M.class_histogram(torch.rand(5, 64), c)
    assert hist.dtype == torch.float32 and hist.tolist() == [1.0] + [0.0] * 9
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert M.class_histogram(torch.rand(4, 64), c).dtype == torch.float32   # float32 whatever the default
    finally:
        torch.set_default_dtype(old)


def test_scores_use_the_given_classifier(clf, split):
    torch.manual_seed(7)
    other = M.DigitClassifier().eval().requires_grad_(False)          # not the shared one
    test_f, train_f = M._split_features(other)
    assert torch.equal(test_f, M.classifier_features(split.test_images, other))
    assert torch.equal(train_f, M.classifier_features(split.train_images, other))
    assert not torch.allclose(test_f, M.classifier_features(split.test_images, clf))
    imgs = split.test_images[:30]
    assert M.digits_frechet_distance(imgs, other) == pytest.approx(
        M.frechet_distance(M.classifier_features(imgs, other), test_f), rel=1e-12)
    floor = M.digits_frechet_floor(other)
    assert floor == pytest.approx(M.frechet_distance(train_f, test_f), rel=1e-12)
    # the allowed range of num_samples is [2, len(train)], both ends included
    assert M.digits_frechet_floor(other, num_samples=len(train_f)) == pytest.approx(floor, rel=1e-9)
    assert math.isfinite(M.digits_frechet_floor(other, num_samples=2))
