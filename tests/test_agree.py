"""`agree`: the judgement on made-up final accuracies (`report.agreement`), the command on a git
repo of this repository's committed histories, and a re-run in the end-to-end DVC project."""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mnist_budget.report.agreement import StepRun, judge, setting_changes, spread_of, verdict
from tests.e2e import run

REPO = Path(__file__).resolve().parents[1]
# s7-separable's committed seeds 1-4, and the same seeds trained with `kernels: native` on an
# AVX-512 host (other bytes, the same recipe)
COMMITTED = {1: 0.9961, 2: 0.9955, 3: 0.9954, 4: 0.9953}
NATIVE = {1: 0.9950, 2: 0.9949, 3: 0.9943, 4: 0.9956}
# the ablation's final recipe over 8 seeds
EIGHT = {1: 0.9961, 2: 0.9955, 3: 0.9954, 4: 0.9953, 5: 0.9944, 6: 0.9946, 7: 0.9954, 8: 0.9953}


def step(then: dict, now: dict, name: str = "s7-separable", **known) -> StepRun:
    return StepRun("main", name, then, now, **known)


def closing(runs: list[StepRun], alone: tuple[str, ...] = ()) -> tuple[str, int]:
    result = verdict(runs, list(alone))
    return result.closing, result.exit_code


@pytest.mark.parametrize("low", [0.10, 0.98])
def test_a_broken_seed_is_caught_whatever_it_does_to_the_spread(low):
    """A seed at chance, or 1.5 pp low: the band is the committed seeds', not widened by it."""
    result = verdict([step(COMMITTED, {**COMMITTED, 4: low}, rerun_here=True)], [])
    assert result.exit_code == 1 and result.closing == "differs beyond the noise: main s7-separable"
    assert f"seed 4 at {low:.2%} far outside the committed seeds: beyond" in result.lines[0]


def test_a_faithful_rerun_with_other_kernels_agrees():
    runs = [
        step(
            COMMITTED,
            NATIVE,
            rerun_here=True,
            machines=({"kernels": "AVX2 (portable)"}, {"kernels": "AVX512 (native)"}),
        )
    ]
    result = verdict(runs, [])
    assert result.exit_code == 0
    assert result.closing.startswith("agrees within the seed noise (1 steps judged at a 5% family-wise")
    assert "largest step difference -0.06 pp, main s7-separable" in result.closing
    line = result.lines[0]
    assert line.startswith("main s7-separable: re-run here, seed 1 99.61% -> 99.50%, ")
    assert "std 0.04 pp from its 4 committed seeds" in line
    assert "made on AVX2 (portable) then, AVX512 (native) now" in line and line.endswith(": within")


def test_every_seed_a_fifth_of_a_point_low_is_caught_at_8_seeds():
    shifted = {seed: value - 0.002 for seed, value in EIGHT.items()}
    assert closing([step(EIGHT, shifted)]) == ("differs beyond the noise: main s7-separable", 1)
    # a tenth of the spread is no effect
    assert closing([step(EIGHT, {s: v - 0.00005 for s, v in EIGHT.items()})])[1] == 0


def test_the_band_widens_with_the_steps_judged_and_narrows_with_the_seeds():
    def judged(then: dict, tests: int):
        run = step(then, then)
        return judge(run, spread_of(run, [run]), tests)

    one, eight, four = judged(EIGHT, 1), judged(EIGHT, 8), judged(COMMITTED, 8)
    assert one.band < eight.band
    assert eight.band / eight.spread.std < four.band / four.spread.std  # t(7) and 8 seeds beat t(3) and 4


