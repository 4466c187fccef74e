"""Matplotlib figures for the report (PNG, readable on GitHub)."""

from __future__ import annotations

import io

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd

from mnist_budget.config.step_config import Target
from mnist_budget.report.ablation import arm_label
from mnist_budget.report.history import mean_curve
from mnist_budget.report.palette import step_colours

DPI = 120


def _png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes: the stage writes every output at once (`write_all`)."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=DPI, format="png")
    plt.close(fig)
    return buffer.getvalue()


def accuracy_curves(histories: dict[str, pd.DataFrame], target: float) -> bytes:
    return _png(accuracy_figure(histories, target))


def accuracy_figure(histories: dict[str, pd.DataFrame], target: float) -> plt.Figure:
    """Test accuracy per epoch of every step: the mean over its seeds, a band from the
    lowest to the highest seed. Left, every epoch on an axis that holds every seed's value;
    right, the same zoomed to where every seed's final epoch shows, saying that lower values
    (the first epochs) run off its bottom."""
    fig, (whole, zoom) = plt.subplots(1, 2, figsize=(11, 4.5), width_ratios=(2, 3))
    colours = step_colours(histories)
    lowest, lowest_final = target, target
    for name, history in histories.items():
        by_epoch = history.groupby("epoch")["test_accuracy"]
        mean, low, high = (by_epoch.agg(how) * 100 for how in ("mean", "min", "max"))
        for ax in (whole, zoom):
            ax.plot(mean.index, mean, marker="o", markersize=3, color=colours[name], label=name)
            ax.fill_between(mean.index, low, high, color=colours[name], alpha=0.15, linewidth=0)
        lowest = min(lowest, low.min() / 100)
        lowest_final = min(lowest_final, low.iloc[-1] / 100)
    whole.set_ylim(lowest * 100 - 0.5, 100)
    zoom.set_ylim(max(lowest_final * 100 - 0.3, 90), 100)
    for ax in (whole, zoom):
        ax.axhline(target * 100, color="black", linestyle="--", linewidth=1, label=f"target {target:.2%}")
        ax.annotate(
            f"target {target:.2%}", (0, target * 100), xycoords=ax.get_yaxis_transform(),
            xytext=(4, 3), textcoords="offset points", fontsize=8, annotation_clip=True,  # off the zoom: not drawn
        )  # fmt: skip
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    whole.set_ylabel("test accuracy (%)")
    whole.set_title("Every epoch", fontsize=10)
    zoom.set_title(f"Zoom on {zoom.get_ylim()[0]:.1f}-100%: lower values run off the bottom", fontsize=10)
    zoom.legend(loc="lower right", fontsize=8)
    fig.suptitle("Test accuracy per epoch: mean over seeds, band from the lowest to the highest seed")
    return fig


def claims_vs_reproduced(points: list[tuple[str, float, list[float]]], target: float) -> bytes:
    return _png(claims_figure(points, target))


