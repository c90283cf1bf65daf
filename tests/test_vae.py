"""Tests for aigc_course.vae: the ELBO against hand-computed values, the reparameterisation trick, the IWAE bound,
exactness on a linear-Gaussian model (pPCA) whose posterior is known, shapes at 8×8 and 28×28 (mlp, conv,
conditional), bad inputs with exact messages, a short training run on the digits that must improve the test
ELBO, determinism, and a `cuda` bf16 training step (skipped without a GPU)."""

import functools
import math
import re

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from aigc_course.data.digits import load_digits_split
from aigc_course.device import seed_everything
from aigc_course.train import TrainConfig, sample_batch, train
from aigc_course.vae import (
    VAE,
    BernoulliDecoder,
    ConvEncoder,
    ELBOTerms,
    GaussianDecoder,
    GaussianEncoder,
    LinearGaussianDecoder,
    LinearGaussianEncoder,
    build_vae,
    conditional_log_likelihood,
    elbo,
    importance_weighted_log_likelihood,
    reconstruct,
    reparameterize,
    sample,
)

torch.set_num_threads(1)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- tiny hand-set models

class LinearEncoder(nn.Module):
    """mu = A x + a, logvar = C x + c (float64), for hand-computed values."""

    def __init__(self, A, a, C, c) -> None:
        super().__init__()
        self.A, self.a, self.C, self.c = (nn.Parameter(torch.tensor(t, dtype=torch.float64)) for t in (A, a, C, c))
        self.in_shape = (self.A.shape[1],)
        self.latent_dim = self.A.shape[0]

    def forward(self, x):
        return x @ self.A.T + self.a, x @ self.C.T + self.c


class LinearBernoulli(nn.Module):
    likelihood = "bernoulli"

    def __init__(self, W, b) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.tensor(W, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float64))
        self.latent_dim = self.W.shape[1]

    def forward(self, z):
        return z @ self.W.T + self.b


class LinearGaussian(nn.Module):
    """pPCA's decoder: x | z ~ N(W z + b, σ² I)."""

    likelihood = "gaussian"

    def __init__(self, W: torch.Tensor, b: torch.Tensor, var: float) -> None:
        super().__init__()
        self.W, self.b, self.var = W, b, var
        self.latent_dim = W.shape[1]
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, z):
        mean = z @ self.W.T + self.b
        return mean, torch.full_like(mean, math.log(self.var))


A = [[0.5, -1.0, 0.25], [0.0, 2.0, -0.5]]
a = [0.1, -0.3]
C = [[0.2, 0.0, -0.4], [0.3, 0.1, 0.0]]
c = [-0.5, 0.2]
W_DEC = [[1.0, -2.0], [0.5, 0.0], [-1.5, 0.75]]
b_DEC = [0.2, -0.1, 0.3]


def tiny_vae() -> VAE:
    return VAE(LinearEncoder(A, a, C, c), LinearBernoulli(W_DEC, b_DEC))


def test_elbo_terms_match_hand_computed_values():
    x = torch.tensor([[1.0, 0.0, 0.5], [0.25, 1.0, 0.0]], dtype=torch.float64)
    eps = torch.randn(2, 2, generator=gen(7), dtype=torch.float64)
    terms = elbo(tiny_vae(), x, beta=0.5, rng=gen(7))
    assert isinstance(terms, ELBOTerms) and terms.elbo.shape == (2,)
    for i in range(2):
        xi = x[i].tolist()
        mu = [sum(A[d][j] * xi[j] for j in range(3)) + a[d] for d in range(2)]
        lv = [sum(C[d][j] * xi[j] for j in range(3)) + c[d] for d in range(2)]
        z = [mu[d] + math.exp(lv[d] / 2) * float(eps[i, d]) for d in range(2)]
        rec = 0.0
        for j in range(3):
            logit = sum(W_DEC[j][d] * z[d] for d in range(2)) + b_DEC[j]
            p = 1 / (1 + math.exp(-logit))
            rec += xi[j] * math.log(p) + (1 - xi[j]) * math.log(1 - p)
        kl = sum(0.5 * (math.exp(lv[d]) + mu[d] ** 2 - 1 - lv[d]) for d in range(2))
        assert terms.reconstruction[i].item() == pytest.approx(rec, rel=1e-12)
        assert terms.kl[i].item() == pytest.approx(kl, rel=1e-12)
        assert terms.elbo[i].item() == pytest.approx(rec - 0.5 * kl, rel=1e-12)
    s = sample(tiny_vae(), 4, rng=gen(0))          # z in the model's dtype; probabilities σ(W z + b)
    z = torch.randn(4, 2, generator=gen(0), dtype=torch.float64)
    torch.testing.assert_close(s, torch.sigmoid(z @ torch.tensor(W_DEC, dtype=torch.float64).T
                                                + torch.tensor(b_DEC, dtype=torch.float64)))


