"""``edgecnn bundle MODEL --target web``: a static folder that classifies photos, camera frames and drawings in a
browser with onnxruntime-web (WebAssembly, one thread), framed exactly as the Predictor frames them.

The folder: ``index.html`` and ``app.mjs`` (the page), ``preprocess.mjs`` (the Predictor's framing and
normalisation in JavaScript: runtime/web/preprocess.mjs), ``model.onnx``, ``ort/`` (only the two onnxruntime-web
files the page loads: the WebAssembly bundle's module and its SIMD ``.wasm``, from the npm package the wasm check
target installs), ``samples/`` (real test images of the model's dataset, photo-like framings of them, one
rotated by its EXIF tag) and ``bundle.json``: the model card's summary, the preprocessing contract, the samples
with the Predictor's answers on this machine, what the bundle costs (bytes per file, parameters, MACs, peak
activation memory). ``index.html?selftest=1`` classifies the samples and writes the answers as JSON into
``<pre id="selftest">``; the tests drive Chromium over it. Built in a folder beside ``--out`` and moved into
place whole.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edgecnn.errors import ConfigError, TargetError, WriteError, describe
from edgecnn.files import check_writable

__all__ = ["bundle_web", "RUNTIME_FILES"]

RUNTIME_FILES = ("ort.wasm.bundle.min.mjs", "ort-wasm-simd-threaded.wasm")  # what app.mjs loads, and nothing else
_PAGE = Path(__file__).with_name("web_page")
_SAMPLES = 6  # real test images, plus three photo-like ones
_MAX_OWN_SAMPLES = 32  # of a --samples folder: enough for a self-test, little for the bundle's size


def bundle_web(
    model: str | Path, out: str | Path, *, samples: str | Path | None = None, say: Any = print
) -> dict[str, Any]:
    """Write the web bundle of ``model`` into the folder ``out``; its report (bundle.json). ``samples``: a folder
    of images to bundle as the self-test's samples (default: the model's built-in dataset's test images)."""
    from edgecnn.runtime import Predictor

    model, out = Path(model), Path(out)
    check_writable(out, directory=True, what="--out")
    if out.is_dir() and any(out.iterdir()) and not (out / "bundle.json").is_file():
        raise ConfigError(f"--out {out} holds files that are not a bundle's: name a new or empty folder")
    dist = _onnxruntime_web()
    predictor = Predictor(model, backend="onnxruntime")
    building = out.with_name(f".{out.name}.edgecnn-building")
    shutil.rmtree(building, ignore_errors=True)
    try:
        report = _build(predictor, model, building, dist, samples)
        _move_into_place(building, out)
    except OSError as exc:
        raise WriteError(f"cannot write the bundle {out}: {describe(exc)}", path=out) from exc
    finally:
        shutil.rmtree(building, ignore_errors=True)  # nothing half-made is left beside --out
    total = report["bytes"]["total"]
    say(f"{out}: {total:,} bytes ({report['bytes']['runtime']:,} of them onnxruntime-web); open it over HTTP")
    return report


