"""Does a re-run agree with the committed results? Every pipeline's per-seed histories in
the workspace against those at a git revision.

    python -m mnist_budget.tools.agree [REV]     # REV: a commit, branch or tag; default HEAD

Per step: "byte-identical", or each seed's final test accuracy then and now, the mean
difference and the seed noise it is judged against; then how many steps are byte-identical,
which a step not re-run here is too. The noise of a mean difference over n
paired seeds is 2 standard errors, 2 * s * sqrt(2 / n), with s the seed std of the step's
final accuracies (then and now pooled); a step with one seed takes s from the steps that
have several. Each result's `made_on.json` (device, kernels) is shown where it differs, as
the likely cause. The last line is the verdict:

    byte-identical                                          exit 0
    agrees within the seed noise (largest step difference X pp, seed std Y pp)   exit 0
    differs beyond the noise: <pipeline> <step>, ...        exit 1
"""

from __future__ import annotations

import argparse
import io
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from mnist_budget.base.errors import StageError
from mnist_budget.base.layout import MAIN, MAIN_LAYOUT

NOISE_STANDARD_ERRORS = 2  # about a 95% band for a mean difference


@dataclass
class StepResult:
    pipeline: str
    step: str
    identical: bool
    then: dict[int, float]  # seed -> final test accuracy at the revision
    now: dict[int, float]  # in the workspace
    made_on: tuple[dict | None, dict | None]  # then, now

    @property
    def seeds(self) -> list[int]:
        return sorted(set(self.then) & set(self.now))

    @property
    def difference(self) -> float:
        """Mean over the common seeds of now - then, in percentage points."""
        return 100 * sum(self.now[s] - self.then[s] for s in self.seeds) / len(self.seeds)

    def seed_std(self) -> float | None:
        """Pooled sample std of the final accuracies over seeds, in pp; None with one seed."""
        groups = [list(values.values()) for values in (self.then, self.now) if len(values) > 1]
        if not groups:
            return None
        squares = sum(sum((v - sum(g) / len(g)) ** 2 for v in g) for g in groups)
        return 100 * math.sqrt(squares / sum(len(g) - 1 for g in groups))


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


def finals(history: bytes) -> dict[int, float]:
    """Each seed's test accuracy at its last epoch."""
    frame = pd.read_csv(io.BytesIO(history))
    last = frame.sort_values("epoch").groupby("seed").tail(1)
    return dict(zip(last["seed"].astype(int), last["test_accuracy"].astype(float)))


def made_on(text: bytes | None) -> dict | None:
    return json.loads(text) if text else None


def compare(rev: str) -> tuple[list[StepResult], list[str]]:
    """Every step whose history is both at `rev` and in the workspace; and lines naming the
    histories found on one side only."""
    committed = {
        PurePosixPath(p)
        for p in git("ls-tree", "-r", "--name-only", rev, "--", str(MAIN_LAYOUT.reports)).decode().split()
    }
    then_paths = {p for p in committed if is_history(p)}
    now_paths = {PurePosixPath(p.as_posix()) for p in MAIN_LAYOUT.reports.glob("**/steps/*/history.csv")}
    results, alone = [], []
    for path in sorted(then_paths | now_paths):
        step = path.parent.name
        where = f"{pipeline_of(path)} {step}"
        if path not in now_paths:
            alone.append(f"{where}: at {rev} only (not trained here)")
            continue
        if path not in then_paths:
            alone.append(f"{where}: here only (not at {rev})")
            continue
        then_bytes, now_bytes = git("show", f"{rev}:{path}"), Path(path).read_bytes()
        made_on_path = path.parent / "made_on.json"
        results.append(
            StepResult(
                pipeline_of(path),
                step,
                then_bytes == now_bytes,
                finals(then_bytes),
                finals(now_bytes),
                (
                    made_on(git("show", f"{rev}:{made_on_path}") if made_on_path in committed else None),
                    made_on(Path(made_on_path).read_bytes() if Path(made_on_path).is_file() else None),
                ),
            )
        )
    return results, alone


def pooled_std(results: list[StepResult]) -> float | None:
    """The seed std of the steps that have several seeds, pooled: for one-seed steps."""
    stds = [s for s in (r.seed_std() for r in results) if s is not None]
    return math.sqrt(sum(s * s for s in stds) / len(stds)) if stds else None


def describe(result: StepResult, std: float | None) -> tuple[str, bool]:
    """One step's line, and whether it agrees within the noise."""
    name = f"{result.pipeline} {result.step}"
    if result.identical:
        return f"{name}: byte-identical", True
    if not result.seeds:
        return f"{name}: no seed in common (then {sorted(result.then)}, now {sorted(result.now)})", False
    seeds = ", ".join(f"{s}: {result.then[s]:.2%} -> {result.now[s]:.2%}" for s in result.seeds)
    line = f"{name}: seed {seeds}; mean {result.difference:+.2f} pp"
    then_on, now_on = result.made_on
    if then_on != now_on:
        line += f" (made on {describe_machine(then_on)} then, {describe_machine(now_on)} now)"
    if std is None:
        return f"{line}; no seed spread to judge it by: differs", False
    noise = NOISE_STANDARD_ERRORS * std * math.sqrt(2 / len(result.seeds))
    agrees = abs(result.difference) <= noise
    return (
        f"{line}, noise ±{noise:.2f} pp (seed std {std:.2f} pp): {'within' if agrees else 'beyond'}",
        agrees,
    )


def describe_machine(machine: dict | None) -> str:
    if machine is None:
        return "an unrecorded machine"
    return " ".join(str(machine[k]) for k in ("device", "kernels") if k in machine)


def verdict(results: list[StepResult]) -> tuple[list[str], str, bool]:
    """Each step's line, the closing line, and whether the run agrees."""
    pooled = pooled_std(results)
    lines, beyond = [], []
    for result in results:
        line, agrees = describe(result, result.seed_std() or pooled)
        lines.append(line)
        if not agrees:
            beyond.append(f"{result.pipeline} {result.step}")
    moved = [r for r in results if not r.identical]
    if len(moved) < len(results):
        # the same bytes say nothing of whether a step was re-run: `dvc repro` of one
        # pipeline leaves the others' histories as they were checked out
        lines.append(
            f"{len(results) - len(moved)} of {len(results)} steps byte-identical: "
            "reproduced exactly where re-run here, or not re-run"
        )
    if beyond:
        return lines, f"differs beyond the noise: {', '.join(beyond)}", False
    if not moved:
        return lines, "byte-identical", True
    largest = max(moved, key=lambda r: abs(r.difference))
    closing = (
        f"agrees within the seed noise (largest step difference {largest.difference:+.2f} pp, "
        f"{largest.pipeline} {largest.step}; seed std {largest.seed_std() or pooled:.2f} pp)"
    )
    return lines, closing, True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "rev", nargs="?", default="HEAD", help="the git revision to compare with (default HEAD)"
    )
    rev = parser.parse_args().rev
    try:
        results, alone = compare(rev)
    except StageError as error:
        sys.exit(f"agree: {error}")
    if not results:
        sys.exit(f"agree: no step has a history both here and at {rev}; run `dvc repro` first")
    lines, closing, agrees = verdict(results)
    print("\n".join(lines + alone + [closing]))
    sys.exit(0 if agrees else 1)


if __name__ == "__main__":
    main()
