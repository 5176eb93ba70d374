"""Helper for tools/check_min_deps.sh (not part of the package; stdlib + numpy + Pillow + edgecnn only).

floor_check.py prepare WORK        (dev venv, with torch): WORK/images.npy (200 MNIST test digits),
                                   WORK/ref_<model>.npy for every WORK/<model>.onnx, WORK/png/*.png
floor_check.py compare WORK MODEL  (floor venv): Predictor(WORK/MODEL.onnx).predict_proba(images)
                                   against WORK/ref_MODEL.npy; one summary line; exit 1 on a mismatch
floor_check.py same-predict REF OUT  two `edgecnn predict --json` outputs: same files, same labels
floor_check.py json FILE           FILE holds one JSON document (exit 1 if not)
floor_check.py versions            python, numpy, onnxruntime, Pillow, click, tqdm as installed
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

N_IMAGES = 200
# fp32 and the baked graph must match the dev venv almost bit for bit; quantized / fp16 kernels may
# differ between onnxruntime releases, so only their top-1 agreement is held to a bound.
EXACT = {"fp32", "baked"}
MAX_ABS_DIFF = 1e-4
MIN_AGREEMENT = 0.99


def prepare(work: Path) -> int:
    import numpy as np
    from PIL import Image

    from edgecnn.runtime import Predictor
    from edgecnn.training.data import load_dataset

    images = load_dataset("mnist").test_images[:N_IMAGES, 0].numpy().astype(np.uint8)
    np.save(work / "images.npy", images)
    for model in sorted(work.glob("*.onnx")):
        probabilities = Predictor(model).predict_proba(images)
        np.save(work / f"ref_{model.stem}.npy", probabilities)
        print(f"reference {model.name}: {probabilities.shape[0]} images, top-1 {np.bincount(probabilities.argmax(1))}")
    png = work / "png"
    png.mkdir(exist_ok=True)
    # plain 28×28 greyscale digits, as the data set has them
    for i in range(4):
        Image.fromarray(images[i]).save(png / f"digit{i}_grey28.png")
    # a larger RGB scan of a dark digit on white paper: resize + light-background inversion
    big = Image.fromarray(255 - images[4]).resize((112, 112), Image.BILINEAR).convert("RGB")
    big.save(png / "digit4_rgb112_light.png")
    # RGBA with a transparent background: alpha compositing onto white
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = images[5]
    Image.fromarray(rgba, "RGBA").save(png / "digit5_rgba_alpha.png")
    # a JPEG (lossy decode path)
    Image.fromarray(images[6]).convert("RGB").save(png / "digit6_rgb.jpg", quality=95)
    print(f"wrote {len(list(png.iterdir()))} image files to {png}")
    return 0


def compare(work: Path, name: str) -> int:
    import numpy as np

    from edgecnn.runtime import Predictor

    images = np.load(work / "images.npy")
    ref = np.load(work / f"ref_{name}.npy")
    got = Predictor(work / f"{name}.onnx").predict_proba(images)
    if got.shape != ref.shape:
        print(f"FAIL compare {name}: shape {got.shape} vs reference {ref.shape}")
        return 1
    agreement = float((got.argmax(1) == ref.argmax(1)).mean())
    max_diff = float(np.abs(got.astype(np.float64) - ref).max())
    if name in EXACT:
        ok = agreement == 1.0 and max_diff <= MAX_ABS_DIFF
        bound = f"need top-1 100% and max|Δp| <= {MAX_ABS_DIFF:g}"
    else:
        ok = agreement >= MIN_AGREEMENT
        bound = f"need top-1 >= {MIN_AGREEMENT:.0%}"
    verdict = "ok  " if ok else "FAIL"
    print(
        f"{verdict} compare {name}: top-1 agreement {agreement:.2%} on {len(images)}, max|Δp| {max_diff:.2e} ({bound})"
    )
    return 0 if ok else 1


def same_predict(ref_path: Path, out_path: Path) -> int:
    ref = json.loads(ref_path.read_text())
    out = json.loads(out_path.read_text())
    ref_labels = [(Path(r["file"]).name, r.get("label")) for r in ref]
    out_labels = [(Path(r["file"]).name, r.get("label")) for r in out]
    if ref_labels != out_labels:
        print(f"labels differ: reference {ref_labels} vs {out_labels}")
        return 1
    print(" ".join(f"{f}={label}" for f, label in out_labels))
    return 0


def versions() -> int:
    import importlib.metadata as md

    parts = [f"python {sys.version.split()[0]}"]
    for dist in ("numpy", "onnxruntime", "onnxruntime-gpu", "pillow", "click", "tqdm"):
        try:
            parts.append(f"{dist} {md.version(dist)}")
        except md.PackageNotFoundError:
            if dist != "onnxruntime-gpu":
                parts.append(f"{dist} absent")
    print(", ".join(parts))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["prepare"] and len(argv) == 2:
        return prepare(Path(argv[1]))
    if argv[:1] == ["compare"] and len(argv) == 3:
        return compare(Path(argv[1]), argv[2])
    if argv[:1] == ["same-predict"] and len(argv) == 3:
        return same_predict(Path(argv[1]), Path(argv[2]))
    if argv[:1] == ["json"] and len(argv) == 2:
        json.loads(Path(argv[1]).read_text())
        return 0
    if argv == ["versions"]:
        return versions()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
