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
    with pytest.raises(TypeError, match="^seed must be an int, got float$"):
        device.seed_everything(1.5)
    with pytest.raises(ValueError, match=r"^seed must be in \[0, 2\*\*32\), got -1$"):
        device.seed_everything(-1)
    with pytest.raises(ValueError, match=r"^seed must be in \[0, 2\*\*32\), got 4294967296$"):
        device.seed_everything(2**32)
    device.seed_everything(np.int64(2**32 - 1))  # the top of the range, as a NumPy int


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


# ------------------------------------------------------------------ environment variables and bool flags

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from aigc_course.notebook import setup_lesson  # noqa: E402

PROPS = settings(max_examples=100, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.differing_executors])
NOT_BOOL = st.one_of(st.text(max_size=5), st.integers(), st.floats(allow_nan=False), st.just([]), st.just(b"1"))


class TestBoolFlags:
    @PROPS
    @given(value=NOT_BOOL)
    def test_every_non_bool_is_refused_naming_the_argument(self, value):
        with pytest.raises(TypeError, match=r"^enabled must be a bool \(True or False\) or None, got "):
            device.autocast("cpu", enabled=value)
        with pytest.raises(TypeError, match=r"^enabled must be a bool \(True or False\) or None, got "):
            device.maybe_compile(torch.nn.Linear(1, 1), enabled=value)
        with pytest.raises(TypeError, match=r"^enabled must be a bool \(True or False\) or None, got "):
            config.set_fast_mode(value)
        with pytest.raises(TypeError, match=r"^quiet must be a bool \(True or False\), got "):
            setup_lesson(quiet=value)

    def test_the_probed_truthy_string(self):
        with pytest.raises(TypeError) as info:
            device.autocast("cpu", enabled="no")
        assert str(info.value) == "enabled must be a bool (True or False) or None, got str 'no'"
        assert config.require_bool(False, "x") is False and config.require_bool(None, "x", allow_none=True) is None
        with pytest.raises(TypeError, match=r"^x must be a bool \(True or False\), got NoneType None$"):
            config.require_bool(None, "x")

    def test_autocast_device_errors(self):
        with pytest.raises(ValueError, match=r"^device='gpu0' is not a device name"):
            device.autocast("gpu0")
        with device.autocast(torch.device("cpu"), enabled=False):
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


class TestEnvironmentVariables:
    @PROPS
    @given(value=st.text(max_size=8))
    def test_threads_variable_is_a_whole_number_in_range_or_refused_by_name(self, monkeypatch, value):
        monkeypatch.setenv("AIGC_NUM_THREADS", value.replace("\0", ""))
        value = value.replace("\0", "")
        text = value.strip()
        if not text:
            assert device.threads_from_env() is None
        elif text.isascii() and text.isdigit() and 1 <= int(text) <= device.MAX_THREADS:
            assert device.threads_from_env() == int(text)
        else:
            with pytest.raises(ValueError) as info:
                device.threads_from_env()
            assert str(info.value) == ("environment variable AIGC_NUM_THREADS must be a whole number of threads "
                                       f"from 1 to 1024 (or unset), got {value!r}")

    @pytest.mark.parametrize("value", ["abc", "0", "-2", "2.5", "1025", "٣", "1e3"])
    def test_bad_thread_values(self, monkeypatch, value):
        monkeypatch.setenv("AIGC_NUM_THREADS", value)
        with pytest.raises(ValueError, match="^environment variable AIGC_NUM_THREADS must be"):
            device.configure_threads()

    def test_thread_bounds_on_the_argument(self):
        before = torch.get_num_threads()
        try:
            assert device.configure_threads(device.MAX_THREADS) == device.MAX_THREADS
            with pytest.raises(ValueError, match=r"^num_threads must be in \[1, 1024\], got 1025$"):
                device.configure_threads(1025)
            with pytest.raises(ValueError, match=r"^num_threads must be in \[1, 1024\], got 0$"):
                device.configure_threads(0)
        finally:
            torch.set_num_threads(before)

    def test_fast_variable_names_itself(self, monkeypatch):
        monkeypatch.setenv("AIGC_FAST", "abc")
        with pytest.raises(ValueError) as info:
            config.fast_mode()
        assert str(info.value) == ("environment variable AIGC_FAST must be one of 1/0/true/false/yes/no/on/off "
                                   "(or unset), got 'abc'")

    def test_device_variable_names_itself(self, monkeypatch):
        monkeypatch.setenv("AIGC_DEVICE", "tpu")
        with pytest.raises(ValueError, match=r"^environment variable AIGC_DEVICE \('tpu'\) is not a device name"):
            device.get_device()
        with pytest.raises(ValueError, match=r"^prefer='tpu' is not a device name"):
            device.get_device("tpu")
        monkeypatch.setenv("AIGC_DEVICE", "  ")
        assert device.get_device().type in ("cpu", "cuda", "mps")

    def test_blank_data_dir_means_the_default(self, monkeypatch):
        monkeypatch.setenv("AIGC_DATA_DIR", "  ")
        assert config.cache_dir().name == "aigc-course"

    @pytest.mark.parametrize("variable, value", [("AIGC_NUM_THREADS", "abc"), ("AIGC_FAST", "abc"),
                                                 ("AIGC_DEVICE", "tpu")])
    def test_setup_lesson_fails_clearly_and_changes_nothing(self, monkeypatch, capsys, variable, value):
        monkeypatch.setenv(variable, value)
        threads = torch.get_num_threads()
        state = torch.get_rng_state()
        with pytest.raises(ValueError, match=f"^environment variable {variable} "):
            setup_lesson(seed=123)
        assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), state)
        assert capsys.readouterr().out == ""

    def test_setup_lesson_applies_a_valid_thread_count(self, monkeypatch, capsys):
        before = torch.get_num_threads()
        monkeypatch.setenv("AIGC_NUM_THREADS", "2")
        monkeypatch.delenv("AIGC_FAST", raising=False)
        monkeypatch.delenv("AIGC_DEVICE", raising=False)
        try:
            dev = setup_lesson(seed=5, device="cpu")
            assert dev == torch.device("cpu") and torch.get_num_threads() == 2
            assert "· 2 CPU thread(s) · mode full · seed 5" in capsys.readouterr().out
        finally:
            torch.set_num_threads(before)
