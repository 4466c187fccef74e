"""DVC's run cache holds every training: an edit undone, an experiment that repeats another's
configuration and a teammate's clone after `dvc push --run-cache` put the outputs back
instead of training; a training stopped under `dvc repro` (which removed its outputs first)
prints the one command that puts the last ones back. Real dvc on the synthetic project."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from dvc.repo import Repo
from dvc.stage.cache import _can_hash

from tests.e2e import (
    edited_files,
    output_bytes,
    run,
    shared_through,
    stages_ran,
    teammate,
    tracked_state,
    unending_training,
)
from tests.test_changes import ctrl_c_as_in_a_terminal

pytestmark = pytest.mark.e2e

# tiny-b's learning rate: an edit that retrains tiny-b alone (the arms start from the final step)
EDIT = ("optimizer: {name: sgd, lr: 0.05, momentum: 0.9}", "optimizer: {name: sgd, lr: 0.02, momentum: 0.9}")


def cached(output: str) -> list[str]:
    """The stages DVC restored from its run cache instead of running them."""
    return [
        line.split("'")[1]
        for line in output.splitlines()
        if line.endswith("is cached - skipping run, checking out outputs")
    ]


def test_every_training_is_run_cached_by_dvc(project):
    root, _, _ = project
    with Repo(root) as repo:
        trainings = [stage for stage in repo.index.stages if stage.cmd.startswith("python -m stages.train ")]
        assert len(trainings) >= 4 and all(_can_hash(stage) for stage in trainings)
        for stage in trainings:  # each run the project's first `dvc repro` made is in the run cache
            assert repo.stage_cache._load(stage) is not None, stage.addressing


def test_undoing_an_edit_restores_the_training_from_the_run_cache(project):
    root, env, _ = project
    before, outputs = tracked_state(root, env), output_bytes(root)
    with edited_files(root, {"params.yaml": EDIT}):
        assert stages_ran(["dvc", "repro", "train@tiny-b"], root, env) == ["resolve", "train@tiny-b"]
    undone = run(["dvc", "repro", "train@tiny-b"], root, env)
    assert cached(undone.stdout) == ["train@tiny-b"] and "Running stage 'train@" not in undone.stdout
    assert tracked_state(root, env) == before and output_bytes(root) == outputs


def test_an_experiment_that_repeats_a_configuration_trains_nothing(project):
    root, env, _ = project
    before = tracked_state(root, env)
    setting = ["-S", "steps.tiny-b.optimizer.lr=0.03", "train@tiny-b"]
    first = run(["dvc", "exp", "run", "--temp", "-n", "first", *setting], root, env)
    assert "Running stage 'train@tiny-b'" in first.stdout
    second = run(["dvc", "exp", "run", "--temp", "-n", "second", *setting], root, env)
    assert cached(second.stdout) == ["train@tiny-b"] and "Running stage 'train@" not in second.stdout
    assert tracked_state(root, env) == before  # --temp: the workspace as it was


def test_a_teammate_pulls_the_run_cache_and_trains_nothing(project, tmp_path):
    """The runs pushed with `--run-cache` and `share_runs` reach a fresh clone: the committed
    configuration and one the project ran and undid both come back without training."""
    root, env, _ = project
    with edited_files(root, {"params.yaml": (EDIT[0], EDIT[0].replace("0.05", "0.04"))}):
        assert "train@tiny-b" in stages_ran(["dvc", "repro", "train@tiny-b"], root, env)
    run(["dvc", "repro", "train@tiny-b"], root, env)  # back to the committed one (the run cache)
    with shared_through(root, env, tmp_path) as (storage, origin):
        run(["dvc", "push", "--run-cache"], root, env)
        shared = run([sys.executable, "-m", "mnist_budget.tools.share_runs"], root, env).stderr
        assert re.fullmatch(
            r"share_runs: \d+ run records pushed, with [1-9]\d* objects of their outputs; 0 records' outputs are not in the cache here\n",
            shared,
        )
        clone = teammate(origin, storage, tmp_path, env)
        run(["dvc", "pull", "--run-cache"], clone, env)
        assert [s for s in stages_ran(["dvc", "repro"], clone, env) if "train@" in s] == []
        assert run(["git", "status", "--porcelain"], clone, env).stdout == ""
        with edited_files(clone, {"params.yaml": (EDIT[0], EDIT[0].replace("0.05", "0.04"))}):
            again = run(["dvc", "repro", "--pull", "train@tiny-b"], clone, env)
    assert cached(again.stdout) == ["train@tiny-b"] and "Running stage 'train@" not in again.stdout


def test_a_training_stopped_under_dvc_prints_the_command_that_puts_its_outputs_back(project):
    root, env, _ = project
    before, outputs = tracked_state(root, env), output_bytes(root)
    log = root.parent / "ctrl-c-dvc.log"  # a file: see the SIGTERM test of test_changes
    with unending_training(root, "tiny-a"):
        with open(log, "w") as out, ctrl_c_as_in_a_terminal():
            dvc = subprocess.Popen(
                ["dvc", "repro", "--single-item", "train@tiny-a"], cwd=root, env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "tiny-a seed 2 3/" not in log.read_text():
            time.sleep(0.2)  # until both seeds are training
        os.killpg(dvc.pid, signal.SIGINT)  # Ctrl-C in the terminal that runs `dvc repro`
        assert dvc.wait(timeout=60) != 0
    assert not (root / "reports/steps/tiny-a/history.csv").exists()  # DVC removed it before the run
    said = [line for line in log.read_text().replace("\r", "\n").splitlines() if line.startswith("error: ")]
    restore = (
        "git checkout -- reports/steps/tiny-a/history.csv reports/steps/tiny-a/made_on.json"
        " && dvc checkout train@tiny-a"
    )
    assert said == [f"error: stopped by Ctrl-C; DVC removed the last outputs before the run: {restore}"]
    run(["bash", "-c", restore], root, env)
    assert output_bytes(root) == outputs and tracked_state(root, env) == before
