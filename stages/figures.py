"""Matplotlib figures for the report (PNG, readable on GitHub)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import pandas as pd

from stages.files import atomic_path

DPI = 120


def _save(fig: plt.Figure, path: Path) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")
    plt.close(fig)


def accuracy_curves(histories: dict[str, pd.DataFrame], target: float, path: Path) -> None:
    """Test accuracy per epoch of every step, zoomed to where the steps differ."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    lowest = target
    for name, history in histories.items():
        percent = history["test_accuracy"] * 100
        ax.plot(history["epoch"], percent, marker="o", markersize=3, label=name)
        # the first epochs of a weak step would flatten every other curve: zoom on the tail
        lowest = min(lowest, history["test_accuracy"].iloc[len(history) // 3 :].min())
    ax.axhline(target * 100, color="black", linestyle="--", linewidth=1, label=f"target {target:.2%}")
    ax.set_ylim(max(lowest * 100 - 0.2, 90), 100)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Test accuracy per epoch")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    _save(fig, path)


def loss_curves(histories: dict[str, pd.DataFrame], path: Path) -> None:
    """Train (dashed) and test (solid) loss per epoch, log scale."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, history in histories.items():
        (line,) = ax.plot(history["epoch"], history["test_loss"], label=f"{name} test")
        ax.plot(
            history["epoch"],
            history["train_loss"],
            linestyle="--",
            color=line.get_color(),
            label=f"{name} train",
        )
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss (log scale)")
    ax.set_title("Train (dashed) and test (solid) loss")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)
