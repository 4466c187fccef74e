"""Stage `prepare`: parse the raw IDX files, check them, and compute normalization stats.

Images stay uint8 (47 MB, not 188 MB as float): training normalizes them once in memory.
"""

from __future__ import annotations

import io
import sys

import torch

from mnist_budget.base.atomic_files import json_bytes, write_all
from mnist_budget.base.idx import IdxError, read_idx
from mnist_budget.base.layout import PREPARED_DIR, PREPARED_STATS, PREPARED_TENSORS, RAW_DIR
from mnist_budget.base.mnist import IMAGE_SHAPE, MNIST_FILES, NUM_CLASSES
from stages.cli import stage_main


def load_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(RAW_DIR / MNIST_FILES[f"{split}_images"], ndim=3)
    labels = read_idx(RAW_DIR / MNIST_FILES[f"{split}_labels"], ndim=1)
    if images.shape[1:] != IMAGE_SHAPE[1:]:
        raise IdxError(f"{split} images are {images.shape[1:]}, expected {IMAGE_SHAPE[1:]}")
    if len(images) != len(labels):
        raise IdxError(f"{split}: {len(images)} images but {len(labels)} labels")
    if labels.max() >= NUM_CLASSES:
        raise IdxError(f"{split} labels: found {labels.max()}, expected 0..{NUM_CLASSES - 1}")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype("int64"))


@stage_main
def main() -> None:
    train_images, train_labels = load_split("train")
    test_images, test_labels = load_split("test")
    pixels = train_images.double() / 255
    stats = {
        "mean": round(pixels.mean().item(), 6),
        "std": round(pixels.std().item(), 6),
        "train_count": len(train_images),
        "test_count": len(test_images),
    }
    buffer = io.BytesIO()
    torch.save(
        {
            "train_images": train_images,
            "train_labels": train_labels,
            "test_images": test_images,
            "test_labels": test_labels,
        },
        buffer,
    )
    write_all(
        {PREPARED_TENSORS: buffer.getvalue(), PREPARED_STATS: json_bytes(stats)}, folders=(PREPARED_DIR,)
    )
    print(
        f"prepare: {stats['train_count']} train / {stats['test_count']} test images, "
        f"pixel mean {stats['mean']:.4f} std {stats['std']:.4f}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
