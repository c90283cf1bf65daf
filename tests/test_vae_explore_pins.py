"""Pins for train_vae and the latent-space helpers of aigc_course.vae that tests/test_vae_explore.py leaves loose
(found by mutation testing): VAEConfig's defaults and what train_vae hands to Adam, the cosine scheduler and
train (names, device, every TrainConfig field, callbacks, the timing), the chunked evaluation's ε order;
_png's exact pixels (clamping, scale×scale blocks, grey vs RGB, PNG whatever matplotlib's default format);
_model_device for a model without parameters; exact messages of _vector / _single_image / decoded_manifold /
latent_traversal / the explorer; interpolate_latents' dtype and device; latent_map's centring and sign
convention; decoded_manifold's exact grid and default size; and the explorer's widgets (defaults, slider values
and steps, image width for non-square and flat images, which trait changes redraw)."""

import io
import math
import re
import time

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

import aigc_course.vae as vae_mod
from aigc_course.vae import (
    VAE,
    BernoulliDecoder,
    GaussianEncoder,
    LatentExplorer,
    VAEConfig,
    build_vae,
    decoded_manifold,
    elbo,
    encode_mean,
    importance_weighted_log_likelihood,
    interpolate,
    interpolate_latents,
    latent_explorer,
    latent_map,
    latent_traversal,
    reconstruct,
    train_vae,
)

torch.set_num_threads(1)


def raises(exc, msg):
    """The whole message, exactly."""
    return pytest.raises(exc, match="^" + re.escape(msg) + "$")


def tiny(latent_dim=4, seed=0, **kw):
    torch.manual_seed(seed)
    return build_vae(latent_dim, hidden=8, **kw)


def images(n, seed=1, shape=(1, 8, 8)):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed))


def decode(model, z, labels=None):
    with torch.no_grad():
        return vae_mod.decoded_mean(model.decode(z, labels), model.likelihood)


def png_pixels(data: bytes) -> np.ndarray:
    return plt.imread(io.BytesIO(data), format="png")


# --------------------------------------------------------------------------- train_vae

def test_vae_config_defaults():
    c = VAEConfig(steps=5)
    want = dict(steps=5, batch_size=128, lr=1e-3, weight_decay=0.0, beta=1.0, kl_warmup=0, lr_schedule="constant",
                eval_every=0, eval_k=1, seed=0, grad_clip=None, amp=None, ckpt_dir=None, ckpt_every=0, log_every=10,
                progress=True, desc="vae")
    assert {k: getattr(c, k) for k in want} == want


def spy_train(monkeypatch):
    seen = {}
    real = vae_mod.train

    def spy(step_fn, **kw):
        seen.update(kw)
        return real(step_fn, **kw)

    monkeypatch.setattr(vae_mod, "train", spy)
    return seen


def test_train_vae_hands_every_setting_to_train(monkeypatch, tmp_path):
    seen = spy_train(monkeypatch)
    model = tiny()
    moved = []
    real_to = model.to
    model.to = lambda *a, **k: (moved.append(a), real_to(*a, **k))[1]
    fired = []
    callbacks = (lambda step, record: fired.append(step),)
    dev = torch.device("cpu", 0)
    cfg = VAEConfig(steps=4, batch_size=5, grad_clip=0.5, amp=False, ckpt_dir=str(tmp_path), ckpt_every=3,
                    log_every=2, progress=False, desc="mine")
    train_vae(model, images(12), cfg, callbacks=callbacks, device=dev)
    tc = seen["config"]
    assert (tc.steps, tc.grad_clip, tc.amp, tc.ckpt_dir, tc.ckpt_every, tc.log_every, tc.progress, tc.desc) == (
        4, 0.5, False, str(tmp_path), 3, 2, False, "mine")
    assert seen["models"] == {"vae": model} and list(seen["optimizers"]) == ["vae"]
    assert seen["schedulers"] is None and list(seen["callbacks"]) == list(callbacks)
    assert seen["device"] == dev and str(seen["device"]) == "cpu:0"
    assert moved[0] == (dev,)
    assert fired == [0, 2, 3]                       # every log_every = 2 steps and the last
    # without a device: the model's own
    train_vae(tiny(), images(12), VAEConfig(steps=1, progress=False))
    assert seen["device"] == torch.device("cpu") and str(seen["device"]) == "cpu"


