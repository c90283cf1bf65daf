"""Tests for aigc_course.divergences: independent references, asymmetric and batched cases, numerics at the
edges, and a bad-input sweep of every public function (errors name the argument; no raw torch errors)."""

import math
import re

import pytest
import scipy.stats
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch.distributions import Categorical, MixtureSameFamily, Normal
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
F64 = torch.float64
INF = math.inf
NAN = math.nan


def random_probs(*shape, seed=0, zeros=False):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(*shape, generator=g, dtype=F64)
    if zeros:
        p = p * (torch.rand(*shape, generator=g, dtype=F64) > 0.4)
        p[..., 0] += 0.1  # keep every row non-empty
    return p / p.sum(-1, keepdim=True)


def loop_kl(p, q):
    """KL by a Python loop over outcomes, with the 0·log 0 = 0 and p·log(p/0) = inf conventions."""
    total = 0.0
    for a, b in zip(p.tolist(), q.tolist(), strict=True):
        if a > 0:
            total += INF if b == 0 else a * (math.log(a) - math.log(b))
    return total


def loop_entropy(p):
    return -sum(a * math.log(a) for a in p.tolist() if a > 0)


def loop_js(p, q):
    m = (p + q) / 2
    return 0.5 * loop_kl(p, m) + 0.5 * loop_kl(q, m)


# asymmetric, batched, with zeros in p, in q, and in both at the same place
P = torch.tensor([[0.7, 0.2, 0.1, 0.0], [0.0, 0.0, 0.25, 0.75], [0.1, 0.6, 0.0, 0.3]], dtype=F64)
Q = torch.tensor([[0.1, 0.3, 0.4, 0.2], [0.5, 0.0, 0.125, 0.375], [0.2, 0.2, 0.0, 0.6]], dtype=F64)


# ============================================================================= discrete: exact values

def test_kl_js_entropy_cross_entropy_match_loops_on_asymmetric_batches():
    kl, js, h, ce = kl_divergence(P, Q), js_divergence(P, Q), entropy(P), cross_entropy(P, Q)
    assert kl.shape == js.shape == h.shape == ce.shape == (3,)
    for i in range(3):
        assert kl[i].item() == pytest.approx(loop_kl(P[i], Q[i]), rel=1e-12)
        assert kl_divergence(Q, P)[i].item() == pytest.approx(loop_kl(Q[i], P[i]), rel=1e-12)
        assert js[i].item() == pytest.approx(loop_js(P[i], Q[i]), rel=1e-12)
        assert h[i].item() == pytest.approx(loop_entropy(P[i]), rel=1e-12)
        assert ce[i].item() == pytest.approx(loop_entropy(P[i]) + loop_kl(P[i], Q[i]), rel=1e-12)
    # the asymmetric case really is asymmetric, so swapping p and q is caught
    assert abs(kl[0] - kl_divergence(Q, P)[0]).item() > 0.1


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
    assert kl_divergence(torch.tensor([1.0, 0.0]), torch.tensor([0.5, 0.5])).item() == pytest.approx(LOG2)
    assert kl_divergence(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])).item() == 0.0
    assert kl_divergence(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])).item() == INF
    assert cross_entropy(torch.tensor([0.5, 0.5]), torch.tensor([1.0, 0.0])).item() == INF
    h0 = entropy(torch.tensor([1.0, 0.0, 0.0])).item()
    assert h0 == 0.0 and math.copysign(1.0, h0) == 1.0  # +0.0, not -0.0
    assert math.copysign(1.0, cross_entropy(torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])).item()) == 1.0
    assert entropy(torch.full((8,), 1 / 8)).item() == pytest.approx(math.log(8))


def test_broadcasting_batches():
    p = random_probs(4, 1, 6, seed=3)
    q = random_probs(3, 6, seed=4)
    for fn in (kl_divergence, js_divergence, cross_entropy):
        out = fn(p, q)
        assert out.shape == (4, 3)
        torch.testing.assert_close(out[2, 1], fn(p[2, 0], q[1]))
        torch.testing.assert_close(out[0, 2], fn(p[0, 0], q[2]))


def test_js_disjoint_supports_is_log2_and_identical_is_zero():
    p, q = torch.tensor([0.5, 0.5, 0.0, 0.0]), torch.tensor([0.0, 0.0, 0.3, 0.7])
    assert js_divergence(p, q).item() == pytest.approx(LOG2)
    assert js_divergence(q, q).item() == pytest.approx(0.0, abs=1e-15)


prob_vectors = st.integers(2, 8).flatmap(
    lambda k: st.tuples(
        st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k),
        st.lists(st.floats(0.0, 1.0), min_size=k, max_size=k),
    )
).filter(lambda ab: sum(ab[0]) > 1e-3 and sum(ab[1]) > 1e-3)


def _normalise(v):
    t = torch.tensor(v, dtype=F64)
    return t / t.sum()


@settings(max_examples=150, deadline=None)
@given(prob_vectors)
@example(([0.0, 1.0, 0.0], [0.0, 1.0, 5e-324]))  # a subnormal q once made m = (p+q)/2 underflow → JS = inf
def test_properties_against_loops_and_bounds(ab):
    p, q = _normalise(ab[0]), _normalise(ab[1])
    kl = kl_divergence(p, q).item()
    assert kl == pytest.approx(max(loop_kl(p, q), 0.0), rel=1e-9, abs=1e-12)
    js_pq, js_qp = js_divergence(p, q).item(), js_divergence(q, p).item()
    assert 0.0 <= js_pq <= LOG2 + 1e-12
    assert js_pq == pytest.approx(js_qp, abs=1e-12)
    assert entropy(p).item() == pytest.approx(loop_entropy(p), rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000))
def test_sqrt_js_triangle_inequality(seed):
    p, q, r = (random_probs(5, seed=seed * 3 + i, zeros=True) for i in range(3))
    d = lambda a, b: js_divergence(a, b).sqrt().item()  # noqa: E731
    assert d(p, r) <= d(p, q) + d(q, r) + 1e-12


# ============================================================================= dtypes and tolerances

@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, F64])
def test_low_precision_distributions_are_accepted_and_keep_their_dtype(dtype):
    g = torch.Generator().manual_seed(0)
    logits_p, logits_q = torch.randn(3, 1000, generator=g, dtype=F64), torch.randn(3, 1000, generator=g, dtype=F64)
    p64, q64 = torch.softmax(logits_p, -1), torch.softmax(logits_q, -1)  # exact references
    p, q = p64.to(dtype), q64.to(dtype)
    tol = {torch.float16: 2e-2, torch.bfloat16: 6e-2, torch.float32: 1e-5, F64: 1e-12}[dtype]
    for fn, ref in ((kl_divergence, kl_divergence(p64, q64)), (js_divergence, js_divergence(p64, q64)),
                    (cross_entropy, cross_entropy(p64, q64))):
        out = fn(p, q)
        assert out.dtype == dtype and out.shape == (3,)
        torch.testing.assert_close(out.to(F64), ref, rtol=tol, atol=tol)
    assert entropy(p).dtype == dtype
    torch.testing.assert_close(entropy(p).to(F64), entropy(p64), rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype, ok, bad", [
    # float32/float64: tolerance 1e-4
    (torch.float32, [0.5, 0.50009], [0.5, 0.50012]),
    (F64, [0.5, 0.49991], [0.5, 0.49988]),
    # float16: 4·eps = 3.9e-3; 0.5035 rounds to 0.50342 (off 3.4e-3), 0.505 to 0.50488 (off 4.9e-3)
    (torch.float16, [0.5, 0.5035], [0.5, 0.505]),
    # bfloat16: 4·eps = 0.031; 0.52 rounds to 0.51953 (off 0.0195), 0.54 to 0.53906 (off 0.039)
    (torch.bfloat16, [0.5, 0.52], [0.5, 0.54]),
])
def test_sum_tolerance_depends_on_dtype(dtype, ok, bad):
    entropy(torch.tensor(ok, dtype=dtype))
    with pytest.raises(ValueError, match=r"^p must sum to 1 over its last dim \(shape \(2,\)\); off by up to"):
        entropy(torch.tensor(bad, dtype=dtype))


