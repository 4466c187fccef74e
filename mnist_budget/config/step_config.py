"""params.yaml -> resolved, validated, typed step configs.

A step is its own entry deep-merged over the `recipe`, or over the step before it when the
params say `steps_build_on: previous` (a progression: `resolve`, the one place that
merges): a mapping merges key by key, except a named mapping (`optimizer`,
`schedule`) whose `name` changes, which starts over; anything else replaces. The `resolve`
stage validates every step at once and writes each resolved config to a file that the
step's train stage depends on, so a typo stops before any training and editing one step
retrains that step alone. `StepConfig`'s fields are the one list of step keys: their types,
defaults, choices and meanings serve validation and the README. No YAML merge keys
(`<<: *recipe`): `dvc exp run -S` writes through their shared mappings into other steps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mnist_budget.base.kernels import KERNELS
from mnist_budget.base.layout import TEACHER
from mnist_budget.config.layer_spec import ACTIVATION_NAMES, NO_ACTIVATION, Layer, layer_config, parse_layer
from mnist_budget.config.optim_spec import OPTIMIZERS, SCHEDULES, check_optimizer, check_schedule
from mnist_budget.config.params import REQUIRED, Key, read_section, require, require_choice

# DVC names a foreach stage `train@<step>` and the params key `steps.<step>`:
# dots, slashes, `@` or spaces in a step name would break one or the other.
TRAIN_IMAGES = 60_000
STEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$", re.ASCII)
# a file name holds 255 bytes; the longest a step names is its temporary config file,
# `.<step>.<8 random>.tmp.json`: 100 leaves room to spare
MAX_STEP_NAME = 100
AUGMENT = {
    "rotate": Key(float, 0.0, "±degrees"),
    "translate": Key(float, 0.0, "±fraction of the side, per axis"),
    "scale": Key(float, 0.0, "±fraction"),
    "shear": Key(float, 0.0, "±degrees"),
    "probability": Key(float, 1.0, "the share of images that get the rotation, shift, scale and shear"),
    "erase": Key(float, 0.0, "probability of one black square (cutout)"),
    "erase_size": Key(float, 0.25, "its side, as a fraction of the image side"),
    "elastic": Key(
        float,
        0.0,
        "elastic distortion (Simard et al. 2003), every image: a random displacement field smoothed "
        "by a Gaussian, times this many pixels (34, with `elastic_sigma` 4, moves a pixel 1.3 px (std) "
        "per axis, up to 3.3 px); 0: off",
    ),
    "elastic_sigma": Key(float, 4.0, "the smoothing's std, in pixels: larger, smoother and smaller moves"),
}
# Augment keys added after results were committed: a config holds them only where they are
# set, so every config written before them, and the result trained from it, stays as it was.
AUGMENT_ADDED = ("elastic", "elastic_sigma")
# Knowledge distillation (Hinton et al. 2015): the student's loss mixes the labels'
# cross-entropy with the match to its pipeline's teacher's outputs, both softened by T.
DISTILL = {
    "weight": Key(float, 0.5, "the share of the loss that matches the teacher; the rest is the labels'"),
    "temperature": Key(
        float, 4.0, "T: both nets' logits divided by it before the softmax (the match times T²)"
    ),
}


def _key(kind: type, default: Any = REQUIRED, doc: str = "", choices: tuple[str, ...] = ()) -> Any:
    return field(metadata={"key": Key(kind, default, doc), "choices": choices})


@dataclass(frozen=True)
class StepConfig:
    name: str
    description: str = _key(str, doc='why the step exists (the report\'s "Target")')
    layers: tuple[Layer, ...] = _key(list, doc="the layer list (see Layers)")
    epochs: int = _key(int, doc="passes over the training set")
    batch_size: int = _key(int, doc="images per optimizer step")
    seeds: tuple[int, ...] = _key(
        list,
        [1, 2, 3],
        "each seed trains the whole recipe once (weights, data order, augmentation); the step's "
        "results are over these seeds",
    )
    validation: int = _key(
        int,
        0,
        "training images held out to select recipes on (stratified by label, the same images for "
        "every seed and step); they are scored each epoch beside the test set. 0: train on all 60,000",
    )
    optimizer: Mapping[str, Any] = _key(dict, doc="`name` and its keys: see Optimizers")
    schedule: Mapping[str, Any] = _key(dict, {"name": "none"}, "`name` and its keys: see Schedules")
    augment: Mapping[str, float] = _key(dict, {}, "random per-image transforms: see Augmentation")
    label_smoothing: float = _key(float, 0.0, "cross-entropy label smoothing")
    distill: Mapping[str, float] = _key(
        dict,
        {},
        "learn from the pipeline's `teacher` too: its `weight` and `temperature` (see Distillation); "
        "{}: off. A net trained so is another exercise: its results are reported apart",
    )
    ema: float = _key(
        float,
        0.0,
        "decay of an exponential moving average of the weights (and BN statistics), which is "
        "what gets evaluated and saved; 0: off",
    )
    bn: bool = _key(bool, True, "batch norm after each conv")
    bn_affine: bool = _key(
        bool,
        True,
        "batch norm learns a scale and shift per channel; false: it only normalises (2 params "
        "per channel saved, for channels elsewhere)",
    )
    bn_order: str = _key(
        str, "after_act", "batch norm after or before the activation", ("after_act", "before_act")
    )
    activation: str = _key(
        str,
        "relu",
        "default activation of every layer",
        tuple(name for name in ACTIVATION_NAMES if name != NO_ACTIVATION),
    )
    dropout: float = _key(float, 0.0, "default dropout of every conv layer")
    conv_bias: bool = _key(bool, False, "default bias of every conv layer")
    device: str = _key(str, "auto", "`auto`: CUDA when present", ("auto", "cpu", "cuda"))
    precision: str = _key(
        str,
        "fp32",
        "`bf16`: the training forward pass under bf16 autocast (weights, optimizer and evaluation stay fp32)",
        ("fp32", "bf16"),
    )
    kernels: str = _key(
        str,
        "portable",
        "`portable`: oneDNN, ATen and MKL held to AVX2 kernels, the same bytes on every x86-64 CPU "
        "(docs/reproducibility.md); `native`: the CPU's best kernels, other bytes on another kind of CPU",
        KERNELS,
    )


STEP_FIELDS = [f for f in fields(StepConfig) if "key" in f.metadata]
STEP_KEYS: dict[str, Key] = {f.name: f.metadata["key"] for f in STEP_FIELDS}
# Read by the reports, never by training: left out of the resolved config, so rewording
# a description retrains nothing.
NOT_TRAINED = ("description",)
# Keys of a step's entry that are no idea of a progression: its prose, and how many seeds
# measure it (the headline's nets train more). The ablation takes out the rest.
NOT_IDEAS = (*NOT_TRAINED, "seeds")
# Step keys added after results were committed: written into a config only where set (as
# `AUGMENT_ADDED`), so that no committed config, and no result, changes with them.
STEP_ADDED = ("distill",)
# Keys that once were step keys, and what replaced them.
RETIRED_KEYS = {
    "seed": "is now `seeds`, a list: seeds: [1]",
    "threads": (
        "is no longer a step key: how many seeds train side by side (one thread each) changes no "
        "result, so it is set by $MNIST_THREADS (default: one per core)"
    ),
}
STEP_CHOICES: dict[str, tuple[str, ...]] = {
    f.name: f.metadata["choices"] for f in STEP_FIELDS if f.metadata["choices"]
}


def _named(section: Any, table: dict[str, dict[str, Key]], where: str) -> dict[str, Any]:
    """A mapping whose `name` picks its keys from `table` (optimizers, schedules)."""
    require(isinstance(section, dict) and "name" in section, f"{where}.name", "missing")
    name = section["name"]
    require(name in table, f"{where}.name", f"unknown {name!r}; valid: {', '.join(table)}")
    return read_section(section, {"name": Key(str), **table[name]}, where)


def parse_step(name: str, entry: Any, where: str = "") -> StepConfig:
    """Validate one `steps.<name>` entry (or the section `where`); raise ParamsError naming
    the step and key."""
    where = where or f"steps.{name}"
    require(
        isinstance(name, str) and bool(STEP_NAME.match(name)),
        where,
        "a step name may hold only ASCII letters, digits, '-' and '_', and start with a letter or "
        "digit (DVC uses it in stage names)",
    )
    require(
        len(name) <= MAX_STEP_NAME,
        where,
        f"a step name may be at most {MAX_STEP_NAME} characters long ({len(name)} here): it names "
        "files and folders",
    )
    for key, reason in RETIRED_KEYS.items():
        require(not (isinstance(entry, dict) and key in entry), f"{where}.{key}", reason)
    values = read_section(entry, STEP_KEYS, where)
    for key in ("epochs", "batch_size"):
        require(values[key] >= 1, f"{where}.{key}", "must be at least 1")
    require(
        0 <= values["validation"] < TRAIN_IMAGES,
        f"{where}.validation",
        f"holds out 0 to {TRAIN_IMAGES - 1} of the {TRAIN_IMAGES:,} training images",
    )
    seeds = values["seeds"]
    require(
        bool(seeds) and all(type(s) is int and s >= 0 for s in seeds) and len(set(seeds)) == len(seeds),
        f"{where}.seeds",
        f"expected a list of distinct non-negative integers, got {seeds!r}",
    )
    values["seeds"] = tuple(seeds)
    require(0 <= values["dropout"] < 1, f"{where}.dropout", "must be in [0, 1)")
    require(0 <= values["label_smoothing"] < 1, f"{where}.label_smoothing", "must be in [0, 1)")
    require(0 <= values["ema"] < 1, f"{where}.ema", "is a decay in [0, 1), 0 for none")
    for key, choices in STEP_CHOICES.items():
        require_choice(values[key], choices, f"{where}.{key}")

    optimizer = _named(values["optimizer"], OPTIMIZERS, f"{where}.optimizer")
    check_optimizer(optimizer, f"{where}.optimizer")
    schedule = _named(
        values["schedule"], {name: kind.keys for name, kind in SCHEDULES.items()}, f"{where}.schedule"
    )
    check_schedule(schedule, f"{where}.schedule", values["validation"])
    augment = read_section(values["augment"], AUGMENT, f"{where}.augment")
    for key, value in augment.items():
        require(value >= 0, f"{where}.augment.{key}", "must be >= 0")
    require(augment["erase"] <= 1, f"{where}.augment.erase", "is a probability, at most 1")
    require(augment["probability"] <= 1, f"{where}.augment.probability", "is a probability, at most 1")
    require(augment["scale"] < 1, f"{where}.augment.scale", "must be below 1")
    require(augment["elastic_sigma"] > 0, f"{where}.augment.elastic_sigma", "must be above 0")
    if values["distill"]:  # {}: off; any key turns it on, the others at their defaults
        distill = read_section(values["distill"], DISTILL, f"{where}.distill")
        require(0 < distill["weight"] <= 1, f"{where}.distill.weight", "is a share of the loss, in (0, 1]")
        require(distill["temperature"] > 0, f"{where}.distill.temperature", "must be above 0")
        values["distill"] = distill

    layers = values["layers"]
    require(bool(layers), f"{where}.layers", "needs at least one layer")
    values["layers"] = tuple(parse_layer(s, f"{where}.layers[{i}]") for i, s in enumerate(layers))
    values.update(optimizer=optimizer, schedule=schedule, augment=augment)
    return StepConfig(name=name, **values)


def config_of(step: StepConfig) -> dict[str, Any]:
    """What `step` trains with, as reports/configs/<step>.json and every model file hold it:
    every key with its defaults filled in (a value written out or left to its default gives
    the same file), and nothing that cannot change the result (`NOT_TRAINED`)."""
    config = {}
    for key, spec in STEP_KEYS.items():
        if key in NOT_TRAINED:
            continue
        value = getattr(step, key)
        if key == "layers":
            value = [layer_config(layer) for layer in value]
        elif isinstance(value, tuple):
            value = list(value)
        elif key in STEP_ADDED and value == spec.default:
            continue
        elif key == "augment":
            value = {k: v for k, v in value.items() if k not in AUGMENT_ADDED or v != AUGMENT[k].default}
        elif isinstance(value, Mapping):
            value = dict(value)
        config[key] = value
    return config


def read_config(name: str, config: dict[str, Any]) -> StepConfig:
    """A resolved config (`config_of`'s output) back into the step it trains."""
    return parse_step(name, {**config, **dict.fromkeys(NOT_TRAINED, "")})


@dataclass(frozen=True)
class Target:
    test_accuracy: float
    max_params: int
    max_epochs: int


TARGET_KEYS = {
    "test_accuracy": Key(float, REQUIRED, "final-epoch accuracy on the 10,000 test images"),
    "max_params": Key(int, REQUIRED, "trainable + non-trainable (BN running mean and variance)"),
    "max_epochs": Key(int, REQUIRED),
}


def load_target(params: dict[str, Any]) -> Target:
    values = read_section(params.get("target"), TARGET_KEYS, "target")
    require(0 < values["test_accuracy"] <= 1, "target.test_accuracy", "is a fraction in (0, 1]")
    return Target(**values)


def merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` deep-merged over `base` (see the module's docstring)."""
    out = dict(base)
    for key, value in changes.items():
        below = out.get(key)
        out[key] = merged(below, value) if merges_into(value, below) else value
    return out


def merges_into(value: Any, below: Any) -> bool:
    """Whether `value` merges key by key into `below`: both mappings, and `value` names no
    other `name` (another optimizer or schedule starts over)."""
    return (
        isinstance(below, dict)
        and isinstance(value, dict)
        and value.get("name", below.get("name")) == below.get("name")
    )


# How a step's entry reads (`steps_build_on`): `previous`, the step before it plus this
# entry (the first step: the recipe plus its entry), so that each entry holds its one idea
# and a change to a step carries into the steps after it, as in a progression; `recipe`,
# the recipe plus this entry, each step on its own (candidates, reference systems).
BUILD_ON = ("recipe", "previous")


def resolve(params: dict[str, Any], section: str = "steps") -> dict[str, dict[str, Any]]:
    """Each step of `section` as it trains: its entry merged over the recipe or over the
    step before it (`steps_build_on`), in params order (the order of the progression)."""
    # required (it may be {}): every stage that resolves steps declares it to DVC
    recipe = params.get("recipe")
    require(
        isinstance(recipe, dict), "recipe", f"expected a mapping (every step starts from it), got {recipe!r}"
    )
    build_on = params.get("steps_build_on", "recipe")
    require_choice(build_on, BUILD_ON, "steps_build_on")
    steps = params.get(section)
    require(isinstance(steps, dict) and bool(steps), section, "needs at least one step")
    resolved, below = {}, recipe
    for name, entry in steps.items():
        require(isinstance(entry, dict), f"{section}.{name}", f"expected a mapping, got {entry!r}")
        resolved[name] = merged(below, entry)
        if build_on == "previous":
            # its description is the step's own, never the next one's
            below = {key: value for key, value in resolved[name].items() if key != "description"}
    return resolved


def load_steps(params: dict[str, Any], section: str = "steps") -> dict[str, StepConfig]:
    """All steps of a section, resolved and validated, in params order."""
    return {name: parse_step(name, entry) for name, entry in resolve(params, section).items()}


def load_teacher(params: dict[str, Any], steps: dict[str, StepConfig]) -> StepConfig | None:
    """The pipeline's teacher (its `teacher:` section over the recipe), or None; checked
    against `steps`: no step takes its name, and a step that distils has one to learn from."""
    students = [name for name, step in steps.items() if step.distill]
    if TEACHER not in params:
        require(
            not students,
            f"steps.{students[0] if students else ''}.distill",
            f"needs a teacher to learn from: a `{TEACHER}:` section in the params (a step of its own)",
        )
        return None
    require(
        TEACHER not in steps,
        f"steps.{TEACHER}",
        f"is the name of the pipeline's `{TEACHER}:`; rename the step",
    )
    entry = params[TEACHER]
    require(isinstance(entry, dict), TEACHER, f"expected a step's mapping, got {entry!r}")
    teacher = parse_step(TEACHER, merged(params.get("recipe") or {}, entry), TEACHER)
    require(len(teacher.seeds) == 1, f"{TEACHER}.seeds", "a teacher trains once: give it one seed")
    require(not teacher.distill, f"{TEACHER}.distill", "a teacher learns from the labels alone")
    return teacher


def load_gpu_steps(params: dict[str, Any]) -> dict[str, StepConfig]:
    """Steps shipped as configs only: too big to train on a CPU in reasonable time."""
    entries = params.get("gpu_steps") or {}
    require(isinstance(entries, dict), "gpu_steps", "expected a mapping of step name to step")
    clashes = sorted(set(entries) & set(params.get("steps") or {}))
    require(not clashes, f"gpu_steps.{clashes[0] if clashes else ''}", "is also in `steps`")
    return load_steps(params, "gpu_steps") if entries else {}
