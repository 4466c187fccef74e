"""Every file path of the pipelines, in one place; the dvc.yaml files declare the same paths.

The main pipeline lives at the top level (params.yaml, models/, reports/). Each other
pipeline, e.g. `references`, has a folder with its own params.yaml and dvc.yaml, and writes
to models/<name>/ and reports/<name>/, sharing data/ with the main one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

RAW_DIR = Path("data/raw")
CHECKSUMS = Path("data/mnist.sha256")  # the decompressed IDX files' sha256, `sha256sum -c` format
PREPARED_DIR = Path("data/prepared")
PREPARED_TENSORS = PREPARED_DIR / "mnist.pt"
PREPARED_STATS = PREPARED_DIR / "stats.json"
MAIN = "main"
# A pipeline's teacher (`step_config.load_teacher`): the name of its step, of the stage that
# trains it and of its files (models/<pipeline>/teacher/, reports/<pipeline>/steps/teacher/).
TEACHER = "teacher"
# What the train stage trained in this checkout: the sha256 of each history it wrote, out of
# git (.gitignore) and of every stage, so that `agree` tells a re-run from a checked-out result.
TRAINED_HERE = Path(".trained")


def trained_mark(step_dir: Path | PurePosixPath) -> Path:
    """reports/steps/<step> -> .trained/reports/steps/<step>.sha256"""
    return TRAINED_HERE / Path(step_dir).with_suffix(".sha256")


@dataclass(frozen=True)
class Layout:
    """Where one pipeline reads its params and writes its outputs."""

    name: str
    params: Path
    models: Path
    reports: Path

    @classmethod
    def of(cls, pipeline: str = MAIN) -> Layout:
        if pipeline == MAIN:
            return cls(MAIN, Path("params.yaml"), Path("models"), Path("reports"))
        return cls(
            pipeline, Path(pipeline) / "params.yaml", Path("models") / pipeline, Path("reports") / pipeline
        )

    def stage_target(self, stage: str, step: str = "") -> str:
        """How `dvc repro`, `dvc checkout` and `dvc status` name a stage, or a foreach
        stage's step."""
        where = "" if self.name == MAIN else f"{self.name}/dvc.yaml:"
        return f"{where}{stage}@{step}" if step else f"{where}{stage}"

    def repro_command(self, stage: str, step: str) -> str:
        """The command that reruns a foreach stage for one step, outputs replaced."""
        return f"dvc repro --force {self.stage_target(stage, step)}"

    @staticmethod
    def train_stage(step: str) -> str:
        """The stage that trains `step`: `train@<step>`, or a pipeline's teacher's own stage."""
        return TEACHER if step == TEACHER else f"train@{step}"

    @property
    def lock(self) -> Path:
        return self.params.parent / "dvc.lock"  # beside the pipeline's dvc.yaml

    @property
    def claims(self) -> Path:
        return self.params.parent / "claims.yaml"  # a write-up pipeline's claims (`claims_config`)

    @property
    def target(self) -> Path:
        return self.reports / "target.json"  # the params' `target`, as `resolve` validated it

    @property
    def configs(self) -> Path:
        return self.reports / "configs"  # each step as it trains: written by `resolve`

    @property
    def resolved(self) -> Path:
        # what the reports read of the params, derived once by `resolve`: the steps in order
        # with their descriptions, the `without` counts, an ablation's arms
        return self.reports / "resolved.json"

    def config(self, step: str) -> Path:
        return self.configs / f"{step}.json"

    def model_dir(self, step: str) -> Path:
        return self.models / step  # one model file per seed

    def model(self, step: str, seed: int) -> Path:
        return self.model_dir(step) / f"seed{seed}.pt2"  # torch.export's archive format

    def step_dir(self, step: str) -> Path:
        return self.reports / "steps" / step

    def history(self, step: str) -> Path:
        return self.step_dir(step) / "history.csv"  # every seed's epochs, a `seed` column first

    def made_on(self, step: str) -> Path:
        return self.step_dir(step) / "made_on.json"  # the device and kernels that trained it

    def metrics(self, step: str) -> Path:
        return self.step_dir(step) / "metrics.json"

    def confusion(self, step: str) -> Path:
        return self.step_dir(step) / "confusion.csv"

    def summary(self, step: str) -> Path:
        return self.step_dir(step) / "summary.md"

    @property
    def headline(self) -> Path:
        return self.reports / "headline.json"

    @property
    def figures(self) -> Path:
        return self.reports / "figures"

    @property
    def plots(self) -> Path:
        return self.reports / "plots"  # data series that `dvc plots show` draws


MAIN_LAYOUT = Layout.of(MAIN)
