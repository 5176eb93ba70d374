#!/usr/bin/env bash
# Create .venv (or refresh it when pyproject.toml or this script changed) with edgecnn[cpu,train,dev,openvino,serve,ray].
# Idempotent: a second run with nothing changed does nothing. Sourced by test.sh and demo.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
python="${PYTHON:-python3}"
stamp="$venv/.edgecnn-deps"
want="$(cat "$root/pyproject.toml" "$root/tools/setup.sh" | sha256sum | cut -d' ' -f1)"

if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
    # none yet, or a half-made one (a setup killed while creating it has python but no pip): start clean
    echo "setup: creating $venv" >&2
    "$python" -m venv --clear "$venv"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing edgecnn[cpu,train,dev,openvino,serve,ray] into $venv (the first run takes a few minutes)" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[cpu,train,dev,openvino,serve,ray]" >&2
    echo "$want" > "$stamp"
fi

# Beside a checkout with ../shared (CI, the project's machines) use its datasets; elsewhere edgecnn's
# own default applies (the user cache dir, downloading where the network allows).
if [ -z "${EDGECNN_DATA:-}" ] && [ -d "$root/../shared/datasets" ]; then
    EDGECNN_DATA="$(cd "$root/../shared/datasets" && pwd)"
    export EDGECNN_DATA
fi
