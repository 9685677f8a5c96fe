#!/bin/sh
# Install the headless browser the dashboard tests drive: Debian's chromium at /usr/bin/chromium.
# Why Debian's package: Playwright's own browser download ("playwright install") needs the internet;
# the distribution package comes from the same apt mirror as everything else on the machine.
# Idempotent: does nothing when /usr/bin/chromium is already there. Uses sudo only when not root.
# Waits for the package manager's lock (unattended upgrades, another install) instead of failing on it.
# Where Chromium cannot be installed (no root/sudo, no apt, mirror unreachable) it says why, writes the reason to
# tests/.browser-unavailable and exits 0: the browser tests then SKIP with that reason (set ALBRA_REQUIRE_BROWSER=1
# to make them fail instead, e.g. on a CI host that must run them).
set -eu

CHROMIUM=/usr/bin/chromium
MARKER="$(dirname "$0")/.browser-unavailable"
LOCK_WAIT_S=${ALBRA_APT_LOCK_WAIT_S:-600}

unavailable() {
    echo "install_browser.sh: $1" >&2
    echo "$1" > "$MARKER"
    echo "install_browser.sh: the dashboard browser tests will be skipped with this reason" >&2
    exit 0
}

# apt-get waits for the dpkg frontend lock itself (DPkg::Lock::Timeout); `apt-get update` may still find the lists
# lock held: retry it until the wait is used up
apt_update() {
    waited=0
    while :; do
        out=$($SUDO apt-get -o DPkg::Lock::Timeout="$LOCK_WAIT_S" update 2>&1) && return 0
        case "$out" in
            *"Could not get lock"*|*"is held by process"*|*"Unable to lock"*)
                if [ "$waited" -ge "$LOCK_WAIT_S" ]; then
                    echo "$out" >&2
                    return 1
                fi
                echo "install_browser.sh: the package manager is busy (lock held); waiting" >&2
                sleep 5
                waited=$((waited + 5)) ;;
            *) echo "$out" >&2; return 1 ;;
        esac
    done
}

if [ -x "$CHROMIUM" ]; then
    rm -f "$MARKER"
    echo "chromium already installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    unavailable "not root and sudo is not available; install Debian's chromium package yourself (apt-get install -y chromium) so $CHROMIUM exists"
fi

if ! command -v apt-get >/dev/null 2>&1; then
    unavailable "apt-get not found; this script installs Debian's chromium package. Install a Chromium at $CHROMIUM by other means"
fi

export DEBIAN_FRONTEND=noninteractive
if ! apt_update; then
    unavailable "apt-get update failed (is the package mirror reachable?)"
fi
if ! $SUDO apt-get -o DPkg::Lock::Timeout="$LOCK_WAIT_S" install -y --no-install-recommends chromium; then
    unavailable "apt-get install chromium failed (no chromium package on this mirror?)"
fi

if [ ! -x "$CHROMIUM" ]; then
    unavailable "chromium package installed but $CHROMIUM is missing"
fi
rm -f "$MARKER"
echo "chromium installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
