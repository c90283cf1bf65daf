"""Lesson 05 self-checks: a catalogue of planted mistakes per exercise, each rejected with its own hint, and of
correct answers written differently (torch.distributions, NumPy/SciPy, a loop, autograd), each accepted.

To extend: add a row to the exercise's WRONG table (the answer, a regex of words that only its hint
contains, and its class) or RIGHT table.
"""

import math

import numpy as np
import pytest
import torch
from catalogue import assert_rejected, case_snapshot_test, catalogue_tests
from scipy import stats

import aigc_course.checks.vae_theory as checks_vae_theory
from aigc_course.checks import CheckFailed
from aigc_course.checks.vae_theory import (
    MC_KL_CHECK,
    PPCA_LOG_MARGINAL_CHECK,
    SCORE_FUNCTION_GRADIENT_CHECK,
    check_mc_kl,
    check_ppca_log_marginal,
    check_score_function_gradient,
)
from aigc_course.divergences import gaussian_kl

LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------------- 5.1 pPCA log-marginal

def _cov(W, sigma2):
    return W @ W.T + sigma2 * torch.eye(W.shape[0], dtype=W.dtype)


def pm_cholesky(x, W, b, sigma2):
    L = torch.linalg.cholesky(_cov(W, sigma2))
    r = torch.cholesky_solve((x - b).T, L)                      # C⁻¹ (x − b)ᵀ
    quad = ((x - b).T * r).sum(0)
    return -0.5 * (x.shape[-1] * LOG_2PI + 2 * L.diagonal().log().sum() + quad)


def pm_slogdet(x, W, b, sigma2):
    C = _cov(W, sigma2)
    quad = ((x - b) * torch.linalg.solve(C, (x - b).T).T).sum(-1)
    return -0.5 * (x.shape[-1] * LOG_2PI + torch.linalg.slogdet(C).logabsdet + quad)


def pm_scipy(x, W, b, sigma2):
    C = _cov(W, sigma2).double().numpy()
    xs, bs = x.double().numpy(), b.double().numpy()
    return torch.as_tensor(np.atleast_1d(stats.multivariate_normal(bs, C).logpdf(xs)), dtype=x.dtype)


def pm_woodbury(x, W, b, sigma2):
    """Matrix determinant lemma and Woodbury identity: only a d×d matrix is factorised."""
    D, d = W.shape
    r = x - b
    M = torch.eye(d, dtype=x.dtype) + W.T @ W / sigma2
    L = torch.linalg.cholesky(M)
    log_det = D * math.log(sigma2) + 2 * L.diagonal().log().sum()
    u = torch.cholesky_solve((r @ W).T / sigma2, L)              # M⁻¹ Wᵀ r / σ²
    quad = (r * r).sum(-1) / sigma2 - ((r @ W).T / sigma2 * u).sum(0)
    return -0.5 * (D * LOG_2PI + log_det + quad)


def pm_naive(x, W, b, sigma2):
    C = _cov(W, sigma2)
    r = x - b
    return -0.5 * (x.shape[-1] * LOG_2PI + torch.log(torch.det(C)) + ((r @ torch.linalg.inv(C)) * r).sum(-1))


def pm_eigen_product(x, W, b, sigma2):
    C = _cov(W, sigma2)
    r = x - b
    log_det = torch.log(torch.linalg.eigvalsh(C).prod())
    return -0.5 * (x.shape[-1] * LOG_2PI + log_det + (r * torch.linalg.solve(C, r.T).T).sum(-1))


def pm_in_place(x, W, b, sigma2):
    x -= b
    return pm_cholesky(x, W, torch.zeros_like(b), sigma2)


def pm_squeezed(x, W, b, sigma2):
    return pm_cholesky(x, W, b, sigma2).squeeze()


