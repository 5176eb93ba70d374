#!/usr/bin/env bash
# The main job on real data: set up .venv if needed, train a seed net on Fashion-MNIST, export it to
# ONNX (fp32, and whatever `auto` measures fastest within the accuracy budget), verify parity, predict a
# few test images through the torch-free Predictor, then `edgecnn bench` fp32 vs auto vs torch eager.
# Usage: tools/demo.sh [OUT_DIR]   (default runs/demo; ARCH and EPOCHS may be set in the environment)
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$root"
out="${1:-runs/demo}"
arch="${ARCH:-keras_same}"  # int8 pays off on it; ARCH=fashion_bn shows auto keeping fp32
epochs="${EPOCHS:-1}"
mkdir -p "$out"

echo "== train: $arch on Fashion-MNIST, $epochs epoch(s) -> $out"
.venv/bin/edgecnn train --arch "$arch" --dataset fashion-mnist --epochs "$epochs" --out "$out" \
    --json > "$out/train.json"
.venv/bin/python - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
summary = json.loads((out / "train.json").read_text())
for e in summary["epochs"]:
    print(f"  epoch {e['epoch']}: train loss {e['train_loss']:.4f} acc {e['train_accuracy']:.2%} | "
          f"validation loss {e['val_loss']:.4f} acc {e['val_accuracy']:.2%} | {e['seconds']:.1f} s, "
          f"{e['samples_per_s']:,.0f} samples/s")
print(f"  kept epoch {summary['best_epoch']} (best on validation); test accuracy, measured once: "
      f"{summary['test_accuracy']:.2%}")
print(f"  wrote {out}/checkpoint.pt, metrics.json, curves.png, confusion.png")
PY

echo "== export fp32 -> $out/model.fp32.onnx (parity on the whole test set)"
.venv/bin/edgecnn export "$out" --out "$out/model.fp32.onnx"
echo "== export auto -> $out/model.auto.onnx (fp32 / dynamic / static measured on this machine)"
.venv/bin/edgecnn export "$out" --out "$out/model.auto.onnx" --quantize auto
echo "== verify $out/model.auto.onnx against the checkpoint"
.venv/bin/edgecnn verify "$out" "$out/model.auto.onnx"

echo "== predict: four real test images (the last one inverted, as if photographed on paper)"
.venv/bin/python - "$out" <<'PY'
import pathlib, sys
from PIL import Image
from edgecnn.training.data import load_dataset
out = pathlib.Path(sys.argv[1]) / "samples"
out.mkdir(exist_ok=True)
data = load_dataset("fashion-mnist")
for i in range(4):
    pixels = data.test_images[i, 0].numpy()
    name = f"{i}-{data.class_names[int(data.test_labels[i])].replace('/', '-').replace(' ', '_')}"
    Image.fromarray(255 - pixels if i == 3 else pixels).save(out / f"{name}{'-on-paper' if i == 3 else ''}.png")
PY
.venv/bin/edgecnn predict "$out/model.auto.onnx" "$out"/samples/*.png --top-k 2
.venv/bin/python - "$out" <<'PY'
import pathlib, sys
from edgecnn.runtime.preprocess import load_image
from edgecnn.runtime import Predictor
predictor = Predictor(pathlib.Path(sys.argv[1]) / "model.auto.onnx")
files = sorted((pathlib.Path(sys.argv[1]) / "samples").glob("*.png"))
results = predictor.predict([load_image(f) for f in files])
print(f"  Predictor ({predictor.provider}): " + ", ".join(f"{f.name.split('-')[0]}→{r.label}" for f, r in zip(files, results)))
PY

.venv/bin/python - "$out" <<'PY'
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
train = json.loads((out / "train.json").read_text())
print(f"== summary: torch test accuracy {train['test_accuracy']:.2%}")
for name in ("fp32", "auto"):
    r = json.loads((out / f"model.{name}.report.json").read_text())
    print(f"  {name:>4}: {r['mode']:<7} {r['size_bytes']['exported']:>9,} bytes  accuracy {r['accuracy']['exported']:.2%} "
          f"({r['accuracy']['delta_pp']:+.2f} pp)  agreement {r['parity']['top1_agreement']:.2%}  "
          f"batch-1 p50 {r['latency_ms_p50']['exported']['1']:.3f} ms (fp32 {r['latency_ms_p50']['fp32']['1']:.3f})")
PY

echo "== bench: fp32 vs auto's choice vs torch eager, measured round-robin in one run"
.venv/bin/edgecnn bench "$out/model.fp32.onnx" "$out/model.auto.onnx" --torch "$out" --batch-sizes 1,64 \
    --iters 200 --cold-runs 3 --json "$out/bench.json" --plot "$out/bench.png"
echo "  wrote $out/bench.json and $out/bench.png"

echo "== the zoo: the same samples through the shipped, trained keras_same (int8, SHA-256-checked)"
.venv/bin/edgecnn predict zoo:keras_same "$out"/samples/*.png --top-k 2
