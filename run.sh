#!/usr/bin/env bash
# VITS on LJSpeech or VCTK (or the built-in mini corpus): from the raw corpus to a trained, packed voice.
#
#   Stage 1  corpus       download + verify + extract LJSpeech 1.1 or VCTK 0.92 (and index VCTK),
#                         or generate the mini corpus
#   Stage 2  data         Kaldi data dirs data/{train,val,test}: the VITS split of LJSpeech
#                         (12,500/100/500), a per-speaker split of VCTK and of the mini corpus
#   Stage 3  audio        check, resample and dump the clips: dump/raw/<set>
#   Stage 4  text         clean + phonemize, drop unusable utterances, token list; with speaker ids
#                         (multi-speaker config): spk2sid of the training set, utt2sid of each set
#   Stage 5  stats        ESPnet collect stats: shape files, feature statistics
#   Stage 6  training     ESPnet2 GAN-TTS trainer (CPU, one GPU, distributed with --ngpu N,
#                         on several nodes with --num_nodes N and the Slurm backend)
#   Stage 7  synthesis    synthesize the test set in parallel jobs; pack a zip for Text2Speech
#                         and export it as a Piper voice (<zip name>.onnx + .onnx.json) beside it
#   Stage 8  evaluation   (optional, after --stop_stage 7) metrics + listening report of the test set
#
# Every stage is idempotent (a .done signature per output; a rerun skips finished work and redoes
# work whose inputs or options changed) and atomic (outputs are built under temporary names and
# renamed when complete). Each stage's commands are recorded in its output folder (command.sh).
#
# Usage: ./run.sh [options]          (./run.sh --help lists every option)
#   e.g. ./run.sh --corpus mini --stage 1 --stop_stage 7
#        cd egs2/vctk/tts1 && ./run.sh --corpus mini    (the multi-speaker recipe: docs/recipes.md)
#        ./run.sh --ngpu 4 --nj 16
#        cmd_backend=slurm ./run.sh --ngpu 4 --num_nodes 2 --nj 16
set -euo pipefail

# General
stage=1                 # first stage to run
stop_stage=7            # last stage to run
nj=4                    # parallel jobs for stages 3-5 and 8 (at most one per utterance)
inference_nj=4          # parallel synthesis jobs in stage 7
ngpu=0                  # GPUs for training (0: CPU; more than 1: ESPnet's distributed mode); per node
num_nodes=1             # nodes for training; more than 1: one Slurm job over N nodes (cmd_backend=slurm)
gpu_inference=false     # synthesize on one GPU per job
corpus=ljspeech         # ljspeech or vctk (the real corpora) or mini (built-in espeak-ng corpus)
# Stage 1: corpus
download_dir=downloads  # where the archive, the extracted corpus and the mini corpus go
ljspeech_root=          # an already extracted LJSpeech-1.1 directory (skips the download)
ljspeech_url=https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2  # LJSpeech 1.1 archive
ljspeech_sha256=be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5  # its SHA-256
vctk_root=              # an already extracted VCTK-Corpus-0.92 directory (skips the download)
vctk_url=https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip  # VCTK 0.92 archive
vctk_sha256=f96258be9fdc2cbff6559541aae7ea4f59df3fcaf5cf963aae5ca647357e359c  # its SHA-256
mini_voices=en-us       # espeak-ng voice(s) of the mini corpus; several, comma-separated: one speaker each
# Output directories
datadir=data            # stage 2 output: Kaldi data dirs
dumpdir=dump            # stages 3-4 output: dumped audio, token lists
expdir=exp              # stages 5-7 output: statistics, models, logs, synthesis
# Stage 3: audio
fs=                     # sample rate of the dump; empty: tts_conf.sampling_rate of --train_config
min_duration=0.5        # clips shorter than this (seconds) are excluded
max_duration=20         # clips longer than this (seconds) are excluded
allow_upsample=false    # true: upsample clips recorded below --fs instead of excluding them
# Stage 4: text
g2p=                    # grapheme-to-phoneme; empty: g2p of --train_config (espeak_ng_english_us_vits)
cleaner=                # text cleaner; empty: cleaner of --train_config (tacotron)
# Stages 4-7: speakers
use_sid=                # speaker ids (ESPnet's --use_sid); empty: true when the config has a speaker table (spks)
# Stages 5-6: training
train_config=           # ESPnet config; empty: conf/train.yaml (ljspeech, vctk) or conf/train_mini.yaml (mini)
train_args=             # extra trainer arguments, override the config, e.g. "--max_epoch 10"
tag=                    # experiment name exp/tts_<tag>; empty: config name + train_args
resume=true             # continue an interrupted training from its last checkpoint
init_model=             # fine-tuning: start from this trained voice (.pth checkpoint or packed .zip); empty: none
train_threads=          # threads per training process; empty: all cores on CPU, 1 per GPU process
# Stage 7: synthesis and packing
inference_model=latest.pth  # checkpoint in exp/tts_<tag> to synthesize with and to pack
inference_config=       # ESPnet inference config (yaml); empty: ESPnet's defaults
inference_args=         # extra arguments for espnet2.bin.tts_inference, e.g. "--noise_scale 0.5"
export_piper=true       # also export the packed model as a Piper voice (<zip name>.onnx + .onnx.json)
# Stage 8: evaluation
evaluation_args=        # extra options of local/evaluate.sh, e.g. "--f0_method dio --report_utterances 20"

