"""Training runs from the command line: what ``aigc-course train {gan,vae,gpt}`` and ``aigc-course sample`` do.

A run lives in one folder ``DIR`` (``--out DIR``)::

    config.json          the resolved config, written (atomically) before training starts
    vocab.json           gpt only: the characters of the vocabulary, id order
    ckpt/                checkpoints of :func:`aigc_course.train.train` (step_XXXXXXXX/ and LATEST)
    model.safetensors    the final weights (all of the family's models: generator and discriminator for a GAN)
    model.json           the architecture that rebuilds them (sampling needs nothing else, plus vocab.json)
    history.json         the per-step metrics, as train() recorded them; log.csv the same as a table

A config has the sections ``model``, ``train`` and ``data`` and the keys ``seed``, ``device``, ``amp``,
``compile`` (``--config FILE``, JSON or TOML, overrides the family's defaults key by key; the config.json of a
run is itself a valid ``--config``). The ``train`` keys are the fields of the family's config class
(:class:`~aigc_course.gan.GANConfig`, :class:`~aigc_course.vae.VAEConfig`, :class:`~aigc_course.lm.LMConfig`)
except the ones the run sets itself (checkpoint folder, progress bar, amp, seed, block size).

The trainers of the package do the work: :func:`~aigc_course.gan.train_gan` (DCGAN on the 8×8 digits in
[-1, 1]), :func:`~aigc_course.vae.train_vae` (on the 8×8 digits in [0, 1], test ELBO on the test split) and
:func:`~aigc_course.lm.train_lm` with a character :class:`~aigc_course.gpt.GPT` (Python's docs corpus, Tiny
Shakespeare, or a text file). So checkpoints, the NaN guard and the bit-exact resume are theirs: a run killed at
any moment and rerun with ``resume=True`` ends, on CPU, with the same weights and history as an uninterrupted
run. Under ``torchrun`` (when :mod:`aigc_course.distributed` is present) every process trains and only rank 0
writes files.

Errors: :class:`ConfigError` for bad settings (the command line exits 2 with its usage), :class:`RunError` for a
run folder that cannot be used, a checkpoint that cannot be read, or a run stopped by a NaN/inf (exit 1).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import CheckpointInUseError, _tied_names, atomic_write, latest_checkpoint, save_weights
from .device import get_device, maybe_compile, seed_everything
from .train import History, NonFiniteLossError

__all__ = [
    "FAMILIES", "ConfigError", "RunError", "RunData", "RunResult", "LoadedRun", "default_config", "read_config_file",
    "resolve_config", "family_config", "config_differences", "build_models", "load_run_data", "train_run",
    "describe_run", "load_run", "sample_images", "save_image_grid", "sample_text",
]

FAMILIES = ("gan", "vae", "gpt")
FORMAT = 1
CONFIG_FILE, VOCAB_FILE, MODEL_FILE, MODEL_JSON = "config.json", "vocab.json", "model.safetensors", "model.json"
HISTORY_FILE, LOG_FILE, CKPT_DIR = "history.json", "log.csv", "ckpt"
# top-level keys that may differ on --resume: where the run executes, not what it computes
RESUMABLE_CHANGES = frozenset({"device"})
# keys a config file may hold besides the sections; "format" and "world_size" are accepted (config.json has
# them) and ignored: they are not settings
_TOP_KEYS = ("family", "seed", "model", "train", "data", "device", "amp", "compile")
_IGNORED_KEYS = ("format", "world_size")
# fields of the family config classes that the run sets itself
_RUN_OWNED = frozenset({"ckpt_dir", "progress", "desc", "amp", "seed", "snapshot_every", "num_snapshot",
                        "block_size"})
_DIGITS_SIDE, _DIGITS_CLASSES = 8, 10
# --compile runs torch.compile on these device types only (on a CPU it costs more than it saves here)
COMPILE_DEVICES = ("cuda",)

_MODEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "gan": {"latent_dim": 32, "width": 32, "norm": "batch", "num_classes": None},
    "vae": {"latent_dim": 16, "kind": "mlp", "likelihood": "bernoulli", "hidden": 256, "width": 32,
            "num_classes": None},
    "gpt": {"block_size": 64, "n_layer": 2, "n_head": 4, "n_embd": 64, "dropout": 0.0, "bias": True,
            "gelu_approximate": "none"},
}
# each trains in about 20 s on one CPU thread
_TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "gan": {"steps": 1500, "batch_size": 64, "ckpt_every": 250},
    "vae": {"steps": 3000, "lr_schedule": "cosine", "eval_every": 500, "ckpt_every": 500},
    "gpt": {"steps": 1000, "batch_size": 16, "lr": 2e-3, "min_lr": 2e-4, "lr_schedule": "cosine",
            "warmup_steps": 50, "weight_decay": 0.1, "eval_every": 250, "eval_batch_size": 256, "ckpt_every": 100},
}
_DATA_DEFAULTS: dict[str, dict[str, Any]] = {
    "gan": {"source": "digits", "test_fraction": 0.2, "split_seed": 0},
    "vae": {"source": "digits", "test_fraction": 0.2, "split_seed": 0},
    "gpt": {"source": "docs", "path": None, "max_chars": 60_000, "val_fraction": 0.1},
}
_TEXT_SOURCES = ("docs", "shakespeare", "file")


class ConfigError(ValueError):
    """A setting is wrong: an unknown key, a bad value, an unreadable config or data file (exit code 2)."""


class RunError(RuntimeError):
    """The run folder or a checkpoint cannot be used, or training stopped on a NaN/inf (exit code 1)."""


# --------------------------------------------------------------------------------------------- configs

def _family(family: object) -> str:
    if family not in FAMILIES:
        raise ConfigError(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    return str(family)


def _train_class(family: str) -> type:
    if family == "gan":
        from .gan import GANConfig
        return GANConfig
    if family == "vae":
        from .vae import VAEConfig
        return VAEConfig
    from .lm import LMConfig
    return LMConfig


def _plain(v: Any) -> Any:
    """JSON-shaped copy: tuples become lists (config.json and a config file then compare equal)."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def _model_section_defaults(family: str) -> dict[str, Any]:
    if family == "gpt":
        from .gpt import GPTConfig
        fields = {f.name: f.default for f in dataclasses.fields(GPTConfig)
                  if f.name not in ("vocab_size", "block_size", "causal")}
        return {**fields, **_MODEL_DEFAULTS["gpt"]}
    return dict(_MODEL_DEFAULTS[family])


