"""End to end: the other pipelines (references, seed systems, the search) beside the main one
in a copy of the project (tests/e2e.py)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

from mnist_budget.config.step_config import AUGMENT, AUGMENT_ADDED, read_config
from mnist_budget.train.model_stats import count_params
from mnist_budget.train.nets import build_net
from tests.e2e import adam, add_pipeline, run, stages_ran

pytestmark = pytest.mark.e2e  # a real dvc on a project copy


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
"""
SYSTEMS_CLAIMS = """\
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
    add_pipeline(root, "seed-systems", SYSTEMS_PARAMS, SYSTEMS_CLAIMS)
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
    # one row per system: its last net, its quoted claim and the re-run, drawn beside the project's nets
    systems = pd.read_csv(root / "reports/seed-systems/systems.csv").set_index("system")
    assert list(systems["step"]) == ["x-small", "y-small"]
    assert (systems.loc["y", "claimed"], systems.loc["y", "claimed_at"], systems.loc["y", "seeds"]) == (
        0.999,
        "best",
        1,
    )
    assert systems.loc["y", "verdict"].startswith("❌ falls short")
    assert (root / "reports/seed-systems/figures/params_vs_accuracy.png").stat().st_size > 0


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
    history_file = "reports/search/steps/candidate/history.csv"
    for row in runs.itertuples():
        metrics = experiment_file(root, env, row.experiment, metrics_file)
        assert metrics["validation_accuracy"]["per_seed"][str(row.seed)] == row.val_accuracy
        assert metrics["params_total"] == row.params
        history = pd.read_csv(io.StringIO(experiment_text(root, env, row.experiment, history_file)))
        assert history.loc[history["seed"] == row.seed, "train_accuracy"].iloc[-1] == row.train_accuracy
    # the train stage scored the held-out images each epoch; evaluate rescored the exported model
    history = pd.read_csv(io.StringIO(experiment_text(root, env, f"{best}-r2", history_file)))
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
    assert config["distill"] == {"weight": 0.5, "temperature": 4.0}  # it learnt from the teacher too
    # the resolved config states them all, but those added since configs were committed
    augment = {key: spec.default for key, spec in AUGMENT.items() if key not in AUGMENT_ADDED}
    assert config["augment"] == {**augment, "rotate": 10.0} and config["validation"] == 80
    table = (root / "reports/search/table.md").read_text()
    assert table.index(f"`{best}`") < min(table.index(f"`{name}`") for name in first.index if name != best)
    assert "80 held out" in table and "| versus the best |" in table.replace("  ", "")
    # again: everything is recorded, nothing is queued
    assert "queueing" not in run(search, root, env).stderr
    # a runs.csv from before the training accuracy was kept gets it from the experiments
    runs.drop(columns="train_accuracy").to_csv(root / "reports/search/runs.csv", index=False)
    assert "queueing" not in run(search, root, env).stderr
    pd.testing.assert_frame_equal(pd.read_csv(root / "reports/search/runs.csv"), runs)
    assert "| train mean |" in (root / "reports/search/table.md").read_text().replace("  ", "")
    # rung 1's test accuracies are kept as they arrive, so they outlive the experiments
    sealed = pd.read_csv(root / "reports/search/rung1_tests.csv")
    assert sorted(sealed["experiment"]) == sorted(f"{name}-r1" for name in first.index)
    scored = runs.loc[(runs["candidate"] == best) & (runs["rung"] == 1), "test_accuracy"].tolist()
    assert sealed.loc[sealed["experiment"] == f"{best}-r1", "test_accuracy"].tolist() == scored
    # a fresh checkout: no `dvc exp` refs, the finalist's rung-1 test not yet read into runs.csv
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


# A user's write-up of two steps, checked: one claim matches (the parameters, counted exactly),
# one falls short (99.9%: out of reach of one epoch), one cannot be checked.
WRITEUP_PARAMS = """\
target: {test_accuracy: 0.3, max_params: 10000, max_epochs: 15}
recipe:
  epochs: 1
  batch_size: 32
  seeds: [1]
  optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
steps_build_on: previous
steps:
  mine-1:
    description: My first step.
    layers: [conv 4, maxpool, conv 8, gap, conv 10 k=1]
  mine-2:
    description: My second step, with batch norm.
    bn: true
"""
WRITEUP_CLAIMS = """\
systems:
  mine:
    title: My notebook
    source: mine.ipynb
    counts: trainable
    differs: It is synthetic.
    claims:
      mine-1: {{epochs: 1, params: {params}}}
      mine-2:
        epochs: 1
        test_accuracy: {{final: {accuracy}}}
        says: [the loss falls smoothly]
"""


def test_a_users_writeup_of_its_own_is_checked_claim_by_claim(project):
    """docs/check-your-writeup.md: a write-up in writeups/<name>/params.yaml, its dvc.yaml
    written by the generator, then one `dvc repro`."""
    root, env, _ = project
    layers = ["conv 4", "maxpool", "conv 8", "gap", "conv 10 k=1"]
    step = read_config(
        "mine-1", {"layers": layers, "epochs": 1, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}}
    )
    params = count_params(build_net(step))["params_trainable"]
    folder = root / "writeups/mine"
    folder.mkdir(parents=True)
    (folder / "params.yaml").write_text(WRITEUP_PARAMS)
    (folder / "claims.yaml").write_text(WRITEUP_CLAIMS.format(params=params, accuracy=0.999))
    run([sys.executable, "-m", "mnist_budget.tools.dvc_yaml"], root, env)
    result = run(["dvc", "repro", "writeups/mine/dvc.yaml"], root, env)
    note = (
        "resolve: note: systems.mine.claims.mine-2.says: 'the loss falls smoothly' cannot be checked: the "
        "project checks a statement against the run only when it is one of: overfitting, not overfitting, "
        "less overfitting, still improving, drops after the target, same size as the previous step "
        "(mnist_budget/config/claims_config.py: STATEMENTS)"
    )
    assert [line for line in result.stderr.splitlines() if "cannot be checked" in line] == [note]
    report = (root / "reports/writeups/mine/report.md").read_text()
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in report.splitlines()]
    verdicts = {(row[1], row[2]): row[6] for row in rows if len(row) == 7 and row[0] == "mine"}
    assert verdicts[("`mine-1`", "parameters (trainable)")] == "✅ matches (+0.0%)"
    assert verdicts[("`mine-2`", "test accuracy at the final epoch")].startswith("❌ falls short")
    assert verdicts[("`mine-2`", "says")] == "cannot check: no check for this statement"
    # a bad claim stops resolve, naming the system, the step and the claim, before any training
    (folder / "claims.yaml").write_text(WRITEUP_CLAIMS.format(params=params, accuracy=99.4))
    failed = run(["dvc", "repro", "writeups/mine/dvc.yaml"], root, env, check=False)
    assert failed.returncode != 0 and "Running stage 'writeups/mine/dvc.yaml:train" not in failed.stdout
    assert [line for line in failed.stderr.splitlines() if line.startswith("error: ")] == [
        "error: invalid params: writeups/mine/claims.yaml: "
        + "systems.mine.claims.mine-2.test_accuracy.final: is a fraction in (0, 1], got 99.4"
    ]
