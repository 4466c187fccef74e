"""The search's plan and overrides, checked before anything is queued (the queue itself
runs in tests/test_other_pipelines.py)."""

import dataclasses
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mnist_budget.config.params import ParamsError, load_params
from mnist_budget.config.step_config import load_steps, merged
from mnist_budget.report.progression_report import search_section
from mnist_budget.report.search_results import (
    PREVIOUS_SEARCH,
    RUNS,
    STEP,
    TABLE,
    adopted,
    deciding_search,
    effects,
    finalists,
    pooled_std,
    ranked,
    read_runs,
    taught_budgets,
)
from mnist_budget.tools.search import (
    carried_rows,
    carry,
    hydra_value,
    load_plan,
    overrides,
    smallest_holding,
    states_of,
    table,
    turns,
    write_runs,
)
from tests.e2e import SEARCH_PARAMS


def plan_in(tmp_path, monkeypatch, candidates: dict):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "search").mkdir(exist_ok=True)
    (tmp_path / "search/params.yaml").write_text(SEARCH_PARAMS)
    path = tmp_path / "search/candidates.yaml"
    path.write_text(
        yaml.safe_dump({"keep": 1, "rung1_seeds": [1], "finalist_seeds": [2], "budgets": candidates})
    )
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


def test_a_name_queued_again_after_a_killed_run_takes_its_liveliest_tasks_state():
    # `dvc queue status` as it read after a queue stopped with --kill and resumed (dvc 3):
    # by state, not by age
    status = """Task     Name                      Created    Status
bdf5c85  small-sepconv-late-r2     03:14 PM   Running
fc62780  small-sepconv-mid-r2      03:15 PM   Queued
8c1c81d  recipe-r2                 02:19 PM   Failed
0b1c4bc  small-sepconv-mid-r2      02:19 PM   Failed
9a0e1f2  small-sepconv-late-r2     02:19 PM   Failed
d6b18b8  recipe-r2                 03:14 PM   Success
f43ea60  sepconv-late-43-r1        12:55 PM   Success
"""
    assert states_of(status) == {
        "small-sepconv-late-r2": "Running",
        "small-sepconv-mid-r2": "Queued",
        "recipe-r2": "Success",
        "sepconv-late-43-r1": "Success",
    }
    assert states_of(status.replace("Success", "Failed"))["recipe-r2"] == "Failed"


def test_finalists_are_each_budgets_best_on_their_mean_rung_1_validation():
    runs = pd.DataFrame(
        {
            "budget": ["a", "a", "a", "b", "b"] * 2,
            "candidate": ["x", "y", "z", "u", "v"] * 2,
            "rung": [1] * 10,
            "seed": [1] * 5 + [2] * 5,
            "params": [1] * 10,
            "train_accuracy": None,  # blank, as in the searches before it was kept
            # x has the best single seed (0.96), y the best mean (0.945)
            "val_accuracy": [0.96, 0.95, 0.93, 0.80, 0.85, 0.90, 0.94, 0.93, 0.80, 0.85],
            "test_accuracy": [None] * 10,
        }
    )
    assert finalists(runs, keep=2) == ["y", "z", "v", "u"]
    # today's recipe meets the challengers on the finalists' seeds, whatever its rank
    assert finalists(runs, keep=1, incumbents={"a": "x", "b": "v"}) == ["y", "x", "v"]
    # a candidate below its budget's reference on the same seeds goes no further (u: 0.80
    # against v's 0.85); one level with it does (z: 0.93 against x's 0.93)
    assert finalists(runs, keep=2, references={"a": "x", "b": "v"}) == ["y", "z", "v"]
    # more seeds rank first: a finalist's mean over 4 seeds above a lucky pair
    more = pd.concat([runs, runs.iloc[[2, 2]].assign(rung=2, seed=[3, 4], val_accuracy=[0.92, 0.94])])
    assert list(ranked(more).query("budget == 'a'")["candidate"]) == ["z", "y", "x"]


