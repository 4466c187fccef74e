"""Stage `report`: the progression written up, every number read from the stage outputs.

Writes reports/report.md (table, then Target / Result / Analysis per step), summary.csv,
the figures it embeds, and reports/plots/ (the series `dvc plots show` draws).
"""

from __future__ import annotations

import shutil
import sys

import pandas as pd

from stages import figures
from stages.config import Target, exit_on_params_error, load_params, load_target
from stages.files import atomic_path, read_json, write_text
from stages.paths import (
    FIGURES_DIR,
    HEADLINE,
    PLOTS_DIR,
    REPORTS_DIR,
    confusion_path,
    history_path,
    metrics_path,
)

GAP_OVERFIT = 0.005  # train above test by more than 0.5 pp: over-fitting
GAP_UNDERFIT = -0.002  # train below test (augmented, in train mode): room to fit more
LAST_EPOCHS = 3


def flatten(entry: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def params_diff(before: dict, after: dict) -> list[str]:
    """`key: old -> new` for every recipe value that differs (descriptions aside)."""
    old, new = flatten(before), flatten(after)
    changes = []
    for key in [*old, *(k for k in new if k not in old)]:
        if key != "description" and old.get(key) != new.get(key):
            changes.append(f"`{key}`: {_short(old.get(key, '(unset)'))} → {_short(new.get(key, '(unset)'))}")
    return changes


def _short(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def pp(fraction: float) -> str:
    return f"{fraction * 100:+.2f} pp"


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def analysis(
    m: dict, history: pd.DataFrame, entry: dict, previous: tuple | None, target: Target
) -> list[str]:
    """Sentences generated from the numbers: fit, stability, target, change vs previous."""
    lines = []
    gap = m["train_accuracy"] - m["test_accuracy"]
    if gap > GAP_OVERFIT:
        lines.append(f"Over-fitting: train accuracy is above test by {gap * 100:.2f} pp.")
    elif gap < GAP_UNDERFIT:
        lines.append(
            f"Train accuracy (measured while training, on augmented images in train mode) is {-gap * 100:.2f} pp below test: "
            "the model is not over-fitting and has room to fit the training set better."
        )
    else:
        lines.append(f"Train and test accuracy agree within {abs(gap) * 100:.2f} pp: no over-fitting.")
    tail = history["test_accuracy"].iloc[-LAST_EPOCHS:]
    lines.append(
        f"Over the last {len(tail)} epochs test accuracy moved within {(tail.max() - tail.min()) * 100:.2f} pp "
        f"(lowest {tail.min():.2%})."
    )
    if m["first_epoch_at_target"] is None:
        lines.append(
            f"Never reached {target.test_accuracy:.2%} (best {m['best_test_accuracy']:.2%} at epoch {m['best_epoch']})."
        )
    else:
        held = (
            "and held it to the end" if m["held_target_after_first"] else "but fell below it in later epochs"
        )
        lines.append(
            f"Reached {target.test_accuracy:.2%} first at epoch {m['first_epoch_at_target']}, {held}."
        )
    if previous:
        prev_name, prev_entry, prev_metrics = previous
        changes = params_diff(prev_entry, entry)
        lines.append(
            f"Changed against `{prev_name}`: " + ("; ".join(changes) or "nothing but the description") + "."
        )
        lines.append(
            f"Effect: final test accuracy {pp(m['test_accuracy'] - prev_metrics['test_accuracy'])}, "
            f"parameters {m['params_total'] - prev_metrics['params_total']:+,}."
        )
    return lines


def progression_table(names: list[str], metrics: dict[str, dict]) -> str:
    rows = []
    for name in names:
        m = metrics[name]
        rows.append(
            {
                "step": f"`{name}`",
                "params": f"{m['params_total']:,}",
                "epochs": m["epochs"],
                "final test acc": f"{m['test_accuracy']:.2%}",
                "best test acc @epoch*": f"{m['best_test_accuracy']:.2%} @{m['best_epoch']}",
                "train acc": f"{m['train_accuracy']:.2%}",
                "accuracy": mark(m["meets"]["accuracy"]),
                "params ≤ budget": mark(m["meets"]["params"]),
                "epochs ≤ budget": mark(m["meets"]["epochs"]),
            }
        )
    return pd.DataFrame(rows).to_markdown(index=False)


def headline_lines(headline: dict, metrics: dict[str, dict], target: Target) -> list[str]:
    """The final and the tiny model over seeds: the numbers the README quotes."""
    rows = []
    for role, h in headline.items():
        m = metrics[h["step"]]
        rows.append(
            {
                "model": f"{role}: `{h['step']}`",
                "params": f"{h['params_total']:,}",
                "epochs": h["epochs"],
                "seeds": ", ".join(map(str, h["seeds"])),
                "final test acc per seed": ", ".join(f"{a:.2%}" for a in h["test_accuracies"]),
                "mean": f"**{h['mean']:.2%}**",
                "min": f"{h['min']:.2%}",
                "std": f"{h['std'] * 100:.3f} pp",
                "mean ≥ target": mark(h["mean"] >= target.test_accuracy),
                "params ≤ budget": mark(m["meets"]["params"]),
                "epochs ≤ budget": mark(m["meets"]["epochs"]),
            }
        )
    return [pd.DataFrame(rows).to_markdown(index=False), ""]


def write_report(names, steps, metrics, histories, headline: dict, target: Target) -> str:
    final = headline["final"]["step"]
    m = metrics[final]
    verdict = "meets" if m["meets"]["all"] else "does not meet"
    out = [
        "# MNIST under budget: the progression",
        "",
        (
            f"Target: **{target.test_accuracy:.2%}** final-epoch test accuracy with at most "
            f"**{target.max_params:,}** parameters in at most **{target.max_epochs}** epochs."
        ),
        "",
        (
            f"**Final step `{final}`: {m['params_total']:,} parameters, {m['epochs']} epochs, "
            f"{m['test_accuracy']:.2%} final-epoch test accuracy with seed {headline['final']['seeds'][0]}, "
            f"{headline['final']['mean']:.2%} mean over seeds {headline['final']['seeds']}: "
            f"its own run {verdict} the target and the budget.**"
        ),
        "",
        *headline_lines(headline, metrics, target),
        "## The progression",
        "",
        progression_table(names, metrics),
        "",
        (
            "\\* best epoch selected on the test set: shown for comparison with notebooks that "
            "report it, never as the result. Parameters are trainable plus non-trainable "
            "(batch-norm running mean and variance)."
        ),
        "",
        "![Test accuracy per epoch](figures/accuracy.png)",
        "",
        "![Train and test loss](figures/loss.png)",
        "",
    ]
    previous = None
    for name in names:
        mm = metrics[name]
        out += [
            f"### `{name}`",
            "",
            f"**Target.** {steps[name]['description']}",
            "",
            (
                f"**Result.** {mm['params_total']:,} parameters ({mm['params_trainable']:,} trainable, "
                f"{mm['params_non_trainable']:,} non-trainable), {mm['macs']:,} MACs per image, "
                f"receptive field {mm['receptive_field']}. Final test accuracy **{mm['test_accuracy']:.2%}** "
                f"after {mm['epochs']} epochs (best {mm['best_test_accuracy']:.2%} at epoch {mm['best_epoch']}, "
                f"selected on the test set); train accuracy {mm['train_accuracy']:.2%}. "
                f"Layer table: [summary](steps/{name}/summary.md)."
            ),
            "",
            "**Analysis.** " + " ".join(analysis(mm, histories[name], steps[name], previous, target)),
            "",
        ]
        previous = (name, steps[name], mm)
    out += [
        "## Reproduce",
        "",
        "```",
        "pip install -r requirements.txt",
        "MNIST_MIRROR=/path/to/mnist dvc repro   # or plain `dvc repro` online",
        "dvc metrics show && dvc plots show",
        "```",
        "",
    ]
    return "\n".join(out)


def write_plot_data(final: str, histories: dict[str, pd.DataFrame], target: Target) -> None:
    """Series for `dvc plots show`: all steps' curves in one long table, final confusion."""
    curves = pd.concat([h.assign(step=n, target=target.test_accuracy) for n, h in histories.items()])
    with atomic_path(PLOTS_DIR / "curves.csv") as tmp:
        curves.drop(columns="seconds").to_csv(tmp, index=False)
    with atomic_path(PLOTS_DIR / "confusion_final.csv") as tmp:
        shutil.copyfile(confusion_path(final), tmp)


@exit_on_params_error
def main() -> None:
    params = load_params()
    target = load_target(params)
    steps = params["steps"]
    names = list(steps)
    metrics = {name: read_json(metrics_path(name)) for name in names}
    histories = {name: pd.read_csv(history_path(name)) for name in names}
    figures.accuracy_curves(histories, target.test_accuracy, FIGURES_DIR / "accuracy.png")
    figures.loss_curves(histories, FIGURES_DIR / "loss.png")
    headline = read_json(HEADLINE)
    write_plot_data(headline["final"]["step"], histories, target)
    summary = pd.DataFrame([{"step": n, **flatten(metrics[n])} for n in names])
    with atomic_path(REPORTS_DIR / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    write_text(REPORTS_DIR / "report.md", write_report(names, steps, metrics, histories, headline, target))
    print(f"report: {len(names)} steps -> {REPORTS_DIR / 'report.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
