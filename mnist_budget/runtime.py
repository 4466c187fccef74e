"""Where a training process runs: worker count, threads, device, determinism, seeds."""

from __future__ import annotations

import os
import random

import torch

from mnist_budget.errors import StageError
from mnist_budget.step_config import StepConfig

THREADS_VARIABLE = "MNIST_THREADS"


def worker_count(step: StepConfig) -> int:
    """How many seeds train at once: $MNIST_THREADS, else one per core, and never more than
    the step has seeds. Not a params key: it changes no result (every seed trains on one
    thread), so changing it must retrain nothing.

    Each worker uses one thread (measured here: a 2-thread process is only 12% faster than a
    1-thread one, and 3.2x slower as soon as another process uses a core, while 1-thread
    processes side by side do not slow each other). Queued experiments inherit
    $MNIST_THREADS from `dvc queue start`: give each of N jobs cores / N.
    """
    text = os.environ.get(THREADS_VARIABLE, "").strip()
    if text and not (text.isdigit() and text.isascii()):
        raise StageError(
            f"${THREADS_VARIABLE}={text!r}: expected how many seeds train side by side, a whole number "
            "(0 or unset: one per core)"
        )
    cores = int(text or 0) or os.cpu_count() or 1
    return max(1, min(cores, len(step.seeds)))


def pick_device(step: StepConfig) -> torch.device:
    if step.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(step.device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed every RNG a run uses; return the generator for data order and augmentation."""
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_up(step: StepConfig, seed: int, threads: int = 1) -> tuple[torch.device, torch.Generator]:
    """Threads, deterministic kernels and seeds for one training run; its device and
    generator. The pipeline always uses one thread: a seed then gives the same bytes alone
    or beside others (a CPU convolution's sums split across threads in another order)."""
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    return pick_device(step), seed_everything(seed)
