"""Stage `evaluate@<step>`: score a trained step against the target and the budget.

    python -m stages.evaluate <step>

Reads the exported model (not the training code's objects) and the training history;
writes reports/steps/<step>/metrics.json, confusion.csv and summary.md (layer table).
"""

from __future__ import annotations

import sys

import pandas as pd
import torch

from stages.checkpoint import load_model
from stages.config import (
    Target,
    exit_on_params_error,
    load_params,
    load_target,
    parse_step,
    pipeline_parser,
)
from stages.dataset import load_mnist
from stages.files import atomic_path, write_json, write_text
from stages.fit import predict
from stages.nets import count_params, summary_rows
from stages.paths import MAIN_LAYOUT, Layout

LAST_EPOCHS = 3  # min_test_accuracy_last_3: how steady the final epochs are


def history_metrics(history: pd.DataFrame, target: Target) -> dict:
    """What the per-epoch test accuracies say; `best_*` is selected on the test set."""
    accuracy = history["test_accuracy"]
    reached = history.loc[accuracy >= target.test_accuracy, "epoch"]
    first = int(reached.iloc[0]) if len(reached) else None
    return {
        "best_test_accuracy": float(accuracy.max()),
        "best_epoch": int(history.loc[accuracy.idxmax(), "epoch"]),
        "train_accuracy": float(history["train_accuracy"].iloc[-1]),
        "epochs": len(history),
        "first_epoch_at_target": first,
        "held_target_after_first": bool(
            first is not None and (accuracy[history["epoch"] >= first] >= target.test_accuracy).all()
        ),
        "min_test_accuracy_last_3": float(accuracy.iloc[-LAST_EPOCHS:].min()),
    }


def meets(metrics: dict, target: Target) -> dict:
    checks = {
        "accuracy": metrics["test_accuracy"] >= target.test_accuracy,
        "params": metrics["params_total"] <= target.max_params,
        "epochs": metrics["epochs"] <= target.max_epochs,
    }
    return {**checks, "all": all(checks.values())}


def summary_table(rows: list[dict]) -> str:
    table = pd.DataFrame(rows).astype(object)
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


@exit_on_params_error
def main(name: str, layout: Layout = MAIN_LAYOUT) -> None:
    target = load_target(load_params(layout.params))
    model, config = load_model(layout.model(name))
    data = load_mnist(torch.device("cpu"))
    predicted = predict(model, data.test_images).argmax(1)
    history = pd.read_csv(layout.history(name))
    metrics = {
        "test_accuracy": round((predicted == data.test_labels).double().mean().item(), 6),
        **history_metrics(history, target),
        **count_params(model),
    }
    rows = summary_rows(parse_step(name, config["step"]))
    metrics["macs"] = sum(row["macs"] for row in rows)
    # before global pooling (or a head covering the whole map), where it is still a choice
    spatial = [row for row in rows if row["output"].split("x")[1:] != ["1", "1"]]
    metrics["receptive_field"] = spatial[-1]["receptive_field"] if spatial else rows[-1]["receptive_field"]
    metrics["meets"] = meets(metrics, target)
    write_json(layout.metrics(name), metrics)
    write_text(layout.summary(name), summary_table(rows))
    with atomic_path(layout.confusion(name)) as tmp:
        pd.DataFrame({"actual": data.test_labels, "predicted": predicted}).to_csv(tmp, index=False)
    print(
        f"evaluate {name}: test accuracy {metrics['test_accuracy']:.2%}, "
        f"{metrics['params_total']:,} params, meets target and budget: {metrics['meets']['all']}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    parser = pipeline_parser("Score one trained step against the target and the budget.")
    parser.add_argument("step")
    args = parser.parse_args()
    main(args.step, Layout.of(args.pipeline))
