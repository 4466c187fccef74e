"""The seed systems: their configs match the write-ups' sizes, claims are validated, and the
verdicts compare like with like, over every seed."""

import copy
from pathlib import Path

import pandas as pd
import pytest

from mnist_budget.config.claims_config import COUNTS, Claim, load_systems, unchecked
from mnist_budget.config.params import ParamsError, load_params
from mnist_budget.config.step_config import load_gpu_steps, load_steps
from mnist_budget.report.seed_systems import (
    PARAMS_TOLERANCE,
    SYSTEM_COLUMNS,
    Run,
    check,
    compare_accuracy,
    comparison_rows,
    system_rows,
)
from mnist_budget.train.model_stats import count_params
from mnist_budget.train.nets import build_net
from tests.conftest import SMALL_STEP as STEP

SEED_SYSTEMS = Path(__file__).resolve().parents[1] / "seed-systems"
FINAL_STEPS = {
    "keras-big-kernels",
    "keras-separable",
    "keras-inception",
    "models7-7-dropout",
    "steps5-5-dropout-augment",
    "steps7-7-rotate-steplr",
}
PARAMS = {
    "recipe": {},
    "steps": {"a-small": STEP, "a-next": STEP},
    "gpu_steps": {"a-big": {**STEP, "layers": ["conv 256", "conv 256", "gap", "conv 10 k=1"]}},
    "systems": {
        "a": {
            "title": "System A",
            "source": "a.txt",
            "counts": "trainable",
            "differs": "because",
            "claims": {
                "a-small": {
                    "epochs": 2,
                    "params": 1000,
                    "test_accuracy": {"epoch 2": 0.99, "best": 0.995},
                    "train_accuracy": {"final": 0.98},
                    "reached": {"accuracy": 0.99, "epoch": 2},
                    "held": {"accuracy": 0.99, "after": 1},
                    "says": ["overfitting"],
                },
                "a-next": {"epochs": 2, "says": ["same size as the previous step"]},
                "a-big": {"epochs": 2, "params": 700000, "test_accuracy": {"final": 0.99}},
            },
        }
    },
}
TARGET = 0.99


def params_with(**changes) -> dict:
    params = copy.deepcopy(PARAMS)
    claims = params["systems"]["a"]["claims"]
    for key, value in changes.items():
        claims["a-small"][key] = value
    return params


def all_steps(params: dict) -> dict:
    """Every step and gpu step of a write-up pipeline's params, resolved."""
    return {**load_steps(params), **load_gpu_steps(params)}


def systems_of(params: dict) -> dict:
    """`params`' systems (a claims file's), validated against its steps as `resolve` does."""
    return load_systems(params["systems"], {name: step.epochs for name, step in all_steps(params).items()})


def sizes_of(params: dict) -> dict:
    """Every step's size, as `resolve` writes it for `compare`."""
    return {name: count_params(build_net(step)) for name, step in all_steps(params).items()}


def error_of(params: dict) -> str:
    with pytest.raises(ParamsError) as info:
        systems_of(params)
    return str(info.value)


def run_of(
    test: dict[int, list[float]], train: dict[int, list[float]] | None = None, params: int = 1000
) -> Run:
    """A run from each seed's test (and train) accuracy per epoch."""
    rows = [
        {
            "seed": seed,
            "epoch": epoch,
            "train_accuracy": (train or test)[seed][epoch - 1],
            "test_accuracy": accuracy,
        }
        for seed, curve in test.items()
        for epoch, accuracy in enumerate(curve, 1)
    ]
    return Run(pd.DataFrame(rows), {"params_trainable": params, "params_total": params + 20})


@pytest.fixture(scope="module")
def seed_params():
    return {**load_params(SEED_SYSTEMS / "params.yaml"), **load_params(SEED_SYSTEMS / "claims.yaml")}


def test_every_seed_system_step_matches_its_claimed_size(seed_params):
    """The multi-million-parameter steps are never trained here: this is their check."""
    systems = systems_of(seed_params)
    steps = all_steps(seed_params)
    checked = 0
    for system in systems.values():
        for claim in system.claims:
            if claim.kind in ("params", "trainable_params"):
                key = COUNTS[system.counts] if claim.kind == "params" else "params_trainable"
                counted = count_params(build_net(steps[claim.step]))[key]
                assert abs(counted - claim.value) <= PARAMS_TOLERANCE * claim.value, (claim.step, counted)
                checked += 1
    assert checked >= 21
    assert count_params(build_net(steps["starter-6m"]))["params_total"] == 6_379_786


