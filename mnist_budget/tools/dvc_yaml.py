"""The pipelines' code deps and the sub-pipelines' dvc.yaml, derived so they cannot go stale.

A stage's code deps are the import closure of its entry point over this project's modules
(`stages/`, `mnist_budget/`), less the modules that cannot change what it writes
(`code_deps`): a change anywhere else in it reruns the stage, a change outside it does
not. The root dvc.yaml is written by hand but for its code deps, which
`root_with_code_deps` rewrites in place, comments kept. Each sub-pipeline (`references/`,
`seed-systems/`, `search/`) is the root's `resolve`, `train` and `evaluate` stages moved to
its own params file and output folders, plus its own report stage if it has one: written
from here, never by hand (DVC has no include, treeverse/dvc#7939).

    python -m mnist_budget.tools.dvc_yaml           # rewrite the root's code deps and the sub-pipelines
    python -m mnist_budget.tools.dvc_yaml --check   # exit 1 if a file differs from what it would write
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mnist_budget.base.atomic_files import write_text
from mnist_budget.base.layout import MAIN_LAYOUT, TEACHER, Layout

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("stages", "mnist_budget")
ROOT_DVC_YAML = Path("dvc.yaml")
SHARED_STAGES = ("resolve", "train", "evaluate")  # the root's stages every sub-pipeline runs too


@dataclass(frozen=True)
class ReportStage:
    """A sub-pipeline's last stage: its name, entry point, data it reads besides the
    steps' reports and what `resolve` wrote (no report stage reads a params file), whether
    it reads the target, and its outputs under the reports folder."""

    name: str
    module: str
    data: tuple[str, ...]
    outs: tuple[str, ...] = ("report.md", "summary.csv", "figures", "plots")
    reads_target: bool = True


@dataclass(frozen=True)
class SubPipeline:
    """What a sub-pipeline adds to the root's stages: its report stage, if any, whether it
    keeps models (without, `train` writes histories alone and nothing evaluates), and the
    sections of another params file that its resolve stage reads too, and the `vars` its
    paths interpolate."""

    report: ReportStage | None = None
    keeps_models: bool = True
    reads: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # values of other params files its paths name (DVC's `vars`: `${headline.final}`)
    vars: tuple[str, ...] = ()
    # write-ups' claims beside its params (`claims_config`): read by resolve and the report stage
    claims: bool = False


# compare checks the claims against every step's training and size, as `resolve` wrote them
# (no main-pipeline output among its deps: DVC would then retrain the main pipeline's nets
# wherever their models are not at hand, before any write-up's comparison)
WRITEUPS = SubPipeline(
    ReportStage(
        "compare", "stages.compare", (), ("report.md", "systems.csv", "summary.csv", "figures", "plots")
    ),
    claims=True,
)
# A user's own write-up to check: writeups/<name>/params.yaml, a seed-systems pipeline of its own
# (docs/check-your-writeup.md)
USER_WRITEUPS = Path("writeups")

SUB_PIPELINES: dict[str, SubPipeline] = {
    # the progression report draws the final step's misclassified digits from data/raw (its verified IDX file)
    "references": SubPipeline(ReportStage("report", "stages.report", ("data/raw",))),
    "seed-systems": WRITEUPS,
    # the field's published results, re-run over 8 seeds and checked claim by claim
    "public": WRITEUPS,
    # one candidate per experiment, ranked by `python -m mnist_budget.tools.search`: no report stage
    "search": SubPipeline(),
    # the main report quotes the ablation, so the ablation is upstream of it: it keeps its
    # results in git (histories, no model) and a fresh clone's `dvc repro` skips it; its
    # arms are drawn from the main progression (`progression: params.yaml`) by `resolve`,
    # which writes what the report reads
    # its baseline is the main pipeline's final step, trained once there on the same seeds:
    # its report reads that step's history, and trains no baseline of its own
    "ablation": SubPipeline(
        ReportStage(
            "report",
            "stages.ablation",
            ("reports/steps/${headline.final}/history.csv", "reports/configs/${headline.final}.json"),
            ("report.md", "effects.csv", "baseline.json", "figures"),
            reads_target=False,
        ),
        keeps_models=False,
        reads={"params.yaml": ("recipe", "steps_build_on", "steps", "headline")},
        vars=("../params.yaml:headline",),
    ),
}


def module_file(module: str) -> Path | None:
    """The project file of a dotted module name, or None for a third-party module."""
    if module.split(".")[0] not in PACKAGES:
        return None
    path = Path(*module.split("."))
    return path.with_suffix(".py") if (ROOT / path.with_suffix(".py")).is_file() else path / "__init__.py"


def _imported(path: Path) -> set[str]:
    """Dotted names of the modules a file imports (`from a import b` may name module a.b)."""
    names = set()
    for node in ast.walk(ast.parse((ROOT / path).read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def import_closure(module: str) -> list[str]:
    """Every project file `python -m <module>` runs, as sorted repository paths. Package
    `__init__.py` files count only when they hold code."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if path is None or path in seen or not (ROOT / path).is_file():
            continue
        seen.add(path)
        todo += _imported(path)
        todo += [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]  # parents
    return sorted(p.as_posix() for p in seen if p.name != "__init__.py" or (ROOT / p).read_text().strip())


