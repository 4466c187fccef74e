"""Schedules against their definitions; training is deterministic; divergence is caught."""

import itertools
import math

import pytest
import torch

from mnist_budget.config.step_config import parse_step
from mnist_budget.train.dataset import Mnist, normalize
from mnist_budget.train.nets import build_net
from mnist_budget.train.optim import Schedule
from mnist_budget.train.runtime import seed_everything
from mnist_budget.train.training import TrainingDiverged, WeightAverage, distilled, fit
from tests.conftest import synthetic_digits
from tests.test_config import entry

LR = 0.1


def trace(schedule: dict, epochs: int, batches: int = 1, accuracies=None) -> list[float]:
    """LR in use at each batch of each epoch."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=LR)
    sched = Schedule(optimizer, schedule, epochs, batches)
    lrs = []
    for epoch in range(epochs):
        for _ in range(batches):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            sched.after_batch()
        sched.after_epoch(accuracies[epoch] if accuracies else 0.0)
    return lrs


def test_none_keeps_the_lr():
    assert trace({"name": "none"}, 4) == [LR] * 4


def test_step_lr():
    lrs = trace({"name": "step", "step_size": 2, "gamma": 0.5}, 6)
    assert lrs == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025])


def test_multistep_lr():
    lrs = trace({"name": "multistep", "milestones": [2, 4], "gamma": 0.1}, 5)
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_onecycle_per_batch():
    settings = {
        "name": "onecycle",
        "max_lr": 0.4,
        "pct_start": 0.25,
        "div_factor": 20.0,
        "final_div_factor": 100.0,
        "anneal": "cos",
    }
    lrs = trace(settings, epochs=4, batches=10)
    peak = round(0.25 * 40) - 1
    assert lrs[0] == pytest.approx(0.4 / 20)
    assert lrs[peak] == pytest.approx(0.4)
    assert max(lrs) == pytest.approx(0.4)
    assert all(a <= b for a, b in itertools.pairwise(lrs[: peak + 1]))
    assert all(a >= b for a, b in itertools.pairwise(lrs[peak:]))
    # one step short of the end of the cosine: it lands on initial / final_div_factor after it
    final = 0.4 / 20 / 100
    t = (39 - peak) / (39 - peak)
    assert lrs[-1] == pytest.approx(final + (0.4 - final) * (1 + math.cos(math.pi * t)) / 2)


def test_cosine_per_batch():
    lrs = trace({"name": "cosine", "min_lr": 0.01}, epochs=2, batches=5)
    expected = [0.01 + (LR - 0.01) * (1 + math.cos(math.pi * t / 10)) / 2 for t in range(10)]
    assert lrs == pytest.approx(expected)


def test_piecewise_is_linear_between_its_points_per_batch():
    settings = {"name": "piecewise", "epochs": [0, 2, 8, 10], "lrs": [0.05, 0.1, 0.01, 0.0]}
    lrs = trace(settings, epochs=10, batches=4)
    assert lrs[0] == pytest.approx(0.05)  # the optimizer's own lr (0.1) is not used
    assert lrs[4] == pytest.approx(0.075)  # half way to epoch 2
    assert lrs[8] == pytest.approx(0.1)
    assert lrs[20] == pytest.approx(0.1 - 0.09 * 3 / 6)  # epoch 5 of the 2 -> 8 segment
    assert lrs[-1] == pytest.approx(0.01 * 1 / 8)  # last batch: 1/4 epoch before the end


def test_reduce_on_plateau_of_test_accuracy():
    accuracies = [0.90, 0.95, 0.95, 0.95, 0.95, 0.95]
    lrs = trace({"name": "plateau", "factor": 0.1, "patience": 2, "min_lr": 0.0}, 6, accuracies=accuracies)
    # best at epoch 2; epochs 3, 4, 5 do not improve: more than `patience` -> cut after 5
    assert lrs == pytest.approx([0.1] * 5 + [0.01])


def test_keras_plateau_rule():
    accuracies = [0.90, 0.95, 0.96, 0.96, 0.955, 0.97, 0.97, 0.96, 0.96, 0.96, 0.96, 0.96, 0.96]
    settings = {"name": "keras_plateau", "factor": 0.5, "window": 3, "min_lr": 0.0}
    lrs = trace(settings, len(accuracies), accuracies=accuracies)
    # epoch 9 (0.96) is not above epoch 6 (0.97): cut. Epochs 10, 11 are within 3 of that cut;
    # epoch 12 (0.96) is not above epoch 9 (0.96): cut again.
    assert lrs == pytest.approx([0.1] * 9 + [0.05] * 3 + [0.025])


def synthetic_mnist() -> Mnist:
    train_images, train_labels = synthetic_digits(320, seed=0)
    test_images, test_labels = synthetic_digits(160, seed=1)
    as_tensor = lambda a: torch.from_numpy(a.copy())
    return Mnist(
        normalize(as_tensor(train_images), 0.2, 0.3),
        as_tensor(train_labels).long(),
        normalize(as_tensor(test_images), 0.2, 0.3),
        as_tensor(test_labels).long(),
        black=-0.2 / 0.3,
    )


def train_once(epochs=2, **changes) -> list[dict]:
    step = parse_step("tiny", entry(epochs=epochs, **changes))
    generator = seed_everything(step.seeds[0])
    history, _ = fit(build_net(step), synthetic_mnist(), step, generator)
    assert set(history[0]) == {"epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"}
    return history  # no wall times: a re-run writes the same bytes


def test_training_is_deterministic_and_learns():
    recipe = {"augment": {"rotate": 10, "erase": 0.3}, "optimizer": {"name": "adam", "lr": 0.01}}
    first = train_once(epochs=5, **recipe)
    assert first == train_once(epochs=5, **recipe)
    assert first[-1]["test_accuracy"] > 0.5  # the synthetic classes are easy


def test_bf16_training_is_deterministic_and_learns_like_fp32():
    recipe = {"augment": {"rotate": 10}, "optimizer": {"name": "adam", "lr": 0.01}}
    fp32 = train_once(epochs=5, **recipe)
    bf16 = train_once(epochs=5, precision="bf16", **recipe)
    assert bf16 == train_once(epochs=5, precision="bf16", **recipe)
    assert bf16 != fp32  # the forward pass really ran in bf16
    # 160 synthetic test images swing by 20 pp between epochs (0.60 -> 0.39 -> 0.56 seen in
    # one bf16 run): compare the training loss, and the test accuracy at its best epoch
    assert bf16[-1]["train_loss"] == pytest.approx(fp32[-1]["train_loss"], rel=0.1)
    assert bf16[-1]["train_loss"] < 0.7 * bf16[0]["train_loss"]
    assert max(row["test_accuracy"] for row in bf16) > 0.5


def test_divergence_stops_with_a_clear_error():
    with pytest.raises(TrainingDiverged, match="lower optimizer.lr"):
        train_once(optimizer={"name": "sgd", "lr": 1e12, "momentum": 0.9}, bn=False)


def test_weight_average_is_what_gets_scored():
    recipe = {"optimizer": {"name": "adam", "lr": 0.01}}
    plain = train_once(epochs=2, **recipe)
    averaged = train_once(epochs=2, ema=0.9, **recipe)
    assert [row["train_loss"] for row in averaged] == [row["train_loss"] for row in plain]
    assert [row["test_loss"] for row in averaged] != [row["test_loss"] for row in plain]


def test_weight_average_follows_the_ema_formula():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    average = WeightAverage(model, decay=0.75)
    before = {k: v.clone() for k, v in average.module.state_dict().items()}
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(1.0)
    average.update()
    for key, value in average.module.state_dict().items():
        if value.is_floating_point():
            expected = 0.75 * before[key] + 0.25 * model.state_dict()[key]
            assert torch.allclose(value, expected), key


def test_a_log_gets_one_line_per_epoch(capfd):
    """stderr not a terminal (a log, `dvc repro > log`): one plain line per epoch, no bar."""
    history = train_once(epochs=3)
    err = capfd.readouterr().err
    assert "\r" not in err
    lines = err.splitlines()
    assert len(lines) == 3, err
    for epoch, (line, row) in enumerate(zip(lines, history, strict=True), start=1):
        assert line.startswith(f"tiny {epoch}/3: 10/10 batches in "), line
        shown = float(line.rsplit("test=", 1)[1].rstrip("%"))
        assert shown == pytest.approx(row["test_accuracy"] * 100, abs=0.006), line  # the history's, rounded


class Insists(torch.nn.Module):
    """A teacher that puts all its weight on one class, whatever the image."""

    def __init__(self, label: int) -> None:
        super().__init__()
        self.label = label

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(torch.full((len(images),), self.label), 10).float() * 20


def test_distillation_mixes_the_labels_loss_with_the_match_to_the_teacher():
    logits, labels = torch.randn(8, 10, generator=torch.Generator().manual_seed(0)), torch.arange(8)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    # a teacher that agrees with the student adds nothing; the labels keep their share
    assert distilled(
        loss, logits, logits.clone(), {"weight": 0.3, "temperature": 4.0}
    ).item() == pytest.approx(0.7 * loss.item())
    taught = Insists(3)(torch.zeros(8, 1, 28, 28))
    match = distilled(torch.zeros(()), logits, taught, {"weight": 1.0, "temperature": 2.0})
    soft = torch.nn.functional
    expected = (
        soft.softmax(taught / 2, 1) * (soft.log_softmax(taught / 2, 1) - soft.log_softmax(logits / 2, 1))
    ).sum(1)
    assert match.item() == pytest.approx(4 * expected.mean().item(), rel=1e-5)  # times T²


def test_a_student_taught_by_the_teacher_alone_says_what_the_teacher_says():
    recipe = {"epochs": 5, "optimizer": {"name": "adam", "lr": 0.01}}
    said = {}
    for distill, teacher in (({"weight": 1.0}, Insists(3)), ({}, None)):
        step = parse_step("tiny", entry(**recipe, distill=distill))
        model = build_net(step)
        fit(model, synthetic_mnist(), step, seed_everything(1), teacher=teacher)
        model.eval()
        said[bool(distill)] = (model(synthetic_mnist().test_images).argmax(1) == 3).float().mean().item()
    # taught by a teacher that says 3 to everything, the student does too; from the labels,
    # it says 3 about as often as the synthetic test set holds 3s (11 of 160)
    assert said[True] == 1.0 and said[False] < 0.2
