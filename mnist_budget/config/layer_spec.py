"""The layer language as plain data: a step's `layers` list parsed and validated, no torch.

A layer is a string `<kind> [<width>] [key=value ...]`, e.g. `conv 16 k=3 p=1`, or a mapping
for the layers that hold others: `{residual: [<layer>, ...]}`. `LAYER_KINDS` is the one list
of kinds: parsing, `nets` (which builds each kind) and the README's table all read it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from mnist_budget.config.params import Key, check_value, require

# The activations a layer may ask for; `nets.ACTIVATIONS` builds each.
ACTIVATION_NAMES = ("relu", "prelu", "silu", "none")
NO_ACTIVATION = "none"  # a layer may ask for it; a step's default activation may not
# Inception branch -> the kernel of its conv (`pool` is a 3x3 max pool, then a 1x1 conv).
INCEPTION_BRANCHES = {"b1": 1, "b3": 3, "b5": 5, "pool": 1}
HOLDS_LAYERS = "residual"  # the one kind written as a mapping of a layer list


@dataclass(frozen=True)
class Layer:
    kind: str
    width: int | None = None
    opts: dict[str, Any] = field(default_factory=dict)  # only what the params spelled out
    body: tuple[Layer, ...] = ()  # residual: the layers the skip connection goes around
    text: str = ""


@dataclass(frozen=True)
class LayerKind:
    meaning: str  # the README's layer table
    width: bool = False  # takes a width: `conv 16`
    weights: bool = False  # has weights: the last such layer produces the logits
    options: dict[str, Key] = field(default_factory=dict)  # default None: the step's setting


CONV_OPTIONS = {
    "k": Key(int, 3, "kernel"),
    "p": Key(int, 0, "padding"),
    "s": Key(int, 1, "stride"),
    # a k x k kernel spread over d*(k-1)+1 pixels: a wider view for no weights
    "d": Key(int, 1, "dilation"),
    "bias": Key(bool, None, "(step `conv_bias`)"),
    "bn": Key(bool, None, "(step `bn`)"),
    "act": Key(str, None, f"{' / '.join(ACTIVATION_NAMES)} (step `activation`)"),
    "drop": Key(float, None, "(step `dropout`)"),
}
POOL_OPTIONS = {"k": Key(int, 2, "kernel"), "s": Key(int, None, "stride (= k)")}
LAYER_KINDS: dict[str, LayerKind] = {
    "conv": LayerKind(
        "C-channel convolution, then BN and activation (order per step) and dropout",
        width=True,
        weights=True,
        options=CONV_OPTIONS,
    ),
    "sepconv": LayerKind(
        "depthwise k×k + pointwise 1×1 (depthwise-separable)", width=True, weights=True, options=CONV_OPTIONS
    ),
    "maxpool": LayerKind("max pooling", options=POOL_OPTIONS),
    "avgpool": LayerKind("average pooling", options=POOL_OPTIONS),
    "gap": LayerKind("global average pooling to 1×1"),
    # where a net drops activations other than after a weight layer's BN and activation
    # (`drop=`): after a pool, say, as Keras notebooks do
    "dropout": LayerKind("dropout on its input, a share `p` zeroed", options={"p": Key(float, 0.5, "probability")}),
    "dense": LayerKind(
        "flatten + linear layer",
        width=True,
        weights=True,
        options={"bias": Key(bool, True), "act": CONV_OPTIONS["act"], "drop": CONV_OPTIONS["drop"]},
    ),
    "inception": LayerKind(
        "parallel branches concatenated on channels: 1×1, 3×3, 5×5 and 3×3-max-pool + 1×1",
        weights=True,
        options={
            **{
                name: Key(int, None, f"branch width ({k}×{k} conv)") for name, k in INCEPTION_BRANCHES.items()
            },
            **{key: CONV_OPTIONS[key] for key in ("bias", "bn", "act")},
        },
    ),
    HOLDS_LAYERS: LayerKind("x + body(x) around the listed layers (same output shape)"),
}


def option_value(layer: Layer, key: str) -> Any:
    """The layer's option, else the kind's default."""
    return layer.opts.get(key, LAYER_KINDS[layer.kind].options[key].default)


def _parse_option(token: str, allowed: dict[str, Key], where: str) -> tuple[str, Any]:
    key, sep, raw = token.partition("=")
    require(bool(sep), where, f"expected key=value, got {token!r}")
    require(key in allowed, where, f"unknown option {key!r}; valid: {', '.join(allowed)}")
    value = yaml.safe_load(raw)
    return key, check_value(value, allowed[key].kind, f"{where} {key}")


def parse_layer(spec: Any, where: str) -> Layer:
    """Parse one entry of a step's `layers` list."""
    if isinstance(spec, dict):
        require(list(spec) == [HOLDS_LAYERS], where, "a mapping layer must be {residual: [...]}")
        body = spec[HOLDS_LAYERS]
        require(isinstance(body, list) and body, where, "residual needs a non-empty layer list")
        return Layer(
            HOLDS_LAYERS,
            body=tuple(parse_layer(s, f"{where}.residual[{i}]") for i, s in enumerate(body)),
            text=HOLDS_LAYERS,
        )
    require(isinstance(spec, str) and spec.strip(), where, f"expected a layer string, got {spec!r}")
    kind, *tokens = spec.split()
    require(kind in LAYER_KINDS, where, f"unknown layer {kind!r}; valid: {', '.join(LAYER_KINDS)}")
    require(kind != HOLDS_LAYERS, where, "residual is a mapping: {residual: [<layer>, ...]}")
    spec_kind = LAYER_KINDS[kind]
    where = f"{where} ({kind})"
    width = None
    if spec_kind.width:
        require(bool(tokens) and tokens[0].isdigit(), where, "needs a width, e.g. `conv 16`")
        width = int(tokens.pop(0))
        require(width > 0, where, "width must be positive")
    opts = dict(_parse_option(t, spec_kind.options, where) for t in tokens)
    _check_layer_options(kind, opts, where)
    return Layer(kind, width, opts, text=spec)


