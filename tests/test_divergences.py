"""Tests for aigc_course.divergences: references from torch.distributions, properties, fits, bad inputs."""

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch.distributions import Categorical, Normal
from torch.distributions import kl_divergence as torch_kl

from aigc_course.divergences import (
    FitResult,
    Mixture1D,
    cross_entropy,
    discretize,
    entropy,
    fit_gaussian,
    gaussian_kl,
    gaussian_log_prob,
    gaussian_mle,
    grid_kl,
    inverse_cdf_sample,
    js_divergence,
    kde_log_prob,
    kl_divergence,
    ks_statistic,
)

LOG2 = math.log(2.0)


def random_probs(*shape, seed=0, zeros=False):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(*shape, generator=g, dtype=torch.float64)
    if zeros:
        p = p * (torch.rand(*shape, generator=g, dtype=torch.float64) > 0.4)
        p[..., 0] += 0.1  # keep every row non-empty
    return p / p.sum(-1, keepdim=True)


# ----------------------------------------------------------------------------- discrete

def test_kl_entropy_cross_entropy_match_torch_distributions():
    p, q = random_probs(5, 7, seed=1), random_probs(5, 7, seed=2)
    ref = torch_kl(Categorical(probs=p), Categorical(probs=q))
    torch.testing.assert_close(kl_divergence(p, q), ref)
    torch.testing.assert_close(entropy(p), Categorical(probs=p).entropy())
    torch.testing.assert_close(cross_entropy(p, q), entropy(p) + kl_divergence(p, q))


def test_kl_hand_value_and_zero_conventions():
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.9, 0.1])
    want = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert kl_divergence(p, q).item() == pytest.approx(want, rel=1e-6)
    # p = 0 terms contribute nothing, even where q = 0 too
    assert kl_divergence(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5])).item() == pytest.approx(LOG2)
    assert kl_divergence(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])).item() == 0.0
    # q = 0 where p > 0: infinite
    assert kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])).item() == math.inf
    assert cross_entropy(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])).item() == math.inf
    assert entropy(torch.tensor([1.0, 0.0, 0.0])).item() == 0.0
    assert entropy(torch.full((8,), 1 / 8)).item() == pytest.approx(math.log(8))


def test_kl_is_asymmetric_and_zero_iff_equal():
    p, q = torch.tensor([0.8, 0.1, 0.1]), torch.tensor([0.4, 0.3, 0.3])
    assert abs(kl_divergence(p, q) - kl_divergence(q, p)).item() > 1e-2
    assert kl_divergence(p, p).item() == pytest.approx(0.0, abs=1e-12)


def test_broadcasting_batches():
    p = random_probs(4, 1, 6, seed=3)
    q = random_probs(3, 6, seed=4)
    out = kl_divergence(p, q)
    assert out.shape == (4, 3)
    torch.testing.assert_close(out[2, 1], kl_divergence(p[2, 0], q[1]))
    assert js_divergence(p, q).shape == (4, 3)


def test_js_disjoint_supports_is_log2():
    p, q = torch.tensor([0.5, 0.5, 0.0, 0.0]), torch.tensor([0.0, 0.0, 0.3, 0.7])
    assert js_divergence(p, q).item() == pytest.approx(LOG2)


prob_vectors = st.integers(2, 8).flatmap(
    lambda k: st.tuples(
        st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k),
        st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k),
    )
).filter(lambda ab: sum(ab[0]) > 1e-3 and sum(ab[1]) > 1e-3)


def _normalise(v):
    t = torch.tensor(v, dtype=torch.float64)
    return t / t.sum()


@settings(max_examples=200, deadline=None)
@given(prob_vectors)
@example(([0.0, 1.0, 0.0], [0.0, 1.0, 5e-324]))  # a subnormal q once made m = (p+q)/2 underflow → JS = inf
def test_properties_kl_nonneg_js_bounded_symmetric(ab):
    p, q = _normalise(ab[0]), _normalise(ab[1])
    assert kl_divergence(p, q).item() >= 0.0
    js_pq, js_qp = js_divergence(p, q).item(), js_divergence(q, p).item()
    assert 0.0 <= js_pq <= LOG2 + 1e-12
    assert js_pq == pytest.approx(js_qp, abs=1e-12)
    assert kl_divergence(p, p).item() == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10_000))
