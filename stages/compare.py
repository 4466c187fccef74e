"""Stage `compare` (seed-systems pipeline): every write-up's claims against its reproduction.

    python -m stages.compare --pipeline seed-systems

Writes reports/seed-systems/report.md (the comparison table, then each system's
progression), summary.csv, the figures it embeds and the series `dvc plots show` draws.
"""

from __future__ import annotations

import sys

from mnist_budget import seed_systems, seed_systems_report
from mnist_budget.atomic_files import write_text
from mnist_budget.cli import pipeline_parser, stage_main
from mnist_budget.layout import Layout
from mnist_budget.params import load_params
from mnist_budget.step_config import load_target
from mnist_budget.writeup import Results, write_tables


@stage_main
def main(layout: Layout) -> None:
    params = load_params(layout.params)
    # validated once: load_systems parses every step and gpu step
    systems, gpu_steps = seed_systems.load_systems(params), seed_systems.load_gpu_steps(params)
    results = Results.load(layout, load_target(params), list(params["steps"]))
    seed_systems_report.write_figures(results, systems)
    write_tables(results, final=list(results.entries)[-1])
    write_text(layout.reports / "report.md", seed_systems_report.write_report(results, systems, gpu_steps))
    print(f"compare: {len(systems)} systems -> {layout.reports / 'report.md'}", file=sys.stderr)


if __name__ == "__main__":
    main(Layout.of(pipeline_parser(__doc__).parse_args().pipeline))
