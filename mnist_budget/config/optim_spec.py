"""Optimizers and learning-rate schedules as plain data: the one list of each, with their
keys, defaults and checks, no torch. Validation and the README's tables read `OPTIMIZERS`
and `SCHEDULES`; `optim` makes each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mnist_budget.config.params import REQUIRED, Key, require

LR = Key(float, REQUIRED, "learning rate")
# What an accuracy-driven schedule watches. `test` lets the test set steer the training, so
# the test accuracy no longer measures it: allowed only when asked for, and its results
# are marked "steered by the test set" (reports, `agree`).
WATCHED_SETS = ("validation", "test")
WATCH = Key(str, "validation", "the accuracy it watches; `test`: marked steered by the test set")

# Optimizer name -> its keys besides `name`.
OPTIMIZERS: dict[str, dict[str, Key]] = {
    "sgd": {
        "lr": LR,
        "momentum": Key(float, 0.0),
        "nesterov": Key(bool, False),
        "weight_decay": Key(float, 0.0),
    },
    "adam": {"lr": LR, "weight_decay": Key(float, 0.0)},
    "adamw": {"lr": LR, "weight_decay": Key(float, 0.01)},
}


@dataclass(frozen=True)
class ScheduleKind:
    doc: str
    keys: dict[str, Key]  # besides `name`
    steps_on: str  # "batch", "epoch" or "accuracy" (the epoch's accuracy on the set it `watch`es); "never"


SCHEDULES: dict[str, ScheduleKind] = {
    "none": ScheduleKind("constant learning rate", {}, "never"),
    "step": ScheduleKind(
        "StepLR, per epoch", {"step_size": Key(int, REQUIRED), "gamma": Key(float, 0.1)}, "epoch"
    ),
    "multistep": ScheduleKind(
        "MultiStepLR, per epoch", {"milestones": Key(list, REQUIRED), "gamma": Key(float, 0.1)}, "epoch"
    ),
    "onecycle": ScheduleKind(
        "OneCycleLR, stepped per batch; momentum not cycled (the optimizer's is what it trains with)",
        {
            "max_lr": Key(float, REQUIRED),
            "pct_start": Key(float, 0.3),
            "div_factor": Key(float, 25.0),
            "final_div_factor": Key(float, 1e4),
            "anneal": Key(str, "cos"),
        },
        "batch",
    ),
    "cosine": ScheduleKind("cosine annealing over all batches", {"min_lr": Key(float, 0.0)}, "batch"),
    "piecewise": ScheduleKind(
        "linear between (epoch, LR) points, stepped per batch; the optimizer's `lr` is ignored",
        {"epochs": Key(list, REQUIRED, "increasing, from 0"), "lrs": Key(list, REQUIRED, "the LR at each")},
        "batch",
    ),
    # torch's ReduceLROnPlateau on the per-epoch accuracy, as the seed notebooks use it
    "plateau": ScheduleKind(
        "ReduceLROnPlateau on the epoch's accuracy",
        {"factor": Key(float, 0.1), "patience": Key(int, 2), "min_lr": Key(float, 0.0), "watch": WATCH},
        "accuracy",
    ),
    "keras_plateau": ScheduleKind(
        "the Keras challenge's rule: cut when accuracy has not beaten its value `window` epochs ago",
        {"factor": Key(float, 0.5), "window": Key(int, 3), "min_lr": Key(float, 0.0), "watch": WATCH},
        "accuracy",
    ),
}


def check_optimizer(settings: dict[str, Any], where: str) -> None:
    require(settings["lr"] > 0, f"{where}.lr", f"must be positive, got {settings['lr']}")
    require(0 <= settings.get("momentum", 0) < 1, f"{where}.momentum", "must be in [0, 1)")
    require(settings["weight_decay"] >= 0, f"{where}.weight_decay", "must be >= 0")


def check_schedule(settings: dict[str, Any], where: str, validation: int) -> None:
    """A schedule's values; `validation`: the step's held-out images, which an
    accuracy-driven schedule watches unless it asks for the test set."""
    name = settings["name"]
    if name == "step":
        require(settings["step_size"] >= 1, f"{where}.step_size", "must be at least 1")
    if name == "multistep":
        marks = settings["milestones"]
        require(
            all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in marks)
            and marks == sorted(marks),
            f"{where}.milestones",
            "must be increasing epoch numbers",
        )
    if name == "piecewise":
        marks, lrs = settings["epochs"], settings["lrs"]
        require(
            len(marks) == len(lrs) >= 2 and all(isinstance(m, (int, float)) for m in marks + lrs),
            f"{where}.lrs",
            "needs one number per entry of `epochs`, at least two",
        )
        require(marks[0] == 0 and marks == sorted(marks), f"{where}.epochs", "must increase from 0")
        require(min(lrs) >= 0, f"{where}.lrs", "must be >= 0")
    if name == "onecycle":
        require(settings["max_lr"] > 0, f"{where}.max_lr", "must be positive")
        require(0 < settings["pct_start"] < 1, f"{where}.pct_start", "must be in (0, 1)")
        require(settings["anneal"] in ("cos", "linear"), f"{where}.anneal", "must be cos or linear")
    for key in ("gamma", "factor"):
        if key in settings:
            require(0 < settings[key] < 1, f"{where}.{key}", "must be in (0, 1)")
    if "watch" in settings:
        require(
            settings["watch"] in WATCHED_SETS, f"{where}.watch", f"must be one of {', '.join(WATCHED_SETS)}"
        )
    for key in ("patience", "window"):
        if key in settings:
            require(settings[key] >= 1, f"{where}.{key}", "must be at least 1")
    require(
        settings.get("watch") != "validation" or validation > 0,
        f"{where}.watch",
        f"{name} watches the validation accuracy, but the step holds out no `validation` images: "
        "set validation (10000, as the search) or watch: test (its results are then marked as "
        "steered by the test set)",
    )


def steered_by_test(schedule: dict[str, Any]) -> bool:
    """Whether the test accuracy steered the schedule: then it no longer measures the step alone."""
    return schedule.get("watch") == "test"
