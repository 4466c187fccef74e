"""End to end: the real `dvc repro` on a copy of the project, with synthetic MNIST served
from a local folder and from an HTTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
import vl_convert
import yaml

from mnist_budget.base.mnist import MNIST_FILES
from mnist_budget.config.step_config import AUGMENT, read_config
from mnist_budget.report.palette import step_colours
from mnist_budget.report.plot_templates import HEIGHT, WIDTH, ZOOM
from mnist_budget.report.search_results import RUN_COLUMNS
from mnist_budget.train.model_stats import count_params
from mnist_budget.train.nets import build_net
from tests.conftest import serve_folder, write_synthetic_mnist

pytestmark = pytest.mark.e2e  # a real dvc on a project copy

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROJECT_FILES = [
    "stages",
    "mnist_budget",
    "plots",
    "search",
    "dvc.yaml",
    ".dvcignore",
    ".gitignore",
    "pyproject.toml",
]
STEPS = ("tiny-a", "tiny-b")
SEEDS = [1, 2]
METRIC_KEYS = {
    "seeds",
    "test_accuracy",
    "best_test_accuracy",
    "best_epoch",
    "train_accuracy",
    "params_trainable",
    "params_non_trainable",
    "params_total",
    "epochs",
    "first_epoch_at_target",
    "min_test_accuracy_last_3",
    "meets",
}

# As the project's params.yaml, laid out the way DVC writes it back (block lists, no list
# last before a comment), so that `dvc exp run -S` changes one line.
PARAMS = """\
target: {{test_accuracy: 0.3, max_params: 8000, max_epochs: 15}}
data:
  mirrors:
  - http://127.0.0.1:1/nothing-listens-here/
  - {url}
  local_mirror: ''
# the recipe every step starts from
recipe:
  layers:
  - conv 4
  - maxpool
  - conv 8
  - gap
  - conv 10 k=1
  epochs: 1
  batch_size: 32
  seeds:
  - 1
  - 2
  optimizer: {{name: adam, lr: 0.01}}  # Adam, as the seed write-ups
# each step is the one before plus its entry
steps_build_on: previous
steps:
  tiny-a:
    description: A tiny net.
  tiny-b:
    description: The same with SGD.
    optimizer: {{name: sgd, lr: 0.05, momentum: 0.9}}
headline:
  final: tiny-b
  tiny: tiny-a
without:
  the pool:
  - conv 4
  - conv 8
  - gap
  - conv 10 k=1
public_results:
- label: a published result
  params: 500
  accuracy: 0.5
"""

# The ablation of the final step tiny-b, drawn from params.yaml, over one seed more than the
# steps.
ABLATION_PARAMS = """\
target: {test_accuracy: 0.3, max_params: 8000, max_epochs: 15}
progression: params.yaml
baseline: full
seeds:
- 1
- 2
- 3
steps:
  full: {}
  no-sgd: {removes: SGD, step: tiny-b}
  with-dropout: {adds: dropout, dropout: 0.1}
"""
ABLATION_ARMS = ("full", "no-sgd", "with-dropout")


SEARCH_PARAMS = """\
target: {test_accuracy: 0.3, max_params: 8000, max_epochs: 15}
recipe:
  layers: [conv 4, maxpool, conv 8, gap, conv 10 k=1]
  epochs: 4
  batch_size: 32
  validation: 80
  seeds: [1]
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
steps:
  candidate:
    description: One candidate of the search.
"""
CANDIDATES = """\
keep: 1
rung1_seeds: [1]
finalist_seeds: [2]
budgets:
  small:
    max_params: 2000
    candidates:
      plain: {}
      stalled: {optimizer: {lr: 0.0000001}}
      adam-rotated: {optimizer: {name: adam, lr: 0.01}, augment: {rotate: 10}, batch_size: 16}
"""


def stages_ran(args: list[str], cwd: Path, env: dict) -> list[str]:
    """Run a dvc command; the stages it ran, in order, e.g. `references/dvc.yaml:report`."""
    lines = run(args, cwd, env).stdout.splitlines()
    return [line[len("Running stage '") : -len("':")] for line in lines if line.startswith("Running stage")]


def add_pipeline(root: Path, name: str, params: str) -> None:
    """Another pipeline in the project copy: the repository's <name>/dvc.yaml, test params."""
    (root / name).mkdir()
    shutil.copy(REPO / name / "dvc.yaml", root / name / "dvc.yaml")
    (root / name / "params.yaml").write_text(params)


