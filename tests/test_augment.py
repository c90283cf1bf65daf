"""Tests for aigc_course.augment: exact shifts of hand-made asymmetric images (direction, zero fill, no
wrap-around), rotations by multiples of 90° equal to torch.rot90, the centre of mass of an off-centre blob turned
by the stated angle (non-square image), mass kept by small rotations, the noise's std and clamping, per-image
draws covering their range, reproducibility from a seed or torch's global RNG, the order of `augment`'s steps,
no input mutated, dtypes and shapes kept, a hypothesis round trip of shifts, bad inputs with exact messages,
and a `cuda` test (skipped without a GPU) that the GPU gives the CPU's result."""

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from aigc_course.augment import Augmenter, add_noise, augment, random_rotation, random_shift, rotate, shift
from aigc_course.data.digits import load_digits_split


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def blob(h: int, w: int, row: float, col: float, sigma: float = 1.2, dtype=torch.float64) -> torch.Tensor:
    """A Gaussian spot centred at (row, col) in an (h, w) image."""
    i = torch.arange(h, dtype=dtype)[:, None]
    j = torch.arange(w, dtype=dtype)[None, :]
    return torch.exp(-((i - row) ** 2 + (j - col) ** 2) / (2 * sigma ** 2))


def centroid(x: torch.Tensor) -> torch.Tensor:
    """(N, H, W) → (N, 2) centre of mass (u right, v down) in pixels from the image centre."""
    h, w = x.shape[-2:]
    i = torch.arange(h, dtype=x.dtype)[:, None] - (h - 1) / 2
    j = torch.arange(w, dtype=x.dtype)[None, :] - (w - 1) / 2
    m = x.sum((-2, -1))
    return torch.stack([(x * j).sum((-2, -1)) / m, (x * i).sum((-2, -1)) / m], -1)


def bright_pixel(x: torch.Tensor) -> list[tuple[int, int]]:
    """(N, H, W) with one bright pixel per image → its (row, col) in each."""
    flat = x.flatten(1).argmax(1)
    w = x.shape[-1]
    return [(int(k) // w, int(k) % w) for k in flat]


# --------------------------------------------------------------------------- shift

def test_shift_moves_pixels_right_and_down_with_zero_fill():
    x = torch.zeros(5, 6)
    x[1, 2] = 1.0    # lands at (2, 4)
    x[3, 5] = 0.5    # would land at column 7: leaves the frame (no wrap-around to column 1)
    x[0, 0] = 0.25   # lands at (1, 2)
    want = torch.zeros(5, 6)
    want[2, 4] = 1.0
    want[1, 2] = 0.25
    out = shift(x[None, None], 2, 1)
    assert torch.equal(out, want[None, None])


def test_shift_left_and_up_and_per_image_amounts():
    x = torch.zeros(3, 4, 5)
    x[:, 2, 3] = 1.0
    x[:, 0, 4] = 0.5          # top-right corner
    out = shift(x, torch.tensor([-3, 1, 0]), torch.tensor([-2, 0, 1]))   # (N, H, W) in, (N, H, W) out
    want = torch.zeros(3, 4, 5)
    want[0, 0, 0] = 1.0       # (2, 3) moved 3 left and 2 up; the corner pixel left the frame
    want[1, 2, 4] = 1.0       # one right; the corner pixel left through the right edge
    want[2, 3, 3] = 1.0       # one down
    want[2, 1, 4] = 0.5
    assert torch.equal(out, want)


def test_shift_by_the_image_size_or_more_empties_it():
    x = torch.rand(2, 1, 4, 6, generator=gen())
    assert torch.equal(shift(x, 6, 0), torch.zeros_like(x))
    assert torch.equal(shift(x, 0, -4), torch.zeros_like(x))
    assert torch.equal(shift(x, 10 ** 30, 0), torch.zeros_like(x))
    assert torch.equal(shift(x, torch.tensor([2 ** 63 - 1, -2 ** 63]), 0), torch.zeros_like(x))
    out = shift(x, torch.tensor([5, -5]), 0)
    assert torch.equal(out[0, :, :, 5], x[0, :, :, 0]) and torch.equal(out[0, :, :, :5], torch.zeros(1, 4, 5))
    assert torch.equal(out[1, :, :, 0], x[1, :, :, 5]) and torch.equal(out[1, :, :, 1:], torch.zeros(1, 4, 5))
    assert torch.equal(shift(x, 0, 0), x)


def test_shift_keeps_channels_together():
    x = torch.rand(2, 3, 5, 5, generator=gen())
    out = shift(x, torch.tensor([1, -1]), torch.tensor([0, 2]))
    for c in range(3):
        assert torch.equal(out[:, c], shift(x[:, c], torch.tensor([1, -1]), torch.tensor([0, 2])))


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), dx=st.integers(-10, 10), dy=st.integers(-10, 10),
       seed=st.integers(0, 2 ** 31 - 1))