PM_RIGHT = [
    pytest.param(checks_vae_theory._ppca_log_marginal, id="reference"),
    pytest.param(pm_cholesky, id="cholesky_solve"),
    pytest.param(pm_slogdet, id="slogdet + solve"),
    pytest.param(lambda x, W, b, s2: torch.distributions.MultivariateNormal(b, _cov(W, s2)).log_prob(x),
                 id="MultivariateNormal"),
    pytest.param(lambda x, W, b, s2: torch.distributions.LowRankMultivariateNormal(
        b, W, s2 * torch.ones_like(b)).log_prob(x), id="LowRankMultivariateNormal"),
    pytest.param(pm_scipy, id="scipy multivariate_normal"),
    pytest.param(pm_woodbury, id="Woodbury and the determinant lemma"),
    pytest.param(lambda x, W, b, s2: pm_cholesky(x.double(), W.double(), b.double(), s2), id="float64 throughout"),
]
PM_WRONG = [
    pytest.param(pm_in_place, r"modified its argument `x` in place", "in-place", id="x -= b"),
    pytest.param(lambda x, W, b, s2: pm_cholesky(x, W, b, s2).numpy(), r"you returned a NumPy array", "type",
                 id="numpy"),
    pytest.param(lambda x, W, b, s2: pm_cholesky(x, W, b, s2).tolist(), r"you returned a list", "type", id="list"),
    pytest.param(pm_naive, r"torch\.log\(torch\.det\(C\)\) is numerically unstable", "unstable", id="log det"),
    pytest.param(pm_eigen_product, r"torch\.log\(torch\.det\(C\)\) is numerically unstable", "unstable",
                 id="log of the product of the eigenvalues"),
    pytest.param(pm_squeezed, r"do not \.squeeze\(\)", "edge", id=".squeeze() for B = 1"),
    pytest.param(lambda x, W, b, s2: pm_cholesky(x, W, b, s2).sum(), r"summed \(or averaged\) over the batch",
                 "formula", id="sum over the batch"),
    pytest.param(lambda x, W, b, s2: pm_naive(x, W.T, b, s2) if W.shape[0] == W.shape[1] else pm_cholesky(x, W, b, s2),
                 r"you used WᵀW \(d×d\)", "formula", id="WᵀW"),
    pytest.param(lambda x, W, b, s2: torch.distributions.MultivariateNormal(b, W @ W.T).log_prob(x),
                 r"lacks the noise term σ²I", "formula", id="no σ²I"),
    pytest.param(lambda x, W, b, s2: pm_cholesky(x, W, b, s2**2), r"you squared it", "formula", id="σ⁴"),
    pytest.param(lambda x, W, b, s2: pm_cholesky(x, W, b, math.sqrt(s2)), r"you took its square root", "formula",
                 id="σ"),
    pytest.param(lambda x, W, b, s2: torch.distributions.Normal(b, math.sqrt(s2)).log_prob(x).sum(-1),
                 r"evaluated the likelihood at z = 0", "formula", id="p(x | z = 0)"),
    pytest.param(lambda x, W, b, s2: pm_cholesky(x, W, b, s2) + 0.5 * x.shape[-1] * LOG_2PI,
                 r"normalising constant −\(D/2\)", "formula", id="no log 2π"),
    pytest.param(lambda x, W, b, s2: pm_cholesky(x + b, W, b, s2), r"you forgot the mean b", "formula", id="no b"),
    pytest.param(lambda x, W, b, s2: 2 * pm_cholesky(x, W, b, s2), r"missing the factor −½", "formula",
                 id="no ½"),
    pytest.param(lambda x, W, b, s2: pm_cholesky(x, W, b, s2).exp(), r"returned the density p\(x\)", "formula",
                 id="density"),
]


@pytest.mark.parametrize("fn", PM_RIGHT)
def test_ppca_log_marginal_accepts(fn, capsys):
    check_ppca_log_marginal(fn)
    assert "✓ Exercise 5.1" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", PM_WRONG)
def test_ppca_log_marginal_rejects(fn, hint, kind):
    assert_rejected(PPCA_LOG_MARGINAL_CHECK, fn, hint)


# ----------------------------------------------------------------------------- 5.2 score-function gradient

def sf_autograd(f_values, z, mu, logvar):
    """The surrogate f(z)·log q(z) with z held fixed, differentiated by autograd."""
    mu = mu.detach().clone().requires_grad_(True)
    log_q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z).sum(-1)
    (grad,) = torch.autograd.grad((f_values * log_q).mean(), mu)
    return grad


def sf_loop(f_values, z, mu, logvar):
    out = torch.zeros_like(mu)
    for f_s, z_s in zip(f_values, z, strict=True):
        out = out + f_s * (z_s - mu) / logvar.exp()
    return out / len(f_values)


def sf_in_place(f_values, z, mu, logvar):
    z -= mu
    return (f_values[:, None] * z / logvar.exp()).mean(0)


