"""The progression's report: the headline over seeds, the progression table and figures,
Target / Result / Analysis per step, and the final model's errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mnist_budget.base.errors import StageError
from mnist_budget.base.idx import read_idx
from mnist_budget.base.layout import MAIN, RAW_DIR
from mnist_budget.base.mnist import MNIST_FILES
from mnist_budget.report import figures
from mnist_budget.report.ablation import row_interval, row_sentence, unmeasured_steps, unmeasured_text
from mnist_budget.report.history import per_seed
from mnist_budget.report.paired import CONFIDENCE
from mnist_budget.report.search_results import adopted, ranked
from mnist_budget.report.writeup import (
    Results,
    effect,
    effect_text,
    params_diff,
    progression_table,
    reproduce_section,
    seeds_text,
    step_section,
    verdict_columns,
)

MISCLASSIFIED_SHOWN = 24


def headline_table(results: Results, headline: dict[str, Any]) -> str:
    """The final and the tiny model over seeds: the numbers the README points to."""
    rows = []
    for role, h in headline.items():
        rows.append(
            {
                "model": f"{role}: `{h['step']}`",
                "params": f"{h['params_total']:,}",
                "epochs": h["epochs"],
                "final test acc per seed": ", ".join(
                    f"{a:.2%} (seed {s})" for s, a in zip(h["seeds"], h["test_accuracies"])
                ),
                "mean": f"**{h['mean']:.2%}**",
                "min": f"{h['min']:.2%}",
                "std": f"{h['std'] * 100:.3f} pp",
                **verdict_columns(results.metrics[h["step"]]["meets"]),
            }
        )
    return pd.DataFrame(rows).to_markdown(index=False)


def headline_section(results: Results, final: str, headline: dict[str, Any] | None) -> list[str]:
    m, target = results.metrics[final], results.target
    out = [
        (
            f"Target: **{target.test_accuracy:.2%}** final-epoch test accuracy, on every seed, with at most "
            f"**{target.max_params:,}** parameters in at most **{target.max_epochs}** epochs."
        ),
        "",
    ]
    accuracy = m["test_accuracy"]
    role = "Final model" if headline else "Last step"
    out += [
        (
            f"**{role} `{final}`: {m['params_total']:,} parameters, {m['epochs']} epochs, "
            f"{accuracy['mean']:.2%} mean final-epoch test accuracy over {seeds_text(m['seeds'])} "
            f"(min {accuracy['min']:.2%}, std {accuracy['std'] * 100:.3f} pp): {verdict(m)}.**"
        ),
        "",
    ]
    return out + [headline_table(results, headline), ""] if headline else out


def verdict(m: dict[str, Any]) -> str:
    """What a step meets, saying so when the mean meets the target and a seed does not."""
    meets = m["meets"]
    budget = "within" if meets["params"] and meets["epochs"] else "outside"
    if meets["every_seed"]:
        accuracy = "meets the target on every seed"
    elif meets["accuracy"]:
        low = min(per_seed(m["test_accuracy"]).items(), key=lambda item: item[1])
        accuracy = f"meets the target on the mean but not on every seed (seed {low[0]}: {low[1]:.2%})"
    else:
        accuracy = "does not meet the target"
    return f"it {accuracy}, {budget} the budget"


def search_section(
    runs: pd.DataFrame,
    validation: int,
    table: str,
    incumbents: dict[str, str],
    taught: set[str] = frozenset(),
) -> list[str]:
    """How the recipes were chosen: the search's finalists, ranked on validation, and what
    each budget adopted (`search_results.adopted`: ties called first, on validation alone).
    The budgets of nets `taught` by a teacher are another exercise: named, not shown."""
    apart = sorted(taught & set(runs["budget"]))
    runs = runs[~runs["budget"].isin(taught)]
    summary = ranked(runs)
    finalists = summary[summary["test_count"] > 0]
    if finalists.empty:
        return []  # no search yet, or one under way that has chosen nothing
    best = finalists.groupby("budget", sort=False).head(1)
    first_seeds = sorted(runs.loc[runs["rung"] == 1, "seed"].unique())
    each_on = f"seed{'s' if len(first_seeds) > 1 else ''} {', '.join(map(str, first_seeds))}"
    shown = pd.DataFrame(
        {
            "budget": finalists["budget"],
            "finalist": [f"`{name}`" for name in finalists["candidate"]],
            "params": finalists["params"].map("{:,}".format),
            "seeds": finalists["seeds"],
            "validation mean": finalists["val_mean"].map("{:.2%}".format),
            "validation min": finalists["val_min"].map("{:.2%}".format),
            "test mean": finalists["test_mean"].map("{:.2%}".format),
            "test min": finalists["test_min"].map("{:.2%}".format),
        }
    )
    chosen = ", ".join(f"`{c}` ({b})" for b, c in zip(best["budget"], best["candidate"]))
    kept = "; ".join(
        f"{budget}: `{name}`, {why}" for budget, (name, why) in adopted(runs, incumbents).items()
    )
    return [
        "## How the recipes were chosen",
        "",
        (
            f"On validation, never on the test set: {runs['candidate'].nunique()} candidates trained on the "
            f"training images but {validation:,} held out (stratified by label, the same images for every "
            f"seed) and were ranked on those: each on {each_on}, then the best of each budget on more seeds "
            f"(successive halving, `python -m mnist_budget.tools.search`; every run in [the search's table]"
            f"({table})). Best by validation mean: {chosen}. Their test accuracy below was read "
            "only after they were chosen, to report them: the choice reads validation alone. Among the "
            "finalists tied with the best on validation (paired over their seeds, within two standard errors "
            "of the per-seed differences), the budget's incumbent (its recipe when the search began) stays; "
            f"without it, the one with the fewest parameters is adopted. Adopted: {kept}. The steps of this report train on all the training images and "
            "are scored on the test set."
            + (
                f" Nets taught by a larger net ({', '.join(apart)}) are another exercise than the budget's: "
                "they are in the search's table, never in this progression."
                if apart
                else ""
            )
        ),
        "",
        shown.to_markdown(index=False),
        "",
    ]


@dataclass(frozen=True)
class Ablation:
    """What the ablation measured (reports/ablation/effects.csv, one row per arm; `step` is
    "" for an arm no step quotes) and on which recipe: its baseline's resolved config."""

    effects: pd.DataFrame
    baseline: dict[str, Any]


