"""Batched augmentation: shapes, identity at zero, determinism, black fill."""

import torch

from mnist_budget.config.step_config import AUGMENT
from mnist_budget.train.augment import affine_grid, augment, elastic_offsets, random_erase, random_warp

BLACK = -0.4242  # a normalized black pixel: (0 - mean) / std


def batch(n=16):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def settings(**values):
    """A step's `augment`, with every default filled in as validation does."""
    return {key: spec.default for key, spec in AUGMENT.items()} | values


def test_zero_ranges_return_the_input_unchanged():
    images = batch()
    out = augment(images, settings(), torch.Generator().manual_seed(1), BLACK)
    assert torch.equal(out, images)


def test_shape_is_kept_and_each_image_gets_its_own_transform():
    images = batch(1).repeat(8, 1, 1, 1)
    out = augment(
        images,
        settings(rotate=15, translate=0.1, scale=0.1, shear=5),
        torch.Generator().manual_seed(1),
        BLACK,
    )
    assert out.shape == images.shape
    flat = out.flatten(1)
    assert all(not torch.allclose(flat[0], flat[i]) for i in range(1, 8))


def test_same_seed_same_augmentation_other_seed_other():
    images = batch()
    run = lambda seed: augment(
        images, settings(rotate=10, erase=0.5), torch.Generator().manual_seed(seed), BLACK
    )
    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_background_moving_in_is_black():
    images = torch.full((4, 1, 28, 28), 2.0)
    out = random_warp(images, torch.Generator().manual_seed(0), translate=0.5, fill=BLACK)
    corners = out[:, 0, [0, 0, -1, -1], [0, -1, 0, -1]]
    # a shift of up to half the side uncovers at least one corner of every image
    assert ((corners - BLACK).abs() < 1e-5).any(dim=1).all()
    assert out.max() <= 2.0 + 1e-5 and out.min() >= BLACK - 1e-5


def test_small_rotation_keeps_the_centre():
    images = torch.zeros(2, 1, 28, 28)
    images[:, :, 12:16, 12:16] = 1.0
    out = random_warp(images, torch.Generator().manual_seed(0), rotate=5)
    assert out[:, :, 13:15, 13:15].min() > 0.9


def test_erase_paints_one_black_square_per_chosen_image():
    images = torch.ones(6, 1, 28, 28)
    out = random_erase(images, torch.Generator().manual_seed(0), probability=1.0, size=0.25, fill=BLACK)
    painted = (out == BLACK).sum(dim=(1, 2, 3))
    assert painted.tolist() == [49] * 6  # round(0.25 * 28) = 7: a 7x7 square
    none = random_erase(images, torch.Generator().manual_seed(0), probability=0.0, size=0.25, fill=BLACK)
    assert torch.equal(none, images)


def test_probability_transforms_that_share_and_leaves_the_rest_as_they_were():
    images = torch.randn(400, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    out = random_warp(images, torch.Generator().manual_seed(0), rotate=10, translate=0.1, probability=0.25)
    kept = [torch.allclose(a, b, atol=1e-5) for a, b in zip(images, out)]
    assert 60 < len(kept) - sum(kept) < 140  # about a quarter of 400 transformed
    # without it, the random stream is the one a step always had
    always = random_warp(images, torch.Generator().manual_seed(0), rotate=10, translate=0.1)
    assert torch.equal(
        always, random_warp(images, torch.Generator().manual_seed(0), 10, 0.1, probability=1.0)
    )


def test_sampling_grid_matches_torch_affine_grid():
    theta = torch.eye(2, 3) + 0.2 * torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(2))
    expected = torch.nn.functional.affine_grid(theta, [5, 1, 28, 20], align_corners=False)
    assert torch.allclose(affine_grid(theta, 28, 20), expected, atol=1e-6)


def test_elastic_distortion_moves_pixels_by_its_strength_and_keeps_the_digit():
    images = torch.zeros(64, 1, 28, 28)
    images[:, :, 8:20, 12:16] = 1.0  # a bar, a crude "1"
    run = lambda seed, **values: augment(images, settings(**values), torch.Generator().manual_seed(seed), 0.0)
    mild, strong = run(0, elastic=8.0), run(0, elastic=34.0)
    assert torch.equal(mild, run(0, elastic=8.0)) and not torch.equal(mild, run(1, elastic=8.0))
    # each image its own field; the bar stays where it was (its centre within a pixel on
    # average), and more of it moves the stronger the distortion
    assert not torch.allclose(mild[0], mild[1])
    grid = torch.arange(28.0)
    centre = lambda out: (
        torch.stack([(out.sum(3) * grid).sum((1, 2)), (out.sum(2) * grid).sum((1, 2))], 1)
        / out.sum((1, 2, 3)).unsqueeze(1)
    )
    assert (centre(strong) - centre(images)).abs().mean() < 1.0  # 0.77 px measured
    moved = lambda out: (out - images).abs().mean().item()
    assert 0 < moved(mild) < moved(strong)


def test_elastic_offsets_have_simards_size():
    offsets = elastic_offsets(500, 28, 28, 34.0, 4.0, torch.Generator().manual_seed(0)) * 14  # in pixels
    assert offsets.shape == (500, 28, 28, 2)
    assert 1.1 < offsets.std().item() < 1.5  # 1.27 px measured


def test_elastic_distortion_off_leaves_the_affine_stream_as_it_was():
    # a step without `elastic` draws exactly what it drew before the key existed
    images = batch()
    before = random_warp(images, torch.Generator().manual_seed(2), rotate=10, translate=0.1)
    after = augment(images, settings(rotate=10, translate=0.1), torch.Generator().manual_seed(2), 0.0)
    assert torch.equal(before, after)
