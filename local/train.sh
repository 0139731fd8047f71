#!/usr/bin/env bash
# Stage 6: train VITS with ESPnet2's GAN-TTS trainer through ESPnet's launcher.
#
# Runs `python -m espnet2.bin.launch --cmd "${cmd}" --ngpu N -- python -m <train_module> ...` as
# ESPnet's egs2/TEMPLATE/tts1/tts.sh does: one process on CPU or one GPU, ESPnet's distributed
# mode (one process per GPU) for --ngpu above 1. With --num_nodes N above 1 (Slurm runner only)
# it runs what the launcher's Slurm mode runs, one Slurm job over N nodes:
#   ${cmd} --num_nodes N --gpu NGPU LOG srun --export=ALL python -m <train_module> ... --dist_launcher slurm
# (one srun task per node, each starting one process per GPU). The trainer is our fault-tolerant
# espnet2_vits_ext.bin.gan_tts_train (ESPnet's plus periodic atomic checkpoints and skipping of
# non-finite steps) when installed, else ESPnet's espnet2.bin.gan_tts_train; both take ESPnet's
# arguments. With --resume true an interrupted training continues from its last checkpoint.
# Writes <exp_dir>/: config.yaml, checkpoints, train.log, images/, command.sh (what ran),
# and .done (a signature of the inputs) when training finished; a rerun with the same inputs
# does nothing, with other inputs (a longer max_epoch, new data) it resumes.
# With --init_model PATH (a checkpoint or packed zip of a trained voice, docs/recipes.md
# "Fine-tuning") a fresh training starts from that voice's weights; a resumed one ignores it.
#
# Usage: local/train.sh [options] <train_dump_dir> <valid_dump_dir> <stats_dir> <exp_dir>
#   e.g. local/train.sh --ngpu 1 --train_config conf/train.yaml \
#          --token_list dump/token_list/espeak_ng_english_us_vits/tokens.txt \
#          dump/raw/train dump/raw/val exp/tts_stats_train exp/tts_train
set -euo pipefail

ngpu=0             # GPUs (0: CPU); per node with --num_nodes
num_nodes=1        # nodes; more than 1 needs a Slurm runner (--cmd utils/run_slurm.py ...)
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
init_model=        # start a fresh training from this model (.pth or packed .zip); empty: none
use_sid=false      # speaker ids: <dump_dir>/utt2sid as ESPnet's sids (multi-speaker config)

help_message="Usage: $0 [options] <train_dump_dir> <valid_dump_dir> <stats_dir> <exp_dir>
Train with ESPnet2's GAN-TTS trainer (ESPnet's launcher; distributed for --ngpu > 1).
Options (default in brackets):
  --ngpu N           GPUs, 0 for CPU; per node with --num_nodes [${ngpu}]
  --num_nodes N      nodes: more than 1 is one Slurm job over N nodes (srun, ESPnet's
                     --dist_launcher slurm; needs --cmd utils/run_slurm.py ...) [${num_nodes}]
  --cmd RUNNER       job runner [${cmd}]
  --train_config F   ESPnet training config (required)
  --token_list F     token list of stage 4 (required)
  --token_type T     token type [${token_type}]
  --g2p NAME         g2p [from the config]
  --cleaner NAME     text cleaner [from the config]
  --resume BOOL      continue from the last checkpoint [${resume}]
  --threads N        threads per training process [${threads}]
  --train_module M   trainer module [espnet2_vits_ext.bin.gan_tts_train if present, else espnet2.bin.gan_tts_train]
  --train_args STR   extra trainer arguments, override the config [${train_args}]
  --init_model PATH  start from this trained model (.pth checkpoint or packed .zip): same-named
                     tensors loaded, tokens remapped by symbol, the rest listed in train.log [none]
  --use_sid BOOL     speaker ids from <dump_dir>/utt2sid [${use_sid}]"

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
for opt in ngpu num_nodes; do
  [[ "${!opt}" =~ ^[0-9]+$ ]] || die "--${opt} takes a non-negative integer, not '${!opt}'"
done
[ "${num_nodes}" -ge 1 ] || die "--num_nodes must be at least 1"
[ -f "${stats_dir}/.done" ] || die "${stats_dir} is not complete (no .done): run stage 5 first"
[ -z "${init_model}" ] || [ -f "${init_model}" ] || die "--init_model: no such file '${init_model}'"
[ "${use_sid}" = false ] || [ -s "${train_dir}/utt2sid" ] || die "${train_dir}/utt2sid is missing (stage 4 writes it for a multi-speaker config)"

if [ -z "${train_module}" ]; then
  if python3 -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('espnet2_vits_ext.bin.gan_tts_train') is None)" 2>/dev/null; then
    train_module=espnet2_vits_ext.bin.gan_tts_train
  else
    train_module=espnet2.bin.gan_tts_train
  fi
fi

[ -z "${init_model}" ] || [ "${train_module}" != espnet2.bin.gan_tts_train ] \
  || die "--init_model needs our trainer (espnet2_vits_ext.bin.gan_tts_train); ESPnet's has only --init_param"