def test_the_four_systems_their_settings_and_seeds(seed_params):
    systems = systems_of(seed_params)
    assert list(systems) == ["keras", "models7", "steps5", "steps7"]
    steps = load_steps(seed_params)
    assert {steps[n].optimizer["name"] for n in systems["keras"].steps} == {"adam"}
    # the write-up's plateau rule keeps its factor at 1: a constant LR
    assert {steps[n].schedule["name"] for n in systems["keras"].steps} == {"none"}
    # each write-up's claimed final step over seeds 1-3, the others on seed 1
    assert {n for n, step in steps.items() if step.seeds == (1, 2, 3)} == FINAL_STEPS
    assert {step.seeds for n, step in steps.items() if n not in FINAL_STEPS} == {(1,)}
    # the write-ups' every number: 5-step's best accuracies, step by step
    best = [c.value for c in systems["steps5"].claims if c.kind == "test_accuracy" and c.at == "best"]
    assert best == [0.9898, 0.9894, 0.9935, 0.9945, 0.9946]


def test_valid_systems_load_in_order():
    system = systems_of(PARAMS)["a"]
    assert system.steps == ["a-small", "a-next", "a-big"]
    small = [(c.kind, c.value, c.at) for c in system.claims if c.step == "a-small"]
    assert small == [
        ("epochs", 2, None),
        ("params", 1000, None),
        ("train_accuracy", 0.98, "final"),
        ("test_accuracy", 0.99, 2),
        ("test_accuracy", 0.995, "best"),
        ("reached", 0.99, 2),
        ("held", 0.99, 1),
        ("says", "overfitting", None),
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"test_accuracy": {"last": 0.99}},
            "systems.a.claims.a-small.test_accuracy.last: must be final, best or 'epoch N'",
        ),
        (
            {"test_accuracy": {"epoch 9": 0.99}},
            "test_accuracy.epoch 9: must be an epoch number from 1 to 2, got 9",
        ),
        (
            {"test_accuracy": {10: 0.99}},
            "test_accuracy.10: must be final, best or 'epoch N' (N from 1 to 2), got 10",
        ),
        ({"train_accuracy": {"best": 99.4}}, "systems.a.claims.a-small.train_accuracy.best: is a fraction"),
        ({"epochs": "ten"}, "systems.a.claims.a-small.epochs: expected an integer"),
        ({"epochs": 3}, "a-small.epochs: the claim is for 3 epochs but the step trains 2"),
        ({"typo": 1}, "systems.a.claims.a-small.typo: unknown key"),
        (
            {"says": ["overfiting"]},
            "systems.a.claims.a-small.says: unknown statement 'overfiting'; did you mean 'overfitting'?",
        ),
        ({"held": {"accuracy": 0.99, "after": 2}}, "a-small.held.after: must be an epoch number from 1 to 1"),
        ({"reached": {"epoch": 1}}, "systems.a.claims.a-small.reached.accuracy: missing required key"),
    ],
)
def test_bad_claims_name_the_system_step_and_key(changes, message):
    assert message in error_of(params_with(**changes))


def test_every_step_belongs_to_a_system():
    params = copy.deepcopy(PARAMS)
    params["steps"]["a-orphan"] = STEP
    assert "steps.a-orphan: belongs to no system" in error_of(params)
    params = copy.deepcopy(PARAMS)
    params["systems"]["a"]["claims"]["a-missing"] = {"epochs": 2}
    assert "systems.a.claims.a-missing: no such step" in error_of(params)
    params = copy.deepcopy(PARAMS)
    params["systems"]["a"]["counts"] = "keras"
    assert "systems.a.counts: must be one of total, trainable" in error_of(params)


def test_two_systems_may_share_a_first_step():
    params = copy.deepcopy(PARAMS)
    params["systems"]["b"] = {**params["systems"]["a"], "claims": {"a-small": {"epochs": 2}}}
    assert systems_of(params)["b"].steps == ["a-small"]


def test_a_gpu_step_may_not_also_be_a_step():
    params = copy.deepcopy(PARAMS)
    params["gpu_steps"]["a-small"] = STEP
    assert "gpu_steps.a-small: is also in `steps`" in error_of(params)


