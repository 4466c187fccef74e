"""Mirrors: local folders, file:// and HTTP, gz or not; verified; clear failures."""

import gzip

import pytest

from mnist_budget.base.mnist import MNIST_FILES
from stages.download import DownloadError, download, fetch_verified, mirror_list
from tests.conftest import serve_folder

LABELS = MNIST_FILES["train_labels"]


def test_gz_and_plain_files_give_the_same_verified_bytes(synthetic_mirror, tmp_path):
    folder, sums = synthetic_mirror
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / LABELS).write_bytes(gzip.decompress((folder / f"{LABELS}.gz").read_bytes()))
    from_gz = fetch_verified(str(folder), LABELS, sums[LABELS])
    assert from_gz == fetch_verified(f"file://{plain}", LABELS, sums[LABELS])


def test_http_mirror(synthetic_mirror):
    folder, sums = synthetic_mirror
    with serve_folder(folder) as url:
        data = download(LABELS, sums[LABELS], [url])
    assert len(data) == 8 + 320


def test_falls_back_to_the_next_mirror(synthetic_mirror, tmp_path):
    folder, sums = synthetic_mirror
    assert download(LABELS, sums[LABELS], [str(tmp_path / "missing"), str(folder)])


def test_failure_names_every_mirror_and_why(synthetic_mirror, tmp_path):
    folder, sums = synthetic_mirror
    with serve_folder(tmp_path) as empty_url:
        mirrors = [str(tmp_path / "missing"), "http://127.0.0.1:1/mnist/", empty_url, str(folder)]
        with pytest.raises(DownloadError) as info:
            download(LABELS, "0" * 64, mirrors)
    message = str(info.value)
    for mirror in mirrors:
        assert f"  {mirror}: " in message
    assert "No such file or directory" in message
    assert "Connection refused" in message
    assert "HTTP Error 404" in message
    assert f"sha256 {sums[LABELS][:12]}... is not the expected 000000000000..." in message
    assert "MNIST_MIRROR" in message


def test_environment_mirror_comes_first(monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", "/data/mnist")
    data = {"local_mirror": "/mnt/mnist", "mirrors": ["https://a/", "https://b/"]}
    assert mirror_list(data) == ["/data/mnist", "/mnt/mnist", "https://a/", "https://b/"]
    monkeypatch.delenv("MNIST_MIRROR")
    assert mirror_list({"local_mirror": "", "mirrors": ["https://a/"]}) == ["https://a/"]
