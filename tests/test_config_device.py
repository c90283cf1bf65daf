import random

import numpy as np
import pytest
import torch

from aigc_course import config, device


@pytest.fixture(autouse=True)
def _reset_fast_mode():
    config.set_fast_mode(None)
    yield
    config.set_fast_mode(None)


@pytest.mark.parametrize("value,expected", [("1", True), ("true", True), ("YES", True), ("on", True),
                                            ("0", False), ("", False), ("false", False), ("off", False)])
def test_fast_mode_reads_env(monkeypatch, value, expected):
    monkeypatch.setenv("AIGC_FAST", value)
    assert config.fast_mode() is expected
    assert config.scale(full=5000, fast=50) == (50 if expected else 5000)


def test_fast_mode_bad_env_value(monkeypatch):
    monkeypatch.setenv("AIGC_FAST", "maybe")
    with pytest.raises(ValueError, match="AIGC_FAST"):
        config.fast_mode()


def test_override_beats_env(monkeypatch):
    monkeypatch.setenv("AIGC_FAST", "1")
    config.set_fast_mode(False)
    assert config.scale(full=10, fast=1) == 10
    with pytest.raises(TypeError, match="enabled"):
        config.set_fast_mode("yes")


def test_scale_types():
    config.set_fast_mode(True)
    assert config.scale(full=1e-3, fast=1e-2) == 1e-2
    assert config.scale(full=3, fast=0.5) == 0.5  # int/float mix is fine
    assert config.scale(full=(8, 8), fast=(2, 2)) == (2, 2)
    with pytest.raises(TypeError, match="same type"):
        config.scale(full=5000, fast="50")


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AIGC_DATA_DIR", str(tmp_path))
    assert config.cache_dir() == tmp_path
    monkeypatch.delenv("AIGC_DATA_DIR")
    assert "aigc-course" in str(config.cache_dir())


def test_get_device(monkeypatch):
    monkeypatch.delenv("AIGC_DEVICE", raising=False)
    d = device.get_device()
    assert d.type in ("cpu", "cuda", "mps")
    assert device.get_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("AIGC_DEVICE", "cpu")
    assert device.get_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="prefer='tpu'"):
        device.get_device("tpu")
    with pytest.raises(TypeError, match="prefer"):
        device.get_device(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            device.get_device("cuda")


def test_seed_everything_repeats_all_rngs():
    device.seed_everything(123)
    a = (random.random(), np.random.rand(), torch.randn(3))
    device.seed_everything(123)
    b = (random.random(), np.random.rand(), torch.randn(3))
    assert a[:2] == b[:2] and torch.equal(a[2], b[2])
    with pytest.raises(TypeError, match="seed"):
        device.seed_everything(1.5)
    with pytest.raises(ValueError, match="seed"):
        device.seed_everything(-1)


def test_autocast_is_noop_on_cpu_by_default():
    with device.autocast("cpu"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32
    with device.autocast("cpu", enabled=True):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.bfloat16
    with pytest.raises(TypeError, match="device"):
        device.autocast(0)


def test_configure_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert device.configure_threads(1) == 1
        monkeypatch.setenv("AIGC_NUM_THREADS", "1")
        assert device.configure_threads() == 1
        monkeypatch.setenv("AIGC_NUM_THREADS", "two")
        with pytest.raises(ValueError, match="AIGC_NUM_THREADS"):
            device.configure_threads()
        with pytest.raises(ValueError, match="num_threads"):
            device.configure_threads(0)
        with pytest.raises(TypeError, match="num_threads"):
            device.configure_threads(1.0)
    finally:
        torch.set_num_threads(before)


def test_rng_state_kept():
    torch.manual_seed(0)
    with device.rng_state_kept():
        torch.rand(5)
        np.random.rand(3)
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(1))


@pytest.mark.cuda
def test_autocast_bf16_on_cuda():
    x = torch.ones(4, 4, device="cuda")
    with device.autocast("cuda"):
        assert (x @ x).dtype == torch.bfloat16


def test_maybe_compile_off_on_cpu_by_default():
    model = torch.nn.Linear(2, 2)
    assert device.maybe_compile(model) is model
    assert device.maybe_compile(model, enabled=False) is model
    with pytest.raises(TypeError, match="model must be"):
        device.maybe_compile(lambda x: x)


@pytest.mark.cuda
def test_train_with_bf16_autocast_on_cuda():
    from aigc_course.train import TrainConfig, train

    model = torch.nn.Linear(8, 1).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    dtypes = []

    def step(ctx):
        x = torch.randn(16, 8, device="cuda")
        with ctx.autocast():
            y = model(x)
        dtypes.append(y.dtype)
        loss = (y.float() - 1).pow(2).mean()
        ctx.optimize(loss)
        return {"loss": loss}

    hist = train(step, models=model, optimizers=opt, config=TrainConfig(steps=50, progress=False))
    assert dtypes[0] == torch.bfloat16
    assert hist.last("loss") < hist["loss"][0]
