# Shell helpers shared by run.sh and the stage scripts in local/ (sourced, defines functions only).
#
#   log MESSAGE...             timestamped line with the caller's file:line, on stdout
#   die MESSAGE...             "error:" line on stderr, exit 1
#   writing WHAT CMD...        run CMD, which writes WHAT (a file or a directory); if it fails with a
#                              write error (full disk, unwritable path) that it reported on stderr,
#                              die "cannot write WHAT: <that error line>" and nothing else; on other
#                              failures pass its error output on and return its status
#   write_to FILE CMD...       run CMD with its output into FILE, through writing
#   append_to FILE CMD...      the same, appending
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
  # The line of the script that failed, not of a helper below.
  local frame=1
  while [ "${BASH_SOURCE[frame]##*/}" = recipe_lib.sh ] && [ $((frame + 1)) -lt ${#BASH_SOURCE[@]} ]; do
    frame=$((frame + 1))
  done
  echo "$(date '+%Y-%m-%dT%H:%M:%S') (${BASH_SOURCE[frame]##*/}:${BASH_LINENO[frame - 1]}) error: $*" >&2
  exit 1
}

writing() {
  local what=$1 errors status=0 reason=
  # How the OS words write failures (strerror, as tools and Python print it): a failure whose error
  # output says one of these is a full disk or an unwritable output.
  local write_errors='No space left on device|File too large|Disk quota exceeded|Read-only file system|Permission denied|Not a directory|File exists|Is a directory'
  shift
  # CMD's stdout goes on to ours (fd 3); its stderr is collected, to be searched, then passed on.
  { errors=$("$@" 2>&1 1>&3 3>&-); } 3>&1 || status=$?
  if [ "${status}" -ne 0 ]; then
    reason=$(grep -E "${write_errors}" <<< "${errors}" | tail -n 1)
  fi
  if [ -z "${reason}" ]; then
    [ -z "${errors}" ] || printf '%s\n' "${errors}" >&2
    return "${status}"
  fi
  if [[ "${reason}" == *" error: cannot write "* ]]; then
    # A nested writing has already said which file.
    printf '%s\n' "${reason}" >&2
    exit 1
  fi
  # One line says it all; the rest (a traceback, a job runner's report) would bury it.
  die "cannot write ${what}: ${reason}"
}

_output_into() {
  local file=$1 mode=$2
  shift 2
  if [ "${mode}" = append ]; then "$@" >> "${file}"; else "$@" > "${file}"; fi
}

write_to() {
  writing "$1" _output_into "$1" replace "${@:2}"
}

append_to() {
  writing "$1" _output_into "$1" append "${@:2}"
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
  writing "$1" mkdir -p "$1"
  rm -f "$1"/.done.tmp.*  # left by a run killed here
  write_to "$1/.done.tmp.$$" printf '%s\n' "$2"
  writing "$1/.done" mv "$1/.done.tmp.$$" "$1/.done"
}

start_record() {
  writing "$1" mkdir -p "$(dirname "$1")"
  write_to "$1" echo "# $(date '+%Y-%m-%dT%H:%M:%S') $2 (in ${PWD})"
}

_command_line() {
  printf '%q ' "$@"
  echo
}

record_command() {
  local file=$1
  shift
  writing "${file}" mkdir -p "$(dirname "${file}")"
  append_to "${file}" _command_line "$@"
}

run_recorded() {
  local file=$1
  shift
  record_command "${file}" "$@"
  "$@"
}
