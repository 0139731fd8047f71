#!/usr/bin/env bash
# Make sure a headless Chromium is available: the end-to-end test (tests/test_recipe_end_to_end.py)
# opens stage 8's listening report in a real browser, and tests/test_listening_report.py checks the checker.
#
# Already installed (chromium, chromium-browser, google-chrome or $CHROMIUM_BINARY):
# prints its path and exits 0. Missing and running as root on Debian/Ubuntu: installs
# Debian's `chromium` package with apt-get. Missing and not root: stops with the exact
# command to run.
#
# Usage: tools/install_chromium.sh
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

# The folder of this script without dirname (the test runs it with a bare PATH).
script_dir=${BASH_SOURCE[0]%/*}
[ "${script_dir}" != "${BASH_SOURCE[0]}" ] || script_dir=.
root=$(cd "${script_dir}/.." && pwd)
"${root}/utils/apt_install.sh" "Chromium is missing" chromium
if ! binary=$(find_chromium); then
  echo "$0: apt-get finished but no chromium binary is on PATH" >&2
  exit 1
fi
echo "${binary}"
