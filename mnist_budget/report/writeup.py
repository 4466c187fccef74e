"""What every pipeline's report shares: the trained steps' results loaded once, the
progression table, each step's Target / Result / Analysis, and the tables DVC reads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mnist_budget.base.atomic_files import json_bytes, read_json, write_all
from mnist_budget.base.layout import MAIN, Layout
from mnist_budget.config.optim_spec import steered_by_test
from mnist_budget.config.step_config import Target
from mnist_budget.report.history import LAST_EPOCHS, load_history, mean_curve, per_seed
from mnist_budget.report.paired import CONFIDENCE, Effect, paired_effect, points
from mnist_budget.report.plot_templates import accuracy_template, loss_template, lr_template

GAP_OVERFIT = 0.005  # train above test by more than 0.5 pp: over-fitting
GAP_UNDERFIT = -0.002  # train (augmented, in train mode) below test: room to fit more


@dataclass(frozen=True)
class Results:
    """A pipeline's trained steps, in progression order: each step's resolved config
    (compared between steps), description (the report's Target), metrics and per-epoch
    history (every seed's rows, checked against the config's seeds)."""

    layout: Layout
    target: Target
    entries: dict[str, dict[str, Any]]
    descriptions: dict[str, str]
    metrics: dict[str, dict[str, Any]]
    histories: dict[str, pd.DataFrame]

    @classmethod
    def load(cls, layout: Layout) -> Results:
        descriptions = read_json(layout.resolved)["steps"]  # in progression order
        entries = {name: read_json(layout.config(name)) for name in descriptions}
        return cls(
            layout,
            Target(**read_json(layout.target)),
            entries,
            descriptions,
            {name: read_json(layout.metrics(name)) for name in entries},
            {name: load_history(layout, name, tuple(entry["seeds"])) for name, entry in entries.items()},
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
    """`key`: old → new for every value of two resolved configs that differs."""
    old, new = flatten(before), flatten(after)
    keys = [*old, *(k for k in new if k not in old)]
    return [
        f"`{key}`: {_short(old.get(key, '(unset)'))} → {_short(new.get(key, '(unset)'))}"
        for key in keys
        if old.get(key) != new.get(key)
    ]


def mark(ok: bool) -> str:
    return "✅" if ok else "❌"


def fit_sentence(m: dict) -> str:
    gap = m["train_accuracy"] - m["test_accuracy"]["mean"]
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


def seeds_text(seeds: list[int]) -> str:
    return f"seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


def effect(after: dict, before: dict) -> Effect:
    """The change in final test accuracy from step `before` to step `after` (their metrics),
    paired seed by seed on the seeds both trained."""
    return paired_effect(per_seed(after["test_accuracy"]), per_seed(before["test_accuracy"]))


def effect_text(e: Effect) -> str:
    """`+0.95 ± 0.10 pp` and what it means against the noise."""
    if e.low is None:
        why = f"one seed in common ({e.seeds[0]})" if e.seeds else "no seed in common"
        return f"{points(e.mean)} pp ({why}: no noise estimate)"
    size = f"{points(e.mean)} ± {e.half_width * 100:.2f} pp"
    return size if e.sign else f"{size}, within noise"


def analysis(results: Results, name: str, previous: str | None) -> str:
    """Sentences generated from the numbers: fit, stability, target, change vs previous."""
    m = results.metrics[name]
    tail = mean_curve(results.histories[name])["test_accuracy"].iloc[-LAST_EPOCHS:]
    over = f" (mean of {seeds_text(m['seeds'])})" if len(m["seeds"]) > 1 else ""
    lines = [
        fit_sentence(m),
        (
            f"Over the last {len(tail)} epochs test accuracy{over} moved within "
            f"{(tail.max() - tail.min()) * 100:.2f} pp (lowest {m[f'min_test_accuracy_last_{LAST_EPOCHS}']:.2%})."
        ),
        target_sentence(m, results.target),
    ]
    if previous:
        before = results.metrics[previous]
        changes = "; ".join(params_diff(results.entries[previous], results.entries[name]))
        lines.append(f"Changed against `{previous}`: {changes or 'nothing but the description'}.")
        e = effect(m, before)
        paired = (
            f" ({CONFIDENCE:.0%} interval of the paired difference over {seeds_text(list(e.seeds))})"
            if e.low is not None
            else ""
        )
        lines.append(
            f"Effect: final test accuracy {effect_text(e)}{paired}, "
            f"parameters {m['params_total'] - before['params_total']:+,}."
        )
    return " ".join(lines)


def verdict_columns(meets: dict[str, bool]) -> dict[str, str]:
    """A table's verdict columns: the accuracy on the mean and on every seed, the budget."""
    return {
        "mean ≥ target": mark(meets["accuracy"]),
        "every seed ≥ target": mark(meets["every_seed"]),
        "params ≤ budget": mark(meets["params"]),
        "epochs ≤ budget": mark(meets["epochs"]),
    }


def accuracy_text(accuracy: dict) -> str:
    """`99.45% ± 0.05`: the mean and sample std over seeds (std in pp)."""
    return f"{accuracy['mean']:.2%} ± {accuracy['std'] * 100:.2f}"


def progression_table(results: Results, names: list[str]) -> str:
    rows = []
    for previous, name in zip([None, *names], names):
        m = results.metrics[name]
        steered = " (steered by the test set)" if steered_by_test(results.entries[name]["schedule"]) else ""
        rows.append(
            {
                "step": f"`{name}`{steered}",
                "params": f"{m['params_total']:,}",
                "epochs": m["epochs"],
                "seeds": ", ".join(map(str, m["seeds"])),
                "final test acc (mean ± std)": accuracy_text(m["test_accuracy"]),
                "min": f"{m['test_accuracy']['min']:.2%}",
                "effect vs previous": effect_text(effect(m, results.metrics[previous])) if previous else "",
                "best test acc @epoch*": f"{m['best_test_accuracy']:.2%} @{m['best_epoch']}",
                "train acc": f"{m['train_accuracy']:.2%}",
                **verdict_columns(m["meets"]),
            }
        )
    return pd.DataFrame(rows).to_markdown(index=False)


def step_section(results: Results, name: str, previous: str | None, evidence: str = "") -> list[str]:
    """A step's Target / Result / Analysis; `evidence`: what measured its idea apart (the
    ablation's row), closing the Analysis."""
    m = results.metrics[name]
    accuracy = m["test_accuracy"]
    seeds = ", ".join(f"{a:.2%} (seed {seed})" for seed, a in per_seed(accuracy).items())
    steered = (
        "**Steered by the test set**: its schedule watched the test accuracy (`schedule.watch: test`), "
        "so the test set chose its learning rates and no longer measures it alone. "
        if steered_by_test(results.entries[name]["schedule"])
        else ""
    )
    return [
        f"### `{name}`",
        "",
        f"**Target.** {results.descriptions[name]}",
        "",
        (
            f"**Result.** {steered}{m['params_total']:,} parameters ({m['params_trainable']:,} trainable, "
            f"{m['params_non_trainable']:,} non-trainable), {m['macs']:,} multiply-accumulates per image, "
            f"receptive field {m['receptive_field']} before global pooling. Final test accuracy "
            f"**{accuracy['mean']:.2%}** mean over {seeds_text(m['seeds'])} after {m['epochs']} epochs "
            f"({seeds}; std {accuracy['std'] * 100:.3f} pp); the mean curve's best epoch "
            f"{m['best_test_accuracy']:.2%} at epoch {m['best_epoch']}, selected on the test set; train accuracy "
            f"{m['train_accuracy']:.2%}. "
            f"Layer table: [summary.md](steps/{name}/summary.md)."
        ),
        "",
        f"**Analysis.** {' '.join(filter(None, [analysis(results, name, previous), evidence]))}",
        "",
    ]


def reproduce_section(layout: Layout) -> list[str]:
    pipeline = "" if layout.name == MAIN else f" {layout.name}/dvc.yaml"
    # the main pipeline declares one metrics file, the headline's; the others' are targets
    metrics = "" if layout.name == MAIN else f" {layout.reports}/steps/*/metrics.json"
    return [
        "## Reproduce",
        "",
        "```",
        "pip install -r requirements.txt",
        f"MNIST_MIRROR=/path/to/mnist dvc repro{pipeline}   # or without MNIST_MIRROR, online",
        f"dvc metrics show{metrics} && dvc plots show",
        "```",
        "",
    ]


def table_files(results: Results, final: str) -> dict[Path, bytes]:
    """summary.csv (every step's metrics, flat) and what `dvc plots show` draws: all
    steps' curves (every seed) in one long table, the charts' templates (`plot_templates`),
    and the final step's confusion pairs; as path -> bytes."""
    layout, target = results.layout, results.target
    summary = pd.DataFrame([{"step": n, **flatten(m)} for n, m in results.metrics.items()])
    curves = pd.concat([h.assign(step=n, target=target.test_accuracy) for n, h in results.histories.items()])
    steps, lowest = list(results.histories), float(curves["test_accuracy"].min())
    return {
        layout.reports / "summary.csv": summary.to_csv(index=False).encode(),
        layout.plots / "curves.csv": curves.to_csv(index=False).encode(),
        layout.plots / "accuracy.json": json_bytes(accuracy_template(steps, target.test_accuracy, lowest)),
        layout.plots / "accuracy_zoom.json": json_bytes(accuracy_template(steps, target.test_accuracy)),
        layout.plots / "loss.json": json_bytes(loss_template(steps)),
        layout.plots / "lr.json": json_bytes(lr_template(steps)),
        layout.plots / "confusion_final.csv": layout.confusion(final).read_bytes(),
    }


def replace_report(results: Results, final: str, report: str, figures: dict[Path, bytes]) -> None:
    """report.md, its figures and tables, replaced together: a report that fails keeps the last."""
    layout = results.layout
    write_all(
        {layout.reports / "report.md": report.encode(), **figures, **table_files(results, final)},
        folders=(layout.figures, layout.plots),
    )
