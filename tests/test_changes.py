"""End to end: what a change, a fault or a signal does to the real pipeline on a copy of the
project (tests/e2e.py): edits and experiments rerun what they should, faults lose nothing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mnist_budget.base.mnist import MNIST_FILES
from tests.conftest import write_synthetic_mnist
from tests.e2e import (
    STEPS,
    adam,
    edited_files,
    output_bytes,
    resolved,
    run,
    sgd,
    stages_ran,
    tracked_state,
    unending_training,
)

pytestmark = pytest.mark.e2e  # a real dvc on a project copy


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


def test_a_seed_gives_the_same_bytes_alone_or_beside_another(project):
    """The committed models trained side by side (2 workers, one thread each); one at a time in
    the stage's own process (MNIST_THREADS=1) they come out byte for byte the same."""
    root, env, _ = project
    before, outputs = tracked_state(root, env), output_bytes(root)
    alone = {**env, "MNIST_THREADS": "1"}
    result = run(["dvc", "repro", "--force", "--single-item", "train@tiny-b"], root, alone)
    assert "seeds 1, 2, 3 on cpu, 1 at a time with one thread each" in result.stderr
    assert output_bytes(root) == outputs and tracked_state(root, env) == before


def training_workers(pid: int) -> list[int]:
    """The spawned worker processes of a stage (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [int(p) for p in children.read_text().split()] if children.exists() else []
    return [p for p in pids if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def test_sigterm_to_a_train_stage_stops_its_workers_and_keeps_the_outputs(project):
    root, env, _ = project
    before, outputs = tracked_state(root, env), output_bytes(root)
    # the progress bars to a file, not a pipe nobody reads: they came to 65,205 bytes here, at
    # the 64 KiB a pipe holds; a full pipe blocks the workers' writes and the stage then missed
    # the 60 s below on CI, as if it ignored SIGTERM
    log = root.parent / "sigterm-stage.log"
    with unending_training(root, "tiny-a"):
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


def test_a_rename_undone_as_the_docs_say_leaves_git_status_clean(project):
    """Undo as docs/reproducibility.md says: `git checkout HEAD --` params, the locks (DVC
    stages them: `core.autostage`), reports/ and models/.gitignore; `dvc checkout`; `dvc
    repro`. git does not track the new name's folder, so `resolve` removes it too."""
    root, env, _ = project
    before = tracked_state(root, env)
    original = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(original.replace("tiny-a", "tiny-aa"))  # the step and the headline
    assert "train@tiny-aa" in stages_ran(["dvc", "repro"], root, env)
    assert (root / "reports/steps/tiny-aa/history.csv").is_file()
    undo = ["params.yaml", "dvc.lock", "ablation/dvc.lock", "reports", "models/.gitignore"]
    run(["git", "checkout", "HEAD", "--", *undo], root, env)
    run(["dvc", "checkout"], root, env)
    result = run(["dvc", "repro"], root, env)
    assert "resolve: removed the outputs and dvc.lock entries of steps no longer in params.yaml: tiny-aa" in (
        result.stderr
    )
    assert not (root / "reports/steps/tiny-aa").exists() and not (root / "models/tiny-aa").exists()
    assert tracked_state(root, env) == before


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
        # tiny-b is the final step: the ablation's arm that keeps its optimizer retrains too (its
        # baseline is tiny-b's own history)
        assert set(ran) == retrained("tiny-b") | ablation_ran("train@with-dropout")
        assert resolved(root, "tiny-b")["optimizer"] == sgd(0.02)
    run(["dvc", "repro"], root, env)  # back to the committed params: the same bytes again
    assert tracked_state(root, env) == before


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
                "valid: conv, sepconv, maxpool, avgpool, gap, dropout, dense, inception, residual"
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
            "target: {test_accuracy: 0.3,",
            "target: {test_accuracy: 30.0,",
            "error: invalid params: target.test_accuracy: is a fraction in (0, 1]",
        ),
    ],
    ids=["typo", "space-in-name", "renamed-headline-step", "target-in-percent"],
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


