#!/usr/bin/env bash
# Stage 6: train VITS with ESPnet2's GAN-TTS trainer through ESPnet's launcher.
#
# Runs `python -m espnet2.bin.launch --cmd "${cmd}" --ngpu N -- python -m <train_module> ...` as
# ESPnet's egs2/TEMPLATE/tts1/tts.sh does: one process on CPU or one GPU, ESPnet's distributed
# mode (one process per GPU) for --ngpu above 1. The trainer is our fault-tolerant
# espnet2_vits_ext.bin.gan_tts_train (ESPnet's plus periodic atomic checkpoints and skipping of
# non-finite steps) when installed, else ESPnet's espnet2.bin.gan_tts_train; both take ESPnet's
# arguments. With --resume true an interrupted training continues from its last checkpoint.
# Writes <exp_dir>/: config.yaml, checkpoints, train.log, images/, command.sh (what ran),
# and .done (a signature of the inputs) when training finished; a rerun with the same inputs
# does nothing, with other inputs (a longer max_epoch, new data) it resumes.
#
# Usage: local/train.sh [options] <train_dump_dir> <valid_dump_dir> <stats_dir> <exp_dir>
#   e.g. local/train.sh --ngpu 1 --train_config conf/train.yaml \
#          --token_list dump/token_list/espeak_ng_english_us_vits/tokens.txt \
#          dump/raw/train dump/raw/val exp/tts_stats_train exp/tts_train
set -euo pipefail

ngpu=0             # GPUs (0: CPU)
cmd=utils/run_local.py  # job runner for the launcher (${cuda_cmd} of cmd.sh)
train_config=      # ESPnet training config (required)
token_list=        # token list of stage 4 (required)
token_type=phn     # ESPnet --token_type
g2p=               # ESPnet --g2p; empty: the config's
cleaner=           # ESPnet --cleaner; empty: the config's
resume=true        # continue from the last checkpoint in <exp_dir>
threads=1          # torch / OpenMP threads of each training process
train_module=      # python module of the trainer; empty: ours if installed, else ESPnet's
train_args=        # extra arguments for the trainer, e.g. "--max_epoch 1"

help_message="Usage: $0 [options] <train_dump_dir> <valid_dump_dir> <stats_dir> <exp_dir>
Train with ESPnet2's GAN-TTS trainer (ESPnet's launcher; distributed for --ngpu > 1).
Options (default in brackets):
  --ngpu N           GPUs, 0 for CPU [${ngpu}]
  --cmd RUNNER       job runner [${cmd}]
  --train_config F   ESPnet training config (required)
  --token_list F     token list of stage 4 (required)
  --token_type T     token type [${token_type}]
  --g2p NAME         g2p [from the config]
  --cleaner NAME     text cleaner [from the config]
  --resume BOOL      continue from the last checkpoint [${resume}]
  --threads N        threads per training process [${threads}]
  --train_module M   trainer module [espnet2_vits_ext.bin.gan_tts_train if present, else espnet2.bin.gan_tts_train]
  --train_args STR   extra trainer arguments, override the config [${train_args}]"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC1091
. "${root}/utils/parse_options.sh"
# shellcheck disable=SC1091
. "${root}/utils/recipe_lib.sh"
[ $# -eq 4 ] || { printf '%s\n' "${help_message}" >&2; exit 2; }
train_dir=${1%/}
valid_dir=${2%/}
stats_dir=${3%/}
exp_dir=${4%/}
[ -n "${train_config}" ] && [ -f "${train_config}" ] || die "--train_config: no such file '${train_config}'"
[ -n "${token_list}" ] && [ -f "${token_list}" ] || die "--token_list: no such file '${token_list}' (stage 4 writes it)"
[ -f "${stats_dir}/.done" ] || die "${stats_dir} is not complete (no .done): run stage 5 first"

if [ -z "${train_module}" ]; then
  if python3 -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('espnet2_vits_ext.bin.gan_tts_train') is None)" 2>/dev/null; then
    train_module=espnet2_vits_ext.bin.gan_tts_train
  else
    train_module=espnet2.bin.gan_tts_train
  fi
fi

key=$(signature "${train_config}" "${token_list}" "${stats_dir}/.done" "${train_dir}/text" "${valid_dir}/text" \
  "${token_type}" "${g2p}" "${cleaner}" "${train_module}" "${train_args}")
if is_done "${exp_dir}" "${key}"; then
  log "${exp_dir}: training finished with these inputs (${exp_dir}/.done): skipping"
  exit 0
fi
rm -f "${exp_dir}/.done"
mkdir -p "${exp_dir}"
record=${exp_dir}/command.sh
echo "# $(date '+%Y-%m-%dT%H:%M:%S') stage 6 (training) commands, from ${PWD}" >> "${record}"
record_command "${record}" "$0" "$@"

opts=(--config "${train_config}")
[ -n "${g2p}" ] && opts+=(--g2p "${g2p}")
[ -n "${cleaner}" ] && opts+=(--cleaner "${cleaner}")
# shellcheck disable=SC2206  # train_args is a list of words by design
extra=(${train_args})

log "training with ${train_module} on $([ "${ngpu}" -gt 0 ] && echo "${ngpu} GPU(s)" || echo CPU); log: ${exp_dir}/train.log"
OMP_NUM_THREADS=${threads} MKL_NUM_THREADS=${threads} run_recorded "${record}" \
  python3 -m espnet2.bin.launch \
    --cmd "${cmd} --name $(basename "${exp_dir}")" \
    --log "${exp_dir}/train.log" \
    --ngpu "${ngpu}" \
    --num_nodes 1 \
    --init_file_prefix "${exp_dir}/.dist_init_" \
    --multiprocessing_distributed true -- \
    python3 -m "${train_module}" \
      --use_preprocessor true \
      --token_type "${token_type}" \
      --token_list "${token_list}" \
      --resume "${resume}" \
      --output_dir "${exp_dir}" \
      --train_data_path_and_name_and_type "${train_dir}/text,text,text" \
      --train_data_path_and_name_and_type "${train_dir}/wav.scp,speech,sound" \
      --train_shape_file "${stats_dir}/train/text_shape.${token_type}" \
      --train_shape_file "${stats_dir}/train/speech_shape" \
      --valid_data_path_and_name_and_type "${valid_dir}/text,text,text" \
      --valid_data_path_and_name_and_type "${valid_dir}/wav.scp,speech,sound" \
      --valid_shape_file "${stats_dir}/valid/text_shape.${token_type}" \
      --valid_shape_file "${stats_dir}/valid/speech_shape" \
      "${opts[@]}" "${extra[@]}" \
  || die "training failed: see ${exp_dir}/train.log (rerun the stage to resume from the last checkpoint)"

mark_done "${exp_dir}" "${key}"
log "training finished: ${exp_dir}"
