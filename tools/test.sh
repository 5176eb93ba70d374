#!/usr/bin/env bash
# Set up .venv and the check targets if needed, lint (ruff check + format check), then run the whole test suite (slow tests
# included). Extra args go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$root"
# The check targets the suite runs models on (docs/targets.md): QEMU user mode, a Debian arm64 root with the
# device install of this checkout, onnxruntime-web. Idempotent (a ready target is left alone); the first run
# takes minutes and needs root on Debian/Ubuntu: elsewhere it says what is missing, and those tests skip.
echo "test.sh: edgecnn targets setup" >&2
.venv/bin/python -m edgecnn targets setup || echo "test.sh: the check targets are not all ready (see above)" >&2
# Chromium, for the web bundle's browser test (Debian's package, as root; skipped with the reason elsewhere)
tools/setup_browser.sh || echo "test.sh: Chromium could not be installed (see above)" >&2
echo "test.sh: ruff check and ruff format --check" >&2
.venv/bin/ruff check . || exit 1
.venv/bin/ruff format --check . || { echo "test.sh: run .venv/bin/ruff format . to fix the layout" >&2; exit 1; }
rc=0
.venv/bin/python -m pytest "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure, not a pass" >&2
    exit 1
fi
exit "$rc"
