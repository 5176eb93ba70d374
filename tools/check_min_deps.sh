#!/usr/bin/env bash
# Prove the lowest dependency versions the torch-free runtime (tier 0) works with, on real exported models.
#
#  1. With the dev venv (.venv: torch, onnx), train two tiny nets on 3,000 MNIST images for one epoch and
#     export five models the way users get them (torch.onnx.export dynamo, opset 18, IR 10): fp32,
#     dynamic int8 (mnist_cnn3: MatMulInteger), static QDQ int8, fp16 (Cast, keep_io_types) and
#     baked preprocessing (uint8 input). Save 200 real MNIST test digits, the dev venv's
#     Predictor.predict_proba on them, a few PNG/JPEG files and `edgecnn predict --json` on those.
#  2. Build a fresh venv with exactly ORT/NUMPY/PILLOW/CLICK/TQDM (wheels only) and edgecnn itself
#     installed with --no-deps (so no torch, nothing else unpinned except onnxruntime's own deps).
#  3. There: `edgecnn info` (text and --json), `edgecnn predict` on the image files (labels must match
#     the dev venv's), `edgecnn bench --iters 20 --cold-runs 0 --batch-sizes 1,4`, and predict_proba
#     against the reference (fp32/baked: top-1 identical and max|Δp| <= 1e-4; dynamic/static/fp16:
#     top-1 agreement >= 99%). One summary line per check; exit 1 if any failed.
#
# Usage: tools/check_min_deps.sh                      # the floors found (defaults below)
#        ORT=1.17.3 NUMPY=1.24.4 tools/check_min_deps.sh   # any other combination
#   env: ORT NUMPY PILLOW CLICK TQDM  versions to pin (TQDM=none: leave tqdm out, to see what imports it);  PY  interpreter (python3)
#        DEV_VENV  venv with torch (default: .venv);  EDGECNN_DATA  datasets root (default ../shared/datasets)
#        MODELS=DIR  reuse DIR from an earlier KEEP=1 run (its models/ folder) instead of training again
#        KEEP=1  keep the work dir under /tmp (printed at the end)
# Takes about 2 minutes on 2 cores with a warm pip cache (measured 120 s: ~85 s training + exports,
# ~20 s floor venv, ~15 s checks; MODELS=... skips the first part); a cold pip cache adds the downloads
# (~40 MB). Needs the package index (pip as configured) and MNIST under EDGECNN_DATA; no GPU.
# Floors found (Python 3.11): onnxruntime 1.18.0 (1.17.x: "Unsupported model IR version: 10, max
# supported IR version: 9"); numpy 1.24.2 (onnxruntime 1.18.0 requires it; with 1.18.1, 1.23.2 passes);
# Pillow 9.2.0 (the oldest wheel for 3.11; 8.3.2 on 3.10); click 7.0 (6.7: no get_short_help_str).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
helper="$repo/tools/floor_check.py"

ORT="${ORT:-1.18.0}"
NUMPY="${NUMPY:-1.24.2}"
PILLOW="${PILLOW:-9.2.0}"
CLICK="${CLICK:-8.0.0}"
TQDM="${TQDM:-4.66.0}"
PY="${PY:-python3}"
DEV_VENV="${DEV_VENV:-$repo/.venv}"
if [ -z "${EDGECNN_DATA:-}" ] && [ -d "$repo/../shared/datasets" ]; then
    EDGECNN_DATA="$(cd "$repo/../shared/datasets" && pwd)"
fi
export EDGECNN_DATA="${EDGECNN_DATA:-}"

started=$SECONDS
work="$(mktemp -d /tmp/edgecnn-mindeps.XXXXXX)"
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

failures=0
# check NAME CMD...: run CMD with its output in a log; print "ok   NAME" or "FAIL NAME" and the log's tail
check() {
    local name="$1"
    shift
    local log
    log="$work/logs/$(echo "$name" | tr -c 'A-Za-z0-9_.-' '_').log"
    mkdir -p "$work/logs"
    if "$@" >"$log" 2>&1; then
        echo "ok   $name"
    else
        echo "FAIL $name (exit $?)"
        grep -v "Location .* is ignored" "$log" | grep . | tail -n 1 | cut -c 1-400 | sed 's/^/       | /'
        failures=$((failures + 1))
    fi
}
step() { echo "== $* ($((SECONDS - started)) s)"; }

models_list=(fp32 dynamic static fp16 baked)
dev_edgecnn="$DEV_VENV/bin/edgecnn"
dev_python="$DEV_VENV/bin/python"

# --- 1. reference models and outputs, made with the dev venv ---------------------------------------------
if [ -n "${MODELS:-}" ]; then
    step "reusing models from $MODELS"
    cp -r "$MODELS" "$work/models"
