"""Stage `report` of the ablation pipeline: every arm against the baseline, seed by seed.

    python -m stages.ablation [--pipeline ablation]

Reads the arms as `resolve` drew them from the progression (reports/ablation/resolved.json),
each arm's history, and the baseline's: the main pipeline's final step, trained there on the
same seeds (reports/steps/<final>/history.csv); writes
reports/ablation/effects.csv (one row per idea: the mean paired difference of final-epoch
test accuracy, its 95% interval, n and a verdict), which the main report quotes, with
baseline.json (the final step's config the effects were measured on), report.md and
figures/effects.png, all at once.
"""

from __future__ import annotations

import sys

from mnist_budget.base.atomic_files import read_json, write_all
from mnist_budget.base.layout import MAIN_LAYOUT, Layout
from mnist_budget.config.ablation_config import Arm
from mnist_budget.report import figures
from mnist_budget.report.ablation import ABLATION, effects_table, write_report
from mnist_budget.report.history import final_accuracies, load_history
from stages.cli import pipeline_parser, stage_main


@stage_main
def main(layout: Layout = ABLATION) -> None:
    resolved = read_json(layout.resolved)  # the arms as `resolve` drew them from the progression
    baseline, descriptions = resolved["baseline"], resolved["steps"]
    arms = {name: Arm(**arm) for name, arm in resolved["arms"].items()}
    seeds, final = tuple(resolved["seeds"]), resolved["baseline_step"]
    accuracies = {baseline: final_accuracies(load_history(MAIN_LAYOUT, final, seeds))}
    for name in arms:
        accuracies[name] = final_accuracies(load_history(layout, name, seeds))
    table = effects_table(baseline, arms, accuracies)
    write_all(
        {
            layout.reports / "effects.csv": table.to_csv(index=False).encode(),
            # the recipe the effects were measured on, for the main report to check against
            layout.reports / "baseline.json": MAIN_LAYOUT.config(final).read_bytes(),
            layout.reports / "report.md": write_report(
                layout, baseline, table, accuracies, descriptions
            ).encode(),
            layout.figures / "effects.png": figures.ablation_effects(table),
        },
        folders=(layout.figures,),
    )
    print(f"ablation: {len(arms)} arms against {baseline} -> {layout.reports}/report.md", file=sys.stderr)


if __name__ == "__main__":
    main(Layout.of(pipeline_parser(__doc__).parse_args().pipeline))