SF_RIGHT = [
    pytest.param(checks_vae_theory._score_function_gradient, id="reference"),
    pytest.param(sf_autograd, id="autograd through Normal.log_prob"),
    pytest.param(sf_loop, id="loop over the samples"),
    pytest.param(lambda f, z, mu, lv: torch.einsum("s,sd->d", f, (z - mu) / lv.exp()) / len(f), id="einsum"),
    pytest.param(lambda f, z, mu, lv: torch.from_numpy(
        (f.double().numpy()[:, None] * (z - mu).double().numpy() * np.exp(-lv.double().numpy())).mean(0)),
        id="numpy float64"),
]
SF_WRONG = [
    pytest.param(sf_in_place, r"modified its argument `z` in place", "in-place", id="z -= mu"),
    pytest.param(lambda f, z, mu, lv: sf_loop(f, z, mu, lv).numpy(), r"you returned a NumPy array", "type",
                 id="numpy"),
    pytest.param(lambda f, z, mu, lv: sf_loop(f, z, mu, lv).half(), r"expected .* got torch.float16", "type",
                 id="half"),
    pytest.param(checks_vae_theory._sf_via_density, r"product of 64 one-dimensional densities underflows to 0 in "
                 r"float32, so log q", "unstable", id="autograd through log of the product"),
    pytest.param(lambda f, z, mu, lv: (f * (z - mu) / lv.exp()).mean(0), r"broadcast along the dimensions",
                 "edge", id="f without [:, None]"),
    pytest.param(lambda f, z, mu, lv: f[:, None] * (z - mu) / lv.exp(), r"returned the S per-sample estimates",
                 "formula", id="no mean"),
    pytest.param(lambda f, z, mu, lv: (f[:, None] * (z - mu)).mean(0), r"forgot to divide by σ²", "formula",
                 id="no 1/σ²"),
    pytest.param(lambda f, z, mu, lv: (f[:, None] * (z - mu) / (0.5 * lv).exp()).mean(0),
                 r"divided by σ instead of σ²", "formula", id="1/σ"),
    pytest.param(lambda f, z, mu, lv: (f[:, None] * (z - mu) * lv.exp()).mean(0), r"multiplied by σ²", "formula",
                 id="times σ²"),
    pytest.param(lambda f, z, mu, lv: (f[:, None] * (z - mu) / lv).mean(0), r"logvar is log σ², not σ²",
                 "formula", id="logvar as variance"),
    pytest.param(lambda f, z, mu, lv: (f[:, None] * (mu - z) / lv.exp()).mean(0), r"wrong sign", "formula",
                 id="μ − z"),
    pytest.param(lambda f, z, mu, lv: (f[:, None] * (z - mu) / lv.exp()).sum(0), r"summed over the samples; the "
                 r"expectation", "formula", id="sum"),
]


@pytest.mark.parametrize("fn", SF_RIGHT)
def test_score_function_gradient_accepts(fn, capsys):
    check_score_function_gradient(fn)
    assert "✓ Exercise 5.2" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", SF_WRONG)
def test_score_function_gradient_rejects(fn, hint, kind):
    assert_rejected(SCORE_FUNCTION_GRADIENT_CHECK, fn, hint)


# ----------------------------------------------------------------------------- 5.3 Monte Carlo KL

def kl_distributions(z, mu, logvar):
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    return (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)


def kl_no_constants(z, mu, logvar):
    """log 2π appears in both log-densities and cancels: leave it out of both."""
    return 0.5 * (z**2 - (z - mu) ** 2 * torch.exp(-logvar) - logvar).sum(-1).mean(0)


def kl_scipy(z, mu, logvar):
    zs, ms, ss = z.double().numpy(), mu.double().numpy(), np.exp(0.5 * logvar.double().numpy())
    ratio = stats.norm.logpdf(zs, ms, ss) - stats.norm.logpdf(zs)
    return torch.as_tensor(ratio.sum(-1).mean(0), dtype=z.dtype)


def kl_in_place(z, mu, logvar):
    z -= mu
    return 0.5 * ((z + mu) ** 2 - z**2 * torch.exp(-logvar) - logvar).sum(-1).mean(0)


def kl_log2pi_in_q_only(z, mu, logvar):
    log_q = -0.5 * ((z - mu) ** 2 * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)
    log_p = -0.5 * (z**2).sum(-1)
    return (log_q - log_p).mean(0)


