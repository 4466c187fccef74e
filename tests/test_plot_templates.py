"""The `dvc plots show` templates: each step in its PNG colour, in the progression's order;
an accuracy axis that holds every value, or a zoom that clips what it cuts (never pins it on
the edge); the LR of each step in its own panel."""

import json

import vl_convert

from mnist_budget.report.palette import TAB10, step_colours
from mnist_budget.report.plot_templates import accuracy_template, loss_template, lr_template

STEPS = ["s2-b", "s10-late", "s1-a"]  # sorted by name, Vega would colour them in another order


def layers(template: dict) -> dict[str, dict]:
    return {layer["mark"]["type"]: layer for layer in template["layer"]}


def test_each_step_has_its_png_colour_in_every_chart():
    expected = {"domain": STEPS, "range": list(TAB10[:3])}
    assert step_colours(STEPS) == dict(zip(STEPS, TAB10[:3], strict=True))
    for template in (accuracy_template(STEPS, 0.994, 0.5), accuracy_template(STEPS, 0.994)):
        for layer in ("area", "line"):
            assert layers(template)[layer]["encoding"]["color"]["scale"] == expected
        assert layers(template)["area"]["encoding"]["color"]["legend"] is None  # no pale swatches
    assert loss_template(STEPS)["encoding"]["color"]["scale"] == expected
    assert lr_template(STEPS)["spec"]["encoding"]["color"]["scale"] == expected


def test_the_whole_chart_holds_every_value_and_the_zoom_clips_and_says_so():
    whole = accuracy_template(STEPS, 0.994, lowest=0.1135)
    y = layers(whole)["line"]["encoding"]["y"]["scale"]
    assert y == {"domain": [0.11, 1], "nice": False}  # below the lowest value, no clamp
    assert not layers(whole)["line"]["mark"]["clip"]
    zoom = accuracy_template(STEPS, 0.994)
    assert layers(zoom)["line"]["encoding"]["y"]["scale"] == {"domain": [0.98, 1], "nice": False}
    assert layers(zoom)["line"]["mark"]["clip"] and layers(zoom)["area"]["mark"]["clip"]
    assert zoom["title"]["subtitle"] == "below 98.0%: cut off at the bottom edge"
    assert "clamp" not in json.dumps([whole, zoom])
    assert layers(zoom)["text"]["encoding"]["text"] == {"value": "target 99.40%"}


def test_the_lr_chart_draws_one_panel_per_step():
    rows = [{"step": s, "epoch": e, "lr": 0.1 / e} for s in STEPS for e in (1, 2, 3)]
    spec = json.loads(
        json.dumps(lr_template(STEPS))
        .replace('"<DVC_METRIC_DATA>"', json.dumps(rows))
        .replace("<DVC_METRIC_X>", "epoch")
        .replace("<DVC_METRIC_Y>", "lr")
        .replace("<DVC_METRIC_X_LABEL>", "epoch")
        .replace("<DVC_METRIC_TITLE>", "LR")
    )
    svg = vl_convert.vegalite_to_svg(spec)
    assert svg.count('aria-roledescription="line mark"') == len(STEPS)  # the same schedule hides none
    for step in STEPS:
        assert f">{step}</text>" in svg  # each panel titled with its step
