"""Scoring a model on a whole set: its logits, loss and accuracy, and where to score it."""

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


def scoring_device(trained_on: str) -> torch.device | None:
    """Where a model scores as its history did: the device its training scored every epoch
    on, as its made_on.json names it ('cpu', 'cuda (<GPU>)'), when this machine has it; None
    when it has not (trained on a GPU, scored on a laptop): the caller then scores on the CPU.
    Another kind of GPU is not the same device: its kernels may round otherwise."""
    if trained_on == "cpu":
        return torch.device("cpu")
    if trained_on.startswith("cuda (") and torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            if trained_on == f"cuda ({torch.cuda.get_device_name(index)})":
                return torch.device("cuda", index)
    return None


def as_trained(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` on `device`, in the memory layout its training scored it in: channels-last on
    a GPU (`seed_pool.train_seed`), where cuDNN picks other kernels for another layout. On the
    CPU as it loads (contiguous), as every committed result was scored: the same accuracies
    as the histories', seed by seed, in every committed step."""
    if device.type == "cpu":
        return model
    return model.to(device, memory_format=torch.channels_last)
