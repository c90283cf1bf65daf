import math
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn import functional as F

from aigc_course.checkpoint import latest_checkpoint
from aigc_course.device import seed_everything
from aigc_course.train import History, NonFiniteLossError, TrainConfig, eval_mode, sample_batch, train

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
    def run(seed):
        x, y, model, opt = _regression_setup(seed=seed)

        def step(ctx):
            xb, yb = sample_batch(x, y, batch_size=8)
            loss = F.mse_loss(model(xb), yb)
            ctx.optimize(loss)
            return {"loss": loss}

        return train(step, models=model, optimizers=opt, config=TrainConfig(steps=30, progress=False))["loss"]

    first = run(3)
    assert run(3) == first
    other = run(4)  # code that ignored the seed would give the same numbers here
    assert len(other) == len(first) and all(a != b for a, b in zip(other, first, strict=True))


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
    with pytest.raises(NonFiniteLossError) as err:
        train(step, models=model, optimizers=opt, config=cfg)
    good = tmp_path / "step_00000004"
    assert str(err.value) == (
        f"Training stopped: loss for optimizer 'main' is nan at step 7. The last good checkpoint is {good}; "
        "rerun the same call to resume from it. To change a setting for the rerun (e.g. a lower learning rate "
        "in the optimizer, or a smaller grad_clip), also pass TrainConfig(on_config_change='use_new'), "
        "otherwise the resume refuses the changed value.")
    before = model.weight.detach().clone()
    assert latest_checkpoint(tmp_path) == good
    assert torch.isfinite(before).all()  # the bad update was not applied


def _guarded_run(kind, ckpt=None):
    """A run that goes bad at step 3 in one way; returns (model, the raised error)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(ctx):
        out = model(torch.randn(4, 2))
        loss = out.pow(2).mean()
        bad = ctx.step == 3
        if bad and kind == "loss":
            loss = loss * math.nan
        if bad and kind == "gradient":  # finite loss (0), infinite gradient (d sqrt(u)/du at u = 0)
            w = model[0].weight.sum()
            loss = loss * 0 + torch.sqrt(w - w.detach())
        ctx.optimize(loss)
        if bad and kind in ("parameter", "buffer"):
            with torch.no_grad():
                (model[0].bias if kind == "parameter" else model[1].running_var)[1] = -math.inf
        return {"loss": loss, "acc": math.nan if bad and kind == "metric" else 0.5}

    cfg = TrainConfig(steps=6, progress=False, ckpt_dir=ckpt, ckpt_every=2 if ckpt else 0)
    with pytest.raises(NonFiniteLossError) as err:
        train(step, models=model, optimizers=opt, config=cfg)
    return model, str(err.value)


GUARDS = {
    "loss": "Training stopped: loss for optimizer 'main' is nan at step 3. ",
    "gradient": "Training stopped: gradient norm for optimizer 'main' is inf at step 3. ",
    "parameter": "Training stopped: model 'main' parameter '0.bias' holds NaN/inf after the update at step 3 "
                 "(the model in memory is damaged; it was not saved). ",
    "buffer": "Training stopped: model 'main' buffer '1.running_var' holds NaN/inf after the update at step 3 "
              "(the model in memory is damaged; it was not saved). ",
    "metric": "Training stopped: metric 'acc' is nan at step 3. ",
}


@pytest.mark.parametrize("kind", list(GUARDS))
def test_each_guard_has_its_own_message(kind):
    _, message = _guarded_run(kind)
    assert message == GUARDS[kind] + "No checkpoint was saved yet (set TrainConfig.ckpt_dir to keep one)."


@pytest.mark.parametrize("kind", ["loss", "gradient"])
def test_loss_and_gradient_guards_stop_before_the_update(kind, monkeypatch):
    updates = []
    real_step = torch.optim.SGD.step
    monkeypatch.setattr(torch.optim.SGD, "step", lambda self, *a, **k: updates.append(1) or real_step(self))
    model, message = _guarded_run(kind)
    assert message.startswith(GUARDS[kind])
    assert len(updates) == 3  # steps 0, 1, 2 only
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_guard_with_a_checkpoint_folder_but_none_saved_yet(tmp_path):
    _, message = _guarded_run("loss", ckpt=tmp_path / "late")  # ckpt_every=2: step 1 was saved
    assert message.endswith(f"The last good checkpoint is {tmp_path / 'late' / 'step_00000001'}; rerun the same "
                            "call to resume from it. To change a setting for the rerun (e.g. a lower learning "
                            "rate in the optimizer, or a smaller grad_clip), also pass TrainConfig(on_config_"
                            "change='use_new'), otherwise the resume refuses the changed value.")
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(ctx):
        ctx.optimize(model(torch.ones(1, 1)).sum() * 0 + math.inf)

    with pytest.raises(NonFiniteLossError, match=r"is inf at step 0. No checkpoint was saved yet in this run "
                                                 r"\(ckpt_every=0 saves only at the end\).$"):
        train(step, models=model, optimizers=opt,
              config=TrainConfig(steps=3, ckpt_dir=tmp_path / "end", progress=False))


def _diverging(lr, ckpt, on_config_change="error"):
    """SGD on (w - 1)^2 from w = 0: the error is multiplied by (1 - 2 lr) each step, so lr = 20 blows up."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()
    opt = torch.optim.SGD(model.parameters(), lr=lr)

    def step(ctx):
        loss = (model(torch.ones(1, 1)) - 1).pow(2).sum()
        ctx.optimize(loss)
        return {"loss": loss}

    cfg = TrainConfig(steps=40, grad_clip=None, ckpt_dir=ckpt, ckpt_every=5, progress=False,
                      on_config_change=on_config_change)
    return model, opt, lambda: train(step, models=model, optimizers=opt, config=cfg)


