#!/usr/bin/env bash
# The main job on real data: set up .venv if needed, train a seed net on Fashion-MNIST, summarise.
# Usage: tools/demo.sh [OUT_DIR]   (default runs/demo; ARCH and EPOCHS may be set in the environment)
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$root"
out="${1:-runs/demo}"
arch="${ARCH:-fashion_bn}"
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
          f"test loss {e['test_loss']:.4f} acc {e['test_accuracy']:.2%} | {e['seconds']:.1f} s, "
          f"{e['samples_per_s']:,.0f} samples/s")
print(f"  wrote {out}/checkpoint.pt, metrics.json, curves.png, confusion.png")
print(f"== summary: test accuracy {summary['test_accuracy']:.2%}")
PY