# A recipe directory's own defaults (egs2/vctk/tts1/recipe.conf: corpus vctk, four mini voices);
# the command line still overrides them.
# shellcheck disable=SC1091
[ ! -f recipe.conf ] || . ./recipe.conf

help_message=$(cat <<EOF
Usage: $0 [options]
Train VITS on LJSpeech or VCTK (or the built-in mini corpus) and pack it; stages:
  1 corpus, 2 data dirs, 3 audio dump, 4 text/tokens, 5 collect stats, 6 training, 7 synthesis + pack,
  8 evaluation (optional: ./run.sh --stage 8 --stop_stage 8)

General:
  --stage N              first stage to run (default: ${stage})
  --stop_stage N         last stage to run (default: ${stop_stage})
  --nj N                 parallel jobs for stages 3-5 and 8 (default: ${nj})
  --inference_nj N       parallel synthesis jobs in stage 7 (default: ${inference_nj})
  --ngpu N               GPUs for training (per node), 0 for CPU (default: ${ngpu})
  --num_nodes N          training nodes, --ngpu GPUs each; above 1 needs cmd_backend=slurm (default: ${num_nodes})
  --gpu_inference BOOL   synthesize on GPU (default: ${gpu_inference})
  --corpus NAME          ljspeech, vctk or mini (default: ${corpus})
Corpus (stage 1):
  --download_dir DIR     archive, extracted corpus, mini corpus (default: ${download_dir})
  --ljspeech_root DIR    use this extracted LJSpeech-1.1 instead of downloading (default: none)
  --ljspeech_url URL     LJSpeech 1.1 archive (default: ${ljspeech_url})
  --ljspeech_sha256 HEX  its SHA-256 (default: ${ljspeech_sha256})
  --vctk_root DIR        use this extracted VCTK-Corpus-0.92 instead of downloading (default: none)
  --vctk_url URL         VCTK 0.92 archive (default: ${vctk_url})
  --vctk_sha256 HEX      its SHA-256 (default: ${vctk_sha256})
  --mini_voices V1,V2    espeak-ng voices of the mini corpus, one speaker each (default: ${mini_voices})
Output directories:
  --datadir DIR          Kaldi data dirs (default: ${datadir})
  --dumpdir DIR          dumped audio and token lists (default: ${dumpdir})
  --expdir DIR           statistics, models, logs, synthesis (default: ${expdir})
Audio (stage 3):
  --fs HZ                sample rate (default: tts_conf.sampling_rate of the config)
  --min_duration S       exclude clips shorter than S seconds (default: ${min_duration})
  --max_duration S       exclude clips longer than S seconds (default: ${max_duration})
  --allow_upsample BOOL  upsample clips recorded below --fs instead of excluding them (default: ${allow_upsample})
Text (stage 4):
  --g2p NAME             grapheme-to-phoneme (default: g2p of the config)
  --cleaner NAME         text cleaner (default: cleaner of the config)
Speakers (stages 4-7):
  --use_sid BOOL         speaker ids: spk2sid, utt2sid, sids (default: true if the config has spks)
Training (stages 5-6):
  --train_config FILE    ESPnet config (default: conf/train.yaml; conf/train_mini.yaml with --corpus mini)
  --train_args STR       extra trainer arguments, e.g. "--max_epoch 10" (default: none)
  --tag NAME             experiment exp/tts_<tag> (default: config name + train_args)
  --resume BOOL          resume training from the last checkpoint (default: ${resume})
  --init_model PATH      fine-tune: start from this voice (ESPnet VITS / fast_vits .pth, packed .zip,
                         imported Piper voice); adds _init_<name> to the default tag (default: none)
  --train_threads N      threads per training process (default: all cores on CPU, 1 per GPU process)
Synthesis and packing (stage 7):
  --inference_model F    checkpoint of exp/tts_<tag> to use (default: ${inference_model})
  --inference_config F   ESPnet inference config (default: none)
  --inference_args STR   extra arguments for espnet2.bin.tts_inference (default: none)
  --export_piper BOOL    also export a Piper voice beside the zip (default: ${export_piper})
Evaluation (stage 8):
  --evaluation_args STR  extra options of local/evaluate.sh, e.g. "--f0_method dio" (default: none)
  --help                 print this message
EOF
)

