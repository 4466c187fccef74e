"""Stage `compare` (seed-systems pipeline): every write-up's claims against its reproduction.

    python -m stages.compare --pipeline seed-systems

Writes reports/seed-systems/report.md (each system's net at a glance, the comparison claim by
claim, then each system's progression), systems.csv (the glance's rows), summary.csv, the
figures it embeds and the series `dvc plots show` draws.
"""

from __future__ import annotations

import sys

from mnist_budget.base.atomic_files import read_json
from mnist_budget.base.layout import Layout
from mnist_budget.config.claims_config import load_claims
from mnist_budget.report import seed_systems, seed_systems_report
from mnist_budget.report.writeup import Results, replace_report
from stages.cli import pipeline_parser, stage_main


@stage_main
def main(layout: Layout) -> None:
    results = Results.load(layout)
    resolved = read_json(layout.resolved)  # the gpu steps and every step's size, from `resolve`
    epochs = {name: entry["epochs"] for name, entry in results.entries.items()}
    gpu_steps = resolved["gpu_steps"]
    systems = load_claims(layout.claims, epochs | {name: step["epochs"] for name, step in gpu_steps.items()})
    glance = seed_systems.system_rows(systems, seed_systems_report.runs(results), resolved["sizes"])
    report = seed_systems_report.write_report(results, systems, gpu_steps, resolved["sizes"], glance)
    files = seed_systems_report.figure_files(results, systems, glance)
    files[layout.reports / "systems.csv"] = glance.to_csv(index=False).encode()
    replace_report(results, list(results.entries)[-1], report, files)
    print(f"compare: {len(systems)} systems -> {layout.reports / 'report.md'}", file=sys.stderr)


if __name__ == "__main__":
    main(Layout.of(pipeline_parser(__doc__).parse_args().pipeline))