def finalists_scoring(val: dict[str, list[float]], params: dict[str, int], test=None) -> pd.DataFrame:
    """Finalists of one budget, "a", each on seeds 1..n: validation (and test) accuracy per seed."""
    rows = [
        {"budget": "a", "candidate": name, "rung": 1, "seed": seed, "params": params[name],
         "train_accuracy": None, "val_accuracy": accuracy,
         "test_accuracy": (test or {}).get(name, [0.99] * len(scores))[seed - 1]}
        for name, scores in val.items()
        for seed, accuracy in enumerate(scores, 1)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def test_a_lead_within_the_noise_keeps_the_incumbent_and_the_test_set_never_decides():
    # y leads x by 0.01 pp on the mean, but seed by seed the lead swings by 0.2 pp or more: a tie
    val = {"y": [0.995, 0.993, 0.995, 0.993], "x": [0.993, 0.995, 0.993, 0.9946]}
    runs = finalists_scoring(val, {"x": 7000, "y": 6000}, test={"y": [0.999] * 4, "x": [0.98] * 4})
    assert adopted(runs, {"a": "x"})["a"] == (
        "x",
        "the incumbent, tied on validation with the best finalist `y` (-0.01 ± 0.22 pp over 4 seeds)",
    )
    # no incumbent among them: the fewest parameters of the tied
    assert adopted(runs, {})["a"][0] == "y"
    assert adopted(finalists_scoring(val, {"x": 5000, "y": 6000}), {})["a"][0] == "x"
    # whatever the test set says: the choice reads validation alone
    flipped = runs.assign(test_accuracy=runs["test_accuracy"][::-1].to_numpy())
    assert adopted(flipped, {"a": "x"}) == adopted(runs, {"a": "x"})


def test_a_lead_beyond_the_noise_is_adopted_and_ties_go_to_the_fewest_parameters():
    # y beats the incumbent x on every seed by 0.1 pp (paired: no noise); z ties y, smaller
    val = {
        "y": [0.995, 0.994, 0.996, 0.995],
        "z": [0.9951, 0.9938, 0.9959, 0.9951],
        "x": [0.994, 0.993, 0.995, 0.994],
    }
    runs = finalists_scoring(val, {"x": 7000, "y": 7500, "z": 6000})
    name, why = adopted(runs, {"a": "x"})["a"]
    assert name == "z"
    assert why == (
        "the fewest parameters (6,000) of the 2 finalists tied on validation with the best, `y` "
        "(-0.00 ± 0.01 pp over 4 seeds); the incumbent `x` is behind the best (-0.10 ± 0.00 pp over 4 seeds)"
    )
    # equal parameters: the better validation mean
    even = finalists_scoring(val, {"x": 7000, "y": 6000, "z": 6000})
    assert adopted(even, {"a": "x"})["a"][0] == "y"
    # the main report says which the steps train, not only which led on validation
    section = "\n".join(search_section(runs, 80, "search/table.md", {"a": "x"}))
    assert "Best by validation mean: `y` (a)." in section
    assert f"Adopted: a: `z`, {why}." in section


# a budget "a" of one net, x, and a budget of it taught by the teacher, t
TAUGHT = {
    "a": {"max_params": 2000, "candidates": {"x": {}}},
    "a-teacher": {"max_params": 2000, "reference": "x", "candidates": {"t": {"distill": {"weight": 0.5}}}},
}


def taught_runs(taught: pd.DataFrame) -> pd.DataFrame:
    """x on seeds 1 (rung 1) and 2 (rung 2), beside t's runs (`taught`, of budget "a")."""
    x = finalists_scoring({"x": [0.990, 0.991]}, {"x": 452}).assign(rung=[1, 2])
    return pd.concat([x, taught.assign(budget="a-teacher")])


def test_nets_taught_by_a_teacher_are_reported_apart_never_adopted(tmp_path, monkeypatch):
    """A budget whose candidates all distil is another exercise: its table says "with a
    teacher", the main report's "How the recipes were chosen" names it and adopts nothing from it."""
    plan = plan_in(tmp_path, monkeypatch, TAUGHT)
    assert plan.taught == {"a-teacher"} and taught_budgets({"budgets": TAUGHT}) == {"a-teacher"}
    runs = taught_runs(finalists_scoring({"t": [0.992, 0.993]}, {"t": 452}).assign(rung=[1, 2]))
    text = table(runs, plan)
    assert "Adopted: `x`, the best finalist on validation." in text
    assert (
        "With a teacher (chosen; another exercise than the budget's, never adopted into the progression): "
        "`t`, 452 parameters, 4 epochs, plus the teacher's cost"
    ) in text
    assert "against `x` without a teacher, paired on validation: +0.20 ± 0.00 pp over 2 seeds, ahead" in text
    # t holds the target where x does not: named apart, never as the exercise's smallest net
    plan = dataclasses.replace(plan, target=0.992)
    assert smallest_holding(ranked(runs.assign(test_accuracy=runs["val_accuracy"])), plan) == (
        "No finalist holds a 99.20% test mean over 2 seeds yet.\n\n"
        "With a teacher (another exercise): smallest net that holds a 99.20% test mean over 2 seeds: "
        "`t`, 452 params, 99.25% (min 99.20%)."
    )
    section = "\n".join(search_section(runs, 80, "search/table.md", {}, {"a-teacher"}))
    assert "Adopted: a: `x`, the best finalist on validation." in section and "a-teacher: `t`" not in section
    assert "`t`" not in section and "Nets taught by a larger net (a-teacher) are another exercise" in section


def test_a_teachers_budget_behind_its_net_on_rung_1_says_it_has_no_finalist(tmp_path, monkeypatch):
    plan = plan_in(tmp_path, monkeypatch, TAUGHT)
    runs = taught_runs(finalists_scoring({"t": [0.989]}, {"t": 452}))
    text = table(runs, plan)
    assert (
        "No finalist: no candidate reached `x`, the net they change, on rung 1's seeds; "
        "none trained on the finalists' seeds."
    ) in text
    assert "With a teacher (chosen" not in text


def test_the_table_says_adopted_only_once_every_finalist_has_its_finalist_seeds(tmp_path, monkeypatch):
    plan = plan_in(
        tmp_path, monkeypatch, {"a": {"max_params": 2000, "candidates": {"x": {}, "y": {}, "z": {}}}}
    )
    rung1 = pd.DataFrame(
        {
            "budget": ["a"] * 3,
            "candidate": ["x", "y", "z"],
            "rung": [1] * 3,
            "seed": [1] * 3,
            "params": [1] * 3,
            "train_accuracy": [0.95] * 3,
            "val_accuracy": [0.96, 0.95, 0.94],
            "test_accuracy": [0.96, 0.95, None],  # x and y the finalists, their test read
        }
    )
    assert "Leading while rung 2 runs (0 of 2 finalists on every seed): `x`" in table(rung1, plan)
    x2 = rung1.iloc[[0]].assign(rung=2, seed=2)
    assert "Leading while rung 2 runs (1 of 2 finalists on every seed): `x`" in table(
        pd.concat([rung1, x2]), plan
    )
    both = pd.concat([rung1, x2, rung1.iloc[[1]].assign(rung=2, seed=2)])
    assert "Adopted: `x`, the best finalist on validation." in table(both, plan)
    # a candidate of the budget not yet through rung 1 (as while a carried incumbent waits
    # for its challengers): no choice yet
    assert "Rung 1 under way: 1 of its 3 candidates to train." in table(both[both["candidate"] != "z"], plan)
    assert "Adopted" not in table(both[both["candidate"] != "z"], plan)
    # rung 1 done for the budget, its finalist's test accuracy not read yet (other budgets
    # still on rung 1): no choice yet either
    unread = rung1.assign(test_accuracy=None)
    assert "Finalists: `x`; rung 2 starts when rung 1 is done." in table(unread, plan)
    assert "Adopted" not in table(unread, plan)


def test_the_table_written_with_runs_csv_is_the_table_of_runs_csv(tmp_path, monkeypatch):
    """Rows built in memory with a blank test accuracy (None, as rung 1's are sealed) give the
    same table as the file they are written to: these 6 test accuracies average 99.235%,
    which an object column's mean and the file's floats round apart."""
    plan = plan_in(tmp_path, monkeypatch, {"a": {"max_params": 2000, "candidates": {"x": {}}}})
    row = {"budget": "a", "candidate": "x", "experiment": "x-r1", "params": 1, "train_accuracy": 0.99}
    tests = [0.9921, 0.9921, 0.992, 0.9923, 0.9929, 0.9927]
    rows = [
        {**row, "rung": 1 + (s > 2), "seed": s, "val_accuracy": 0.99, "test_accuracy": t}
        for s, t in enumerate(tests, 1)
    ]
    sealed = [{**row, "candidate": "y", "rung": 1, "seed": 1, "val_accuracy": 0.98, "test_accuracy": None}]
    write_runs(pd.concat([pd.DataFrame(rows), pd.DataFrame(sealed)]), plan)  # an object column
    assert RUNS.read_text().count("\n") == 8
    assert TABLE.read_text() == table(read_runs(), plan)
    assert "| 99.24%" in TABLE.read_text()


def test_the_smallest_net_holding_the_target_is_a_finalist_on_every_seed(tmp_path, monkeypatch):
    plan = plan_in(tmp_path, monkeypatch, {"a": {"max_params": 2000, "candidates": {"x": {}, "y": {}}}})
    assert plan.target == 0.3  # search/params.yaml's target
    plan = dataclasses.replace(plan, target=0.994)

    def runs(*rows):  # candidate, params, seed, test accuracy
        return pd.DataFrame(
            [
                {"budget": "a", "candidate": c, "rung": 1 if s == 1 else 2, "seed": s, "params": p,
                 "train_accuracy": 0.98, "val_accuracy": 0.99, "test_accuracy": t}
                for c, p, s, t in rows
            ]
        )  # fmt: skip

    x = runs(("x", 900, 1, 0.995), ("x", 900, 2, 0.994))
    assert smallest_holding(ranked(x.assign(test_accuracy=0.99)), plan) == (
        "No finalist holds a 99.40% test mean over 2 seeds yet."
    )
    # y is smaller and holds 99.40% on seed 1, but its seed 2 has not run: x
    partial = pd.concat([x, runs(("y", 500, 1, 0.996))])
    x_holds = "Smallest net that holds a 99.40% test mean over 2 seeds: `x`, 900 params, 99.45% (min 99.40%)."
    assert smallest_holding(ranked(partial), plan) == x_holds
    assert smallest_holding(ranked(pd.concat([partial, runs(("y", 500, 2, 0.994))])), plan) == (
        "Smallest net that holds a 99.40% test mean over 2 seeds: `y`, 500 params, 99.50% (min 99.40%)."
    )
    assert smallest_holding(ranked(pd.concat([partial, runs(("y", 500, 2, 0.990))])), plan) == x_holds


def test_each_idea_is_measured_against_its_budgets_reference_and_called_against_the_noise(
    tmp_path, monkeypatch
):
    """A candidate's effect: its validation mean minus its reference's over their shared
    seeds, ± two standard errors from the seed std pooled over the whole search; a budget
    of its own (a teacher's) names the net it teaches as its reference."""
    budgets = {
        "a": {"max_params": 2000, "candidates": {"inc": {}, "up": {}, "level": {}}},
        "a-teacher": {"max_params": 2000, "reference": "inc", "candidates": {"taught": {}}},
    }
    plan_in(tmp_path, monkeypatch, budgets)
    (tmp_path / "search/candidates.yaml").write_text(
        yaml.safe_dump({"keep": 1, "rung1_seeds": [1], "finalist_seeds": [2], "budgets": budgets,
                        "incumbents": {"a": "inc"}})
    )  # fmt: skip
    plan = load_plan()
    val = {"inc": [0.990, 0.992], "up": [0.996, 0.998], "level": [0.991, 0.991], "taught": [0.985, 0.987]}
    runs = pd.DataFrame(
        [
            {"budget": "a-teacher" if name == "taught" else "a", "candidate": name, "rung": 1,
             "seed": seed, "params": 1, "train_accuracy": None, "val_accuracy": v, "test_accuracy": None}
            for name, values in val.items() for seed, v in zip((1, 2), values)
        ]
    )  # fmt: skip
    # every pair's std: 0.001 * sqrt(2) but level's 0: pooled sqrt(3 * 0.000002 / 4) = 0.001225,
    # the interval for 2 seeds against 2: 2 * 0.001225 * sqrt(2 / 2) = 0.00245
    found = effects(runs, plan.references).set_index("candidate")
    assert found["reference"].to_dict() == {"up": "inc", "level": "inc", "taught": "inc"}
    assert found["effect"].to_dict() == pytest.approx({"up": 0.006, "level": 0.0, "taught": -0.005})
    assert found["interval"].tolist() == pytest.approx([0.0024495] * 3, abs=1e-7)
    assert found["call"].to_dict() == {"up": "helps", "level": "within noise", "taught": "hurts"}
    rows = [line.strip("|").split("|") for line in table(runs, plan).splitlines() if line.startswith("| a-")]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["a-teacher", "`taught`", "`inc`", "2", "-0.50 ± 0.24 pp", "hurts"]
    ]
    (tmp_path / "search/candidates.yaml").write_text(
        yaml.safe_dump({"keep": 1, "rung1_seeds": [1], "finalist_seeds": [2], "budgets": {
            "a": {"max_params": 2000, "reference": "nobody", "candidates": {"x": {}}}}})
    )  # fmt: skip
    with pytest.raises(ParamsError, match="a.reference: 'nobody' is no candidate"):
        load_plan()