SECONDS=0
run_args=$(printf '%q ' "$0" "$@")

# Paths in options and in the recipe are relative to the directory run.sh runs in: the repository
# root or a recipe directory egs2/<corpus>/tts1, whose conf, local, utils, tools, path.sh and cmd.sh
# are links into the root, as ESPnet's egs2 recipes link to TEMPLATE (docs/recipes.md).
if [ ! -f run.sh ] || [ ! -f utils/parse_options.sh ] || [ ! -d local ]; then
  echo "$0: run me from the repository root (cd $(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)) or from a recipe directory egs2/<corpus>/tts1" >&2
  exit 2
fi
. utils/parse_options.sh
if [ $# -ne 0 ]; then
  echo "$0: unexpected argument(s): $* (this script takes options only; see $0 --help)" >&2
  exit 2
fi

# The environment first: the installer is idempotent (well under a second once done).
tools/setup_env.sh
# shellcheck disable=SC1091
. ./path.sh
# shellcheck disable=SC1091
. ./cmd.sh
# shellcheck disable=SC1091
. utils/recipe_lib.sh

# ----- checks and derived settings -----
for opt in stage stop_stage nj inference_nj ngpu num_nodes; do
  [[ "${!opt}" =~ ^[0-9]+$ ]] || die "--${opt} takes a non-negative integer, not '${!opt}'"
done
[ "${nj}" -ge 1 ] && [ "${inference_nj}" -ge 1 ] || die "--nj and --inference_nj must be at least 1"
[ "${num_nodes}" -ge 1 ] || die "--num_nodes must be at least 1"
# Only Slurm spans nodes: the local backend runs every job on this machine.
[ "${num_nodes}" -eq 1 ] || [ "${cmd_backend}" = slurm ] \
  || die "--num_nodes ${num_nodes} needs the slurm job backend (cmd_backend=slurm ./run.sh ...; see cmd.sh), not '${cmd_backend}'"
[ -z "${ljspeech_root}" ] || [ "${corpus}" = ljspeech ] || die "--ljspeech_root is for --corpus ljspeech"
[ -z "${vctk_root}" ] || [ "${corpus}" = vctk ] || die "--vctk_root is for --corpus vctk"
multi_speaker=false  # the corpus has several speakers (then the config must have a speaker table)
case "${corpus}" in
  ljspeech)
    corpus_dir=${ljspeech_root:-${download_dir}/LJSpeech-1.1}
    split_dir=local/ljspeech_split
    speaker=LJ
    train_config=${train_config:-conf/train.yaml}
    ;;
  vctk)
    vctk_dir=${vctk_root:-${download_dir}/VCTK-Corpus-0.92}
    corpus_dir=${download_dir}/vctk_index  # local/prepare_vctk.py's index: metadata.csv, wav.scp, utt2spk, split
    split_dir=${corpus_dir}
    speaker=VCTK  # unused: the index has its own utt2spk
    multi_speaker=true
    train_config=${train_config:-conf/train.yaml}
    ;;
  mini)
    corpus_dir=${download_dir}/mini
    split_dir=${corpus_dir}  # the mini corpus carries its own train/val/test.ids
    speaker=MINI
    [[ "${mini_voices}" != *,* ]] || multi_speaker=true
    train_config=${train_config:-conf/train_mini.yaml}
    ;;
  *) die "--corpus must be ljspeech, vctk or mini, not '${corpus}'" ;;
