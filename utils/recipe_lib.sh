# Shell helpers shared by run.sh and the stage scripts in local/ (sourced, defines functions only).
#
#   log MESSAGE...             timestamped line with the caller's file:line, on stdout
#   die MESSAGE...             "error:" line on stderr, exit 1
#   signature TEXT...          a short checksum of its arguments and of the files they name
#                              (each argument that is a file contributes its contents)
#   is_done DIR SIGNATURE      true when DIR/.done holds SIGNATURE (the work is complete and
#                              was done with the same inputs and options)
#   mark_done DIR SIGNATURE    write DIR/.done atomically
#   start_record FILE HEADER   start FILE afresh with "# <time> HEADER" (the stage's record)
#   record_command FILE CMD... append the exact command line, shell-quoted, to FILE
#   run_recorded FILE CMD...   record_command, then run the command
#
# Usage (sourced): . utils/recipe_lib.sh

log() {
  echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) $*"
}

die() {
  echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[1]##*/}:${BASH_LINENO[0]}) error: $*" >&2
  exit 1
}

signature() {
  local arg
  for arg in "$@"; do
    printf '%s\n' "${arg}"
    if [ -f "${arg}" ]; then
      cat "${arg}"
    fi
  done | sha256sum | cut -c1-32
}

is_done() {
  [ -f "$1/.done" ] && [ "$(cat "$1/.done")" = "$2" ]
}

mark_done() {
  mkdir -p "$1"
  printf '%s\n' "$2" > "$1/.done.tmp.$$"
  mv "$1/.done.tmp.$$" "$1/.done"
}

start_record() {
  mkdir -p "$(dirname "$1")"
  echo "# $(date '+%Y-%m-%dT%H:%M:%S') $2 (in ${PWD})" > "$1"
}

record_command() {
  local file=$1
  shift
  mkdir -p "$(dirname "${file}")"
  { printf '%q ' "$@"; echo; } >> "${file}"
}

run_recorded() {
  local file=$1
  shift
  record_command "${file}" "$@"
  "$@"
}
