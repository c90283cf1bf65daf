"""Tests for training and exploring VAEs (aigc_course.vae): train_vae's history, β schedule, evaluation columns,
determinism and resume; latent interpolation (linear, slerp), traversals, the latent map, the decoded manifold,
and the ipywidgets latent explorer driven headless (set a slider in Python, the decoded image changes)."""

import io
import math
import re

import matplotlib.pyplot as plt
import pytest
import torch
from torch.distributions import Normal

from aigc_course.data.digits import load_digits_split
from aigc_course.device import seed_everything
from aigc_course.vae import (
    VAEConfig,
    VAEResult,
    build_vae,
    decoded_manifold,
    decoded_mean,
    elbo,
    encode_mean,
    interpolate,
    interpolate_latents,
    kl_per_dimension,
    latent_explorer,
    latent_map,
    latent_traversal,
    posterior_activity,
    reconstruct,
    train_vae,
)

torch.set_num_threads(1)


def digits():
    d = load_digits_split()
    return d.train_images.unsqueeze(1), d.train_labels, d.test_images.unsqueeze(1), d.test_labels


def fit(steps=40, seed=0, latent_dim=4, test=True, **cfg):
    x, y, xt, yt = digits()
    seed_everything(seed)
    model = build_vae(latent_dim, hidden=64)
    cfg.setdefault("progress", False)
    result = train_vae(model, x, VAEConfig(steps=steps, **cfg), test=xt if test else None)
    return model, result


def decode(model, z, labels=None):
    with torch.no_grad():
        return decoded_mean(model.decode(z, labels), model.likelihood)


# --------------------------------------------------------------------------- train_vae

def test_history_columns_are_consistent_and_the_test_elbo_improves():
    model, result = fit(steps=150, eval_every=10, eval_k=8, lr=2e-3)
    assert isinstance(result, VAEResult) and result.seconds > 0
    h = result.history
    assert len(h) == 150
    for r in h.records:
        assert r["loss"] == pytest.approx(-(r["reconstruction"] - r["beta"] * r["kl"]), rel=1e-5, abs=1e-4)
        assert r["elbo"] == pytest.approx(r["reconstruction"] - r["kl"], rel=1e-5, abs=1e-4)
        assert r["beta"] == 1.0 and r["kl"] >= 0 and r["grad_norm"] > 0
    evals = [r for r in h.records if "test_elbo" in r]
    assert [int(r["step"]) for r in evals] == list(range(9, 150, 10))
    assert [int(r["step"]) for r in h.records if "test_iwae" in r] == list(range(9, 150, 10))
    assert evals[-1]["test_elbo"] > evals[0]["test_elbo"] + 5, [r["test_elbo"] for r in evals]
    # the IWAE bound (k = 8) is above the ELBO on a 359-image mean
    assert all(r["test_iwae"] > r["test_elbo"] for r in evals)
    # the logged test ELBO is the model's mean ELBO on the test set (eval mode)
    assert model.training   # evaluation ran in eval mode and restored training mode
    _, _, xt, _ = digits()
    model.eval()
    with torch.no_grad():
        again = elbo(model, xt, rng=torch.Generator().manual_seed(0)).elbo.mean().item()
    assert again == pytest.approx(evals[-1]["test_elbo"], abs=1e-4)


def test_without_test_data_no_eval_columns_and_eval_every_zero_evaluates_at_the_end():
    _, r1 = fit(steps=12, test=False, eval_every=5)
    assert "test_elbo" not in r1.history.keys()
    _, r2 = fit(steps=12)
    assert [int(r["step"]) for r in r2.history.records if "test_elbo" in r] == [11]
    assert "test_iwae" not in r2.history.keys()


