"""Fault tests by class: resume with a changed config, damaged files, inf weights, leftovers, a shared
folder, LATEST outside its folder, unloadable extras, a full disk, and bad arguments.

Each class is a parametrized or hypothesis test; every refusal must name the file, folder or argument,
and must leave the objects it was given exactly as they were.
"""

import errno
import fcntl
import math
import os
import pathlib
import pickle
import re
import signal
import subprocess
import sys
import tempfile
from collections import defaultdict, namedtuple

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from aigc_course import checkpoint as ck
from aigc_course.train import NonFiniteLossError, TrainConfig, train

HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _step_fn(model, opt_name="main"):
    def step(ctx):
        x = torch.randn(4, model[0].in_features)
        loss = model(x).pow(2).mean()
        ctx.optimize(loss, opt_name)
        return {"loss": loss}

    return step


def _run(ckpt, width=4, opt="adam", sched="step", steps=6, grad_clip=1.0, amp=None, seed=0, dtype=None,
         extra_model=False, groups=1, on_config_change="error", names=("0", "1")):
    """Build a small run (optionally with a changed config) and train it; returns its objects."""
    torch.manual_seed(seed)
    model = nn.Sequential()
    model.add_module(names[0], nn.Linear(3, width))
    model.add_module(names[1], nn.Linear(width, 1))
    if dtype is not None:
        model = model.to(dtype)
    models = {"main": model}
    if extra_model:
        models["ema"] = nn.Linear(1, 1)
    params = list(model.parameters()) + (list(models["ema"].parameters()) if extra_model else [])
    param_groups = [{"params": params}] if groups == 1 else [{"params": params[:2]}, {"params": params[2:]}]
    optimizer = (torch.optim.Adam(param_groups, lr=0.01) if opt == "adam"
                 else torch.optim.SGD(param_groups, lr=0.01))
    scheduler = {"step": lambda: torch.optim.lr_scheduler.StepLR(optimizer, step_size=3),
                 "exp": lambda: torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9),
                 None: lambda: None}[sched]()
    cfg = TrainConfig(steps=steps, ckpt_dir=ckpt, grad_clip=grad_clip, amp=amp, progress=False,
                      on_config_change=on_config_change)
    objs = {"models": models, "optimizers": optimizer, "schedulers": scheduler}
    return objs, (lambda: train(_step_fn(model), config=cfg, **objs))


def _frozen(objs):
    """Everything a refused resume must leave untouched."""
    return {
        "weights": {m: {k: v.clone() for k, v in mod.state_dict().items()} for m, mod in objs["models"].items()},
        "optimizer": repr(objs["optimizers"].state_dict()),
        "scheduler": repr(objs["schedulers"].state_dict()) if objs["schedulers"] is not None else None,
        "rng": torch.get_rng_state(),
    }


def _assert_untouched(objs, before):
    after = _frozen(objs)
    for m, sd in before["weights"].items():
        for k, v in sd.items():
            assert torch.equal(after["weights"][m][k], v), (m, k)  # bit-identical
    assert after["optimizer"] == before["optimizer"]
    assert after["scheduler"] == before["scheduler"]
    assert torch.equal(after["rng"], before["rng"])


def _refused_resume(ckpt, match, **changes):
    """Resume a run built with ``changes``: it must raise ValueError matching ``match`` and change nothing."""
    objs, run = _run(ckpt, **changes)
    before = _frozen(objs)
    with pytest.raises(ValueError, match=match) as err:
        run()
    _assert_untouched(objs, before)
    return str(err.value)


# --- resume with a changed config ----------------------------------------------------------------

STRUCTURAL = {
    "width": ({"width": 8}, r"model 'main' tensor '0.weight' has shape \[4, 3\] in the checkpoint but \[8, 3\] now"),
    "optimizer type": ({"opt": "sgd"}, r"optimizer 'main' is torch.optim.adam.Adam in the checkpoint but "
                                       r"torch.optim.sgd.SGD now"),
    "dtype": ({"dtype": torch.float64}, r"model 'main' tensor '0.weight' has dtype torch.float32 in the "
                                        r"checkpoint but torch.float64 now"),
    "param groups": ({"groups": 2}, r"optimizer 'main' has 1 param groups in the checkpoint but 2 now"),
    "scheduler type": ({"sched": "exp"}, r"scheduler 'main' is torch.optim.lr_scheduler.StepLR in the "
                                         r"checkpoint but torch.optim.lr_scheduler.ExponentialLR now"),
    "scheduler dropped": ({"sched": None}, r"the checkpoint also holds scheduler 'main', which this run "
                                           r"does not pass"),
    "model added": ({"extra_model": True}, r"the checkpoint has no model named 'ema' \(it has \['main'\]\)"),
    "layer renamed": ({"names": ("enc", "1")}, r"model 'main' does not match: the checkpoint lacks "
                                               r"\['enc.weight', 'enc.bias'\] and has \['0.weight', '0.bias'\]"),
}


