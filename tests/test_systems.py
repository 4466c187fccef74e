"""The seed systems: their configs match the write-ups' sizes, claims are validated, and the
verdicts compare like with like."""

import copy
from pathlib import Path

import pandas as pd
import pytest

from mnist_budget.model_stats import count_params
from mnist_budget.nets import build_net
from mnist_budget.params import ParamsError, load_params
from mnist_budget.seed_systems import (
    COUNTS,
    PARAMS_TOLERANCE,
    Claim,
    claimed_accuracy,
    load_gpu_steps,
    load_systems,
    verdict,
)
from mnist_budget.step_config import load_steps

SEED_SYSTEMS = Path(__file__).resolve().parents[1] / "seed-systems" / "params.yaml"
from tests.conftest import SMALL_STEP as STEP

PARAMS = {
    "recipe": {},
    "steps": {"a-small": STEP},
    "gpu_steps": {"a-big": {**STEP, "layers": ["conv 256", "conv 256", "gap", "conv 10 k=1"]}},
    "systems": {
        "a": {
            "title": "System A",
            "counts": "trainable",
            "differs": "because",
            "claims": {
                "a-small": {"params": 1000, "accuracy": 0.99, "accuracy_at": 2, "epochs": 2},
                "a-big": {"params": 600000, "epochs": 2},
            },
        }
    },
}


def params_with(**changes) -> dict:
    params = copy.deepcopy(PARAMS)
    claims = params["systems"]["a"]["claims"]
    for key, value in changes.items():
        claims["a-small"][key] = value
    return params


def error_of(params: dict) -> str:
    with pytest.raises(ParamsError) as info:
        load_systems(params)
    return str(info.value)


@pytest.fixture(scope="module")
def seed_params():
    return load_params(SEED_SYSTEMS)


def test_every_seed_system_step_matches_its_claimed_size(seed_params):
    """The multi-million-parameter steps are never trained here: this is their check."""
    systems = load_systems(seed_params)
    steps = {**load_steps(seed_params), **load_gpu_steps(seed_params)}
    checked = 0
    for system in systems.values():
        for name, claim in system.claims.items():
            counted = count_params(build_net(steps[name]))[COUNTS[system.counts]]
            if claim.params is not None:
                assert abs(counted - claim.params) <= PARAMS_TOLERANCE * claim.params, (name, counted)
                checked += 1
    assert checked >= 18
    assert count_params(build_net(steps["starter-6m"]))["params_total"] == 6_379_786


def test_the_four_systems_and_their_budgets(seed_params):
    systems = load_systems(seed_params)
    assert list(systems) == ["keras", "models7", "steps5", "steps7"]
    steps = load_steps(seed_params)
    assert {steps[n].optimizer["name"] for n in systems["keras"].claims} == {"adam"}
    assert {steps[n].schedule["name"] for n in systems["keras"].claims} == {"keras_plateau"}


def test_valid_systems_load_in_order():
    system = load_systems(PARAMS)["a"]
    assert list(system.claims) == ["a-small", "a-big"]
    assert system.claims["a-small"].accuracy_at == 2
    assert system.claims["a-big"].accuracy is None and system.claims["a-big"].accuracy_at == "final"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"accuracy_at": "last"}, "systems.a.claims.a-small.accuracy_at: must be final, best or an epoch"),
        ({"accuracy_at": 9}, "accuracy_at: must be final, best or an epoch number up to 2"),
        ({"accuracy": 99.4}, "systems.a.claims.a-small.accuracy: is a fraction"),
        ({"epochs": "ten"}, "systems.a.claims.a-small.epochs: expected an integer"),
        ({"epochs": 3}, "a-small.epochs: the claim is for 3 epochs but the step trains 2"),
        ({"typo": 1}, "systems.a.claims.a-small.typo: unknown key"),
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
    assert list(load_systems(params)["b"].claims) == ["a-small"]


def test_a_gpu_step_may_not_also_be_a_step():
    params = copy.deepcopy(PARAMS)
    params["gpu_steps"]["a-small"] = STEP
    assert "gpu_steps.a-small: is also in `steps`" in error_of(params)


def test_claimed_accuracy_reads_the_run_the_way_the_claim_was_made():
    history = pd.DataFrame(
        {
            "seed": [1, 1, 1, 2, 2, 2],
            "epoch": [1, 2, 3] * 2,
            "test_accuracy": [0.97, 0.995, 0.99, 0.95, 0.995, 0.99],
        }
    )
    metrics = {"test_accuracy": {"mean": 0.99, "min": 0.99}, "best_test_accuracy": 0.995}

    def claim(at):
        return Claim("a-small", None, 0.99, at, 3)

    assert claimed_accuracy(claim("final"), metrics, history) == 0.99
    assert claimed_accuracy(claim("best"), metrics, history) == 0.995
    assert claimed_accuracy(claim(1), metrics, history) == pytest.approx(0.96)  # the seeds' mean


def test_verdicts():
    claim = Claim("a-small", 1000, 0.9900, "best", 3)
    assert verdict(claim, 1010, 0.9915, True).startswith(
        "✅ beats the claim: 99.15% at the best epoch (+0.15 pp)"
    )
    assert verdict(claim, 1010, 0.9895, True).startswith("✅ matches the claim")
    assert verdict(claim, 1010, 0.9850, True).startswith("❌ falls short: 98.50% at the best epoch (-0.50 pp")
    assert verdict(claim, 1100, 0.9900, True).endswith("size off by +10.0%")
    assert verdict(claim, 1000, None, False) == "config only: needs a GPU, not trained here"
    assert "gives no accuracy" in verdict(Claim("s", 1000, None, "final", 3), 1000, None, True)


def test_readme_quotes_the_comparison_the_pipeline_wrote():
    """The README's table is the committed report's, not a hand-edited copy."""
    root = SEED_SYSTEMS.parents[1]
    report = (root / "reports" / "seed-systems" / "report.md").read_text().splitlines()
    start = report.index("## Comparison with the write-ups") + 2
    table = []
    for line in report[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    assert len(table) >= 2 + 20  # header, rule, one row per claimed step
    assert "\n".join(table) in (root / "README.md").read_text()
