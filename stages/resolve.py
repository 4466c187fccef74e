"""Stage `resolve`: every step as it will train, validated before any training starts.

    python -m stages.resolve [--pipeline NAME] [--ablation PARAMS]

Deep-merges each step of params.yaml over the `recipe` or the step before it (or draws the
ablation's arms from the progression they ablate: `ablation_config`), validates it (keys, types, ranges,
and that its layers fit their inputs) and writes reports/configs/<step>.json: what the step
trains with, every default filled in, no prose (see `step_config.config_of`), and
reports/resolved.json, what the reports read of the params: the steps in order with their
descriptions, the headline's steps, the final net's parameter count
without each `without` part, an ablation's baseline and arms, and in a write-up pipeline
(seed-systems/, writeups/<name>/) every step's and gpu step's size, so that its `compare`
stage checks the claims of <pipeline>/claims.yaml without building a net; and
reports/target.json, the `target` the evaluations mark each step against; and with a
`teacher:` section, the teacher's config beside the steps' (its own stage trains it). A step's
train stage depends on its file alone: editing one step retrains that step, editing the
recipe retrains every step that does not override what changed, rewording a description
retrains nothing. The sections the reports read (`target`, `headline`,
`without`, a write-up pipeline's claims file) are
checked here too. A typo stops here, with one line
naming the key, and no model or history is touched. Configs are replaced all at once; a
step no longer in params loses its config, outputs and dvc.lock entries, which DVC keeps.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from mnist_budget.base.atomic_files import json_bytes, write_all
from mnist_budget.base.dvc_lock import forget_stages, lock_stages
from mnist_budget.base.layout import MAIN_LAYOUT, Layout
from mnist_budget.config.ablation_config import load_ablation
from mnist_budget.config.claims_config import load_claims, unchecked
from mnist_budget.config.params import ParamsError, load_params
from mnist_budget.config.report_config import (
    check_report_params,
    load_headline,
    load_without,
)
from mnist_budget.config.step_config import (
    StepConfig,
    config_of,
    load_gpu_steps,
    load_steps,
    load_target,
    load_teacher,
    parse_step,
    read_config,
)
from mnist_budget.train.model_stats import count_params
from mnist_budget.train.nets import build_layers, build_net
from stages.cli import pipeline_parser, stage_main


def remove_old_steps(layout: Layout, steps: dict) -> list[str]:
    """The steps that `layout`'s dvc.lock records, or that have an outputs folder, but that
    params no longer has, their outputs and lock entries removed: DVC leaves both behind (and
    a line in models/.gitignore, which it stages in git and which hides nothing else), and a
    rename undone with `git checkout` leaves the new name's folder, which git does not track.
    Nothing is lost: git holds the reports and the lock, the DVC cache the models."""
    stages = {name: name.split("@", 1)[1] for name in lock_stages(layout.lock) if "@" in name}
    folders = {path.name for path in layout.step_dir("_").parent.glob("*") if path.is_dir()}
    old = sorted((set(stages.values()) | folders) - set(steps))
    for name in old:
        remove_outputs(layout, name)
    if old:
        forget_stages(layout.lock, {stage for stage, step in stages.items() if step in old})
    return old


def remove_outputs(layout: Layout, step: str) -> None:
    """The files the pipeline writes for `step`, and their folders once empty: a file that
    someone else put there stays, and so does its folder."""
    written = [layout.history(step), layout.made_on(step), layout.metrics(step), layout.confusion(step)]
    for path in [*written, layout.summary(step), *layout.model_dir(step).glob("seed*.pt2")]:
        path.unlink(missing_ok=True)
    for folder in (layout.step_dir(step), layout.model_dir(step)):
        with contextlib.suppress(OSError):  # not there, or holds something else
            folder.rmdir()


def check_ablation(path: Path) -> None:
    """The arms of the ablation at `path`, drawn from this pipeline's steps as the ablation's
    own resolve will draw them: a renamed or removed step that an arm names stops here, before
    any training, and not when the ablation runs, after this pipeline's trainings."""
    try:
        load_ablation(load_params(path))
    except ParamsError as error:
        raise ParamsError(f"{path}: {error}; rename the step there too, or the arm with it") from None


