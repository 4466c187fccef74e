"""IDX files (the MNIST format): read with header checks, write for tests and tools.

Layout (big-endian): two zero bytes, a type code (0x08 = unsigned byte), the number of
dimensions, one uint32 per dimension, then the data. Images are idx3 (count, 28, 28),
labels idx1 (count,).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from mnist_budget.base.errors import StageError

UBYTE = 0x08


class IdxError(StageError, ValueError):
    """A file that is not a valid IDX file of the expected shape."""


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into a uint8 array, checking magic, dimensions and length."""
    if len(data) < 4:
        raise IdxError(f"{name}: {len(data)} bytes is too short for an IDX header")
    zeros, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zeros != 0 or dtype != UBYTE or ndim not in (1, 3):
        raise IdxError(
            f"{name}: bad magic number 0x{data[:4].hex()}; expected 0x00000801 (labels) "
            "or 0x00000803 (images): is this an MNIST IDX file, still gzip-compressed?"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{name}: truncated header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims))
    if len(data) - header != expected:
        raise IdxError(
            f"{name}: header says {'x'.join(map(str, dims))} = {expected} bytes of data, "
            f"file holds {len(data) - header}: truncated or corrupt"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file and check it has `ndim` dimensions."""
    array = parse_idx(Path(path).read_bytes(), str(path))
    if array.ndim != ndim:
        raise IdxError(f"{path}: expected {ndim} dimensions, found {array.ndim}")
    return array


def encode_idx(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()
