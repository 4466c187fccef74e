"""Stage `evaluate@<step>`: score a trained step, every seed, against the target and the budget.

    python -m stages.evaluate <step>

Reads the exported models (not the training code's objects) and the training history;
writes reports/steps/<step>/metrics.json (the final test accuracy over seeds: mean, min,
max, std, per seed, and the same on the validation images when the step holds some out;
the verdicts on the mean and on every seed), confusion.csv (the first
seed's predictions) and summary.md (layer table).
"""

from __future__ import annotations

import sys

import pandas as pd
import torch

from mnist_budget.atomic_files import atomic_path, read_json, write_json, write_text
from mnist_budget.cli import pipeline_parser, stage_main
from mnist_budget.dataset import load_mnist
from mnist_budget.layout import MAIN_LAYOUT, Layout
from mnist_budget.model_file import load_model
from mnist_budget.model_stats import count_params, layer_rows, receptive_field
from mnist_budget.params import load_params
from mnist_budget.scoring import accuracy, history_metrics, load_history, meets, over_seeds, predict
from mnist_budget.step_config import load_target, parse_step


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


@stage_main
def main(name: str, layout: Layout = MAIN_LAYOUT) -> None:
    target = load_target(load_params(layout.params))
    step = parse_step(name, read_json(layout.config(name)))
    data = load_mnist(torch.device("cpu"), step.validation)
    predictions, accuracies, val_accuracies = {}, {}, {}
    for seed in step.seeds:
        model, _ = load_model(layout.model(name, seed))
        predictions[seed] = predict(model, data.test_images).argmax(1)
        accuracies[seed] = accuracy(predictions[seed], data.test_labels)
        if data.val_images is not None:
            val_accuracies[seed] = accuracy(predict(model, data.val_images).argmax(1), data.val_labels)
    history = load_history(layout.history(name))
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
    write_json(layout.metrics(name), metrics)
    write_text(layout.summary(name), layer_table(rows))
    with atomic_path(layout.confusion(name)) as tmp:
        pd.DataFrame({"actual": data.test_labels, "predicted": predictions[step.seeds[0]]}).to_csv(
            tmp, index=False
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