def test_sum_tolerance_grows_with_fp16_subnormal_rounding():
    # 100 000 outcomes in fp16: each may lose up to a subnormal step, so the sum may be off by ~6e-3 more
    k = 100_000
    p = torch.full((k,), 0.5 / (k - 1), dtype=F64)
    p[0] = 0.5
    off_ok, off_bad = 6e-3, 1.2e-2
    entropy((p * (1 + off_ok)).to(torch.float16))
    with pytest.raises(ValueError, match="p must sum to 1"):
        entropy((p * (1 + off_bad)).to(torch.float16))


def test_integer_probabilities_are_converted_to_float64():
    one_hot = torch.tensor([[0, 1, 0], [1, 0, 0]])
    assert entropy(one_hot).dtype == F64 and entropy(one_hot).tolist() == [0.0, 0.0]
    q = torch.tensor([0.2, 0.5, 0.3], dtype=F64)
    torch.testing.assert_close(kl_divergence(one_hot, q), torch.tensor([-math.log(0.5), -math.log(0.2)],
                                                                     dtype=F64))


def test_empty_batches_give_empty_results():
    p = torch.zeros(0, 3)
    for fn in (kl_divergence, js_divergence, cross_entropy):
        assert fn(p, p).shape == (0,)
    assert entropy(p).shape == (0,)


# ============================================================================= Gaussians

def test_gaussian_kl_matches_torch_distributions_batched_and_broadcast():
    g = torch.Generator().manual_seed(0)
    mu1, lv1 = (torch.randn(6, 4, generator=g, dtype=F64) for _ in range(2))
    mu2, lv2 = torch.randn(4, generator=g, dtype=F64) + 0.7, torch.randn(4, generator=g, dtype=F64) - 0.3
    ref = torch_kl(Normal(mu1, (0.5 * lv1).exp()), Normal(mu2, (0.5 * lv2).exp())).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu1, lv1, mu2, lv2), ref)
    rev = torch_kl(Normal(mu2, (0.5 * lv2).exp()), Normal(mu1, (0.5 * lv1).exp())).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu2, lv2, mu1, lv1), rev)
    std_normal = torch_kl(Normal(mu1, (0.5 * lv1).exp()), Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(gaussian_kl(mu1, lv1), std_normal)
    assert gaussian_kl(mu1, lv1).shape == (6,)
    torch.testing.assert_close(gaussian_kl(mu1, lv1, mu1, lv1), torch.zeros(6, dtype=F64))


def test_gaussian_kl_hand_value():
    # KL(N(1, 4) ‖ N(-1, 1)) = ½[log 1 − log 4 + (4 + 4)/1 − 1] = ½(7 − log 4)
    out = gaussian_kl(torch.tensor([1.0]), torch.tensor([math.log(4.0)]), torch.tensor([-1.0]),
                      torch.tensor([0.0]))
    assert out.item() == pytest.approx(0.5 * (7 - math.log(4.0)), rel=1e-6)
    # D = 0 sums nothing; an empty batch stays empty
    assert gaussian_kl(torch.zeros(2, 0), torch.zeros(2, 0)).tolist() == [0.0, 0.0]
    assert gaussian_kl(torch.zeros(0, 3), torch.zeros(0, 3)).shape == (0,)


def test_gaussian_log_prob_matches_normal_with_broadcasting():
    x = torch.linspace(-3, 3, 11, dtype=F64)
    torch.testing.assert_close(gaussian_log_prob(x, 0.5, math.log(4.0)), Normal(0.5, 2.0).log_prob(x))
    mu, lv = torch.tensor([-1.0, 0.3, 2.0], dtype=F64), torch.tensor([0.5, -1.0, 1.5], dtype=F64)
    out = gaussian_log_prob(x[:, None], mu, lv)
    assert out.shape == (11, 3)
    torch.testing.assert_close(out, Normal(mu, (0.5 * lv).exp()).log_prob(x[:, None]))
    # x = ±inf has zero density
    assert gaussian_log_prob(torch.tensor([INF, -INF]), 0.0, 0.0).tolist() == [-INF, -INF]


def test_gaussian_dtypes():
    x32 = torch.tensor([0.5, -1.0])
    assert gaussian_log_prob(x32, 0.0, 0.0).dtype == torch.float32  # Python numbers don't widen
    assert gaussian_log_prob(torch.tensor([1, 2]), 0.0, 0.0).dtype == F64  # ints → float64
    assert gaussian_log_prob(0.0, 0.0, 0.0).dtype == F64
    torch.testing.assert_close(gaussian_log_prob(torch.tensor([1, 2]), 1, 0),
                               Normal(1.0, 1.0).log_prob(torch.tensor([1.0, 2.0], dtype=F64)))
    h = gaussian_log_prob(torch.tensor([3.0], dtype=torch.float16), 0.0, -6.0)  # (x-μ)²/σ² = 3631 in fp32
    assert h.dtype == torch.float16
    assert h.item() == pytest.approx(-0.5 * (math.log(2 * math.pi) - 6.0 + 9 * math.exp(6.0)), rel=1e-3)
    kl16 = gaussian_kl(torch.tensor([2.0], dtype=torch.bfloat16), torch.tensor([1.0], dtype=torch.bfloat16))
    assert kl16.dtype == torch.bfloat16
    assert kl16.item() == pytest.approx(0.5 * (math.e + 4 - 1 - 1), rel=1e-2)
    assert gaussian_kl(torch.tensor([1, 0]), torch.tensor([0, 0])).item() == 0.5


def test_gaussian_mle_is_biased_variance_over_dim0_and_maximises_likelihood():
    x = torch.randn(200, generator=torch.Generator().manual_seed(1), dtype=F64) * 2 + 1
    mu, var = gaussian_mle(x)
    torch.testing.assert_close(mu, x.mean())
    torch.testing.assert_close(var, x.var(unbiased=False))
    nll = lambda m, v: -gaussian_log_prob(x, m, math.log(v)).mean()  # noqa: E731
    best = nll(mu, var.item())
    for dm, dv in [(0.05, 0.0), (-0.05, 0.0), (0.0, 0.1), (0.0, -0.1)]:
        assert nll(mu + dm, var.item() + dv) > best
    # batched samples (N, 2, 3): statistics per position over dim 0
    xb = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(2), dtype=F64) * 3 - 1
    mb, vb = gaussian_mle(xb)
    assert mb.shape == vb.shape == (2, 3)
    torch.testing.assert_close(mb, xb.mean(0))
    torch.testing.assert_close(vb, xb.var(0, unbiased=False))
    m_int, v_int = gaussian_mle(torch.tensor([1, 2, 6]))
    assert m_int.dtype == F64 and m_int.item() == 3.0 and v_int.item() == pytest.approx(14 / 3)
    m16, v16 = gaussian_mle(torch.full((4000,), 60.0, dtype=torch.float16))  # fp16 sums would overflow
    assert m16.dtype == torch.float16 and m16.item() == 60.0 and v16.item() == 0.0


# ============================================================================= mixtures (asymmetric)

W, MU, SD = [0.2, 0.5, 0.3], [-1.5, 0.4, 2.5], [0.3, 1.1, 0.6]
ASYM = Mixture1D(W, MU, SD)
REF = MixtureSameFamily(Categorical(torch.tensor(W, dtype=F64)),
                        Normal(torch.tensor(MU, dtype=F64), torch.tensor(SD, dtype=F64)))
BIMODAL = Mixture1D([0.5, 0.5], [-2.0, 2.0], [0.5, 0.5])


