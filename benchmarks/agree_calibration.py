"""How often `agree` calls a faithful re-run different, and whether it catches broken ones.

    python -m benchmarks.agree_calibration [--rerun benchmarks/native-rerun] [--out benchmarks/agree_calibration.md]

Faithful re-runs: each 8-seed arm of the ablation (its baseline, the main pipeline's final
step, and every other arm) split into two halves of 4 seeds, in all 70 ways: one half
committed, the other the re-run, every arm at once, as one `agree` of 8 steps. Counted: how
often each step is called beyond the noise, and the whole re-run "differs". Judged as
`agree` judges (each step by the pooled spread of its kind) and, to show why, by each
step's own 4 committed seeds alone.

Broken re-runs, from the same splits: in one arm at a time (every split x arm), one re-run
seed at chance (10%), one seed 0.5 pp low, or every seed 0.2 pp low; and every seed of every
arm 0.2 pp low at once. Counted: how often the verdict is "differs" naming that arm.

A real re-run with other bytes (`--rerun`: a folder holding a re-run's reports/, such as
the main pipeline trained with `kernels: native`): `agree`'s verdict on it against HEAD. No
training here: it reads committed histories, in seconds.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mnist_budget.base.atomic_files import read_json, write_text
from mnist_budget.base.layout import MAIN_LAYOUT
from mnist_budget.report.ablation import ABLATION, CHANCE
from mnist_budget.report.agreement import ALPHA, StepRun, describe_machine, judge, spread_of, verdict
from mnist_budget.report.history import final_accuracies
from mnist_budget.tools.agree import compare

HALF = 4
SPLITS = math.comb(2 * HALF, HALF)  # 70
FAULTS = {
    "a seed at chance": lambda now: {**now, 1: CHANCE},
    "a seed 0.5 pp low": lambda now: {**now, 1: now[1] - 0.005},
    "every seed 0.2 pp low": lambda now: {seed: value - 0.002 for seed, value in now.items()},
}


def eight_seed_arms() -> dict[str, list[float]]:
    """Each arm's final accuracies in seed order: the baseline from the main pipeline's
    final step, the others from the ablation's histories."""
    resolved = read_json(ABLATION.resolved)
    histories = {resolved["baseline"]: MAIN_LAYOUT.history(resolved["baseline_step"])}
    histories |= {arm: ABLATION.history(arm) for arm in resolved["arms"]}
    arms = {}
    for arm, path in histories.items():
        finals = final_accuracies(pd.read_csv(path))
        assert len(finals) == 2 * HALF, f"{path}: {len(finals)} seeds, not {2 * HALF}"
        arms[arm] = list(finals.values())
    return arms


def split_runs(arms: dict[str, list[float]], committed: tuple[int, ...]) -> list[StepRun]:
    """One faithful re-run: the seeds at `committed` (indices) as committed, the rest as the
    re-run, renumbered 1-4 on both sides."""
    rerun = [i for i in range(2 * HALF) if i not in committed]
    return [
        StepRun(
            "ablation",
            arm,
            {n + 1: values[i] for n, i in enumerate(committed)},
            {n + 1: values[i] for n, i in enumerate(rerun)},
        )
        for arm, values in arms.items()
    ]


def flagged_by_agree(runs: list[StepRun]) -> set[str]:
    """The steps `agree` names beyond the noise (each judged by its kind's pooled spread)."""
    result = verdict(runs, [])
    return {r.step for r in runs if f"ablation {r.step}" in result.closing} if result.exit_code else set()


def flagged_by_own_seeds(runs: list[StepRun]) -> set[str]:
    """The same tests, each step judged by its own committed seeds' spread alone."""
    return {r.step for r in runs if not judge(r, spread_of(r, [r]), len(runs)).agrees}


RULES = {
    "`agree`: the spread pooled over the steps of its kind": flagged_by_agree,
    "each step's own committed seeds alone": flagged_by_own_seeds,
}


def with_fault(runs: list[StepRun], i: int | None, fault: str) -> list[StepRun]:
    """`runs` with `fault` in run `i`'s re-run seeds (every run's if `i` is None)."""
    return [
        StepRun(r.pipeline, r.step, r.then, FAULTS[fault](r.now)) if i in (None, j) else r
        for j, r in enumerate(runs)
    ]