def claims_figure(points: list[tuple[str, float, list[float]]], target: float) -> plt.Figure:
    """Each write-up's claimed test accuracy (gray square) and this project's runs read the
    same way: every seed (small blue dot) and their mean (large blue dot), one row per claim."""
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(points) + 1.6))
    for row, (label, claimed, seeds) in enumerate(points):
        mean = sum(seeds) / len(seeds) * 100
        ax.plot([claimed * 100, mean], [row, row], color="lightgray", zorder=1)
        ax.scatter(
            claimed * 100, row, marker="s", color="tab:gray", zorder=2, label="claimed" if row == 0 else None
        )
        ax.scatter(
            [value * 100 for value in seeds],
            [row] * len(seeds),
            s=10,
            color="tab:blue",
            alpha=0.6,
            zorder=3,
            label="each seed here" if row == 0 else None,
        )
        ax.scatter(mean, row, color="tab:blue", zorder=4, label="mean over seeds" if row == 0 else None)
    ax.axvline(target * 100, color="black", linestyle="--", linewidth=1, label=f"target {target:.2%}")
    ax.set_yticks(range(len(points)), [label for label, _, _ in points], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy (%), read as the write-up read it (final, best or a given epoch)")
    ax.set_title("Claimed against reproduced test accuracy")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    return fig


def loss_curves(histories: dict[str, pd.DataFrame], label_smoothing: dict[str, float]) -> bytes:
    return _png(loss_figure(histories, label_smoothing))


def loss_figure(histories: dict[str, pd.DataFrame], label_smoothing: dict[str, float]) -> plt.Figure:
    """Train (dashed) and test (solid) loss per epoch, mean over seeds, log scale. The train
    loss is what the step minimises: on augmented images, with its label smoothing, which
    keeps it far above a smoothed-free test loss; the legend says which steps smooth."""
    fig, ax = plt.subplots(figsize=(11, 5))
    colours = step_colours(histories)
    for name, history in ((n, mean_curve(h)) for n, h in histories.items()):
        smoothing = label_smoothing.get(name, 0)
        train = f"{name} train" + (f" (label smoothing {smoothing:g})" if smoothing else "")
        ax.plot(history["epoch"], history["test_loss"], color=colours[name], label=f"{name} test")
        ax.plot(history["epoch"], history["train_loss"], linestyle="--", color=colours[name], label=train)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.set_ylabel("cross-entropy loss (log scale)")
    ax.set_title(
        "Loss per epoch, mean over seeds. Train (dashed): what the step minimises, on its training\n"
        "images (augmented where it augments), with its label smoothing. Test (solid): plain\n"
        "cross-entropy of the weights it scores (their average, where it keeps one)",
        fontsize=10,
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def params_vs_accuracy(
    steps: dict[str, tuple[int, dict]], target: Target, published: pd.DataFrame | None = None
) -> bytes:
    return _png(params_figure(steps, target, published))


def params_figure(
    steps: dict[str, tuple[int, dict]], target: Target, published: pd.DataFrame | None = None
) -> plt.Figure:
    """Each step's parameters against its final test accuracy over seeds (mean, a bar from
    the lowest to the highest seed), in its colour, labelled to the left; with `published`
    (a write-up pipeline's systems.csv rows), each write-up's claim as a numbered grey
    square, joined to its re-run here, a grey dot with the same bar, named in a list beside
    the axes so that no label lands on another; the budget and target lines."""
    public = published if published is not None else pd.DataFrame(columns=["params_total"])
    fig, ax = plt.subplots(figsize=(11, 5.5))
    colours = step_colours(steps)
    if steps:  # zoom on the steps, not on outliers
        bottom = min(a["min"] for _, a in steps.values()) * 100 - 0.4
    else:  # every claim and re-run in view
        bottom = min([*public["claimed"], *public["final_min"].dropna()]) * 100 - 0.2
    gap = (100 - bottom) / 28  # about one label line
    label_y = -1.0
    for name, (params, spread) in sorted(steps.items(), key=lambda item: item[1][1]["mean"]):
        accuracy, colour = spread["mean"], colours[name]
        # many steps share a parameter count: stack their labels to the left, one line apart
        label_y = max(accuracy * 100, label_y + gap)
        ax.errorbar(
            params, accuracy * 100, [[(accuracy - spread["min"]) * 100], [(spread["max"] - accuracy) * 100]],
            fmt="o", color=colour, capsize=3, zorder=3,
        )  # fmt: skip
        ax.annotate(
            f"{name} {accuracy:.2%}", (params, accuracy * 100), xytext=(params * 0.83, label_y),
            ha="right", va="center", fontsize=8, color=colour,
            arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.5},
            bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"},  # over the lines
        )  # fmt: skip
    named = []
    for number, row in enumerate(public.to_dict("records"), start=1):
        params, claimed, rerun = row["params_total"], row["claimed"] * 100, row.get("final_mean")
        rerun = None if rerun is None or pd.isna(rerun) else rerun * 100
        shown = [value for value in (claimed, rerun) if value is not None and value >= bottom]
        text = f"{number}. {row['step']}: {params:,}, claimed {row['claimed']:.2%} ({row['claimed_at']})"
        text += f", re-run {rerun / 100:.2%}" if rerun is not None else ", not re-run"
        named.append(text + ("" if shown else " (below)"))
        if rerun is not None and rerun >= bottom:
            low, high = rerun - row["final_min"] * 100, row["final_max"] * 100 - rerun
            ax.errorbar(params, rerun, [[low], [high]], fmt="o", color="tab:gray", capsize=2, zorder=2)
            ax.plot(
                [params, params], [max(claimed, bottom), rerun], color="tab:gray", linewidth=0.8, zorder=1
            )
        if claimed >= bottom:
            ax.scatter(params, claimed, marker="s", facecolor="white", edgecolor="tab:gray", zorder=2)
        if shown:
            ax.annotate(
                str(number), (params, max(shown)), textcoords="offset points",
                xytext=(0, 6), ha="center", fontsize=8, color="dimgray",
            )  # fmt: skip
    ax.axhline(
        target.test_accuracy * 100, color="black", linestyle="--", linewidth=1, label="target accuracy"
    )
    ax.axvline(target.max_params, color="tab:red", linestyle=":", linewidth=1, label="parameter budget")
    counts = [p for p, _ in steps.values()] + list(public["params_total"])
    ax.set_xscale("log")
    ax.set_xlim(min(counts) * 0.55, max(counts) * 1.35)
    ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_ylim(bottom, 100)
    ax.set_xlabel("parameters, trainable + non-trainable (log scale)")
    ax.set_ylabel("final test accuracy (%)")
    drawn = ["each step (mean, bar: lowest to highest seed)"] if steps else []
    if len(public):
        drawn.append(
            "published (grey, numbered): the claim (square) joined to its re-run here (dot, bar: seeds)"
        )
    ax.set_title("Parameters against final test accuracy: " + ";\n".join(drawn))
    if named:
        ax.text(1.02, 1.0, "published\n" + "\n".join(named), transform=ax.transAxes, fontsize=7, va="top")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def confusion_matrix(confusion: pd.DataFrame, name: str) -> bytes:
    """Counts of (true, predicted) digits; the diagonal is greyed so the errors stand out."""
    counts = pd.crosstab(confusion["actual"], confusion["predicted"]).reindex(
        index=range(10), columns=range(10), fill_value=0
    )
    errors = counts.to_numpy().copy()
    errors[range(10), range(10)] = 0
    fig, ax = plt.subplots(figsize=(6, 5.4))
    image = ax.imshow(errors, cmap="Reds")
    for true in range(10):
        for pred in range(10):
            value = counts.iloc[true, pred]
            if value:
                color = "gray" if true == pred else ("white" if value > errors.max() / 2 else "black")
                ax.text(pred, true, str(value), ha="center", va="center", fontsize=7, color=color)
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    ax.set_title(f"Confusion matrix of {name} ({int(errors.sum())} errors in {len(confusion)})")
    fig.colorbar(image, ax=ax, label="errors (off-diagonal counts)")
    return _png(fig)


def misclassified_grid(images, rows: pd.DataFrame, name: str, columns: int = 8) -> bytes:
    """The first misclassified test digits, titled `true → predicted` (test index)."""
    count = max(len(rows), 1)
    lines = -(-count // columns)
    fig, axes = plt.subplots(lines, columns, figsize=(columns * 1.1, lines * 1.35), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, (index, row) in zip(axes.flat, images, rows.iterrows()):
        ax.imshow(image, cmap="gray_r")
        ax.set_title(f"{row['actual']} → {row['predicted']}\n#{index}", fontsize=7)
    fig.suptitle(f"Misclassified test digits of {name}: true → predicted (test index)", fontsize=9)
    return _png(fig)


VERDICT_COLOURS = {"helps": "tab:green", "hurts": "tab:red"}  # anything else: within noise, grey


def ablation_effects(table: pd.DataFrame) -> bytes:
    return _png(ablation_figure(table))


def ablation_figure(table: pd.DataFrame) -> plt.Figure:
    """Each arm's effect on final test accuracy (arm minus baseline, pp) with its interval,
    one row per idea, coloured by verdict, around a zero line, its verdict at the right. An arm
    whose effect dwarfs the rest (a net that does not learn: -89 pp against the others' 0.1)
    gets a panel of its own, left of a broken axis, so neither hides the other."""
    rows = table.iloc[::-1].reset_index(drop=True)  # the first arm on top
    pp = rows[["effect", "low", "high"]] * 100
    far = _dwarfing(pp.abs().max(axis=1))
    widths = [1, 3] if far.any() else [1]
    fig, axes = plt.subplots(
        1, len(widths), sharey=True, width_ratios=widths, figsize=(9, 0.55 * len(rows) + 1.6), squeeze=False
    )
    axes = list(axes[0])
    for y, row in rows.iterrows():
        colour = VERDICT_COLOURS.get(row["verdict"], "tab:gray")
        for ax in axes:
            if not pd.isna(row["low"]):
                ax.plot([pp.at[y, "low"], pp.at[y, "high"]], [y, y], color=colour, linewidth=3, alpha=0.6)
            ax.plot(pp.at[y, "effect"], y, "o", color=colour)
        axes[-1].text(  # in a column right of the plot: it covers no interval
            1.02, y, row["verdict"], transform=axes[-1].get_yaxis_transform(), va="center", fontsize=8,
            color=colour,
        )  # fmt: skip
    near = axes[-1]
    near.axvline(0, color="black", linewidth=0.8)
    near.set_xlim(*_padded(pp[~far].stack().tolist() + [0.0]))
    near.set_yticks(range(len(rows)), [arm_label(c, idea) for c, idea in zip(rows["change"], rows["idea"])])
    near.set_ylim(-0.7, len(rows) - 0.3)
    xlabel = "final-epoch test accuracy, arm minus baseline (pp):\nmean and 95% interval of the paired seeds"
    if far.any():
        left = axes[0]
        left.set_xlim(*_padded(pp[far].stack().tolist()))
        left.spines["right"].set_visible(False)
        near.spines["left"].set_visible(False)
        near.tick_params(axis="y", length=0)
        for ax, x in ((left, 1), (near, 0)):  # the break marks: a pair of slashes on each side
            ax.plot([x, x], [0, 1], transform=ax.transAxes, linestyle="none", marker=[(-1, -2), (1, 2)],
                    markersize=10, color="black", clip_on=False)  # fmt: skip
        xlabel += f"; axis broken between {left.get_xlim()[1]:.1f} and {near.get_xlim()[0]:.1f} pp"
        fig.supxlabel(xlabel, fontsize=10)
    else:
        near.set_xlabel(xlabel)
    for ax in axes:
        ax.grid(axis="x", alpha=0.3)
    seeds = ", ".join(sorted({str(n) for n in table["n"]}))
    fig.suptitle(f"Ablation of the final recipe ({seeds} paired seeds per arm)")
    return fig


def _dwarfing(extents: pd.Series) -> pd.Series:
    """The arms whose farthest point from zero is over 5 pp and 10x that of every arm nearer
    zero: one scale for both would squeeze the rest into a line at zero."""
    ordered = extents.sort_values()
    for before, after in zip(ordered.iloc[:-1], ordered.iloc[1:]):
        if after > max(5.0, 10 * before):
            return extents >= after
    return pd.Series(False, index=extents.index)


def _padded(values: list[float]) -> tuple[float, float]:
    """A range that holds every value, with a margin on each side."""
    shown = [v for v in values if not pd.isna(v)]  # an arm with one seed has no interval
    low, high = min(shown), max(shown)
    margin = 0.1 * (high - low) or 0.1
    return low - margin, high + margin
