"""Tests for aigc_course.gan losses: hand-computed values on asymmetric inputs, stability at extreme logits,
saturating vs non-saturating gradients, the optimal discriminator, the gradient penalty on critics with known
gradients, weight clipping, and every bad input with its exact message."""

import math
import re

import pytest
import torch
from torch import nn

from aigc_course.divergences import js_divergence
from aigc_course.gan import (
    clip_weights,
    critic_loss,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    wasserstein_generator_loss,
)

torch.set_num_threads(1)
F64 = torch.float64
REAL = [2.0, -1.0, 0.5]
FAKE = [-3.0, 1.5]


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def mean(xs):
    return sum(xs) / len(xs)


def t(xs, column=False):
    x = torch.tensor(xs, dtype=F64)
    return x[:, None] if column else x


# --------------------------------------------------------------------------- the original GAN losses

@pytest.mark.parametrize("column", [False, True])
def test_discriminator_loss_hand_computed(column):
    expected = -mean([math.log(sig(r)) for r in REAL]) - mean([math.log(1 - sig(f)) for f in FAKE])
    got = discriminator_loss(t(REAL, column), t(FAKE, column))
    assert got.shape == ()
    assert got.item() == pytest.approx(expected, rel=1e-12)
    # the roles are not symmetric: swapping real and fake changes the value
    swapped = -mean([math.log(sig(f)) for f in FAKE]) - mean([math.log(1 - sig(r)) for r in REAL])
    assert discriminator_loss(t(FAKE, column), t(REAL, column)).item() == pytest.approx(swapped, rel=1e-12)
    assert abs(swapped - expected) > 0.5


def test_discriminator_loss_mixed_shapes_and_batch_sizes():
    a = discriminator_loss(t(REAL), t(FAKE, column=True))
    b = discriminator_loss(t(REAL, column=True), t(FAKE))
    assert a.item() == pytest.approx(b.item(), rel=1e-14)


def test_generator_losses_hand_computed():
    ns = -mean([math.log(sig(f)) for f in FAKE])
    mm = mean([math.log(1 - sig(f)) for f in FAKE])
    assert generator_loss(t(FAKE)).item() == pytest.approx(ns, rel=1e-12)          # default kind
    assert generator_loss(t(FAKE), kind="non_saturating").item() == pytest.approx(ns, rel=1e-12)
    assert generator_loss(t(FAKE, True), kind="minimax").item() == pytest.approx(mm, rel=1e-12)
    # the article's L_G = E[log D(G(z))] is neither of them (wrong sign of the non-saturating loss)
    article = mean([math.log(sig(f)) for f in FAKE])
    assert generator_loss(t(FAKE)).item() == pytest.approx(-article, rel=1e-12)
    assert abs(mm - article) > 0.1