def test_asymmetric_mixture_matches_mixture_same_family():
    x = torch.linspace(-6, 7, 131, dtype=F64)
    torch.testing.assert_close(ASYM.log_prob(x), REF.log_prob(x))
    torch.testing.assert_close(ASYM.cdf(x), REF.cdf(x))
    assert ASYM.mean().item() == pytest.approx(REF.mean.item(), rel=1e-12)
    assert ASYM.variance().item() == pytest.approx(REF.variance.item(), rel=1e-12)
    assert ASYM.mean().item() == pytest.approx(0.65)  # nonzero, so a mean of 0 or a sign error fails
    # batched x keeps its shape
    xb = x[:120].reshape(3, 4, 10)
    assert ASYM.log_prob(xb).shape == ASYM.cdf(xb).shape == (3, 4, 10)
    torch.testing.assert_close(ASYM.cdf(xb), REF.cdf(xb))


def test_asymmetric_mixture_moments_by_numeric_integration():
    grid = torch.linspace(-10, 12, 22001, dtype=F64)
    dens = ASYM.log_prob(grid).exp()
    mass = torch.trapezoid(dens, grid)
    mean = torch.trapezoid(grid * dens, grid)
    var = torch.trapezoid((grid - mean) ** 2 * dens, grid)
    assert mass.item() == pytest.approx(1.0, abs=1e-9)
    assert ASYM.mean().item() == pytest.approx(mean.item(), abs=1e-8)
    assert ASYM.variance().item() == pytest.approx(var.item(), abs=1e-8)
    # cdf is the integral of the density
    cum = torch.cat([torch.zeros(1, dtype=F64), torch.cumulative_trapezoid(dens, grid)])
    idx = torch.arange(0, 22001, 1000)
    torch.testing.assert_close(ASYM.cdf(grid[idx]), cum[idx], atol=1e-7, rtol=0)
    assert ASYM.cdf(torch.tensor([-INF, INF])).tolist() == [0.0, 1.0]
    assert ASYM.log_prob(torch.tensor([INF])).item() == -INF


def test_asymmetric_mixture_sample_moments_and_ks():
    n = 20_000
    xs = ASYM.sample(n, torch.Generator().manual_seed(0))
    assert xs.shape == (n,) and xs.dtype == F64
    sd = math.sqrt(REF.variance.item())
    assert abs(xs.mean().item() - REF.mean.item()) < 4 * sd / math.sqrt(n)
    assert xs.var().item() == pytest.approx(REF.variance.item(), rel=0.05)
    # component frequencies: the share of samples near each well-separated mode
    assert ks_statistic(xs, ASYM.cdf) < 1.63 / math.sqrt(n)
    assert ASYM.sample(0).shape == (0,)
    a = ASYM.sample(50, torch.Generator().manual_seed(3))
    assert torch.equal(a, ASYM.sample(50, torch.Generator().manual_seed(3)))


def test_mixture_normalises_weights_and_repr():
    m = Mixture1D(torch.tensor([0.25, 0.75], dtype=torch.float16), [0.0, 1.0], [1.0, 2.0])
    assert m.weights.dtype == F64 and m.weights.sum().item() == 1.0
    assert repr(Mixture1D([0.25, 0.75], [0.0, 1.0], [1.0, 2.0])) == \
        "Mixture1D(weights=[0.25, 0.75], means=[0.0, 1.0], stds=[1.0, 2.0])"


def test_symmetric_bimodal_mixture_still_right():
    assert BIMODAL.mean().item() == pytest.approx(0.0, abs=1e-15)
    assert BIMODAL.variance().item() == pytest.approx(4.25)


# ============================================================================= sampling and KS

def test_ancestral_and_inverse_cdf_samples_follow_the_cdf():
    n = 4000
    bound = 1.63 / math.sqrt(n)  # 1 % critical value of the KS test
    anc = ASYM.sample(n, torch.Generator().manual_seed(0))
    inv = inverse_cdf_sample(ASYM.cdf, n, -10.0, 10.0, torch.Generator().manual_seed(0))
    assert anc.shape == inv.shape == (n,)
    assert ks_statistic(anc, ASYM.cdf) < bound
    assert ks_statistic(inv, ASYM.cdf) < bound
    wrong = Normal(ASYM.mean().item(), math.sqrt(ASYM.variance().item())).cdf
    assert ks_statistic(anc, wrong) > 3 * bound


def test_inverse_cdf_is_exact_for_a_known_quantile():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = inverse_cdf_sample(Normal(1.0, 2.0).cdf, 50, -30.0, 30.0, g1)
    u = torch.rand(50, generator=g2, dtype=F64)
    torch.testing.assert_close(x, Normal(1.0, 2.0).icdf(u), atol=1e-9, rtol=0)
    # fewer halvings: resolution (high − low)·2⁻ⁱᵗᵉʳˢ
    coarse = inverse_cdf_sample(Normal(1.0, 2.0).cdf, 50, -30.0, 30.0, torch.Generator().manual_seed(5),
                                iters=10)
    err = (coarse - Normal(1.0, 2.0).icdf(u)).abs().max().item()
    assert 1e-4 < err <= 60.0 / 2**10
    assert inverse_cdf_sample(Normal(1.0, 2.0).cdf, 0, -30.0, 30.0).shape == (0,)


def _scipy_ks(x, loc, scale):
    return scipy.stats.kstest(x.numpy(), scipy.stats.norm(loc, scale).cdf).statistic


@pytest.mark.parametrize("n", [2, 3, 7, 50, 999])
@pytest.mark.parametrize("shift", [-0.6, 0.0, 0.6])
def test_ks_statistic_matches_scipy_two_sided(n, shift):
    x = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=F64) + shift
    ours = ks_statistic(x, Normal(0.0, 1.0).cdf)
    assert ours == pytest.approx(_scipy_ks(x, 0.0, 1.0), abs=1e-12)
    # unsorted input, and an integer tensor
    assert ks_statistic(x.flip(0), Normal(0.0, 1.0).cdf) == pytest.approx(ours, abs=1e-15)


def test_ks_statistic_both_sides_of_the_jump():
    uniform_cdf = lambda x: ((x + 1) / 2).clamp(0, 1)  # noqa: E731
    assert ks_statistic(torch.tensor([0.0]), uniform_cdf) == pytest.approx(0.5)
    # samples all far right: F_n lags F, the sup is F − (i−1)/n at the first sample (D−)
    assert ks_statistic(torch.tensor([0.8, 0.9]), uniform_cdf) == pytest.approx(0.9)
    # samples all far left: F_n leads F, the sup is i/n − F at the last sample (D+)
    assert ks_statistic(torch.tensor([-0.9, -0.8]), uniform_cdf) == pytest.approx(0.9)
    assert ks_statistic(torch.tensor([-1, 1]), uniform_cdf) == pytest.approx(0.5)  # ints accepted


def test_kde_log_prob_normalised_and_matches_manual():
    data = torch.tensor([-1.0, 0.0, 2.5], dtype=F64)
    x = torch.tensor([[0.3, 5.0], [-2.0, 1.0]], dtype=F64)
    manual = torch.stack([Normal(d, 0.4).log_prob(x).exp() for d in data]).mean(0).log()
    out = kde_log_prob(x, data, 0.4)
    assert out.shape == (2, 2)
    torch.testing.assert_close(out, manual)
    grid = torch.linspace(-8, 8, 3201, dtype=F64)
    mass = kde_log_prob(grid, data, 0.4).exp().sum() * (grid[1] - grid[0])
    assert mass.item() == pytest.approx(1.0, abs=1e-6)
    assert kde_log_prob(0.5, torch.tensor([0.5]), 1).item() == pytest.approx(-0.5 * math.log(2 * math.pi))


# ============================================================================= grids and fits

