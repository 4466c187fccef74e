"""What the report says about seeds: paired effects against the noise, and verdicts that
never present a model missing the target on one seed as simply meeting it."""

from __future__ import annotations

import pandas as pd
import pytest

from mnist_budget.base.layout import MAIN_LAYOUT
from mnist_budget.config.step_config import Target
from mnist_budget.report.history import meets, over_seeds
from mnist_budget.report.progression_report import verdict
from mnist_budget.report.writeup import Results, effect, effect_text, progression_table, step_section

TARGET = Target(test_accuracy=0.994, max_params=8000, max_epochs=15)


def step(accuracies: dict[int, float], params: int = 7592) -> dict:
    metrics = {
        "seeds": list(accuracies),
        "test_accuracy": over_seeds(accuracies),
        "params_total": params,
        "epochs": 15,
    }
    return {**metrics, "meets": meets(metrics, TARGET)}


def test_a_consistent_gain_on_every_seed_exceeds_the_noise():
    before = step({1: 0.9900, 2: 0.9910, 3: 0.9920})
    after = step({1: 0.9921, 2: 0.9929, 3: 0.9940})  # +0.21, +0.19, +0.20 pp
    e = effect(after, before)
    assert e.seeds == (1, 2, 3) and e.mean == pytest.approx(0.002)
    # 95% t interval, 2 degrees of freedom: 4.303 * 0.01 pp / sqrt(3)
    assert e.half_width == pytest.approx(4.303 * 0.0001 / 3**0.5, rel=1e-3)
    assert e.sign == 1 and effect_text(e) == "+0.20 ± 0.02 pp"


def test_a_difference_that_flips_sign_between_seeds_is_within_noise():
    before = step({1: 0.9949, 2: 0.9939, 3: 0.9947})
    after = step({1: 0.9959, 2: 0.9931, 3: 0.9952})  # +0.10, -0.08, +0.05 pp
    e = effect(after, before)
    assert e.sign == 0
    assert effect_text(e).endswith(", within noise") and effect_text(e).startswith("+0.02 ± ")


def test_only_the_seeds_both_steps_trained_are_paired():
    before = step({1: 0.990, 2: 0.991})
    after = step({2: 0.993, 3: 0.999})
    e = effect(after, before)
    assert e.seeds == (2,) and e.mean == pytest.approx(0.002) and e.half_width is None
    assert effect_text(e) == "+0.20 pp (one seed in common (2): no noise estimate)"
    assert (
        effect_text(effect(step({4: 0.99}), step({1: 0.98})))
        == "+1.00 pp (no seed in common: no noise estimate)"
    )


def test_a_mean_above_the_target_with_one_seed_below_is_said_so():
    m = step({1: 0.9949, 2: 0.9939, 3: 0.9947})
    assert m["meets"]["accuracy"] and not m["meets"]["every_seed"] and not m["meets"]["all"]
    assert verdict(m) == (
        "it meets the target on the mean but not on every seed (seed 2: 99.39%), within the budget"
    )
    assert verdict(step({1: 0.995, 2: 0.996})) == "it meets the target on every seed, within the budget"
    assert verdict(step({1: 0.990}, params=9000)) == "it does not meet the target, outside the budget"


def test_a_step_whose_schedule_watched_the_test_set_is_marked_in_the_table_and_its_result():
    metrics = {
        **step({1: 0.9949, 2: 0.9951}),
        "best_test_accuracy": 0.9952,
        "best_epoch": 14,
        "train_accuracy": 0.99,
        "params_trainable": 7000,
        "params_non_trainable": 592,
        "macs": 100,
        "receptive_field": 18,
        "min_test_accuracy_last_3": 0.99,
        "first_epoch_at_target": None,
    }
    entries = {
        "watched": {"schedule": {"name": "plateau", "watch": "test"}},
        "held-out": {"schedule": {"name": "plateau", "watch": "validation"}},
    }
    history = pd.DataFrame(
        [{"seed": seed, "epoch": epoch, "test_accuracy": 0.99, "train_accuracy": 0.99, "test_loss": 0.03,
          "train_loss": 0.03} for seed in (1, 2) for epoch in (1, 2, 3)]
    )  # fmt: skip
    results = Results(
        MAIN_LAYOUT, TARGET, entries, dict.fromkeys(entries, "why"), dict.fromkeys(entries, metrics),
        dict.fromkeys(entries, history),
    )  # fmt: skip
    table = progression_table(results, list(entries)).splitlines()
    assert "| `watched` (steered by the test set) |" in table[2]
    assert "| `held-out` " in table[3] and "steered" not in table[3]
    result = next(line for line in step_section(results, "watched", None) if line.startswith("**Result.**"))
    assert result.startswith(
        "**Result.** **Steered by the test set**: its schedule watched the test accuracy"
    )
    assert not any("Steered" in line for line in step_section(results, "held-out", "watched"))