def _check_layer_options(kind: str, opts: dict[str, Any], where: str) -> None:
    for key in ("k", "s", "d"):
        require(opts.get(key, 1) >= 1, where, f"{key} must be at least 1")
    require(opts.get("p", 0) >= 0, where, "p must be at least 0")
    require(0 <= opts.get("drop", 0.0) < 1, where, "drop must be in [0, 1)")
    if kind == "dropout":
        require(0 < opts.get("p", 0.5) < 1, where, "p must be in (0, 1)")
    act = opts.get("act", NO_ACTIVATION)
    require(act in ACTIVATION_NAMES, where, f"unknown act {act!r}; valid: {', '.join(ACTIVATION_NAMES)}")
    if kind == "inception":
        widths = {b: opts[b] for b in INCEPTION_BRANCHES if b in opts}
        require(bool(widths), where, f"needs at least one branch of {tuple(INCEPTION_BRANCHES)}")
        for branch, width in widths.items():
            require(width >= 1, where, f"branch width {branch}={width} must be at least 1")


def _option_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def layer_config(layer: Layer) -> Any:
    """A layer as the resolved config writes it: kind, width and the options it sets, in the
    kind's order, without those equal to the kind's default (`conv 16 k=3` is `conv 16`)."""
    if layer.kind == HOLDS_LAYERS:
        return {HOLDS_LAYERS: [layer_config(inner) for inner in layer.body]}
    options = LAYER_KINDS[layer.kind].options
    words = [layer.kind, *([str(layer.width)] if layer.width is not None else [])]
    words += [
        f"{key}={_option_text(layer.opts[key])}"
        for key, spec in options.items()
        if key in layer.opts and layer.opts[key] != spec.default
    ]
    return " ".join(words)