def test_sqrt_js_triangle_inequality(seed):
    p, q, r = (random_probs(5, seed=seed * 3 + i, zeros=True) for i in range(3))
    d = lambda a, b: js_divergence(a, b).sqrt().item()  # noqa: E731
    assert d(p, r) <= d(p, q) + d(q, r) + 1e-12


@pytest.mark.parametrize("bad, match", [
    (torch.tensor([0.5, 0.6]), "sum to 1"),
    (torch.tensor([1.5, -0.5]), "non-negative"),
    (torch.tensor([float("nan"), 1.0]), "finite"),
    (torch.tensor(1.0), "shape"),
])
def test_bad_probability_vectors(bad, match):
    ok = torch.tensor([0.5, 0.5])
    with pytest.raises(ValueError, match=f"p .*{match}|p must.*{match}"):
        kl_divergence(bad, ok)
    with pytest.raises(ValueError, match="q"):
        js_divergence(ok, bad)
    with pytest.raises(ValueError, match=match):
        entropy(bad)


def test_bad_pairs_and_types():
    with pytest.raises(TypeError, match="p must be a torch.Tensor"):
        kl_divergence([0.5, 0.5], torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="same number of outcomes"):
        kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([0.2, 0.3, 0.5]))
    with pytest.raises(ValueError, match="broadcast"):
        kl_divergence(random_probs(2, 3), random_probs(4, 3))


# ----------------------------------------------------------------------------- Gaussians

def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu1, lv1, mu2, lv2 = (torch.randn(6, 4, generator=g, dtype=torch.float64) for _ in range(4))
    ref = torch_kl(Normal(mu1, (0.5 * lv1).exp()), Normal(mu2, (0.5 * lv2).exp())).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu1, lv1, mu2, lv2), ref)
    std_normal = torch_kl(Normal(mu1, (0.5 * lv1).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu1, lv1), std_normal)
    assert gaussian_kl(mu1, lv1).shape == (6,)
    torch.testing.assert_close(gaussian_kl(mu1, lv1, mu1, lv1), torch.zeros(6, dtype=torch.float64))


def test_gaussian_kl_bad_inputs():
    with pytest.raises(ValueError, match="both mu2 and logvar2"):
        gaussian_kl(torch.zeros(3), torch.zeros(3), mu2=torch.zeros(3))
    with pytest.raises(ValueError, match="mu1 must have shape"):
        gaussian_kl(torch.tensor(0.0), torch.tensor(0.0))
    with pytest.raises(ValueError, match="broadcast"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(4, 3))
    with pytest.raises(TypeError, match="logvar1"):
        gaussian_kl(torch.zeros(3), "zeros")


def test_gaussian_log_prob_matches_normal():
    x = torch.linspace(-3, 3, 11, dtype=torch.float64)
    torch.testing.assert_close(gaussian_log_prob(x, 0.5, math.log(4.0)), Normal(0.5, 2.0).log_prob(x))
    with pytest.raises(ValueError, match="broadcast"):
        gaussian_log_prob(torch.zeros(3), torch.zeros(4), 0.0)


