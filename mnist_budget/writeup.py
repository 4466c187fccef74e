"""What every pipeline's report shares: the trained steps' results loaded once, the
progression table, each step's Target / Result / Analysis, and the tables DVC reads."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mnist_budget.atomic_files import atomic_path, read_json
from mnist_budget.layout import MAIN, Layout
from mnist_budget.scoring import LAST_EPOCHS, load_history
from mnist_budget.step_config import Target

GAP_OVERFIT = 0.005  # train above test by more than 0.5 pp: over-fitting
GAP_UNDERFIT = -0.002  # train (augmented, in train mode) below test: room to fit more


@dataclass(frozen=True)
class Results:
    """A pipeline's trained steps, in progression order: each step's resolved config
    (compared between steps), metrics and per-epoch history."""

    layout: Layout
    target: Target
    entries: dict[str, dict[str, Any]]
    metrics: dict[str, dict[str, Any]]
    histories: dict[str, pd.DataFrame]

    @classmethod
    def load(cls, layout: Layout, target: Target, names: list[str]) -> Results:
        return cls(
            layout,
            target,
            {name: read_json(layout.config(name)) for name in names},
            {name: read_json(layout.metrics(name)) for name in names},
            {name: load_history(layout.history(name)) for name in names},
        )


def flatten(entry: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def params_diff(before: dict, after: dict) -> list[str]:
    """`key`: old → new for every recipe value that differs (descriptions aside)."""
    old, new = flatten(before), flatten(after)
    keys = [*old, *(k for k in new if k not in old)]
    return [
        f"`{key}`: {_short(old.get(key, '(unset)'))} → {_short(new.get(key, '(unset)'))}"
        for key in keys
        if key != "description" and old.get(key) != new.get(key)
    ]


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def fit_sentence(m: dict) -> str:
    gap = m["train_accuracy"] - m["test_accuracy"]
    if gap > GAP_OVERFIT:
        return f"Over-fitting: train accuracy is above test by {gap * 100:.2f} pp."
    if gap < GAP_UNDERFIT:
        return (
            f"Train accuracy (measured while training, on augmented images in train mode) is "
            f"{-gap * 100:.2f} pp below test: no over-fitting, and room to fit the training set better."
        )
    return f"Train and test accuracy agree within {abs(gap) * 100:.2f} pp: no over-fitting."


def target_sentence(m: dict, target: Target) -> str:
    if m["first_epoch_at_target"] is None:
        return (
            f"Never reached {target.test_accuracy:.2%} "
            f"(best {m['best_test_accuracy']:.2%} at epoch {m['best_epoch']})."
        )
    held = "and held it to the end" if m["held_target_after_first"] else "but fell below it in later epochs"
    return f"Reached {target.test_accuracy:.2%} first at epoch {m['first_epoch_at_target']}, {held}."


def analysis(results: Results, name: str, previous: str | None) -> str:
    """Sentences generated from the numbers: fit, stability, target, change vs previous."""
    m = results.metrics[name]
    tail = results.histories[name]["test_accuracy"].iloc[-LAST_EPOCHS:]
    lines = [
        fit_sentence(m),
        (
            f"Over the last {len(tail)} epochs test accuracy moved within "
            f"{(tail.max() - tail.min()) * 100:.2f} pp (lowest {m[f'min_test_accuracy_last_{LAST_EPOCHS}']:.2%})."
        ),
        target_sentence(m, results.target),
    ]
    if previous:
        before = results.metrics[previous]
        changes = "; ".join(params_diff(results.entries[previous], results.entries[name]))
        lines.append(f"Changed against `{previous}`: {changes or 'nothing but the description'}.")
        lines.append(
            f"Effect: final test accuracy {(m['test_accuracy'] - before['test_accuracy']) * 100:+.2f} pp, "
            f"parameters {m['params_total'] - before['params_total']:+,}."
        )
    return " ".join(lines)


def progression_table(results: Results, names: list[str]) -> str:
    rows = [
        {
            "step": f"`{name}`",
            "params": f"{m['params_total']:,}",
            "epochs": m["epochs"],
            "final test acc": f"{m['test_accuracy']:.2%}",
            "best test acc @epoch*": f"{m['best_test_accuracy']:.2%} @{m['best_epoch']}",
            "train acc": f"{m['train_accuracy']:.2%}",
            "accuracy ≥ target": mark(m["meets"]["accuracy"]),
            "params ≤ budget": mark(m["meets"]["params"]),
            "epochs ≤ budget": mark(m["meets"]["epochs"]),
        }
        for name, m in ((n, results.metrics[n]) for n in names)
    ]
    return pd.DataFrame(rows).to_markdown(index=False)


def step_section(results: Results, name: str, previous: str | None) -> list[str]:
    m = results.metrics[name]
    return [
        f"### `{name}`",
        "",
        f"**Target.** {results.entries[name]['description']}",
        "",
        (
            f"**Result.** {m['params_total']:,} parameters ({m['params_trainable']:,} trainable, "
            f"{m['params_non_trainable']:,} non-trainable), {m['macs']:,} multiply-accumulates per image, "
            f"receptive field {m['receptive_field']} before global pooling. Final test accuracy "
            f"**{m['test_accuracy']:.2%}** after {m['epochs']} epochs (best {m['best_test_accuracy']:.2%} at "
            f"epoch {m['best_epoch']}, selected on the test set); train accuracy {m['train_accuracy']:.2%}. "
            f"Layer table: [summary.md](steps/{name}/summary.md)."
        ),
        "",
        f"**Analysis.** {analysis(results, name, previous)}",
        "",
    ]


def reproduce_section(layout: Layout) -> list[str]:
    pipeline = "" if layout.name == MAIN else f" {layout.name}/dvc.yaml"
    return [
        "## Reproduce",
        "",
        "```",
        "pip install -r requirements.txt",
        f"MNIST_MIRROR=/path/to/mnist dvc repro{pipeline}   # or without MNIST_MIRROR, online",
        "dvc metrics show && dvc plots show",
        "```",
        "",
    ]


def write_tables(results: Results, final: str) -> None:
    """summary.csv (every step's metrics, flat) and the series `dvc plots show` draws: all
    steps' curves in one long table, and the final step's confusion pairs."""
    layout, target = results.layout, results.target
    summary = pd.DataFrame([{"step": n, **flatten(m)} for n, m in results.metrics.items()])
    with atomic_path(layout.reports / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    curves = pd.concat([h.assign(step=n, target=target.test_accuracy) for n, h in results.histories.items()])
    with atomic_path(layout.plots / "curves.csv") as tmp:
        curves.to_csv(tmp, index=False)
    with atomic_path(layout.plots / "confusion_final.csv") as tmp:
        shutil.copyfile(layout.confusion(final), tmp)
