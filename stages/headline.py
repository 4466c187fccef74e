"""Stage `headline`: the final and the tiny step over their seeds (mean, min, std).

One run settles nothing: seed-to-seed spread is about 0.05-0.1 pp here. Each step trains
its own `seeds`; this stage picks the two steps `headline` names and writes
reports/headline.json, which the report and the README quote, and reports/metrics.json,
their mean and min alone: the pipeline's one metrics file, so that `dvc metrics show` and
`dvc exp show` show four numbers, not every step's forty.
"""

from __future__ import annotations

import sys

from mnist_budget.base.atomic_files import json_bytes, read_json, write_all
from mnist_budget.base.layout import MAIN_LAYOUT, Layout
from mnist_budget.config.params import require
from mnist_budget.report.history import per_seed
from stages.cli import pipeline_parser, stage_main


def seed_summary(layout: Layout, step: str) -> dict:
    metrics = read_json(layout.metrics(step))
    accuracy = metrics["test_accuracy"]
    return {
        "step": step,
        "params_total": metrics["params_total"],
        "epochs": metrics["epochs"],
        "seeds": metrics["seeds"],
        "test_accuracies": list(per_seed(accuracy).values()),
        "mean": accuracy["mean"],
        "min": accuracy["min"],
        "std": accuracy["std"],  # sample std
    }


@stage_main
def main(layout: Layout = MAIN_LAYOUT) -> None:
    section = read_json(layout.resolved).get("headline")
    require(section is not None, f"{layout.params}: headline", "missing: name the final and the tiny step")
    headline = {role: seed_summary(layout, step) for role, step in section.items()}
    numbers = {role: {"mean": h["mean"], "min": h["min"]} for role, h in headline.items()}
    metrics = layout.reports / "metrics.json"  # dvc.yaml's `metrics:`
    write_all({layout.headline: json_bytes(headline), metrics: json_bytes(numbers)})
    for role, h in headline.items():
        print(
            f"headline {role} {h['step']}: {h['params_total']:,} params, mean {h['mean']:.2%} "
            f"min {h['min']:.2%} std {h['std'] * 100:.3f} pp over seeds {h['seeds']}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main(Layout.of(pipeline_parser(__doc__).parse_args().pipeline))
