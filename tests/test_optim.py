"""Tests for aigc_course.optim (Muon).

newton_schulz against the closed form U diag(p^k(s / ‖s‖)) Vᵀ with p(s) = a s + b s³ + c s⁵ iterated by hand
(wide and tall, 0..7 steps, other coefficients, the eps floor, zero matrix, stacks normalised per matrix, dtypes
kept, the Gram matrix the small one), against torch's own bf16 implementation, and a hypothesis property (same
singular vectors; singular values in [0.6, 1.25] for a well-conditioned g). Muon steps by hand over two steps
(momentum buffer, Nesterov or not, √max(1, out/in) for tall vs wide, decoupled weight decay with the unscaled
lr, group lrs, same-shape matrices of very different scales, no-grad parameters untouched), its AdamW groups
against torch.optim.AdamW and by hand (bias correction, where eps goes), torch.optim.Muon over 5 steps,
validation messages, state_dict round trips (also through train_lm's checkpoints), muon_param_groups on a tiny
GPT and the MLP language model, and train_lm(optimizer="muon"): the first step's updates, weight decay per
group, the two rates following the schedule, momentum and betas passed on, the loss dropping on the docs
corpus, LMConfig's messages, "adamw" unchanged.
"""

import functools
import io
import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.overrides import TorchFunctionMode

from aigc_course.data.text import CharVocab, docs_corpus
from aigc_course.device import seed_everything
from aigc_course.gpt import GPT, GPTConfig
from aigc_course.lm import LMConfig, MLPLanguageModel, train_lm
from aigc_course.optim import NS_COEFFICIENTS, Muon, muon_param_groups, newton_schulz

torch.set_num_threads(1)

A, B, C = 3.4445, -4.7750, 2.0315        # Keller Jordan's quintic, written out (not imported)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def p_iter(s: torch.Tensor, steps: int, coefficients=(A, B, C)) -> torch.Tensor:
    a, b, c = coefficients
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return s


def ns_by_svd(g: torch.Tensor, steps: int = 5, coefficients=(A, B, C), eps: float = 1e-7) -> torch.Tensor:
    """The closed form, in float64: U diag(p^steps(s / max(‖g‖_F, eps))) Vᵀ."""
    g = g.double()
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    s0 = s / max(float(torch.linalg.norm(g)), eps)
    return u @ torch.diag(p_iter(s0, steps, coefficients)) @ vh


# --------------------------------------------------------------------------- newton_schulz

def test_coefficients_are_jordans():
    assert NS_COEFFICIENTS == (3.4445, -4.7750, 2.0315)


@pytest.mark.parametrize("shape", [(3, 7), (7, 3), (5, 5), (1, 4), (6, 1)])
@pytest.mark.parametrize("steps", [0, 1, 2, 5, 7])
def test_newton_schulz_is_the_polynomial_on_singular_values(shape, steps):
    g = randn(*shape, seed=steps) * 3.0
    out = newton_schulz(g, steps)
    assert out.shape == g.shape and out.dtype == torch.float64
    torch.testing.assert_close(out, ns_by_svd(g, steps), atol=3e-5, rtol=0)


