"""Scoring a model on a whole set: its logits, loss and accuracy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EVAL_BATCH = 500  # 10k test images: 0.78 s at 500, 1.8 s at 2000 (cache-bound), 1.0 s at 64


@torch.inference_mode()
def predict(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Logits for all images in large batches (the caller puts the model in eval mode)."""
    return torch.cat([model(images[i : i + EVAL_BATCH]) for i in range(0, len(images), EVAL_BATCH)])


def accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of predicted labels that are right, to 6 decimals (as metrics keep it)."""
    return round((predicted == labels).double().mean().item(), 6)


def loss_and_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (fraction) on a whole set, in eval mode."""
    model.eval()
    logits = predict(model, images)
    loss = F.cross_entropy(logits, labels).item()
    return loss, (logits.argmax(1) == labels).float().mean().item()
