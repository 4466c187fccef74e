"""`python -m mnist_budget.tools.agree`: the committed histories of this repository, committed in a
temporary git repo, then moved in its workspace as a re-run on another CPU would move them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.e2e  # the real command on a git repo of committed histories

REPO = Path(__file__).resolve().parents[1]
# three real histories of four seeds each, and a one-seed one (the references)
STEPS = {
    "reports/steps/s6-weight-average": "main s6-weight-average",
    "reports/steps/s7-separable": "main s7-separable",
    "reports/steps/s8-tiny": "main s8-tiny",
    "reports/references/steps/r3-inception-prelu-multistep": "references r3-inception-prelu-multistep",
}


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for folder in STEPS:
        (root / folder).mkdir(parents=True)
        shutil.copy(REPO / folder / "history.csv", root / folder / "history.csv")
        (root / folder / "made_on.json").write_text(
            json.dumps({"device": "cpu", "kernels": "AVX2 (portable)"})
        )
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "results")
    return root


def move(root: Path, folder: str, by: float) -> None:
    """Shift the last epoch's test accuracy of every seed by `by` (a fraction), as a re-run
    that ends elsewhere; the other epochs change too (other bytes all along)."""
    path = root / folder / "history.csv"
    history = pd.read_csv(path)
    last = history.groupby("seed")["epoch"].transform("max") == history["epoch"]
    history.loc[last, "test_accuracy"] += by
    history["train_loss"] += 1e-6
    history.to_csv(path, index=False)


def agree(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "mnist_budget.tools.agree", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_untouched_workspace_is_byte_identical(repo):
    result = agree(repo)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "byte-identical"
    assert lines[-2] == "4 of 4 steps byte-identical: reproduced exactly where re-run here, or not re-run"
    assert sorted(lines[:-2]) == sorted(f"{name}: byte-identical" for name in STEPS.values())


def test_a_step_moved_by_a_hundredth_of_a_point_agrees_within_the_noise(repo):
    move(repo, "reports/steps/s7-separable", 0.0001)
    result = agree(repo)
    assert result.returncode == 0, result.stdout + result.stderr
    closing = result.stdout.splitlines()[-1]
    assert closing.startswith(
        "agrees within the seed noise (largest step difference +0.01 pp, main s7-separable;"
    )
    line = next(x for x in result.stdout.splitlines() if x.startswith("main s7-separable:"))
    assert "mean +0.01 pp" in line and line.endswith(": within")
    assert "main s6-weight-average: byte-identical" in result.stdout
    assert "3 of 4 steps byte-identical: reproduced exactly where re-run here, or not re-run" in result.stdout


def test_a_step_moved_by_half_a_point_differs_beyond_the_noise(repo):
    move(repo, "reports/steps/s6-weight-average", 0.0001)
    move(repo, "reports/steps/s8-tiny", -0.005)
    (repo / "reports/steps/s8-tiny/made_on.json").write_text(
        json.dumps({"device": "cpu", "kernels": "AVX512 avx512_bf16 (native)"})
    )
    result = agree(repo)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "differs beyond the noise: main s8-tiny"
    line = next(x for x in result.stdout.splitlines() if x.startswith("main s8-tiny:"))
    assert "mean -0.50 pp" in line and line.endswith(": beyond")
    assert "(made on cpu AVX2 (portable) then, cpu AVX512 avx512_bf16 (native) now)" in line


def test_a_one_seed_step_is_judged_by_the_other_steps_spread(repo):
    move(repo, "reports/references/steps/r3-inception-prelu-multistep", 0.0001)
    result = agree(repo)
    line = next(
        x for x in result.stdout.splitlines() if x.startswith("references r3-inception-prelu-multistep:")
    )
    assert "seed 1: " in line and line.endswith(": within")
    move(repo, "reports/references/steps/r3-inception-prelu-multistep", 0.01)
    assert (
        agree(repo).stdout.splitlines()[-1]
        == "differs beyond the noise: references r3-inception-prelu-multistep"
    )


def test_a_missing_history_is_named_and_a_bad_revision_is_one_line(repo):
    shutil.rmtree(repo / "reports/steps/s8-tiny")
    result = agree(repo)
    assert "main s8-tiny: at HEAD only (not trained here)" in result.stdout
    assert result.returncode == 0
    bad = agree(repo, "no-such-rev")
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("agree: git ls-tree") and len(bad.stderr.strip().splitlines()) == 1