def test_shift_there_and_back_restores_the_interior(h, w, dx, dy, seed):
    x = torch.rand(2, 2, h, w, generator=gen(seed)) + 0.1    # no zero pixels: a lost pixel shows
    back = shift(shift(x, dx, dy), -dx, -dy)
    rows = torch.arange(h)[:, None] + dy
    cols = torch.arange(w)[None, :] + dx
    kept = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)     # pixels whose moved copy stayed inside
    assert torch.equal(back, torch.where(kept, x, torch.zeros(())))


# --------------------------------------------------------------------------- rotate

def test_rotate_by_zero_is_the_identity():
    x = torch.rand(4, 2, 7, 9, generator=gen())
    torch.testing.assert_close(rotate(x, 0.0), x, rtol=0, atol=1e-6)
    torch.testing.assert_close(random_rotation(x, 0.0, gen()), x, rtol=0, atol=1e-6)


def test_rotate_by_90_turns_counter_clockwise():
    x = torch.zeros(8, 8)
    x[0, 7] = 1.0    # top-right corner → top-left
    x[2, 6] = 0.5    # (r, c) → (7 - c, r) = (1, 2)
    out = rotate(x[None], 90.0)[0]
    want = torch.zeros(8, 8)
    want[0, 0] = 1.0
    want[1, 2] = 0.5
    torch.testing.assert_close(out, want, rtol=0, atol=1e-5)


def test_rotate_per_image_multiples_of_90_equal_rot90():
    x = torch.rand(4, 3, 6, 6, generator=gen(), dtype=torch.float64)
    out = rotate(x, torch.tensor([90.0, -90.0, 180.0, 270.0]))
    want = torch.stack([torch.rot90(x[0], 1, (-2, -1)), torch.rot90(x[1], -1, (-2, -1)),
                        torch.rot90(x[2], 2, (-2, -1)), torch.rot90(x[3], 3, (-2, -1))])
    torch.testing.assert_close(out, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("degrees", [30.0, -75.0])
def test_rotate_turns_the_centre_of_mass_by_the_angle_on_a_non_square_image(degrees):
    h, w = 21, 29
    x = blob(h, w, row=(h - 1) / 2 - 3, col=(w - 1) / 2 + 6)[None]   # 6 px right of the centre, 3 px up
    u, v = 6.0, -3.0
    t = math.radians(degrees)
    # counter-clockwise on screen with v pointing down
    want = torch.tensor([[u * math.cos(t) + v * math.sin(t), -u * math.sin(t) + v * math.cos(t)]],
                        dtype=torch.float64)
    torch.testing.assert_close(centroid(rotate(x, degrees)), want, rtol=0, atol=0.02)


def test_small_rotations_keep_the_mass_and_the_range():
    x = blob(16, 16, 7.5, 7.5, sigma=2.0)[None].expand(50, 16, 16)
    out = random_rotation(x, 10.0, gen())
    torch.testing.assert_close(out.sum((1, 2)), x.sum((1, 2)), rtol=0.01, atol=0)
    assert out.min() >= 0 and out.max() <= 1    # bilinear interpolation of [0, 1] data with zero padding

    digits = load_digits_split().train_images[:400]
    turned = random_rotation(digits, 10.0, gen())
    ratio = turned.sum() / digits.sum()
    assert 0.97 < ratio < 1.0, f"mass ratio {ratio:.4f}"      # a little ink leaves the 8×8 frame
    assert abs(float(turned.mean() - digits.mean())) < 0.01


def test_random_rotation_angles_are_uniform_per_image():
    x = blob(21, 21, 10.0, 16.0, dtype=torch.float32)[None].expand(300, 21, 21)   # 6 px right of the centre
    c = centroid(rotate(x, 0.0)).double()
    # angle of each turned centroid (counter-clockwise on screen: v points down, hence the minus)
    turned = centroid(random_rotation(x, 20.0, gen())).double()
    angles = torch.rad2deg(torch.atan2(-turned[:, 1], turned[:, 0]) - torch.atan2(-c[:, 1], c[:, 0]))
    assert angles.abs().max() <= 20.1
    assert angles.min() < -18 and angles.max() > 18
    assert abs(float(angles.mean())) < 2.0 and abs(float((angles.abs() < 10).float().mean()) - 0.5) < 0.1


# --------------------------------------------------------------------------- random shifts and noise

def test_random_shift_draws_every_offset_per_image():
    x = torch.zeros(400, 1, 7, 7)
    x[:, 0, 3, 3] = 1.0
    out = random_shift(x, 2, gen())
    offsets = {(r - 3, c - 3) for r, c in bright_pixel(out[:, 0])}
    assert offsets == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(400))        # an interior pixel never leaves the frame


