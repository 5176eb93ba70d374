"""Labelled images for export, verify and quantize: split as training splits them, read only when asked for,
the unreadable named and left out."""

from __future__ import annotations

import numpy as np
import pytest
from image_folders import break_files, write_folder

import edgecnn.data.labelled as labelled
from edgecnn.data.labelled import open_labelled
from edgecnn.errors import DataError, DataWarning


@pytest.fixture
def reads(monkeypatch):
    """Every file the lazy reader decodes, in order."""
    done, real = [], labelled.read_image
    monkeypatch.setattr(labelled, "read_image", lambda path, shape: done.append(str(path)) or real(path, shape))
    return done


def test_builtin_splits_are_the_datasets_own(data_root, fashion):
    data = open_labelled("fashion-mnist", shape=(1, 28, 28), data_root=data_root)
    assert data.class_names == fashion.class_names and (len(data.train), len(data.test)) == (60000, 10000)
    images, labels = data.test.first(7)
    assert np.array_equal(images, fashion.test_images[:7].numpy())
    assert labels.tolist() == fashion.test_labels[:7].tolist()
    images, labels = data.train.take([3, 1])
    assert np.array_equal(images, fashion.train_images[[3, 1]].numpy())
    with pytest.raises(DataError, match="1×28×28; the model takes 3×32×32"):
        open_labelled("mnist", shape=(3, 32, 32), data_root=data_root)


def test_a_folder_is_listed_not_read_until_asked(tmp_path, fashion, reads):
    write_folder(tmp_path, fashion, per_class=10)
    data = open_labelled(str(tmp_path), shape=(1, 28, 28))
    assert reads == [] and (len(data.train), len(data.test)) == (80, 20)  # training's default share held out
    images, labels = data.test.first(5)
    assert len(reads) == 5 and images.shape == (5, 1, 28, 28) and labels.tolist() == data.test.labels[:5].tolist()
    images, labels = data.train.take([4, 0])
    assert reads[5:] == [data.train.paths[4], data.train.paths[0]]
    assert labels.tolist() == [data.train.labels[4], data.train.labels[0]]


def test_calibrating_on_the_folder_skips_the_files_training_skips(tmp_path, fashion, reads):
    write_folder(tmp_path, fashion, per_class=40)
    broken = break_files(tmp_path)
    data = open_labelled(str(tmp_path), shape=(1, 28, 28))
    with pytest.warns(DataWarning, match=r"skipped \d of \d+ image\(s\) that cannot be read") as caught:
        train_images, train_labels = data.train.take(range(len(data.train)))
        test_images, test_labels = data.test.first(len(data.test))
    messages = " ".join(str(w.message) for w in caught if w.category is DataWarning)
    assert all(str(path) in messages for path in broken)  # each named
    assert len(train_labels) + len(test_labels) == 400 and train_images.shape[1:] == (1, 28, 28)
    assert len(reads) == 403  # every file once


def test_first_reads_past_an_unreadable_file_to_the_count_asked_for(tmp_path, fashion, reads):
    write_folder(tmp_path / "train", fashion, per_class=1, names=("a", "b"))
    write_folder(tmp_path / "test", fashion, per_class=3, names=("a", "b"))
    (tmp_path / "test" / "a" / "00000-broken.png").write_bytes(b"")  # sorts first in its class
    data = open_labelled(str(tmp_path), shape=(1, 28, 28))
    with pytest.warns(DataWarning, match=r"skipped 1 of 3 image\(s\) that cannot be read: .*00000-broken\.png"):
        images, labels = data.test.first(2)
    assert len(images) == 2 and labels.tolist() == [0, 0] and len(reads) == 3
    for path in (tmp_path / "test").rglob("*.png"):
        path.write_bytes(b"")
    with pytest.warns(DataWarning), pytest.raises(DataError, match="none of its 7 test image.s. can be read"):
        data.parity_images(100)  # parity on nothing is refused, never a raw error or an empty pass
