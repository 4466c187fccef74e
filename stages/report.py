"""Stage `report`: the progression written up, every number read from the stage outputs.

    python -m stages.report [--pipeline NAME]

Writes reports/report.md (headline, table, then Target / Result / Analysis per step),
summary.csv, the figures it embeds, and reports/plots/ (the series `dvc plots show` draws).
"""

from __future__ import annotations

import shutil
import sys

import pandas as pd
import torch

from stages import figures, systems
from stages.config import StepConfig, Target, exit_on_params_error, load_params, load_target, pipeline_parser
from stages.evaluate import LAST_EPOCHS
from stages.files import atomic_path, read_json, write_text
from stages.nets import build_net, count_params
from stages.paths import MAIN, MAIN_LAYOUT, PREPARED_TENSORS, Layout

GAP_OVERFIT = 0.005  # train above test by more than 0.5 pp: over-fitting
GAP_UNDERFIT = -0.002  # train (augmented, in train mode) below test: room to fit more
MISCLASSIFIED_SHOWN = 24


def flatten(entry: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in entry.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _short(value) -> str:
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


def analysis(m: dict, history: pd.DataFrame, entry: dict, previous: tuple | None, target: Target) -> str:
    """Sentences generated from the numbers: fit, stability, target, change vs previous."""
    tail = history["test_accuracy"].iloc[-LAST_EPOCHS:]
    lines = [
        fit_sentence(m),
        (
            f"Over the last {len(tail)} epochs test accuracy moved within "
            f"{(tail.max() - tail.min()) * 100:.2f} pp (lowest {m['min_test_accuracy_last_3']:.2%})."
        ),
        target_sentence(m, target),
    ]
    if previous:
        prev_name, prev_entry, prev_metrics = previous
        changes = "; ".join(params_diff(prev_entry, entry)) or "nothing but the description"
        lines.append(f"Changed against `{prev_name}`: {changes}.")
        lines.append(
            f"Effect: final test accuracy {(m['test_accuracy'] - prev_metrics['test_accuracy']) * 100:+.2f} pp, "
            f"parameters {m['params_total'] - prev_metrics['params_total']:+,}."
        )
    return " ".join(lines)


def progression_table(names: list[str], metrics: dict[str, dict]) -> str:
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
        for name, m in ((n, metrics[n]) for n in names)
    ]
    return pd.DataFrame(rows).to_markdown(index=False)


def headline_table(headline: dict, metrics: dict[str, dict], target: Target) -> str:
    """The final and the tiny model over seeds: the numbers the README points to."""
    rows = []
    for role, h in headline.items():
        m = metrics[h["step"]]
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
                "mean ≥ target": mark(h["mean"] >= target.test_accuracy),
                "params ≤ budget": mark(m["meets"]["params"]),
                "epochs ≤ budget": mark(m["meets"]["epochs"]),
            }
        )
    return pd.DataFrame(rows).to_markdown(index=False)


def headline_section(final: str, headline: dict | None, metrics: dict, target: Target) -> list[str]:
    m = metrics[final]
    verdict = "meets" if m["meets"]["all"] else "does not meet"
    out = [
        (
            f"Target: **{target.test_accuracy:.2%}** final-epoch test accuracy with at most "
            f"**{target.max_params:,}** parameters in at most **{target.max_epochs}** epochs."
        ),
        "",
    ]
    if headline is None:
        return out + [
            (
                f"**Last step `{final}`: {m['params_total']:,} parameters, {m['epochs']} epochs, "
                f"{m['test_accuracy']:.2%} final-epoch test accuracy: it {verdict} the target and the budget.**"
            ),
            "",
        ]
    h = headline["final"]
    all_meet = h["mean"] >= target.test_accuracy and m["meets"]["params"] and m["meets"]["epochs"]
    return out + [
        (
            f"**Final model `{final}`: {m['params_total']:,} parameters, {m['epochs']} epochs, "
            f"{h['mean']:.2%} mean final-epoch test accuracy over seeds {', '.join(map(str, h['seeds']))} "
            f"(min {h['min']:.2%}, std {h['std'] * 100:.3f} pp): it "
            f"{'meets' if all_meet else 'does not meet'} the target and the budget.**"
        ),
        "",
        headline_table(headline, metrics, target),
        "",
    ]


