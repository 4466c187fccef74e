"""params.yaml -> validated, typed configs.

Every stage reads its settings through here, so a bad entry stops the stage before any
work with one message naming the step and the key. Defaults shared by several steps are
written in params.yaml with YAML anchors (`<<: *recipe`), never inherited here: DVC tracks
the resolved `steps.<name>` section, so whatever a step trains with must be in it.
"""

from __future__ import annotations

import argparse
import functools
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PARAMS_FILE = Path("params.yaml")
# DVC names a foreach stage `train@<step>` and the params key `steps.<step>`:
# dots, slashes, `@` or spaces in a step name would break one or the other.
STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
REQUIRED = object()


class ParamsError(ValueError):
    """An invalid entry in params.yaml; the message names the step and the key."""


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


def read_section(section: Any, spec: dict[str, tuple[type, Any]], where: str) -> dict[str, Any]:
    """Validate a mapping against `spec` = {key: (type, default or REQUIRED)}."""
    if not isinstance(section, dict):
        raise ParamsError(f"{where}: expected a mapping, got {section!r}")
    unknown = sorted(set(section) - set(spec))
    if unknown:
        raise ParamsError(f"{where}.{unknown[0]}: unknown key; valid keys: {', '.join(spec)}")
    out = {}
    for key, (kind, default) in spec.items():
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


# --- layers -----------------------------------------------------------------------------
# A layer is a string `<kind> [<width>] [key=value ...]`, e.g. `conv 16 k=3 p=1`, or a
# mapping for the layers that hold others: `{residual: [<layer>, ...]}`.

ACTIVATIONS = ("relu", "prelu", "silu", "none")
CONV_OPTS = {"k": int, "p": int, "s": int, "bias": bool, "bn": bool, "act": str, "drop": float}
LAYER_KINDS: dict[str, tuple[bool, dict[str, type]]] = {
    # kind: (takes a width, options)
    "conv": (True, CONV_OPTS),
    "sepconv": (True, CONV_OPTS),
    "maxpool": (False, {"k": int, "s": int}),
    "avgpool": (False, {"k": int, "s": int}),
    "gap": (False, {}),
    "dense": (True, {"bias": bool, "act": str, "drop": float}),
    "inception": (
        False,
        {"b1": int, "b3": int, "b5": int, "pool": int, "bias": bool, "bn": bool, "act": str},
    ),
}
INCEPTION_BRANCHES = ("b1", "b3", "b5", "pool")


@dataclass(frozen=True)
class Layer:
    kind: str
    width: int | None = None
    opts: dict[str, Any] = field(default_factory=dict)  # only what the params spelled out
    body: tuple[Layer, ...] = ()  # residual: the layers the skip connection goes around
    text: str = ""


def _parse_option(token: str, allowed: dict[str, type], where: str) -> tuple[str, Any]:
    key, sep, raw = token.partition("=")
    require(bool(sep), where, f"expected key=value, got {token!r}")
    require(key in allowed, where, f"unknown option {key!r}; valid: {', '.join(allowed)}")
    value = yaml.safe_load(raw)
    return key, check_value(value, allowed[key], f"{where} {key}")


def parse_layer(spec: Any, where: str) -> Layer:
    """Parse one entry of a step's `layers` list."""
    if isinstance(spec, dict):
        require(list(spec) == ["residual"], where, "a mapping layer must be {residual: [...]}")
        body = spec["residual"]
        require(isinstance(body, list) and body, where, "residual needs a non-empty layer list")
        return Layer(
            "residual",
            body=tuple(parse_layer(s, f"{where}.residual[{i}]") for i, s in enumerate(body)),
            text="residual",
        )
    require(isinstance(spec, str) and spec.strip(), where, f"expected a layer string, got {spec!r}")
    kind, *tokens = spec.split()
    require(
        kind in LAYER_KINDS,
        where,
        f"unknown layer {kind!r}; valid: {', '.join([*LAYER_KINDS, 'residual'])}",
    )
    takes_width, allowed = LAYER_KINDS[kind]
    where = f"{where} ({kind})"
    width = None
    if takes_width:
        require(bool(tokens) and tokens[0].isdigit(), where, "needs a width, e.g. `conv 16`")
        width = int(tokens.pop(0))
        require(width > 0, where, "width must be positive")
    opts = dict(_parse_option(t, allowed, where) for t in tokens)
    _check_layer_options(kind, opts, where)
    return Layer(kind, width, opts, text=spec)


def _check_layer_options(kind: str, opts: dict[str, Any], where: str) -> None:
    for key in ("k", "s"):
        require(opts.get(key, 1) >= 1, where, f"{key} must be at least 1")
    require(opts.get("p", 0) >= 0, where, "p must be at least 0")
    require(0 <= opts.get("drop", 0.0) < 1, where, "drop must be in [0, 1)")
    act = opts.get("act", "relu")
    require(act in ACTIVATIONS, where, f"unknown act {act!r}; valid: {', '.join(ACTIVATIONS)}")
    if kind == "inception":
        widths = {b: opts[b] for b in INCEPTION_BRANCHES if b in opts}
        require(bool(widths), where, f"needs at least one branch of {INCEPTION_BRANCHES}")
        for branch, width in widths.items():
            require(width >= 1, where, f"branch width {branch}={width} must be at least 1")


