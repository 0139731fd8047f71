# Options parser with Kaldi semantics, sourced by run.sh (and any script with the same habit)
# after it has set its defaults and its ${help_message}:
#
#   --name value  or  --name=value   sets the shell variable `name`; dashes in the name are read
#                                    as underscores (--stop-stage == --stop_stage)
#   an option with no variable of that name, or
#   one that ${help_message} does not list         -> error (exit 2)
#   a variable whose default is true or false      -> accepts only true or false (exit 2)
#   --help or -h                                   -> prints ${help_message}, exit 0
#   an option without a value                      -> error (exit 2)
#
# Parsing stops at the first argument that is not an option, or after `--`; those arguments are
# left in the caller's "$@" (run.sh rejects them). A script's own name in errors is ${0##*/}.
#
# Usage (sourced, after the defaults): . utils/parse_options.sh

# `shift` and `set --` below act on the caller's positional parameters: sourcing without
# arguments shares them.
while [ $# -gt 0 ]; do
  case "$1" in
    --help | -h)
      printf '%s\n' "${help_message:-No help message for ${0##*/}.}"
      exit 0
      ;;
    --)
      shift
      break
      ;;
    --*=*)
      __po_name=${1%%=*}
      __po_value=${1#*=}
      shift
      ;;
    --?*)
      __po_name=$1
      if [ $# -lt 2 ]; then
        echo "${0##*/}: option ${__po_name} needs a value (run ${0##*/} --help)" >&2
        exit 2
      fi
      __po_value=$2
      shift 2
      ;;
    *)
      break
      ;;
  esac
  __po_name=${__po_name#--}
  __po_name=${__po_name//-/_}
  if ! [[ "${__po_name}" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    echo "${0##*/}: invalid option name '--${__po_name}' (run ${0##*/} --help)" >&2
    exit 2
  fi
  # An option exists when the script defined a variable of that name before sourcing us and
  # its help message documents it (so PATH or HOME are not options, and none goes unlisted).
  if [ -z "${!__po_name+defined}" ] || \
     { [ -n "${help_message:-}" ] && ! [[ "${help_message}" =~ --${__po_name}([^A-Za-z0-9_]|$) ]]; }; then
    echo "${0##*/}: unknown option --${__po_name} (run ${0##*/} --help for the list)" >&2
    exit 2
  fi
  __po_default=${!__po_name}
  if [ "${__po_default}" = true ] || [ "${__po_default}" = false ]; then
    if [ "${__po_value}" != true ] && [ "${__po_value}" != false ]; then
      echo "${0##*/}: option --${__po_name} takes true or false, not '${__po_value}'" >&2
      exit 2
    fi
  fi
  printf -v "${__po_name}" '%s' "${__po_value}"
done
unset __po_name __po_value __po_default