def _train_section_defaults(family: str) -> dict[str, Any]:
    cls = _train_class(family)
    fields = {f.name: f.default for f in dataclasses.fields(cls) if f.name not in _RUN_OWNED}
    return _plain({**fields, **_TRAIN_DEFAULTS[family]})


def default_config(family: str) -> dict[str, Any]:
    """The family's defaults: ``{"format", "family", "seed", "model", "train", "data", "device", "amp", "compile"}``.

    ``device`` None means :func:`aigc_course.device.get_device`'s choice. The ``train`` section holds every
    field of the family's config class except those the run owns (checkpoint folder, progress, amp, seed).
    """
    family = _family(family)
    return {"format": FORMAT, "family": family, "seed": 0, "model": _model_section_defaults(family),
            "train": _train_section_defaults(family), "data": dict(_DATA_DEFAULTS[family]),
            "device": None, "amp": False, "compile": False}


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A config file as a dict: TOML for ``*.toml`` (Python >= 3.11 or the ``tomli`` package), else JSON."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read --config {path}: {e}") from e
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[no-redef]
            except ImportError:
                raise ConfigError(f"--config {path}: reading TOML needs Python >= 3.11 or `pip install tomli`; "
                                  "or write the config as JSON") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"--config {path} is not valid TOML: {e}") from e
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--config {path} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path} must hold a table/object of settings, got {type(data).__name__}")
    return data


