"""A write-up's claims as data: `<pipeline>/claims.yaml`, read and validated, no torch.

A pipeline that checks write-ups (seed-systems/, public/, writeups/<name>/) keeps, beside its
params.yaml, a file `claims.yaml` whose `systems:` names each write-up: its title, source,
how it counted parameters, why a reproduction may differ, and per step every claim it makes
(parameters, epochs, train and test accuracy read where the write-up read them: final epoch,
best epoch or epoch N; the epoch a target was first reached; an accuracy held after an
epoch; statements about fitting). Claims are data, not params: they stay out of
`dvc exp show`, and editing one re-runs `resolve` (which validates them, before any
training) and the `compare` stage that checks them, nothing else.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_budget.config.params import REQUIRED, Key, ParamsError, load_params, read_section, require

COUNTS = {
    "total": "params_total",  # Keras: trainable + batch norm's running statistics
    "trainable": "params_trainable",  # torchsummary: weights and biases only
}
SYSTEM_KEYS = {
    "title": Key(str, REQUIRED),
    "source": Key(str, REQUIRED, "where the write-up lives: a file, or `owner/repo path at <commit>`"),
    "counts": Key(str, REQUIRED, "how the write-up counted parameters: total or trainable"),
    "differs": Key(str, REQUIRED, "why a reproduction may differ"),
    "claims": Key(dict, REQUIRED, "step -> its claims, in the order of the write-up's progression"),
}
CLAIM_KEYS = {
    "epochs": Key(int, REQUIRED),
    "params": Key(int, None, "parameters, counted as the system counts"),
    "trainable_params": Key(int, None, "trainable parameters, where the write-up gives both"),
    "test_accuracy": Key(dict, None, "where read (final, best or epoch N) -> accuracy"),
    "train_accuracy": Key(dict, None, "where read (final, best or epoch N) -> accuracy"),
    "reached": Key(dict, None, "{accuracy, epoch}: the test accuracy first reached at that epoch"),
    "held": Key(dict, None, "{accuracy, after}: the test accuracy held in every epoch after that one"),
    "says": Key(
        list,
        None,
        "statements about fitting, each checked against the run (one it has no check for: 'cannot check')",
    ),
    "runs": Key(int, 1, "how many runs the accuracies are over: several, their mean"),
}
REACHED_KEYS = {"accuracy": Key(float, REQUIRED), "epoch": Key(int, None, "omitted: at some epoch")}
HELD_KEYS = {"accuracy": Key(float, REQUIRED), "after": Key(int, REQUIRED)}


# The statements about fitting that the comparison checks against a run, and what each means;
# `report.seed_systems` holds a check for each.
STATEMENTS = {
    "overfitting": "the best train accuracy above the best test accuracy beyond the noise",
    "not overfitting": "the best train accuracy within the noise of the best test accuracy, or below",
    "less overfitting": "a smaller gap between the two than the step before",
    "still improving": "the best test epoch one of the last 3",
    "drops after the target": "the test accuracy below the target after first reaching it",
    "same size as the previous step": "as many parameters as the step before",
}
NO_CHECK = (
    "the project checks a statement against the run only when it is one of: "
    + ", ".join(STATEMENTS)
    + " (mnist_budget/config/claims_config.py: STATEMENTS)"
)


# A statement of a write-up that none of `STATEMENTS` checks: kept in the comparison, with why.
UNCHECKED = "unchecked"


@dataclass(frozen=True)
class Claim:
    """One checkable claim of a write-up about one step."""

    step: str
    kind: str  # a CLAIM_KEYS key; "says" for a statement of STATEMENTS, UNCHECKED for another
    value: Any  # int, float, (accuracy, epoch) or a statement
    at: str | int | None = None  # where an accuracy was read: final, best or an epoch
    runs: int = 1  # how many runs an accuracy is the mean of

    @property
    def read_at(self) -> str:
        where = f"epoch {self.at}" if isinstance(self.at, int) else f"the {self.at} epoch"
        return where if self.runs == 1 else f"{where}, mean of {self.runs:,} runs"


@dataclass(frozen=True)
class System:
    name: str
    title: str
    source: str
    counts: str
    differs: str
    epochs: dict[str, int]  # step -> claimed epochs, in the order of the write-up's progression
    claims: list[Claim]

    @property
    def steps(self) -> list[str]:
        return list(self.epochs)


def _accuracy(value: Any, where: str) -> float:
    require(isinstance(value, float) and 0 < value <= 1, where, f"is a fraction in (0, 1], got {value!r}")
    return value


def _epoch(value: Any, epochs: int, where: str) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= epochs
    require(ok, where, f"must be an epoch number from 1 to {epochs}, got {value!r}")


def _read_at(at: Any, epochs: int, where: str) -> str | int:
    """Where an accuracy was read: final, best, or `epoch N` as the epoch number. Text keys
    only: DVC hashes a params section with sorted keys, and fails on a mapping that mixes
    numbers and text ({best: ..., 10: ...})."""
    if at in ("final", "best"):
        return at
    epoch = re.fullmatch(r"epoch (\d+)", at) if isinstance(at, str) else None
    require(epoch is not None, where, f"must be final, best or 'epoch N' (N from 1 to {epochs}), got {at!r}")
    _epoch(int(epoch[1]), epochs, where)
    return int(epoch[1])


def _read_claims(step: str, entry: Any, where: str) -> tuple[int, list[Claim]]:
    values = read_section(entry, CLAIM_KEYS, where)
    epochs, runs = values["epochs"], values["runs"]
    require(runs >= 1, f"{where}.runs", "must be at least 1")
    claims = [Claim(step, "epochs", epochs)]
    for kind in ("params", "trainable_params"):
        if values[kind] is not None:
            require(values[kind] > 0, f"{where}.{kind}", "must be positive")
            claims.append(Claim(step, kind, values[kind]))
    for kind in ("train_accuracy", "test_accuracy"):
        for at, accuracy in (values[kind] or {}).items():
            key = f"{where}.{kind}.{at}"
            claims.append(Claim(step, kind, _accuracy(accuracy, key), _read_at(at, epochs, key), runs))
    if values["reached"] is not None:
        reached = read_section(values["reached"], REACHED_KEYS, f"{where}.reached")
        if reached["epoch"] is not None:
            _epoch(reached["epoch"], epochs, f"{where}.reached.epoch")
        accuracy = _accuracy(reached["accuracy"], f"{where}.reached.accuracy")
        claims.append(Claim(step, "reached", accuracy, reached["epoch"]))
    if values["held"] is not None:
        held = read_section(values["held"], HELD_KEYS, f"{where}.held")
        _epoch(held["after"], epochs - 1, f"{where}.held.after")
        claims.append(
            Claim(step, "held", _accuracy(held["accuracy"], f"{where}.held.accuracy"), held["after"])
        )
    for statement in values["says"] or []:
        require(
            isinstance(statement, str) and statement.strip(),
            f"{where}.says",
            f"expected text, got {statement!r}",
        )
        # a statement with no check here is kept, and said so (`unchecked`); one a letter or
        # two from a checked one is a typo
        typo = difflib.get_close_matches(statement, STATEMENTS, n=1, cutoff=0.75)
        require(
            statement in STATEMENTS or not typo,
            f"{where}.says",
            f"unknown statement {statement!r}; did you mean {typo[0]!r}?" if typo else "",
        )
        claims.append(Claim(step, "says" if statement in STATEMENTS else UNCHECKED, statement))
    return epochs, claims


def unchecked(systems: dict[str, System]) -> list[str]:
    """One line per claim the project cannot check, naming it and why."""
    return [
        f"systems.{system.name}.claims.{claim.step}.says: {claim.value!r} cannot be checked: {NO_CHECK}"
        for system in systems.values()
        for claim in system.claims
        if claim.kind == UNCHECKED
    ]


def load_systems(section: Any, epochs_of: dict[str, int]) -> dict[str, System]:
    """Validate `systems` against the pipeline's steps (`epochs_of`: every step and gpu step ->
    the epochs it trains): every claim names a step, and every step belongs to a system."""
    require(isinstance(section, dict) and bool(section), "systems", "needs at least one system")
    systems, owned = {}, set()
    for name, entry in section.items():
        where = f"systems.{name}"
        values = read_section(entry, SYSTEM_KEYS, where)
        require(values["counts"] in COUNTS, f"{where}.counts", f"must be one of {', '.join(COUNTS)}")
        epochs, claims = {}, []
        for step, claim in values["claims"].items():
            require(step in epochs_of, f"{where}.claims.{step}", "no such step in `steps` or `gpu_steps`")
            owned.add(step)  # a shared first step may open several write-ups
            epochs[step], step_claims = _read_claims(step, claim, f"{where}.claims.{step}")
            require(
                epochs[step] == epochs_of[step],
                f"{where}.claims.{step}.epochs",
                f"the claim is for {epochs[step]} epochs but the step trains {epochs_of[step]}",
            )
            claims += step_claims
        systems[name] = System(
            name, values["title"], values["source"], values["counts"], values["differs"], epochs, claims
        )
    orphans = [step for step in epochs_of if step not in owned]
    require(not orphans, f"steps.{orphans[0] if orphans else ''}", "belongs to no system in `steps`")
    return systems


def load_claims(path: Path, epochs_of: dict[str, int]) -> dict[str, System]:
    """The systems of a claims file, validated; an error names the file, then the key."""
    if not path.is_file():
        raise ParamsError(f"{path}: missing; a write-up pipeline keeps its claims there")
    try:
        return load_systems(load_params(path).get("systems"), epochs_of)
    except ParamsError as error:
        raise ParamsError(f"{path}: {error}") from None
