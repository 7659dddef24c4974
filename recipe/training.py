"""What every recipe's training loop shares: deterministic batches and a resumable stage.

A stage trains some parameters of a module for a fixed number of steps (AdamW, warm-up then
cosine to 0.1×, clipped), saving module and optimizer every ``save_every`` steps through temp
files, so a killed run resumes exactly where it stopped. Steps, not minutes, set the schedule.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Batches:
    """Length-bucketed batches in a fixed order per epoch: step n is the same batch on resume."""

    def __init__(self, lengths: np.ndarray, size: int, seed: int) -> None:
        self.lengths, self.size, self.seed = np.asarray(lengths), size, seed

    def epoch(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed * 1000 + epoch)
        order = rng.permutation(len(self.lengths))
        out: list[np.ndarray] = []
        for chunk in np.array_split(order, max(1, len(order) // (self.size * 50))):
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            out += [chunk[i : i + self.size] for i in range(0, len(chunk), self.size)]
        return [out[i] for i in rng.permutation(len(out))]

    def from_step(self, step: int) -> Iterator[np.ndarray]:
        per_epoch = len(self.epoch(0))
        epoch, index = divmod(step, per_epoch)
        while True:
            yield from self.epoch(epoch)[index:]
            epoch, index = epoch + 1, 0


@dataclass(frozen=True)
class Schedule:
    steps: int
    peak_lr: float
    batch_size: int


def train_stage(
    module: nn.Module,
    folder: Path,
    trainable: list[nn.Parameter],
    loss_fn: Callable[[np.ndarray], torch.Tensor],
    batches: Batches,
    schedule: Schedule,
    save_every: int = 200,
    autocast: bool = True,
) -> bool:
    """Train only ``trainable`` in ``module`` (or load the stage if ``folder`` says it is done);
    True if this call trained."""
    for p in module.parameters():
        p.requires_grad_(False)
    for p in trainable:
        p.requires_grad_(True)
    name, state = folder.name, folder / "state.safetensors"
    if (folder / "done").exists():
        load_model(module, str(state))
        log(f"{name}: done earlier, loaded")
        return False
    optimizer = torch.optim.AdamW(
        trainable, lr=schedule.peak_lr, betas=(0.9, 0.98), weight_decay=0.01
    )
    optim_file, step = folder / "optimizer.pt", 0
    if state.exists():
        load_model(module, str(state))
        optimizer.load_state_dict(torch.load(optim_file, weights_only=True))
        step = json.loads((folder / "progress.json").read_text())["step"]
        log(f"{name}: resuming at step {step}")
    folder.mkdir(parents=True, exist_ok=True)
    steps, peak = schedule.steps, schedule.peak_lr
    warmup = min(200, steps // 10)
    module.train()
    started, recent = time.time(), []
    for rows in batches.from_step(step):
        if step >= steps:
            break
        progress = (step - warmup) / max(1, steps - warmup)
        cosine = 0.1 + 0.45 * (1 + math.cos(math.pi * progress))  # peak → 0.1 × peak
        for group in optimizer.param_groups:
            group["lr"] = peak * (step / warmup if step < warmup else cosine)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = loss_fn(rows)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        step += 1
        recent.append(float(loss.detach()))
        if step % 25 == 0:
            rate = (time.time() - started) / 25
            log(f"{name} {step}/{steps} loss {np.mean(recent):.3f} ({rate:.2f} s/step)")
            started, recent = time.time(), []
        if step % save_every == 0 or step == steps:  # temp files renamed: a kill is safe
            save_model(module, str(state.with_suffix(".tmp")))
            torch.save(optimizer.state_dict(), optim_file.with_suffix(".tmp"))
            state.with_suffix(".tmp").replace(state)
            optim_file.with_suffix(".tmp").replace(optim_file)
            (folder / "progress.json").write_text(json.dumps({"step": step}))
    (folder / "done").touch()
    module.eval()
    return True
