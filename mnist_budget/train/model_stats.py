"""What a model costs: parameters (trainable and BN running statistics apart), MACs, and a
per-layer table with output shapes and receptive fields."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mnist_budget.base.mnist import IMAGE_SHAPE
from mnist_budget.train.nets import build_layers

if TYPE_CHECKING:
    from mnist_budget.config.step_config import StepConfig


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


def layer_rows(step: StepConfig) -> list[dict[str, Any]]:
    """One row per top-level layer: output shape (C, H, W), params, MACs, receptive field."""
    rows, shape = [], IMAGE_SHAPE
    for built in build_layers(step):
        rows.append(
            {
                "layer": built.text,
                "output": built.shape.as_tuple(),
                **count_params(built.module),
                "macs": count_macs(built.module, shape),
                "receptive_field": built.shape.rf,
            }
        )
        shape = built.shape.as_tuple()
    return rows


def receptive_field(rows: list[dict[str, Any]]) -> int:
    """Of the last layer before global pooling (or a head covering the whole map), where it
    is still a choice; of the last layer when every layer is already 1x1."""
    spatial = [row for row in rows if row["output"][1:] != (1, 1)]
    return (spatial or rows)[-1]["receptive_field"]
