"""Whether a re-run's final-epoch accuracies agree with the committed ones, step by step.

A step re-run with other bytes (another CPU's kernels, a GPU) is a new draw of the same
recipe: its seeds scatter as the committed seeds do. Each step is judged against the
committed side's spread alone (a broken re-run must not widen its own band), pooled over the
committed steps of its kind (`spread_of`), with Student's t for the seeds that spread comes
from, by two tests:

- its mean over the common seeds, against the committed mean: a shift of every seed;
- each re-run seed against the committed seeds' prediction interval: one seed far outside
  them, which a mean over several seeds can hide.

Bonferroni over every test of every step judged: a faithful re-run is called "differs" at
most `ALPHA` of the time, however many steps it re-ran. Settings that differ (other epochs,
seeds, steps) are named, never judged against the noise. No torch, no files: tools/agree.py
reads the histories, benchmarks/agree_calibration.py feeds it made-up and real ones.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scipy import stats

# the chance that a faithful re-run is called "differs" overall, at most (benchmarks/agree_calibration.md)
ALPHA = 0.05
# a mean accuracy below this is an arm at chance (MNIST's 10 classes: 10%): its spread is the
# spread of guessing, and lends nothing to a trained net's
AT_CHANCE = 0.2
# a step's spread is pooled over the many-seed steps whose error rate is within this factor
# of its own: seed noise grows with the error (std 0.01-0.07 pp at 0.4-0.6% error, 0.10 pp
# at 0.8%, 0.14 pp at 1.3%, over the main pipeline's steps)
KIND_FACTOR = 2
# the keys of a resolved config that say where a step trained, not what: other bytes, the
# same recipe; any other key that differs is another setting, which the noise cannot explain
MACHINE_KEYS = ("device", "kernels")


@dataclass(frozen=True)
class Spread:
    std: float  # sample std of the final accuracies, a fraction
    df: int  # its degrees of freedom
    source: str  # where it comes from, for the step's line


@dataclass
class StepRun:
    """One step's final accuracies at the revision and here, and what else is known of it."""

    pipeline: str
    step: str
    then: dict[int, float]  # seed -> final test accuracy, committed
    now: dict[int, float]  # here
    identical: bool = False  # the history's bytes are the committed ones
    rerun_here: bool = False  # trained in this checkout (else as checked out)
    settings: list[str] = field(default_factory=list)  # "epochs 15 -> 1": keys that differ
    steered: bool = False  # an accuracy-driven schedule watched the test set
    machines: tuple[dict | None, dict | None] = (None, None)  # made_on.json then, now

    @property
    def name(self) -> str:
        return f"{self.pipeline} {self.step}"

    @property
    def seeds(self) -> list[int]:
        return sorted(set(self.then) & set(self.now))

    @property
    def difference(self) -> float:
        """Mean over the common seeds of now - then, a fraction."""
        return statistics.fmean(self.now[s] - self.then[s] for s in self.seeds)


@dataclass(frozen=True)
class Judgement:
    run: StepRun
    spread: Spread
    band: float  # the largest mean difference that agrees, a fraction
    seed_range: tuple[float, float]  # where a re-run seed may fall
    outliers: dict[int, float]  # re-run seeds outside it
    agrees: bool


