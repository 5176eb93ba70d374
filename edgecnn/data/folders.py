"""A user's image folder: one sub-folder per class, read by one set of rules wherever it is read (training,
export's parity and calibration, ``edgecnn quantize --calibration``).

- **Layout**: ``ROOT/train/<class>/…`` with ``ROOT/test/<class>/…`` (or ``ROOT/val/``), else ``ROOT/<class>/…``,
  whose seeded, class-stratified share is held out for testing (:func:`stratified_holdout`, drawn over the
  listing, so a split needs no image decoded).
- **Classes**: the sorted names of ROOT's sub-folders (at least 2; train/ and test/ the same), numbered in that
  order, as torchvision's ``ImageFolder`` numbers them.
- **Files**: every file under a class folder (sub-folders walked, links followed, sorted as ``ImageFolder``
  sorts them) whose suffix is one of :data:`~edgecnn.runtime.images.FOLDER_SUFFIXES`; a folder that cannot be
  listed is an error, never a silent skip.
- **Pixels**: :func:`read_image`, the runtime's own reading (upright by EXIF, alpha onto white, 16-bit scaled,
  the size guards) framed "stretch" to the model's size: the deployed model is fed what it was trained on.
- **Unreadable files** are skipped and named in one warning line (:func:`warn_unreadable`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgecnn.errors import DataError, DataWarning, describe
from edgecnn.runtime.images import FOLDER_SUFFIXES, IMAGE_FORMATS, image_batch, load_image
from edgecnn.runtime.preprocess import to_model_pixels

__all__ = [
    "Sample",
    "FolderSplits",
    "checked_folder",
    "list_folder",
    "image_files",
    "walk_image_files",
    "split_folder",
    "stratified_holdout",
    "read_image",
    "guess_channels",
    "warn_unreadable",
]

Sample = tuple[str, int]  # a file and its class index
# A dataset path comes from the user, or from a checkpoint (which anyone may have written): never walk these.
_SYSTEM_DIRS = ("/proc", "/sys", "/dev", "/run", "/etc", "/boot")
_TEST_DIRS = ("test", "val")
_NAMED = 5  # unreadable files named in the warning


@dataclass(frozen=True)
class FolderSplits:
    """What a folder holds, listed and split; no image decoded."""

    root: Path
    classes: tuple[str, ...]
    train: list[Sample]
    test: list[Sample]


def checked_folder(dataset: str, *, builtin: tuple[str, ...]) -> Path:
    """``dataset`` as a folder to read: it exists and is not a system folder."""
    path = Path(dataset).expanduser()
    if not path.is_dir():
        raise DataError(
            f"dataset {dataset!r} is neither {' nor '.join(builtin)} nor a directory "
            "of images with one sub-folder per class",
            path=path,
        )
    resolved = path.resolve()
    if resolved == Path("/") or any(resolved == Path(d) or Path(d) in resolved.parents for d in _SYSTEM_DIRS):
        raise DataError(f"dataset {dataset!r} resolves to {resolved}, a system folder, not images", path=path)
    return path


def split_folder(root: Path, *, test_fraction: float, seed: int) -> FolderSplits:
    """The layout rule of this module's docstring applied to ``root``."""
    test_dir = next((root / d for d in _TEST_DIRS if (root / d).is_dir()), None)
    if (root / "train").is_dir() and test_dir is not None:
        classes, train = list_folder(root / "train")
        test_classes, test = list_folder(test_dir)
        if classes != test_classes:
            raise DataError(
                f"{root / 'train'} and {test_dir} hold different class folders: {classes} vs {test_classes}", path=root
            )
        return FolderSplits(root, classes, train, test)
    classes, samples = list_folder(root)
    held = set(stratified_holdout(np.array([label for _, label in samples]), test_fraction, seed, classes).tolist())
    return FolderSplits(
        root,
        classes,
        [s for i, s in enumerate(samples) if i not in held],
        [s for i, s in enumerate(samples) if i in held],
    )


def list_folder(root: Path) -> tuple[tuple[str, ...], list[Sample]]:
    """(class names, (file, class index) of every image file), in ImageFolder's order."""
    try:
        classes = tuple(sorted(entry.name for entry in os.scandir(root) if entry.is_dir()))
    except OSError as exc:
        raise DataError(f"{root}: {describe(exc)}; expected one sub-folder of images per class", path=root) from exc
    if len(classes) < 2:
        raise DataError(f"{root}: found {len(classes)} class folder(s); a classifier needs at least 2", path=root)
    samples = [(path, label) for label, name in enumerate(classes) for path in image_files(root / name)]
    found = {label for _, label in samples}
    empty = [name for label, name in enumerate(classes) if label not in found]
    if empty:
        raise DataError(
            f"{root}: no image files ({', '.join(FOLDER_SUFFIXES)}) in class folder(s) {', '.join(empty)}", path=root
        )
    return classes, samples


