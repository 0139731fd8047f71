#!/usr/bin/env bash
# Stage 5: ESPnet's "collect stats" pass over the training and validation dumps.
#
# Runs `python -m espnet2.bin.gan_tts_train --collect_stats true` in --nj jobs (each on a
# contiguous block of wav.scp), as ESPnet's egs2/TEMPLATE/tts1/tts.sh does, then aggregates
# them with espnet2.bin.aggregate_stats_dirs. Writes <stats_dir>/{train,valid}/: speech_shape and
# text_shape (the lengths the batch samplers sort by), text_shape.phn (the same with the token
# list's size appended: what ESPnet's numel batching counts), and feats_stats.npz (mean and
# variance of the linear spectrogram). With --use_sid true (a multi-speaker config), each dump dir's
# utt2sid (stage 4) is read as ESPnet's `sids`, as tts.sh does with --use_sid true. Built in <stats_dir>.tmp, renamed when complete; a
# <stats_dir>/.done signature (config, token list, dumps, options) makes a rerun a no-op.
# A full disk or an unwritable output stops it with one line naming the file and the error;
# <stats_dir>.tmp then keeps the logs, and the next run starts it afresh.
#
# Usage: local/collect_stats.sh [options] <train_dump_dir> <valid_dump_dir> <stats_dir>
#   e.g. local/collect_stats.sh --train_config conf/train.yaml \
#          --token_list dump/token_list/espeak_ng_english_us_vits/tokens.txt \
#          dump/raw/train dump/raw/val exp/tts_stats_train
set -euo pipefail

nj=4               # parallel jobs (at most one per utterance of the smaller set)
cmd=utils/run_local.py  # job runner (${train_cmd} of cmd.sh)
train_config=      # ESPnet training config (required)
token_list=        # token list of stage 4 (required)
token_type=phn     # ESPnet --token_type
g2p=               # ESPnet --g2p; empty: the config's
cleaner=           # ESPnet --cleaner; empty: the config's
train_args=        # extra arguments for gan_tts_train, e.g. "--feats_extract_conf n_fft=2048"
use_sid=false      # read <dump_dir>/utt2sid as the speaker ids (sids) of a multi-speaker model

help_message="Usage: $0 [options] <train_dump_dir> <valid_dump_dir> <stats_dir>
ESPnet collect-stats pass (shape files, feats_stats.npz) over the dumps of stage 3-4.
Options (default in brackets):
  --nj N             parallel jobs [${nj}]
  --cmd RUNNER       job runner [${cmd}]
  --train_config F   ESPnet training config (required)
  --token_list F     token list of stage 4 (required)
  --token_type T     token type [${token_type}]
  --g2p NAME         g2p [from the config]
  --cleaner NAME     text cleaner [from the config]
  --train_args STR   extra arguments for espnet2.bin.gan_tts_train [${train_args}]
  --use_sid BOOL     speaker ids from <dump_dir>/utt2sid [${use_sid}]"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
