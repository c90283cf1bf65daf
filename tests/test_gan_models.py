"""Tests for aigc_course.gan models, sampling and train_gan: shapes at 8×8 and 28×28, DCGAN's init, conditional
models, bad inputs with exact messages, a short run that must improve its metric, every loss, determinism,
exact resume, snapshots that leave the RNG alone, and `cuda` training steps (skipped without a GPU)."""

import math
import re
import time

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


# --------------------------------------------------------------------------- exact messages and boundaries

class ConstGenerator(nn.Module):
    """G(z) = a fixed point for every z (a parameter keeps the optimizer happy); forward takes z only."""

    latent_dim = 2

    def __init__(self, point=(-1.0, 7.0)) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.zeros(2))
        self.register_buffer("point", torch.tensor(point))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.point.expand(z.shape[0], -1) + 0 * self.b


class FirstCoordCritic(nn.Module):
    """D(x) = 3·x[:, 0]: known logits, ‖∇D‖ = 3 everywhere; no num_classes attribute, forward takes x only."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 3 * x[:, 0] + 0 * self.w.sum()


class FlatGenerator(nn.Module):
    latent_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.lin(z).squeeze(1)                 # (B,): no sample dimensions


class NoParamGenerator(nn.Module):
    latent_dim = 2

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return 2 * z


EXACT_BAD = [
    (lambda: MLPGenerator(latent_dim=0), ValueError, "latent_dim must be >= 1, got 0"),
    (lambda: MLPGenerator(out_dim=0), ValueError, "out_dim must be >= 1, got 0"),
    (lambda: MLPDiscriminator(in_dim=0), ValueError, "in_dim must be >= 1, got 0"),
    (lambda: MLPDiscriminator(hidden=0), ValueError, "hidden must be >= 1, got 0"),
    (lambda: MLPDiscriminator(depth=0), ValueError, "depth must be >= 1, got 0"),
    (lambda: DCGANGenerator(channels=0), ValueError, "channels must be >= 1, got 0"),
    (lambda: DCGANGenerator(width=0), ValueError, "width must be >= 1, got 0"),
    (lambda: DCGANDiscriminator(channels=0), ValueError, "channels must be >= 1, got 0"),
    (lambda: DCGANDiscriminator(width=0), ValueError, "width must be >= 1, got 0"),
    (lambda: latent_noise(-1, 2), ValueError, "n must be >= 0, got -1"),
    (lambda: latent_noise(2, 0), ValueError, "latent_dim must be >= 1, got 0"),
    (lambda: init_dcgan_weights(nn.Linear(2, 2), std=True), ValueError,
     "std must be a positive finite number, got True"),
    (lambda: input_gradient_norms("f", torch.zeros(2, 2)), TypeError, "critic must be callable, got str"),
    (lambda: input_gradient_norms(lambda t: t.sum(1), [[1.0, 2.0]]), TypeError, "x must be a torch.Tensor, got list"),
    (lambda: input_gradient_norms(lambda t: t.sum(1), torch.zeros(0, 2)), ValueError,
     "x must have shape (B, ...) with B >= 1 and at least 2 dimensions, got (0, 2)"),
    (lambda: MLPGenerator()(torch.zeros(2, 3)), ValueError,
     "z must have shape (B, 2) with B >= 1 for MLPGenerator, got (2, 3)"),
    (lambda: MLPGenerator()(torch.zeros(0, 2)), ValueError,
     "z must have shape (B, 2) with B >= 1 for MLPGenerator, got (0, 2)"),
    (lambda: MLPDiscriminator()(torch.zeros(2, 3)), ValueError,
     "x must have shape (B, 2) with B >= 1 for MLPDiscriminator, got (2, 3)"),
    (lambda: MLPDiscriminator()(torch.zeros(2, 2), torch.tensor([0, 1])), ValueError,
     "labels were given, but this discriminator is unconditional (num_classes=None)"),
    (lambda: DCGANDiscriminator(width=2)(torch.zeros(2, 1, 8, 8), torch.tensor([0, 1])), ValueError,
     "labels were given, but this discriminator is unconditional (num_classes=None)"),
    (lambda: MLPGenerator(num_classes=3)(torch.zeros(2, 2), [0, 1]), TypeError,
     "labels must be a torch.Tensor of class indices, got list"),
    (lambda: GANConfig(steps=1, betas=(0.5, 0.9, 0.99)), ValueError,
     "GANConfig.betas must be two numbers in [0, 1), got (0.5, 0.9, 0.99)"),
]


@pytest.mark.parametrize("call, exc, msg", EXACT_BAD, ids=[m for _, _, m in EXACT_BAD])
def test_exact_messages(call, exc, msg):
    with pytest.raises(exc, match=f"^{re.escape(msg)}$"):
        call()


def test_smallest_allowed_sizes_work():
    G = MLPGenerator(latent_dim=1, out_dim=1, hidden=1, depth=1)
    assert G(torch.zeros(3, 1)).shape == (3, 1) and generate(G, 2).shape == (2, 1)
    assert MLPDiscriminator(in_dim=1, hidden=1, depth=1)(torch.zeros(3, 1)).shape == (3,)
    assert DCGANDiscriminator(width=1)(DCGANGenerator(latent_dim=1, width=1)(torch.zeros(2, 1))).shape == (2,)
    assert latent_noise(0, 1).shape == (0, 1)
    assert input_gradient_norms(lambda t: 3 * t.sum(1), torch.zeros(1, 1)).tolist() == [3.0]
    cfg = GANConfig(steps=1, num_snapshot=1, gp_weight=0, lr_schedule="cosine")
    assert cfg.gp_weight == 0 and cfg.num_snapshot == 1
    res = train_gan(MLPGenerator(hidden=4), MLPDiscriminator(hidden=4), torch.tensor([[0.5, -0.5]]),
                    quiet(steps=1, batch_size=3, snapshot_every=1, num_snapshot=1))     # one data row
    assert len(res.history) == 1 and res.snapshots[-1][1].shape == (1, 2)


def layer_specs(seq: nn.Module) -> list[tuple]:
    """What defines each layer: sizes, kernel, stride, padding, bias, slope, groups."""
    out = []
    for m in seq.children():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            out.append((type(m).__name__, m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                        m.bias is not None))
        elif isinstance(m, nn.Linear):
            out.append(("Linear", m.in_features, m.out_features, m.bias is not None))
        elif isinstance(m, nn.LeakyReLU):
            out.append(("LeakyReLU", m.negative_slope))
        elif isinstance(m, nn.BatchNorm2d):
            out.append(("BatchNorm2d", m.num_features))
        elif isinstance(m, nn.GroupNorm):
            out.append(("GroupNorm", m.num_groups, m.num_channels))
        else:
            out.append((type(m).__name__,))
    return out


def test_dcgan_generator_architecture():
    G = DCGANGenerator(latent_dim=3, width=2, num_classes=4)
    assert isinstance(G.embed, nn.Embedding) and tuple(G.embed.weight.shape) == (4, 3)
    assert layer_specs(G.project) == [("Linear", 6, 16, False), ("Unflatten",), ("BatchNorm2d", 4), ("ReLU",)]
    assert layer_specs(G.body) == [("ConvTranspose2d", 4, 2, (4, 4), (2, 2), (1, 1), False), ("BatchNorm2d", 2),
                                   ("ReLU",), ("ConvTranspose2d", 2, 1, (4, 4), (2, 2), (1, 1), True), ("Tanh",)]
    assert G.project[0].weight.shape == (16, 6)
    default = DCGANGenerator()
    assert default.body[0].out_channels == 64 and default.latent_dim == 32 and default.embed is None
    y = torch.tensor([0, 3])
    z = torch.randn(2, 3)
    G.eval()
    assert not torch.allclose(G(z, y), G(z, 3 - y))                # the label enters through the embedding


@pytest.mark.parametrize("norm, norm_spec, conv_bias", [
    ("batch", ("BatchNorm2d", 4), False), ("layer", ("GroupNorm", 1, 4), False), ("none", ("Identity",), True)])
def test_dcgan_discriminator_architecture(norm, norm_spec, conv_bias):
    D = DCGANDiscriminator(width=2, norm=norm)
    assert layer_specs(D.features) == [
        ("Conv2d", 1, 2, (4, 4), (2, 2), (1, 1), True), ("LeakyReLU", 0.2),
        ("Conv2d", 2, 4, (4, 4), (2, 2), (1, 1), conv_bias), norm_spec, ("LeakyReLU", 0.2), ("Flatten",)]
    assert layer_specs(nn.Sequential(D.head)) == [("Linear", 16, 1, True)] and D.embed is None
    assert DCGANDiscriminator().features[0].out_channels == 64


def test_dcgan_discriminator_projection_term():
    torch.manual_seed(0)
    D = DCGANDiscriminator(width=2, num_classes=3, norm="none")
    assert isinstance(D.embed, nn.Embedding) and tuple(D.embed.weight.shape) == (3, 16)
    with torch.no_grad():
        D.embed.weight.normal_()                                   # make the label term large
    x, y = torch.randn(4, 1, 8, 8), torch.tensor([0, 2, 1, 2])
    h = D.features(x)
    expected = D.head(h).squeeze(1) + (D.embed(y) * h).sum(1)
    torch.testing.assert_close(D(x, y), expected)
    assert not torch.allclose(D(x, y), D(x, (y + 1) % 3))


def test_mlp_architecture_and_defaults():
    assert layer_specs(MLPDiscriminator(in_dim=3, hidden=5, depth=2).features) == [
        ("Linear", 3, 5, True), ("LeakyReLU", 0.2), ("Linear", 5, 5, True), ("LeakyReLU", 0.2)]
    assert layer_specs(MLPGenerator(latent_dim=3, out_dim=4, hidden=5, depth=2).net) == [
        ("Linear", 3, 5, True), ("ReLU",), ("Linear", 5, 5, True), ("ReLU",), ("Linear", 5, 4, True)]
    D, G = MLPDiscriminator(), MLPGenerator()
    assert [m.out_features for m in D.modules() if isinstance(m, nn.Linear)] == [128, 128, 128, 1]
    assert [m.out_features for m in G.modules() if isinstance(m, nn.Linear)] == [128, 128, 128, 2]


def test_projection_keeps_the_autocast_dtype():
    """Under bf16 autocast the label term is cast to the features' dtype, so the logits stay bf16."""
    y = torch.tensor([0, 1, 2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_mlp = MLPDiscriminator(hidden=4, num_classes=3)(torch.randn(3, 2), y)
        out_dc = DCGANDiscriminator(width=2, num_classes=3, norm="none")(torch.randn(3, 1, 8, 8), y)
    assert out_mlp.dtype == torch.bfloat16 and out_dc.dtype == torch.bfloat16


def test_sampling_devices_and_parameterless_models():
    rng = torch.Generator().manual_seed(4)
    out = generate(NoParamGenerator(), 3, rng=rng)                  # no parameters: the CPU
    assert out.device.type == "cpu"
    torch.testing.assert_close(out, 2 * latent_noise(3, 2, rng=torch.Generator().manual_seed(4)))
    # z follows the model's device: a meta-device model gets meta noise (on the CPU it would fail)
    assert generate(MLPGenerator(hidden=4).to("meta"), 3).device.type == "meta"
    assert latent_noise(3, 2, device="meta").device.type == "meta"
    assert latent_noise(3, 2, device=None).device.type == "cpu"


# --------------------------------------------------------------------------- train_gan: bad inputs, exactly

def test_train_gan_exact_errors():
    G, D = MLPGenerator(hidden=4), MLPDiscriminator(hidden=4)
    Gc, Dc = MLPGenerator(hidden=4, num_classes=3), MLPDiscriminator(hidden=4, num_classes=3)
    cases = [
        (lambda: train_gan(G, "D", torch.zeros(4, 2), quiet(steps=1)), TypeError,
         "discriminator must be a torch.nn.Module, got str"),
        (lambda: train_gan(G, Dc, torch.zeros(4, 2), quiet(steps=1)), ValueError,
         "generator and discriminator must agree on num_classes, got None and 3"),
        (lambda: train_gan(Gc, FirstCoordCritic(), torch.zeros(4, 2), quiet(steps=1)), ValueError,
         "generator and discriminator must agree on num_classes, got 3 and None"),
        (lambda: train_gan(G, D, torch.zeros(0, 2), quiet(steps=1)), ValueError,
         "data must have shape (N, 2) like the generator's samples, got (0, 2)"),
        (lambda: train_gan(DCGANGenerator(width=2), DCGANDiscriminator(width=2), torch.zeros(3, 1, 8, 7),
                           quiet(steps=1)), ValueError,
         "data must have shape (N, 1, 8, 8) like the generator's samples, got (3, 1, 8, 7)"),
        (lambda: train_gan(G, D, [[0.0, 1.0]], quiet(steps=1)), TypeError,
         "data must be a floating-point tensor of samples, got list"),
        (lambda: train_gan(G, D, lambda n: [[0.0, 1.0]] * n, quiet(steps=1)), TypeError,
         "data(batch_size) must be a floating-point tensor of samples, got list"),
        (lambda: train_gan(G, D, lambda n: (torch.zeros(n, 2), torch.zeros(n, dtype=torch.long)), quiet(steps=1)),
         TypeError, "data(batch_size) must be a floating-point tensor of samples, got tuple"),
        (lambda: train_gan(G, D, ring_data, quiet(steps=1), labels=torch.zeros(4, dtype=torch.long)), ValueError,
         "labels go with a tensor data; a callable data returns (x, labels) itself"),
        (lambda: train_gan(Gc, Dc, ring_data, quiet(steps=1, batch_size=5)), ValueError,
         "this generator is class-conditional (num_classes=3): pass labels of shape (5,)"),
        (lambda: train_gan(FlatGenerator(), FirstCoordCritic(), torch.zeros(4, 2), quiet(steps=1)), TypeError,
         "generator must return a tensor of shape (B, ...)"),
    ]
    for call, exc, msg in cases:
        with pytest.raises(exc, match=f"^{re.escape(msg)}$"):
            call()


# --------------------------------------------------------------------------- train_gan: what it computes

REAL_POINT, FAKE_POINT = (2.0, 5.0), (-1.0, 7.0)      # D = 3·x₀: real logit 6, fake logit −3, penalty (3 − 1)² = 4


def softplus(v: float) -> float:
    return math.log1p(math.exp(v))


@pytest.mark.parametrize("loss, expected", [
    ("non_saturating", {"d_real": 1 / (1 + math.exp(-6)), "d_fake": 1 / (1 + math.exp(3)),
                        "d_loss": softplus(-6) + softplus(-3), "g_loss": softplus(3)}),
    ("minimax", {"d_real": 1 / (1 + math.exp(-6)), "d_fake": 1 / (1 + math.exp(3)),
                 "d_loss": softplus(-6) + softplus(-3), "g_loss": -softplus(-3)}),
    ("wgan", {"wasserstein": 9.0, "d_loss": -9.0, "g_loss": 3.0}),
    ("wgan_gp", {"wasserstein": 9.0, "gp": 4.0, "d_loss": -9.0 + 3.0 * 4.0, "g_loss": 3.0}),
])
def test_logged_metrics_on_models_with_known_outputs(loss, expected):
    data = torch.tensor([REAL_POINT]).repeat(6, 1)
    extra = {"optimizer": "rmsprop"} if loss == "wgan" else {}
    res = train_gan(ConstGenerator(FAKE_POINT), FirstCoordCritic(), data,
                    quiet(steps=3, batch_size=4, n_critic=2, loss=loss, gp_weight=3.0, **extra))
    assert set(res.history.keys()) == {"step", "grad_norm_d", "grad_norm_g", *expected}
    for key, value in expected.items():
        assert res.history[key] == pytest.approx([value] * 3, rel=1e-6, abs=1e-6), key


def test_the_fed_batches_are_checked_once(monkeypatch):
    import aigc_course.gan as gan_module
    names = []
    real_check = gan_module._check_finite

    def counting(name, x):
        names.append(name)
        return real_check(name, x)

    monkeypatch.setattr(gan_module, "_check_finite", counting)
    train_gan(MLPGenerator(hidden=4), MLPDiscriminator(hidden=4), ring_data, quiet(steps=3, n_critic=2))
    assert names.count("data(batch_size)") == 1


def test_conditional_callable_data_with_gradient_penalty():
    seed_everything(0)
    batches = []

    def data(n):
        x = RING.sample(n)
        y = torch.arange(n) % 3
        batches.append(y)
        return x, y

    Gc, Dc = MLPGenerator(hidden=8, num_classes=3), MLPDiscriminator(hidden=8, num_classes=3)
    res = train_gan(Gc, Dc, data, quiet(steps=2, batch_size=5, loss="wgan_gp"))
    assert len(res.history) == 2 and len(batches) == 2 and all(math.isfinite(v) for v in res.history["gp"])


def test_wgan_gp_under_amp_casts_fakes_to_the_data_dtype():
    seed_everything(0)
    res = train_gan(MLPGenerator(hidden=8), MLPDiscriminator(hidden=8), ring_data,
                    quiet(steps=2, batch_size=8, loss="wgan_gp", amp=True))
    assert all(math.isfinite(v) for r in res.history.records for v in r.values())


def test_sample_shape_probe_leaves_the_global_rng_alone():
    G, D = MLPGenerator(hidden=4), MLPDiscriminator(hidden=4)
    torch.manual_seed(3)
    before = torch.get_rng_state().clone()
    res = train_gan(G, D, torch.zeros(4, 2), quiet(steps=0))
    assert len(res.history) == 0 and torch.equal(torch.get_rng_state(), before)


def test_last_snapshot_is_the_trained_generator_and_seconds_are_measured():
    seed_everything(0)
    G = MLPGenerator(hidden=8)
    t0 = time.perf_counter()
    res = train_gan(G, MLPDiscriminator(hidden=8), ring_data, quiet(steps=5, batch_size=8, snapshot_every=2))
    elapsed = time.perf_counter() - t0
    assert [s for s, _ in res.snapshots] == [0, 2, 4, 5]
    G.eval()
    with torch.no_grad():
        torch.testing.assert_close(res.snapshots[-1][1], G(res.fixed_noise))
    assert 0 < res.seconds <= elapsed


def test_settings_are_handed_to_train(monkeypatch, tmp_path):
    import aigc_course.gan as gan_module
    from aigc_course.train import train as real_train
    seen = {}

    def spy(step_fn, **kw):
        seen.update(kw)
        seen["lr"] = {k: (type(o), o.param_groups[0]["lr"], o.param_groups[0].get("betas"))
                      for k, o in kw["optimizers"].items()}
        history = real_train(step_fn, **kw)
        seen["lr_after"] = [o.param_groups[0]["lr"] for o in kw["optimizers"].values()]
        return history

    monkeypatch.setattr(gan_module, "train", spy)
    G, D = MLPGenerator(hidden=4), MLPDiscriminator(hidden=4)
    moves = {"G": [], "D": []}
    monkeypatch.setattr(G, "to", lambda *a, **k: (moves["G"].append(a), nn.Module.to(G, *a, **k))[1])
    monkeypatch.setattr(D, "to", lambda *a, **k: (moves["D"].append(a), nn.Module.to(D, *a, **k))[1])
    callbacks = [lambda step, row: None]
    cfg = GANConfig(steps=1, batch_size=4, lr_g=3e-4, lr_d=7e-4, betas=(0.1, 0.8), lr_schedule="cosine",
                    grad_clip=0.5, amp=False, ckpt_dir=str(tmp_path), ckpt_every=1, log_every=2, progress=False,
                    desc="toy gan")
    train_gan(G, D, ring_data, cfg, callbacks=callbacks, device="cpu:0")
    tc = seen["config"]
    assert (tc.steps, tc.grad_clip, tc.amp, tc.ckpt_dir, tc.ckpt_every, tc.log_every, tc.progress, tc.desc) == (
        1, 0.5, False, str(tmp_path), 1, 2, False, "toy gan")
    assert seen["models"] == {"generator": G, "discriminator": D} and seen["callbacks"] is callbacks
    assert seen["device"] == torch.device("cpu", 0)
    assert moves["G"][0] == moves["D"][0] == (torch.device("cpu", 0),)      # both models moved to that device
    assert seen["lr"] == {"generator": (torch.optim.Adam, 3e-4, (0.1, 0.8)),
                          "discriminator": (torch.optim.Adam, 7e-4, (0.1, 0.8))}
    sched = seen["schedulers"]
    assert set(sched) == {"generator", "discriminator"}
    for k, s in sched.items():
        assert isinstance(s, torch.optim.lr_scheduler.CosineAnnealingLR) and s.T_max == 1
        assert s.optimizer is seen["optimizers"][k]
    assert seen["lr_after"] == pytest.approx([0.0, 0.0], abs=1e-12)          # cosine ends at 0
    # RMSprop, no schedule for zero steps, and the defaults
    seen.clear()
    train_gan(G, D, ring_data, quiet(steps=0, optimizer="rmsprop", lr_g=5e-5, lr_d=2e-5, lr_schedule="cosine"))
    assert seen["lr"] == {"generator": (torch.optim.RMSprop, 5e-5, None),
                          "discriminator": (torch.optim.RMSprop, 2e-5, None)}
    assert seen["schedulers"] is None and seen["config"].grad_clip is None and seen["config"].amp is None
    seen.clear()
    train_gan(G, D, ring_data, quiet(steps=2))
    assert seen["schedulers"] is None and seen["config"].desc == "gan" and seen["device"] == torch.device("cpu")
