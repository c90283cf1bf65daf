"""Distributed scenarios run by tests/test_distributed.py with 2 gloo processes on the CPU.

usage: python -m torch.distributed.run --standalone --nproc_per_node=2 tests/ddp_job.py OUT SCENARIO...
Each rank writes what the test checks into OUT (files named ``<what>_rank<r>.*``); nothing is asserted here,
so that a failure shows up as a test assertion with both ranks' values. Scenarios: grads, nan, lm, vae,
gan, save_error, mismatch (needs OUT/single_ckpt, a checkpoint of the "mismatch" run written by a single
process).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

import aigc_course.train as train_mod
from aigc_course.checkpoint import save_weights
from aigc_course.device import seed_everything
from aigc_course.distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_mean,
    barrier,
    broadcast_object,
    current,
    no_sync,
    setup_distributed,
    teardown_distributed,
    wrap_ddp,
)
from aigc_course.gan import DCGANDiscriminator, DCGANGenerator, GANConfig, train_gan
from aigc_course.lm import LMConfig, MLPLanguageModel, train_lm
from aigc_course.train import NonFiniteLossError, TrainConfig, _average_gradients, train
from aigc_course.vae import VAEConfig, build_vae, train_vae

torch.set_num_threads(1)
V = 7


def tiny_regression() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The model and the 8-row batch of the gradient checks (the same on every rank and in the test)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    return model, torch.randn(8, 3), torch.randn(8, 2)


def lm_ids() -> torch.Tensor:
    return torch.randint(0, V, (200,), generator=torch.Generator().manual_seed(1))


def lm_model() -> MLPLanguageModel:
    return MLPLanguageModel(V, context=2, embed_dim=4, hidden=8)


def lm_config(**kw) -> LMConfig:
    return LMConfig(**{"steps": 4, "batch_size": 4, "block_size": 6, "lr": 0.01, "progress": False, **kw})


def grads_of(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


def scenario_grads(info: DistInfo, out: Path) -> None:
    r = info.rank
    rows = slice(4 * r, 4 * r + 4)                      # rank r's half of the batch
    model, x, y = tiny_regression()
    ddp = wrap_ddp(model, info)
    F.mse_loss(ddp(x[rows]), y[rows]).backward()       # DDP averages the two halves' gradients
    ddp_grads = grads_of(model)

    model, x, y = tiny_regression()                    # the same with 2 micro-batches of 2 rows per rank
    ddp = wrap_ddp(model, info)
    for i in range(2):
        part = slice(4 * r + 2 * i, 4 * r + 2 * i + 2)
        with no_sync(ddp, i == 0):
            (F.mse_loss(ddp(x[part]), y[part]) / 2).backward()
    accum_grads = grads_of(model)
    skipped_sync = None
    model, x, y = tiny_regression()                    # no_sync really skips the averaging
    ddp = wrap_ddp(model, info)
    with no_sync(ddp):
        F.mse_loss(ddp(x[rows]), y[rows]).backward()
    skipped_sync = grads_of(model)

    model, x, y = tiny_regression()                    # the all-reduce path (train_gan's)
    F.mse_loss(model(x[rows]), y[rows]).backward()
    _average_gradients(list(model.parameters()))
    ar_grads = grads_of(model)
    torch.save({"ddp": ddp_grads, "accum": accum_grads, "no_sync": skipped_sync, "all_reduce": ar_grads},
               out / f"grads_rank{r}.pt")
    facts = {"info": [info.rank, info.world_size, info.local_rank, info.backend, str(info.device)],
             "current": [current().rank, current().world_size, current().is_main, current().distributed],
             "mean": all_reduce_mean(torch.tensor([r + 1.0, 10.0 * r])).tolist(),
             "broadcast": broadcast_object({"from": r}),
             "gather": all_gather_object(f"rank{r}")}
    (out / f"facts_rank{r}.json").write_text(json.dumps(facts))


def scenario_nan(info: DistInfo, out: Path) -> None:
    """A NaN loss on rank 1 only (step 2), a NaN metric on rank 1 only (step 1), NaN weights on rank 1 only
    (step 1): both ranks stop."""
    msgs = {}
    for kind in ("loss", "metric", "weights"):
        torch.manual_seed(0)
        model = nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        done: list[int] = []

        def step(ctx, kind=kind, model=model, done=done):
            loss = model(torch.ones(1, 2)).sum()
            bad = info.rank == 1 and ctx.step == (2 if kind == "loss" else 1)
            if bad and kind == "loss":
                loss = loss * math.nan
            ctx.optimize(loss)
            if bad and kind == "weights":
                with torch.no_grad():
                    model.bias.fill_(math.inf)
            done.append(ctx.step)
            return {"loss": math.nan if bad and kind == "metric" else float(loss.detach())}

        try:
            train(step, models=model, optimizers=opt, config=TrainConfig(steps=5, progress=False))
            msgs[kind] = ["finished", done]
        except NonFiniteLossError as e:
            msgs[kind] = [str(e), done]
    (out / f"nan_rank{info.rank}.json").write_text(json.dumps(msgs))


def record_writers(out: Path, info: DistInfo) -> None:
    """Log this rank's checkpoint writes (OUT/saves_rank<r>.txt) and progress bars (OUT/bars_rank<r>.txt)."""
    real_save, real_progress = train_mod.save_training_state, train_mod._progress

    def save(*a, **k):
        with open(out / f"saves_rank{info.rank}.txt", "a") as f:
            f.write(f"{a[1]}\n")
        return real_save(*a, **k)

    def progress(total, initial, enabled, desc):
        with open(out / f"bars_rank{info.rank}.txt", "a") as f:
            f.write(f"{enabled}\n")
        return real_progress(total, initial, False, desc)

    train_mod.save_training_state, train_mod._progress = save, progress


