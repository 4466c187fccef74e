"""Every file path of the pipeline, in one place; dvc.yaml declares the same paths."""

from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")
PREPARED_DIR = Path("data/prepared")
MODELS_DIR = Path("models")
REPORTS_DIR = Path("reports")
STEPS_DIR = REPORTS_DIR / "steps"
FIGURES_DIR = REPORTS_DIR / "figures"
PLOTS_DIR = REPORTS_DIR / "plots"  # data series that `dvc plots show` draws

# The four standard MNIST files, by role.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
PREPARED_TENSORS = PREPARED_DIR / "mnist.pt"
PREPARED_STATS = PREPARED_DIR / "stats.json"


SEEDS_DIR = REPORTS_DIR / "seeds"
HEADLINE = REPORTS_DIR / "headline.json"


def run_name(step: str, seed: int | None = None) -> str:
    """A step's own run is named after it; a re-run with another seed gets a suffix."""
    return step if seed is None else f"{step}-seed{seed}"


def model_path(step: str, seed: int | None = None) -> Path:
    folder = MODELS_DIR if seed is None else MODELS_DIR / "seeds"
    return folder / f"{run_name(step, seed)}.pt2"  # torch.export's archive format


def step_dir(step: str) -> Path:
    return STEPS_DIR / step


def history_path(step: str, seed: int | None = None) -> Path:
    folder = step_dir(step) if seed is None else SEEDS_DIR / run_name(step, seed)
    return folder / "history.csv"


def metrics_path(step: str) -> Path:
    return step_dir(step) / "metrics.json"


def confusion_path(step: str) -> Path:
    return step_dir(step) / "confusion.csv"


def summary_path(step: str) -> Path:
    return step_dir(step) / "summary.md"
