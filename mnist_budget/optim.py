"""Optimizers and learning-rate schedules: the one list of each, with their keys, defaults
and factories. Validation, training and the README's tables all read `OPTIMIZERS` and
`SCHEDULES`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mnist_budget.params import REQUIRED, Key, require

LR = Key(float, REQUIRED, "learning rate")


@dataclass(frozen=True)
class OptimizerKind:
    keys: dict[str, Key]  # besides `name`
    make: Callable[[Iterable[nn.Parameter], dict[str, Any]], torch.optim.Optimizer]


OPTIMIZERS: dict[str, OptimizerKind] = {
    "sgd": OptimizerKind(
        {
            "lr": LR,
            "momentum": Key(float, 0.0),
            "nesterov": Key(bool, False),
            "weight_decay": Key(float, 0.0),
        },
        lambda params, s: torch.optim.SGD(
            params, lr=s["lr"], momentum=s["momentum"], nesterov=s["nesterov"], weight_decay=s["weight_decay"]
        ),
    ),
    "adam": OptimizerKind(
        {"lr": LR, "weight_decay": Key(float, 0.0)},
        lambda params, s: torch.optim.Adam(params, lr=s["lr"], weight_decay=s["weight_decay"]),
    ),
    "adamw": OptimizerKind(
        {"lr": LR, "weight_decay": Key(float, 0.01)},
        lambda params, s: torch.optim.AdamW(params, lr=s["lr"], weight_decay=s["weight_decay"]),
    ),
}


class KerasPlateau:
    """The Keras challenge's rule: multiply the LR by `factor` when the accuracy has not
    improved on its value `window` epochs earlier, unless the LR was cut within the last
    `window` epochs."""

    def __init__(self, optimizer: torch.optim.Optimizer, factor: float, window: int, min_lr: float):
        self.optimizer, self.factor, self.window, self.min_lr = optimizer, factor, window, min_lr
        self.accuracies: list[float] = []
        self.last_cut = -window

    def step(self, accuracy: float) -> None:
        self.accuracies.append(accuracy)
        epoch = len(self.accuracies)
        if epoch <= self.window or epoch - self.last_cut < self.window:
            return
        if accuracy <= self.accuracies[-1 - self.window]:
            for group in self.optimizer.param_groups:
                group["lr"] = max(group["lr"] * self.factor, self.min_lr)
            self.last_cut = epoch


@dataclass(frozen=True)
class ScheduleKind:
    doc: str
    keys: dict[str, Key]  # besides `name`
    steps_on: str  # "batch", "epoch" or "accuracy" (the epoch's validation, else test, accuracy); "never"
    # (optimizer, settings, epochs, batches per epoch) -> a scheduler with .step()
    make: Callable[[torch.optim.Optimizer, dict[str, Any], int, int], Any]


_sched = torch.optim.lr_scheduler
SCHEDULES: dict[str, ScheduleKind] = {
    "none": ScheduleKind("constant learning rate", {}, "never", lambda opt, s, epochs, batches: None),
    "step": ScheduleKind(
        "StepLR, per epoch",
        {"step_size": Key(int, REQUIRED), "gamma": Key(float, 0.1)},
        "epoch",
        lambda opt, s, epochs, batches: _sched.StepLR(opt, s["step_size"], s["gamma"]),
    ),
    "multistep": ScheduleKind(
        "MultiStepLR, per epoch",
        {"milestones": Key(list, REQUIRED), "gamma": Key(float, 0.1)},
        "epoch",
        lambda opt, s, epochs, batches: _sched.MultiStepLR(opt, s["milestones"], s["gamma"]),
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
        lambda opt, s, epochs, batches: _sched.OneCycleLR(
            opt,
            max_lr=s["max_lr"],
            total_steps=epochs * batches,
            pct_start=s["pct_start"],
            div_factor=s["div_factor"],
            final_div_factor=s["final_div_factor"],
            anneal_strategy=s["anneal"],
            cycle_momentum=False,
        ),
    ),
    "cosine": ScheduleKind(
        "cosine annealing over all batches",
        {"min_lr": Key(float, 0.0)},
        "batch",
        lambda opt, s, epochs, batches: _sched.CosineAnnealingLR(opt, epochs * batches, s["min_lr"]),
    ),
    "piecewise": ScheduleKind(
        "linear between (epoch, LR) points, stepped per batch; the optimizer's `lr` is ignored",
        {"epochs": Key(list, REQUIRED, "increasing, from 0"), "lrs": Key(list, REQUIRED, "the LR at each")},
        "batch",
        lambda opt, s, epochs, batches: _sched.LambdaLR(
            opt, lambda batch: float(np.interp(batch / batches, s["epochs"], s["lrs"])) / opt.defaults["lr"]
        ),
    ),
    # torch's ReduceLROnPlateau on the per-epoch accuracy, as the seed notebooks use it
    "plateau": ScheduleKind(
        "ReduceLROnPlateau on the epoch's validation accuracy (test accuracy without `validation`)",
        {"factor": Key(float, 0.1), "patience": Key(int, 2), "min_lr": Key(float, 0.0)},
        "accuracy",
        lambda opt, s, epochs, batches: _sched.ReduceLROnPlateau(
            opt, "max", s["factor"], s["patience"], min_lr=s["min_lr"]
        ),
    ),
    "keras_plateau": ScheduleKind(
        "the Keras challenge's rule: cut when accuracy has not beaten its value `window` epochs ago",
        {"factor": Key(float, 0.5), "window": Key(int, 3), "min_lr": Key(float, 0.0)},
        "accuracy",
        lambda opt, s, epochs, batches: KerasPlateau(opt, s["factor"], s["window"], s["min_lr"]),
    ),
}


def check_optimizer(settings: dict[str, Any], where: str) -> None:
    require(settings["lr"] > 0, f"{where}.lr", f"must be positive, got {settings['lr']}")
    require(0 <= settings.get("momentum", 0) < 1, f"{where}.momentum", "must be in [0, 1)")
    require(settings["weight_decay"] >= 0, f"{where}.weight_decay", "must be >= 0")


def check_schedule(settings: dict[str, Any], where: str) -> None:
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
    for key in ("patience", "window"):
        if key in settings:
            require(settings[key] >= 1, f"{where}.{key}", "must be at least 1")


def make_optimizer(model: nn.Module, settings: dict[str, Any]) -> torch.optim.Optimizer:
    return OPTIMIZERS[settings["name"]].make(model.parameters(), settings)


class Schedule:
    """One interface over the schedulers: some step per batch, some per epoch, some on the
    epoch's accuracy (validation, else test, as the seed notebooks monitor it)."""

    def __init__(self, optimizer: torch.optim.Optimizer, settings: dict[str, Any], epochs: int, batches: int):
        kind = SCHEDULES[settings["name"]]
        self.steps_on = kind.steps_on
        self.scheduler = kind.make(optimizer, settings, epochs, batches)

    def after_batch(self) -> None:
        if self.steps_on == "batch":
            self.scheduler.step()

    def after_epoch(self, accuracy: float) -> None:
        """`accuracy`: the epoch's validation accuracy, or its test accuracy without a
        validation split (as the seed notebooks monitor it)."""
        if self.steps_on == "epoch":
            self.scheduler.step()
        elif self.steps_on == "accuracy":
            self.scheduler.step(accuracy)
