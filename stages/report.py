"""Stage `report`: the progression written up, every number read from the stage outputs.

    python -m stages.report [--pipeline NAME] [--search FOLDER] [--ablation FOLDER]

Writes reports/report.md (headline, table, then Target / Result / Analysis per step; with
`--search`, how its recipes were chosen, from that search's record; with `--ablation`, each
idea's effect, from that ablation's effects.csv and configs/: the stage declares both as
deps), summary.csv,
the figures it embeds, and reports/plots/ (the series `dvc plots show` draws), all at once:
a report that fails keeps the last one whole.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mnist_budget.base.atomic_files import read_json
from mnist_budget.base.layout import MAIN_LAYOUT, Layout
from mnist_budget.config.params import load_params
from mnist_budget.config.step_config import load_steps
from mnist_budget.report import progression_report
from mnist_budget.report.ablation import EFFECTS, load_effects
from mnist_budget.report.search_results import STEP, deciding_search
from mnist_budget.report.writeup import Results, replace_report
from stages.cli import pipeline_parser, stage_main


@stage_main
def main(
    layout: Layout = MAIN_LAYOUT, search_record: Path | None = None, ablation_reports: Path | None = None
) -> None:
    resolved = read_json(layout.resolved)
    results = Results.load(layout)
    headline = read_json(layout.headline) if "headline" in resolved else None
    final = progression_report.final_step(results, headline)
    figures = progression_report.figure_files(results, final)
    search = ablation = None
    if search_record:  # how the recipes were chosen
        record = deciding_search(search_record)
        validation = load_steps(load_params(record.plans / "params.yaml"))[STEP].validation
        table = record.table.relative_to(layout.reports).as_posix()
        search = record.runs, validation, table, record.incumbents(), record.taught()
    if ablation_reports:  # the evidence of each idea: the ablation's rows, and the recipe they measured
        effects = load_effects(ablation_reports / EFFECTS.name)
        baseline = ablation_reports / "baseline.json"  # the final step's config it measured
        ablation = progression_report.Ablation(effects, read_json(baseline) if len(effects) else {})
    without = resolved["without"]
    report = progression_report.write_report(results, headline, search, ablation, without)
    replace_report(results, final, report, figures)
    print(f"report: {len(results.entries)} steps -> {layout.reports / 'report.md'}", file=sys.stderr)


if __name__ == "__main__":
    parser = pipeline_parser(__doc__)
    parser.add_argument("--search", type=Path, help="a search's record to quote, e.g. reports/search")
    parser.add_argument("--ablation", type=Path, help="an ablation's reports to quote, e.g. reports/ablation")
    args = parser.parse_args()
    main(Layout.of(args.pipeline), args.search, args.ablation)