def test_a_candidate_within_two_standard_errors_of_the_best_is_tied():
    # std of each pair: x 0.02/sqrt(2), y 0.01/sqrt(2), z 0; pooled (1 dof each):
    # sqrt((0.0002 + 0.00005 + 0) / 3) = 0.009129; the margin for 2 seeds against 2:
    # 2 * 0.009129 * sqrt(1/2 + 1/2) = 0.018257
    runs = pd.DataFrame(
        {
            "budget": ["a"] * 6,
            "candidate": ["x", "x", "y", "y", "z", "z"],
            "rung": [1] * 6,
            "seed": [1, 2] * 3,
            "params": [1] * 6,
            "train_accuracy": None,
            "val_accuracy": [0.96, 0.94, 0.945, 0.935, 0.93, 0.93],
            "test_accuracy": [None] * 6,
        }
    )
    summary = ranked(runs).set_index("candidate")
    assert pooled_std(summary) == pytest.approx(0.0091287, abs=1e-7)
    assert summary["margin"].tolist() == pytest.approx([0.0182574] * 3, abs=1e-7)
    # y is 0.01 behind x (tied); z 0.02 behind, beyond the margin
    assert summary["versus_best"].to_dict() == {"x": "best", "y": "tied", "z": "behind"}
    # one seed each: no spread to call ties with
    one_seed = ranked(runs[runs["seed"] == 1]).set_index("candidate")["versus_best"]
    assert one_seed.to_dict() == {"x": "best", "y": "", "z": ""}