def test_add_noise_has_the_requested_std_and_is_clamped_when_asked():
    x = torch.full((1000, 1, 8, 8), 0.5, dtype=torch.float64)
    eps = add_noise(x, 0.2, gen(), clamp=None) - x
    assert abs(float(eps.std()) - 0.2) < 0.002 and abs(float(eps.mean())) < 0.002
    assert float(eps.abs().max()) > 0.5                            # unclamped: leaves [0, 1]

    clamped = add_noise(x, 0.2, gen())
    assert clamped.min() == 0 and clamped.max() == 1
    torch.testing.assert_close(clamped, (x + eps).clamp(0, 1))     # the same draws, then clamped
    assert add_noise(x, 0.2, gen(), clamp=(0.4, 0.55)).max() == 0.55
    assert torch.equal(add_noise(x, 0.0, gen()), x)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_noise_is_drawn_in_the_images_dtype(dtype):
    x = torch.zeros(3, 1, 4, 4, dtype=dtype)
    want = 0.3 * torch.randn(x.shape, generator=gen(4), dtype=dtype)
    assert torch.equal(add_noise(x, 0.3, gen(4), clamp=None), want)


# --------------------------------------------------------------------------- reproducibility and composition

CALLS = {
    "random_shift": lambda x, g: random_shift(x, 1, g),
    "random_rotation": lambda x, g: random_rotation(x, 15.0, g),
    "add_noise": lambda x, g: add_noise(x, 0.1, g),
    "augment": lambda x, g: augment(x, 1, 10.0, 0.05, g),
    "Augmenter": lambda x, g: Augmenter(1, 10.0, 0.05, generator=g)(x),
}


@pytest.mark.parametrize("name", CALLS)
def test_same_seed_same_output_and_different_images_differ(name):
    fn = CALLS[name]
    x = load_digits_split().train_images[:1].expand(64, 8, 8)       # 64 copies of one digit
    a, b, c = fn(x, gen(1)), fn(x, gen(1)), fn(x, gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert len({tuple(img.flatten().tolist()) for img in a}) > 5   # each image gets its own transform


@pytest.mark.parametrize("name", CALLS)
def test_without_a_generator_the_global_rng_decides(name):
    x = load_digits_split().train_images[:32]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        a = CALLS[name](x, None)
        torch.manual_seed(3)
        b = CALLS[name](x, None)
        c = CALLS[name](x, None)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_augment_is_rotation_then_shift_then_noise_and_skips_zero_steps():
    x = load_digits_split().train_images[:50]
    g = gen(5)
    want = add_noise(random_shift(random_rotation(x, 12.0, g), 2, g), 0.1, g, clamp=(0.0, 0.9))
    assert torch.equal(augment(x, 2, 12.0, 0.1, gen(5), clamp=(0.0, 0.9)), want)
    assert torch.equal(augment(x, 0, 12.0, 0.0, gen(5)), random_rotation(x, 12.0, gen(5)))
    assert torch.equal(augment(x, 2, 0.0, 0.0, gen(5)), random_shift(x, 2, gen(5)))
    assert torch.equal(augment(x, 0, 0.0, 0.1, gen(5)), add_noise(x, 0.1, gen(5)))
    same = augment(x, 0, 0.0, 0.0)
    assert torch.equal(same, x) and same.data_ptr() != x.data_ptr()


def test_augmenter_repr_and_equality():
    aug = Augmenter(shift=2, degrees=5, noise=0.1, generator=gen())
    assert repr(aug) == "Augmenter(shift=2, degrees=5, noise=0.1, clamp=(0.0, 1.0))"
    assert aug == Augmenter(shift=2, degrees=5, noise=0.1)


# --------------------------------------------------------------------------- inputs, dtypes, shapes

FUNCS = {
    "shift": lambda x: shift(x, torch.arange(x.shape[0]) - 1, 1),
    "rotate": lambda x: rotate(x, 33.0),
    **{k: (lambda x, f=f: f(x, gen())) for k, f in CALLS.items()},
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 8, 8), (3, 2, 6, 10), (0, 1, 8, 8)])
@pytest.mark.parametrize("name", FUNCS)
def test_dtype_shape_kept_and_input_not_modified(name, shape, dtype):
    x = torch.rand(shape, generator=gen()).to(dtype)
    before = x.clone()
    out = FUNCS[name](x)
    assert torch.equal(x, before)
    assert out.dtype == dtype and out.shape == x.shape and out.device == x.device
    if x.numel():
        assert out.data_ptr() != x.data_ptr()


