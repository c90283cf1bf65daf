"""Lesson 03 self-checks: a catalogue of planted mistakes per exercise, each rejected with its own hint, and of
correct answers written differently (a loop, itertools, NumPy, float64, another angle formula, the package's
full-covariance Fréchet distance), each accepted.

To extend: add a row to the exercise's WRONG table (the answer, a regex of words that only its hint
contains, and its class) or RIGHT table.
"""

import itertools
import math
import re

import numpy as np
import pytest
import torch
from catalogue import assert_rejected, case_snapshot_test, catalogue_tests

import aigc_course.checks.dcgan as checks_dcgan
from aigc_course.checks import CheckFailed
from aigc_course.checks.dcgan import (
    FRECHET_DIAG_CHECK,
    SLERP_CHECK,
    TRANSPOSED_CONV_SIZES_CHECK,
    IntListResult,
    check_frechet_distance_diag,
    check_slerp,
    check_transposed_conv_sizes,
)
from aigc_course.metrics import gaussian_frechet_distance

# ----------------------------------------------------------------------------- 3.1 sizes through transposed convs


def sizes_loop(size, layers):
    out = []
    for kernel, stride, padding in layers:
        size = (size - 1) * stride - 2 * padding + kernel
        out.append(size)
    return out


def sizes_accumulate(size, layers):
    step = lambda n, layer: (n - 1) * layer[1] - 2 * layer[2] + layer[0]  # noqa: E731
    return list(itertools.accumulate(layers, step, initial=size))[1:]


def sizes_recursive(size, layers):
    if not layers:
        return []
    k, s, p = layers[0]
    first = (size - 1) * s - 2 * p + k
    return [first, *sizes_recursive(first, layers[1:])]


def sizes_pop(size, layers):
    out = []
    while layers:
        k, s, p = layers.pop(0)
        size = (size - 1) * s - 2 * p + k
        out.append(size)
    return out


def sizes_zip(size, layers):
    kernels, strides, paddings = zip(*layers, strict=True)
    out = []
    for k, s, p in zip(kernels, strides, paddings, strict=True):
        size = (size - 1) * s - 2 * p + k
        out.append(size)
    return out


def sizes_float32_tensor(size, layers):
    table = torch.tensor(layers, dtype=torch.float32).reshape(-1, 3)
    x, out = torch.tensor(float(size)), []
    for k, s, p in table:
        x = (x - 1) * s - 2 * p + k
        out.append(int(x.item()))
    return out


def sizes_numpy_floats(size, layers):
    table = np.array(layers, dtype=float).reshape(-1, 3)
    out, n = [], float(size)
    for k, s, p in table:
        n = (n - 1) * s - 2 * p + k
        out.append(n)
    return out


SIZES_RIGHT = [
    pytest.param(checks_dcgan._transposed_conv_sizes, id="reference"),
    pytest.param(sizes_loop, id="loop"),
    pytest.param(sizes_accumulate, id="itertools.accumulate"),
    pytest.param(sizes_recursive, id="recursive"),
    pytest.param(lambda n, layers: tuple(sizes_loop(n, layers)), id="tuple"),
    pytest.param(lambda n, layers: [np.int64(v) for v in sizes_loop(n, layers)], id="numpy int64 elements"),
]
SIZES_WRONG = [
    pytest.param(sizes_pop, r"modified its argument `layers` in place", "in-place", id="layers.pop(0)"),
    pytest.param(sizes_numpy_floats, r"element 0 of your list is a float", "type", id="numpy float table"),
    pytest.param(lambda n, layers: torch.tensor(sizes_loop(n, layers)), r"you returned a tensor", "type",
                 id="tensor"),
    pytest.param(lambda n, layers: sizes_loop(n, layers)[-1], r"you returned one number", "type",
                 id="only the last size"),
    pytest.param(lambda n, layers: [torch.tensor(v) for v in sizes_loop(n, layers)],
                 r"element 0 of your list is a tensor", "type", id="list of tensors"),
    pytest.param(sizes_float32_tensor, r"holds whole numbers exactly only up to 2\^24", "unstable",
                 id="float32 table"),
    pytest.param(sizes_zip, r"with no layers there are no sizes", "edge", id="zip(*layers), empty stack"),
    pytest.param(lambda n, layers: [n := n * s for _, s, _ in layers], r"multiplies the size by its stride",
                 "formula", id="size * stride"),
    pytest.param(lambda n, layers: [n := (n + 2 * p - k) // s + 1 for k, s, p in layers],
                 r"ordinary \(downsampling\) convolution", "formula", id="conv formula"),
    pytest.param(lambda n, layers: [n := n * s - 2 * p + k for k, s, p in layers],
                 r"multiplied the whole input size", "formula", id="no -1"),
    pytest.param(lambda n, layers: [n := (n - 1) * s - p + k for k, s, p in layers], r"removed the padding once",
                 "formula", id="-p"),
    pytest.param(lambda n, layers: [n := (n - 1) * s + 2 * p + k for k, s, p in layers], r"you added the padding",
                 "formula", id="+2p"),
    pytest.param(lambda n, layers: [n, *sizes_loop(n, layers)], r"your list starts with the input size",
                 "formula", id="input size first"),
]


@pytest.mark.parametrize("fn", SIZES_RIGHT)
def test_sizes_accepts(fn, capsys):
    check_transposed_conv_sizes(fn)
    assert "✓ Exercise 3.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", SIZES_WRONG)