def test_wasserstein_losses_hand_computed():
    got = critic_loss(t(REAL), t(FAKE, column=True))
    assert got.shape == ()
    assert got.item() == pytest.approx(mean(FAKE) - mean(REAL), rel=1e-12)   # -0.75 - 0.5
    assert critic_loss(t(FAKE), t(REAL)).item() == pytest.approx(mean(REAL) - mean(FAKE), rel=1e-12)
    assert wasserstein_generator_loss(t(FAKE)).item() == pytest.approx(-mean(FAKE), rel=1e-12)
    assert wasserstein_generator_loss(t(REAL, True)).item() == pytest.approx(-mean(REAL), rel=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_extreme_logits_are_finite_and_exact(dtype):
    big, small = torch.tensor([100.0], dtype=dtype), torch.tensor([-100.0], dtype=dtype)
    # confident and right: loss ~ 2 e^-100; confident and wrong: ~ 200
    assert 0 <= discriminator_loss(big, small).item() < 1e-40
    assert discriminator_loss(small, big).item() == pytest.approx(200.0, rel=1e-6)
    assert generator_loss(small).item() == pytest.approx(100.0, rel=1e-6)
    assert generator_loss(big).item() < 1e-40
    assert generator_loss(big, kind="minimax").item() == pytest.approx(-100.0, rel=1e-6)
    assert -1e-40 < generator_loss(small, kind="minimax").item() <= 0
    for kind in ("non_saturating", "minimax"):
        for x in (big, small):
            x = x.clone().requires_grad_(True)
            generator_loss(x, kind=kind).backward()
            assert torch.isfinite(x.grad).all()
    r, f = big.clone().requires_grad_(True), big.clone().requires_grad_(True)
    loss = discriminator_loss(r, f)
    loss.backward()
    assert torch.isfinite(loss) and r.grad.abs().item() < 1e-40 and f.grad.item() == pytest.approx(1.0)


def test_minimax_saturates_non_saturating_does_not():
    logits = torch.tensor([-2.0, -5.0, -10.0, -20.0], dtype=F64)   # D(G(z)) → 0
    grads = {}
    for kind in ("minimax", "non_saturating"):
        x = logits.clone().requires_grad_(True)
        generator_loss(x, kind=kind).backward()
        grads[kind] = x.grad
    n = len(logits)
    d = torch.sigmoid(logits)
    torch.testing.assert_close(grads["minimax"], -d / n)             # d/dl log(1 − σ(l)) = −σ(l)
    torch.testing.assert_close(grads["non_saturating"], -(1 - d) / n)
    mm, ns = grads["minimax"].abs(), grads["non_saturating"].abs()
    assert (mm[1:] < mm[:-1]).all() and mm[-1] < 1e-9                 # vanishes
    assert (ns > 0.85 / n).all() and ns[-1] > (1 - 1e-8) / n          # stays near 1/B
    # both push the logit up (towards fooling D)
    assert (grads["minimax"] < 0).all() and (grads["non_saturating"] < 0).all()


def test_optimal_discriminator_value():
    half = torch.zeros(5, dtype=F64)                                    # D = 1/2
    assert discriminator_loss(half, half[:3]).item() == pytest.approx(math.log(4.0), rel=1e-14)
    # D* = p/(p+q), i.e. logit log p − log q, on a discrete support of 3 points; samples in proportion:
    p = torch.tensor([0.5, 0.25, 0.25], dtype=F64)
    q = torch.tensor([0.25, 0.25, 0.5], dtype=F64)
    logit = torch.log(p) - torch.log(q)
    real = logit[torch.tensor([0, 0, 1, 2])]
    fake = logit[torch.tensor([0, 1, 2, 2])]
    value = -discriminator_loss(real, fake)
    assert value.item() == pytest.approx(-math.log(4.0) + 2 * js_divergence(p, q).item(), rel=1e-12)
    # and D* is the minimiser: moving any of the three logits raises the loss
    for k in range(3):
        for step in (-0.1, 0.1):
            moved = logit.clone()
            moved[k] += step
            assert -discriminator_loss(moved[torch.tensor([0, 0, 1, 2])],
                                       moved[torch.tensor([0, 1, 2, 2])]) < value


# --------------------------------------------------------------------------- gradient penalty

def linear_critic(w: torch.Tensor):
    return lambda x: (x * w).flatten(1).sum(dim=1)


@pytest.mark.parametrize("shape", [(6, 3), (4, 2, 3, 3)])
def test_gradient_penalty_linear_critic_exact(shape):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(shape[1:], generator=g, dtype=F64) * 0.7
    real, fake = torch.randn(shape, generator=g, dtype=F64), torch.randn(shape, generator=g, dtype=F64)
    gp = gradient_penalty(linear_critic(w), real, fake, generator=g)
    assert gp.shape == ()
    assert gp.item() == pytest.approx((w.norm().item() - 1) ** 2, rel=1e-12)


def test_gradient_penalty_quadratic_critic_against_hand_computation():
    g = torch.Generator().manual_seed(1)
    B, D = 5, 3
    A = torch.randn(D, D, generator=g, dtype=F64)                      # not symmetric
    real, fake = torch.randn(B, D, generator=g, dtype=F64), torch.randn(B, D, generator=g, dtype=F64) + 2

    def critic(x):
        return torch.einsum("bi,ij,bj->b", x, A, x)[:, None]           # (B, 1) scores

    gp = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(7))
    eps = torch.rand(B, generator=torch.Generator().manual_seed(7), dtype=F64)[:, None]
    x_hat = eps * real + (1 - eps) * fake
    grad = x_hat @ (A + A.T)                                             # ∇ xᵀAx = (A + Aᵀ)x
    expected = ((grad.norm(dim=1) - 1) ** 2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-12)
    # ε and 1 − ε swapped would give another value (real and fake differ)
    swapped = ((((1 - eps) * real + eps * fake) @ (A + A.T)).norm(dim=1) - 1) ** 2
    assert abs(swapped.mean().item() - expected.item()) > 1e-3


