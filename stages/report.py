"""Stage `report`: the progression written up, every number read from the stage outputs.

    python -m stages.report [--pipeline NAME]

Writes reports/report.md (headline, table, then Target / Result / Analysis per step, and
for the main pipeline how its recipes were chosen: reports/search/runs.csv), summary.csv,
the figures it embeds, and reports/plots/ (the series `dvc plots show` draws), all at once:
a report that fails keeps the last one whole.
"""

from __future__ import annotations

import sys

from mnist_budget.base.atomic_files import read_json
from mnist_budget.base.layout import MAIN_LAYOUT, Layout
from mnist_budget.config.params import load_params
from mnist_budget.config.report_config import load_public_results, load_without
from mnist_budget.config.step_config import load_steps
from mnist_budget.report import progression_report
from mnist_budget.report.ablation import ABLATION, load_effects
from mnist_budget.report.search_results import STEP, deciding_search
from mnist_budget.report.writeup import Results, replace_report
from stages.cli import pipeline_parser, stage_main


@stage_main
def main(layout: Layout = MAIN_LAYOUT) -> None:
    params = load_params(layout.params)
    results = Results.load(layout, params)
    headline = read_json(layout.headline) if "headline" in params else None
    final = progression_report.final_step(results, headline)
    figures = progression_report.figure_files(results, final, load_public_results(params))
    search = ablation = None
    if layout == MAIN_LAYOUT:
        record = deciding_search()  # how the main recipes were chosen
        validation = load_steps(load_params(record.plans / "params.yaml"))[STEP].validation
        search = record.runs, validation, record.table.relative_to(layout.reports).as_posix()
        # the evidence of each idea: the ablation's rows, and the recipe they measured
        effects = load_effects()
        baseline = effects["baseline"].iloc[0] if len(effects) else ""
        ablation = progression_report.Ablation(
            effects, read_json(ABLATION.config(baseline)) if baseline else {}
        )
    report = progression_report.write_report(results, headline, search, ablation, load_without(params))
    replace_report(results, final, report, figures)
    print(f"report: {len(results.entries)} steps -> {layout.reports / 'report.md'}", file=sys.stderr)


if __name__ == "__main__":
    main(Layout.of(pipeline_parser(__doc__).parse_args().pipeline))