def calibrate(arms: dict[str, list[float]], flagged: Callable[[list[StepRun]], set[str]]) -> dict:
    """Per arm: false alarms and each fault's catches, counted over every split."""
    counts: dict = {"false alarms": dict.fromkeys(arms, 0), "overall": 0, "everywhere": 0}
    counts |= {fault: dict.fromkeys(arms, 0) for fault in FAULTS}
    for committed in itertools.combinations(range(2 * HALF), HALF):
        runs = split_runs(arms, committed)
        alarms = flagged(runs)
        counts["overall"] += bool(alarms)
        for arm in alarms:
            counts["false alarms"][arm] += 1
        for fault in FAULTS:
            for i, run in enumerate(runs):
                counts[fault][run.step] += run.step in flagged(with_fault(runs, i, fault))
        counts["everywhere"] += bool(flagged(with_fault(runs, None, "every seed 0.2 pp low")))
    return counts


def calibration_section(arms: dict[str, list[float]], rule: str, counts: dict) -> list[str]:
    n = SPLITS
    at_chance = [arm for arm, values in arms.items() if statistics.fmean(values) < 2 * CHANCE]
    trained = [arm for arm in arms if arm not in at_chance]
    rates = {f: sum(counts[f][a] for a in trained) / (n * len(trained)) for f in FAULTS}
    lines = [
        f"### Judged by {rule}",
        "",
        f'Faithful re-runs called "differs": **{counts["overall"]} of {n} ({counts["overall"] / n:.1%})** '
        f"(at most {ALPHA:.0%} allowed). Broken re-runs caught, the fault in one trained arm at a "
        "time: "
        + "; ".join(f"{fault} **{rate:.0%}**" for fault, rate in rates.items())
        + f"; every seed of every arm 0.2 pp low at once: **{counts['everywhere']} of {n}**.",
        "",
        "| arm | mean | seed std | false alarms | " + " | ".join(f"caught: {f}" for f in FAULTS) + " |",
        "|---|---|---|---|" + "---|" * len(FAULTS),
    ]
    for arm, values in arms.items():
        lines.append(
            f"| `{arm}` | {statistics.fmean(values):.2%} | {100 * statistics.stdev(values):.3f} pp | "
            f"{counts['false alarms'][arm]} of {n} | "
            + " | ".join(f"{counts[f][arm] / n:.0%}" for f in FAULTS)
            + " |"
        )
    if at_chance:
        lines += [
            "",
            f"{', '.join(f'`{a}`' for a in at_chance)}: at chance, where 10% is what a seed scores.",
        ]
    return lines


def real_rerun(folder: Path) -> list[str]:
    # the folder holds the re-run main pipeline alone: the other pipelines were not re-run
    runs, alone = compare("HEAD", folder, pipelines={MAIN_LAYOUT.name})
    result = verdict(runs, alone)
    machines = {describe_machine(r.machines[1]) for r in runs if not r.identical}
    return [
        f"## A real re-run with other bytes: `{folder}`",
        "",
        (
            f"`python -m mnist_budget.tools.agree --here {folder}` (against HEAD; the main pipeline's steps, the "
            f"folder holds no other), made on: {', '.join(sorted(machines))}"
        ),
        "",
        "```",
        *result.lines,
        result.closing,
        "```",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rerun", type=Path, default=Path("benchmarks/native-rerun"))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/agree_calibration.md"))
    args = parser.parse_args()
    arms = eight_seed_arms()
    lines = [
        f"## Faithful and broken re-runs: {len(arms)} arms of 8 seeds, split into 4 committed + 4 "
        + f"re-run in all {SPLITS} ways, every arm at once as one re-run",
    ]
    for rule, flagged in RULES.items():
        lines += ["", *calibration_section(arms, rule, calibrate(arms, flagged))]
    if (args.rerun / MAIN_LAYOUT.reports).is_dir():
        lines += ["", *real_rerun(args.rerun)]
    header = (
        "# `agree` calibrated: `python -m benchmarks.agree_calibration` (the committed histories, "
        "no training: the same on any machine)"
    )
    write_text(args.out, "\n".join([header, "", *lines]) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
