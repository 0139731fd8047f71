#!/usr/bin/env bash
# Stage 8 (optional): score the synthesized test set against the recordings and write the
# listening report.
#
# Reads <ref_data_dir>/{wav.scp,text} (e.g. dump/raw/test) and what stage 7's tts_inference
# wrote to <decode_dir>: wav/<key>.wav, and the alignments when the model gave them: durations
# (<decode_dir>/durations as ESPnet's tts.sh gathers them, durations/durations, or the jobs'
# log/output.<n>/durations/durations), else att_ws/<key>.png. Writes to <eval_dir>:
#   metrics.tsv, metrics.json   MCD (dB), log-F0 RMSE (cents), V/UV error, duration ratios and
#                               (--wer true) what PocketSphinx heard in the synthesis and in the
#                               recording, per utterance; averages and corpus WERs (also logged),
#                               per speaker too when <ref_data_dir>/utt2spk names several
#   report/index.html           self-contained listening report: open it in a browser
#   log/                        the jobs' logs; evaluate.cmd: this command line
# Scoring runs in --nj parallel jobs over pieces of wav.scp; one last run merges their rows and
# draws the report (spectrograms, alignments, training curves from --train_log_dir).
#
# Atomic and idempotent: the jobs write into <eval_dir>/split<nj>/, the report is built aside
# and renamed into place, and <eval_dir>/.done records the options and a checksum of the inputs;
# a rerun with the same options and inputs does nothing.
#
# Usage: local/evaluate.sh [options] <ref_data_dir> <decode_dir> <eval_dir>
#   e.g. local/evaluate.sh --nj 4 --train_log_dir exp/tts_vits dump/raw/test exp/tts_vits/decode_train.total_count.best/test exp/tts_vits/eval_test
set -euo pipefail

nj=4                # parallel scoring jobs (at most one per utterance)
cmd=                # job runner, Kaldi style; empty: ${train_cmd} of ./cmd.sh, else utils/run_local.py
train_log_dir=      # training run (exp/<tts_exp>) whose tensorboard/ or train.log gives the curves; empty: none
f0_method=harvest   # WORLD F0 estimator: harvest, or dio (about 20x faster, more voicing errors)
f0_floor=71         # lowest F0 searched, Hz
f0_ceil=800         # highest F0 searched, Hz
report=true         # false: metrics only, no HTML report
wer=true            # word error rate of syntheses and recordings by PocketSphinx (needs <ref_data_dir>/text)
report_utterances=  # show only the first N utterances in the report (all are scored); empty: all

help_message="Usage: $0 [options] <ref_data_dir> <decode_dir> <eval_dir>
Score the syntheses in <decode_dir>/wav against <ref_data_dir>/wav.scp; write metrics and
a listening report to <eval_dir>.
Options (default in brackets):
  --nj N               parallel scoring jobs [${nj}]
  --cmd RUNNER         job runner, e.g. utils/run_local.py [\${train_cmd} of ./cmd.sh if any, else utils/run_local.py]
  --train_log_dir DIR  training run whose tensorboard/ or train.log gives the training curves [none]
  --f0_method NAME     harvest or dio [${f0_method}]
  --f0_floor HZ        lowest F0 searched [${f0_floor}]
  --f0_ceil HZ         highest F0 searched [${f0_ceil}]
  --report B           true: also write the HTML listening report [${report}]
  --wer B              true: word error rate of the syntheses and of the recordings against
                       <ref_data_dir>/text, by an offline recognizer [${wer}]
  --report_utterances N  show only the first N utterances in the report; all are scored [all]"

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091
. "${script_dir}/../utils/parse_options.sh"
if [ $# -ne 3 ]; then
  printf '%s\n' "${help_message}" >&2
  exit 1
fi
ref_data_dir=${1%/}
decode_dir=${2%/}
eval_dir=${3%/}
# shellcheck disable=SC1091
. "${script_dir}/../path.sh"
# shellcheck disable=SC1091
. "${script_dir}/../utils/recipe_lib.sh"

[ -f "${ref_data_dir}/wav.scp" ] || die "${ref_data_dir}/wav.scp not found (stage 3 writes dump/raw/<set>)"
[ -d "${decode_dir}/wav" ] || die "${decode_dir}/wav not found (stage 7, synthesis, writes it)"
[ "${nj}" -ge 1 ] 2>/dev/null || die "--nj must be a positive integer, not '${nj}'"
if [ -z "${cmd}" ]; then
  if [ -f cmd.sh ]; then
    # shellcheck disable=SC1091
    . ./cmd.sh
  fi
  cmd=${train_cmd:-${script_dir}/../utils/run_local.py}
fi

case "${wer}" in true|false) ;; *) die "--wer must be true or false, not '${wer}'" ;; esac
if ${wer} && [ ! -f "${ref_data_dir}/text" ]; then
  die "--wer true needs ${ref_data_dir}/text (the sentences the word errors are counted against); pass --wer false to score without it"
fi

# Optional inputs: used when present.
extra_args=()
job_args=(--wer "${wer}")
inputs=("${ref_data_dir}/wav.scp")
if [ -f "${ref_data_dir}/text" ]; then
  extra_args+=(--text "${ref_data_dir}/text"); inputs+=("${ref_data_dir}/text")
  job_args+=(--text "${ref_data_dir}/text")
fi
if [ -f "${ref_data_dir}/utt2spk" ]; then  # several speakers: metrics and report per speaker
  extra_args+=(--utt2spk "${ref_data_dir}/utt2spk"); inputs+=("${ref_data_dir}/utt2spk")
