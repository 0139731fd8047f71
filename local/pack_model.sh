#!/usr/bin/env bash
# Stage 7b: pack a trained model into a zip that Text2Speech.from_pretrained loads, and check it.
#
# Runs ESPnet's `python -m espnet2.bin.pack tts` with the training config, the model file, the
# feature statistics and the training curves (<exp_dir>/images), writing to a temporary name that
# is renamed to <zip> when complete. Then local/check_packed_model.py loads the zip in a fresh
# process, offline, as a user would (Text2Speech.from_pretrained(model_tag=<zip>)), and
# synthesizes a sentence (speaker id 1, the first trained speaker, for a multi-speaker model).
# A multi-speaker model's speaker table (--spk2sid, stage 4's spk2sid) goes in the zip as ESPnet's
# tts.sh packs it, so the user can look up which id speaks as whom. <zip>.done records a signature of the inputs: a rerun with the same
# ones does nothing. A full disk or an unwritable output stops it with one line naming the file
# and the error, and leaves neither <zip> nor its temporary directory.
#
# Usage: local/pack_model.sh [--spk2sid FILE] <exp_dir> <model_file> <stats_dir> <zip>
#   e.g. local/pack_model.sh exp/tts_train exp/tts_train/latest.pth exp/tts_stats_train \
#          exp/tts_train/packed/tts_train_latest.zip
set -euo pipefail

spk2sid=           # the training set's speaker table of a multi-speaker model; empty: none

help_message="Usage: $0 [--spk2sid FILE] <exp_dir> <model_file> <stats_dir> <zip>
Pack a trained model with espnet2.bin.pack tts and check that the zip loads and synthesizes.
  --spk2sid FILE   also pack this speaker table (multi-speaker model) [none]"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
. "${root}/utils/parse_options.sh"
# shellcheck disable=SC1091
. "${root}/utils/recipe_lib.sh"
[ $# -eq 4 ] || { printf '%s\n' "${help_message}" >&2; exit 2; }
exp_dir=${1%/}
model_file=$2
stats_dir=${3%/}
zip=$4
case "${zip}" in
  *.zip) ;;
  *) die "the packed model must end in .zip, not '${zip}'" ;;
esac
[ -f "${exp_dir}/config.yaml" ] || die "${exp_dir}/config.yaml not found: has stage 6 run?"
[ -f "${model_file}" ] || die "model file ${model_file} not found"
[ -f "${stats_dir}/train/feats_stats.npz" ] || die "${stats_dir}/train/feats_stats.npz not found: has stage 5 run?"
[ -z "${spk2sid}" ] || [ -s "${spk2sid}" ] || die "--spk2sid ${spk2sid} not found or empty: has stage 4 run?"

zip_dir=$(dirname "${zip}")
marker=${zip_dir}/.$(basename "${zip}").done
model_id=$(stat -L -c '%n %s %Y' "$(readlink -f "${model_file}")")
key=$(signature "${model_id}" "${exp_dir}/config.yaml" "${stats_dir}/train/feats_stats.npz")
[ -z "${spk2sid}" ] || key=$(signature "${key}" "${spk2sid}")
if [ -f "${zip}" ] && [ -f "${marker}" ] && [ "$(cat "${marker}")" = "${key}" ]; then
  log "${zip} is up to date: skipping"
  exit 0
fi
rm -f "${marker}"
writing "${zip_dir}" mkdir -p "${zip_dir}"
record=${zip_dir}/command.sh
append_to "${record}" echo "# $(date '+%Y-%m-%dT%H:%M:%S') stage 7 (packing) commands, from ${PWD}"
record_command "${record}" "$0" "$@"

opts=(--option "${stats_dir}/train/feats_stats.npz")
[ -d "${exp_dir}/images" ] && opts+=(--option "${exp_dir}/images")
[ -z "${spk2sid}" ] || opts+=(--option "${spk2sid}")
name=$(basename "${zip}")
rm -rf "${zip_dir}/.${name}".tmp.*  # left by a run killed before its EXIT trap
tmp_dir=${zip_dir}/.${name}.tmp.$$
trap 'rm -rf "${tmp_dir}"' EXIT
writing "${tmp_dir}" mkdir -p "${tmp_dir}"
writing "${tmp_dir}/${name}" run_recorded "${record}" python3 -m espnet2.bin.pack tts \
  --train_config "${exp_dir}/config.yaml" \
  --model_file "${model_file}" \
  --outpath "${tmp_dir}/${name}" \
  "${opts[@]}" \
  || die "packing failed (see above)"
writing "${zip}" mv "${tmp_dir}/${name}" "${zip}"
run_recorded "${record}" python3 "${root}/local/check_packed_model.py" "${zip}" \
  || die "${zip} was written but does not load or synthesize (see above)"
write_to "${marker}.tmp" printf '%s\n' "${key}"
writing "${marker}" mv "${marker}.tmp" "${marker}"
log "packed ${zip} ($(du -h "${zip}" | cut -f1))"
