"""``aigc-course train`` / ``aigc-course sample`` (aigc_course.cli + aigc_course.runs), in-process on tiny configs,
plus subprocesses for a SIGKILL in the middle of a run and for torchrun."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from matplotlib import image as mpimg
from safetensors.torch import load_file, save_file

from aigc_course import runs
from aigc_course.checkpoint import checkpoint_lock, latest_checkpoint
from aigc_course.cli import main

ROOT = Path(__file__).resolve().parents[1]
JOB = Path(__file__).with_name("cli_job.py")
STEPS = 6
TINY = {
    "gan": {"model": {"latent_dim": 4, "width": 4}, "train": {"steps": STEPS, "batch_size": 8, "ckpt_every": 2}},
    "vae": {"model": {"latent_dim": 2, "hidden": 16},
            "train": {"steps": STEPS, "batch_size": 8, "ckpt_every": 2, "eval_every": 3}},
    "gpt": {"model": {"block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 8},
            "train": {"steps": STEPS, "batch_size": 4, "ckpt_every": 2, "eval_every": 3, "warmup_steps": 1,
                      "eval_batch_size": 64},
            "data": {"max_chars": 2000}},
}
FILES = {"config.json", "ckpt", "model.safetensors", "model.json", "history.json", "log.csv"}


def _config(folder: Path, family: str, **changes) -> Path:
    """TINY[family] with ``section={key: value}`` changes, written to folder/<family>.json."""
    cfg = json.loads(json.dumps(TINY[family]))
    for section, values in changes.items():
        if isinstance(values, dict):
            cfg.setdefault(section, {}).update(values)
        else:
            cfg[section] = values
    path = folder / f"{family}-{len(list(folder.glob('*.json')))}.json"
    path.write_text(json.dumps(cfg))
    return path


def _train(family: str, config: Path, out: Path, *extra: str) -> int:
    return main(["train", family, "--config", str(config), "--out", str(out), "--device", "cpu", "--no-progress",
                 *extra])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished tiny run per family (trained on first use): family → (run folder, config file)."""
    done: dict[str, tuple[Path, Path]] = {}

    def get(family: str) -> tuple[Path, Path]:
        if family not in done:
            base = tmp_path_factory.mktemp(f"run_{family}")
            config = _config(base, family)
            assert _train(family, config, base / "run") == 0
            done[family] = (base / "run", config)
        return done[family]

    return get