def test_newton_schulz_zero_steps_is_the_frobenius_normalised_input():
    g = torch.tensor([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]], dtype=torch.float64)    # ‖g‖_F = 5
    expected = torch.tensor([[0.6, 0.0], [0.0, 0.8], [0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(newton_schulz(g, 0), expected, atol=1e-7, rtol=0)


def test_newton_schulz_one_step_by_hand_on_a_diagonal():
    # diagonal g: the singular values are the entries; s0 = (0.6, 0.8)
    g = torch.tensor([[3.0, 0.0, 0.0], [0.0, -4.0, 0.0]], dtype=torch.float64)
    p = [A * s + B * s**3 + C * s**5 for s in (0.6, 0.8)]
    expected = torch.tensor([[p[0], 0.0, 0.0], [0.0, -p[1], 0.0]], dtype=torch.float64)
    torch.testing.assert_close(newton_schulz(g, 1), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(newton_schulz(g.T.contiguous(), 1), expected.T, atol=1e-6, rtol=0)


def test_newton_schulz_default_is_five_steps_and_other_coefficients():
    g = randn(4, 6, seed=3)
    torch.testing.assert_close(newton_schulz(g), ns_by_svd(g, 5), atol=3e-5, rtol=0)
    cubic = (1.5, -0.5, 0.0)                          # classic Newton–Schulz: converges to U Vᵀ
    out = newton_schulz(g, 12, coefficients=cubic)
    torch.testing.assert_close(out, ns_by_svd(g, 12, cubic), atol=3e-5, rtol=0)
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    torch.testing.assert_close(out, u @ vh, atol=1e-3, rtol=0)


def test_newton_schulz_eps_floor_and_zero_matrix():
    assert torch.equal(newton_schulz(torch.zeros(3, 5)), torch.zeros(3, 5))
    assert torch.equal(newton_schulz(torch.zeros(5, 3, dtype=torch.float64), 3), torch.zeros(5, 3, dtype=torch.float64))
    g = 1e-9 * torch.eye(2, dtype=torch.float64)      # ‖g‖_F = 1.4e-9 < eps = 1e-7: X0 = g / eps = 0.01 I
    torch.testing.assert_close(newton_schulz(g, 2), float(p_iter(torch.tensor(0.01), 2)) * torch.eye(2,
                               dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(newton_schulz(g, 2, eps=1e-12), ns_by_svd(g, 2, eps=1e-12), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_newton_schulz_keeps_dtype_and_does_not_mutate(dtype):
    g = randn(4, 6, seed=1).to(dtype)
    before = g.clone()
    out = newton_schulz(g)
    assert out.dtype == dtype and out.shape == (4, 6)
    assert torch.equal(g, before)
    tol = 1e-2 if dtype in (torch.bfloat16, torch.float16) else 3e-5
    torch.testing.assert_close(out.double(), ns_by_svd(g.double()), atol=tol, rtol=0)


@pytest.mark.parametrize("bad, exc, msg", [
    (torch.zeros(4), ValueError, "g must be a matrix (m, n) or a stack of them (..., m, n), got shape (4,)"),
    (torch.tensor(2.0), ValueError, "g must be a matrix (m, n) or a stack of them (..., m, n), got shape ()"),
    ([[1.0, 2.0]], (TypeError, ValueError), "g must be a matrix (m, n) or a stack of them (..., m, n), got list"),
])
def test_newton_schulz_rejects_bad_g(bad, exc, msg):
    with pytest.raises(exc, match="^" + re.escape(msg) + "$"):
        newton_schulz(bad)


@pytest.mark.parametrize("shape", [(3, 4, 6), (2, 6, 4), (2, 2, 3, 3)])
def test_newton_schulz_on_a_stack_is_per_matrix(shape):
    # each matrix is normalised by its own Frobenius norm: very different scales in one stack
    g = randn(*shape, seed=5) * torch.logspace(-3, 3, shape[0], dtype=torch.float64).view(-1, *[1] * (len(shape) - 1))
    out = newton_schulz(g, 4)
    assert out.shape == g.shape and out.dtype == g.dtype
    flat, flat_out = g.reshape(-1, *shape[-2:]), out.reshape(-1, *shape[-2:])
    for gi, oi in zip(flat, flat_out, strict=True):
        torch.testing.assert_close(oi, ns_by_svd(gi, 4), atol=3e-5, rtol=0)
        torch.testing.assert_close(oi, newton_schulz(gi, 4), atol=5e-6, rtol=0)


class MatmulShapes(TorchFunctionMode):
    """Records the shape of every matrix product computed inside the block."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in (torch.matmul, torch.Tensor.__matmul__, torch.Tensor.matmul):
            self.shapes.append(tuple(out.shape))
        return out


@pytest.mark.parametrize("shape", [(40, 3), (3, 40), (2, 40, 3), (2, 3, 40)])
def test_newton_schulz_gram_is_the_small_one(shape):
    # tall or wide, alone or stacked, the Gram matrix is 3 × 3, never 40 × 40
    with MatmulShapes() as rec:
        newton_schulz(randn(*shape, dtype=torch.float32), 2)
    assert rec.shapes and all(40 not in sh[-2:] or 3 in sh[-2:] for sh in rec.shapes), rec.shapes
    assert [sh[-2:] for sh in rec.shapes].count((3, 3)) == 4


def test_newton_schulz_rejects_bad_steps():
    with pytest.raises(ValueError, match=r"^steps must be >= 0, got -1$"):
        newton_schulz(torch.ones(2, 2), -1)
    with pytest.raises(TypeError, match=r"^steps must be an int, got float 2\.0$"):
        newton_schulz(torch.ones(2, 2), 2.0)


def test_newton_schulz_rejects_integer_g():
    with pytest.raises(TypeError, match=r"^g must be a floating-point tensor, got dtype torch\.int64$"):
        newton_schulz(torch.tensor([[1, 2], [3, 4]]))


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon needs torch >= 2.9")
@pytest.mark.parametrize("shape", [(16, 24), (24, 16), (5, 3)])
def test_newton_schulz_matches_torch_bf16_reference(shape):
    from torch.optim._muon import _zeropower_via_newtonschulz

    g = randn(*shape, seed=7, dtype=torch.float32)
    ours = newton_schulz(g)
    ref = _zeropower_via_newtonschulz(g, (A, B, C), 5, 1e-7).float()    # computed in bfloat16
    assert (ours - ref).abs().max() < 0.05
    assert (ours - ref).norm() / ref.norm() < 0.03


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 12), n=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_newton_schulz_property_singular_vectors_and_values(m, n, seed):
    g = randn(m, n, seed=seed)
    out = newton_schulz(g)
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    d = u.T @ out @ vh.T                                   # (k, k): diagonal iff same singular vectors
    off = d - torch.diag(torch.diagonal(d))
    assert off.abs().max() < 1e-3
    torch.testing.assert_close(out, u @ torch.diag(torch.diagonal(d)) @ vh, atol=1e-3, rtol=0)

    # well-conditioned (κ ≤ 3): every singular value of the output lies in [0.6, 1.25]
    k = min(m, n)
    q1, _ = torch.linalg.qr(randn(m, k, seed=seed + 1))
    q2, _ = torch.linalg.qr(randn(n, k, seed=seed + 2))
    s = 1.0 + 2.0 * torch.rand(k, generator=gen(seed), dtype=torch.float64)
    sv = torch.linalg.svdvals(newton_schulz(q1 @ torch.diag(s) @ q2.T))
    assert sv.min() >= 0.6 and sv.max() <= 1.25, sv


# --------------------------------------------------------------------------- Muon: the Muon groups by hand

def muon_by_hand(w0, grads, lr, mu, wd, nesterov, scale, steps=5):
    w, buf = w0.clone(), torch.zeros_like(w0)
    for g in grads:
        buf = mu * buf + (1 - mu) * g
        d = (1 - mu) * g + mu * buf if nesterov else buf
        w = w * (1 - lr * wd) - lr * scale * ns_by_svd(d, steps)
    return w, buf


@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_two_steps_by_hand_tall_and_wide(nesterov):
    wide0, tall0, twin0 = randn(2, 6, seed=1), randn(6, 2, seed=2), randn(2, 6, seed=4)   # out/in = 1/3 and 3
    wide, tall, twin = nn.Parameter(wide0.clone()), nn.Parameter(tall0.clone()), nn.Parameter(twin0.clone())
    idle = nn.Parameter(randn(3, 3, seed=3))                    # never gets a gradient
    idle0 = idle.detach().clone()
    opt = Muon([{"params": [wide, twin], "lr": 0.1}, {"params": [tall, idle]}], lr=0.05, momentum=0.8,
               nesterov=nesterov, weight_decay=0.3, ns_steps=4)
    g_wide = [randn(2, 6, seed=10), randn(2, 6, seed=11)]
    g_tall = [randn(6, 2, seed=12), 5.0 * randn(6, 2, seed=13)]
    g_twin = [1e3 * randn(2, 6, seed=14), 1e-2 * randn(2, 6, seed=15)]     # same shape as wide, other scales
    for gw, gt, gtw in zip(g_wide, g_tall, g_twin, strict=True):
        wide.grad, tall.grad, twin.grad = gw.clone(), gt.clone(), gtw.clone()
        opt.step()

    exp_wide, buf_wide = muon_by_hand(wide0, g_wide, 0.1, 0.8, 0.3, nesterov, scale=1.0, steps=4)
    exp_tall, buf_tall = muon_by_hand(tall0, g_tall, 0.05, 0.8, 0.3, nesterov, scale=math.sqrt(3.0), steps=4)
    torch.testing.assert_close(wide.detach(), exp_wide, atol=2e-6, rtol=0)
    torch.testing.assert_close(tall.detach(), exp_tall, atol=2e-6, rtol=0)
    exp_twin, buf_twin = muon_by_hand(twin0, g_twin, 0.1, 0.8, 0.3, nesterov, scale=1.0, steps=4)
    torch.testing.assert_close(twin.detach(), exp_twin, atol=2e-6, rtol=0)
    torch.testing.assert_close(opt.state[twin]["momentum_buffer"], buf_twin, rtol=1e-12, atol=0)
    # momentum_buffer = 0.8 · 0.2 g1 + 0.2 g2, written out
    torch.testing.assert_close(opt.state[wide]["momentum_buffer"], 0.16 * g_wide[0] + 0.2 * g_wide[1],
                               atol=1e-12, rtol=0)
    torch.testing.assert_close(opt.state[tall]["momentum_buffer"], buf_tall, atol=1e-12, rtol=0)
    torch.testing.assert_close(buf_wide, 0.16 * g_wide[0] + 0.2 * g_wide[1], atol=1e-12, rtol=0)
    assert set(opt.state[wide]) == {"momentum_buffer"}
    assert idle not in opt.state and torch.equal(idle.detach(), idle0)     # no grad: no decay, no state


def test_muon_nesterov_changes_the_direction():
    # two steps with different gradients: with Nesterov the direction (1-μ)g2 + μ M2 differs from M2
    def run(nesterov):
        w = nn.Parameter(randn(3, 4, seed=0))
        opt = Muon([w], lr=0.1, momentum=0.5, nesterov=nesterov)
        for s in (1, 2):
            w.grad = randn(3, 4, seed=s)
            opt.step()
        return w.detach()

    assert (run(True) - run(False)).abs().max() > 1e-3


def test_muon_first_step_is_lr_times_scale_times_orthogonalised_gradient():
    # first step: M1 = (1-μ) g and the Nesterov direction is a multiple of g; NS normalises it away
    w0 = randn(8, 2, seed=4)
    w = nn.Parameter(w0.clone())
    g = randn(8, 2, seed=5)
    w.grad = g.clone()
    Muon([w], lr=0.01).step()
    torch.testing.assert_close(w.detach(), w0 - 0.01 * 2.0 * ns_by_svd(g, 5), atol=1e-7, rtol=0)


def test_muon_step_with_closure_returns_its_loss():
    w = nn.Parameter(randn(2, 3, seed=0))
    x = randn(3, seed=1)

    def closure():
        w.grad = None
        loss = (w @ x).pow(2).sum()
        loss.backward()
        return loss

    w0 = w.detach().clone()
    opt = Muon([w], lr=0.1)
    loss = opt.step(closure)
    assert torch.is_tensor(loss) and float(loss.detach()) == pytest.approx(float((w0 @ x).pow(2).sum()))
    assert not torch.equal(w.detach(), w0)


def test_muon_refuses_sparse_gradients():
    emb = nn.Embedding(5, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    dense = nn.Parameter(torch.ones(3))
    dense.grad = torch.ones(3)
    opt = Muon([{"params": [dense, emb.weight], "muon": False}])
    with pytest.raises(RuntimeError, match=r"^Muon does not support sparse gradients$"):
        opt.step()


# --------------------------------------------------------------------------- Muon: the AdamW groups

def quadratic_grads(params, step):
    """A loss whose gradients depend on the parameters (so trajectories must match step by step)."""
    for i, p in enumerate(params):
        target = randn(*p.shape, seed=100 + i)
        noise = randn(*p.shape, seed=1000 * step + i)
        p.grad = (2.0 * (p.detach() - target.to(p.dtype)) * (1 + step) + noise.to(p.dtype)).to(p.dtype)


def test_adamw_groups_match_torch_adamw():
    shapes = [(4, 3), (3,), (2, 5)]
    ours = [nn.Parameter(randn(*s, seed=i)) for i, s in enumerate(shapes)]
    ref = [nn.Parameter(p.detach().clone()) for p in ours]
    kw = dict(betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)
    opt = Muon([{"params": ours, "muon": False}], adamw_lr=0.02, **kw)
    opt_ref = torch.optim.AdamW(ref, lr=0.02, **kw)
    for step in range(6):
        quadratic_grads(ours, step)
        quadratic_grads(ref, step)
        opt.step()
        opt_ref.step()
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p.detach(), q.detach(), atol=1e-12, rtol=0)
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(opt.state[p][key], opt_ref.state[q][key], atol=1e-12, rtol=0)
        assert float(opt.state[p]["step"]) == 6.0


def test_adamw_first_step_by_hand_bias_correction():
    # step 1: m̂ = g and v̂ = g², so p1 = p0 (1 - lr λ) - lr g / (|g| + eps); a large eps shows where it goes
    p0 = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)
    g = torch.tensor([[0.5, -1.5], [2.0, 0.0]], dtype=torch.float64)
    p = nn.Parameter(p0.clone())
    p.grad = g.clone()
    opt = Muon([{"params": [p], "muon": False, "lr": 0.1}], betas=(0.7, 0.8), eps=0.5, weight_decay=0.2)
    opt.step()
    expected = p0 * (1 - 0.1 * 0.2) - 0.1 * g / (g.abs() + 0.5)
    torch.testing.assert_close(p.detach(), expected, atol=1e-14, rtol=0)
    torch.testing.assert_close(opt.state[p]["exp_avg"], 0.3 * g, atol=1e-15, rtol=0)
    torch.testing.assert_close(opt.state[p]["exp_avg_sq"], 0.2 * g * g, atol=1e-15, rtol=0)
    # step 2, by hand: m2 = 0.7 m1 + 0.3 g2, v2 = 0.8 v1 + 0.2 g2², corrected by 1 - 0.7², 1 - 0.8²
    g2 = torch.tensor([[-1.0, 0.25], [1.0, 2.0]], dtype=torch.float64)
    p.grad = g2.clone()
    opt.step()
    m2, v2 = 0.7 * 0.3 * g + 0.3 * g2, 0.8 * 0.2 * g * g + 0.2 * g2 * g2
    expected = expected * (1 - 0.02) - 0.1 * (m2 / 0.51) / ((v2 / 0.36).sqrt() + 0.5)
    torch.testing.assert_close(p.detach(), expected, atol=1e-14, rtol=0)


def test_mixed_optimizer_routes_each_group():
    w = nn.Parameter(randn(3, 3, seed=0))
    b = nn.Parameter(randn(3, seed=1))
    opt = Muon([{"params": [w]}, {"params": [b], "muon": False}], lr=0.05, adamw_lr=0.01)
    w.grad, b.grad = randn(3, 3, seed=2), randn(3, seed=3)
    w0, b0 = w.detach().clone(), b.detach().clone()
    opt.step()
    assert set(opt.state[w]) == {"momentum_buffer"} and set(opt.state[b]) == {"step", "exp_avg", "exp_avg_sq"}
    torch.testing.assert_close(b.detach(), b0 - 0.01 * torch.sign(b.grad), atol=1e-8, rtol=0)
    torch.testing.assert_close(w.detach(), w0 - 0.05 * ns_by_svd(w.grad), atol=1e-6, rtol=0)


# --------------------------------------------------------------------------- against torch.optim.Muon

@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon needs torch >= 2.9")
@pytest.mark.parametrize("nesterov", [True, False])
def test_muon_matches_torch_muon_over_five_steps(nesterov):
    shapes = [(12, 4), (4, 12), (6, 6)]
    ours = [nn.Parameter(randn(*s, seed=i, dtype=torch.float32)) for i, s in enumerate(shapes)]
    ref = [nn.Parameter(p.detach().clone()) for p in ours]
    start = [p.detach().clone() for p in ours]
    kw = dict(lr=0.02, momentum=0.9, nesterov=nesterov, weight_decay=0.1)
    opt, opt_ref = Muon(ours, **kw), torch.optim.Muon(ref, **kw)
    for step in range(5):
        for ps in (ours, ref):
            quadratic_grads(ps, step)
        opt.step()
        opt_ref.step()
    for p, q, p0 in zip(ours, ref, start, strict=True):
        d, d_ref = p.detach() - p0, q.detach() - p0
        assert (d - d_ref).norm() / d_ref.norm() < 0.02
        torch.testing.assert_close(opt.state[p]["momentum_buffer"], opt_ref.state[q]["momentum_buffer"],
                                   rtol=0.02, atol=0.02)


# --------------------------------------------------------------------------- validation

def test_muon_defaults():
    opt = Muon([torch.zeros(2, 2, requires_grad=True)])
    d = opt.defaults
    assert (d["lr"], d["adamw_lr"], d["momentum"], d["nesterov"], d["ns_steps"]) == (0.02, 3e-3, 0.95, True, 5)
    assert (d["betas"], d["eps"], d["weight_decay"], d["muon"]) == ((0.9, 0.95), 1e-8, 0.0, True)
    assert isinstance(d["betas"], tuple)


def test_group_lrs_adamw_lr_fills_in_and_own_lr_wins():
    w1, w2 = torch.zeros(2, 2, requires_grad=True), torch.zeros(2, 2, requires_grad=True)
    b1, b2 = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    opt = Muon([{"params": [w1]}, {"params": [w2], "lr": 0.3, "weight_decay": 0.5},
                {"params": [b1], "muon": False}, {"params": [b2], "muon": False, "lr": 0.7}],
               lr=0.05, adamw_lr=0.004, weight_decay=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.3, 0.004, 0.7]
    assert [g["muon"] for g in opt.param_groups] == [True, True, False, False]
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.5, 0.1, 0.1]
    opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)], "muon": False})
    assert opt.param_groups[-1]["lr"] == 0.004


def test_muon_group_with_a_vector_names_its_shape():
    msg = ("Muon groups take 2-D weight matrices only, got a parameter of shape (4,); put it in a group with "
           "'muon': False (AdamW)")
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        Muon([torch.zeros(3, 3, requires_grad=True), torch.zeros(4, requires_grad=True)])
    with pytest.raises(ValueError, match=re.escape("shape (2, 3, 4);")):
        Muon([{"params": [torch.zeros(2, 3, 4, requires_grad=True)], "muon": True}])
    Muon([{"params": [torch.zeros(2, 3, 4, requires_grad=True), torch.zeros(4, requires_grad=True)],
           "muon": False}])


def test_rejected_group_is_not_added():
    opt = Muon([torch.zeros(2, 3, requires_grad=True)])
    with pytest.raises(ValueError, match="^Muon groups take 2-D"):
        opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)]})
    assert len(opt.param_groups) == 1


def test_group_checks():
    w = torch.zeros(2, 2, requires_grad=True)
    with pytest.raises(TypeError, match=r"^a group's 'muon' must be True or False, got 'yes'$"):
        Muon([{"params": [w], "muon": "yes"}])
    with pytest.raises(TypeError, match=r"^a group's 'muon' must be True or False, got 1$"):
        Muon([{"params": [w], "muon": 1}])
    opt = Muon([w])
    with pytest.raises(TypeError, match=r"^a parameter group must be a dict, got list$"):
        opt.add_param_group([torch.zeros(2, 2, requires_grad=True)])


def real_msg(name, interval, v):
    # "lr must be a number >= 0": the "in" before ">=" is optional (see the report on the wording)
    interval = "in " + re.escape(interval) if interval[0] in "[(" else "(in )?" + re.escape(interval)
    return f"^{re.escape(name)} must be a number {interval}, got {re.escape(repr(v))}$"


@pytest.mark.parametrize("kw, name, interval, v", [
    (dict(lr=-0.1), "lr", ">= 0", -0.1),
    (dict(lr=float("inf")), "lr", ">= 0", float("inf")),
    (dict(lr=True), "lr", ">= 0", True),
    (dict(adamw_lr=-1e-3), "adamw_lr", ">= 0", -1e-3),
    (dict(momentum=1.0), "momentum", "[0, 1)", 1.0),
    (dict(momentum=-0.5), "momentum", "[0, 1)", -0.5),
    (dict(momentum="0.9"), "momentum", "[0, 1)", "0.9"),
    (dict(betas=(0.9, 1.0)), "betas[1]", "[0, 1)", 1.0),
    (dict(betas=(-0.1, 0.9)), "betas[0]", "[0, 1)", -0.1),
    (dict(eps=-1e-8), "eps", ">= 0", -1e-8),
    (dict(weight_decay=float("nan")), "weight_decay", ">= 0", float("nan")),
    (dict(weight_decay=-0.1), "weight_decay", ">= 0", -0.1),
])
def test_muon_rejects_bad_numbers(kw, name, interval, v):
    with pytest.raises(ValueError, match=real_msg(name, interval, v)):
        Muon([torch.zeros(2, 2, requires_grad=True)], **kw)


def test_muon_rejects_bad_options():
    w = [torch.zeros(2, 2, requires_grad=True)]
    with pytest.raises(ValueError, match=r"^betas must be two numbers in \[0, 1\), got \(0\.9,\)$"):
        Muon(w, betas=(0.9,))
    with pytest.raises(ValueError, match=r"^betas must be two numbers in \[0, 1\), got 0\.9$"):
        Muon(w, betas=0.9)
    with pytest.raises(TypeError, match=r"^nesterov must be True or False, got 1$"):
        Muon(w, nesterov=1)
    with pytest.raises(ValueError, match=r"^ns_steps must be >= 1, got 0$"):
        Muon(w, ns_steps=0)
    with pytest.raises(TypeError, match=r"^ns_steps must be an int, got float 5\.0$"):
        Muon(w, ns_steps=5.0)
    Muon(w, lr=0.0, adamw_lr=0.0, momentum=0.0, betas=[0.0, 0.0], eps=0.0, ns_steps=1)     # edges allowed


# --------------------------------------------------------------------------- state dict

def mixed_params():
    return [nn.Parameter(randn(*s, seed=i)) for i, s in enumerate([(5, 3), (3, 5), (5,), (4, 2)])]


def mixed_opt(ps):
    return Muon([{"params": ps[:2], "weight_decay": 0.05}, {"params": ps[2:], "muon": False}],
                lr=0.03, adamw_lr=0.01, momentum=0.9, weight_decay=0.1)


def test_state_dict_round_trip_is_bit_identical():
    straight = mixed_params()
    opt = mixed_opt(straight)
    for step in range(6):
        quadratic_grads(straight, step)
        opt.step()

    first = mixed_params()
    opt1 = mixed_opt(first)
    for step in range(3):
        quadratic_grads(first, step)
        opt1.step()
    buf = io.BytesIO()
    torch.save(opt1.state_dict(), buf)
    resumed = [nn.Parameter(p.detach().clone()) for p in first]
    opt2 = mixed_opt(resumed)
    buf.seek(0)
    opt2.load_state_dict(torch.load(buf, weights_only=True))
    assert [g["muon"] for g in opt2.param_groups] == [True, False]
    for step in range(3, 6):
        quadratic_grads(resumed, step)
        opt2.step()
    for p, q in zip(straight, resumed, strict=True):
        assert torch.equal(p.detach(), q.detach())
    for p, q in zip(straight, resumed, strict=True):
        for k, v in opt.state[p].items():
            assert torch.equal(v, opt2.state[q][k]), k


# --------------------------------------------------------------------------- muon_param_groups

def tiny_gpt(vocab=11, **kw) -> GPT:
    cfg = dict(vocab_size=vocab, block_size=8, n_layer=2, n_head=2, n_embd=8)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg))


def names_of(model, params):
    by_id = {id(p): n for n, p in model.named_parameters()}
    return [by_id[id(p)] for p in params]


@pytest.mark.parametrize("head_features", [None, 11])
def test_muon_param_groups_on_gpt(head_features):
    model = tiny_gpt()
    groups = muon_param_groups(model, lr=0.04, adamw_lr=0.002, weight_decay=0.1, head_features=head_features)
    assert [(g["muon"], g["lr"], g["weight_decay"]) for g in groups] == [
        (True, 0.04, 0.1), (False, 0.002, 0.1), (False, 0.002, 0.0)]
    hidden = [f"transformer.h.{i}.{n}.weight" for i in range(2)
              for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]
    assert sorted(names_of(model, groups[0]["params"])) == sorted(hidden)
    assert sorted(names_of(model, groups[1]["params"])) == ["transformer.wpe.weight", "transformer.wte.weight"]
    vectors = names_of(model, groups[2]["params"])
    assert all(n.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight", ".bias")) for n in vectors)
    assert len(vectors) == 2 * (4 + 4) + 2                       # per block: 2 LNs × 2, 4 Linear biases
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    Muon(groups).step()                                           # accepted as is (no grads: a no-op)


def test_muon_param_groups_frozen_and_no_bias():
    model = tiny_gpt(bias=False)
    model.transformer.h[0].mlp.c_fc.weight.requires_grad_(False)
    model.transformer.h[1].ln_2.weight.requires_grad_(False)
    model.transformer.wpe.weight.requires_grad_(False)
    groups = muon_param_groups(model)
    assert [(g["muon"], g["lr"], g["weight_decay"]) for g in groups] == [
        (True, 0.02, 0.0), (False, 3e-3, 0.0), (False, 3e-3, 0.0)]
    ids = [id(p) for g in groups for p in g["params"]]
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert len(ids) == len(set(ids)) == len(trainable) and set(ids) == trainable
    assert len(groups[0]["params"]) == 7
    assert names_of(model, groups[1]["params"]) == ["transformer.wte.weight"]
    assert len(groups[2]["params"]) == 2 * 2 + 1 - 1              # LN gains only, one frozen


def test_muon_param_groups_head_features_on_the_mlp_lm():
    model = MLPLanguageModel(13, context=3, embed_dim=4, hidden=20)
    without = muon_param_groups(model)
    assert names_of(model, without[0]["params"]) == ["hidden.weight", "out.weight"]
    groups = muon_param_groups(model, head_features=13)
    assert names_of(model, groups[0]["params"]) == ["hidden.weight"]
    assert names_of(model, groups[1]["params"]) == ["embedding.weight", "out.weight"]
    assert names_of(model, groups[2]["params"]) == ["hidden.bias", "out.bias"]


def test_head_features_only_excludes_the_output_layer():
    # vocab_size == n_embd: both c_proj layers have vocab_size outputs but are hidden layers
    model = tiny_gpt(vocab=8)
    groups = muon_param_groups(model, head_features=8)
    assert len(groups[0]["params"]) == 8
    assert sorted(names_of(model, groups[1]["params"])) == ["transformer.wpe.weight", "transformer.wte.weight"]


def test_muon_param_groups_drops_empty_groups():
    lin = nn.Linear(3, 4, bias=False)
    groups = muon_param_groups(lin, weight_decay=0.2)
    assert len(groups) == 1 and groups[0]["muon"] is True and groups[0]["params"] == [lin.weight]
    emb = nn.Embedding(5, 2)
    groups = muon_param_groups(emb)
    assert len(groups) == 1 and groups[0]["muon"] is False and groups[0]["params"] == [emb.weight]


def test_muon_param_groups_bad_args():
    with pytest.raises(TypeError, match=r"^model must be a torch\.nn\.Module, got list$"):
        muon_param_groups([nn.Parameter(torch.zeros(2, 2))])
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match=r"^model has no trainable parameters$"):
        muon_param_groups(frozen)
    with pytest.raises(ValueError, match=real_msg("lr", ">= 0", -0.02)):
        muon_param_groups(nn.Linear(2, 2), lr=-0.02)
    with pytest.raises(ValueError, match=real_msg("adamw_lr", ">= 0", float("nan"))):
        muon_param_groups(nn.Linear(2, 2), adamw_lr=float("nan"))
    with pytest.raises(ValueError, match=real_msg("weight_decay", ">= 0", -1)):
        muon_param_groups(nn.Linear(2, 2), weight_decay=-1)
    with pytest.raises(ValueError, match=r"^head_features must be >= 1, got 0$"):
        muon_param_groups(nn.Linear(2, 2), head_features=0)
    with pytest.raises(TypeError, match=r"^head_features must be an int, got bool True$"):
        muon_param_groups(nn.Linear(2, 2), head_features=True)


# --------------------------------------------------------------------------- train_lm(optimizer="muon")

@functools.lru_cache(maxsize=1)
def docs_ids():
    text = docs_corpus(6_000)
    vocab = CharVocab.from_text(text)
    return len(vocab), vocab.encode(text)


def quiet(**kw) -> LMConfig:
    return LMConfig(progress=False, **kw)


def test_lmconfig_optimizer_validation():
    with pytest.raises(ValueError, match=r"^LMConfig\.optimizer must be 'adamw' or 'muon', got 'sgd'$"):
        quiet(steps=1, optimizer="sgd")
    with pytest.raises(ValueError, match=r"^LMConfig\.muon_lr must be a finite number > 0, got 0\.0$"):
        quiet(steps=1, muon_lr=0.0)
    with pytest.raises(ValueError, match=r"^LMConfig\.muon_lr must be a finite number > 0, got inf$"):
        quiet(steps=1, muon_lr=float("inf"))
    with pytest.raises(TypeError, match=r"^LMConfig\.muon_lr must be a number, got str '0\.02'$"):
        quiet(steps=1, muon_lr="0.02")
    with pytest.raises(ValueError, match=r"^LMConfig\.muon_momentum must be a finite number >= 0, got -0\.1$"):
        quiet(steps=1, muon_momentum=-0.1)
    with pytest.raises(ValueError, match=r"^LMConfig\.muon_momentum must be in \[0, 1\), got 1\.0$"):
        quiet(steps=1, muon_momentum=1.0)
    with pytest.raises(TypeError, match=r"^LMConfig\.muon_momentum must be a number, got bool True$"):
        quiet(steps=1, muon_momentum=True)
    cfg = quiet(steps=1)
    assert (cfg.optimizer, cfg.muon_lr, cfg.muon_momentum) == ("adamw", 0.02, 0.95)
    quiet(steps=1, optimizer="muon", muon_momentum=0.0)


@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_train_lm_first_step_updates(optimizer):
    # one step from the same start: Muon moves each hidden matrix by muon_lr · √max(1, out/in) · NS(g), whose
    # top singular value is p⁵(s₁/‖s‖) ∈ [0.68, 1.21]; AdamW's first step moves every entry by about lr.
    vocab, ids = docs_ids()
    seed_everything(0)
    model = tiny_gpt(vocab)
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_lm(model, ids, quiet(steps=1, block_size=8, batch_size=4, lr=0.01, muon_lr=0.05, grad_clip=None,
                               optimizer=optimizer))
    after = dict(model.named_parameters())
    for name in ("transformer.h.0.mlp.c_fc.weight", "transformer.h.1.attn.c_proj.weight",
                 "transformer.h.0.mlp.c_proj.weight"):
        delta = after[name].detach() - w0[name]
        out, inn = delta.shape
        if optimizer == "muon":
            sv = torch.linalg.svdvals(delta / (0.05 * math.sqrt(max(1.0, out / inn))))
            assert 0.65 < float(sv[0]) < 1.25 and float(sv[-1]) >= 0.0, (name, sv)
        else:
            assert 0.0099 < float(delta.abs().max()) <= 0.0100001, name
    delta = (after["transformer.wte.weight"] - w0["transformer.wte.weight"]).detach()
    assert 0.0099 < float(delta.abs().max()) <= 0.0100001


def test_train_lm_muon_learns_and_logs_both_rates():
    vocab, ids = docs_ids()
    seed_everything(0)
    model = tiny_gpt(vocab, block_size=16, n_embd=16)
    cfg = quiet(steps=40, block_size=16, batch_size=8, lr=3e-3, min_lr=3e-4, muon_lr=0.03,
                lr_schedule="cosine", warmup_steps=4, optimizer="muon")
    h = train_lm(model, ids, cfg).history
    losses = h["loss"]
    assert math.isclose(losses[0], math.log(vocab), rel_tol=0.1)
    assert sum(losses[-5:]) / 5 < losses[0] - 0.5          # 4.10 → 3.28 nats here
    lrs, muon_lrs = h["lr"], h["muon_lr"]
    assert len(lrs) == len(muon_lrs) == 40
    for lr, mlr in zip(lrs, muon_lrs, strict=True):
        assert mlr / lr == pytest.approx(10.0, rel=1e-9)
    assert lrs[:4] == pytest.approx([3e-3 * (s + 1) / 4 for s in range(4)], rel=1e-9)
    assert lrs[4] == pytest.approx(3e-3, rel=1e-9) and lrs[-1] == pytest.approx(3e-4, rel=1e-9)
    mid = 4 + 35 // 2
    expected_mid = 3e-4 + (3e-3 - 3e-4) * 0.5 * (1 + math.cos(math.pi * (mid - 4) / 35))
    assert lrs[mid] == pytest.approx(expected_mid, rel=1e-9)


def test_train_lm_muon_only_model_logs_the_adamw_equivalent_rate():
    # no AdamW group at all: "lr" is muon_lr · lr / muon_lr, still following the schedule
    class LinearOnly(nn.Module):
        def __init__(self, vocab):
            super().__init__()
            self.vocab_size = vocab
            self.mix = nn.Linear(vocab, 2 * vocab, bias=False)     # out_features ≠ vocab: a Muon weight

        def forward(self, idx):
            out = self.mix(nn.functional.one_hot(idx, self.vocab_size).float())
            return out.unflatten(-1, (2, self.vocab_size)).sum(-2)

    ids = torch.randint(0, 5, (200,), generator=gen(0))
    seed_everything(0)
    h = train_lm(LinearOnly(5), ids, quiet(steps=3, block_size=4, batch_size=2, lr=2e-3, muon_lr=0.04,
                                           warmup_steps=2, optimizer="muon")).history
    assert h["muon_lr"] == pytest.approx([0.02, 0.04, 0.04], rel=1e-12)
    assert h["lr"] == pytest.approx([1e-3, 2e-3, 2e-3], rel=1e-12)


def test_train_lm_adamw_has_no_muon_rate_and_differs_from_muon():
    vocab, ids = docs_ids()

    def run(optimizer):
        seed_everything(0)
        model = tiny_gpt(vocab)
        h = train_lm(model, ids, quiet(steps=3, block_size=8, batch_size=4, optimizer=optimizer)).history
        return h, model

    h_adam, m_adam = run("adamw")
    h_muon, m_muon = run("muon")
    assert "muon_lr" not in h_adam.keys() and "muon_lr" in h_muon.keys()
    assert h_adam["lr"] == h_muon["lr"] == [1e-3] * 3
    assert h_adam["loss"][0] == h_muon["loss"][0] and h_adam["loss"][2] != h_muon["loss"][2]
    assert not torch.equal(m_adam.transformer.h[0].mlp.c_fc.weight, m_muon.transformer.h[0].mlp.c_fc.weight)


def muon_resume_runs(tmp_path):
    vocab, ids = docs_ids()
    cfg = dict(steps=10, block_size=8, batch_size=4, lr_schedule="cosine", warmup_steps=2, log_every=1,
               optimizer="muon", muon_lr=0.03, weight_decay=0.1)

    seed_everything(0)
    straight = tiny_gpt(vocab)
    h_straight = train_lm(straight, ids, quiet(**cfg)).history

    class Crash(Exception):
        pass

    def crash_at_7(step, metrics):
        if step == 7:
            raise Crash

    seed_everything(0)
    model = tiny_gpt(vocab)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(Crash):
        train_lm(model, ids, quiet(ckpt_dir=ckpt, ckpt_every=3, **cfg), callbacks=[crash_at_7])
    torch.manual_seed(123)
    fresh = tiny_gpt(vocab)                                   # a new process: fresh weights, restored from disk
    h_resumed = train_lm(fresh, ids, quiet(ckpt_dir=ckpt, ckpt_every=3, **cfg)).history
    return straight, h_straight, fresh, h_resumed


def test_train_lm_muon_resume_is_bit_identical(tmp_path):
    straight, h_straight, fresh, h_resumed = muon_resume_runs(tmp_path)
    for k, v in straight.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k
    for key in ("loss", "grad_norm", "step"):
        assert h_resumed[key] == h_straight[key], key
    assert len(h_resumed["muon_lr"]) == 10


def test_train_lm_muon_resume_logs_the_scheduled_rates(tmp_path):
    _, h_straight, _, h_resumed = muon_resume_runs(tmp_path)
    assert h_resumed["lr"] == h_straight["lr"] and h_resumed["muon_lr"] == h_straight["muon_lr"]
    assert h_resumed.records == h_straight.records


def one_step_gpt(vocab, ids, **kw):
    seed_everything(0)
    model = tiny_gpt(vocab)
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_lm(model, ids, quiet(block_size=8, batch_size=4, lr=0.01, muon_lr=0.05, grad_clip=None,
                               optimizer="muon", **kw))
    return w0, {n: p.detach().clone() for n, p in model.named_parameters()}


def test_train_lm_muon_weight_decay_uses_each_groups_lr():
    # same batch, same first update: the decay alone is -lr · λ · W0 with Muon's lr for hidden matrices,
    # AdamW's for the embeddings, none for gains and biases
    vocab, ids = docs_ids()
    w0, plain = one_step_gpt(vocab, ids, steps=1)
    _, decayed = one_step_gpt(vocab, ids, steps=1, weight_decay=0.5)
    for name, lr in (("transformer.h.0.mlp.c_fc.weight", 0.05), ("transformer.h.1.attn.c_attn.weight", 0.05),
                     ("transformer.wte.weight", 0.01), ("transformer.wpe.weight", 0.01),
                     ("transformer.h.0.ln_1.weight", 0.0), ("transformer.h.0.mlp.c_fc.bias", 0.0)):
        torch.testing.assert_close(decayed[name] - plain[name], -lr * 0.5 * w0[name], atol=1e-7, rtol=0)


def test_train_lm_passes_muon_momentum_and_betas():
    # the first step does not depend on μ or β (a multiple of g, bias-corrected); the second does
    vocab, ids = docs_ids()
    _, base = one_step_gpt(vocab, ids, steps=2)
    _, other_mu = one_step_gpt(vocab, ids, steps=2, muon_momentum=0.3)
    _, other_betas = one_step_gpt(vocab, ids, steps=2, betas=(0.5, 0.6))
    _, one_a = one_step_gpt(vocab, ids, steps=1)
    _, one_b = one_step_gpt(vocab, ids, steps=1, muon_momentum=0.3, betas=(0.5, 0.6))
    hidden, emb = "transformer.h.0.mlp.c_fc.weight", "transformer.wte.weight"
    assert torch.allclose(one_a[hidden], one_b[hidden], atol=1e-6) and torch.allclose(one_a[emb], one_b[emb])
    assert (base[hidden] - other_mu[hidden]).abs().max() > 1e-3
    assert (base[emb] - other_betas[emb]).abs().max() > 1e-4


def test_train_lm_muon_keeps_an_untied_output_layer_on_adamw():
    ids = torch.randint(0, 7, (300,), generator=gen(0))
    seed_everything(0)
    model = MLPLanguageModel(7, context=3, embed_dim=4, hidden=16)
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_lm(model, ids, quiet(steps=1, block_size=8, batch_size=4, lr=0.01, muon_lr=0.05, grad_clip=None,
                               optimizer="muon"))
    d_out = model.out.weight.detach() - w0["out.weight"]                # (7, 16): AdamW, every entry ±lr
    assert 0.0099 < float(d_out.abs().max()) <= 0.0100001
    d_hidden = model.hidden.weight.detach() - w0["hidden.weight"]       # (16, 12): Muon, scale √(16/12)
    sv = torch.linalg.svdvals(d_hidden / (0.05 * math.sqrt(16 / 12)))
    assert 0.65 < float(sv[0]) < 1.25


@pytest.mark.parametrize("key, value, expected", [
    ("lr", -0.1, "a group's 'lr' must be a number >= 0, got -0.1"),
    ("weight_decay", float("nan"), "a group's 'weight_decay' must be a number >= 0, got nan"),
    ("momentum", 1.0, "a group's 'momentum' must be a number in [0, 1), got 1.0"),
])
def test_a_groups_own_settings_are_checked(key, value, expected):
    w = torch.nn.Parameter(torch.zeros(3, 2))
    with pytest.raises(ValueError, match=re.escape(expected)):
        Muon([{"params": [w], key: value}])
