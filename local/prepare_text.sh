#!/usr/bin/env bash
# Stage 4: phonemize the dumped transcriptions, drop the unusable ones, write the token list.
#
# Reads the dump dirs of stage 3 (the first is the training set) and, for each, turns every line
# of `text` into phoneme tokens exactly as ESPnet's preprocessor will at training time (cleaner
# + g2p, see espnet2_vits_ext/text/frontend.py). Utterances whose text is empty or cannot be
# pronounced, or that have more tokens than spectrogram frames (num_samples / hop: the monotonic
# alignment needs a frame per token), are removed from the dump dir and listed, with the reason
# and file:line, in <dump_dir>/excluded_text.txt. The files of stage 3 stay in
# <dump_dir>/unfiltered/, which every run reads: reruns with other options start from them.
# The token list (ESPnet's format: <blank>, <unk>, tokens by count, <sos/eos>) comes from the
# training set. Written atomically; <token_list dir>/.done makes a rerun with the same options
# and inputs a no-op.
#
# Usage: local/prepare_text.sh [options] <train_dump_dir> [<dump_dir> ...] <token_list>
#   e.g. local/prepare_text.sh --nj 4 dump/raw/train dump/raw/val dump/raw/test \
#          dump/token_list/espeak_ng_english_us_vits/tokens.txt
set -euo pipefail

g2p=espeak_ng_english_us_vits  # g2p: espeak_ng_english_us_vits (espeak-ng, as the VITS paper), g2p_en or g2p_en_no_space (need NLTK data)
cleaner=tacotron               # text cleaner: tacotron (ESPnet's) or none
nj=4                           # parallel processes for the g2p
hop_length=256                 # spectrogram hop in samples, to count frames
train_config=                  # if set, --hop_length is read from its feats_extract_conf

help_message="Usage: $0 [options] <train_dump_dir> [<dump_dir> ...] <token_list>
Phonemize dump dirs as ESPnet will at training, exclude unusable utterances, write the token list.
Options (default in brackets):
  --g2p NAME          espeak_ng_english_us_vits, g2p_en or g2p_en_no_space [${g2p}]
  --cleaner NAME      tacotron or none [${cleaner}]
  --nj N              parallel g2p processes [${nj}]
  --hop_length N      spectrogram hop, samples [${hop_length}]
  --train_config YAML read the hop from its feats_extract_conf.hop_length [none]"

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091
. "${script_dir}/../utils/parse_options.sh"
if [ $# -lt 2 ]; then
  printf '%s\n' "${help_message}" >&2
  exit 1
fi
dump_dirs=("${@:1:$#-1}")
token_list=${!#}
# shellcheck disable=SC1091
. "${script_dir}/../path.sh"

# shellcheck disable=SC1091
. "${script_dir}/../utils/recipe_lib.sh"

inputs=()
for dir in "${dump_dirs[@]}"; do
  [ -f "${dir}/.done" ] || die "${dir} is not a finished dump (no ${dir}/.done): run stage 3 (local/dump_audio.sh) first"
  # The data as stage 3 wrote it: unfiltered/ once this stage has run, the dump dir before.
  src=${dir}/unfiltered
  [ -d "${src}" ] || src=${dir}
  inputs+=("${src}/text" "${src}/utt2num_samples")
done
case "${token_list}" in
  */tokens.txt) ;;
  *) die "the last argument must be the token list, .../tokens.txt (got ${token_list})" ;;
esac
token_dir=$(dirname "${token_list}")
signature="g2p=${g2p} cleaner=${cleaner} hop_length=${hop_length} train_config=${train_config}"
signature+=" dirs=${dump_dirs[*]} inputs=$(cat "${inputs[@]}" ${train_config:+"${train_config}"} | md5sum | cut -d' ' -f1)"
if [ -f "${token_dir}/.done" ] && [ "$(cat "${token_dir}/.done")" = "${signature}" ]; then
  log "${token_list} is complete (${token_dir}/.done): skipping; remove that file to redo"
  exit 0
fi
rm -f "${token_dir}/.done"
mkdir -p "${token_dir}" 2>/dev/null || die "cannot create ${token_dir}"

log "g2p ${g2p}, cleaner ${cleaner}: ${dump_dirs[*]} -> ${token_list}"
python3 "${script_dir}/prepare_text.py" --token_list "${token_list}" --g2p "${g2p}" --cleaner "${cleaner}" \
  --nj "${nj}" --hop_length "${hop_length}" ${train_config:+--train_config "${train_config}"} "${dump_dirs[@]}" \
  || die "text preparation failed (see above); ${token_list} is not complete"
printf '%q ' "$0" "$@" > "${token_dir}/prepare_text.cmd"
echo >> "${token_dir}/prepare_text.cmd"
echo "${signature}" > "${token_dir}/.done"
log "wrote ${token_list}"
