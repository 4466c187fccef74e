"""The validation split: fixed, stratified, disjoint from what trains."""

import torch

from mnist_budget.train.dataset import validation_split


def test_validation_split_is_stratified_disjoint_and_the_same_every_time():
    labels = torch.randint(0, 10, (6000,), generator=torch.Generator().manual_seed(3))
    train, held = validation_split(labels, 1000)
    assert len(held) == 1000 and len(train) == 5000
    assert set(train.tolist()).isdisjoint(held.tolist())
    assert sorted(train.tolist() + held.tolist()) == list(range(6000))
    share = torch.bincount(labels[held], minlength=10) - torch.bincount(labels, minlength=10) / 6
    assert share.abs().max() <= 1  # each digit keeps its share to within one image
    again_train, again_held = validation_split(labels, 1000)
    assert torch.equal(held, again_held) and torch.equal(train, again_train)
    # no run seed reaches it: seeding torch first changes nothing
    torch.manual_seed(99)
    assert torch.equal(validation_split(labels, 1000)[1], held)


def test_held_images_are_spread_over_the_set_not_its_first_ones():
    labels = torch.arange(6000) % 10
    _, held = validation_split(labels, 600)
    assert held.min() < 600 and held.max() > 5400