def test_a_step_is_judged_by_the_spread_of_its_kind_or_its_own_where_that_is_wider():
    quiet = step({1: 0.9947, 2: 0.9947, 3: 0.9947, 4: 0.9949}, {}, name="s6")  # std 0.01 pp by chance
    runs = [quiet, step(EIGHT, {}), step(COMMITTED, {}, name="s8")]
    pooled = spread_of(quiet, runs)
    assert pooled.df == 3 + 7 + 3 and pooled.source.startswith(
        "pooled over 3 steps of its kind (error 0.44%-0.52%)"
    )
    assert pooled.std > statistics.stdev(quiet.then.values())
    noisy = step({1: 0.9940, 2: 0.9960, 3: 0.9930, 4: 0.9965}, {}, name="noisy")
    own = spread_of(noisy, [*runs, noisy])
    assert own.std == pytest.approx(statistics.stdev(noisy.then.values())) and own.source.startswith(
        "its own 4 seeds, above"
    )


def test_faithful_reruns_are_called_different_at_most_5_percent_of_the_time():
    """Normal seeds, 8 steps of 4 seeds each (as the main pipeline), the committed and the
    re-run sides independent draws of the same recipe: the overall false-alarm rate."""
    draws = random.Random(7)
    runs = 600

    def seeds() -> dict[int, float]:
        return {s: 0.995 + draws.gauss(0, 0.0005) for s in range(1, 5)}

    alarms = sum(
        closing([step(seeds(), seeds(), name=f"s{i}") for i in range(8)])[1] != 0 for _ in range(runs)
    )
    assert alarms / runs <= 0.05 + 2 * (0.05 * 0.95 / runs) ** 0.5  # 5% and two binomial errors


def test_a_one_seed_step_borrows_the_spread_of_its_kind_never_an_arm_at_chance():
    runs = [
        StepRun("references", "r1", {1: 0.990}, {1: 0.9897}),
        StepRun("ablation", "no-batch-norm", {s: 0.10 + 0.01 * s for s in range(1, 9)}, {}),  # at chance
        StepRun("seed-systems", "big", {1: 0.9900, 2: 0.9910, 3: 0.9890}, {}),  # error 1%: its kind
        step({1: 0.9940, 2: 0.9945, 3: 0.9935}, {}),  # error 0.6%: within 2x of 1%
        step(EIGHT, {}),  # error 0.47%: not its kind
        StepRun("main", "s1-skeleton", {1: 0.9700, 2: 0.9800}, {}),  # error 2.5%: not its kind
    ]
    spread = spread_of(runs[0], runs)
    assert spread.df == 2 + 2 and spread.source == "pooled over 2 steps of its kind (error 0.60%-1.00%)"
    judged = verdict(runs[:1], [])
    assert judged.exit_code == 1 and "no seed spread to judge it by" in judged.lines[0]  # nothing of its kind


def test_other_settings_are_named_and_not_blamed_on_the_noise_or_the_machine():
    then = {
        "epochs": 15,
        "seeds": [1, 2, 3, 4],
        "kernels": "portable",
        "optimizer": {"name": "sgd", "lr": 0.01},
    }
    now = {"epochs": 1, "seeds": [1], "kernels": "native", "optimizer": {"name": "sgd", "lr": 0.05}}
    changes = setting_changes(then, now)
    assert changes == ["epochs 15 -> 1", "optimizer.lr 0.01 -> 0.05", "seeds [1, 2, 3, 4] -> [1]"]
    result = verdict(
        [step(COMMITTED, {1: 0.97}, rerun_here=True, settings=changes)],
        ["main s8-tiny: at HEAD only (a step not in the params here)"],
    )
    assert result.exit_code == 2
    assert result.lines[0] == f"main s7-separable: re-run here, other settings: {', '.join(changes)}"
    assert result.closing.startswith(
        "re-run with other settings than the committed ones: main s7-separable (epochs 15 -> 1"
    )
    assert "main s8-tiny: at HEAD only" in result.closing
    assert (
        "noise cannot say" in result.closing
        and "beyond" not in result.closing
        and "made on" not in result.closing
    )