esac
[ -f "${train_config}" ] || die "--train_config: no such file '${train_config}'"

# One source of truth: fs, g2p and cleaner come from the config unless given, and must agree with it.
config_value() {
  python3 - "${train_config}" "$1" <<'PY'
import sys, yaml
value = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
for key in sys.argv[2].split("."):
    value = value.get(key) if isinstance(value, dict) else None
print("" if value is None else value)
PY
}
config_fs=$(config_value tts_conf.sampling_rate)
config_g2p=$(config_value g2p)
config_cleaner=$(config_value cleaner)
token_type=$(config_value token_type)
[ -n "${config_fs}" ] || die "${train_config} has no tts_conf.sampling_rate"
fs=${fs:-${config_fs}}
[ "${fs}" = "${config_fs}" ] || die "--fs ${fs} disagrees with tts_conf.sampling_rate ${config_fs} of ${train_config}"
g2p=${g2p:-${config_g2p}}
cleaner=${cleaner:-${config_cleaner}}
[ -n "${g2p}" ] || die "no g2p: give --g2p or set g2p in ${train_config}"
[ -n "${cleaner}" ] || die "no cleaner: give --cleaner or set cleaner in ${train_config}"
token_type=${token_type:-phn}
# Speaker ids follow the config: a speaker table (tts_conf.generator_params.spks) means sids.
config_spks=$(config_value tts_conf.generator_params.spks)
[[ "${config_spks}" =~ ^-?[0-9]+$ ]] || config_spks=-1
if [ -z "${use_sid}" ]; then
  if [ "${config_spks}" -gt 0 ]; then use_sid=true; else use_sid=false; fi
  "${use_sid}" || ! "${multi_speaker}" \
    || die "--corpus ${corpus} has several speakers but ${train_config} has no speaker table (tts_conf.generator_params.spks ${config_spks}): give a multi-speaker config such as egs2/vctk/tts1/conf/train.yaml (or run from egs2/vctk/tts1), or --use_sid false to train one voice on all of them"
fi
case "${use_sid}" in
  true) [ "${config_spks}" -gt 0 ] || die "--use_sid true needs a speaker table in ${train_config} (tts_conf.generator_params.spks; it is ${config_spks})" ;;
  false) ;;
  *) die "--use_sid takes true or false, not '${use_sid}'" ;;
esac
[ -z "${init_model}" ] || [ -f "${init_model}" ] || die "--init_model: no such file '${init_model}'"
[ "${token_type}" = phn ] || die "token_type must be phn (phonemes) in ${train_config}, not '${token_type}'"
if [ -z "${train_threads}" ]; then
  if [ "${ngpu}" -eq 0 ]; then train_threads=$(nproc); else train_threads=1; fi
fi

