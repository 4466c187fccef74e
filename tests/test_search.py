"""The search's plan and overrides, checked before anything is queued (the queue itself
runs in tests/test_pipeline.py)."""

from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mnist_budget.params import ParamsError, load_params
from mnist_budget.search import hydra_value, load_plan, overrides
from mnist_budget.search_results import SEARCH, STEP, finalists, ranked, read_runs
from mnist_budget.step_config import load_steps, merged
from tests.test_pipeline import SEARCH_PARAMS


def plan_in(tmp_path, monkeypatch, candidates: dict):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "search").mkdir()
    (tmp_path / "search/params.yaml").write_text(SEARCH_PARAMS)
    path = tmp_path / "search/candidates.yaml"
    path.write_text(yaml.safe_dump({"keep": 1, "finalist_seeds": [2], "budgets": candidates}))
    return load_plan(path)


def test_hydra_values_are_what_dvc_exp_run_s_parses():
    assert hydra_value(["conv 8 k=1", "gap"]) == "['conv 8 k=1','gap']"
    assert hydra_value({"name": "sgd", "nesterov": True, "lr": 0.05}) == "{name:'sgd',nesterov:true,lr:0.05}"
    assert hydra_value(1e-7) == "1e-07"


def test_overrides_set_the_candidate_step_and_the_seeds(tmp_path, monkeypatch):
    plan = plan_in(
        tmp_path, monkeypatch, {"b": {"max_params": 2000, "candidates": {"c": {"batch_size": 16}}}}
    )
    assert plan.candidates["c"].params == 452 and plan.validation == 80
    assert overrides(plan.candidates["c"], (2, 3)) == [
        "-S",
        "search/params.yaml:recipe.seeds=[2,3]",
        "-S",
        "search/params.yaml:++steps.candidate.batch_size=16",
    ]


@pytest.mark.parametrize(
    ("candidates", "error"),
    [
        ({"c": {"epochs": 0}}, "steps.candidate.epochs: must be at least 1"),
        (
            {"c": {"layers": ["conv 16", "conv 16", "gap", "conv 10 k=1"]}},
            "b.c: has 2,736 params, over the b budget of 2,000",
        ),
    ],
)
def test_a_bad_candidate_stops_the_search_before_it_queues(tmp_path, monkeypatch, candidates, error):
    with pytest.raises(ParamsError, match=error.replace(".", r"\.")):
        plan_in(tmp_path, monkeypatch, {"b": {"max_params": 2000, "candidates": candidates}})


def test_finalists_are_each_budgets_best_on_seed_1_validation():
    runs = pd.DataFrame(
        {
            "budget": ["a", "a", "a", "b", "b"],
            "candidate": ["x", "y", "z", "u", "v"],
            "rung": [1] * 5,
            "seed": [1] * 5,
            "params": [1] * 5,
            "val_accuracy": [0.90, 0.95, 0.93, 0.80, 0.85],
            "test_accuracy": [None] * 5,
        }
    )
    assert finalists(runs, keep=2) == ["y", "z", "v", "u"]
    # more seeds rank first: a finalist's mean over 3 seeds above a single lucky seed
    more = pd.concat([runs, runs.iloc[[2, 2]].assign(rung=2, seed=[2, 3], val_accuracy=[0.92, 0.94])])
    assert list(ranked(more).query("budget == 'a'")["candidate"]) == ["z", "y", "x"]


def test_the_headline_steps_are_the_search_winners_on_all_training_images():
    """params.yaml's final and tiny steps train what the search chose on validation (the
    best finalist of each budget by mean validation accuracy), on every training image."""
    params, search = load_params(Path("params.yaml")), load_params(SEARCH.params)
    steps, plan = load_steps(params), load_plan()
    summary = ranked(read_runs())
    winners = summary[summary["test_count"] > 0].groupby("budget").head(1).set_index("budget")["candidate"]
    for role, budget in (("final", "final"), ("tiny", "tiny")):
        changes = plan.candidates[winners[budget]].changes
        chosen = load_steps({**search, "steps": {STEP: merged(search["steps"][STEP], changes)}})[STEP]
        step = steps[params["headline"][role]]
        assert step.validation == 0 and chosen.validation > 0
        same = ("name", "description", "seeds", "validation")
        differences = {
            f.name: (getattr(step, f.name), getattr(chosen, f.name))
            for f in fields(step)
            if f.name not in same and getattr(step, f.name) != getattr(chosen, f.name)
        }
        assert not differences, f"{step.name} is not the search's {winners[budget]}: {differences}"
