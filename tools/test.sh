#!/usr/bin/env bash
# Set up .venv if needed, then run the whole test suite (slow tests included). Extra args go to pytest.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/tools/setup.sh" || { echo "test.sh: setting up .venv failed" >&2; exit 1; }
cd "$root"
# Beside a checkout with ../shared (CI, the project's machines) use its datasets; elsewhere edgecnn's
# own default applies (the user cache dir, downloading where the network allows).
if [ -z "${EDGECNN_DATA:-}" ] && [ -d "$root/../shared/datasets" ]; then
    export EDGECNN_DATA="$(cd "$root/../shared/datasets" && pwd)"
fi
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure, not a pass" >&2
    exit 1
fi
exit "$rc"