def _merge(base: dict[str, Any], overrides: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``base`` updated key by key; an unknown key is an error that lists the allowed ones."""
    out = dict(base)
    for key, value in overrides.items():
        if key not in base:
            raise ConfigError(f"unknown key '{where}{key}'; allowed: {', '.join(sorted(base))}")
        out[key] = value
    return out


def _check_bool(name: str, v: object) -> bool:
    if not isinstance(v, bool):
        raise ConfigError(f"{name} must be true or false, got {v!r}")
    return v


def resolve_config(family: str, overrides: Mapping[str, Any] | None = None, *, data_path: str | None = None,
                   device: str | None = None, amp: bool | None = None, compile: bool | None = None,
                   grad_accum: int | None = None) -> dict[str, Any]:
    """The family's defaults, then ``overrides`` (a config file's dict), then the command-line flags.

    Checks every key and value (building the family's config class and, on the meta device, the models) and
    raises :class:`ConfigError` naming the key. Not yet filled in: the device (None: best available), the
    data's sha256 and ``world_size``; :func:`train_run` completes them.
    """
    family = _family(family)
    cfg = default_config(family)
    overrides = dict(overrides or {})
    for key in _IGNORED_KEYS:
        overrides.pop(key, None)
    if "family" in overrides and (theirs := overrides.pop("family")) != family:
        raise ConfigError(f"the config is for family {theirs!r}, but the command line trains {family!r}")
    for key in overrides:
        if key not in _TOP_KEYS:
            allowed = ", ".join(k for k in _TOP_KEYS if k != "family")
            raise ConfigError(f"unknown key {key!r} in the config; allowed: {allowed}")
    for section in ("model", "train", "data"):
        if section in overrides:
            value = overrides.pop(section)
            if not isinstance(value, Mapping):
                raise ConfigError(f"config section {section!r} must be a table/object, got {type(value).__name__}")
            value = dict(value)
            if section == "data":
                value.pop("sha256", None)   # computed from the data, never a setting
                if "path" in value and "source" not in value and family == "gpt":
                    value["source"] = "file"   # a path alone means a text file
            cfg[section] = _merge(cfg[section], value, f"{section}.")
    cfg.update(overrides)
    for name, flag in (("amp", amp), ("compile", compile), ("device", device)):
        if flag is not None:
            cfg[name] = flag
    if data_path is not None:
        if family != "gpt":
            raise ConfigError(f"--data is for gpt runs (a text file); {family} trains on the 8x8 digits")
        cfg["data"].update(source="file", path=data_path)
    if grad_accum is not None:
        if "grad_accum" not in cfg["train"]:
            if grad_accum != 1:
                raise ConfigError(f"--grad-accum {grad_accum}: this version of aigc_course has no gradient "
                                  f"accumulation in {_train_class(family).__name__}")
        else:
            cfg["train"]["grad_accum"] = grad_accum
    _check_bool("amp", cfg["amp"])
    _check_bool("compile", cfg["compile"])
    if cfg["device"] is not None and not isinstance(cfg["device"], str):
        raise ConfigError(f"device must be a string such as 'cpu' or 'cuda', got {cfg['device']!r}")
    from .device import check_seed
    try:
        check_seed(cfg["seed"])
    except (TypeError, ValueError) as e:
        raise ConfigError(f"seed: {e}") from None
    _check_data_section(family, cfg["data"])
    if family == "gpt" and cfg["data"]["source"] == "file":
        cfg["data"]["path"] = str(Path(cfg["data"]["path"]).expanduser().resolve())
    family_config(cfg, ckpt_dir=None)   # the train section's checks
    arch = _arch(cfg, vocab_size=1)
    with torch.device("meta"):
        build_models(family, arch, error=ConfigError)
    return _plain(cfg)


def _check_data_section(family: str, data: dict[str, Any]) -> None:
    if family != "gpt":
        if data["source"] != "digits":
            raise ConfigError(f"data.source must be 'digits' (the 8x8 digits) for {family}, got {data['source']!r}")
        return
    if data["source"] not in _TEXT_SOURCES:
        raise ConfigError(f"data.source must be one of {', '.join(_TEXT_SOURCES)}, got {data['source']!r}")
    if data["source"] == "file":
        if not isinstance(data["path"], str) or not data["path"]:
            raise ConfigError("data.source 'file' needs data.path (or --data PATH): the text file to train on")
    elif data["path"] is not None:
        raise ConfigError(f"data.path is only for data.source 'file', got source {data['source']!r}")
    mc = data["max_chars"]
    if mc is not None and (isinstance(mc, bool) or not isinstance(mc, int) or mc < 2):
        raise ConfigError(f"data.max_chars must be an integer >= 2 or null (the whole text), got {mc!r}")


def family_config(cfg: Mapping[str, Any], ckpt_dir: str | os.PathLike | None, progress: bool = False) -> Any:
    """The family's config object (GANConfig / VAEConfig / LMConfig) for a resolved config."""
    family = cfg["family"]
    kwargs = dict(cfg["train"])
    if "betas" in kwargs and isinstance(kwargs["betas"], list):
        kwargs["betas"] = tuple(kwargs["betas"])
    if family == "gpt":
        kwargs["block_size"] = cfg["model"]["block_size"]
    else:
        kwargs["seed"] = cfg["seed"]
    # while checking a config without a folder, a placeholder lets ckpt_every > 0 pass
    folder = str(ckpt_dir) if ckpt_dir is not None else "<run folder>/ckpt"
    kwargs.update(amp=cfg["amp"], ckpt_dir=folder, progress=progress, desc=f"train {family}")
    cls = _train_class(family)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"train section: {e}") from None