KL_RIGHT = [
    pytest.param(checks_vae_theory._mc_kl, id="reference"),
    pytest.param(kl_distributions, id="torch.distributions.Normal"),
    pytest.param(kl_no_constants, id="log 2π left out of both"),
    pytest.param(kl_scipy, id="scipy norm.logpdf"),
    pytest.param(lambda z, mu, lv: torch.stack([kl_no_constants(z[s:s + 1], mu, lv) for s in range(len(z))]).mean(0),
                 id="loop over the samples"),
]
KL_WRONG = [
    pytest.param(kl_in_place, r"modified its argument `z` in place", "in-place", id="z -= mu"),
    pytest.param(lambda z, mu, lv: kl_no_constants(z, mu, lv).tolist(), r"you returned a list", "type", id="list"),
    pytest.param(lambda z, mu, lv: kl_no_constants(z, mu, lv).numpy(), r"you returned a NumPy array", "type",
                 id="numpy"),
    pytest.param(checks_vae_theory._mc_kl_via_density, r"log 0 − log 0 = NaN", "unstable",
                 id="log of the product of densities"),
    pytest.param(lambda z, mu, lv: kl_no_constants(z, mu, lv).clamp_min(0.0), r"you clamped the estimate at 0",
                 "edge", id="clamped at 0"),
    pytest.param(lambda z, mu, lv: 0.5 * (z**2 - (z - mu) ** 2 * torch.exp(-lv) - lv).sum(-1).mean(1),
                 r"averaged over the points \(dim 1\)", "edge", id="mean over dim 1"),
    pytest.param(lambda z, mu, lv: gaussian_kl(mu, lv), r"returned the closed-form KL", "formula",
                 id="closed form"),
    pytest.param(lambda z, mu, lv: -kl_no_constants(z, mu, lv), r"that is log p\(z\) − log q\(z\)", "formula",
                 id="reversed"),
    pytest.param(lambda z, mu, lv: kl_no_constants(z, mu, 2 * lv), r"logvar is log σ², not log σ", "formula",
                 id="logvar as log σ"),
    pytest.param(lambda z, mu, lv: 0.5 * (z**2 - (z - mu) ** 2 * torch.exp(-lv)).sum(-1).mean(0),
                 r"lacks its normaliser", "formula", id="no log σ² term"),
    pytest.param(kl_log2pi_in_q_only, r"you kept it in only one", "formula", id="log 2π in q only"),
    pytest.param(lambda z, mu, lv: 0.5 * (z**2 - (z - mu) ** 2 * torch.exp(-lv) - lv).sum(-1).sum(0),
                 r"summed over the samples; the Monte Carlo", "formula", id="sum over samples"),
    pytest.param(lambda z, mu, lv: 0.5 * (z**2 - (z - mu) ** 2 * torch.exp(-lv) - lv).mean(-1).mean(0),
                 r"averaged over the latent dimensions", "formula", id="mean over dims"),
]


@pytest.mark.parametrize("fn", KL_RIGHT)
def test_mc_kl_accepts(fn, capsys):
    check_mc_kl(fn)
    assert "✓ Exercise 5.3" in capsys.readouterr().out


@pytest.mark.parametrize("fn, hint, kind", KL_WRONG)
def test_mc_kl_rejects(fn, hint, kind):
    assert_rejected(MC_KL_CHECK, fn, hint)


# ----------------------------------------------------------------------------- every catalogue

CATALOGUES = {
    "5.1": (check_ppca_log_marginal, PPCA_LOG_MARGINAL_CHECK, PM_WRONG, PM_RIGHT),
    "5.2": (check_score_function_gradient, SCORE_FUNCTION_GRADIENT_CHECK, SF_WRONG, SF_RIGHT),
    "5.3": (check_mc_kl, MC_KL_CHECK, KL_WRONG, KL_RIGHT),
}
SYMPTOM_STUDENTS = {"you kept it in only one": kl_log2pi_in_q_only}


(test_catalogue_is_complete, test_hint_words_are_not_in_labels_or_generic_messages,
 test_every_mistake_hint_is_reachable, test_not_implemented_gives_the_not_implemented_message) = \
    catalogue_tests(CATALOGUES, SYMPTOM_STUDENTS)


def test_checks_module_exports_three_checks():
    assert checks_vae_theory.__all__ == ["check_ppca_log_marginal", "check_score_function_gradient", "check_mc_kl"]
    with pytest.raises(TypeError, match="pass your function itself"):
        check_mc_kl("not a function")


# ----------------------------------------------------------------------------- the references, by hand

def test_reference_ppca_log_marginal_by_hand():
    """D = 1: log N(x; b, w² + σ²) written out; and D = 2 with W = 0: two independent N(b_i, σ²)."""
    x = torch.tensor([[1.0], [-0.5]], dtype=torch.float64)
    got = checks_vae_theory._ppca_log_marginal(x, torch.tensor([[2.0]], dtype=torch.float64),
                                               torch.tensor([0.5], dtype=torch.float64), 0.25)
    var = 4.0 + 0.25
    want = [-0.5 * (math.log(2 * math.pi * var) + (v - 0.5) ** 2 / var) for v in (1.0, -0.5)]
    assert got.tolist() == pytest.approx(want, abs=1e-14)
    x2 = torch.tensor([[0.3, -1.0]], dtype=torch.float64)
    got2 = checks_vae_theory._ppca_log_marginal(x2, torch.zeros(2, 3, dtype=torch.float64),
                                                torch.tensor([0.0, 1.0], dtype=torch.float64), 2.0)
    want2 = sum(-0.5 * (math.log(2 * math.pi * 2.0) + r**2 / 2.0) for r in (0.3, -2.0))
    assert got2.item() == pytest.approx(want2, abs=1e-14)
    assert got.dtype == torch.float64 and got.shape == (2,)


