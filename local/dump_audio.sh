#!/usr/bin/env bash
# Stage 3: check the clips of a Kaldi data dir, resample them to the model's rate and dump them.
#
# Reads <data_dir>/{wav.scp,text,utt2spk}; writes the Kaldi data dir <dump_dir>: wav.scp (16-bit
# PCM WAVs under <dump_dir>/wav/, samples in [-1, 1]), text, utt2spk, spk2utt, utt2num_samples,
# and excluded.txt: one line per clip left out (unreadable, truncated, silent, below --fs, too
# short or too long, no transcription), with the reason and the wav.scp line it came from.
# A bad clip never stops the run; failing to write (disk full, no permission) does, loudly.
#
# Atomic and idempotent: everything is written to a hidden sibling <dump_dir>.tmp and moved into
# place when complete, then <dump_dir>/.done records the options and a checksum of the inputs;
# a rerun with the same options and inputs does nothing, a changed one dumps again. On any error
# the temporary directory is removed: no half-written dump, no .done.
#
# Usage: local/dump_audio.sh [options] <data_dir> <dump_dir>
#   e.g. local/dump_audio.sh --nj 4 --fs 22050 data/train dump/raw/train
set -euo pipefail

nj=4                  # parallel jobs (at most one per clip)
fs=22050              # sample rate of the dump, Hz: the model's sampling_rate
min_duration=0.5      # shorter clips (seconds) are excluded (a VITS training segment is 0.37 s at 22.05 kHz)
max_duration=20       # longer clips (seconds) are excluded (memory of one batch)
silence_db=-60        # clips whose peak is below this level (dBFS) are excluded as silent
allow_upsample=false  # true: resample clips recorded below --fs up to it instead of excluding them
cmd=                  # job runner, Kaldi style ("utils/run_local.py"); empty: ${train_cmd} of ./cmd.sh, else xargs -P
logdir=               # where the jobs' logs go; empty: exp/dump_audio/<name of dump_dir>/log