def run(args: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A git + DVC repo holding a copy of the project and a 2-step, 1-epoch params.yaml,
    after one real `dvc repro`. Train files come from MNIST_MIRROR (plain IDX), test
    files only from the HTTP mirror (gzipped), so both paths must work."""
    tmp = tmp_path_factory.mktemp("e2e")
    root, local, served = tmp / "project", tmp / "local", tmp / "served"
    sums = write_synthetic_mnist(local, compress=False)
    write_synthetic_mnist(served, compress=True)
    for role in ("train_images", "train_labels"):
        (served / f"{MNIST_FILES[role]}.gz").unlink()
    for role in ("test_images", "test_labels"):
        (local / MNIST_FILES[role]).unlink()

    root.mkdir()
    for name in PROJECT_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "dvc.lock"))
        else:
            shutil.copy(source, root / name)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MNIST_MIRROR": str(local)}
    env.pop("MNIST_THREADS", None)
    run(["git", "init", "-q"], root, env)
    run(["git", "config", "user.email", "test@example.com"], root, env)
    run(["git", "config", "user.name", "test"], root, env)
    run(["dvc", "init", "-q"], root, env)
    shutil.copy(REPO / ".dvc" / "config", root / ".dvc" / "config")
    (root / "plots" / "offline.html").unlink()  # the plots_page stage must build it
    with serve_folder(served) as url:
        (root / "params.yaml").write_text(PARAMS.format(url=url))
        (root / "search/params.yaml").write_text(SEARCH_PARAMS)
        (root / "search/candidates.yaml").write_text(CANDIDATES)
        (root / "data").mkdir()
        (root / "reports/search").mkdir(parents=True)  # no search yet: the report says nothing of it
        (root / "reports/search/runs.csv").write_text(",".join(RUN_COLUMNS) + "\n")
        (root / "reports/search/first").mkdir()  # and no first search's record either
        (root / "reports/search/first/runs.csv").write_text(",".join(RUN_COLUMNS) + "\n")
        (root / "reports/search/first/params.yaml").write_text(SEARCH_PARAMS)
        (root / "data/mnist.sha256").write_text("".join(f"{sha}  {name}\n" for name, sha in sums.items()))
        add_pipeline(root, "ablation", ABLATION_PARAMS)  # upstream of the report, which quotes it
        run(["git", "add", "-A"], root, env)
        run(["git", "commit", "-qm", "project"], root, env)
        first = run(["dvc", "repro"], root, env)
        # as in the repository, the search pipeline has run once (its baseline candidate):
        # `dvc checkout` fails on a pipeline that never ran
        run(["dvc", "repro", "search/dvc.yaml"], root, env)
        run(["git", "add", "-A"], root, env)
        run(["git", "commit", "-qm", "results"], root, env)
    return root, env, first


def test_every_output_exists(project):
    root, _, first = project
    expected = [
        *(f"data/raw/{name}" for name in MNIST_FILES.values()),
        "data/prepared/mnist.pt",
        "data/prepared/stats.json",
        "dvc.lock",
        "reports/report.md",
        "reports/configs/tiny-a.json",
        "reports/configs/tiny-b.json",
        "reports/resolved.json",
        "reports/summary.csv",
        "reports/figures/accuracy.png",
        "reports/figures/loss.png",
        "reports/plots/curves.csv",
        "reports/plots/accuracy.json",
        "reports/plots/confusion_final.csv",
        "reports/headline.json",
        "reports/metrics.json",
        "plots/offline.html",
        "reports/figures/params_vs_accuracy.png",
        "reports/figures/confusion.png",
        "reports/figures/misclassified.png",
        "reports/ablation/effects.csv",
        "reports/ablation/report.md",
        "reports/ablation/figures/effects.png",
        *(f"reports/ablation/configs/{arm}.json" for arm in ABLATION_ARMS),
        "reports/ablation/resolved.json",
    ]
    for step in STEPS:
        expected += [f"models/{step}/seed{seed}.pt2" for seed in SEEDS]
        expected += [
            f"reports/steps/{step}/{name}"
            for name in ("history.csv", "metrics.json", "confusion.csv", "summary.md")
        ]
    missing = [path for path in expected if not (root / path).is_file()]
    assert not missing, f"missing outputs: {missing}\n{first.stderr[-3000:]}"
    assert not list(root.rglob("*.tmp*")), "a temporary file was left behind"


def test_the_log_of_a_repro_has_one_line_per_epoch_and_no_bar(project):
    """`dvc repro 2> log`: stderr is no terminal, so each training writes a line per epoch
    of each seed (a bar's carriage returns filled such a log with 75 KB of fragments)."""
    root, _, first = project
    assert "\r" not in first.stdout + first.stderr  # the download's bar too
    epochs = [line for line in first.stderr.splitlines() if " batches in " in line]
    assert all(re.fullmatch(r"\S+ seed \d+ \d+/\d+: \d+/\d+ batches in \d+ s, .*", line) for line in epochs)
    histories = [
        *root.glob("reports/steps/*/history.csv"),
        *root.glob("reports/ablation/steps/*/history.csv"),
    ]
    assert len(epochs) == sum(len(pd.read_csv(path)) for path in histories)


def test_the_ablation_runs_before_the_report_that_quotes_it_and_keeps_no_model(project):
    root, env, first = project
    ran = [line for line in first.stdout.splitlines() if line.startswith("Running stage")]
    arms = [f"Running stage 'ablation/dvc.yaml:train@{arm}':" for arm in ABLATION_ARMS]
    assert set(arms) <= set(ran)
    assert ran.index("Running stage 'ablation/dvc.yaml:report':") < ran.index("Running stage 'report':")
    assert not (root / "models/ablation").exists()
    for arm in ABLATION_ARMS:
        history = pd.read_csv(root / f"reports/ablation/steps/{arm}/history.csv")
        assert sorted(history["seed"]) == [1, 2, 3]
    # every output of the ablation lives in git: a clone has it all without the DVC cache
    lock = yaml.safe_load((root / "ablation/dvc.lock").read_text())["stages"]
    outs = [out["path"] for stage in lock.values() for out in stage.get("outs", [])]
    assert outs and all(path.startswith("reports/ablation/") for path in outs)
    assert not run(
        ["git", "status", "--porcelain", "--ignored", "reports/ablation"], root, env
    ).stdout.strip()


def test_the_ablation_rows_are_the_paired_differences_of_the_histories(project):
    root = project[0]
    final = {
        arm: pd.read_csv(root / f"reports/ablation/steps/{arm}/history.csv").set_index("seed")[
            "test_accuracy"
        ]
        for arm in ABLATION_ARMS
    }
    effects = pd.read_csv(root / "reports/ablation/effects.csv").set_index("arm")
    assert list(effects.index) == ["no-sgd", "with-dropout"]
    for arm, row in effects.iterrows():
        differences = final[arm] - final["full"]  # one epoch: the last row of each seed
        half = 4.302653 * differences.std(ddof=1) / 3**0.5  # t(0.975, 2 degrees of freedom)
        assert row["n"] == 3 and row["baseline"] == "full"
        assert row["effect"] == pytest.approx(differences.mean(), abs=1e-6)
        if half > 0:
            assert row["low"] == pytest.approx(differences.mean() - half, abs=1e-6)
            assert row["high"] == pytest.approx(differences.mean() + half, abs=1e-6)
        removes = arm == "no-sgd"
        if row["low"] > 0 or row["high"] < 0:
            assert row["verdict"] == ("helps" if (row["high"] < 0) == removes else "hurts")
        else:
            assert row["verdict"] == "within noise at 3 seeds"
    report = (root / "reports/ablation/report.md").read_text()
    cells = [
        [cell.strip() for cell in line.split("|")[1:-1]]
        for line in report.splitlines()
        if line.startswith("| ")
    ]
    assert cells[0][:3] == ["idea", "arm", "main step"]
    assert cells[1][:3] == ["without SGD", "`no-sgd`", "`tiny-b`"]
    assert cells[2][:3] == ["with dropout", "`with-dropout`", "(none)"]
    assert "![Effect of each idea" in report and (root / "reports/ablation/figures/effects.png").is_file()


def test_the_report_quotes_the_ablation_where_its_step_adds_the_idea(project):
    root = project[0]
    report = (root / "reports/report.md").read_text()
    tiny_b = report.split("### `tiny-b`")[1].split("\n#")[0]
    assert "Ablation: Removing SGD from the final recipe changes final-epoch test accuracy by " in tiny_b
    assert "3 paired seeds; arm `no-sgd`" in tiny_b
    assert "Ablation" not in report.split("### `tiny-a`")[1].split("\n#")[0]
    assert "another recipe" not in report  # the ablation's baseline is tiny-b's recipe
    assert "No arm measures" not in report  # and an arm takes out what tiny-b adds
    not_taken = report.split("## Ideas that are not a step")[1].split("\n## ")[0]
    assert "- Adding dropout to the final recipe changes final-epoch test accuracy by" in not_taken
    config = json.loads((root / "reports/configs/tiny-b.json").read_text())
    without_pool = read_config("x", {**config, "layers": ["conv 4", "conv 8", "gap", "conv 10 k=1"]})
    total = count_params(build_net(without_pool))["params_total"]
    assert f"- Without the pool, `tiny-b` would have {total:,} parameters" in not_taken


def test_a_clone_without_the_cache_finds_the_ablation_up_to_date(project, tmp_path):
    """Its histories are in git: a fresh clone rebuilds the data it depends on, no arm."""
    root, env, _ = project
    clone, mirror = tmp_path / "clone", tmp_path / "mirror"
    run(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    write_synthetic_mnist(mirror)  # the same files: the download checks them by their sha256
    ran = stages_ran(["dvc", "repro", "ablation/dvc.yaml"], clone, {**env, "MNIST_MIRROR": str(mirror)})
    assert ran == ["download", "prepare"]


@contextlib.contextmanager
def shared_through(root: Path, env: dict, tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A DVC remote (a folder) and a bare git repository as the project's `origin`, as a
    team shares them; the project's own config is as it was afterwards."""
    storage, origin = tmp_path / "dvc-storage", tmp_path / "origin.git"
    run(["git", "clone", "-q", "--bare", str(root), str(origin)], tmp_path, env)
    run(["git", "remote", "add", "origin", str(origin)], root, env)
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(storage)], root, env)
    try:
        yield storage, origin
    finally:
        run(["dvc", "remote", "remove", "--local", "shared"], root, env)
        run(["git", "remote", "remove", "origin"], root, env)


def teammate(origin: Path, storage: Path, tmp_path: Path, env: dict) -> Path:
    """A clone of `origin` elsewhere, with no DVC cache, pointed at the team's remote."""
    clone = tmp_path / "teammate"
    run(["git", "clone", "-q", str(origin), str(clone)], tmp_path, env)
    run(["dvc", "remote", "add", "--local", "-d", "shared", str(storage)], clone, env)
    run(["dvc", "remote", "modify", "--local", "shared", "verify", "true"], clone, env)  # as docs/sharing.md
    return clone


def test_a_teammate_pulls_every_result_and_trains_nothing(project, tmp_path):
    """`dvc push` to a remote, `dvc pull` in another clone: every pipeline up to date."""
    root, env, _ = project
    with shared_through(root, env, tmp_path) as (storage, origin):
        run(["dvc", "push"], root, env)
        clone = teammate(origin, storage, tmp_path, {**env, "MNIST_MIRROR": ""})
        offline = {**env, "MNIST_MIRROR": str(tmp_path / "no-mirror")}  # nothing to download from
        run(["dvc", "pull"], clone, offline)
        assert "Data and pipelines are up to date." in run(["dvc", "status"], clone, offline).stdout
        assert (
            stages_ran(["dvc", "repro", "dvc.yaml", "ablation/dvc.yaml", "search/dvc.yaml"], clone, offline)
            == []
        )
        for step in STEPS:
            for seed in SEEDS:
                model = f"models/{step}/seed{seed}.pt2"
                assert (clone / model).read_bytes() == (root / model).read_bytes()


def test_a_tampered_model_on_the_remote_never_reaches_a_teammate(project, tmp_path):
    """With `verify` on, as docs/sharing.md sets it up, DVC hashes what it pulls and refuses
    an object whose bytes are not its name."""
    root, env, _ = project
    with shared_through(root, env, tmp_path) as (storage, origin):
        run(["dvc", "push"], root, env)
        md5 = hashlib.md5((root / "models/tiny-a/seed1.pt2").read_bytes()).hexdigest()
        stored = storage / "files/md5" / md5[:2] / md5[2:]
        stored.chmod(0o644)
        stored.write_bytes(b"import os; os.system('anything')")
        clone = teammate(origin, storage, tmp_path, {**env, "MNIST_MIRROR": ""})
        pulled = run(["dvc", "pull"], clone, env, check=False)
    assert pulled.returncode != 0 and "Checkout failed" in pulled.stderr
    assert not (clone / "models/tiny-a/seed1.pt2").exists()
    assert not [p for p in clone.rglob("*") if p.is_file() and b"os.system" in p.read_bytes()]


def test_a_teammate_pulls_an_experiment_and_trains_nothing(project, tmp_path):
    """`dvc exp push` through a bare git repository, `dvc exp pull` in another clone."""
    root, env, _ = project
    override = "++steps.tiny-b.optimizer.lr=0.04"
    with shared_through(root, env, tmp_path) as (storage, origin):
        run(["dvc", "exp", "run", "-n", "shared-lr", "-S", override], root, env)
        metrics = json.loads((root / "reports/metrics.json").read_text())
        run(["git", "checkout", "--", "."], root, env)
        run(["dvc", "checkout", "--force"], root, env)
        try:
            run(["dvc", "exp", "push", "origin", "shared-lr"], root, env)  # its git ref and its cache
            clone = teammate(origin, storage, tmp_path, env)
            run(["dvc", "exp", "pull", "origin", "shared-lr"], clone, env)
            assert "shared-lr" in run(["dvc", "exp", "list"], clone, env).stdout
            run(["dvc", "exp", "apply", "shared-lr"], clone, env)  # outputs from the pulled cache
            assert stages_ran(["dvc", "repro"], clone, env) == []
            assert json.loads((clone / "reports/metrics.json").read_text()) == metrics
            assert (
                yaml.safe_load((clone / "params.yaml").read_text())["steps"]["tiny-b"]["optimizer"]["lr"]
                == 0.04
            )
        finally:
            run(["dvc", "exp", "remove", "shared-lr"], root, env)


def test_metrics_have_the_keys_and_sane_values(project):
    root = project[0]
    for step in STEPS:
        metrics = json.loads((root / f"reports/steps/{step}/metrics.json").read_text())
        assert METRIC_KEYS <= set(metrics)
        assert metrics["seeds"] == SEEDS
        accuracy = metrics["test_accuracy"]
        assert set(accuracy) == {"mean", "min", "max", "std", "per_seed"}
        assert list(accuracy["per_seed"]) == ["1", "2"]
        assert accuracy["mean"] == pytest.approx(sum(accuracy["per_seed"].values()) / 2, abs=1e-6)
        assert accuracy["min"] == min(accuracy["per_seed"].values())
        assert metrics["epochs"] == 1 and metrics["best_epoch"] == 1
        assert metrics["params_total"] == metrics["params_trainable"] + metrics["params_non_trainable"]
        assert metrics["params_non_trainable"] == 2 * (4 + 8)  # BN running mean and var
        assert metrics["first_epoch_at_target"] in (None, 1)
        assert set(metrics["meets"]) == {"accuracy", "every_seed", "params", "epochs", "all"}
        assert metrics["meets"]["every_seed"] == (accuracy["min"] >= 0.3)  # the test params' target
        assert metrics["meets"]["params"] and metrics["meets"]["epochs"]
        history = pd.read_csv(root / f"reports/steps/{step}/history.csv")
        assert list(history["seed"]) == SEEDS  # one epoch each
        # each exported model scores exactly what training measured at its last epoch
        for seed, row in history.set_index("seed").iterrows():
            assert accuracy["per_seed"][str(seed)] == pytest.approx(row["test_accuracy"], abs=1e-6)
        assert metrics["min_test_accuracy_last_3"] == pytest.approx(accuracy["mean"], abs=1e-6)


def test_report_covers_every_step(project):
    report = (project[0] / "reports/report.md").read_text()
    for step in STEPS:
        assert f"## `{step}`" in report
    assert "Changed against `tiny-a`: `optimizer.name`: adam → sgd" in report
    assert "| every seed ≥ target" in report and "| final test acc (mean ± std)" in report
    # two seeds in common: the effect carries a 95% interval of the paired difference
    assert "(95% interval of the paired difference over seeds 1, 2)" in report
    assert "![Test accuracy per epoch](figures/accuracy.png)" in report


def test_headline_over_seeds(project):
    headline = json.loads((project[0] / "reports/headline.json").read_text())
    assert set(headline) == {"final", "tiny"}
    final = headline["final"]
    assert final["step"] == "tiny-b" and final["seeds"] == SEEDS and final["epochs"] == 1
    accuracies = final["test_accuracies"]
    assert final["mean"] == pytest.approx(sum(accuracies) / 2)
    assert final["min"] == min(accuracies)
    assert "| final: `tiny-b`" in (project[0] / "reports/report.md").read_text()


def test_model_loads_without_the_project_code(project, tmp_path):
    root, env, _ = project
    code = (
        "import sys, torch; m = torch.export.load(sys.argv[1]).module(); "
        "print(tuple(m(torch.zeros(3, 1, 28, 28)).shape))"
    )
    out = run([sys.executable, "-c", code, str(root / "models/tiny-a/seed2.pt2")], tmp_path, env)
    assert out.stdout.strip() == "(3, 10)"


def test_second_repro_runs_nothing(project):
    root, env, _ = project
    again = run(["dvc", "repro"], root, env)
    assert "Running stage" not in again.stdout + again.stderr


def test_metrics_show_is_the_headline_and_every_step_is_a_target_away(project):
    root, env, _ = project
    shown = json.loads(run(["dvc", "metrics", "show", "--json"], root, env).stdout)
    headline = json.loads((root / "reports/headline.json").read_text())
    data = shown[""]["data"]
    assert list(data) == ["reports/metrics.json"]
    assert data["reports/metrics.json"]["data"] == {
        role: {"mean": h["mean"], "min": h["min"]} for role, h in headline.items()
    }
    steps = [f"reports/steps/{step}/metrics.json" for step in STEPS]
    shown = json.loads(run(["dvc", "metrics", "show", "--json", *steps], root, env).stdout)
    for step, path in zip(STEPS, steps, strict=True):  # DVC shows the numbers, not the lists
        written, seen = json.loads((root / path).read_text()), shown[""]["data"][path]["data"]
        assert seen["test_accuracy"] == written["test_accuracy"], step
        assert seen["params_total"] == written["params_total"], step


def test_exp_show_only_changed_is_readable_in_120_columns(project):
    """The experiment, the headline numbers it changed and the param it changed, none cut
    short (tiny-a is the tiny net: its numbers change, the final net's do not)."""
    root, env, _ = project
    run(["dvc", "exp", "run", "-n", "lr-up", "-S", "++steps.tiny-a.optimizer.lr=0.03"], root, env)
    try:
        shown = run(["dvc", "exp", "show", "--only-changed", "--no-pager"], root, {**env, "COLUMNS": "120"})
    finally:
        run(["git", "checkout", "--", "."], root, env)
        run(["dvc", "checkout", "--force"], root, env)
        run(["dvc", "exp", "remove", "lr-up"], root, env)
    lines = shown.stdout.splitlines()
    assert max(map(len, lines)) <= 120, shown.stdout
    header = next(line for line in lines if "Experiment" in line).split()
    assert header[:5] == ["Experiment", "Created", "tiny.mean", "tiny.min", "steps.tiny-a.optimizer.lr"], (
        shown.stdout
    )
    row = next(line for line in lines if "[lr-up]" in line).split()
    numbers = [cell for cell in row if re.fullmatch(r"\d+\.\d+", cell)]
    assert len(numbers) == 3 and numbers[-1] == "0.03", shown.stdout  # tiny.mean, tiny.min, the lr


def chromium() -> str:
    """Chromium's path. Without it the test skips, except under CI (CI=true), where it must run."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        message = "the browser test needs Chromium: apt-get install chromium (.ci/run installs it)"
        assert os.environ.get("CI") != "true", message
        pytest.skip(message)
    return found


TARGET = 0.3  # the test params' target accuracy


def y_axis(svg: str) -> tuple[float, float]:
    """The y axis's (bottom, top) values, from its percent tick labels at their heights."""
    axes = re.findall(r'<g class="mark-text role-axis-label"[^>]*>(.*?)</g>', svg)
    ticks = [(float(ty), float(text.rstrip("%")) / 100) for ty, text in
             re.findall(r'translate\([-\d.e]+,([-\d.e]+)\)[^>]*>([\d.]+%)<', "".join(axes))]  # fmt: skip
    assert len(ticks) >= 3, "no percent labels on the y axis"
    (y_a, value_a), (y_b, value_b) = ticks[0], ticks[-1]
    per_pixel = (value_b - value_a) / (y_b - y_a)
    return value_a + (HEIGHT + 3 - y_a) * per_pixel, value_a + (3 - y_a) * per_pixel  # labels sit 3 px low


def assert_no_mark_outside_the_plot(svg: str) -> None:
    """Every line, band and point lies inside the plot area, or is clipped to it."""
    groups = re.findall(r'<g class="mark-(?:line|area|symbol) role-mark[^"]*"([^>]*)>(.*?)</g>', svg)
    assert groups
    clip_rect = r'<clipPath id="([^"]+)"><rect x="0" y="0" width="([\d.]+)" height="([\d.]+)"'
    clips = {name: (float(w), float(h)) for name, w, h in re.findall(clip_rect, svg)}
    for attributes, marks in groups:
        clip = re.search(r'clip-path="url\(#([^)]+)\)"', attributes)
        if clip:
            assert clips[clip.group(1)] == (WIDTH, HEIGHT), "clipped to something else than the plot"
            continue
        points = re.findall(r"[ML](-?[\d.e]+),(-?[\d.e]+)", marks) + re.findall(
            r"translate\((-?[\d.e]+),(-?[\d.e]+)\)", marks
        )
        for x, y in points:
            assert -0.5 <= float(x) <= WIDTH + 0.5 and -0.5 <= float(y) <= HEIGHT + 0.5, (x, y)


def assert_accuracy_chart_is_readable(svg: str, bottom: float) -> None:
    """The accuracy chart as drawn: the target is one horizontal rule across the plot at the
    target's height, labelled; the y axis spans `bottom` to 100%; no mark leaves the plot;
    each step's line in its colour of the PNGs."""
    rules = re.search(r'<g class="mark-rule role-mark[^"]*"[^>]*>(.*?)</g>', svg).group(1)
    lines = re.findall(
        r'<line[^>]*transform="translate\(([-\d.e]+),([-\d.e]+)\)" x2="([-\d.e]+)" y2="([-\d.e]+)"', rules
    )
    assert len(lines) == 1, f"the target should be one rule, found {len(lines)}"
    _, y, x2, y2 = map(float, lines[0])
    assert y2 == 0 and abs(x2) == WIDTH, "the target rule is not one horizontal line across the chart"
    low, top = y_axis(svg)
    assert low == pytest.approx(bottom, abs=1e-3) and top == pytest.approx(1.0, abs=1e-3)
    assert low + (HEIGHT - y) / HEIGHT * (top - low) == pytest.approx(TARGET, abs=1e-3), (
        "the rule is not at the target"
    )
    assert f">target {TARGET:.2%}</text>" in svg, "the target rule has no label"
    assert_no_mark_outside_the_plot(svg)
    strokes = re.findall(r'aria-roledescription="line mark"[^>]*stroke="(#[0-9a-f]{6})"', svg)
    assert strokes == list(step_colours(STEPS).values()), "the steps' colours are not the PNGs'"


def chart_specs(root: Path, env: dict) -> dict[str, dict]:
    """Every Vega-Lite chart of `dvc plots show`, data included, by its title."""
    shown = json.loads(run(["dvc", "plots", "show", "--json"], root, env).stdout)["data"]
    return {
        name: plot["content"] for name, plots in shown.items() for plot in plots if plot["type"] == "vega"
    }


def lowest_accuracy(root: Path) -> float:
    """The whole accuracy chart's bottom: the lowest seed's epoch, rounded down to 1%."""
    curves = pd.read_csv(root / "reports/plots/curves.csv")
    return math.floor(curves["test_accuracy"].min() * 100) / 100


def test_every_chart_renders_to_svg_without_a_browser(project):
    """vl-convert renders the Vega-Lite spec of each `dvc plots show` chart, data included."""
    root, env, _ = project
    specs = chart_specs(root, env)
    assert len(specs) == 5, sorted(specs)
    svgs = {name: vl_convert.vegalite_to_svg(spec) for name, spec in specs.items()}
    for name, svg in svgs.items():
        assert svg.startswith("<svg") and svg.count("<path") > 2, name
        assert "role-mark" in svg, name
    whole, zoom = (svgs[n] for n in specs if n.startswith("Test accuracy"))
    assert_accuracy_chart_is_readable(whole, lowest_accuracy(root))
    assert_accuracy_chart_is_readable(zoom, TARGET - ZOOM)
    assert f"below {TARGET - ZOOM:.1%}: cut off at the bottom edge" in zoom
    lr = svgs[next(n for n in specs if n.startswith("Learning rate"))]
    assert lr.count('aria-roledescription="line mark"') == len(STEPS)  # one panel per step, none hidden
    # the loss chart says which line is which loss, and why they differ
    loss = next(n for n in specs if n.startswith("Loss per epoch"))
    assert "label smoothing" in loss and "plain cross-entropy" in loss


def rendered_dom(page: Path, tmp_path: Path) -> str:
    """The page's DOM after its scripts ran, from headless Chromium with no network."""
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--virtual-time-budget=20000",
        "--dump-dom",
        page.as_uri(),
    ]
    result = subprocess.run([chromium(), *flags], capture_output=True, text=True, timeout=120, check=True)
    return result.stdout


def test_plots_show_renders_offline_in_a_browser(project, tmp_path):
    root, env, _ = project
    run(["dvc", "plots", "show"], root, env)
    page = root / "dvc_plots" / "index.html"
    html = page.read_text()
    assert "cdn.jsdelivr.net" not in html and "<script src=" not in html  # nothing to fetch
    for step in STEPS:
        assert f'"step": "{step}"' in html
    dom = rendered_dom(page, tmp_path)
    charts = dom.count('class="marks"')  # one <svg class="marks"> per drawn Vega view
    assert charts == 5, f"expected 5 rendered charts, found {charts}"
    assert dom.count('class="mark-line role-mark') >= 3  # accuracy, loss and LR lines
    assert 'class="mark-area role-mark' in dom  # the accuracy chart's min-max band over seeds
    assert 'class="mark-rect role-mark' in dom  # the confusion matrix cells
    assert dom.count("<path") > 20
    starts = [m.start() for m in re.finditer('class="marks"', dom)]  # the charts in dvc.yaml's order
    assert_accuracy_chart_is_readable(dom[starts[0] : starts[1]], lowest_accuracy(root))
    assert_accuracy_chart_is_readable(dom[starts[1] : starts[2]], TARGET - ZOOM)
    # wide enough to read in a 1,400-px window: the plot alone is WIDTH px, the legend beside
    width = float(re.match(r'class="marks" width="([\d.]+)"', dom[starts[0] :]).group(1))
    assert width > WIDTH


@contextlib.contextmanager
def edited_params(root: Path, old: str, new: str) -> Iterator[None]:
    """params.yaml with its first `old` replaced by `new`, restored afterwards."""
    params = root / "params.yaml"
    original = params.read_text()
    assert old in original
    params.write_text(original.replace(old, new, 1))
    try:
        yield
    finally:
        params.write_text(original)


def tracked_state(root: Path, env: dict) -> tuple[str, str]:
    """What a re-run must not change: dvc.lock and `git status` (every git-tracked output)."""
    return (root / "dvc.lock").read_text(), run(["git", "status", "--porcelain"], root, env).stdout


def output_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for folder in ("models", "reports/steps")
        for p in sorted((root / folder).rglob("*"))
        if p.is_file()
    }


