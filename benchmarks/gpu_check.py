"""The GPU path, checked where a CUDA GPU is lent (never in tests or CI, which have none).

    python -m benchmarks.gpu_check [--epochs 1] [--images 60000] [--out benchmarks/gpu_check.md]

On the main pipeline's final step (reports/configs/<final>.json) with `device: auto`, seed 1:
(1) `auto` picks CUDA; (2) the train stage's own `train_seed` run twice for `--epochs`
epochs, the histories and model files compared byte for byte, and what `made_on` records;
(3) the final net's training images/s with the project's `train_epoch` (fp32, after a
warm-up), on the GPU and, in the same run, on one CPU thread. Needs data/prepared.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from benchmarks.precision_speed import cpu_model, publish, time_epoch
from mnist_budget.base.atomic_files import read_json
from mnist_budget.base.kernels import pin
from mnist_budget.base.layout import MAIN_LAYOUT
from mnist_budget.config.params import load_params
from mnist_budget.config.step_config import read_config


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--images", type=int, default=60_000, help="training images timed per device")
    parser.add_argument("--out", default="benchmarks/gpu_check.md")
    args = parser.parse_args()
    final = load_params()["headline"]["final"]
    step = read_config(final, {**read_json(MAIN_LAYOUT.config(final)), "device": "auto"})
    step = dataclasses.replace(step, epochs=args.epochs, seeds=(1,))
    pin(step.kernels)  # as the train stage: before any tensor
    import torch

    from mnist_budget.train.runtime import made_on, pick_device
    from mnist_budget.train.seed_pool import train_seed

    device = pick_device(step)
    lines = [f"# {cpu_model()}; torch {torch.__version__}; `device: auto` picked {device}"]
    if device.type == "cuda":
        lines[0] += f" ({torch.cuda.get_device_name(device)})"
        (history, model), (again, model_again) = train_seed(step, 1), train_seed(step, 1)
        verdicts = {
            name: "the same" if first == second else "differs"
            for name, first, second in (("history", history, again), ("model file", model, model_again))
        }
        finals = f"{history[-1]['test_accuracy']:.2%} and {again[-1]['test_accuracy']:.2%}"
        lines += [
            f"- {final}, seed 1, {args.epochs} epoch(s), trained twice on {device}: "
            + ", ".join(f"{name} {verdict}" for name, verdict in verdicts.items())
            + f"; final test accuracy {finals}",
            f"- made_on: {json.dumps(made_on(step, device))}",
        ]
    for where in ("cuda", "cpu") if device.type == "cuda" else ("cpu",):
        rate = time_epoch(final, "fp32", step.kernels, args.images, where)
        lines.append(f"- {final} training, fp32, {args.images:,} images on {where}: {rate:,.0f} img/s")
    publish(lines, Path(args.out))


if __name__ == "__main__":
    main()
