"""The GPU path, checked on a machine with a CUDA GPU (tests and CI have none).

    python -m benchmarks.gpu_check [--epochs 1] [--images 60000] [--out benchmarks/gpu_check.md]

On the main pipeline's final step (reports/configs/<final>.json), seed 1, `--epochs` epochs,
each check ok or FAILED: (1) `device: auto` picks CUDA; (2) the train stage's own
`train_seed`, run twice, raises no error for a kernel without a deterministic version and
gives the same history and model file, byte for byte; (3) after it, torch runs fp32 as fp32
(TF32 off for matmuls and cuDNN) with fixed cuDNN algorithms, and `made_on` records just that;
(4) the history's final test accuracy is evaluate's scoring of the saved model on the device
evaluate picks for it (the CPU's scoring is shown beside it); (5) `device: cuda` trains on the
GPU with `gap` as a plain mean, and on a machine without one stops in one line; (6) the final
net's training images/s with the project's `train_epoch` (fp32, after a warm-up), on the GPU
and on one CPU thread. Writes `--out` and exits 1 if a check failed. Without a CUDA GPU it
runs the CPU part ((5)'s one line, (6) on the CPU), says so and exits 0, `--out` untouched.
Needs data/prepared.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
from pathlib import Path
from unittest import mock

from benchmarks.precision_speed import cpu_model, publish, time_epoch
from mnist_budget.base.atomic_files import read_json
from mnist_budget.base.errors import StageError
from mnist_budget.base.kernels import pin
from mnist_budget.base.layout import MAIN_LAYOUT
from mnist_budget.config.params import load_params
from mnist_budget.config.step_config import read_config


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--images", type=int, default=60_000, help="training images timed per device")
    parser.add_argument("--out", default="benchmarks/gpu_check.md")
    args = parser.parse_args()
    final = load_params()["headline"]["final"]
    step = read_config(final, {**read_json(MAIN_LAYOUT.config(final)), "device": "auto"})
    step = dataclasses.replace(step, epochs=args.epochs, seeds=(1,))
    pin(step.kernels)  # as the train stage: before any tensor
    import torch

    from mnist_budget.train.dataset import load_mnist
    from mnist_budget.train.nets import GlobalAvgPool, build_net
    from mnist_budget.train.runtime import made_on, pick_device
    from mnist_budget.train.scoring import accuracy, as_trained, predict, scoring_device
    from mnist_budget.train.seed_pool import train_seed

    checks: list[tuple[bool, str]] = []
    check = lambda passed, text: checks.append((bool(passed), text))
    device = pick_device(step)
    lines = [f"# {cpu_model()}; torch {torch.__version__}; `device: auto` picked {device}"]
    if device.type == "cuda":
        lines[0] += f" ({torch.cuda.get_device_name(device)})"
        check(True, "`device: auto` picks CUDA")
        run = f"{final}, seed 1, {args.epochs} epoch(s), trained twice"
        history = None
        try:
            (history, model), (again, model_again) = train_seed(step, 1), train_seed(step, 1)
        except RuntimeError as error:  # a kernel without a deterministic version (warn_only=False)
            check(False, f"{run}: raised {str(error).splitlines()[0]}")
        if history is not None:
            same = {"history": history == again, "model file": model == model_again}
            verdicts = ", ".join(f"{k} {'the same' if v else 'differs'}" for k, v in same.items())
            check(all(same.values()), f"{run}, no error with warn_only=False: {verdicts}")
        cudnn = torch.backends.cudnn
        flags = {
            "matmul TF32": torch.backends.cuda.matmul.allow_tf32,
            "cuDNN TF32": cudnn.allow_tf32,
            "cudnn.benchmark": cudnn.benchmark,
            "cudnn.deterministic": cudnn.deterministic,
            "warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        }
        shown = ", ".join(f"{k} {v}" for k, v in flags.items())
        check(list(flags.values()) == [False, False, False, True, False], f"{step.precision}: {shown}")
        record = made_on(step, device)
        tf32_off = record["tf32"] == {"matmul": False, "cudnn": False}
        check(tf32_off and record["deterministic"] is True, f"made_on: {json.dumps(record)}")
        if history is not None:
            where, scored = scoring_device(record["device"]), {}
            for place in {where, torch.device("cpu")} - {None}:
                data = load_mnist(place, step.validation)
                exported = as_trained(torch.export.load(io.BytesIO(model)).module(), place)
                scored[place] = accuracy(predict(exported, data.test_images).argmax(1), data.test_labels)
            final_accuracy, cpu = history[-1]["test_accuracy"], scored[torch.device("cpu")]
            check(
                where is not None and scored[where] == final_accuracy,
                f"the history's final test accuracy {final_accuracy:.2%}; evaluate's scoring of the "
                f"model file on {where}: {scored.get(where, float('nan')):.2%} (on the CPU: {cpu:.2%})",
            )
        cuda_step = dataclasses.replace(step, device="cuda")
        mean = any(isinstance(m, GlobalAvgPool) for m in build_net(cuda_step).modules())
        check(pick_device(cuda_step).type == "cuda" and mean, "`device: cuda` trains on CUDA, `gap` a mean")
    with mock.patch.object(torch.cuda, "is_available", lambda: False):  # a machine without a GPU
        try:
            pick_device(dataclasses.replace(step, device="cuda"))
            check(False, "`device: cuda` without a GPU: no error")
        except StageError as error:
            check("\n" not in str(error), f"`device: cuda` without a GPU stops: {error}")
    lines += [f"- {'ok' if passed else 'FAILED'}: {text}" for passed, text in checks]
    for where in ("cuda", "cpu") if device.type == "cuda" else ("cpu",):
        rate = time_epoch(final, "fp32", step.kernels, args.images, where)
        lines.append(f"- {final} training, fp32, {args.images:,} images on {where}: {rate:,.0f} img/s")
    if device.type != "cuda":
        print("\n".join(lines))
        print(f"no CUDA GPU here (torch.cuda.is_available() is False): the CPU part only; {args.out} kept")
        return
    publish(lines, Path(args.out))
    sys.exit(0 if all(passed for passed, _ in checks) else 1)


if __name__ == "__main__":
    main()
