"""Training speed by precision and kernels: bf16 against fp32, native against portable
kernels, on the headline nets, with the project's own `train_epoch`, one thread.

    python -m benchmarks.precision_speed [--repeats 3] [--images 3840] [--out benchmarks/precision_speed.md]

Every arm runs in a fresh process (the kernel pins must be set before torch starts), on the
main pipeline's resolved configs (reports/configs/<step>.json) with `precision` set by the
arm: a warm-up of 256 images, then `--images` training images timed. Arms alternate, so
drift hits all alike; prints the CPU's model name and torch's CPU capability, the median
images/s of each arm, fp32/bf16, the pins' cost, and what deterministic mode's NaN fill of
new tensors (which `runtime.set_up` turns off) costs in fp32. Needs data/prepared
(`dvc repro prepare`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from itertools import product
from pathlib import Path

from mnist_budget.base.atomic_files import write_text
from mnist_budget.base.kernels import KERNELS, pin

STEPS = ("s6-weight-average", "s7-separable", "s8-tiny")  # a dense net, the final one, the tiny one
PRECISIONS = ("fp32", "bf16")
WARM_UP_IMAGES = 256  # the first batches build oneDNN's primitives: 2-4x slower than the rest


def cpu_model() -> str:
    """The CPU's model name, family and model numbers, and the instruction sets bf16 needs."""
    with open("/proc/cpuinfo") as f:
        fields = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    extras = sorted(set(fields.get("flags", "").split()) & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"})
    return f"{fields.get('model name')} (family {fields.get('cpu family')} model {fields.get('model')}; {' '.join(extras)})"


def time_epoch(
    step_name: str, precision: str, kernels: str, images: int, device: str = "cpu", fill: bool = False
) -> float:
    """Images/s of the project's `train_epoch` on `images` images on `device`, in this
    process, which has run no kernel yet; `fill`: with deterministic mode's NaN fill of new
    tensors, which `set_up` turns off."""
    import time

    import torch
    from tqdm import tqdm

    from mnist_budget.base.atomic_files import read_json
    from mnist_budget.base.layout import MAIN_LAYOUT
    from mnist_budget.config.step_config import read_config
    from mnist_budget.train.dataset import load_mnist
    from mnist_budget.train.nets import build_net
    from mnist_budget.train.optim import Schedule, make_optimizer
    from mnist_budget.train.runtime import set_up
    from mnist_budget.train.training import WeightAverage, train_epoch

    config = {
        **read_json(MAIN_LAYOUT.config(step_name)),
        "precision": precision,
        "device": device,
        "kernels": kernels,
    }
    step = read_config(step_name, config)
    pin(kernels)
    device, generator = set_up(step, step.seeds[0])
    torch.utils.deterministic.fill_uninitialized_memory = fill
    model = build_net(step).to(device, memory_format=torch.channels_last)
    optimizer = make_optimizer(model, step.optimizer)
    average = WeightAverage(model, step.ema) if step.ema else None
    schedule = Schedule(optimizer, {"name": "none"}, step.epochs, 1)
    data = load_mnist(device)
    all_images, all_labels = data.train_images, data.train_labels
    rates = []
    for count in (WARM_UP_IMAGES, images):
        data.train_images, data.train_labels = all_images[:count], all_labels[:count]
        started = time.perf_counter()
        train_epoch(model, data, step, optimizer, schedule, generator, tqdm(disable=True), average)
        rates.append(count / (time.perf_counter() - started))
    return rates[-1]


def publish(lines: list[str], out: Path) -> None:
    """Print a benchmark's result lines and write them to `out`, the committed record."""
    text = "\n".join(lines) + "\n"
    print(text)
    write_text(out, text)


def run_arm(step: str, precision: str, kernels: str, fill: str, images: int) -> tuple[float, str]:
    """One arm in a fresh process: its images/s and ATen's CPU capability there."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.precision_speed",
        "--arm",
        step,
        precision,
        kernels,
        fill,
        str(images),
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(out.splitlines()[-1])
    return result["rate"], result["capability"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=3840, help="training images timed per arm")
    parser.add_argument("--out", default="benchmarks/precision_speed.md")
    parser.add_argument("--arm", nargs=5, help=argparse.SUPPRESS)  # the child process's side
    args = parser.parse_args()
    if args.arm:
        import torch

        step, precision, kernels, fill, images = args.arm
        rate = time_epoch(step, precision, kernels, int(images), fill=fill == "fill")
        print(json.dumps({"rate": rate, "capability": torch.backends.cpu.get_cpu_capability()}))
        return

    # the pipeline's way (no fill) in every precision and kernels; the fill in its fp32 alone
    arms = [
        *product(STEPS, PRECISIONS, KERNELS, ["no-fill"]),
        *product(STEPS, ["fp32"], ["portable"], ["fill"]),
    ]
    rates: dict[tuple, list[float]] = {arm: [] for arm in arms}
    capability = {}
    for repeat in range(args.repeats):
        for arm in arms:
            rate, capability[arm[2]] = run_arm(*arm, args.images)
            rates[arm].append(rate)
            print(f"repeat {repeat + 1}/{args.repeats}: {' '.join(arm)} {rate:,.0f} img/s", file=sys.stderr)
    median = {arm: statistics.median(values) for arm, values in rates.items()}
    lines = [
        (
            f"# {cpu_model()}, torch capability {capability['native']} (portable kernels: "
            f"{capability['portable']}); the project's train_epoch, 1 thread, {args.images:,} images "
            f"after {WARM_UP_IMAGES} warm-up, median of {args.repeats}, arms alternating, each in a fresh process"
        ),
        "",
        "| step | kernels | fp32 img/s | bf16 img/s | fp32 / bf16 |",
        "|---|---|---|---|---|",
    ]
    for step, kernels in product(STEPS, KERNELS):
        fp32, bf16 = median[step, "fp32", kernels, "no-fill"], median[step, "bf16", kernels, "no-fill"]
        lines.append(f"| `{step}` | {kernels} | {fp32:,.0f} | {bf16:,.0f} | {fp32 / bf16:.2f}x |")
    lines += ["", "Cost of the portable pins (native / portable, same precision):", ""]
    for step, precision in product(STEPS, PRECISIONS):
        ratio = median[step, precision, "native", "no-fill"] / median[step, precision, "portable", "no-fill"]
        lines.append(f"- `{step}` {precision}: {ratio:.2f}x")
    lines += [
        "",
        "Deterministic mode's NaN fill of new tensors, turned off by `set_up` (fp32, portable):",
        "",
    ]
    for step in STEPS:
        off, on = median[step, "fp32", "portable", "no-fill"], median[step, "fp32", "portable", "fill"]
        lines.append(f"- `{step}`: {on:,.0f} img/s with the fill, {off:,.0f} without: {off / on:.2f}x")
    publish(lines, Path(args.out))


if __name__ == "__main__":
    main()
