"""Every file path of the pipeline, in one place; dvc.yaml declares the same paths."""

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


def model_path(step: str) -> Path:
    return MODELS_DIR / f"{step}.pt2"  # torch.export's archive format


def step_dir(step: str) -> Path:
    return STEPS_DIR / step


def history_path(step: str) -> Path:
    return step_dir(step) / "history.csv"


def metrics_path(step: str) -> Path:
    return step_dir(step) / "metrics.json"


def confusion_path(step: str) -> Path:
    return step_dir(step) / "confusion.csv"


def summary_path(step: str) -> Path:
    return step_dir(step) / "summary.md"
