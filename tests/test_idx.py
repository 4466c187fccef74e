import gzip

import numpy as np
import pytest

from mnist_budget.base.idx import IdxError, encode_idx, parse_idx, read_idx


def test_round_trip_images_and_labels(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    labels = np.array([3, 7], dtype=np.uint8)
    (tmp_path / "i").write_bytes(encode_idx(images))
    (tmp_path / "l").write_bytes(encode_idx(labels))
    assert np.array_equal(read_idx(tmp_path / "i", ndim=3), images)
    assert np.array_equal(read_idx(tmp_path / "l", ndim=1), labels)


def test_header_is_the_mnist_one():
    data = encode_idx(np.zeros((5, 28, 28), dtype=np.uint8))
    assert data[:4] == b"\x00\x00\x08\x03"
    assert data[4:16] == (5).to_bytes(4, "big") + (28).to_bytes(4, "big") + (28).to_bytes(4, "big")


def test_gzip_bytes_get_a_hint():
    data = gzip.compress(encode_idx(np.zeros(3, dtype=np.uint8)))
    with pytest.raises(IdxError, match="bad magic number.*gzip"):
        parse_idx(data, "labels")


def test_truncated_data_is_an_error():
    data = encode_idx(np.zeros((4, 28, 28), dtype=np.uint8))
    with pytest.raises(IdxError, match=r"header says 4x28x28 = 3136 bytes.*holds 3000"):
        parse_idx(data[: 16 + 3000], "images")


def test_trailing_garbage_is_an_error():
    with pytest.raises(IdxError, match="truncated or corrupt"):
        parse_idx(encode_idx(np.zeros(3, dtype=np.uint8)) + b"x", "labels")


def test_short_file_and_bad_header():
    with pytest.raises(IdxError, match="too short"):
        parse_idx(b"\x00\x00", "f")
    with pytest.raises(IdxError, match="truncated header"):
        parse_idx(b"\x00\x00\x08\x03\x00\x00", "f")


def test_wrong_number_of_dimensions(tmp_path):
    (tmp_path / "labels").write_bytes(encode_idx(np.zeros(3, dtype=np.uint8)))
    with pytest.raises(IdxError, match="expected 3 dimensions, found 1"):
        read_idx(tmp_path / "labels", ndim=3)
