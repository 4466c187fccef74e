"""Reading a params file and checking its sections: one error line naming the key and the reason.

A spec maps each key to a `Key` (its type, default and meaning); the same spec serves
validation and the README's tables (see `docs`). No torch here: the download stage uses it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from mnist_budget.base.errors import StageError

PARAMS_FILE = Path("params.yaml")

REQUIRED = object()


class ParamsError(StageError, ValueError):
    """An invalid entry in a params file; the message names the step and the key."""


class Key(NamedTuple):
    kind: type
    default: Any = REQUIRED
    doc: str = ""


def _type_name(kind: type) -> str:
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string"}.get(
        kind, kind.__name__
    )


def check_value(value: Any, kind: type, where: str) -> Any:
    """Return value as `kind`, or raise ParamsError naming `where`."""
    ok = (isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))) or (
        kind is float and isinstance(value, int) and not isinstance(value, bool)
    )
    if not ok:
        raise ParamsError(f"{where}: expected {_type_name(kind)}, got {value!r}")
    return float(value) if kind is float else value


def read_section(section: Any, spec: dict[str, Key], where: str) -> dict[str, Any]:
    """Validate a mapping against `spec`; fill in the defaults."""
    if not isinstance(section, dict):
        raise ParamsError(f"{where}: expected a mapping, got {section!r}")
    unknown = sorted(set(section) - set(spec))
    if unknown:
        raise ParamsError(f"{where}.{unknown[0]}: unknown key; valid keys: {', '.join(spec)}")
    out = {}
    for key, (kind, default, _) in spec.items():
        if key in section:
            out[key] = check_value(section[key], kind, f"{where}.{key}")
        elif default is REQUIRED:
            raise ParamsError(f"{where}.{key}: missing required key")
        else:
            out[key] = default
    return out


def require(condition: bool, where: str, reason: str) -> None:
    if not condition:
        raise ParamsError(f"{where}: {reason}")


class _StrictLoader(yaml.SafeLoader):
    """YAML that DVC reads the same way: no duplicate keys (DVC's reader rejects them) and
    no merge keys (DVC's `-S` writes through their shared mappings into other entries)."""

    def flatten_mapping(self, node: yaml.MappingNode) -> None:
        for key, _ in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                raise ParamsError(
                    f"{self.name}: line {key.start_mark.line + 1}: YAML merge keys (<<) are not "
                    "supported: state a step's changes in the step, on top of `recipe`"
                )

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # before any key is built: a merge key has no constructor
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ParamsError(f"{self.name}: line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# DVC writes params back with ruamel (YAML 1.2), where `1e-07` is a float: `dvc exp run -S
# 'recipe.optimizer.lr=1e-7'` writes exactly that, which YAML 1.1 (PyYAML) reads as a string.
_StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    with open(path) as f:
        params = yaml.load(f, _StrictLoader)
    require(isinstance(params, dict), str(path), "expected a mapping at the top level")
    return params


def require_choice(value: Any, choices: Any, where: str) -> None:
    """`value` must be one of `choices` (any iterable of names, e.g. a vocabulary dict)."""
    choices = list(choices)
    require(value in choices, where, f"must be one of {', '.join(choices)}")