@pytest.mark.parametrize("case", list(STRUCTURAL))
def test_resume_refuses_another_architecture_and_changes_nothing(tmp_path, case):
    change, message = STRUCTURAL[case]
    _, run = _run(tmp_path)
    run()
    folder = ck.latest_checkpoint(tmp_path)
    for mode in ("error", "use_new"):  # no option makes a different architecture loadable
        text = _refused_resume(tmp_path, message, steps=9, seed=5, on_config_change=mode, **change)
        assert text.startswith(f"checkpoint {folder} does not match this run, so nothing was loaded")
        assert f"use another ckpt_dir or delete {tmp_path}" in text
    assert ck.latest_checkpoint(tmp_path) == folder  # nothing was written either


HPARAM_CASES = [
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, "lr", st.floats(1e-4, 1.0)),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, "momentum", st.floats(0.0, 0.99)),
    (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}, "weight_decay", st.floats(1e-6, 0.1)),
    (torch.optim.Adam, {"lr": 1e-3}, "lr", st.floats(1e-5, 1.0)),
    (torch.optim.Adam, {"lr": 1e-3}, "betas", st.tuples(st.floats(0.0, 0.99), st.floats(0.5, 0.999))),
    (torch.optim.Adam, {"lr": 1e-3}, "eps", st.floats(1e-10, 1e-4)),
    (torch.optim.AdamW, {"lr": 1e-3, "weight_decay": 0.01}, "weight_decay", st.floats(0.0, 0.5)),
]


@HYP
@given(case=st.sampled_from(range(len(HPARAM_CASES))), data=st.data())
def test_changed_hyperparameter_is_refused_or_applied_on_purpose(case, data):
    cls, kwargs, key, values = HPARAM_CASES[case]
    new_value = data.draw(values)
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = cls(model.parameters(), **kwargs)
    old_value = opt.param_groups[0][key]
    assume(new_value != old_value)
    model(torch.randn(5, 3)).pow(2).sum().backward()
    opt.step()
    saved_state = {k: v.clone() for k, v in opt.state[model.weight].items()}
    with tempfile.TemporaryDirectory() as d:
        folder = ck.save_training_state(d, 3, {"m": model}, {"m": opt})
        fresh = nn.Linear(3, 2)
        new_opt = cls(fresh.parameters(), **{**kwargs, key: new_value})
        w_before = fresh.weight.detach().clone()
        with pytest.raises(ValueError) as err:
            ck.load_training_state(folder, {"m": fresh}, {"m": new_opt})
        text = str(err.value)
        assert text.startswith(f"checkpoint {folder} was saved with other settings than this run, so nothing "
                               "was loaded")
        assert f"optimizers['m'] param group 0 '{key}': {old_value!r} in the checkpoint, {new_value!r} now" in text
        assert "pass on_config_change='use_new' (in train: TrainConfig(on_config_change='use_new'))" in text
        assert torch.equal(fresh.weight, w_before) and not new_opt.state  # nothing applied
        info = ck.load_training_state(folder, {"m": fresh}, {"m": new_opt}, on_config_change="use_new")
        assert new_opt.param_groups[0][key] == new_value  # the new value is in force...
        for k, v in saved_state.items():  # ...on top of the restored state
            assert torch.equal(new_opt.state[fresh.weight][k], v), k
        assert torch.equal(fresh.weight, model.weight)
        assert info["changed"] == [f"optimizers['m'] param group 0 '{key}': {old_value!r} in the checkpoint, "
                                   f"{new_value!r} now"]


@pytest.mark.parametrize("change, line", [
    ({"grad_clip": 0.5}, "setting 'grad_clip': 1.0 in the checkpoint, 0.5 now"),
    ({"grad_clip": None}, "setting 'grad_clip': 1.0 in the checkpoint, None now"),
    ({"amp": True}, "setting 'amp': False in the checkpoint, True now"),
])
def test_changed_train_setting_is_refused_unless_use_new(tmp_path, change, line):
    _, run = _run(tmp_path)
    run()
    _refused_resume(tmp_path, re.escape(line), steps=8, seed=3, **change)
    objs, run = _run(tmp_path, steps=8, seed=3, on_config_change="use_new", **change)
    assert len(run()) == 8


def test_same_config_resumes_with_amp_none_meaning_off_on_cpu(tmp_path):
    _, run = _run(tmp_path, amp=None)
    run()
    _, run = _run(tmp_path, amp=False, steps=8)  # None resolves to False on CPU: the same run
    assert len(run()) == 8


# --- damaged checkpoint files --------------------------------------------------------------------

def _edit_state(folder, edit):
    state = torch.load(folder / ck.STATE_FILE, weights_only=True)
    state = edit(state)
    torch.save(state, folder / ck.STATE_FILE)


def _truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: keep(len(data))])


def _nested_set(obj, path, value):
    inner = obj
    for k in path[:-1]:
        inner = inner[k]
    inner[path[-1]] = value
    return obj


def _put(path, value):
    """A damage: set state.pt[path] = value (value(state) when callable)."""
    return lambda f: _edit_state(f, lambda s: _nested_set(s, path, value(s) if callable(value) else value))


def _set_opt_state(s):
    s["optimizers"]["main"]["state"][0]["exp_avg"] = torch.zeros(4, 7)
    return s


