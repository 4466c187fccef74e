"""Stage `train@<step>`: train one step of the progression, every seed, as `resolve` wrote it.

    python -m stages.train <step> [--pipeline NAME] [--history-only]

Reads reports/configs/<step>.json (the recipe with the step's changes on top, validated).
Trains each of the step's `seeds` (side by side, one thread each: see `seed_pool`) and
writes models/<step>/seed<N>.pt2 (torch.export, with the config and seed inside) and the
per-epoch history of every seed, reports/steps/<step>/history.csv, that `dvc plots` and
the report read. With --history-only, the history alone: the ablation keeps no model, so
that its results live in git and a fresh clone's `dvc repro` finds it up to date.

Outputs are replaced only when every seed has trained and every output is written
(`write_all`). Run by `dvc repro`, the stage finds its outputs already removed: DVC does that
so that it can cache the run (dvc.yaml); a failed or stopped run then prints the command that
puts the last ones back (`lost_outputs`).
"""

from __future__ import annotations

import hashlib
import sys
import time

import pandas as pd

from mnist_budget.base.atomic_files import check_writable, json_bytes, read_json, write_all, write_bytes
from mnist_budget.base.dvc_lock import recorded_files
from mnist_budget.base.errors import StageError
from mnist_budget.base.kernels import check_pinned, pin, slow_bf16
from mnist_budget.base.layout import MAIN_LAYOUT, TEACHER, Layout, trained_mark
from mnist_budget.config.step_config import StepConfig, read_config
from mnist_budget.train.model_stats import count_params
from mnist_budget.train.nets import build_net
from mnist_budget.train.runtime import hold_cuda_to_fp32, made_on, pick_device, worker_count
from mnist_budget.train.seed_pool import Teacher, train_seeds
from stages.cli import pipeline_parser, stage_main


def lost_outputs(name: str, layout: Layout = MAIN_LAYOUT, keep_models: bool = True) -> str | None:
    """The command that puts back the step's last outputs if any is missing (DVC removes
    them before it runs the stage), else None: the history from git, the models from the
    DVC cache as dvc.lock names them (a failed run leaves dvc.lock as it was)."""
    files = [layout.history(name), layout.made_on(name)]
    models = [layout.model_dir(name)] if keep_models else []
    recorded = layout.lock.is_file() and f"{layout.train_stage(name)}:" in layout.lock.read_text()
    if not recorded or all(path.exists() for path in files + models):  # nothing DVC could have removed
        return None
    command = f"git checkout -- {' '.join(path.as_posix() for path in files)}"
    return command + (
        f" && dvc checkout {layout.stage_target(layout.train_stage(name))}" if keep_models else ""
    )


def teacher_of(step: StepConfig, layout: Layout) -> Teacher | None:
    """The model file a step that distils learns from, with the md5 the pipeline's dvc.lock
    records for it (loaded only if its bytes are those: `model_file.load_model`)."""
    if not step.distill:
        return None
    teacher = read_config(TEACHER, read_json(layout.config(TEACHER)))
    path = layout.model(TEACHER, teacher.seeds[0])
    md5 = recorded_files(layout.lock, TEACHER, layout.model_dir(TEACHER)).get(path)
    if md5 is None:
        raise StageError(
            f"step {step.name} distils, but {layout.lock} records no teacher model {path}: "
            f"train it first, `dvc repro {layout.stage_target(TEACHER)}`"
        )
    return path, md5


@stage_main(lost=lost_outputs)
def main(name: str, layout: Layout = MAIN_LAYOUT, keep_models: bool = True) -> None:
    step = read_config(name, read_json(layout.config(name)))
    pin(step.kernels)  # before any tensor: the kernels read it once
    device = pick_device(step)  # `device: cuda` without a GPU stops here, before any worker
    models = {seed: layout.model(name, seed) for seed in step.seeds} if keep_models else {}
    history_path, made_on_path = layout.history(name), layout.made_on(name)
    check_writable(*models.values(), history_path, made_on_path)
    counts = count_params(build_net(step))
    print(
        f"train {name}: {counts['params_total']:,} params ({counts['params_non_trainable']} non-trainable), "
        f"{step.epochs} epochs, batch {step.batch_size}, seeds {', '.join(map(str, step.seeds))} "
        f"on {device}, {worker_count(step)} at a time with one thread each",
        file=sys.stderr,
    )
    if note := check_pinned(step.kernels):  # the net above was built after the pins
        print(f"train {name}: warning: {note}", file=sys.stderr)
    if device.type == "cuda":  # as each worker's `set_up`: `made_on` reads the settings back
        hold_cuda_to_fp32()
    machine = made_on(step, device)
    if not machine["deterministic"]:
        print(
            f"train {name}: warning: on {machine['device']} two runs need not give the same bytes",
            file=sys.stderr,
        )
    if step.precision == "bf16" and device.type == "cpu" and (why := slow_bf16(step.kernels)):
        print(
            f"train {name}: warning: precision bf16 is slow here ({why}): expect 8-12x fp32's time "
            "(docs/performance.md); the results stay valid",
            file=sys.stderr,
        )
    started = time.perf_counter()
    runs = train_seeds(step, teacher_of(step, layout))
    minutes = (time.perf_counter() - started) / 60  # printed, never written: outputs stay byte-identical
    history = pd.DataFrame([row for rows, _ in runs.values() for row in rows]).to_csv(index=False)
    # a seed no longer in the step's list loses its model file
    write_all(
        {
            **{models[seed]: model_file for seed, (_, model_file) in runs.items() if keep_models},
            history_path: history.encode(),
            made_on_path: json_bytes(machine),
        },
        folders=(layout.model_dir(name),) if keep_models else (),
    )
    write_bytes(trained_mark(layout.step_dir(name)), hashlib.sha256(history.encode()).hexdigest().encode())
    finals = ", ".join(f"{rows[-1]['test_accuracy']:.2%} (seed {seed})" for seed, (rows, _) in runs.items())
    print(
        f"train {name}: final test accuracy {finals} after {step.epochs} epochs ({minutes:.1f} min) "
        f"-> {layout.model_dir(name) if keep_models else history_path}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    parser = pipeline_parser("Train one step of the progression, every seed.")
    parser.add_argument("step")
    parser.add_argument("--history-only", action="store_true", help="write the history, no model file")
    args = parser.parse_args()
    main(args.step, Layout.of(args.pipeline), not args.history_only)
