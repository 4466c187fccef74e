"""What a step's seeds and per-epoch history say against the target. A step's single
numbers are means over its seeds; the final test accuracy also carries its min, max, sample
std and each seed's value. Plain pandas: the reports read histories without torch."""

from __future__ import annotations

import statistics

import pandas as pd

from mnist_budget.base.errors import StageError
from mnist_budget.base.layout import Layout
from mnist_budget.config.step_config import Target

LAST_EPOCHS = 3  # min_test_accuracy_last_3: how steady the final epochs are
HISTORY_COLUMNS = ["seed", "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"]


def load_history(layout: Layout, step: str, seeds: tuple[int, ...]) -> pd.DataFrame:
    """A step's training history, checked: readable, every column a number, at least one
    epoch, and the step's seeds, no other."""
    path = layout.history(step)
    try:
        history = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        problem = "holds no complete epoch"
    except (UnicodeDecodeError, pd.errors.ParserError) as error:
        problem = f"is not a readable CSV file ({type(error).__name__})"
    else:
        missing = [column for column in HISTORY_COLUMNS if column not in history.columns]
        numbers = history.reindex(columns=HISTORY_COLUMNS).apply(pd.to_numeric, errors="coerce")
        found = sorted(set(numbers["seed"].dropna().astype(int)))
        if missing:
            problem = f"lacks the columns {', '.join(missing)}"
        elif history.empty:
            problem = "holds no complete epoch"
        elif numbers.isna().any().any():
            problem = "holds a missing value or one that is not a number"
        elif found != sorted(seeds):
            problem = f"holds seeds {found}, but the step trains seeds {sorted(seeds)}"
        else:
            return history
    raise StageError(f"{path}: {problem}; retrain its step: {layout.repro_command('train', step)}")


def mean_curve(history: pd.DataFrame) -> pd.DataFrame:
    """Each epoch's values averaged over the seeds."""
    return history.drop(columns="seed").groupby("epoch", as_index=False).mean()


def over_seeds(values: dict[int, float]) -> dict:
    """One number per seed -> mean, min, max, sample std and each seed's value."""
    numbers = list(values.values())
    return {
        "mean": round(statistics.fmean(numbers), 6),
        "min": min(numbers),
        "max": max(numbers),
        "std": round(statistics.stdev(numbers), 6) if len(numbers) > 1 else 0.0,
        "per_seed": {str(seed): value for seed, value in values.items()},
    }


def per_seed(spread: dict) -> dict[int, float]:
    """`over_seeds`'s per-seed values, keyed by seed again (JSON keys are strings)."""
    return {int(seed): value for seed, value in spread["per_seed"].items()}


def history_metrics(history: pd.DataFrame, target: Target) -> dict:
    """What the per-epoch test accuracies, averaged over the seeds, say; `best_*` is
    selected on the test set."""
    history = mean_curve(history)
    accuracy = history["test_accuracy"]
    reached = history.loc[accuracy >= target.test_accuracy, "epoch"]
    first = int(reached.iloc[0]) if len(reached) else None
    return {
        "best_test_accuracy": round(float(accuracy.max()), 6),
        "best_epoch": int(history.loc[accuracy.idxmax(), "epoch"]),
        "train_accuracy": round(float(history["train_accuracy"].iloc[-1]), 6),
        "epochs": len(history),
        "first_epoch_at_target": first,
        "held_target_after_first": bool(
            first is not None and (accuracy[history["epoch"] >= first] >= target.test_accuracy).all()
        ),
        f"min_test_accuracy_last_{LAST_EPOCHS}": round(float(accuracy.iloc[-LAST_EPOCHS:].min()), 6),
    }


def meets(metrics: dict, target: Target) -> dict:
    """The verdicts: `accuracy` on the mean over seeds, `every_seed` on the lowest seed."""
    checks = {
        "accuracy": metrics["test_accuracy"]["mean"] >= target.test_accuracy,
        "every_seed": metrics["test_accuracy"]["min"] >= target.test_accuracy,
        "params": metrics["params_total"] <= target.max_params,
        "epochs": metrics["epochs"] <= target.max_epochs,
    }
    return {**checks, "all": all(checks.values())}


def final_accuracies(history: pd.DataFrame) -> dict[int, float]:
    """Seed -> test accuracy at the last epoch that seed trained, in seed order (the pool
    finishes seeds out of order: a history listed seeds 4, 3, 1, 2, ...)."""
    last = history.sort_values(["seed", "epoch"]).groupby("seed").tail(1)
    return {int(seed): float(accuracy) for seed, accuracy in zip(last["seed"], last["test_accuracy"])}