def _copy(run: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "copy"
    shutil.copytree(run, dest)
    (dest / "ckpt" / ".lock").unlink(missing_ok=True)
    return dest


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------ train + sample

@pytest.mark.parametrize("family", ["gan", "vae", "gpt"])
def test_train_writes_the_run_folder(family, trained, capsys):
    run, _ = trained(family)
    capsys.readouterr()
    assert {p.name for p in run.iterdir()} == FILES | ({"vocab.json"} if family == "gpt" else set())
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["format"] == 1 and cfg["family"] == family and cfg["device"] == "cpu" and cfg["world_size"] == 1
    assert cfg["amp"] is False and cfg["compile"] is False and cfg["seed"] == 0
    for section, values in TINY[family].items():
        for key, value in values.items():
            assert cfg[section][key] == value, (section, key)
    # every field of the family's config class is in the train section, except those the run owns
    fields = {f.name for f in dataclasses.fields(runs._train_class(family))}
    assert set(cfg["train"]) == fields - runs._RUN_OWNED
    # the history: one row per step, as in log.csv
    history = json.loads((run / "history.json").read_text())
    assert [r["step"] for r in history] == [float(i) for i in range(STEPS)]
    with open(run / "log.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(STEPS))
    loss = {"gan": "g_loss", "vae": "loss", "gpt": "loss"}[family]
    assert [float(r[loss]) for r in rows] == [r[loss] for r in history]
    # the final weights are the last checkpoint's; checkpoints every 2 steps, the newest two kept
    assert sorted(p.name for p in (run / "ckpt").glob("step_*")) == ["step_00000003", "step_00000005"]
    assert _same_tensors(_tensors(run / "model.safetensors"),
                         _tensors(latest_checkpoint(run / "ckpt") / "weights.safetensors"))
    meta = json.loads((run / "model.json").read_text())
    assert meta["family"] == family and meta["steps"] == STEPS and meta["last"] == history[-1]
    if family == "gpt":
        vocab = json.loads((run / "vocab.json").read_text())
        assert meta["model"]["vocab_size"] == len(vocab) == len(set(vocab))
        assert cfg["data"]["source"] == "docs" and len(cfg["data"]["sha256"]) == 64


def test_train_prints_a_summary(tmp_path, capsys):
    assert _train("vae", _config(tmp_path, "vae"), tmp_path / "run") == 0
    out = capsys.readouterr().out
    assert out.startswith(f"trained vae for {STEPS} steps") and "loss" in out
    assert str(tmp_path / "run" / "model.safetensors") in out


@pytest.mark.parametrize("family", ["gan", "vae"])
def test_sample_images_to_png(family, trained, tmp_path, capsys):
    run, _ = trained(family)
    png = tmp_path / "grid.png"
    assert main(["sample", "--ckpt", str(run), "--n", "12", "--out", str(png), "--seed", "3"]) == 0
    assert f"wrote 12 {family} samples to" in capsys.readouterr().out
    image = mpimg.imread(png)
    # 12 images of 8x8, 8 per row, 1 pixel of padding, each pixel 4x4: 2 rows x 8 columns
    assert image.shape[:2] == ((2 * 9 + 1) * 4, (8 * 9 + 1) * 4)
    first = png.read_bytes()
    assert main(["sample", "--ckpt", str(run), "--n", "12", "--out", str(png), "--seed", "3"]) == 0
    assert png.read_bytes() == first                               # the seed fixes the samples
    assert main(["sample", "--ckpt", str(run), "--n", "12", "--out", str(png), "--seed", "4"]) == 0
    assert png.read_bytes() != first
    assert main(["sample", "--ckpt", str(run), "--n", "3", "--nrow", "3", "--scale", "1", "--out", str(png)]) == 0
    assert mpimg.imread(png).shape[:2] == (9 + 1, 3 * 9 + 1)


def test_sample_images_default_to_the_run_folder(trained, tmp_path):
    run = _copy(trained("vae")[0], tmp_path)
    assert main(["sample", "--ckpt", str(run)]) == 0
    assert mpimg.imread(run / "samples.png").shape[:2] == ((8 * 9 + 1) * 4,) * 2      # 64 images, 8 x 8


def test_sample_text_to_stdout(trained, capsys):
    run, _ = trained("gpt")
    capsys.readouterr()
    argv = ["sample", "--ckpt", str(run), "--prompt", "The ", "--max-new-tokens", "30", "--seed", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert text.startswith("The ") and len(text) == len("The ") + 30 + 1      # + print's newline
    assert main(argv) == 0 and capsys.readouterr().out == text
    assert main([*argv[:-1], "2"]) == 0 and capsys.readouterr().out != text
    greedy = ["sample", "--ckpt", str(run), "--prompt", "in", "--max-new-tokens", "12", "--temperature", "0"]
    assert main([*greedy, "--seed", "5"]) == 0
    first = capsys.readouterr().out
    assert main([*greedy, "--seed", "6"]) == 0 and capsys.readouterr().out == first   # greedy ignores the seed
    assert main(["sample", "--ckpt", str(run), "--max-new-tokens", "5", "--top-k", "3", "--top-p", "0.9"]) == 0
    assert len(capsys.readouterr().out) == 1 + 5 + 1                      # default prompt: a newline


@pytest.mark.parametrize("family", ["vae", "gpt"])
def test_sample_falls_back_to_the_latest_checkpoint(family, trained, tmp_path, capsys):
    """Without model.safetensors (a run still training or stopped), sampling uses the newest checkpoint."""
    run = _copy(trained(family)[0], tmp_path)
    argv = (["sample", "--ckpt", str(run), "--prompt", "a", "--max-new-tokens", "20"] if family == "gpt" else
            ["sample", "--ckpt", str(run), "--n", "8", "--out", str(tmp_path / "a.png")])
    assert main(argv) == 0
    final = capsys.readouterr().out
    (run / "model.safetensors").unlink()
    (run / "model.json").unlink()
    if family == "vae":
        argv[-1] = str(tmp_path / "b.png")
    assert main(argv) == 0
    fallback = capsys.readouterr().out
    if family == "gpt":
        assert fallback == final
    else:
        assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    # the weights really come from the checkpoint LATEST names
    (run / "ckpt" / "LATEST").write_text("step_00000003\n")
    loaded = runs.load_run(run, device="cpu")
    assert loaded.weights == run / "ckpt" / "step_00000003" / "weights.safetensors"
    state = {f"{k}": v for k, v in loaded.models.state_dict().items()}
    older = _tensors(loaded.weights)
    assert all(torch.equal(state[k], v) for k, v in older.items())
    newest = _tensors(run / "ckpt" / "step_00000005" / "weights.safetensors")
    assert not _same_tensors(older, newest)


def test_toml_config_equals_json(tmp_path):
    pytest.importorskip("tomllib")
    toml = tmp_path / "tiny.toml"
    toml.write_text('seed = 3\n[model]\nlatent_dim = 2\nhidden = 16\n'
                    f'[train]\nsteps = {STEPS}\nbatch_size = 8\nckpt_every = 2\neval_every = 3\n')
    assert main(["train", "vae", "--config", str(toml), "--out", str(tmp_path / "t"), "--device", "cpu",
                 "--no-progress"]) == 0
    json_cfg = _config(tmp_path, "vae", seed=3)
    assert _train("vae", json_cfg, tmp_path / "j") == 0
    assert (json.loads((tmp_path / "t/config.json").read_text())
            == json.loads((tmp_path / "j/config.json").read_text()))
    assert _same_tensors(_tensors(tmp_path / "t/model.safetensors"), _tensors(tmp_path / "j/model.safetensors"))


def test_text_file_data_and_conditional_models(tmp_path, capsys):
    text = tmp_path / "poem.txt"
    text.write_text("abcab cabba " * 40)
    assert _train("gpt", _config(tmp_path, "gpt", data={}), tmp_path / "g", "--data", str(text)) == 0
    cfg = json.loads((tmp_path / "g/config.json").read_text())
    assert cfg["data"]["source"] == "file" and cfg["data"]["path"] == str(text.resolve())
    assert json.loads((tmp_path / "g/vocab.json").read_text()) == [" ", "a", "b", "c"]
    capsys.readouterr()
    assert main(["sample", "--ckpt", str(tmp_path / "g"), "--prompt", "ab", "--max-new-tokens", "10"]) == 0
    assert set(capsys.readouterr().out.strip()) <= set("abc ")
    # a conditional GAN: one column per digit
    cond = _config(tmp_path, "gan", model={"num_classes": 10})
    assert _train("gan", cond, tmp_path / "c") == 0
    assert main(["sample", "--ckpt", str(tmp_path / "c"), "--n", "20", "--scale", "1",
                 "--out", str(tmp_path / "c.png")]) == 0
    assert mpimg.imread(tmp_path / "c.png").shape[:2] == (2 * 9 + 1, 10 * 9 + 1)


# ----------------------------------------------------------------------------------------------- resume

def _history(run: Path) -> list[dict[str, float]]:
    return json.loads((run / "history.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gpt", "gan", "vae"])
def test_sigkill_then_resume_ends_bit_identical(family, tmp_path, monkeypatch, capsys):
    """A run killed with SIGKILL once its first checkpoint exists, rerun with --resume, ends exactly where an
    uninterrupted run ends: the same final weights and the same history."""
    steps = 10
    config = _config(tmp_path, family, train={"steps": steps, "ckpt_every": 2})
    assert _train(family, config, tmp_path / "ref") == 0
    run = tmp_path / "killed"
    env = {**os.environ, "AIGC_NUM_THREADS": str(torch.get_num_threads()), "TQDM_DISABLE": "1"}
    job = subprocess.Popen([sys.executable, str(JOB), "0.1", "train", family, "--config", str(config), "--out",
                            str(run), "--device", "cpu", "--no-progress"], env=env, cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "ckpt" / "LATEST").exists():
        assert job.poll() is None, job.communicate()
        assert time.time() < deadline, "no checkpoint after 120 s"
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.communicate(timeout=30)
    assert job.returncode == -signal.SIGKILL
    killed_at = latest_checkpoint(run / "ckpt").name
    assert killed_at < f"step_{steps - 1:08d}", killed_at
    assert not (run / "model.safetensors").exists()
    # resumed here, in-process, from the killed run's checkpoint: only the missing steps are trained
    from aigc_course import train

    calls = []
    real_optimize = train.StepContext.optimize

    def counting(self, *args, **kwargs):
        calls.append(self.step)
        return real_optimize(self, *args, **kwargs)

    monkeypatch.setattr(train.StepContext, "optimize", counting)
    capsys.readouterr()
    assert _train(family, config, run, "--resume") == 0
    first = int(killed_at.removeprefix("step_")) + 1
    per_step = 2 if family == "gan" else 1                                # discriminator, then generator
    assert calls == [s for s in range(first, steps) for _ in range(per_step)]
    assert capsys.readouterr().out.startswith(f"resumed and finished {family} for {steps} steps")
    assert _same_tensors(_tensors(run / "model.safetensors"), _tensors(tmp_path / "ref/model.safetensors"))
    assert _history(run) == _history(tmp_path / "ref")
    assert (run / "log.csv").read_text() == (tmp_path / "ref/log.csv").read_text()


def test_the_resume_comparison_can_fail(trained, tmp_path):
    """The weights and histories compared above differ for a run with another seed (the test can fail)."""
    run, config = trained("gpt")
    other = _config(tmp_path, "gpt", seed=1)
    assert _train("gpt", other, tmp_path / "other") == 0
    assert not _same_tensors(_tensors(run / "model.safetensors"), _tensors(tmp_path / "other/model.safetensors"))
    assert _history(run) != _history(tmp_path / "other")


def test_resume_with_a_changed_config_is_refused(trained, tmp_path, capsys):
    run = _copy(trained("gpt")[0], tmp_path)
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    changed = _config(tmp_path, "gpt", train={"lr": 0.01}, model={"n_embd": 16})
    assert _train("gpt", changed, run, "--resume") == 1
    err = capsys.readouterr().err
    assert "--resume refused" in err and "2 field(s)" in err
    assert "train.lr: 0.002 in the run folder, 0.01 now" in err
    assert "model.n_embd: 8 in the run folder, 16 now" in err
    assert "Traceback" not in err
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before      # nothing written
    # --amp is part of the run too; the device is not
    assert _train("gpt", trained("gpt")[1], run, "--resume", "--amp") == 1
    assert "amp: false in the run folder, true now" in capsys.readouterr().err


def test_resume_with_the_runs_own_config(trained, tmp_path, capsys):
    """config.json is a valid --config: a finished run resumed with it trains no further step."""
    run = _copy(trained("gpt")[0], tmp_path)
    weights = _tensors(run / "model.safetensors")
    assert _train("gpt", run / "config.json", run, "--resume") == 0
    assert capsys.readouterr().out.startswith(f"resumed and finished gpt for {STEPS} steps")
    assert _same_tensors(_tensors(run / "model.safetensors"), weights)


def test_a_run_folder_in_use_is_refused(trained, tmp_path, capsys):
    run, config = trained("vae")
    run = _copy(run, tmp_path)
    with checkpoint_lock(run / "ckpt", reentrant=False):   # as a run training in it holds it
        assert _train("vae", config, run, "--resume") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is another `aigc-course train` writing to" in err


def test_resume_in_an_empty_folder_starts_a_run(tmp_path, capsys):
    (tmp_path / "run").mkdir()
    assert _train("vae", _config(tmp_path, "vae"), tmp_path / "run", "--resume") == 0
    assert "nothing to resume" in capsys.readouterr().err
    assert (tmp_path / "run/model.safetensors").is_file()


def test_a_non_empty_out_folder_is_refused(trained, tmp_path, capsys):
    run, config = trained("vae")
    assert _train("vae", config, run) == 1
    err = capsys.readouterr().err
    assert f"--out {run} is not empty" in err and "pass --resume" in err and "new --out" in err
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    assert _train("vae", config, stray) == 1
    assert "notes.txt" in capsys.readouterr().err
    assert _train("vae", config, stray, "--resume") == 1                  # not a run folder
    assert "holds no config.json" in capsys.readouterr().err
    assert sorted(os.listdir(stray)) == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    assert _train("vae", config, tmp_path / "file") == 1
    assert "is not a folder" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- NaN

@pytest.mark.parametrize("family", ["vae", "gpt"])
def test_a_nan_loss_stops_the_run_with_exit_1(family, tmp_path, capsys):
    lr = {"lr": 1e6, "lr_schedule": "constant", "ckpt_every": 1}
    if family == "gpt":
        lr.update(warmup_steps=0, min_lr=0.0)
    run = tmp_path / "run"
    assert _train(family, _config(tmp_path, family, train=lr), run) == 1
    err = capsys.readouterr().err
    last = latest_checkpoint(run / "ckpt")
    assert last is not None
    assert err.startswith("error: training stopped: loss for optimizer") and "is nan at step" in err
    assert f"The last good checkpoint is {last} " in err and "lower learning rate" in err
    assert "Traceback" not in err and "TrainConfig" not in err
    assert not (run / "model.safetensors").exists()
    weights = _tensors(last / "weights.safetensors")
    assert all(torch.isfinite(t.float()).all() for t in weights.values())
    # the last good checkpoint can be sampled from
    argv = (["sample", "--ckpt", str(run), "--max-new-tokens", "5"] if family == "gpt" else
            ["sample", "--ckpt", str(run), "--n", "4", "--out", str(tmp_path / "x.png")])
    assert main(argv) == 0


# -------------------------------------------------------------------------------------------- bad input

def _bad(tmp_path: Path, capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert "usage: aigc-course" in err and message in err, err
    assert "Traceback" not in err


def test_bad_train_arguments_exit_2_with_usage(tmp_path, capsys):
    out = str(tmp_path / "out")
    cfg = str(_config(tmp_path, "gpt"))
    cases = [
        (["train", "diffusion", "--out", out], "invalid choice: 'diffusion'"),
        (["train", "gpt"], "the following arguments are required: --out"),
        (["train", "gpt", "--out", out, "--grad-accum", "0"], "--grad-accum: expected an integer >= 1, got 0"),
        (["train", "gpt", "--out", out, "--grad-accum", "two"], "expected an integer >= 1, got 'two'"),
        (["train", "gpt", "--out", out, "--config", cfg, "--device", "tpu"], "--device"),
        (["train", "gan", "--out", out, "--data", cfg], "--data is for gpt runs"),
        (["train", "gpt", "--out", out, "--config", cfg, "--data", str(tmp_path / "missing.txt")],
         "cannot read the text file"),
        (["train", "gpt", "--out", out, "--config", str(tmp_path / "missing.json")], "cannot read --config"),
    ]
    for argv, message in cases:
        _bad(tmp_path, capsys, argv, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("config, message", [
    ({"train": {"lrr": 1}}, "unknown key 'train.lrr'; allowed: batch_size, betas,"),
    ({"steps": 5}, "unknown key 'steps' in the config; allowed: seed, model, train, data, device, amp, compile"),
    ({"model": {"n_embd": 10, "n_head": 4}}, "n_embd must be a multiple of n_head"),
    ({"train": {"steps": -1}}, "train section: LMConfig.steps must be"),
    ({"train": {"lr": "fast"}}, "train section: LMConfig.lr must be a number"),
    ({"model": "big"}, "config section 'model' must be a table"),
    ({"data": {"source": "web"}}, "data.source must be one of docs, shakespeare, file"),
    ({"data": {"max_chars": 20}}, "the text is too short"),
    ({"seed": -1}, "seed: seed must be in [0, 2**32)"),
    ({"amp": "yes"}, "amp must be true or false"),
    ({"family": "vae"}, "the config is for family 'vae', but the command line trains 'gpt'"),
])
def test_bad_config_files_exit_2(config, message, tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    _bad(tmp_path, capsys, ["train", "gpt", "--config", str(path), "--out", str(tmp_path / "out")], message)
    assert not (tmp_path / "out").exists()


def test_unparsable_config_files_exit_2(tmp_path, capsys):
    (tmp_path / "a.json").write_text("{not json")
    _bad(tmp_path, capsys, ["train", "vae", "--config", str(tmp_path / "a.json"), "--out", str(tmp_path / "o")],
         "is not valid JSON")
    (tmp_path / "b.json").write_text("[1, 2]")
    _bad(tmp_path, capsys, ["train", "vae", "--config", str(tmp_path / "b.json"), "--out", str(tmp_path / "o")],
         "must hold a table/object of settings, got list")
    pytest.importorskip("tomllib")
    (tmp_path / "c.toml").write_text("[model\nx = ")
    _bad(tmp_path, capsys, ["train", "vae", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o")],
         "is not valid TOML")


def test_bad_sample_arguments_exit_2(trained, tmp_path, capsys):
    gan, _ = trained("gan")
    gpt, _ = trained("gpt")
    cases = [
        (["sample"], "the following arguments are required: --ckpt"),
        (["sample", "--ckpt", str(gan), "--n", "0"], "--n: expected an integer >= 1, got 0"),
        (["sample", "--ckpt", str(gan), "--prompt", "hi"], "--prompt do(es) not apply"),
        (["sample", "--ckpt", str(gpt), "--n", "4", "--out", "x.png"], "--n, --out do(es) not apply"),
        (["sample", "--ckpt", str(gpt), "--temperature", "-1"], "temperature"),
        (["sample", "--ckpt", str(gpt), "--top-p", "1.5"], "top_p"),
        (["sample", "--ckpt", str(gpt), "--prompt", "\u00e9t\u00e9"], "lacks: '\u00e9'"),
    ]
    for argv, message in cases:
        _bad(tmp_path, capsys, argv, message)


def _error_1(capsys, argv: list[str], message: str) -> None:
    assert main(argv) == 1, argv
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert "Traceback" not in err


def test_sample_from_a_damaged_or_mismatched_run_exits_1(trained, tmp_path, capsys):
    run = _copy(trained("gpt")[0], tmp_path)
    argv = ["sample", "--ckpt", str(run), "--max-new-tokens", "3"]
    weights = run / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])                                       # truncated by a crash
    _error_1(capsys, argv, "it is damaged or not a safetensors file")
    weights.write_bytes(good)
    meta = json.loads((run / "model.json").read_text())
    (run / "model.json").write_text(json.dumps({**meta, "model": {**meta["model"], "n_embd": 16}}))
    _error_1(capsys, argv, "do not match the run's model: shapes differ:")
    (run / "model.json").write_text(json.dumps({**meta, "model": {**meta["model"], "n_layer": 2}}))
    _error_1(capsys, argv, "do not match the run's model: missing lm.transformer.h.1.")
    (run / "model.json").write_text(json.dumps({**meta, "model": {**meta["model"], "heads": 2}}))
    _error_1(capsys, argv, "model section: TypeError")
    (run / "model.json").write_text("{")
    _error_1(capsys, argv, "cannot read")
    (run / "model.json").write_text(json.dumps(meta))
    tensors = _tensors(weights)
    tensors["lm.extra"] = torch.zeros(1)
    save_file(tensors, str(weights))
    _error_1(capsys, argv, "unexpected lm.extra")
    (run / "vocab.json").write_text(json.dumps(["a", "b"]))
    _error_1(capsys, argv, "has 2 characters but the model expects")
    # without model.safetensors: the checkpoints
    weights.unlink()
    (run / "ckpt" / "LATEST").write_text("../../etc\n")
    _error_1(capsys, argv, "cannot use the checkpoints in")
    shutil.rmtree(run / "ckpt")
    _error_1(capsys, argv, "holds no trained weights yet")
    (run / "config.json").unlink()
    _error_1(capsys, argv, "is not a run folder")
    _error_1(capsys, ["sample", "--ckpt", str(tmp_path / "nowhere")], "is not a folder")


def test_sample_png_that_cannot_be_written_exits_1(trained, tmp_path, capsys):
    run, _ = trained("vae")
    (tmp_path / "a_file").write_text("")
    _error_1(capsys, ["sample", "--ckpt", str(run), "--out", str(tmp_path / "a_file" / "grid.png")],
             "cannot write")
    assert main(["sample", "--ckpt", str(run), "--out", str(tmp_path / "new" / "grid.png")]) == 0   # folders made


# ---------------------------------------------------------------------------------- amp, compile, accum

def test_compile_is_skipped_on_cpu_with_a_warning(tmp_path, capsys):
    assert _train("vae", _config(tmp_path, "vae"), tmp_path / "run", "--compile", "--amp") == 0
    assert "warning: --compile is skipped on cpu" in capsys.readouterr().err
    cfg = json.loads((tmp_path / "run/config.json").read_text())
    assert cfg["compile"] is False and cfg["amp"] is True


def test_compiled_runs_save_plain_names_and_resume(tmp_path, monkeypatch, capsys):
    """A compiled model's checkpoints hold torch.compile's ``_orig_mod.`` names; model.safetensors does not,
    sampling reads both, and a compiled run resumes. (The eager backend stands in for a GPU's inductor.)"""
    monkeypatch.setattr(runs, "COMPILE_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(runs, "maybe_compile", lambda m, enabled: torch.compile(m, backend="eager"))
    config = _config(tmp_path, "vae")
    run = tmp_path / "run"
    assert _train("vae", config, run, "--compile") == 0
    assert json.loads((run / "config.json").read_text())["compile"] is True
    ckpt_names = set(_tensors(latest_checkpoint(run / "ckpt") / "weights.safetensors"))
    final = _tensors(run / "model.safetensors")
    assert all("_orig_mod" not in k for k in final)
    assert {k.replace("._orig_mod.", ".") for k in ckpt_names} == set(final) != ckpt_names
    assert _train("vae", config, run, "--resume") == 1                    # compile is part of the run
    assert "compile: true in the run folder, false now" in capsys.readouterr().err
    assert _train("vae", config, run, "--resume", "--compile") == 0
    assert main(["sample", "--ckpt", str(run), "--out", str(tmp_path / "a.png")]) == 0
    (run / "model.safetensors").unlink()
    assert main(["sample", "--ckpt", str(run), "--out", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def _has_grad_accum() -> bool:
    from aigc_course.lm import LMConfig

    return "grad_accum" in {f.name for f in dataclasses.fields(LMConfig)}


def test_grad_accum_reaches_the_trainer(tmp_path, monkeypatch):
    if not _has_grad_accum():
        pytest.skip("LMConfig has no grad_accum yet (gradient accumulation lands with aigc_course.distributed)")
    import aigc_course.lm

    seen = []
    real = aigc_course.lm.train_lm

    def spy(model, ids, config, **kwargs):
        seen.append(config.grad_accum)
        return real(model, ids, config, **kwargs)

    monkeypatch.setattr(aigc_course.lm, "train_lm", spy)
    assert _train("gpt", _config(tmp_path, "gpt"), tmp_path / "run", "--grad-accum", "2") == 0
    assert seen == [2]
    assert json.loads((tmp_path / "run/config.json").read_text())["train"]["grad_accum"] == 2
    assert _train("gpt", _config(tmp_path, "gpt"), tmp_path / "run", "--resume") == 1   # 1 ≠ 2: refused


def test_grad_accum_without_support_is_a_usage_error(tmp_path, capsys):
    if _has_grad_accum():
        pytest.skip("this version has gradient accumulation")
    _bad(tmp_path, capsys, ["train", "gpt", "--config", str(_config(tmp_path, "gpt")), "--out",
                            str(tmp_path / "o"), "--grad-accum", "2"], "has no gradient accumulation")
    assert _train("gpt", _config(tmp_path, "gpt"), tmp_path / "o", "--grad-accum", "1") == 0


# --------------------------------------------------------------------------------------------- torchrun

@pytest.mark.slow
def test_torchrun_two_processes_train_one_run(tmp_path):
    """`torchrun --nproc_per_node=2 -m aigc_course train ...`: both processes train (gloo), rank 0 writes."""
    pytest.importorskip("aigc_course.distributed")
    config = _config(tmp_path, "gpt")
    env = {**os.environ, "AIGC_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           "-m", "aigc_course", "train", "gpt", "--config", str(config), "--out",
                           str(tmp_path / "run"), "--device", "cpu", "--no-progress"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("trained gpt") == 1                          # only rank 0 reports
    run = tmp_path / "run"
    assert {p.name for p in run.iterdir()} == FILES | {"vocab.json"}
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert len(_history(run)) == STEPS
    capsys_free = subprocess.run([sys.executable, "-m", "aigc_course", "sample", "--ckpt", str(run),
                                  "--max-new-tokens", "5"], cwd=ROOT, env=env, capture_output=True, text=True,
                                 timeout=120)
    assert capsys_free.returncode == 0 and len(capsys_free.stdout) == 1 + 5 + 1