def _build(predictor: Any, model: Path, building: Path, dist: Path, samples: str | Path | None) -> dict[str, Any]:
    from edgecnn.export.costs import graph_costs
    from edgecnn.export.mobile import preprocessing_contract

    (building / "ort").mkdir(parents=True)
    (building / "samples").mkdir()
    for name in ("index.html", "app.mjs"):
        shutil.copyfile(_PAGE / name, building / name)
    shutil.copyfile(Path(__file__).parents[1] / "runtime" / "web" / "preprocess.mjs", building / "preprocess.mjs")
    for name in RUNTIME_FILES:
        shutil.copyfile(dist / name, building / "ort" / name)
    shutil.copyfile(model, building / "model.onnx")
    report = {
        "target": "web",
        "card": _card(predictor, model),
        "preprocessing": preprocessing_contract(predictor),
        "samples": _samples(predictor, building, samples),
        "runtime": {"onnxruntime-web": _version(dist), "backend": "wasm", "threads": 1},
        "bytes": _sizes(building),
        "costs": graph_costs(model).to_dict(),
    }
    (building / "bundle.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def _onnxruntime_web() -> Path:
    from edgecnn.runtime.targets import web_dir

    dist = web_dir() / "node_modules" / "onnxruntime-web" / "dist"
    if not all((dist / name).is_file() for name in RUNTIME_FILES):
        raise TargetError("onnxruntime-web is not installed: run `edgecnn targets setup wasm` (it runs npm install)")
    return dist


def _version(dist: Path) -> str:
    return json.loads((dist.parent / "package.json").read_text(encoding="utf-8"))["version"]


def _card(predictor: Any, model: Path) -> dict[str, Any]:
    card = predictor.metadata.card
    accuracy = card.metrics.get("test_accuracy")
    quantized = predictor.metadata.quantization.get("mode", "none")
    summary = f"{card.arch} on {card.dataset or 'its own data'}: {len(card.class_names)} classes"
    summary += f", test accuracy {accuracy:.2%}" if accuracy else ""
    summary += f"; {'fp32' if quantized == 'none' else quantized + ' int8'} ({model.name})"
    return {"title": f"{card.arch} — edgecnn", "summary": summary, "classes": list(card.class_names)}


def _samples(predictor: Any, folder: Path, own: str | Path | None) -> list[dict[str, Any]]:
    """The sample files written, each with the Predictor's answer to it read back from disk as the page reads it."""
    files = _own_samples(Path(own), folder) if own else _dataset_samples(predictor, folder)
    answers = predictor.predict([str(path) for path in files], top_k=1)
    return [
        {"file": path.relative_to(folder).as_posix(), "label": answer.label, "probability": answer.probability}
        for path, answer in zip(files, answers, strict=True)
    ]


def _dataset_samples(predictor: Any, folder: Path) -> list[Path]:
    """Real test images of the model's built-in dataset, photo-like framings of two, one rotated by EXIF."""
    from edgecnn.bench.framings import frame_all
    from edgecnn.runtime.probe import _shipped

    card = predictor.metadata.card
    shipped = _shipped(card.dataset)
    if shipped is None:
        what = card.dataset or "this model"
        raise ConfigError(f"edgecnn ships no images of {what}: give the bundle's samples with --samples FOLDER")
    images, _ = shipped
    written = [
        _save(Image.fromarray(image), folder / "samples" / f"test-{i}.png") for i, image in enumerate(images[:_SAMPLES])
    ]
    for framing in ("light background", "small, off-centre"):
        (photo,) = frame_all(images[_SAMPLES : _SAMPLES + 1], framing, seed=0)
        written.append(_save(photo, folder / "samples" / f"{framing.split(',')[0].replace(' ', '-')}.png"))
    (photo,) = frame_all(images[_SAMPLES + 1 : _SAMPLES + 2], "white margin", seed=0)
    written.append(_rotated_by_exif(photo, folder / "samples" / "exif-rotated.jpg"))
    return written


def _own_samples(source: Path, folder: Path) -> list[Path]:
    """The image files of ``source`` (as `edgecnn predict` finds them), copied under their own names."""
    from edgecnn.data.folders import walk_image_files
    from edgecnn.runtime.images import IMAGE_SUFFIXES

    found, problems = walk_image_files(source, IMAGE_SUFFIXES)
    if problems or not found:
        why = problems[0][1] if problems else "no image files in it"
        raise ConfigError(f"--samples {source}: {why}")
    written = []
    for i, path in enumerate(sorted(found)[:_MAX_OWN_SAMPLES]):
        written.append(folder / "samples" / f"{i:03d}-{Path(path).name}")
        shutil.copyfile(path, written[-1])
    return written


def _save(image: Image.Image, path: Path) -> Path:
    image.save(path)
    return path


def _rotated_by_exif(photo: Image.Image, path: Path) -> Path:
    """The photo stored turned a quarter anticlockwise, with EXIF orientation 6 saying to turn it back."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    photo.transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    path.write_bytes(buffer.getvalue())
    return path


def _sizes(folder: Path) -> dict[str, Any]:
    files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    runtime = sum(size for name, size in files.items() if name.startswith("ort/"))
    return {
        "files": files,
        "runtime": runtime,
        "model": files["model.onnx"],
        "total": int(np.sum(list(files.values()))),
    }


def _move_into_place(building: Path, out: Path) -> None:
    old = out.with_name(f".{out.name}.edgecnn-old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    building.rename(out)
    shutil.rmtree(old, ignore_errors=True)
