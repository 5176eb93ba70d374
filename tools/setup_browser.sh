#!/usr/bin/env bash
# Install Debian's Chromium for the web bundle's browser test (tests/export/test_web_bundle.py), if it is missing.
# Idempotent; needs root on Debian/Ubuntu. Elsewhere it says what is missing, and that test skips with the reason.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "setup_browser: Chromium is missing; install it (Debian: apt-get install chromium, as root)" >&2
    exit 0
fi
echo "setup_browser: apt-get install chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium >&2
