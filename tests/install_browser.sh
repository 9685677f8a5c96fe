#!/bin/sh
# Install the headless browser the dashboard tests drive: Debian's chromium at /usr/bin/chromium.
# Why Debian's package: Playwright's own browser download ("playwright install") needs the internet;
# the distribution package comes from the same apt mirror as everything else on the machine.
# Idempotent: does nothing when /usr/bin/chromium is already there. Uses sudo only when not root.
set -eu

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install_browser.sh: not root and sudo is not available; install Debian's chromium package" \
         "yourself (apt-get install -y chromium) so $CHROMIUM exists" >&2
    exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser.sh: apt-get not found; this script installs Debian's chromium package." \
         "Install a Chromium at $CHROMIUM by other means" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update; then
    echo "install_browser.sh: apt-get update failed (is the package mirror reachable?)" >&2
    exit 1
fi
if ! $SUDO apt-get install -y --no-install-recommends chromium; then
    echo "install_browser.sh: apt-get install chromium failed" >&2
    exit 1
fi

if [ ! -x "$CHROMIUM" ]; then
    echo "install_browser.sh: chromium package installed but $CHROMIUM is missing" >&2
    exit 1
fi
echo "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
