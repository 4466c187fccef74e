"""Where and how a training process runs: threads, device, determinism, seeds."""

from __future__ import annotations

import os
import random

import torch

from mnist_budget.step_config import StepConfig


def thread_count(step: StepConfig) -> int:
    """$MNIST_THREADS, else the step's `threads`, else every core.

    Two torch processes that each use every core run ~10x slower than one: parallel
    experiments set MNIST_THREADS to their share of the cores.
    """
    return int(os.environ.get("MNIST_THREADS") or step.threads or os.cpu_count() or 1)


def pick_device(step: StepConfig) -> torch.device:
    if step.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(step.device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed every RNG a step uses; return the generator for data order and augmentation."""
    random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_up(step: StepConfig) -> tuple[torch.device, torch.Generator]:
    """Threads, deterministic kernels and seeds for one training run; its device and generator."""
    torch.set_num_threads(thread_count(step))
    torch.use_deterministic_algorithms(True, warn_only=True)
    return pick_device(step), seed_everything(step.seed)
