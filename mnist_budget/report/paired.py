"""Paired comparisons over seeds. Two recipes trained on the same seed share its initial
weights, data order and augmentation draws, so each seed both trained gives one
difference; the mean of those differences and its Student's t interval say how large an
effect is and whether that many seeds resolve it. Plain arithmetic: no torch."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats

CONFIDENCE = 0.95  # of every interval the reports give


@dataclass(frozen=True)
class Effect:
    """`after` minus `before` on final test accuracy (fractions), over the common seeds."""

    seeds: tuple[int, ...]
    mean: float
    low: float | None  # the interval's ends; None under two common seeds
    high: float | None

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def half_width(self) -> float | None:
        return None if self.low is None else (self.high - self.low) / 2

    @property
    def sign(self) -> int:
        """+1 or -1 when the interval excludes zero, 0 when it holds zero or is unknown."""
        if self.low is None or self.low <= 0 <= self.high:
            return 0
        return 1 if self.low > 0 else -1


def paired_effect(after: dict[int, float], before: dict[int, float]) -> Effect:
    """Seed -> accuracy on each side. With no seed in common, the difference of the means
    and no interval."""
    seeds = tuple(seed for seed in after if seed in before)
    differences = [after[seed] - before[seed] for seed in seeds]
    if not seeds:
        return Effect((), statistics.fmean(after.values()) - statistics.fmean(before.values()), None, None)
    mean = statistics.fmean(differences)
    if len(seeds) < 2:
        return Effect(seeds, mean, None, None)
    t = stats.t.ppf((1 + CONFIDENCE) / 2, len(seeds) - 1)
    half_width = t * statistics.stdev(differences) / math.sqrt(len(seeds))
    return Effect(seeds, mean, mean - half_width, mean + half_width)


def verdict(effect: Effect, removes: bool) -> str:
    """What an idea does, from the effect of taking it out (`removes`) or putting it in:
    `helps`, `hurts`, or `within noise at n seeds` when the interval holds zero."""
    if effect.low is None:
        return f"not resolved: {effect.n} seed{'s' if effect.n != 1 else ''} in common"
    if effect.sign == 0:
        return f"within noise at {effect.n} seeds"
    return "helps" if (effect.sign < 0) == removes else "hurts"


def points(value: float) -> str:
    """A difference of fractions in percentage points, signed: `-0.52`."""
    return f"{value * 100:+.2f}"


def interval(mean: float, low: float | None, high: float | None) -> str:
    """`-0.52 pp [-0.61, -0.43]`, or without an interval the mean alone."""
    if low is None:
        return f"{points(mean)} pp"
    return f"{points(mean)} pp [{points(low)}, {points(high)}]"


def interval_text(effect: Effect) -> str:
    return interval(effect.mean, effect.low, effect.high)