# --- steps ------------------------------------------------------------------------------

OPTIMIZERS: dict[str, dict[str, tuple[type, Any]]] = {
    "sgd": {
        "name": (str, REQUIRED),
        "lr": (float, REQUIRED),
        "momentum": (float, 0.0),
        "nesterov": (bool, False),
        "weight_decay": (float, 0.0),
    },
    "adam": {"name": (str, REQUIRED), "lr": (float, REQUIRED), "weight_decay": (float, 0.0)},
    "adamw": {"name": (str, REQUIRED), "lr": (float, REQUIRED), "weight_decay": (float, 0.01)},
}
SCHEDULES: dict[str, dict[str, tuple[type, Any]]] = {
    "none": {"name": (str, REQUIRED)},
    "step": {"name": (str, REQUIRED), "step_size": (int, REQUIRED), "gamma": (float, 0.1)},
    "multistep": {"name": (str, REQUIRED), "milestones": (list, REQUIRED), "gamma": (float, 0.1)},
    "onecycle": {
        "name": (str, REQUIRED),
        "max_lr": (float, REQUIRED),
        "pct_start": (float, 0.3),
        "div_factor": (float, 25.0),
        "final_div_factor": (float, 1e4),
        "anneal": (str, "cos"),
    },
    "cosine": {"name": (str, REQUIRED), "min_lr": (float, 0.0)},
    # torch's ReduceLROnPlateau on the per-epoch test accuracy, as the seed notebooks use it
    "plateau": {
        "name": (str, REQUIRED),
        "factor": (float, 0.1),
        "patience": (int, 2),
        "min_lr": (float, 0.0),
    },
    # the Keras challenge's rule: cut the LR when accuracy has not beaten its value
    # `window` epochs ago and the LR was not cut in the last `window` epochs
    "keras_plateau": {
        "name": (str, REQUIRED),
        "factor": (float, 0.5),
        "window": (int, 3),
        "min_lr": (float, 0.0),
    },
}
AUGMENT = {
    "rotate": (float, 0.0),  # degrees, uniform in [-rotate, rotate]
    "translate": (float, 0.0),  # fraction of the image side, uniform in [-t, t] per axis
    "scale": (float, 0.0),  # relative, uniform in [1 - scale, 1 + scale]
    "shear": (float, 0.0),  # degrees
    "erase": (float, 0.0),  # probability of one random black rectangle per image (cutout)
    "erase_size": (float, 0.25),  # its side, as a fraction of the image side
}
STEP_KEYS: dict[str, tuple[type, Any]] = {
    "description": (str, REQUIRED),
    "layers": (list, REQUIRED),
    "epochs": (int, REQUIRED),
    "batch_size": (int, REQUIRED),
    "seed": (int, REQUIRED),
    "optimizer": (dict, REQUIRED),
    "schedule": (dict, {"name": "none"}),
    "augment": (dict, {}),
    "label_smoothing": (float, 0.0),
    "ema": (float, 0.0),  # decay of an exponential moving average of the weights; 0: off
    "bn": (bool, True),
    "bn_order": (str, "after_act"),
    "activation": (str, "relu"),
    "dropout": (float, 0.0),
    "conv_bias": (bool, False),
    "threads": (int, 0),
    "device": (str, "auto"),
    "precision": (str, "fp32"),  # bf16: autocast the training forward pass (evaluation stays fp32)
}
BN_ORDERS = ("after_act", "before_act")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class StepConfig:
    name: str
    description: str
    layers: tuple[Layer, ...]
    epochs: int
    batch_size: int
    seed: int
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    augment: dict[str, float]
    label_smoothing: float
    ema: float
    bn: bool
    bn_order: str
    activation: str
    dropout: float
    conv_bias: bool
    threads: int
    device: str
    precision: str
    raw: dict[str, Any]  # the resolved params entry, saved inside the model file


def _named(section: Any, table: dict[str, dict], where: str) -> dict[str, Any]:
    require(isinstance(section, dict) and "name" in section, f"{where}.name", "missing")
    name = section["name"]
    require(name in table, f"{where}.name", f"unknown {name!r}; valid: {', '.join(table)}")
    return read_section(section, table[name], where)


