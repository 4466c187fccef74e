"""The README's reference tables, rendered from the vocabularies the code validates and
builds with, so the documentation cannot drift from them.

    python -m mnist_budget.docs           # rewrite the tables between the README's markers
    python -m mnist_budget.docs --check   # exit 1 if the README differs from what it would write
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from mnist_budget.atomic_files import write_text
from mnist_budget.layer_spec import HOLDS_LAYERS, LAYER_KINDS
from mnist_budget.optim_spec import OPTIMIZERS, SCHEDULES
from mnist_budget.params import REQUIRED, Key
from mnist_budget.report_config import ARM_KEYS
from mnist_budget.step_config import AUGMENT, STEP_CHOICES, STEP_KEYS

README = Path(__file__).resolve().parents[1] / "README.md"
# <!-- table:NAME --> ... <!-- /table:NAME -->
MARKED = re.compile(r"(<!-- table:(?P<name>[a-z-]+) -->\n).*?(<!-- /table:(?P=name) -->)", re.DOTALL)


def value_text(value: Any) -> str:
    """A default as it is written in params.yaml."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {value_text(v)}" for k, v in value.items()) + "}"
    return str(value)


def keys_text(keys: dict[str, Key]) -> str:
    """`lr`, `momentum` (0), ...: each key with its default, if it has one."""
    parts = []
    for name, key in keys.items():
        default = "" if key.default is REQUIRED or key.default is None else f" ({value_text(key.default)})"
        doc = f" {key.doc}" if key.doc else ""
        parts.append(f"`{name}`{doc}{default}")
    return ", ".join(parts)


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def layers_table() -> str:
    rows = []
    for name, kind in LAYER_KINDS.items():
        written = "{residual: [<layer>, ...]}" if name == HOLDS_LAYERS else name + " C" * kind.width
        rows.append([f"`{written}`", kind.meaning, keys_text(kind.options)])
    return markdown(["layer", "meaning", "options (default)"], rows)


def step_keys_table() -> str:
    rows = []
    for name, key in STEP_KEYS.items():
        default = "required" if key.default is REQUIRED else value_text(key.default)
        choices = " / ".join(STEP_CHOICES.get(name, ()))
        rows.append([f"`{name}`", key.doc, default, choices])
    return markdown(["key", "meaning", "default", "choices"], rows)


def optimizers_table() -> str:
    rows = [[f"`{name}`", keys_text(keys)] for name, keys in OPTIMIZERS.items()]
    return markdown(["`name`", "keys (default)"], rows)


def schedules_table() -> str:
    rows = [[f"`{name}`", kind.doc, keys_text(kind.keys)] for name, kind in SCHEDULES.items()]
    return markdown(["`name`", "what it does", "keys (default)"], rows)


def augment_table() -> str:
    rows = [[f"`{name}`", key.doc, value_text(key.default)] for name, key in AUGMENT.items()]
    return markdown(["key", "meaning", "default"], rows)


def arm_keys_table() -> str:
    rows = [[f"`{name}`", key.doc] for name, key in ARM_KEYS.items()]
    return markdown(["key", "meaning"], rows)


TABLES = {
    "layers": layers_table,
    "step-keys": step_keys_table,
    "optimizers": optimizers_table,
    "schedules": schedules_table,
    "augment": augment_table,
    "arm-keys": arm_keys_table,
}


def rendered(text: str) -> str:
    """`text` with every marked table replaced by its rendering."""
    return MARKED.sub(lambda m: f"{m.group(1)}{TABLES[m.group('name')]()}\n{m.group(3)}", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether the README would change")
    check = parser.parse_args().check
    text = README.read_text()
    new = rendered(text)
    if check:
        print(f"docs: README tables {'up to date' if new == text else 'out of date'}", file=sys.stderr)
        sys.exit(0 if new == text else 1)
    write_text(README, new)
    print("docs: README tables rewritten", file=sys.stderr)


if __name__ == "__main__":
    main()