def scenario_lm(info: DistInfo, out: Path) -> None:
    r = info.rank
    record_writers(out, info)
    ids = lm_ids()
    seed_everything(0)
    model = lm_model()
    logged: list[int] = []
    hist = train_lm(model, ids, lm_config(ckpt_dir=out / "lm_full", ckpt_every=2, progress=True, log_every=2),
                    callbacks=[lambda step, metrics: logged.append(step)]).history
    (out / f"callbacks_rank{r}.json").write_text(json.dumps(logged))
    save_weights(model, out / f"lm_full_rank{r}.safetensors")
    (out / f"lm_full_history_rank{r}.json").write_text(json.dumps(hist.records))

    seed_everything(0)                                  # the same run, stopped after 2 steps ...
    train_lm(lm_model(), ids, lm_config(steps=2, ckpt_dir=out / "lm_split", ckpt_every=1))
    seed_everything(123 + r)                            # ... and resumed by a new call: RNGs come from the checkpoint
    model = lm_model()
    hist = train_lm(model, ids, lm_config(ckpt_dir=out / "lm_split", ckpt_every=1)).history
    save_weights(model, out / f"lm_split_rank{r}.safetensors")
    (out / f"lm_split_history_rank{r}.json").write_text(json.dumps(hist.records))

    grads: list[list[torch.Tensor]] = []               # the first step's gradient, no clipping
    hook = register_optimizer_step_pre_hook(
        lambda opt, a, k: grads.append([p.grad.clone() for g in opt.param_groups for p in g["params"]]))
    try:
        seed_everything(0)
        train_lm(lm_model(), ids, lm_config(steps=1, grad_clip=None))
        seed_everything(0)
        model = lm_model()
        train_lm(model, ids, lm_config(steps=2, grad_accum=2))
    finally:
        hook.remove()
    torch.save({"step0": grads[0], "accum_step0": grads[1]}, out / f"lm_grads_rank{r}.pt")
    save_weights(model, out / f"lm_accum_rank{r}.safetensors")