def parse_step(name: str, entry: Any) -> StepConfig:
    """Validate one `steps.<name>` entry; raise ParamsError naming the step and key."""
    where = f"steps.{name}"
    require(
        isinstance(name, str) and bool(STEP_NAME.match(name)),
        where,
        "a step name may hold only letters, digits, '-' and '_' (DVC uses it in stage names)",
    )
    values = read_section(entry, STEP_KEYS, where)
    for key in ("epochs", "batch_size"):
        require(values[key] >= 1, f"{where}.{key}", "must be at least 1")
    require(values["threads"] >= 0, f"{where}.threads", "must be 0 (all cores) or more")
    require(0 <= values["dropout"] < 1, f"{where}.dropout", "must be in [0, 1)")
    require(0 <= values["label_smoothing"] < 1, f"{where}.label_smoothing", "must be in [0, 1)")
    require(0 <= values["ema"] < 1, f"{where}.ema", "is a decay in [0, 1), 0 for none")
    for key, choices in (
        ("bn_order", BN_ORDERS),
        ("activation", ACTIVATIONS[:-1]),
        ("device", DEVICES),
        ("precision", PRECISIONS),
    ):
        require(values[key] in choices, f"{where}.{key}", f"must be one of {', '.join(choices)}")

    optimizer = _named(values["optimizer"], OPTIMIZERS, f"{where}.optimizer")
    require(optimizer["lr"] > 0, f"{where}.optimizer.lr", f"must be positive, got {optimizer['lr']}")
    require(0 <= optimizer.get("momentum", 0) < 1, f"{where}.optimizer.momentum", "must be in [0, 1)")
    require(optimizer["weight_decay"] >= 0, f"{where}.optimizer.weight_decay", "must be >= 0")
    schedule = _named(values["schedule"], SCHEDULES, f"{where}.schedule")
    _check_schedule(schedule, values["epochs"], f"{where}.schedule")
    augment = read_section(values["augment"], AUGMENT, f"{where}.augment")
    for key, value in augment.items():
        require(value >= 0, f"{where}.augment.{key}", "must be >= 0")
    require(augment["erase"] <= 1, f"{where}.augment.erase", "is a probability, at most 1")
    require(augment["scale"] < 1, f"{where}.augment.scale", "must be below 1")

    layers = values["layers"]
    require(bool(layers), f"{where}.layers", "needs at least one layer")
    values["layers"] = tuple(parse_layer(s, f"{where}.layers[{i}]") for i, s in enumerate(layers))
    values.update(optimizer=optimizer, schedule=schedule, augment=augment)
    return StepConfig(name=name, raw=dict(entry), **values)


def _check_schedule(schedule: dict[str, Any], epochs: int, where: str) -> None:
    name = schedule["name"]
    if name == "step":
        require(schedule["step_size"] >= 1, f"{where}.step_size", "must be at least 1")
    if name == "multistep":
        marks = schedule["milestones"]
        require(
            all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in marks)
            and marks == sorted(marks),
            f"{where}.milestones",
            "must be increasing epoch numbers",
        )
    if name == "onecycle":
        require(schedule["max_lr"] > 0, f"{where}.max_lr", "must be positive")
        require(0 < schedule["pct_start"] < 1, f"{where}.pct_start", "must be in (0, 1)")
        require(schedule["anneal"] in ("cos", "linear"), f"{where}.anneal", "must be cos or linear")
    if "gamma" in schedule or "factor" in schedule:
        key = "gamma" if "gamma" in schedule else "factor"
        require(0 < schedule[key] < 1, f"{where}.{key}", "must be in (0, 1)")
    if name in ("plateau", "keras_plateau"):
        key = "patience" if name == "plateau" else "window"
        require(schedule[key] >= 1, f"{where}.{key}", "must be at least 1")


@dataclass(frozen=True)
class Target:
    test_accuracy: float
    max_params: int
    max_epochs: int


TARGET_KEYS = {
    "test_accuracy": (float, REQUIRED),
    "max_params": (int, REQUIRED),
    "max_epochs": (int, REQUIRED),
}


def load_params(path: Path = PARAMS_FILE) -> dict[str, Any]:
    with open(path) as f:
        params = yaml.safe_load(f)
    require(isinstance(params, dict), str(path), "expected a mapping at the top level")
    return params


def load_target(params: dict[str, Any]) -> Target:
    values = read_section(params.get("target"), TARGET_KEYS, "target")
    require(0 < values["test_accuracy"] <= 1, "target.test_accuracy", "is a fraction in (0, 1]")
    return Target(**values)


def load_steps(params: dict[str, Any]) -> dict[str, StepConfig]:
    """All steps, validated, in params order (the order of the progression)."""
    steps = params.get("steps")
    require(isinstance(steps, dict) and bool(steps), "steps", "needs at least one step")
    return {name: parse_step(name, entry) for name, entry in steps.items()}


def load_step(name: str, params: dict[str, Any]) -> StepConfig:
    """One step, after validating every step: a typo in a later step then fails before
    an earlier one spends minutes training (validation reads, but never uses, the others)."""
    steps = load_steps(params)
    require(name in steps, f"steps.{name}", f"no such step; steps are: {', '.join(steps)}")
    return steps[name]


def pipeline_parser(description: str) -> argparse.ArgumentParser:
    """The command line every stage shares: `--pipeline` picks the params file and outputs."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--pipeline", default="main", help="main (params.yaml) or a pipeline folder, e.g. references"
    )
    return parser


def exit_on_params_error(main: Callable[..., None]) -> Callable[..., None]:
    """Print a ParamsError as one line and exit 2, instead of a traceback."""

    @functools.wraps(main)
    def run(*args: Any) -> None:
        try:
            main(*args)
        except ParamsError as error:
            print(f"error: invalid params: {error}", file=sys.stderr)
            sys.exit(2)

    return run