def resolved(root: Path, step: str) -> dict:
    return json.loads((root / f"reports/configs/{step}.json").read_text())


def test_a_forced_retrain_writes_the_same_bytes(project):
    """Same params, same machine: the model file, the history and dvc.lock come out identical."""
    root, env, _ = project
    before, outputs = tracked_state(root, env), output_bytes(root)
    ran = stages_ran(["dvc", "repro", "--force", "--single-item", "train@tiny-a"], root, env)
    assert ran == ["train@tiny-a"]
    assert tracked_state(root, env) == before
    assert output_bytes(root) == outputs
    assert "Running stage" not in run(["dvc", "repro"], root, env).stdout  # nothing downstream changed


def test_each_history_says_what_made_it(project):
    """made_on.json beside each history: what besides the params fixes its bytes."""
    root, _, _ = project
    for step in STEPS:
        assert json.loads((root / f"reports/steps/{step}/made_on.json").read_text()) == {
            "device": "cpu",
            "kernels": "AVX2 (portable)",
            "torch": torch.__version__.split("+")[0],
            "deterministic": True,
        }


def test_bf16_where_it_is_slow_trains_after_one_warning_line_and_native_kernels_are_recorded(project):
    root, env, _ = project
    before = tracked_state(root, env)
    config = "reports/configs/tiny-a.json"
    edits = {
        config: (
            '"precision": "fp32",\n  "kernels": "portable"',
            '"precision": "bf16",\n  "kernels": "native"',
        )
    }
    try:
        with edited_files(root, {config: ('"precision": "fp32"', '"precision": "bf16"')}):
            slow = run([sys.executable, "-m", "stages.train", "tiny-a"], root, env).stderr.splitlines()
        with edited_files(root, edits):
            run([sys.executable, "-m", "stages.train", "tiny-a"], root, env)
            native = json.loads((root / "reports/steps/tiny-a/made_on.json").read_text())
    finally:
        run(["git", "checkout", "--", "reports"], root, env)
        run(["dvc", "checkout", "--force", "train@tiny-a"], root, env)
    assert tracked_state(root, env) == before
    warning = (
        "train tiny-a: warning: precision bf16 is slow here (kernels: portable holds oneDNN to AVX2, which "
        "has no bf16 convolutions): expect 8-12x fp32's time (docs/performance.md); the results stay valid"
    )
    assert [line for line in slow if "warning" in line] == [warning]
    assert "final test accuracy" in slow[-1]
    assert native["kernels"].endswith("(native)") and native["device"] == "cpu"


