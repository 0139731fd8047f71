#!/usr/bin/env bash
# Install Debian packages that pip cannot provide: with apt-get when running as root,
# otherwise stop with the exact command for the user to run. Used by the environment
# installer (python3.11 when missing) and tools/install_chromium.sh.
#
# Usage: utils/apt_install.sh WHY PACKAGE...
#   WHY is printed in the messages, e.g. "Python 3.11 is missing".
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 WHY PACKAGE..." >&2
  exit 2
fi
why=$1
shift
install_command="apt-get update && apt-get install -y --no-install-recommends $*"
if [ "$(id -u)" -ne 0 ]; then
  echo "$0: ${why} and this is not root; install it with:" >&2
  echo "  sudo sh -c '${install_command}'" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$0: ${why} and apt-get is not available; install $* with your system's package manager" >&2
  exit 1
fi
echo "$0: ${why}: ${install_command}" >&2
# Progress output to /dev/null; apt and dpkg errors still reach stderr.
DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
