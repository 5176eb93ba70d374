"""One guard for every image input: whatever reaches the Predictor is a prediction or an InputError.

Property tests over random arrays (dtype, rank, shape, values) and PIL images (every mode, empty ones
included), explicit size-limit cases built as zero-memory broadcast views, and a corpus of mutated real
image files, each read both as a path and as ``Image.open(path)``.
"""

from __future__ import annotations

import io
import random
import struct

import numpy as np
import pytest
from conftest import lying_png
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from edgecnn.config import FIT_MODES
from edgecnn.errors import ImageError, InputError
from edgecnn.runtime.images import MAX_BATCH, MAX_BATCH_BYTES, MAX_PIXELS, MAX_SIDE
from edgecnn.runtime.preprocess import to_model_pixels

DTYPES = ("uint8", "float32", "float64", "int16", "bool", "float16", "uint16", "int32", "complex64")
MODES = sorted({*Image.MODES, "1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB", "HSV"})
MAX_DIM = {0: 1, 1: 64, 2: 64, 3: 40, 4: 12, 5: 6}  # keeps every drawn array under ~64k elements
FORMATS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}
MUTATIONS = 200  # per format
# Image.open's own failures, before edgecnn sees the file: those cases are skipped, nothing later is
PIL_OPEN_ERRORS = (OSError, ValueError, SyntaxError, EOFError, TypeError, LookupError, ArithmeticError, struct.error)


@pytest.fixture(scope="module")
def predictor(checkpoints, tmp_path_factory):
    from edgecnn.config import ExportConfig
    from edgecnn.export.from_checkpoint import export_checkpoint
    from edgecnn.runtime import Predictor

    out = tmp_path_factory.mktemp("guards") / "m.onnx"
    export_checkpoint(checkpoints("tiny"), out, ExportConfig(parity_samples=300, latency_iters=3))
    return Predictor(out)


def _elements(dtype: str, readable: bool) -> st.SearchStrategy:
    if dtype.startswith("float"):
        unit = st.floats(0, 1, width=np.dtype(dtype).itemsize * 8)
        return unit if readable else st.one_of(unit, st.sampled_from([np.nan, np.inf, -np.inf, -0.5, 1.5, 255.0]))
    if dtype == "bool":
        return st.booleans()
    if dtype == "complex64":
        return st.complex_numbers(max_magnitude=2, width=64)
    info = np.iinfo(dtype)
    return st.integers(max(info.min, -5), min(info.max, 300))


@st.composite
def arrays(draw: st.DrawFn) -> np.ndarray:
    """Half readable (uint8 or [0, 1] floats, H×W to N×H×W×C, no empty axis), half anything at all."""
    readable = draw(st.booleans())
    dtype = draw(st.sampled_from(DTYPES[:3] + ("float16",) if readable else DTYPES))
    rank = draw(st.integers(2, 4) if readable else st.integers(0, 5))
    dim = st.one_of(st.integers(1, MAX_DIM[rank]), st.sampled_from([1, 3, 4] if readable else [0, 1, 3, 4]))
    shape = draw(st.lists(dim, min_size=rank, max_size=rank))
    if readable and rank == 4:
        shape[-1] = draw(st.sampled_from([1, 3, 4]))
    return draw(hnp.arrays(dtype, tuple(shape), elements=_elements(dtype, readable)))


@st.composite
def pil_images(draw: st.DrawFn) -> Image.Image:
    mode, width, height = draw(st.sampled_from(MODES)), draw(st.integers(0, 40)), draw(st.integers(0, 40))
    size = len(Image.new(mode, (width, height)).tobytes())
    image = Image.frombytes(mode, (width, height), draw(st.binary(min_size=size, max_size=size)))
    if mode in ("P", "L", "RGB") and draw(st.booleans()):
        image.info["transparency"] = 0 if mode != "RGB" else (0, 0, 0)
    return image


def _expected_count(images: object, channels: int = 1) -> int:
    """How many images the documented rules read: independent of the code under test."""
    if isinstance(images, (list, Image.Image)):
        return len(images) if isinstance(images, list) else 1
    shape = images.shape
    if len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3, 4) and shape[0] not in (1, 3, 4)):
        return 1
    return shape[0]


inputs = st.one_of(arrays(), st.lists(arrays(), min_size=1, max_size=3), pil_images())
options = st.fixed_dictionaries(
    {"fit": st.sampled_from(FIT_MODES), "channel_order": st.sampled_from(["rgb", "bgr"]), "invert": st.booleans()}
)