def scenario_vae(info: DistInfo, out: Path) -> None:
    seed_everything(0)
    data = (torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    model = build_vae(latent_dim=2, image_size=8, hidden=16)
    hist = train_vae(model, data, VAEConfig(steps=3, batch_size=4, grad_accum=2, progress=False)).history
    save_weights(model, out / f"vae_rank{info.rank}.safetensors")
    (out / f"vae_history_rank{info.rank}.json").write_text(json.dumps(hist.records))


def scenario_gan(info: DistInfo, out: Path) -> None:
    seed_everything(0)
    data = torch.rand(30, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1
    G, D = DCGANGenerator(latent_dim=4, image_size=8, width=4), DCGANDiscriminator(image_size=8, width=4)
    seen = []
    train_gan(G, D, data, GANConfig(steps=3, batch_size=4, grad_accum=2, snapshot_every=1, num_snapshot=2,
                                    progress=False, ckpt_dir=out / "gan"),
              on_snapshot=lambda step, samples: seen.append(step))
    save_weights(G, out / f"gan_g_rank{info.rank}.safetensors")
    save_weights(D, out / f"gan_d_rank{info.rank}.safetensors")
    (out / f"gan_snapshots_rank{info.rank}.json").write_text(json.dumps(seen))


def scenario_mismatch(info: DistInfo, out: Path) -> None:
    """Resume a single-process checkpoint with 2 processes: refused; with on_config_change='use_new': runs."""
    res = {}
    for mode in ("error", "use_new"):
        torch.manual_seed(0)
        model = nn.Linear(2, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        cfg = TrainConfig(steps=4 if mode == "error" else 5, ckpt_dir=out / "single_ckpt", progress=False,
                          on_config_change=mode)
        try:
            hist = train(lambda ctx, model=model: {"loss": ctx.optimize(model(torch.ones(1, 2)).sum())},
                         models=model, optimizers=opt, config=cfg)
            res[mode] = ["finished", [rec["step"] for rec in hist.records]]
        except ValueError as e:
            res[mode] = [str(e), []]
        barrier()
    (out / f"mismatch_rank{info.rank}.json").write_text(json.dumps(res))


def scenario_save_error(info: DistInfo, out: Path) -> None:
    """Rank 0 cannot write its checkpoint at step 1: both ranks raise its error (none waits forever)."""
    real = train_mod.save_training_state

    def failing(ckpt_dir, step, *a, **k):
        if step == 1:
            raise OSError(28, "cannot write checkpoint: the disk is full")
        return real(ckpt_dir, step, *a, **k)

    train_mod.save_training_state = failing
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    done: list[int] = []

    def step(ctx):
        ctx.optimize(model(torch.ones(1, 2)).sum())
        done.append(ctx.step)

    try:
        train(step, models=model, optimizers=opt,
              config=TrainConfig(steps=4, ckpt_dir=out / "save_error", ckpt_every=1, progress=False))
        res = ["finished", done]
    except OSError as e:
        res = [f"{type(e).__name__}: {e}", done]
    finally:
        train_mod.save_training_state = real
    (out / f"save_error_rank{info.rank}.json").write_text(json.dumps(res))


SCENARIOS = {"grads": scenario_grads, "nan": scenario_nan, "lm": scenario_lm, "vae": scenario_vae,
             "gan": scenario_gan, "mismatch": scenario_mismatch, "save_error": scenario_save_error}


def main() -> None:
    out, names = Path(sys.argv[1]), sys.argv[2:]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown or not names:
        sys.exit(f"usage: ddp_job.py OUT SCENARIO... with scenarios from {list(SCENARIOS)}, got {names}")
    info = setup_distributed("cpu")
    try:
        for name in names:
            SCENARIOS[name](info, out)
    finally:
        teardown_distributed()


if __name__ == "__main__":
    main()
