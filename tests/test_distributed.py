"""aigc_course.distributed and the data-parallel / gradient-accumulation parts of train, train_lm, train_vae and
train_gan.

Single process: DistInfo from (monkeypatched) torchrun variables and their error messages, the helpers' no-op
behaviour, rank_seed, StepContext.accumulate, grad_accum validation and equivalence (the accumulated gradient
equals the gradient of one batch of grad_accum·batch_size, for lm, vae and a conditional gan), grad_accum=1
bit-identical to an independent plain loop, and the resume guards (grad_accum, number of processes).

Two gloo processes (tests/ddp_job.py under ``torch.distributed.run --standalone --nproc_per_node=2``, run once
per group of scenarios): DDP-averaged gradients equal the single-process gradient of the whole batch, also
with no_sync accumulation and on the all-reduce path; train_lm gives identical weights on both ranks, only rank
0 writes checkpoints, a resume continues exactly, the first gradient equals the single-process gradient of
both ranks' batches; train_vae and train_gan (batch norm) stay identical across ranks; a NaN on one rank
stops both; a single-process checkpoint is refused by 2 processes unless on_config_change='use_new'.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from aigc_course import distributed as D
from aigc_course.checkpoint import latest_checkpoint
from aigc_course.device import seed_everything
from aigc_course.distributed import DistInfo, rank_seed
from aigc_course.gan import (
    GANConfig,
    MLPDiscriminator,
    MLPGenerator,
    discriminator_loss,
    generator_loss,
    train_gan,
)
from aigc_course.lm import LMConfig, _draw_windows, train_lm
from aigc_course.train import NonFiniteLossError, StepContext, TrainConfig, train
from aigc_course.vae import VAEConfig, build_vae, elbo, train_vae

torch.set_num_threads(1)
JOB_PATH = Path(__file__).with_name("ddp_job.py")
CPU = torch.device("cpu")


def exact(msg: str) -> str:
    return "^" + re.escape(msg) + "$"


def _load_job():
    spec = importlib.util.spec_from_file_location("ddp_job", JOB_PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


job = _load_job()


# --------------------------------------------------------------------------- DistInfo from the environment

@pytest.fixture
def env(monkeypatch):
    for name in D.ENV_VARS:
        monkeypatch.delenv(name, raising=False)

    def set_env(**kw):
        for k, v in kw.items():
            monkeypatch.setenv(k, str(v))
    yield set_env
    D.teardown_distributed()


def test_without_torchrun_everything_is_a_single_process(env):
    info = D.setup_distributed()
    assert info == DistInfo(0, 1, 0, None, CPU)
    assert info.is_main and not info.distributed
    assert D.current() == info and D.is_main_process()
    t = torch.tensor([1.5, -2.0])
    mean = D.all_reduce_mean(t)
    assert torch.equal(mean, t) and mean is not t and mean.data_ptr() != t.data_ptr()
    assert D.broadcast_object({"a": 1}) == {"a": 1} and D.all_gather_object(3) == [3]
    D.barrier()
    model = nn.Linear(2, 1)
    assert D.wrap_ddp(model) is model and D.unwrap(model) is model and D.wrap_ddp(model, info) is model
    with D.no_sync(model):
        pass
    before = [p.clone() for p in model.parameters()]
    D.broadcast_module(model)
    D.average_batchnorm_stats(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_world_size_one_is_a_single_process_on_the_chosen_device(env):
    env(WORLD_SIZE=1, RANK=0, LOCAL_RANK=0)
    assert D.setup_distributed("cpu") == DistInfo(0, 1, 0, None, CPU)


def test_dist_info_is_frozen_and_its_properties():
    info = DistInfo(rank=1, world_size=4, local_rank=1, backend="gloo", device=CPU)
    assert not info.is_main and info.distributed
    assert DistInfo(0, 4, 0, "gloo", CPU).is_main
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.rank = 0  # type: ignore[misc]


GOOD = dict(WORLD_SIZE=2, RANK=1, LOCAL_RANK=1, MASTER_ADDR="127.0.0.1", MASTER_PORT=29500)


@pytest.mark.parametrize("changes, message", [
    (dict(WORLD_SIZE="two"), "environment variable WORLD_SIZE must be a whole number >= 1, got 'two'"),
    (dict(WORLD_SIZE=0), "environment variable WORLD_SIZE must be >= 1, got 0"),
    (dict(RANK=2), "environment variable RANK must be from 0 to 1 (below WORLD_SIZE=2), got 2"),
    (dict(RANK="1.0"), "environment variable RANK must be a whole number >= 0, got '1.0'"),
    (dict(RANK=None), "environment variable RANK is not set, but WORLD_SIZE='2' asks for a distributed run; "
                      "launch with torchrun (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT) "
                      "or set it"),
    (dict(LOCAL_RANK=-1), "environment variable LOCAL_RANK must be a whole number >= 0, got '-1'"),
    (dict(RANK=0, LOCAL_RANK=1), "environment variable LOCAL_RANK must be from 0 to 0 (at most RANK=0: ranks "
                                 "count across machines), got 1"),
    (dict(MASTER_ADDR=None), "environment variable MASTER_ADDR is not set, but WORLD_SIZE=2 asks for a "
                             "distributed run; launch with torchrun or set it (e.g. MASTER_ADDR=127.0.0.1)"),
    (dict(MASTER_PORT=70000), "environment variable MASTER_PORT must be from 1 to 65535, got 70000"),
])
def test_inconsistent_torchrun_variables_are_named(env, monkeypatch, changes, message):
    env(**{k: v for k, v in {**GOOD, **changes}.items() if v is not None})
    for k, v in changes.items():
        if v is None:
            monkeypatch.delenv(k, raising=False)
    with pytest.raises(ValueError, match=exact(message)):
        D.setup_distributed("cpu")
    assert not torch.distributed.is_initialized()


def test_devices_that_cannot_run_distributed_are_refused(env):
    env(**GOOD)
    with pytest.raises(ValueError, match=exact("device='mps': distributed training runs on 'cpu' (gloo) or "
                                               "'cuda' (nccl)")):
        D.setup_distributed("mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=exact("device='cuda': CUDA is not available on this machine")):
            D.setup_distributed("cuda")
    with pytest.raises(ValueError, match=exact("device='gpu' is not a device name; expected 'cpu' or 'cuda'")):
        D.setup_distributed("gpu")
    with pytest.raises(TypeError, match=exact("device must be a str, torch.device or None, got int")):
        D.setup_distributed(0)  # type: ignore[arg-type]
    assert not torch.distributed.is_initialized()


def test_helpers_refuse_wrong_types():
    with pytest.raises(TypeError, match=exact("t must be a floating-point tensor to average, got dtype torch.int64")):
        D.all_reduce_mean(torch.tensor([1]))
    with pytest.raises(TypeError, match=exact("t must be a torch.Tensor, got list")):
        D.all_reduce_mean([1.0])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=exact("model must be a torch.nn.Module, got str")):
        D.wrap_ddp("model")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=exact("info must be a DistInfo or None, got int")):
        D.wrap_ddp(nn.Linear(1, 1), 2)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=exact("model must be a torch.nn.Module, got int")):
        D.unwrap(3)  # type: ignore[arg-type]


def test_rank_seed():
    assert rank_seed(7, 0) == 7
    seeds = [rank_seed(7, r) for r in range(64)]
    assert len(set(seeds)) == 64 and all(0 <= s < 2**32 for s in seeds)
    assert seeds == [rank_seed(7, r) for r in range(64)]          # the same on every call
    assert rank_seed(8, 1) != rank_seed(7, 1) and rank_seed(0, 1) != rank_seed(1, 0)
    with pytest.raises(ValueError, match=exact("rank must be an int >= 0, got -1")):
        rank_seed(0, -1)
    with pytest.raises(ValueError, match=exact("rank must be an int >= 0, got True")):
        rank_seed(0, True)
    with pytest.raises(ValueError, match=exact("seed must be in [0, 2**32), got -3")):
        rank_seed(-3, 0)


# --------------------------------------------------------------------------- StepContext.accumulate

def _linear_ctx(lr: float = 1.0):
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(2.0)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    return model, StepContext({"main": opt}, {"main": list(model.parameters())}, None, None, CPU)


def test_accumulated_gradients_add_up_and_one_step_applies_them():
    model, ctx = _linear_ctx()
    (model(torch.ones(1, 1)).sum() * 100).backward()   # a stale gradient: dropped by the first accumulate
    ctx.accumulate(model(torch.full((1, 1), 3.0)).sum())           # d/dw (3w) = 3
    assert model.weight.grad.item() == 3.0 and model.weight.item() == 2.0   # no step yet
    norm = ctx.optimize(model(torch.full((1, 1), -5.0)).sum())     # + (−5)
    assert norm == 2.0 and model.weight.item() == 4.0              # w − lr·(3 − 5)
    assert model.weight.grad is None
    norm = ctx.optimize(model(torch.full((1, 1), 1.0)).sum())      # a plain step after it: nothing left over
    assert norm == 1.0 and model.weight.item() == 3.0


def test_a_nan_micro_batch_drops_the_accumulated_gradients():
    model, ctx = _linear_ctx()
    ctx.accumulate(model(torch.full((1, 1), 3.0)).sum())
    with pytest.raises(NonFiniteLossError, match=exact("loss for optimizer 'main' is inf at step 0")):
        ctx.accumulate(model(torch.ones(1, 1)).sum() * math.inf)
    assert model.weight.grad is None
    norm = ctx.optimize(model(torch.full((1, 1), 0.5)).sum())      # starts from zero again
    assert norm == 0.5 and model.weight.item() == 1.5
    with pytest.raises(KeyError, match="no optimizer named 'g'"):
        ctx.accumulate(model(torch.ones(1, 1)).sum(), "g")
    with pytest.raises(ValueError, match=exact("loss must be a scalar tensor, got Tensor (2,)")):
        ctx.accumulate(torch.ones(2))


def test_train_refuses_a_step_that_accumulates_without_optimizing():
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(ctx):
        ctx.accumulate(model(torch.ones(1, 1)).sum())

    with pytest.raises(RuntimeError, match=exact(
            "step_fn called ctx.accumulate(loss, 'main') at step 0 but no ctx.optimize(loss, 'main') after it to "
            "apply the accumulated gradients (call optimize for the last micro-batch)")):
        train(step, models=model, optimizers=opt, config=TrainConfig(steps=2, progress=False))


def test_ddp_of_a_single_process_is_the_model_itself():
    model, ctx = _linear_ctx()
    assert ctx.ddp(model) is model and ctx.dist == DistInfo(0, 1, 0, None, CPU)
    with pytest.raises(TypeError, match=exact("model must be a torch.nn.Module, got str")):
        ctx.ddp("model")  # type: ignore[arg-type]


def test_train_settings_are_validated():
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = TrainConfig(steps=1, progress=False)
    with pytest.raises(TypeError, match=exact("settings must be a dict of name -> value or None, got list")):
        train(lambda ctx: None, models=model, optimizers=opt, config=cfg, settings=[1])
    with pytest.raises(TypeError, match=exact("settings keys must be str, got 1")):
        train(lambda ctx: None, models=model, optimizers=opt, config=cfg, settings={1: 2})
    with pytest.raises(ValueError, match=exact("settings must not set 'amp': train() records TrainConfig's value "
                                               "itself")):
        train(lambda ctx: None, models=model, optimizers=opt, config=cfg, settings={"amp": True})


# --------------------------------------------------------------------------- grad_accum in the family trainers

@pytest.mark.parametrize("cls, kw", [(LMConfig, {}), (VAEConfig, {}), (GANConfig, {})])
def test_grad_accum_is_validated(cls, kw):
    name = cls.__name__
    assert cls(steps=1).grad_accum == 1
    with pytest.raises(ValueError, match=exact(f"{name}.grad_accum must be >= 1, got 0")):
        cls(steps=1, grad_accum=0)
    with pytest.raises(TypeError, match=exact(f"{name}.grad_accum must be an int, got float 2.0")):
        cls(steps=1, grad_accum=2.0)
    with pytest.raises(TypeError, match=exact(f"{name}.grad_accum must be an int, got bool True")):
        cls(steps=1, grad_accum=True)


class GradSpy:
    """Records, at every optimizer step, the gradients of its parameters (param-group order)."""

    def __enter__(self):
        self.steps: list[tuple[torch.optim.Optimizer, list[torch.Tensor]]] = []
        self.handle = register_optimizer_step_pre_hook(lambda opt, a, k: self.steps.append(
            (opt, [p.grad.clone() for g in opt.param_groups for p in g["params"]])))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def _close(got: list[torch.Tensor], want: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, atol=1e-6, rtol=1e-5)


def _lm_groups(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.ndim >= 2] + [p for p in model.parameters() if p.ndim < 2]


def test_lm_grad_accum_gradient_equals_the_large_batch_gradient():
    ids = job.lm_ids()
    seed_everything(0)
    model = job.lm_model()
    ref = copy.deepcopy(model)
    rng = torch.get_rng_state()
    with GradSpy() as spy:
        hist = train_lm(model, ids, job.lm_config(steps=1, grad_clip=None, grad_accum=3)).history
    torch.set_rng_state(rng)
    xs, ys = zip(*[_draw_windows(ids, 6, 4, None) for _ in range(3)], strict=True)  # 3 micro-batches of 4
    x, y = torch.cat(xs), torch.cat(ys)                                                # = one batch of 12
    loss = F.cross_entropy(ref(x).reshape(-1, job.V), y.reshape(-1))
    _close(spy.steps[0][1], torch.autograd.grad(loss, _lm_groups(ref)))
    assert hist["loss"][0] == pytest.approx(loss.item(), abs=1e-6)
    # and not the gradient of the last micro-batch alone
    last = F.cross_entropy(ref(xs[-1]).reshape(-1, job.V), ys[-1].reshape(-1))
    assert not torch.allclose(spy.steps[0][1][0], torch.autograd.grad(last, _lm_groups(ref))[0], atol=1e-4)


def test_lm_grad_accum_1_is_bit_identical_to_a_plain_loop():
    ids = job.lm_ids()
    seed_everything(0)
    model = job.lm_model()
    ref = copy.deepcopy(model)
    rng = torch.get_rng_state()
    cfg = job.lm_config(steps=3, weight_decay=0.1)
    hist = train_lm(model, ids, cfg).history
    torch.set_rng_state(rng)
    groups = [{"params": [p for p in ref.parameters() if p.ndim >= 2], "weight_decay": 0.1},
              {"params": [p for p in ref.parameters() if p.ndim < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    params = _lm_groups(ref)
    losses = []
    for _ in range(3):
        starts = torch.randint(len(ids) - 6, (4,))
        w = ids[starts[:, None] + torch.arange(7)]
        loss = F.cross_entropy(ref(w[:, :-1]).reshape(-1, job.V), w[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
    assert hist["loss"] == losses
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values(), strict=True))


def _vae_setup():
    data = (torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    seed_everything(1)
    model = build_vae(latent_dim=2, image_size=8, hidden=16)
    return data, model, copy.deepcopy(model)


def test_vae_grad_accum_gradient_equals_the_large_batch_gradient():
    data, model, ref = _vae_setup()
    rng = torch.get_rng_state()
    with GradSpy() as spy:
        train_vae(model, data, VAEConfig(steps=1, batch_size=4, grad_accum=2, beta=0.5, progress=False))
    torch.set_rng_state(rng)
    terms = []
    for _ in range(2):   # the batch and the ε of each micro-batch, in the trainer's order
        terms.append(elbo(ref, data[torch.randint(40, (4,))]))
    rec, kl = torch.cat([t.reconstruction for t in terms]), torch.cat([t.kl for t in terms])
    loss = -(rec - 0.5 * kl).mean()                     # one batch of 8
    _close(spy.steps[0][1], torch.autograd.grad(loss, list(ref.parameters())))


def test_vae_grad_accum_1_is_bit_identical_to_a_plain_loop():
    data, model, ref = _vae_setup()
    rng = torch.get_rng_state()
    hist = train_vae(model, data, VAEConfig(steps=3, batch_size=4, kl_warmup=2, progress=False)).history
    torch.set_rng_state(rng)
    opt = torch.optim.Adam(ref.parameters(), lr=1e-3)
    elbos = []
    for step in range(3):
        t = elbo(ref, data[torch.randint(40, (4,))])
        loss = -(t.reconstruction - min(1.0, step / 2) * t.kl).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        elbos.append(t.elbo.mean().item())
    assert hist["elbo"] == elbos
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values(), strict=True))


def _gan_setup(num_classes=None):
    data = torch.randn(60, 2, generator=torch.Generator().manual_seed(4))
    labels = torch.arange(60) % 2 if num_classes else None
    seed_everything(5)
    G = MLPGenerator(2, 2, hidden=8, depth=2, num_classes=num_classes)
    Dn = MLPDiscriminator(2, hidden=8, depth=2, num_classes=num_classes)
    return data, labels, G, Dn, copy.deepcopy(G), copy.deepcopy(Dn)


def test_gan_grad_accum_gradients_equal_the_large_batch_gradients():
    """A conditional GAN, so that the generator's micro-batches must reuse the labels of the right real batch."""
    data, labels, G, Dn, G0, D0 = _gan_setup(num_classes=2)
    d_after: dict[str, torch.Tensor] = {}
    rng = torch.get_rng_state()
    with GradSpy() as spy:
        hook = register_optimizer_step_pre_hook(
            lambda opt, a, k: d_after.update(copy.deepcopy(Dn.state_dict())) if opt.param_groups[0]["params"][0]
            is next(G.parameters()) else None)
        try:
            train_gan(G, Dn, data, GANConfig(steps=1, batch_size=4, grad_accum=3, progress=False), labels=labels)
        finally:
            hook.remove()
    (opt_d, grads_d), (opt_g, grads_g) = spy.steps
    assert opt_d.param_groups[0]["params"][0] is next(Dn.parameters())
    torch.set_rng_state(rng)
    xs, ys, zs = [], [], []
    for _ in range(3):
        idx = torch.randint(60, (4,))
        xs.append(data[idx])
        ys.append(labels[idx])
        zs.append(torch.randn(4, 2))
    x, y, z = torch.cat(xs), torch.cat(ys), torch.cat(zs)
    with torch.no_grad():
        fake = G0(z, y)
    d_loss = discriminator_loss(D0(x, y), D0(fake, y))          # one batch of 12
    _close(grads_d, torch.autograd.grad(d_loss, list(D0.parameters())))
    D0.load_state_dict(d_after)                                 # the generator meets the updated D
    zg = torch.cat([torch.randn(4, 2) for _ in range(3)])
    g_loss = generator_loss(D0(G0(zg, y), y))
    _close(grads_g, torch.autograd.grad(g_loss, list(G0.parameters())))