def test_an_incumbent_trained_with_the_same_config_before_is_carried_not_trained(tmp_path, monkeypatch):
    """`carried`: the incumbent's rows of an earlier record, where it trained with the same
    config on the same seeds, join runs.csv with their test accuracy (an incumbent is a
    finalist whatever its rank); an incumbent of the same name but another config stops it."""
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "params.yaml").write_text(SEARCH_PARAMS)
    then = {"b": {"max_params": 2000, "candidates": {"inc": {"batch_size": 16}, "gone": {}}}}
    (earlier / "candidates.yaml").write_text(yaml.safe_dump({"budgets": then}))
    row = {"budget": "b", "candidate": "inc", "params": 452, "train_accuracy": 0.9}
    pd.DataFrame(
        [
            {
                **row,
                "rung": 1,
                "experiment": "inc-r1",
                "seed": 1,
                "val_accuracy": 0.91,
                "test_accuracy": 0.92,
            },
            {**row, "rung": 1, "experiment": "inc-r1", "seed": 7, "val_accuracy": 0.5, "test_accuracy": 0.5},
            {
                **row,
                "rung": 2,
                "experiment": "inc-r2",
                "seed": 2,
                "val_accuracy": 0.93,
                "test_accuracy": 0.94,
            },
        ]
    ).to_csv(earlier / "runs.csv", index=False)

    def plan(batch_size):
        candidates = {"b": {"max_params": 2000, "candidates": {"inc": {"batch_size": batch_size}, "x": {}}}}
        plan = plan_in(tmp_path, monkeypatch, candidates)
        return dataclasses.replace(plan, incumbents={"b": "inc"}, carried=earlier)

    carry(plan(16))
    runs = pd.read_csv(RUNS)
    assert runs[["candidate", "rung", "seed"]].values.tolist() == [["inc", 1, 1], ["inc", 2, 2]]  # not seed 7
    assert runs["val_accuracy"].tolist() == [0.91, 0.93]
    assert runs["test_accuracy"].tolist() == [0.92, 0.94]
    assert "Carried from " in table(runs, plan(16)) and "`inc`" in table(runs, plan(16))
    carry(plan(16))
    assert len(pd.read_csv(RUNS)) == 2, "carried once"
    with pytest.raises(ParamsError, match="incumbents.b: 'inc' trained with another config in .*earlier"):
        carried_rows(plan(32))