def test_steps_re_run_here_are_told_from_steps_as_checked_out_and_a_test_steered_one_is_marked():
    runs = [
        step(COMMITTED, COMMITTED, identical=True, rerun_here=True),
        step(COMMITTED, COMMITTED, name="s6", identical=True),
        StepRun("ablation", "no-augment", EIGHT, EIGHT, identical=True),
        StepRun("references", "r5", {1: 0.99}, {1: 0.99}, identical=True, rerun_here=True, steered=True),
    ]
    result = verdict(runs, [])
    assert result.lines == [
        "main s7-separable: re-run here, byte-identical",
        "references r5 (steered by the test set): re-run here, byte-identical",
        "as checked out, not re-run here, byte-identical: main (1 step), ablation (1 step)",
    ]
    assert (result.closing, result.exit_code) == ("byte-identical", 0)
    untouched = verdict(runs[1:3], [])
    assert untouched.closing == "byte-identical (nothing re-run here)"


# The command, on a git repo of this repository's committed histories.
HISTORIES = ["reports/steps/s6-weight-average", "reports/steps/s7-separable", "reports/steps/s8-tiny"]


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    for folder in HISTORIES:
        (root / folder).mkdir(parents=True)
        shutil.copy(REPO / folder / "history.csv", root / folder / "history.csv")
        shutil.copy(REPO / folder / "made_on.json", root / folder / "made_on.json")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "results")
    return root


def move(root: Path, folder: str, by: dict[int, float]) -> None:
    """Shift some seeds' last-epoch test accuracy (`by`: seed -> fraction), as a re-run
    that ends elsewhere; every epoch's bytes change too."""
    path = root / folder / "history.csv"
    history = pd.read_csv(path)
    last = history.groupby("seed")["epoch"].transform("max") == history["epoch"]
    for seed, shift in by.items():
        history.loc[last & (history["seed"] == seed), "test_accuracy"] += shift
    history["train_loss"] += 1e-6
    history.to_csv(path, index=False)


def agree(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mnist_budget.tools.agree", *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.e2e
def test_the_command_judges_the_workspace_against_a_revision(repo):
    assert agree(repo).stdout.splitlines()[-1] == "byte-identical (nothing re-run here)"
    move(repo, "reports/steps/s8-tiny", {4: -0.02})
    result = agree(repo)
    assert (
        result.returncode == 1 and result.stdout.splitlines()[-1] == "differs beyond the noise: main s8-tiny"
    )
    assert "seed 4 at " in result.stdout and "far outside the committed seeds: beyond" in result.stdout
    shutil.rmtree(repo / "reports/steps/s6-weight-average")
    assert "main s6-weight-average: at HEAD only (a step not in the params here)" in agree(repo).stdout
    bad = agree(repo, "no-such-rev")
    assert bad.returncode == 1
    assert bad.stderr.strip().startswith("agree: git ls-tree") and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.e2e
def test_a_rerun_in_the_dvc_project_is_told_apart_and_other_settings_are_named(project):
    """The end-to-end project, trained by its own `dvc repro`: re-run here, byte-identical; then
    a step re-run with another epoch count is named with that key, exit 2."""
    root, env, _ = project
    agree_here = [sys.executable, "-m", "mnist_budget.tools.agree"]
    result = run(agree_here, root, env)
    assert result.stdout.splitlines()[-1] == "byte-identical"
    assert "main tiny-a: re-run here, byte-identical" in result.stdout
    params = (root / "params.yaml").read_text()
    try:
        (root / "params.yaml").write_text(params.replace("  epochs: 1\n", "  epochs: 2\n"))
        run(["dvc", "repro", "train@tiny-a"], root, env)
        changed = run(agree_here, root, env, check=False)
        assert changed.returncode == 2, changed.stdout + changed.stderr
        assert "main tiny-a: re-run here, other settings: epochs 1 -> 2" in changed.stdout
        assert changed.stdout.splitlines()[-1].startswith(
            "re-run with other settings than the committed ones"
        )
    finally:
        (root / "params.yaml").write_text(params)
        run(["git", "checkout", "--", "reports", "dvc.lock"], root, env)
        run(["dvc", "checkout"], root, env)
    assert json.loads((root / "reports/configs/tiny-a.json").read_text())["epochs"] == 1
