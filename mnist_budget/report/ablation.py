"""The ablation's evidence: each arm's final-epoch test accuracy against the baseline's,
seed by seed (`paired`), one row per idea in reports/ablation/effects.csv, which the
ablation's report shows and the main report quotes."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import pandas as pd

from mnist_budget.base.layout import Layout
from mnist_budget.config.ablation_config import Arm
from mnist_budget.report.paired import CONFIDENCE, interval, paired_effect, verdict

ABLATION = Layout.of("ablation")
# MNIST's 10 classes: a net that learns nothing scores about this (the final recipe without
# batch norm: 9.86-11.35% over 8 seeds, its train loss stuck at ln 10 from epoch 1)
CHANCE = 1 / 10
EFFECTS = ABLATION.reports / "effects.csv"
# one row per arm; `effect`, `low`, `high`: arm minus baseline, fractions
EFFECT_COLUMNS = [
    "arm", "idea", "change", "step", "baseline", "n", "baseline_mean", "arm_mean", "effect", "low", "high", "verdict",
]  # fmt: skip


def arm_label(change: str, idea: str) -> str:
    """An arm as the reports and the README name it: `without batch norm`, `with dropout`."""
    return f"{'without' if change == 'removes' else 'with'} {idea}"


def load_effects(path: Path = EFFECTS) -> pd.DataFrame:
    """effects.csv as the stage wrote it; an `adds` arm names no step: its `step` reads ''."""
    return pd.read_csv(path).fillna({"step": ""})


def unmeasured_steps(steps: list[str], final: str, effects: pd.DataFrame) -> list[str]:
    """The steps after the skeleton, up to the `final` one, that no arm takes out: an
    ablation that ran before they joined the progression measured an earlier recipe."""
    return [step for step in steps[1 : steps.index(final) + 1] if step not in set(effects["step"])]


def unmeasured_text(unmeasured: list[str]) -> str:
    """What the reports say of an ablation that predates `unmeasured` steps; "" if none."""
    if not unmeasured:
        return ""
    names = ", ".join(f"`{name}`" for name in unmeasured)
    return (
        f"No arm measures {names}: this ablation ran on the final recipe before "
        f"{'that step' if len(unmeasured) == 1 else 'those steps'} joined the progression, so its "
        "effects are those of an earlier final recipe (`dvc repro ablation/dvc.yaml` runs it on this one)."
    )


def effects_table(
    baseline: str, arms: dict[str, Arm], accuracies: dict[str, dict[int, float]]
) -> pd.DataFrame:
    """One row per arm: its effect against `baseline` over the seeds both trained."""
    rows = []
    for name, arm in arms.items():
        e = paired_effect(accuracies[name], accuracies[baseline])
        rows.append(
            {
                "arm": name,
                "idea": arm.idea,
                "change": "removes" if arm.removes else "adds",
                "step": arm.step,
                "baseline": baseline,
                "n": e.n,
                "baseline_mean": round(statistics.fmean(accuracies[baseline][s] for s in e.seeds), 6),
                "arm_mean": round(statistics.fmean(accuracies[name][s] for s in e.seeds), 6),
                "effect": round(e.mean, 6),
                "low": None if e.low is None else round(e.low, 6),
                "high": None if e.high is None else round(e.high, 6),
                "verdict": verdict(e, arm.removes),
            }
        )
    return pd.DataFrame(rows, columns=EFFECT_COLUMNS)


def row_interval(row: dict[str, Any]) -> str:
    """A row's `-0.52 pp [-0.61, -0.43]`, from the table's numbers (no interval: NaN in the file)."""
    low, high = (None, None) if pd.isna(row["low"]) else (row["low"], row["high"])
    return interval(row["effect"], low, high)


def row_sentence(row: dict[str, Any]) -> str:
    """What a row of effects.csv says, as the reports quote it."""
    verb, where = ("Removing", "from") if row["change"] == "removes" else ("Adding", "to")
    said = f"{row['idea']} {row['verdict']}" if row["verdict"] in ("helps", "hurts") else row["verdict"]
    if row["arm_mean"] < 2 * CHANCE:
        said += f": without it the net does not learn ({row['arm_mean']:.2%}, chance being {CHANCE:.0%})"
    return (
        f"{verb} {row['idea']} {where} the final recipe changes final-epoch test accuracy by "
        f"{row_interval(row)} ({CONFIDENCE:.0%} interval, {row['n']} paired seeds; arm `{row['arm']}`, "
        f"{row['arm_mean']:.2%} against {row['baseline_mean']:.2%}): {said}."
    )


def write_report(
    layout: Layout,
    baseline: str,
    table: pd.DataFrame,
    accuracies: dict[str, dict[int, float]],
    descriptions: dict[str, str],
) -> str:
    """reports/ablation/report.md: the claim and evidence of every idea, then every seed."""
    base = accuracies[baseline]
    seeds = ", ".join(map(str, base))
    rows = pd.DataFrame(
        {
            "idea": [arm_label(c, idea) for c, idea in zip(table["change"], table["idea"])],
            "arm": [f"`{arm}`" for arm in table["arm"]],
            "main step": [f"`{step}`" if step else "(none)" for step in table["step"]],
            "arm mean": table["arm_mean"].map("{:.2%}".format),
            "effect (arm − baseline)": [row_interval(row) for row in table.to_dict("records")],
            "n": table["n"],
            "verdict": table["verdict"],
        }
    )
    per_seed = pd.DataFrame({f"`{name}`": pd.Series(values) for name, values in accuracies.items()})
    per_seed.index.name = "seed"
    out = [
        "# MNIST under budget: the ablation",
        "",
        (
            f"The baseline, `{baseline}`: {descriptions[baseline]} Each other arm is the baseline with one "
            "idea of the progression taken out, or one idea no step takes put in, trained on the same "
            "seeds: a seed fixes the initial weights, the data order and the augmentation on both sides, "
            "so each seed gives one difference of final-epoch test accuracy. A row gives the mean of those "
            f"differences and its {CONFIDENCE:.0%} Student's t interval over the n seeds; an idea "
            "*helps* when taking it out lowers accuracy (or putting it in raises it) with an interval "
            "clear of zero, *hurts* the other way, and is *within noise* when its interval holds zero."
        ),
        "",
        (
            f"Baseline `{baseline}`: {statistics.fmean(base.values()):.2%} mean final-epoch test accuracy "
            f"over seeds {seeds} (min {min(base.values()):.2%}, max {max(base.values()):.2%})."
        ),
        "",
        rows.to_markdown(index=False),
        "",
        "![Effect of each idea, mean and 95% interval of the paired seeds](figures/effects.png)",
        "",
        *[f"- {row_sentence(row)}" for row in table.to_dict("records")],
        "",
        "## Every seed",
        "",
        (
            "Final-epoch test accuracy of each arm (columns) on each seed (rows); histories in "
            f"`{layout.reports}/steps/<arm>/history.csv`."
        ),
        "",
        per_seed.map("{:.2%}".format).to_markdown(),
        "",
        "## Reproduce",
        "",
        "```",
        f"dvc repro {layout.name}/dvc.yaml   # every arm, then this report",
        "```",
        "",
    ]
    return "\n".join(out)