def test_evaluation_does_not_change_the_training_run_and_same_seed_same_numbers():
    m1, r1 = fit(steps=25, eval_every=5, eval_k=3)
    m2, r2 = fit(steps=25, test=False)
    m3, r3 = fit(steps=25, eval_every=5, eval_k=3)
    _, r4 = fit(steps=25, seed=1, test=False)
    strip = lambda h: [{k: v for k, v in r.items() if not k.startswith("test_")} for r in h.records]  # noqa: E731
    assert strip(r1.history) == strip(r2.history) == strip(r3.history)
    assert r1.history.records == r3.history.records
    assert strip(r4.history) != strip(r2.history)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_kl_warmup_ramps_beta_linearly_and_beta_trades_kl():
    _, r = fit(steps=12, kl_warmup=8, beta=2.0, test=False)
    assert r.history["beta"] == pytest.approx([2.0 * min(1.0, s / 8) for s in range(12)])
    assert r.history["loss"][0] == pytest.approx(-r.history["reconstruction"][0])   # β = 0 at step 0
    _, low = fit(steps=120, beta=0.0, test=False, lr=2e-3)
    _, high = fit(steps=120, beta=4.0, test=False, lr=2e-3)
    kl_low, kl_high = (sum(h.history["kl"][-20:]) / 20 for h in (low, high))
    rec_low, rec_high = (sum(h.history["reconstruction"][-20:]) / 20 for h in (low, high))
    assert kl_high < 0.5 * kl_low and rec_high < rec_low, (kl_low, kl_high, rec_low, rec_high)


def test_cosine_schedule_and_weight_decay_reach_the_optimizer(monkeypatch):
    seen = {}
    real_adam = torch.optim.Adam

    def spy(params, **kw):
        seen.update(kw)
        opt = real_adam(params, **kw)
        seen["opt"] = opt
        return opt

    monkeypatch.setattr(torch.optim, "Adam", spy)
    fit(steps=10, lr=3e-3, weight_decay=0.25, lr_schedule="cosine", test=False)
    assert seen["lr"] == 3e-3 and seen["weight_decay"] == 0.25
    assert seen["opt"].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)   # cosine ends at 0
    fit(steps=10, lr=3e-3, test=False)
    assert seen["opt"].param_groups[0]["lr"] == 3e-3 and seen["weight_decay"] == 0.0


