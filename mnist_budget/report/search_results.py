"""The search's record, reports/search/runs.csv: one row per candidate and seed, with its
validation accuracy (and test accuracy for finalists only), and its ranking on validation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mnist_budget.base.layout import TEACHER, Layout

SEARCH = Layout.of("search")
STEP = "candidate"  # the search pipeline's one step: each experiment sets it
RUNS = SEARCH.reports / "runs.csv"
TABLE = SEARCH.reports / "table.md"
# The searches before, each kept as it ran in its folder (first/, second/, third/: its
# candidates.yaml, params.yaml, runs.csv, table.md); the last of them chose the main recipes
# until the current search has decided.
PREVIOUS_SEARCH = SEARCH.reports / "third"
# Rung 1's test accuracies, committed as each experiment finishes (a checkout's `dvc exp`
# refs do not outlive it) and kept out of runs.csv and the table until a finalist is chosen.
RUNG1_TESTS = SEARCH.reports / "rung1_tests.csv"
SEALED_COLUMNS = ["experiment", "seed", "test_accuracy"]
RUN_COLUMNS = [
    "budget",
    "candidate",
    "rung",
    "experiment",
    "seed",
    "params",
    "train_accuracy",  # blank in the searches before it was kept
    "val_accuracy",
    "test_accuracy",
]


@dataclass(frozen=True)
class SearchRecord:
    runs: pd.DataFrame
    plans: Path  # the folder of its params.yaml (recipe) and candidates.yaml
    table: Path

    def incumbents(self) -> dict[str, str]:
        """Budget -> its incumbent (the recipe when the search began), from candidates.yaml."""
        return read_plan(self.plans).get("incumbents") or {}

    def taught(self) -> set[str]:
        """Its budgets of nets taught by a teacher (`taught_budgets`)."""
        return taught_budgets(read_plan(self.plans))


def read_plan(plans: Path) -> dict[str, Any]:
    """The candidates.yaml of a search whose plans are in the folder `plans`, as written."""
    return yaml.safe_load((plans / "candidates.yaml").read_text())


def taught_budgets(plan: dict[str, Any]) -> set[str]:
    """The budgets of a candidates.yaml (`plan`) whose every candidate learns from a teacher
    (`distill`): another exercise than the budget's, reported apart, never adopted into the
    progression."""
    return {
        budget
        for budget, section in plan["budgets"].items()
        if section["candidates"] and all("distill" in (c or {}) for c in section["candidates"].values())
    }


def teacher_line(layout: Layout = SEARCH) -> str:
    """What the search's teacher is and scored (resolved.json's size, its history's last
    epoch), or "" before it has trained: candidates that distil learn from it."""
    history = layout.history(TEACHER)
    if not (history.is_file() and layout.resolved.is_file()):
        return ""
    teacher = json.loads(layout.resolved.read_text()).get(TEACHER)
    if teacher is None:
        return ""
    last = pd.read_csv(history).iloc[-1]
    val = f"{last['val_accuracy']:.2%} validation, " if "val_accuracy" in last else ""
    return (
        f"The teacher (stage `{TEACHER}`, outside every budget), which candidates with `distill` learn "
        f"from: {teacher['params_total']:,} params, {teacher['epochs']} epochs, seed {int(last['seed'])}: "
        f"{val}{last['test_accuracy']:.2%} test at its last epoch. A net trained with it is another "
        "exercise: its budget says so."
    )


def read_runs(path: Path = RUNS) -> pd.DataFrame:
    return (
        pd.read_csv(path).reindex(columns=RUN_COLUMNS)
        if path.is_file()
        else pd.DataFrame(columns=RUN_COLUMNS)
    )


def read_rung1_tests() -> pd.DataFrame:
    return pd.read_csv(RUNG1_TESTS) if RUNG1_TESTS.is_file() else pd.DataFrame(columns=SEALED_COLUMNS)


def decided(runs: pd.DataFrame, plans: Path) -> bool:
    """Whether a search has chosen: every candidate of its candidates.yaml (in `plans`) has
    trained on rung 1, and every finalist on the finalists' seeds too."""
    plan = read_plan(plans)
    names = {name for budget in plan["budgets"].values() for name in budget["candidates"]}
    if not names <= set(runs.loc[runs["rung"] == 1, "candidate"]):
        return False
    chosen = finalists(runs, plan["keep"], plan.get("incumbents"), references_of(plan))
    return set(chosen) <= set(runs.loc[runs["rung"] == 2, "candidate"])


def deciding_search(reports: Path = SEARCH.reports) -> SearchRecord:
    """The search the main recipes come from, its record in `reports`: the current one once
    it has decided, else the one before it (`third/`, while the fourth is under way)."""
    runs = read_runs(reports / RUNS.name)
    previous = reports / PREVIOUS_SEARCH.name
    plans = SEARCH.params.parent
    if not (previous / RUNS.name).is_file() or decided(runs, plans):
        return SearchRecord(runs, plans, reports / TABLE.name)
    return SearchRecord(read_runs(previous / RUNS.name), previous, previous / TABLE.name)