def test_gradient_penalty_uses_global_rng_and_generator_reproducibly():
    g = torch.Generator().manual_seed(3)
    real, fake = torch.randn(4, 2, generator=g, dtype=F64), torch.randn(4, 2, generator=g, dtype=F64)

    def critic(x):
        return (x ** 3).sum(dim=1)

    torch.manual_seed(11)
    a = gradient_penalty(critic, real, fake)
    torch.manual_seed(11)
    b = gradient_penalty(critic, real, fake)
    c = gradient_penalty(critic, real, fake)
    assert a.item() == b.item() and c.item() != b.item()
    d = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(11))
    assert d.item() == a.item()                                          # same stream as the seeded global RNG


def test_gradient_penalty_backpropagates_into_critic():
    critic = nn.Linear(3, 1, dtype=F64)
    with torch.no_grad():
        critic.weight.copy_(torch.tensor([[0.3, -1.2, 0.4]], dtype=F64))
    real, fake = torch.randn(8, 3, dtype=F64, requires_grad=True), torch.randn(8, 3, dtype=F64)
    with torch.no_grad():                                                # works even inside no_grad
        gp = gradient_penalty(critic, real, fake)
    assert gp.requires_grad
    gp.backward()
    w = critic.weight.detach()
    norm = w.norm()
    assert gp.item() == pytest.approx(((norm - 1) ** 2).item(), rel=1e-12)
    torch.testing.assert_close(critic.weight.grad, 2 * (norm - 1) * w / norm)   # d/dw (‖w‖ − 1)²
    assert critic.bias.grad is None or critic.bias.grad.abs().max() == 0
    assert real.grad is None                                             # inputs are detached


def test_gradient_penalty_detaches_real_and_fake():
    real = torch.randn(4, 3, dtype=F64, requires_grad=True)
    z = torch.randn(4, 3, dtype=F64, requires_grad=True)
    fake = 2 * z                                                        # as if from a generator
    gp = gradient_penalty(lambda x: (x ** 2).sum(dim=1), real, fake)   # gradient depends on x̂
    gp.backward()
    assert gp.item() > 0 and real.grad is None and z.grad is None


def test_gradient_penalty_critic_ignoring_input_has_penalty_one():
    real, fake = torch.randn(3, 2), torch.randn(3, 2)
    bias = torch.tensor(0.5, requires_grad=True)
    gp = gradient_penalty(lambda x: bias * torch.ones(x.shape[0]), real, fake)
    assert gp.item() == pytest.approx(1.0)


# --------------------------------------------------------------------------- weight clipping