def test_sizes_rejects(fn, hint, kind):
    assert_rejected(TRANSPOSED_CONV_SIZES_CHECK, fn, hint)


def test_sizes_reference_matches_conv_transpose2d():
    """The formula is what torch's layer does, on the lesson's and the paper's stacks."""
    for size, layers in [(2, [(4, 2, 1), (4, 2, 1)]), (1, checks_dcgan._DCGAN_64), (3, [(3, 2, 0), (5, 3, 2)])]:
        x, got = torch.zeros(1, 1, size, size), []
        for k, s, p in layers:
            x = torch.nn.ConvTranspose2d(1, 1, k, stride=s, padding=p)(x)
            got.append(x.shape[-1])
        assert checks_dcgan._transposed_conv_sizes(size, layers) == got


@pytest.mark.parametrize("value, message", [
    (None, r"returned None"),
    (np.array([4, 8]), r"you returned a NumPy array of shape \(2,\)"),
    (8, r"you returned one number \(8\)"),
    (8.0, r"you returned one number \(8\.0\)"),
    ("4, 8", r"you returned a Python str; return a list of ints"),
    ([4, True], r"element 1 of your list is a bool \(True\)"),
    ([4, np.float32(8)], r"element 1 of your list is a float"),
    ([4, "8"], r"element 1 of your list is a Python str; sizes are ints"),
])
def test_int_list_result_refuses(value, message):
    problem = IntListResult().problem(value, [4, 8])
    assert problem is not None and re.search(message, problem), problem


@pytest.mark.parametrize("value", [[4, 8], (4, 8), [np.int32(4), np.int64(8)], []])
def test_int_list_result_accepts(value):
    spec = IntListResult()
    assert spec.problem(value, [4, 8]) is None
    assert spec.parts(value)[0].dtype == np.float64 and spec.parts(value)[0].shape == (len(value),)


@pytest.mark.parametrize("value, message", [
    (None, "your function returned None — did you forget `return`?"),
    (torch.tensor([4, 8]), "you returned a tensor of shape (2,) and dtype torch.int64; return a plain list of "
     "Python ints, one size per layer (convert with .tolist()): sizes go into layer constructors and shapes, "
     "which take ints."),
    (8, "you returned one number (8); return a list with the size after *each* layer, e.g. [4, 8] for two layers "
     "(an empty list for no layers)."),
    ({4, 8}, "you returned a Python set; return a list of ints, one size per layer."),
    ([4, True], "element 1 of your list is a bool (True); sizes are ints."),
    ([4, 8.0], "element 1 of your list is a float (8.0): a size is a whole number of pixels, so return ints. In "
     "Python 3 `/` always gives a float; the formula needs no division, so keep to +, −, * on ints."),
    ((4, torch.tensor(8)), "element 1 of your list is a tensor of shape () and dtype torch.int64; sizes are Python "
     "ints (use int(...) or .item())."),
    ([4, "8"], "element 1 of your list is a Python str; sizes are ints."),
    ([-3, 2.5], "element 1 of your list is a float (2.5): a size is a whole number of pixels, so return ints. In "
     "Python 3 `/` always gives a float; the formula needs no division, so keep to +, −, * on ints."),
])
def test_int_list_result_messages_in_full(value, message):
    assert IntListResult().problem(value, [4, 8]) == message


def test_int_list_result_parts():
    spec = IntListResult()
    assert spec.part_names == ("",)
    (got,) = spec.parts([np.int64(-3), 7])
    assert got.dtype == np.float64 and got.tolist() == [-3.0, 7.0]
    (got,) = spec.parts(np.array([4, 8], dtype=np.int32))  # not a list: read as an array of numbers
    assert got.dtype == np.float64 and got.tolist() == [4.0, 8.0]
    assert spec.parts(())[0].shape == (0,)


def test_sizes_with_applies_the_step_to_each_layer_in_turn():
    """The helper behind the formula mistakes: step(size, k, s, p) on the previous size, every layer."""
    sizes = checks_dcgan._sizes_with(lambda n, k, s, p: 1000 * n + 100 * k + 10 * s + p)
    assert sizes(2, [(4, 2, 1), (3, 5, 7)]) == [2421, 2421357]
    assert sizes(2, []) == []


def test_float32_mistake_rounds_even_when_float64_is_the_default():
    layers = [(16, 8, 4), (16, 8, 4), (4, 2, 1), (4, 2, 1), (4, 1, 1)]
    exact = checks_dcgan._transposed_conv_sizes(112_500, layers)
    assert exact[-1] == 28_800_001
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        rounded = checks_dcgan._float32_sizes(112_500, layers)
    finally:
        torch.set_default_dtype(old)
    assert rounded[:2] == exact[:2] and rounded[-1] != exact[-1]


# ----------------------------------------------------------------------------- 3.2 slerp

