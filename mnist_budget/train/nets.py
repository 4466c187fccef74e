"""A step's parsed layers (`layer_spec`) built into an nn.Module.

Shapes are inferred while building, so a layer that does not fit its input fails here,
naming the step, the layer index and the reason, before any training. One builder serves
every step: the progression is data, not model classes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mnist_budget.base.mnist import IMAGE_SHAPE, NUM_CLASSES
from mnist_budget.config.layer_spec import (
    HOLDS_LAYERS,
    INCEPTION_BRANCHES,
    LAYER_KINDS,
    NO_ACTIVATION,
    Layer,
    option_value,
)
from mnist_budget.config.params import ParamsError

if TYPE_CHECKING:
    from mnist_budget.config.step_config import StepConfig

# Each of `layer_spec.ACTIVATION_NAMES` -> the modules it adds after a layer of `channels` channels.
ACTIVATIONS: dict[str, Callable[[int], list[nn.Module]]] = {
    "relu": lambda channels: [nn.ReLU()],
    "prelu": lambda channels: [nn.PReLU(channels)],
    "silu": lambda channels: [nn.SiLU()],
    "none": lambda channels: [],
}
# What the last weight layer (the logits) gets unless its options ask for more.
LOGITS_DEFAULTS = {"bn": False, "act": NO_ACTIVATION, "drop": 0.0}


@dataclass
class Shape:
    channels: int
    height: int
    width: int
    rf: int = 1  # receptive field of one output pixel, in input pixels
    jump: int = 1  # input pixels between two neighbouring output pixels

    def as_tuple(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)


@dataclass
class BuiltLayer:
    text: str
    module: nn.Module
    shape: Shape


class Inception(nn.Module):
    """Parallel branches concatenated on channels (GoogLeNet's module)."""

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class GlobalAvgPool(nn.Module):
    """The mean of each channel's map, (N, C, H, W) -> (N, C, 1, 1): `gap` on CUDA, where its
    backward (an expand and a division) is deterministic. No parameters or buffers: a model's
    state_dict keeps its keys.

    On the CPU it gives AdaptiveAvgPool2d(1)'s bits (torch computes that as this mean, then
    restrides a channels-last result in place): forward and input gradient equal in 1,250
    cases (fp32 and bf16, channels-last and contiguous, batches 64 and 32, 10-48 channels,
    maps 6x6, 5x5, 3x3 and 1x1; one thread, with and without the portable pins), and so are
    the output and every parameter's gradient of one batch through each gap net of the
    progression. The CPU keeps AdaptiveAvgPool2d all the same: a model file is the exported
    graph, where this is `aten.mean.dim`, not `aten.adaptive_avg_pool2d`, so the bytes of every
    CPU model file (and their md5 in dvc.lock) would change with no number changing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean((2, 3), keepdim=True)


class Residual(nn.Module):
    """x + body(x): a skip connection around a group of layers of unchanged shape."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _spatial(shape: Shape, channels: int, k: int, p: int, s: int) -> Shape:
    return Shape(
        channels,
        (shape.height + 2 * p - k) // s + 1,
        (shape.width + 2 * p - k) // s + 1,
        shape.rf + (k - 1) * shape.jump,
        shape.jump * s,
    )


class _Builder:
    """Builds layers for one step; `BUILDERS` names the method of each kind."""

    def __init__(self, step: StepConfig) -> None:
        self.step = step
        parametric = [i for i, layer in enumerate(step.layers) if LAYER_KINDS[layer.kind].weights]
        # The last weight layer produces the logits: no activation, BN or dropout on it
        # unless the params ask for them explicitly.
        self.logits_index = parametric[-1] if parametric else -1

    def fail(self, where: str, reason: str) -> ParamsError:
        return ParamsError(f"steps.{self.step.name}.{where}: {reason}")

    def option(self, layer: Layer, key: str, is_logits: bool = False) -> Any:
        """The layer's own option, else the logits' default, else the step's."""
        if key in layer.opts:
            return layer.opts[key]
        if is_logits and key in LOGITS_DEFAULTS:
            return LOGITS_DEFAULTS[key]
        return {
            "bias": self.step.conv_bias,
            "bn": self.step.bn,
            "act": self.step.activation,
            "drop": self.step.dropout,
        }[key]

    def finish(
        self, modules: list[nn.Module], channels: int, bn: bool, act: str, drop: float
    ) -> nn.Sequential:
        """Append BN / activation / dropout after a weight layer, in the step's order."""
        norm = [nn.BatchNorm2d(channels, affine=self.step.bn_affine)] if bn else []
        activation = ACTIVATIONS[act](channels)
        after = norm + activation if self.step.bn_order == "before_act" else activation + norm
        return nn.Sequential(*modules, *after, *([nn.Dropout(drop)] if drop else []))

    def conv_weights(self, layer, shape, where, k, p, s, width, is_logits=False, separable=False, d=1):
        span = d * (k - 1) + 1  # the pixels a dilated kernel covers
        if span > shape.height + 2 * p or span > shape.width + 2 * p:
            raise self.fail(
                where,
                f"kernel {k}{f' (dilated to {span})' if d > 1 else ''} larger than its "
                f"{shape.height}x{shape.width} input (+pad {p})",
            )
        bias = self.option(layer, "bias")
        if separable:  # the dilation is the depthwise kernel's; the pointwise 1x1 has none
            weights = [
                nn.Conv2d(shape.channels, shape.channels, k, s, p, d, groups=shape.channels, bias=bias),
                nn.Conv2d(shape.channels, width, 1, bias=bias),
            ]
        else:
            weights = [nn.Conv2d(shape.channels, width, k, s, p, d, bias=bias)]
        module = self.finish(
            weights,
            width,
            self.option(layer, "bn", is_logits),
            self.option(layer, "act", is_logits),
            self.option(layer, "drop", is_logits),
        )
        return module, _spatial(shape, width, span, p, s)

    def conv(self, layer: Layer, shape: Shape, where: str, is_logits: bool):
        k, p, s, d = (option_value(layer, key) for key in ("k", "p", "s", "d"))
        return self.conv_weights(
            layer, shape, where, k, p, s, layer.width, is_logits, separable=layer.kind == "sepconv", d=d
        )

    def pool(self, layer: Layer, shape: Shape, where: str, is_logits: bool):
        k = option_value(layer, "k")
        s = layer.opts.get("s", k)
        if k > min(shape.height, shape.width):
            raise self.fail(where, f"kernel {k} larger than its {shape.height}x{shape.width} input")
        module = (nn.MaxPool2d if layer.kind == "maxpool" else nn.AvgPool2d)(k, s)
        return module, _spatial(shape, shape.channels, k, 0, s)

    def gap(self, layer: Layer, shape: Shape, where: str, is_logits: bool):
        out = _spatial(shape, shape.channels, max(shape.height, shape.width), 0, 1)
        # where the step trains, by `runtime.pick_device`'s rule (not imported: the stages that
        # build nets without training would then depend on runtime.py); on CUDA a kernel
        # without a deterministic version stops the training (`runtime.hold_cuda_to_fp32`)
        device = self.step.device
        on_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
        module = GlobalAvgPool() if on_cuda else nn.AdaptiveAvgPool2d(1)
        return module, Shape(shape.channels, 1, 1, out.rf, out.jump)

    def dropout(self, layer: Layer, shape: Shape, where: str, is_logits: bool):
        return nn.Dropout(option_value(layer, "p")), shape

    def dense(self, layer: Layer, shape: Shape, where: str, is_logits: bool):
        flat = shape.channels * shape.height * shape.width
        linear = nn.Linear(flat, layer.width, bias=option_value(layer, "bias"))
        out = _spatial(shape, layer.width, max(shape.height, shape.width), 0, 1)
        module = self.finish(
            [nn.Flatten(), linear],
            layer.width,
            False,  # BatchNorm2d does not apply to a flat vector
            self.option(layer, "act", is_logits),
            self.option(layer, "drop", is_logits),
        )
        module.append(nn.Unflatten(1, (layer.width, 1, 1)))
        return module, Shape(layer.width, 1, 1, out.rf, out.jump)

    def inception(self, layer: Layer, shape: Shape, where: str, is_logits: bool):
        branches, widths, kernels = [], 0, []
        for name, k in INCEPTION_BRANCHES.items():
            if name not in layer.opts:
                continue
            width = layer.opts[name]
            conv, _ = self.conv_weights(layer, shape, where, k, k // 2, 1, width)
            if name == "pool":
                conv = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv)
                k = 3
            branches.append(conv)
            widths += width
            kernels.append(k)
        out = _spatial(shape, widths, max(kernels), max(kernels) // 2, 1)
        return Inception(branches), out

    def residual(self, layer: Layer, shape: Shape, where: str, is_logits: bool):
        built = self.sequence(layer.body, shape, f"{where}.residual")
        out = built[-1].shape
        if out.as_tuple() != shape.as_tuple():
            raise self.fail(
                where,
                f"residual body maps {shape.as_tuple()} to {out.as_tuple()}; "
                "a skip connection needs the same shape (use p=1 on 3x3 convs)",
            )
        return Residual(nn.Sequential(*(b.module for b in built))), out

    def sequence(
        self, layers: tuple[Layer, ...], shape: Shape, where: str, top: bool = False
    ) -> list[BuiltLayer]:
        built = []
        for i, layer in enumerate(layers):
            is_logits = top and i == self.logits_index
            build = BUILDERS[layer.kind]
            module, shape = build(self, layer, shape, f"{where}[{i}] ({layer.text})", is_logits)
            built.append(BuiltLayer(layer.text, module, shape))
        return built


# Each kind of `layer_spec.LAYER_KINDS` and the _Builder method that builds it:
# (layer, shape, where, is_logits) -> (module, output shape).
BUILDERS: dict[str, Callable] = {
    "conv": _Builder.conv,
    "sepconv": _Builder.conv,
    "maxpool": _Builder.pool,
    "avgpool": _Builder.pool,
    "gap": _Builder.gap,
    "dropout": _Builder.dropout,
    "dense": _Builder.dense,
    "inception": _Builder.inception,
    HOLDS_LAYERS: _Builder.residual,
}


def build_layers(step: StepConfig) -> list[BuiltLayer]:
    """Build each top-level layer with its output shape and receptive field."""
    built = _Builder(step).sequence(step.layers, Shape(*IMAGE_SHAPE), "layers", top=True)
    last = built[-1].shape
    if (last.height, last.width) != (1, 1):
        raise ParamsError(
            f"steps.{step.name}.layers: the net ends with a {last.channels}x{last.height}x"
            f"{last.width} map; end with `gap`, `dense {NUM_CLASSES}` or a conv covering the map"
        )
    if last.channels != NUM_CLASSES:
        raise ParamsError(
            f"steps.{step.name}.layers: the net ends with {last.channels} outputs; "
            f"MNIST has {NUM_CLASSES} classes"
        )
    return built


def build_net(step: StepConfig) -> nn.Sequential:
    """The step's model: images (N, 1, 28, 28) -> logits (N, 10)."""
    return nn.Sequential(*(b.module for b in build_layers(step)), nn.Flatten())