def test_reference_score_function_gradient_by_hand():
    f = torch.tensor([2.0, -1.0], dtype=torch.float64)
    z = torch.tensor([[1.0, 0.0], [3.0, 2.0]], dtype=torch.float64)
    mu = torch.tensor([1.0, 1.0], dtype=torch.float64)
    logvar = torch.tensor([0.0, math.log(4.0)], dtype=torch.float64)
    # sample 1: 2·(0, −1/4) = (0, −0.5); sample 2: −1·(2, 1/4) = (−2, −0.25); mean (−1, −0.375)
    got = checks_vae_theory._score_function_gradient(f, z, mu, logvar)
    assert got.tolist() == pytest.approx([-1.0, -0.375], abs=1e-15)


def test_reference_mc_kl_by_hand_and_converges_to_the_closed_form():
    z = torch.tensor([[[0.0]], [[2.0]]], dtype=torch.float64)      # S = 2, B = 1, D = 1
    mu, logvar = torch.tensor([[1.0]], dtype=torch.float64), torch.tensor([[0.0]], dtype=torch.float64)
    # log q − log p = −½(z − 1)² + ½z²: −0.5 at z = 0, 1.5 at z = 2; mean 0.5
    assert checks_vae_theory._mc_kl(z, mu, logvar).item() == pytest.approx(0.5, abs=1e-15)
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([[0.5, -1.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.3, -0.7, 1.0]], dtype=torch.float64)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200_000, 1, 3, generator=g, dtype=torch.float64)
    est = checks_vae_theory._mc_kl(z, mu, logvar).item()
    assert est == pytest.approx(gaussian_kl(mu, logvar).item(), abs=0.01)


def test_the_unstable_cases_break_the_naive_formulas():
    """The extreme cases really do overflow/underflow the textbook formulas (else the hints would be idle)."""
    by_label = {c.label: c for c in PPCA_LOG_MARGINAL_CHECK.case_list()}
    small = by_label["x of 200 dimensions with σ² = 0.01 (float64)"]
    large = by_label["x of 200 dimensions with σ² = 100 (float64)"]
    assert torch.isinf(pm_naive(*small.args)).all() and torch.isinf(pm_naive(*large.args)).all()
    assert torch.isfinite(checks_vae_theory._ppca_log_marginal(*small.args)).all()
    sf = SCORE_FUNCTION_GRADIENT_CHECK.case_list()[4]
    assert sf.args[1].shape[-1] == 64 and checks_vae_theory._sf_via_density(*sf.args).isnan().any()
    kl = MC_KL_CHECK.case_list()[5]
    assert kl.args[0].shape[-1] == 64 and checks_vae_theory._mc_kl_via_density(*kl.args).isnan().all()


def test_one_sample_case_has_negative_estimates():
    case = MC_KL_CHECK.case_list()[3]
    est = checks_vae_theory._mc_kl(*case.args)
    assert case.args[0].shape[0] == 1 and (est < 0).sum() == 2 and (est > 0).sum() == 1


@pytest.mark.parametrize("shift, expected", [(1, True), (-1, True), (0, False), (2, False)])
def test_log2pi_once_symptom(shift, expected):
    z, mu, lv = (torch.zeros(2, 3, 4, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64),
                 torch.zeros(3, 4, dtype=torch.float64))
    want = np.array([0.5, 1.0, 2.0])
    mine = want + shift * 0.5 * 4 * LOG_2PI
    assert checks_vae_theory._log2pi_once((mine,), (want,), z, mu, lv) is expected


def test_the_lessons_corrections_are_named_by_the_checks():
    """The article's "evaluate the likelihood, not the marginal" and the unstable det get their own hints."""
    with pytest.raises(CheckFailed, match=r"evaluated the likelihood at z = 0"):
        check_ppca_log_marginal(lambda x, W, b, s2: torch.distributions.Normal(b, math.sqrt(s2)).log_prob(x).sum(-1))
    with pytest.raises(CheckFailed, match=r"torch\.log\(torch\.det\(C\)\) is numerically unstable"):
        check_ppca_log_marginal(pm_naive)