def test_rung_1_seeds_are_distinct_from_the_finalists_and_the_budgets_take_turns(tmp_path, monkeypatch):
    budgets = {
        "a": {"max_params": 2000, "candidates": {"a1": {}, "a2": {}, "a3": {}}},
        "b": {"max_params": 2000, "candidates": {"b1": {}}},
    }
    assert turns(plan_in(tmp_path, monkeypatch, budgets)) == ["a1", "b1", "a2", "a3"]
    path = tmp_path / "search/candidates.yaml"
    path.write_text(
        yaml.safe_dump({"keep": 1, "rung1_seeds": [1, 2], "finalist_seeds": [2], "budgets": budgets})
    )
    with pytest.raises(ParamsError, match="finalist_seeds: must not repeat rung1_seeds"):
        load_plan(path)
    path.write_text(
        yaml.safe_dump(
            {
                "keep": 1,
                "rung1_seeds": [1],
                "finalist_seeds": [2],
                "budgets": budgets,
                "incumbents": {"a": "b1"},
            }
        )
    )
    with pytest.raises(ParamsError, match="incumbents.a: 'b1' is no candidate of the a budget"):
        load_plan(path)


def test_the_headline_steps_are_the_search_winners_on_all_training_images():
    """params.yaml's final and tiny steps train what the search chose on validation (the
    best finalist of each budget by mean validation accuracy), on every training image."""
    params = load_params(Path("params.yaml"))
    steps, record = load_steps(params), deciding_search()
    search = load_params(record.plans / "params.yaml")
    plan = load_plan(record.plans / "candidates.yaml", record.plans / "params.yaml")
    winners = {budget: name for budget, (name, _) in adopted(record.runs, plan.incumbents).items()}
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