def test_cosine_schedule_is_named_vae_ends_at_zero_after_one_step_and_is_skipped_for_zero_steps(monkeypatch):
    seen = spy_train(monkeypatch)
    train_vae(tiny(), images(12), VAEConfig(steps=1, lr=2e-3, lr_schedule="cosine", progress=False))
    sched = seen["schedulers"]
    assert list(sched) == ["vae"] and sched["vae"].T_max == 1
    assert sched["vae"].optimizer is seen["optimizers"]["vae"]
    assert seen["optimizers"]["vae"].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    train_vae(tiny(), images(12), VAEConfig(steps=0, lr_schedule="cosine", progress=False))
    assert seen["schedulers"] is None


def test_history_keys_and_the_evaluated_steps_when_the_last_step_is_off_the_grid():
    x = images(12)
    r = train_vae(tiny(), x, VAEConfig(steps=5, batch_size=4, eval_every=2, eval_k=2, progress=False), test=x[:5])
    h = r.history
    assert set(h.keys()) == {"step", "grad_norm", "loss", "elbo", "reconstruction", "kl", "beta", "test_elbo",
                             "test_iwae"}
    assert [int(rec["step"]) for rec in h.records if "test_elbo" in rec] == [1, 3, 4]
    assert [int(rec["step"]) for rec in h.records if "test_iwae" in rec] == [1, 3, 4]


def test_seconds_is_the_duration_of_the_call():
    t0 = time.perf_counter()
    r = train_vae(tiny(), images(12), VAEConfig(steps=2, progress=False))
    elapsed = time.perf_counter() - t0
    assert 0 < r.seconds <= elapsed


def test_chunked_evaluation_draws_eps_chunk_by_chunk_elbo_then_iwae():
    model = tiny()
    x = images(7)
    out = vae_mod._evaluate(model, x, None, 3, seed=5, chunk=3)
    rng = torch.Generator().manual_seed(5)
    model.eval()
    elbos, iwaes = [], []
    with torch.no_grad():
        for i in range(0, 7, 3):
            elbos.append(elbo(model, x[i:i + 3], rng=rng).elbo)
            iwaes.append(importance_weighted_log_likelihood(model, x[i:i + 3], 3, rng=rng))
    assert out == {"test_elbo": float(torch.cat(elbos).mean()), "test_iwae": float(torch.cat(iwaes).mean())}
    model.train()
    assert vae_mod._evaluate(model, x, None, 1, seed=5, chunk=3).keys() == {"test_elbo"} and model.training


# --------------------------------------------------------------------------- small helpers

def test_model_device_of_a_parameterless_model_is_the_cpu_else_the_first_parameters():
    assert vae_mod._model_device(nn.Identity()) == torch.device("cpu")
    assert vae_mod._model_device(nn.Linear(2, 2, device="meta")) == torch.device("meta")


def test_png_exact_grey_pixels_clamped_and_enlarged():
    img = torch.tensor([[[0.0, 0.25, -0.5], [1.7, 0.5, 0.75]]])       # (1, 2, 3): non-square
    one = png_pixels(vae_mod._png(img, 1))
    assert one.shape == (2, 3, 4)
    want = img[0].clamp(0, 1).numpy()
    for c in range(3):
        assert np.abs(one[..., c] - want).max() <= 1 / 255 + 1e-6
    big = png_pixels(vae_mod._png(img, 3))
    assert big.shape == (6, 9, 4)
    assert np.array_equal(big, np.repeat(np.repeat(one, 3, axis=0), 3, axis=1))