def test_accuracy_claims_are_read_on_every_seed_the_way_the_claim_was_made():
    run = run_of({1: [0.97, 0.995, 0.99], 2: [0.95, 0.993, 0.991]})
    assert run.read("test_accuracy", "final") == [0.99, 0.991]
    assert run.read("test_accuracy", "best") == [0.995, 0.993]
    assert run.read("test_accuracy", 1) == [0.97, 0.95]


def test_matches_within_the_seeds_range_and_beats_only_when_every_seed_agrees():
    seeds = [0.9930, 0.9945, 0.9950]
    assert compare_accuracy(0.9940, seeds) == "✅ matches (+0.02 pp)"  # inside the range
    assert compare_accuracy(0.9958, seeds).startswith("✅ matches")  # within 0.1 pp of the best seed
    assert compare_accuracy(0.9915, seeds) == "✅ beats (+0.27 pp)"  # every seed above it
    assert compare_accuracy(0.9965, seeds) == "❌ falls short (-0.23 pp)"
    assert compare_accuracy(0.9915, [0.9930], "▲ higher", "▼ lower") == "▲ higher (+0.15 pp)"


def test_first_epoch_reached_and_accuracy_held():
    run = run_of(
        {1: [0.98, 0.993, 0.995, 0.996], 2: [0.98, 0.991, 0.994, 0.990], 3: [0.97, 0.98, 0.99, 0.99]}
    )

    def verdict(kind, value, at):
        return check(Claim("s", kind, value, at), "trainable", run.params, run, None, TARGET)

    assert verdict("reached", 0.994, 2) == (
        "epoch 3, 3, never",
        "❌ falls short: every seed reaches it later or never",
    )
    assert verdict("reached", 0.994, 3)[1] == "✅ matches: within the seeds' epochs"
    assert verdict("reached", 0.993, 2) == ("epoch 2, 3, never", "✅ matches: within the seeds' epochs")
    assert verdict("reached", 0.99, None)[1] == "✅ matches: every seed reaches it"
    assert verdict("reached", 0.97, 2)[1] == "✅ beats: every seed reaches it earlier"
    assert verdict("reached", 0.999, 2) == (
        "never reached",
        "❌ falls short: every seed reaches it later or never",
    )
    reproduced, held = verdict("held", 0.993, 2)
    assert reproduced == "lowest after epoch 2: 99.17% (99.00%-99.50%)"
    assert held == "✅ matches on 1 of 3 seeds"
    assert verdict("held", 0.9995, 2)[1] == "❌ falls short: held on no seed"
    assert verdict("held", 0.98, 1)[1] == "✅ matches: held on every seed"


def test_statements_are_checked_against_the_train_test_gap_and_the_curve():
    overfit = run_of({1: [0.98, 0.99], 2: [0.98, 0.99]}, train={1: [0.99, 0.999], 2: [0.99, 0.997]})
    tight = run_of({1: [0.98, 0.99]}, train={1: [0.98, 0.9905]})

    def says(statement, run, previous=None):
        return check(Claim("s", "says", statement), "trainable", run.params, run, previous, TARGET)

    assert says("overfitting", overfit) == ("best train - best test: +0.80 pp", "✅ agrees")
    assert says("not overfitting", overfit)[1] == "❌ disagrees"
    assert says("not overfitting", tight) == ("best train - best test: +0.05 pp", "✅ agrees")
    assert says("less overfitting", tight, overfit)[1] == "✅ agrees"
    assert says("less overfitting", overfit, tight)[1] == "❌ disagrees"
    assert says("still improving", tight)[1] == "✅ agrees"  # best at the last epoch
    dropping = run_of({1: [0.985, 0.992, 0.989, 0.988, 0.987]})
    assert says("still improving", dropping)[1] == "❌ disagrees"
    assert says("drops after the target", dropping)[1] == "✅ agrees"
    assert says("same size as the previous step", tight, overfit)[1] == "✅ agrees"
    assert says("same size as the previous step", tight, run_of({1: [0.9]}, params=900)) == (
        "1,020 against 920",
        "❌ disagrees",
    )


