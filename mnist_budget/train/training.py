"""The training loop: epochs of augmented batches, a weight average, per-epoch history."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from mnist_budget.base.errors import StageError
from mnist_budget.config.optim_spec import steered_by_test
from mnist_budget.config.step_config import StepConfig
from mnist_budget.train.augment import augment
from mnist_budget.train.dataset import Mnist
from mnist_budget.train.optim import Schedule, make_optimizer
from mnist_budget.train.progress import EpochLine, epoch_bar
from mnist_budget.train.scoring import loss_and_accuracy

if TYPE_CHECKING:
    from tqdm import tqdm

AUGMENT_CHUNK = 1024  # images per augmentation call: 3.5% of a bare epoch's time, 4.9% batch by batch
NAN_CHECK_EVERY = 100  # batches; checking every batch would sync the device each step
BAR_UPDATE_EVERY = 50  # batches between loss read-outs on the progress bar


class TrainingDiverged(StageError):
    pass


class WeightAverage:
    """An exponential moving average of a model's weights and BN statistics.

    One fused lerp over every float tensor per batch: 20 us against 240 us for torch's
    AveragedModel (which regroups its tensors on each call), about 2.5% of a batch here.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.module = copy.deepcopy(model)
        self.weight = 1 - decay
        # state_dict() tensors share storage with the modules: lerping them updates both
        pairs = zip(self.module.state_dict().values(), model.state_dict().values())
        floats = [(mine, theirs) for mine, theirs in pairs if mine.is_floating_point()]
        self.averaged = [mine for mine, _ in floats]
        self.current = [theirs for _, theirs in floats]

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.averaged, self.current, self.weight)


def augmented(data: Mnist, settings: dict, order: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The training images in `order`, each with its own random transform, made in chunks
    before the epoch's batches (fewer, larger calls than batch by batch)."""
    return torch.cat(
        [
            augment(data.train_images[order[i : i + AUGMENT_CHUNK]], settings, generator, data.black)
            for i in range(0, len(order), AUGMENT_CHUNK)
        ]
    )


@torch.no_grad()
def teacher_logits(teacher: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The teacher's logits for an epoch's augmented images, in chunks as they were made."""
    return torch.cat([teacher(images[i : i + AUGMENT_CHUNK]) for i in range(0, len(images), AUGMENT_CHUNK)])


def distilled(loss: torch.Tensor, logits: torch.Tensor, taught: torch.Tensor, distill: dict) -> torch.Tensor:
    """The labels' loss mixed with the match to the teacher's logits `taught` (Hinton et al.
    2015): KL divergence between the softened outputs, times T² so that its gradients keep
    their size whatever the temperature."""
    t, weight = distill["temperature"], distill["weight"]
    match = F.kl_div(
        F.log_softmax(logits / t, 1), F.log_softmax(taught / t, 1), reduction="batchmean", log_target=True
    )
    return (1 - weight) * loss + weight * t * t * match


def train_epoch(
    model: nn.Module,
    data: Mnist,
    step: StepConfig,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    generator: torch.Generator,
    bar: EpochLine | tqdm,
    ema: WeightAverage | None = None,
    teacher: nn.Module | None = None,
) -> tuple[float, float]:
    """One pass over the shuffled, augmented training set; mean loss and accuracy. With a
    `teacher` (a step that distils), the loss mixes in the match to its outputs."""
    model.train()
    n = len(data.train_images)
    order = torch.randperm(n, generator=generator).to(data.train_images.device)
    epoch_images = augmented(data, step.augment, order, generator)
    epoch_labels = data.train_labels[order]
    epoch_taught = teacher_logits(teacher, epoch_images) if teacher is not None else None
    loss_sum = torch.zeros((), device=data.train_images.device)
    correct = torch.zeros((), dtype=torch.long, device=data.train_images.device)
    for batch, start in enumerate(range(0, n, step.batch_size)):
        images = epoch_images[start : start + step.batch_size]
        labels = epoch_labels[start : start + step.batch_size]
        with torch.autocast(images.device.type, torch.bfloat16, enabled=step.precision == "bf16"):
            logits = model(images)
            loss = F.cross_entropy(logits, labels, label_smoothing=step.label_smoothing)
            if epoch_taught is not None:
                loss = distilled(loss, logits, epoch_taught[start : start + step.batch_size], step.distill)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.after_batch()
        if ema is not None:
            ema.update()
        loss_sum += loss.detach() * len(labels)
        correct += (logits.detach().argmax(1) == labels).sum()
        if batch % NAN_CHECK_EVERY == 0 and not torch.isfinite(loss):
            raise TrainingDiverged(
                f"step {step.name}: the training loss became {loss.item()} at batch {batch}; "
                "lower optimizer.lr (or the schedule's max_lr) and run again"
            )
        if batch % BAR_UPDATE_EVERY == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        bar.update(1)
    mean_loss = loss_sum.item() / n
    if not torch.isfinite(torch.tensor(mean_loss)):
        raise TrainingDiverged(
            f"step {step.name}: the training loss became {mean_loss}; lower optimizer.lr and run again"
        )
    return mean_loss, correct.item() / n


def fit(
    model: nn.Module,
    data: Mnist,
    step: StepConfig,
    generator: torch.Generator,
    label: str = "",
    bar_line: int = 0,
    teacher: nn.Module | None = None,
) -> tuple[list[dict], nn.Module]:
    """Train for step.epochs; return one history row per epoch and the model it scored:
    the trained model, or with `ema`, its moving average (BN statistics averaged too).
    `label` names the run on its progress bar, drawn on line `bar_line` (one per worker);
    a step that distils learns from `teacher` too."""
    optimizer = make_optimizer(model, step.optimizer)
    ema = WeightAverage(model, step.ema) if step.ema else None
    scored = ema.module if ema is not None else model
    batches = -(-len(data.train_images) // step.batch_size)
    schedule = Schedule(optimizer, step.schedule, step.epochs, batches)
    history = []
    for epoch in range(1, step.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        with epoch_bar(f"{label or step.name} {epoch}/{step.epochs}", batches, bar_line) as bar:
            train_loss, train_accuracy = train_epoch(
                model, data, step, optimizer, schedule, generator, bar, ema, teacher
            )
            row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy}
            if data.val_images is not None:
                row["val_loss"], row["val_accuracy"] = loss_and_accuracy(
                    scored, data.val_images, data.val_labels
                )
            row["test_loss"], row["test_accuracy"] = loss_and_accuracy(
                scored, data.test_images, data.test_labels
            )
            shown = {"val": row["val_accuracy"]} if "val_accuracy" in row else {}
            bar.set_postfix(
                loss=f"{train_loss:.4f}",
                **{k: f"{v:.2%}" for k, v in {**shown, "test": row["test_accuracy"]}.items()},
            )
        # an accuracy-driven schedule watches the validation set, or the test set where the
        # step asked for it (`watch: test`, checked by `resolve`)
        watched = "test_accuracy" if steered_by_test(step.schedule) else "val_accuracy"
        schedule.after_epoch(row.get(watched))
        history.append({key: round(value, 6) for key, value in row.items()})
        history[-1]["lr"] = lr  # at the start of the epoch (per-batch schedules move within it)
    return history, scored