def test_float64_is_computed_in_float64():
    x = torch.rand(2, 1, 8, 8, generator=gen(), dtype=torch.float64)
    out = rotate(x, 90.0)
    torch.testing.assert_close(out, torch.rot90(x, 1, (-2, -1)), rtol=0, atol=1e-12)   # float32 gives ~1e-7


def test_gradients_flow_through_rotation_and_shift():
    x = torch.rand(2, 1, 6, 6, generator=gen(), requires_grad=True)
    augment(x, 1, 20.0).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# --------------------------------------------------------------------------- bad inputs

X = torch.zeros(2, 1, 8, 8)
RECT = torch.zeros(2, 6, 9)
BAD = [
    (lambda: shift("img", 1, 1), TypeError, "x must be a torch.Tensor, got str"),
    (lambda: rotate(torch.zeros(2, 8, 8, dtype=torch.int64), 1.0), TypeError,
     "x must be a floating-point tensor, got dtype torch.int64"),
    (lambda: random_shift(torch.zeros(2, 64)), ValueError,
     "x must be a batch of images of shape (N, C, H, W) or (N, H, W) with C, H, W >= 1, got shape (2, 64)"),
    (lambda: augment(torch.zeros(2, 0, 8, 8)), ValueError,
     "x must be a batch of images of shape (N, C, H, W) or (N, H, W) with C, H, W >= 1, got shape (2, 0, 8, 8)"),
    (lambda: shift(X, 1.5, 0), TypeError, "dx must be an int or a tensor of shape (2,), got float"),
    (lambda: shift(X, True, 0), TypeError, "dx must be an int or a tensor of shape (2,), got bool"),
    (lambda: shift(X, torch.tensor([1.0, 2.0]), 0), TypeError,
     "dx must be an int or an integer tensor, got dtype torch.float32"),
    (lambda: shift(X, 0, torch.tensor([1, 2, 3])), ValueError,
     "dy must be an int or a tensor of shape (2,), one per image, got shape (3,)"),
    (lambda: rotate(X, "10"), TypeError, "degrees must be a number or a tensor of shape (2,), got str"),
    (lambda: rotate(X, torch.ones(2, 1)), ValueError,
     "degrees must be a number or a tensor of shape (2,), one per image, got shape (2, 1)"),
    (lambda: rotate(X, torch.tensor([True, False])), TypeError,
     "degrees must be a number or a real tensor, got dtype torch.bool"),
    (lambda: rotate(X, torch.tensor([1.0, math.inf])), ValueError, "degrees must be finite, got NaN or inf"),
    (lambda: random_shift(X, 8), ValueError, "max_shift must be < the image size 8×8, got 8"),
    (lambda: random_shift(RECT, 6), ValueError, "max_shift must be < the image size 6×9, got 6"),
    (lambda: random_shift(X, -1), ValueError, "max_shift must be >= 0, got -1"),
    (lambda: random_shift(X, 1.0), TypeError, "max_shift must be an int, got float 1.0"),
    (lambda: random_shift(X, 1, 0), TypeError, "generator must be a torch.Generator or None, got int"),
    (lambda: random_rotation(X, 181), ValueError, "max_degrees must be in [0, 180], got 181"),
    (lambda: random_rotation(X, -1.0), ValueError, "max_degrees must be in [0, 180], got -1.0"),
    (lambda: random_rotation(X, "5"), TypeError, "max_degrees must be a number, got str '5'"),
    (lambda: add_noise(X, -0.1), ValueError, "std must be >= 0, got -0.1"),
    (lambda: add_noise(X, math.inf), ValueError, "std must be finite, got inf"),
    (lambda: add_noise(X, 0.1, clamp=(1, 0)), ValueError, "clamp must have low < high, got (1, 0)"),
    (lambda: add_noise(X, 0.1, clamp=0.5), TypeError, "clamp must be None or a pair (low, high) of numbers, got 0.5"),
    (lambda: augment(RECT, shift=6), ValueError, "shift must be < the image size 6×9, got 6"),
    (lambda: augment(X, degrees=200), ValueError, "degrees must be in [0, 180], got 200"),
    (lambda: augment(X, noise=-1), ValueError, "noise must be >= 0, got -1"),
    (lambda: Augmenter(shift=1.5), TypeError, "shift must be an int, got float 1.5"),
    (lambda: Augmenter(clamp=(0, "1")), TypeError, "clamp must be None or a pair (low, high) of numbers, got (0, '1')"),
    (lambda: Augmenter(generator="g"), TypeError, "generator must be a torch.Generator or None, got str"),
    (lambda: Augmenter(shift=8)(X), ValueError, "shift must be < the image size 8×8, got 8"),
]