def test_png_rgb_keeps_the_channels_and_clamps_them():
    img = torch.tensor([[[0.1, -0.4, 0.9], [0.3, 1.6, 0.0]],
                        [[0.8, 0.2, 2.0], [0.6, 0.0, 0.4]],
                        [[-1.0, 0.7, 0.5], [1.0, 0.35, 0.2]]])       # (3, 2, 3)
    pix = png_pixels(vae_mod._png(img, 2))
    assert pix.shape == (4, 6, 4)
    want = np.repeat(np.repeat(img.clamp(0, 1).permute(1, 2, 0).numpy(), 2, axis=0), 2, axis=1)
    assert np.abs(pix[..., :3] - want).max() <= 1 / 255 + 1e-6


def test_png_is_png_whatever_matplotlibs_default_format():
    with matplotlib.rc_context({"savefig.format": "jpg"}):
        data = vae_mod._png(torch.full((1, 2, 2), 0.5), 1)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- interpolation

def test_vector_messages_and_a_one_dimensional_latent():
    with raises(TypeError, "z_a must be a torch.Tensor, got str"):
        interpolate_latents("0", torch.zeros(2), 3)
    with raises(ValueError, "z_a must be finite, got NaN or inf"):
        interpolate_latents(torch.tensor([math.nan, 0.0]), torch.zeros(2), 3)
    with raises(ValueError, "z_a must be a latent vector of shape (D,), got (0,)"):
        interpolate_latents(torch.zeros(0), torch.zeros(0), 3)
    out = interpolate_latents(torch.tensor([1.0]), torch.tensor([3.0]), 3)
    assert torch.equal(out, torch.tensor([[1.0], [2.0], [3.0]]))


def test_interpolate_latents_dtype_follows_z_a_and_t_is_exact():
    a32, b64 = torch.tensor([1.0, 2.0]), torch.tensor([0.1, -0.3], dtype=torch.float64)
    out = interpolate_latents(a32, b64, 4)
    assert out.dtype == torch.float32
    assert torch.equal(out, interpolate_latents(a32, b64.float(), 4))
    a, b = torch.tensor([0.3, -1.1], dtype=torch.float64), torch.tensor([2.7, 0.9], dtype=torch.float64)
    t = torch.linspace(0, 1, 7, dtype=torch.float64)[:, None]
    assert torch.equal(interpolate_latents(a, b, 7), (1 - t) * a + t * b)


def test_interpolate_latents_stays_on_the_inputs_device_whatever_the_default_device():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])
    with torch.device("meta"):
        lin = interpolate_latents(a, b, 3)
        sl = interpolate_latents(a, b, 3, method="slerp")
    assert lin.device.type == "cpu" and sl.device.type == "cpu"
    assert torch.equal(lin, interpolate_latents(a, b, 3))


def test_interpolate_messages_default_steps_slerp_and_three_channels():
    model = tiny()
    x = images(2)
    with raises(TypeError, "x_a must be a torch.Tensor, got list"):
        interpolate(model, [0.0], x[1])
    with raises(TypeError, "x_b must be a torch.Tensor, got str"):
        interpolate(model, x[0], "x")
    with raises(ValueError, "x_b must be one image of shape (1, 8, 8) (or (1, ...)), got (2, 1, 8, 8)"):
        interpolate(model, x[0], x)
    assert interpolate(model, x[0], x[1]).shape == (8, 1, 8, 8)
    mu = encode_mean(model, x)
    path = interpolate(model, x[0], x[1], 5, method="slerp")
    assert torch.allclose(path, decode(model, interpolate_latents(mu[0], mu[1], 5, method="slerp")), atol=1e-6)
    assert not torch.allclose(path, interpolate(model, x[0], x[1], 5), atol=1e-6)
    rgb = tiny(channels=3)
    xc = images(2, shape=(3, 8, 8))
    out = interpolate(rgb, xc[0], xc[1], 3)
    assert out.shape == (3, 3, 8, 8)
    assert torch.allclose(out[0], reconstruct(rgb, xc[:1])[0], atol=1e-6)


