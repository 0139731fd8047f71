# Sourced by run.sh and every script in local/: the environment of this recipe.
# Activates the bundled virtual environment (tools/setup_env.sh creates it), unless
# VITS_EXT_USE_CURRENT_ENV=true says to use the Python environment already active
# (an existing ESPnet installation with `pip install -e .` of this repository).
# readlink: a recipe directory (egs2/<corpus>/tts1) links path.sh here; the root is where it lives.
MAIN_ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
export MAIN_ROOT
if [ "${VITS_EXT_USE_CURRENT_ENV:-false}" != true ]; then
  if [ ! -f "${MAIN_ROOT}/.venv/bin/activate" ]; then
    echo "path.sh: no environment in ${MAIN_ROOT}/.venv: run tools/setup_env.sh first" >&2
    return 1 2>/dev/null || exit 1
  fi
  # shellcheck disable=SC1091
  . "${MAIN_ROOT}/.venv/bin/activate"
fi
export PATH=${MAIN_ROOT}/utils:${MAIN_ROOT}/local:${PATH}

# Kaldi-style tools expect byte-order sorting; Python must still read and write UTF-8.
export LC_ALL=C
export PYTHONIOENCODING=UTF-8
export PYTHONUTF8=1
export PYTHONDONTWRITEBYTECODE=1
# One thread per job: parallelism comes from --nj jobs, not from each job's BLAS pool.
# Training sets its own thread count (run.sh --train_threads).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-${MAIN_ROOT}/.venv/numba_cache}

# espeak-ng for phonemizer, from the PyPI package espeakng-loader (no root needed).
if [ -z "${PHONEMIZER_ESPEAK_LIBRARY:-}" ]; then
  eval "$(python3 - <<'PY'
import espeakng_loader
print(f"export PHONEMIZER_ESPEAK_LIBRARY={espeakng_loader.get_library_path()}")
print(f"export ESPEAK_DATA_PATH={espeakng_loader.get_data_path()}")
PY
)"
fi
