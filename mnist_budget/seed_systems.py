"""The seed systems: what each well-known write-up claimed, against what this project reproduced.

A pipeline's params may hold `systems:` (see seed-systems/params.yaml): for each write-up, its
title, how it counted parameters, why a reproduction may differ, and per step the claimed
parameters, accuracy and epochs. `gpu_steps:` holds steps too big to train on a CPU: their
configs are validated and their parameters counted, but no stage trains them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from mnist_budget.model_stats import count_params
from mnist_budget.nets import build_net
from mnist_budget.params import REQUIRED, Key, ParamsError, read_section, require
from mnist_budget.scoring import mean_curve
from mnist_budget.step_config import StepConfig, load_steps

COUNTS = {
    "total": "params_total",  # Keras: trainable + batch norm's running statistics
    "trainable": "params_trainable",  # torchsummary: weights and biases only
}
PARAMS_TOLERANCE = 0.02  # a reproduced architecture matches within 2% of the claimed size
ACCURACY_TOLERANCE = 0.001  # 0.1 pp: about the seed-to-seed spread of one recipe
SYSTEM_KEYS = {
    "title": Key(str, REQUIRED),
    "counts": Key(str, REQUIRED, "how the write-up counted parameters: total or trainable"),
    "differs": Key(str, REQUIRED, "why a reproduction may differ"),
    "claims": Key(dict, REQUIRED, "step -> claim, in the order of the write-up's progression"),
}
CLAIM_KEYS = {
    "params": Key(int, None),
    "accuracy": Key(float, None),
    "accuracy_at": Key(object, "final", '"final", "best" or an epoch number'),
    "epochs": Key(int, REQUIRED),
}


@dataclass(frozen=True)
class Claim:
    step: str
    params: int | None
    accuracy: float | None
    accuracy_at: str | int
    epochs: int

    @property
    def epoch_read(self) -> str:
        """Which epoch the claim was read at: `final epoch`, `best epoch` or `epoch N`."""
        at = self.accuracy_at
        return f"epoch {at}" if isinstance(at, int) else f"{at} epoch"

    @property
    def read_at(self) -> str:
        return self.epoch_read if isinstance(self.accuracy_at, int) else f"the {self.epoch_read}"

    def describe_accuracy(self) -> str:
        return "not given" if self.accuracy is None else f"{self.accuracy:.2%} at {self.read_at}"


@dataclass(frozen=True)
class System:
    name: str
    title: str
    counts: str
    differs: str
    claims: dict[str, Claim]  # in the order of the write-up's progression


def _claim(step: str, entry: Any, where: str) -> Claim:
    values = read_section(entry, CLAIM_KEYS, where)
    at = values["accuracy_at"]
    epoch_number = isinstance(at, int) and not isinstance(at, bool) and 1 <= at <= values["epochs"]
    require(
        at in ("final", "best") or epoch_number,
        f"{where}.accuracy_at",
        f"must be final, best or an epoch number up to {values['epochs']}, got {at!r}",
    )
    if values["accuracy"] is not None:
        require(0 < values["accuracy"] <= 1, f"{where}.accuracy", "is a fraction in (0, 1]")
    return Claim(step, **values)


def load_gpu_steps(params: dict[str, Any]) -> dict[str, StepConfig]:
    """Steps shipped as configs only: too big to train on a CPU in reasonable time."""
    entries = params.get("gpu_steps") or {}
    require(isinstance(entries, dict), "gpu_steps", "expected a mapping of step name to step")
    clashes = sorted(set(entries) & set(params.get("steps") or {}))
    require(not clashes, f"gpu_steps.{clashes[0] if clashes else ''}", "is also in `steps`")
    return load_steps(params, "gpu_steps") if entries else {}


def load_systems(params: dict[str, Any]) -> dict[str, System]:
    """Validate `systems`: every claim names a step, and every step belongs to a system."""
    section = params.get("systems")
    require(isinstance(section, dict) and bool(section), "systems", "needs at least one system")
    known = {**load_steps(params), **load_gpu_steps(params)}
    systems, owner = {}, {}
    for name, entry in section.items():
        where = f"systems.{name}"
        values = read_section(entry, SYSTEM_KEYS, where)
        require(values["counts"] in COUNTS, f"{where}.counts", f"must be one of {', '.join(COUNTS)}")
        claims = {}
        for step, claim in values["claims"].items():
            require(step in known, f"{where}.claims.{step}", "no such step in `steps` or `gpu_steps`")
            owner.setdefault(step, name)  # a shared first step may open several write-ups
            claims[step] = _claim(step, claim, f"{where}.claims.{step}")
            require(
                claims[step].epochs == known[step].epochs,
                f"{where}.claims.{step}.epochs",
                f"the claim is for {claims[step].epochs} epochs but the step trains {known[step].epochs}",
            )
        systems[name] = System(name, values["title"], values["counts"], values["differs"], claims)
    orphans = [step for step in known if step not in owner]
    require(not orphans, f"steps.{orphans[0] if orphans else ''}", "belongs to no system in `systems`")
    return systems


def claimed_accuracy(claim: Claim, metrics: dict, history: pd.DataFrame) -> float:
    """The reproduction's accuracy read the way the claim was: final, best or at an epoch
    (each the mean over the step's seeds)."""
    if claim.accuracy_at == "final":
        return metrics["test_accuracy"]["mean"]
    if claim.accuracy_at == "best":
        return metrics["best_test_accuracy"]
    curve = mean_curve(history)
    row = curve.loc[curve["epoch"] == claim.accuracy_at, "test_accuracy"]
    if row.empty:
        raise ParamsError(f"claim for {claim.step}: the run has no epoch {claim.accuracy_at}")
    return float(row.iloc[0])


def verdict(claim: Claim, params: int, accuracy: float | None, trained: bool) -> str:
    """One line: does the reproduction match the claim (size first, then accuracy)?"""
    notes = []
    if claim.params is not None:
        off = (params - claim.params) / claim.params
        if abs(off) > PARAMS_TOLERANCE:
            notes.append(f"size off by {off:+.1%}")
    if not trained:
        return "; ".join(["config only: needs a GPU, not trained here", *notes])
    if claim.accuracy is None or accuracy is None:
        return "; ".join(["trained; the write-up gives no accuracy for this step", *notes])
    gap = (accuracy - claim.accuracy) * 100
    if gap >= -ACCURACY_TOLERANCE * 100:
        word = "beats" if gap > ACCURACY_TOLERANCE * 100 else "matches"
        line = f"✅ {word} the claim: {accuracy:.2%} at {claim.read_at} ({gap:+.2f} pp)"
    else:
        line = f"❌ falls short: {accuracy:.2%} at {claim.read_at} ({gap:+.2f} pp; see why below)"
    return "; ".join([line, *notes])


def comparison_rows(
    systems: dict[str, System],
    gpu_steps: dict[str, StepConfig],
    metrics: dict[str, dict],
    histories: dict[str, pd.DataFrame],
) -> list[dict]:
    """One row per claimed step: claimed and reproduced size and accuracy, and a verdict."""
    rows = []
    for system in systems.values():
        key = COUNTS[system.counts]
        for step, claim in system.claims.items():
            trained = step in metrics
            counts = metrics[step] if trained else count_params(build_net(gpu_steps[step]))
            m = metrics.get(step)
            accuracy = claimed_accuracy(claim, m, histories[step]) if trained and claim.accuracy else None
            rows.append(
                {
                    "system": system.name,
                    "step": f"`{step}`",
                    "claimed params": f"{claim.params:,}" if claim.params else "not given",
                    "claimed accuracy": claim.describe_accuracy(),
                    "claimed epochs": claim.epochs,
                    "reproduced params": f"{counts[key]:,}",
                    "final-epoch acc": f"{m['test_accuracy']['mean']:.2%}" if m else "GPU only",
                    "best-epoch acc*": f"{m['best_test_accuracy']:.2%} @{m['best_epoch']}"
                    if m
                    else "GPU only",
                    "verdict": verdict(claim, counts[key], accuracy, trained),
                }
            )
    return rows


def accuracy_claims(
    systems: dict[str, System], metrics: dict[str, dict], histories: dict[str, pd.DataFrame]
) -> list[tuple[str, float, float]]:
    """(label, claimed, reproduced read the same way) for each trained step with a claim."""
    return [
        (
            f"{step} ({claim.epoch_read})",
            claim.accuracy,
            claimed_accuracy(claim, metrics[step], histories[step]),
        )
        for system in systems.values()
        for step, claim in system.claims.items()
        if claim.accuracy is not None and step in metrics
    ]


def comparison_table(rows: list[dict]) -> str:
    return pd.DataFrame(rows).to_markdown(index=False)