def test_beta_zero_is_reconstruction_and_gradients_reach_encoder_and_decoder():
    m = tiny_vae()
    x = torch.tensor([[1.0, 0.0, 0.5]], dtype=torch.float64)
    t = elbo(m, x, beta=0.0, rng=gen(1))
    assert torch.equal(t.elbo, t.reconstruction) and t.kl.item() > 0
    elbo(m, x, rng=gen(1)).elbo.sum().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_bernoulli_log_likelihood_is_stable_and_allows_grey_pixels():
    logits = torch.tensor([[100.0, -100.0, 0.0]])
    ll = conditional_log_likelihood(logits, torch.tensor([[1.0, 0.0, 0.3]]), "bernoulli")
    assert ll.item() == pytest.approx(-math.log(2), abs=1e-6)       # the saturated pixels cost ~0, exactly
    ll = conditional_log_likelihood(logits, torch.tensor([[0.0, 1.0, 1.0]]), "bernoulli")
    assert ll.item() == pytest.approx(-200 - math.log(2), rel=1e-6)


def test_gaussian_log_likelihood_with_fixed_variance_is_scaled_squared_error_plus_constant():
    x = torch.tensor([[0.2, 0.9, 0.4, 0.0]])
    mean = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    var = 0.1
    ll = conditional_log_likelihood((mean, torch.tensor(math.log(var))), x, "gaussian")
    sq = ((x - mean) ** 2).sum().item()
    assert ll.item() == pytest.approx(-sq / (2 * var) - 2 * math.log(2 * math.pi * var), rel=1e-6)
    ref = Normal(mean, math.sqrt(var)).log_prob(x).sum().item()
    assert ll.item() == pytest.approx(ref, rel=1e-6)


# --------------------------------------------------------------------------- the reparameterisation trick

def test_reparameterize_has_the_right_moments_and_gradients():
    n = 200_000
    mu = torch.tensor([[1.5, -2.0]]).expand(n, 2).clone().requires_grad_(True)
    logvar = torch.tensor([[math.log(4.0), math.log(0.25)]]).expand(n, 2).clone().requires_grad_(True)
    z = reparameterize(mu, logvar, rng=gen(0))
    m, v = z.detach().mean(0), z.detach().var(0)
    assert m.tolist() == pytest.approx([1.5, -2.0], abs=0.02)
    assert v.tolist() == pytest.approx([4.0, 0.25], rel=0.02)
    z.sum().backward()
    assert torch.equal(mu.grad, torch.ones_like(mu))
    torch.testing.assert_close(logvar.grad, 0.5 * (z.detach() - mu.detach()))   # dz/dlogvar = σε/2
    same = reparameterize(mu.detach(), logvar.detach(), rng=gen(0))
    assert torch.equal(same, z.detach())


# --------------------------------------------------------------------------- linear-Gaussian model (pPCA)

SIGMA2 = 0.25
B_PPCA = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
X_PPCA = torch.tensor([[0.5, 1.0, -0.7], [2.0, -1.0, 0.3], [-1.2, 0.4, 0.9]], dtype=torch.float64)


def ppca_evidence(W: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    cov = W @ W.T + SIGMA2 * torch.eye(3, dtype=torch.float64)
    return MultivariateNormal(B_PPCA, covariance_matrix=cov).log_prob(x)


def ppca_posterior(W: torch.Tensor, x: torch.Tensor) -> MultivariateNormal:
    M = W.T @ W + SIGMA2 * torch.eye(2, dtype=torch.float64)
    Minv = torch.linalg.inv(M)
    return MultivariateNormal((x - B_PPCA) @ W @ Minv.T, covariance_matrix=SIGMA2 * Minv)


class ExactPosteriorEncoder(nn.Module):
    """For W with orthogonal columns the posterior N(M⁻¹Wᵀ(x−b), σ²M⁻¹) is diagonal: M = diag(s² + σ²)."""

    def __init__(self, W: torch.Tensor) -> None:
        super().__init__()
        self.W, self.in_shape, self.latent_dim = W, (3,), 2
        self.d = (W ** 2).sum(0) + SIGMA2

    def forward(self, x):
        mu = (x - B_PPCA) @ self.W / self.d
        return mu, torch.log(SIGMA2 / self.d).expand_as(mu)


class ShiftedEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.in_shape, self.latent_dim = (3,), 2
        self.dummy = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x):
        mu = 0.5 * x[:, :2] - 0.2
        return mu, torch.tensor([-1.0, -2.5], dtype=torch.float64).expand_as(mu)