def ablation_caveat(results: Results, final: str, ablation: Ablation) -> str:
    """Why the ablation's effects may not be the final recipe's, or "": its baseline is
    another recipe (seeds aside), or it ran before a step of the progression existed (its
    configs then say nothing: `resolve` rewrites them before the arms train again)."""
    differences = params_diff({**results.entries[final], "seeds": []}, {**ablation.baseline, "seeds": []})
    if differences:
        return (
            f"The ablation measured another recipe than `{final}`'s: {'; '.join(differences)}. "
            "Run `dvc repro ablation/dvc.yaml` on this one."
        )
    return unmeasured_text(unmeasured_steps(list(results.entries), final, ablation.effects))


def ablation_evidence(results: Results, ablation: Ablation, caveat: str) -> dict[str, str]:
    """Step -> the ablation rows of the idea it adds, quoted; `caveat` first on every one
    (why the ablation's effects may not be the final recipe's: `ablation_caveat`)."""
    unknown = sorted(set(ablation.effects["step"]) - set(results.entries) - {""})
    if unknown:
        raise StageError(
            f"reports/ablation/effects.csv: the ablation's arms name the step {unknown[0]!r}, which "
            "params.yaml does not have; rename it in ablation/params.yaml `arms`, then `dvc repro`"
        )
    caveat = f"({caveat}) " if caveat else ""
    evidence: dict[str, list[str]] = {}
    for row in ablation.effects.to_dict("records"):
        if row["step"]:
            evidence.setdefault(row["step"], []).append(f"Ablation: {row_sentence(row)}")
    return {step: caveat + " ".join(rows) for step, rows in evidence.items()}


def evidence_section(results: Results, ablation: Ablation, caveat: str) -> list[str]:
    """One row per idea the ablation measured: what adding it did in the progression (the
    step's seeds) and what taking it out of the final recipe did (the ablation's)."""
    names, rows = list(results.entries), []
    for row in ablation.effects.to_dict("records"):
        step, added = row["step"], ""
        if step and names.index(step) > 0:
            added = effect_text(effect(results.metrics[step], results.metrics[names[names.index(step) - 1]]))
        rows.append(
            {
                "idea": row["idea"],
                "step": f"`{step}`" if step else "(none)",
                "added in the progression (vs the step before)": added,
                "ablation: arm − final recipe": row_interval(row),
                "n": row["n"],
                "verdict (ablation)": row["verdict"],
            }
        )
    return [
        "## What each idea buys",
        "",
        (
            "Each idea measured twice: as the progression adds it (the step against the one before, "
            "on the step's seeds) and as the ablation takes it out of the final recipe (or puts it in), "
            f"on the ablation's paired seeds ([the ablation's report](ablation/report.md)). Effects in "
            f"pp of final-epoch test accuracy, with {CONFIDENCE:.0%} intervals; the verdict is the "
            "ablation's, which has the seeds to resolve it."
        ),
        "",
        pd.DataFrame(rows).to_markdown(index=False),
        "",
        *([caveat, ""] if caveat else []),
    ]