def cached_model_object(root: Path, step: str, seed: int) -> tuple[str, Path]:
    """The md5 dvc.lock records for a model file of `step`, and its object in the cache."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"][f"train@{step}"]
    listing_md5 = next(out["md5"] for out in lock["outs"] if out["path"] == f"models/{step}")
    cache = root / ".dvc/cache/files/md5"
    entries = json.loads((cache / listing_md5[:2] / listing_md5[2:]).read_text())
    md5 = next(e["md5"] for e in entries if e["relpath"] == f"seed{seed}.pt2")
    return md5, cache / md5[:2] / md5[2:]


def flip_a_byte(path: Path) -> None:
    """One byte of `path` changed, its size and mtime kept: DVC's own checks cannot see it."""
    stat = path.stat()
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("workspace", ["good", "gone"])
def test_a_corrupted_cache_object_is_mended_from_the_workspace_or_rebuilt_alone(project, workspace):
    """Bytes flipped in the cache object of a model: `dvc status` cannot see it; the project's
    check does. Its repair saves the workspace's good copy back into the cache (nothing
    retrains); with no good copy here, it removes the object and `dvc repro` rebuilds that
    step alone."""
    root, env, _ = project
    before, outputs = tracked_state(root, env), output_bytes(root)
    md5, cached = cached_model_object(root, "tiny-a", 1)
    flip_a_byte(cached)
    model = root / "models/tiny-a/seed1.pt2"
    if workspace == "gone":
        model.unlink()
    check = [sys.executable, "-m", "mnist_budget.base.dvc_lock"]
    found = run(check, root, env, check=False)
    assert found.returncode == 1
    bad_object = f"bad cache object: .dvc/cache/files/md5/{md5[:2]}/{md5[2:]} (its bytes are not the md5 its name says)"
    if workspace == "good":
        assert found.stdout.splitlines() == [
            bad_object,
            (
                "good output: models/tiny-a/seed1.pt2 of train@tiny-a (dvc.lock): the lock's bytes; "
                "--repair saves it back into the cache"
            ),
        ]
    else:
        assert found.stdout.splitlines() == [
            bad_object,
            (
                "missing output: models/tiny-a/seed1.pt2 of train@tiny-a (dvc.lock): not in the workspace or the "
                "cache; no default remote to fetch it from"
            ),
        ]
    repaired = run([*check, "--repair"], root, env)
    assert (
        repaired.stdout.splitlines()[-1]
        == {
            "good": "dvc_lock: saved 1 good output(s) back into the cache, removed 0 bad object(s) and 0 output "
            "file(s); nothing to rebuild",
            "gone": "dvc_lock: saved 0 good output(s) back into the cache, removed 1 bad object(s) and 0 output "
            "file(s); `dvc repro` rebuilds them (train@tiny-a)",
        }[workspace]
    )
    assert stages_ran(["dvc", "repro"], root, env) == ([] if workspace == "good" else ["train@tiny-a"])
    assert run(check, root, env).returncode == 0
    assert cached.read_bytes() == model.read_bytes()
    assert output_bytes(root) == outputs and tracked_state(root, env) == before


def test_a_model_swapped_on_the_remote_is_named_a_hash_mismatch(project, tmp_path):
    """With `verify` on, `dvc pull` of a swapped object says only "Checkout failed"; the
    project's check names the output, the cause and the remote's bytes."""
    root, env, _ = project
    before, outputs = tracked_state(root, env), output_bytes(root)
    remote = tmp_path / "remote"
    config = (root / ".dvc/config").read_text()
    try:
        run(["dvc", "remote", "add", "-d", "mine", str(remote)], root, env)
        run(["dvc", "remote", "modify", "mine", "verify", "true"], root, env)
        run(["dvc", "push", "models/tiny-a"], root, env)
        md5, cached = cached_model_object(root, "tiny-a", 1)
        swapped = remote / "files/md5" / md5[:2] / md5[2:]
        swapped.chmod(0o644)
        swapped.write_bytes((root / "models/tiny-b/seed1.pt2").read_bytes())
        cached.unlink()
        (root / "models/tiny-a/seed1.pt2").unlink()
        pulled = run(["dvc", "pull", "models/tiny-a"], root, env, check=False)
        assert pulled.returncode != 0 and "Checkout failed" in pulled.stderr
        found = run([sys.executable, "-m", "mnist_budget.base.dvc_lock"], root, env, check=False)
        assert found.returncode == 1
        other = hashlib.md5((root / "models/tiny-b/seed1.pt2").read_bytes()).hexdigest()
        assert found.stdout.splitlines() == [
            (
                "missing output: models/tiny-a/seed1.pt2 of train@tiny-a (dvc.lock): not in the workspace or the "
                f"cache; the remote's copy is not those bytes: hash mismatch (md5 {other}, recorded {md5})"
            )
        ]
    finally:
        (root / ".dvc/config").write_text(config)
    run(["dvc", "repro"], root, env)  # the step retrains: the same bytes as before
    assert output_bytes(root) == outputs and tracked_state(root, env) == before


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (
            lambda text: text.replace("\n2,", "\n1,"),
            "holds seeds [1, 3], but the step trains seeds [1, 2, 3]",
        ),
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
    log = root.parent / "ctrl-c-stage.log"
    with unending_training(root, "tiny-a"):
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
    lines = [line for line in log.read_text().replace("\r", "\n").splitlines() if line.strip()]
    # the last line (after what a worker's progress bar left, blanked, on it: tqdm in a file)
    assert lines[-1].strip() == "error: stopped by Ctrl-C; the stage's last outputs are kept"
    assert not [line for line in lines if "Traceback" in line or "KeyboardInterrupt" in line]
    assert output_bytes(root) == outputs