def test_a_seed_gives_the_same_bytes_alone_or_beside_another(project):
    """The committed models trained side by side (2 workers, one thread each); one at a time in
    the stage's own process (MNIST_THREADS=1) they come out byte for byte the same."""
    root, env, _ = project
    before, outputs = tracked_state(root, env), output_bytes(root)
    alone = {**env, "MNIST_THREADS": "1"}
    result = run(["dvc", "repro", "--force", "--single-item", "train@tiny-b"], root, alone)
    assert "seeds 1, 2 on cpu, 1 at a time with one thread each" in result.stderr
    assert output_bytes(root) == outputs and tracked_state(root, env) == before


def training_workers(pid: int) -> list[int]:
    """The spawned worker processes of a stage (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


# A training the test stops: 500 epochs of the synthetic data ran out within the Ctrl-C
# test's 65 s on CI once a log got a line per epoch instead of a bar.
UNENDING_EPOCHS = 100_000


def test_sigterm_to_a_train_stage_stops_its_workers_and_keeps_the_outputs(project):
    root, env, _ = project
    before, outputs = tracked_state(root, env), output_bytes(root)
    config = root / "reports/configs/tiny-a.json"
    original = config.read_text()
    config.write_text(json.dumps({**json.loads(original), "epochs": UNENDING_EPOCHS}))
    # the progress bars to a file, not a pipe nobody reads: they came to 65,205 bytes here, at
    # the 64 KiB a pipe holds; a full pipe blocks the workers' writes and the stage then missed
    # the 60 s below on CI, as if it ignored SIGTERM
    log = root.parent / "sigterm-stage.log"
    try:
        with open(log, "w") as stderr:
            stage = subprocess.Popen(
                [sys.executable, "-m", "stages.train", "tiny-a"], cwd=root, env=env, stderr=stderr
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(workers := training_workers(stage.pid)) < 2:
            time.sleep(0.2)
        assert len(workers) == 2, "the stage did not start one worker per seed"
        time.sleep(5)  # the workers are training
        stage.send_signal(signal.SIGTERM)
        assert stage.wait(timeout=60) == 128 + signal.SIGTERM, log.read_text()[-2000:]
    finally:
        config.write_text(original)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in workers):
        time.sleep(0.2)
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()], "a worker outlived its stage"
    assert output_bytes(root) == outputs and tracked_state(root, env) == before
    assert not list(root.rglob(".*.tmp*"))


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for a reaper."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_no_model_or_data_can_be_committed_whatever_dvc_does_to_its_gitignore(project):
    """A failed `dvc repro` undoes DVC's own .gitignore entries: the project's own hold."""
    root, env, _ = project
    with edited_files(root, {"models/.gitignore": ("/tiny-a\n", "")}):
        status = run(["git", "status", "--porcelain", "--untracked-files=all"], root, env).stdout
    assert status.strip() and ".pt2" not in status and "data/" not in status, status


def test_a_removed_step_leaves_no_outputs_gitignore_line_or_lock_entry(project):
    """DVC keeps all three for a stage that no longer exists; `resolve` removes them."""
    root, env, _ = project
    before = tracked_state(root, env)
    added = "  tiny-c:\n    description: A step added, then removed.\n    seeds:\n    - 1\nheadline:"
    with edited_files(root, {"params.yaml": ("headline:", added)}):
        assert "train@tiny-c" in stages_ran(["dvc", "repro"], root, env)
        assert (root / "models/tiny-c/seed1.pt2").is_file()
    result = run(["dvc", "repro"], root, env)
    assert (
        "resolve: removed the outputs and dvc.lock entries of steps no longer in params.yaml: tiny-c "
        "(`git checkout` and `dvc checkout` bring them back)"
    ) in result.stderr
    assert not (root / "models/tiny-c").exists() and not (root / "reports/steps/tiny-c").exists()
    # dvc.lock and git status as before the step came, but for DVC's own line in models/.gitignore
    ignored = run(["git", "diff", "--cached", "models/.gitignore"], root, env).stdout
    run(["git", "checkout", "HEAD", "--", "models/.gitignore"], root, env)
    assert tracked_state(root, env) == before
    assert [line for line in ignored.splitlines() if line.startswith(("+/", "-/"))] == ["+/tiny-c"]


def test_a_step_renamed_under_an_ablation_arm_stops_resolve_before_any_training(project):
    root, env, _ = project
    before = tracked_state(root, env)
    renamed = (root / "params.yaml").read_text().replace("tiny-b", "tiny-bee")  # the step and the headline
    with edited_files(root, {"params.yaml": ((root / "params.yaml").read_text(), renamed)}):
        result = run(["dvc", "repro"], root, env, check=False)
    assert result.returncode != 0
    assert "Running stage 'resolve'" in result.stdout and "Running stage 'train" not in result.stdout
    error = (
        "error: invalid params: ablation/params.yaml: steps.no-sgd.step: 'tiny-b' is not a step of the "
        "progression after the first, up to tiny-bee (tiny-bee); rename the step there too, or the arm with it"
    )
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [error]
    assert tracked_state(root, env) == before


def test_a_dvc_killed_as_its_train_stage_starts_takes_the_stage_with_it(project):
    """The stage dies with its `dvc` even in its first second, while it is still importing
    torch: it asks for that before any import (stages/__init__.py)."""
    root, env, _ = project
    before = tracked_state(root, env)
    dvc = subprocess.Popen(
        ["dvc", "repro", "--force", "--single-item", "train@tiny-a"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    children = Path(f"/proc/{dvc.pid}/task/{dvc.pid}/children")
    stage, deadline = None, time.monotonic() + 60
    while stage is None and time.monotonic() < deadline:
        for pid in map(int, children.read_text().split() if children.exists() else []):
            with contextlib.suppress(FileNotFoundError):
                if b"stages.train" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    stage = pid
        time.sleep(0.01)
    assert stage is not None, "dvc started no train stage"
    time.sleep(0.3)
    dvc.kill()
    dvc.wait()
    deadline = time.monotonic() + 1.5  # its imports alone take about 3 s
    while alive(stage) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(stage), "the train stage outlived the dvc that started it"
    run(["dvc", "repro", "--single-item", "train@tiny-a"], root, env)  # DVC's own lock, released
    assert tracked_state(root, env) == before
    assert not list(root.rglob(".*.tmp*"))


def test_editing_one_step_retrains_that_step_alone(project):
    root, env, _ = project
    before = tracked_state(root, env)
    with edited_params(root, "{name: sgd, lr: 0.05,", "{name: sgd, lr: 0.02,"):
        diff = json.loads(run(["dvc", "params", "diff", "--json"], root, env).stdout)
        change = diff["params.yaml"]["steps.tiny-b.optimizer.lr"]
        assert (change["old"], change["new"]) == (0.05, 0.02)
        assert list(diff["params.yaml"]) == ["steps.tiny-b.optimizer.lr"]
        ran = stages_ran(["dvc", "repro"], root, env)
        assert ran.index("resolve") < ran.index("train@tiny-b")
        # tiny-b is the final step: the ablation's arms that keep its optimizer retrain too
        assert set(ran) == retrained("tiny-b") | ablation_ran("train@full", "train@with-dropout")
        assert resolved(root, "tiny-b")["optimizer"] == sgd(0.02)
    run(["dvc", "repro"], root, env)  # back to the committed params: the same bytes again
    assert tracked_state(root, env) == before


def sgd(lr: float) -> dict:
    """tiny-b's optimizer as its resolved config states it: every default filled in."""
    return {"name": "sgd", "lr": lr, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}