def _arch(cfg: Mapping[str, Any], vocab_size: int | None = None) -> dict[str, Any]:
    """What rebuilds the models: the model section plus what the data fixes (image size, vocabulary)."""
    arch = dict(cfg["model"])
    if cfg["family"] == "gpt":
        arch["vocab_size"] = vocab_size
    else:
        arch.update(image_size=_DIGITS_SIDE, channels=1)
    return arch


def build_models(family: str, arch: Mapping[str, Any], error: type[Exception] = RunError) -> nn.ModuleDict:
    """The family's models, named as its trainer names them: {"generator", "discriminator"}, {"vae"}, {"lm"}."""
    family = _family(family)
    a = dict(arch)
    try:
        if family in ("gan", "vae"):
            n = a.get("num_classes")
            if n is not None and n != _DIGITS_CLASSES:
                raise ValueError(f"num_classes must be null (unconditional) or {_DIGITS_CLASSES} (one per digit), "
                                 f"got {n!r}")
        if family == "gan":
            from .gan import DCGANDiscriminator, DCGANGenerator
            norm = a.pop("norm")
            g = DCGANGenerator(**a)
            a.pop("latent_dim")
            return nn.ModuleDict({"generator": g, "discriminator": DCGANDiscriminator(**a, norm=norm)})
        if family == "vae":
            from .vae import build_vae
            return nn.ModuleDict({"vae": build_vae(**a)})
        from .gpt import GPT, GPTConfig
        return nn.ModuleDict({"lm": GPT(GPTConfig(**a))})
    except (TypeError, ValueError, KeyError) as e:
        raise error(f"model section: {type(e).__name__}: {e}") from None


# ------------------------------------------------------------------------------------------------ data

@dataclass
class RunData:
    """What a run trains on: ``train`` (N, ...) samples or token ids, optional ``test``, labels and vocab."""

    train: torch.Tensor
    test: torch.Tensor | None = None
    train_labels: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    vocab: Any = None
    sha256: str | None = None


def _load_text(data: Mapping[str, Any]) -> str:
    from .data import docs_corpus, load_tiny_shakespeare
    from .data.downloads import DatasetUnavailableError

    source = data["source"]
    if source == "docs":
        text = docs_corpus()
    elif source == "shakespeare":
        try:
            text = load_tiny_shakespeare()
        except DatasetUnavailableError as e:
            raise RunError(str(e)) from None
    else:
        try:
            text = Path(data["path"]).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read the text file data.path={data['path']}: {e}") from None
    return text if data["max_chars"] is None else text[:data["max_chars"]]


def load_run_data(cfg: Mapping[str, Any]) -> RunData:
    """The run's data: digits (gan in [-1, 1], vae in [0, 1], as (N, 1, 8, 8)) or a character-encoded text."""
    family, data = cfg["family"], cfg["data"]
    if family in ("gan", "vae"):
        from .data import load_digits_split, to_symmetric
        try:
            split = load_digits_split(data["test_fraction"], data["split_seed"])
        except (TypeError, ValueError) as e:
            raise ConfigError(f"data section: {e}") from None
        conditional = cfg["model"].get("num_classes") is not None
        x, x_test = split.train_images.unsqueeze(1), split.test_images.unsqueeze(1)
        if family == "gan":
            x = to_symmetric(x)
        return RunData(x, x_test if family == "vae" else None, split.train_labels if conditional else None,
                       split.test_labels if conditional and family == "vae" else None)
    from .data import CharVocab, train_val_split_text
    text = _load_text(data)
    block = cfg["model"]["block_size"]
    try:
        train_text, val_text = train_val_split_text(text, data["val_fraction"])
    except (TypeError, ValueError) as e:
        raise ConfigError(f"data section: {e}") from None
    if min(len(train_text), len(val_text)) < block + 1:
        raise ConfigError(f"the text is too short: {len(train_text)} training and {len(val_text)} validation "
                          f"characters, each split needs more than model.block_size = {block}")
    vocab = CharVocab.from_text(text)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return RunData(vocab.encode(train_text), vocab.encode(val_text), vocab=vocab, sha256=sha)


# ------------------------------------------------------------------------------------------- run folder

def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path} is missing: {what}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"cannot read {path} ({what}): {e}") from None


