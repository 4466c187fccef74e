"""A step's layer list -> nn.Module, with exact parameter counts, MACs and receptive fields.

One builder serves every step: the progression is data, not model classes. Shapes are
inferred while building, so a layer that does not fit its input fails here, naming the
step, the layer index and the reason, before any training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from stages.config import INCEPTION_BRANCHES, Layer, ParamsError, StepConfig

IMAGE_SHAPE = (1, 28, 28)  # MNIST: one channel, 28x28 pixels
NUM_CLASSES = 10
PARAMETRIC = ("conv", "sepconv", "dense", "inception")
INCEPTION_KERNELS = {"b1": 1, "b3": 3, "b5": 5, "pool": 1}


class Inception(nn.Module):
    """Parallel branches concatenated on channels (GoogLeNet's module)."""

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class Residual(nn.Module):
    """x + body(x): a skip connection around a group of layers of unchanged shape."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


@dataclass
class Shape:
    channels: int
    height: int
    width: int
    rf: int = 1  # receptive field of one output pixel, in input pixels
    jump: int = 1  # input pixels between two neighbouring output pixels

    def as_tuple(self) -> tuple[int, ...]:
        return (self.channels, self.height, self.width)


@dataclass
class BuiltLayer:
    text: str
    module: nn.Module
    shape: Shape


class _Builder:
    def __init__(self, step: StepConfig) -> None:
        self.step = step
        parametric = [i for i, layer in enumerate(step.layers) if layer.kind in PARAMETRIC]
        # The last weight layer produces the logits: no activation, BN or dropout on it
        # unless the params ask for them explicitly.
        self.logits_index = parametric[-1] if parametric else -1

    def fail(self, where: str, reason: str) -> ParamsError:
        return ParamsError(f"steps.{self.step.name}.{where}: {reason}")

    def option(self, layer: Layer, key: str, is_logits: bool = False):
        if key in layer.opts:
            return layer.opts[key]
        if is_logits and key in ("bn", "act", "drop"):
            return {"bn": False, "act": "none", "drop": 0.0}[key]
        return {
            "bias": self.step.conv_bias,
            "bn": self.step.bn,
            "act": self.step.activation,
            "drop": self.step.dropout,
        }[key]

    def finish(self, modules: list[nn.Module], channels: int, bn: bool, act: str, drop: float):
        """Append BN / activation / dropout after a weight layer, in the step's order."""
        norm = [nn.BatchNorm2d(channels)] if bn else []
        activation = {
            "relu": [nn.ReLU()],
            "prelu": [nn.PReLU(channels)],
            "silu": [nn.SiLU()],
            "none": [],
        }[act]
        after = norm + activation if self.step.bn_order == "before_act" else activation + norm
        return nn.Sequential(*modules, *after, *([nn.Dropout(drop)] if drop else []))

    def conv(self, layer, shape, where, k, p, s, width, is_logits=False, separable=False):
        if k > shape.height + 2 * p or k > shape.width + 2 * p:
            raise self.fail(
                where, f"kernel {k} larger than its {shape.height}x{shape.width} input (+pad {p})"
            )
        bias = self.option(layer, "bias")
        if separable:
            weights = [
                nn.Conv2d(shape.channels, shape.channels, k, s, p, groups=shape.channels, bias=bias),
                nn.Conv2d(shape.channels, width, 1, bias=bias),
            ]
        else:
            weights = [nn.Conv2d(shape.channels, width, k, s, p, bias=bias)]
        module = self.finish(
            weights,
            width,
            self.option(layer, "bn", is_logits),
            self.option(layer, "act", is_logits),
            self.option(layer, "drop", is_logits),
        )
        return module, _spatial(shape, width, k, p, s)

    def pool(self, layer, shape, where):
        k = layer.opts.get("k", 2)
        s = layer.opts.get("s", k)
        if k > min(shape.height, shape.width):
            raise self.fail(where, f"kernel {k} larger than its {shape.height}x{shape.width} input")
        module = (nn.MaxPool2d if layer.kind == "maxpool" else nn.AvgPool2d)(k, s)
        return module, _spatial(shape, shape.channels, k, 0, s)

    def layer(self, layer: Layer, shape: Shape, where: str, is_logits: bool):
        kind, opts = layer.kind, layer.opts
        if kind in ("conv", "sepconv"):
            k = opts.get("k", 3)
            return self.conv(
                layer,
                shape,
                where,
                k,
                opts.get("p", 0),
                opts.get("s", 1),
                layer.width,
                is_logits,
                separable=kind == "sepconv",
            )
        if kind in ("maxpool", "avgpool"):
            return self.pool(layer, shape, where)
        if kind == "gap":
            out = _spatial(shape, shape.channels, max(shape.height, shape.width), 0, 1)
            return nn.AdaptiveAvgPool2d(1), Shape(shape.channels, 1, 1, out.rf, out.jump)
        if kind == "dense":
            flat = shape.channels * shape.height * shape.width
            linear = nn.Linear(flat, layer.width, bias=opts.get("bias", True))
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
        if kind == "inception":
            return self.inception(layer, shape, where)
        if kind == "residual":
            body, out = self.sequence(layer.body, shape, f"{where}.residual")
            if out.as_tuple() != shape.as_tuple():
                raise self.fail(
                    where,
                    f"residual body maps {shape.as_tuple()} to {out.as_tuple()}; "
                    "a skip connection needs the same shape (use p=1 on 3x3 convs)",
                )
            return Residual(body), out
        raise self.fail(where, f"unknown layer {kind!r}")  # parse_layer rejects it first

    def inception(self, layer, shape, where):
        branches, widths, kernels = [], 0, []
        for name in INCEPTION_BRANCHES:
            if name not in layer.opts:
                continue
            width, k = layer.opts[name], INCEPTION_KERNELS[name]
            conv, _ = self.conv(layer, shape, where, k, k // 2, 1, width)
            if name == "pool":
                conv = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv)
                k = 3
            branches.append(conv)
            widths += width
            kernels.append(k)
        out = _spatial(shape, widths, max(kernels), max(kernels) // 2, 1)
        return Inception(branches), out

    def sequence(self, layers, shape, where, top=False):
        built = []
        for i, layer in enumerate(layers):
            is_logits = top and i == self.logits_index
            module, shape = self.layer(layer, shape, f"{where}[{i}] ({layer.text})", is_logits)
            built.append(BuiltLayer(layer.text, module, shape))
        if top:
            return built
        return nn.Sequential(*(b.module for b in built)), shape


def _spatial(shape: Shape, channels: int, k: int, p: int, s: int) -> Shape:
    return Shape(
        channels,
        (shape.height + 2 * p - k) // s + 1,
        (shape.width + 2 * p - k) // s + 1,
        shape.rf + (k - 1) * shape.jump,
        shape.jump * s,
    )


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


def count_params(module: nn.Module) -> dict[str, int]:
    """Trainable weights, and BN running mean/variance as non-trainable (as Keras counts)."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    running = sum(
        b.numel() for name, b in module.named_buffers() if name.endswith(("running_mean", "running_var"))
    )
    return {
        "params_trainable": trainable,
        "params_non_trainable": frozen + running,
        "params_total": trainable + frozen + running,
    }


def count_macs(module: nn.Module, shape: tuple[int, ...] = IMAGE_SHAPE) -> int:
    """Multiply-accumulates of one forward pass on one image (conv and linear layers)."""
    total = 0

    def hook(layer: nn.Module, inputs, output) -> None:
        nonlocal total
        if isinstance(layer, nn.Conv2d):
            per_pixel = layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1]
            total += output[0].numel() * per_pixel
        else:
            total += layer.in_features * layer.out_features

    handles = [
        m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = module.training
    module.eval()
    with torch.inference_mode():
        module(torch.zeros(1, *shape))
    module.train(was_training)
    for handle in handles:
        handle.remove()
    return total


def summary_rows(step: StepConfig) -> list[dict]:
    """One row per top-level layer: output shape, params, MACs, receptive field."""
    rows, shape = [], IMAGE_SHAPE
    for built in build_layers(step):
        rows.append(
            {
                "layer": built.text,
                "output": "x".join(map(str, built.shape.as_tuple())),
                **count_params(built.module),
                "macs": count_macs(built.module, shape),
                "receptive_field": built.shape.rf,
            }
        )
        shape = built.shape.as_tuple()
    return rows