def ranked(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: validation (and test, where read) mean, std and min over its
    seeds, and `versus_best` (see `call_ties`); per budget, candidates with more seeds
    first, then by validation mean."""
    summary = (
        runs.groupby(["budget", "candidate"])
        .agg(
            params=("params", "first"),
            seeds=("seed", lambda s: ", ".join(map(str, sorted(s)))),
            runs=("seed", "count"),
            train_mean=("train_accuracy", "mean"),
            val_mean=("val_accuracy", "mean"),
            val_std=("val_accuracy", "std"),
            val_min=("val_accuracy", "min"),
            test_mean=("test_accuracy", "mean"),
            test_min=("test_accuracy", "min"),
            test_count=("test_accuracy", "count"),
        )
        .reset_index()
    )
    summary = summary.sort_values(
        ["budget", "runs", "val_mean"], ascending=[True, False, False], kind="stable"
    )
    if summary.empty:
        return summary.assign(versus_best="", margin=np.nan)
    return pd.concat([call_ties(group) for _, group in summary.groupby("budget", sort=False)])


def pooled_std(summary: pd.DataFrame) -> float:
    """The seed-to-seed std of validation accuracy, pooled over a budget's candidates with
    2 or more seeds (each weighted by its n - 1): one candidate's 2 seeds say little about
    its own spread, 15 candidates' together do."""
    spread = summary[summary["runs"] >= 2]
    dof = (spread["runs"] - 1).sum()
    return (
        float(np.sqrt(((spread["runs"] - 1) * spread["val_std"] ** 2).sum() / dof)) if dof else float("nan")
    )


def call_ties(summary: pd.DataFrame) -> pd.DataFrame:
    """`versus_best` for one budget's candidates, ranked best first: "best", "tied" when its
    validation mean is within two standard errors of the best's (the pooled seed std, for
    n seeds each), else "behind"; "" when the spread is unknown (every candidate 1 seed)."""
    sd, best = pooled_std(summary), summary.iloc[0]
    margin = 2 * sd * np.sqrt(1 / summary["runs"] + 1 / best["runs"])
    behind = best["val_mean"] - summary["val_mean"]
    calls = np.where(behind <= margin, "tied", "behind") if np.isfinite(sd) else ""
    calls = np.where(summary["candidate"] == best["candidate"], "best", calls)
    return summary.assign(versus_best=calls, margin=margin)


def finalists(
    runs: pd.DataFrame,
    keep: int,
    incumbents: dict[str, str] | None = None,
    references: dict[str, str] | None = None,
) -> list[str]:
    """Each budget's best `keep` candidates by their mean rung-1 validation accuracy, then
    its incumbent if it is not among them. A candidate below its budget's reference
    (`references`, see `references_of`) on the rung-1 seeds both trained goes no further:
    it cannot show a gain over the net it changes, and its finalist seeds would cost a
    taught candidate twice a plain one's."""
    first = runs[runs["rung"] == 1]
    found = effects(first, references or {})
    behind = set(found.loc[~(found["effect"] >= 0), "candidate"])  # over the seeds both trained
    means = first.groupby(["budget", "candidate"], sort=False)["val_accuracy"].mean()
    means = means.reset_index().sort_values("val_accuracy", ascending=False, kind="stable")
    chosen = []
    for budget, group in means.groupby("budget"):
        best = [name for name in group["candidate"].head(keep) if name not in behind]
        incumbent = (incumbents or {}).get(budget)
        chosen += best + ([incumbent] if incumbent in set(group["candidate"]) - set(best) else [])
    return chosen


def references_of(plan: dict[str, Any]) -> dict[str, str]:
    """Budget -> the candidate its candidates each change one idea of, in a candidates.yaml
    (`plan`): the budget's `reference` (a budget of its own, as a teacher's, names another
    budget's net), else its incumbent."""
    incumbents = plan.get("incumbents") or {}
    found = {
        budget: section.get("reference") or incumbents.get(budget)
        for budget, section in plan["budgets"].items()
    }
    return {budget: name for budget, name in found.items() if name}


def effects(runs: pd.DataFrame, references: dict[str, str]) -> pd.DataFrame:
    """Each candidate against its budget's reference (`references`: budget -> the candidate it
    changes one idea of, of any budget) on validation, over the seeds both trained: the
    difference of means, and two standard errors of it from the seed std pooled over every
    candidate of the search (a rung-1 pair's own 2 seeds say too little of its spread).
    `call` is "helps" or "hurts" beyond that interval, else "within noise"."""
    columns = ["budget", "candidate", "reference", "seeds", "effect", "interval", "call"]
    sd = pooled_std(ranked(runs))
    val = runs.pivot_table(index="seed", columns="candidate", values="val_accuracy")
    rows = []
    for (budget, name), _ in runs.groupby(["budget", "candidate"], sort=False):
        reference = references.get(budget)
        if reference is None or reference == name or reference not in val:
            continue
        shared = val[[reference, name]].dropna()
        n = len(shared)
        effect = float((shared[name] - shared[reference]).mean()) if n else float("nan")
        interval = 2 * sd * np.sqrt(2 / n) if n else float("nan")
        call = "helps" if effect > interval else "hurts" if effect < -interval else "within noise"
        rows.append([budget, name, reference, n, effect, interval, call])
    return pd.DataFrame(rows, columns=columns)


@dataclass(frozen=True)
class Paired:
    """A finalist against its budget's best on validation, seed by seed over the seeds both
    trained: the best's mean lead, and the noise it is read against (two standard errors of
    the per-seed differences: the seed's own luck, which both share, cancels in a pair)."""

    lead: float  # the best's validation mean minus this finalist's, over the shared seeds
    noise: float  # 2 * std(per-seed differences) / sqrt(n); nan with fewer than 2 shared seeds
    seeds: int

    @property
    def tied(self) -> bool:
        """Within the noise of the best; with no measure of the noise, only when level."""
        return self.lead <= self.noise if np.isfinite(self.noise) else self.lead <= 0

    def text(self) -> str:
        noise = f" ± {self.noise * 100:.2f}" if np.isfinite(self.noise) else ""
        return f"{-self.lead * 100:+.2f}{noise} pp over {self.seeds} seed{'s' if self.seeds != 1 else ''}"


def paired(runs: pd.DataFrame, best: str, name: str) -> Paired:
    """`name` against `best` on validation, paired over the seeds both trained."""
    val = runs.pivot_table(index="seed", columns="candidate", values="val_accuracy")[[best, name]].dropna()
    differences = val[best] - val[name]
    n = len(differences)
    noise = 2 * differences.std(ddof=1) / np.sqrt(n) if n >= 2 else float("nan")
    return Paired(float(differences.mean()) if n else float("nan"), float(noise), n)


def against_reference(runs: pd.DataFrame, reference: str, name: str) -> str:
    """`name`'s validation difference from `reference`, paired over the seeds both trained, and
    whether it is beyond the noise of the pair."""
    pair = paired(runs, reference, name)
    call = (
        "ahead beyond the noise" if -pair.lead > pair.noise
        else "behind beyond the noise" if pair.lead > pair.noise
        else "within the noise"
    )  # fmt: skip
    return f"{pair.text()}, {call}"


def adopted(runs: pd.DataFrame, incumbents: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Per budget whose finalists are scored, the recipe to train and why, on validation
    alone: among the finalists tied with the best on validation (paired over their seeds),
    the incumbent (today's recipe) if it is one of them, else the one with the fewest
    parameters (the better validation mean between equals). A lead within the noise is
    luck, so it neither displaces the incumbent nor buys parameters; the test accuracy is
    read after the choice, to report it, never to make it."""
    chosen = {}
    summary = ranked(runs)
    for budget, group in summary[summary["test_count"] > 0].groupby("budget", sort=False):
        best = group.iloc[0]["candidate"]
        versus = {name: paired(runs, best, name) for name in group["candidate"] if name != best}
        tied = group[[name == best or versus[name].tied for name in group["candidate"]]]
        incumbent = incumbents.get(budget)
        if incumbent in set(tied["candidate"]):
            chosen[budget] = (
                incumbent,
                (
                    "the incumbent, and the best finalist on validation"
                    if incumbent == best
                    else f"the incumbent, tied on validation with the best finalist `{best}` ({versus[incumbent].text()})"
                ),
            )
            continue
        pick = tied.sort_values("params", kind="stable").iloc[0]
        rivals = len(tied) - 1
        if pick["candidate"] != best:
            why = (
                f"the fewest parameters ({pick['params']:,}) of the {rivals + 1} finalists tied on "
                f"validation with the best, `{best}` ({versus[pick['candidate']].text()})"
            )
        else:
            why = "the best finalist on validation" + (
                "; no finalist tied with it has fewer parameters" if rivals else ""
            )
        if incumbent in versus:
            why += f"; the incumbent `{incumbent}` is behind the best ({versus[incumbent].text()})"
        chosen[budget] = pick["candidate"], why
    return chosen


def adoption_state(runs: pd.DataFrame, group: pd.DataFrame) -> str:
    """The word before a budget's choice: "Adopted" once every finalist of the budget
    (`group`) has trained on the finalist seeds; until then the choice stands on rung 1's
    seeds only, and says so."""
    scored = set(group.loc[group["test_count"] > 0, "candidate"])
    complete = scored & set(runs.loc[runs["rung"] == 2, "candidate"])
    if complete == scored:
        return "Adopted"
    return f"Leading while rung 2 runs ({len(complete)} of {len(scored)} finalists on every seed)"