def _write_json(path: Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, Mapping) and k in ("model", "train", "data"):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """``"train.lr: 0.001 in the run folder, 0.002 now"`` for every key that differs (``device`` may change)."""
    a, b = _flatten(_plain(saved)), _flatten(_plain(now))
    out = []
    for key in sorted(set(a) | set(b)):
        if key in RESUMABLE_CHANGES:
            continue
        missing = object()
        va, vb = a.get(key, missing), b.get(key, missing)
        if va != vb or type(va) is bool and type(vb) is not bool or type(vb) is bool and type(va) is not bool:
            shown_a = "absent" if va is missing else json.dumps(va)
            shown_b = "absent" if vb is missing else json.dumps(vb)
            out.append(f"{key}: {shown_a} in the run folder, {shown_b} now")
    return out


def _check_folder(out: Path, cfg: Mapping[str, Any], resume: bool) -> bool:
    """Whether a run in ``out`` continues (True) or starts (False); RunError when the folder cannot be used."""
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out} exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if not entries:
        return False
    if not resume:
        raise RunError(f"--out {out} is not empty ({', '.join(entries[:5])}{', ...' if len(entries) > 5 else ''}): "
                       "pass --resume to continue the run in it, or choose a new --out folder")
    saved_path = out / CONFIG_FILE
    if not saved_path.is_file():
        raise RunError(f"--resume: {out} holds no {CONFIG_FILE}, so it is not a run folder of aigc-course train; "
                       "choose a new --out folder")
    saved = _read_json(saved_path, "the resolved config of the run")
    if not isinstance(saved, dict):
        raise RunError(f"{saved_path} must hold an object, got {type(saved).__name__}")
    diffs = config_differences(saved, cfg)
    if diffs:
        raise RunError(f"--resume refused: the config differs from the run's {saved_path} in "
                       f"{len(diffs)} field(s):\n  " + "\n  ".join(diffs) + "\nPass the same settings as the run "
                       f"(--config {saved_path} reproduces them), or start a new run in another --out folder.")
    return True


def _write_history(out: Path, history: History) -> None:
    _write_json(out / HISTORY_FILE, history.records)
    keys = history.keys()

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(keys)
            for r in history.records:
                w.writerow([(int(r[k]) if k == "step" else repr(r[k])) if k in r else "" for k in keys])

    atomic_write(out / LOG_FILE, write_csv)


# ------------------------------------------------------------------------------------------ distributed

def _distributed_module() -> Any:
    """:mod:`aigc_course.distributed` when this version has it, else None (single-process runs only)."""
    try:
        from . import distributed
    except ImportError:
        return None
    return distributed


def _barrier() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


# -------------------------------------------------------------------------------------------- training

@dataclass
class RunResult:
    """What :func:`train_run` returns: the folder, the history, whether it resumed, the wall time, the resolved
    config, and whether this process is rank 0 (the one that wrote the files)."""

    out: Path
    history: History
    resumed: bool
    seconds: float
    config: dict[str, Any]
    is_main: bool = True


def _compiled(family: str, models: nn.ModuleDict, enabled: bool) -> dict[str, nn.Module]:
    """The modules to hand to the trainer: ``maybe_compile`` of each (the originals keep the weights)."""
    if not enabled:
        return dict(models.items())
    if family == "vae":   # train_vae needs the VAE class itself and calls encode/decode: compile those parts
        vae = models["vae"]
        vae.encoder = maybe_compile(vae.encoder, True)
        vae.decoder = maybe_compile(vae.decoder, True)
        return {"vae": vae}
    return {name: maybe_compile(m, True) for name, m in models.items()}


def _uncompiled(family: str, models: nn.ModuleDict) -> None:
    if family == "vae":
        vae = models["vae"]
        for part in ("encoder", "decoder"):
            inner = getattr(getattr(vae, part), "_orig_mod", None)
            if inner is not None:
                setattr(vae, part, inner)


def _run_trainer(cfg: Mapping[str, Any], models: nn.ModuleDict, data: RunData, ckpt_dir: Path,
                 device: torch.device, progress: bool) -> History:
    family = cfg["family"]
    fc = family_config(cfg, ckpt_dir, progress=progress)
    parts = _compiled(family, models, cfg["compile"])
    try:
        if family == "gan":
            from .gan import train_gan
            return train_gan(parts["generator"], parts["discriminator"], data.train, fc, labels=data.train_labels,
                             device=device).history
        if family == "vae":
            from .vae import train_vae
            return train_vae(parts["vae"], data.train, fc, labels=data.train_labels, test=data.test,
                             test_labels=data.test_labels, device=device).history
        from .lm import train_lm
        return train_lm(parts["lm"], data.train, fc, val_ids=data.test, device=device).history
    finally:
        _uncompiled(family, models)