def orthogonal_W() -> torch.Tensor:
    q = torch.tensor([[1.0, 2.0], [2.0, 1.0], [2.0, -2.0]], dtype=torch.float64) / 3   # orthonormal columns
    return q * torch.tensor([2.0, 0.5], dtype=torch.float64)


W_GENERAL = torch.tensor([[1.0, 0.5], [0.3, -1.0], [0.2, 0.7]], dtype=torch.float64)


def replicated_elbo(model: VAE, x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard error of the ELBO per data point over n independent z."""
    t = elbo(model, x.repeat(n, 1), rng=gen(11)).elbo.reshape(n, x.shape[0])
    return t.mean(0), t.std(0) / math.sqrt(n)


def test_ppca_with_exact_posterior_elbo_and_iwae_equal_log_evidence():
    W = orthogonal_W()
    model = VAE(ExactPosteriorEncoder(W), LinearGaussian(W, B_PPCA, SIGMA2))
    log_px = ppca_evidence(W, X_PPCA)
    q = ppca_posterior(W, X_PPCA)
    mu, logvar = model.encode(X_PPCA)
    torch.testing.assert_close(mu, q.mean)
    torch.testing.assert_close(torch.diag_embed(logvar.exp()), q.covariance_matrix)
    for k in (1, 7, 100):
        iw = importance_weighted_log_likelihood(model, X_PPCA, k, batch_size=5, rng=gen(k))
        torch.testing.assert_close(iw, log_px, rtol=0, atol=1e-10)
    mean, se = replicated_elbo(model, X_PPCA, 20_000)
    assert ((mean - log_px).abs() < 5 * se + 1e-3).all(), (mean, log_px, se)


def test_ppca_with_wrong_encoder_gap_is_kl_to_exact_posterior():
    model = VAE(ShiftedEncoder(), LinearGaussian(W_GENERAL, B_PPCA, SIGMA2))
    log_px = ppca_evidence(W_GENERAL, X_PPCA)
    mu, logvar = model.encode(X_PPCA)
    q = MultivariateNormal(mu.detach(), covariance_matrix=torch.diag_embed(logvar.detach().exp()))
    gap = kl_divergence(q, ppca_posterior(W_GENERAL, X_PPCA))
    assert (gap > 0.3).all()                                  # a clearly wrong encoder
    mean, se = replicated_elbo(model, X_PPCA, 40_000)
    assert ((log_px - mean.detach() - gap).abs() < 5 * se + 1e-3).all(), (log_px - mean, gap, se)
    xs = X_PPCA.repeat(200, 1)                                 # average out the heavy-tailed weights
    iw = [importance_weighted_log_likelihood(model, xs, k, rng=gen(3)).reshape(200, 3).mean(0)
          for k in (1, 10, 100, 1000)]
    means = [t.mean().item() for t in iw]
    assert means == sorted(means), means
    assert (iw[-1] <= log_px + 0.02).all() and (log_px - iw[-1]).mean() < 0.25 * gap.mean()


def test_iwae_at_k_1_is_the_one_sample_elbo_with_the_same_noise():
    model = VAE(ShiftedEncoder(), LinearGaussian(W_GENERAL, B_PPCA, SIGMA2))
    iw = importance_weighted_log_likelihood(model, X_PPCA, 1, rng=gen(5))
    mu, logvar = model.encode(X_PPCA)
    z = reparameterize(mu, logvar, rng=gen(5))
    rec = elbo(model, X_PPCA, rng=gen(5)).reconstruction
    log_pz = Normal(0.0, 1.0).log_prob(z).sum(1)
    log_qz = Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(1)
    torch.testing.assert_close(iw, (rec + log_pz - log_qz).detach())


def test_iwae_on_trained_digits_vae_grows_with_k_and_bounds_elbo():
    model, _ = trained_digits_vae()
    x = load_digits_split().test_images.unsqueeze(1)
    e = torch.stack([elbo(model, x, rng=gen(s)).elbo.detach() for s in range(20)]).mean(0)
    iw = {k: importance_weighted_log_likelihood(model, x, k, rng=gen(1)) for k in (1, 10, 100, 1000)}
    assert iw[1].mean() == pytest.approx(e.mean().item(), abs=0.5)
    means = [e.mean().item()] + [iw[k].mean().item() for k in (10, 100, 1000)]
    assert means == sorted(means) and means[-1] > means[0] + 0.1, means
    # large k converges: two independent k = 1000 estimates agree far better than two k = 1 estimates
    spread = {k: (importance_weighted_log_likelihood(model, x, k, rng=gen(2)) - iw[k]).abs().mean().item()
              for k in (1, 1000)}
    assert spread[1000] < 0.1 * spread[1], spread
    assert iw[1000].shape == (x.shape[0],) and iw[1000].dtype == torch.float32


# --------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("size", [8, 28])
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_shapes(kind, size, likelihood):
    model = build_vae(3, size, kind=kind, likelihood=likelihood, hidden=32, width=8)
    x = torch.rand(5, 1, size, size, generator=gen(0))
    t = elbo(model, x)
    assert all(v.shape == (5,) and v.dtype == torch.float32 for v in t)
    assert model.encode(x)[0].shape == (5, 3)
    s = sample(model, 4, rng=gen(0))
    assert s.shape == (4, 1, size, size) and s.min() >= 0 and s.max() <= 1
    assert reconstruct(model, x).shape == x.shape
    assert importance_weighted_log_likelihood(model, x, 3, batch_size=7).shape == (5,)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_conditional_model_uses_labels(kind):
    model = build_vae(3, 8, kind=kind, num_classes=10, hidden=32, width=8)
    x = torch.rand(4, 1, 8, 8, generator=gen(0))
    y0, y1 = torch.tensor([0, 1, 2, 3]), torch.tensor([9, 8, 7, 6])
    assert elbo(model, x, labels=y0).elbo.shape == (4,)
    assert not torch.equal(model.encode(x, y0)[0], model.encode(x, y1)[0])        # labels reach the encoder
    assert not torch.equal(sample(model, 4, labels=y0, rng=gen(1)), sample(model, 4, labels=y1, rng=gen(1)))
    assert importance_weighted_log_likelihood(model, x, 5, labels=y0, batch_size=8).shape == (4,)
    assert reconstruct(model, x, labels=y0).shape == x.shape


def test_gaussian_decoder_fixed_or_learned_logvar():
    fixed = GaussianDecoder(2, (1, 8, 8), logvar=-2.0, learn_logvar=False)
    learned = GaussianDecoder(2, (1, 8, 8), logvar=-2.0)
    assert "logvar" not in dict(fixed.named_parameters()) and "logvar" in dict(learned.named_parameters())
    mean, logvar = fixed(torch.zeros(3, 2))
    assert mean.shape == logvar.shape == (3, 1, 8, 8) and (logvar == -2.0).all()
    model = VAE(GaussianEncoder((1, 8, 8), 2, hidden=16), learned)
    elbo(model, torch.rand(3, 1, 8, 8)).elbo.sum().backward()
    assert learned.logvar.grad is not None and learned.logvar.grad != 0


# --------------------------------------------------------------------------- bad inputs

def raises(exc, msg):
    return pytest.raises(exc, match=re.escape(msg))


def test_bad_inputs_have_exact_messages():
    model = build_vae(3, 8, hidden=16)
    cond = build_vae(3, 8, hidden=16, num_classes=10)
    x = torch.rand(2, 1, 8, 8)
    with raises(ValueError, "x must have shape (B, 1, 8, 8) with B >= 1 for this VAE, got (2, 8, 8)"):
        elbo(model, x[:, 0])
    with raises(TypeError, "x must be a floating-point tensor, got dtype torch.int64"):
        elbo(model, x.long())
    with raises(ValueError, "x must be finite, got NaN or inf"):
        elbo(model, torch.full_like(x, math.nan))
    with raises(ValueError, "x must lie in [0, 1] for a Bernoulli likelihood, got values in [-1, 0.5]"):
        elbo(model, torch.cat([torch.full((1, 1, 8, 8), -1.0), torch.full((1, 1, 8, 8), 0.5)]))
    with raises(ValueError, "x must lie in [0, 1] for a Bernoulli likelihood, got values in [0, 2]"):
        conditional_log_likelihood(torch.zeros(1, 2), torch.tensor([[0.0, 2.0]]), "bernoulli")
    with raises(ValueError, "beta must be a finite number >= 0, got -0.5"):
        elbo(model, x, beta=-0.5)
    with raises(TypeError, "beta must be a number, got str '1'"):
        elbo(model, x, beta="1")
    with raises(ValueError, "k must be >= 1, got 0"):
        importance_weighted_log_likelihood(model, x, 0)
    with raises(TypeError, "k must be an int, got float 10.0"):
        importance_weighted_log_likelihood(model, x, 10.0)
    with raises(ValueError, "labels were given, but this VAE is unconditional (num_classes=None)"):
        elbo(model, x, labels=torch.tensor([0, 1]))
    with raises(ValueError, "this VAE is class-conditional (num_classes=10): pass labels of shape (2,)"):
        elbo(cond, x)
    with raises(ValueError, "labels must lie in [0, 9], got values in [0, 10]"):
        elbo(cond, x, labels=torch.tensor([0, 10]))
    with raises(ValueError, "labels must have shape (2,) to match the batch, got (3,)"):
        importance_weighted_log_likelihood(cond, x, 2, labels=torch.tensor([0, 1, 2]))
    with raises(ValueError, "this VAE is class-conditional (num_classes=10): pass labels of shape (5,)"):
        sample(cond, 5)
    with raises(TypeError, "model must be an aigc_course.vae.VAE, got Linear"):
        elbo(nn.Linear(2, 2), x)
    with raises(TypeError, "rng must be a torch.Generator or None, got int"):
        elbo(model, x, rng=0)
    with raises(ValueError, "logvar must have the same shape as mu (2, 3), got (2, 4)"):
        reparameterize(torch.zeros(2, 3), torch.zeros(2, 4))
    with raises(ValueError, "decoder_output (logits) must have the shape of x (1, 2), got (1, 3)"):
        conditional_log_likelihood(torch.zeros(1, 3), torch.zeros(1, 2), "bernoulli")
    with raises(ValueError, "likelihood must be 'bernoulli' or 'gaussian', got 'poisson'"):
        conditional_log_likelihood(torch.zeros(1, 2), torch.zeros(1, 2), "poisson")
    with raises(ValueError, "encoder and decoder must agree on latent_dim, got 3 and 4"):
        VAE(GaussianEncoder((1, 8, 8), 3), BernoulliDecoder(4))
    with raises(ValueError, "encoder and decoder must agree on num_classes, got 10 and None"):
        VAE(GaussianEncoder((1, 8, 8), 3, num_classes=10), BernoulliDecoder(3))
    with raises(ValueError, "image_size must be a multiple of 4 (two stride-2 layers), got 10"):
        ConvEncoder(image_size=10)
    with raises(ValueError, "out_shape must be (channels, s, s) with s a multiple of 4 for a conv model, "
                            "got (1, 10, 10)"):
        BernoulliDecoder(2, (1, 10, 10), kind="conv")
    with raises(ValueError, "kind must be 'mlp' or 'conv', got 'rnn'"):
        build_vae(kind="rnn")


# --------------------------------------------------------------------------- training and determinism

def train_digits(steps: int, seed: int = 0) -> tuple[VAE, list[float]]:
    seed_everything(seed)
    data = load_digits_split()
    x_train = data.train_images.unsqueeze(1)
    model = build_vae(8, 8, hidden=128)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def step(ctx):
        (x,) = sample_batch(x_train, batch_size=64)
        with ctx.autocast():
            loss = -elbo(model, x).elbo.mean()
        ctx.optimize(loss)
        return {"loss": loss}

    history = train(step, models=model, optimizers=opt, config=TrainConfig(steps=steps, progress=False))
    return model, history["loss"]


@functools.lru_cache(maxsize=1)
def trained_digits_vae() -> tuple[VAE, list[float]]:
    return train_digits(300)


def test_training_on_digits_improves_test_elbo_a_lot():
    data = load_digits_split()
    x_test = data.test_images.unsqueeze(1)
    seed_everything(0)
    before = elbo(build_vae(8, 8, hidden=128), x_test, rng=gen(0)).elbo.mean().item()
    model, losses = trained_digits_vae()
    with torch.no_grad():
        after = elbo(model, x_test, rng=gen(0)).elbo.mean().item()
    assert before < -40 and after > before + 12, (before, after)
    assert sum(losses[-20:]) / 20 < losses[0] - 15


def test_same_seed_same_numbers():
    m1, l1 = train_digits(15, seed=3)
    m2, l2 = train_digits(15, seed=3)
    _, l3 = train_digits(15, seed=4)
    assert l1 == l2 and l1 != l3
    x = load_digits_split().test_images[:8].unsqueeze(1)
    assert torch.equal(elbo(m1, x, rng=gen(2)).elbo, elbo(m2, x, rng=gen(2)).elbo)
    assert torch.equal(importance_weighted_log_likelihood(m1, x, 20, rng=gen(2)),
                       importance_weighted_log_likelihood(m2, x, 20, rng=gen(2)))
    assert torch.equal(sample(m1, 3, rng=gen(9)), sample(m2, 3, rng=gen(9)))


# --------------------------------------------------------------------------- CUDA

@pytest.mark.cuda
@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_cuda_training_steps_with_bf16(likelihood):
    seed_everything(0)
    dev = torch.device("cuda")
    model = build_vae(16, 28, kind="conv", likelihood=likelihood, num_classes=10).to(dev)
    imgs = torch.rand(256, 1, 28, 28, device=dev)
    ys = torch.arange(256, device=dev) % 10
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def step(ctx):
        x, y = sample_batch(imgs, ys, batch_size=32)
        with ctx.autocast():
            terms = elbo(model, x, labels=y)
        assert terms.elbo.dtype == torch.float32
        ctx.optimize(-terms.elbo.mean())
        return {"loss": -terms.elbo.mean()}

    hist = train(step, models=model, optimizers=opt, config=TrainConfig(steps=5, amp=True, progress=False))
    assert all(math.isfinite(v) for v in hist["loss"])
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    iw = importance_weighted_log_likelihood(model, imgs[:8], 100, labels=ys[:8])
    assert iw.device.type == "cuda" and torch.isfinite(iw).all()


# --------------------------------------------------------------------------- probabilistic PCA as a VAE

def test_linear_gaussian_pair_is_ppca_and_its_exact_posterior_closes_the_gap():
    torch.manual_seed(0)
    d, D, sigma2 = 2, 5, 0.3
    W, b = torch.randn(D, d), torch.randn(D)
    dec = LinearGaussianDecoder(d, D, logvar=math.log(sigma2), learn_logvar=False)
    Lam = torch.eye(d) + W.T @ W / sigma2                      # posterior precision
    cov = torch.linalg.inv(Lam)
    enc = LinearGaussianEncoder(D, d)
    with torch.no_grad():
        dec.linear.weight.copy_(W)
        dec.linear.bias.copy_(b)
        enc.linear.weight.copy_(cov @ W.T / sigma2)
        enc.linear.bias.copy_(-(cov @ W.T @ b) / sigma2)
    x = torch.randn(7, D)
    mean, logvar = dec(torch.zeros(7, d))
    assert torch.allclose(mean, b.expand(7, D)) and torch.allclose(logvar, torch.full((7, D), math.log(sigma2)))
    mu, lv = enc(x)
    assert torch.allclose(mu, (cov @ W.T @ (x - b).T / sigma2).T, atol=1e-5) and lv.shape == (7, d)
    assert [n for n, _ in enc.named_parameters()] == ["linear.weight", "linear.bias", "logvar.value"]
    assert [n for n, _ in dec.named_parameters()] == ["linear.weight", "linear.bias"]   # fixed: a buffer
    assert [n for n, _ in dec.named_buffers()] == ["logvar.value"]
    # with the exact posterior's variances (1-D latent: the posterior is diagonal), ELBO = log p(x) exactly
    W1 = W[:, :1]
    dec1 = LinearGaussianDecoder(1, D, logvar=math.log(sigma2), learn_logvar=False)
    var1 = 1 / (1 + (W1.T @ W1).item() / sigma2)
    enc1 = LinearGaussianEncoder(D, 1, logvar=math.log(var1), learn_logvar=False)
    with torch.no_grad():
        dec1.linear.weight.copy_(W1)
        dec1.linear.bias.copy_(b)
        enc1.linear.weight.copy_(var1 * W1.T / sigma2)
        enc1.linear.bias.copy_(-var1 * (W1.T @ b) / sigma2)
    model = VAE(enc1, dec1)
    log_px = MultivariateNormal(b, W1 @ W1.T + sigma2 * torch.eye(D)).log_prob(x)
    # every importance weight p(x, z)/q(z|x) equals p(x): the IWAE bound is exact at any k ...
    assert torch.allclose(importance_weighted_log_likelihood(model, x, 50, rng=gen(1)), log_px, atol=1e-4)
    # ... and the one-sample ELBO (closed-form KL) is exact on average
    with torch.no_grad():
        e = elbo(model, x.repeat(4000, 1), rng=gen(0)).elbo.reshape(4000, 7).mean(0)
    assert torch.allclose(e, log_px, atol=0.08), (e, log_px)


def test_linear_gaussian_logvar_learned_or_fixed_and_bad_inputs():
    enc = LinearGaussianEncoder(3, 2, logvar=torch.tensor([0.5, -0.5]))
    assert isinstance(enc.logvar.value, nn.Parameter) and torch.equal(enc.logvar.value, torch.tensor([0.5, -0.5]))
    assert torch.equal(enc(torch.zeros(4, 3))[1], torch.tensor([0.5, -0.5]).expand(4, 2))
    dec = LinearGaussianDecoder(2, 3, learn_logvar=False)
    assert dec.logvar.value.item() == 0.0 and not isinstance(dec.logvar.value, nn.Parameter)
    assert dec(torch.zeros(1, 2, dtype=torch.float64).float())[1].dtype == torch.float32
    cases = [
        (lambda: LinearGaussianEncoder(3, 2, logvar=torch.zeros(3)), ValueError,
         "logvar must be a finite number or a tensor of shape (2,), got tensor([0., 0., 0.])"),
        (lambda: LinearGaussianDecoder(2, 3, logvar=math.nan), ValueError,
         "logvar must be a finite number or a tensor of shape (3,), got nan"),
        (lambda: LinearGaussianDecoder(2, 3, logvar=True), ValueError,
         "logvar must be a finite number or a tensor of shape (3,), got True"),
        (lambda: LinearGaussianDecoder(2, 3, learn_logvar=1), TypeError, "learn_logvar must be True or False, got 1"),
        (lambda: LinearGaussianEncoder(0, 2), ValueError, "in_dim must be >= 1, got 0"),
        (lambda: LinearGaussianDecoder(2, 0), ValueError, "out_dim must be >= 1, got 0"),
        (lambda: LinearGaussianDecoder(0, 2), ValueError, "latent_dim must be >= 1, got 0"),
        (lambda: enc(torch.zeros(4, 2)), ValueError,
         "x must have shape (B, 3) with B >= 1 for LinearGaussianEncoder, got (4, 2)"),
        (lambda: dec(torch.zeros(4, 3)), ValueError,
         "z must have shape (B, 2) with B >= 1 for LinearGaussianDecoder, got (4, 3)"),
        (lambda: enc(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)), ValueError,
         "labels were given, but this encoder is unconditional (num_classes=None)"),
    ]
    for make, err, msg in cases:
        with pytest.raises(err, match="^" + re.escape(msg) + "$"):
            make()


def test_linear_gaussian_defaults_messages_and_dtypes():
    enc, dec = LinearGaussianEncoder(4, 2), LinearGaussianDecoder(2, 4)
    assert isinstance(enc.logvar.value, nn.Parameter) and isinstance(dec.logvar.value, nn.Parameter)  # learned
    assert enc.in_shape == (4,) and enc.latent_dim == 2 and dec.latent_dim == 2 and dec.out_dim == 4
    for make, msg in ((lambda: LinearGaussianEncoder(4, 0), "latent_dim must be >= 1, got 0"),
                      (lambda: LinearGaussianEncoder(4, 2.0), "latent_dim must be an int, got float 2.0"),
                      (lambda: LinearGaussianDecoder(2, 4)(torch.zeros(3, 2), torch.zeros(3, dtype=torch.long)),
                       "labels were given, but this decoder is unconditional (num_classes=None)")):
        with pytest.raises((TypeError, ValueError), match="^" + re.escape(msg) + "$"):
            make()
    # a float64 log-variance follows the data's dtype
    enc64 = LinearGaussianEncoder(4, 2, logvar=torch.tensor([0.5, 1.5], dtype=torch.float64))
    mu, lv = enc64(torch.zeros(3, 4))
    assert lv.dtype == mu.dtype == torch.float32 and torch.equal(lv[2], torch.tensor([0.5, 1.5]))