def setting_changes(then: Mapping[str, Any], now: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The keys of two resolved configs that differ, `MACHINE_KEYS` aside: "epochs 15 -> 1"."""
    changes = []
    for key in sorted(set(then) | set(now)):
        if not prefix and key in MACHINE_KEYS:
            continue
        before, after = then.get(key), now.get(key)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            changes += setting_changes(before, after, f"{prefix}{key}.")
        elif before != after:
            changes.append(f"{prefix}{key} {_short(before)} -> {_short(after)}")
    return changes


def _short(value: Any) -> str:
    text = "unset" if value is None else str(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _error(run: StepRun) -> float:
    return 1 - statistics.fmean(run.then.values())


def spread_of(run: StepRun, runs: list[StepRun]) -> Spread | None:
    """The committed spread `run` is judged by: pooled over the many-seed steps of its kind
    (their committed seeds only; error rate within `KIND_FACTOR` of its own, so never an arm
    at chance for a trained net), or its own seeds' where that is wider; its own alone where
    it has no kind; None for a one-seed step with no kind. A step's own 4 seeds give a std
    with 3 degrees of freedom, whose t quantile at a 5% rate over 16 tests is 14: a seed 0.5
    pp off was caught 18% of the time that way, against the pooled std's df of 20 or more
    (benchmarks/agree_calibration.md)."""
    error = _error(run)
    kind = [
        other
        for other in runs
        if len(other.then) > 1
        and (error >= 1 - AT_CHANCE or _error(other) < 1 - AT_CHANCE)
        and error / KIND_FACTOR <= _error(other) <= error * KIND_FACTOR
    ]
    own = statistics.stdev(run.then.values()) if len(run.then) > 1 else None
    if not [other for other in kind if other is not run]:
        return Spread(own, len(run.then) - 1, f"its {len(run.then)} committed seeds") if own else None
    df = sum(len(o.then) - 1 for o in kind)
    pooled = math.sqrt(sum(statistics.variance(o.then.values()) * (len(o.then) - 1) for o in kind) / df)
    errors = [_error(o) for o in kind]
    source = f"{len(kind)} steps of its kind (error {min(errors):.2%}-{max(errors):.2%})"
    if own is not None and own > pooled:  # a step noisier than its kind: its own, wider band
        return Spread(own, df, f"its own {len(run.then)} seeds, above the {100 * pooled:.2f} pp of {source}")
    return Spread(pooled, df, f"pooled over {source}")


def judge(run: StepRun, spread: Spread, tests: int, alpha: float = ALPHA) -> Judgement:
    """`run` against `spread` at the family-wise `alpha` shared by `tests` steps: half of a
    step's share for its mean, half for its seeds."""
    share = alpha / tests / 2
    n, n_then = len(run.seeds), len(run.then)
    # both means over the common seeds: independent draws of the recipe, each of variance std² / n
    band = stats.t.ppf(1 - share / 2, spread.df) * spread.std * math.sqrt(2 / n)
    seed_t = stats.t.ppf(1 - share / len(run.now) / 2, spread.df)
    center = statistics.fmean(run.then.values())
    reach = seed_t * spread.std * math.sqrt(1 + 1 / n_then)
    low, high = center - reach, center + reach
    outliers = {seed: value for seed, value in sorted(run.now.items()) if not low <= value <= high}
    return Judgement(run, spread, band, (low, high), outliers, abs(run.difference) <= band and not outliers)


@dataclass
class Verdict:
    lines: list[str]
    closing: str
    exit_code: int  # 0 agrees or byte-identical, 1 differs, 2 other settings


def verdict(runs: list[StepRun], alone: list[str], alpha: float = ALPHA) -> Verdict:
    """Every step's line, the closing line and the exit code. `alone`: the steps with a
    history on one side only ("main s3: at HEAD only"), which are other settings too."""
    judged = [r for r in runs if not r.identical and not r.settings and r.seeds]
    lines, beyond, judgements = [], [], []
    for run in runs:
        mark = " (steered by the test set)" if run.steered else ""
        where = "re-run here" if run.rerun_here else "as checked out"
        if run.identical:
            if run.rerun_here:
                lines.append(f"{run.name}{mark}: re-run here, byte-identical")
            continue
        if run.settings:
            lines.append(f"{run.name}{mark}: {where}, other settings: {', '.join(run.settings)}")
            continue
        if not run.seeds:
            lines.append(f"{run.name}: no seed in common (then {sorted(run.then)}, now {sorted(run.now)})")
            beyond.append(run.name)
            continue
        spread = spread_of(run, runs)
        if spread is None:
            lines.append(f"{run.name}{mark}: {where}, {_seeds(run)}; no seed spread to judge it by")
            beyond.append(run.name)
            continue
        judgement = judge(run, spread, len(judged), alpha)
        judgements.append(judgement)
        lines.append(f"{run.name}{mark}: {where}, {describe(judgement)}")
        if not judgement.agrees:
            beyond.append(run.name)
    untouched = [r for r in runs if r.identical and not r.rerun_here]
    if untouched:
        lines.append(f"as checked out, not re-run here, byte-identical: {_by_pipeline(untouched)}")
    lines += alone
    settings = [f"{r.name} ({', '.join(r.settings)})" for r in runs if r.settings] + alone
    if beyond:
        closing = f"differs beyond the noise: {', '.join(beyond)}"
        if settings:
            closing += "; other settings elsewhere (above)"
        return Verdict(lines, closing, 1)
    if settings:
        return Verdict(
            lines,
            f"re-run with other settings than the committed ones: {'; '.join(settings)}; "
            "the noise cannot say whether those agree: compare with a revision trained with them",
            2,
        )
    if not judgements:
        rerun = sum(r.rerun_here for r in runs)
        return Verdict(lines, "byte-identical" if rerun else "byte-identical (nothing re-run here)", 0)
    largest = max(judgements, key=lambda j: abs(j.run.difference))
    return Verdict(
        lines,
        f"agrees within the seed noise ({len(judgements)} steps judged at a {alpha:.0%} family-wise "
        f"false-alarm rate; largest step difference {100 * largest.run.difference:+.2f} pp, "
        f"{largest.run.name}, band ±{100 * largest.band:.2f} pp)",
        0,
    )


def _seeds(run: StepRun) -> str:
    return ", ".join(f"seed {s} {run.then[s]:.2%} -> {run.now[s]:.2%}" for s in run.seeds)


def describe(j: Judgement) -> str:
    """One judged step: each seed then and now, the mean difference and its band, the range a
    seed may fall in, the machine that made each side where they differ, the verdict."""
    run = j.run
    low, high = j.seed_range
    text = (
        f"{_seeds(run)}; mean {100 * run.difference:+.2f} pp (band ±{100 * j.band:.2f} pp, "
        f"std {100 * j.spread.std:.2f} pp from {j.spread.source}); seeds within {low:.2%}-{high:.2%}"
    )
    then_on, now_on = run.machines
    if then_on != now_on:
        text += f"; made on {describe_machine(then_on)} then, {describe_machine(now_on)} now"
    if j.outliers:
        far = ", ".join(f"seed {seed} at {value:.2%}" for seed, value in j.outliers.items())
        text += f"; {far} far outside the committed seeds"
    return f"{text}: {'within' if j.agrees else 'beyond'}"


def describe_machine(machine: dict | None) -> str:
    if machine is None:
        return "an unrecorded machine"
    return " ".join(str(machine[k]) for k in ("device", "kernels") if k in machine)


def _by_pipeline(runs: list[StepRun]) -> str:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.pipeline] = counts.get(run.pipeline, 0) + 1
    return ", ".join(f"{pipeline} ({n} step{'s' * (n > 1)})" for pipeline, n in counts.items())
