import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

from aigc_course.checkpoint import latest_checkpoint
from aigc_course.device import seed_everything
from aigc_course.train import History, NonFiniteLossError, TrainConfig, sample_batch, train

JOB = Path(__file__).with_name("resume_job.py")


def _regression_setup(seed=0):
    seed_everything(seed)
    x = torch.randn(128, 3)
    y = x @ torch.tensor([[2.0], [-1.0], [0.5]])
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return x, y, model, opt


def test_train_reduces_loss_and_records_history():
    x, y, model, opt = _regression_setup()

    def step(ctx):
        xb, yb = sample_batch(x, y, batch_size=32)
        loss = F.mse_loss(model(xb), yb)
        ctx.optimize(loss)
        return {"loss": loss, "lr": opt.param_groups[0]["lr"]}

    hist = train(step, models=model, optimizers=opt, config=TrainConfig(steps=200, progress=False))
    assert isinstance(hist, History) and len(hist) == 200
    assert hist["step"] == [float(i) for i in range(200)]
    assert hist.last("loss") < 1e-3 < hist["loss"][0]
    assert set(hist.keys()) == {"step", "loss", "lr"}
    with pytest.raises(KeyError, match="no metric 'acc'"):
        hist["acc"]


def test_same_seed_same_numbers():
    def run():
        x, y, model, opt = _regression_setup(seed=3)

        def step(ctx):
            xb, yb = sample_batch(x, y, batch_size=8)
            loss = F.mse_loss(model(xb), yb)
            ctx.optimize(loss)
            return {"loss": loss}

        return train(step, models=model, optimizers=opt, config=TrainConfig(steps=30, progress=False))["loss"]

    assert run() == run()


def test_two_optimizers_and_callbacks():
    """GAN-style: two models, two optimizers, both updated in one step."""
    seed_everything(0)
    a, b = nn.Linear(2, 1), nn.Linear(2, 1)
    opts = {"a": torch.optim.SGD(a.parameters(), lr=0.1), "b": torch.optim.SGD(b.parameters(), lr=0.1)}
    seen = []

    def step(ctx):
        x = torch.randn(4, 2)
        la = a(x).pow(2).mean()
        ctx.optimize(la, "a")
        lb = (b(x) - 1).pow(2).mean()
        ctx.optimize(lb, "b")
        return {"la": la, "lb": lb}

    cfg = TrainConfig(steps=25, progress=False, log_every=10)
    hist = train(step, models={"a": a, "b": b}, optimizers=opts, config=cfg,
                 callbacks=[lambda s, m: seen.append((s, sorted(m)))])
    assert [s for s, _ in seen] == [0, 10, 20, 24]
    assert seen[0][1] == ["la", "lb"]
    assert hist.last("la") < hist["la"][0]


def test_grad_clip_limits_update():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)

    def step(ctx):
        loss = (model(torch.tensor([[1.0]])) - 100.0).pow(2).sum()  # gradient -200
        norm = ctx.optimize(loss)
        return {"norm": norm}

    cfg = TrainConfig(steps=1, grad_clip=0.5, progress=False)
    hist = train(step, models=model, optimizers=opt, config=cfg)
    assert hist.last("norm") == pytest.approx(200.0)
    assert model.weight.item() == pytest.approx(0.5)  # clipped to norm 0.5, lr 1


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(ctx):
        loss = model(torch.ones(1, 1)).sum() * (math.nan if ctx.step == 7 else 1.0)
        ctx.optimize(loss)
        return {"loss": loss}

    cfg = TrainConfig(steps=20, ckpt_dir=tmp_path, ckpt_every=5, progress=False)
    with pytest.raises(NonFiniteLossError, match=r"at step 7.*step_00000004") as err:
        train(step, models=model, optimizers=opt, config=cfg)
    assert "last good checkpoint" in str(err.value)
    before = model.weight.detach().clone()
    assert latest_checkpoint(tmp_path).name == "step_00000004"
    assert torch.isfinite(before).all()  # the bad update was not applied


def test_nan_guard_without_checkpoint_dir_says_so():
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(ctx):
        ctx.optimize(model(torch.ones(1, 1)).sum() * math.inf)

    with pytest.raises(NonFiniteLossError, match="No checkpoint was saved"):
        train(step, models=model, optimizers=opt, config=TrainConfig(steps=3, progress=False))


