"""Overhead of aigc_course.train.train over a hand-written loop doing the same optimisation.

    python benchmarks/train_overhead.py [--steps 2000] [--width 256] [--device cpu|cuda]

Both loops run the same model, data and steps in this process; the script prints ms/step for each and
their ratio (train / plain), then checks that both ended with the same weights. The plain loop clips
gradients too, so the ratio measures bookkeeping (history, NaN guard, progress bar, callbacks).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn
from torch.nn import functional as F

from aigc_course.device import get_device, seed_everything
from aigc_course.train import TrainConfig, sample_batch, train


def setup(width: int, device: torch.device):
    seed_everything(0)
    x = torch.randn(4096, 32, device=device)
    y = torch.sin(x.sum(1, keepdim=True))
    model = nn.Sequential(nn.Linear(32, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
                          nn.Linear(width, 1)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return x, y, model, opt


def plain(steps: int, width: int, device: torch.device) -> tuple[float, nn.Module]:
    x, y, model, opt = setup(width, device)
    start = time.perf_counter()
    for _ in range(steps):
        xb, yb = sample_batch(x, y, batch_size=128)
        loss = F.mse_loss(model(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()  # the history records every loss, so the plain loop syncs too
    return time.perf_counter() - start, model


def with_train(steps: int, width: int, device: torch.device) -> tuple[float, nn.Module]:
    x, y, model, opt = setup(width, device)

    def step(ctx):
        xb, yb = sample_batch(x, y, batch_size=128)
        loss = F.mse_loss(model(xb), yb)
        ctx.optimize(loss)
        return {"loss": loss}

    start = time.perf_counter()
    train(step, models=model, optimizers=opt, config=TrainConfig(steps=steps, progress=False))
    return time.perf_counter() - start, model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--device", default=None)
    args = ap.parse_args()
    dev = get_device(args.device)
    plain(50, args.width, dev)  # warm-up
    t_plain, m_plain = plain(args.steps, args.width, dev)
    t_train, m_train = with_train(args.steps, args.width, dev)
    same = all(torch.equal(a, b) for a, b in zip(m_plain.parameters(), m_train.parameters(), strict=True))
    print(f"device {dev}, torch threads {torch.get_num_threads()}, {args.steps} steps, width {args.width}")
    print(f"plain loop : {1e3 * t_plain / args.steps:.3f} ms/step")
    print(f"train()    : {1e3 * t_train / args.steps:.3f} ms/step")
    print(f"ratio train/plain: {t_train / t_plain:.3f}  (same final weights: {same})")


if __name__ == "__main__":
    main()