def test_nan_advice_works_as_written(tmp_path):
    """A run that blows up at step k, rerun as the message says with a lower lr, passes step k and finishes."""
    _, _, run = _diverging(20.0, tmp_path)
    with pytest.raises(NonFiniteLossError) as err:
        run()
    message = str(err.value)
    k = int(re.search(r"loss for optimizer 'main' is inf at step (\d+)", message).group(1))
    good = latest_checkpoint(tmp_path)
    assert 5 < k < 40 and f"The last good checkpoint is {good};" in message
    assert "TrainConfig(on_config_change='use_new')" in message

    _, _, again = _diverging(20.0, tmp_path)  # the same call fails at the same step again, naming the same
    with pytest.raises(NonFiniteLossError) as err_again:  # checkpoint (the one it resumed from)
        again()
    assert str(err_again.value) == message

    model, _, lower = _diverging(0.4, tmp_path)  # only the lr changed: refused, naming it
    with pytest.raises(ValueError, match=re.escape("optimizers['main'] param group 0 'lr': 20.0 in the checkpoint, "
                                                   "0.4 now")):
        lower()
    assert model.weight.item() == 0.0  # nothing was loaded

    model, opt, advised = _diverging(0.4, tmp_path, on_config_change="use_new")
    hist = advised()
    assert len(hist) == 40 and hist["step"][-1] == 39.0  # passed step k and finished
    assert opt.param_groups[0]["lr"] == 0.4
    assert hist["loss"][-1] < 1e-6 and model.weight.item() == pytest.approx(1.0, abs=1e-4)
    saved = torch.load(latest_checkpoint(tmp_path) / "state.pt", weights_only=True)
    assert saved["spec"]["optimizers"]["main"]["groups"][0]["hparams"]["lr"] == 0.4  # later resumes agree
    assert saved["optimizers"]["main"]["param_groups"][0]["lr"] == 0.4