def test_in_process_resume_matches_uninterrupted(tmp_path):
    def make():
        seed_everything(1)
        model = nn.Sequential(nn.Linear(2, 16), nn.Dropout(0.2), nn.Tanh(), nn.Linear(16, 1))
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.7)

        def step(ctx):
            x = torch.randn(8, 2)
            loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
            ctx.optimize(loss)
            return {"loss": loss}

        return model, opt, sched, step

    model, opt, sched, step = make()
    cfg = TrainConfig(steps=40, progress=False)
    full = train(step, models=model, optimizers=opt, schedulers=sched, config=cfg)
    ref = [p.detach().clone() for p in model.parameters()]

    model, opt, sched, step = make()
    train(step, models=model, optimizers=opt, schedulers=sched,
          config=TrainConfig(steps=25, ckpt_dir=tmp_path, ckpt_every=10, progress=False))
    # a fresh process would start from scratch: new objects, different RNG state
    model, opt, sched, step = make()
    torch.manual_seed(999)
    hist = train(step, models=model, optimizers=opt, schedulers=sched,
                 config=TrainConfig(steps=40, ckpt_dir=tmp_path, ckpt_every=10, progress=False))
    assert hist["loss"] == full["loss"]
    for p, r in zip(model.parameters(), ref, strict=True):
        assert torch.equal(p, r)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2 * 0.7 ** (40 // 7))


def _run_job(ckpt, out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    return subprocess.Popen([sys.executable, str(JOB), str(ckpt), str(out), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path):
    """A training process killed with SIGKILL mid-run and restarted ends with exactly the same weights."""
    ref = _run_job(tmp_path / "ref_ckpt", tmp_path / "ref.safetensors")
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err

    ckpt = tmp_path / "ckpt"
    job = _run_job(ckpt, tmp_path / "resumed.safetensors", "--slow-after", "40")
    deadline = time.time() + 300
    while time.time() < deadline:
        latest = ckpt / "LATEST"
        if latest.exists() and latest.read_text().strip() >= "step_00000049":
            break
        assert job.poll() is None, job.communicate()[1]
        time.sleep(0.05)
    job.send_signal(signal.SIGKILL)
    job.wait(timeout=30)
    assert job.returncode == -signal.SIGKILL
    killed_at = latest_checkpoint(ckpt).name
    assert "step_00000049" <= killed_at < "step_00000119", killed_at
    assert not (tmp_path / "resumed.safetensors").exists()

    resumed = _run_job(ckpt, tmp_path / "resumed.safetensors")
    out2, err2 = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err2
    a = load_file(str(tmp_path / "ref.safetensors"))
    b = load_file(str(tmp_path / "resumed.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert out.strip().splitlines()[-1] == out2.strip().splitlines()[-1]  # same history length and loss


def test_sample_batch_and_bad_inputs():
    x, y = torch.arange(10.0), torch.arange(10)
    torch.manual_seed(0)
    xb, yb = sample_batch(x, y, batch_size=4)
    assert xb.shape == (4,) and torch.equal(xb.long(), yb)
    with pytest.raises(ValueError, match="batch_size"):
        sample_batch(x, batch_size=0)
    with pytest.raises(ValueError, match=r"tensors\[1\]"):
        sample_batch(x, torch.zeros(3), batch_size=2)
    with pytest.raises(TypeError, match=r"tensors\[0\]"):
        sample_batch([1, 2], batch_size=2)
    with pytest.raises(ValueError, match="at least one"):
        sample_batch(batch_size=2)


def test_train_bad_inputs():
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = TrainConfig(steps=1, progress=False)
    with pytest.raises(TypeError, match="step_fn"):
        train(None, models=model, optimizers=opt, config=cfg)
    with pytest.raises(TypeError, match="config"):
        train(lambda c: None, models=model, optimizers=opt, config={"steps": 1})
    with pytest.raises(TypeError, match=r"optimizers\['main'\]"):
        train(lambda c: None, models=model, optimizers="sgd", config=cfg)
    with pytest.raises(TypeError, match=r"models\['g'\]"):
        train(lambda c: None, models={"g": 3}, optimizers=opt, config=cfg)
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=-1)
    with pytest.raises(ValueError, match="grad_clip"):
        TrainConfig(steps=1, grad_clip=0)
    with pytest.raises(ValueError, match="log_every"):
        TrainConfig(steps=1, log_every=0)

    def bad_name(ctx):
        ctx.optimize(model(torch.ones(1, 1)).sum(), "d")

    with pytest.raises(KeyError, match="no optimizer named 'd'"):
        train(bad_name, models=model, optimizers=opt, config=cfg)

    def not_scalar(ctx):
        ctx.optimize(model(torch.ones(2, 1)))

    with pytest.raises(ValueError, match="scalar"):
        train(not_scalar, models=model, optimizers=opt, config=cfg)