def test_resume_from_a_checkpoint_is_bit_identical(tmp_path):
    x, _, xt, _ = digits()

    def run(steps, folder):
        seed_everything(7)
        model = build_vae(3, hidden=32)
        if folder is not None and any(folder.iterdir()):
            seed_everything(123)  # the checkpoint must restore the RNG, whatever it is now
        r = train_vae(model, x, VAEConfig(steps=steps, progress=False, eval_every=3, ckpt_dir=folder), test=xt)
        return model, r

    ref_model, ref = run(12, None)
    folder = tmp_path / "ckpt"
    folder.mkdir()
    run(6, folder)
    model, resumed = run(12, folder)
    assert resumed.history.records == ref.history.records
    for (k, a), b in zip(ref_model.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_conditional_training_uses_the_labels():
    x, y, xt, yt = digits()
    seed_everything(0)
    model = build_vae(2, hidden=64, num_classes=10)
    r = train_vae(model, x, VAEConfig(steps=80, lr=2e-3, progress=False), labels=y, test=xt, test_labels=yt)
    assert math.isfinite(r.history.last("test_elbo"))
    model.eval()
    with torch.no_grad():
        right = elbo(model, xt, labels=yt, rng=torch.Generator().manual_seed(0)).elbo.mean()
        wrong = elbo(model, xt, labels=(yt + 5) % 10, rng=torch.Generator().manual_seed(0)).elbo.mean()
    assert right > wrong + 1, (right, wrong)


def test_train_vae_bad_inputs_have_exact_messages():
    x, y, xt, _ = digits()
    m = build_vae(2, hidden=16)
    cases = [
        (lambda: VAEConfig(steps=-1), ValueError, "VAEConfig.steps must be >= 0, got -1"),
        (lambda: VAEConfig(steps=1.5), TypeError, "VAEConfig.steps must be an int, got float 1.5"),
        (lambda: VAEConfig(steps=1, batch_size=0), ValueError, "VAEConfig.batch_size must be >= 1, got 0"),
        (lambda: VAEConfig(steps=1, kl_warmup=-2), ValueError, "VAEConfig.kl_warmup must be >= 0, got -2"),
        (lambda: VAEConfig(steps=1, eval_every=-1), ValueError, "VAEConfig.eval_every must be >= 0, got -1"),
        (lambda: VAEConfig(steps=1, eval_k=0), ValueError, "VAEConfig.eval_k must be >= 1, got 0"),
        (lambda: VAEConfig(steps=1, lr=0.0), ValueError, "VAEConfig.lr must be a finite number > 0, got 0.0"),
        (lambda: VAEConfig(steps=1, lr="1e-3"), TypeError, "VAEConfig.lr must be a number, got str '1e-3'"),
        (lambda: VAEConfig(steps=1, beta=-0.5), ValueError, "VAEConfig.beta must be a finite number >= 0, got -0.5"),
        (lambda: VAEConfig(steps=1, beta=math.inf), ValueError,
         "VAEConfig.beta must be a finite number >= 0, got inf"),
        (lambda: VAEConfig(steps=1, weight_decay=-1e-4), ValueError,
         "VAEConfig.weight_decay must be a finite number >= 0, got -0.0001"),
        (lambda: VAEConfig(steps=1, lr_schedule="linear"), ValueError,
         "VAEConfig.lr_schedule must be 'constant' or 'cosine', got 'linear'"),
        (lambda: VAEConfig(steps=1, seed=-1), ValueError, "seed must be in [0, 2**32), got -1"),
        (lambda: train_vae(m, x, {"steps": 1}), TypeError, "config must be a VAEConfig, got dict"),
        (lambda: train_vae(torch.nn.Linear(2, 2), x, VAEConfig(steps=1)), TypeError,
         "model must be an aigc_course.vae.VAE, got Linear"),
        (lambda: train_vae(m, x * 16, VAEConfig(steps=1)), ValueError,
         "x must lie in [0, 1] for a Bernoulli likelihood, got values in [0, 16]"),
        (lambda: train_vae(m, x[:, 0], VAEConfig(steps=1)), ValueError,
         "x must have shape (B, 1, 8, 8) with B >= 1 for this VAE, got (1438, 8, 8)"),
        (lambda: train_vae(m, x, VAEConfig(steps=1), labels=y), ValueError,
         "labels were given, but this VAE is unconditional (num_classes=None)"),
        (lambda: train_vae(m, x, VAEConfig(steps=1), test_labels=y), ValueError,
         "test_labels were given without test data"),
        (lambda: train_vae(m, x, VAEConfig(steps=1), test=xt[:, :, :4]), ValueError,
         "x must have shape (B, 1, 8, 8) with B >= 1 for this VAE, got (359, 1, 4, 8)"),
    ]
    for make, err, msg in cases:
        with pytest.raises(err, match="^" + re.escape(msg) + "$"):
            make()
    VAEConfig(steps=0, beta=0.0, weight_decay=0.0)  # the boundaries are allowed


# --------------------------------------------------------------------------- interpolation

def test_interpolate_latents_linear_and_slerp_by_hand():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    lin = interpolate_latents(a, b, 3)
    assert torch.allclose(lin, torch.tensor([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]))
    sl = interpolate_latents(a, b, 3, method="slerp")
    h = math.sqrt(0.5)
    assert torch.allclose(sl, torch.tensor([[1.0, 0.0], [h, h], [0.0, 1.0]]), atol=1e-6)
    # unequal norms, ω = 60°: sin((1 − t)ω)/sin ω · a + sin(tω)/sin ω · b by hand at t = 1/4
    a2, b2 = torch.tensor([2.0, 0.0]), torch.tensor([0.5, 0.5 * math.sqrt(3)])
    sl = interpolate_latents(a2, b2, 5, method="slerp")
    w = math.pi / 3
    want = (math.sin(0.75 * w) * a2 + math.sin(0.25 * w) * b2) / math.sin(w)
    assert torch.allclose(sl[1], want, atol=1e-6)
    assert torch.allclose(sl[0], a2) and torch.allclose(sl[-1], b2, atol=1e-6)
    # equal norms in 64 dimensions: slerp keeps the norm, linear shrinks it
    g = torch.Generator().manual_seed(0)
    za, zb = torch.randn(64, generator=g), torch.randn(64, generator=g)
    zb = zb / zb.norm() * za.norm()
    norms = interpolate_latents(za, zb, 9, method="slerp").norm(dim=1)
    assert torch.allclose(norms, za.norm().expand(9), rtol=1e-5)
    assert interpolate_latents(za, zb, 9).norm(dim=1)[4] < 0.85 * za.norm()


def test_slerp_is_stable_for_nearly_parallel_and_falls_back_for_parallel_or_zero():
    a = torch.tensor([1.0, 0.0, 0.0])
    b = torch.tensor([1.0, 1e-5, 0.0])
    sl = interpolate_latents(a, b, 4, method="slerp")
    assert torch.isfinite(sl).all() and torch.allclose(sl, interpolate_latents(a, b, 4), atol=1e-6)
    assert torch.allclose(sl[-1], b)
    for b in (2 * a, torch.zeros(3)):
        assert torch.equal(interpolate_latents(a, b, 4, method="slerp"), interpolate_latents(a, b, 4))
    # float64 in, float64 out; a (1, D) row is accepted
    out = interpolate_latents(a.double()[None], b.double(), 2)
    assert out.dtype == torch.float64 and out.shape == (2, 3)


def test_interpolate_decodes_the_path_between_the_posterior_means():
    model, _ = fit(steps=30, test=False)
    x, _, _, _ = digits()
    path = interpolate(model, x[0], x[1:2], 6)
    assert path.shape == (6, 1, 8, 8) and path.device.type == "cpu"
    assert torch.allclose(path[0], reconstruct(model, x[:1])[0], atol=1e-6)
    assert torch.allclose(path[-1], reconstruct(model, x[1:2])[0], atol=1e-6)
    mu = encode_mean(model, x[:2])
    mid = decode(model, (0.6 * mu[0] + 0.4 * mu[1])[None])
    assert torch.allclose(interpolate(model, x[0], x[1], 6)[2], mid[0], atol=1e-6)
    assert not torch.allclose(path[2], path[3])
    assert model.training


def test_traversal_varies_one_coordinate_per_row():
    model, _ = fit(steps=20, test=False)
    z = torch.tensor([0.5, -1.0, 0.25, 2.0])
    out = latent_traversal(model, z, dims=[2, 0], values=[-1.0, 3.0])
    assert out.shape == (2, 2, 1, 8, 8)
    want = decode(model, torch.tensor([[0.5, -1.0, -1.0, 2.0], [0.5, -1.0, 3.0, 2.0],
                                       [-1.0, -1.0, 0.25, 2.0], [3.0, -1.0, 0.25, 2.0]]))
    assert torch.allclose(out.reshape(4, 1, 8, 8), want, atol=1e-6)
    default = latent_traversal(model)
    assert default.shape == (4, 7, 1, 8, 8)
    zs = torch.zeros(7, 4)
    zs[:, 3] = torch.linspace(-3, 3, 7)
    assert torch.allclose(default[3], decode(model, zs), atol=1e-6)


def test_encode_mean_latent_map_and_manifold():
    model, _ = fit(steps=20, test=False)
    x, _, _, _ = digits()
    model.train()
    mu = encode_mean(model, x[:50])
    assert torch.equal(mu, model.encode(x[:50])[0].detach()) and model.training
    coords = latent_map(model, x[:200])
    assert coords.shape == (200, 2)
    # the leading principal components of the means: uncorrelated, decreasing variance, and the first
    # captures more variance than any coordinate axis does
    m = encode_mean(model, x[:200]).double()
    cov = torch.cov(coords.double().T)
    assert abs(cov[0, 1]) < 1e-4 * cov[0, 0] and cov[0, 0] >= cov[1, 1]
    assert cov[0, 0] >= m.var(dim=0).max() - 1e-6
    assert torch.allclose(cov.trace(), torch.linalg.eigvalsh(torch.cov(m.T))[-2:].sum(), rtol=1e-4)
    assert coords.double().mean(0).abs().max() < 1e-5
    two, _ = fit(steps=20, latent_dim=2, test=False)
    assert torch.equal(latent_map(two, x[:30]), encode_mean(two, x[:30]))
    grid = decoded_manifold(two, 3, quantile=0.9)
    q = Normal(0.0, 1.0).icdf(torch.tensor(0.9)).item()
    zs = torch.tensor([[-q, q], [0.0, q], [q, q], [-q, 0.0], [0.0, 0.0], [q, 0.0], [-q, -q], [0.0, -q], [q, -q]])
    assert grid.shape == (9, 1, 8, 8)
    assert torch.allclose(grid, decode(two, zs), atol=1e-5)


def test_latent_helpers_for_a_conditional_vae_use_the_label():
    x, y, _, _ = digits()
    seed_everything(0)
    model = build_vae(2, hidden=32, num_classes=10)
    a = interpolate(model, x[0], x[1], 3, label=4)
    b = interpolate(model, x[0], x[1], 3, label=torch.tensor(4))
    assert torch.equal(a, b) and not torch.allclose(a, interpolate(model, x[0], x[1], 3, label=7))
    t = latent_traversal(model, dims=[0], values=[0.0], label=2)
    assert torch.allclose(t[0, 0], decode(model, torch.zeros(1, 2), torch.tensor([2]))[0], atol=1e-6)
    assert decoded_manifold(model, 2, label=1).shape == (4, 1, 8, 8)
    act = posterior_activity(model, x[:50], labels=y[:50])
    assert torch.allclose(act, encode_mean(model, x[:50], labels=y[:50]).var(dim=0, unbiased=False))
    kl = kl_per_dimension(model, x[:50], labels=y[:50])
    assert not torch.allclose(kl, kl_per_dimension(model, x[:50], labels=(y[:50] + 1) % 10))
    assert latent_map(model, x[:5], labels=y[:5]).shape == (5, 2)


def test_latent_helpers_bad_inputs_have_exact_messages():
    model, _ = fit(steps=1, test=False)
    cond = build_vae(2, hidden=8, num_classes=3)
    one = build_vae(1, hidden=8)
    x, _, _, _ = digits()
    cases = [
        (lambda: interpolate_latents(torch.zeros(3), torch.zeros(4), 3), ValueError,
         "z_b must be a latent vector of shape (3,), got (4,)"),
        (lambda: interpolate_latents(torch.zeros(2, 3), torch.zeros(3), 3), ValueError,
         "z_a must be a latent vector of shape (D,), got (2, 3)"),
        (lambda: interpolate_latents(torch.zeros(3), torch.zeros(3), 1), ValueError, "steps must be >= 2, got 1"),
        (lambda: interpolate_latents(torch.zeros(3), torch.zeros(3), 3, method="cubic"), ValueError,
         "method must be 'linear' or 'slerp', got 'cubic'"),
        (lambda: interpolate_latents(torch.tensor([1.0, math.nan]), torch.zeros(2), 3), ValueError, None),
        (lambda: interpolate(model, x[:2], x[1], 3), ValueError,
         "x_a must be one image of shape (1, 8, 8) (or (1, ...)), got (2, 1, 8, 8)"),
        (lambda: interpolate(model, x[0], x[1], 3, label=1), ValueError,
         "label was given, but this VAE is unconditional (num_classes=None)"),
        (lambda: interpolate(cond, x[0], x[1], 3), ValueError,
         "this VAE is class-conditional: pass label as an int in [0, 2], got None"),
        (lambda: interpolate(cond, x[0], x[1], 3, label=3), ValueError,
         "this VAE is class-conditional: pass label as an int in [0, 2], got 3"),
        (lambda: latent_traversal(model, dims=[4]), ValueError,
         "dims must be a non-empty list of latent indices in [0, 3], got [4]"),
        (lambda: latent_traversal(model, dims=[]), ValueError,
         "dims must be a non-empty list of latent indices in [0, 3], got []"),
        (lambda: latent_traversal(model, values=[[1.0]]), ValueError,
         "values must be a non-empty 1-D list of finite numbers, got [[1.0]]"),
        (lambda: latent_traversal(model, torch.zeros(3)), ValueError,
         "z must be a latent vector of shape (4,), got (3,)"),
        (lambda: latent_map(one, x[:4]), ValueError, "latent_map needs latent_dim >= 2, got 1"),
        (lambda: latent_map(model, x[:1]), ValueError,
         "x must hold at least 2 images to find principal components, got 1"),
        (lambda: decoded_manifold(model), ValueError, "decoded_manifold needs latent_dim == 2, got 4"),
        (lambda: decoded_manifold(cond, 1), ValueError, "n must be >= 2, got 1"),
        (lambda: decoded_manifold(cond, 3, quantile=1.0, label=0), ValueError,
         "quantile must be a number in (0.5, 1), got 1.0"),
        (lambda: encode_mean(model, x[0]), ValueError,
         "x must have shape (B, 1, 8, 8) with B >= 1 for this VAE, got (1, 8, 8)"),
    ]
    for make, err, msg in cases:
        with pytest.raises(err, match=None if msg is None else "^" + re.escape(msg) + "$"):
            make()


def test_posterior_activity_and_kl_per_dimension_add_up_and_rank_the_units():
    x, _, _, _ = digits()
    model, _ = fit(steps=300, latent_dim=6, lr=2e-3, test=False)
    model.train()
    act = posterior_activity(model, x[:400])
    mu, logvar = model.encode(x[:400])
    assert torch.allclose(act, mu.detach().var(dim=0, unbiased=False), rtol=1e-5)
    kl = kl_per_dimension(model, x[:400])
    assert kl.shape == (6,) and model.training
    by_hand = (0.5 * (mu ** 2 + logvar.exp() - 1 - logvar)).detach().mean(0)
    assert torch.allclose(kl, by_hand, rtol=1e-4, atol=1e-6)
    model.eval()
    with torch.no_grad():
        total = elbo(model, x[:400]).kl.mean()
    assert torch.isclose(kl.sum(), total, rtol=1e-5)
    # the unit whose mean moves most carries the most KL, the one that barely moves the least
    assert act.argmax() == kl.argmax() and act.argmin() == kl.argmin() and act.min() < 0.01 < act.max(), (act, kl)
    with pytest.raises(ValueError, match="^" + re.escape(
            "x must have shape (B, 1, 8, 8) with B >= 1 for this VAE, got (0, 1, 8, 8)") + "$"):
        kl_per_dimension(model, x[:0])


# --------------------------------------------------------------------------- the explorer

def png_pixels(data: bytes):
    return plt.imread(io.BytesIO(data), format="png")


def test_explorer_sliders_redraw_the_decoded_image():
    model, _ = fit(steps=30, test=False)
    ex = latent_explorer(model, max_sliders=3, scale=4, z=torch.tensor([0.0, 0.0, 0.0, 1.5]))
    assert [s.description for s in ex.sliders] == ["z1", "z2", "z3"] and ex.label_dropdown is None
    assert ex.sliders[0].min == -3.0 and ex.sliders[0].max == 3.0
    assert torch.allclose(ex.decoded, decode(model, torch.tensor([[0.0, 0.0, 0.0, 1.5]]))[0], atol=1e-6)
    first = ex.image.value
    pix = png_pixels(first)
    assert pix.shape[:2] == (32, 32)
    assert abs(pix[0, 0, 0] - float(ex.decoded[0, 0, 0])) < 1 / 255 + 1e-6   # grey level of pixel (0, 0)
    ex.sliders[1].value = -2.0
    assert ex.image.value != first
    assert torch.equal(ex.z, torch.tensor([0.0, -2.0, 0.0, 1.5]))
    assert torch.allclose(ex.decoded, decode(model, ex.z[None])[0], atol=1e-6)
    bundle = ex._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert model.training


def test_explorer_of_a_conditional_vae_has_a_class_menu():
    seed_everything(0)
    model = build_vae(2, hidden=32, num_classes=10)
    ex = latent_explorer(model, label=3, span=2.0)
    assert ex.label_dropdown.value == 3 and ex.sliders[0].max == 2.0 and len(ex.sliders) == 2
    before = ex.image.value
    ex.label_dropdown.value = 8
    assert ex.image.value != before
    assert torch.allclose(ex.decoded, decode(model, torch.zeros(1, 2), torch.tensor([8]))[0], atol=1e-6)
    assert latent_explorer(model).label_dropdown.value == 0


def test_explorer_bad_inputs():
    model = build_vae(2, hidden=8)
    cases = [
        (dict(span=0.0), ValueError, "span must be a positive finite number, got 0.0"),
        (dict(max_sliders=0), ValueError, "max_sliders must be >= 1, got 0"),
        (dict(scale=0), ValueError, "scale must be >= 1, got 0"),
        (dict(label=1), ValueError, "label was given, but this VAE is unconditional (num_classes=None)"),
        (dict(z=torch.zeros(3)), ValueError, "z must be a latent vector of shape (2,), got (3,)"),
    ]
    for kw, err, msg in cases:
        with pytest.raises(err, match="^" + re.escape(msg) + "$"):
            latent_explorer(model, **kw)
    with pytest.raises(TypeError, match="^model must be an aigc_course.vae.VAE, got str$"):
        latent_explorer("vae")


# --------------------------------------------------------------------------- CUDA

@pytest.mark.cuda
def test_cuda_train_vae_with_bf16_and_helpers():
    x, y, xt, yt = digits()
    seed_everything(0)
    model = build_vae(2, kind="conv", num_classes=10).cuda()
    r = train_vae(model, x, VAEConfig(steps=20, amp=True, eval_k=4, progress=False), labels=y, test=xt,
                  test_labels=yt)
    assert math.isfinite(r.history.last("test_iwae"))
    assert interpolate(model, x[0], x[1], 4, label=3).device.type == "cpu"
    assert latent_map(model, x[:20], labels=y[:20]).shape == (20, 2)
    ex = latent_explorer(model, label=1)
    before = ex.image.value
    ex.sliders[0].value = 1.0
    assert ex.image.value != before
