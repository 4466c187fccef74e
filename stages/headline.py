"""Stage `headline`: the final and the tiny step over several seeds (mean, min, std).

One run settles nothing: seed-to-seed spread is about 0.1 pp here. The step's own run is
the first seed; `seed_runs` trains the same recipe with each of `headline.extra_seeds`.
Writes reports/headline.json, which the report and the README quote.
"""

from __future__ import annotations

import statistics
import sys

from mnist_budget.atomic_files import read_json, write_json
from mnist_budget.cli import pipeline_parser, stage_main
from mnist_budget.layout import MAIN_LAYOUT, Layout
from mnist_budget.params import REQUIRED, Key, ParamsError, load_params, read_section, require
from mnist_budget.scoring import load_history
from mnist_budget.step_config import parse_step

HEADLINE_KEYS = {
    "final": Key(str, REQUIRED, "the final step"),
    "tiny": Key(str, REQUIRED, "the smallest step"),
    "extra_seeds": Key(list, REQUIRED, "seeds besides each step's own"),
}
ROLES = ("final", "tiny")


def read_headline_params(params: dict, layout: Layout) -> dict:
    """The section, and each role's own seed from its resolved config."""
    section = read_section(params.get("headline"), HEADLINE_KEYS, "headline")
    for role in ROLES:
        config = layout.config(section[role])
        require(config.is_file(), f"headline.{role}", f"{section[role]!r} is not a step in `steps`")
    seeds = section["extra_seeds"]
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ParamsError(f"headline.extra_seeds: expected a list of integers, got {seeds!r}")
    own_seeds = {
        role: parse_step(section[role], read_json(layout.config(section[role]))).seed for role in ROLES
    }
    for own in own_seeds.values():
        require(own not in seeds, "headline.extra_seeds", f"seed {own} is already the step's own seed")
    return section | {"own_seeds": own_seeds}


def seed_summary(layout: Layout, step: str, own_seed: int, extra_seeds: list[int]) -> dict:
    metrics = read_json(layout.metrics(step))
    accuracies = [metrics["test_accuracy"]] + [
        float(load_history(layout.history(step, seed))["test_accuracy"].iloc[-1]) for seed in extra_seeds
    ]
    return {
        "step": step,
        "params_total": metrics["params_total"],
        "epochs": metrics["epochs"],
        "seeds": [own_seed, *extra_seeds],
        "test_accuracies": accuracies,
        "mean": statistics.fmean(accuracies),
        "min": min(accuracies),
        "std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,  # sample std
    }


@stage_main
def main(layout: Layout = MAIN_LAYOUT) -> None:
    section = read_headline_params(load_params(layout.params), layout)
    headline = {
        role: seed_summary(layout, section[role], section["own_seeds"][role], section["extra_seeds"])
        for role in ROLES
    }
    write_json(layout.headline, headline)
    for role, h in headline.items():
        print(
            f"headline {role} {h['step']}: {h['params_total']:,} params, mean {h['mean']:.2%} "
            f"min {h['min']:.2%} std {h['std'] * 100:.3f} pp over seeds {h['seeds']}",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main(Layout.of(pipeline_parser(__doc__).parse_args().pipeline))
