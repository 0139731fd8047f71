#!/usr/bin/env bash
# README command 2: set up the environment (if needed) and run the whole test suite.
# Offline; about 13 minutes on 2 CPU cores. Extra arguments go to pytest
# (e.g. tools/run_tests.sh -k alignment).
#
# Usage: tools/run_tests.sh [pytest arguments]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "${root}"
tools/setup_env.sh --with-tests
# The end-to-end test opens stage 8's listening report in Debian's chromium (installed when root).
tools/install_chromium.sh >/dev/null
# shellcheck disable=SC1091
. ./path.sh
exec python -m pytest -c tests/pytest.ini --rootdir "${root}" tests "$@"