fi
# Durations, where tts_inference's outputs were put: gathered as ESPnet's tts.sh does
# (<decode_dir>/durations), one tts_inference run (durations/durations), or its parallel jobs
# left in place (log/output.<n>/durations/durations, concatenated here).
durations=
job_durations=$(find "${decode_dir}/log" -path '*/output.*/durations/durations' 2>/dev/null | LC_ALL=C sort || true)
if [ -f "${decode_dir}/durations" ]; then
  durations=${decode_dir}/durations
elif [ -f "${decode_dir}/durations/durations" ]; then
  durations=${decode_dir}/durations/durations
elif [ -n "${job_durations}" ]; then
  writing "${eval_dir}" mkdir -p "${eval_dir}"
  # shellcheck disable=SC2086  # one path per line, without spaces (made by the recipe)
  write_to "${eval_dir}/durations.tmp" cat ${job_durations}
  writing "${eval_dir}/durations" mv "${eval_dir}/durations.tmp" "${eval_dir}/durations"
  durations=${eval_dir}/durations
fi
if [ -n "${durations}" ]; then
  extra_args+=(--durations "${durations}"); inputs+=("${durations}")
elif [ -d "${decode_dir}/att_ws" ]; then
  extra_args+=(--att_ws_dir "${decode_dir}/att_ws")
fi
if [ -n "${report_utterances}" ]; then
  extra_args+=(--report_utterances "${report_utterances}")
fi
if [ -n "${train_log_dir}" ]; then
  [ -d "${train_log_dir}" ] || die "--train_log_dir ${train_log_dir} is not a directory"
  extra_args+=(--train_log_dir "${train_log_dir}")
fi
analysis_args=(--f0_method "${f0_method}" --f0_floor "${f0_floor}" --f0_ceil "${f0_ceil}")

# What the result depends on: a rerun with the same signature has nothing to do.
signature="f0_method=${f0_method} f0_floor=${f0_floor} f0_ceil=${f0_ceil} report=${report} wer=${wer}"
signature+=" report_utterances=${report_utterances} train_log_dir=${train_log_dir} inputs=$( { cat "${inputs[@]}"; ls -l --time-style=+%s "${decode_dir}/wav"; } | md5sum | cut -d' ' -f1)"
if is_done "${eval_dir}" "${signature}"; then
  log "${eval_dir} is complete (${eval_dir}/.done): skipping; remove that file to evaluate again"
  exit 0
fi
rm -f "${eval_dir}/.done"

num_utts=$(grep -c . "${ref_data_dir}/wav.scp" || true)
[ "${num_utts}" -gt 0 ] || die "${ref_data_dir}/wav.scp is empty"
nj=$(( nj < num_utts ? nj : num_utts ))
split_dir=${eval_dir}/split${nj}
writing "${eval_dir}/log" mkdir -p "${eval_dir}/log"
rm -rf "${split_dir}"
writing "${split_dir}" mkdir -p "${split_dir}"
start_record "${eval_dir}/evaluate.cmd" "stage 8 evaluation"
record_command "${eval_dir}/evaluate.cmd" "$0" "$@"

# Contiguous pieces of wav.scp, one per job, sizes differing by at most one line.
writing "${split_dir}" awk -v nj="${nj}" -v n="${num_utts}" -v dir="${split_dir}" \
  'NF { job = int(i * nj / n) + 1; print > (dir "/wav." job ".scp"); i++ }' "${ref_data_dir}/wav.scp"

log "scoring ${num_utts} utterances of ${decode_dir} with ${nj} jobs (logs: ${eval_dir}/log/metrics.*.log)"
# shellcheck disable=SC2086  # ${cmd} is a command line with options
writing "${split_dir}" ${cmd} JOB=1:"${nj}" "${eval_dir}/log/metrics.JOB.log" \
  python3 -m espnet2_vits_ext.bin.evaluate_tts --report false "${analysis_args[@]}" "${job_args[@]}" \
    --ref_wav_scp "${split_dir}/wav.JOB.scp" --gen_wav_dir "${decode_dir}/wav" \
    --output_dir "${split_dir}/JOB" \
  || die "a scoring job failed (logs: ${eval_dir}/log/metrics.*.log)"

log "merging the jobs' metrics$( ${report} && echo ' and writing the listening report')"
shards=()
for job in $(seq 1 "${nj}"); do
  shards+=("${split_dir}/${job}/metrics.tsv")
done
merge() {
  # Its log holds the error; shown on failure, for writing to find a write error in.
  python3 -m espnet2_vits_ext.bin.evaluate_tts --report "${report}" --wer "${wer}" "${analysis_args[@]}" \
    --ref_wav_scp "${ref_data_dir}/wav.scp" --gen_wav_dir "${decode_dir}/wav" \
    --output_dir "${eval_dir}" --metrics_from "${shards[@]}" "${extra_args[@]}" \
    > "${eval_dir}/log/merge.log" 2>&1 \
    || { tail -n 30 "${eval_dir}/log/merge.log" >&2; return 1; }
}
writing "${eval_dir}" merge || die "merging or the report failed (log: ${eval_dir}/log/merge.log)"
rm -rf "${split_dir}"

# The per-speaker summaries (several speakers), then the whole set's.
while IFS= read -r line; do
  log "${line}"
done < <(grep -o '\(speaker [^ ]* \)\?summary: .*' "${eval_dir}/log/merge.log")
log "metrics: ${eval_dir}/metrics.tsv, ${eval_dir}/metrics.json"
if ${report}; then
  log "listening report: ${eval_dir}/report/index.html"
fi
mark_done "${eval_dir}" "${signature}"