def test_train_puts_models_in_training_mode():
    """A model left in eval mode: dropout must drop and batch norm must update its running statistics."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 64), nn.BatchNorm1d(64), nn.Dropout(0.5))
    model.eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(ctx):
        out = model(torch.randn(16, 4) + 3.0)
        loss = out.pow(2).mean()
        ctx.optimize(loss)
        return {"loss": loss, "zeros": (out == 0).float().mean()}

    hist = train(step, models=model, optimizers=opt, config=TrainConfig(steps=5, progress=False))
    assert min(hist["zeros"]) > 0.3  # dropout active in every step
    assert model[1].num_batches_tracked.item() == 5
    assert not torch.equal(model[1].running_mean, torch.zeros(64))


def test_nan_guard_without_checkpoint_dir_says_so():
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(ctx):
        ctx.optimize(model(torch.ones(1, 1)).sum() * math.inf)

    with pytest.raises(NonFiniteLossError, match="No checkpoint was saved"):
        train(step, models=model, optimizers=opt, config=TrainConfig(steps=3, progress=False))


def _resumable():
    """Model, optimizer, scheduler and a step drawing from all three global RNGs (Python, NumPy, torch)."""
    seed_everything(1)
    model = nn.Sequential(nn.Linear(2, 16), nn.Dropout(0.2), nn.Tanh(), nn.Linear(16, 1))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.7)

    def step(ctx):
        x = torch.randn(8, 2) * (1 + random.random()) + float(np.random.rand())
        loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
        ctx.optimize(loss)
        return {"loss": loss}

    return model, opt, sched, step


def _final_state(model, opt, sched, hist):
    return {"weights": [p.detach().clone() for p in model.parameters()], "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(), "python": random.getstate(), "numpy": np.random.get_state(),
            "torch": torch.get_rng_state(), "loss": hist["loss"]}


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _uninterrupted():
    model, opt, sched, step = _resumable()
    hist = train(step, models=model, optimizers=opt, schedulers=sched, config=TrainConfig(steps=40, progress=False))
    return _final_state(model, opt, sched, hist)


def _interrupted(tmp_path):
    model, opt, sched, step = _resumable()
    train(step, models=model, optimizers=opt, schedulers=sched,
          config=TrainConfig(steps=25, ckpt_dir=tmp_path, ckpt_every=10, progress=False))
    # a fresh process would start from scratch: new objects, other RNG states
    model, opt, sched, step = _resumable()
    random.seed(5), np.random.seed(6), torch.manual_seed(999)
    hist = train(step, models=model, optimizers=opt, schedulers=sched,
                 config=TrainConfig(steps=40, ckpt_dir=tmp_path, ckpt_every=10, progress=False))
    return _final_state(model, opt, sched, hist)


def test_in_process_resume_matches_uninterrupted(tmp_path):
    full, resumed = _uninterrupted(), _interrupted(tmp_path)
    for part in full:  # every state, bit for bit, not only the weights
        assert _same(resumed[part], full[part]), part
    assert resumed["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-2 * 0.7 ** (40 // 7))


SKIPPED = {
    "optimizer": (torch.optim.Optimizer, "load_state_dict"),
    "scheduler": (torch.optim.lr_scheduler.LRScheduler, "load_state_dict"),
    "python": (random, "setstate"),
    "numpy": (np.random, "set_state"),
    "torch": (torch, "set_rng_state"),
}


@pytest.mark.parametrize("part", list(SKIPPED))
def test_a_resume_that_skips_one_state_is_caught(tmp_path, monkeypatch, part):
    """The comparison above fails when the resume forgets to restore any one of the states."""
    full = _uninterrupted()
    monkeypatch.setattr(*SKIPPED[part], lambda *a, **k: None)
    resumed = _interrupted(tmp_path)
    monkeypatch.undo()
    assert not _same(resumed["loss"], full["loss"])
    assert not _same(resumed[part], full[part])


def _run_job(ckpt, out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    return subprocess.Popen([sys.executable, str(JOB), str(ckpt), str(out), *extra], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def reference_job(tmp_path_factory):
    """The job run once without interruption: its final weights and last output line."""
    d = tmp_path_factory.mktemp("ref")
    ref = _run_job(d / "ckpt", d / "ref.safetensors")
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    return load_file(str(d / "ref.safetensors")), out.strip().splitlines()[-1]


def _resume_and_compare(ckpt, out_file, reference):
    resumed = _run_job(ckpt, out_file)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    a, last_line = reference
    b = load_file(str(out_file))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert out.strip().splitlines()[-1] == last_line  # same history length and loss
    # nothing lingers: no temporary folder or file of the killed writer, only the newest keep_last=2
    assert sorted(os.listdir(ckpt)) == [".lock", "LATEST", "step_00000109", "step_00000119"]


@pytest.mark.slow
def test_sigkill_then_resume_is_bit_identical(tmp_path, reference_job):
    """A training process killed with SIGKILL mid-run and restarted ends with exactly the same weights."""
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
    job.communicate(timeout=30)
    assert job.returncode == -signal.SIGKILL
    killed_at = latest_checkpoint(ckpt).name
    assert "step_00000049" <= killed_at < "step_00000119", killed_at
    assert not (tmp_path / "resumed.safetensors").exists()
    _resume_and_compare(ckpt, tmp_path / "resumed.safetensors", reference_job)


@pytest.mark.slow
def test_sigkill_inside_a_checkpoint_write_leaves_nothing_behind(tmp_path, reference_job):
    """Killed while writing its 5th checkpoint (step 49): the rerun cleans up and ends bit-identical."""
    ckpt = tmp_path / "ckpt"
    job = _run_job(ckpt, tmp_path / "resumed.safetensors", "--die-in-write", "5")
    job.communicate(timeout=300)
    assert job.returncode == -signal.SIGKILL
    assert latest_checkpoint(ckpt).name == "step_00000039"
    left = [p for p in os.listdir(ckpt) if p.startswith(".step_00000049.")]
    assert len(left) == 1 and sorted(os.listdir(ckpt / left[0])) == ["state.pt", "weights.safetensors"]
    _resume_and_compare(ckpt, tmp_path / "resumed.safetensors", reference_job)


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
    with pytest.raises(TypeError, match="step_fn must be callable, got NoneType"):
        train(None, models=model, optimizers=opt, config=cfg)
    with pytest.raises(TypeError, match="config must be a TrainConfig, got dict"):
        train(lambda c: None, models=model, optimizers=opt, config={"steps": 1})
    with pytest.raises(TypeError, match=r"optimizers\['main'\] must be a .*Optimizer.*, got str"):
        train(lambda c: None, models=model, optimizers="sgd", config=cfg)
    with pytest.raises(TypeError, match=r"models\['g'\] must be a .*Module.*, got int"):
        train(lambda c: None, models={"g": 3}, optimizers=opt, config=cfg)
    with pytest.raises(TypeError, match=r"models keys must be str, got 1"):
        train(lambda c: None, models={1: model}, optimizers=opt, config=cfg)
    with pytest.raises(ValueError, match="models must not be empty"):
        train(lambda c: None, models={}, optimizers=opt, config=cfg)
    with pytest.raises(ValueError, match="optimizers must not be empty"):
        train(lambda c: None, models=model, optimizers={}, config=cfg)

    def bad_name(ctx):
        ctx.optimize(model(torch.ones(1, 1)).sum(), "d")

    with pytest.raises(KeyError, match=r"no optimizer named 'd'; have \['main'\]"):
        train(bad_name, models=model, optimizers=opt, config=cfg)

    def not_scalar(ctx):
        ctx.optimize(model(torch.ones(2, 1)))

    with pytest.raises(ValueError, match=r"loss must be a scalar tensor, got Tensor \(2, 1\)"):
        train(not_scalar, models=model, optimizers=opt, config=cfg)


def test_checkpoints_every_k_steps_keep_the_newest(tmp_path):
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0 is valid
    saved = []

    def step(ctx):
        saved.append(sorted(p.name for p in tmp_path.glob("step_*")))
        ctx.optimize(model(torch.ones(1, 1)).sum())
        return {"ok": True, "n": np.float32(2.5)}

    cfg = TrainConfig(steps=11, ckpt_dir=tmp_path, ckpt_every=3, keep_last=3, progress=False)
    hist = train(step, models=model, optimizers=opt, config=cfg)
    assert hist["ok"] == [1.0] * 11 and hist.last("n") == 2.5
    assert saved[3] == ["step_00000002"] and saved[6] == ["step_00000002", "step_00000005"]
    assert sorted(os.listdir(tmp_path)) == [".lock", "LATEST", "step_00000005", "step_00000008", "step_00000010"]


def test_tensor_lr_is_accepted():
    model = nn.Linear(1, 1)
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.1))

    def step(ctx):
        ctx.optimize(model(torch.ones(1, 1)).pow(2).sum())

    assert len(train(step, models=model, optimizers=opt, config=TrainConfig(steps=2, progress=False))) == 2


# --- the smaller contracts: messages, the step context, the progress bar, resume corner cases ---------------------

def _tiny(lr=0.1):
    model = nn.Linear(1, 1)
    return model, torch.optim.SGD(model.parameters(), lr=lr)


def _raises_exactly(exc, message):
    """pytest.raises whose message must be `message`, whole."""
    return pytest.raises(exc, match="^" + re.escape(message) + "$")


def test_config_and_train_messages_are_exact():
    with _raises_exactly(ValueError, "TrainConfig.ckpt_every=1 needs ckpt_dir (where to save); set ckpt_dir, or "
                                     "leave ckpt_every at 0"):
        TrainConfig(steps=3, ckpt_every=1)
    model, opt = _tiny()
    cfg = TrainConfig(steps=1, progress=False)
    with _raises_exactly(TypeError, "step_fn must be callable, got int"):
        train(3, models=model, optimizers=opt, config=cfg)
    with _raises_exactly(ValueError, "models must not be empty"):
        train(lambda c: None, models={}, optimizers=opt, config=cfg)
    with _raises_exactly(ValueError, "optimizers must not be empty"):
        train(lambda c: None, models=model, optimizers={}, config=cfg)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
    with _raises_exactly(TypeError, "schedulers keys must be str, got 1"):
        train(lambda c: None, models=model, optimizers=opt, schedulers={1: sched}, config=cfg)
    with _raises_exactly(ValueError, "step_fn returned a metric named 'step', which would overwrite the step column "
                                     "of the history; give it another name"):
        train(lambda c: {"step": 1.0}, models=model, optimizers=opt, config=cfg)


class _Stop(Exception):
    pass


def test_device_is_the_first_models_and_cpu_without_parameters():
    seen = []

    def step(ctx):
        seen.append(ctx.device)
        raise _Stop

    cfg = TrainConfig(steps=2, progress=False)
    meta = nn.Linear(2, 1, device="meta")  # stands in for a GPU model on a CPU-only machine
    with pytest.raises(_Stop):
        train(step, models=meta, optimizers=torch.optim.SGD(meta.parameters(), lr=0.1), config=cfg)
    lin = nn.Linear(2, 1, device="meta")
    with pytest.raises(_Stop):  # the first model has no parameters: CPU, not the second model's device
        train(step, models={"act": nn.ReLU(), "lin": lin}, optimizers=torch.optim.SGD(lin.parameters(), lr=0.1),
              config=cfg)
    assert seen == [torch.device("meta"), torch.device("cpu")]


@pytest.mark.parametrize("amp, dtype", [(True, torch.bfloat16), (False, torch.float32), (None, torch.float32)])
def test_ctx_autocast_follows_the_amp_setting(amp, dtype):
    model, opt = _tiny()
    seen = []

    def step(ctx):
        with ctx.autocast():
            out = model(torch.ones(3, 1))
        seen.append((ctx.device, out.dtype))
        ctx.optimize(out.float().pow(2).mean())

    train(step, models=model, optimizers=opt, config=TrainConfig(steps=1, amp=amp, progress=False))
    assert seen == [(torch.device("cpu"), dtype)]


def test_amp_none_is_stored_as_on_for_cuda(tmp_path):
    """amp=None resolves per device (on for CUDA) before it is stored: an explicit amp=True reruns the same run."""
    model, opt = _tiny()

    def run(amp, steps):
        return train(lambda ctx: None, models=model, optimizers=opt, device="cuda",
                     config=TrainConfig(steps=steps, amp=amp, ckpt_dir=tmp_path, progress=False))

    run(None, 1)
    assert len(run(True, 2)) == 2
    with pytest.raises(ValueError, match=re.escape("setting 'amp': True in the checkpoint, False now")):
        run(False, 3)


def test_resume_false_starts_over(tmp_path):
    model, opt = _tiny()
    calls = []

    def step(ctx):
        calls.append(ctx.step)

    train(step, models=model, optimizers=opt, config=TrainConfig(steps=3, ckpt_dir=tmp_path, progress=False))
    hist = train(step, models=model, optimizers=opt,
                 config=TrainConfig(steps=4, ckpt_dir=tmp_path, resume=False, progress=False))
    assert calls == [0, 1, 2, 0, 1, 2, 3] and hist["step"] == [0.0, 1.0, 2.0, 3.0]


def _checkpoint_with_extra(tmp_path, extra):
    """A train checkpoint at step 1, then one at step 2 written by hand with `extra` instead of a history."""
    from aigc_course.checkpoint import save_training_state

    model, opt = _tiny()
    cfg = TrainConfig(steps=2, ckpt_dir=tmp_path, progress=False)
    train(lambda ctx: {"x": 1.0}, models=model, optimizers=opt, config=cfg)
    spec = torch.load(latest_checkpoint(tmp_path) / "state.pt", weights_only=True)["spec"]
    save_training_state(tmp_path, 2, {"main": model}, {"main": opt}, extra=extra, spec=spec)
    return model, opt


def test_a_checkpoint_without_history_resumes_with_an_empty_one(tmp_path):
    model, opt = _checkpoint_with_extra(tmp_path, {})
    hist = train(lambda ctx: {"x": 2.0}, models=model, optimizers=opt,
                 config=TrainConfig(steps=5, ckpt_dir=tmp_path, progress=False))
    assert hist.records == [{"step": 3.0, "x": 2.0}, {"step": 4.0, "x": 2.0}]


@pytest.mark.parametrize("history", [[{"x": "1.0"}], {"x": 1.0}, [{1: 1.0}], [[1.0]]])
def test_a_damaged_stored_history_is_refused(tmp_path, history):
    model, opt = _checkpoint_with_extra(tmp_path, {"history": history})
    before = model.weight.detach().clone()
    with _raises_exactly(ValueError, f"checkpoint {tmp_path / 'step_00000002'}: the stored history is damaged "
                                     "(expected a list of {name: float} dicts)"):
        train(lambda ctx: None, models=model, optimizers=opt,
              config=TrainConfig(steps=5, ckpt_dir=tmp_path, progress=False))
    assert torch.equal(model.weight, before)


def _ctx(model, opt, grad_clip=None):
    from aigc_course.train import StepContext

    params = [p for g in opt.param_groups for p in g["params"]]
    return StepContext({"main": opt}, {"main": params}, grad_clip, None, torch.device("cpu"))


def test_step_context_on_its_own():
    """A StepContext built by hand (to try one step of a step function) starts at step 0."""
    model, opt = _tiny()
    ctx = _ctx(model, opt)
    assert ctx.step == 0 and ctx.device == torch.device("cpu") and ctx.grad_norms == {}
    with _raises_exactly(NonFiniteLossError, "loss for optimizer 'main' is nan at step 0"):
        ctx.optimize(model(torch.ones(1, 1)).sum() * math.nan)
    with _raises_exactly(ValueError, "loss must be a scalar tensor, got float "):
        ctx.optimize(1.0)
    norm = ctx.optimize(model(torch.full((1, 1), 3.0)).sum())
    assert norm == pytest.approx(math.hypot(3.0, 1.0)) and ctx.grad_norms == {"main": norm}


def test_optimize_leaves_no_gradients_and_frees_the_graph():
    model, opt = _tiny()
    ctx = _ctx(model, opt)
    (model(torch.ones(1, 1)).sum() * 5).backward()  # a stale gradient from a manual backward
    kept = model.weight.grad
    stale = kept.clone()
    loss = model(torch.full((1, 1), 2.0)).sum()
    ctx.optimize(loss)
    assert torch.equal(kept, stale)  # the caller's gradient tensor is not reused or zeroed in place
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        loss.backward()  # retain_graph defaults to False

    loss = model(torch.ones(1, 1)).sum()
    ctx.optimize(loss, retain_graph=True)
    loss.backward()  # allowed: the graph was kept
    assert model.weight.grad is not None

    for bad in ("loss", "gradient"):  # a refused step leaves no gradients either
        opt.zero_grad(set_to_none=False)
        w = model.weight.sum()
        loss = model(torch.ones(1, 1)).sum() * math.inf if bad == "loss" else torch.sqrt(w - w.detach())
        with pytest.raises(NonFiniteLossError, match=f"^{bad}"):
            ctx.optimize(loss)
        assert all(p.grad is None for p in model.parameters()), bad


def test_optimizer_without_parameters_reports_norm_zero():
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD([{"params": []}], lr=0.1)
    assert _ctx(model, opt).optimize(model(torch.ones(1, 1)).sum()) == 0.0


def _pty(cols):
    import tty

    master, slave = os.openpty()
    tty.setraw(slave)  # no newline translation
    _resize(slave, cols)
    os.set_blocking(master, False)
    return master, slave


def _resize(fd, cols):
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))


def _drain(fd) -> str:
    out = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return out.decode()
        out += chunk


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_progress_bar_on_a_terminal(tmp_path, monkeypatch):
    """On a terminal: nothing with progress=False; else a bar that resumes at its step, keeps its last state
    (even nested in another bar), follows a resized terminal and redraws only when tqdm's clock says so."""
    from tqdm.auto import tqdm

    monkeypatch.setattr("tqdm.std.time", lambda: 100.0)  # a frozen clock: no timed redraws
    # A lock of this test's own: tqdm's default one is shared with forked processes, and a bar failing mid-draw
    # (the bug this test is there to catch) would leave it taken for them.
    monkeypatch.setattr(tqdm, "_lock", threading.RLock(), raising=False)
    master, slave = _pty(60)
    monkeypatch.setattr(sys, "stderr", open(slave, "w", buffering=1))
    model, opt = _tiny()

    def step(ctx):
        if ctx.step == 7:
            _resize(slave, 100)
        loss = model(torch.ones(1, 1)).pow(2).sum()
        ctx.optimize(loss)
        return {"loss": loss, "lr": 0.1}

    kw = {"ckpt_dir": tmp_path, "log_every": 2, "desc": "fit"}
    train(step, models=model, optimizers=opt, config=TrainConfig(steps=5, progress=False, **kw))
    assert _drain(master) == ""
    with tqdm(total=1, desc="outer", disable=False):
        hist = train(step, models=model, optimizers=opt, config=TrainConfig(steps=8, **kw))
    out = _drain(master)
    sys.stderr.close()
    os.close(master)
    assert out.count("fit:") == 2  # drawn at the start and at the end only
    first = re.search(r"\n\r(fit:[^\r\n\x1b]*)\x1b\[A", out).group(1)  # in the second row, under "outer"
    assert re.fullmatch(r"fit:  62%\|[^|]+\| 5/8 \[00:00<\?, \?it/s\]", first.rstrip()), first
    assert len(first) == 59
    last = re.findall(r"\r(fit:[^\r\n]*)\n", out)  # left on screen, in the first row
    assert len(last) == 1 and len(last[0]) == 99, last
    post = f"loss={hist.last('loss'):.4g}, lr=0.1"
    assert re.fullmatch(r"fit: 100%\|█+\| 8/8 \[00:00<\?, \?it/s, " + re.escape(post) + r"\]", last[0]), last