@given(images=inputs, kwargs=options)
@settings(deadline=None)
def test_every_input_is_a_prediction_or_an_input_error(predictor, images, kwargs):
    try:
        predictions = predictor.predict(images, top_k=len(predictor.classes), **kwargs)
    except InputError as exc:
        event(f"refused: {type(exc).__name__} {str(exc)[:40]}")
        return
    event(f"predicted: {type(images).__name__}")
    assert len(predictions) == _expected_count(images)
    for prediction in predictions:
        probabilities = np.array([p for _, p in prediction.top_k])
        assert np.isfinite(probabilities).all() and abs(probabilities.sum() - 1) < 1e-4


@given(images=inputs, kwargs=options, channels=st.sampled_from([1, 3]))
def test_colour_and_grey_pixels_are_the_model_shape_or_an_input_error(images, kwargs, channels):
    """The same inputs through the preprocessing alone, for a colour model too (no model needed)."""
    try:
        pixels = to_model_pixels(images, (channels, 28, 28), dark_background=channels == 1, **kwargs)
    except InputError:
        return
    assert pixels.dtype == np.uint8 and pixels.shape[1:] == (channels, 28, 28)
    if channels == 1:
        assert len(pixels) == _expected_count(images)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.broadcast_to(np.uint8(0), (100_000, 100_000)), "pixel limit per image"),
        (np.broadcast_to(np.float64(0.5), (12_000, 12_000)), "pixel limit per image"),
        (np.broadcast_to(np.uint8(0), (1, 40_000_000)), "limit per side"),
        (np.broadcast_to(np.uint8(0), (MAX_BATCH, 300, 300, 3)), "MiB"),  # 1.03 GiB: the bytes cap
        (np.broadcast_to(np.float32(0.5), (1000, 500, 600)), "MiB"),
        ([np.broadcast_to(np.float64(0.5), (MAX_SIDE, 2000, 3))] * 2, "MiB"),  # refused before the first is read
        ([np.zeros((2, 2), np.uint8)] * 5000, "limit of 4096"),
        (np.broadcast_to(np.uint8(0), (MAX_BATCH + 1, 28, 28, 3)), "limit of 4096"),
        (np.zeros((0, 5), np.uint8), "empty"),
        (np.zeros((5, 0, 3), np.float32), "empty"),
        (np.zeros((28, 28), np.int16), "dtype int16"),
        (np.zeros((28, 28), bool), "dtype bool"),
        (np.zeros((28, 28), np.complex64), "dtype complex64"),
        (np.zeros((28, 28), "U1"), "dtype <U1"),
        ([Image.new("L", (0, 0))], "empty image"),
        (Image.new("RGB", (0, 5)), "empty image"),
        (np.array(7, np.uint8), "shape"),
    ],
    ids=[
        "100000x100000-uint8",
        "12000x12000-float64",
        "1x40M-strip",
        "batch-over-1GiB",
        "float32-batch-over-1GiB",
        "list-over-1GiB",
        "list-of-5000",
        "batch-of-4097",
        "0x5",
        "5x0x3",
        "int16",
        "bool",
        "complex",
        "strings",
        "pil-0x0",
        "pil-0x5",
        "rank-0",
    ],
)
def test_limits_are_checked_from_the_shape_before_any_work(predictor, images, message):
    with pytest.raises(InputError, match=message):
        predictor.predict(images)
    with pytest.raises(InputError, match=message):
        predictor.prepare(images, fit="stretch")  # the camera fast path is not a way around them


def test_the_limits_are_what_the_docs_say():
    assert (MAX_PIXELS, MAX_SIDE, MAX_BATCH, MAX_BATCH_BYTES) == (40_000_000, 16_384, 4096, 1 << 30)
    assert MAX_BATCH * 256 * 256 * 3 < MAX_BATCH_BYTES and MAX_PIXELS * 3 * 8 < MAX_BATCH_BYTES


def test_the_camera_fast_path_stays_copy_free(mnist):
    frames = np.ascontiguousarray(mnist.test_images[:64, 0].numpy())
    assert np.shares_memory(to_model_pixels(frames, (1, 28, 28), fit="stretch"), frames)


@pytest.mark.parametrize("mode", MODES)
def test_every_pil_mode_predicts_or_is_an_image_error(predictor, mode):
    size = len(Image.new(mode, (20, 17)).tobytes())
    image = Image.frombytes(mode, (20, 17), random.Random(mode).randbytes(size))
    try:
        predictions = predictor.predict(image)
    except ImageError as exc:
        assert mode in str(exc)
        return
    assert len(predictions) == 1 and 0 <= predictions[0].probability <= 1


