"""The claim checker: each write-up's claims (`config.claims_config`) against what the project
trained, read from the trainings' histories and the sizes `resolve` counted; no torch.

Each claim is read on every seed the step trained, the way the write-up read it, and gets one
verdict: "matches" when the claim lies within the seeds' range or within the seed noise of it,
"beats" or "falls short" only when every seed lies beyond the noise on the same side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from mnist_budget.config.claims_config import COUNTS, STATEMENTS, UNCHECKED, Claim, System
from mnist_budget.config.params import ParamsError

PARAMS_TOLERANCE = 0.02  # a reproduced architecture matches within 2% of the claimed size
# 0.1 pp: about the seed-to-seed spread of one recipe (the main pipeline's final step: std
# 0.045 pp, range 0.09 pp over seeds 1-3)
ACCURACY_TOLERANCE = 0.001
LAST_EPOCHS = 3  # "still improving": the best test epoch lies in the last 3


@dataclass(frozen=True)
class Run:
    """One trained step as the comparison reads it: per-seed curves and its size."""

    history: pd.DataFrame  # seed, epoch, train_accuracy, test_accuracy, ...
    params: dict[str, int]  # params_trainable, params_non_trainable, params_total

    def per_seed(self, column: str) -> dict[int, pd.Series]:
        """Each seed's curve of one column, indexed by epoch."""
        return {int(seed): rows.set_index("epoch")[column] for seed, rows in self.history.groupby("seed")}

    def read(self, column: str, at: str | int) -> list[float]:
        """Each seed's value of a column read at the final epoch, the best epoch or epoch N."""
        if at == "final":
            return [float(curve.iloc[-1]) for curve in self.per_seed(column).values()]
        if at == "best":
            return [float(curve.max()) for curve in self.per_seed(column).values()]
        return [float(curve[at]) for curve in self.per_seed(column).values()]

    def gap(self) -> float:
        """Best train accuracy minus best test accuracy, mean over seeds: how the write-ups
        judged over-fitting."""
        train, test = self.read("train_accuracy", "best"), self.read("test_accuracy", "best")
        return sum(a - b for a, b in zip(train, test, strict=True)) / len(train)


# --- verdicts ------------------------------------------------------------------------------


def seeds_text(values: list[float]) -> str:
    """`99.31%` for one seed, `99.31% (99.28%-99.35%)` for several: the mean and range."""
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.2%}"
    return f"{mean:.2%} ({min(values):.2%}-{max(values):.2%})"


def compare_accuracy(
    claimed: float, values: list[float], higher: str = "✅ beats", lower: str = "❌ falls short"
) -> str:
    """Matches when the claim lies within the seeds' range widened by the noise; otherwise
    every seed lies on one side of it, and the verdict says which."""
    mean = sum(values) / len(values)
    gap = f"{(mean - claimed) * 100:+.2f} pp"
    if min(values) - ACCURACY_TOLERANCE <= claimed <= max(values) + ACCURACY_TOLERANCE:
        return f"✅ matches ({gap})"
    return f"{higher} ({gap})" if min(values) > claimed else f"{lower} ({gap})"


def _first_epoch(curve: pd.Series, accuracy: float) -> int | None:
    reached = curve[curve >= accuracy]
    return int(reached.index[0]) if len(reached) else None


def _epochs_text(epochs: list[int | None]) -> str:
    return ", ".join("never" if e is None else str(e) for e in epochs)


def check_reached(claim: Claim, run: Run) -> tuple[str, str]:
    """(reproduced, verdict): the first epoch each seed reached the accuracy."""
    firsts = [_first_epoch(curve, claim.value) for curve in run.per_seed("test_accuracy").values()]
    hits = [e for e in firsts if e is not None]
    text = f"epoch {_epochs_text(firsts)}" if hits else "never reached"
    if claim.at is None:  # "crossed the target": at some epoch
        if len(hits) == len(firsts):
            return text, "✅ matches: every seed reaches it"
        return text, f"❌ falls short: {len(firsts) - len(hits)} of {len(firsts)} seeds never reach it"
    if len(hits) == len(firsts) and max(hits) < claim.at:
        return text, "✅ beats: every seed reaches it earlier"
    if all(e is None or e > claim.at for e in firsts):
        return text, "❌ falls short: every seed reaches it later or never"
    return text, "✅ matches: within the seeds' epochs"


def check_held(claim: Claim, run: Run) -> tuple[str, str]:
    """(reproduced, verdict): each seed's lowest test accuracy after the epoch."""
    lows = [float(curve[curve.index > claim.at].min()) for curve in run.per_seed("test_accuracy").values()]
    holds = sum(low >= claim.value - ACCURACY_TOLERANCE for low in lows)
    text = f"lowest after epoch {claim.at}: {seeds_text(lows)}"
    if holds == len(lows):
        return text, "✅ matches: held on every seed"
    if holds == 0:
        return text, "❌ falls short: held on no seed"
    return text, f"✅ matches on {holds} of {len(lows)} seeds"