def _stop_message(e: NonFiniteLossError, ckpt_dir: Path, out: Path) -> str:
    reason = str(e)
    if reason.startswith("Training stopped: "):
        reason = reason[len("Training stopped: "):]
    for cut in (". The last good checkpoint", ". No checkpoint"):
        if cut in reason:
            reason = reason[:reason.index(cut)]
    try:
        last = latest_checkpoint(ckpt_dir)
    except (ValueError, FileNotFoundError):
        last = None
    if last is None:
        where = "No checkpoint was saved before it (lower train.ckpt_every to keep more)."
    else:
        where = (f"The last good checkpoint is {last} (`aigc-course sample --ckpt {out}` samples from it). "
                 "Rerunning the same config would diverge at the same step: train again in a new --out folder "
                 "with a lower learning rate (or a smaller grad_clip) in the train section.")
    return f"training stopped: {reason} (NaN/inf). {where}"


def train_run(family: str, out: str | os.PathLike, *, overrides: Mapping[str, Any] | None = None,
              resume: bool = False, data_path: str | None = None, device: str | None = None,
              amp: bool | None = None, compile: bool | None = None, grad_accum: int | None = None,
              progress: bool = True, log: Callable[[str], None] | None = None) -> RunResult:
    """Train one run of ``family`` in the folder ``out`` (see the module docstring for its files).

    ``resume``: continue the run in ``out`` from its latest checkpoint (its config.json must equal the new
    resolved config, ``device`` excepted), or start one when ``out`` is empty. Without it ``out`` must be empty
    or absent. Raises :class:`ConfigError` (bad settings) or :class:`RunError` (unusable folder, NaN stop).
    """
    log = log if log is not None else (lambda line: print(line, file=sys.stderr))
    out = Path(out)
    cfg = resolve_config(family, overrides, data_path=data_path, device=device, amp=amp, compile=compile,
                         grad_accum=grad_accum)
    dist_mod = _distributed_module()
    info = None
    try:
        if dist_mod is not None:
            try:
                info = dist_mod.setup_distributed(cfg["device"])
            except (TypeError, ValueError) as e:
                raise ConfigError(f"--device: {e}") from None
            world_size, is_main = int(info.world_size), bool(info.is_main)
            # a single process gets the best device available unless --device says otherwise
            dev = torch.device(info.device) if world_size > 1 or cfg["device"] is not None else get_device()
        else:
            try:
                dev = get_device(cfg["device"])
            except (TypeError, ValueError) as e:
                raise ConfigError(f"--device: {e}") from None
            world_size, is_main = 1, True
        return _train(cfg, out, dev, world_size, is_main, resume, progress, log)
    finally:
        if info is not None:
            dist_mod.teardown_distributed()


def _train(cfg: dict[str, Any], out: Path, dev: torch.device, world_size: int, is_main: bool, resume: bool,
           progress: bool, log: Callable[[str], None]) -> RunResult:
    family = cfg["family"]
    if cfg["compile"] and dev.type not in COMPILE_DEVICES:
        log(f"warning: --compile is skipped on {dev.type}: compiling these small models takes longer than it "
            "saves; the run trains uncompiled (config.json records compile: false)")
        cfg["compile"] = False
    data = load_run_data(cfg)
    cfg.update(device=str(dev), world_size=world_size)
    if data.sha256 is not None:
        cfg["data"]["sha256"] = data.sha256
    resumed = _check_folder(out, cfg, resume)
    _barrier()   # every process has checked the folder before rank 0 writes into it
    vocab_list = [data.vocab.itos[i] for i in range(len(data.vocab))] if data.vocab is not None else None
    if is_main:
        if not resumed:
            if resume:
                log(f"--resume: nothing to resume in {out}; starting a new run")
            out.mkdir(parents=True, exist_ok=True)
            _write_json(out / CONFIG_FILE, cfg)
            if vocab_list is not None:
                _write_json(out / VOCAB_FILE, vocab_list)
        elif vocab_list is not None:
            saved = _read_json(out / VOCAB_FILE, "the run's vocabulary")
            if saved != vocab_list:
                raise RunError(f"--resume refused: {out / VOCAB_FILE} differs from the vocabulary of the text")
    _barrier()
    arch = _arch(cfg, len(data.vocab) if data.vocab is not None else None)
    seed_everything(cfg["seed"])
    models = build_models(family, arch).to(dev)
    ckpt_dir = out / CKPT_DIR
    start = time.perf_counter()
    try:
        history = _run_trainer(cfg, models, data, ckpt_dir, dev, progress and is_main)
    except NonFiniteLossError as e:
        raise RunError(_stop_message(e, ckpt_dir, out)) from None
    except ConfigError:
        raise
    except CheckpointInUseError as e:
        raise RunError(f"{e}; is another `aigc-course train` writing to {out}?") from None
    except ValueError as e:   # a checkpoint that does not fit the run (load_training_state names it)
        raise RunError(str(e)) from None
    seconds = time.perf_counter() - start
    if is_main:
        save_weights(models, out / MODEL_FILE)
        last = history.records[-1] if history.records else {}
        _write_json(out / MODEL_JSON, {"format": FORMAT, "family": family, "model": arch,
                                       "steps": cfg["train"]["steps"], "last": last})
        _write_history(out, history)
    _barrier()
    return RunResult(out, history, resumed, seconds, cfg, is_main)