# They word a fault, wire signals or draw progress: no stage's output depends on them, so
# rewording an error message or redrawing a bar reruns nothing.
FAULT_WORDING = (
    "stages/cli.py",
    "mnist_budget/base/errors.py",
    "mnist_budget/base/signals.py",
    "mnist_budget/train/progress.py",
    "stages/__init__.py",
)
# They read and check params files. A stage that declares no params reads none: what they
# do reaches it only through the resolved config it reads (reports/configs/<step>.json,
# written by `resolve`, whose deps they are). So the train stages, which read that file
# alone, do not retrain on a reworded params error.
CONFIG_READERS = ("mnist_budget/config/params.py", "mnist_budget/config/step_config.py")


def code_deps(module: str, reads_params: bool) -> list[str]:
    """The project files that can change what `python -m <module>` writes: its import
    closure without `FAULT_WORDING`, and without `CONFIG_READERS` unless it reads params."""
    skipped = FAULT_WORDING + (() if reads_params else CONFIG_READERS)
    return [path for path in import_closure(module) if path not in skipped]


def entry_module(cmd: str) -> str:
    """`python -m stages.train "${key}" ...` -> `stages.train`."""
    words = cmd.split()
    return words[words.index("-m") + 1]


def is_code(dep: str) -> bool:
    return dep.endswith(".py") and dep.split("/")[0] in PACKAGES


def _moved(path: str, layout: Layout) -> str:
    """A main-pipeline output path in `layout`'s folders (data/ is shared)."""
    for main, mine in ((MAIN_LAYOUT.models, layout.models), (MAIN_LAYOUT.reports, layout.reports)):
        if path.startswith(f"{main}/"):
            return f"{mine}/{path.removeprefix(f'{main}/')}"
    return path


def _moved_list(entries: list[Any], layout: Layout) -> list[Any]:
    """deps/outs/metrics/plots entries: a path string, or {path: options}."""
    return [
        _moved(e, layout) if isinstance(e, str) else {_moved(k, layout): v for k, v in e.items()}
        for e in entries
    ]


def _path(entry: str | dict[str, Any]) -> str:
    return entry if isinstance(entry, str) else str(next(iter(entry)))


def shared_stage(stage: dict[str, Any], layout: Layout, sections: set[str]) -> dict[str, Any]:
    """A root stage (foreach or not), run from the repository root on `layout`'s params
    file and output folders, declaring those of its params sections the file has
    (`sections`: a pipeline without a headline has no `headline` to check)."""
    body = stage.get("do", stage)
    cmd = re.sub(r" --ablation \S+", "", body["cmd"])  # the main steps' check of the ablation's arms
    moved: dict[str, Any] = {"wdir": root_from(layout), "cmd": f"{cmd} --pipeline {layout.name}"}
    for part in ("deps", "outs", "metrics", "plots"):
        if part in body:
            moved[part] = _moved_list(body[part], layout)
    if "params" in body:
        mine = [s for s in body["params"] if isinstance(s, str) and s in sections]
        moved["params"] = [{str(layout.params): mine}]
    return {"foreach": stage["foreach"], "do": moved} if "do" in stage else moved


def root_from(layout: Layout) -> str:
    """The repository root as a sub-pipeline's dvc.yaml reaches it: `..`, `../..`."""
    return "/".join([".."] * len(layout.params.parent.parts))


def report_stage(layout: Layout, report: ReportStage, claims: bool) -> dict[str, Any]:
    """`report`: it reads what `resolve` and the trainings wrote, and the claims file if any."""
    return {
        "wdir": root_from(layout),
        "cmd": f"python -m {report.module} --pipeline {layout.name}",
        "deps": [
            f"{layout.reports}/configs",
            str(layout.resolved),
            *([str(layout.target)] if report.reads_target else []),
            f"{layout.reports}/steps",
            *([str(layout.claims)] if claims else []),
            *report.data,
            *code_deps(report.module, reads_params=False),
        ],
        "outs": [{f"{layout.reports}/{name}": {"cache": False, "persist": True}} for name in report.outs],
    }


STAGE_LINE = re.compile(r"^  ([a-z_]+):$")
CODE_DEP_LINE = re.compile(r"^(\s+)- (?:stages|mnist_budget)/\S+\.py$")