DAMAGE = {
    "empty state.pt": (lambda f: (f / "state.pt").write_bytes(b""),
                       r"state file {state} \(0 bytes\) is empty, truncated or not a torch file"),
    "truncated state.pt": (lambda f: _truncate(f / "state.pt", lambda n: n // 2),
                           r"state file {state} \(\d+ bytes\) is empty, truncated or not a torch file"),
    "garbage state.pt": (lambda f: (f / "state.pt").write_bytes(b"PK\x03\x04" + bytes(296)),
                         r"state file {state} \(300 bytes\) is empty, truncated or not a torch file"),
    "foreign pickle": (lambda f: (f / "state.pt").write_bytes(pickle.dumps({"step": pathlib.Path("x")}, protocol=2)),
                       r"state file {state} holds objects that weights_only loading refuses"),
    "state.pt is a list": (lambda f: torch.save([1, 2], f / "state.pt"),
                           r"state file {state} holds a list, not the dict that save_training_state writes"),
    "state.pt lacks keys": (lambda f: _edit_state(f, lambda s: {"step": s["step"], "extra": {}}),
                            r"state file {state} lacks \['spec', 'optimizers', 'schedulers', 'rng'\]"),
    "state.pt has only unknown keys": (lambda f: torch.save({"foo": 1}, f / "state.pt"),
                                       r"state file {state} lacks \['step', 'spec', 'optimizers', "
                                       r"'schedulers', 'rng', 'extra'\]"),
    "negative step": (lambda f: _edit_state(f, lambda s: {**s, "step": -3}),
                      r"state file {state}: 'step' must be an int >= 0, got -3"),
    "damaged spec": (lambda f: _edit_state(f, lambda s: {**s, "spec": {"models": {}}}),
                     r"state file {state}: 'spec' is damaged"),
    "damaged rng": (lambda f: _edit_state(f, lambda s: {**s, "rng": {**s["rng"], "python": [1]}}),
                    r"state file {state}: the RNG state is damaged \('python' is not"),
    "optimizer state shape": (lambda f: _edit_state(f, _set_opt_state),
                              r"state file {state}, optimizer 'main': 'exp_avg' of parameter 0 has shape "
                              r"\[4, 7\], the parameter \[4, 3\]"),
    "damaged spec entry": (_put(["spec", "models", "main", "0.weight"], 5),
                           r"state file {state}: 'spec' is damaged \(TypeError"),
    "optimizer state layout": (_put(["optimizers", "main"], {"state": {}}),
                               r"state file {state}, optimizer 'main' is damaged \(needs 'state' and "
                               r"'param_groups'\)"),
    "optimizer group count": (_put(["optimizers", "main", "param_groups"],
                                   lambda s: s["optimizers"]["main"]["param_groups"] * 2),
                              r"state file {state}, optimizer 'main' has 2 param groups, the optimizer 1"),
    "optimizer group size": (_put(["optimizers", "main", "param_groups", 0, "params"], [0, 1]),
                             r"state file {state}, optimizer 'main': param group 0 has 2 parameters, the "
                             r"optimizer 4"),
    "optimizer group damaged": (_put(["optimizers", "main", "param_groups", 0], [1]),
                                r"state file {state}, optimizer 'main': param group 0 is damaged"),
    "optimizer foreign state": (_put(["optimizers", "main", "state", 99], {}),
                                r"state file {state}, optimizer 'main': state for parameter 99 does not "
                                r"belong to any param group"),
    "optimizer missing": (_put(["optimizers"], {}), r"state file {state} has no optimizer named 'main'"),
    "scheduler missing": (_put(["schedulers"], {}), r"state file {state} has no scheduler named 'main'"),
    "rng not a dict": (_put(["rng"], [1]),
                       r"state file {state}: the RNG state is damaged \(expected a dict, got list\)"),
    "rng numpy": (_put(["rng", "numpy", 1], torch.zeros(3)),
                  r"state file {state}: the RNG state is damaged \('numpy' is not \[name, 624 keys"),
    "rng torch": (_put(["rng", "torch"], torch.zeros(3)),
                  r"state file {state}: the RNG state is damaged \('torch' is not a uint8 tensor\)"),
    "history": (_put(["extra", "history"], [{"loss": "low"}]),
                r"checkpoint {folder}: the stored history is damaged"),
    "broken safetensors header": (lambda f: (f / ck.WEIGHTS_FILE).write_bytes(
        (10**9).to_bytes(8, "little") + b"{not json"), r"cannot read weights file {weights}: it is damaged"),
    "truncated safetensors": (lambda f: _truncate(f / ck.WEIGHTS_FILE, lambda n: n - 10),
                              r"cannot read weights file {weights}: it is damaged"),
    "weights lack a tensor": (lambda f: ck.save_file({"main.0.weight": torch.zeros(4, 3)},
                                                     str(f / ck.WEIGHTS_FILE)),
                              r"checkpoint {folder} does not match model 'main': weights.safetensors lacks "
                              r"\['0.bias', '1.weight', '1.bias'\]"),
    "weights of another shape": (lambda f: ck.save_file(
        {**ck.load_file(str(f / ck.WEIGHTS_FILE)), "main.1.bias": torch.zeros(5)}, str(f / ck.WEIGHTS_FILE)),
        r"checkpoint {weights} does not match model 'main': tensor '1.bias' has shape \[5\] in the file"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_checkpoint_is_refused_naming_the_file(tmp_path, case):
    damage, message = DAMAGE[case]
    _, run = _run(tmp_path)
    run()
    folder = ck.latest_checkpoint(tmp_path)
    damage(folder)
    message = message.format(state=re.escape(str(folder / "state.pt")), folder=re.escape(str(folder)),
                             weights=re.escape(str(folder / ck.WEIGHTS_FILE)))
    _refused_resume(tmp_path, message, steps=9, seed=4)


@pytest.mark.parametrize("content", [b"../x", b"/etc", b"step_1", b"step_0000000x", b"./step_00000005",
                                     b"step_00000005/../../x", b"step_00000005\nstep_00000005", b"\xff\xfe\x00"])
def test_resume_refuses_a_bad_latest_and_changes_nothing(tmp_path, content):
    _, run = _run(tmp_path)
    run()
    (tmp_path / "LATEST").write_bytes(content)
    _refused_resume(tmp_path, re.escape(f"{tmp_path / 'LATEST'} must hold the name of a checkpoint folder in "
                                        f"{tmp_path} such as 'step_00000100', but holds"), steps=9, seed=4)


@HYP
@given(content=st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode)))
def test_latest_must_name_a_step_folder(content):
    try:
        valid = re.fullmatch(r"step_\d{8,}", content.decode("ascii").strip()) is not None
    except UnicodeDecodeError:
        valid = False
    assume(not valid)
    with tempfile.TemporaryDirectory() as d:
        (pathlib.Path(d) / "LATEST").write_bytes(content)
        with pytest.raises(ValueError, match=re.escape(f"{pathlib.Path(d) / 'LATEST'} must hold the name")):
            ck.latest_checkpoint(d)


def test_latest_does_not_follow_a_symlinked_folder(tmp_path):
    outside = tmp_path / "outside"
    ck.save_training_state(outside, 5, {"m": nn.Linear(1, 1)})
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / "step_00000005").symlink_to(outside / "step_00000005")
    (root / "LATEST").write_text("step_00000005\n")
    with pytest.raises(FileNotFoundError, match="incomplete or missing"):
        ck.latest_checkpoint(root)


