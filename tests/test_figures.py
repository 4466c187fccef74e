"""The figures show what they say: the accuracy figure each step's mean over seeds, a band
from the lowest to the highest seed, the target as one horizontal line, a y axis zoomed on
the steps' final epochs; the claims figure each claim beside every seed and their mean."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from mnist_budget.figures import ablation_figure, accuracy_figure, claims_figure


def history(accuracies_by_seed: dict[int, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"seed": seed, "epoch": epoch, "test_accuracy": accuracy}
            for seed, accuracies in accuracies_by_seed.items()
            for epoch, accuracy in enumerate(accuracies, start=1)
        ]
    )


def test_accuracy_figure_draws_mean_band_and_target():
    histories = {
        "a": history({1: [0.97, 0.990, 0.992], 2: [0.96, 0.992, 0.996]}),
        "b": history({1: [0.98, 0.993, 0.995], 2: [0.98, 0.995, 0.997]}),
    }
    fig = accuracy_figure(histories, target=0.994)
    ax = fig.axes[0]
    try:
        lines = {line.get_label(): line for line in ax.get_lines()}
        np.testing.assert_allclose(lines["a"].get_ydata(), [96.5, 99.1, 99.4])  # the mean of the seeds
        np.testing.assert_allclose(lines["b"].get_ydata(), [98.0, 99.4, 99.6])
        target = lines["target 99.40%"]
        assert list(target.get_ydata()) == [99.4, 99.4]  # one horizontal line, across the axes
        assert list(target.get_xdata()) == [0, 1] and target.get_transform() == ax.get_yaxis_transform()
        bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
        assert len(bands) == 2
        band_a = bands[0].get_paths()[0].vertices[:, 1]
        assert band_a.min() == pytest.approx(96.0) and band_a.max() == pytest.approx(99.6)  # min to max seed
        # zoomed on the last two thirds of the epochs: the lowest there (99.0%) less 0.2 pp, to 100%
        assert ax.get_ylim() == pytest.approx((98.8, 100.0))
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
        assert "(pp)" in ax.get_xlabel() and "8 paired seeds" in ax.get_title()
        assert {text.get_text() for text in ax.texts} == {"helps", "hurts", "within noise at 8 seeds"}
    finally:
        plt.close(fig)