def not_taken_section(results: Results, final: str, ablation: Ablation, without: dict[str, int]) -> list[str]:
    """Classic ideas that are not a step: the ablation's `adds` rows, and the parts the
    skeleton already has, with the final net's parameter count without each (`without`,
    counted by `resolve`)."""
    budget = results.target.max_params
    lines = [
        f"- {row_sentence(row)}" for row in ablation.effects.to_dict("records") if row["change"] == "adds"
    ]
    for part, total in without.items():
        fits = "within" if total <= budget else f"{total - budget:,} over"
        lines.append(
            f"- Without {part}, `{final}` would have {total:,} parameters against its "
            f"{results.metrics[final]['params_total']:,}: {fits} the budget of {budget:,}. "
            f"The net has it from `{next(iter(results.entries))}` on, so no step adds it."
        )
    if not lines:
        return []
    return ["## Ideas that are not a step", "", *lines, ""]


def final_model_section(results: Results, final: str) -> list[str]:
    return [
        f"## The final model `{final}`",
        "",
        results.layout.summary(final).read_text().strip(),
        "",
        f"![Confusion matrix of {final}](figures/confusion.png)",
        "",
        f"![Misclassified test digits of {final}](figures/misclassified.png)",
        "",
    ]


def final_step(results: Results, headline: dict[str, Any] | None) -> str:
    """The headline's final step, or without a headline the last step."""
    return headline["final"]["step"] if headline else list(results.entries)[-1]


def write_report(
    results: Results,
    headline: dict[str, Any] | None,
    search: tuple[pd.DataFrame, int, str] | None = None,
    ablation: Ablation | None = None,
    without: dict[str, int] | None = None,
) -> str:
    """The report; `search`: the runs of the search that chose the recipes, its held-out
    image count and its table (relative to reports/), if it ran;
    `ablation`: what it measured, quoted in each step's Analysis; `without`: the final net's
    parameter count without each part (params' `without`, counted by `resolve`)."""
    layout, names = results.layout, list(results.entries)
    final = final_step(results, headline)
    caveat = ablation_caveat(results, final, ablation) if ablation is not None else ""
    evidence = ablation_evidence(results, ablation, caveat) if ablation is not None else {}
    title = "the progression" if layout.name == MAIN else f"the `{layout.name}` pipeline"
    out = [f"# MNIST under budget: {title}", "", *headline_section(results, final, headline)]
    out += [
        "## The progression",
        "",
        progression_table(results, names),
        "",
        (
            "\\* best epoch selected on the test set: shown for comparison with notebooks that report it, "
            "never as the result. Parameters are trainable plus non-trainable (batch-norm running mean "
            "and variance, as Keras counts them)."
        ),
        "",
        "![Test accuracy per epoch](figures/accuracy.png)",
        "",
        "![Train and test loss](figures/loss.png)",
        "",
        "![Parameters against final test accuracy](figures/params_vs_accuracy.png)",
        "",
    ]
    if ablation is not None:
        out += evidence_section(results, ablation, caveat)
    previous = None
    for name in names:
        out += step_section(results, name, previous, evidence.get(name, ""))
        previous = name
    if ablation is not None:
        out += not_taken_section(results, final, ablation, without or {})
    if search is not None:
        out += search_section(*search)
    out += final_model_section(results, final)
    out += reproduce_section(layout)
    return "\n".join(out)


def figure_files(results: Results, final: str) -> dict[Path, bytes]:
    """The report's figures, as reports/figures/<name>.png -> PNG bytes."""
    layout, metrics, target = results.layout, results.metrics, results.target
    points = {name: (m["params_total"], m["test_accuracy"]) for name, m in metrics.items()}  # over seeds
    confusion = pd.read_csv(layout.confusion(final))
    wrong = confusion.index[confusion["actual"] != confusion["predicted"]][:MISCLASSIFIED_SHOWN]
    # the verified IDX file prepare reads, as numpy: the report needs no torch
    images = read_idx(RAW_DIR / MNIST_FILES["test_images"], ndim=3)[list(wrong)]
    return {
        layout.figures / "accuracy.png": figures.accuracy_curves(results.histories, target.test_accuracy),
        layout.figures / "loss.png": figures.loss_curves(
            results.histories, {name: results.entries[name]["label_smoothing"] for name in results.histories}
        ),
        layout.figures / "params_vs_accuracy.png": figures.params_vs_accuracy(points, target),
        layout.figures / "confusion.png": figures.confusion_matrix(confusion, final),
        layout.figures / "misclassified.png": figures.misclassified_grid(images, confusion.loc[wrong], final),
    }