def slerp_cos_threshold(z0, z1, t):
    cos = torch.nn.functional.cosine_similarity(z0, z1, dim=0).clamp(-1, 1)
    t = t[:, None]
    if cos > 0.9995:
        return torch.lerp(z0, z1, t)
    omega = torch.acos(cos)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def slerp_atan2(z0, z1, t):
    """ω = 2·atan2(‖u0 − u1‖, ‖u0 + u1‖) needs no clamp."""
    u0, u1 = z0 / z0.norm(), z1 / z1.norm()
    omega = 2 * torch.atan2((u0 - u1).norm(), (u0 + u1).norm())
    t = t[:, None]
    if torch.sin(omega) == 0:
        return (1 - t) * z0 + t * z1
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def slerp_numpy(z0, z1, t):
    a, b, ts = z0.numpy(), z1.numpy(), t.numpy()[:, None]
    omega = np.arccos(np.clip(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)), -1, 1))
    if np.sin(omega) < 1e-8:
        out = (1 - ts) * a + ts * b
    else:
        out = (np.sin((1 - ts) * omega) * a + np.sin(ts * omega) * b) / np.sin(omega)
    return out


def slerp_loop(z0, z1, t):
    return torch.stack([slerp_cos_threshold(z0, z1, ti.reshape(1))[0] for ti in t])


def slerp_normalises_in_place(z0, z1, t):
    n0, n1 = z0.norm(), z1.norm()
    z0 /= n0
    z1 /= n1
    return checks_dcgan._slerp(z0 * n0, z1 * n1, t)


def slerp_no_clamp(z0, z1, t):
    omega = torch.acos((z0 @ z1) / (z0.norm() * z1.norm()))
    t = t[:, None]
    if torch.sin(omega) < 1e-6:
        return torch.lerp(z0, z1, t)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def slerp_no_limit(z0, z1, t):
    omega = torch.acos(torch.nn.functional.cosine_similarity(z0, z1, dim=0).clamp(-1, 1))
    t = t[:, None]
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def slerp_cos_as_angle(z0, z1, t):
    omega = torch.nn.functional.cosine_similarity(z0, z1, dim=0)
    t = t[:, None]
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


def slerp_flat_t(z0, z1, t):
    omega = torch.acos(torch.nn.functional.cosine_similarity(z0, z1, dim=0).clamp(-1, 1))
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)


SLERP_RIGHT = [
    pytest.param(checks_dcgan._slerp, id="reference"),
    pytest.param(slerp_cos_threshold, id="threshold on cos"),
    pytest.param(slerp_atan2, id="atan2 angle"),
    pytest.param(lambda z0, z1, t: torch.from_numpy(slerp_numpy(z0, z1, t)), id="numpy"),
    pytest.param(lambda z0, z1, t: slerp_cos_threshold(z0.double(), z1.double(), t.double()), id="float64"),
    pytest.param(slerp_loop, id="loop over t"),
]
SLERP_WRONG = [
    pytest.param(slerp_normalises_in_place, r"modified its argument `z0` in place", "in-place", id="z0 /= norm"),
    pytest.param(slerp_numpy, r"you returned a NumPy array", "type", id="numpy result"),
    pytest.param(lambda z0, z1, t: slerp_cos_threshold(z0, z1, t).half(), r"wrong dtype.*float16", "type",
                 id="half"),
    pytest.param(slerp_no_clamp, r"cos ω slightly larger than 1", "unstable", id="no clamp"),
    pytest.param(slerp_no_limit, r"sin ω = 0 and sin\(\(1 − t\)ω\)/sin ω is 0/0", "edge", id="no lerp limit"),
    pytest.param(lambda z0, z1, t: (1 - t[:, None]) * z0 + t[:, None] * z1, r"that is linear interpolation",
                 "formula", id="lerp"),
    pytest.param(lambda z0, z1, t: slerp_cos_threshold(z1, z0, t), r"starts at z1 and ends at z0", "formula",
                 id="swapped"),
    pytest.param(lambda z0, z1, t: slerp_cos_threshold(z0 / z0.norm(), z1 / z1.norm(), t),
                 r"unit vectors z/‖z‖ only", "formula", id="unit vectors"),
    pytest.param(slerp_flat_t, r"t is not a column", "formula", id="flat t"),
    pytest.param(slerp_cos_as_angle, r"used the cosine itself as the angle", "formula", id="cos as the angle"),
    pytest.param(lambda z0, z1, t: slerp_cos_threshold(z0, z1, t) * torch.sin(torch.acos(
        torch.nn.functional.cosine_similarity(z0, z1, dim=0).clamp(-1, 1))), r"forgot to divide by sin ω",
                 "formula", id="no / sin"),
]


@pytest.mark.parametrize("fn", SLERP_RIGHT)
def test_slerp_accepts(fn, capsys):
    check_slerp(fn)
    assert "✓ Exercise 3.2" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", SLERP_WRONG)
def test_slerp_rejects(fn, hint, kind):
    assert_rejected(SLERP_CHECK, fn, hint)


def test_slerp_reference_keeps_the_norm_of_unit_vectors_and_hits_the_ends():
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(16, generator=g, dtype=torch.float64), torch.randn(16, generator=g, dtype=torch.float64)
    u0, u1 = z0 / z0.norm(), z1 / z1.norm()
    path = checks_dcgan._slerp(u0, u1, torch.linspace(0, 1, 11, dtype=torch.float64))
    assert torch.allclose(path.norm(dim=1), torch.ones(11, dtype=torch.float64))
    assert torch.equal(path[0], u0) and torch.allclose(path[-1], u1)
    line = torch.lerp(u0, u1, 0.5)
    assert line.norm() < path[5].norm() - 0.1  # the chord dips inside the sphere, the arc does not