def _gap_text(gap: float) -> str:
    return f"best train - best test: {gap * 100:+.2f} pp"


def _still_improving(run: Run, previous: Run | None, target: float) -> tuple[bool, str]:
    curve = run.history.groupby("epoch")["test_accuracy"].mean()
    best = int(curve.idxmax())
    return best > len(curve) - LAST_EPOCHS, f"best test epoch (mean over seeds): {best} of {len(curve)}"


def _drops_after_target(run: Run, previous: Run | None, target: float) -> tuple[bool, str]:
    drops = []
    for curve in run.per_seed("test_accuracy").values():
        first = _first_epoch(curve, target)
        drops.append(first is not None and bool((curve[curve.index > first] < target).any()))
    return all(drops), f"drops below {target:.2%} after reaching it on {sum(drops)} of {len(drops)} seeds"


def _same_size(run: Run, previous: Run | None, target: float) -> tuple[bool, str]:
    if previous is None:
        raise ParamsError("`same size as the previous step` on a system's first step")
    now, before = run.params["params_total"], previous.params["params_total"]
    return now == before, f"{now:,} against {before:,}"


CHECKS: dict[str, Callable[..., tuple[bool, str]]] = {
    # over-fitting as the write-ups judge it: best train accuracy above best test accuracy
    "overfitting": lambda run, previous, target: (run.gap() > ACCURACY_TOLERANCE, _gap_text(run.gap())),
    "not overfitting": lambda run, previous, target: (run.gap() <= ACCURACY_TOLERANCE, _gap_text(run.gap())),
    "less overfitting": lambda run, previous, target: (
        run.gap() < previous.gap(),
        f"{_gap_text(run.gap())}, {previous.gap() * 100:+.2f} pp the step before",
    ),
    "still improving": _still_improving,
    "drops after the target": _drops_after_target,
    "same size as the previous step": _same_size,
}


assert set(CHECKS) == set(STATEMENTS), "a check for each statement the claims may make"


def check_statement(claim: Claim, run: Run, previous: Run | None, target: float) -> tuple[str, str]:
    agrees, text = CHECKS[claim.value](run, previous, target)
    return text, "✅ agrees" if agrees else "❌ disagrees"


# --- the comparison table ------------------------------------------------------------------


def _describe(claim: Claim, counts: str, target: float) -> tuple[str, str]:
    """(what is claimed, the claimed value) as the table shows them."""
    if claim.kind == "epochs":
        return "epochs", str(claim.value)
    if claim.kind == "params":
        return f"parameters ({counts})", f"{claim.value:,}"
    if claim.kind == "trainable_params":
        return "parameters (trainable)", f"{claim.value:,}"
    if claim.kind in ("test_accuracy", "train_accuracy"):
        return f"{claim.kind.split('_')[0]} accuracy at {claim.read_at}", f"{claim.value:.2%}"
    if claim.kind == "reached":
        return (
            f"first reached {claim.value:.2%}",
            "at some epoch" if claim.at is None else f"epoch {claim.at}",
        )
    if claim.kind == "held":
        return f"held after epoch {claim.at}", f"≥ {claim.value:.2%}"
    return "says", claim.value if claim.value != "drops after the target" else f"drops after {target:.2%}"


def _params_verdict(claimed: int, counted: int) -> str:
    off = (counted - claimed) / claimed
    word = "✅ matches" if abs(off) <= PARAMS_TOLERANCE else "❌ size off"
    return f"{word} ({off:+.1%})"


def check(
    claim: Claim, counts: str, size: dict[str, int], run: Run | None, previous: Run | None, target: float
) -> tuple[str, str]:
    """(reproduced, verdict) of one claim; `run` is None for a step not trained here."""
    if claim.kind == UNCHECKED:
        return "-", "cannot check: no check for this statement"
    if claim.kind in ("params", "trainable_params"):
        counted = size[COUNTS[counts] if claim.kind == "params" else "params_trainable"]
        return f"{counted:,}", _params_verdict(claim.value, counted)
    if run is None:
        return "GPU only", "config only: needs a GPU, not trained here"
    if claim.kind == "epochs":
        epochs = int(run.history["epoch"].max())
        return str(epochs), "✅ matches" if epochs == claim.value else "❌ differs"
    if claim.kind == "test_accuracy":
        values = run.read("test_accuracy", claim.at)
        return seeds_text(values), compare_accuracy(claim.value, values)
    if claim.kind == "train_accuracy":
        values = run.read("train_accuracy", claim.at)
        return seeds_text(values), compare_accuracy(claim.value, values, "▲ higher here", "▼ lower here")
    if claim.kind == "reached":
        return check_reached(claim, run)
    if claim.kind == "held":
        return check_held(claim, run)
    return check_statement(claim, run, previous, target)


