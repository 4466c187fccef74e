"""The seed systems' report: the comparison with every write-up first, then each system's
progression (changes compared within the system)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mnist_budget.config.claims_config import COUNTS, System
from mnist_budget.report import figures, seed_systems
from mnist_budget.report.seed_systems import Run
from mnist_budget.report.writeup import Results, progression_table, reproduce_section, step_section


def gpu_step_section(results: Results, name: str, step: dict[str, Any], counts: dict[str, int]) -> list[str]:
    """A step shipped as a config only; `step`: its description and epochs, `counts`: its
    size, both as `resolve` wrote them."""
    layout = results.layout
    return [
        f"### `{name}` (config only: needs a GPU)",
        "",
        f"**Target.** {step['description']}",
        "",
        (
            f"**Result.** Not trained here: {counts['params_total']:,} parameters "
            f"({counts['params_trainable']:,} trainable), {step['epochs']} epochs, far too slow for "
            f"a laptop CPU. On a GPU machine, move it from `gpu_steps` to `steps` in "
            f"`{layout.params}` and run `dvc repro --glob '{layout.name}/dvc.yaml:*@{name}'`."
        ),
        "",
    ]


def system_section(
    results: Results, system: System, gpu_steps: dict[str, dict[str, Any]], sizes: dict[str, dict[str, int]]
) -> list[str]:
    """One write-up: its progression table, curves, then each step (changes within the system)."""
    trained = [name for name in system.steps if name in results.metrics]
    out = [
        f"## {system.title}",
        "",
        f"Write-up: `{system.source}`. **Why a reproduction may differ.** {system.differs}",
        "",
    ]
    if trained:
        out += [
            progression_table(results, trained),
            "",
            f"![Test accuracy per epoch, {system.name}](figures/accuracy-{system.name}.png)",
            "",
        ]
    previous = None
    for name in system.steps:
        if name in gpu_steps:
            out += gpu_step_section(results, name, gpu_steps[name], sizes[name])
            continue
        out += step_section(results, name, previous)
        previous = name
    return out


def runs(results: Results) -> dict[str, Run]:
    """Every trained step as the comparison reads it."""
    return {
        name: Run(results.histories[name], {key: metrics[key] for key in COUNTS.values()})
        for name, metrics in results.metrics.items()
    }


def claim_text(row: dict) -> str:
    """`99.52% at the best epoch` (or `..., mean of 223 runs`)."""
    if pd.isna(row["claimed"]):
        return "-"
    at = row["claimed_at"]
    where = f"epoch {int(at)}" if str(at).isdigit() else f"the {at} epoch"
    runs = "" if row["claimed_runs"] == 1 else f", mean of {int(row['claimed_runs']):,} runs"
    return f"{row['claimed']:.2%} at {where}{runs}"


def glance_table(systems: pd.DataFrame) -> str:
    """The systems' rows (`seed_systems.system_rows`) as the report's first table."""
    rows = []
    for row in systems.to_dict("records"):
        trained = row["seeds"] > 0
        rows.append(
            {
                "system": row["system"],
                "net": f"`{row['step']}`",
                "parameters: claimed → counted": (
                    "-" if pd.isna(row["params_claimed"]) else f"{int(row['params_claimed']):,}"
                )
                + f" → {row['params_counted']:,} ({row['counts']})",
                "epochs": row["epochs"],
                "claim": claim_text(row),
                "re-run, final epoch: mean (min-max)": (
                    f"{row['final_mean']:.2%} ({row['final_min']:.2%}-{row['final_max']:.2%}), "
                    f"{row['seeds']} seeds"
                    if trained
                    else "not trained here (GPU only)"
                ),
                "re-run, best epoch (chosen on test)": f"{row['best_mean']:.2%}" if trained else "-",
                "claim as read": row.get("verdict", "-") if trained else "-",
                "claim at the final epoch": row.get("verdict_final", "-") if trained else "-",
            }
        )
    return pd.DataFrame(rows).to_markdown(index=False)


def write_report(
    results: Results,
    systems: dict[str, System],
    gpu_steps: dict[str, dict[str, Any]],
    sizes: dict[str, dict[str, int]],
    glance: pd.DataFrame,
) -> str:
    """Each system's net at a glance (`glance`: `seed_systems.system_rows`), the comparison
    claim by claim, then each system; `gpu_steps` and `sizes` as `resolve` wrote them."""
    layout, target = results.layout, results.target
    rows = seed_systems.comparison_rows(systems, runs(results), sizes, target.test_accuracy)
    out = [
        f"# MNIST under budget: the `{layout.name}` pipeline",
        "",
        (
            f"Each write-up of this exercise that `{layout.params}` names, rebuilt there as a "
            "progression of steps (the same architecture family and parameter count within "
            f"{seed_systems.PARAMS_TOLERANCE:.0%}, the same optimizer, schedule, batch size, epochs and "
            "augmentation where the write-up gives them), trained on real MNIST and compared "
            "with what it claimed. The progression tables mark each step against one common "
            f"target: {target.test_accuracy:.2%} final-epoch test accuracy with at most "
            f"{target.max_params:,} parameters in at most {target.max_epochs} epochs."
        ),
        "",
        "## Each write-up's net at a glance",
        "",
        glance_table(glance),
        "",
        (
            "Each write-up's last net: its parameters counted the way it counted them, the test "
            "accuracy it is quoted by (its best epoch's when it gives one), and the re-run here "
            "over every seed: the final epoch's mean and range, and for comparison the best "
            "epoch's mean, which is chosen on the test set and so flatters a net. The verdicts "
            "read the claim where the write-up read it, then at the final epoch "
            "(systems.csv holds these rows)."
        ),
        "",
        "## Comparison with the write-ups",
        "",
        seed_systems.comparison_table(rows),
        "",
        (
            "One row per claim of a write-up: every number and checkable statement it makes, "
            "each read here the way the write-up read it (the final epoch, the best epoch, "
            "selected on the test set as the write-up did, or the epoch it names), on every seed "
            f"the step trained: {seeds_sentence(results)} A claim **matches** when "
            "it lies within the seeds' range widened by "
            f"{seed_systems.ACCURACY_TOLERANCE * 100:.1f} pp (about the seed-to-seed spread of "
            "one recipe); **beats** or **falls short** only when every seed lies beyond that on "
            "the same side. Train accuracy is the running accuracy over each epoch's augmented "
            "batches, as the write-ups' training loops report it."
        ),
        "",
        (
            "Parameters are counted the way the write-up counted them (Keras totals include batch "
            "norm's running mean and variance, torchsummary counts only weights) and match within "
            f"{seed_systems.PARAMS_TOLERANCE:.0%}. Statements are checked against the run: "
            "*overfitting* when the best train accuracy exceeds the best test accuracy by more "
            f"than {seed_systems.ACCURACY_TOLERANCE * 100:.1f} pp (mean over seeds; the write-ups "
            "judged it by that gap), *less overfitting* when that gap is smaller than the previous "
            "step's, *still improving* when the best test epoch is one of the last "
            f"{seed_systems.LAST_EPOCHS}, *drops after* when the test accuracy falls below the "
            "target after first reaching it, on every seed. An accuracy *held* after an epoch "
            "holds on a seed whose every later epoch is at or above it, within the same "
            f"{seed_systems.ACCURACY_TOLERANCE * 100:.1f} pp."
        ),
        "",
        "![Claimed against reproduced accuracy](figures/claims.png)",
        "",
        "Each write-up's last net: its claim joined to its re-run here over the seeds:",
        "",
        "![Parameters against final test accuracy, claims and re-runs](figures/params_vs_accuracy.png)",
        "",
    ]
    for system in systems.values():
        out += system_section(results, system, gpu_steps, sizes)
    out += reproduce_section(layout)
    return "\n".join(out)


def figure_files(results: Results, systems: dict[str, System], glance: pd.DataFrame) -> dict[Path, bytes]:
    """The comparison's figures, as reports/<pipeline>/figures/<name>.png -> PNG bytes: each
    system's curves, every accuracy claim against its re-run, and each system's last net, its
    claim joined to its re-run (`glance`: `seed_systems.system_rows`)."""
    layout, target = results.layout, results.target
    files = {}
    for system in systems.values():
        trained = {name: results.histories[name] for name in system.steps if name in results.histories}
        if trained:
            files[layout.figures / f"accuracy-{system.name}.png"] = figures.accuracy_curves(
                trained, target.test_accuracy
            )
    points = seed_systems.accuracy_claims(systems, runs(results))
    files[layout.figures / "claims.png"] = figures.claims_vs_reproduced(points, target.test_accuracy)
    files[layout.figures / "params_vs_accuracy.png"] = figures.params_vs_accuracy({}, target, glance)
    return files


def seeds_sentence(results: Results) -> str:
    """Which steps trained over several seeds (each write-up's claimed final step)."""
    several = [f"`{name}`" for name, history in results.histories.items() if history["seed"].nunique() > 1]
    if not several:
        return "one seed per step."
    return f"{', '.join(several)} (each write-up's claimed final step) over several seeds, the others on one."