GRID = torch.linspace(-12, 12, 2401, dtype=F64)


def test_grid_kl_approximates_closed_form():
    lp, lq = gaussian_log_prob(GRID, 0.3, math.log(0.8)), gaussian_log_prob(GRID, -0.5, math.log(2.0))
    exact = gaussian_kl(torch.tensor([0.3]), torch.tensor([math.log(0.8)]),
                        torch.tensor([-0.5]), torch.tensor([math.log(2.0)]))
    assert grid_kl(lp, lq).item() == pytest.approx(exact.item(), rel=1e-6)
    assert grid_kl(lp + 3.0, lq - 1.0).item() == pytest.approx(exact.item(), rel=1e-6)
    assert kl_divergence(discretize(lp), discretize(lq)).item() == pytest.approx(exact.item(), rel=1e-6)


def test_discretize_and_grid_kl_are_batched_over_the_last_dim():
    mus = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=F64)
    lvs = torch.tensor([0.2, -0.5, 0.0, 0.7], dtype=F64)
    lq = gaussian_log_prob(GRID, mus[:, None], lvs[:, None])  # (4, G)
    lp = gaussian_log_prob(GRID, 0.3, math.log(0.8))  # (G,)
    cells = discretize(lq)
    assert cells.shape == (4, 2401)
    torch.testing.assert_close(cells.sum(-1), torch.ones(4, dtype=F64))
    for i in range(4):
        torch.testing.assert_close(cells[i], discretize(lq[i]))
    fwd, rev = grid_kl(lp, lq), grid_kl(lq, lp)
    assert fwd.shape == rev.shape == (4,)
    exact = gaussian_kl(torch.tensor([0.3], dtype=F64).expand(4, 1), torch.full((4, 1), math.log(0.8)),
                        mus[:, None], lvs[:, None])
    exact_rev = gaussian_kl(mus[:, None], lvs[:, None], torch.tensor([0.3], dtype=F64).expand(4, 1),
                            torch.full((4, 1), math.log(0.8)))
    torch.testing.assert_close(fwd, exact, rtol=1e-6, atol=0)
    torch.testing.assert_close(rev, exact_rev, rtol=1e-6, atol=0)
    # (B, G) against (B, G), and a square (G, G) batch where dim 0 and dim -1 look alike
    torch.testing.assert_close(grid_kl(lq, lq.flip(0)), torch.stack([grid_kl(lq[i], lq[3 - i]) for i in range(4)]))
    sq = torch.randn(5, 5, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(discretize(sq), torch.softmax(sq, dim=1))
    torch.testing.assert_close(grid_kl(sq, sq.T), kl_divergence(torch.softmax(sq, 1), torch.softmax(sq.T, 1)))


def test_grid_kl_with_bounded_support():
    inside = GRID.abs() <= 1
    log_u = torch.where(inside, 0.0, -INF).to(F64)  # uniform on [-1, 1]: log density -inf outside
    lq = gaussian_log_prob(GRID, 0.2, math.log(0.5))
    m = int(inside.sum())
    q_cells = discretize(lq)[inside]
    want = (1 / m * (math.log(1 / m) - q_cells.log())).sum().item()
    kl = grid_kl(log_u, lq)
    assert math.isfinite(kl.item()) and kl.item() == pytest.approx(want, rel=1e-12)  # 0·log 0 = 0
    assert grid_kl(lq, log_u).item() == INF  # q > 0 where p = 0: KL(q‖p) = +inf
    assert grid_kl(log_u, log_u).item() == 0.0  # same support, both -inf outside
    assert discretize(log_u)[~inside].abs().sum().item() == 0.0
    # 0·log 0 also holds where q = 0 too, in a batch next to an ordinary row
    both = torch.stack([log_u, lq])
    out = grid_kl(both, log_u)
    assert out[0].item() == 0.0 and out[1].item() == INF
    # gradients stay finite: the forward fit to a bounded target matches its moments (mean 0, var 1/3)
    res = fit_gaussian(lambda x: torch.where(x.abs() <= 1, 0.0, -INF).to(F64), "forward",
                       init=(0.3, 0.0), steps=300, lr=0.05, grid=torch.linspace(-4, 4, 801, dtype=F64))
    assert abs(res.mu) < 1e-3 and res.std == pytest.approx(math.sqrt(1 / 3), rel=1e-2)
    with pytest.raises(ValueError, match=r"^the reverse KL is inf at step 0 .*for reverse KL use a target"):
        fit_gaussian(lambda x: torch.where(x.abs() <= 1, 0.0, -INF).to(F64), "reverse", steps=5)


def test_grid_and_discretize_dtypes():
    lp16 = gaussian_log_prob(GRID, 0.0, 0.0).to(torch.float16)
    cells = discretize(lp16)
    assert cells.dtype == torch.float16
    assert abs(cells.to(F64).sum().item() - 1) < 1e-2
    kl = grid_kl(lp16, gaussian_log_prob(GRID, 1.0, 0.0).to(torch.bfloat16))
    assert kl.dtype == torch.float32 and kl.item() == pytest.approx(0.5, rel=2e-2)  # promoted fp16 ⊕ bf16
    assert discretize(torch.tensor([0, 0, 0, 0])).tolist() == [0.25] * 4  # ints → float64


def test_forward_fit_is_moment_matching():
    res = fit_gaussian(ASYM.log_prob, "forward", init=(0.5, 0.0), steps=400, lr=0.05)
    assert isinstance(res, FitResult) and res.history.shape == (400,)
    assert res.mu == pytest.approx(ASYM.mean().item(), abs=2e-3)
    assert res.std == pytest.approx(math.sqrt(ASYM.variance().item()), abs=2e-3)
    assert res.history[-1] < res.history[0]


@pytest.mark.parametrize("start, mode", [(1.0, 2.0), (-1.0, -2.0)])
def test_reverse_fit_seeks_the_nearest_mode(start, mode):
    res = fit_gaussian(BIMODAL.log_prob, "reverse", init=(start, 0.0), steps=300, lr=0.05)
    assert res.mu == pytest.approx(mode, abs=1e-2)
    assert res.std == pytest.approx(0.5, abs=1e-2)
    assert res.history[-1].item() == pytest.approx(LOG2, abs=1e-3)


def test_each_fit_wins_on_its_own_objective():
    fwd = fit_gaussian(BIMODAL.log_prob, "forward", init=(0.5, 0.0), steps=300)
    rev = fit_gaussian(BIMODAL.log_prob, "reverse", init=(1.0, 0.0), steps=300)
    lp = BIMODAL.log_prob(GRID)
    lq_f = gaussian_log_prob(GRID, fwd.mu, 2 * math.log(fwd.std))
    lq_r = gaussian_log_prob(GRID, rev.mu, 2 * math.log(rev.std))
    assert grid_kl(lp, lq_f) < grid_kl(lp, lq_r)
    assert grid_kl(lq_r, lp) < grid_kl(lq_f, lp)


def test_fit_uses_init_steps_and_a_custom_grid():
    grid = torch.linspace(-6, 6, 601, dtype=F64)
    one = fit_gaussian(Normal(1.0, 1.0).log_prob, "forward", init=(-2.0, 0.5), steps=1, lr=0.1, grid=grid)
    # one Adam step moves each parameter by lr against its gradient's sign
    assert one.mu == pytest.approx(-2.0 + 0.1, abs=1e-6)  # p's mean is to the right: μ grows
    assert one.std == pytest.approx(math.exp(0.5 + 0.1), rel=1e-6)  # p is wider than q's tail: σ grows
    lq0 = gaussian_log_prob(grid, -2.0, 1.0)
    assert one.history[0].item() == pytest.approx(grid_kl(Normal(1.0, 1.0).log_prob(grid), lq0).item())
    rev = fit_gaussian(Normal(1.0, 1.0).log_prob, "reverse", init=(-2.0, 0.5), steps=1, grid=grid)
    assert rev.history[0].item() == pytest.approx(grid_kl(lq0, Normal(1.0, 1.0).log_prob(grid)).item())


# ============================================================================= bad-input sweep
# every public function: wrong types, shapes, values and dtypes give a ValueError/TypeError whose message
# starts with the argument's name (matched exactly), never a raw error from torch


OK = torch.tensor([0.5, 0.5])
CPLX = torch.tensor([0.5 + 0j, 0.5 + 0j])
BOOL = torch.tensor([True, False])


def _probs_cases(fn_name, call):
    """The bad probability inputs for an argument named ``fn_name`` reached by ``call(bad)``."""
    n = re.escape(fn_name)
    return [
        (lambda: call([0.5, 0.5]), TypeError, rf"^{n} must be a torch\.Tensor of probabilities with shape"),
        (lambda: call(CPLX), TypeError, rf"^{n} must be a real-valued \(float or int\) tensor, got dtype "
                                        r"torch\.complex64"),
        (lambda: call(BOOL), TypeError, rf"^{n} must be a real-valued .*torch\.bool"),
        (lambda: call(torch.tensor(1.0)), ValueError, rf"^{n} must have shape \(\.\.\., K\) .* got a scalar"),
        (lambda: call(torch.zeros(3, 0)), ValueError, rf"^{n} must have at least one outcome on its last dim, "
                                                      r"got shape \(3, 0\)"),
        (lambda: call(torch.tensor([NAN, 1.0])), ValueError, rf"^{n} must be finite, got NaN or inf"),
        (lambda: call(torch.tensor([INF, 0.0])), ValueError, rf"^{n} must be finite"),
        (lambda: call(torch.tensor([1.5, -0.5])), ValueError, rf"^{n} must be non-negative, got min -0\.5"),
        (lambda: call(torch.tensor([0.5, 0.6])), ValueError,
         rf"^{n} must sum to 1 over its last dim \(shape \(2,\)\); off by up to 0\.1"),
        (lambda: call(torch.tensor([[0.5, 0.5], [0.2, 0.2]])), ValueError,
         rf"^{n} must sum to 1 .*\(shape \(2, 2\)\); off by up to 0\.6"),
    ]


BAD_PROBS = (
    _probs_cases("p", entropy)
    + _probs_cases("p", lambda b: kl_divergence(b, OK))
    + _probs_cases("q", lambda b: kl_divergence(OK, b))
    + _probs_cases("p", lambda b: js_divergence(b, OK))
    + _probs_cases("q", lambda b: js_divergence(OK, b))
    + _probs_cases("p", lambda b: cross_entropy(b, OK))
    + _probs_cases("q", lambda b: cross_entropy(OK, b))
    + [c for i, c in enumerate(_probs_cases("weights", lambda b: Mixture1D(b, [0.0, 1.0], [1.0, 1.0])))
       if i in (1, 2, 5, 6, 7, 8)]  # a list is fine and shapes are checked first (cases below)
)


@pytest.mark.parametrize("call, exc, match", BAD_PROBS)
def test_bad_probability_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([entropy, kl_divergence, js_divergence, cross_entropy]),
       st.lists(st.integers(1, 4), min_size=1, max_size=3), st.data())
