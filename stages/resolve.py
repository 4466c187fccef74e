"""Stage `resolve`: every step as it will train, validated before any training starts.

    python -m stages.resolve [--pipeline NAME]

Deep-merges each step of params.yaml over the `recipe`, validates it (keys, types, ranges,
and that its layers fit their inputs) and writes reports/configs/<step>.json. A step's
train stage depends on its file alone: editing one step retrains that step, editing the
recipe retrains every step that does not override what changed. A typo stops here, with
one line naming the step and the key, and no model or history is touched. Configs are
replaced one file at a time, and the files of removed steps deleted.
"""

from __future__ import annotations

import json
import sys

from mnist_budget.atomic_files import write_text
from mnist_budget.cli import pipeline_parser, stage_main
from mnist_budget.layout import MAIN_LAYOUT, Layout
from mnist_budget.nets import build_layers
from mnist_budget.params import load_params
from mnist_budget.step_config import load_steps


@stage_main
def main(layout: Layout = MAIN_LAYOUT) -> None:
    steps = load_steps(load_params(layout.params))
    for step in steps.values():
        build_layers(step)  # shapes: a layer that does not fit its input fails now
    for name, step in steps.items():
        write_text(layout.config(name), json.dumps(step.raw, indent=2) + "\n")
    stale = [path for path in layout.configs.glob("*.json") if path.stem not in steps]
    for path in stale:
        path.unlink()
    print(
        f"resolve: {len(steps)} steps valid -> {layout.configs}/"
        + (f" (removed {', '.join(p.name for p in stale)})" if stale else ""),
        file=sys.stderr,
    )


if __name__ == "__main__":
    main(Layout.of(pipeline_parser(__doc__).parse_args().pipeline))
