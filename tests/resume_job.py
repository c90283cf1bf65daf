"""A small training job run as a subprocess by tests/test_train.py (killed with SIGKILL, then resumed).

usage: python resume_job.py CKPT_DIR OUT_FILE [--slow-after STEP] [--die-in-write N]
The test watches CKPT_DIR/LATEST to decide when to kill it. ``--die-in-write N`` makes the job SIGKILL
itself in the middle of its N-th checkpoint write (weights written, state.pt half written), the worst
moment for leftovers.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F

from aigc_course.checkpoint import save_weights
from aigc_course.device import seed_everything
from aigc_course.train import TrainConfig, sample_batch, train

STEPS = 120


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt_dir")
    ap.add_argument("out")
    ap.add_argument("--slow-after", type=int, default=-1)
    ap.add_argument("--die-in-write", type=int, default=0)
    args = ap.parse_args()
    if args.die_in_write:
        writes = []
        real_save = torch.save

        def dying_save(obj, path, *a, **k):
            writes.append(path)
            if len(writes) == args.die_in_write:
                with open(path, "wb") as f:
                    f.write(b"PK\x03\x04 half a state file")
                    f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, path, *a, **k)

        torch.save = dying_save  # the checkpoint module writes state.pt with torch.save

    torch.set_num_threads(1)
    seed_everything(0)
    x = torch.randn(256, 4)
    y = (x @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1 * torch.randn(256)).unsqueeze(1)
    model = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.5)

    def step(ctx):
        xb, yb = sample_batch(x, y, batch_size=16)
        loss = F.mse_loss(model(xb), yb)
        ctx.optimize(loss)
        if args.slow_after >= 0 and ctx.step >= args.slow_after:
            time.sleep(0.05)
        return {"loss": loss}

    cfg = TrainConfig(steps=STEPS, ckpt_dir=args.ckpt_dir, ckpt_every=10, progress=False, log_every=10)
    history = train(step, models=model, optimizers=opt, schedulers=sched, config=cfg)
    save_weights(model, args.out)
    print(f"done {len(history)} {history.last('loss'):.6f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