def test_a_bad_value_anywhere_is_named(fn, shape, data):
    """NaN, inf or a negative value at a random position of p or q is reported for that argument."""
    p = random_probs(*shape, seed=1)
    which = data.draw(st.sampled_from(["p", "q"])) if fn is not entropy else "p"
    idx = tuple(data.draw(st.integers(0, s - 1)) for s in shape)
    value, words = data.draw(st.sampled_from([(NAN, "must be finite"), (INF, "must be finite"),
                                              (-INF, "must be finite"), (-0.25, "must be non-negative")]))
    bad = p.clone()
    bad[idx] = value
    args = (bad,) if fn is entropy else ((bad, p) if which == "p" else (p, bad))
    with pytest.raises(ValueError, match=f"^{which} {words}"):
        fn(*args)


@pytest.mark.parametrize("call, exc, match", [
    # pairs
    (lambda: kl_divergence(OK, torch.tensor([0.2, 0.3, 0.5])), ValueError,
     r"^p and q must have the same number of outcomes K on the last dim, got p \(2,\) and q \(3,\)"),
    (lambda: js_divergence(random_probs(2, 3), random_probs(4, 3)), ValueError,
     r"^shapes must broadcast, got p \(2, 3\), q \(4, 3\)"),
    # gaussian_log_prob
    (lambda: gaussian_log_prob("x", 0.0, 0.0), TypeError, r"^x must be a torch\.Tensor \(or a float\), got str"),
    (lambda: gaussian_log_prob(torch.zeros(2), None, 0.0), TypeError, r"^mu must be a torch\.Tensor"),
    (lambda: gaussian_log_prob(torch.zeros(2), 0.0, True), TypeError, r"^logvar must be a torch\.Tensor"),
    (lambda: gaussian_log_prob(BOOL, 0.0, 0.0), TypeError, r"^x must be a real-valued"),
    (lambda: gaussian_log_prob(torch.zeros(2), CPLX, 0.0), TypeError, r"^mu must be a real-valued"),
    (lambda: gaussian_log_prob(torch.tensor([NAN]), 0.0, 0.0), ValueError, r"^x must not contain NaN"),
    (lambda: gaussian_log_prob(torch.zeros(2), INF, 0.0), ValueError, r"^mu must be finite"),
    (lambda: gaussian_log_prob(torch.zeros(2), 0.0, torch.tensor([0.0, NAN])), ValueError,
     r"^logvar must be finite"),
    (lambda: gaussian_log_prob(torch.zeros(2), 0.0, -INF), ValueError, r"^logvar must be finite"),
    (lambda: gaussian_log_prob(torch.zeros(2), 10**400, 0.0), ValueError, r"^mu must be finite, got an int"),
    (lambda: gaussian_log_prob(torch.zeros(3), torch.zeros(4), 0.0), ValueError,
     r"^shapes must broadcast, got x \(3,\), mu \(4,\), logvar \(\)"),
    # gaussian_kl
    (lambda: gaussian_kl(torch.zeros(3), torch.zeros(3), mu2=torch.zeros(3)), ValueError,
     r"^give both mu2 and logvar2, or neither"),
    (lambda: gaussian_kl(torch.zeros(3), torch.zeros(3), logvar2=torch.zeros(3)), ValueError, r"^give both"),
    (lambda: gaussian_kl(torch.tensor(0.0), torch.zeros(1)), ValueError, r"^mu1 must have shape \(\.\.\., D\)"),
    (lambda: gaussian_kl(torch.zeros(1), 0.0), ValueError, r"^logvar1 must have shape"),
    (lambda: gaussian_kl(torch.zeros(1), torch.zeros(1), 0.0, torch.zeros(1)), ValueError, r"^mu2 must have"),
    (lambda: gaussian_kl(torch.zeros(1), torch.zeros(1), torch.zeros(1), 0.0), ValueError,
     r"^logvar2 must have"),
    (lambda: gaussian_kl(torch.zeros(2, 3), torch.zeros(4, 3)), ValueError,
     r"^shapes must broadcast, got mu1 \(2, 3\), logvar1 \(4, 3\), mu2 \(2, 3\), logvar2 \(4, 3\)"),
    (lambda: gaussian_kl(torch.zeros(3), "zeros"), TypeError, r"^logvar1 must be a torch\.Tensor"),
    (lambda: gaussian_kl([0.0], torch.zeros(1)), TypeError, r"^mu1 must be a torch\.Tensor"),
    (lambda: gaussian_kl(torch.zeros(1), torch.zeros(1), CPLX[:1], torch.zeros(1)), TypeError,
     r"^mu2 must be a real-valued"),
    (lambda: gaussian_kl(torch.tensor([NAN]), torch.zeros(1)), ValueError, r"^mu1 must be finite"),
    (lambda: gaussian_kl(torch.zeros(1), torch.tensor([INF])), ValueError, r"^logvar1 must be finite"),
    (lambda: gaussian_kl(torch.zeros(1), torch.zeros(1), torch.tensor([-INF]), torch.zeros(1)), ValueError,
     r"^mu2 must be finite"),
    (lambda: gaussian_kl(torch.zeros(1), torch.zeros(1), torch.zeros(1), torch.tensor([NAN])), ValueError,
     r"^logvar2 must be finite"),
    # gaussian_mle
    (lambda: gaussian_mle([1.0, 2.0]), TypeError, r"^x must be a torch\.Tensor, got list"),
    (lambda: gaussian_mle(3.0), TypeError, r"^x must be a torch\.Tensor, got float"),
    (lambda: gaussian_mle(torch.zeros(0)), ValueError, r"^x must have shape \(N, \.\.\.\) with N ≥ 1 samples, "
                                                      r"got \(0,\)"),
    (lambda: gaussian_mle(torch.tensor(1.0)), ValueError, r"^x must have shape \(N, \.\.\.\)"),
    (lambda: gaussian_mle(torch.tensor([1.0, NAN])), ValueError, r"^x must be finite"),
    (lambda: gaussian_mle(torch.tensor([1.0, INF])), ValueError, r"^x must be finite"),
    (lambda: gaussian_mle(BOOL), TypeError, r"^x must be a real-valued"),
    (lambda: gaussian_mle(CPLX), TypeError, r"^x must be a real-valued"),
    # Mixture1D
    (lambda: Mixture1D("abc", [0.0], [1.0]), TypeError, r"^weights must be a sequence of numbers or a tensor "
                                                       r"of shape \(K,\), got str"),
    (lambda: Mixture1D([1.0], None, [1.0]), TypeError, r"^means must be a sequence of numbers"),
    (lambda: Mixture1D([1.0], [0.0], ["a"]), TypeError, r"^stds must be a sequence of numbers"),
    (lambda: Mixture1D([[0.5, 0.5]], [0.0, 1.0], [1.0, 1.0]), ValueError,
     r"^weights must have shape \(K,\) with K ≥ 1, got \(1, 2\)"),
    (lambda: Mixture1D([], [], []), ValueError, r"^weights must have shape \(K,\) with K ≥ 1, got \(0,\)"),
    (lambda: Mixture1D([0.5, 0.5], [0.0, 1.0, 2.0], [1.0, 1.0]), ValueError,
     r"^means must have shape \(K,\) = \(2,\) like weights, got \(3,\)"),
    (lambda: Mixture1D([0.5, 0.5], [0.0, 1.0], [1.0]), ValueError,
     r"^stds must have shape \(K,\) = \(2,\) like weights, got \(1,\)"),
    (lambda: Mixture1D([0.5, 0.5], [0.0, NAN], [1.0, 1.0]), ValueError, r"^means must be finite"),
    (lambda: Mixture1D([0.5, 0.5], [0.0, INF], [1.0, 1.0]), ValueError, r"^means must be finite"),
    (lambda: Mixture1D([0.5, 0.5], [0.0, 1.0], [1.0, INF]), ValueError, r"^stds must be finite"),
    (lambda: Mixture1D([0.5, 0.5], [0.0, 1.0], [1.0, 0.0]), ValueError, r"^stds must be positive, got \[1\.0, "
                                                                       r"0\.0\]"),
    (lambda: Mixture1D([0.5, 0.5], [0.0, 1.0], [1.0, -2.0]), ValueError, r"^stds must be positive"),
    (lambda: Mixture1D([0.5, 0.5], CPLX, [1.0, 1.0]), TypeError, r"^means must be a real-valued"),
    (lambda: BIMODAL.sample(-1), ValueError, r"^n must be a non-negative int, got -1"),
    (lambda: BIMODAL.sample(2.0), ValueError, r"^n must be a non-negative int, got 2\.0"),
    (lambda: BIMODAL.sample(True), ValueError, r"^n must be a non-negative int, got True"),
    (lambda: BIMODAL.sample(3, generator=0), TypeError, r"^generator must be a torch\.Generator or None, got int"),
    (lambda: BIMODAL.log_prob(torch.tensor([0.0, NAN])), ValueError, r"^x must not contain NaN"),
    (lambda: BIMODAL.cdf(torch.tensor([NAN])), ValueError, r"^x must not contain NaN"),
    (lambda: BIMODAL.log_prob("0"), TypeError, r"^x must be a torch\.Tensor \(or a float\), got str"),
    (lambda: BIMODAL.cdf(CPLX), TypeError, r"^x must be a real-valued"),
    # discretize
    (lambda: discretize([0.0, 1.0]), TypeError, r"^log_density must be a torch\.Tensor, got list"),
    (lambda: discretize(torch.tensor(0.0)), ValueError,
     r"^log_density must have shape \(\.\.\., G\) with G ≥ 1 grid values on the last dim, got \(\)"),
    (lambda: discretize(torch.zeros(2, 0)), ValueError, r"^log_density must have shape .* got \(2, 0\)"),
    (lambda: discretize(torch.tensor([0.0, NAN])), ValueError, r"^log_density must not contain NaN"),
    (lambda: discretize(torch.tensor([0.0, INF])), ValueError, r"^log_density must not contain \+inf"),
    (lambda: discretize(torch.tensor([[0.0, 1.0], [-INF, -INF]])), ValueError,
     r"^log_density must have a finite value in every row \(shape \(\.\.\., G\)\); a row of -inf"),
    (lambda: discretize(BOOL), TypeError, r"^log_density must be a real-valued"),
    (lambda: discretize(CPLX), TypeError, r"^log_density must be a real-valued"),
    # grid_kl
    (lambda: grid_kl(torch.zeros(5), torch.zeros(4)), ValueError,
     r"^log_p and log_q must have shape \(\.\.\., G\) with the same grid size G, got \(5,\) and \(4,\)"),
    (lambda: grid_kl(torch.zeros(2, 5), torch.zeros(3, 5)), ValueError,
     r"^shapes must broadcast, got log_p \(2, 5\), log_q \(3, 5\)"),
    (lambda: grid_kl(torch.tensor(0.0), torch.zeros(4)), ValueError, r"^log_p must have shape \(\.\.\., G\)"),
    (lambda: grid_kl(torch.zeros(4), torch.zeros(0)), ValueError, r"^log_q must have shape \(\.\.\., G\)"),
    (lambda: grid_kl(torch.tensor([0.0, NAN]), torch.zeros(2)), ValueError, r"^log_p must not contain NaN"),
    (lambda: grid_kl(torch.zeros(2), torch.tensor([INF, 0.0])), ValueError, r"^log_q must not contain \+inf"),
    (lambda: grid_kl(torch.zeros(2), torch.full((2,), -INF)), ValueError, r"^log_q must have a finite value"),
    (lambda: grid_kl("a", torch.zeros(2)), TypeError, r"^log_p must be a torch\.Tensor, got str"),
    (lambda: grid_kl(torch.zeros(2), CPLX), TypeError, r"^log_q must be a real-valued"),
    # fit_gaussian
    (lambda: fit_gaussian(BIMODAL.log_prob, "sideways"), ValueError,
     r"^direction must be 'forward' or 'reverse', got 'sideways'"),
    (lambda: fit_gaussian(BIMODAL.log_prob, torch.tensor(1)), ValueError, r"^direction must be"),
    (lambda: fit_gaussian(3.0), TypeError, r"^target_log_prob must be a callable x -> log p\(x\), got float"),
    (lambda: fit_gaussian(BIMODAL.log_prob, init=(0.0,)), ValueError, r"^init must be a pair \(mu, log_std\)"),
    (lambda: fit_gaussian(BIMODAL.log_prob, init="ab"), ValueError, r"^init must be a pair"),
    (lambda: fit_gaussian(BIMODAL.log_prob, init=("a", 0.0)), TypeError,
     r"^init\[0\] \(mu\) must be a number, got str"),
    (lambda: fit_gaussian(BIMODAL.log_prob, init=(0.0, NAN)), ValueError,
     r"^init\[1\] \(log_std\) must be finite, got nan"),
    (lambda: fit_gaussian(BIMODAL.log_prob, steps=0), ValueError, r"^steps must be a positive int, got 0"),
    (lambda: fit_gaussian(BIMODAL.log_prob, steps=2.5), ValueError, r"^steps must be a positive int"),
    (lambda: fit_gaussian(BIMODAL.log_prob, steps=True), ValueError, r"^steps must be a positive int"),
    (lambda: fit_gaussian(BIMODAL.log_prob, lr=0.0), ValueError, r"^lr must be positive, got 0\.0"),
    (lambda: fit_gaussian(BIMODAL.log_prob, lr=-1), ValueError, r"^lr must be positive"),
    (lambda: fit_gaussian(BIMODAL.log_prob, lr=NAN), ValueError, r"^lr must be finite, got nan"),
    (lambda: fit_gaussian(BIMODAL.log_prob, lr=INF), ValueError, r"^lr must be finite, got inf"),
    (lambda: fit_gaussian(BIMODAL.log_prob, lr="0.1"), TypeError, r"^lr must be a number, got str"),
    (lambda: fit_gaussian(BIMODAL.log_prob, grid=torch.tensor([0.0, 1.0, 5.0])), ValueError,
     r"^grid must be increasing and equally spaced"),
    (lambda: fit_gaussian(BIMODAL.log_prob, grid=torch.tensor([2.0, 1.0, 0.0])), ValueError,
     r"^grid must be increasing"),
    (lambda: fit_gaussian(BIMODAL.log_prob, grid=torch.tensor([0.0, 1.0])), ValueError,
     r"^grid must be a 1D tensor of at least 3 equally spaced points, got Tensor \(2,\)"),
    (lambda: fit_gaussian(BIMODAL.log_prob, grid=[0.0, 1.0, 2.0]), ValueError,
     r"^grid must be a 1D tensor .* got list \(\)"),
    (lambda: fit_gaussian(BIMODAL.log_prob, grid=torch.zeros(3, 3)), ValueError, r"^grid must be a 1D tensor"),
    (lambda: fit_gaussian(BIMODAL.log_prob, grid=torch.tensor([0.0, NAN, 2.0])), ValueError,
     r"^grid must be finite"),
    (lambda: fit_gaussian(BIMODAL.log_prob, grid=CPLX), TypeError, r"^grid must be a real-valued"),
    (lambda: fit_gaussian(lambda x: x[:3]), ValueError,
     r"^target_log_prob\(grid\) must return \(2401,\) values, got \(3,\)"),
    (lambda: fit_gaussian(lambda x: "nope"), TypeError,
     r"^target_log_prob\(grid\) must return a tensor of \(2401,\) log-density values"),
    (lambda: fit_gaussian(lambda x: x * NAN), ValueError, r"^target_log_prob\(grid\) must not contain NaN"),
    (lambda: fit_gaussian(lambda x: x * 0 + INF), ValueError, r"^target_log_prob\(grid\) must not contain \+inf"),
    (lambda: fit_gaussian(lambda x: x * 0 - INF), ValueError, r"^target_log_prob\(grid\) must have a finite"),
    (lambda: fit_gaussian(BIMODAL.log_prob, lr=1e6, steps=50), ValueError,
     r"^the forward fit diverged at step 50 \(mu=.*, log_std=.*\): lower lr"),
    # inverse_cdf_sample
    (lambda: inverse_cdf_sample(None, 3, -1.0, 1.0), TypeError, r"^cdf must be a callable x -> F\(x\), got None"),
    (lambda: inverse_cdf_sample(ASYM.cdf, -1, -10.0, 10.0), ValueError, r"^n must be a non-negative int, got -1"),
    (lambda: inverse_cdf_sample(ASYM.cdf, 1.5, -10.0, 10.0), ValueError, r"^n must be a non-negative int"),
    (lambda: inverse_cdf_sample(ASYM.cdf, 3, "a", 10.0), TypeError, r"^low must be a number, got str"),
    (lambda: inverse_cdf_sample(ASYM.cdf, 3, -10.0, None), TypeError, r"^high must be a number, got NoneType"),
    (lambda: inverse_cdf_sample(ASYM.cdf, 3, -INF, 10.0), ValueError, r"^low must be finite, got -inf"),
    (lambda: inverse_cdf_sample(ASYM.cdf, 3, -10.0, NAN), ValueError, r"^high must be finite, got nan"),
    (lambda: inverse_cdf_sample(ASYM.cdf, 3, 1.0, -1.0), ValueError, r"^need low < high, got low=1\.0, high=-1\.0"),
    (lambda: inverse_cdf_sample(ASYM.cdf, 3, 1.0, 1.0), ValueError, r"^need low < high"),
    (lambda: inverse_cdf_sample(ASYM.cdf, 3, -10.0, 10.0, iters=0), ValueError,
     r"^iters must be a positive int, got 0"),
    (lambda: inverse_cdf_sample(ASYM.cdf, 3, -10.0, 10.0, generator="g"), TypeError, r"^generator must be"),
    (lambda: inverse_cdf_sample(ASYM.cdf, 3, -1.0, 10.0), ValueError,
     r"^\[low, high\] must hold the distribution: need cdf\(low\) ≈ 0 and cdf\(high\) ≈ 1, "
     r"got cdf\(-1\) = 0\.241 and cdf\(10\) = 1$"),
    (lambda: inverse_cdf_sample(ASYM.cdf, 3, -10.0, 1.0), ValueError,
     r"^\[low, high\] must hold .* got cdf\(-10\) = 8\.11e-22 and cdf\(1\) = 0\.556$"),
    (lambda: inverse_cdf_sample(lambda x: x.sum(), 3, -1.0, 1.0), ValueError,
     r"^cdf\(x\) must return x's shape \(2,\), got \(\)"),
    (lambda: inverse_cdf_sample(lambda x: "F", 3, -1.0, 1.0), TypeError, r"^cdf\(x\) must return a tensor"),
    (lambda: inverse_cdf_sample(lambda x: x * NAN, 3, -1.0, 1.0), ValueError,
     r"^cdf\(x\) must return probabilities in \[0, 1\] \(no NaN\)"),
    (lambda: inverse_cdf_sample(lambda x: (x > 0.5) * 1.0 + (x > 0.9) * NAN, 3, -1.0, 1.0), ValueError,
     r"^cdf\(x\) must return probabilities"),
    # ks_statistic
    (lambda: ks_statistic([0.1, 0.2], ASYM.cdf), TypeError, r"^samples must be a torch\.Tensor, got list"),
    (lambda: ks_statistic(torch.zeros(2, 2), ASYM.cdf), ValueError,
     r"^samples must have shape \(n,\) with n ≥ 1, got \(2, 2\)"),
    (lambda: ks_statistic(torch.zeros(0), ASYM.cdf), ValueError, r"^samples must have shape \(n,\)"),
    (lambda: ks_statistic(torch.tensor([0.0, NAN]), ASYM.cdf), ValueError, r"^samples must not contain NaN"),
    (lambda: ks_statistic(CPLX, ASYM.cdf), TypeError, r"^samples must be a real-valued"),
    (lambda: ks_statistic(torch.zeros(2), "cdf"), TypeError, r"^cdf must be a callable"),
    (lambda: ks_statistic(torch.zeros(2), lambda x: x + 2), ValueError, r"^cdf\(x\) must return probabilities"),
    (lambda: ks_statistic(torch.zeros(2), lambda x: x - 0.5), ValueError, r"^cdf\(x\) must return probabilities"),
    # kde_log_prob
    (lambda: kde_log_prob(torch.zeros(2), torch.zeros(2, 2), 1.0), ValueError,
     r"^data must have shape \(N,\) with N ≥ 1, got \(2, 2\)"),
    (lambda: kde_log_prob(torch.zeros(2), torch.zeros(0), 1.0), ValueError, r"^data must have shape \(N,\)"),
    (lambda: kde_log_prob(torch.zeros(2), [0.0, 1.0], 1.0), TypeError, r"^data must be a torch\.Tensor, got list"),
    (lambda: kde_log_prob(torch.zeros(2), torch.tensor([NAN]), 1.0), ValueError, r"^data must be finite"),
    (lambda: kde_log_prob(torch.tensor([NAN]), torch.zeros(2), 1.0), ValueError, r"^x must not contain NaN"),
    (lambda: kde_log_prob(torch.zeros(2), torch.zeros(2), 0.0), ValueError, r"^bandwidth must be positive, got 0\.0"),
    (lambda: kde_log_prob(torch.zeros(2), torch.zeros(2), -1), ValueError, r"^bandwidth must be positive"),
    (lambda: kde_log_prob(torch.zeros(2), torch.zeros(2), INF), ValueError, r"^bandwidth must be finite"),
    (lambda: kde_log_prob(torch.zeros(2), torch.zeros(2), "1"), TypeError, r"^bandwidth must be a number, got str"),
    (lambda: kde_log_prob(torch.zeros(2), torch.zeros(2), True), TypeError, r"^bandwidth must be a number"),
    (lambda: kde_log_prob(torch.zeros(2), BOOL, 1.0), TypeError, r"^data must be a real-valued"),
])
def test_bad_inputs_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_valid_edge_inputs_give_correct_answers():
    """Edge inputs that are valid get the right answer, not an error."""
    # x = ±inf on a mixture; an empty x; a single sample for the MLE (variance 0)
    assert ASYM.log_prob(torch.zeros(0)).shape == (0,)
    mu, var = gaussian_mle(torch.tensor([[2.0, -1.0]]))
    assert mu.tolist() == [2.0, -1.0] and var.tolist() == [0.0, 0.0]
    # a KDE at ±inf has zero density; an int bandwidth is a number
    assert kde_log_prob(torch.tensor([INF, -INF]), torch.zeros(3), 2).tolist() == [-INF, -INF]
    # a single-outcome distribution
    one = torch.ones(1)
    assert kl_divergence(one, one).item() == 0.0 and entropy(one).item() == 0.0
    # ks_statistic with samples at ±inf: F = 0 and 1 there
    assert ks_statistic(torch.tensor([-INF, INF]), ASYM.cdf) == pytest.approx(0.5)