def test_sample_batch_edges():
    torch.manual_seed(0)
    (one,) = sample_batch(torch.tensor([[7.0, 8.0]]), batch_size=1)  # one row, batch of one, a single tensor
    assert torch.equal(one, torch.tensor([[7.0, 8.0]]))
    x = torch.arange(5.0)
    (xb,) = sample_batch(x, batch_size=3)
    assert xb.shape == (3,) and set(xb.tolist()) <= set(x.tolist())
    for bad in (True, 2.5, 0):
        with _raises_exactly(ValueError, f"batch_size must be a positive int, got {bad!r}"):
            sample_batch(x, batch_size=bad)
    with _raises_exactly(ValueError, "sample_batch needs at least one tensor"):
        sample_batch(batch_size=2)
    with _raises_exactly(TypeError, "tensors[1] must be a torch.Tensor, got list"):
        sample_batch(x, [1, 2], batch_size=2)
    with _raises_exactly(ValueError, "tensors[0] has shape (); all tensors need the same first dimension N=0"):
        sample_batch(torch.tensor(1.0), x, batch_size=2)
    with _raises_exactly(ValueError, "tensors[1] has shape (); all tensors need the same first dimension N=5"):
        sample_batch(x, torch.tensor(1.0), batch_size=2)
    with _raises_exactly(ValueError, "tensors are empty (N=0)"):
        sample_batch(torch.zeros(0, 3), torch.zeros(0), batch_size=2)


def test_eval_mode_restores_every_submodule_mode_also_after_an_error():
    a = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), nn.BatchNorm1d(2))
    a[1].eval()                                  # a mixed model: one submodule already in eval mode
    b = nn.Linear(2, 2).eval()
    before = [m.training for m in (*a.modules(), b)]
    assert before == [True, True, False, True, False]
    with eval_mode(a, b):
        assert not any(m.training for m in (*a.modules(), b))
    assert [m.training for m in (*a.modules(), b)] == before
    with pytest.raises(RuntimeError, match="^boom$"), eval_mode(a):
        assert not a.training
        raise RuntimeError("boom")
    assert [m.training for m in a.modules()] == before[:4]
    with pytest.raises(TypeError, match="^models\\[1\\] must be a torch.nn.Module, got str$"):
        with eval_mode(a, "b"):
            pass
    assert [m.training for m in a.modules()] == before[:4]