# --------------------------------------------------------------------------- traversal, map, manifold

def test_latent_traversal_rejects_non_sequences_and_non_finite_values():
    model = tiny()
    with raises(ValueError, "dims must be a non-empty list of latent indices in [0, 3], got {0, 1}"):
        latent_traversal(model, dims={0, 1})
    with raises(ValueError, "values must be a non-empty 1-D list of finite numbers, got [1e+39]"):
        latent_traversal(model, values=[1e39])      # finite in float64, inf in float32
    big = torch.tensor([0.0, 1e39], dtype=torch.float64)
    with raises(ValueError, f"values must be a non-empty 1-D list of finite numbers, got {big!r}"):
        latent_traversal(model, values=big)
    with raises(ValueError, "values must be a non-empty 1-D list of finite numbers, got [0.0, nan]"):
        latent_traversal(model, values=[0.0, math.nan])


def test_latent_map_of_two_images_and_its_centring_and_sign_convention(monkeypatch):
    model = tiny()
    x = images(2)
    mu = encode_mean(model, x).double()
    coords = latent_map(model, x)
    d = (mu[0] - mu[1]).norm().item()
    assert coords.shape == (2, 2)
    assert torch.allclose(coords[:, 0].abs(), torch.full((2,), d / 2, dtype=torch.float32), atol=1e-5)
    assert coords[:, 1].abs().max() < 1e-5
    # designed means: a large spread along u1 = (0.6, −0.8, 0) (largest loading negative → flipped) and a small
    # one along u2 = (0, 0, 1), around (5, 5, 5)
    a = torch.tensor([3.0, -1.0, 0.0, -2.0], dtype=torch.float64)
    b = torch.tensor([0.1, 0.3, -0.4, 0.0], dtype=torch.float64)    # centred, uncorrelated with a
    u1 = torch.tensor([0.6, -0.8, 0.0], dtype=torch.float64)
    u2 = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    fake = 5.0 + a[:, None] * u1 + b[:, None] * u2
    monkeypatch.setattr(vae_mod, "encode_mean", lambda model, x, labels=None: fake.float())
    three = tiny(3)
    got = latent_map(three, images(4)).double()
    want = torch.stack([-a, b], dim=1)
    assert torch.allclose(got, want, atol=1e-5), got


def test_decoded_manifold_default_size_quantile_checks_and_exact_grid(monkeypatch):
    two = tiny(2)
    assert decoded_manifold(two).shape == (225, 1, 8, 8)
    for q in ("0.9", 0.5, True, 0.4):
        with raises(ValueError, f"quantile must be a number in (0.5, 1), got {q!r}"):
            decoded_manifold(two, 3, quantile=q)
    seen = []
    real = two.decode
    monkeypatch.setattr(two, "decode", lambda z, labels=None: (seen.append(z.clone()), real(z, labels))[1])
    decoded_manifold(two, 15, quantile=0.97)
    g = torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.03, 0.97, 15, dtype=torch.float64)).float()
    want = torch.stack([g.repeat(15), g.flip(0).repeat_interleave(15)], dim=1)
    assert torch.equal(seen[0], want)


# --------------------------------------------------------------------------- the explorer

def flat_vae(n=6, seed=0):
    torch.manual_seed(seed)
    return VAE(GaussianEncoder(n, 2, hidden=8), BernoulliDecoder(2, n, hidden=8))


def rect_vae(seed=0):
    torch.manual_seed(seed)
    return VAE(GaussianEncoder((1, 4, 6), 2, hidden=8), BernoulliDecoder(2, (1, 4, 6), hidden=8))


