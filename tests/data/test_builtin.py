"""The built-in datasets read from their IDX files without torch: the same arrays torchvision reads."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from torchvision import datasets

from edgecnn.data.builtin import BUILTIN_CLASSES, has_builtin, read_builtin, read_idx
from edgecnn.errors import DataError


@pytest.mark.parametrize(("name", "cls"), [("mnist", datasets.MNIST), ("fashion-mnist", datasets.FashionMNIST)])
def test_the_idx_reader_gives_torchvisions_arrays(name, cls, data_root):
    for split, train in (("train", True), ("test", False)):
        ours = read_builtin(name, split, data_root)
        theirs = cls(str(data_root), train=train, download=False)
        assert ours.images.dtype == np.uint8 and ours.images.shape == (len(theirs), 1, 28, 28)
        assert np.array_equal(ours.images[:, 0], theirs.data.numpy())
        assert np.array_equal(ours.labels, theirs.targets.numpy()) and ours.labels.dtype == np.int64
        assert ours.images.flags.writeable  # torch.from_numpy takes it without a warning
    assert BUILTIN_CLASSES[name] == tuple(c.split(" - ")[0] for c in cls.classes)


def test_gzipped_files_read_the_same_and_broken_ones_are_named(tmp_path, data_root):
    raw = data_root / "MNIST" / "raw"
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    for path in raw.iterdir():
        (tmp_path / "MNIST" / "raw" / f"{path.name}.gz").write_bytes(gzip.compress(path.read_bytes(), 1))
    assert has_builtin("mnist", tmp_path) and not has_builtin("fashion-mnist", tmp_path)
    zipped, plain = (read_builtin("mnist", "test", root) for root in (tmp_path, data_root))
    assert np.array_equal(zipped.images, plain.images) and np.array_equal(zipped.labels, plain.labels)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x").write_bytes(b"\x00\x00\x0d\x03 not unsigned bytes")
    with pytest.raises(DataError, match="not a readable IDX file"):
        read_idx(tmp_path / "bad", "x")
    with pytest.raises(DataError, match="--data-root / EDGECNN_DATA"):
        read_builtin("fashion-mnist", "train", tmp_path)
