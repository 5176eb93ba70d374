"""The validation split, the learning-rate schedules and the augmentations, on real data."""

import pytest
import torch

from edgecnn.config import TrainConfig
from edgecnn.errors import ConfigError, DataError
from edgecnn.training.augment import augment_batch
from edgecnn.training.data import split_validation
from edgecnn.training.schedule import lr_at


def test_validation_split_is_exact_stratified_disjoint_and_seeded(mnist):
    labels = mnist.train_labels
    train, val = split_validation(labels, None, seed=0)
    assert len(val) == 5000 and len(train) + len(val) == len(labels)
    assert not set(train.tolist()) & set(val.tolist())
    share = torch.bincount(labels[val], minlength=10) / 5000
    assert torch.allclose(share, torch.bincount(labels, minlength=10) / len(labels), atol=1e-3)
    assert torch.equal(val, split_validation(labels, None, seed=0)[1])
    assert not torch.equal(val, split_validation(labels, None, seed=1)[1])
    assert len(split_validation(labels, 1234, seed=0)[1]) == 1234
    assert len(split_validation(labels, 0, seed=0)[1]) == 0


def test_validation_split_refuses_what_cannot_be_split():
    with pytest.raises(DataError, match="val-size"):
        split_validation(torch.tensor([0, 0, 1, 1]), 4, seed=0)
    with pytest.raises(DataError, match="2 or more"):
        split_validation(torch.tensor([0, 1, 1, 1]), 2, seed=0)


@pytest.mark.parametrize("schedule", ["constant", "cosine", "onecycle"])
def test_schedules_warm_up_peak_and_end_where_they_say(schedule):
    config = TrainConfig(lr=0.01, epochs=10, schedule=schedule, warmup_epochs=1.0)
    total = 1000
    rates = [lr_at(config, step, total) for step in range(total)]
    assert all(0 < r <= 0.01 + 1e-12 for r in rates[:-1])
    assert rates[:100] == sorted(rates[:100]) and max(rates) == pytest.approx(0.01)  # warm-up, then the peak
    if schedule == "constant":
        assert rates[100:] == [0.01] * 900
    else:
        assert rates[100:] == sorted(rates[100:], reverse=True) and rates[-1] < 1e-4
    if schedule == "onecycle":
        assert rates[0] == pytest.approx(0.01 / 25)


def test_onecycle_without_warmup_takes_torchs_30_percent():
    config = TrainConfig(lr=0.01, epochs=10, schedule="onecycle")
    rates = [lr_at(config, step, 1000) for step in range(1000)]
    assert max(range(1000), key=rates.__getitem__) == 300


def test_unknown_schedule_or_augmentation_is_a_config_error():
    with pytest.raises(ConfigError, match="schedule.*augment"):
        TrainConfig(schedule="step", augment="mixup")


def test_crop_flip_moves_pixels_and_never_invents_them(fashion):
    images = fashion.train_images[:256]
    out = augment_batch(images, "crop-flip", torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    same = sum(torch.equal(a, b) for a, b in zip(out, images, strict=True))
    assert 0 < same < 64  # about 1 in 50 draws neither shifts nor flips
    for a, b in zip(out[:32], images[:32], strict=True):  # every output pixel is an input pixel or padding
        assert set(a.unique().tolist()) <= set(b.unique().tolist()) | {0}
    again = augment_batch(images, "crop-flip", torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_affine_keeps_the_digit_roughly_where_it_was(mnist):
    images = mnist.train_images[:256]
    out = augment_batch(images, "affine", torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == images.shape
    assert float(out.min()) >= 0 and float(out.max()) <= 255.001  # bilinear: float rounding only
    ink_in, ink_out = images.float().sum((1, 2, 3)), out.sum((1, 2, 3))
    assert torch.allclose(ink_out / ink_in, torch.ones(256), atol=0.35)  # scale 0.9–1.1: ink ×0.81–1.21
    assert (out - images.float()).abs().mean() > 5  # it did move something
    assert augment_batch(images, "none", torch.Generator()) is images


def test_flip_mirrors_about_half_the_images_and_changes_nothing_else(fashion):
    images = fashion.train_images[:400]
    out = augment_batch(images, "flip", torch.Generator().manual_seed(3))
    mirrored = [torch.equal(a, b.flip(2)) and not torch.equal(a, b) for a, b in zip(out, images, strict=True)]
    kept = [torch.equal(a, b) for a, b in zip(out, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True))
    assert 150 < sum(mirrored) < 250 and out.dtype == torch.uint8
