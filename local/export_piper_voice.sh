#!/usr/bin/env bash
# Stage 7c: export the packed model as a Piper voice beside it: <out_dir>/<name>.onnx + .onnx.json.
#
# Runs `python -m espnet2_vits_ext.bin.export_piper <zip> <out_dir>` (name: the zip's without
# .zip), which traces the generator into ONNX in Piper's calling convention, checks the graph in
# onnxruntime and writes both files under temporary names renamed at the end (docs/piper.md).
# <out_dir>/.<name>.onnx.done records a signature of the zip: a rerun with the same zip does
# nothing. A full disk or an unwritable output stops it with one line naming the file.
#
# Usage: local/export_piper_voice.sh <zip> <out_dir>
#   e.g. local/export_piper_voice.sh exp/tts_train/packed/tts_train_latest.zip exp/tts_train/packed
set -euo pipefail

help_message="Usage: $0 <zip> <out_dir>
Export a packed fast_vits model as a Piper voice (<out_dir>/<name>.onnx + .onnx.json)."

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
. "${root}/utils/parse_options.sh"
# shellcheck disable=SC1091
. "${root}/utils/recipe_lib.sh"
[ $# -eq 2 ] || { printf '%s\n' "${help_message}" >&2; exit 2; }
zip=$1
out_dir=${2%/}
[ -f "${zip}" ] || die "packed model ${zip} not found: has stage 7's packing run?"
name=$(basename "${zip}" .zip)
voice=${out_dir}/${name}.onnx
marker=${out_dir}/.${name}.onnx.done
key=$(signature "${zip}")
if [ -f "${voice}" ] && [ -f "${voice}.json" ] && [ -f "${marker}" ] && [ "$(cat "${marker}")" = "${key}" ]; then
  log "${voice} is up to date: skipping"
  exit 0
fi
rm -f "${marker}"
writing "${out_dir}" mkdir -p "${out_dir}"
record=${out_dir}/command.sh
append_to "${record}" echo "# $(date '+%Y-%m-%dT%H:%M:%S') stage 7 (Piper export) commands, from ${PWD}"
writing "${voice}" run_recorded "${record}" python3 -m espnet2_vits_ext.bin.export_piper "${zip}" "${out_dir}" \
  || die "the Piper export of ${zip} failed (see above)"
write_to "${marker}.tmp" printf '%s\n' "${key}"
writing "${marker}" mv "${marker}.tmp" "${marker}"
log "Piper voice ${voice} ($(du -h "${voice}" | cut -f1)): echo 'Hello.' | piper -m ${voice} -f hello.wav"
