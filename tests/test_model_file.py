"""Model files: the same model gives the same bytes in any checkout and environment, and a
damaged file is one line naming it."""

from __future__ import annotations

import getpass
import io
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from mnist_budget.base.atomic_files import md5_of
from mnist_budget.config.step_config import config_of, parse_step
from mnist_budget.train.model_file import DamagedModelFile, load_model, model_bytes
from mnist_budget.train.nets import build_net
from tests.conftest import SMALL_STEP

REPO = Path(__file__).resolve().parents[1]
# a net with every kind of module the recipes use: conv, BN, ReLU, pooling, residual, dense
STEP = {
    **SMALL_STEP,
    "layers": ["conv 8 p=1", {"residual": ["conv 8 p=1"]}, "maxpool", "conv 16", "gap", "dense 10"],
}
EXPORT = f"""
import sys, torch
from mnist_budget.train.model_file import model_bytes
from mnist_budget.train.nets import build_net
from mnist_budget.config.step_config import config_of, parse_step
step = parse_step("s1", {STEP!r})
torch.manual_seed(0)
sys.stdout.buffer.write(model_bytes(build_net(step), {{"config": config_of(step)}}))
"""


def exported() -> bytes:
    step = parse_step("s1", STEP)
    torch.manual_seed(0)
    return model_bytes(build_net(step), {"config": config_of(step)})


def test_the_archive_holds_no_path_of_this_machine():
    archive = zipfile.ZipFile(io.BytesIO(exported()))
    places = {
        "torch's install": str(Path(torch.__file__).parents[1]),  # site-packages
        "the virtual environment": sys.prefix,
        "the checkout": str(REPO),
        "the home folder": str(Path.home()),
        "the working folder": os.getcwd(),
    }
    for member in archive.namelist():
        content = archive.read(member).decode("latin-1")
        for what, place in places.items():
            assert place not in content, f"{member} holds {what} ({place})"
        assert "site-packages" not in content and '.py", line' not in content, member
    assert getpass.getuser() not in archive.namelist()


def test_two_processes_in_other_folders_export_the_same_bytes(tmp_path):
    outputs = []
    for folder in ("a", "elsewhere/b"):
        cwd = tmp_path / folder
        cwd.mkdir(parents=True)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        result = subprocess.run(
            [sys.executable, "-c", EXPORT], cwd=cwd, env=env, capture_output=True, check=True
        )
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] == exported()


def test_a_model_file_loads_with_its_config(tmp_path):
    path = tmp_path / "seed1.pt2"
    path.write_bytes(exported())
    model, stored = load_model(path, md5_of(path))
    assert stored == {"config": config_of(parse_step("s1", STEP))}
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda data: data[: len(data) // 2], "not a model file (File is not a zip file)"),
        (lambda data: b"garbage", "not a model file (File is not a zip file)"),
        (lambda data: data.replace(b"archive_format", b"archive_fxrmat", 1), "a damaged model file"),
    ],
    ids=["truncated", "garbage", "renamed-member"],
)
def test_a_damaged_model_file_is_one_line_naming_it(tmp_path, damage, reason):
    path = tmp_path / "seed1.pt2"
    path.write_bytes(damage(exported()))
    with pytest.raises(DamagedModelFile) as info:
        load_model(path, md5_of(path))  # bytes that dvc.lock records, yet damaged
    assert str(info.value).startswith(f"{path}: {reason}") and "\n" not in str(info.value)


def test_a_model_whose_bytes_are_not_the_recorded_ones_is_never_unpickled(tmp_path):
    """A pickle that would run code when loaded: refused on its md5 alone."""
    path = tmp_path / "seed1.pt2"
    path.write_bytes(exported())
    recorded = md5_of(path)
    marker = tmp_path / "ran"
    path.write_bytes(pickle.dumps(Runs(str(marker))))
    with pytest.raises(DamagedModelFile) as info:
        load_model(path, recorded)
    assert str(info.value) == (
        f"{path}: not the bytes dvc.lock records (md5 {md5_of(path)}, recorded {recorded}), not loaded"
    )
    assert not marker.exists()


class Runs:
    """Unpickling it creates a file: code run by loading."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path(self.path).touch, ())