def step_section(name, entry, m, history, previous, target) -> list[str]:
    return [
        f"### `{name}`",
        "",
        f"**Target.** {entry['description']}",
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
        f"**Analysis.** {analysis(m, history, entry, previous, target)}",
        "",
    ]


def final_model_section(final: str, layout: Layout) -> list[str]:
    return [
        f"## The final model `{final}`",
        "",
        layout.summary(final).read_text().strip(),
        "",
        f"![Confusion matrix of {final}](figures/confusion.png)",
        "",
        f"![Misclassified test digits of {final}](figures/misclassified.png)",
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


def write_report(layout, steps, metrics, histories, headline, target) -> str:
    names = list(steps)
    final = headline["final"]["step"] if headline else names[-1]
    title = "the progression" if layout.name == MAIN else f"the `{layout.name}` pipeline"
    out = [f"# MNIST under budget: {title}", "", *headline_section(final, headline, metrics, target)]
    out += [
        "## The progression",
        "",
        progression_table(names, metrics),
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
    previous = None
    for name in names:
        out += step_section(name, steps[name], metrics[name], histories[name], previous, target)
        previous = (name, steps[name], metrics[name])
    out += final_model_section(final, layout)
    out += reproduce_section(layout)
    return "\n".join(out)


def gpu_step_section(name: str, step: StepConfig, layout: Layout) -> list[str]:
    counts = count_params(build_net(step))
    return [
        f"### `{name}` (config only: needs a GPU)",
        "",
        f"**Target.** {step.description}",
        "",
        (
            f"**Result.** Not trained here: {counts['params_total']:,} parameters "
            f"({counts['params_trainable']:,} trainable), {step.epochs} epochs, far too slow for "
            f"a laptop CPU. On a GPU machine, move it from `gpu_steps` to `steps` in "
            f"`{layout.params}` and run `dvc repro --glob '{layout.name}/dvc.yaml:*@{name}'`."
        ),
        "",
    ]


def system_section(system, steps, gpu_steps, metrics, histories, target, layout) -> list[str]:
    """One write-up: its progression table, curves, then each step (changes within the system)."""
    trained = [name for name in system.claims if name in metrics]
    out = [f"## {system.title}", "", f"**Why a reproduction may differ.** {system.differs}", ""]
    if trained:
        out += [
            progression_table(trained, metrics),
            "",
            f"![Test accuracy per epoch, {system.name}](figures/accuracy-{system.name}.png)",
            "",
        ]
    previous = None
    for name in system.claims:
        if name in gpu_steps:
            out += gpu_step_section(name, gpu_steps[name], layout)
            continue
        out += step_section(name, steps[name], metrics[name], histories[name], previous, target)
        previous = (name, steps[name], metrics[name])
    return out


def write_systems_report(layout, found, gpu_steps, steps, metrics, histories, target) -> str:
    """The seed systems: the comparison with every write-up first, then each system."""
    rows = systems.comparison_rows(found, gpu_steps, metrics, histories)
    out = [
        f"# MNIST under budget: the `{layout.name}` pipeline",
        "",
        (
            f"Each write-up this exercise is known from, rebuilt as a progression of steps in "
            f"`{layout.params}` (the same architecture family and parameter count within "
            f"{systems.PARAMS_TOLERANCE:.0%}, the same optimizer, schedule, batch size, epochs and "
            "augmentation where the write-up gives them), trained on real MNIST and compared "
            "with what it claimed. The progression tables mark each step against one common "
            f"target: {target.test_accuracy:.2%} final-epoch test accuracy with at most "
            f"{target.max_params:,} parameters in at most {target.max_epochs} epochs."
        ),
        "",
        "## Comparison with the write-ups",
        "",
        systems.comparison_table(rows),
        "",
        (
            "Reproduced parameters are counted the way the write-up counted them: Keras totals "
            "include batch norm's running mean and variance, torchsummary counts only weights. "
            "Verdicts compare like with like: a claim read at the best epoch is compared with the "
            "best epoch here (\\* selected on the test set, as the write-up did), a claim at epoch "
            f"10 with epoch 10. Within {systems.ACCURACY_TOLERANCE * 100:.1f} pp, about the "
            "seed-to-seed spread of one recipe, counts as a match; every run here is one seed."
        ),
        "",
        "![Claimed against reproduced accuracy](figures/claims.png)",
        "",
    ]
    for system in found.values():
        out += system_section(system, steps, gpu_steps, metrics, histories, target, layout)
    out += reproduce_section(layout)
    return "\n".join(out)


def write_systems_figures(layout, found, metrics, histories, target) -> None:
    for system in found.values():
        trained = {name: histories[name] for name in system.claims if name in histories}
        if trained:
            figures.accuracy_curves(
                trained, target.test_accuracy, layout.figures / f"accuracy-{system.name}.png"
            )
    points = systems.accuracy_claims(found, metrics, histories)
    figures.claims_vs_reproduced(points, target.test_accuracy, layout.figures / "claims.png")


def write_figures(layout, steps, metrics, histories, final, params, target) -> None:
    figures.accuracy_curves(histories, target.test_accuracy, layout.figures / "accuracy.png")
    figures.loss_curves(histories, layout.figures / "loss.png")
    points = {name: (metrics[name]["params_total"], metrics[name]["test_accuracy"]) for name in steps}
    figures.params_vs_accuracy(
        points, params.get("public_results", []), target, layout.figures / "params_vs_accuracy.png"
    )
    confusion = pd.read_csv(layout.confusion(final))
    figures.confusion_matrix(confusion, final, layout.figures / "confusion.png")
    wrong = confusion.index[confusion["actual"] != confusion["predicted"]][:MISCLASSIFIED_SHOWN]
    images = torch.load(PREPARED_TENSORS)["test_images"][list(wrong)]
    figures.misclassified_grid(images, confusion.loc[wrong], final, layout.figures / "misclassified.png")


def write_plot_data(layout: Layout, final: str, histories: dict[str, pd.DataFrame], target: Target) -> None:
    """Series for `dvc plots show`: all steps' curves in one long table, final confusion."""
    curves = pd.concat([h.assign(step=n, target=target.test_accuracy) for n, h in histories.items()])
    with atomic_path(layout.plots / "curves.csv") as tmp:
        curves.drop(columns="seconds").to_csv(tmp, index=False)
    with atomic_path(layout.plots / "confusion_final.csv") as tmp:
        shutil.copyfile(layout.confusion(final), tmp)


@exit_on_params_error
def main(layout: Layout = MAIN_LAYOUT) -> None:
    params = load_params(layout.params)
    target = load_target(params)
    steps = params["steps"]
    metrics = {name: read_json(layout.metrics(name)) for name in steps}
    histories = {name: pd.read_csv(layout.history(name)) for name in steps}
    headline = read_json(layout.headline) if "headline" in params else None
    final = headline["final"]["step"] if headline else list(steps)[-1]
    if "systems" in params:
        # validated once: load_systems parses every step and gpu step
        found, gpu_steps = systems.load_systems(params), systems.load_gpu_steps(params)
        write_systems_figures(layout, found, metrics, histories, target)
        report = write_systems_report(layout, found, gpu_steps, steps, metrics, histories, target)
    else:
        write_figures(layout, steps, metrics, histories, final, params, target)
        report = write_report(layout, steps, metrics, histories, headline, target)
    write_plot_data(layout, final, histories, target)
    summary = pd.DataFrame([{"step": n, **flatten(metrics[n])} for n in steps])
    with atomic_path(layout.reports / "summary.csv") as tmp:
        summary.to_csv(tmp, index=False)
    write_text(layout.reports / "report.md", report)
    print(f"report: {len(steps)} steps -> {layout.reports / 'report.md'}", file=sys.stderr)


if __name__ == "__main__":
    main(Layout.of(pipeline_parser(__doc__).parse_args().pipeline))
