#!/usr/bin/env bash
# Set up .venv if needed, then run the whole test suite (slow tests included). Extra args go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$root"
rc=0
.venv/bin/python -m pytest "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure, not a pass" >&2
    exit 1
fi
exit "$rc"