if [ -z "${tag}" ]; then
  tag=$(basename "${train_config}" .yaml)
  # As ESPnet's tts.sh: overriding arguments become part of the name ("--max_epoch 1" -> _max_epoch1).
  [ -z "${train_args}" ] || tag+=$(echo "${train_args}" | sed -e "s/--/_/g" -e "s/[ |=/]//g")
  [ "${g2p}" = "${config_g2p}" ] || tag+=_${g2p}
  [ "${cleaner}" = "${config_cleaner}" ] || tag+=_${cleaner}
  # A fine-tuned voice is another experiment: it must not resume (or skip) the one trained from scratch.
  # A checkpoint's own name says little (latest.pth, 100epoch.pth): its experiment's name goes first.
  if [ -n "${init_model}" ]; then
    init_name=$(basename "${init_model}" | sed -e 's/\.[^.]*$//')
    [[ "${init_model}" != *.pth ]] || init_name=$(basename "$(dirname "$(readlink -f "${init_model}")")")_${init_name}
    tag+=_init_${init_name//[^A-Za-z0-9_.-]/_}
  fi
fi
train_set=train
valid_set=val
test_sets="test"
token_list=${dumpdir}/token_list/${g2p}/tokens.txt
stats_dir=${expdir}/tts_stats_${tag}
tts_exp=${expdir}/tts_${tag}
inference_tag=decode_${inference_model%.*}
packed_zip=${tts_exp}/packed/tts_${tag}_${inference_model%.*}.zip
mkdir -p "${expdir}/logs"
run_log=${expdir}/logs/run.$(date '+%Y%m%dT%H%M%S').log
# Everything this run prints also goes to its own log under exp/.
exec > >(tee -a "${run_log}") 2>&1
log "${run_args}"
log "corpus ${corpus} (${corpus_dir}), config ${train_config}, fs ${fs}, g2p ${g2p}, cleaner ${cleaner}, speaker ids ${use_sid}; log ${run_log}"

# ----- stages -----
# Stage 1 of a real corpus: check the extracted copy given as --<corpus>_root, or download and
# extract the archive into --download_dir.
#   fetch_corpus NAME ROOT URL SHA256 DOWNLOADER TARGET PATH... (PATHs: what an extracted copy holds)
fetch_corpus() {
  local name=$1 root=$2 url=$3 sha256=$4 downloader=$5 target=$6 path
  shift 6
  if [ -n "${root}" ]; then
    log "Stage 1: ${name}: using ${root} (no download)"
    for path in "$@"; do
      [ -e "${root}/${path}" ] || die "--${corpus}_root ${root} has no ${*}: give the extracted ${name} directory"
    done
  else
    log "Stage 1: ${name}: ${url} -> ${target}"
    start_record "${download_dir}/command_stage1.sh" "${run_args}"
    run_recorded "${download_dir}/command_stage1.sh" "${downloader}" \
      --url "${url}" --sha256 "${sha256}" "${download_dir}" \
      || die "stage 1 failed; run it again to resume the download"
  fi
}

if [ "${stage}" -le 1 ] && [ "${stop_stage}" -ge 1 ]; then
  if [ "${corpus}" = mini ]; then
    log "Stage 1: mini corpus: espeak-ng (${mini_voices}) -> ${corpus_dir}"
    start_record "${download_dir}/command_stage1.sh" "${run_args}"
    run_recorded "${download_dir}/command_stage1.sh" local/make_mini_corpus.py --voices "${mini_voices}" "${corpus_dir}"
  elif [ "${corpus}" = vctk ]; then
    fetch_corpus VCTK-Corpus-0.92 "${vctk_root}" "${vctk_url}" "${vctk_sha256}" local/download_vctk.py "${vctk_dir}" \
      txt wav48_silence_trimmed
    [ -z "${vctk_root}" ] || start_record "${download_dir}/command_stage1.sh" "${run_args}"
    # The index (with the per-speaker split) goes beside the corpus, which stays as extracted.
    log "Stage 1: VCTK index: ${vctk_dir} -> ${corpus_dir}"
    run_recorded "${download_dir}/command_stage1.sh" local/prepare_vctk.py "${vctk_dir}" "${corpus_dir}" \
      || die "stage 1: indexing ${vctk_dir} failed (see above)"
  else
    fetch_corpus LJSpeech-1.1 "${ljspeech_root}" "${ljspeech_url}" "${ljspeech_sha256}" local/download_ljspeech.py \
      "${corpus_dir}" metadata.csv wavs
  fi
fi

if [ "${stage}" -le 2 ] && [ "${stop_stage}" -ge 2 ]; then
  log "Stage 2: data dirs: ${corpus_dir} + ${split_dir}/*.ids -> ${datadir}/{${train_set},${valid_set},${test_sets// /,}}"
  [ -f "${corpus_dir}/metadata.csv" ] || die "${corpus_dir}/metadata.csv not found: run stage 1"
  # A multi-speaker corpus's own audio list and speakers (VCTK's index, the multi-voice mini corpus).
  corpus_tables=()
  for f in wav.scp utt2spk; do
    [ ! -f "${corpus_dir}/${f}" ] || corpus_tables+=("${corpus_dir}/${f}")
  done
  key=$(signature "$(cd "${corpus_dir}" && pwd)" "${corpus_dir}/metadata.csv" \
    "${split_dir}/${train_set}.ids" "${split_dir}/${valid_set}.ids" "${split_dir}/test.ids" "${speaker}" \
    "${corpus_tables[@]}")
  if is_done "${datadir}" "${key}"; then
    log "${datadir} is complete (${datadir}/.done): skipping"
  else
    start_record "${datadir}/command.sh" "${run_args}"
    run_recorded "${datadir}/command.sh" local/prepare_data.py --speaker "${speaker}" \
      "${corpus_dir}" "${split_dir}" "${datadir}"
    for dset in ${train_set} ${valid_set} ${test_sets}; do
      utils/validate_data_dir.py "${datadir}/${dset}"
    done
    mark_done "${datadir}" "${key}"
  fi
fi

if [ "${stage}" -le 3 ] && [ "${stop_stage}" -ge 3 ]; then
  log "Stage 3: audio dump at ${fs} Hz: ${datadir}/<set> -> ${dumpdir}/raw/<set>"
  start_record "${dumpdir}/raw/command_stage3.sh" "${run_args}"
  for dset in ${train_set} ${valid_set} ${test_sets}; do
    run_recorded "${dumpdir}/raw/command_stage3.sh" local/dump_audio.sh --nj "${nj}" --fs "${fs}" \
      --min_duration "${min_duration}" --max_duration "${max_duration}" --allow_upsample "${allow_upsample}" \
      --cmd "${train_cmd}" --logdir "${expdir}/dump_audio/${dset}/log" \
      "${datadir}/${dset}" "${dumpdir}/raw/${dset}"
    utils/validate_data_dir.py "${dumpdir}/raw/${dset}"
  done
fi

# The config states the hop length three times; a mismatch would train on misaligned windows.
if [ "${stop_stage}" -ge 4 ]; then
  local/check_train_config.py "${train_config}" || exit 1
fi

if [ "${stage}" -le 4 ] && [ "${stop_stage}" -ge 4 ]; then
  log "Stage 4: text: ${dumpdir}/raw/<set>/text -> ${token_list} (g2p ${g2p}, cleaner ${cleaner})"
  dump_dirs=()
  for dset in ${train_set} ${valid_set} ${test_sets}; do
    dump_dirs+=("${dumpdir}/raw/${dset}")
  done
  start_record "$(dirname "${token_list}")/command_stage4.sh" "${run_args}"
  run_recorded "$(dirname "${token_list}")/command_stage4.sh" local/prepare_text.sh --nj "${nj}" \
    --g2p "${g2p}" --cleaner "${cleaner}" --train_config "${train_config}" \
    "${dump_dirs[@]}" "${token_list}"
  for dir in "${dump_dirs[@]}"; do
    utils/validate_data_dir.py "${dir}"
  done
  if "${use_sid}"; then
    # After the text filter: every speaker with training data gets an id, and only those.
    run_recorded "$(dirname "${token_list}")/command_stage4.sh" local/make_speaker_ids.py \
      --train_config "${train_config}" "${dump_dirs[@]}" \
      || die "stage 4: no speaker ids (see above)"
  fi
fi

if [ "${stage}" -le 5 ] && [ "${stop_stage}" -ge 5 ]; then
  log "Stage 5: collect stats: ${dumpdir}/raw/{${train_set},${valid_set}} -> ${stats_dir}"
  local/collect_stats.sh --nj "${nj}" --cmd "${train_cmd}" --train_config "${train_config}" \
    --token_list "${token_list}" --g2p "${g2p}" --cleaner "${cleaner}" --train_args "${train_args}" \
    --use_sid "${use_sid}" \
    "${dumpdir}/raw/${train_set}" "${dumpdir}/raw/${valid_set}" "${stats_dir}"
fi

if [ "${stage}" -le 6 ] && [ "${stop_stage}" -ge 6 ]; then
  log "Stage 6: training: ${dumpdir}/raw/{${train_set},${valid_set}} + ${train_config} -> ${tts_exp}"
  local/train.sh --ngpu "${ngpu}" --num_nodes "${num_nodes}" --cmd "${cuda_cmd}" --train_config "${train_config}" \
    --token_list "${token_list}" --g2p "${g2p}" --cleaner "${cleaner}" --resume "${resume}" \
    --threads "${train_threads}" --train_args "${train_args}" \
    --use_sid "${use_sid}" --init_model "${init_model}" \
    "${dumpdir}/raw/${train_set}" "${dumpdir}/raw/${valid_set}" "${stats_dir}" "${tts_exp}"
fi

if [ "${stage}" -le 7 ] && [ "${stop_stage}" -ge 7 ]; then
  log "Stage 7: synthesis + packing: ${tts_exp}/${inference_model} -> ${tts_exp}/${inference_tag}/<set>, ${packed_zip}"
  if "${gpu_inference}"; then _cmd=${cuda_cmd}; _ngpu=1; else _cmd=${decode_cmd}; _ngpu=0; fi
  for dset in ${test_sets}; do
    local/synthesize.sh --nj "${inference_nj}" --cmd "${_cmd}" --ngpu "${_ngpu}" \
      --inference_config "${inference_config}" --inference_args "${inference_args}" --use_sid "${use_sid}" \
      "${tts_exp}" "${tts_exp}/${inference_model}" "${dumpdir}/raw/${dset}" "${tts_exp}/${inference_tag}/${dset}"
  done
  pack_opts=()
  # The speaker table goes in the zip, as ESPnet's tts.sh packs it: sids mean something to its user.
  "${use_sid}" && pack_opts+=(--spk2sid "${dumpdir}/raw/${train_set}/spk2sid")
  local/pack_model.sh "${pack_opts[@]}" "${tts_exp}" "${tts_exp}/${inference_model}" "${stats_dir}" "${packed_zip}"
  log "Use it: Text2Speech.from_pretrained(model_tag=\"${packed_zip}\")"
  if "${export_piper}"; then
    local/export_piper_voice.sh "${packed_zip}" "$(dirname "${packed_zip}")"
  fi
fi

if [ "${stage}" -le 8 ] && [ "${stop_stage}" -ge 8 ]; then
  for dset in ${test_sets}; do
    log "Stage 8: evaluation: ${tts_exp}/${inference_tag}/${dset} vs ${dumpdir}/raw/${dset} -> ${tts_exp}/eval_${dset}"
    # shellcheck disable=SC2086  # evaluation_args are options: split them into words
    local/evaluate.sh --nj "${nj}" --cmd "${train_cmd}" --train_log_dir "${tts_exp}" ${evaluation_args} \
      "${dumpdir}/raw/${dset}" "${tts_exp}/${inference_tag}/${dset}" "${tts_exp}/eval_${dset}"
  done
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
