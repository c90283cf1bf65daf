import os

import numpy as np
import pytest
import torch
from torch import nn

from aigc_course import checkpoint as ck


class Tied(nn.Module):
    """Embedding and output head share one weight, as in GPT."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5, 3)
        self.head = nn.Linear(3, 5, bias=False)
        self.head.weight = self.emb.weight


def test_weights_round_trip_with_tied_weights(tmp_path):
    torch.manual_seed(0)
    a, b = Tied(), Tied()
    path = ck.save_weights(a, tmp_path / "w.safetensors")
    ck.load_weights(b, path)
    assert torch.equal(a.emb.weight, b.emb.weight)
    assert b.head.weight is b.emb.weight  # still tied after loading
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]  # no temp file left behind


def test_load_weights_mismatch_and_bad_inputs(tmp_path):
    path = ck.save_weights(nn.Linear(2, 2), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="do not match"):
        ck.load_weights(nn.Sequential(nn.Linear(2, 2)), path)
    with pytest.raises(FileNotFoundError, match="no weights file"):
        ck.load_weights(nn.Linear(2, 2), tmp_path / "missing.safetensors")
    with pytest.raises(TypeError, match="module must be"):
        ck.save_weights({"w": torch.ones(1)}, tmp_path / "x.safetensors")


def test_atomic_write_keeps_old_file_when_writer_fails(tmp_path):
    target = tmp_path / "state.pt"
    ck.save_state({"a": 1}, target)

    def boom(tmp):
        tmp.write_bytes(b"half a file")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        ck.atomic_write(target, boom)
    assert ck.load_state(target) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def test_load_state_is_weights_only(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="[Ww]eights only|weights_only"):
        ck.load_state(tmp_path / "evil.pt")


def test_rng_state_round_trip():
    import random

    st = ck.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ck.set_rng_state(st)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a


def test_training_state_keeps_last_and_latest(tmp_path):
    model = nn.Linear(2, 2)
    opt = torch.optim.Adam(model.parameters())
    for step in (9, 19, 29):
        ck.save_training_state(tmp_path, step, {"m": model}, {"m": opt}, keep_last=2)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_00000019", "step_00000029"]
    folder = ck.latest_checkpoint(tmp_path)
    assert folder.name == "step_00000029"
    other = nn.Linear(2, 2)
    info = ck.load_training_state(folder, {"m": other}, {"m": torch.optim.Adam(other.parameters())})
    assert info["step"] == 29
    assert torch.equal(other.weight, model.weight)
    with pytest.raises(ValueError, match="no optimizer named 'g'"):
        ck.load_training_state(folder, {"m": other}, {"g": torch.optim.Adam(other.parameters())})
    with pytest.raises(ValueError, match="does not match model 'x'"):
        ck.load_training_state(folder, {"x": other})
    with pytest.raises(ValueError, match="keep_last"):
        ck.save_training_state(tmp_path, 1, {"m": model}, keep_last=0)


def test_latest_checkpoint_missing_and_incomplete(tmp_path):
    assert ck.latest_checkpoint(tmp_path) is None
    (tmp_path / "LATEST").write_text("step_00000003\n")
    with pytest.raises(FileNotFoundError, match="incomplete or missing"):
        ck.latest_checkpoint(tmp_path)
