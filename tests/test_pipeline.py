"""End to end: the real `dvc repro` of a copy of the project (tests/e2e.py), and what it
writes: every output, the ablation, sharing with a teammate, metrics, charts."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import vl_convert
import yaml

from mnist_budget.base.mnist import MNIST_FILES
from mnist_budget.config.step_config import read_config
from mnist_budget.report.palette import step_colours
from mnist_budget.report.plot_templates import HEIGHT, WIDTH, ZOOM
from mnist_budget.tools import docs
from mnist_budget.train.model_stats import count_params
from mnist_budget.train.nets import build_net
from tests.conftest import write_synthetic_mnist
from tests.e2e import (
    STEPS,
    edited_files,
    output_bytes,
    run,
    shared_through,
    stages_ran,
    teammate,
    tracked_state,
)

pytestmark = pytest.mark.e2e  # a real dvc on a project copy


SEEDS = {"tiny-a": [1, 2], "tiny-b": [1, 2, 3]}  # the final net (and the ablation) on one more

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

ABLATION_ARMS = ("no-sgd", "with-dropout")  # and its baseline, tiny-b's own history


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
        "reports/ablation/baseline.json",
        "reports/ablation/resolved.json",
    ]
    for step in STEPS:
        expected += [f"models/{step}/seed{seed}.pt2" for seed in SEEDS[step]]
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
    # its baseline is the final step, trained once, by the main pipeline
    assert not any("ablation/dvc.yaml:train@full" in line for line in ran)
    assert ran.index("Running stage 'train@tiny-b':") < ran.index("Running stage 'ablation/dvc.yaml:report':")
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
    final["full"] = pd.read_csv(root / "reports/steps/tiny-b/history.csv").set_index("seed")["test_accuracy"]
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
    """Its histories are in git: a fresh clone rebuilds the data it depends on and the final
    step, whose models it lacks (its baseline is that step's history), and no arm."""
    root, env, _ = project
    clone, mirror = tmp_path / "clone", tmp_path / "mirror"
    run(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    write_synthetic_mnist(mirror)  # the same files: the download checks them by their sha256
    ran = stages_ran(["dvc", "repro", "ablation/dvc.yaml"], clone, {**env, "MNIST_MIRROR": str(mirror)})
    assert ran == ["download", "prepare", "train@tiny-b"]
    assert run(["git", "status", "--porcelain"], clone, env).stdout == ""  # the same history bytes


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
            for seed in SEEDS[step]:
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
        assert metrics["seeds"] == SEEDS[step]
        accuracy = metrics["test_accuracy"]
        assert set(accuracy) == {"mean", "min", "max", "std", "per_seed"}
        assert list(accuracy["per_seed"]) == [str(seed) for seed in SEEDS[step]]
        assert accuracy["mean"] == pytest.approx(
            sum(accuracy["per_seed"].values()) / len(SEEDS[step]), abs=1e-6
        )
        assert accuracy["min"] == min(accuracy["per_seed"].values())
        assert metrics["epochs"] == 1 and metrics["best_epoch"] == 1
        assert metrics["params_total"] == metrics["params_trainable"] + metrics["params_non_trainable"]
        assert metrics["params_non_trainable"] == 2 * (4 + 8)  # BN running mean and var
        assert metrics["first_epoch_at_target"] in (None, 1)
        assert set(metrics["meets"]) == {"accuracy", "every_seed", "params", "epochs", "all"}
        assert metrics["meets"]["every_seed"] == (accuracy["min"] >= 0.3)  # the test params' target
        assert metrics["meets"]["params"] and metrics["meets"]["epochs"]
        history = pd.read_csv(root / f"reports/steps/{step}/history.csv")
        assert list(history["seed"]) == SEEDS[step]  # one epoch each
        # each exported model scores exactly what training measured at its last epoch
        for seed, row in history.set_index("seed").iterrows():
            assert accuracy["per_seed"][str(seed)] == pytest.approx(row["test_accuracy"], abs=1e-6)
        assert metrics["min_test_accuracy_last_3"] == pytest.approx(accuracy["mean"], abs=1e-6)


def test_report_covers_every_step(project):
    report = (project[0] / "reports/report.md").read_text()
    for step in STEPS:
        assert f"## `{step}`" in report
    assert "Changed against `tiny-a`: `seeds`: 1, 2 → 1, 2, 3; `optimizer.name`: adam → sgd" in report
    assert "| every seed ≥ target" in report and "| final test acc (mean ± std)" in report
    # two seeds in common: the effect carries a 95% interval of the paired difference
    assert "(95% interval of the paired difference over seeds 1, 2)" in report
    assert "![Test accuracy per epoch](figures/accuracy.png)" in report


def test_headline_over_seeds(project):
    headline = json.loads((project[0] / "reports/headline.json").read_text())
    assert set(headline) == {"final", "tiny"}
    final = headline["final"]
    assert final["step"] == "tiny-b" and final["seeds"] == SEEDS["tiny-b"] and final["epochs"] == 1
    accuracies = final["test_accuracies"]
    assert final["mean"] == pytest.approx(sum(accuracies) / 3, abs=5e-7)  # written to 6 decimals
    assert final["min"] == min(accuracies)
    assert "| final: `tiny-b`" in (project[0] / "reports/report.md").read_text()


def test_dvc_artifacts_get_fetches_the_final_net(project, tmp_path):
    """The headline's nets are DVC artifacts (dvc.yaml, written by the docs tool); a version
    tag (GTO's `<name>@v<semver>`) is what `dvc artifacts get` looks for."""
    root, env, _ = project
    dvc_yaml = (root / "dvc.yaml").read_text()
    headline = json.loads((root / "reports/headline.json").read_text())
    try:
        (root / "dvc.yaml").write_text(docs.with_artifacts(dvc_yaml, headline))
        run(["git", "commit", "-qam", "the headline nets as artifacts"], root, env)
        run(["git", "tag", "-a", "final@v1.0.0", "-m", "the final net"], root, env)
        out = tmp_path / "final"
        run(["dvc", "artifacts", "get", str(root), "final", "-o", str(out)], tmp_path, env)
        fetched = {p.name: p.read_bytes() for p in out.iterdir()}
        models = root / "models/tiny-b"
        assert fetched == {p.name: p.read_bytes() for p in models.iterdir()}
        assert sorted(fetched) == ["seed1.pt2", "seed2.pt2", "seed3.pt2"]
    finally:
        run(["git", "tag", "-d", "final@v1.0.0"], root, env)
        run(["git", "reset", "-q", "--hard", "HEAD~1"], root, env)


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


def training_histories(root: Path) -> list[str]:
    """Every training's history.csv, each a chart of `dvc plots show` (train's `plots:`)."""
    return sorted(p.relative_to(root).as_posix() for p in root.glob("reports/**/steps/*/history.csv"))


def test_every_chart_renders_to_svg_without_a_browser(project):
    """vl-convert renders the Vega-Lite spec of each `dvc plots show` chart, data included."""
    root, env, _ = project
    specs = chart_specs(root, env)
    histories = training_histories(root)
    assert len(histories) >= 4 and set(histories) <= set(specs)
    for history in histories:  # one line per seed, named by its file
        svg = vl_convert.vegalite_to_svg(specs.pop(history))
        seeds = pd.read_csv(root / history)["seed"].nunique()
        assert svg.count('aria-roledescription="line mark"') == seeds and history in svg, history
    assert len(specs) == 5, sorted(specs)  # made_on.json draws nothing
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
    expected = 5 + len(training_histories(root))  # the five of dvc.yaml's `plots:`, then one per training
    assert charts == expected, f"expected {expected} rendered charts, found {charts}"
    assert "made_on_json" not in dom  # no empty block where a made_on.json (no data) is listed
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