# ============================================================================= mutation-killing details

def test_half_precision_intermediates_are_computed_in_float32():
    # (x - μ)² = 90 000 overflows fp16 (max 65 504) although the log-density itself fits
    lp = gaussian_log_prob(torch.tensor([300.0], dtype=torch.float16), 0.0, 4.0)
    assert lp.dtype == torch.float16
    assert lp.item() == pytest.approx(-0.5 * (math.log(2 * math.pi) + 4 + 90000 * math.exp(-4)), rel=1e-3)
    h = torch.float16
    kl = gaussian_kl(torch.tensor([300.0], dtype=h), torch.tensor([0.0], dtype=h), torch.tensor([0.0], dtype=h),
                     torch.tensor([4.0], dtype=h))
    assert kl.item() == pytest.approx(0.5 * (4 + 90001 * math.exp(-4) - 1), rel=1e-3)


def test_mixture_sample_is_ancestral_with_float64_noise():
    g = torch.Generator().manual_seed(4)
    k = torch.multinomial(ASYM.weights, 30, replacement=True, generator=g)
    eps = torch.randn(30, generator=g, dtype=F64)
    want = torch.tensor(MU, dtype=F64)[k] + torch.tensor(SD, dtype=F64)[k] * eps
    torch.testing.assert_close(ASYM.sample(30, torch.Generator().manual_seed(4)), want, rtol=0, atol=1e-15)