def root_with_code_deps(text: str) -> str:
    """The root dvc.yaml's text with each stage's run of code dep lines replaced by its
    `code_deps`; everything else (comments, layout) as it is."""
    stages = yaml.safe_load(text)["stages"]
    out, stage, deps_written = [], None, False
    for line in text.splitlines():
        if match := STAGE_LINE.match(line):
            stage, deps_written = match.group(1), False
        if (match := CODE_DEP_LINE.match(line)) and stage in stages:
            if not deps_written:
                body = stages[stage].get("do", stages[stage])
                deps = code_deps(entry_module(body["cmd"]), reads_params="params" in body)
                out += [f"{match.group(1)}- {dep}" for dep in deps]
                deps_written = True
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def with_teacher(stages: dict[str, Any], layout: Layout) -> dict[str, Any]:
    """`stages` with the pipeline's teacher (its params' `teacher:` section): trained once, by
    the train stage's command on a stage of its own, before the steps, each of which depends
    on its model (a step that distils learns from it)."""
    train = stages["train"]["do"]
    text = json.dumps(train).replace('\\"${key}\\"', TEACHER)  # the command's quoted step name
    teacher = json.loads(text.replace("${key}", TEACHER))
    train["deps"].append(str(layout.model_dir(TEACHER)))
    return {
        "resolve": stages["resolve"],
        TEACHER: teacher,
        **{k: v for k, v in stages.items() if k != "resolve"},
    }


def sub_pipelines() -> dict[str, SubPipeline]:
    """Every sub-pipeline with a params file: the project's, and each user write-up under
    writeups/ (a copy of the project may hold some of them only)."""
    mine = sorted((ROOT / USER_WRITEUPS).glob("*/params.yaml"))
    found = {
        name: pipeline for name, pipeline in SUB_PIPELINES.items() if (ROOT / name / "params.yaml").is_file()
    }
    return {**found, **{path.parent.relative_to(ROOT).as_posix(): WRITEUPS for path in mine}}


def sub_pipeline(name: str) -> str:
    """The text of `<name>/dvc.yaml`."""
    layout = Layout.of(name)
    with open(ROOT / ROOT_DVC_YAML) as f:
        root = yaml.safe_load(f)["stages"]
    with open(ROOT / layout.params) as f:
        sections = list(yaml.safe_load(f))
    pipeline = sub_pipelines()[name]
    stages = {key: shared_stage(root[key], layout, set(sections)) for key in SHARED_STAGES}
    # resolve validates the whole file, and what another params file adds (`reads`)
    stages["resolve"]["params"] = [{str(layout.params): sections}]
    stages["resolve"]["params"] += [{path: list(keys)} for path, keys in pipeline.reads.items()]
    if pipeline.claims:
        stages["resolve"]["deps"].insert(0, str(layout.claims))
    if not pipeline.keeps_models:
        del stages["evaluate"]  # it scores model files
        train = stages["train"]["do"]
        train["cmd"] += " --history-only"
        # its histories (`plots:`) are its outputs
        train["outs"] = [out for out in train["outs"] if not _path(out).startswith(f"{layout.models}/")]
        if not train["outs"]:
            del train["outs"]
    if TEACHER in sections:
        stages = with_teacher(stages, layout)
    report = pipeline.report
    if report is not None:
        stages[report.name] = report_stage(layout, report, pipeline.claims)
    written = (
        f"{layout.models}/ and {layout.reports}/"
        if pipeline.keeps_models
        else f"{layout.reports}/, no model file"
    )
    header = (
        f"# The {name} pipeline: `dvc repro {name}/dvc.yaml`. Stages run from the repository root\n"
        f"# (wdir: {root_from(layout)}) and share data/prepared with the main pipeline. They write to\n"
        f"# {written}. Written by `python -m mnist_budget.tools.dvc_yaml` from the root\n"
        "# dvc.yaml's resolve, train and evaluate stages: edit those, then run it.\n"
    )
    body = {"vars": list(pipeline.vars)} if pipeline.vars else {}
    return header + yaml.safe_dump({**body, "stages": stages}, sort_keys=False, width=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report files that would change")
    stale = []
    check = parser.parse_args().check
    files = [(ROOT / ROOT_DVC_YAML, lambda: root_with_code_deps((ROOT / ROOT_DVC_YAML).read_text()))]
    # the sub-pipelines are made from the root's stages: written after it
    files += [(ROOT / name / "dvc.yaml", lambda name=name: sub_pipeline(name)) for name in sub_pipelines()]
    for path, render in files:
        text = render()
        if path.is_file() and path.read_text() == text:
            continue
        stale.append(str(path.relative_to(ROOT)))
        if not check:
            write_text(path, text)
    verb = "out of date" if check else "rewritten"
    print(f"dvc_yaml: {', '.join(stale) or 'nothing'} {verb}", file=sys.stderr)
    sys.exit(1 if check and stale else 0)


if __name__ == "__main__":
    main()
