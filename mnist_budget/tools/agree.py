"""Does a re-run agree with the committed results? Every pipeline's per-seed histories in
the workspace against those at a git revision.

    python -m mnist_budget.tools.agree [REV] [--here DIR]   # REV: default HEAD; DIR: default .

Per step: re-run here or as checked out (the train stage marks what it trained in
`.trained/`); "byte-identical"; other settings than the committed ones (the keys of its
resolved config that differ, or a step on one side only), which the noise cannot judge; or
each seed's final test accuracy then and now, judged against the committed seeds' spread
(`report.agreement`: the mean and each seed, t quantiles, a 5% false-alarm rate over all the
steps judged). The last line is the verdict:

    byte-identical                                                      exit 0
    agrees within the seed noise (... largest step difference X pp ...)  exit 0
    differs beyond the noise: <pipeline> <step>, ...                    exit 1
    re-run with other settings than the committed ones: ...             exit 2
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pandas as pd

from mnist_budget.base.errors import StageError
from mnist_budget.base.layout import MAIN, MAIN_LAYOUT, trained_mark
from mnist_budget.config.optim_spec import steered_by_test
from mnist_budget.report.agreement import StepRun, setting_changes, verdict
from mnist_budget.report.history import final_accuracies


def git(*args: str) -> bytes:
    result = subprocess.run(["git", *args], capture_output=True, check=False)
    if result.returncode:
        raise StageError(f"git {' '.join(args)}: {result.stderr.decode().strip()}")
    return result.stdout


def pipeline_of(history: PurePosixPath) -> str:
    """reports/steps/<step>/history.csv -> main; reports/<name>/steps/... -> <name>."""
    parts = history.relative_to(MAIN_LAYOUT.reports).parts
    return MAIN if parts[0] == "steps" else parts[0]


def is_history(path: PurePosixPath) -> bool:
    return path.name == "history.csv" and len(path.parts) >= 4 and path.parts[-3] == "steps"


def config_path(history: PurePosixPath) -> PurePosixPath:
    """reports/<...>/steps/<step>/history.csv -> reports/<...>/configs/<step>.json"""
    return history.parents[2] / "configs" / f"{history.parent.name}.json"


def finals(history: bytes) -> dict[int, float]:
    return final_accuracies(pd.read_csv(io.BytesIO(history)))


def trained_here(here: Path, history: PurePosixPath, data: bytes) -> bool:
    """Whether the train stage wrote these very history bytes in this checkout."""
    mark = here / trained_mark(history.parent)
    return mark.is_file() and mark.read_text().strip() == hashlib.sha256(data).hexdigest()


class Revision:
    """The files of `reports/` at a git revision."""

    def __init__(self, rev: str) -> None:
        self.rev = rev
        listed = git("ls-tree", "-r", "--name-only", rev, "--", str(MAIN_LAYOUT.reports)).decode()
        self.paths = {PurePosixPath(p) for p in listed.split()}

    def read(self, path: PurePosixPath) -> bytes | None:
        return git("show", f"{self.rev}:{path}") if path in self.paths else None


def json_or_none(data: bytes | None) -> dict | None:
    return json.loads(data) if data else None


def compare(
    rev: str, here: Path = Path("."), pipelines: set[str] | None = None
) -> tuple[list[StepRun], list[str]]:
    """Every step whose history is both at `rev` and under `here`; and lines naming the
    histories found on one side only. `pipelines`: those pipelines' steps alone (all if None)."""
    then = Revision(rev)
    now_paths = {
        PurePosixPath(p.relative_to(here).as_posix())
        for p in (here / MAIN_LAYOUT.reports).glob("**/steps/*/history.csv")
    }
    paths = {p for p in then.paths if is_history(p)} | now_paths
    runs, alone = [], []
    for path in sorted(p for p in paths if pipelines is None or pipeline_of(p) in pipelines):
        where = f"{pipeline_of(path)} {path.parent.name}"
        if path not in now_paths:
            alone.append(f"{where}: at {rev} only (a step not in the params here)")
            continue
        if path not in then.paths:
            alone.append(f"{where}: here only (a step not in the params at {rev})")
            continue
        then_bytes, now_bytes = then.read(path), (here / path).read_bytes()
        made_on = path.parent / "made_on.json"
        configs = then.read(config_path(path)), (here / config_path(path))
        then_config = json_or_none(configs[0])
        now_config = json_or_none(configs[1].read_bytes() if configs[1].is_file() else None)
        both = then_config is not None and now_config is not None
        runs.append(
            StepRun(
                pipeline_of(path),
                path.parent.name,
                finals(then_bytes),
                finals(now_bytes),
                identical=then_bytes == now_bytes,
                rerun_here=trained_here(here, path, now_bytes),
                settings=setting_changes(then_config, now_config) if both else [],
                steered=any(
                    steered_by_test((c or {}).get("schedule", {})) for c in (then_config, now_config)
                ),
                machines=(
                    json_or_none(then.read(made_on)),
                    json_or_none((here / made_on).read_bytes() if (here / made_on).is_file() else None),
                ),
            )
        )
    return runs, alone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "rev", nargs="?", default="HEAD", help="the git revision to compare with (default HEAD)"
    )
    parser.add_argument(
        "--here", type=Path, default=Path("."), help="the checkout whose re-run to judge (default: this one)"
    )
    args = parser.parse_args()
    try:
        runs, alone = compare(args.rev, args.here)
    except StageError as error:
        sys.exit(f"agree: {error}")
    if not runs:
        sys.exit(f"agree: no step has a history both here and at {args.rev}; run `dvc repro` first")
    result = verdict(runs, alone)
    print("\n".join([*result.lines, result.closing]))
    sys.exit(result.exit_code)


if __name__ == "__main__":
    main()