def test_mixture_renormalises_low_precision_weights():
    w = torch.tensor([0.2505, 0.752], dtype=torch.float16)  # sums to ≈ 1.0025: within fp16 tolerance
    m = Mixture1D(w, [0.0, 1.0], [1.0, 2.0])
    assert m.weights.sum().item() == pytest.approx(1.0, abs=1e-15)


def test_grid_spacing_tolerance():
    fit_gaussian(BIMODAL.log_prob, steps=1, grid=torch.tensor([0.0, 0.1, 0.2 + 5e-6, 0.3], dtype=F64))  # rtol 1e-4
    for bad in ([0.0, 1.0, 2.5], [0.0, 0.0, 0.0]):
        with pytest.raises(ValueError, match=r"^grid must be increasing and equally spaced"):
            fit_gaussian(BIMODAL.log_prob, steps=1, grid=torch.tensor(bad, dtype=F64))


def test_fit_defaults_and_the_divergence_paths():
    target = Normal(0.0, 5.0).log_prob  # wide: the default grid [-12, 12] cuts ≈ 1.6 % of its mass
    res = fit_gaussian(target, steps=1)
    assert res.history.dtype == F64 and res.history.shape == (1,)
    grid = torch.linspace(-12.0, 12.0, 2401, dtype=F64)
    want = grid_kl(target(grid), gaussian_log_prob(grid, 0.0, 0.0)).item()
    assert res.history[0].item() == pytest.approx(want, rel=1e-12)
    assert math.log(res.std) == pytest.approx(0.05, rel=1e-6)  # default lr: one Adam step of 0.05
    assert fit_gaussian(target, steps=3, lr=0.01).history.shape == (3,)
    assert fit_gaussian(target, lr=0.01).history.shape == (500,)  # default steps
    with pytest.raises(ValueError, match=r"^the forward fit diverged at step 0 \(mu=0, log_std=-400\): lower lr"):
        fit_gaussian(BIMODAL.log_prob, init=(0.0, -400.0), steps=3)


