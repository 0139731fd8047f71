#!/usr/bin/env bash
# Make sure a headless Chromium is available: the listening-report test
# (tests/test_listening_report.py) opens the generated HTML page in a real browser.
#
# Already installed (chromium, chromium-browser, google-chrome or $CHROMIUM_BINARY):
# prints its path and exits 0. Missing and running as root on Debian/Ubuntu: installs
# Debian's `chromium` package with apt-get. Missing and not root: stops with the exact
# command to run.
#
# Usage: local/install_chromium.sh
set -euo pipefail

if [ $# -gt 0 ]; then
  echo "$0: takes no arguments (usage: $0)" >&2
  exit 2
fi

find_chromium() {
  local candidate
  for candidate in "${CHROMIUM_BINARY:-}" chromium chromium-browser google-chrome; do
    if [ -n "${candidate}" ] && command -v "${candidate}" >/dev/null 2>&1; then
      command -v "${candidate}"
      return 0
    fi
  done
  return 1
}

if binary=$(find_chromium); then
  echo "${binary}"
  exit 0
fi

install_command="apt-get update && apt-get install -y --no-install-recommends chromium"
if [ "$(id -u)" -ne 0 ]; then
  echo "$0: Chromium is missing and this is not root; install it with:" >&2
  echo "  sudo sh -c '${install_command}'" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$0: Chromium is missing and apt-get is not available; install Chromium with your" \
       "system's package manager or set CHROMIUM_BINARY=/path/to/chromium" >&2
  exit 1
fi

echo "$0: installing Chromium: ${install_command}" >&2
# Progress output to /dev/null; apt and dpkg errors still reach stderr.
DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
if ! binary=$(find_chromium); then
  echo "$0: apt-get finished but no chromium binary is on PATH" >&2
  exit 1
fi
echo "${binary}"
