"""Shared fixtures: small synthetic MNIST-shaped data, written as real IDX files."""

from __future__ import annotations

import contextlib
import functools
import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from mnist_budget.base.idx import encode_idx
from mnist_budget.base.kernels import pin
from mnist_budget.base.mnist import MNIST_FILES

# The stages' default kernels, for the stages' `main()`s that tests call in this process:
# set before any tensor is made (ATen and oneDNN read them once).
pin("portable")

# One valid `steps.<name>` entry, for tests that build configs in memory.
SMALL_STEP = {
    "description": "a small net",
    "layers": ["conv 8", "maxpool", "conv 16", "gap", "conv 10 k=1"],
    "epochs": 2,
    "batch_size": 32,
    "seeds": [1],
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
}
TRAIN_COUNT = 320
TEST_COUNT = 160


def synthetic_digits(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise images where class c lights a 7x7 square at its own place: learnable at once."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels):
        row, col = 2 + 12 * (label // 5), 1 + 5 * (label % 5)
        image[row : row + 7, col : col + 7] = 255
    return images, labels


def write_synthetic_mnist(folder: Path, compress: bool = True) -> dict[str, str]:
    """Write the four IDX files (gzipped or not); return their decompressed sha256 sums."""
    folder.mkdir(parents=True, exist_ok=True)
    train = synthetic_digits(TRAIN_COUNT, seed=0)
    test = synthetic_digits(TEST_COUNT, seed=1)
    arrays = {
        MNIST_FILES["train_images"]: train[0],
        MNIST_FILES["train_labels"]: train[1],
        MNIST_FILES["test_images"]: test[0],
        MNIST_FILES["test_labels"]: test[1],
    }
    sums = {}
    for name, array in arrays.items():
        data = encode_idx(array)
        sums[name] = hashlib.sha256(data).hexdigest()
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return sums


@pytest.fixture
def synthetic_mirror(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    folder = tmp_path / "mirror"
    return folder, write_synthetic_mnist(folder)


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)  # tests are small: more threads only add overhead


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving `folder`; yields its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


# the end-to-end project fixture and its helpers (tests/e2e.py)
pytest_plugins = ["tests.e2e"]