help_message="Usage: $0 [options] <data_dir> <dump_dir>
Check, resample (to --fs) and dump the clips of a Kaldi data dir; list the clips left out.
Options (default in brackets):
  --nj N               parallel jobs [${nj}]
  --fs HZ              sample rate of the dump [${fs}]
  --min_duration S     exclude clips shorter than S seconds [${min_duration}]
  --max_duration S     exclude clips longer than S seconds [${max_duration}]
  --silence_db DB      exclude clips whose peak is below DB dBFS [${silence_db}]
  --allow_upsample B   true: upsample clips recorded below --fs instead of excluding them [${allow_upsample}]
  --cmd RUNNER         job runner, e.g. utils/run_local.py [\${train_cmd} of ./cmd.sh if any, else xargs -P]
  --logdir DIR         logs of the jobs [exp/dump_audio/<name of dump_dir>/log]"

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091
. "${script_dir}/../utils/parse_options.sh"
if [ $# -ne 2 ]; then
  printf '%s\n' "${help_message}" >&2
  exit 1
fi
data_dir=${1%/}
dump_dir=${2%/}
# shellcheck disable=SC1091
. "${script_dir}/../path.sh"

# shellcheck disable=SC1091
. "${script_dir}/../utils/recipe_lib.sh"

for f in wav.scp text utt2spk; do
  [ -f "${data_dir}/${f}" ] || die "${data_dir}/${f} not found (is ${data_dir} a Kaldi data dir? stage 2 writes it)"
done
if [ -z "${cmd}" ] && [ -f cmd.sh ]; then
  # shellcheck disable=SC1091
  . ./cmd.sh
  cmd=${train_cmd:-}
fi
name=$(basename "${dump_dir}")
logdir=${logdir:-exp/dump_audio/${name}/log}

# What the dump depends on: a rerun with the same signature has nothing to do.
signature="fs=${fs} min_duration=${min_duration} max_duration=${max_duration} silence_db=${silence_db}"
signature+=" allow_upsample=${allow_upsample} inputs=$(cat "${data_dir}/wav.scp" "${data_dir}/text" "${data_dir}/utt2spk" | md5sum | cut -d' ' -f1)"
if [ -f "${dump_dir}/.done" ]; then
  if [ "$(cat "${dump_dir}/.done")" = "${signature}" ]; then
    log "${dump_dir} is complete (${dump_dir}/.done): skipping; remove that file to dump again"
    exit 0
  fi
  log "options or inputs changed since ${dump_dir} was dumped: dumping again"
fi

num_clips=$(grep -c . "${data_dir}/wav.scp" || true)
[ "${num_clips}" -gt 0 ] || die "${data_dir}/wav.scp is empty"
[ "${nj}" -ge 1 ] || die "--nj must be at least 1, not ${nj}"
nj=$(( nj < num_clips ? nj : num_clips ))

work=$(dirname "${dump_dir}")/.${name}.tmp
finished=false
cleanup() {
  if [ "${finished}" != true ]; then
    rm -rf "${work}"
  fi
}
trap cleanup EXIT
rm -rf "${work}"
mkdir -p "${work}/wav" 2>/dev/null && touch "${work}/.writable" 2>/dev/null \
  || die "cannot write to $(dirname "${dump_dir}") (creating ${work}): check the path and its permissions"
mkdir -p "${logdir}" 2>/dev/null || die "cannot create the log directory ${logdir}"
printf '%q ' "$0" "$@" > "${work}/dump_audio.cmd"
echo >> "${work}/dump_audio.cmd"

log "dumping ${num_clips} clips of ${data_dir} at ${fs} Hz with ${nj} jobs (logs: ${logdir})"
job_args=(job --wav_scp "${data_dir}/wav.scp" --work "${work}" --out_dir "${dump_dir}" --nj "${nj}"
  --fs "${fs}" --min_duration "${min_duration}" --max_duration "${max_duration}"
  --silence_db "${silence_db}" --allow_upsample "${allow_upsample}")
if [ -n "${cmd}" ]; then
  # shellcheck disable=SC2086  # ${cmd} is a command line with options
  ${cmd} JOB=1:"${nj}" "${logdir}/dump_audio.JOB.log" python3 "${script_dir}/dump_audio.py" "${job_args[@]}" --job JOB &
else
  # shellcheck disable=SC2016  # $1, $@ belong to the inner shell
  seq 1 "${nj}" | xargs -P "${nj}" -I '{}' bash -c \
    'log=$1; shift; "$@" > "${log}" 2>&1 || { echo "dump_audio.sh: job failed, end of ${log}:" >&2; tail -n 20 "${log}" >&2; exit 1; }' \
    _ "${logdir}/dump_audio.{}.log" python3 "${script_dir}/dump_audio.py" "${job_args[@]}" --job '{}' &
fi
jobs_pid=$!

progress() {
  cat "${work}"/progress.* 2>/dev/null | awk -v n="${num_clips}" '{ s += $1 } END { printf "%d/%d clips (%d%%)", s, n, 100 * s / n }'
}
ticks=0
while kill -0 "${jobs_pid}" 2>/dev/null; do
  if [ -t 2 ]; then
    printf '\r  dumped %s ' "$(progress)" >&2
  elif [ "${ticks}" -gt 0 ] && [ $(( ticks % 15 )) -eq 0 ]; then
    echo "  dumped $(progress)" >&2
  fi
  ticks=$(( ticks + 1 ))
  sleep 2
done
status=0
wait "${jobs_pid}" || status=$?
[ -t 2 ] && printf '\r  dumped %s\n' "$(progress)" >&2
[ "${status}" -eq 0 ] || die "a dump job failed (logs: ${logdir}); nothing was written to ${dump_dir}"

python3 "${script_dir}/dump_audio.py" merge --data_dir "${data_dir}" --work "${work}" --nj "${nj}" \
  --fs "${fs}" --summary_path "${dump_dir}/excluded.txt" | tee "${logdir}/merge.log" \
  || die "merging the jobs' lists failed (see above); nothing was written to ${dump_dir}"

rm -f "${work}"/progress.* "${work}"/kept.* "${work}"/notes.*.json "${work}"/.writable
find "${work}" -maxdepth 1 -name 'excluded.[0-9]*' -delete
rm -rf "${dump_dir}"  # an older or unfinished dump of this set
mv "${work}" "${dump_dir}"
echo "${signature}" > "${dump_dir}/.done"
finished=true
log "wrote ${dump_dir}"
