"""The params sections the reports read besides the steps: `headline` and `without` (the
main report), checked by `resolve`
before any training, so a stale or mistyped name stops the pipeline there, not after the
models are trained."""

from __future__ import annotations

from typing import Any

from mnist_budget.config.layer_spec import parse_layer
from mnist_budget.config.params import REQUIRED, Key, read_section, require
from mnist_budget.config.step_config import load_target

HEADLINE_KEYS = {
    "final": Key(str, REQUIRED, "the final step"),
    "tiny": Key(str, REQUIRED, "the smallest step"),
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


def check_report_params(params: dict[str, Any]) -> None:
    """Every section a report stage reads besides the steps, as it will read them."""
    load_target(params)
    load_headline(params)
    load_without(params)
