"""One colour per step, in the order of the progression, the same in the report's PNGs and
on `dvc plots show`'s page (where Vega would otherwise colour by the names' sorted order)."""

from __future__ import annotations

from collections.abc import Iterable

# matplotlib's tab10, which is also Vega's category10
TAB10 = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


def step_colours(steps: Iterable[str]) -> dict[str, str]:
    """Step -> its colour, in the steps' order (after ten, the colours come round again)."""
    return {step: TAB10[i % len(TAB10)] for i, step in enumerate(steps)}
