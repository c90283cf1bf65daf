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


# --- exact messages, edge cases of the spec comparison, and hyper-parameter changes ------------------

LOADABLE_HINT = ("which torch.load(weights_only=True) cannot read back, so a checkpoint holding it could never be "
                 "resumed; store tensors, int/float/bool/str/None, or lists/tuples/dicts of those (e.g. float(x) "
                 "for a NumPy number, x.tolist() for an array)")


def _exactly(exc, message):
    """pytest.raises that compares the whole message (the messages are part of the product)."""
    class _Check:
        def __enter__(self):
            self.ctx = pytest.raises(exc)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *args):
            suppressed = self.ctx.__exit__(*args)
            assert str(self.info.value) == message
            return suppressed

    return _Check()


class _StateOnly:
    def state_dict(self):
        return {}


def _bad_objects_cases(tmp_path):
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1)
    return [
        (({}, None, None), "models must be a non-empty dict of name -> nn.Module, got dict"),
        (({1: model}, None, None), "models keys must be str, got 1"),
        (({"m": "x"}, None, None), "models['m'] must be a torch.nn.modules.module.Module, got str"),
        (({"m": model}, [opt], None), "optimizers must be a dict of name -> object, got list"),
        (({"m": model}, {2: opt}, None), "optimizers keys must be str, got 2"),
        (({"m": model}, {"o": "adam"}, None), "optimizers['o'] must be a torch.optim.optimizer.Optimizer, got str"),
        (({"m": model}, None, [sched]), "schedulers must be a dict of name -> scheduler, got list"),
        (({"m": model}, None, {3: sched}), "schedulers keys must be str, got 3"),
        (({"m": model}, None, {"s": _StateOnly()}),
         "schedulers['s'] must have state_dict() and load_state_dict(), got _StateOnly"),
    ]


@pytest.mark.parametrize("how", ["save", "load"])
def test_bad_objects_are_named_exactly_before_any_file_is_touched(tmp_path, how):
    for (models, opts, scheds), message in _bad_objects_cases(tmp_path):
        with _exactly(TypeError, message):
            if how == "save":
                ck.save_training_state(tmp_path / "c", 0, models, opts, scheds)
            else:  # checked before the folder: a missing folder is not what gets reported
                ck.load_training_state(tmp_path / "missing", models, opts, scheds)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("kwargs, message", [
    ({"step": True}, "step must be an int >= 0, got True"),
    ({"step": 2.0}, "step must be an int >= 0, got 2.0"),
    ({"keep_last": True}, "keep_last must be an int >= 1, got True"),
    ({"keep_last": 1.5}, "keep_last must be an int >= 1, got 1.5"),
    ({"extra": [1]}, "extra must be a dict, got list"),
])
def test_save_arguments_are_named_exactly(tmp_path, kwargs, message):
    args = {"step": 1, "models": {"m": nn.Linear(1, 1)}, **kwargs}
    with _exactly(ValueError if "extra" not in kwargs else TypeError, message):
        ck.save_training_state(tmp_path, **args)
    assert not tmp_path.joinpath("LATEST").exists()


def test_weights_files_messages_are_exact(tmp_path):
    path = ck.save_weights(nn.Linear(2, 3), tmp_path / "w.safetensors")
    with _exactly(TypeError, "module must be a torch.nn.Module, got dict"):
        ck.save_weights({"w": torch.ones(1)}, tmp_path / "x.safetensors")
    with _exactly(TypeError, "module must be a torch.nn.Module, got list"):
        ck.load_weights([], path)
    with _exactly(ValueError, f"weights in {path} do not match the module: tensor 'bias' has shape [3] in the file "
                              "but [4] in the module"):
        ck.load_weights(nn.Linear(2, 4), path)
    with_extra = nn.Linear(2, 3)
    with_extra.register_buffer("scale", torch.ones(1))
    with _exactly(ValueError, f"weights in {path} do not match the module: missing ['scale'], unexpected []"):
        ck.load_weights(with_extra, path)
    assert not torch.equal(with_extra.weight, ck.load_file(str(path))["weight"])  # refused before loading