@pytest.mark.parametrize("make", [LatentExplorer, latent_explorer])
def test_explorer_defaults(make):
    model = tiny(10)
    ex = make(model)
    assert len(ex.sliders) == 8
    for s in ex.sliders:
        assert (s.min, s.max, s.value, s.continuous_update) == (-3.0, 3.0, 0.0, True)
        assert s.step == pytest.approx(0.06, abs=1e-12)
    assert ex.scale == 16 and ex.image.width == "128" and ex.image.format == "png"
    assert png_pixels(ex.image.value).shape[:2] == (128, 128)
    assert torch.equal(ex.z, torch.zeros(10))


def test_explorer_span_checks_slider_values_and_steps():
    model = tiny(3)
    for span in (True, 0.0, -1.0, math.inf, "2"):
        with raises(ValueError, f"span must be a positive finite number, got {span!r}"):
            LatentExplorer(model, span=span)
    ex = LatentExplorer(model, span=0.5, z=torch.tensor([0.25, -0.125, 0.375]), scale=1)
    assert [s.value for s in ex.sliders] == [0.25, -0.125, 0.375]
    assert [s.step for s in ex.sliders] == [0.01] * 3 and ex.sliders[0].max == 0.5
    assert torch.allclose(ex.decoded, decode(model, torch.tensor([[0.25, -0.125, 0.375]]))[0], atol=1e-6)


def test_explorer_class_menu_is_described_as_class():
    model = tiny(2, num_classes=3)
    ex = LatentExplorer(model, label=2, scale=1)
    assert ex.label_dropdown.description == "class" and ex.label_dropdown.options == (0, 1, 2)


def test_explorer_of_a_non_square_image_is_as_wide_as_the_image():
    ex = LatentExplorer(rect_vae(), scale=3)
    assert ex.image.width == "18" and ex.image.format == "png"
    pix = png_pixels(ex.image.value)
    assert pix.shape[:2] == (12, 18)
    want = np.repeat(np.repeat(ex.decoded[0].numpy(), 3, axis=0), 3, axis=1)
    assert np.abs(pix[..., 0] - want).max() <= 1 / 255 + 1e-6


def test_explorer_of_flat_data_draws_a_one_row_strip():
    model = flat_vae(6)
    ex = LatentExplorer(model, scale=2, z=torch.tensor([0.5, -1.0]))
    assert ex.decoded.shape == (6,) and ex.image.width == "12"
    pix = png_pixels(ex.image.value)
    assert pix.shape[:2] == (2, 12)
    want = np.repeat(ex.decoded.numpy(), 2)
    for row in range(2):
        assert np.abs(pix[row, :, 0] - want).max() <= 1 / 255 + 1e-6


def test_explorer_redraws_on_value_changes_only(monkeypatch):
    calls = []
    real = vae_mod._decode_mean
    monkeypatch.setattr(vae_mod, "_decode_mean", lambda *a: (calls.append(1), real(*a))[1])
    ex = LatentExplorer(tiny(2, num_classes=3), scale=1)
    assert len(calls) == 1
    ex.sliders[0].description = "first"
    ex.sliders[1].max = 2.5
    ex.label_dropdown.description = "digit"
    assert len(calls) == 1
    ex.sliders[1].value = 1.0
    ex.label_dropdown.value = 2
    assert len(calls) == 3


# --------------------------------------------------------------------------- CUDA

@pytest.mark.cuda
def test_cuda_train_vae_moves_a_cpu_model_and_its_data_to_the_requested_device():
    x, y = images(20), torch.arange(20) % 3
    model = tiny(2, num_classes=3)
    r = train_vae(model, x, VAEConfig(steps=3, batch_size=4, progress=False), labels=y, test=x[:6],
                  test_labels=y[:6], device="cuda")
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert math.isfinite(r.history.last("test_elbo"))
    path = interpolate(model, x[0], x[1].cuda(), 3, label=1)
    assert path.device.type == "cpu"
    z = interpolate_latents(torch.zeros(2, device="cuda"), torch.ones(2, device="cuda"), 3)
    assert z.device.type == "cuda"
