import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets, transforms

from edgecnn.data.builtin import FASHION_CLASSES, resolve_data_root
from edgecnn.errors import DataError, DataWarning
from edgecnn.training.data import load_dataset


def test_fashion_mnist_is_real_and_complete(fashion):
    assert fashion.train_images.shape == (60000, 1, 28, 28)
    assert fashion.test_images.shape == (10000, 1, 28, 28)
    assert fashion.train_images.dtype == torch.uint8
    assert fashion.class_names == FASHION_CLASSES == tuple(datasets.FashionMNIST.classes)  # torchvision's names
    assert fashion.normalization.mean == (0.2860,) and fashion.normalization.std == (0.3530,)
    assert torch.bincount(fashion.test_labels).tolist() == [1000] * 10
    # the published mean of the training pixels is what the constants say
    assert fashion.train_images.float().div(255).mean().item() == pytest.approx(0.2860, abs=5e-4)


def test_mnist_is_real_and_complete(mnist):
    assert mnist.train_images.shape == (60000, 1, 28, 28)
    assert mnist.class_names == tuple(str(d) for d in range(10))
    assert mnist.normalization.mean == (0.1307,) and mnist.normalization.std == (0.3081,)
    assert mnist.train_images.float().div(255).mean().item() == pytest.approx(0.1307, abs=5e-4)


def test_normalize_matches_the_tutorials_transforms_exactly(mnist, data_root):
    reference = datasets.MNIST(
        str(data_root),
        train=False,
        transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))]),
    )
    ours = mnist.normalize(mnist.test_images[:8])
    for i in range(8):
        image, label = reference[i]
        assert torch.equal(ours[i], image)
        assert label == mnist.test_labels[i]


def test_data_root_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGECNN_DATA", str(tmp_path / "env"))
    assert resolve_data_root(tmp_path / "flag") == tmp_path / "flag"
    assert resolve_data_root(None) == tmp_path / "env"
    monkeypatch.delenv("EDGECNN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_root(None) == tmp_path / "cache" / "edgecnn" / "datasets"


def test_missing_data_says_where_it_looked_and_how_to_fix(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_root=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "--data-root" in message and "EDGECNN_DATA" in message


def test_unknown_dataset_name_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="neither mnist nor fashion-mnist"):
        load_dataset(str(tmp_path / "nope"))


def _write_folder(root, images, labels, names, *, rgb=False):
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / names[int(label)].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = image[0].numpy()
        picture = (
            Image.fromarray(pixels).convert("RGB")
            if not rgb
            else Image.fromarray(np.stack([pixels, pixels // 2, 255 - pixels], axis=-1))
        )
        picture.resize((40, 40)).save(folder / f"{i}.png")


# In this process, folders are read without DataLoader workers (workers=0): forking workers from the test process,
# which has OpenVINO, onnxruntime and gevent loaded by other tests, once crashed it (a segfault while collecting
# garbage). Workers are tested in their own processes (tests/training/test_folders.py).


def test_grayscale_image_folder_is_split_stratified_and_resized(tmp_path, mnist):
    keep = torch.isin(mnist.test_labels, torch.tensor([3, 7]))
    images, labels = mnist.test_images[keep][:60], mnist.test_labels[keep][:60]
    _write_folder(tmp_path, images, labels, {3: "three", 7: "seven"})
    bundle = load_dataset(str(tmp_path), image_size=28, test_fraction=0.25, seed=1, workers=0)
    assert bundle.class_names == ("seven", "three")  # ImageFolder sorts class folders
    assert bundle.input_shape == (1, 28, 28)  # grey pixels saved as RGB are still grayscale
    assert len(bundle.train_labels) + len(bundle.test_labels) == 60
    counts = torch.bincount(bundle.test_labels, minlength=2)
    assert (counts >= 1).all() and counts.sum() == pytest.approx(15, abs=1)
    assert len(bundle.normalization.mean) == 1 and 0 < bundle.normalization.std[0] < 1
    again = load_dataset(str(tmp_path), image_size=28, test_fraction=0.25, seed=1, workers=0)
    assert torch.equal(again.test_images, bundle.test_images)


def test_rgb_image_folder_with_train_and_test_split(tmp_path, fashion):
    per_class = [(fashion.test_labels == c).nonzero().flatten()[:6] for c in range(10)]
    train_idx = torch.cat([idx[:4] for idx in per_class])
    test_idx = torch.cat([idx[4:] for idx in per_class])
    for split, idx in (("train", train_idx), ("test", test_idx)):
        _write_folder(tmp_path / split, fashion.test_images[idx], fashion.test_labels[idx], FASHION_CLASSES, rgb=True)
    bundle = load_dataset(str(tmp_path), image_size=32, workers=0)
    assert bundle.input_shape == (3, 32, 32)
    assert len(bundle.train_labels) == 40 and len(bundle.test_labels) == 20
    assert bundle.class_names == tuple(sorted(n.replace("/", "-") for n in FASHION_CLASSES))
    assert len(bundle.normalization.mean) == 3


def test_train_and_test_folders_with_different_classes_are_refused(tmp_path):
    for split, names in (("train", ("a", "b")), ("test", ("a", "c"))):
        for name in names:
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("L", (8, 8), 40).save(tmp_path / split / name / "x.png")
    with pytest.raises(DataError, match="different class folders"):
        load_dataset(str(tmp_path), workers=0)


def test_folder_with_one_class_or_no_readable_image_in_a_class_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    for name in ("a.png", "c.png"):  # two images a class: one to train on, one held out
        Image.new("L", (8, 8)).save(tmp_path / "only" / name)
    with pytest.raises(DataError, match="at least 2"):
        load_dataset(str(tmp_path), workers=0)
    (tmp_path / "other").mkdir()
    for name in ("b.png", "d.png"):
        (tmp_path / "other" / name).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.warns(DataWarning, match=r"skipped 2 of 4 .*b\.png"), pytest.raises(DataError, match="other"):
        load_dataset(str(tmp_path))  # the broken files are named and skipped; a class left empty cannot be learnt