def test_pil_images_from_image_open_pass_the_same_checks_as_files(predictor, mnist, tmp_path):
    digit = mnist.test_images[0, 0].numpy()
    Image.fromarray(digit).save(tmp_path / "digit.ppm")
    lying_png(tmp_path / "big.png", 8000)  # under Pillow's own limit, over ours: refused before decoding
    Image.fromarray(digit).save(tmp_path / "whole.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:200])
    for name, message in [
        ("digit.ppm", "PPM images are not accepted"),
        ("big.png", "8000×8000"),
        ("cut.png", "corrupt"),
    ]:
        for images in (tmp_path / name, [tmp_path / name]):
            with pytest.raises(ImageError, match=message):
                predictor.predict(images)
        with Image.open(tmp_path / name) as image, pytest.raises(ImageError, match=message) as info:
            predictor.predict([image])
        assert info.value.path == tmp_path / name


def test_sixteen_bit_and_alpha_images_read_as_their_eight_bit_picture(predictor, mnist, tmp_path):
    digit = mnist.test_images[0, 0].numpy()
    Image.fromarray(digit.astype(np.uint16) * 257).save(tmp_path / "deep.png")  # I;16: scaled, not clipped to white
    bands = [Image.new("L", digit.shape[::-1], 0), Image.fromarray(digit)]  # black ink, the digit its opacity
    ink, palette_ink = Image.merge("LA", bands), Image.merge("PA", bands)
    palette_ink.putpalette([0, 0, 0] * 256)
    expected = predictor.predict_proba(digit)  # the ink on white, inverted, is the digit again (±1 in rounding)
    deep = (tmp_path / "deep.png", Image.open(tmp_path / "deep.png"))
    for images in (*deep, ink, ink.convert("La"), ink.convert("RGBA").convert("RGBa"), palette_ink):
        assert np.abs(predictor.predict_proba(images) - expected).max() < 0.02, images


def _mutations(data: bytes, rng: random.Random) -> bytes:
    """One seeded mutation: bit flips, a truncation, header bytes changed, or a run of random bytes."""
    out = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        return bytes(out[: rng.randrange(len(out))])
    elif kind == 2:
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(min(64, len(out)))] = rng.randrange(256)
    else:
        start = rng.randrange(len(out))
        out[start : start + rng.randint(1, 16)] = rng.randbytes(rng.randint(1, 16))
    return bytes(out)


def _corpus(folder, digit: np.ndarray) -> list:
    """MUTATIONS mutated files of each accepted format, made from a real MNIST test digit."""
    paths = []
    for index, (fmt, suffix) in enumerate(FORMATS.items()):
        picture = Image.fromarray(digit).convert("RGB" if fmt in ("JPEG", "WEBP") else "L")
        buffer = io.BytesIO()
        picture.save(buffer, fmt)
        rng = random.Random(index)
        for k in range(MUTATIONS):
            path = folder / f"{fmt.lower()}-{k:03d}.{suffix}"
            path.write_bytes(_mutations(buffer.getvalue(), rng))
            paths.append(path)
    return paths


def _outcome(predictor, images) -> str:
    try:
        predictions = predictor.predict(images)
    except InputError:
        return "refused"
    assert len(predictions) == 1 and np.isfinite(predictions[0].probability)
    return "predicted"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning", "ignore::UserWarning:PIL.*")
def test_mutated_files_are_predictions_or_image_errors_as_paths_and_as_pil_images(predictor, mnist, tmp_path, capsys):
    counts = {"paths": {"predicted": 0, "refused": 0}, "Image.open": {"predicted": 0, "refused": 0, "skipped": 0}}
    paths = _corpus(tmp_path, mnist.test_images[0, 0].numpy())
    for path in paths:
        counts["paths"][_outcome(predictor, path)] += 1
        try:
            image = Image.open(path)
        except (Image.DecompressionBombError, *PIL_OPEN_ERRORS):
            counts["Image.open"]["skipped"] += 1  # Pillow refused it before edgecnn was involved
            continue
        with image:
            counts["Image.open"][_outcome(predictor, image)] += 1
    with capsys.disabled():
        print(f"\nmutated files tried: {len(paths)}; {counts}")
    assert counts["paths"]["predicted"] > 0 and counts["paths"]["refused"] > 0
    assert counts["Image.open"]["refused"] > 0  # the corrupt files Image.open accepts are caught, not raw errors