def test_comparison_has_a_row_per_claim_and_says_what_was_not_trained():
    systems = systems_of(PARAMS)
    runs = {name: run_of({1: [0.985, 0.992], 2: [0.98, 0.996]}) for name in ("a-small", "a-next")}
    # the sizes `resolve` counted: a-small's as claimed, a-big's from its config
    sizes = {**sizes_of(PARAMS), "a-small": runs["a-small"].params}
    rows = comparison_rows(systems, runs, sizes, TARGET)
    assert len(rows) == len(systems["a"].claims) == 13
    by_claim = {(row["step"], row["claim"]): row for row in rows}
    best = by_claim[("`a-small`", "test accuracy at the best epoch")]
    assert (best["claimed"], best["reproduced"], best["seeds"]) == (
        "99.50%",
        "99.40% (99.20%-99.60%)",
        "1, 2",
    )
    assert best["verdict"] == "✅ matches (-0.10 pp)"
    size = by_claim[("`a-small`", "parameters (trainable)")]
    assert (size["reproduced"], size["verdict"]) == ("1,000", "✅ matches (+0.0%)")
    big = by_claim[("`a-big`", "test accuracy at the final epoch")]
    assert (big["reproduced"], big["verdict"]) == ("GPU only", "config only: needs a GPU, not trained here")
    big_size = by_claim[("`a-big`", "parameters (trainable)")]
    assert big_size["verdict"].startswith("❌ size off")  # counted from the config, never trained


def test_a_statement_with_no_check_is_kept_and_said_so_in_one_line():
    params = params_with(says=["overfitting", "the loss falls smoothly"])
    systems = systems_of(params)
    line = (
        "systems.a.claims.a-small.says: 'the loss falls smoothly' cannot be checked: the project checks "
        "a statement against the run only when it is one of: overfitting, not overfitting, less "
        "overfitting, still improving, drops after the target, same size as the previous step "
        "(mnist_budget/config/claims_config.py: STATEMENTS)"
    )
    assert unchecked(systems) == [line]
    runs = {name: run_of({1: [0.985, 0.992]}) for name in ("a-small", "a-next")}
    rows = comparison_rows(systems, runs, sizes_of(params), TARGET)
    smooth = next(row for row in rows if row["claimed"] == "the loss falls smoothly")
    assert (smooth["claim"], smooth["reproduced"], smooth["verdict"]) == (
        "says",
        "-",
        "cannot check: no check for this statement",
    )
    assert unchecked(systems_of(PARAMS)) == []  # every statement of the shipped kind is checked


def test_a_claim_over_many_runs_is_read_as_their_mean():
    params = params_with(runs=223)
    claim = next(c for c in systems_of(params)["a"].claims if c.kind == "test_accuracy" and c.at == "best")
    assert claim.runs == 223 and claim.read_at == "the best epoch, mean of 223 runs"
    assert "systems.a.claims.a-small.runs: must be at least 1" in error_of(params_with(runs=0))


def test_each_system_gets_one_row_its_last_net_its_quoted_claim_and_the_re_run():
    params = copy.deepcopy(PARAMS)
    params["systems"]["b"] = {
        **params["systems"]["a"],
        "claims": {"a-small": {"epochs": 2, "params": 1000, "test_accuracy": {"final": 0.99, "best": 0.995}}},
    }
    runs = {name: run_of({1: [0.985, 0.992], 2: [0.98, 0.996]}) for name in ("a-small", "a-next")}
    sizes = {**sizes_of(params), "a-small": runs["a-small"].params}
    rows = system_rows(systems_of(params), runs, sizes).set_index("system")
    assert list(rows.columns) == SYSTEM_COLUMNS[1:]
    trained = rows.loc["b"]  # quoted by its best epoch, the number people quote
    assert (trained["step"], trained["claimed"], trained["claimed_at"], trained["seeds"]) == (
        "a-small",
        0.995,
        "best",
        2,
    )
    assert (trained["final_mean"], trained["final_min"], trained["best_mean"]) == pytest.approx(
        (0.994, 0.992, 0.994)
    )
    assert trained["verdict"] == "✅ matches (-0.10 pp)"  # read at the best epoch, as claimed
    assert trained["verdict_final"] == "✅ matches (-0.10 pp)"
    gpu_only = rows.loc["a"]  # ends on a step trained elsewhere: no re-run
    assert (gpu_only["step"], gpu_only["seeds"], gpu_only["claimed"]) == ("a-big", 0, 0.99)
    assert pd.isna(gpu_only["final_mean"]) and pd.isna(gpu_only["verdict"])
