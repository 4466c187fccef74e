"""Optimizers and learning-rate schedules made for training: one factory per name of
`optim_spec.OPTIMIZERS` and `optim_spec.SCHEDULES`, and one interface over the schedulers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from mnist_budget.config.optim_spec import SCHEDULES

# optimizer name -> (parameters, settings) -> optimizer
OPTIMIZER_FACTORIES: dict[str, Callable[[Any, dict[str, Any]], torch.optim.Optimizer]] = {
    "sgd": lambda params, s: torch.optim.SGD(
        params, lr=s["lr"], momentum=s["momentum"], nesterov=s["nesterov"], weight_decay=s["weight_decay"]
    ),
    "adam": lambda params, s: torch.optim.Adam(params, lr=s["lr"], weight_decay=s["weight_decay"]),
    "adamw": lambda params, s: torch.optim.AdamW(params, lr=s["lr"], weight_decay=s["weight_decay"]),
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


_sched = torch.optim.lr_scheduler
# schedule name -> (optimizer, settings, epochs, batches per epoch) -> a scheduler with .step()
SCHEDULE_FACTORIES: dict[str, Callable[[torch.optim.Optimizer, dict[str, Any], int, int], Any]] = {
    "none": lambda opt, s, epochs, batches: None,
    "step": lambda opt, s, epochs, batches: _sched.StepLR(opt, s["step_size"], s["gamma"]),
    "multistep": lambda opt, s, epochs, batches: _sched.MultiStepLR(opt, s["milestones"], s["gamma"]),
    "onecycle": lambda opt, s, epochs, batches: _sched.OneCycleLR(
        opt,
        max_lr=s["max_lr"],
        total_steps=epochs * batches,
        pct_start=s["pct_start"],
        div_factor=s["div_factor"],
        final_div_factor=s["final_div_factor"],
        anneal_strategy=s["anneal"],
        cycle_momentum=False,
    ),
    "cosine": lambda opt, s, epochs, batches: _sched.CosineAnnealingLR(opt, epochs * batches, s["min_lr"]),
    "piecewise": lambda opt, s, epochs, batches: _sched.LambdaLR(
        opt, lambda batch: float(np.interp(batch / batches, s["epochs"], s["lrs"])) / opt.defaults["lr"]
    ),
    "plateau": lambda opt, s, epochs, batches: _sched.ReduceLROnPlateau(
        opt, "max", s["factor"], s["patience"], min_lr=s["min_lr"]
    ),
    "keras_plateau": lambda opt, s, epochs, batches: KerasPlateau(opt, s["factor"], s["window"], s["min_lr"]),
}


def make_optimizer(model: nn.Module, settings: dict[str, Any]) -> torch.optim.Optimizer:
    return OPTIMIZER_FACTORIES[settings["name"]](model.parameters(), settings)


class Schedule:
    """One interface over the schedulers: some step per batch, some per epoch, some on the
    epoch's accuracy (validation, else test, as the seed notebooks monitor it)."""

    def __init__(self, optimizer: torch.optim.Optimizer, settings: dict[str, Any], epochs: int, batches: int):
        self.steps_on = SCHEDULES[settings["name"]].steps_on
        self.scheduler = SCHEDULE_FACTORIES[settings["name"]](optimizer, settings, epochs, batches)

    def after_batch(self) -> None:
        if self.steps_on == "batch":
            self.scheduler.step()

    def after_epoch(self, accuracy: float) -> None:
        """`accuracy`: the epoch's accuracy on the set the schedule watches (validation, or
        test where the step asks for it, as the seed notebooks monitor it)."""
        if self.steps_on == "epoch":
            self.scheduler.step()
        elif self.steps_on == "accuracy":
            self.scheduler.step(accuracy)
