"""A user's image folder of PNG files written from real Fashion-MNIST test images, with unreadable files among
them: the unreadable ones named, skipped and counted; over the memory budget the folder is read from disk batch
by batch (DataLoader workers) and gives the same pixels, statistics, lineage and trained weights as in memory —
in one process and in two."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli, torchrun
from PIL import Image

from edgecnn.config import TrainConfig
from edgecnn.errors import DataError, DataWarning
from edgecnn.training.checkpoint import load_checkpoint
from edgecnn.training.data import load_dataset
from edgecnn.training.loop import fit
from edgecnn.training.scan import FolderImages

PER_CLASS = 40
TRAIN = ["--arch", "convnet5", "--epochs", "1", "--batch-size", "50", "--val-size", "60", "--device", "cpu"]


def _write(root: Path, fashion, *, rgb: bool, side: int = 28) -> list[Path]:
    """PER_CLASS real images per class as PNG files, then three files no decoder reads: a PNG cut in half, text
    named .png and an empty .jpg. Returns the unreadable ones."""
    for c in range(10):
        (root / f"class_{c}").mkdir(parents=True)
        for i in (fashion.test_labels == c).nonzero().flatten()[:PER_CLASS].tolist():
            pixels = fashion.test_images[i, 0].numpy()
            colour = np.stack([pixels, pixels // 2, 255 - pixels], -1) if rgb else pixels
            suffix = ".pgm" if c == 9 and not rgb else ".png"  # old datasets are PGM: readable, though not served
            Image.fromarray(colour).resize((side, side)).save(root / f"class_{c}" / f"{i:05d}{suffix}")
    whole = next((root / "class_3").iterdir()).read_bytes()
    broken = [root / "class_3" / "cut.png", root / "class_5" / "notes.png", root / "class_7" / "empty.jpg"]
    broken[0].write_bytes(whole[: len(whole) // 2])
    broken[1].write_text("not an image")
    broken[2].write_bytes(b"")
    return broken


@pytest.fixture(scope="module")
def folder(tmp_path_factory, fashion) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("photos")
    return root, _write(root, fashion, rgb=False)


def _pixels(images: torch.Tensor | FolderImages) -> np.ndarray:
    return images.numpy()


def test_a_folder_over_the_budget_stays_on_disk_with_the_same_pixels_statistics_and_lineage(tmp_path, fashion):
    broken = _write(tmp_path, fashion, rgb=True, side=40)
    with pytest.warns(DataWarning, match=r"skipped 3 of 403 image\(s\)") as caught:
        held = load_dataset(str(tmp_path), image_size=32, seed=3, workers=0)
        left = load_dataset(str(tmp_path), image_size=32, seed=3, max_memory_gb=0, workers=0)
    messages = [str(w.message) for w in caught if w.category is DataWarning]
    assert len(messages) == 2 and all(str(path) in m for path in broken for m in messages)  # each file named
    assert isinstance(held.train_images, torch.Tensor) and isinstance(left.train_images, FolderImages)
    assert held.input_shape == left.input_shape == (3, 32, 32)
    # the held-out split moved rows within the one tensor the scan filled: no second copy of the folder
    assert held.train_images.untyped_storage().data_ptr() == held.test_images.untyped_storage().data_ptr()
    for split in ("train", "test"):
        assert np.array_equal(_pixels(getattr(held, f"{split}_images")), _pixels(getattr(left, f"{split}_images")))
        assert torch.equal(getattr(held, f"{split}_labels"), getattr(left, f"{split}_labels"))
    assert len(held.train_labels) + len(held.test_labels) == 400
    assert held.normalization == left.normalization and len(held.normalization.mean) == 3
    pixels = torch.from_numpy(_pixels(held.train_images)).float().div(255).transpose(0, 1).reshape(3, -1)
    assert held.normalization.mean == pytest.approx(pixels.mean(1).tolist(), abs=1e-4)
    assert held.normalization.std == pytest.approx(pixels.std(1).tolist(), abs=1e-4)
    assert held.checksum() == left.checksum()
    mask = held.test_labels % 2 == 0  # a boolean mask selects from files on disk as from a tensor
    assert np.array_equal(_pixels(left.test_images[mask]), _pixels(held.test_images[mask]))
    assert sorted(p for p, _ in held.skipped) == sorted(map(str, broken)) == sorted(p for p, _ in left.skipped)


def test_the_budget_counts_every_process_on_this_machine(folder, monkeypatch):
    root, _ = folder
    one_copy = 400 * 28 * 28  # grey uint8
    budget = 1.5 * one_copy / 2**30
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        assert isinstance(load_dataset(str(root), max_memory_gb=budget, workers=0).train_images, torch.Tensor)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # as torchrun sets it: two copies would not fit
        assert isinstance(load_dataset(str(root), max_memory_gb=budget, workers=0).train_images, FolderImages)


def test_streamed_training_gives_the_in_memory_weights_and_reports_the_unreadable_files(folder, tmp_path):
    root, broken = folder
    runs = {}
    for name, extra in (("held", []), ("disk", ["--max-memory-gb", "0", "--workers", "2"])):
        args = ["train", *TRAIN, "--augment", "crop-flip", "--dataset", str(root), "--out", str(tmp_path / name)]
        runs[name] = run_cli(*args, *extra)
        assert runs[name].returncode == 0, runs[name].stderr[-2000:]
    first, second = (load_checkpoint(tmp_path / name).last_state for name in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)  # the same batches, augmentation and dropout draws
    warning = [line for line in runs["disk"].stderr.splitlines() if line.startswith("edgecnn: warning:")]
    assert len(warning) == 1 and all(str(path) in warning[0] for path in broken)
    metrics = json.loads((tmp_path / "disk" / "metrics.json").read_text())
    assert metrics["unreadable_images"]["count"] == 3
    assert metrics.pop("images_read_from_disk") is True
    assert sorted(f["path"] for f in metrics["unreadable_images"]["files"]) == sorted(map(str, broken))
    held = json.loads((tmp_path / "held" / "metrics.json").read_text())
    assert held.pop("images_read_from_disk") is False
    for figures in (metrics, held):  # what differs: the reading settings, and the seconds per epoch
        figures.pop("config"), figures.pop("epochs")
    assert metrics == held


def test_two_processes_streaming_a_folder_train_what_one_process_holding_it_trains(folder, tmp_path):
    root, _ = folder
    run = ["--arch", "tiny", "--epochs", "1", "--batch-size", "50", "--val-size", "60", "--device", "cpu"]
    one = run_cli("train", *run, "--dataset", str(root), "--out", str(tmp_path / "one"))
    two = torchrun(*run, "--dataset", str(root), "--max-memory-gb", "0", "--out", str(tmp_path / "two"))
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-2000:]
    first, second = load_checkpoint(tmp_path / "one").last_state, load_checkpoint(tmp_path / "two").last_state
    assert max(float((first[k] - second[k]).abs().max()) for k in first) <= 1e-5
    assert two.stderr.count("skipped 3 of 403") == 1  # rank 0 speaks for both


def test_a_file_that_fails_mid_run_is_skipped_counted_and_the_run_finishes(folder, tmp_path):
    root, _ = folder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = load_dataset(str(root), max_memory_gb=0, workers=0)
    gone = Path(data.train_images.paths[7])
    moved = tmp_path / gone.name
    gone.rename(moved)  # after the scan: a disk that lost it, mid-run
    try:
        config = TrainConfig(
            arch="tiny", dataset=str(root), epochs=1, batch_size=50, val_size=0, device="cpu", workers=0
        )
        with pytest.warns(DataWarning, match=f"can no longer be read.*{gone.name}"):
            result = fit(config, tmp_path / "out", data=data)
    finally:
        moved.rename(gone)
    assert str(gone) in [path for path, _ in result.unreadable] and len(result.unreadable) == 4
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["unreadable_images"]["count"] == 4


def test_a_folder_is_read_as_the_runtime_reads_photos(tmp_path, fashion):
    # a phone photo stored sideways (EXIF orientation 6) and a cut-out on a transparent background: training
    # must see them as the deployed model is fed them — upright, and the transparency white as a viewer shows it
    upright = np.stack([fashion.test_images[0, 0].numpy()] * 3, -1)
    upright[:8] = (200, 30, 30)  # a red band on top: colour, and a way to tell which side is up
    for name in ("photo", "cutout"):
        (tmp_path / name).mkdir()
        for i in range(2):
            Image.fromarray(upright).save(tmp_path / name / f"plain{i}.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    Image.fromarray(np.rot90(upright, k=1)).save(
        tmp_path / "photo" / "sideways.jpg", exif=exif, quality=100, subsampling=0
    )
    alpha = np.zeros((28, 28, 4), dtype=np.uint8)
    alpha[10:18, 10:18] = (0, 0, 0, 255)  # a black square on nothing
    Image.fromarray(alpha).save(tmp_path / "cutout" / "square.png")
    data = load_dataset(str(tmp_path / ""), test_fraction=0.01, max_memory_gb=0, workers=0)
    images = {Path(p).name: data.train_images[[i]].numpy()[0] for i, p in enumerate(data.train_images.paths)}
    images |= {Path(p).name: data.test_images[[i]].numpy()[0] for i, p in enumerate(data.test_images.paths)}
    assert data.input_shape == (3, 28, 28)
    error = np.abs(images["sideways.jpg"].astype(int) - upright.transpose(2, 0, 1))
    assert error.max() <= 12  # JPEG's error; the image as stored (sideways) would be off by up to 255
    square = images["square.png"]
    assert (square[:, 10:18, 10:18] == 0).all() and (square[:, :10] == 255).all()


# quantize's and export's reader skips the same files: tests/data/test_labelled.py


def test_a_folder_gone_mid_run_ends_it_with_one_clear_error(folder, tmp_path):
    root, _ = folder
    copy = tmp_path / "photos"
    shutil.copytree(root, copy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        data = load_dataset(str(copy), max_memory_gb=0, workers=0)
    shutil.rmtree(copy)  # an unmounted disk: every file fails, which is not one bad file to skip
    config = TrainConfig(arch="tiny", dataset=str(copy), epochs=1, batch_size=50, val_size=0, device="cpu")
    with pytest.raises(DataError, match="no image of a batch can be read any more; the first: cannot read image"):
        fit(config, tmp_path / "out", data=data)


def test_reading_with_workers_leaves_the_process_signal_handlers_alone(folder):
    # torch installs a SIGCHLD handler for good when workers first start; in a process that had loaded OpenVINO a
    # child's exit then crashed it. Run in a process of its own: workers are forked from it.
    code = f"""
import signal, warnings, torch
from edgecnn.training.batches import load_batches
from edgecnn.training.data import load_dataset
warnings.simplefilter("ignore")
before = signal.getsignal(signal.SIGCHLD)
data = load_dataset({str(folder[0])!r}, max_memory_gb=0, workers=2)
batches = [torch.arange(start, start + 50) for start in range(0, 200, 50)]
read = load_batches(data.train_images, data.train_labels, batches, device=torch.device("cpu"), workers=2)
during = [signal.getsignal(signal.SIGCHLD) is before and len(x) == len(y) == 50 for x, y in read]
print(len(during), all(during), signal.getsignal(signal.SIGCHLD) is before)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["4", "True", "True"]