. "${root}/utils/parse_options.sh"
# shellcheck disable=SC1091
. "${root}/utils/recipe_lib.sh"
[ $# -eq 3 ] || { printf '%s\n' "${help_message}" >&2; exit 2; }
train_dir=${1%/}
valid_dir=${2%/}
stats_dir=${3%/}
[ -n "${train_config}" ] && [ -f "${train_config}" ] || die "--train_config: no such file '${train_config}'"
[ -n "${token_list}" ] && [ -f "${token_list}" ] || die "--token_list: no such file '${token_list}' (stage 4 writes it)"
sid_files=()
[ "${use_sid}" = false ] || sid_files=("${train_dir}/utt2sid" "${valid_dir}/utt2sid")
for dir in "${train_dir}" "${valid_dir}"; do
  for f in wav.scp text; do
    [ -s "${dir}/${f}" ] || die "${dir}/${f} is missing or empty (stages 3-4 write it)"
  done
done
for f in "${sid_files[@]}"; do
  [ -s "${f}" ] || die "${f} is missing or empty (stage 4 writes it for a multi-speaker config)"
done

key=$(signature "${train_config}" "${token_list}" "${train_dir}/wav.scp" "${train_dir}/text" \
  "${valid_dir}/wav.scp" "${valid_dir}/text" "${token_type}" "${g2p}" "${cleaner}" "${train_args}" "${sid_files[@]}")
if is_done "${stats_dir}" "${key}"; then
  log "${stats_dir} is complete (${stats_dir}/.done): skipping"
  exit 0
fi

num_train=$(wc -l < "${train_dir}/wav.scp")
num_valid=$(wc -l < "${valid_dir}/wav.scp")
_nj=$(( nj < num_train ? nj : num_train ))
_nj=$(( _nj < num_valid ? _nj : num_valid ))

work=${stats_dir}.tmp
rm -rf "${work}"
logdir=${work}/logdir
writing "${logdir}" mkdir -p "${logdir}"
record=${work}/command.sh
start_record "${record}" "stage 5 (collect stats) commands"
record_command "${record}" "$0" "$@"

# Contiguous blocks of lines, as even as possible: piece k of n holds lines (k-1)*N/n+1 .. k*N/n.
split_scp() {
  awk -v n="$2" -v total="$(wc -l < "$1")" -v prefix="$3" \
    '{ part = int((NR - 1) * n / total) + 1; print > (prefix "." part ".scp") }' "$1"
}
writing "${logdir}" split_scp "${train_dir}/wav.scp" "${_nj}" "${logdir}/train"
writing "${logdir}" split_scp "${valid_dir}/wav.scp" "${_nj}" "${logdir}/valid"

opts=(--config "${train_config}")
[ -n "${g2p}" ] && opts+=(--g2p "${g2p}")
[ -n "${cleaner}" ] && opts+=(--cleaner "${cleaner}")
[ "${use_sid}" = false ] || opts+=(--train_data_path_and_name_and_type "${train_dir}/utt2sid,sids,text_int"
  --valid_data_path_and_name_and_type "${valid_dir}/utt2sid,sids,text_int")
# shellcheck disable=SC2206  # train_args is a list of words by design
extra=(${train_args})

log "collect stats: ${_nj} jobs, logs ${stats_dir}/logdir/stats.*.log"
# shellcheck disable=SC2086  # ${cmd} is a command line with options
writing "${work}" run_recorded "${record}" ${cmd} JOB=1:"${_nj}" "${logdir}/stats.JOB.log" \
  python3 -m espnet2.bin.gan_tts_train \
    --collect_stats true \
    --use_preprocessor true \
    --token_type "${token_type}" \
    --token_list "${token_list}" \
    --normalize none \
    --train_data_path_and_name_and_type "${train_dir}/text,text,text" \
    --train_data_path_and_name_and_type "${train_dir}/wav.scp,speech,sound" \
    --valid_data_path_and_name_and_type "${valid_dir}/text,text,text" \
    --valid_data_path_and_name_and_type "${valid_dir}/wav.scp,speech,sound" \
    --train_shape_file "${logdir}/train.JOB.scp" \
    --valid_shape_file "${logdir}/valid.JOB.scp" \
    --output_dir "${logdir}/stats.JOB" \
    "${opts[@]}" "${extra[@]}" \
  || die "collect stats failed (logs: ${logdir}/stats.*.log); ${stats_dir} is unchanged"

inputs=()
for i in $(seq "${_nj}"); do
  inputs+=(--input_dir "${logdir}/stats.${i}")
done
writing "${work}" run_recorded "${record}" python3 -m espnet2.bin.aggregate_stats_dirs "${inputs[@]}" --output_dir "${work}" \
  || die "aggregating the statistics failed (see above); ${stats_dir} is unchanged"

# ESPnet's numel batching counts bins as frames x token-list size: append it to the text shapes.
vocab_size=$(wc -l < "${token_list}")
for subset in train valid; do
  write_to "${work}/${subset}/text_shape.${token_type}" awk -v n="${vocab_size}" '{ print $0 "," n }' "${work}/${subset}/text_shape"
  [ -s "${work}/${subset}/feats_stats.npz" ] || die "aggregation wrote no ${subset}/feats_stats.npz"
done

# The logs' paths in the record name the temporary directory; say where they will be.
append_to "${record}" echo "# (ran in ${work}, renamed to ${stats_dir})"
rm -rf "${stats_dir}"
writing "${stats_dir}" mv "${work}" "${stats_dir}"
mark_done "${stats_dir}" "${key}"
log "wrote ${stats_dir}: $(wc -l < "${stats_dir}/train/speech_shape") train, $(wc -l < "${stats_dir}/valid/speech_shape") valid utterances"
