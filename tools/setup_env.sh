#!/usr/bin/env bash
# Create (or check) the project's environment: a virtual environment in .venv/ with this
# package installed in editable mode and every dependency pinned (setup.py pins the direct
# ones, tools/constraints.txt the whole tree). Idempotent: a stamp file records what was
# installed, so a second run returns in well under a second.
#
# Python: 3.11, because ESPnet 202511 (the newest release for 3.11, verified with
# torch/torchaudio 2.11) is what the pins were verified with. Set PYTHON=/path/to/python3.11
# to choose the interpreter; set VITS_EXT_USE_CURRENT_ENV=true to install into the active
# environment (an existing ESPnet installation) instead of creating .venv/.
#
# Usage: tools/setup_env.sh [--with-tests]
set -euo pipefail

# cd -P: from a recipe directory (egs2/<corpus>/tts1/tools is a link) the root is the repository.
root=$(cd -P "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
with_tests=false
for arg in "$@"; do
  case "${arg}" in
    --with-tests) with_tests=true ;;
    *) echo "$0: unknown argument '${arg}' (usage: $0 [--with-tests])" >&2; exit 2 ;;
  esac
done

if [ "${VITS_EXT_USE_CURRENT_ENV:-false}" = true ]; then
  python=$(command -v python3)
  venv=$("${python}" -c 'import sys; print(sys.prefix)')
else
  venv=${root}/.venv
  # A venv cannot be moved after creation (its scripts hold its path), so it is made in
  # place and a marker written last says the creation finished.
  if [ ! -f "${venv}/.created" ]; then
    base_python=${PYTHON:-}
    if [ -z "${base_python}" ]; then
      for candidate in python3.11 python3; do
        if command -v "${candidate}" >/dev/null && \
           "${candidate}" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
          base_python=$(command -v "${candidate}"); break
        fi
      done
    fi
    if [ -z "${base_python}" ]; then
      # Debian 12 and Ubuntu 22.04 (universe) package it; elsewhere: pyenv install 3.11.
      "${root}/utils/apt_install.sh" "Python 3.11 is missing (PYTHON=/path/to/python3.11 chooses one)" \
        python3.11 python3.11-venv
      base_python=$(command -v python3.11)
    fi
    echo "$0: creating ${venv} with ${base_python}"
    rm -rf "${venv}"
    if ! "${base_python}" -m venv "${venv}"; then
      # Debian's python3.11 makes no venv without its python3.11-venv package (ensurepip).
      rm -rf "${venv}"
      "${root}/utils/apt_install.sh" "${base_python} could not create a venv" python3.11-venv
      "${base_python}" -m venv "${venv}"
    fi
    touch "${venv}/.created"
  fi
  python=${venv}/bin/python
fi

extras=""
${with_tests} && extras="[test]"
# The stamp names everything that decides the install; any change re-runs pip.
stamp_key=$(cat "${root}/setup.py" "${root}/tools/constraints.txt" | sha256sum | cut -c1-16)
stamp=${venv}/.espnet2_vits_ext.${stamp_key}${extras:+.test}
if [ -f "${stamp}" ]; then
  exit 0
fi

echo "$0: installing espnet2_vits_ext${extras} and its pinned dependencies into ${venv} (about 2-3 minutes, 5.5 GB)"
"${python}" -m pip install --quiet --disable-pip-version-check \
  -c "${root}/tools/constraints.txt" -e "${root}${extras}"

# An editable install does not run build_py, so place the registration .pth by hand.
site_packages=$("${python}" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp "${root}/espnet2_vits_ext/espnet2_vits_ext.pth" "${site_packages}/espnet2_vits_ext.pth.tmp"
mv "${site_packages}/espnet2_vits_ext.pth.tmp" "${site_packages}/espnet2_vits_ext.pth"

"${python}" -m pip check --disable-pip-version-check
touch "${stamp}"
echo "$0: environment ready (${venv})"
