"""The search's record, reports/search/runs.csv: one row per candidate and seed, with its
validation accuracy (and test accuracy for finalists only), and its ranking on validation."""

from __future__ import annotations

import pandas as pd

from mnist_budget.layout import Layout

SEARCH = Layout.of("search")
STEP = "candidate"  # the search pipeline's one step: each experiment sets it
RUNS = SEARCH.reports / "runs.csv"
RUN_COLUMNS = ["budget", "candidate", "rung", "experiment", "seed", "params", "val_accuracy", "test_accuracy"]


def read_runs() -> pd.DataFrame:
    return pd.read_csv(RUNS) if RUNS.is_file() else pd.DataFrame(columns=RUN_COLUMNS)


def ranked(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per candidate: validation (and test, where read) mean and min over its
    seeds; per budget, candidates with more seeds first, then by validation mean."""
    summary = (
        runs.groupby(["budget", "candidate"])
        .agg(
            params=("params", "first"),
            seeds=("seed", lambda s: ", ".join(map(str, sorted(s)))),
            runs=("seed", "count"),
            val_mean=("val_accuracy", "mean"),
            val_min=("val_accuracy", "min"),
            test_mean=("test_accuracy", "mean"),
            test_min=("test_accuracy", "min"),
            test_count=("test_accuracy", "count"),
        )
        .reset_index()
    )
    return summary.sort_values(["budget", "runs", "val_mean"], ascending=[True, False, False], kind="stable")


def finalists(runs: pd.DataFrame, keep: int) -> list[str]:
    """Each budget's best `keep` candidates by rung-1 (seed 1) validation accuracy."""
    first = runs[runs["rung"] == 1].sort_values("val_accuracy", ascending=False, kind="stable")
    return [name for _, group in first.groupby("budget") for name in group["candidate"].head(keep)]