def adam(lr: float) -> dict:
    return {"name": "adam", "lr": lr, "weight_decay": 0.0}


def retrained(step: str) -> set[str]:
    """The stages a change to one step's resolved config reruns."""
    return {"resolve", f"train@{step}", f"evaluate@{step}", "headline", "report"}


def ablation_ran(*arms: str) -> set[str]:
    """The ablation's stages that a change to params.yaml reruns: its resolve, which draws the
    arms from the progression, and the arms whose config that changes, then its report."""
    ran = {f"ablation/dvc.yaml:{stage}" for stage in ("resolve", *arms)}
    return ran | ({"ablation/dvc.yaml:report"} if arms else set())


def exp_run(root: Path, env: dict, override: str) -> tuple[list[str], str, dict]:
    """`dvc exp run -S override` in the workspace: the stages it ran and the params.yaml it
    left and the resolved configs; then the workspace goes back to the committed results."""
    ran = stages_ran(["dvc", "exp", "run", "-S", override], root, env)
    params = (root / "params.yaml").read_text()
    configs = {step: resolved(root, step) for step in STEPS}
    run(["git", "checkout", "--", "."], root, env)
    run(["dvc", "checkout", "--force"], root, env)
    return ran, params, configs


def changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    return [(a, b) for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b]