def test_gaussian_mle_is_biased_variance_and_maximises_likelihood():
    x = torch.randn(200, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 + 1
    mu, var = gaussian_mle(x)
    torch.testing.assert_close(mu, x.mean())
    torch.testing.assert_close(var, x.var(unbiased=False))
    nll = lambda m, v: -gaussian_log_prob(x, m, math.log(v)).mean()  # noqa: E731
    best = nll(mu, var.item())
    for dm, dv in [(0.05, 0.0), (-0.05, 0.0), (0.0, 0.1), (0.0, -0.1)]:
        assert nll(mu + dm, var.item() + dv) > best
    with pytest.raises(ValueError, match="x must have shape"):
        gaussian_mle(torch.zeros(0))


# ----------------------------------------------------------------------------- mixtures and sampling

BIMODAL = Mixture1D([0.5, 0.5], [-2.0, 2.0], [0.5, 0.5])


def test_mixture_log_prob_cdf_moments():
    x = torch.linspace(-5, 5, 101, dtype=torch.float64)
    components = torch.stack([Normal(-2.0, 0.5).log_prob(x), Normal(2.0, 0.5).log_prob(x)])
    ref = torch.logsumexp(components + math.log(0.5), dim=0)
    torch.testing.assert_close(BIMODAL.log_prob(x), ref)
    ref_cdf = 0.5 * Normal(-2.0, 0.5).cdf(x) + 0.5 * Normal(2.0, 0.5).cdf(x)
    torch.testing.assert_close(BIMODAL.cdf(x), ref_cdf)
    assert BIMODAL.mean().item() == pytest.approx(0.0)
    assert BIMODAL.variance().item() == pytest.approx(4.25)
    grid = torch.linspace(-10, 10, 4001, dtype=torch.float64)
    assert (BIMODAL.log_prob(grid).exp().sum() * (grid[1] - grid[0])).item() == pytest.approx(1.0, abs=1e-6)


def test_mixture_bad_inputs():
    with pytest.raises(ValueError, match="weights must sum to 1"):
        Mixture1D([0.5, 0.6], [0, 1], [1, 1])
    with pytest.raises(ValueError, match="stds must be positive"):
        Mixture1D([0.5, 0.5], [0, 1], [1, 0])
    with pytest.raises(ValueError, match="means must have shape"):
        Mixture1D([0.5, 0.5], [0, 1, 2], [1, 1])
    with pytest.raises(ValueError, match="n must be"):
        BIMODAL.sample(-1)


def test_ancestral_and_inverse_cdf_samples_follow_the_cdf():
    n = 4000
    bound = 1.63 / math.sqrt(n)  # 1 % critical value of the KS test
    anc = BIMODAL.sample(n, torch.Generator().manual_seed(0))
    inv = inverse_cdf_sample(BIMODAL.cdf, n, -10.0, 10.0, torch.Generator().manual_seed(0))
    assert anc.shape == inv.shape == (n,)
    assert ks_statistic(anc, BIMODAL.cdf) < bound
    assert ks_statistic(inv, BIMODAL.cdf) < bound
    # and the test has power: the samples are far from a single moment-matched Gaussian
    wrong = Normal(0.0, math.sqrt(4.25)).cdf
    assert ks_statistic(anc, wrong) > 3 * bound


def test_inverse_cdf_is_exact_for_a_known_quantile():
    # with u fixed by the generator, bisection must agree with the closed-form normal quantile
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = inverse_cdf_sample(Normal(1.0, 2.0).cdf, 50, -30.0, 30.0, g1)
    u = torch.rand(50, generator=g2, dtype=torch.float64)
    torch.testing.assert_close(x, Normal(1.0, 2.0).icdf(u), atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="low < high"):
        inverse_cdf_sample(BIMODAL.cdf, 3, 1.0, -1.0)
    with pytest.raises(TypeError, match="cdf must be a callable"):
        inverse_cdf_sample(None, 3, -1.0, 1.0)


def test_ks_statistic_small_example():
    # one sample at 0 under U(-1, 1): F(0) = 0.5, the empirical CDF jumps 0 → 1 there → distance 0.5
    uniform_cdf = lambda x: ((x + 1) / 2).clamp(0, 1)  # noqa: E731
    assert ks_statistic(torch.tensor([0.0]), uniform_cdf) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="samples must have shape"):
        ks_statistic(torch.zeros(2, 2), uniform_cdf)


