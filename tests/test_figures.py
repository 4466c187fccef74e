"""The report's accuracy figure shows what it says: each step's mean over seeds, a band
from the lowest to the highest seed, the target as one horizontal line, a y axis zoomed on
the steps' final epochs."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from mnist_budget.figures import accuracy_figure


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
