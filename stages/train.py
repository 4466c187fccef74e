"""Stage `train@<step>`: train one step of the progression, as its params entry defines it.

    python -m stages.train <step> [--seed N]

Writes models/<step>.pt2 (torch.export, with the step's params inside) and the per-epoch
history reports/steps/<step>/history.csv that `dvc plots` and the report read. With
--seed (stage `seed_runs`), the same recipe with another seed, written under */seeds/.
"""

from __future__ import annotations

import dataclasses
import sys

import pandas as pd
import torch

from mnist_budget.atomic_files import atomic_path
from mnist_budget.cli import exit_on_params_error, pipeline_parser
from mnist_budget.dataset import load_mnist
from mnist_budget.layout import MAIN_LAYOUT, Layout
from mnist_budget.model_file import save_model
from mnist_budget.model_stats import count_params
from mnist_budget.nets import build_net
from mnist_budget.params import load_params
from mnist_budget.runtime import set_up
from mnist_budget.step_config import load_step
from mnist_budget.training import TrainingDiverged, fit


@exit_on_params_error
def main(name: str, seed: int | None = None, layout: Layout = MAIN_LAYOUT) -> None:
    step = load_step(name, load_params(layout.params))
    if seed is not None:
        step = dataclasses.replace(step, seed=seed, raw={**step.raw, "seed": seed})
    device, generator = set_up(step)
    # channels-last: oneDNN's faster convolution layout on the CPU (+13% img/s at batch 64)
    model = build_net(step).to(device, memory_format=torch.channels_last)
    data = load_mnist(device)
    counts = count_params(model)
    print(
        f"train {name} (seed {step.seed}): {counts['params_total']:,} params ({counts['params_non_trainable']} "
        f"non-trainable), {step.epochs} epochs, batch {step.batch_size}, on {device} "
        f"with {torch.get_num_threads()} threads",
        file=sys.stderr,
    )
    history, trained = fit(model, data, step, generator)
    save_model(trained, {"name": name, "step": step.raw}, layout.model(name, seed))
    with atomic_path(layout.history(name, seed)) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    last = history[-1]
    print(
        f"train {name}: final test accuracy {last['test_accuracy']:.2%} after {last['epoch']} epochs",
        file=sys.stderr,
    )


if __name__ == "__main__":
    parser = pipeline_parser("Train one step of the progression.")
    parser.add_argument("step")
    parser.add_argument("--seed", type=int, help="override the step's seed (multi-seed runs)")
    args = parser.parse_args()
    try:
        main(args.step, args.seed, Layout.of(args.pipeline))
    except TrainingDiverged as error:
        sys.exit(f"error: {error}")
