"""The prepared MNIST tensors, normalized once and kept in memory (on the GPU if used),
with an optional validation split held out of the training images."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mnist_budget.base.atomic_files import read_json
from mnist_budget.base.errors import StageError
from mnist_budget.base.layout import PREPARED_STATS, PREPARED_TENSORS

# Fixed, never a run's seed: every seed and every step holds out the same images, so
# validation scores compare recipes and not splits.
SPLIT_SEED = 20261125


@dataclass
class Mnist:
    train_images: torch.Tensor  # (60000 - held out, 1, 28, 28) float32, normalized
    train_labels: torch.Tensor  # (60000 - held out,) int64
    test_images: torch.Tensor  # (10000, 1, 28, 28)
    test_labels: torch.Tensor
    black: float  # a black pixel after normalization: the fill of augmentations
    val_images: torch.Tensor | None = None  # held out of the training images, if asked
    val_labels: torch.Tensor | None = None


def normalize(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) with the training set's mean and std."""
    return ((images.float() / 255 - mean) / std).unsqueeze(1)


def validation_split(labels: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, validation) of `size` images held out, stratified by label: the
    images sorted by label (in a fixed random order within each label), then every
    len/size-th one, so each digit keeps its share to within one image."""
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
    by_label = order[torch.sort(labels[order], stable=True).indices]
    position = torch.arange(len(labels))
    held = (position + 1) * size // len(labels) > position * size // len(labels)
    return by_label[~held].sort().values, by_label[held].sort().values


def load_mnist(device: torch.device, validation: int = 0) -> Mnist:
    """The prepared tensors; with `validation` > 0, that many training images moved to a
    validation set."""
    stats = read_json(PREPARED_STATS)
    tensors = torch.load(PREPARED_TENSORS)
    mean, std = stats["mean"], stats["std"]
    train_images, train_labels = tensors["train_images"], tensors["train_labels"]
    val_images = val_labels = None
    if validation:
        if validation >= len(train_labels):
            raise StageError(
                f"validation: {validation} would hold out every one of the {len(train_labels)} "
                f"training images in {PREPARED_TENSORS}; hold out fewer"
            )
        kept, held = validation_split(train_labels, validation)
        val_images, val_labels = (
            normalize(train_images[held], mean, std).to(device),
            train_labels[held].to(device),
        )
        train_images, train_labels = train_images[kept], train_labels[kept]
    return Mnist(
        train_images=normalize(train_images, mean, std).to(device),
        train_labels=train_labels.to(device),
        test_images=normalize(tensors["test_images"], mean, std).to(device),
        test_labels=tensors["test_labels"].to(device),
        black=(0 - mean) / std,
        val_images=val_images,
        val_labels=val_labels,
    )
