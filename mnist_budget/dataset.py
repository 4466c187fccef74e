"""The prepared MNIST tensors, normalized once and kept in memory (on the GPU if used)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mnist_budget.atomic_files import read_json
from mnist_budget.layout import PREPARED_STATS, PREPARED_TENSORS


@dataclass
class Mnist:
    train_images: torch.Tensor  # (60000, 1, 28, 28) float32, normalized
    train_labels: torch.Tensor  # (60000,) int64
    test_images: torch.Tensor  # (10000, 1, 28, 28)
    test_labels: torch.Tensor
    black: float  # a black pixel after normalization: the fill of augmentations


def normalize(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) with the training set's mean and std."""
    return ((images.float() / 255 - mean) / std).unsqueeze(1)


def load_mnist(device: torch.device) -> Mnist:
    stats = read_json(PREPARED_STATS)
    tensors = torch.load(PREPARED_TENSORS)
    mean, std = stats["mean"], stats["std"]
    return Mnist(
        train_images=normalize(tensors["train_images"], mean, std).to(device),
        train_labels=tensors["train_labels"].to(device),
        test_images=normalize(tensors["test_images"], mean, std).to(device),
        test_labels=tensors["test_labels"].to(device),
        black=(0 - mean) / std,
    )
