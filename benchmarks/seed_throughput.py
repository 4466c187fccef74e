"""Throughput of training a step's seeds: one after the other with every thread (how the
pipeline trained its seed runs before), against side by side with one thread each (how
`train@<step>` trains them now), on an idle machine and with one core kept busy by another
program (a user's browser, a second `dvc exp`).

    python -m benchmarks.seed_throughput [--step NAME] [--seeds 3] [--epochs 1] [--repeats 3]

Each arm trains the step's recipe (from params.yaml, real MNIST) for `--epochs` per seed,
every process started fresh as a stage starts it, and reports training images per second
of wall time (seeds x 60,000 x epochs / seconds). Arms alternate within each repeat so that
drift in the machine's speed hits all of them; prints medians and the ratios against the
sequential arm of the same load. Needs data/prepared (`dvc repro prepare`).
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from mnist_budget.base.atomic_files import write_text
from mnist_budget.base.kernels import pin
from mnist_budget.config.params import load_params
from mnist_budget.config.step_config import StepConfig, load_steps
from mnist_budget.train.runtime import THREADS_VARIABLE
from mnist_budget.train.seed_pool import train_seed, train_seeds

SPAWN = multiprocessing.get_context("spawn")
TRAIN_IMAGES = 60_000


def sequential(step: StepConfig) -> None:
    """Each seed in its own fresh process, one after the other, with every core's thread."""
    for seed in step.seeds:
        with ProcessPoolExecutor(1, SPAWN) as pool:
            pool.submit(train_seed, step, seed, 0, os.cpu_count() or 1).result()


def side_by_side(step: StepConfig) -> None:
    """The pipeline's way: `seed_pool.train_seeds` (workers per $MNIST_THREADS, one thread each)."""
    train_seeds(step)


def busy_loop() -> None:
    while True:
        pass


# arm -> (how it trains, $MNIST_THREADS: seeds side by side, "" for one per core)
ARMS = {
    "sequential, all threads": (sequential, ""),
    "side by side, 1 thread each": (side_by_side, ""),
    "3 side by side on 2 cores": (side_by_side, "3"),
}


def measure(step: StepConfig, arm: str, busy: bool) -> float:
    """Images per second of one arm, with or without a busy core beside it."""
    run, workers = ARMS[arm]
    os.environ[THREADS_VARIABLE] = workers
    spinner = SPAWN.Process(target=busy_loop, daemon=True) if busy else None
    if spinner:
        spinner.start()
    try:
        started = time.perf_counter()
        run(step)
        seconds = time.perf_counter() - started
    finally:
        if spinner:
            spinner.terminate()
            spinner.join()
    return len(step.seeds) * TRAIN_IMAGES * step.epochs / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--step", help="a step of params.yaml (default: the headline's final step)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/seed_throughput.md"))
    args = parser.parse_args()
    params = load_params(Path("params.yaml"))
    args.step = args.step or params["headline"]["final"]
    step = load_steps(params)[args.step]
    step = dataclasses.replace(step, epochs=args.epochs, seeds=tuple(range(1, args.seeds + 1)))
    pin(step.kernels)  # as the train stage does: its spawned workers inherit the pins
    runs: dict[tuple[str, bool], list[float]] = {(arm, busy): [] for busy in (False, True) for arm in ARMS}
    for repeat in range(args.repeats):
        for (arm, busy), values in runs.items():
            values.append(measure(step, arm, busy))
            print(f"repeat {repeat + 1}: {arm}{', one core busy' if busy else ''}: {values[-1]:,.0f} img/s")
    header = (
        f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}; {args.step}, "
        f"{args.seeds} seeds x {args.epochs} epoch(s) of {TRAIN_IMAGES:,} images; median of {args.repeats}, "
        "arms alternating"
    )
    lines = [header, ""]
    for busy in (False, True):
        baseline = statistics.median(runs["sequential, all threads", busy])
        lines.append("one core busy with another program:" if busy else "idle machine:")
        for arm in ARMS:
            values = runs[arm, busy]
            median = statistics.median(values)
            lines.append(
                f"  {arm:<28} {median:>7,.0f} img/s  x{median / baseline:.2f}   "
                f"(runs: {', '.join(f'{v:,.0f}' for v in values)})"
            )
        lines.append("")
    idle, busy = (statistics.median(runs["side by side, 1 thread each", b]) for b in (False, True))
    lines.append(f"side by side, busy core against idle: x{busy / idle:.2f}")
    report = "```\n" + "\n".join(lines) + "\n```\n"
    write_text(args.out, report)
    print(report)


if __name__ == "__main__":
    main()