else
    step "training two tiny nets and exporting 5 models with $DEV_VENV"
    [ -x "$dev_edgecnn" ] || { echo "no $dev_edgecnn: run tools/setup.sh first" >&2; exit 1; }
    mkdir -p "$work/models" "$work/runs" "$work/logs"
    m="$work/models"
    for arch in fashion_bn mnist_cnn3; do
        "$dev_edgecnn" train --arch "$arch" --dataset mnist --epochs 1 --limit-train 3000 --device cpu \
            --out "$work/runs/$arch" >"$work/logs/train_$arch.log" 2>&1 ||
            { cat "$work/logs/train_$arch.log" >&2; exit 1; }
    done
    export_one() {  # NAME RUN FLAGS...
        local name="$1" run="$2"
        shift 2
        "$dev_edgecnn" export "$work/runs/$run" --out "$m/$name.onnx" --parity-samples 500 --latency-iters 3 "$@" \
            >"$work/logs/export_$name.log" 2>&1 || { cat "$work/logs/export_$name.log" >&2; exit 1; }
        echo "   $(head -n 1 "$work/logs/export_$name.log")"
    }
    export_one fp32 fashion_bn
    export_one dynamic mnist_cnn3 --quantize dynamic
    export_one static fashion_bn --quantize static
    export_one fp16 fashion_bn --quantize fp16
    export_one baked fashion_bn --bake-preprocessing
    "$dev_python" "$helper" prepare "$m" | sed 's/^/   /'
    for name in "${models_list[@]}"; do
        "$dev_edgecnn" predict "$m/$name.onnx" "$m"/png/* --json >"$m/ref_predict_$name.json"
    done
fi
m="$work/models"

# --- 2. the floor venv -----------------------------------------------------------------------------------
step "floor venv: onnxruntime==$ORT numpy==$NUMPY pillow==$PILLOW click==$CLICK tqdm==$TQDM ($("$PY" --version))"
venv="$work/floor-venv"
"$PY" -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
pins=("numpy==$NUMPY" "onnxruntime==$ORT" "pillow==$PILLOW" "click==$CLICK")
[ "$TQDM" = none ] || pins+=("tqdm==$TQDM")  # TQDM=none: prove the device side runs without tqdm
if ! "${pip[@]}" install --only-binary=:all: "${pins[@]}" >"$work/pip-install.log" 2>&1; then
    grep -v "Location .* is ignored" "$work/pip-install.log" | tail -n 15 >&2
    echo "FAIL install of the pinned versions" >&2
    exit 1
fi
"${pip[@]}" install --no-deps -e "$repo" >"$work/pip-install-edgecnn.log" 2>&1 ||
    { tail -n 15 "$work/pip-install-edgecnn.log" >&2; exit 1; }
py="$venv/bin/python"
edgecnn="$venv/bin/edgecnn"
tested="$("$py" "$helper" versions)"
echo "   tested: $tested"
echo "   onnxruntime's own deps (unpinned): $("$py" -m pip list --format=freeze 2>/dev/null |
    grep -iE '^(coloredlogs|flatbuffers|packaging|protobuf|sympy)==' | tr '\n' ' ')"

# --- 3. the checks ---------------------------------------------------------------------------------------
step "checks"
check "torch-free venv (import edgecnn.runtime, edgecnn.cli; torch absent)" \
    "$py" -c "import importlib.util as u, edgecnn.runtime, edgecnn.cli; assert u.find_spec('torch') is None"
check "edgecnn --version" "$edgecnn" --version
# every command's --help: builds each click command with all its options (train/export included)
commands="$("$edgecnn" --help 2>/dev/null | sed -n '/^Commands:/,$p' | awk '/^  [a-z]/ {print $1}')" || true
check "edgecnn --help and --help of $(echo $commands | wc -w) commands ($(echo $commands))" \
    bash -c '[ -n "$2" ] || { "$1" --help; exit 1; }
        for c in "" $2; do "$1" $c --help >/dev/null || { echo "edgecnn $c --help failed"; exit 1; }; done' _ \
    "$edgecnn" "$commands"
for name in "${models_list[@]}"; do
    model="$m/$name.onnx"
    check "info $name.onnx" "$edgecnn" info "$model"
    check "info --json $name.onnx" bash -c '"$1" info --json "$2" >"$3" && "$4" "$5" json "$3"' _ \
        "$edgecnn" "$model" "$work/info_$name.json" "$py" "$helper"
    check "predict $name.onnx on $(find "$m/png" -type f | wc -l) image files (labels = dev venv's)" \
        bash -c '"$1" predict "$2" "$3"/png/* --json >"$4" && "$5" "$6" same-predict "$7" "$4"' _ \
        "$edgecnn" "$model" "$m" "$work/predict_$name.json" "$py" "$helper" "$m/ref_predict_$name.json"
    check "bench $name.onnx --iters 20 --cold-runs 0 --batch-sizes 1,4" \
        "$edgecnn" bench "$model" --iters 20 --cold-runs 0 --batch-sizes 1,4
    # the helper prints its own summary line (agreement, max|Δp|)
    if "$py" "$helper" compare "$m" "$name" >"$work/logs/compare_$name.log" 2>&1; then
        cat "$work/logs/compare_$name.log"
    else
        grep -q "compare $name:" "$work/logs/compare_$name.log" && grep "compare $name:" "$work/logs/compare_$name.log" ||
            { echo "FAIL compare $name"; grep . "$work/logs/compare_$name.log" | tail -n 1 | cut -c 1-400 | sed 's/^/       | /'; }
        failures=$((failures + 1))
    fi
done
# informational: what pip thinks of the pins against pyproject's declared floors (not a failure)
pipcheck="$("$py" -m pip check 2>&1 | grep -v "Location .* is ignored" || true)"
echo "info pip check: ${pipcheck//$'\n'/; }"

step "done"
echo "tested $tested"
if [ "$failures" -gt 0 ]; then
    echo "RESULT: $failures check(s) FAILED"
    exit 1
fi
echo "RESULT: all checks passed"