key=$(signature "${train_config}" "${token_list}" "${stats_dir}/.done" "${train_dir}/text" "${valid_dir}/text" \
  "${token_type}" "${g2p}" "${cleaner}" "${train_module}" "${train_args}" "${init_model}")
[ "${use_sid}" = false ] || key=$(signature "${key}" "${train_dir}/utt2sid" "${valid_dir}/utt2sid")
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
[ -n "${init_model}" ] && opts+=(--init_model "${init_model}")
[ "${use_sid}" = false ] || opts+=(--train_data_path_and_name_and_type "${train_dir}/utt2sid,sids,text_int"
  --valid_data_path_and_name_and_type "${valid_dir}/utt2sid,sids,text_int")
# shellcheck disable=SC2206  # train_args is a list of words by design
extra=(${train_args})

trainer=(
  python3 -m "${train_module}"
    --use_preprocessor true
    --token_type "${token_type}"
    --token_list "${token_list}"
    --resume "${resume}"
    --output_dir "${exp_dir}"
    --train_data_path_and_name_and_type "${train_dir}/text,text,text"
    --train_data_path_and_name_and_type "${train_dir}/wav.scp,speech,sound"
    --train_shape_file "${stats_dir}/train/text_shape.${token_type}"
    --train_shape_file "${stats_dir}/train/speech_shape"
    --valid_data_path_and_name_and_type "${valid_dir}/text,text,text"
    --valid_data_path_and_name_and_type "${valid_dir}/wav.scp,speech,sound"
    --valid_shape_file "${stats_dir}/valid/text_shape.${token_type}"
    --valid_shape_file "${stats_dir}/valid/speech_shape"
    "${opts[@]}" "${extra[@]}"
)
train_log=${exp_dir}/train.log
export OMP_NUM_THREADS=${threads} MKL_NUM_THREADS=${threads}
if [ "${num_nodes}" -eq 1 ]; then
  log "training with ${train_module} on $([ "${ngpu}" -gt 0 ] && echo "${ngpu} GPU(s)" || echo CPU); log: ${train_log}"
  run_recorded "${record}" \
    python3 -m espnet2.bin.launch \
      --cmd "${cmd} --name $(basename "${exp_dir}")" \
      --log "${train_log}" \
      --ngpu "${ngpu}" \
      --num_nodes 1 \
      --init_file_prefix "${exp_dir}/.dist_init_" \
      --multiprocessing_distributed true -- \
      "${trainer[@]}" \
    || die "training failed: see ${train_log} (rerun the stage to resume from the last checkpoint)"
else
  # ESPnet's launcher takes its Slurm path only for a runner named slurm.pl; ours is
  # utils/run_slurm.py, so this is that path spelled out. The runner's --num_nodes makes the job
  # "#SBATCH --nodes=N --ntasks-per-node=1" (--gres=gpu:ngpu per node); srun inside it starts
  # one task per node, and ESPnet's trainer (--dist_launcher slurm) takes the node rank from
  # SLURM_NODEID and spawns one process per GPU. Rendezvous through a file in the experiment
  # directory, which every node sees (shared file system), as the launcher does.
  init_file=$(cd "${exp_dir}" && pwd)/.dist_init_$(python3 -c 'import uuid; print(uuid.uuid4())')
  dist_opts=(--ngpu "${ngpu}" --multiprocessing_distributed true --dist_launcher slurm
    --dist_init_method "file://${init_file}")
  # Gloo runs on CPU too (NCCL, the default, is GPU only).
  [ "${ngpu}" -gt 0 ] || dist_opts+=(--dist_backend gloo)
  # As the launcher does: the previous log becomes train.1.log (and train.1.log train.2.log ...).
  for ((i = $(find "${exp_dir}" -maxdepth 1 -name 'train.*.log' | wc -l); i >= 1; i--)); do
    [ ! -f "${exp_dir}/train.${i}.log" ] || mv "${exp_dir}/train.${i}.log" "${exp_dir}/train.$((i + 1)).log"
  done
  [ ! -f "${train_log}" ] || mv "${train_log}" "${exp_dir}/train.1.log"
  # shellcheck disable=SC2206  # cmd is a command line with options, split as the launcher splits it
  runner=(${cmd})
  log "training with ${train_module} on ${num_nodes} nodes x $([ "${ngpu}" -gt 0 ] && echo "${ngpu} GPU(s)" || echo CPU) (one Slurm job); log: ${train_log}"
  run_recorded "${record}" \
    "${runner[@]}" --name "$(basename "${exp_dir}")" --gpu "${ngpu}" --num_nodes "${num_nodes}" "${train_log}" \
      srun --export=ALL "${trainer[@]}" "${dist_opts[@]}" \
    || die "training failed: see ${train_log} (rerun the stage to resume from the last checkpoint)"
fi

mark_done "${exp_dir}" "${key}"
log "training finished: ${exp_dir}"
