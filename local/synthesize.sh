#!/usr/bin/env bash
# Stage 7a: synthesize the utterances of a data dir with a trained model, in parallel jobs.
#
# Runs ESPnet's own `python -m espnet2.bin.tts_inference` in --nj jobs (each on a contiguous
# block of `text`) through the job runner, as ESPnet's tts.sh does, then gathers the waveforms
# into <out_dir>/wav/<utt>.wav with <out_dir>/wav/wav.scp. Built in <out_dir>.tmp and renamed
# when complete; <out_dir>/.done records a signature of the model, the text and the options, so
# a rerun with the same ones does nothing. Job logs: <out_dir>/log/tts_inference.*.log.
# A full disk or an unwritable output stops it with one line naming the file and the error;
# <out_dir>.tmp then keeps the logs, and the next run starts it afresh.
#
# Usage: local/synthesize.sh [options] <exp_dir> <model_file> <data_dir> <out_dir>
#   e.g. local/synthesize.sh --nj 4 exp/tts_train exp/tts_train/latest.pth dump/raw/test \
#          exp/tts_train/decode_latest/test
set -euo pipefail

nj=4               # parallel jobs (at most one per utterance)
cmd=utils/run_local.py  # job runner (${decode_cmd} of cmd.sh)
ngpu=0             # GPUs per job (0: CPU)
inference_config=  # ESPnet inference config (yaml), e.g. noise_scale; empty: ESPnet's defaults
inference_args=    # extra arguments for espnet2.bin.tts_inference, e.g. "--noise_scale 0.5"
use_sid=false      # speaker ids: <data_dir>/utt2sid as ESPnet's sids (multi-speaker model)

help_message="Usage: $0 [options] <exp_dir> <model_file> <data_dir> <out_dir>
Synthesize the utterances of <data_dir>/text with espnet2.bin.tts_inference in parallel jobs.
Options (default in brackets):
  --nj N               parallel jobs [${nj}]
  --cmd RUNNER         job runner [${cmd}]
  --ngpu N             GPUs per job [${ngpu}]
  --inference_config F ESPnet inference config [none]
  --inference_args STR extra arguments for espnet2.bin.tts_inference [${inference_args}]
  --use_sid BOOL       speaker ids from <data_dir>/utt2sid [${use_sid}]"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
. "${root}/utils/parse_options.sh"
# shellcheck disable=SC1091
. "${root}/utils/recipe_lib.sh"
[ $# -eq 4 ] || { printf '%s\n' "${help_message}" >&2; exit 2; }
exp_dir=${1%/}
model_file=$2
data_dir=${3%/}
out_dir=${4%/}
[ -f "${exp_dir}/config.yaml" ] || die "${exp_dir}/config.yaml not found: has stage 6 run?"
[ -f "${model_file}" ] || die "model file ${model_file} not found (see --inference_model; files: $(cd "${exp_dir}" && ls ./*.pth 2>/dev/null | tr '\n' ' '))"
[ -s "${data_dir}/text" ] || die "${data_dir}/text is missing or empty"
[ "${use_sid}" = false ] || [ -s "${data_dir}/utt2sid" ] || die "${data_dir}/utt2sid is missing (stage 4 writes it for a multi-speaker model)"

# The model's identity: its resolved path, size and time, not its 300 MB of contents.
model_id=$(stat -L -c '%n %s %Y' "$(readlink -f "${model_file}")")
key=$(signature "${model_id}" "${exp_dir}/config.yaml" "${data_dir}/text" "${inference_config}" "${inference_args}" "${ngpu}")
[ "${use_sid}" = false ] || key=$(signature "${key}" "${data_dir}/utt2sid")
if is_done "${out_dir}" "${key}"; then
  log "${out_dir} is complete (${out_dir}/.done): skipping"
  exit 0
fi

num_utts=$(wc -l < "${data_dir}/text")
_nj=$(( nj < num_utts ? nj : num_utts ))
work=${out_dir}.tmp
rm -rf "${work}"
logdir=${work}/log
writing "${logdir}" mkdir -p "${logdir}"
record=${work}/command.sh
start_record "${record}" "stage 7 (synthesis) commands"
record_command "${record}" "$0" "$@"

writing "${logdir}" awk -v n="${_nj}" -v total="${num_utts}" -v prefix="${logdir}/keys" \
  '{ part = int((NR - 1) * n / total) + 1; print > (prefix "." part ".scp") }' "${data_dir}/text"

opts=()
[ -n "${inference_config}" ] && opts+=(--config "${inference_config}")
[ "${use_sid}" = false ] || opts+=(--data_path_and_name_and_type "${data_dir}/utt2sid,sids,text_int")
# shellcheck disable=SC2206  # inference_args is a list of words by design
extra=(${inference_args})

log "synthesizing ${num_utts} utterances of ${data_dir} in ${_nj} jobs (logs: ${out_dir}/log/tts_inference.*.log)"
# shellcheck disable=SC2086  # ${cmd} is a command line with options
writing "${work}" run_recorded "${record}" ${cmd} --gpu "${ngpu}" JOB=1:"${_nj}" "${logdir}/tts_inference.JOB.log" \
  python3 -m espnet2.bin.tts_inference \
    --ngpu "${ngpu}" \
    --data_path_and_name_and_type "${data_dir}/text,text,text" \
    --key_file "${logdir}/keys.JOB.scp" \
    --model_file "${model_file}" \
    --train_config "${exp_dir}/config.yaml" \
    --output_dir "${logdir}/output.JOB" \
    "${opts[@]}" "${extra[@]}" \
  || die "synthesis failed (logs: ${logdir}/tts_inference.*.log); ${out_dir} is unchanged"

writing "${work}/wav" mkdir -p "${work}/wav"
for i in $(seq "${_nj}"); do
  writing "${work}/wav" find "${logdir}/output.${i}/wav" -name '*.wav' -exec mv -t "${work}/wav" {} +
  rm -rf "${logdir}/output.${i}/wav"
done
wav_dir=$(cd "${work}/wav" && pwd)
wav_dir=${wav_dir%.tmp/wav}/wav  # the path it will have after the rename
wav_scp_lines() {
  find "${work}/wav" -name '*.wav' -printf '%f\n' | sed 's/\.wav$//' | LC_ALL=C sort \
    | awk -v d="${wav_dir}" '{ print $1 " " d "/" $1 ".wav" }'
}
write_to "${work}/wav/wav.scp" wav_scp_lines
num_wavs=$(wc -l < "${work}/wav/wav.scp")
[ "${num_wavs}" -eq "${num_utts}" ] || die "expected ${num_utts} waveforms, found ${num_wavs} (logs: ${logdir})"

rm -rf "${out_dir}"
writing "${out_dir}" mv "${work}" "${out_dir}"
mark_done "${out_dir}" "${key}"
log "wrote ${num_wavs} waveforms to ${out_dir}/wav"