def test_nan_on_rounded_parallel_symptom():
    z = torch.randn(8, generator=torch.Generator().manual_seed(1))
    nan, ok = (np.full((3, 8), np.nan),), (np.zeros((3, 8)),)
    t = torch.tensor([0.0, 0.5, 1.0])
    assert checks_dcgan._nan_on_rounded_parallel(nan, ok, z, 3 * z, t)
    assert not checks_dcgan._nan_on_rounded_parallel(ok, ok, z, 3 * z, t)              # no NaN
    assert not checks_dcgan._nan_on_rounded_parallel(nan, nan, z, 3 * z, t)            # reference NaN too
    assert not checks_dcgan._nan_on_rounded_parallel(nan, ok, z.double(), 3 * z.double(), t.double())  # float64
    w = torch.randn(8, generator=torch.Generator().manual_seed(2))
    assert not checks_dcgan._nan_on_rounded_parallel(nan, ok, z, w, t)                 # not parallel
    o0, o1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert not checks_dcgan._nan_on_rounded_parallel(nan, ok, o0, o1, t)               # orthogonal: cos = 0
    # float32 vectors whose cosine (computed in float64) is exactly 1 − 1e-6: not yet "parallel"
    near = torch.tensor([1.0001106262207031, 0.0014143710723146796])
    assert float(torch.nn.functional.cosine_similarity(o0.double(), near.double(), dim=0)) == 1 - 1e-6
    assert not checks_dcgan._nan_on_rounded_parallel(nan, ok, o0, near, t)


T3 = torch.tensor([0.0, 0.5, 1.0])
Z8 = torch.randn(64, generator=torch.Generator().manual_seed(8))  # the float32 case's latent


def test_float32_parallel_and_antiparallel_codes_round_the_cosine_past_one():
    """What the clamp is for: in float32 the cosine of z and ±3z comes out as ±1.0000001."""
    def cos(a, b):
        return float(((a / a.norm()) * (b / b.norm())).sum())
    assert cos(Z8, 3 * Z8) > 1 and cos(Z8, -3 * Z8) < -1


def test_angle_is_clamped_on_both_sides():
    assert float(checks_dcgan._angle(Z8, 3 * Z8)) == 0.0
    assert float(checks_dcgan._angle(Z8, -3 * Z8)) == pytest.approx(math.pi, abs=1e-6)
    z0, z1 = torch.tensor([3.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 1.0], dtype=torch.float64)
    assert float(checks_dcgan._angle(z0, z1)) == pytest.approx(math.pi / 4, abs=1e-12)


def test_slerp_reference_is_the_straight_line_for_antiparallel_float32_codes():
    """cos ω rounds to −1.0000001: clamped to −1, sin ω ≈ 0 and the reference falls back to the line."""
    path = checks_dcgan._slerp(Z8, -3 * Z8, T3)
    assert torch.isfinite(path).all()
    assert torch.allclose(path, torch.lerp(Z8, -3 * Z8, T3[:, None]))


def test_slerp_without_helper_variants():
    """The helper behind the two planted slerp mistakes, called directly (the module calls it at import)."""
    ref = checks_dcgan._slerp
    full = checks_dcgan._slerp_without()
    no_clamp = checks_dcgan._slerp_without(clamp=False)
    no_fallback = checks_dcgan._slerp_without(fallback=False)
    # generic vectors of other lengths than 1: all three are the reference
    z0, z1 = torch.tensor([0.3, 0.4], dtype=torch.float64), torch.tensor([0.0, 2.0], dtype=torch.float64)
    t = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    omega = math.acos(0.8)
    hand = torch.stack([(math.sin((1 - s) * omega) * z0 + math.sin(s * omega) * z1) / math.sin(omega)
                        for s in t.tolist()])
    for fn in (full, no_clamp, no_fallback):
        assert torch.allclose(fn(z0, z1, t), hand, rtol=0, atol=1e-12)
    assert torch.allclose(ref(z0, z1, t), hand, rtol=0, atol=1e-12)
    # exactly parallel float64 vectors: the line, unless the fallback is left out
    p0, p1 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64), torch.tensor([2.5, 0.0, 0.0], dtype=torch.float64)
    line = torch.tensor([[1.0, 0.0, 0.0], [1.75, 0.0, 0.0], [2.5, 0.0, 0.0]], dtype=torch.float64)
    t = T3.double()
    assert torch.equal(full(p0, p1, t), line) and torch.equal(no_clamp(p0, p1, t), line)
    assert torch.isnan(no_fallback(p0, p1, t)).all()
    # float32 z and ±3z: cos ω rounds past ±1; with the clamp the line, without it NaN
    for sign in (1, -1):
        line = torch.lerp(Z8, sign * 3 * Z8, T3[:, None])
        assert torch.allclose(full(Z8, sign * 3 * Z8, T3), line)
        assert torch.isnan(no_clamp(Z8, sign * 3 * Z8, T3)).all()