# Generated from the catalogue (see test_the_cases_are_the_ones_students_see); one entry per check.
CASE_SNAPSHOT = {'MC_KL_CHECK': [('3 samples of 3 points in 2 dimensions',
                  '',
                  (),
                  (((3, 3, 2),
                    'torch.float64',
                    0,
                    0,
                    0,
                    0,
                    -12.29086407120518,
                    -130.39386250660976,
                    57.02765207883723,
                    48.63513321123487),
                   ((3, 2),
                    'torch.float64',
                    0,
                    0,
                    0,
                    0,
                    -2.8459086401056903,
                    -17.122688824724214,
                    10.66326460796062,
                    9.31339860998925),
                   ((3, 2),
                    'torch.float64',
                    0,
                    0,
                    0,
                    0,
                    -1.9420820267535353,
                    -6.794141692832424,
                    1.1344128176606374,
                    0.5057990512207842))),
                 ('q equal to the prior N(0, I): 5 samples, 2 points',
                  "here q = p, so every sample's log q(z) − log p(z) is exactly 0, and so is the estimate.",
                  (),
                  (((5, 2, 3),
                    'torch.float64',
                    0,
                    0,
                    0,
                    0,
                    3.5923052852904798,
                    161.58190259159363,
                    29.74462363572958,
                    29.314468393638716),
                   ((2, 3), 'torch.float64', 0, 0, 0, 6, 0.0, 0.0, 0.0, 0.0),
                   ((2, 3), 'torch.float64', 0, 0, 0, 6, 0.0, 0.0, 0.0, 0.0))),
                 ('4 samples, 2 points, 3 dimensions',
                  '',
                  (),
                  (((4, 2, 3),
                    'torch.float64',
                    0,
                    0,
                    0,
                    0,
                    -8.368076840563154,
                    -96.2539711969855,
                    30.030983253478,
                    27.11328700307928),
                   ((2, 3),
                    'torch.float64',
                    0,
                    0,
                    0,
                    0,
                    -0.944568760140911,
                    -4.410529139430345,
                    3.249953986915844,
                    3.1012522964768214),
                   ((2, 3),
                    'torch.float64',
                    0,
                    0,
                    0,
                    0,
                    -1.3850236530498545,
                    -2.8196972708396677,
                    1.7805201181470023,
                    1.4608050315624086))),
                 ('one sample per point (S = 1), 3 points in 2 dimensions',
                  "a single sample's log q(z) − log p(z) can be negative although the KL is not; the estimate is "
                  'the plain average, do not clamp it at 0.',
                  (),
                  (((1, 3, 2), 'torch.float64', 0, 0, 0, 0, 1.0, 9.3, 6.58, 6.413333333333334),
                   ((3, 2), 'torch.float64', 0, 0, 0, 1, 2.2, 11.6, 2.1399999999999997, 1.3333333333333335),
                   ((3, 2), 'torch.float64', 0, 0, 0, 2, -1.0, -5.6, 0.52, 0.3533333333333334))),
                 ('float32: 50 samples, 4 points, 8 dimensions',
                  '',
                  (),
                  (((50, 4, 8),
                    'torch.float32',
                    0,
                    0,
                    0,
                    0,
                    17.83569035201799,
                    15921.753670459497,
                    2909.9687194139747,
                    2909.7698995075166),
                   ((4, 8),
                    'torch.float32',
                    0,
                    0,
                    0,
                    0,
                    0.27385978028178215,
                    35.84666956216097,
                    29.47777063413444,
                    29.475426909782698),
                   ((4, 8),
                    'torch.float32',
                    0,
                    0,
                    0,
                    0,
                    -14.951753612607718,
                    -277.557611130178,
                    30.910769959121204,
                    23.924678206242206))),
                 ('float32: 8 samples, 2 points, a 64-dimensional latent',
                  '',
                  (),
                  (((8, 2, 64),
                    'torch.float32',
                    0,
                    0,
                    0,
                    0,
                    127.03887176001444,
                    28705.01134249335,
                    6337.532635112988,
                    6321.772015056292),
                   ((2, 64),
                    'torch.float32',
                    0,
                    0,
                    0,
                    0,
                    -0.1669449652545154,
                    -367.5686516580172,
                    106.15787451538256,
                    106.15765677615268),
                   ((2, 64),
                    'torch.float32',
                    0,
                    0,
                    0,
                    0,
                    190.30508601665497,
                    12926.516667068005,
                    322.5489398983017,
                    39.61123861856386))),
                 ('a very confident q (logvar from −20 to −10)',
                  '',
                  (),
                  (((6, 2, 4),
                    'torch.float64',
                    0,
                    0,
                    0,
                    0,
                    -12.252062612886768,
                    -217.5849174661893,
                    61.3866733905552,
                    58.25931842659484),
                   ((2, 4),
                    'torch.float64',
                    0,
                    0,
                    0,
                    0,
                    -2.045916483651391,
                    4.520508464755653,
                    10.23080927976142,
                    9.70758749750186),
                   ((2, 4),
                    'torch.float64',
                    0,
                    0,
                    0,
                    0,
                    -106.57218224056457,
                    -476.05577719299174,
                    1498.3148132043968,
                    78.61105976488356)))],
 'PPCA_LOG_MARGINAL_CHECK': [('3 points, D = 3 and d = 3 (a square W), σ² = 0.5',
                              '',
                              (),
                              (((3, 3),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                5.24941917130762,
                                21.51713533293862,
                                13.86843385587421,
                                10.806611451863994),
                               ((3, 3),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                -2.3237930379480907,
                                -14.068368433562076,
                                12.045572886436226,
                                11.445571321634445),
                               ((3,),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                0.4949767640501596,
                                0.6901160714337674,
                                0.1281098133184759,
                                0.04644248100195344),
                               0.5)),
                             ('float32: 4 points, D = 5, d = 2, σ² = 0.25',
                              '',
                              (),
                              (((4, 5),
                                'torch.float32',
                                0,
                                0,
                                0,
                                0,
                                6.988457232713699,
                                26.390379298478365,
                                56.433419342442456,
                                53.991492617769026),
                               ((5, 2),
                                'torch.float32',
                                0,
                                0,
                                0,
                                0,
                                -3.686601758003235,
                                -11.363135069608688,
                                10.675886712855165,
                                9.31678346064391),
                               ((5,),
                                'torch.float32',
                                0,
                                0,
                                0,
                                0,
                                0.08422872424125671,
                                -2.622318774461746,
                                1.6948781397478063,
                                1.6934592441503444),
                               0.25)),
                             ('a single point (B = 1), D = 4, d = 2',
                              'with one point the answer still has shape (B,) = (1,): do not .squeeze() or '
                              '.item() it.',
                              (),
                              (((1, 4),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                -5.229189402851896,
                                -16.489977723732526,
                                23.295980230242026,
                                16.45987477751739),
                               ((4, 2),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                -5.754675974790587,
                                -30.824272067623333,
                                12.431549542188893,
                                8.292012595334898),
                               ((4,),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                -0.6460295684803886,
                                -1.923867654501913,
                                0.20819468475648614,
                                0.10385613391874686),
                               1.0)),
                             ('one-dimensional x and z (D = d = 1)',
                              'D = 1: C = WWᵀ + σ²I is a 1×1 matrix; keep x − b as a (B, 1) matrix.',
                              (),
                              (((3, 1),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                1.5142300376198294,
                                1.7756510864123634,
                                2.0857286499987473,
                                1.321431114388697),
                               ((1, 1),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                0.4704992172931443,
                                0.4704992172931443,
                                0.22136951347346143,
                                0.0),
                               ((1,),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                0.17594010881118574,
                                0.17594010881118574,
                                0.030954921888491877,
                                0.0),
                               0.5)),
                             ('more latent than data dimensions (D = 2, d = 4)',
                              '',
                              (),
                              (((2, 2),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                5.182374068798643,
                                18.147830566247322,
                                13.874382290086587,
                                7.160132042847438),
                               ((2, 4),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                3.1957390036984576,
                                16.89710302782712,
                                4.751893905481367,
                                3.475300433011415),
                               ((2,),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                0.07479709345534347,
                                -0.24568899589843912,
                                0.25896012808099367,
                                0.25616282548631),
                               0.3)),
                             ('float32: a batch of 64 points, D = 16, d = 4',
                              '',
                              (),
                              (((64, 16),
                                'torch.float32',
                                0,
                                0,
                                0,
                                0,
                                169.45373745355755,
                                111547.26291345758,
                                5638.153593441857,
                                5610.112022019026),
                               ((16, 4),
                                'torch.float32',
                                0,
                                0,
                                0,
                                0,
                                -3.037655470892787,
                                -130.37279154919088,
                                66.64984473550138,
                                66.50566737987882),
                               ((16,),
                                'torch.float32',
                                0,
                                0,
                                0,
                                0,
                                1.1718593314290047,
                                1.9730470329523087,
                                4.92233243727755,
                                4.836504043986472),
                               0.5)),
                             ('x of 200 dimensions with σ² = 0.01 (float64)',
                              'here det(C) is about 1e-383, below the smallest float64 (about 5e-324).',
                              (),
                              (((3, 200),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                -27.561377501345977,
                                -1383.8791158258155,
                                2414.0731302136496,
                                2412.8070809973633),
                               ((200, 4),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                -7.909997566933741,
                                1727.791264502886,
                                800.297966383319,
                                800.2197563064329),
                               ((200,),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                -1.7013551011839483,
                                -294.4163289478273,
                                44.50574914210485,
                                44.49127609620322),
                               0.01)),
                             ('x of 200 dimensions with σ² = 100 (float64)',
                              'here det(C) is about 1e402, above the largest float64 (about 1.8e308).',
                              (),
                              (((2, 200),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                -214.25221100113234,
                                -91345.72806713302,
                                44823.53758633058,
                                44708.777561533396),
                               ((200, 4),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                55.175640339718164,
                                22942.996502048984,
                                770.0714502232089,
                                766.2660111145864),
                               ((200,),
                                'torch.float64',
                                0,
                                0,
                                0,
                                0,
                                -16.793063220456297,
                                -1624.244861922265,
                                48.99269786230545,
                                47.582663000674245),
                               100.0))],
 'SCORE_FUNCTION_GRADIENT_CHECK': [('3 samples in 3 dimensions',
                                    '',
                                    (),
                                    (((3,),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -21.60693042216692,
                                      -47.92645466908155,
                                      180.45595879220895,
                                      24.836144702754854),
                                     ((3, 3),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -1.6989532954319113,
                                      -23.758251979154558,
                                      30.815954253470018,
                                      30.495238442352353),
                                     ((3,),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -0.9312221795914604,
                                      -5.582229849501522,
                                      7.207892699800185,
                                      6.918834450545829),
                                     ((3,),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      0.2295563750076388,
                                      -0.47372313982875003,
                                      0.836372324630025,
                                      0.8188069481944757))),
                                   ('5 samples in 2 dimensions, q = N(μ, I)',
                                    '',
                                    (),
                                    (((5,),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -6.940426176140273,
                                      -21.835207143862064,
                                      10.53755641300647,
                                      0.9036533117158518),
                                     ((5, 2),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -0.8200870024373411,
                                      -5.9285492116011005,
                                      2.240678347405865,
                                      2.1734240782491985),
                                     ((2,),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      0.928276269862971,
                                      1.19520036815549,
                                      0.5086351690902271,
                                      0.07778675249487141),
                                     ((2,), 'torch.float64', 0, 0, 0, 2, 0.0, 0.0, 0.0, 0.0))),
                                   ('float32: 200 samples in 4 dimensions',
                                    '',
                                    (),
                                    (((200,),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -1302.1903062462807,
                                      -134724.9631011486,
                                      10666.853236046289,
                                      2188.3552676373783),
                                     ((200, 4),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -278.38041675207205,
                                      -120218.43182768859,
                                      1247.6197953516876,
                                      1150.7502248128662),
                                     ((4,),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -1.3558045774698257,
                                      -5.833480477333069,
                                      1.7580725382498994,
                                      1.298521025177866),
                                     ((4,),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -0.3473517596721649,
                                      -3.2126157879829407,
                                      1.4793900181340272,
                                      1.4492267068971896))),
                                   ('a single sample (S = 1)',
                                    'one sample still gives a (D,) estimate: f(z)·(z − μ)/σ².',
                                    (),
                                    (((1,),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -2.1877890382443987,
                                      -2.1877890382443987,
                                      4.786420875862351,
                                      0.0),
                                     ((1, 3),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -0.2568735626482137,
                                      -0.1747358375339656,
                                      0.8618309511923697,
                                      0.8398362754631745),
                                     ((3,),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      1.0670875664013333,
                                      1.4198771497321947,
                                      0.6837362744417746,
                                      0.3041776496523346),
                                     ((3,),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      0.06234764883074184,
                                      -0.43194742372027717,
                                      0.16769729956113577,
                                      0.16640155645622862))),
                                   ('float32: 16 samples of a 64-dimensional latent',
                                    '',
                                    (),
                                    (((16,),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -4021.299346923828,
                                      -34166.45977783203,
                                      1038812.912439412,
                                      28134.88509128656),
                                     ((16, 64),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      62.51595088513568,
                                      50111.68002179731,
                                      7143.630566824773,
                                      7139.813922181149),
                                     ((64,),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      2.90723804756999,
                                      182.7284213975072,
                                      68.35929561848008,
                                      68.22723260183572),
                                     ((64,),
                                      'torch.float32',
                                      0,
                                      0,
                                      0,
                                      0,
                                      98.31841164827347,
                                      3279.4673067331314,
                                      173.54774447731944,
                                      22.50852464857949))),
                                   ('variances from e⁻⁶ to e⁶',
                                    '',
                                    (),
                                    (((6,),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -260.1517734287148,
                                      -847.0145536961699,
                                      18315.525569285688,
                                      7035.701366268128),
                                     ((6, 4),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -43.07329834234575,
                                      -404.6996928613974,
                                      410.1569501727381,
                                      332.8524072523745),
                                     ((4,),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      -0.9811742678856179,
                                      -0.6986154128135067,
                                      1.3586161052576167,
                                      1.117940369267397),
                                     ((4,),
                                      'torch.float64',
                                      0,
                                      0,
                                      0,
                                      0,
                                      5.002677883150186,
                                      19.04463324886533,
                                      33.53930105520132,
                                      27.28260455456131)))]}

test_the_cases_are_the_ones_students_see = case_snapshot_test(checks_vae_theory, CASE_SNAPSHOT)
