"""The params sections the reports read besides the steps: `headline`, `public_results` and
`without` (the main report), `baseline` and `arms` (the ablation's), checked by `resolve`
before any training, so a stale or mistyped name stops the pipeline there, not after the
models are trained."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mnist_budget.config.layer_spec import parse_layer
from mnist_budget.config.params import REQUIRED, Key, check_value, read_section, require
from mnist_budget.config.step_config import load_target

HEADLINE_KEYS = {
    "final": Key(str, REQUIRED, "the final step"),
    "tiny": Key(str, REQUIRED, "the smallest step"),
}
PUBLIC_RESULT_KEYS = {
    "label": Key(str, REQUIRED, "how the figure names it"),
    "params": Key(int, REQUIRED, "its parameter count, as published"),
    "accuracy": Key(float, REQUIRED, "its test accuracy, a fraction, as published"),
}


def load_headline(params: dict[str, Any]) -> dict[str, str] | None:
    """`headline`'s role -> step, each a step of `steps`; None without the section."""
    if "headline" not in params:
        return None
    headline = read_section(params["headline"], HEADLINE_KEYS, "headline")
    steps = params.get("steps") or {}
    for role, step in headline.items():
        require(step in steps, f"headline.{role}", f"{step!r} is not a step in `steps` ({', '.join(steps)})")
    return headline


def load_public_results(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The published results drawn beside the steps (none without the section)."""
    entries = params.get("public_results", [])
    require(isinstance(entries, list), "public_results", f"expected a list, got {entries!r}")
    results = [
        read_section(entry, PUBLIC_RESULT_KEYS, f"public_results[{i}]") for i, entry in enumerate(entries)
    ]
    for i, result in enumerate(results):
        require(result["params"] > 0, f"public_results[{i}].params", "must be positive")
        require(0 < result["accuracy"] <= 1, f"public_results[{i}].accuracy", "is a fraction in (0, 1]")
    return results


def load_without(params: dict[str, Any]) -> dict[str, list[str]]:
    """`without`: a part of the net's name -> the final step's layers with that part taken
    out (none without the section). The report counts their parameters; none trains."""
    section = params.get("without", {})
    require(isinstance(section, dict), "without", f"expected a mapping of part -> layers, got {section!r}")
    for part, layers in section.items():
        where = f"without.{part}"
        require(isinstance(layers, list) and layers, where, f"expected a list of layers, got {layers!r}")
        for i, text in enumerate(layers):
            parse_layer(text, f"{where}[{i}]")
    return section


ARM_KEYS = {
    "removes": Key(str, "", "the idea the arm takes out of the baseline"),
    "adds": Key(str, "", "the idea the arm puts in, one that no step of the progression adds"),
    "step": Key(str, "", "the main pipeline's step that adds the removed idea: its Analysis quotes the arm"),
}


@dataclass(frozen=True)
class Arm:
    """What one ablation arm measures against the baseline."""

    idea: str
    removes: bool  # the arm takes the idea out; else it puts it in
    step: str  # the main step that adds it, or ""


def load_arms(params: dict[str, Any]) -> tuple[str, dict[str, Arm]] | None:
    """The ablation's `baseline` step and its `arms`: one entry for every other step
    (None when the params have neither section)."""
    if "baseline" not in params and "arms" not in params:
        return None
    steps = params.get("steps") or {}
    baseline = check_value(params.get("baseline"), str, "baseline")
    require(baseline in steps, "baseline", f"{baseline!r} is not a step in `steps` ({', '.join(steps)})")
    entries = params.get("arms")
    require(
        isinstance(entries, dict), "arms", f"expected a mapping of step -> what it measures, got {entries!r}"
    )
    arms = {}
    for name, entry in entries.items():
        where = f"arms.{name}"
        require(
            name in steps and name != baseline, where, f"is not a step in `steps` other than {baseline!r}"
        )
        arm = read_section(entry, ARM_KEYS, where)
        require(bool(arm["removes"]) != bool(arm["adds"]), where, "needs one of `removes` or `adds`")
        require(not (arm["adds"] and arm["step"]), f"{where}.step", "names the step that adds a removed idea")
        arms[name] = Arm(arm["removes"] or arm["adds"], bool(arm["removes"]), arm["step"])
    missing = [name for name in steps if name != baseline and name not in arms]
    require(not missing, f"arms.{missing[0]}" if missing else "arms", "missing: say what this step measures")
    return baseline, arms


def check_report_params(params: dict[str, Any]) -> None:
    """Every section a report stage reads besides the steps, as it will read them."""
    load_target(params)
    load_headline(params)
    load_public_results(params)
    load_without(params)
    load_arms(params)
