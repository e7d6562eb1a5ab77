"""The training loop behind pruning recovery and distillation: AdamW with linear warm-up and
decay, gradient clipping, seeded data order and dropout, progress on stderr, a stop with a
clear message when the loss stops being finite, and resumable checkpoints.

A checkpoint is a directory: the model (``save_pretrained``, so a pruned structure reloads),
and ``trainer.pt`` with the optimizer, scheduler, step, RNG state and a fingerprint of the
settings. It is replaced atomically, so the last good one survives a crash or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedeploy.core.atomic import checkpoint, signals_deferred
from edgedeploy.core.errors import BadInput, Interrupted, ValidationFailed

log = logging.getLogger("edgedeploy")


class Diverged(ValidationFailed):
    """The loss became NaN or infinite."""


@dataclass
class Schedule:
    epochs: float
    batch_size: int
    lr: float
    seed: int = 0
    warmup: float = 0.06
    weight_decay: float = 0.01
    clip: float = 1.0
    checkpoint_every: int = 50  # steps; 0: only at the end of training


@contextlib.contextmanager
def deterministic():
    """Deterministic torch kernels inside the block (reproducible weights); the caller's setting is restored after."""
    import torch

    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was)


def trainable(model) -> list:
    """All parameters still trainable but the word-embedding table: half of a small BERT's
    weights, not what pruning or distillation changes, and half the optimizer's work."""
    emb = model.get_input_embeddings().weight
    return [p for p in model.parameters() if p.requires_grad and p is not emb]


