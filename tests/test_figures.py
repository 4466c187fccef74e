"""The figures show what they say, as a person sees them: the accuracy figure each step's
mean over seeds and its band, whole (every epoch, every seed inside the axes) then zoomed
(saying what it cuts), the target labelled; one colour per step in every figure; the loss
figure which train loss carries label smoothing; the parameters figure no label on another;
the claims figure each claim beside every seed and their mean."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from mnist_budget.config.step_config import Target
from mnist_budget.report.figures import (
    ablation_figure,
    accuracy_figure,
    claims_figure,
    loss_figure,
    params_figure,
)
from mnist_budget.report.palette import step_colours


def history(accuracies_by_seed: dict[int, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"seed": seed, "epoch": epoch, "test_accuracy": accuracy}
            for seed, accuracies in accuracies_by_seed.items()
            for epoch, accuracy in enumerate(accuracies, start=1)
        ]
    )


def test_accuracy_figure_draws_mean_band_and_target_whole_then_zoomed():
    histories = {
        "a": history({1: [0.97, 0.990, 0.992], 2: [0.96, 0.992, 0.996]}),
        "b": history({1: [0.98, 0.993, 0.995], 2: [0.98, 0.995, 0.997]}),
    }
    fig = accuracy_figure(histories, target=0.994)
    whole, zoom = fig.axes
    try:
        for ax in (whole, zoom):
            lines = {line.get_label(): line for line in ax.get_lines()}
            np.testing.assert_allclose(lines["a"].get_ydata(), [96.5, 99.1, 99.4])  # the mean of the seeds
            np.testing.assert_allclose(lines["b"].get_ydata(), [98.0, 99.4, 99.6])
            # one colour per step, in the progression's order, the plots page's too
            assert [lines[n].get_color() for n in "ab"] == list(step_colours(["a", "b"]).values())
            target = lines["target 99.40%"]
            assert list(target.get_ydata()) == [99.4, 99.4]  # one horizontal line, across the axes
            assert list(target.get_xdata()) == [0, 1] and target.get_transform() == ax.get_yaxis_transform()
            assert "target 99.40%" in [t.get_text() for t in ax.texts]  # labelled on the chart
            bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
            assert len(bands) == 2
            band_a = bands[0].get_paths()[0].vertices[:, 1]
            assert band_a.min() == pytest.approx(96.0) and band_a.max() == pytest.approx(
                99.6
            )  # min to max seed
            assert list(ax.get_xticks()[ax.get_xticks() % 1 != 0]) == []  # whole epochs
        # every seed's every epoch inside the whole chart, epoch 1 included: 96.0% less 0.5 pp
        assert whole.get_ylim() == pytest.approx((95.5, 100.0))
        # the zoom: every seed's final epoch (the lowest, 99.2%) less 0.3 pp, saying what it cuts
        assert zoom.get_ylim() == pytest.approx((98.9, 100.0))
        assert "lower values run off the bottom" in zoom.get_title()
    finally:
        plt.close(fig)


def test_claims_figure_puts_each_claim_beside_every_seed_and_their_mean():
    points = [("a (the best epoch)", 0.9950, [0.9930, 0.9940, 0.9935]), ("b (epoch 10)", 0.9840, [0.9860])]
    fig = claims_figure(points, target=0.994)
    ax = fig.axes[0]
    try:
        dots = {c.get_label(): c.get_offsets() for c in ax.collections}
        np.testing.assert_allclose(dots["claimed"], [[99.5, 0]])  # the first row's; rows share a label once
        np.testing.assert_allclose(dots["each seed here"], [[99.3, 0], [99.4, 0], [99.35, 0]])
        np.testing.assert_allclose(dots["mean over seeds"], [[99.35, 0]])
        row_b = [c.get_offsets() for c in ax.collections if c.get_label().startswith("_")]
        np.testing.assert_allclose(row_b[0], [[98.4, 1]])  # b's claim, on the second row
        target = next(line for line in ax.get_lines() if line.get_label() == "target 99.40%")
        assert list(target.get_xdata()) == [99.4, 99.4] and target.get_transform() == ax.get_xaxis_transform()
        assert [tick.get_text() for tick in ax.get_yticklabels()] == ["a (the best epoch)", "b (epoch 10)"]
        assert ax.yaxis_inverted()  # the first claim on top
    finally:
        plt.close(fig)


def test_ablation_figure_draws_every_interval_in_its_verdict_colour_first_arm_on_top():
    table = pd.DataFrame(
        [
            {"idea": "batch norm", "change": "removes", "n": 8, "effect": -0.0120, "low": -0.0150, "high": -0.0090, "verdict": "helps"},
            {"idea": "dropout", "change": "adds", "n": 8, "effect": -0.0004, "low": -0.0008, "high": -0.0001, "verdict": "hurts"},
            {"idea": "weight decay", "change": "removes", "n": 8, "effect": 0.0001, "low": -0.0003, "high": 0.0005, "verdict": "within noise at 8 seeds"},
        ]
    )  # fmt: skip
    fig = ablation_figure(table)
    ax = fig.axes[0]
    try:
        labels = [tick.get_text() for tick in ax.get_yticklabels()]
        assert labels == ["without weight decay", "with dropout", "without batch norm"]  # bottom to top
        intervals = [
            line
            for line in ax.get_lines()
            if len(line.get_xdata()) == 2 and line.get_ydata()[0] == line.get_ydata()[1]
        ]
        drawn = {line.get_ydata()[0]: (list(line.get_xdata()), line.get_color()) for line in intervals}
        for row, (ends, colour) in {2: ([-1.5, -0.9], "tab:green"), 1: ([-0.08, -0.01], "tab:red"),
                                   0: ([-0.03, 0.05], "tab:gray")}.items():  # fmt: skip
            np.testing.assert_allclose(drawn[row][0], ends)  # in pp: batch norm on top
            assert drawn[row][1] == colour
        low, high = ax.get_xlim()
        assert low < -1.5 and high > 0.05  # every interval inside the axes, zero too
        zero = next(line for line in ax.get_lines() if list(line.get_xdata()) == [0, 0])
        assert zero.get_transform() == ax.get_xaxis_transform()
        assert "(pp)" in ax.get_xlabel() and "8 paired seeds" in fig.get_suptitle()
        assert len(fig.axes) == 1  # -1.5 pp against 0.08: one scale holds both
        verdicts = {text.get_text(): text.get_position()[0] for text in ax.texts}
        # right of the plot, in a column of their own
        assert verdicts == dict.fromkeys(["helps", "hurts", "within noise at 8 seeds"], 1.02)
    finally:
        plt.close(fig)


def test_ablation_figure_breaks_its_axis_for_an_arm_that_dwarfs_the_rest_and_says_so():
    # The final recipe without batch norm does not learn (-89 pp): on one scale with the
    # others' +-0.1 pp they would sit in one dot at zero.
    table = pd.DataFrame(
        [
            {"idea": "batch norm", "change": "removes", "n": 8, "effect": -0.8917, "low": -0.8960, "high": -0.8873, "verdict": "helps"},
            {"idea": "augmentation", "change": "removes", "n": 8, "effect": -0.0003, "low": -0.0009, "high": 0.0004, "verdict": "within noise at 8 seeds"},
        ]
    )  # fmt: skip
    fig = ablation_figure(table)
    try:
        far, near = fig.axes
        assert far.get_xlim()[0] < -89.60 and -88.73 < far.get_xlim()[1] < -80  # the far arm, whole
        assert near.get_xlim()[0] < -0.09 and near.get_xlim()[1] > 0.04  # the rest and zero, readable
        assert near.get_xlim()[1] - near.get_xlim()[0] < 1
        assert "axis broken between" in fig.get_supxlabel() and "(pp)" in fig.get_supxlabel()
        assert not far.spines["right"].get_visible() and not near.spines["left"].get_visible()
        assert [tick.get_text() for tick in far.get_yticklabels()] == [
            "without augmentation",
            "without batch norm",
        ]
    finally:
        plt.close(fig)


def loss_history(train: list[float], test: list[float]) -> pd.DataFrame:
    epochs = range(1, len(train) + 1)
    return pd.DataFrame({"seed": 1, "epoch": epochs, "train_loss": train, "test_loss": test})


def test_loss_figure_says_which_train_loss_carries_label_smoothing():
    histories = {
        "plain": loss_history([0.5, 0.1], [0.2, 0.05]),
        "smooth": loss_history([0.8, 0.4], [0.3, 0.06]),
    }
    fig = loss_figure(histories, {"plain": 0.0, "smooth": 0.05})
    ax = fig.axes[0]
    try:
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {
            "plain test",
            "plain train",
            "smooth test",
            "smooth train (label smoothing 0.05)",
        }
        colours = step_colours(histories)
        assert lines["smooth test"].get_color() == lines["smooth train (label smoothing 0.05)"].get_color()
        assert [lines[f"{n} test"].get_color() for n in histories] == list(colours.values())
        assert lines["plain train"].get_linestyle() == "--" and lines["plain test"].get_linestyle() == "-"
        assert "label smoothing" in ax.get_title() and "plain" in ax.get_title()
        assert ax.get_yscale() == "log"
    finally:
        plt.close(fig)


def overlapping(boxes: list) -> list[tuple[int, int]]:
    return [(i, j) for i, a in enumerate(boxes) for j, b in enumerate(boxes) if i < j and a.overlaps(b)]


def test_params_figure_labels_overlap_nothing_and_name_every_published_result():
    steps = {  # several steps at one parameter count, as in the progression
        "s1": (7272, {"mean": 0.9871, "min": 0.9863, "max": 0.9881}),
        "s2": (7592, {"mean": 0.9925, "min": 0.9919, "max": 0.9927}),
        "s3": (7592, {"mean": 0.9940, "min": 0.9937, "max": 0.9942}),
        "s4": (7592, {"mean": 0.9948, "min": 0.9946, "max": 0.9954}),
        "s5": (3884, {"mean": 0.9920, "min": 0.9907, "max": 0.9925}),
    }
    public = pd.DataFrame(  # as the public pipeline's systems.csv has them
        [
            {"step": "p-7752", "params_total": 7952, "claimed": 0.9955, "claimed_at": "final",
             "final_mean": 0.9931, "final_min": 0.9925, "final_max": 0.9938},
            {"step": "p-3762", "params_total": 3870, "claimed": 0.9952, "claimed_at": "best",
             "final_mean": 0.9941, "final_min": 0.9936, "final_max": 0.9947},
            {"step": "far-below", "params_total": 3082, "claimed": 0.9736, "claimed_at": "final",
             "final_mean": None, "final_min": None, "final_max": None},
        ]
    )  # fmt: skip
    fig = params_figure(steps, Target(test_accuracy=0.994, max_params=8000, max_epochs=15), public)
    ax = fig.axes[0]
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ticks = [
            t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text() and t.get_visible()
        ]
        assert ticks and not overlapping(ticks), "x tick labels run into each other"
        labels = [t for t in ax.texts if t.get_text()]
        assert not overlapping([t.get_window_extent(renderer) for t in labels]), [
            t.get_text() for t in labels
        ]
        listed = next(t.get_text() for t in ax.texts if t.get_text().startswith("published"))
        assert listed.splitlines()[1:] == [
            "1. p-7752: 7,952, claimed 99.55% (final), re-run 99.31%",
            "2. p-3762: 3,870, claimed 99.52% (best), re-run 99.41%",
            "3. far-below: 3,082, claimed 97.36% (final), not re-run (below)",  # not drawn, and said so
        ]
        # each claim joined to its re-run: a grey line at its parameter count, claim to re-run
        joins = {
            tuple(line.get_xdata()): sorted(line.get_ydata())
            for line in ax.lines
            if line.get_color() == "tab:gray" and len(set(line.get_xdata())) == 1
        }
        assert joins[(7952, 7952)] == pytest.approx([99.31, 99.55])
        assert joins[(3870, 3870)] == pytest.approx([99.41, 99.52])
        colours = step_colours(steps)
        step_labels = {t.get_text().split()[0]: t.get_color() for t in labels if t.get_text().startswith("s")}
        assert step_labels == colours
    finally:
        plt.close(fig)