def test_gan_grad_accum_1_is_bit_identical_to_a_plain_loop():
    data, _, G, Dn, G0, D0 = _gan_setup()
    rng = torch.get_rng_state()
    hist = train_gan(G, Dn, data, GANConfig(steps=3, batch_size=4, progress=False)).history
    torch.set_rng_state(rng)
    opt_g = torch.optim.Adam(G0.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D0.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g_losses = []
    for _ in range(3):
        x = data[torch.randint(60, (4,))]
        z = torch.randn(4, 2)
        with torch.no_grad():
            fake = G0(z)
        d_loss = discriminator_loss(D0(x), D0(fake))
        opt_d.zero_grad()
        d_loss.backward()
        opt_d.step()
        g_loss = generator_loss(D0(G0(torch.randn(4, 2))))
        opt_g.zero_grad()
        g_loss.backward()
        opt_g.step()
        g_losses.append(g_loss.item())
    assert hist["g_loss"] == g_losses
    for a, b in ((G, G0), (Dn, D0)):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_a_resume_with_another_grad_accum_is_refused(tmp_path):
    ids = job.lm_ids()
    seed_everything(0)
    train_lm(job.lm_model(), ids, job.lm_config(steps=1, grad_accum=2, ckpt_dir=tmp_path))
    with pytest.raises(ValueError, match=re.escape("setting 'grad_accum': 2 in the checkpoint, '<absent>' now")):
        train_lm(job.lm_model(), ids, job.lm_config(steps=2, ckpt_dir=tmp_path))
    hist = train_lm(job.lm_model(), ids, job.lm_config(steps=2, grad_accum=2, ckpt_dir=tmp_path)).history
    assert [r["step"] for r in hist.records] == [0.0, 1.0]


# --------------------------------------------------------------------------- two gloo processes

def _run_job(out: Path, *scenarios: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    for name in D.ENV_VARS:
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(JOB_PATH),
           str(out), *scenarios]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired as e:  # a rank waiting for the other forever
        pytest.fail(f"the 2-process job {scenarios} hung: {e}")
    if proc.returncode != 0:
        pytest.fail(f"the 2-process job {scenarios} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                    f"{proc.stderr[-6000:]}")


@pytest.fixture(scope="module")
def basic_job(tmp_path_factory) -> Path:
    """grads, nan, mismatch and save_error scenarios (one launch of 2 processes)."""
    out = tmp_path_factory.mktemp("ddp_basic")
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train(lambda ctx: {"loss": ctx.optimize(model(torch.ones(1, 2)).sum())}, models=model, optimizers=opt,
          config=TrainConfig(steps=3, ckpt_dir=out / "single_ckpt", progress=False))
    _run_job(out, "grads", "nan", "mismatch", "save_error")
    return out


@pytest.fixture(scope="module")
def train_job(tmp_path_factory) -> Path:
    """lm, vae and gan scenarios (one launch of 2 processes)."""
    out = tmp_path_factory.mktemp("ddp_train")
    _run_job(out, "lm", "vae", "gan")
    return out


def _json(path: Path):
    return json.loads(path.read_text())


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_helpers_under_two_processes(basic_job):
    f0, f1 = (_json(basic_job / f"facts_rank{r}.json") for r in (0, 1))
    assert f0["info"] == [0, 2, 0, "gloo", "cpu"] and f1["info"] == [1, 2, 1, "gloo", "cpu"]
    assert f0["current"] == [0, 2, True, True] and f1["current"] == [1, 2, False, True]
    assert f0["mean"] == f1["mean"] == [1.5, 5.0]
    assert f0["broadcast"] == f1["broadcast"] == {"from": 0}
    assert f0["gather"] == f1["gather"] == ["rank0", "rank1"]


def test_ddp_averaged_gradients_equal_the_single_process_gradient_of_the_whole_batch(basic_job):
    model, x, y = job.tiny_regression()
    full = torch.autograd.grad(F.mse_loss(model(x), y), list(model.parameters()))
    for r in (0, 1):
        got = torch.load(basic_job / f"grads_rank{r}.pt")
        for kind in ("ddp", "accum", "all_reduce"):   # DDP; DDP with no_sync micro-batches; train_gan's path
            _close(got[kind], full)
        own = torch.autograd.grad(F.mse_loss(model(x[4 * r:4 * r + 4]), y[4 * r:4 * r + 4]),
                                  list(model.parameters()))
        _close(got["no_sync"], own)                   # inside no_sync nothing was averaged
        assert not torch.allclose(got["no_sync"][0], full[0], atol=1e-4)


def test_a_nan_on_one_rank_stops_both(basic_job):
    for r in (0, 1):
        got = _json(basic_job / f"nan_rank{r}.json")
        assert got["loss"] == ["Training stopped: loss for optimizer 'main' is nan on rank 1 at step 2. No checkpoint "
                               "was saved yet (set TrainConfig.ckpt_dir to keep one).", [0, 1]]
        assert got["metric"] == ["Training stopped: metric 'loss' is nan at step 1 (averaged over the 2 ranks). No "
                                 "checkpoint was saved yet (set TrainConfig.ckpt_dir to keep one).", [0, 1]]
        where = ("model 'main' parameter 'bias' holds NaN/inf after the update at step 1 (the model in memory is "
                 "damaged; it was not saved)" if r == 1 else "a model holds NaN/inf after the update at step 1 on "
                 "another rank (the models in memory are damaged; they were not saved)")
        assert got["weights"] == [f"Training stopped: {where}. No checkpoint was saved yet (set TrainConfig.ckpt_dir "
                                  "to keep one).", [0, 1]]


def test_a_checkpoint_write_error_on_rank_0_stops_both(basic_job):
    for r in (0, 1):
        assert _json(basic_job / f"save_error_rank{r}.json") == [
            "OSError: [Errno 28] cannot write checkpoint: the disk is full", [0, 1]]


def test_a_single_process_checkpoint_is_refused_by_two_processes_unless_use_new(basic_job):
    folder = basic_job / "single_ckpt" / "step_00000002"
    for r in (0, 1):
        got = _json(basic_job / f"mismatch_rank{r}.json")
        assert got["error"] == [
            f"checkpoint {folder} was saved by a run with 1 process, but this run has 2 processes, so nothing was "
            "loaded: each process draws its batches from its own RNG stream, and the effective batch is (number "
            "of processes) × batch_size. Resume with 1 process (torchrun --nproc_per_node=1), or pass "
            "TrainConfig(on_config_change='use_new') to continue with this number anyway (the run then does not "
            "continue bit for bit)", []]
        assert got["use_new"] == ["finished", [0.0, 1.0, 2.0, 3.0, 4.0]]


def test_train_lm_under_two_processes_keeps_the_ranks_identical_and_only_rank_0_writes(train_job):
    """Same weights and history on both ranks; checkpoints, progress bar and callbacks on rank 0 only."""
    w0, w1 = (load_file(train_job / f"lm_full_rank{r}.safetensors") for r in (0, 1))
    assert _same(w0, w1)
    h0, h1 = (_json(train_job / f"lm_full_history_rank{r}.json") for r in (0, 1))
    assert h0 == h1 and len(h0) == 4                            # metrics averaged over the ranks
    assert (train_job / "saves_rank0.txt").read_text().split() == ["1", "3", "0", "1", "2", "3", "2"]
    assert not (train_job / "saves_rank1.txt").exists()
    assert (train_job / "bars_rank0.txt").read_text().split() == ["True", "False", "False", "False", "False",
                                                                   "False", "False"]
    assert (train_job / "bars_rank1.txt").read_text().split() == ["False"] * 7
    assert _json(train_job / "callbacks_rank0.json") == [0, 2, 3] and _json(train_job / "callbacks_rank1.json") == []
    assert _same(load_file(latest_checkpoint(train_job / "lm_full") / "weights.safetensors"),
                 {f"lm.{k}": v for k, v in w0.items()})
    state = torch.load(latest_checkpoint(train_job / "lm_full") / "state.pt", weights_only=True)
    assert state["extra"]["world_size"] == 2 and len(state["extra"]["rank_rng"]) == 2
    assert not torch.equal(state["extra"]["rank_rng"][0]["torch"], state["extra"]["rank_rng"][1]["torch"])


def test_two_process_checkpoints_have_the_single_process_keys(train_job, tmp_path):
    seed_everything(0)
    train_lm(job.lm_model(), job.lm_ids(), job.lm_config(steps=1, ckpt_dir=tmp_path))
    one = load_file(latest_checkpoint(tmp_path) / "weights.safetensors")
    two = load_file(latest_checkpoint(train_job / "lm_full") / "weights.safetensors")
    assert list(one) == list(two)


def test_a_two_process_resume_continues_exactly(train_job):
    for r in (0, 1):
        assert _same(load_file(train_job / f"lm_split_rank{r}.safetensors"),
                     load_file(train_job / f"lm_full_rank{r}.safetensors"))
        assert _json(train_job / f"lm_split_history_rank{r}.json") == _json(train_job / f"lm_full_history_rank{r}.json")


def test_a_two_process_checkpoint_is_refused_by_one_process(train_job):
    folder = latest_checkpoint(train_job / "lm_full")
    seed_everything(0)
    model = job.lm_model()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(ValueError, match=exact(
            f"checkpoint {folder} was saved by a run with 2 processes, but this run has 1 process, so nothing was "
            "loaded: each process draws its batches from its own RNG stream, and the effective batch is (number "
            "of processes) × batch_size. Resume with 2 processes (torchrun --nproc_per_node=2), or pass "
            "TrainConfig(on_config_change='use_new') to continue with this number anyway (the run then does not "
            "continue bit for bit)")):
        train_lm(model, job.lm_ids(), job.lm_config(steps=6, ckpt_dir=train_job / "lm_full"))
    assert _same(model.state_dict(), before)


def _rank_batches(seed: int, micro: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """What the 2-rank train_lm run does first: the model from ``seed``, then each rank's own stream."""
    ids = job.lm_ids()
    seed_everything(seed)
    model = job.lm_model()
    s = int(torch.randint(2**32, ()))
    xs, ys = [], []
    for r in (0, 1):
        seed_everything(rank_seed(s, r))
        for _ in range(micro):
            x, y = _draw_windows(ids, 6, 4, None)
            xs.append(x)
            ys.append(y)
    return model, torch.cat(xs), torch.cat(ys)


@pytest.mark.parametrize("key, micro", [("step0", 1), ("accum_step0", 2)])
def test_two_process_train_lm_gradient_equals_one_process_on_both_ranks_batches(train_job, key, micro):
    model, x, y = _rank_batches(0, micro)
    want = torch.autograd.grad(F.cross_entropy(model(x).reshape(-1, job.V), y.reshape(-1)), _lm_groups(model))
    for r in (0, 1):
        _close(torch.load(train_job / f"lm_grads_rank{r}.pt")[key], want)
    assert _same(*(load_file(train_job / f"lm_accum_rank{r}.safetensors") for r in (0, 1)))


def test_train_vae_and_train_gan_under_two_processes(train_job):
    assert _same(*(load_file(train_job / f"vae_rank{r}.safetensors") for r in (0, 1)))
    assert _json(train_job / "vae_history_rank0.json") == _json(train_job / "vae_history_rank1.json")
    g0, g1 = (load_file(train_job / f"gan_g_rank{r}.safetensors") for r in (0, 1))
    d0, d1 = (load_file(train_job / f"gan_d_rank{r}.safetensors") for r in (0, 1))
    assert any("running_mean" in k for k in g0)                 # batch norm statistics, averaged every step
    assert _same(g0, g1) and _same(d0, d1)
    assert _json(train_job / "gan_snapshots_rank0.json") == [0, 1, 2, 3]
    assert _json(train_job / "gan_snapshots_rank1.json") == []  # on_snapshot runs on rank 0 only