def test_exp_run_set_recipe_changes_every_step_that_inherits_it(project):
    root, env, _ = project
    original = (root / "params.yaml").read_text()
    ran, params, configs = exp_run(root, env, "recipe.optimizer.lr=0.02")
    # tiny-b names another optimizer (sgd): it starts over and keeps its own lr; the arm
    # without it has tiny-a's
    assert set(ran) == retrained("tiny-a") | ablation_ran("train@no-sgd")
    assert configs["tiny-a"]["optimizer"] == adam(0.02)
    assert configs["tiny-b"]["optimizer"] == sgd(0.05)
    # DVC rewrote one value, and kept the file's layout and comments
    assert changed_lines(original, params) == [
        ("  optimizer: {name: adam, lr: 0.01}  # Adam, as the seed write-ups",
         "  optimizer: {name: adam, lr: 0.02}  # Adam, as the seed write-ups"),
    ]  # fmt: skip


def test_exp_run_set_one_step_changes_exactly_that_step(project):
    root, env, _ = project
    original = (root / "params.yaml").read_text()
    ran, params, configs = exp_run(root, env, "++steps.tiny-a.optimizer.lr=0.03")
    assert set(ran) == retrained("tiny-a") | ablation_ran("train@no-sgd")
    assert configs["tiny-a"]["optimizer"] == adam(0.03)
    assert configs["tiny-b"]["optimizer"] == sgd(0.05)
    assert yaml.safe_load(params)["recipe"]["optimizer"]["lr"] == 0.01
    assert yaml.safe_load(params)["steps"]["tiny-a"] == {
        "description": "A tiny net.",
        "optimizer": {"lr": 0.03},
    }
    assert len(params.splitlines()) == len(original.splitlines()) + 2  # `optimizer:` and `lr:` added


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        (
            "  tiny-b:\n    description: The same",
            "  tiny-b:\n    layers: [conv 4, pool]\n    description: The same",
            (
                "error: invalid params: steps.tiny-b.layers[1]: unknown layer 'pool'; "
                "valid: conv, sepconv, maxpool, avgpool, gap, dense, inception, residual"
            ),
        ),
        (
            "  tiny-b:\n",
            "  tiny b:\n",
            (
                "error: invalid params: steps.tiny b: a step name may hold only ASCII letters, digits, '-' "
                "and '_', and start with a letter or digit (DVC uses it in stage names)"
            ),
        ),
        (
            "  tiny-a:\n",
            "  tiny-c:\n",  # headline.tiny still names it
            "error: invalid params: headline.tiny: 'tiny-a' is not a step in `steps` (tiny-c, tiny-b)",
        ),
        (
            "  accuracy: 0.5\n",
            "  accuracy: 99.5\n",
            "error: invalid params: public_results[0].accuracy: is a fraction in (0, 1]",
        ),
    ],
    ids=["typo", "space-in-name", "renamed-headline-step", "public-result-in-percent"],
)
def test_bad_params_stop_before_training_and_delete_nothing(project, old, new, error):
    root, env, _ = project
    before, outputs = tracked_state(root, env), output_bytes(root)
    with edited_params(root, old, new):
        result = run(["dvc", "repro"], root, env, check=False)
        assert result.returncode != 0
        assert "Running stage 'resolve'" in result.stdout and "Running stage 'train" not in result.stdout
        assert [line for line in result.stderr.splitlines() if line.startswith("error: invalid")] == [error]
    assert output_bytes(root) == outputs and tracked_state(root, env) == before
    assert "Running stage" not in run(["dvc", "repro"], root, env).stdout  # the failed run changed nothing


def test_a_header_only_history_is_an_error_not_a_report(project):
    root, env, _ = project
    history = root / "reports/steps/tiny-a/history.csv"
    original = history.read_text()
    history.write_text(original.splitlines()[0] + "\n")
    try:
        result = run([sys.executable, "-m", "stages.report"], root, env, check=False)
    finally:
        history.write_text(original)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        (
            "error: reports/steps/tiny-a/history.csv: holds no complete epoch; "
            "retrain its step: dvc repro --force train@tiny-a"
        )
    ]


def limited_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_a_full_disk_names_the_model_file_and_keeps_the_old_one(project):
    root, env, _ = project
    outputs = output_bytes(root)
    result = subprocess.run(
        [sys.executable, "-m", "stages.train", "tiny-a"],
        cwd=root, env=env, capture_output=True, text=True, check=False, preexec_fn=limited_file_size(4096),
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: models/tiny-a/seed1.pt2: File too large"
    assert output_bytes(root) == outputs
    assert not list(root.rglob(".*.tmp*"))


def test_an_unwritable_output_folder_fails_before_training(project):
    root, env, _ = project
    (root / "models/tiny-a-blocker").write_text("")
    folder = root / "models" / "tiny-a"
    moved = folder.rename(root / "models" / "tiny-a-moved")
    (root / "models/tiny-a-blocker").rename(folder)  # a file where the folder should be
    try:
        result = run([sys.executable, "-m", "stages.train", "tiny-a"], root, env, check=False)
    finally:
        folder.unlink()
        moved.rename(folder)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == ["error: models/tiny-a: File exists"]  # no training line


def test_rewording_a_description_or_changing_threads_retrains_nothing(project):
    root, env, _ = project
    before = tracked_state(root, env)
    with edited_params(root, "description: The same with SGD", "description: Like tiny-a, with SGD"):
        ran = stages_ran(["dvc", "repro"], root, env)
        # the report quotes the description; the ablation's resolve rereads params.yaml and
        # finds its arms unchanged
        assert set(ran) == {"resolve", "headline", "report"} | ablation_ran()
        assert "Like tiny-a, with SGD" in (root / "reports/report.md").read_text()
    run(["dvc", "repro"], root, env)
    assert tracked_state(root, env) == before
    status = run(["dvc", "status", "--json"], root, {**env, "MNIST_THREADS": "1"}).stdout
    assert json.loads(status) == {}


@contextlib.contextmanager
def edited_files(root: Path, edits: dict[str, tuple[str, str]]) -> Iterator[None]:
    """Project files with one string replaced each, restored afterwards."""
    originals = {name: (root / name).read_text() for name in edits}
    try:
        for name, (old, new) in edits.items():
            assert old in originals[name], name
            (root / name).write_text(originals[name].replace(old, new, 1))
        yield
    finally:
        for name, text in originals.items():
            (root / name).write_text(text)


def test_rewording_an_error_or_a_report_retrains_no_model(project, tmp_path):
    root, env, _ = project
    before = tracked_state(root, env)
    write_synthetic_mnist(tmp_path / "mirror")  # download reads params: params.py reruns it
    env = {**env, "MNIST_MIRROR": str(tmp_path / "mirror")}
    rewordings = {
        "mnist_budget/base/errors.py": ("a one-line cause", "a cause in one line"),
        "stages/cli.py": ("stopped by Ctrl-C", "interrupted by Ctrl-C"),
        "mnist_budget/config/params.py": ("missing required key", "a required key is missing"),
        "mnist_budget/report/writeup.py": ("no over-fitting", "no sign of over-fitting"),
    }
    with edited_files(root, rewordings):
        ran = stages_ran(["dvc", "repro"], root, env)
        assert not [stage for stage in ran if stage.startswith("train@")]
        assert "report" in ran  # the reworded report module reruns the report
    run(["dvc", "repro"], root, env)
    assert tracked_state(root, env) == before


@contextlib.contextmanager
def damaged(path: Path, content: bytes) -> Iterator[None]:
    """`path` holding `content` (a folder where `content` is None), restored afterwards."""
    original = path.read_bytes()
    path.unlink()
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    try:
        yield
    finally:
        path.rmdir() if path.is_dir() else path.unlink()
        path.write_bytes(original)


def folder_bytes(root: Path, *folders: str) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for folder in folders
        for p in sorted((root / folder).rglob("*"))
        if p.is_file()
    }


def test_a_failed_download_keeps_the_last_good_data(project, tmp_path):
    root, env, _ = project
    before, data = tracked_state(root, env), folder_bytes(root, "data")
    mirror = tmp_path / "bad-mirror"
    write_synthetic_mnist(mirror)
    (mirror / f"{MNIST_FILES['train_labels']}.gz").write_bytes(b"not gzip, and not the checked labels")
    result = run(
        ["dvc", "repro", "--force", "download"], root, {**env, "MNIST_MIRROR": str(mirror)}, check=False
    )
    assert result.returncode != 0
    assert f"error: could not get {MNIST_FILES['train_labels']} from any mirror:" in result.stderr
    assert folder_bytes(root, "data") == data and tracked_state(root, env) == before