def test_inverse_cdf_iteration_count():
    x = inverse_cdf_sample(Normal(0.0, 1.0).cdf, 200, -8.0, 8.0, torch.Generator().manual_seed(0), iters=1)
    assert set(x.tolist()) == {-4.0, 4.0}  # one halving: the midpoint of the half that holds u
    with pytest.raises(ValueError, match=r"^iters must be a positive int, got 2\.5"):
        inverse_cdf_sample(Normal(0.0, 1.0).cdf, 2, -8.0, 8.0, iters=2.5)
    with pytest.raises(TypeError, match=r"^cdf must be a callable x -> F\(x\), got int$"):
        inverse_cdf_sample(3, 2, -8.0, 8.0)
    with pytest.raises(TypeError, match=r"^cdf must be a callable x -> F\(x\), got str$"):
        ks_statistic(torch.zeros(2), "cdf")
    with pytest.raises(TypeError, match=r"^x must be a torch\.Tensor \(or a float\), got str"):
        kde_log_prob("a", torch.zeros(2), 1.0)


def test_ks_statistic_evaluates_the_cdf_in_float64():
    x = torch.randn(40, generator=torch.Generator().manual_seed(9))  # float32 samples
    want = scipy.stats.kstest(x.double().numpy(), scipy.stats.norm(0.2, 1.3).cdf).statistic
    cdf = lambda t: 0.5 * torch.erfc(-(t - 0.2) / (1.3 * math.sqrt(2)))  # noqa: E731  (float64 in, float64 out)
    assert ks_statistic(x, cdf) == pytest.approx(want, abs=1e-12)