def test_the_previous_search_decides_until_the_current_one_has_chosen(tmp_path, monkeypatch):
    """Until every candidate of candidates.yaml has trained on rung 1 and every finalist (the
    best `keep` and the incumbent) on the finalists' seeds, the search before decides."""
    monkeypatch.chdir(tmp_path)
    previous, runs = tmp_path / PREVIOUS_SEARCH, tmp_path / RUNS
    previous.mkdir(parents=True)
    (tmp_path / "search").mkdir()
    (tmp_path / "search/candidates.yaml").write_text(
        "keep: 1\nincumbents: {a: inc}\nbudgets: {a: {max_params: 9, candidates: {inc: {}, x: {}, y: {}}}}\n"
    )
    row = {"budget": "a", "rung": 1, "seed": 1, "params": 1, "val_accuracy": 0.9, "test_accuracy": None}
    pd.DataFrame([{**row, "candidate": "old", "experiment": "old-r1"}]).to_csv(
        previous / "runs.csv", index=False
    )

    def deciding(*rows):
        pd.DataFrame([{**row, **r} for r in rows]).to_csv(runs, index=False)
        return sorted(set(deciding_search().runs["candidate"]))

    # the incumbent carried in whole (both rungs) decides nothing while rung 1 runs
    incumbent = [{"candidate": "inc", "val_accuracy": 0.8}, {"candidate": "inc", "rung": 2, "seed": 2}]
    assert deciding(*incumbent, {"candidate": "x"}) == ["old"]
    rung1 = [*incumbent, {"candidate": "x", "val_accuracy": 0.95}, {"candidate": "y"}]
    assert deciding(*rung1) == ["old"]  # the finalist x has not trained on seed 2
    assert deciding(*rung1, {"candidate": "y", "rung": 2, "seed": 2}) == ["old"]  # y is no finalist
    assert deciding(*rung1, {"candidate": "x", "rung": 2, "seed": 2}) == ["inc", "x", "y"]
