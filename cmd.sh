# Sourced by run.sh: how parallel jobs run. Each *_cmd takes Kaldi's run.pl arguments:
#   ${train_cmd} [--gpu N] [--mem 8G] [--num_threads N] JOB=1:N exp/.../log/name.JOB.log COMMAND ...
# (utils/job_runner.py documents every option). Pick a backend with cmd_backend, here or in the
# environment (cmd_backend=slurm ./run.sh ...).
#
#   local: every job on this machine, all at once (--max_jobs_run N limits that)
#   slurm: one sbatch job array per call, waiting for it to finish (run.sh on a login node);
#          training is one job, over N nodes with run.sh --num_nodes N (--mem, --num_threads
#          and --ngpu GPUs per node); edit the partitions, memory and time limits below.
cmd_backend=${cmd_backend:-local}

case "${cmd_backend}" in
  local)
    train_cmd="utils/run_local.py"   # data preparation, collect stats
    decode_cmd="utils/run_local.py"  # synthesis of the test set
    cuda_cmd="utils/run_local.py"    # training (--gpu N comes from run.sh --ngpu)
    ;;
  slurm)
    train_cmd="utils/run_slurm.py --partition cpu --mem 4G --time 4:00:00"
    decode_cmd="utils/run_slurm.py --partition cpu --mem 4G --time 4:00:00"
    cuda_cmd="utils/run_slurm.py --partition gpu --mem 32G --num_threads 8 --time 14-00:00:00"
    ;;
  *)
    echo "cmd.sh: cmd_backend must be local or slurm, not '${cmd_backend}'" >&2
    return 2 2>/dev/null || exit 2
    ;;
esac
# shellcheck disable=SC2034  # read by run.sh
export train_cmd decode_cmd cuda_cmd