def test_clip_weights_clamps_in_place():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p) * 0.1)
        net[0].weight[0, 0] = 3.0
        net[2].bias[0] = -2.0
        net[1].running_mean.fill_(7.0)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    ids = {name: id(p) for name, p in net.named_parameters()}
    c = 0.05
    assert clip_weights(net, c) is net
    for name, p in net.named_parameters():
        assert id(p) == ids[name] and p.requires_grad
        torch.testing.assert_close(p.detach(), before[name].clamp(-c, c), rtol=0, atol=0)
        assert p.abs().max() <= c
    assert net[0].weight[0, 0].item() == pytest.approx(c) and net[2].bias[0].item() == pytest.approx(-c)
    inside = before["0.weight"].abs() < c
    assert inside.any() and torch.equal(net[0].weight.detach()[inside], before["0.weight"][inside])
    assert (net[1].running_mean == 7.0).all()                            # buffers untouched
    assert clip_weights(nn.Linear(2, 2), 1) is not None                  # int c accepted


# --------------------------------------------------------------------------- bad inputs

def ok():
    return torch.zeros(3)


BAD = [
    (lambda: discriminator_loss([0.0], ok()), TypeError, "real_logits must be a torch.Tensor, got list"),
    (lambda: discriminator_loss(ok(), torch.zeros(3, dtype=torch.long)), TypeError,
     "fake_logits must be a floating-point tensor, got dtype torch.int64"),
    (lambda: discriminator_loss(torch.zeros(3, 2), ok()), ValueError,
     "real_logits must have shape (B,) or (B, 1), got (3, 2)"),
    (lambda: discriminator_loss(ok(), torch.zeros(())), ValueError,
     "fake_logits must have shape (B,) or (B, 1), got ()"),
    (lambda: discriminator_loss(torch.zeros(0), ok()), ValueError,
     "real_logits must be a non-empty batch, got batch size 0"),
    (lambda: discriminator_loss(ok(), torch.tensor([0.0, math.nan])), ValueError,
     "fake_logits must be finite, got NaN or inf"),
    (lambda: discriminator_loss(torch.tensor([math.inf]), ok()), ValueError,
     "real_logits must be finite, got NaN or inf"),
    (lambda: generator_loss(ok(), kind="saturating"), ValueError,
     "kind must be one of 'non_saturating', 'minimax', got 'saturating'"),
    (lambda: generator_loss(ok(), kind=None), ValueError,
     "kind must be one of 'non_saturating', 'minimax', got None"),
    (lambda: generator_loss(torch.zeros(2, 1, 1)), ValueError,
     "fake_logits must have shape (B,) or (B, 1), got (2, 1, 1)"),
    (lambda: generator_loss(torch.zeros(2, dtype=torch.bool), kind="minimax"), TypeError,
     "fake_logits must be a floating-point tensor, got dtype torch.bool"),
    (lambda: critic_loss(ok(), torch.tensor([-math.inf])), ValueError,
     "fake_scores must be finite, got NaN or inf"),
    (lambda: critic_loss(torch.zeros(0, 1), ok()), ValueError,
     "real_scores must be a non-empty batch, got batch size 0"),
    (lambda: wasserstein_generator_loss(1.0), TypeError, "fake_scores must be a torch.Tensor, got float"),
    (lambda: clip_weights(torch.zeros(2), 0.1), TypeError, "module must be a torch.nn.Module, got Tensor"),
    (lambda: clip_weights(nn.Linear(2, 2), 0), ValueError, "c must be a positive finite number, got 0"),
    (lambda: clip_weights(nn.Linear(2, 2), -0.1), ValueError, "c must be a positive finite number, got -0.1"),
    (lambda: clip_weights(nn.Linear(2, 2), math.nan), ValueError, "c must be a positive finite number, got nan"),
    (lambda: clip_weights(nn.Linear(2, 2), math.inf), ValueError, "c must be a positive finite number, got inf"),
    (lambda: clip_weights(nn.Linear(2, 2), True), TypeError, "c must be a number, got bool"),
    (lambda: clip_weights(nn.Linear(2, 2), "0.1"), TypeError, "c must be a number, got str"),
    (lambda: gradient_penalty("f", torch.zeros(2, 2), torch.zeros(2, 2)), TypeError,
     "critic must be callable, got str"),
    (lambda: gradient_penalty(linear_critic(1.0), torch.zeros(3), torch.zeros(3)), ValueError,
     "real must have shape (B, ...) with at least 2 dimensions, got (3,)"),
    (lambda: gradient_penalty(linear_critic(1.0), torch.zeros(2, 3), torch.zeros(3, 2)), ValueError,
     "fake must have the same shape as real (2, 3), got (3, 2)"),
    (lambda: gradient_penalty(linear_critic(1.0), torch.zeros(2, 3), torch.zeros(2, 3, dtype=F64)), TypeError,
     "fake must have the same dtype as real (torch.float32), got torch.float64"),
    (lambda: gradient_penalty(linear_critic(1.0), torch.zeros(2, 3, dtype=torch.int32), torch.zeros(2, 3)),
     TypeError, "real must be a floating-point tensor, got dtype torch.int32"),
    (lambda: gradient_penalty(linear_critic(1.0), torch.zeros(2, 3), None), TypeError,
     "fake must be a torch.Tensor, got NoneType"),
    (lambda: gradient_penalty(linear_critic(1.0), torch.zeros(2, 3), torch.zeros(2, 3, device="meta")), ValueError,
     "fake must be on the same device as real (cpu), got meta"),
    (lambda: gradient_penalty(linear_critic(1.0), torch.zeros(0, 3), torch.zeros(0, 3)), ValueError,
     "real must be a non-empty batch, got batch size 0"),
    (lambda: gradient_penalty(linear_critic(1.0), torch.zeros(2, 3), torch.full((2, 3), math.nan)), ValueError,
     "fake must be finite, got NaN or inf"),
    (lambda: gradient_penalty(linear_critic(1.0), torch.full((2, 3), math.inf), torch.zeros(2, 3)), ValueError,
     "real must be finite, got NaN or inf"),
    (lambda: gradient_penalty(linear_critic(1.0), torch.zeros(2, 3), torch.zeros(2, 3), generator=0), TypeError,
     "generator must be a torch.Generator or None, got int"),
    (lambda: gradient_penalty(lambda x: x, torch.zeros(2, 3), torch.zeros(2, 3)), ValueError,
     "critic must return scores of shape (2,) or (2, 1), got (2, 3)"),
    (lambda: gradient_penalty(lambda x: x.sum(), torch.zeros(2, 3), torch.zeros(2, 3)), ValueError,
     "critic must return scores of shape (2,) or (2, 1), got ()"),
    (lambda: gradient_penalty(lambda x: x.sum(1).tolist(), torch.zeros(2, 3), torch.zeros(2, 3)), TypeError,
     "critic must return a torch.Tensor, got list"),
    (lambda: gradient_penalty(lambda x: torch.zeros(2), torch.zeros(2, 3), torch.zeros(2, 3)), ValueError,
     "critic's output must depend on its input through autograd (it does not require grad)"),
]


@pytest.mark.parametrize("call, error, message", BAD, ids=[m for _, _, m in BAD])
def test_bad_inputs(call, error, message):
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        call()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gradient_penalty_generator_device_mismatch():
    x = torch.zeros(2, 3, device="cuda")
    with pytest.raises(ValueError, match=r"^generator must be on real's device type \(cuda\), got cpu$"):
        gradient_penalty(linear_critic(1.0), x, x, generator=torch.Generator())


def test_half_precision_inputs_are_reduced_in_float32():
    x = torch.tensor([3.0, -2.0, 0.25], dtype=torch.bfloat16)
    for loss in (discriminator_loss(x, -x), generator_loss(x, kind="minimax"), critic_loss(x, x[:2]),
                 gradient_penalty(nn.Linear(3, 1).to(torch.bfloat16), x[None].repeat(2, 1), x[None].repeat(2, 1))):
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
    expected = mean([math.log(1 - sig(f)) for f in (3.0, -2.0, 0.25)])
    assert generator_loss(x, kind="minimax").item() == pytest.approx(expected, rel=1e-6)