def image_files(folder: str | os.PathLike[str], suffixes: tuple[str, ...] = FOLDER_SUFFIXES) -> list[str]:
    """:func:`walk_image_files`' files; any folder it could not read whole is a DataError naming each path:
    an image is never lost without a word."""
    files, problems = walk_image_files(folder, suffixes)
    if problems:
        named = "; ".join(f"{path}: {why}" for path, why in problems[:_NAMED])
        more = f" and {len(problems) - _NAMED} more" if len(problems) > _NAMED else ""
        raise DataError(f"cannot read all of {folder}: {named}{more}", path=folder)
    return files


def walk_image_files(
    folder: str | os.PathLike[str], suffixes: tuple[str, ...] = FOLDER_SUFFIXES
) -> tuple[list[str], list[tuple[str, str]]]:
    """(files, problems): the files under ``folder`` with one of ``suffixes``, sub-folders included (links
    followed), in ImageFolder's order (the folders sorted by path, each one's names sorted); and a (path, why)
    for each folder that cannot be listed and each link that loops (back to a folder above it, or to itself)."""
    listed: list[tuple[str, list[str]]] = []
    problems: list[tuple[str, str]] = []
    stack: list[tuple[str, tuple[tuple[int, int], ...]]] = [(os.fspath(folder), _identities(Path(folder)))]
    while stack:
        parent, above = stack.pop()
        try:
            info = os.stat(parent)
            if (info.st_dev, info.st_ino) in above:
                problems.append((parent, "a symlink loop (it leads back to a folder above it); not followed"))
                continue
            with os.scandir(parent) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError as exc:
            problems.append((parent, f"cannot list it ({exc.strerror or describe(exc)})"))
            continue
        names = []
        for entry in entries:
            kind = _kind(entry)
            if kind == "folder":
                stack.append((entry.path, (*above, (info.st_dev, info.st_ino))))
            elif kind == "loop":
                problems.append((entry.path, "a symlink loop (it leads to itself); not followed"))
            elif entry.name.lower().endswith(suffixes):
                names.append(entry.path)
        listed.append((parent, names))
    return [path for _, names in sorted(listed) for path in names], sorted(problems)


def _identities(folder: Path) -> tuple[tuple[int, int], ...]:
    """(device, inode) of the folders above ``folder``: a link back to any of them would lead into it again."""
    found = []
    for parent in folder.resolve().parents:
        with contextlib.suppress(OSError):
            info = os.stat(parent)
            found.append((info.st_dev, info.st_ino))
    return tuple(found)


def _kind(entry: os.DirEntry[str]) -> str:
    try:
        return "folder" if entry.is_dir() else "file"
    except OSError as exc:  # is_dir() follows links: a chain of links that never ends raises ELOOP
        return "loop" if exc.errno == errno.ELOOP else "file"


def stratified_holdout(
    labels: np.ndarray, fraction: float, seed: int, classes: tuple[str, ...] | None = None
) -> np.ndarray:
    """Sorted indices of a seeded share of each class (at least one image per class, and one left)."""
    rng = np.random.default_rng(seed)
    picked = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            name = classes[label] if classes is not None else str(label)
            raise DataError(
                f"class {name} has {len(members)} image(s); each class needs at least 2 to hold one out for testing"
            )
        picked.append(rng.permutation(members)[: max(1, round(len(members) * fraction))])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def read_image(path: str | os.PathLike[str], shape: tuple[int, int, int]) -> np.ndarray:
    """One file → uint8 C×H×W as training, calibration and parity read it, in any format Pillow decodes
    (folders hold PGM and PPM too, which the runtime refuses to be handed). Whatever a user's file makes a
    decoder raise is a DataError naming that file."""
    try:
        image = load_image(path, formats=None)
        if image.format not in IMAGE_FORMATS:  # handed on as pixels, not as a file of that format
            image = image.copy()
        return to_model_pixels([image], shape, fit="stretch")[0]
    except Exception as exc:  # noqa: BLE001 - any decoder error is that file's fault
        if isinstance(exc, MemoryError):
            raise
        why = describe(exc).removeprefix(f"{path}: ")
        raise DataError(f"cannot read image {path}: {why}", path=path) from exc


def guess_channels(paths: list[str], sample: int = 64) -> int:
    """3 when any of about ``sample`` evenly spaced readable images has colour (as the runtime reads it), else 1."""
    step = max(1, len(paths) // sample)
    for path in paths[::step]:
        try:
            _, pictures = image_batch([load_image(path, formats=None).copy()], channels=3)
            rgb = next(pictures)  # H×W when the file is grey, H×W×3 when it has colour channels
        except Exception:  # noqa: BLE001 - the reading that follows names the file and why
            continue
        if rgb.ndim == 3 and not (
            np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2])
        ):
            return 3
    return 1


def warn_unreadable(skipped: list[tuple[str, str]], total: int, *, where: str = "") -> None:
    """One warning line for a folder's unreadable files, (path, why) each, naming the first few."""
    if skipped:
        named = "; ".join(f"{path} ({why})" for path, why in skipped[:_NAMED])
        more = f" and {len(skipped) - _NAMED} more{where}" if len(skipped) > _NAMED else ""
        message = f"skipped {len(skipped)} of {total} image(s) that cannot be read: {named}{more}"
        warnings.warn(message, DataWarning, stacklevel=3)
