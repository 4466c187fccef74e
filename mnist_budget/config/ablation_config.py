"""The ablation's arms, derived from the progression: no recipe is copied by hand.

ablation/params.yaml names its `baseline` (the main pipeline's final step, `headline.final` of
params.yaml, trained there: the ablation reads its history and trains no copy of it) and one
entry per other arm under `steps` (DVC runs one train stage per entry). An arm `removes` the
idea that one `step` of the progression adds: the final step with that step's own entry set
back to the step before it. Or it `adds` an idea that no step takes, with the step keys that
put it in. Every arm trains the final step's `seeds`, so that each seed gives one paired
difference with the baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnist_budget.config.params import Key, check_value, load_params, read_section, require
from mnist_budget.config.report_config import load_headline
from mnist_budget.config.step_config import (
    NOT_IDEAS,
    NOT_TRAINED,
    STEP_KEYS,
    config_of,
    merged,
    merges_into,
    parse_step,
    resolve,
)

ARM_KEYS = {
    "removes": Key(str, "", "the idea the arm takes out of the baseline"),
    "step": Key(str, "", "with `removes`: the main pipeline's step that adds the idea (its Analysis quotes the arm)"),
    "adds": Key(str, "", "the idea the arm puts in, one that no step of the progression adds, with the step keys that do"),
    "description": Key(str, "", "what the arm trains, for its report (default: said from the above)"),
}  # fmt: skip


@dataclass(frozen=True)
class Arm:
    """What one ablation arm measures against the baseline."""

    idea: str
    removes: bool  # the arm takes the idea out; else it puts it in
    step: str  # the main step that adds it, or ""


@dataclass(frozen=True)
class Ablation:
    """The baseline's name and the main step it reads (trained there, not here), its
    seeds, what each other arm measures, and each other arm's entry as a step's,
    description included (what `resolve` validates and writes)."""

    baseline: str
    final: str
    seeds: list[int]
    description: str
    arms: dict[str, Arm]
    entries: dict[str, dict[str, Any]]


def _reverted(own: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """A step's own entry with each value set back to `before`'s (the step before it, every
    default filled in): a named mapping whose name stays keeps its other keys."""
    out = {}
    for key, value in own.items():
        prior = before[key]
        out[key] = _reverted(value, prior) if merges_into(value, prior) else prior
    return out


def _trained_keys(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in entry.items() if key not in NOT_TRAINED}


def load_ablation(params: dict[str, Any]) -> Ablation:
    """The ablation's params read against those of its `progression` (a params file): raises
    ParamsError naming the key for an arm that names no step of the progression, or a step
    after the final one."""
    source = check_value(params.get("progression"), str, "progression")
    require(Path(source).is_file(), "progression", f"{source}: no such params file")
    main = load_params(Path(source))
    headline = load_headline(main)
    require(headline is not None, "headline", "the main params name no final step to ablate")
    final = headline["final"]
    progression = resolve(main)
    names = list(progression)
    require(
        "seeds" not in params,
        "seeds",
        f"every arm trains the seeds of {final}, the baseline (steps.{final}.seeds in {source}): "
        "remove the key",
    )
    entries = params.get("steps")
    require(
        isinstance(entries, dict) and bool(entries), "steps", "expected a mapping of arm -> what it measures"
    )
    baseline = check_value(params.get("baseline"), str, "baseline")
    require(
        baseline not in entries,
        f"steps.{baseline}",
        f"the baseline is {final} as the main pipeline trains it (its history is read, not "
        "retrained here): remove the entry",
    )
    base = _trained_keys(progression[final])
    seeds = list(parse_step(final, progression[final]).seeds)
    arms: dict[str, Arm] = {}
    out = {}
    for name, entry in entries.items():
        where = f"steps.{name}"
        require(isinstance(entry, dict), where, f"expected a mapping, got {entry!r}")
        spec = read_section({k: v for k, v in entry.items() if k in ARM_KEYS}, ARM_KEYS, where)
        changes = {k: v for k, v in entry.items() if k not in ARM_KEYS}
        require(bool(spec["removes"]) != bool(spec["adds"]), where, "needs one of `removes` or `adds`")
        if spec["removes"]:
            step = spec["step"]
            require(
                step in names[1 : names.index(final) + 1],
                f"{where}.step",
                f"{step!r} is not a step of the progression after the first, up to {final} "
                f"({', '.join(names[1 : names.index(final) + 1])})",
            )
            require(not changes, f"{where}.{next(iter(changes), '')}", "an arm that removes sets no step key")
            previous = names[names.index(step) - 1]
            own = {key: value for key, value in main["steps"][step].items() if key not in NOT_IDEAS}
            before = config_of(parse_step(previous, progression[previous]))
            changes = _reverted(own, before)
            description = (
                f"The final step without {spec['removes']}: {step}'s {', '.join(own)} as in {previous}."
            )
        else:
            require(not spec["step"], f"{where}.step", "names the step that adds a removed idea")
            require(bool(changes), where, f"adds {spec['adds']!r} but sets no step key")
            for key in changes:
                require(key in STEP_KEYS and key not in NOT_TRAINED, f"{where}.{key}", "unknown step key")
            shown = ", ".join(f"{key}: {value}" for key, value in changes.items())
            description = f"The final step with {spec['adds']} ({shown})."
        arms[name] = Arm(spec["removes"] or spec["adds"], bool(spec["removes"]), spec["step"])
        out[name] = {**merged(base, changes), "description": spec["description"] or description}
    description = (
        f"The main pipeline's final step, {final}, every idea in: its own history, not trained again here."
    )
    return Ablation(baseline, final, seeds, description, arms, out)