def test_slerp_with_omega_by_hand():
    z0, z1 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 2.0], dtype=torch.float64)
    got = checks_dcgan._slerp_with_omega(z0, z1, torch.tensor([0.0, 0.5], dtype=torch.float64),
                                         torch.tensor(math.pi / 3, dtype=torch.float64))
    r = math.sin(math.pi / 6) / math.sin(math.pi / 3)
    assert torch.allclose(got, torch.tensor([[1.0, 0.0], [r, 2 * r]], dtype=torch.float64), rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- 3.3 Fréchet distance, diagonal

def fd_reference_style(mu1, var1, mu2, var2):
    return ((mu1 - mu2) ** 2).sum() + ((var1.sqrt() - var2.sqrt()) ** 2).sum()


def fd_full_covariance(mu1, var1, mu2, var2):
    return gaussian_frechet_distance(mu1, torch.diag(var1), mu2, torch.diag(var2))


def fd_difference_of_squares(mu1, var1, mu2, var2):
    """(σ1 − σ2)² = (σ1² − σ2²)² / (σ1 + σ2)², stable, and fine unless both σ are 0."""
    s = var1.sqrt() + var2.sqrt()
    return torch.dist(mu1, mu2) ** 2 + ((var1 - var2) ** 2 / s**2).sum()


def fd_sqrt_in_place(mu1, var1, mu2, var2):
    return ((mu1 - mu2) ** 2).sum() + ((var1.sqrt_() - var2.sqrt_()) ** 2).sum()


FD_RIGHT = [
    pytest.param(checks_dcgan._frechet_diag, id="reference"),
    pytest.param(fd_full_covariance, id="metrics.gaussian_frechet_distance with diag covariances"),
    pytest.param(fd_difference_of_squares, id="difference of squares"),
    pytest.param(lambda *a: fd_reference_style(*(x.double() for x in a)), id="float64"),
    pytest.param(lambda *a: fd_reference_style(*a).item(), id="python float"),
    pytest.param(lambda *a: np.float64(fd_reference_style(*(torch.from_numpy(x.numpy()) for x in a))),
                 id="numpy float64 scalar"),
]
FD_WRONG = [
    pytest.param(fd_sqrt_in_place, r"modified its argument `var1` in place", "in-place", id="var1.sqrt_()"),
    pytest.param(lambda m1, v1, m2, v2: (((m1 - m2) ** 2).sum(), ((v1.sqrt() - v2.sqrt()) ** 2).sum()),
                 r"you returned a tuple of length 2", "type", id="(mean term, var term)"),
    pytest.param(lambda *a: fd_reference_style(*a).numpy(), r"you returned a NumPy array", "type",
                 id="0-d numpy array"),
    pytest.param(lambda m1, v1, m2, v2: ((m1 - m2) ** 2).sum() + (v1 + v2 - 2 * (v1 * v2).sqrt()).sum(),
                 r"catastrophic cancellation", "unstable", id="expanded"),
    pytest.param(lambda m1, v1, m2, v2: torch.dist(m1, m2) ** 2 + (v1 + v2 - 2 * v1.sqrt() * v2.sqrt()).sum(),
                 r"catastrophic cancellation", "unstable", id="expanded, other rounding"),
    pytest.param(lambda m1, v1, m2, v2: fd_reference_style(m1, v1 + 1e-8, m2, v2 + 1e-8), r"added an ε inside",
                 "edge", id="sqrt(var + 1e-8)"),
    pytest.param(lambda m1, v1, m2, v2: fd_reference_style(m1, v1.clamp_min(1e-7), m2, v2.clamp_min(1e-7)),
                 r"added an ε inside", "edge", id="clamp var at 1e-7"),
    pytest.param(lambda m1, v1, m2, v2: (m1 - m2).norm() + ((v1.sqrt() - v2.sqrt()) ** 2).sum(),
                 r"without squaring it", "formula", id="norm not squared"),
    pytest.param(lambda m1, v1, m2, v2: ((m1 - m2) ** 2).sum() + ((v1 - v2) ** 2).sum(),
                 r"compared variances instead", "formula", id="variances"),
    pytest.param(lambda m1, v1, m2, v2: ((m1 - m2) ** 2).sum() + (v1 + v2 - (v1 * v2).sqrt()).sum(),
                 r"needs its factor 2", "formula", id="no factor 2"),
    pytest.param(lambda *a: fd_reference_style(*a).sqrt(), r"you returned the square root", "formula", id="sqrt"),
    pytest.param(lambda *a: fd_reference_style(*a) / a[0].numel(), r"averaged over the features", "formula",
                 id="mean"),
    pytest.param(lambda m1, v1, m2, v2: ((m1 - m2) ** 2).sum(), r"left out the variance term", "formula",
                 id="means only"),
    pytest.param(lambda m1, v1, m2, v2: ((v1.sqrt() - v2.sqrt()) ** 2).sum(), r"left out the mean term",
                 "formula", id="variances only"),
]


@pytest.mark.parametrize("fn", FD_RIGHT)
def test_fd_accepts(fn, capsys):
    check_frechet_distance_diag(fn)
    assert "✓ Exercise 3.3" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", FD_WRONG)
def test_fd_rejects(fn, hint, kind):
    assert_rejected(FRECHET_DIAG_CHECK, fn, hint)


def test_fd_reference_against_the_full_covariance_formula_and_a_hand_value():
    mu1, var1 = torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([1.0, 4.0], dtype=torch.float64)
    mu2, var2 = torch.tensor([1.0, 1.0], dtype=torch.float64), torch.tensor([4.0, 1.0], dtype=torch.float64)
    # ‖μ1 − μ2‖² = 1, Σ(σ1 − σ2)² = (1 − 2)² + (2 − 1)² = 2
    assert float(checks_dcgan._frechet_diag(mu1, var1, mu2, var2)) == 3.0
    assert fd_full_covariance(mu1, var1, mu2, var2) == pytest.approx(3.0, abs=1e-12)


def test_the_near_floor_case_separates_the_expanded_form_from_float32_rounding():
    """The float32 reference is within 1e-4 of the exact value, the expanded form off by more than 10 %."""
    args = checks_dcgan._near_floor_features()
    exact = float(checks_dcgan._frechet_diag(*(a.double() for a in args)))
    assert abs(float(checks_dcgan._frechet_diag(*args)) - exact) < 1e-4 * exact
    assert abs(float(checks_dcgan._expanded(*args)) - exact) > 0.1 * exact


def test_expanded_form_by_hand():
    """The planted "expanded" answer, on the hand case: 1 + (1 + 4 − 2·2) + (4 + 1 − 2·2) = 3."""
    mu1, var1 = torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([1.0, 4.0], dtype=torch.float64)
    mu2, var2 = torch.tensor([1.0, 3.0], dtype=torch.float64), torch.tensor([4.0, 1.0], dtype=torch.float64)
    # ‖μ1 − μ2‖² = 1 + 4 = 5 (the signs of μ1 − μ2 differ from its sum), variance term 2
    assert float(checks_dcgan._expanded(mu1, var1, mu2, var2)) == 7.0


def test_cancellation_symptom_edges():
    v50 = torch.tensor([50.0])
    mu = torch.zeros(1)
    # the bound 1e-5·Σ(var1 + var2) = 0.001 is included
    assert checks_dcgan._cancellation((np.array(0.001),), (np.array(0.0),), mu, v50, mu, v50)
    assert not checks_dcgan._cancellation((np.array(0.0011),), (np.array(0.0),), mu, v50, mu, v50)
    # variances exactly 1 % apart still count as close
    v100, v101 = torch.tensor([100.0]), torch.tensor([101.0])
    assert checks_dcgan._cancellation((np.array(0.001),), (np.array(0.0),), mu, v100, mu, v101)
    assert not checks_dcgan._cancellation((np.array(0.001),), (np.array(0.0),), mu, v100, mu, torch.tensor([102.0]))
    # a result of another shape is not a rounding error, even if it broadcasts
    assert not checks_dcgan._cancellation((np.full(2, 0.001),), (np.array(0.0),), mu, v50, mu, v50)


def test_cancellation_symptom():
    args = checks_dcgan._near_floor_features()
    want = (np.array(0.0076),)
    assert checks_dcgan._cancellation((np.array(0.0049),), want, *args)
    assert not checks_dcgan._cancellation(want, want, *args)                          # no error
    assert not checks_dcgan._cancellation((np.array(1e3),), want, *args)               # far beyond rounding
    assert not checks_dcgan._cancellation((np.array(0.0049),), want, *(a.double() for a in args))  # float64
    mu1, var1, mu2, var2 = args
    assert not checks_dcgan._cancellation((np.array(0.0049),), want, mu1, var1, mu2, 1.5 * var2)   # not close


def test_zero_variance_symptom():
    v = torch.full((4,), 1e-4, dtype=torch.float64)
    mu = torch.zeros(4, dtype=torch.float64)
    want = (np.array(4e-4),)
    assert checks_dcgan._zero_variance((np.array(3.9e-4),), want, mu, v, mu, torch.zeros_like(v))
    assert not checks_dcgan._zero_variance((np.array(3.9e-4),), want, mu, v, mu, v)         # no zero variance
    assert not checks_dcgan._zero_variance((np.array(4.1e-4),), want, mu, v, mu, torch.zeros_like(v))  # above
    assert checks_dcgan._zero_variance((np.array(2.1e-4),), want, mu, v, mu, torch.zeros_like(v))      # 48 % off
    assert not checks_dcgan._zero_variance((np.array(2e-4),), want, mu, v, mu, torch.zeros_like(v))   # half off
    assert not checks_dcgan._zero_variance((np.zeros(4),), want, mu, v, mu, torch.zeros_like(v))     # shape
    assert not checks_dcgan._zero_variance(want, want, mu, v, mu, torch.zeros_like(v))                # no gap


# ----------------------------------------------------------------------------- every catalogue

CATALOGUES = {
    "3.1": (check_transposed_conv_sizes, TRANSPOSED_CONV_SIZES_CHECK, SIZES_WRONG, SIZES_RIGHT),
    "3.2": (check_slerp, SLERP_CHECK, SLERP_WRONG, SLERP_RIGHT),
    "3.3": (check_frechet_distance_diag, FRECHET_DIAG_CHECK, FD_WRONG, FD_RIGHT),
}
SYMPTOM_STUDENTS = {}  # every mistake here also has a `wrong` answer that shows it
TENSOR_RESULTS = {k: v for k, v in CATALOGUES.items() if k != "3.1"}

(test_catalogue_is_complete, _, test_every_mistake_hint_is_reachable,
 test_not_implemented_gives_the_not_implemented_message) = catalogue_tests(CATALOGUES, SYMPTOM_STUDENTS)
# The shared generic-message test perturbs tensor results; 3.1 returns a list of ints (tested below).
test_hint_words_are_not_in_labels_or_generic_messages = catalogue_tests(TENSOR_RESULTS, SYMPTOM_STUDENTS)[1]


def test_sizes_hint_words_are_not_in_labels_or_generic_messages():
    """3.1's version of the shared test: generic wrong lists (off by one, doubled, one size too many) get the
    generic message, and no WRONG regex matches it or a case label."""
    ref = checks_dcgan._transposed_conv_sizes
    generic = []
    for change in (lambda v: [x + 1 for x in v], lambda v: [2 * x for x in v], lambda v: [*v, 0]):
        with pytest.raises(CheckFailed) as exc:
            check_transposed_conv_sizes(lambda n, layers, change=change: change(ref(n, layers)))
        generic.append(str(exc.value))
    assert "max |yours - reference|" in generic[0] and "wrong shape" in generic[2]
    texts = generic + [c.label for c in TRANSPOSED_CONV_SIZES_CHECK.case_list()]
    for p in SIZES_WRONG:
        for text in texts:
            assert not re.search(p.values[1], text), (p.values[1], text)


def test_checks_are_listed_and_refuse_a_non_function():
    assert checks_dcgan.__all__ == ["check_transposed_conv_sizes", "check_slerp", "check_frechet_distance_diag"]
    for check in (check_transposed_conv_sizes, check_slerp, check_frechet_distance_diag):
        with pytest.raises(TypeError, match="pass your function itself"):
            check("not a function")


def test_generic_wrong_answers_are_refused():
    """The answers tests/test_notebooks.py feeds every exported check (these checks join the export later)."""
    for check in (check_transposed_conv_sizes, check_slerp, check_frechet_distance_diag):
        for wrong in (lambda *a: None, lambda *a: a[0], lambda *a: torch.tensor(math.nan, dtype=torch.float64),
                      lambda *a: [0.0, 1.0]):
            with pytest.raises(CheckFailed):
                check(wrong)


# Generated from the catalogue (see test_the_cases_are_the_ones_students_see); one entry per check.
CASE_SNAPSHOT = {'FRECHET_DIAG_CHECK': [('D = 2: μ1 = (0, 1), σ1² = (1, 4); μ2 = (1, 1), σ2² = (4, 1)', '', (),
                                         (((2,), 'torch.float64', 0, 0, 0, 1, 1.0, 2.0, 1.0, 0.5),
                                          ((2,), 'torch.float64', 0, 0, 0, 0, 5.0, 9.0, 17.0, 4.5),
                                          ((2,), 'torch.float64', 0, 0, 0, 0, 2.0, 3.0, 2.0, 0.0),
                                          ((2,), 'torch.float64', 0, 0, 0, 0, 5.0, 6.0, 17.0, 4.5))),
                                        ('8 features, float64', '', (),
                                         (((8,), 'torch.float64', 0, 0, 0, 0, -1.400064976827294, -5.941360857881914,
                                           7.718258597886422, 7.47323585546912),
                                          ((8,), 'torch.float64', 0, 0, 0, 0, 4.228385581578661, 17.7072399269517,
                                           2.570556704669876, 0.33565112635708755),
                                          ((8,), 'torch.float64', 0, 0, 0, 0, 0.6798806933530493, 6.421887333784289,
                                           3.2866570763602487, 3.228877356710971),
                                          ((8,), 'torch.float64', 0, 0, 0, 0, 5.33140234666315, 26.84993943572885,
                                           4.351005042478626, 0.7980236697279562))),
                                        ('one feature (D = 1)', '', (),
                                         (((1,), 'torch.float64', 0, 0, 0, 0, 0.3, 0.3, 0.09, 0.0),
                                          ((1,), 'torch.float64', 0, 0, 0, 0, 2.0, 2.0, 4.0, 0.0),
                                          ((1,), 'torch.float64', 0, 0, 0, 0, -0.2, -0.2, 0.04000000000000001, 0.0),
                                          ((1,), 'torch.float64', 0, 0, 0, 0, 0.5, 0.5, 0.25, 0.0))),
                                        ('the same Gaussian twice: distance 0', '', (),
                                         (((8,), 'torch.float64', 0, 0, 0, 0, -1.400064976827294, -5.941360857881914,
                                           7.718258597886422, 7.47323585546912),
                                          ((8,), 'torch.float64', 0, 0, 0, 0, 4.228385581578661, 17.7072399269517,
                                           2.570556704669876, 0.33565112635708755),
                                          ((8,), 'torch.float64', 0, 0, 0, 0, -1.400064976827294, -5.941360857881914,
                                           7.718258597886422, 7.47323585546912),
                                          ((8,), 'torch.float64', 0, 0, 0, 0, 4.228385581578661, 17.7072399269517,
                                           2.570556704669876, 0.33565112635708755))),
                                        ('a collapsed generator: every feature constant (σ2 = 0), σ1 = 0.01',
                                         'the second Gaussian has variance exactly 0 in every feature, so σ2 = 0 '
                                         'exactly.',
                                         (),
                                         (((8,), 'torch.float64', 0, 0, 0, 0, 4.0, 18.0, 2.0, 0.0),
                                          ((8,), 'torch.float64', 0, 0, 0, 0, 0.0008, 0.0036000000000000003, 8e-08,
                                           0.0),
                                          ((8,), 'torch.float64', 0, 0, 0, 0, 4.0, 18.0, 2.0, 0.0),
                                          ((8,), 'torch.float64', 0, 0, 0, 8, 0.0, 0.0, 0.0, 0.0))),
                                        ('32 float32 features, σ ≈ 100, the two sets within 0.01 %', '', (),
                                         (((32,), 'torch.float32', 0, 0, 0, 0, 85.7163613140583, 2959.2099833488464,
                                           94776.69241604365, 94547.08945988983),
                                          ((32,), 'torch.float32', 0, 0, 0, 0, 380668.4052734375, 6268437.3046875,
                                           4567323718.839156, 38935132.169716805),
                                          ((32,), 'torch.float32', 0, 0, 0, 0, 85.71074303984642, 2959.3206663131714,
                                           94785.91693116742, 94556.34407265359),
                                          ((32,), 'torch.float32', 0, 0, 0, 0, 380652.5869140625, 6268125.146484375,
                                           4566907635.755742, 38895388.11924502)))],
                 'SLERP_CHECK': [('D = 4 with 4 values of t (T = D)', '', (),
                                  (((4,), 'torch.float64', 0, 0, 0, 1, 2.0, 1.0, 6.0, 5.0),
                                   ((4,), 'torch.float64', 0, 0, 0, 0, 2.5, 8.5, 6.25, 4.6875),
                                   ((4,), 'torch.float64', 0, 0, 0, 1, 1.9, 6.4, 1.45, 0.5475))),
                                 ('two orthogonal unit vectors in 2D, t = 0, ¼, ½, ¾, 1', '', (),
                                  (((2,), 'torch.float64', 0, 0, 0, 1, 1.0, 1.0, 1.0, 0.5),
                                   ((2,), 'torch.float64', 0, 0, 0, 1, 1.0, 2.0, 1.0, 0.5),
                                   ((5,), 'torch.float64', 0, 0, 0, 1, 2.5, 10.0, 1.875, 0.625))),
                                 ('two latent codes z ~ N(0, I) in 64 dims (float32)', '', (),
                                  (((64,), 'torch.float32', 0, 0, 0, 0, 10.293616943061352, 302.05133360251784,
                                    58.42307261416191, 56.76747027399817),
                                   ((64,), 'torch.float32', 0, 0, 0, 0, -4.544673106633127, -10.333191316574812,
                                    55.52443234026465, 55.20171275204349),
                                   ((9,), 'torch.float32', 0, 0, 0, 1, 4.5, 30.0, 3.1875, 0.9375))),
                                 ('vectors of different lengths', '', (),
                                  (((3,), 'torch.float64', 0, 0, 0, 1, 3.0, 5.0, 5.0, 2.0),
                                   ((3,), 'torch.float64', 0, 0, 0, 0, 0.30000000000000004, -0.5999999999999996, 0.99,
                                    0.9599999999999999),
                                   ((3,), 'torch.float64', 0, 0, 0, 0, 1.5, 3.5, 0.875, 0.125))),
                                 ('z1 = 2.5·z0 (same direction)',
                                  'the angle ω is 0 here, so sin ω = 0 and the formula is 0/0; its limit as ω → 0 is '
                                  'the straight line (1 − t)·z0 + t·z1.',
                                  (),
                                  (((3,), 'torch.float64', 0, 0, 0, 2, 1.0, 1.0, 1.0, 0.6666666666666667),
                                   ((3,), 'torch.float64', 0, 0, 0, 2, 2.5, 2.5, 6.25, 4.166666666666666),
                                   ((3,), 'torch.float64', 0, 0, 0, 1, 1.5, 4.0, 1.25, 0.5))),
                                 ('z1 = 3·z0 in 64 dims (float32)', '', (),
                                  (((64,), 'torch.float32', 0, 0, 0, 0, 15.794451877474785, 638.8883492872119,
                                    64.98616889579166, 61.088282800325),
                                   ((64,), 'torch.float32', 0, 0, 0, 0, 47.383355498313904, 1916.6650289297104,
                                    584.8755157352824, 549.7945410746637),
                                   ((3,), 'torch.float32', 0, 0, 0, 1, 1.5, 4.0, 1.25, 0.5)))],
                 'TRANSPOSED_CONV_SIZES_CHECK': [("this lesson's generator: 2×2 → ? → ?", '', (),
                                                  (2, [(4, 2, 1), (4, 2, 1)])),
                                                 ("the DCGAN paper's 64×64 generator from a 1×1 latent", '', (),
                                                  (1, [(4, 1, 0), (4, 2, 1), (4, 2, 1), (4, 2, 1), (4, 2, 1)])),
                                                 ('MNIST: 7×7 → ? → ?', '', (), (7, [(4, 2, 1), (4, 2, 1)])),
                                                 ('kernel 3, stride 1, padding 1', '', (), (5, [(3, 1, 1)])),
                                                 ('odd kernels, strides 2 and 3', '', (), (3, [(3, 2, 0), (5, 3, 2)])),
                                                 ('an empty stack (no layers)',
                                                  'with no layers there are no sizes to report: return [].', (),
                                                  (4, [])),
                                                 ("1D: 112 500 mel frames → 10 min of 48 kHz audio (a vocoder's "
                                                  'upsampler)',
                                                  '', (),
                                                  (112500,
                                                   [(16, 8, 4), (16, 8, 4), (4, 2, 1), (4, 2, 1), (4, 1, 1)]))]}
test_the_cases_are_the_ones_students_see = case_snapshot_test(checks_dcgan, CASE_SNAPSHOT)