# --- extra values that weights_only loading would refuse ----------------------------------------

Point = namedtuple("Point", "x y")
LOADABLE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False), st.text(max_size=5),
              st.builds(torch.tensor, st.lists(st.floats(-1, 1), max_size=3))),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=8,
)
REFUSED = [np.float64(1.5), np.int64(3), np.zeros(2), object(), defaultdict(int), range(3), pathlib.Path("p"),
           Point(1, 2), len]


@HYP
@given(value=LOADABLE)
def test_loadable_extra_round_trips(value):
    model = nn.Linear(1, 1)
    with tempfile.TemporaryDirectory() as d:
        folder = ck.save_training_state(d, 0, {"m": model}, extra={"v": value})
        loaded = ck.load_training_state(folder, {"m": model}, restore_rng=False)["extra"]["v"]
    assert repr(loaded) == repr(value)


@HYP
@given(bad=st.sampled_from(REFUSED), path=st.lists(st.one_of(st.text(min_size=1, max_size=3), st.just(0)),
                                                   max_size=3))
def test_unloadable_extra_is_refused_at_save_time_naming_the_key(bad, path):
    value, where = bad, ""
    for step in reversed(path):
        value = [value] if step == 0 else {step: value}
    for step in path:
        where += f"[{step!r}]"
    model = nn.Linear(1, 1)
    with tempfile.TemporaryDirectory() as d:
        with pytest.raises(TypeError, match=re.escape(f"extra['k']{where} is a {type(bad).__module__}."
                                                      f"{type(bad).__qualname__}, which torch.load(weights_only=True) "
                                                      "cannot read back")):
            ck.save_training_state(d, 0, {"m": model}, extra={"k": value})
        assert os.listdir(d) == []  # nothing written, not even the folder's lock


# --- NaN/inf weights are never saved -------------------------------------------------------------

@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("where, label", [(("0", "weight"), "parameter '0.weight'"),
                                          (("1", "running_var"), "buffer '1.running_var'")])
def test_save_refuses_nonfinite_weights(tmp_path, value, where, label):
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    ck.save_training_state(tmp_path, 1, {"net": model})
    with torch.no_grad():
        getattr(getattr(model, where[0]), where[1]).view(-1)[1] = value
    with pytest.raises(ValueError, match=re.escape(f"model 'net' {label} holds NaN/inf values; refusing to save "
                                                   f"it to {tmp_path}")):
        ck.save_training_state(tmp_path, 2, {"net": model})
    assert ck.latest_checkpoint(tmp_path).name == "step_00000001"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "LATEST", "step_00000001"]


def test_nonfinite_tensor_ignores_integer_buffers_and_finds_the_first_bad_one():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2), nn.Linear(2, 2))
    assert ck.nonfinite_tensor({"a": model}) is None  # num_batches_tracked is an int buffer
    with torch.no_grad():
        model[2].bias[0] = math.nan
    assert ck.nonfinite_tensor({"a": nn.Linear(1, 1), "b": model}) == ("b", "parameter", "2.bias")
    with torch.no_grad():
        model[1].running_mean[1] = math.inf
    assert ck.nonfinite_tensor({"b": model}) == ("b", "parameter", "2.bias")  # parameters are checked first


