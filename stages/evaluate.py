"""Stage `evaluate@<step>`: score a trained step, every seed, against the target and the budget.

    python -m stages.evaluate <step>

Reads the exported models (not the training code's objects) and the training history;
writes reports/steps/<step>/metrics.json (the final test accuracy over seeds: mean, min,
max, std, per seed, and the same on the validation images when the step holds some out;
the verdicts on the mean and on every seed), confusion.csv (the first
seed's predictions) and summary.md (layer table), all three or none. A model file that is
damaged, or was trained with another config than the step's (another step's file copied
in), stops the stage with the command that retrains it.

The models are scored on the device that scored the history (its made_on.json), so that
both give the same final accuracies. Where that device is not here (trained on a GPU,
evaluated on a laptop), they are scored on the CPU, and metrics.json adds `scored_on`: the
history's final accuracy and this one, seed by seed, with a note where they differ.
"""

from __future__ import annotations

import sys

import pandas as pd
import torch
from torch import nn

from mnist_budget.base.atomic_files import json_bytes, read_json, write_all
from mnist_budget.base.dvc_lock import REPAIR, recorded_files
from mnist_budget.base.errors import StageError
from mnist_budget.base.kernels import check_pinned, pin
from mnist_budget.base.layout import MAIN_LAYOUT, Layout
from mnist_budget.config.step_config import Target, read_config
from mnist_budget.report.history import final_accuracies, history_metrics, load_history, meets, over_seeds
from mnist_budget.train.dataset import load_mnist
from mnist_budget.train.model_file import DamagedModelFile, load_model
from mnist_budget.train.model_stats import count_params, layer_rows, receptive_field
from mnist_budget.train.scoring import accuracy, as_trained, predict, scoring_device
from stages.cli import pipeline_parser, stage_main


def layer_table(rows: list[dict]) -> str:
    """The layer rows as markdown, with a totals row."""
    table = pd.DataFrame(rows).astype(object)
    table["output"] = ["x".join(map(str, shape)) for shape in table["output"]]
    totals = table[["params_trainable", "params_non_trainable", "params_total", "macs"]].sum()
    table.loc[len(table)] = {"layer": "**total**", "output": "", **totals, "receptive_field": ""}
    table.columns = [
        "layer",
        "output (CxHxW)",
        "trainable",
        "non-trainable",
        "params",
        "MACs",
        "receptive field",
    ]
    return table.to_markdown(index=False) + "\n"


def load_trained(layout: Layout, name: str, seed: int, config: dict, recorded: dict) -> nn.Module:
    """The step's model of `seed`, refused when its bytes are not those dvc.lock records
    (`recorded`: each model file's md5), damaged, or trained with another config."""
    path = layout.model(name, seed)
    retrain = f"retrain it: {layout.repro_command('train', name)}"
    if path not in recorded:
        raise StageError(
            f"{path}: {layout.lock} records no such file of train@{name} (its listing in the DVC "
            "cache is missing, or the step was trained outside dvc repro); not loaded: run `dvc repro`"
        )
    try:
        model, stored = load_model(path, recorded[path])
    except DamagedModelFile as error:
        raise StageError(f"{error}; {REPAIR}") from None
    if stored.get("config") != config or stored.get("seed") != seed:
        raise StageError(
            f"{path}: holds a model of step {stored.get('name')!r}, seed {stored.get('seed')}, trained "
            f"with another config than {layout.config(name)} (seed {seed}); {retrain}"
        )
    return model


def history_device(layout: Layout, name: str) -> str:
    """The device the step's history was scored on, as the train stage recorded it beside the
    history (`runtime.made_on`); "cpu" for a history with no such record."""
    path = layout.made_on(name)
    return str(read_json(path).get("device", "cpu")) if path.is_file() else "cpu"


def history_disagrees(history: pd.DataFrame, accuracies: dict[int, float]) -> str:
    """One line naming each seed whose final test accuracy here is not its history's, ''
    when every seed agrees."""
    finals = final_accuracies(history)
    differ = [
        f"seed {seed} {finals[seed]:.2%} in the history, {value:.2%} here"
        for seed, value in accuracies.items()
        if finals.get(seed) != value
    ]
    return f"the final test accuracy differs: {'; '.join(differ)}" if differ else ""


@stage_main
def main(name: str, layout: Layout = MAIN_LAYOUT) -> None:
    target = Target(**read_json(layout.target))
    config = read_json(layout.config(name))
    step = read_config(name, config)
    pin(step.kernels)  # scored with the kernels it trained with, set before any tensor
    check_pinned(step.kernels)  # raises on a late pin; the train stage said the rest
    recorded = recorded_files(layout.lock, f"train@{name}", layout.model_dir(name))
    models = {seed: load_trained(layout, name, seed, config, recorded) for seed in step.seeds}
    history = load_history(layout, name, step.seeds)
    trained_on = history_device(layout, name)
    device = scoring_device(trained_on)  # None: not here, scored on the CPU and compared below
    data = load_mnist(device or torch.device("cpu"), step.validation)
    predictions, accuracies, val_accuracies = {}, {}, {}
    for seed, model in models.items():
        model = as_trained(model, data.test_images.device)
        predictions[seed] = predict(model, data.test_images).argmax(1)
        accuracies[seed] = accuracy(predictions[seed], data.test_labels)
        if data.val_images is not None:
            val_accuracies[seed] = accuracy(predict(model, data.val_images).argmax(1), data.val_labels)
    metrics = {
        "seeds": list(step.seeds),
        # the held-out training images recipes are chosen on (see `validation`)
        **({"validation_accuracy": over_seeds(val_accuracies)} if val_accuracies else {}),
        "test_accuracy": over_seeds(accuracies),
        **history_metrics(history, target),
        **count_params(model),
    }
    rows = layer_rows(step)
    metrics["macs"] = sum(row["macs"] for row in rows)
    metrics["receptive_field"] = receptive_field(rows)
    metrics["meets"] = meets(metrics, target)
    differ = history_disagrees(history, accuracies)
    if device is None:  # both, seed by seed: the history's device is the one the results came from
        metrics["scored_on"] = {
            "device": "cpu",
            "history_device": trained_on,
            "history_test_accuracy": {str(seed): value for seed, value in final_accuracies(history).items()},
            "test_accuracy": {str(seed): value for seed, value in accuracies.items()},
            **({"note": differ} if differ else {}),
        }
        print(
            f"evaluate {name}: the history was scored on {trained_on}, which is not here: scored on "
            f"the CPU; {differ or 'the same final test accuracy for every seed'}",
            file=sys.stderr,
        )
    elif differ:
        print(
            f"evaluate {name}: warning: scored on {trained_on} as its history was, {differ}", file=sys.stderr
        )
    first = predictions[step.seeds[0]]
    confusion = pd.DataFrame({"actual": data.test_labels.cpu(), "predicted": first.cpu()})
    write_all(
        {
            layout.metrics(name): json_bytes(metrics),
            layout.summary(name): layer_table(rows).encode(),
            layout.confusion(name): confusion.to_csv(index=False).encode(),
        }
    )
    test = metrics["test_accuracy"]
    print(
        f"evaluate {name}: test accuracy mean {test['mean']:.2%} min {test['min']:.2%} over seeds "
        f"{', '.join(map(str, step.seeds))}, {metrics['params_total']:,} params, meets target and budget: "
        f"{metrics['meets']['all']}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    parser = pipeline_parser("Score one trained step against the target and the budget.")
    parser.add_argument("step")
    args = parser.parse_args()
    main(args.step, Layout.of(args.pipeline))
