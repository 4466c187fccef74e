"""The end-to-end tests' project: a copy of this repository in a temporary git + DVC repo,
with synthetic MNIST served from a local folder and from an HTTP server on 127.0.0.1, after
one real `dvc repro` (`project`: built once per test run, copied for each test module); and
what those tests share. Loaded as a pytest plugin (conftest.py)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from filelock import FileLock

from mnist_budget.base.mnist import MNIST_FILES
from mnist_budget.report.search_results import PREVIOUS_SEARCH, RUN_COLUMNS
from tests.conftest import serve_folder, write_synthetic_mnist

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
FIRST_REPRO, BUILT = "first_repro.txt", "built"  # in the built project's folder

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
    seeds:  # the headline's final net, over one seed more (and the ablation's seeds)
    - 1
    - 2
    - 3
headline:
  final: tiny-b
  tiny: tiny-a
without:
  the pool:
  - conv 4
  - conv 8
  - gap
  - conv 10 k=1
"""

# The ablation of the final step tiny-b, drawn from params.yaml, on its seeds; its baseline is
# tiny-b's own history.
ABLATION_PARAMS = """\
target: {test_accuracy: 0.3, max_params: 8000, max_epochs: 15}
progression: params.yaml
baseline: full
steps:
  no-sgd: {removes: SGD, step: tiny-b}
  with-dropout: {adds: dropout, dropout: 0.1}
"""

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
teacher:
  description: The teacher a candidate may learn from.
  layers: [conv 8, maxpool, conv 16, gap, conv 10 k=1]
  seeds: [1]
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
      adam-rotated: {optimizer: {name: adam, lr: 0.01}, augment: {rotate: 10}, batch_size: 16, distill: {weight: 0.5}}
"""


def stages_ran(args: list[str], cwd: Path, env: dict) -> list[str]:
    """Run a dvc command; the stages it ran, in order, e.g. `references/dvc.yaml:report`."""
    lines = run(args, cwd, env).stdout.splitlines()
    return [line[len("Running stage '") : -len("':")] for line in lines if line.startswith("Running stage")]


def add_pipeline(root: Path, name: str, params: str, claims: str | None = None) -> None:
    """Another pipeline in the project copy: the repository's <name>/dvc.yaml, test params
    (and claims, for a write-up pipeline)."""
    (root / name).mkdir()
    shutil.copy(REPO / name / "dvc.yaml", root / name / "dvc.yaml")
    (root / name / "params.yaml").write_text(params)
    if claims is not None:
        (root / name / "claims.yaml").write_text(claims)


def run(args: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def project_env(local: Path) -> dict[str, str]:
    """The environment of every command in the project: this venv's tools first, train files
    from the `local` mirror, seeds side by side as the machine allows."""
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "MNIST_MIRROR": str(local)}
    env.pop("MNIST_THREADS", None)
    return env


def build_project(tmp: Path) -> None:
    """In `tmp`: a git + DVC repo (project/) holding a copy of the project and a 2-step,
    1-epoch params.yaml, after one real `dvc repro` (its output in first_repro.txt). Train
    files come from MNIST_MIRROR (local/, plain IDX), test files only from the HTTP mirror
    (gzipped), so both paths must work."""
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
    env = project_env(local)
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
        (root / PREVIOUS_SEARCH).mkdir()  # and no previous search's record either
        (root / PREVIOUS_SEARCH / "runs.csv").write_text(",".join(RUN_COLUMNS) + "\n")
        (root / PREVIOUS_SEARCH / "params.yaml").write_text(SEARCH_PARAMS)
        (root / PREVIOUS_SEARCH / "candidates.yaml").write_text(CANDIDATES)
        (root / "data/mnist.sha256").write_text("".join(f"{sha}  {name}\n" for name, sha in sums.items()))
        add_pipeline(root, "ablation", ABLATION_PARAMS)  # upstream of the report, which quotes it
        # the test search has a teacher: its dvc.yaml gets the teacher's stage
        run([sys.executable, "-m", "mnist_budget.tools.dvc_yaml"], root, env)
        run(["git", "add", "-A"], root, env)
        run(["git", "commit", "-qm", "project"], root, env)
        first = run(["dvc", "repro"], root, env)
        # as in the repository, the search pipeline has run once (its baseline candidate):
        # `dvc checkout` fails on a pipeline that never ran
        run(["dvc", "repro", "search/dvc.yaml"], root, env)
        run(["git", "add", "-A"], root, env)
        run(["git", "commit", "-qm", "results"], root, env)
    (tmp / FIRST_REPRO).write_text(json.dumps({"stdout": first.stdout, "stderr": first.stderr}))
    (tmp / BUILT).touch()


@pytest.fixture(scope="session")
def built_project(tmp_path_factory) -> Path:
    """The project built once per test run (about 90 s): by the first xdist worker that asks,
    under a file lock, in the folder the workers share; the others wait for it."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: its own temp folder
        tmp = tmp_path_factory.mktemp("e2e-built")
        build_project(tmp)
        return tmp
    tmp = tmp_path_factory.getbasetemp().parent / "e2e-built"  # one per run, beside each worker's
    with FileLock(f"{tmp}.lock"):
        if not (tmp / BUILT).is_file():
            shutil.rmtree(tmp, ignore_errors=True)  # a build that failed half-way
            tmp.mkdir()
            build_project(tmp)
    return tmp


@pytest.fixture(scope="module")
def project(built_project, tmp_path_factory):
    """The built project, copied for one test module (its tests change it as they go):
    (root, env, the first `dvc repro`'s output)."""
    root = tmp_path_factory.mktemp("e2e") / "project"
    shutil.copytree(built_project / "project", root, symlinks=True)
    output = json.loads((built_project / FIRST_REPRO).read_text())
    first = subprocess.CompletedProcess(["dvc", "repro"], 0, output["stdout"], output["stderr"])
    return root, project_env(built_project / "local"), first


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


def sgd(lr: float) -> dict:
    """tiny-b's optimizer as its resolved config states it: every default filled in."""
    return {"name": "sgd", "lr": lr, "momentum": 0.9, "nesterov": False, "weight_decay": 0.0}


def adam(lr: float) -> dict:
    return {"name": "adam", "lr": lr, "weight_decay": 0.0}


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


# A training the test stops: 500 epochs of the synthetic data ran out within the Ctrl-C
# test's 65 s on CI once a log got a line per epoch instead of a bar.
UNENDING_EPOCHS = 100_000


@contextlib.contextmanager
def unending_training(root: Path, step: str) -> Iterator[None]:
    """The step's resolved config set to train for ever (for a test to stop it), restored afterwards."""
    config = root / f"reports/configs/{step}.json"
    original = config.read_text()
    config.write_text(json.dumps({**json.loads(original), "epochs": UNENDING_EPOCHS}))
    try:
        yield
    finally:
        config.write_text(original)