def test_train_stops_on_inf_weights_and_never_calls_them_last_good(tmp_path):
    model = nn.Sequential(nn.Linear(2, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def step(ctx):
        loss = model(torch.ones(1, 2)).sum()
        ctx.optimize(loss)
        if ctx.step == 7:
            with torch.no_grad():
                model[0].weight[0, 1] = math.inf  # as a bad update would
        return {"loss": loss}

    cfg = TrainConfig(steps=20, ckpt_dir=tmp_path, ckpt_every=5, progress=False)
    with pytest.raises(NonFiniteLossError) as err:
        train(step, models={"gen": model}, optimizers=opt, config=cfg)
    first = ck.latest_checkpoint(tmp_path)
    assert str(err.value).startswith(f"Training stopped: model 'gen' parameter '0.weight' holds NaN/inf after "
                                     f"the update at step 7 (the model in memory is damaged; it was not saved). "
                                     f"The last good checkpoint is {first};")
    assert first.name == "step_00000004"
    fresh = nn.Sequential(nn.Linear(2, 1))
    ck.load_training_state(first, {"gen": fresh})
    assert torch.isfinite(fresh[0].weight).all()


# --- leftovers of a killed writer, and a folder shared by two runs -------------------------------

def _plant_leftovers(root):
    (root / ".step_00000007.x1y2").mkdir()
    (root / ".step_00000007.x1y2" / "weights.safetensors").write_bytes(b"half")
    (root / ".LATEST.abc.tmp").write_text("step_0000")
    (root / ".state.pt.q.tmp").write_bytes(b"")
    (root / "notes.txt").write_text("mine")  # not ours: kept
    (root / ".hidden").write_text("also kept")


@pytest.mark.parametrize("how", ["save", "resume"])
def test_leftovers_of_a_dead_writer_are_removed(tmp_path, how):
    _, run = _run(tmp_path)
    run()
    _plant_leftovers(tmp_path)
    if how == "save":
        ck.save_training_state(tmp_path, 5, {"main": nn.Linear(1, 1)}, keep_last=1)
        steps = ["step_00000005"]
    else:
        _run(tmp_path)[1]()  # the run is complete: resume loads, trains nothing, saves nothing
        steps = ["step_00000005"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", ".lock", "LATEST", "notes.txt", *steps]


def test_remove_leftovers_reports_what_it_removed(tmp_path):
    _plant_leftovers(tmp_path)
    assert ck.remove_leftovers(tmp_path) == [".LATEST.abc.tmp", ".state.pt.q.tmp", ".step_00000007.x1y2"]
    assert ck.remove_leftovers(tmp_path / "nothing") == []


def _hold_lock(root):
    fd = os.open(root / ck.LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_second_run_on_a_locked_folder_gets_a_clear_error(tmp_path):
    objs, run = _run(tmp_path)
    other = nn.Linear(1, 1)
    before = _frozen(objs)
    fd = _hold_lock(tmp_path)
    in_use = re.escape(f"checkpoint folder {tmp_path} is in use by another run (it holds the lock "
                       f"{tmp_path / '.lock'})")
    try:
        with pytest.raises(ck.CheckpointInUseError, match=in_use):
            run()
        with pytest.raises(ck.CheckpointInUseError, match=in_use):
            ck.save_training_state(tmp_path, 3, {"m": other})
    finally:
        os.close(fd)
    _assert_untouched(objs, before)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]
    assert len(run()) == 6  # released: the run goes ahead


def test_nested_train_on_the_same_folder_is_refused_and_the_lock_is_released_on_error(tmp_path):
    inner_objs, inner = _run(tmp_path)
    model = nn.Sequential(nn.Linear(3, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(ctx):
        inner()

    cfg = TrainConfig(steps=2, ckpt_dir=tmp_path, progress=False)
    with pytest.raises(ck.CheckpointInUseError, match=r"is in use by another run .*\(a train\(\) call in this "
                                                      r"process\)"):
        train(step, models=model, optimizers=opt, config=cfg)
    os.close(_hold_lock(tmp_path))  # the failed run let go of the lock


def test_the_os_releases_the_lock_of_a_killed_process(tmp_path):
    code = ("import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / ck.LOCK_FILE)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(ck.CheckpointInUseError, match="in use by another run"):
            _run(tmp_path)[1]()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
    assert len(_run(tmp_path)[1]()) == 6


# --- a full disk ---------------------------------------------------------------------------------

def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("target", ["weights", "state", "fsync", "LATEST"])
def test_full_disk_names_the_checkpoint_and_leaves_the_last_one(tmp_path, monkeypatch, target):
    model = nn.Linear(2, 2)
    ck.save_training_state(tmp_path, 3, {"m": model})
    if target == "weights":
        monkeypatch.setattr(ck, "save_file", _no_space)
    elif target == "state":
        monkeypatch.setattr(ck.torch, "save", _no_space)
    elif target == "fsync":
        monkeypatch.setattr(ck.os, "fsync", _no_space)
    else:
        monkeypatch.setattr(pathlib.Path, "write_text", _no_space)
    what = tmp_path / ("LATEST" if target == "LATEST" else "step_00000004")
    with pytest.raises(OSError, match=re.escape(f"cannot write {'' if target == 'LATEST' else 'checkpoint '}"
                                                f"{what}: No space left on device (the disk is full")) as err:
        ck.save_training_state(tmp_path, 4, {"m": model})
    assert err.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert ck.latest_checkpoint(tmp_path).name == "step_00000003"
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != ".lock"]


def test_full_disk_during_train_names_the_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(ck, "save_file", _no_space)
    _, run = _run(tmp_path)
    with pytest.raises(OSError, match=re.escape(f"cannot write checkpoint {tmp_path / 'step_00000005'}")):
        run()


# --- bad arguments -------------------------------------------------------------------------------

BAD_CONFIG = [
    ({"amp": "no"}, TypeError, r"TrainConfig.amp must be True, False or None, got str 'no' \(a string such as"),
    ({"amp": 1}, TypeError, r"TrainConfig.amp must be True, False or None, got int 1"),
    ({"grad_clip": "1"}, TypeError, r"TrainConfig.grad_clip must be a positive number or None, got str '1'"),
    ({"grad_clip": True}, TypeError, r"TrainConfig.grad_clip must be a positive number or None, got bool"),
    ({"grad_clip": 0}, ValueError, r"TrainConfig.grad_clip must be positive or None, got 0"),
    ({"grad_clip": -1.0}, ValueError, r"TrainConfig.grad_clip must be positive or None, got -1.0"),
    ({"grad_clip": math.nan}, ValueError, r"TrainConfig.grad_clip must be positive or None, got nan"),
    ({"steps": "10"}, TypeError, r"TrainConfig.steps must be an int, got str '10'"),
    ({"steps": 2.0}, TypeError, r"TrainConfig.steps must be an int, got float 2.0"),
    ({"steps": True}, TypeError, r"TrainConfig.steps must be an int, got bool"),
    ({"steps": -1}, ValueError, r"TrainConfig.steps must be >= 0, got -1"),
    ({"log_every": 0}, ValueError, r"TrainConfig.log_every must be >= 1, got 0"),
    ({"keep_last": 0}, ValueError, r"TrainConfig.keep_last must be >= 1, got 0"),
    ({"ckpt_every": -1}, ValueError, r"TrainConfig.ckpt_every must be >= 0, got -1"),
    ({"ckpt_every": 5}, ValueError, r"TrainConfig.ckpt_every=5 needs ckpt_dir \(where to save\)"),
    ({"ckpt_dir": 3}, TypeError, r"TrainConfig.ckpt_dir must be a path or None, got int"),
    ({"resume": "yes"}, TypeError, r"TrainConfig.resume must be True or False, got 'yes'"),
    ({"progress": 0}, TypeError, r"TrainConfig.progress must be True or False, got 0"),
    ({"on_config_change": "apply"}, ValueError, r"TrainConfig.on_config_change must be one of \('error', "
                                                r"'use_new'\), got 'apply'"),
    ({"desc": 3}, TypeError, r"TrainConfig.desc must be a str, got int"),
]


@pytest.mark.parametrize("kwargs, exc, message", BAD_CONFIG)
def test_train_config_names_the_bad_argument(kwargs, exc, message):
    with pytest.raises(exc, match=message):
        TrainConfig(**{"steps": 1, **kwargs})


@HYP
@given(amp=st.one_of(st.text(), st.integers(), st.floats(), st.lists(st.booleans(), max_size=2)))
def test_amp_must_be_a_real_bool(amp):
    with pytest.raises(TypeError, match=r"TrainConfig.amp must be True, False or None"):
        TrainConfig(steps=1, amp=amp)


def test_valid_configs_are_accepted():
    for kwargs in ({"amp": True}, {"amp": False}, {"grad_clip": None}, {"grad_clip": 3}, {"grad_clip": math.inf},
                   {"ckpt_dir": "x", "ckpt_every": 1}, {"ckpt_dir": pathlib.Path("x")}, {"steps": 0}):
        TrainConfig(steps=kwargs.pop("steps", 1), **kwargs)


def _set_lr(value):
    def make():
        model = nn.Linear(1, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        opt.param_groups[0]["lr"] = value
        return model, opt
    return make


BAD_TRAIN = {
    "lr None": (_set_lr(None), lambda m: None, TypeError,
                r"optimizers\['main'\].param_groups\[0\]\['lr'\] must be a number, got NoneType None"),
    "lr str": (_set_lr("0.1"), lambda m: None, TypeError, r"optimizers\['main'\].param_groups\[0\]\['lr'\] must "
                                                          r"be a number, got str"),
    "lr negative": (_set_lr(-0.1), lambda m: None, ValueError,
                    r"optimizers\['main'\].param_groups\[0\]\['lr'\] must be finite and >= 0, got -0.1"),
    "lr nan": (_set_lr(math.nan), lambda m: None, ValueError, r"must be finite and >= 0, got nan"),
    "returns float": (_set_lr(0.1), lambda m: 0.5, TypeError,
                      r"step_fn must return a dict of metrics \(e.g. {'loss': loss}\) or None, got float 0.5"),
    "returns 0.0": (_set_lr(0.1), lambda m: 0.0, TypeError, r"step_fn must return a dict of metrics .* got float"),
    "returns list": (_set_lr(0.1), lambda m: [1.0], TypeError, r"step_fn must return .* got list \[1.0\]"),
    "returns tensor": (_set_lr(0.1), lambda m: torch.tensor(1.0), TypeError, r"step_fn must return .* got Tensor"),
    "metric named step": (_set_lr(0.1), lambda m: {"step": 1.0}, ValueError,
                          r"step_fn returned a metric named 'step', which would overwrite the step column"),
    "metric key not str": (_set_lr(0.1), lambda m: {1: 1.0}, TypeError, r"metric name that is not a str: 1"),
    "metric str value": (_set_lr(0.1), lambda m: {"acc": "high"}, TypeError,
                         r"metric 'acc' must be a number or a 1-element tensor, got str 'high'"),
    "metric vector": (_set_lr(0.1), lambda m: {"acc": torch.ones(3)}, ValueError,
                      r"metric 'acc' must be a scalar, got a tensor of shape \(3,\)"),
    "metric complex": (_set_lr(0.1), lambda m: {"z": torch.tensor(1j)}, TypeError,
                       r"metric 'z' must be real, got a torch.complex64 tensor"),
}


@pytest.mark.parametrize("case", list(BAD_TRAIN))
def test_train_names_the_bad_argument_or_return_value(case):
    make, ret, exc, message = BAD_TRAIN[case]
    model, opt = make()
    with pytest.raises(exc, match=message):
        train(lambda ctx: ret(model), models=model, optimizers=opt, config=TrainConfig(steps=2, progress=False))


def test_train_refuses_bad_callbacks_schedulers_and_unsaved_parameters(tmp_path):
    model = nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cfg = TrainConfig(steps=1, progress=False)
    with pytest.raises(TypeError, match=r"callbacks\[1\] must be callable, got int"):
        train(lambda c: None, models=model, optimizers=opt, config=cfg, callbacks=[print, 3])
    with pytest.raises(TypeError, match=r"callbacks must be a list of callables, got str"):
        train(lambda c: None, models=model, optimizers=opt, config=cfg, callbacks="print")
    with pytest.raises(TypeError, match=r"schedulers\['main'\] must have a step\(\) method, got dict"):
        train(lambda c: None, models=model, optimizers=opt, config=cfg, schedulers={"main": {}})
    loose = torch.zeros(1, requires_grad=True)
    opt2 = torch.optim.SGD([*model.parameters(), loose], lr=0.1)
    train(lambda c: None, models=model, optimizers=opt2, config=cfg)  # fine without checkpoints
    with pytest.raises(ValueError, match=r"optimizers\['main'\] updates a parameter that belongs to none of the "
                                         r"models, so a checkpoint would not save it"):
        train(lambda c: None, models=model, optimizers=opt2,
              config=TrainConfig(steps=1, ckpt_dir=tmp_path, progress=False))


def test_save_and_load_name_bad_objects(tmp_path):
    model = nn.Linear(1, 1)
    with pytest.raises(TypeError, match=r"models must be a non-empty dict of name -> nn.Module, got Linear"):
        ck.save_training_state(tmp_path, 0, model)
    with pytest.raises(TypeError, match=r"optimizers\['o'\] must be a torch.optim.optimizer.Optimizer, got str"):
        ck.save_training_state(tmp_path, 0, {"m": model}, {"o": "adam"})
    with pytest.raises(TypeError, match=r"schedulers\['s'\] must have state_dict\(\) and load_state_dict\(\)"):
        ck.save_training_state(tmp_path, 0, {"m": model}, schedulers={"s": 1})
    with pytest.raises(TypeError, match=r"extra must be a dict, got list"):
        ck.save_training_state(tmp_path, 0, {"m": model}, extra=[1])
    with pytest.raises(FileNotFoundError, match=r"no checkpoint folder at"):
        ck.load_training_state(tmp_path / "nope", {"m": model})
    assert not tmp_path.exists() or os.listdir(tmp_path) == []


# --- exact messages for damaged state files, and filesystem faults around the folder -------------

def _small_checkpoint(root):
    torch.manual_seed(0)
    model = nn.Linear(3, 4)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(2, 3)).sum().backward()
    opt.step()
    return ck.save_training_state(root, 1, {"m": model}, {"o": opt})


def _fresh_small():
    torch.manual_seed(5)
    model = nn.Linear(3, 4)
    return {"m": model}, {"o": torch.optim.Adam(model.parameters(), lr=0.01)}


READ_STATE = {
    "no rng": (lambda s: {k: v for k, v in s.items() if k != "rng"},
               "{p} lacks ['rng']; it was not written by save_training_state (of this version) or is damaged"),
    "step True": (lambda s: {**s, "step": True}, "{p}: 'step' must be an int >= 0, got True"),
    "step str": (lambda s: {**s, "step": "3"}, "{p}: 'step' must be an int >= 0, got '3'"),
    "extra list": (lambda s: {**s, "extra": [1]}, "{p}: 'extra' must be a dict, got list"),
    "optimizers None": (lambda s: {**s, "optimizers": None}, "{p}: 'optimizers' must be a dict, got NoneType"),
    "spec lacks settings": (lambda s: {**s, "spec": {k: v for k, v in s["spec"].items() if k != "settings"}},
                            "{p}: 'spec' is damaged (needs dicts 'models', 'optimizers', 'schedulers', "
                            "'settings')"),
    "1-d state shape": (lambda s: _nested_set(s, ["optimizers", "o", "state", 1, "exp_avg"], torch.zeros(7)),
                        "{p}, optimizer 'o': 'exp_avg' of parameter 1 has shape [7], the parameter [4]"),
}


@pytest.mark.parametrize("case", list(READ_STATE))
def test_damaged_state_messages_are_exact(tmp_path, case):
    edit, message = READ_STATE[case]
    folder = _small_checkpoint(tmp_path)
    _edit_state(folder, edit)
    models, opts = _fresh_small()
    before = _frozen({"models": models, "optimizers": opts["o"], "schedulers": None})
    with pytest.raises(ValueError) as err:
        ck.load_training_state(folder, models, opts)
    assert str(err.value) == "state file " + message.format(p=folder / ck.STATE_FILE)
    _assert_untouched({"models": models, "optimizers": opts["o"], "schedulers": None}, before)


def test_weights_with_an_unexpected_tensor_are_refused(tmp_path):
    folder = _small_checkpoint(tmp_path)
    weights = ck.load_file(str(folder / ck.WEIGHTS_FILE))
    ck.save_file({**weights, "m.scale": torch.ones(1)}, str(folder / ck.WEIGHTS_FILE))
    models, opts = _fresh_small()
    with pytest.raises(ValueError) as err:
        ck.load_training_state(folder, models, opts)
    assert str(err.value) == (f"checkpoint {folder} does not match model 'm': weights.safetensors lacks [] and has "
                              "unexpected ['scale']")


def test_nonfinite_message_is_exact(tmp_path):
    model = nn.Linear(2, 1)
    with torch.no_grad():
        model.bias.fill_(math.nan)
    with pytest.raises(ValueError) as err:
        ck.save_training_state(tmp_path, 0, {"net": model})
    assert str(err.value) == (f"model 'net' parameter 'bias' holds NaN/inf values; refusing to save it to {tmp_path}, "
                              "since a checkpoint with such weights could never be a good restart point")


def test_atomic_write_creates_folders_and_names_its_temporary_file_as_a_leftover(tmp_path):
    target = tmp_path / "a" / "b" / "x.pt"
    seen = []

    def write(tmp):
        seen.append(tmp)
        tmp.write_bytes(b"data")

    ck.atomic_write(target, write)
    assert target.read_bytes() == b"data"
    (tmp_path_used,) = seen
    assert tmp_path_used.parent == target.parent
    assert tmp_path_used.name.startswith(".x.pt.") and tmp_path_used.name.endswith(".tmp")
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.pt"]


def test_a_half_written_checkpoint_lies_where_remove_leftovers_finds_it(tmp_path, monkeypatch):
    seen = []
    real = ck.save_file

    def spy(tensors, path):
        seen.append(pathlib.Path(path))
        return real(tensors, path)

    monkeypatch.setattr(ck, "save_file", spy)
    ck.save_training_state(tmp_path, 4, {"m": nn.Linear(1, 1)})
    (weights,) = seen
    assert weights.parent.parent == tmp_path and weights.parent.name.startswith(".step_00000004.")


def test_full_disk_when_creating_the_checkpoint_folder(tmp_path, monkeypatch):
    ck.save_training_state(tmp_path, 1, {"m": nn.Linear(1, 1)})
    monkeypatch.setattr(ck.tempfile, "mkdtemp", _no_space)
    with pytest.raises(OSError) as err:
        ck.save_training_state(tmp_path, 2, {"m": nn.Linear(1, 1)})
    assert err.value.errno == errno.ENOSPC
    assert str(err.value) == (f"[Errno 28] cannot write checkpoint {tmp_path / 'step_00000002'}: No space left on "
                              "device (the disk is full: free some space or choose another folder)")
    monkeypatch.undo()
    assert ck.latest_checkpoint(tmp_path).name == "step_00000001"


def _stuck_rmdir(monkeypatch):
    """Folders under a step_* or .step_* name cannot be removed (a busy mount, a file held open elsewhere)."""
    real = os.rmdir

    def rmdir(path, *args, **kwargs):
        if "step_" in os.fspath(path):
            raise OSError(errno.EBUSY, "Device or resource busy")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "rmdir", rmdir)


def test_cleanup_that_cannot_remove_a_folder_does_not_stop_the_run(tmp_path, monkeypatch):
    model = nn.Linear(1, 1)
    for step in (1, 2, 9):
        ck.save_training_state(tmp_path, step, {"m": model}, keep_last=5)
    (tmp_path / "LATEST").write_text("step_00000002\n")  # 9 came after LATEST: a later save removes it
    (tmp_path / ".step_00000005.abc").mkdir()
    _stuck_rmdir(monkeypatch)
    folder = ck.save_training_state(tmp_path, 3, {"m": model}, keep_last=1)
    assert ck.latest_checkpoint(tmp_path) == folder
    monkeypatch.setattr(ck, "save_file", _no_space)
    with pytest.raises(OSError, match=re.escape(f"cannot write checkpoint {tmp_path / 'step_00000004'}: No space")):
        ck.save_training_state(tmp_path, 4, {"m": model})  # the stuck temporary folder does not hide the cause
    monkeypatch.undo()
    assert ck.latest_checkpoint(tmp_path) == folder


def test_a_leftover_that_vanishes_meanwhile_is_fine(tmp_path, monkeypatch):
    (tmp_path / ".LATEST.x.tmp").write_text("")
    real = os.unlink

    def unlink(path, *args, **kwargs):
        if os.fspath(path).endswith(".tmp"):
            real(path, *args, **kwargs)  # another process removed it first
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    assert ck.remove_leftovers(tmp_path) == [".LATEST.x.tmp"]