@pytest.mark.parametrize(("call", "err", "msg"), BAD, ids=[re.sub(r"\W+", "_", m[:40]).strip("_") for _, _, m in BAD])
def test_bad_inputs_are_refused_with_exact_messages(call, err, msg):
    with pytest.raises(err, match="^" + re.escape(msg) + "$"):
        call()


# --------------------------------------------------------------------------- CUDA

@pytest.mark.cuda
def test_cuda_gives_the_cpu_result():
    x = load_digits_split().train_images[:256]
    xc = x.cuda()
    for name, fn in CALLS.items():
        out = fn(xc, gen(7))
        assert out.device.type == "cuda", name
        want = fn(x, gen(7))
        if name == "random_shift":
            assert torch.equal(out.cpu(), want)
        else:
            torch.testing.assert_close(out.cpu(), want, rtol=0, atol=1e-5, msg=name)
    dx, dy = torch.tensor([1, -2]).cuda(), torch.tensor([0, 3]).cuda()
    assert torch.equal(shift(xc[:2], dx, dy).cpu(), shift(x[:2], dx.cpu(), dy.cpu()))
    assert torch.equal(random_shift(xc.double(), 2, gen(1)).cpu(), random_shift(x.double(), 2, gen(1)))


def test_the_defaults_are_one_pixel_and_ten_degrees():
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for default, explicit in ((lambda g: random_shift(x, generator=g), lambda g: random_shift(x, 1, generator=g)),
                              (lambda g: random_rotation(x, generator=g),
                               lambda g: random_rotation(x, 10.0, generator=g))):
        assert torch.equal(default(torch.Generator().manual_seed(7)), explicit(torch.Generator().manual_seed(7)))


def test_augmenter_passes_its_clamp_on():
    x = torch.full((32, 1, 8, 8), 0.5)
    out = Augmenter(shift=0, degrees=0.0, noise=1.0, clamp=None, generator=torch.Generator().manual_seed(3))(x)
    same = augment(x, 0, 0.0, 1.0, generator=torch.Generator().manual_seed(3), clamp=None)
    assert torch.equal(out, same) and (out > 1).any() and (out < 0).any()    # unclamped, as asked
    wide = Augmenter(shift=0, degrees=0.0, noise=1.0, clamp=(-1.0, 2.0), generator=torch.Generator().manual_seed(3))(x)
    assert wide.min() >= -1 and wide.max() <= 2 and (wide > 1).any()