class EmptyThenTied(nn.Module):
    """Two empty buffers first (no storage, so no tie between them), then a tied pair, then an untied layer."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.register_buffer("e1", torch.zeros(0))
        self.register_buffer("e2", torch.zeros(0))
        self.emb = nn.Embedding(5, 3)
        self.head = nn.Linear(3, 5, bias=False)
        self.head.weight = self.emb.weight
        self.out = nn.Linear(5, 2)


@pytest.mark.parametrize("how", ["weights", "training state"])
def test_empty_and_tied_tensors_round_trip(tmp_path, how):
    a, b = EmptyThenTied(0), EmptyThenTied(1)
    if how == "weights":
        ck.load_weights(b, ck.save_weights(a, tmp_path / "w.safetensors"))
    else:
        ck.load_training_state(ck.save_training_state(tmp_path, 0, {"t": a}), {"t": b})
    assert _same(a.state_dict(), b.state_dict())
    assert b.head.weight is b.emb.weight


def test_every_param_group_keeps_its_optimizer_state(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    groups = lambda m: [{"params": list(m[0].parameters())}, {"params": list(m[1].parameters()), "lr": 0.5}]  # noqa
    opt = torch.optim.Adam(groups(model), lr=0.1)
    model(torch.ones(2, 3)).sum().backward()
    opt.step()
    folder = ck.save_training_state(tmp_path, 0, {"m": model}, {"o": opt})
    twin = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    twin_opt = torch.optim.Adam(groups(twin), lr=0.1)
    ck.load_training_state(folder, {"m": twin}, {"o": twin_opt})
    assert _same(twin_opt.state_dict(), opt.state_dict())


def test_load_state_honours_map_location_and_stays_weights_only(tmp_path, monkeypatch):
    path = ck.save_state({"x": torch.ones(2)}, tmp_path / "s.pt")
    assert ck.load_state(path)["x"].device.type == "cpu"
    assert ck.load_state(path, map_location="meta")["x"].device.type == "meta"

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # turns torch's default off, not ours
    with pytest.raises(ValueError) as err:
        ck.load_state(tmp_path / "evil.pt")
    assert not marker.exists()
    first = str(err.value.__cause__).strip().splitlines()[0]
    assert first
    assert str(err.value) == (f"state file {tmp_path / 'evil.pt'} holds objects that weights_only loading refuses "
                              f"(it was not written by this package, or it may be malicious); nothing was run: "
                              f"{first}")


def test_a_truncated_state_file_message_names_the_cause(tmp_path):
    path = ck.save_state({"x": torch.ones(100)}, tmp_path / "s.pt")
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError) as err:
        ck.load_state(path)
    cause = err.value.__cause__
    assert str(err.value) == (f"state file {path} (50 bytes) is empty, truncated or not a torch file (e.g. cut "
                              f"short by a crash or a full disk): {type(cause).__name__}: {cause}")


def test_check_loadable_messages_are_exact():
    with _exactly(TypeError, f"x[0] is a numpy.float64, {LOADABLE_HINT}"):
        ck.check_loadable([np.float64(1.0), 1], "x")  # the bad value is not the last one looked at
    with _exactly(TypeError, "x['k'] has a key of type tuple ((1, 2)), which torch.load(weights_only=True) "
                             "cannot read back; use str keys"):
        ck.check_loadable({"a": 1, "k": {(1, 2): 0}}, "x")


def test_rng_state_messages_and_exact_numpy_keys():
    st = ck.rng_state()
    assert st["numpy"][1].dtype == torch.int64
    assert np.array_equal(st["numpy"][1].numpy(), np.random.get_state()[1])
    with _exactly(ValueError, "set_rng_state: the RNG state is damaged (missing ['numpy'])"):
        ck.set_rng_state({"python": st["python"], "torch": st["torch"]})


def test_latest_checkpoint_needs_both_files_and_shows_16_bytes(tmp_path):
    raw = bytes(range(200, 220))
    (tmp_path / "LATEST").write_bytes(raw)
    with _exactly(ValueError, f"{tmp_path / 'LATEST'} must hold the name of a checkpoint folder in {tmp_path} such "
                              f"as 'step_00000100', but holds 20 bytes of binary data {raw[:16]!r}...; fix it to "
                              "name one of the step_* folders, or delete it to start over"):
        ck.latest_checkpoint(tmp_path)
    folder = ck.save_training_state(tmp_path, 1, {"m": nn.Linear(1, 1)})
    (folder / ck.STATE_FILE).unlink()
    with _exactly(FileNotFoundError, f"{tmp_path / 'LATEST'} points to {folder}, which is incomplete or missing"):
        ck.latest_checkpoint(tmp_path)


def test_plain_describes_a_tensor_that_is_not_a_number():
    spec = ck.run_spec({"m": nn.Linear(1, 1)}, settings={"w": torch.ones(2, 1), "s": torch.tensor([0.5])})
    assert spec["settings"] == {"w": "<tensor of shape [2, 1]>", "s": 0.5}


def test_other_entries_in_the_folder_are_left_alone(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "step_00000009").write_text("a file, not a checkpoint folder")
    model = nn.Linear(1, 1)
    for step in (1, 2, 3):
        ck.save_training_state(tmp_path, step, {"m": model})  # the default keeps 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "LATEST", "notes", "step_00000002",
                                                          "step_00000003", "step_00000009"]


def test_an_unloadable_spec_is_refused_naming_it(tmp_path):
    model = nn.Linear(1, 1)
    spec = ck.run_spec({"m": model})
    spec["settings"]["lr"] = np.float64(0.1)
    with _exactly(TypeError, f"spec['settings']['lr'] is a numpy.float64, {LOADABLE_HINT}"):
        ck.save_training_state(tmp_path, 0, {"m": model}, spec=spec)
    assert not (tmp_path / "LATEST").exists()


def _two_of_each(seed=0, width=3):
    torch.manual_seed(seed)
    a, b = nn.Linear(2, width), nn.Linear(width, 1)
    o1 = torch.optim.Adam([{"params": list(a.parameters())}, {"params": list(b.parameters())}], lr=0.1)
    o2 = torch.optim.SGD(b.parameters(), lr=0.1)
    return {"a": a, "b": b}, {"o1": o1, "o2": o2}, {"s": torch.optim.lr_scheduler.StepLR(o1, 2)}


def _mismatch(models, opts, scheds, a, b):
    return {
        "model loop goes on": (
            {"new": nn.Linear(1, 1), "a": nn.Linear(2, 4)}, None, None,
            ["the checkpoint has no model named 'new' (it has ['a', 'b'])",
             "model 'a' tensor 'weight' has shape [3, 2] in the checkpoint but [4, 2] now",
             "model 'a' tensor 'bias' has shape [3] in the checkpoint but [4] now"]),
        "a tensor less": (
            {"a": nn.Linear(2, 3, bias=False)}, None, None,
            ["model 'a' does not match: the checkpoint lacks [] and has ['bias'] that the model lacks"]),
        "optimizer loop goes on": (
            models, {"new": torch.optim.SGD(a.parameters(), lr=0.1), "o1": torch.optim.SGD(a.parameters(), lr=0.1)},
            None,
            ["the checkpoint has no optimizer named 'new' (it has ['o1', 'o2'])",
             "optimizer 'o1' is torch.optim.adam.Adam in the checkpoint but torch.optim.sgd.SGD now"]),
        "two other classes": (
            models, {"o1": torch.optim.SGD(a.parameters(), lr=0.1), "o2": torch.optim.Adam(b.parameters())}, None,
            ["optimizer 'o1' is torch.optim.adam.Adam in the checkpoint but torch.optim.sgd.SGD now",
             "optimizer 'o2' is torch.optim.sgd.SGD in the checkpoint but torch.optim.adam.Adam now"]),
        "two group counts": (
            models, {"o1": torch.optim.Adam([*a.parameters(), *b.parameters()]),
                     "o2": torch.optim.SGD([{"params": [b.weight]}, {"params": [b.bias]}], lr=0.1)}, None,
            ["optimizer 'o1' has 2 param groups in the checkpoint but 1 now",
             "optimizer 'o2' has 1 param groups in the checkpoint but 2 now"]),
        "two group sizes": (
            models, {"o1": torch.optim.Adam([{"params": [a.weight]}, {"params": [b.weight]}])}, None,
            ["optimizer 'o1' param group 0 has 2 parameters in the checkpoint but 1 now",
             "optimizer 'o1' param group 1 has 2 parameters in the checkpoint but 1 now"]),
        "two groups in another order": (
            models, {"o1": torch.optim.Adam([{"params": [a.bias, a.weight]}, {"params": [b.bias, b.weight]}])},
            None,
            ["optimizer 'o1' param group 0 parameter 0 has shape [3, 2] in the checkpoint but [3] now (another "
             "model, or another order)",
             "optimizer 'o1' param group 1 parameter 0 has shape [1, 3] in the checkpoint but [1] now (another "
             "model, or another order)"]),
        "another scheduler": (
            models, opts, {"s": torch.optim.lr_scheduler.ExponentialLR(opts["o1"], 0.9)},
            ["scheduler 's' is torch.optim.lr_scheduler.StepLR in the checkpoint but "
             "torch.optim.lr_scheduler.ExponentialLR now"]),
    }


MISMATCH = ["model loop goes on", "a tensor less", "optimizer loop goes on", "two other classes", "two group counts",
            "two group sizes", "two groups in another order", "another scheduler"]


@pytest.mark.parametrize("case", MISMATCH)
def test_every_structural_difference_is_listed(tmp_path, case):
    models, opts, scheds = _two_of_each()
    folder = ck.save_training_state(tmp_path, 0, models, opts, scheds)
    new_models, new_opts, new_scheds = _two_of_each(seed=1)
    now_models, now_opts, now_scheds, lines = _mismatch(new_models, new_opts, new_scheds, new_models["a"],
                                                        new_models["b"])[case]
    for m in now_models.values():
        nn.init.constant_(m.weight, 0.5)
    listed = "\n  - ".join(lines)
    with _exactly(ValueError, f"checkpoint {folder} does not match this run, so nothing was loaded:\n  - {listed}\n"
                              "Resuming needs the same models and optimizers; to start a new run, use another "
                              f"ckpt_dir or delete {tmp_path}."):
        ck.load_training_state(folder, now_models, now_opts, now_scheds)
    assert all(bool((m.weight == 0.5).all()) for m in now_models.values())


def test_keys_on_one_side_only_and_settings_are_compared(tmp_path):
    models, opts, scheds = _two_of_each()
    folder = ck.save_training_state(tmp_path, 0, models, opts, scheds, settings={"grad_clip": 1.0, "old": 2})

    def edit(s):
        hp = s["spec"]["optimizers"]["o1"]["groups"][0]["hparams"]
        del hp["weight_decay"]
        hp["foo"] = 1
        return s

    torch.save(edit(torch.load(folder / ck.STATE_FILE, weights_only=True)), folder / ck.STATE_FILE)
    new = _two_of_each(seed=1)
    lines = ["optimizers['o1'] param group 0 'foo': 1 in the checkpoint, '<absent>' now",
             "optimizers['o1'] param group 0 'weight_decay': '<absent>' in the checkpoint, 0 now",
             "setting 'amp': '<absent>' in the checkpoint, False now",
             "setting 'old': 2 in the checkpoint, '<absent>' now"]
    listed = "\n  - ".join(lines)
    with _exactly(ValueError, f"checkpoint {folder} was saved with other settings than this run, so nothing was "
                              f"loaded:\n  - {listed}\nTo resume from it with the new values on purpose, pass "
                              "on_config_change='use_new' (in train: TrainConfig(on_config_change='use_new')); to "
                              "keep the checkpoint's values, pass the same values as before."):
        ck.load_training_state(folder, *new, settings={"grad_clip": 1.0, "amp": False})
    same = _two_of_each(seed=1)
    info = ck.load_training_state(folder, *same, settings={"grad_clip": 1.0, "old": 2},
                                  on_config_change="use_new")
    assert info["changed"] == lines[:2]
    assert same[1]["o1"].param_groups[0]["weight_decay"] == 0


@pytest.mark.parametrize("old, new", [(0.1, 0.3), (0.3, 0.7), (0.7, 0.1)])
def test_use_new_lr_without_a_scheduler_is_exactly_the_new_value(tmp_path, old, new):
    model = nn.Linear(2, 1)
    folder = ck.save_training_state(tmp_path, 0, {"m": model}, {"o": torch.optim.SGD(model.parameters(), lr=old)})
    opt = torch.optim.SGD(model.parameters(), lr=new)
    ck.load_training_state(folder, {"m": model}, {"o": opt}, on_config_change="use_new")
    assert opt.param_groups[0]["lr"] == new


@pytest.mark.parametrize("old, new, scheduled", [(1.0, 0.5, 0.125), (0.0, 0.1, 0.1)])
def test_use_new_lr_from_a_unit_or_zero_initial_lr(tmp_path, old, new, scheduled):
    """A scheduled lr is rescaled by new/old; from an initial lr of 0 there is no scale, the new lr is used."""
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=old)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        opt.step()
        sched.step()
    folder = ck.save_training_state(tmp_path, 1, {"m": model}, {"o": opt}, {"s": sched})
    opt = torch.optim.SGD(model.parameters(), lr=new)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    ck.load_training_state(folder, {"m": model}, {"o": opt}, {"s": sched}, on_config_change="use_new")
    assert opt.param_groups[0]["lr"] == pytest.approx(scheduled)
    assert opt.param_groups[0]["initial_lr"] == new and sched.base_lrs == [new]


def test_use_new_tensor_lr_with_a_scheduler(tmp_path):
    model = nn.Linear(2, 1)

    def make(lr):
        opt = torch.optim.Adam(model.parameters(), lr=torch.tensor(lr))
        return opt, torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    opt, sched = make(0.02)
    for _ in range(2):
        opt.step()
        sched.step()
    cur, old = opt.param_groups[0]["lr"].item(), opt.param_groups[0]["initial_lr"].item()
    folder = ck.save_training_state(tmp_path, 1, {"m": model}, {"o": opt}, {"s": sched})
    opt, sched = make(0.123)
    new = opt.param_groups[0]["lr"].item()
    ck.load_training_state(folder, {"m": model}, {"o": opt}, {"s": sched}, on_config_change="use_new")
    g = opt.param_groups[0]
    # current x new / old in double precision, rounded once into the float32 lr tensor
    assert isinstance(g["lr"], torch.Tensor) and g["lr"].dtype == torch.float32
    assert g["lr"].item() == torch.tensor(cur * new / old, dtype=torch.float32).item()
    assert g["lr"].item() == pytest.approx(0.005 * 0.123 / 0.02)
    assert float(g["initial_lr"]) == pytest.approx(0.123)


class _NoOptimizer:
    """A scheduler-like object without an optimizer (only state_dict/load_state_dict are required)."""

    def state_dict(self):
        return {}

    def load_state_dict(self, sd):
        pass


class _Chain:
    """A custom scheduler with base_lrs and sub-schedulers, over an optimizer without initial_lr."""

    def __init__(self, opt, subs):
        self.optimizer, self._schedulers = opt, subs
        self.base_lrs = [g["lr"] for g in opt.param_groups]

    def state_dict(self):
        return {"base_lrs": list(self.base_lrs), "subs": [s.state_dict() for s in self._schedulers]}

    def load_state_dict(self, sd):
        self.base_lrs = list(sd["base_lrs"])
        for s, d in zip(self._schedulers, sd["subs"], strict=True):
            s.load_state_dict(d)


def test_use_new_lr_reaches_custom_schedulers(tmp_path):
    model = nn.Linear(1, 1)

    def make(lr):
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        return opt, {"c": _Chain(opt, [_NoOptimizer(), _Chain(opt, [])]), "plain": _NoOptimizer()}

    opt, scheds = make(0.1)
    folder = ck.save_training_state(tmp_path, 0, {"m": model}, {"o": opt}, scheds)
    opt, scheds = make(0.02)
    ck.load_training_state(folder, {"m": model}, {"o": opt}, scheds, on_config_change="use_new")
    assert opt.param_groups[0]["lr"] == 0.02
    assert scheds["c"].base_lrs == [0.02] and scheds["c"]._schedulers[1].base_lrs == [0.02]


def test_nonfinite_tensor_fast_path_does_not_cry_wolf_when_a_finite_sum_overflows():
    from aigc_course.checkpoint import nonfinite_tensor

    big = torch.nn.Linear(4, 4)
    with torch.no_grad():
        big.weight.fill_(3e38)                      # finite, but the sum of 16 of them overflows float32
    assert not torch.isfinite(big.weight.sum()) and torch.isfinite(big.weight).all()
    assert nonfinite_tensor({"m": big}) is None
    with torch.no_grad():
        big.bias[2] = float("nan")
    assert nonfinite_tensor({"m": big}) == ("m", "parameter", "bias")
    half = torch.nn.Linear(300, 300).half()
    with torch.no_grad():
        half.weight.fill_(60000.0)                  # float16 max is 65504: the sum overflows, the weights do not
    assert nonfinite_tensor({"h": half}) is None
    half.register_buffer("stat", torch.tensor([1.0, float("-inf")]))
    assert nonfinite_tensor({"h": half}) == ("h", "buffer", "stat")
