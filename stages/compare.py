"""Stage `compare` (seed-systems pipeline): every write-up's claims against its reproduction.

    python -m stages.compare --pipeline seed-systems

Writes reports/seed-systems/report.md (the comparison table, then each system's
progression), summary.csv, the figures it embeds and the series `dvc plots show` draws.
"""

from __future__ import annotations

import sys

from mnist_budget.base.layout import Layout
from mnist_budget.config.params import load_params
from mnist_budget.report import seed_systems, seed_systems_report
from mnist_budget.report.writeup import Results, replace_report
from stages.cli import pipeline_parser, stage_main


@stage_main
def main(layout: Layout) -> None:
    params = load_params(layout.params)
    # validated once: load_systems parses every step and gpu step
    systems, gpu_steps = seed_systems.load_systems(params), seed_systems.load_gpu_steps(params)
    results = Results.load(layout, params)
    report = seed_systems_report.write_report(results, systems, gpu_steps)
    figures = seed_systems_report.figure_files(results, systems)
    replace_report(results, list(results.entries)[-1], report, figures)
    print(f"compare: {len(systems)} systems -> {layout.reports / 'report.md'}", file=sys.stderr)


if __name__ == "__main__":
    main(Layout.of(pipeline_parser(__doc__).parse_args().pipeline))
