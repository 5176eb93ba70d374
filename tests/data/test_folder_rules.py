"""A user's image folder by the one set of rules: layout, classes, files, the seeded split, the reader."""

from __future__ import annotations

import numpy as np
import pytest
from image_folders import CLASS_FOLDERS, break_files, write_folder

from edgecnn.data.folders import image_files, list_folder, read_image, split_folder, stratified_holdout
from edgecnn.errors import DataError
from edgecnn.runtime.images import FOLDER_SUFFIXES, IMAGE_SUFFIXES


def test_train_with_test_or_val_is_the_split_else_a_seeded_stratified_share(tmp_path, fashion):
    for test_dir in ("test", "val"):
        root = tmp_path / test_dir
        write_folder(root / "train", fashion, per_class=3)
        write_folder(root / test_dir, fashion, per_class=2, start=3)
        splits = split_folder(root, test_fraction=0.5, seed=0)
        assert splits.classes == tuple(sorted(CLASS_FOLDERS))  # sorted folder names, numbered in that order
        assert len(splits.train) == 30 and len(splits.test) == 20
        assert all("/train/" in path for path, _ in splits.train)
        assert all(f"/{test_dir}/" in path for path, _ in splits.test)
    single = tmp_path / "single"
    write_folder(single, fashion, per_class=10)
    first = split_folder(single, test_fraction=0.2, seed=3)
    assert first == split_folder(single, test_fraction=0.2, seed=3)  # seeded
    assert first != split_folder(single, test_fraction=0.2, seed=4)
    assert np.bincount([label for _, label in first.test]).tolist() == [2] * 10  # stratified
    assert len(first.train) + len(first.test) == 100 and not {p for p, _ in first.train} & {p for p, _ in first.test}


def test_classes_and_files_follow_imagefolders_rule(tmp_path, fashion):
    from torchvision import datasets

    write_folder(tmp_path, fashion, per_class=2)
    (tmp_path / CLASS_FOLDERS[0] / "deeper").mkdir()
    (tmp_path / CLASS_FOLDERS[0] / "deeper" / "old.pgm").write_bytes(b"P5 1 1 255\n\x80")
    (tmp_path / CLASS_FOLDERS[0] / "notes.txt").write_text("not an image")
    classes, samples = list_folder(tmp_path)
    folder = datasets.ImageFolder(str(tmp_path))
    assert classes == tuple(folder.classes) and samples == [(str(p), label) for p, label in folder.samples]
    assert set(IMAGE_SUFFIXES) < set(FOLDER_SUFFIXES) and ".pgm" in FOLDER_SUFFIXES
    assert image_files(tmp_path / CLASS_FOLDERS[0], IMAGE_SUFFIXES) == sorted(
        str(p) for p in (tmp_path / CLASS_FOLDERS[0]).glob("*.png")
    )


def test_folders_that_cannot_be_classes_are_refused_in_one_line(tmp_path, fashion):
    (tmp_path / "only").mkdir()
    with pytest.raises(DataError, match="found 1 class folder"):
        list_folder(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no image files \(.*\) in class folder\(s\) empty, only"):
        list_folder(tmp_path)
    with pytest.raises(DataError, match="class b has 1 image"):
        stratified_holdout(np.array([0, 0, 1]), 0.5, 0, ("a", "b"))
    train, test = tmp_path / "x" / "train", tmp_path / "x" / "test"
    write_folder(train, fashion, per_class=1, names=("a", "b"))
    write_folder(test, fashion, per_class=1, names=("a", "c"))
    with pytest.raises(DataError, match="different class folders"):
        split_folder(tmp_path / "x", test_fraction=0.2, seed=0)


def test_a_file_is_read_as_the_runtime_reads_it_and_a_broken_one_is_named(tmp_path, fashion):
    written = write_folder(tmp_path, fashion, per_class=1)
    image = read_image(written[0], (1, 28, 28))
    assert image.dtype == np.uint8 and np.array_equal(image[0], fashion.test_images[int(written[0].stem), 0].numpy())
    assert read_image(written[0], (3, 32, 32)).shape == (3, 32, 32)
    for broken in break_files(tmp_path):
        with pytest.raises(DataError, match=f"cannot read image {broken}: "):
            read_image(broken, (1, 28, 28))