# -------------------------------------------------------------------------------------------- sampling

@dataclass
class LoadedRun:
    """A trained run read back: ``models`` (eval mode) from model.safetensors or the latest checkpoint."""

    family: str
    models: nn.ModuleDict
    arch: dict[str, Any]
    vocab: Any
    weights: Path


def _normalise_names(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoint names of a compiled run hold ``_orig_mod.`` (torch.compile's wrapper): drop it."""
    return {k.replace("._orig_mod.", ".").replace("_orig_mod.", ""): v for k, v in tensors.items()}


def _load_into(models: nn.ModuleDict, path: Path) -> None:
    from safetensors.torch import load_file

    try:
        tensors = _normalise_names(load_file(str(path)))
    except Exception as e:  # safetensors raises its own error types for a bad header or a short file
        raise RunError(f"cannot read the weights file {path}: it is damaged or not a safetensors file "
                       f"({type(e).__name__}: {e})") from None
    own = models.state_dict()
    tied = _tied_names(models)
    missing = [k for k in own if k not in tensors and k not in tied]
    unexpected = [k for k in tensors if k not in own]
    wrong = [f"{k} {list(v.shape)} (model: {list(own[k].shape)})" for k, v in tensors.items()
             if k in own and own[k].shape != v.shape]
    if missing or unexpected or wrong:
        def short(xs: list[str]) -> str:
            return ", ".join(xs[:4]) + (f", ... ({len(xs)} in all)" if len(xs) > 4 else "")
        parts = [f"{what} {short(xs)}" for what, xs in (("missing", missing), ("unexpected", unexpected),
                                                         ("shapes differ:", wrong)) if xs]
        raise RunError(f"the weights in {path} do not match the run's model: " + "; ".join(parts))
    models.load_state_dict(tensors, strict=False)


def load_run(run_dir: str | os.PathLike, device: str | torch.device | None = None) -> LoadedRun:
    """Rebuild a run's models from ``run_dir``: model.safetensors + model.json, else the latest checkpoint +
    config.json (a run still training, or stopped). RunError for anything missing, damaged or mismatched."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"--ckpt {run_dir} is not a folder (pass the --out folder of `aigc-course train`)")
    final = run_dir / MODEL_FILE
    if final.is_file():
        meta = _read_json(run_dir / MODEL_JSON, "the architecture of model.safetensors")
        if not isinstance(meta, dict) or meta.get("family") not in FAMILIES or not isinstance(meta.get("model"), dict):
            raise RunError(f"{run_dir / MODEL_JSON} must hold {{'family': one of {FAMILIES}, 'model': {{...}}}}")
        family, arch, weights = meta["family"], meta["model"], final
    else:
        cfg = _read_json(run_dir / CONFIG_FILE, f"{run_dir} is not a run folder of `aigc-course train`")
        if not isinstance(cfg, dict) or cfg.get("family") not in FAMILIES or not isinstance(cfg.get("model"), dict):
            raise RunError(f"{run_dir / CONFIG_FILE} is damaged: it needs 'family' (one of {FAMILIES}) and 'model'")
        family = cfg["family"]
        try:
            folder = latest_checkpoint(run_dir / CKPT_DIR)
        except (ValueError, FileNotFoundError) as e:
            raise RunError(f"cannot use the checkpoints in {run_dir / CKPT_DIR}: {e}") from None
        if folder is None:
            raise RunError(f"{run_dir} holds no trained weights yet: no {MODEL_FILE} and no checkpoint in "
                           f"{run_dir / CKPT_DIR}")
        vocab_size = None
        if family == "gpt":
            vocab_size = len(_vocab(run_dir))
        arch, weights = _arch(cfg, vocab_size), folder / "weights.safetensors"
    vocab = _vocab(run_dir) if family == "gpt" else None
    if vocab is not None and arch.get("vocab_size") != len(vocab):
        raise RunError(f"{run_dir / VOCAB_FILE} has {len(vocab)} characters but the model expects "
                       f"vocab_size={arch.get('vocab_size')}")
    models = build_models(family, arch)
    _load_into(models, weights)
    try:
        dev = get_device(device if device is None else str(device))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"--device: {e}") from None
    return LoadedRun(family, models.to(dev).eval(), arch, vocab, weights)


def _vocab(run_dir: Path) -> Any:
    from .data import CharVocab

    chars = _read_json(run_dir / VOCAB_FILE, "the vocabulary of the gpt run")
    try:
        return CharVocab(chars)
    except (TypeError, ValueError) as e:
        raise RunError(f"{run_dir / VOCAB_FILE} is damaged: {e}") from None


def sample_images(run: LoadedRun, n: int, *, seed: int = 0) -> torch.Tensor:
    """``n`` images (n, 1, 8, 8) in [0, 1] from a gan or vae run; a conditional model draws digits 0..9 in turn."""
    from .data import from_symmetric

    if run.family not in ("gan", "vae"):
        raise ConfigError(f"this is a {run.family} run: it samples text (--prompt), not images")
    n_classes = run.arch.get("num_classes")
    labels = torch.arange(n) % n_classes if n_classes else None
    rng = torch.Generator().manual_seed(seed)
    if run.family == "gan":
        from .gan import generate
        return from_symmetric(generate(run.models["generator"], n, labels=labels, rng=rng)).float().cpu()
    from .vae import sample
    return sample(run.models["vae"], n, labels=labels, rng=rng).float().cpu()


def save_image_grid(images: torch.Tensor, path: str | os.PathLike, *, nrow: int = 8, scale: int = 4) -> Path:
    """Tile images in [0, 1] (:func:`aigc_course.plotting.make_grid`) and write a grayscale PNG, each pixel
    ``scale``×``scale``. Atomic; returns the path."""
    import numpy as np
    from matplotlib import image as mpimg

    from .plotting import make_grid

    grid = np.clip(make_grid(images, nrow=nrow, pad=1, pad_value=1.0), 0.0, 1.0)
    grid = np.kron(grid, np.ones((scale, scale), dtype=grid.dtype))
    return atomic_write(path, lambda tmp: mpimg.imsave(tmp, grid, cmap="gray", vmin=0.0, vmax=1.0, format="png"))


def sample_text(run: LoadedRun, prompt: str = "", max_new_tokens: int = 200, *, temperature: float = 1.0,
                top_k: int | None = None, top_p: float | None = None, seed: int = 0) -> str:
    """The prompt followed by ``max_new_tokens`` sampled characters from a gpt run (KV-cached generation)."""
    if run.family != "gpt":
        raise ConfigError(f"this is a {run.family} run: it samples images (--n, --out), not text")
    vocab = run.vocab
    if not prompt:
        prompt = "\n" if "\n" in vocab.stoi else vocab.itos[0]
    unknown = sorted({ch for ch in prompt if ch not in vocab.stoi})
    if unknown:
        raise ConfigError(f"--prompt holds characters the run's vocabulary of {len(vocab)} lacks: "
                          f"{''.join(unknown)!r}")
    model = run.models["lm"]
    dev = next(model.parameters()).device
    ids = vocab.encode(prompt)[None].to(dev)
    try:
        out = model.generate(ids, max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
                             rng=torch.Generator().manual_seed(seed))
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None
    return vocab.decode(out[0].cpu())


def describe_run(result: RunResult) -> str:
    """One line on a finished run for the terminal."""
    h = result.history
    keys = [k for k in ("loss", "g_loss", "d_loss", "val_loss", "test_elbo") if k in h.keys()]
    parts = []
    for k in keys:
        vals = [v for v in h[k] if math.isfinite(v)]
        if vals:
            parts.append(f"{k} {vals[0]:.4g} → {vals[-1]:.4g}" if len(vals) > 1 else f"{k} {vals[-1]:.4g}")
    how = "resumed and finished" if result.resumed else "trained"
    return (f"{how} {result.config['family']} for {len(h)} steps ({result.seconds:.1f} s this session): "
            f"{', '.join(parts)}; wrote {result.out / MODEL_FILE}")
