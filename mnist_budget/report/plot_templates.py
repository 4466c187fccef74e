"""The Vega-Lite templates of `dvc plots show`, written by the report stage beside the data
(reports/plots/) because they hold what the data decides: each step's colour, the same as
in the PNGs (`palette`), and the accuracy axis, which holds every value shown.

DVC fills the `<DVC_METRIC_...>` placeholders; each row of the data is one seed's epoch of
one step (reports/plots/curves.csv).
"""

from __future__ import annotations

import math
from typing import Any

from mnist_budget.report.palette import step_colours

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
ZOOM = 0.014  # the zoomed accuracy chart spans the target minus 1.4 pp to 100% (98-100% for 99.4%)
WIDTH, HEIGHT = 900, 400  # about two thirds of a 1400-px window, the legend beside
EPOCH = {
    "field": "<DVC_METRIC_X>",
    "type": "quantitative",
    "title": "<DVC_METRIC_X_LABEL>",
    "axis": {"tickMinStep": 1},  # whole epochs
}


def colour(steps: list[str]) -> dict[str, Any]:
    """Colour by step, each step its `palette` colour, the legend in the progression's order."""
    colours = step_colours(steps)
    return {
        "field": "step",
        "type": "nominal",
        "scale": {"domain": list(colours), "range": list(colours.values())},
        "sort": None,
    }


def accuracy_template(steps: list[str], target: float, lowest: float | None = None) -> dict[str, Any]:
    """Test accuracy per epoch: each step's mean over seeds, a band from the lowest to the
    highest seed, the target as one labelled horizontal rule. With `lowest` (the lowest
    accuracy of any seed and epoch) the y axis starts below it and holds every value;
    without, it is zoomed on the target, and what lies below is clipped at the bottom edge
    (the chart's title says so), never drawn outside the plot or pinned onto its edge."""
    bottom = math.floor(lowest * 100) / 100 if lowest is not None else round(target - ZOOM, 6)
    scale = {"domain": [bottom, 1], "nice": False}
    y = {"field": "<DVC_METRIC_Y>", "type": "quantitative", "scale": scale}
    title = (
        "<DVC_METRIC_TITLE>"
        if lowest is not None
        else {"text": "<DVC_METRIC_TITLE>", "subtitle": f"below {bottom:.1%}: cut off at the bottom edge"}
    )
    clip = lowest is None
    return {
        "$schema": SCHEMA,
        "data": {"values": "<DVC_METRIC_DATA>"},
        "title": title,
        "width": WIDTH,
        "height": HEIGHT,
        "resolve": {"legend": {"color": "independent"}},  # each layer its own: only the lines' shows
        "layer": [
            {
                "mark": {"type": "area", "opacity": 0.15, "clip": clip},
                "encoding": {
                    "x": EPOCH,
                    "y": {**y, "aggregate": "min", "title": "test accuracy (mean, min-max band)"},
                    "y2": {"field": "<DVC_METRIC_Y>", "aggregate": "max"},
                    "color": {**colour(steps), "legend": None},  # the legend is the lines', not pale fills
                },
            },
            {
                "mark": {"type": "line", "point": True, "tooltip": True, "clip": clip},
                "encoding": {
                    "x": EPOCH,
                    "y": {**y, "aggregate": "mean", "axis": {"format": ".1%"}},
                    "color": colour(steps),
                },
            },
            {  # no x: one rule across the chart, not one per epoch
                "mark": {"type": "rule", "strokeDash": [6, 4], "color": "black"},
                "encoding": {"y": {"field": "target", "type": "quantitative", "aggregate": "max"}},
            },
            {  # its label, at the left end, just below it (above, it would leave a chart whose top is 100%)
                "mark": {"type": "text", "align": "left", "baseline": "top", "dx": 4, "dy": 3},
                "encoding": {
                    "x": {"value": 0},
                    "y": {"field": "target", "type": "quantitative", "aggregate": "max"},
                    "text": {"value": f"target {target:.2%}"},
                },
            },
        ],
    }


def loss_template(steps: list[str]) -> dict[str, Any]:
    """Train (dashed) and test (solid) loss per epoch, mean over seeds, log scale."""
    return {
        "$schema": SCHEMA,
        "data": {"values": "<DVC_METRIC_DATA>"},
        "title": "<DVC_METRIC_TITLE>",
        "width": WIDTH,
        "height": HEIGHT,
        "transform": [{"fold": ["train_loss", "test_loss"], "as": ["set", "loss"]}],
        "mark": {"type": "line", "tooltip": True},
        "encoding": {
            "x": EPOCH,
            "y": {
                "field": "loss",
                "aggregate": "mean",
                "type": "quantitative",
                "title": "cross-entropy loss (mean over seeds, log scale)",
                "scale": {"type": "log"},
            },
            "color": colour(steps),
            "strokeDash": {
                "field": "set",
                "type": "nominal",
                "scale": {"domain": ["train_loss", "test_loss"], "range": [[6, 4], [1, 0]]},
            },
        },
    }


def lr_template(steps: list[str]) -> dict[str, Any]:
    """The learning rate per epoch, one small chart per step: steps that share a schedule
    would hide one another in a single chart."""
    return {
        "$schema": SCHEMA,
        "data": {"values": "<DVC_METRIC_DATA>"},
        "title": "<DVC_METRIC_TITLE>",
        "facet": {"field": "step", "type": "nominal", "sort": steps, "title": None},
        "columns": 4,
        "spec": {
            "width": WIDTH // 4 - 40,
            "height": 120,
            "mark": {"type": "line", "point": True, "tooltip": True},
            "encoding": {
                "x": EPOCH,
                "y": {"field": "<DVC_METRIC_Y>", "aggregate": "mean", "type": "quantitative", "title": "LR"},
                "color": {**colour(steps), "legend": None},  # each panel is titled with its step
            },
        },
    }


def seed_curves_template() -> dict[str, Any]:
    """One training's history (train's `plots:` in dvc.yaml): test accuracy per epoch, one
    line per seed, so that a seed that lags shows at a glance. Nothing in it depends on
    the results: the plots page stage writes it."""
    return {
        "$schema": SCHEMA,
        "data": {"values": "<DVC_METRIC_DATA>"},
        "title": {"text": "<DVC_METRIC_TITLE>", "subtitle": "test accuracy per epoch, one line per seed"},
        "width": WIDTH // 2,
        "height": HEIGHT // 2,
        "mark": {"type": "line", "point": True, "tooltip": True},
        "encoding": {
            "x": EPOCH,
            "y": {
                "field": "<DVC_METRIC_Y>",
                "type": "quantitative",
                "title": "test accuracy",
                "scale": {"zero": False},
                "axis": {"format": ".1%"},
            },
            "color": {"field": "seed", "type": "nominal"},
            "detail": {"field": "rev", "type": "nominal"},  # `dvc plots diff`: one line per revision
        },
    }