def test_a_failed_prepare_keeps_the_last_prepared_data(project):
    root, env, _ = project
    prepared = folder_bytes(root, "data/prepared")
    labels = root / "data/raw" / MNIST_FILES["test_labels"]
    with damaged(labels, labels.read_bytes()[:-10]):  # fewer labels than images
        result = run([sys.executable, "-m", "stages.prepare"], root, env, check=False)
    assert result.returncode == 1 and result.stderr.startswith("error: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert folder_bytes(root, "data/prepared") == prepared


def test_a_failed_train_replaces_no_output(project):
    """The history cannot be written (a folder is in its place): the models stay too."""
    root, env, _ = project
    outputs = output_bytes(root)
    with damaged(root / "reports/steps/tiny-a/history.csv", None):
        result = run([sys.executable, "-m", "stages.train", "tiny-a"], root, env, check=False)
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == (
            "error: reports/steps/tiny-a/history.csv: Is a directory"
        )
    assert output_bytes(root) == outputs
    assert not list(root.rglob(".*.tmp*"))


REPAIR_ADVICE = "repair: python -m mnist_budget.base.dvc_lock --repair, then dvc repro"


def test_a_damaged_model_stops_evaluate_which_keeps_its_outputs(project):
    root, env, _ = project
    before, outputs = tracked_state(root, env), output_bytes(root)
    model = root / "models/tiny-a/seed1.pt2"
    with damaged(model, model.read_bytes()[:5000]):
        result = run(["dvc", "repro", "--force", "--single-item", "evaluate@tiny-a"], root, env, check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1
    assert re.fullmatch(
        r"error: models/tiny-a/seed1\.pt2: not the bytes dvc\.lock records \(md5 \w{32}, recorded \w{32}\), "
        rf"not loaded; {re.escape(REPAIR_ADVICE)}",
        errors[0],
    ), errors[0]
    assert output_bytes(root) == outputs and tracked_state(root, env) == before


def test_another_steps_model_is_refused_before_it_is_loaded(project):
    root, env, _ = project
    model = root / "models/tiny-a/seed2.pt2"
    with damaged(model, (root / "models/tiny-b/seed2.pt2").read_bytes()):
        result = run([sys.executable, "-m", "stages.evaluate", "tiny-a"], root, env, check=False)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: models/tiny-a/seed2.pt2: not the bytes dvc.lock records")
    )


def test_a_corrupted_cache_object_is_found_and_rebuilt_alone(project):
    """Bytes flipped in the cache object of a model: `dvc status` cannot see it; the project's
    check does, and its repair makes the next `dvc repro` rebuild that step alone."""
    root, env, _ = project
    before, outputs = tracked_state(root, env), output_bytes(root)
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["train@tiny-a"]
    listing_md5 = next(out["md5"] for out in lock["outs"] if out["path"] == "models/tiny-a")
    cache = root / ".dvc/cache/files/md5"
    entries = json.loads((cache / listing_md5[:2] / listing_md5[2:]).read_text())
    md5 = next(e["md5"] for e in entries if e["relpath"] == "seed1.pt2")
    cached = cache / md5[:2] / md5[2:]
    cached.chmod(0o644)
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    check = [sys.executable, "-m", "mnist_budget.base.dvc_lock"]
    found = run(check, root, env, check=False)
    assert found.returncode == 1
    assert found.stdout.splitlines() == [
        f"bad cache object: .dvc/cache/files/md5/{md5[:2]}/{md5[2:]} (its bytes are not the md5 its name says)",
        "bad output: models/tiny-a/seed1.pt2 of train@tiny-a (dvc.lock): not the bytes the lock records",
    ]
    repaired = run([*check, "--repair"], root, env)
    assert repaired.stdout.splitlines()[-1] == (
        "dvc_lock: removed 1 bad object(s) and 1 output file(s); `dvc repro` rebuilds them (train@tiny-a)"
    )
    assert stages_ran(["dvc", "repro"], root, env) == ["train@tiny-a"]
    assert run(check, root, env).returncode == 0
    assert output_bytes(root) == outputs and tracked_state(root, env) == before


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda text: text.replace("\n2,", "\n1,"), "holds seeds [1], but the step trains seeds [1, 2]"),
        (
            lambda text: text[:40] + "\x00\xff garbage \xfe\n" + text[40:],
            "is not a readable CSV file (UnicodeDecodeError)",
        ),
        (
            lambda text: text.replace("\n1,1,", "\n1,one,", 1),
            "holds a missing value or one that is not a number",
        ),
    ],
    ids=["other-seeds", "garbage", "not-a-number"],
)
def test_a_bad_history_stops_the_report_which_keeps_its_outputs(project, damage, problem):
    root, env, _ = project
    before = tracked_state(root, env)
    reports = folder_bytes(root, "reports")
    history = root / "reports/steps/tiny-b/history.csv"
    with damaged(history, damage(history.read_bytes().decode("latin-1")).encode("latin-1")):
        result = run(["dvc", "repro", "--force", "--single-item", "report"], root, env, check=False)
        assert result.returncode != 0
        assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [
            f"error: reports/steps/tiny-b/history.csv: {problem}; retrain its step: dvc repro --force train@tiny-b"
        ]
    assert folder_bytes(root, "reports") == reports and tracked_state(root, env) == before


@contextlib.contextmanager
def ctrl_c_as_in_a_terminal() -> Iterator[None]:
    """Ctrl-C's default action for the processes started within, as a terminal's foreground
    job has it: a test run started as a background job of a script has SIGINT ignored, and a
    child inherits that (a handled signal, unlike an ignored one, is reset at exec)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_a_train_stage_with_one_line(project):
    root, env, _ = project
    outputs = output_bytes(root)
    config = root / "reports/configs/tiny-a.json"
    original = config.read_text()
    config.write_text(json.dumps({**json.loads(original), "epochs": UNENDING_EPOCHS}))
    log = root.parent / "ctrl-c-stage.log"
    try:
        with open(log, "w") as stderr, ctrl_c_as_in_a_terminal():  # a file: see the SIGTERM test
            stage = subprocess.Popen(
                [sys.executable, "-m", "stages.train", "tiny-a"], cwd=root, env=env, stderr=stderr,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(training_workers(stage.pid)) < 2:
            time.sleep(0.2)
        time.sleep(5)  # the workers are training
        os.killpg(stage.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        assert stage.wait(timeout=60) == 128 + signal.SIGINT
    finally:
        config.write_text(original)
    lines = [line for line in log.read_text().replace("\r", "\n").splitlines() if line.strip()]
    # the last line (after what a worker's progress bar left, blanked, on it: tqdm in a file)
    assert lines[-1].strip() == "error: stopped by Ctrl-C; the stage's last outputs are kept"
    assert not [line for line in lines if "Traceback" in line or "KeyboardInterrupt" in line]
    assert output_bytes(root) == outputs


REFERENCE_PARAMS = """\
target: {test_accuracy: 0.3, max_params: 8000, max_epochs: 15}
recipe: {epochs: 1, batch_size: 32, seeds: [1]}
steps:
  ref-separable:
    description: Separable convs, SiLU, AdamW, cosine, shear.
    layers: [conv 4 p=1, sepconv 8, avgpool, gap, dense 10]
    activation: silu
    optimizer: {name: adamw, lr: 0.01}
    schedule: {name: cosine}
    augment: {shear: 10}
"""


def test_reference_pipeline_shares_the_data_and_writes_apart(project):
    """A second pipeline (references/dvc.yaml, run last: it adds stages to the project)."""
    root, env, _ = project
    add_pipeline(root, "references", REFERENCE_PARAMS)
    assert stages_ran(["dvc", "repro", "references/dvc.yaml"], root, env) == [
        "references/dvc.yaml:resolve",
        "references/dvc.yaml:train@ref-separable",
        "references/dvc.yaml:evaluate@ref-separable",
        "references/dvc.yaml:report",
    ]
    metrics = json.loads((root / "reports/references/steps/ref-separable/metrics.json").read_text())
    assert metrics["epochs"] == 1 and metrics["params_non_trainable"] == 2 * (
        4 + 8
    )  # BN after conv 4 and after the pointwise
    assert (root / "models/references/ref-separable/seed1.pt2").is_file()
    assert (
        "# MNIST under budget: the `references` pipeline"
        in (root / "reports/references/report.md").read_text()
    )
    assert "Running stage" not in run(["dvc", "repro"], root, env).stdout  # main pipeline untouched


SYSTEMS_PARAMS = """\
target: {test_accuracy: 0.3, max_params: 10000, max_epochs: 15}
recipe:
  epochs: 2
  batch_size: 32
  seeds: [1]
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
steps:
  x-small:
    description: System x's only trained step.
    layers: [conv 4, maxpool, conv 8, gap, conv 10 k=1]
  y-small:
    description: System y's step.
    layers: [conv 4, maxpool, conv 8, gap, dense 10]
