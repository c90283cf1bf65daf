"""Tests for aigc_course.gan models, sampling and train_gan: shapes at 8×8 and 28×28, DCGAN's init, conditional
models, bad inputs with exact messages, a short run that must improve its metric, every loss, determinism,
exact resume, snapshots that leave the RNG alone, and `cuda` training steps (skipped without a GPU)."""

import math
import re

import pytest
import torch
from torch import nn

from aigc_course.data.toy2d import gaussian_mixture_2d
from aigc_course.device import seed_everything
from aigc_course.gan import (
    DCGANDiscriminator,
    DCGANGenerator,
    GANConfig,
    MLPDiscriminator,
    MLPGenerator,
    generate,
    init_dcgan_weights,
    input_gradient_norms,
    latent_noise,
    train_gan,
)

torch.set_num_threads(1)
RING = gaussian_mixture_2d("ring8")


def quiet(**kw) -> GANConfig:
    return GANConfig(progress=False, **kw)


def ring_data(n: int) -> torch.Tensor:
    return RING.sample(n)


def state(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in m.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("size", [8, 12, 28])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    G = DCGANGenerator(latent_dim=16, image_size=size, channels=channels, width=8)
    D = DCGANDiscriminator(image_size=size, channels=channels, width=8)
    x = G(torch.randn(5, 16))
    assert x.shape == (5, channels, size, size)
    assert x.abs().max() < 1                       # tanh output
    assert D(x).shape == (5,)


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
def test_dcgan_conditional_shapes_and_norms(norm):
    G = DCGANGenerator(image_size=28, width=8, num_classes=10)
    D = DCGANDiscriminator(image_size=28, width=8, num_classes=10, norm=norm)
    y = torch.tensor([0, 9, 3])
    x = G(torch.randn(3, 32), y)
    assert x.shape == (3, 1, 28, 28) and D(x, y).shape == (3,)
    kinds = {type(m) for m in D.modules()}
    assert (nn.BatchNorm2d in kinds) == (norm == "batch") and (nn.GroupNorm in kinds) == (norm == "layer")


def test_mlp_shapes_and_depth():
    G = MLPGenerator(latent_dim=3, out_dim=5, hidden=16, depth=2)
    D = MLPDiscriminator(in_dim=5, hidden=16, depth=4)
    assert G(torch.randn(7, 3)).shape == (7, 5) and D(torch.randn(7, 5)).shape == (7,)
    assert sum(isinstance(m, nn.Linear) for m in G.modules()) == 3
    assert sum(isinstance(m, nn.Linear) for m in D.modules()) == 5


def test_conditional_models_use_the_label():
    torch.manual_seed(0)
    G, D = MLPGenerator(num_classes=4), MLPDiscriminator(num_classes=4)
    z = torch.randn(6, 2).repeat(2, 1)
    y = torch.tensor([0] * 6 + [3] * 6)
    out = G(z, y)
    assert not torch.allclose(out[:6], out[6:])      # same z, other class → other sample
    scores = D(out, y)
    assert not torch.allclose(scores, D(out, (y + 1) % 4))
    # projection: the label term is embed(y)·h(x), added to the unconditional head
    h = D.features(out)
    assert torch.allclose(scores, D.head(h).squeeze(1) + (D.embed(y) * h).sum(1))


def test_dcgan_init_is_normal_0_002():
    torch.manual_seed(0)
    G = DCGANGenerator(width=64)
    D = DCGANDiscriminator(width=64)
    for m in [*G.modules(), *D.modules()]:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and m.weight.numel() > 1000:
            assert abs(m.weight.std().item() - 0.02) < 0.002, m
            assert abs(m.weight.mean().item()) < 0.002, m
        if isinstance(m, nn.BatchNorm2d):
            assert abs(m.weight.mean().item() - 1) < 0.01 and 0 < m.weight.std().item() < 0.04
        if getattr(m, "bias", None) is not None:
            assert torch.count_nonzero(m.bias) == 0, m


def test_init_dcgan_weights_leaves_other_modules_and_returns_it():
    lin = nn.Linear(400, 300)
    assert init_dcgan_weights(lin, std=0.5) is lin
    assert abs(lin.weight.std().item() - 0.5) < 0.01
    with pytest.raises(ValueError, match=re.escape("std must be a positive finite number, got 0")):
        init_dcgan_weights(lin, std=0)
    with pytest.raises(TypeError, match="module must be a torch.nn.Module, got int"):
        init_dcgan_weights(3)


# --------------------------------------------------------------------------- bad inputs

BAD_MODELS = [
    (lambda: DCGANGenerator(image_size=10), ValueError,
     "image_size must be a multiple of 4 (two stride-2 layers), got 10"),
    (lambda: DCGANDiscriminator(image_size=4), ValueError, "image_size must be >= 8, got 4"),
    (lambda: DCGANDiscriminator(norm="instance"), ValueError,
     "norm must be one of 'batch', 'layer', 'none', got 'instance'"),
    (lambda: DCGANGenerator(latent_dim=0), ValueError, "latent_dim must be >= 1, got 0"),
    (lambda: MLPGenerator(hidden=2.5), TypeError, "hidden must be an int, got float 2.5"),
    (lambda: MLPDiscriminator(num_classes=1), ValueError, "num_classes must be >= 2, got 1"),
    (lambda: MLPGenerator(depth=True), TypeError, "depth must be an int, got bool True"),
]


@pytest.mark.parametrize("make, exc, msg", BAD_MODELS)
def test_bad_model_settings(make, exc, msg):
    with pytest.raises(exc, match=re.escape(msg)):
        make()


def test_bad_forward_inputs():
    G, D = DCGANGenerator(), DCGANDiscriminator()
    with pytest.raises(ValueError, match=re.escape("x must have shape (B, 1, 8, 8) with B >= 1 for "
                                                   "DCGANDiscriminator, got (2, 1, 28, 28)")):
        D(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match=re.escape("z must have shape (B, 32) with B >= 1 for DCGANGenerator, "
                                                   "got (2, 16)")):
        G(torch.zeros(2, 16))
    with pytest.raises(TypeError, match="z must be a floating-point tensor, got dtype torch.int64"):
        G(torch.zeros(2, 32, dtype=torch.long))
    with pytest.raises(ValueError, match=re.escape("labels were given, but this generator is unconditional")):
        G(torch.zeros(2, 32), torch.tensor([1, 2]))
    Gc = MLPGenerator(num_classes=3)
    with pytest.raises(ValueError, match=re.escape("this generator is class-conditional (num_classes=3): pass "
                                                   "labels of shape (2,)")):
        Gc(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=re.escape("labels must have shape (2,) to match the batch, got (3,)")):
        Gc(torch.zeros(2, 2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=re.escape("labels must lie in [0, 2], got values in [0, 3]")):
        Gc(torch.zeros(2, 2), torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="labels must be an integer tensor .class indices., got dtype torch.float32"):
        Gc(torch.zeros(2, 2), torch.tensor([0.0, 1.0]))


BAD_CONFIGS = [
    (dict(n_critic=0), ValueError, "GANConfig.n_critic must be >= 1, got 0"),
    (dict(loss="hinge"), ValueError, "GANConfig.loss must be one of 'non_saturating', 'minimax', 'wgan', "
                                     "'wgan_gp', got 'hinge'"),
    (dict(optimizer="sgd"), ValueError, "GANConfig.optimizer must be 'adam' or 'rmsprop', got 'sgd'"),
    (dict(lr_schedule="linear"), ValueError, "GANConfig.lr_schedule must be 'constant' or 'cosine', got 'linear'"),
    (dict(lr_g=0.0), ValueError, "GANConfig.lr_g must be a finite number > 0, got 0.0"),
    (dict(lr_d=float("nan")), ValueError, "GANConfig.lr_d must be a finite number > 0, got nan"),
    (dict(gp_weight=-1), ValueError, "GANConfig.gp_weight must be a finite number >= 0, got -1"),
    (dict(clip="0.01"), TypeError, "GANConfig.clip must be a number, got str '0.01'"),
    (dict(betas=(0.5, 1.0)), ValueError, "GANConfig.betas must be two numbers in [0, 1), got (0.5, 1.0)"),
    (dict(batch_size=0), ValueError, "GANConfig.batch_size must be >= 1, got 0"),
    (dict(steps=-1), ValueError, "GANConfig.steps must be >= 0, got -1"),
    (dict(seed=-3), ValueError, "seed must be in [0, 2**32), got -3"),
]


@pytest.mark.parametrize("kw, exc, msg", BAD_CONFIGS)
def test_bad_gan_config(kw, exc, msg):
    kw = {"steps": 1, **kw}
    with pytest.raises(exc, match=re.escape(msg)):
        GANConfig(**kw)


def test_train_gan_bad_data():
    G, D = MLPGenerator(), MLPDiscriminator()
    with pytest.raises(ValueError, match=re.escape("data must have shape (N, 2) like the generator's samples, got "
                                                   "(10, 3)")):
        train_gan(G, D, torch.zeros(10, 3), quiet(steps=1))
    bad = torch.zeros(10, 2)
    bad[4, 1] = float("nan")
    with pytest.raises(ValueError, match="data must be finite, got NaN or inf"):
        train_gan(G, D, bad, quiet(steps=1))
    with pytest.raises(TypeError, match="data must be a floating-point tensor of samples, got torch.int64"):
        train_gan(G, D, torch.zeros(10, 2, dtype=torch.long), quiet(steps=1))
    with pytest.raises(ValueError, match=re.escape("data(batch_size) must have shape (N, 2)")):
        train_gan(G, D, lambda n: torch.zeros(n, 1), quiet(steps=1))
    with pytest.raises(ValueError, match="labels were given, but this generator is unconditional"):
        train_gan(G, D, torch.zeros(10, 2), quiet(steps=1), labels=torch.zeros(10, dtype=torch.long))
    Gc, Dc = MLPGenerator(num_classes=3), MLPDiscriminator(num_classes=3)
    with pytest.raises(ValueError, match=re.escape("labels must have shape (10,) to match the batch, got (9,)")):
        train_gan(Gc, Dc, torch.zeros(10, 2), quiet(steps=1), labels=torch.zeros(9, dtype=torch.long))
    with pytest.raises(ValueError, match="generator and discriminator must agree on num_classes, got 3 and None"):
        train_gan(Gc, D, torch.zeros(10, 2), quiet(steps=1))
    with pytest.raises(TypeError, match="config must be a GANConfig, got dict"):
        train_gan(G, D, torch.zeros(10, 2), {"steps": 1})
    with pytest.raises(TypeError, match=re.escape("generator must have a positive int attribute latent_dim")):
        train_gan(nn.Linear(2, 2), D, torch.zeros(10, 2), quiet(steps=1))
    with pytest.raises(TypeError, match="on_snapshot must be callable or None, got int"):
        train_gan(G, D, torch.zeros(10, 2), quiet(steps=1), on_snapshot=3)


def test_sampling_bad_inputs():
    with pytest.raises(ValueError, match="n must be >= 1, got 0"):
        generate(MLPGenerator(), 0)
    with pytest.raises(TypeError, match="rng must be a torch.Generator or None, got int"):
        latent_noise(3, 2, rng=0)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got str"):
        generate("G", 3)
    with pytest.raises(ValueError, match=re.escape("x must have shape (B, ...) with B >= 1")):
        input_gradient_norms(MLPDiscriminator(), torch.zeros(3))
    with pytest.raises(ValueError, match="x must be finite"):
        input_gradient_norms(MLPDiscriminator(), torch.full((3, 2), math.inf))


# --------------------------------------------------------------------------- sampling helpers

def test_latent_noise_and_generate_are_reproducible_and_restore_mode():
    a = latent_noise(4, 3, rng=torch.Generator().manual_seed(1))
    b = latent_noise(4, 3, rng=torch.Generator().manual_seed(1))
    assert a.shape == (4, 3) and a.dtype == torch.float32 and torch.equal(a, b)
    G = DCGANGenerator(width=8)
    G.train()
    x1 = generate(G, 5, rng=torch.Generator().manual_seed(2), batch_size=2)   # batches of 2, 2, 1
    assert G.training and not x1.requires_grad and x1.shape == (5, 1, 8, 8)
    G.eval()
    x2 = G(latent_noise(5, 32, rng=torch.Generator().manual_seed(2)))
    assert torch.allclose(x1, x2, atol=1e-6)                  # eval mode: no batch statistics involved
    assert not G.training                                     # mode restored either way
    Gc = MLPGenerator(num_classes=3)
    y = torch.tensor([2, 0, 1])
    out = generate(Gc, 3, labels=y, rng=torch.Generator().manual_seed(0))
    assert torch.allclose(out, Gc(latent_noise(3, 2, rng=torch.Generator().manual_seed(0)), y))


def test_input_gradient_norms_on_known_functions():
    a = torch.tensor([3.0, -4.0])
    x = torch.randn(6, 2)
    assert torch.allclose(input_gradient_norms(lambda t: t @ a, x), torch.full((6,), 5.0))
    # f(x) = ||x||^2 / 2 → ∇f = x; images: the norm runs over all non-batch dims
    imgs = torch.randn(4, 1, 3, 3)
    got = input_gradient_norms(lambda t: 0.5 * t.flatten(1).square().sum(1), imgs)
    assert torch.allclose(got, imgs.flatten(1).norm(dim=1)) and not got.requires_grad
    # conditional critic gets the labels
    D = MLPDiscriminator(num_classes=2)
    y = torch.tensor([0, 1, 1])
    pts = torch.randn(3, 2)
    n0 = input_gradient_norms(D, pts, y)
    n1 = input_gradient_norms(D, pts, 1 - y)
    assert not torch.allclose(n0, n1)


# --------------------------------------------------------------------------- training

def mean_log_prob(G: nn.Module) -> float:
    return RING.log_prob(generate(G, 2000, rng=torch.Generator().manual_seed(9))).mean().item()


def off_ring(G: nn.Module) -> float:
    """Median distance of samples from the ring of radius 2."""
    return (generate(G, 2000, rng=torch.Generator().manual_seed(9)).norm(dim=1) - 2).abs().median().item()


def test_a_short_run_improves_the_samples():
    seed_everything(0)
    G, D = MLPGenerator(hidden=64), MLPDiscriminator(hidden=64)
    before, off_before = mean_log_prob(G), off_ring(G)
    res = train_gan(G, D, ring_data, quiet(steps=400, batch_size=128, lr_g=1e-3, lr_d=1e-3))
    after, off_after = mean_log_prob(G), off_ring(G)
    assert after > before + 20, (before, after)          # the density under the target rises a lot
    assert off_after < off_before / 2.5, (off_before, off_after)
    assert len(res.history) == 400 and res.seconds > 0


@pytest.mark.parametrize("loss, extra, keys", [
    ("non_saturating", {}, {"d_real", "d_fake"}),
    ("minimax", {}, {"d_real", "d_fake"}),
    ("wgan", {"optimizer": "rmsprop", "n_critic": 3}, {"wasserstein"}),
    ("wgan_gp", {"n_critic": 2, "betas": (0.0, 0.9)}, {"wasserstein", "gp"}),
])
def test_every_loss_runs_and_logs_its_metrics(loss, extra, keys):
    seed_everything(1)
    G, D = MLPGenerator(hidden=16), MLPDiscriminator(hidden=16)
    res = train_gan(G, D, ring_data, quiet(steps=6, batch_size=16, loss=loss, **extra))
    common = {"step", "d_loss", "g_loss", "grad_norm_d", "grad_norm_g"}
    assert set(res.history.keys()) == common | keys
    if "d_real" in keys:
        assert all(0 < v < 1 for v in res.history["d_real"])
    if loss == "wgan":
        assert max(p.abs().max().item() for p in D.parameters()) <= 0.01   # clipped after every critic step


def test_losses_differ_and_minimax_generator_loss_is_its_own_formula():
    seed_everything(2)
    G, D = MLPGenerator(hidden=16), MLPDiscriminator(hidden=16)
    h = train_gan(G, D, ring_data, quiet(steps=3, loss="minimax")).history
    # minimax G loss is log(1 - D(G(z))) < 0; non-saturating -log D(G(z)) > 0
    assert all(v < 0 for v in h["g_loss"])
    h2 = train_gan(G, D, ring_data, quiet(steps=3)).history
    assert all(v > 0 for v in h2["g_loss"])


def test_n_critic_counts_discriminator_updates():
    calls = []

    def data(n):
        calls.append(n)
        return RING.sample(n)

    train_gan(MLPGenerator(hidden=8), MLPDiscriminator(hidden=8), data, quiet(steps=4, n_critic=3, batch_size=5))
    assert calls == [5] * 12


def run_once(global_seed: int, steps: int, **kw):
    seed_everything(global_seed)
    G, D = MLPGenerator(hidden=16), MLPDiscriminator(hidden=16)
    res = train_gan(G, D, torch.randn(50, 2) * 0.3 + 1, quiet(steps=steps, batch_size=8, **kw))
    return G, D, res


def test_same_seed_same_numbers_and_snapshots_leave_the_rng_alone():
    G1, D1, r1 = run_once(0, 12)
    G2, D2, r2 = run_once(0, 12, snapshot_every=4)
    assert r1.history.records == r2.history.records
    assert same_state(state(G1), state(G2)) and same_state(state(D1), state(D2))
    assert [s for s, _ in r2.snapshots] == [0, 4, 8, 12] and [s for s, _ in r1.snapshots] == [12]
    assert torch.equal(r1.snapshots[-1][1], r2.snapshots[-1][1])
    assert r2.snapshots[0][1].shape == (64, 2) and r2.snapshots[0][1].device.type == "cpu"
    assert not torch.equal(r2.snapshots[0][1], r2.snapshots[1][1])
    _, _, r3 = run_once(1, 12)
    assert r3.history.records != r1.history.records
    seen = []
    run_once(0, 6, snapshot_every=3, num_snapshot=5)
    train_gan(MLPGenerator(hidden=8), MLPDiscriminator(hidden=8), ring_data,
              quiet(steps=4, snapshot_every=2, num_snapshot=5), on_snapshot=lambda s, x: seen.append((s, x.shape)))
    assert seen == [(0, (5, 2)), (2, (5, 2)), (4, (5, 2))]


def test_fixed_noise_comes_from_the_seed():
    _, _, a = run_once(0, 2, seed=5)
    _, _, b = run_once(3, 2, seed=5)
    _, _, c = run_once(0, 2, seed=6)
    assert torch.equal(a.fixed_noise, b.fixed_noise) and not torch.equal(a.fixed_noise, c.fixed_noise)


def test_resume_is_exact(tmp_path):
    Gf, Df, full = run_once(0, 10)
    seed_everything(0)
    G, D = MLPGenerator(hidden=16), MLPDiscriminator(hidden=16)
    data = torch.randn(50, 2) * 0.3 + 1
    train_gan(G, D, data, quiet(steps=5, batch_size=8, ckpt_dir=str(tmp_path)))
    torch.manual_seed(1234)                                    # the checkpoint restores the RNG
    G2, D2 = MLPGenerator(hidden=16), MLPDiscriminator(hidden=16)
    resumed = train_gan(G2, D2, data, quiet(steps=10, batch_size=8, ckpt_dir=str(tmp_path)))
    assert resumed.history.records == full.history.records
    assert same_state(state(G2), state(Gf)) and same_state(state(D2), state(Df))


def test_conditional_gan_learns_which_mode_each_label_means():
    seed_everything(0)
    x = RING.sample(4000)
    y, _ = RING.nearest(x)
    G, D = MLPGenerator(hidden=64, num_classes=8), MLPDiscriminator(hidden=64, num_classes=8)
    train_gan(G, D, x, quiet(steps=500, batch_size=128, lr_g=1e-3, lr_d=1e-3), labels=y)
    for k in (0, 3, 6):
        out = generate(G, 300, labels=torch.full((300,), k))
        nearest, _ = RING.nearest(out)
        assert (nearest == k).float().mean() > 0.7, k


def test_dcgan_trains_on_digit_sized_images_with_labels_and_amp():
    seed_everything(0)
    imgs = torch.rand(40, 1, 8, 8) * 2 - 1
    y = torch.arange(40) % 10
    G, D = DCGANGenerator(width=8, num_classes=10), DCGANDiscriminator(width=8, num_classes=10)
    res = train_gan(G, D, imgs, quiet(steps=3, batch_size=8, snapshot_every=3, amp=True), labels=y)
    assert res.fixed_labels.tolist()[:12] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert res.snapshots[-1][1].shape == (64, 1, 8, 8) and res.snapshots[-1][1].dtype == torch.float32
    assert all(math.isfinite(v) for v in res.history["d_loss"])


# --------------------------------------------------------------------------- CUDA

@pytest.mark.cuda
@pytest.mark.parametrize("loss", ["non_saturating", "wgan_gp"])
def test_cuda_dcgan_training_steps_with_bf16(loss):
    seed_everything(0)
    dev = torch.device("cuda")
    G = DCGANGenerator(image_size=28, num_classes=10).to(dev)
    D = DCGANDiscriminator(image_size=28, num_classes=10, norm="layer" if loss == "wgan_gp" else "batch").to(dev)
    imgs = torch.rand(256, 1, 28, 28, device=dev) * 2 - 1
    y = torch.arange(256, device=dev) % 10
    before = state(G)
    res = train_gan(G, D, imgs, quiet(steps=5, batch_size=32, loss=loss, n_critic=2), labels=y)
    assert next(G.parameters()).device.type == "cuda"
    assert all(math.isfinite(v) for r in res.history.records for v in r.values())
    assert any(not torch.equal(before[k], v) for k, v in G.state_dict().items())


@pytest.mark.cuda
def test_cuda_mlp_gan_on_ring():
    seed_everything(0)
    G, D = MLPGenerator().cuda(), MLPDiscriminator().cuda()
    res = train_gan(G, D, lambda n: RING.sample(n).cuda(), quiet(steps=20, batch_size=64))
    assert generate(G, 10).device.type == "cuda" and len(res.history) == 20
