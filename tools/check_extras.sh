#!/usr/bin/env bash
# Check what the onnxruntime extras really install: `pip install "edgecnn[cpu]"` and `pip install
# "edgecnn[gpu]"`, each in a fresh venv (non-editable, from this checkout), must leave exactly one
# onnxruntime distribution (onnxruntime resp. onnxruntime-gpu) and pass `pip check`; the gpu build must
# list CUDAExecutionProvider in onnxruntime.get_available_providers() (the CUDA build lists it even on a
# machine without a GPU or CUDA libraries). A third venv installs "edgecnn[cpu,gpu]" on purpose to show
# what that does (both distributions land in one onnxruntime/ folder, the last one unpacked wins):
# reported, never a failure. Each venv also reports edgecnn's own verdict on the install
# (edgecnn.runtime.install.require_onnxruntime(), which must pass for [cpu] and [gpu]).
# Prints a table extra -> distributions -> providers; exit 1 if cpu or gpu is wrong.
#
# Usage: tools/check_extras.sh        env: PY (interpreter, python3), EXTRAS (default "cpu gpu cpu,gpu"),
#                                          KEEP=1 keeps the venvs under /tmp (path printed at the end)
# Takes about 1 minute on 2 cores with a warm pip cache (measured ~60 s: three venvs, one at a time,
# ~15 s each); a cold cache adds the downloads, mostly the onnxruntime-gpu wheel (~250 MB). No GPU needed.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PY:-python3}"
EXTRAS="${EXTRAS:-cpu gpu cpu,gpu}"
started=$SECONDS
work="$(mktemp -d /tmp/edgecnn-extras.XXXXXX)"
cleanup() {
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# probe.py: one line per fact, read back below; runs inside each venv
cat >"$work/probe.py" <<'EOF'
import importlib.metadata as m
names = sorted(d.metadata["Name"] for d in m.distributions() if d.metadata["Name"].lower().startswith("onnxruntime"))
print("dists=" + ",".join(f"{n}=={m.version(n)}" for n in names))
try:
    import onnxruntime
    print("providers=" + ",".join(onnxruntime.get_available_providers()))
    print("ort_version=" + onnxruntime.__version__)
except Exception as exc:  # report whatever an import of a clashing install does
    print(f"providers=IMPORT ERROR {type(exc).__name__}: {exc}".replace("\n", " ")[:200])
try:
    import edgecnn.runtime  # noqa: F401
    print("edgecnn=import ok")
except Exception as exc:
    print(f"edgecnn=IMPORT ERROR {type(exc).__name__}: {exc}".replace("\n", " ")[:200])
# edgecnn's own verdict on the install (the check its Predictor makes before any session)
try:
    from edgecnn.runtime.install import require_onnxruntime
except ImportError:
    print("verdict=n/a (no edgecnn.runtime.install.require_onnxruntime)")
else:
    try:
        require_onnxruntime()
        print("verdict=ok")
    except Exception as exc:
        print(f"verdict={type(exc).__name__}: {exc}".replace("\n", " ")[:300])
EOF

# install from a snapshot of the working tree: the three venvs see the same source, and a non-editable
# build leaves no build/ or *.egg-info behind in the checkout
src="$work/src"
mkdir -p "$src"
tar -C "$repo" --exclude=./.venv --exclude=./.git --exclude=./build --exclude=./dist --exclude=./runs \
    --exclude='*.egg-info' --exclude=__pycache__ --exclude=.pytest_cache --exclude=.ruff_cache -cf - . |
    tar -C "$src" -xf -

failures=0
rows=()
fail() {
    echo "FAIL [$1]: $2"
    failures=$((failures + 1))
}
field() { sed -n "s/^$1=//p" "$2" | head -n 1; }

echo "python: $("$PY" --version 2>&1); source: snapshot of $repo"
for extra in $EXTRAS; do
    tag="${extra//,/+}"
    venv="$work/venv-$tag"
    log="$work/install-$tag.log"
    echo "== [$extra] fresh venv, pip install \"$repo[$extra]\" ($((SECONDS - started)) s)"
    "$PY" -m venv "$venv"
    t0=$SECONDS
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q "$src[$extra]" >"$log" 2>&1; then
        grep -v "Location .* is ignored" "$log" | grep . | tail -n 5 | sed 's/^/   | /'
        rows+=("[$extra]|INSTALL FAILED|-|-|-")
        [ "$extra" = "cpu,gpu" ] || fail "$extra" "pip install failed"
        continue
    fi
    echo "   installed in $((SECONDS - t0)) s"
    "$venv/bin/python" "$work/probe.py" >"$work/probe-$tag.txt" 2>"$work/probe-$tag.err" || true
    dists="$(field dists "$work/probe-$tag.txt")"
    providers="$(field providers "$work/probe-$tag.txt")"
    edgecnn_import="$(field edgecnn "$work/probe-$tag.txt")"
    verdict="$(field verdict "$work/probe-$tag.txt")"
    if pipcheck="$("$venv/bin/python" -m pip check 2>&1 | grep -v "Location .* is ignored")"; then
        pipcheck_ok=1
    else
        pipcheck_ok=0
    fi
    echo "   onnxruntime distributions: [${dists//,/, }]"
    echo "   get_available_providers(): [${providers//,/, }]"
    echo "   pip check: ${pipcheck//$'\n'/; }"
    echo "   edgecnn.runtime: $edgecnn_import; require_onnxruntime(): $verdict"
    if [ -s "$work/probe-$tag.err" ]; then
        echo "   (stderr of the probe: $(head -c 300 "$work/probe-$tag.err" | tr '\n' ' '))"
    fi
    rows+=("[$extra]|${dists:-none}|${providers:-none}|$([ $pipcheck_ok = 1 ] && echo ok || echo BROKEN)|${verdict%%:*}")

    n_dists=$(awk -F, '{print NF}' <<<"$dists")
    case "$extra" in
    cpu | gpu)
        want="onnxruntime"
        [ "$extra" = gpu ] && want="onnxruntime-gpu"
        if [ "$n_dists" != 1 ] || [ "${dists%%==*}" != "$want" ]; then
            fail "$extra" "want exactly one onnxruntime distribution ($want), got [${dists}]"
        fi
        [ $pipcheck_ok = 1 ] || fail "$extra" "pip check: $pipcheck"
        [ "$edgecnn_import" = "import ok" ] || fail "$extra" "edgecnn.runtime: $edgecnn_import"
        [[ "$verdict" == ok || "$verdict" == n/a* ]] || fail "$extra" "require_onnxruntime(): $verdict"
        if [ "$extra" = gpu ] && [[ ",$providers," != *",CUDAExecutionProvider,"* ]]; then
            fail "$extra" "CUDAExecutionProvider missing from get_available_providers(): [$providers]"
        fi
        if [ "$extra" = cpu ] && [[ ",$providers," != *",CPUExecutionProvider,"* ]]; then
            fail "$extra" "CPUExecutionProvider missing from get_available_providers(): [$providers]"
        fi
        ;;
    *)
        if [ "$n_dists" -gt 1 ]; then
            echo "   NOTE [$extra]: $n_dists onnxruntime distributions share one onnxruntime/ package folder;" \
                "whichever pip unpacked last owns the shared files (reported, not a failure)"
        fi
        ;;
    esac
done

echo
echo "== summary ($((SECONDS - started)) s)"
{
    echo "extra|onnxruntime distributions|get_available_providers()|pip check|edgecnn"
    echo "-----|--------------------------|-------------------------|---------|-------"
    for row in "${rows[@]}"; do echo "$row"; done
} | column -t -s '|'
if [ "$failures" -gt 0 ]; then
    echo "RESULT: $failures check(s) FAILED"
    exit 1
fi
echo "RESULT: [cpu] and [gpu] each install exactly one onnxruntime build; [gpu] offers CUDAExecutionProvider"