gpu_steps:
  x-huge:
    description: Too big for a CPU.
    layers: [conv 64, conv 128, gap, conv 10 k=1]
systems:
  x:
    title: System x
    source: x.txt
    counts: trainable
    differs: It is synthetic.
    claims:
      x-huge: {params: 80000, epochs: 2}
      x-small:
        params: 1500
        epochs: 2
        test_accuracy: {best: 0.2, epoch 1: 0.2}  # `epoch 1`, not 1: DVC hashes params with sorted keys
        train_accuracy: {best: 0.2}
        says: [overfitting]
  y:
    title: System y
    source: y.txt
    counts: total
    differs: It is synthetic too.
    claims:
      y-small: {params: 2000, test_accuracy: {best: 0.999}, epochs: 2}
"""


def test_seed_systems_run_one_system_alone_then_compare(project):
    """The seed-systems pipeline: one system by a stage glob, then the comparison report."""
    root, env, _ = project
    add_pipeline(root, "seed-systems", SYSTEMS_PARAMS)
    assert stages_ran(["dvc", "repro", "--glob", "seed-systems/dvc.yaml:*@x-*"], root, env) == [
        "seed-systems/dvc.yaml:resolve",
        "seed-systems/dvc.yaml:train@x-small",
        "seed-systems/dvc.yaml:evaluate@x-small",
    ]
    assert stages_ran(["dvc", "repro", "seed-systems/dvc.yaml"], root, env) == [
        "seed-systems/dvc.yaml:train@y-small",
        "seed-systems/dvc.yaml:evaluate@y-small",
        "seed-systems/dvc.yaml:compare",
    ]
    report = (root / "reports/seed-systems/report.md").read_text()
    history = pd.read_csv(root / "reports/seed-systems/steps/x-small/history.csv")
    epoch1 = float(history.loc[history["epoch"] == 1, "test_accuracy"].iloc[0])  # one seed
    gap = history["train_accuracy"].max() - history["test_accuracy"].max()

    def row(step: str, claim: str) -> list[str]:
        """The comparison's row of one claim, as its cells."""
        lines = [line for line in report.splitlines() if line.startswith(("| x ", "| y "))]
        cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
        return next(c for c in cells if c[1] == f"`{step}`" and c[2] == claim)

    assert row("x-huge", "epochs")[4:] == ["GPU only", "-", "config only: needs a GPU, not trained here"]
    assert row("x-small", "test accuracy at epoch 1")[3:6] == ["20.00%", f"{epoch1:.2%}", "1"]
    overfitting = row("x-small", "says")
    assert overfitting[4] == f"best train - best test: {gap * 100:+.2f} pp"
    assert overfitting[6] == ("✅ agrees" if gap > 0.001 else "❌ disagrees")
    assert row("y-small", "test accuracy at the best epoch")[6].startswith("❌ falls short")
    assert "It is synthetic too." in report
    assert "## System x" in report and "### `x-huge` (config only: needs a GPU)" in report
    assert (root / "reports/seed-systems/figures/accuracy-y.png").stat().st_size > 0
    assert not (root / "models/seed-systems/x-huge").exists()


def experiment_text(root: Path, env: dict, name: str, path: str) -> str:
    """A file as the experiment `name` committed it (its git ref)."""
    refs = run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], root, env).stdout.split()
    ref = next(r for r in refs if r.endswith(f"/{name}"))
    return run(["git", "show", f"{ref}:{path}"], root, env).stdout


def experiment_file(root: Path, env: dict, name: str, path: str) -> dict:
    return json.loads(experiment_text(root, env, name, path))


def test_search_queues_experiments_and_ranks_them_on_validation(project):
    """The search (run last: it adds experiments): rung 1 on seed 1, the best candidate on
    seed 2 too, every row what its experiment measured, test accuracy for the finalist only."""
    root, env, _ = project
    search = [sys.executable, "-m", "mnist_budget.tools.search", "--jobs", "1"]
    log = run(search, root, env).stderr
    runs = pd.read_csv(root / "reports/search/runs.csv")
    first = runs[runs["rung"] == 1].set_index("candidate")
    assert sorted(first.index) == ["adam-rotated", "plain", "stalled"] and set(first["seed"]) == {1}
    assert first.loc["stalled", "val_accuracy"] < first.loc["plain", "val_accuracy"]  # lr 1e-7 learns nothing
    best = first["val_accuracy"].idxmax()
    assert f"search: finalists {best}" in log
    finals = runs[runs["rung"] == 2]
    assert list(finals["candidate"]) == [best] and list(finals["seed"]) == [2]
    assert runs.loc[runs["candidate"] == best, "test_accuracy"].notna().all()
    assert runs.loc[runs["candidate"] != best, "test_accuracy"].isna().all()  # never read
    metrics_file = "reports/search/steps/candidate/metrics.json"
    for row in runs.itertuples():
        metrics = experiment_file(root, env, row.experiment, metrics_file)
        assert metrics["validation_accuracy"]["per_seed"][str(row.seed)] == row.val_accuracy
        assert metrics["params_total"] == row.params
    # the train stage scored the held-out images each epoch; evaluate rescored the exported model
    history = pd.read_csv(
        io.StringIO(experiment_text(root, env, f"{best}-r2", "reports/search/steps/candidate/history.csv"))
    )
    assert list(history.columns[:6]) == [
        "seed",
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
    ]
    metrics = experiment_file(root, env, f"{best}-r2", metrics_file)
    assert history["val_accuracy"].iloc[-1] == metrics["validation_accuracy"]["mean"]
    config = experiment_file(root, env, "adam-rotated-r1", "reports/search/configs/candidate.json")
    assert config["optimizer"] == adam(0.01) and config["batch_size"] == 16
    augment = {key: spec.default for key, spec in AUGMENT.items()}  # the resolved config states them all
    assert config["augment"] == {**augment, "rotate": 10.0} and config["validation"] == 80
    table = (root / "reports/search/table.md").read_text()
    assert table.index(f"`{best}`") < min(table.index(f"`{name}`") for name in first.index if name != best)
    assert "80 held out" in table and "| versus the best |" in table.replace("  ", "")
    # again: everything is recorded, nothing is queued
    assert "queueing" not in run(search, root, env).stderr
    # rung 1's test accuracies are kept as they arrive, so they outlive the experiments
    sealed = pd.read_csv(root / "reports/search/rung1_tests.csv")
    assert sorted(sealed["experiment"]) == sorted(f"{name}-r1" for name in first.index)
    scored = runs.loc[(runs["candidate"] == best) & (runs["rung"] == 1), "test_accuracy"].tolist()
    assert sealed.loc[sealed["experiment"] == f"{best}-r1", "test_accuracy"].tolist() == scored
    # a new session: no `dvc exp` refs, the finalist's rung-1 test not yet read into runs.csv
    for ref in run(["git", "for-each-ref", "--format=%(refname)", "refs/exps"], root, env).stdout.split():
        if not ref.startswith(("refs/exps/celery/", "refs/exps/exec/")):  # the queue's own
            run(["git", "update-ref", "-d", ref], root, env)
    runs.loc[runs["rung"] == 1, "test_accuracy"] = None
    runs.to_csv(root / "reports/search/runs.csv", index=False)
    log = run(search, root, env).stderr
    assert "queueing" not in log  # read from rung1_tests.csv
    again = pd.read_csv(root / "reports/search/runs.csv")
    assert again.loc[(again["candidate"] == best) & (again["rung"] == 1), "test_accuracy"].tolist() == scored
    # and a search from before rung1_tests.csv: the finalist trains again, to the same numbers
    runs.to_csv(root / "reports/search/runs.csv", index=False)
    sealed[sealed["experiment"] != f"{best}-r1"].to_csv(root / "reports/search/rung1_tests.csv", index=False)
    log = run(search, root, env).stderr
    assert (
        f"queueing {best}-r1" in log and f"{best}-r1 again: validation accuracy the same as recorded" in log
    )
    again = pd.read_csv(root / "reports/search/runs.csv")
    assert again.loc[(again["candidate"] == best) & (again["rung"] == 1), "test_accuracy"].tolist() == scored
    # the main report now says how its recipes were chosen
    assert "reports/search/runs.csv" in str(run(["dvc", "status"], root, env).stdout)
    run(["dvc", "repro"], root, env)
    report = (root / "reports/report.md").read_text()
    assert (
        "## How the recipes were chosen" in report and f"Best by validation mean: `{best}` (small)" in report
    )
