"""Checkpoint files and what a resume restores (each part separately). Fault classes: test_checkpoint_faults."""

import os
import random

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


def _same(a, b) -> bool:
    """Deep equality of (nested) state dicts holding tensors, arrays, numbers."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype \
            and torch.equal(a, b)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _objects(seed=0, lr=0.05):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.8, 0.9))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    return model, opt, sched


def _trained(steps=5):
    model, opt, sched = _objects()
    for _ in range(steps):
        loss = model(torch.randn(6, 3)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model, opt, sched


def _snapshot(model, opt, sched) -> dict:
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


PARTS = ["model", "optimizer", "scheduler", "python", "numpy", "torch"]


def _save_trained(tmp_path):
    model, opt, sched = _trained()
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    saved = _snapshot(model, opt, sched)
    saved["optimizer"] = {"state": {k: {n: t.clone() for n, t in v.items()} for k, v in opt.state_dict()
                                    ["state"].items()}, "param_groups": opt.state_dict()["param_groups"]}
    folder = ck.save_training_state(tmp_path, 4, {"m": model}, {"m": opt}, {"m": sched})
    return saved, folder


def _fresh_and_load(folder):
    model, opt, sched = _objects(seed=7)
    random.seed(10), np.random.seed(20), torch.manual_seed(30)
    before = _snapshot(model, opt, sched)
    ck.load_training_state(folder, {"m": model}, {"m": opt}, {"m": sched})
    return before, _snapshot(model, opt, sched)


def test_load_restores_every_part_exactly(tmp_path):
    saved, folder = _save_trained(tmp_path)
    before, after = _fresh_and_load(folder)
    for part in PARTS:
        assert not _same(before[part], saved[part]), part  # the fresh objects really differ...
        assert _same(after[part], saved[part]), part       # ...and the load makes them equal


SKIP = {
    "model": (nn.Module, "load_state_dict"),
    "optimizer": (torch.optim.Optimizer, "load_state_dict"),
    "scheduler": (torch.optim.lr_scheduler.LRScheduler, "load_state_dict"),
    "python": (random, "setstate"),
    "numpy": (np.random, "set_state"),
    "torch": (torch, "set_rng_state"),
}


@pytest.mark.parametrize("part", PARTS)
def test_a_loader_that_skips_one_part_is_caught(tmp_path, monkeypatch, part):
    """The comparison above fails for exactly the part a broken loader forgets to restore."""
    saved, folder = _save_trained(tmp_path)
    owner, attr = SKIP[part]
    monkeypatch.setattr(owner, attr, lambda *a, **k: None)
    _, after = _fresh_and_load(folder)
    monkeypatch.undo()
    assert [p for p in PARTS if not _same(after[p], saved[p])] == [part]


def test_weights_round_trip_with_tied_weights(tmp_path):
    torch.manual_seed(0)
    a, b = Tied(), Tied()
    path = ck.save_weights(a, tmp_path / "w.safetensors")
    ck.load_weights(b, path)
    assert torch.equal(a.emb.weight, b.emb.weight)
    assert b.head.weight is b.emb.weight  # still tied after loading
    assert sorted(os.listdir(tmp_path)) == ["w.safetensors"]  # no temp file left behind


def test_training_state_with_tied_weights(tmp_path):
    torch.manual_seed(0)
    a, b = Tied(), Tied()
    ck.save_training_state(tmp_path, 0, {"t": a})
    ck.load_training_state(ck.latest_checkpoint(tmp_path), {"t": b})
    assert torch.equal(a.emb.weight, b.emb.weight) and b.head.weight is b.emb.weight


def test_load_weights_mismatch_and_bad_inputs(tmp_path):
    path = ck.save_weights(nn.Linear(2, 3), tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match=r"do not match the module: missing \['0.weight', '0.bias'\], "
                                         r"unexpected \['bias', 'weight'\]"):
        ck.load_weights(nn.Sequential(nn.Linear(2, 3)), path)
    wide = nn.Linear(2, 4)
    before = wide.weight.detach().clone()
    with pytest.raises(ValueError, match=r"tensor 'bias' has shape \[3\] in the file but \[4\] in the module"):
        ck.load_weights(wide, path)
    assert torch.equal(wide.weight, before)
    ck.load_weights(nn.Sequential(nn.Linear(2, 3)), path, strict=False)  # non-strict ignores the names
    with pytest.raises(FileNotFoundError, match="no weights file"):
        ck.load_weights(nn.Linear(2, 2), tmp_path / "missing.safetensors")
    with pytest.raises(TypeError, match="module must be"):
        ck.save_weights({"w": torch.ones(1)}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="module must be"):
        ck.load_weights({"w": torch.ones(1)}, path)


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
    with pytest.raises(ValueError, match=r"evil.pt holds objects that weights_only loading refuses"):
        ck.load_state(tmp_path / "evil.pt")
    with pytest.raises(FileNotFoundError, match="no state file"):
        ck.load_state(tmp_path / "none.pt")
    with pytest.raises(TypeError, match=r"obj\['x'\] is a .*Evil"):
        ck.save_state({"x": Evil()}, tmp_path / "e2.pt")
    assert not (tmp_path / "e2.pt").exists()


def test_rng_state_round_trip():
    st = ck.rng_state()
    a = (random.random(), np.random.rand(), torch.rand(1).item())
    ck.set_rng_state(st)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == a
    with pytest.raises(ValueError, match=r"RNG state is damaged \(missing \['numpy'\]\)"):
        ck.set_rng_state({"python": st["python"], "torch": st["torch"]})


def test_run_spec_describes_the_run():
    model, opt, sched = _trained()
    spec = ck.run_spec({"m": model}, {"o": opt}, {"s": sched}, {"grad_clip": 0.5})
    assert spec["models"]["m"]["0.weight"] == [[4, 3], "torch.float32"]
    assert spec["models"]["m"]["1.running_mean"] == [[4], "torch.float32"]  # buffers too
    assert spec["optimizers"]["o"]["class"] == "torch.optim.adam.Adam"
    (group,) = spec["optimizers"]["o"]["groups"]
    assert group["shapes"] == [[4, 3], [4], [4], [4], [2, 4], [2]]
    hp = group["hparams"]
    assert hp["lr"] == 0.05  # the configured lr (initial_lr), not the scheduled 0.05 * 0.5**2
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0125)
    assert hp["betas"] == (0.8, 0.9) and hp["weight_decay"] == 0
    assert not {"params", "initial_lr", "foreach", "fused"} & set(hp)
    assert spec["schedulers"]["s"] == {"class": "torch.optim.lr_scheduler.StepLR"}
    assert spec["settings"] == {"grad_clip": 0.5}
    ck.check_loadable(spec, "spec")


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
    assert info == {"step": 29, "extra": {}, "changed": []}
    assert torch.equal(other.weight, model.weight)
    with pytest.raises(ValueError, match=r"the checkpoint has no optimizer named 'g' \(it has \['m'\]\)"):
        ck.load_training_state(folder, {"m": other}, {"g": torch.optim.Adam(other.parameters())})
    with pytest.raises(ValueError, match=r"the checkpoint has no model named 'x' \(it has \['m'\]\)"):
        ck.load_training_state(folder, {"x": other})
    with pytest.raises(ValueError, match="keep_last must be an int >= 1, got 0"):
        ck.save_training_state(tmp_path, 1, {"m": model}, keep_last=0)
    with pytest.raises(ValueError, match="step must be an int >= 0, got -1"):
        ck.save_training_state(tmp_path, -1, {"m": model})


@pytest.mark.parametrize("keep_last", [1, 2, 3])
def test_pruning_keeps_the_newest_and_drops_folders_after_latest(tmp_path, keep_last):
    model = nn.Linear(1, 1)
    for step in (5, 100_000_000, 3, 20, 11, 7):  # 9 digits sorts before 8 digits as text
        (tmp_path / (f"step_{step:08d}")).mkdir()
    ck.save_training_state(tmp_path, 12, {"m": model}, keep_last=keep_last)
    left = sorted(int(p.name[5:]) for p in tmp_path.glob("step_*"))
    assert left == [3, 5, 7, 11, 12][-keep_last:]  # 20 and 100000000 came after LATEST: gone
    assert ck.latest_checkpoint(tmp_path).name == "step_00000012"
    ck.save_training_state(tmp_path, 123_456_789, {"m": model}, keep_last=keep_last)
    assert ck.latest_checkpoint(tmp_path).name == "step_123456789"


def test_latest_checkpoint_missing_and_incomplete(tmp_path):
    assert ck.latest_checkpoint(tmp_path) is None
    (tmp_path / "LATEST").write_text("step_00000003\n")
    with pytest.raises(FileNotFoundError, match="incomplete or missing"):
        ck.latest_checkpoint(tmp_path)


def test_use_new_lr_keeps_the_position_in_the_schedule(tmp_path):
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    for _ in range(5):
        model(torch.ones(1, 2)).sum().backward()
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    folder = ck.save_training_state(tmp_path, 4, {"m": model}, {"m": opt}, {"m": sched})
    new_opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    new_sched = torch.optim.lr_scheduler.StepLR(new_opt, step_size=2, gamma=0.5)
    info = ck.load_training_state(folder, {"m": model}, {"m": new_opt}, {"m": new_sched},
                                  on_config_change="use_new")
    assert info["changed"] == ["optimizers['m'] param group 0 'lr': 0.1 in the checkpoint, 0.01 now"]
    g = new_opt.param_groups[0]
    assert g["lr"] == pytest.approx(0.0025) and g["initial_lr"] == 0.01
    assert new_sched.base_lrs == [0.01] and new_sched.last_epoch == 5
    assert new_sched.get_last_lr() == [pytest.approx(0.0025)]
    assert torch.equal(new_opt.state[model.weight]["momentum_buffer"], opt.state[model.weight]["momentum_buffer"])
    new_sched.step()  # epoch 6: another halving, from the new base
    assert g["lr"] == pytest.approx(0.00125)


def test_use_new_lr_without_scheduler_and_other_hparams(tmp_path):
    model = nn.Linear(2, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.9, 0.99), weight_decay=0.1)
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    folder = ck.save_training_state(tmp_path, 0, {"m": model}, {"m": opt})
    new = torch.optim.AdamW(model.parameters(), lr=0.003, betas=(0.5, 0.99), weight_decay=0.1)
    info = ck.load_training_state(folder, {"m": model}, {"m": new}, on_config_change="use_new")
    assert info["changed"] == ["optimizers['m'] param group 0 'betas': (0.9, 0.99) in the checkpoint, "
                               "(0.5, 0.99) now",
                               "optimizers['m'] param group 0 'lr': 0.1 in the checkpoint, 0.003 now"]
    g = new.param_groups[0]
    assert (g["lr"], g["betas"], g["weight_decay"]) == (0.003, (0.5, 0.99), 0.1)
    assert "initial_lr" not in g
    assert torch.equal(new.state[model.weight]["exp_avg"], opt.state[model.weight]["exp_avg"])
    with pytest.raises(ValueError, match=r"on_config_change must be one of \('error', 'use_new'\), got 'yes'"):
        ck.load_training_state(folder, {"m": model}, {"m": new}, on_config_change="yes")


def test_check_loadable_names_the_bad_value():
    ok = {"a": [1, 2.0, True, None, "s", (torch.ones(2), {"b": b"x"})], 3: {1 + 2j}, "d": torch.float16}
    ck.check_loadable(ok, "extra")
    with pytest.raises(TypeError, match=r"extra\['a'\]\[1\]\[0\] is a numpy.float64"):
        ck.check_loadable({"a": [0, [np.float64(1.0)]]}, "extra")
    with pytest.raises(TypeError, match=r"extra has a key of type tuple"):
        ck.check_loadable({(1, 2): 0}, "extra")


def test_optimizer_with_parameters_in_another_order_is_refused(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = torch.optim.Adam(model.parameters())
    folder = ck.save_training_state(tmp_path, 0, {"m": model}, {"m": opt})
    reordered = torch.optim.Adam(list(model.parameters())[::-1])
    with pytest.raises(ValueError, match=r"optimizer 'm' param group 0 parameter 0 has shape \[4, 3\] in the "
                                         r"checkpoint but \[2\] now \(another model, or another order\)"):
        ck.load_training_state(folder, {"m": model}, {"m": reordered})
    fewer = torch.optim.Adam(list(model.parameters())[:3])
    with pytest.raises(ValueError, match=r"optimizer 'm' param group 0 has 4 parameters in the checkpoint but 3"):
        ck.load_training_state(folder, {"m": model}, {"m": fewer})


def test_run_spec_plain_values_and_tensor_lr(tmp_path):
    model = nn.Linear(2, 1)
    opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.02), betas=(torch.tensor(0.5), torch.tensor(0.9)))
    spec = ck.run_spec({"m": model}, {"m": opt}, settings={"a": np.int64(3), "b": np.bool_(True), "c": [1, "x"],
                                                           "d": np.float32(0.25), "e": object(), "f": None})
    hp = spec["optimizers"]["m"]["groups"][0]["hparams"]
    assert hp["lr"] == pytest.approx(0.02) and type(hp["lr"]) is float
    assert hp["betas"] == (0.5, pytest.approx(0.9)) and type(hp["betas"][0]) is float
    assert spec["settings"] == {"a": 3, "b": True, "c": (1, "x"), "d": 0.25, "e": "<object>", "f": None}
    assert [type(v) for v in spec["settings"].values()][:2] == [int, bool]
    ck.check_loadable(spec, "spec")
    folder = ck.save_training_state(tmp_path, 0, {"m": model}, {"m": opt})
    new = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.005), betas=opt.param_groups[0]["betas"])
    ck.load_training_state(folder, {"m": model}, {"m": new}, on_config_change="use_new")
    lr = new.param_groups[0]["lr"]
    assert isinstance(lr, torch.Tensor) and lr.item() == pytest.approx(0.005)


def test_saving_a_step_again_replaces_it(tmp_path):
    model = nn.Linear(1, 1)
    ck.save_training_state(tmp_path, 3, {"m": model}, extra={"v": 1})
    ck.save_training_state(tmp_path, 3, {"m": model}, extra={"v": 2})
    info = ck.load_training_state(ck.latest_checkpoint(tmp_path), {"m": model})
    assert info["extra"] == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "LATEST", "step_00000003"]


def test_atomic_write_names_the_path_when_the_folder_fails(tmp_path, monkeypatch):
    import errno

    def fail(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ck.tempfile, "mkstemp", fail)
    with pytest.raises(OSError, match=r"cannot write .*x\.pt: Read-only file system$") as err:
        ck.save_state({"a": 1}, tmp_path / "x.pt")
    assert err.value.errno == errno.EROFS


def test_binary_latest_is_described(tmp_path):
    (tmp_path / "LATEST").write_bytes(b"\x00\xffstep")
    with pytest.raises(ValueError, match=r"but holds 6 bytes of binary data b'\\x00\\xffstep'\.\.\.; fix it to "
                                         r"name one of the step_\* folders, or delete it to start over"):
        ck.latest_checkpoint(tmp_path)
    (tmp_path / "LATEST").write_text("../step_00000001\n")
    with pytest.raises(ValueError, match=r"but holds '\.\./step_00000001'; fix it"):
        ck.latest_checkpoint(tmp_path)


SCHEDULERS = {
    "StepLR": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=2),
    "CosineAnnealingLR": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=10),
    "OneCycleLR": lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=0.1, total_steps=20, cycle_momentum=not isinstance(o, torch.optim.Adafactor)),
    "ReduceLROnPlateau": lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, patience=0),
    "LambdaLR": lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda e: 0.9**e),
    "SequentialLR": lambda o: torch.optim.lr_scheduler.SequentialLR(
        o, [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=3),
            torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.9)], milestones=[3]),
}


@pytest.mark.parametrize("name", list(SCHEDULERS))
@pytest.mark.parametrize("optimizer", ["SGD", "Adam", "Adafactor"])
def test_common_schedulers_and_optimizers_resume(tmp_path, name, optimizer):
    """Each saves (weights_only-safe), resumes unchanged, and stays in step with an uninterrupted twin.

    The run's spec is captured before training, as train() does: ReduceLROnPlateau lowers lr and OneCycleLR
    cycles the momentum in place, so values read at save time would not be the configured ones.
    """
    def make(seed=0):
        torch.manual_seed(seed)
        model = nn.Linear(3, 2)
        cls = getattr(torch.optim, optimizer)
        opt = cls(model.parameters(), lr=0.05, **({"momentum": 0.9} if optimizer == "SGD" else {}))
        return model, opt, SCHEDULERS[name](opt)

    def advance(model, opt, sched, n):
        for _ in range(n):
            loss = model(torch.ones(4, 3)).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step(loss.item()) if name == "ReduceLROnPlateau" else sched.step()

    model, opt, sched = make()
    spec = ck.run_spec({"m": model}, {"m": opt}, {"m": sched})
    advance(model, opt, sched, 5)
    folder = ck.save_training_state(tmp_path, 4, {"m": model}, {"m": opt}, {"m": sched}, spec=spec)
    twin = make(seed=3)
    ck.load_training_state(folder, {"m": twin[0]}, {"m": twin[1]}, {"m": twin[2]})
    advance(model, opt, sched, 3)
    advance(*twin, 3)
    assert torch.equal(twin[0].weight, model.weight)
    assert twin[1].param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_use_new_lr_reaches_sub_schedulers(tmp_path):
    model = nn.Linear(1, 1)

    def make(lr):
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        return opt, SCHEDULERS["SequentialLR"](opt)

    opt, sched = make(0.1)
    for _ in range(5):
        opt.step()
        sched.step()
    folder = ck.save_training_state(tmp_path, 4, {"m": model}, {"m": opt}, {"m": sched})
    new_opt, new_sched = make(0.02)
    ck.load_training_state(folder, {"m": model}, {"m": new_opt}, {"m": new_sched}, on_config_change="use_new")
    assert [s.base_lrs for s in new_sched._schedulers] == [[0.02], [0.02]]
    assert new_opt.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"] * 0.2)