def total_steps(rows: int, s: Schedule) -> int:
    return max(1, int(round(s.epochs * -(-rows // s.batch_size))))


def epoch_order(rows: int, seed: int, epoch: int) -> np.ndarray:
    """The row order of one epoch: a function of (seed, epoch) only, so a resumed run sees the same batches."""
    return np.random.default_rng([seed, epoch]).permutation(rows)


class Progress:
    """A one-line progress bar on a terminal, a log line every 15 s otherwise."""

    def __init__(self, what: str, total: int):
        self.what, self.total, self.t0, self.last = what, total, time.perf_counter(), 0.0
        self.tty = sys.stderr.isatty()

    def update(self, step: int, loss: float) -> None:
        now = time.perf_counter() - self.t0
        done = step / self.total
        eta = now / done - now if done else 0
        line = f"{self.what}: step {step}/{self.total}, loss {loss:.4f}, {now:.0f} s, about {eta:.0f} s left"
        if self.tty:
            bar = "#" * int(24 * done)
            sys.stderr.write(f"\r[{bar:<24}] {line}  ")
            if step == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif now - self.last > 15 or step == self.total:
            self.last = now
            log.info(line)


def _start(ckpt_dir: Path | None, model, opt, sched, fingerprint, resume, what: str, steps: int) -> int | None:
    """The step to start from: a checkpoint's when resuming (None otherwise, after discarding an
    old checkpoint; "if-compatible" starts over when the checkpoint's settings differ)."""
    has_ckpt = ckpt_dir is not None and (ckpt_dir / "trainer.pt").is_file()
    if resume == "if-compatible" and has_ckpt and not _same_settings(ckpt_dir, fingerprint):
        log.info("%s: the checkpoint in %s was made with other settings; starting over", what, ckpt_dir)
        resume = False
    if resume and has_ckpt:
        step = _load(ckpt_dir, model, opt, sched, fingerprint)
        log.info("%s: resuming from the checkpoint at step %d/%d in %s", what, step, steps, ckpt_dir)
        return step
    if has_ckpt:
        shutil.rmtree(ckpt_dir)  # a fresh start discards an old checkpoint
    return None


def _apply(loss, params, opt, sched, clip: float) -> None:
    """One optimizer step on ``loss``'s gradients, clipped to ``clip``."""
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, clip)
    opt.step()
    sched.step()
    opt.zero_grad(set_to_none=True)


def _diverged(what: str, value: float, step: int, ckpt_dir: Path | None) -> Diverged:
    where = f"; the last good checkpoint is {ckpt_dir}" if ckpt_dir and (ckpt_dir / "trainer.pt").is_file() else ""
    return Diverged(f"{what}: the loss became {value} at step {step + 1}{where}; lower --lr and re-run" + (" with --resume" if where else ""))


def train(
    model,
    params,
    loss_fn: Callable,
    rows: int,
    make_batches: Callable,
    s: Schedule,
    *,
    what: str,
    ckpt_dir: Path | None = None,
    fingerprint: dict | None = None,
    resume: bool | str = False,
) -> dict:
    """Train ``params`` of ``model`` to minimise ``loss_fn(inputs, labels)`` over ``rows`` rows;
    ``make_batches(order)`` yields (inputs, labels) for the row indices in ``order``. ``resume``:
    True continues from ``ckpt_dir`` (refusing a checkpoint made with other settings),
    "if-compatible" continues when the settings match and starts over otherwise (recipes).
    Returns {"steps", "seconds", "first_loss", "last_loss", "resumed_from"}."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    steps = total_steps(rows, s)
    per_epoch = -(-rows // s.batch_size)
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, int(s.warmup * steps), steps)
    torch.manual_seed(s.seed)
    resumed_from = _start(ckpt_dir, model, opt, sched, fingerprint, resume, what, steps)
    step = resumed_from or 0
    bar = Progress(what, steps)
    losses: list[float] = []
    t0 = time.perf_counter()
    model.train()
    try:
        with signals_deferred(), deterministic():
            while step < steps:
                epoch, skip = divmod(step, per_epoch)
                order = epoch_order(rows, s.seed, epoch)[skip * s.batch_size :]
                for inputs, labels in make_batches(order):
                    loss = loss_fn(inputs, labels)
                    value = float(loss.detach())
                    if not np.isfinite(value):
                        raise _diverged(what, value, step, ckpt_dir)
                    _apply(loss, params, opt, sched, s.clip)
                    step += 1
                    losses.append(value)
                    bar.update(step, value)
                    if ckpt_dir is not None and s.checkpoint_every and step % s.checkpoint_every == 0 and step < steps:
                        _save(ckpt_dir, model, opt, sched, step, fingerprint)
                    checkpoint()  # a deferred Ctrl-C stops here, never inside a checkpoint write
                    if step >= steps:
                        break
    except Interrupted:
        kept = ckpt_dir is not None and (ckpt_dir / "trainer.pt").is_file()
        raise Interrupted(
            f"{what}: interrupted at step {step}/{steps}" + (f"; {ckpt_dir} keeps the last checkpoint, --resume continues from it" if kept else "")
        ) from None
    model.eval()
    first, last = (losses[0], losses[-1]) if losses else (None, None)
    return {"steps": steps, "seconds": round(time.perf_counter() - t0, 1), "first_loss": first, "last_loss": last, "resumed_from": resumed_from}


def _save(ckpt_dir: Path, model, opt, sched, step: int, fingerprint: dict | None) -> None:
    import torch

    tmp = ckpt_dir.with_name(ckpt_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    torch.save({"step": step, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": torch.get_rng_state()}, tmp / "trainer.pt")
    (tmp / "fingerprint.json").write_text(json.dumps(fingerprint or {}, sort_keys=True, default=str))
    old = ckpt_dir.with_name(ckpt_dir.name + ".old")
    if ckpt_dir.exists():
        os.replace(ckpt_dir, old)
    os.replace(tmp, ckpt_dir)
    shutil.rmtree(old, ignore_errors=True)


def _fingerprints(ckpt_dir: Path, fingerprint: dict | None) -> tuple[dict, dict]:
    saved = json.loads((ckpt_dir / "fingerprint.json").read_text())
    return saved, json.loads(json.dumps(fingerprint or {}, sort_keys=True, default=str))


def _same_settings(ckpt_dir: Path, fingerprint: dict | None) -> bool:
    saved, want = _fingerprints(ckpt_dir, fingerprint)
    return saved == want


def _load(ckpt_dir: Path, model, opt, sched, fingerprint: dict | None) -> int:
    import torch
    from safetensors.torch import load_file

    saved, want = _fingerprints(ckpt_dir, fingerprint)
    if saved != want:
        diff = sorted(k for k in set(saved) | set(want) if saved.get(k) != want.get(k))
        raise BadInput(
            f"--resume: the checkpoint in {ckpt_dir} was made with different settings ({', '.join(diff)}); run without --resume to start over"
        )
    state = load_file(str(ckpt_dir / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "position_ids" not in k]:
        raise BadInput(f"--resume: the checkpoint in {ckpt_dir} does not fit this model; run without --resume")
    t = torch.load(ckpt_dir / "trainer.pt", weights_only=True)
    opt.load_state_dict(t["optimizer"])
    sched.load_state_dict(t["scheduler"])
    torch.set_rng_state(t["rng"])
    return int(t["step"])
