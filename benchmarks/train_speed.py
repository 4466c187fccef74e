"""Training speed: this project's epoch against the conventional notebook loop and the
framework's ceiling, on the same net, batch size, optimizer and augmentation.

    python -m benchmarks.train_speed [--repeats 3] [--train-images 60000] [--out benchmarks/train_speed.md]

(a) project:      stages.fit.train_epoch + per-epoch evaluation, as the pipeline runs it
                  (in-memory tensors, batched affine augmentation, channels-last weights,
                  the step's weight average updated each batch and scored).
(b) conventional: torchvision MNIST, per-sample PIL RandomAffine + ToTensor + Normalize,
                  a DataLoader with 2 worker processes, evaluation through another DataLoader.
(c) ceiling:      forward + backward + optimizer step on tensors already in memory, no
                  augmentation, no evaluation, on (a)'s channels-last model and precision.

The three alternate, each repeated; prints images/s medians and the ratios a/b and a/c.
Needs data/prepared and data/raw (run `dvc repro prepare` first).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms
from tqdm import tqdm

from mnist_budget.base.atomic_files import write_text
from mnist_budget.base.kernels import pin
from mnist_budget.base.layout import RAW_DIR
from mnist_budget.config.params import load_params
from mnist_budget.config.step_config import load_steps, parse_step
from mnist_budget.train.dataset import load_mnist
from mnist_budget.train.model_stats import count_params
from mnist_budget.train.nets import build_net
from mnist_budget.train.optim import Schedule, make_optimizer
from mnist_budget.train.runtime import seed_everything
from mnist_budget.train.scoring import loss_and_accuracy
from mnist_budget.train.training import WeightAverage, train_epoch

# The ~9.7K-trainable-parameter net of the seed progressions' shape: 3x3 convs, max pool at
# a receptive field of 7, a 1x1 squeeze, GAP and a 1x1 classifier.
SEED_STYLE_LAYERS = [
    "conv 8", "conv 16", "conv 16", "maxpool", "conv 8 k=1", "conv 16", "conv 16", "conv 16", "gap", "conv 10 k=1",
]  # fmt: skip
LOADER_WORKERS = 2  # as the notebooks do


def torchvision_root() -> Path:
    """A folder laid out as torchvision's MNIST expects, linking to data/raw."""
    root = Path(tempfile.mkdtemp(prefix="mnist-bench-"))
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in RAW_DIR.iterdir():
        (raw / path.name).symlink_to(path.resolve())
    return root


def conventional_loaders(step, train_images: int, test_images: int, root: Path):
    aug = step.augment
    normalize = [transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]  # notebook constants
    train_tf = transforms.Compose(
        [
            transforms.RandomAffine(
                aug["rotate"],
                translate=(aug["translate"], aug["translate"]) if aug["translate"] else None,
                scale=(1 - aug["scale"], 1 + aug["scale"]) if aug["scale"] else None,
                fill=0,
            ),
            *normalize,
        ]
    )
    train = datasets.MNIST(root, train=True, transform=train_tf)
    test = datasets.MNIST(root, train=False, transform=transforms.Compose(normalize))
    kwargs = {"num_workers": LOADER_WORKERS, "persistent_workers": True}
    return (
        DataLoader(Subset(train, range(train_images)), step.batch_size, shuffle=True, **kwargs),
        DataLoader(Subset(test, range(test_images)), 1000, **kwargs),
    )


def run_conventional(model, optimizer, train_loader, test_loader) -> None:
    model.train()
    for images, labels in train_loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in test_loader:
            correct += (model(images).argmax(1) == labels).sum().item()


def run_ceiling(model, optimizer, images, labels, batch_size: int, precision: str) -> None:
    model.train()
    for start in range(0, len(images), batch_size):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", torch.bfloat16, enabled=precision == "bf16"):  # as (a) trains
            logits = model(images[start : start + batch_size])
            loss = F.cross_entropy(logits, labels[start : start + batch_size])
        loss.backward()
        optimizer.step()


def measure(step, repeats: int, train_images: int, root: Path) -> dict[str, list[float]]:
    data = load_mnist(torch.device("cpu"))
    test_images = train_images // 6  # keep MNIST's 60k:10k ratio of train to eval work
    data.train_images, data.train_labels = data.train_images[:train_images], data.train_labels[:train_images]
    data.test_images, data.test_labels = data.test_images[:test_images], data.test_labels[:test_images]
    train_loader, test_loader = conventional_loaders(step, train_images, test_images, root)
    generator = seed_everything(step.seeds[0])
    model = build_net(step).to(memory_format=torch.channels_last)  # as stages.train builds it
    optimizer = make_optimizer(model, step.optimizer)
    average = WeightAverage(model, step.ema) if step.ema else None
    scored = average.module if average else model
    no_schedule = Schedule(optimizer, {"name": "none"}, step.epochs, 1)
    silent_bar = tqdm(disable=True)  # train_epoch's progress bar, silenced for timing
    notebook_model = build_net(step)  # the conventional loop's own plain (NCHW) copy
    notebook_optimizer = make_optimizer(notebook_model, step.optimizer)

    runs = {
        "a project": lambda: (
            train_epoch(model, data, step, optimizer, no_schedule, generator, silent_bar, average),
            loss_and_accuracy(scored, data.test_images, data.test_labels),
        ),
        "b conventional": lambda: run_conventional(
            notebook_model, notebook_optimizer, train_loader, test_loader
        ),
        "c ceiling": lambda: run_ceiling(
            model, optimizer, data.train_images, data.train_labels, step.batch_size, step.precision
        ),
    }
    next(iter(train_loader))  # start the loader workers before timing
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():  # alternate, so drift hits all three alike
            started = time.perf_counter()
            run()
            rates[name].append(train_images / (time.perf_counter() - started))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=60000, help="images per timed epoch")
    parser.add_argument("--out", default="benchmarks/train_speed.md", help="where to write the results too")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("MNIST_THREADS") or os.cpu_count() or 1))

    params = load_params()
    final_name = params["headline"]["final"]
    final = load_steps(params)[final_name]
    pin(final.kernels)  # as the train stage runs: before any tensor
    seed_style = parse_step("seed-style-9_7k", {**params["steps"][final_name], "layers": SEED_STYLE_LAYERS})
    root = torchvision_root()
    lines = [
        (
            f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads; {args.train_images} train images per epoch, "
            f"median of {args.repeats}; augmentation {final.augment}"
        )
    ]
    print(lines[0], flush=True)
    for step in (final, seed_style):
        rates = measure(step, args.repeats, args.train_images, root)
        medians = {name: statistics.median(values) for name, values in rates.items()}
        params_total = count_params(build_net(step))["params_total"]
        recipe = f"batch {step.batch_size}, {step.optimizer['name']}, {step.precision}"
        block = [f"\n{step.name} ({params_total:,} params, {recipe}):"]
        for name, values in rates.items():
            runs = ", ".join(f"{v:,.0f}" for v in values)
            block.append(f"  {name:15s} {medians[name]:8,.0f} img/s   (runs: {runs})")
        a, b, c = medians["a project"], medians["b conventional"], medians["c ceiling"]
        block.append(f"  a/b = {a / b:.2f}   a/c = {a / c:.2f}")
        print("\n".join(block), flush=True)
        lines += block
    write_text(Path(args.out), "```\n" + "\n".join(lines) + "\n```\n")


if __name__ == "__main__":
    main()