def comparison_rows(
    systems: dict[str, System], runs: dict[str, Run], sizes: dict[str, dict[str, int]], target: float
) -> list[dict[str, str]]:
    """One row per claim: what the write-up claimed, the run read the same way (every seed),
    and a verdict. `sizes`: every step's and gpu step's parameter counts, as `resolve` wrote them."""
    rows = []
    for system in systems.values():
        for claim in system.claims:
            run = runs.get(claim.step)
            index = system.steps.index(claim.step)
            previous = runs.get(system.steps[index - 1]) if index else None
            what, claimed = _describe(claim, system.counts, target)
            reproduced, verdict = check(claim, system.counts, sizes[claim.step], run, previous, target)
            seeds = sorted(run.history["seed"].unique()) if run else []
            rows.append(
                {
                    "system": system.name,
                    "step": f"`{claim.step}`",
                    "claim": what,
                    "claimed": claimed,
                    "reproduced": reproduced,
                    "seeds": ", ".join(map(str, seeds)) or "-",
                    "verdict": verdict,
                }
            )
    return rows


def accuracy_claims(systems: dict[str, System], runs: dict[str, Run]) -> list[tuple[str, float, list[float]]]:
    """(label, claimed, each seed read the same way) for every test accuracy claim of a trained step."""
    return [
        (f"{claim.step} ({claim.read_at})", claim.value, runs[claim.step].read("test_accuracy", claim.at))
        for system in systems.values()
        for claim in system.claims
        if claim.kind == "test_accuracy" and claim.step in runs
    ]


def comparison_table(rows: list[dict[str, str]]) -> str:
    return pd.DataFrame(rows).to_markdown(index=False)


# systems.csv: one row per system (`system_rows`); the main report draws the public ones
SYSTEM_COLUMNS = [
    "system", "step", "source", "counts", "params_claimed", "params_counted", "params_total", "epochs",
    "claimed", "claimed_at", "claimed_runs", "seeds",
    "final_mean", "final_min", "final_max", "final_std", "best_mean", "verdict", "verdict_final",
]  # fmt: skip
# The order in which a system's accuracy claims speak for it: the number people quote first.
HEADLINE_READS = ("best", "final")


def headline_claim(system: System) -> Claim | None:
    """The test accuracy claim of a system's last step that people quote: its best epoch's,
    else its final epoch's, else the first it makes; None without one."""
    last = system.steps[-1]
    claims = [c for c in system.claims if c.step == last and c.kind == "test_accuracy"]
    ranked = sorted(
        claims, key=lambda c: HEADLINE_READS.index(c.at) if c.at in HEADLINE_READS else len(HEADLINE_READS)
    )
    return ranked[0] if ranked else None


def _stats(values: list[float]) -> dict[str, float]:
    series = pd.Series(values)
    return {"mean": series.mean(), "min": series.min(), "max": series.max(), "std": series.std()}


def system_rows(
    systems: dict[str, System], runs: dict[str, Run], sizes: dict[str, dict[str, int]]
) -> pd.DataFrame:
    """One row per system: its last step (the net it ends on), the parameters claimed and
    counted the same way, its headline accuracy claim, and the re-run over every seed: the
    final epoch's mean, min, max and std, the best epoch's mean (chosen on the test set, for
    comparison with a best-epoch claim), the claim's verdict read where the system read it,
    and its verdict at the final epoch. A step not trained here has no re-run."""
    rows = []
    for system in systems.values():
        step, claim = system.steps[-1], headline_claim(system)
        params = next((c.value for c in system.claims if c.step == step and c.kind == "params"), None)
        run = runs.get(step)
        row = {
            "system": system.name,
            "step": step,
            "source": system.source,
            "counts": system.counts,
            "params_claimed": params,
            "params_counted": sizes[step][COUNTS[system.counts]],
            "params_total": sizes[step]["params_total"],  # as the budget counts
            "epochs": system.epochs[step],
            "claimed": claim.value if claim else None,
            "claimed_at": claim.at if claim else None,
            "claimed_runs": claim.runs if claim else None,
            "seeds": len(run.per_seed("test_accuracy")) if run else 0,
        }
        if run is not None:
            final, best = run.read("test_accuracy", "final"), run.read("test_accuracy", "best")
            row |= {f"final_{key}": value for key, value in _stats(final).items()}
            row["best_mean"] = _stats(best)["mean"]
            if claim:
                row["verdict"] = compare_accuracy(claim.value, run.read("test_accuracy", claim.at))
                row["verdict_final"] = compare_accuracy(claim.value, final)
        rows.append(row)
    return pd.DataFrame(rows, columns=SYSTEM_COLUMNS)
