"""Stage `headline`: the final and the tiny step over several seeds (mean, min, std).

One run settles nothing: seed-to-seed spread is about 0.1 pp here. The step's own run is
the first seed; `seed_runs` trains the same recipe with each of `headline.extra_seeds`.
Writes reports/headline.json, which the report and the README quote.
"""

from __future__ import annotations

import statistics
import sys

import pandas as pd

from mnist_budget.atomic_files import read_json, write_json
from mnist_budget.cli import exit_on_params_error, pipeline_parser
from mnist_budget.layout import MAIN_LAYOUT, Layout
from mnist_budget.params import REQUIRED, Key, ParamsError, load_params, read_section, require
from mnist_budget.step_config import load_steps

HEADLINE_KEYS = {
    "final": Key(str, REQUIRED, "the final step"),
    "tiny": Key(str, REQUIRED, "the smallest step"),
    "extra_seeds": Key(list, REQUIRED, "seeds besides each step's own"),
}
ROLES = ("final", "tiny")


def read_headline_params(params: dict) -> dict:
    section = read_section(params.get("headline"), HEADLINE_KEYS, "headline")
    steps = load_steps(params)
    for role in ROLES:
        require(section[role] in steps, f"headline.{role}", f"{section[role]!r} is not a step in `steps`")
    seeds = section["extra_seeds"]
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ParamsError(f"headline.extra_seeds: expected a list of integers, got {seeds!r}")
    own_seeds = {role: steps[section[role]].seed for role in ROLES}
    for own in own_seeds.values():
        require(own not in seeds, "headline.extra_seeds", f"seed {own} is already the step's own seed")
    return section | {"own_seeds": own_seeds}


def seed_summary(layout: Layout, step: str, own_seed: int, extra_seeds: list[int]) -> dict:
    metrics = read_json(layout.metrics(step))
    accuracies = [metrics["test_accuracy"]] + [
        float(pd.read_csv(layout.history(step, seed))["test_accuracy"].iloc[-1]) for seed in extra_seeds
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


@exit_on_params_error
def main(layout: Layout = MAIN_LAYOUT) -> None:
    section = read_headline_params(load_params(layout.params))
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