def test_kde_log_prob_normalised_and_matches_manual():
    data = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    x = torch.tensor([0.3, 5.0], dtype=torch.float64)
    manual = torch.stack([Normal(d, 0.4).log_prob(x).exp() for d in data]).mean(0).log()
    torch.testing.assert_close(kde_log_prob(x, data, 0.4), manual)
    grid = torch.linspace(-8, 8, 3201, dtype=torch.float64)
    mass = kde_log_prob(grid, data, 0.4).exp().sum() * (grid[1] - grid[0])
    assert mass.item() == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="bandwidth"):
        kde_log_prob(x, data, 0.0)


# ----------------------------------------------------------------------------- grids and fits

def test_grid_kl_approximates_closed_form():
    grid = torch.linspace(-12, 12, 2401, dtype=torch.float64)
    lp, lq = gaussian_log_prob(grid, 0.3, math.log(0.8)), gaussian_log_prob(grid, -0.5, math.log(2.0))
    exact = gaussian_kl(torch.tensor([0.3]), torch.tensor([math.log(0.8)]),
                        torch.tensor([-0.5]), torch.tensor([math.log(2.0)]))
    assert grid_kl(lp, lq).item() == pytest.approx(exact.item(), rel=1e-6)
    # unnormalised inputs give the same answer, and the discrete KL of the cell masses agrees
    assert grid_kl(lp + 3.0, lq - 1.0).item() == pytest.approx(exact.item(), rel=1e-6)
    assert kl_divergence(discretize(lp), discretize(lq)).item() == pytest.approx(exact.item(), rel=1e-6)
    with pytest.raises(ValueError, match="same grid size"):
        grid_kl(lp, lq[:-1])


def test_forward_fit_is_moment_matching():
    res = fit_gaussian(BIMODAL.log_prob, "forward", init=(0.5, 0.0), steps=400, lr=0.05)
    assert isinstance(res, FitResult) and res.history.shape == (400,)
    assert abs(res.mu) < 1e-3
    assert res.std == pytest.approx(math.sqrt(4.25), abs=1e-3)
    assert res.history[-1] < res.history[0]


@pytest.mark.parametrize("start, mode", [(1.0, 2.0), (-1.0, -2.0)])
def test_reverse_fit_seeks_the_nearest_mode(start, mode):
    res = fit_gaussian(BIMODAL.log_prob, "reverse", init=(start, 0.0), steps=300, lr=0.05)
    assert res.mu == pytest.approx(mode, abs=1e-2)
    assert res.std == pytest.approx(0.5, abs=1e-2)
    assert res.history[-1].item() == pytest.approx(LOG2, abs=1e-3)  # q covers one half of p's mass


def test_each_fit_wins_on_its_own_objective():
    fwd = fit_gaussian(BIMODAL.log_prob, "forward", init=(0.5, 0.0), steps=400)
    rev = fit_gaussian(BIMODAL.log_prob, "reverse", init=(1.0, 0.0), steps=300)
    grid = torch.linspace(-12, 12, 2401, dtype=torch.float64)
    lp = BIMODAL.log_prob(grid)
    lq_f = gaussian_log_prob(grid, fwd.mu, 2 * math.log(fwd.std))
    lq_r = gaussian_log_prob(grid, rev.mu, 2 * math.log(rev.std))
    assert grid_kl(lp, lq_f) < grid_kl(lp, lq_r)
    assert grid_kl(lq_r, lp) < grid_kl(lq_f, lp)


def test_fit_bad_inputs():
    with pytest.raises(ValueError, match="direction"):
        fit_gaussian(BIMODAL.log_prob, "sideways")
    with pytest.raises(TypeError, match="target_log_prob"):
        fit_gaussian(3.0)
    with pytest.raises(ValueError, match="steps"):
        fit_gaussian(BIMODAL.log_prob, steps=0)
    with pytest.raises(ValueError, match="grid"):
        fit_gaussian(BIMODAL.log_prob, grid=torch.tensor([0.0, 1.0, 5.0]))
    with pytest.raises(ValueError, match="init"):
        fit_gaussian(BIMODAL.log_prob, init=(0.0,))
