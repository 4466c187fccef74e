"""Every stage declares exactly the project code that can change what it writes, the
sub-pipelines' dvc.yaml are what `python -m mnist_budget.tools.dvc_yaml` writes from the root
one, and DVC can cache every training's run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from dvc.repo import Repo

from mnist_budget.base.layout import Layout
from mnist_budget.tools.dvc_yaml import (
    CONFIG_READERS,
    FAULT_WORDING,
    ROOT,
    code_deps,
    entry_module,
    import_closure,
    is_code,
    sub_pipeline,
    sub_pipelines,
    with_teacher,
)

SUB_PIPELINES = sub_pipelines()  # the project's, and writeups/example
PIPELINES = [Path("dvc.yaml"), *(Path(name) / "dvc.yaml" for name in SUB_PIPELINES)]


def stage_bodies(path: Path) -> dict[str, dict]:
    """Each stage's definition (a foreach stage's `do`)."""
    with open(ROOT / path) as f:
        stages = yaml.safe_load(f)["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}


@pytest.mark.parametrize("path", PIPELINES, ids=str)
def test_every_stage_declares_its_code_deps(path):
    for name, stage in stage_bodies(path).items():
        module = entry_module(stage["cmd"])
        declared = sorted(dep for dep in stage["deps"] if isinstance(dep, str) and is_code(dep))
        assert declared == code_deps(module, reads_params="params" in stage), (
            f"{path}: stage {name} ({module})"
        )


def test_code_deps_leave_out_only_wording_and_what_the_config_file_carries():
    train = import_closure("stages.train")
    # the train stage runs the fault wording and the params readers, but neither shapes a model's bytes
    assert set(FAULT_WORDING) | set(CONFIG_READERS) <= set(train)
    assert code_deps("stages.train", reads_params=False) == [
        p for p in train if p not in FAULT_WORDING + CONFIG_READERS
    ]
    # a stage that reads params keeps the readers; no stage keeps the wording
    evaluate = code_deps("stages.evaluate", reads_params=True)
    assert set(CONFIG_READERS) <= set(evaluate) and not set(FAULT_WORDING) & set(evaluate)
    # what shapes the model stays: the layer language, the builders, the optimizers, the loop
    assert {
        "mnist_budget/config/layer_spec.py",
        "mnist_budget/train/nets.py",
        "mnist_budget/train/optim.py",
        "mnist_budget/config/optim_spec.py",
        "mnist_budget/train/training.py",
        "mnist_budget/train/model_file.py",
    } <= set(code_deps("stages.train", reads_params=False))


# One Python module and its arguments: nothing that one of the shells DVC runs a command in
# reads differently ($SHELL or /bin/sh on Linux and macOS, cmd.exe on Windows, which has no
# `exec`, `&&` chains, `$VAR`, single quotes or `;`). Dying with `dvc` is the stage's own job
# (`signals.die_with_parent`), past a shell that stays in between.
PORTABLE_CMD = re.compile(r'python -m stages\.\w+( "\$\{key\}"| teacher)?( --[a-z-]+( [\w./-]+)?)*')


@pytest.mark.parametrize("path", PIPELINES, ids=str)
def test_every_stage_command_runs_under_any_shell_dvc_uses(path):
    for name, stage in stage_bodies(path).items():
        assert PORTABLE_CMD.fullmatch(stage["cmd"]), f"{path}: stage {name}: {stage['cmd']}"


def test_closure_follows_imports_and_nothing_else():
    # prepare reads IDX files: no model code (cli and params: the one-line errors)
    assert import_closure("stages.prepare") == [
        "mnist_budget/base/atomic_files.py",
        "mnist_budget/base/errors.py",
        "mnist_budget/base/idx.py",
        "mnist_budget/base/layout.py",
        "mnist_budget/base/mnist.py",
        "mnist_budget/base/signals.py",
        "mnist_budget/config/params.py",
        "stages/__init__.py",  # it asks to die with dvc: in the closure, not a code dep (FAULT_WORDING)
        "stages/cli.py",
        "stages/prepare.py",
    ]
    train = import_closure("stages.train")
    assert {
        "mnist_budget/train/nets.py",
        "mnist_budget/train/optim.py",
        "mnist_budget/train/training.py",
    } <= set(train)
    assert "mnist_budget/report/figures.py" not in train


def test_a_users_writeup_is_a_pipeline_of_its_own():
    assert "writeups/example" in SUB_PIPELINES
    assert stage_bodies(Path("writeups/example/dvc.yaml"))["compare"]["wdir"] == "../.."


@pytest.mark.parametrize("name", SUB_PIPELINES)
def test_sub_pipelines_are_generated_from_the_root(name):
    committed = (ROOT / name / "dvc.yaml").read_text()
    assert committed == sub_pipeline(name), (
        f"run `python -m mnist_budget.tools.dvc_yaml` to rewrite {name}/dvc.yaml"
    )
    stages = stage_bodies(Path(name) / "dvc.yaml")
    train, model = stages["train"], f"models/{name}/${{key}}"
    history = f"reports/{name}/steps/${{key}}/history.csv"
    made_on = f"reports/{name}/steps/${{key}}/made_on.json"
    assert [next(iter(plot)) for plot in train["plots"]] == [history, made_on]
    if SUB_PIPELINES[name].keeps_models:
        assert train["cmd"] == f'python -m stages.train "${{key}}" --pipeline {name}'
        assert train["outs"] == [model] and "evaluate" in stages
    else:  # every output in git, none in the DVC cache: nothing to evaluate
        assert train["cmd"] == f'python -m stages.train "${{key}}" --pipeline {name} --history-only'
        assert "outs" not in train and "evaluate" not in stages
        assert all(
            out[next(iter(out))]["cache"] is False
            for stage in stages.values()
            for out in stage.get("outs", []) + stage.get("plots", [])
        )


def test_every_training_of_every_pipeline_can_be_run_cached():
    """DVC's own two conditions, read off the stages as DVC loads them: `StageCache` skips a
    stage with a `persist` output (`_can_hash`), and `Stage.run` saves no run for a stage
    with an uncached output that is neither a metric nor a plot (`no_cache_outs`)."""
    with Repo(ROOT) as repo:
        trainings = [stage for stage in repo.index.stages if stage.cmd.startswith("python -m stages.train ")]
        assert len({stage.dvcfile.relpath for stage in trainings}) == len(PIPELINES)
        for stage in trainings:
            assert not [out for out in stage.outs if out.persist], stage.addressing
            assert all(out.use_cache or out.is_metric or out.is_plot for out in stage.outs), stage.addressing


def test_a_pipeline_with_a_teacher_trains_it_once_before_every_step():
    """A pipeline whose params have a `teacher:` gets its stage: the train stage's command on
    that step, before the steps, each of whose trainings depends on its model."""
    with open(ROOT / "search/dvc.yaml") as f:
        stages = with_teacher(yaml.safe_load(f)["stages"], Layout.of("search"))
    teacher, train = stages["teacher"], stages["train"]["do"]
    assert list(stages)[:3] == ["resolve", "teacher", "train"]
    assert teacher["cmd"] == "python -m stages.train teacher --pipeline search"
    assert PORTABLE_CMD.fullmatch(teacher["cmd"])
    assert (
        teacher["outs"] == ["models/search/teacher"]
        and "reports/search/configs/teacher.json" in teacher["deps"]
    )
    assert "models/search/teacher" in train["deps"] and "models/search/teacher" not in teacher["deps"]
    assert [dep for dep in teacher["deps"] if is_code(dep)] == [dep for dep in train["deps"] if is_code(dep)]