def write_up_sizes(layout: Layout, params: dict[str, Any], steps: dict[str, StepConfig]) -> dict[str, Any]:
    """In a write-up pipeline (one with a claims file, or gpu steps): its claims validated
    against the steps, and what its `compare` stage reads besides the trainings: the gpu
    steps (shipped as configs only) and every step's size. {} in another pipeline."""
    gpu_steps = load_gpu_steps(params)
    if not (gpu_steps or layout.claims.is_file()):
        return {}
    all_steps = {**steps, **gpu_steps}
    systems = load_claims(layout.claims, {name: step.epochs for name, step in all_steps.items()})
    for line in unchecked(systems):
        print(f"resolve: note: {line}", file=sys.stderr)
    return {
        "gpu_steps": {
            name: {"description": step.description, "epochs": step.epochs} for name, step in gpu_steps.items()
        },
        "sizes": {name: count_params(build_net(step)) for name, step in all_steps.items()},
    }


@stage_main
def main(layout: Layout = MAIN_LAYOUT, ablation_params: Path | None = None) -> None:
    params = load_params(layout.params)
    resolved: dict[str, Any] = {}
    if "progression" in params:  # the ablation's arms, drawn from a progression's params
        ablation = load_ablation(params)
        steps = {name: parse_step(name, entry) for name, entry in ablation.entries.items()}
        # the baseline: the main pipeline's final step, read from its history (`stages.ablation`)
        resolved["baseline"] = ablation.baseline
        resolved["baseline_step"] = ablation.final
        resolved["seeds"] = ablation.seeds
        resolved["arms"] = {name: asdict(arm) for name, arm in ablation.arms.items()}
    else:
        steps = load_steps(params)
    teacher = load_teacher(params, steps)
    taught = {teacher.name: teacher} if teacher else {}  # trained by a stage of its own
    for step in [*steps.values(), *taught.values()]:
        build_layers(step)  # shapes: a layer that does not fit its input fails now
    check_report_params(params)
    if ablation_params:
        check_ablation(ablation_params)
    headline = load_headline(params)
    final = steps[headline["final"]] if headline else list(steps.values())[-1]
    without = {}
    for part, layers in load_without(params).items():  # the final net without a part must build
        try:
            net = build_net(read_config(final.name, {**config_of(final), "layers": layers}))
        except ParamsError as error:
            raise ParamsError(f"without.{part} (the layers of {final.name} without it): {error}") from None
        without[part] = count_params(net)["params_total"]
    descriptions = {name: step.description for name, step in steps.items()}
    if "baseline" in resolved:
        descriptions = {resolved["baseline"]: ablation.description, **descriptions}
    resolved = {
        "steps": descriptions,
        **({"headline": headline} if headline else {}),
        "without": without,
        **resolved,
        **write_up_sizes(layout, params, steps),
        **(
            {
                "teacher": {
                    "description": teacher.description,
                    "epochs": teacher.epochs,
                    **count_params(build_net(teacher)),
                }
            }
            if teacher
            else {}
        ),
    }
    before = {path.name for path in layout.configs.glob("*.json")}
    write_all(
        {
            **{
                layout.config(name): json_bytes(config_of(step)) for name, step in {**steps, **taught}.items()
            },
            layout.resolved: json_bytes(resolved),
            layout.target: json_bytes(asdict(load_target(params))),
        },
        folders=(layout.configs,),
    )
    stale = sorted(before - {layout.config(name).name for name in {**steps, **taught}})
    print(
        f"resolve: {len(steps)} steps valid -> {layout.configs}/"
        + (f" (removed {', '.join(stale)})" if stale else ""),
        file=sys.stderr,
    )
    if old := remove_old_steps(layout, {**steps, **taught}):
        print(
            f"resolve: removed the outputs and {layout.lock} entries of steps no longer in "
            f"{layout.params}: {', '.join(old)} (`git checkout` and `dvc checkout` bring them back)",
            file=sys.stderr,
        )


if __name__ == "__main__":
    parser = pipeline_parser(__doc__)
    parser.add_argument(
        "--ablation", type=Path, help="the params of an ablation drawn from these steps, checked too"
    )
    args = parser.parse_args()
    main(Layout.of(args.pipeline), args.ablation)
