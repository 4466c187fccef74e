"""The ablation's arithmetic on numbers worked out by hand: paired differences, the 95%
Student's t interval, the verdict each row states, and the final epoch each seed reports."""

from __future__ import annotations

import pandas as pd
import pytest

from mnist_budget.config.ablation_config import Arm
from mnist_budget.report.ablation import effects_table, row_sentence
from mnist_budget.report.history import final_accuracies
from mnist_budget.report.paired import interval_text, paired_effect, verdict

BASELINE = {1: 0.9950, 2: 0.9945, 3: 0.9940, 4: 0.9948, 5: 0.9952, 6: 0.9944, 7: 0.9946, 8: 0.9950}


def shifted(by: dict[int, float]) -> dict[int, float]:
    return {seed: BASELINE[seed] + by[seed] for seed in by}


def test_eight_paired_seeds_give_the_t_interval_worked_out_by_hand():
    # differences in pp: -0.50 -0.40 -0.60 -0.50 -0.45 -0.55 -0.50 -0.50
    # mean -0.50; deviations 0 .10 -.10 0 .05 -.05 0 0 -> sum of squares 0.025, s^2 = 0.025/7
    # s = 0.059761 pp; t(0.975, 7) = 2.364624; half width = 2.364624 * 0.059761 / sqrt(8) = 0.049962 pp
    by = {1: -0.0050, 2: -0.0040, 3: -0.0060, 4: -0.0050, 5: -0.0045, 6: -0.0055, 7: -0.0050, 8: -0.0050}
    e = paired_effect(shifted(by), BASELINE)
    assert e.n == 8 and e.seeds == tuple(range(1, 9))
    assert e.mean == pytest.approx(-0.0050)
    assert e.low == pytest.approx(-0.0050 - 0.00049962, abs=1e-8)
    assert e.high == pytest.approx(-0.0050 + 0.00049962, abs=1e-8)
    assert e.sign == -1
    assert interval_text(e) == "-0.50 pp [-0.55, -0.45]"
    # taking the idea out costs accuracy: the idea helps; putting it in would hurt
    assert verdict(e, removes=True) == "helps"
    assert verdict(e, removes=False) == "hurts"


def test_an_interval_across_zero_is_within_noise_at_its_seed_count():
    # differences in pp: +0.10 -0.10 +0.05 -0.05 +0.02 -0.02 0 +0.04: mean 0.005 pp
    by = {1: 0.0010, 2: -0.0010, 3: 0.0005, 4: -0.0005, 5: 0.0002, 6: -0.0002, 7: 0.0, 8: 0.0004}
    e = paired_effect(shifted(by), BASELINE)
    assert e.mean == pytest.approx(0.00005)
    assert e.low < 0 < e.high and e.sign == 0
    assert verdict(e, removes=True) == verdict(e, removes=False) == "within noise at 8 seeds"


def test_a_gain_from_adding_an_idea_is_a_help():
    # three seeds, +0.10 +0.20 +0.30 pp: mean 0.20, s 0.10, t(0.975, 2) = 4.302653
    # half width 4.302653 * 0.10 / sqrt(3) = 0.248414 pp: the interval [-0.05, +0.45] holds 0
    e = paired_effect(shifted({1: 0.0010, 2: 0.0020, 3: 0.0030}), BASELINE)
    assert e.half_width == pytest.approx(0.00248414, abs=1e-8)
    assert verdict(e, removes=False) == "within noise at 3 seeds"
    # the same differences four times tighter are resolved
    e = paired_effect(shifted({1: 0.00175, 2: 0.0020, 3: 0.00225}), BASELINE)
    assert e.sign == 1 and verdict(e, removes=False) == "helps" and verdict(e, removes=True) == "hurts"


def test_only_common_seeds_pair_and_one_seed_has_no_interval():
    e = paired_effect({2: 0.995, 9: 0.990}, BASELINE)
    assert e.seeds == (2,) and e.mean == pytest.approx(0.0005) and e.low is None
    assert verdict(e, removes=True) == "not resolved: 1 seed in common"
    assert interval_text(e) == "+0.05 pp"


def test_final_accuracies_are_each_seeds_last_epoch_in_seed_order() -> None:
    # The seed pool finishes seeds out of order, and the report lists them as they come.
    history = pd.DataFrame(
        {
            "seed": [4, 4, 3, 3, 1, 1],
            "epoch": [2, 1, 1, 2, 2, 1],
            "test_accuracy": [0.994, 0.90, 0.91, 0.995, 0.993, 0.92],
        }
    )
    accuracies = final_accuracies(history)
    assert list(accuracies) == [1, 3, 4]
    assert accuracies == {1: 0.993, 3: 0.995, 4: 0.994}


def test_an_arm_at_chance_is_said_not_to_learn_and_one_near_the_baseline_is_not() -> None:
    # The final recipe without batch norm scored 9.86-11.35%: "helps" alone undersells it.
    at_chance = {seed: 0.10 + seed / 1000 for seed in BASELINE}
    table = effects_table(
        "full",
        {"no-batch-norm": Arm(idea="batch norm", removes=True, step="s2-batch-norm"),
         "no-augment": Arm(idea="augmentation", removes=True, step="s4-augment")},
        {"full": BASELINE, "no-batch-norm": at_chance, "no-augment": shifted(dict.fromkeys(BASELINE, -0.0001))},
    )  # fmt: skip
    no_bn, no_augment = (row_sentence(row) for row in table.to_dict("records"))
    assert no_bn.endswith(": batch norm helps: without it the net does not learn (10.45%, chance being 10%).")
    assert "does not learn" not in no_augment
