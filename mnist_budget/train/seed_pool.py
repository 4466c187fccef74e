"""A step's seeds trained side by side: one worker process per seed, one thread each, as
many at once as `runtime.worker_count` allows.

Workers are spawned (not forked: torch's thread pools do not survive a fork), get SIGTERM
when the train stage dies, leave Ctrl-C to it (`signals.handle_worker_signals`) and hand back
their history and model file as bytes: only the stage writes outputs, and only once every
seed has trained.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import torch

from mnist_budget.base.errors import StageError
from mnist_budget.base.signals import handle_worker_signals
from mnist_budget.config.step_config import StepConfig, config_of
from mnist_budget.train.dataset import load_mnist
from mnist_budget.train.model_file import load_model, model_bytes
from mnist_budget.train.nets import build_net
from mnist_budget.train.runtime import set_up, worker_count
from mnist_budget.train.training import fit

# a teacher's model file and the md5 its pipeline's dvc.lock records for it
Teacher = tuple[Path, str]


def train_seed(
    step: StepConfig, seed: int, bar_line: int = 0, threads: int = 1, teacher: Teacher | None = None
) -> tuple[list[dict], bytes]:
    """Train `step` with `seed`: its history rows (a `seed` column first) and model file.
    One thread in the pipeline; benchmarks/seed_throughput.py measures more. A step that
    distils learns from `teacher`'s model file, loaded here (a worker's own copy)."""
    device, generator = set_up(step, seed, threads)
    # channels-last: oneDNN's faster convolution layout on the CPU (+13% img/s at batch 64)
    model = build_net(step).to(device, memory_format=torch.channels_last)
    # an exported program computes as the net did in eval mode (and refuses .eval())
    taught = load_model(*teacher)[0].to(device) if teacher is not None else None
    history, trained = fit(
        model,
        load_mnist(device, step.validation),
        step,
        generator,
        f"{step.name} seed {seed}",
        bar_line,
        taught,
    )
    stored = {"name": step.name, "seed": seed, "config": config_of(step)}
    return [{"seed": seed, **row} for row in history], model_bytes(trained, stored)


def train_seeds(step: StepConfig, teacher: Teacher | None = None) -> dict[int, tuple[list[dict], bytes]]:
    """Every seed of `step`, in worker processes side by side (in this process when one
    worker is all there is); the first failure stops them all."""
    workers = worker_count(step)
    if workers == 1:
        return {seed: train_seed(step, seed, teacher=teacher) for seed in step.seeds}
    pool = ProcessPoolExecutor(
        workers, multiprocessing.get_context("spawn"), initializer=handle_worker_signals
    )
    try:
        runs = {
            seed: pool.submit(train_seed, step, seed, line, teacher=teacher)
            for line, seed in enumerate(step.seeds)
        }
        return {seed: run.result() for seed, run in runs.items()}
    except BrokenProcessPool as error:
        raise StageError(f"step {step.name}: a training worker died ({error}); run the stage again") from None
    except BaseException:
        for worker in multiprocessing.active_children():  # a failed seed or a signal: stop the others now
            worker.terminate()
        raise
    finally:
        pool.shutdown(cancel_futures=True)
