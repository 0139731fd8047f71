"""The job runners behind cmd.sh: utils/run_local.py and utils/run_slurm.py (with a fake sbatch),
and multi-node training through the Slurm runner (local/train.sh --num_nodes, with a fake srun)."""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUN_LOCAL = ROOT / "utils" / "run_local.py"
RUN_SLURM = ROOT / "utils" / "run_slurm.py"


def run(args, cwd, env=None):
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


def test_local_runs_each_job_with_its_own_log(tmp_path):
    result = run([RUN_LOCAL, "JOB=1:3", "log/x.JOB.log", "bash", "-c", "echo job JOB of JOBS"], tmp_path)
    assert result.returncode == 0, result.stderr
    for job in (1, 2, 3):
        lines = (tmp_path / "log" / f"x.{job}.log").read_text().splitlines()
        assert lines[0] == f"# bash -c 'echo job {job} of JOBS'"  # whole words only: JOBS stays
        assert f"job {job} of JOBS" in lines
        assert lines[-1].startswith("# Ended (code 0) at ")


def test_local_jobs_run_in_parallel(tmp_path):
    # Each job announces itself, then waits until all three have: this finishes only if they run together.
    wait_all = "touch here.JOB; for i in $(seq 200); do [ $(ls here.* | wc -l) -eq 3 ] && exit 0; sleep 0.1; done; exit 1"
    result = run([RUN_LOCAL, "JOB=1:3", "log/p.JOB.log", "bash", "-c", wait_all], tmp_path)
    assert result.returncode == 0, result.stderr


def test_local_max_jobs_run_limits_concurrency(tmp_path):
    # mkdir is atomic: a second job running at the same time would find the directory there.
    exclusive = "mkdir running || exit 3; sleep 0.2; rmdir running"
    result = run([RUN_LOCAL, "--max_jobs_run", "1", "JOB=1:3", "log/s.JOB.log", "bash", "-c", exclusive], tmp_path)
    assert result.returncode == 0, result.stderr


def test_local_failure_names_the_job_and_prints_its_log(tmp_path):
    script = "echo output of JOB; [ JOB -ne 2 ] || { echo broken input >&2; exit 7; }"
    result = run([RUN_LOCAL, "JOB=1:3", "log/f.JOB.log", "bash", "-c", script], tmp_path)
    assert result.returncode == 1
    assert "1 of 3 job(s) failed: job 2 (code 7)" in result.stderr
    assert "broken input" in result.stderr and "log/f.2.log" in result.stderr
    assert "# Ended (code 0)" in (tmp_path / "log" / "f.3.log").read_text()  # the others still ran


def test_local_missing_program_is_a_failed_job(tmp_path):
    result = run([RUN_LOCAL, "log/m.log", "no-such-program-xyz"], tmp_path)
    assert result.returncode == 1
    assert "# Ended (code 127)" in (tmp_path / "log" / "m.log").read_text()


def test_launcher_style_call_without_job_range(tmp_path):
    # espnet2.bin.launch calls "${cuda_cmd} --name NAME --gpu N LOG COMMAND...".
    result = run([RUN_LOCAL, "--name", "train", "--gpu", "0", "exp/train.log", "echo", "trained"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "trained" in (tmp_path / "exp" / "train.log").read_text()


def test_usage_errors(tmp_path):
    assert "unknown option --bogus" in run([RUN_LOCAL, "--bogus", "1", "l.log", "true"], tmp_path).stderr
    assert "bad job range" in run([RUN_LOCAL, "JOB=3:1", "l.log", "true"], tmp_path).stderr
    assert run([RUN_LOCAL, "l.log"], tmp_path).returncode == 2


FAKE_SBATCH = """#!/usr/bin/env bash
# A stand-in for Slurm's sbatch --wait: runs each array task of the script, in order, in an
# "allocation" of the script's #SBATCH --nodes (what srun reads).
echo "$@" >> "${FAKE_SBATCH_CALLS}"
script=${@: -1}
nodes=$(sed -n 's/^#SBATCH --nodes=\\([0-9]*\\)$/\\1/p' "${script}")
export SLURM_JOB_NUM_NODES=${nodes:-1}
array=$(sed -n 's/^#SBATCH --array=\\([0-9]*-[0-9]*\\).*/\\1/p' "${script}")
status=0
if [ -n "${array}" ]; then
  for task in $(seq "${array%-*}" "${array#*-}"); do
    SLURM_ARRAY_TASK_ID=${task} bash "${script}" || status=$?
  done
else
  bash "${script}" || status=$?
fi
exit ${status}
"""


FAKE_SRUN = """#!/usr/bin/env bash
# A stand-in for srun inside a job: one task per node of the allocation, all at once, with the
# variables real srun sets (ESPnet's --dist_launcher slurm reads them).
echo "$@" >> "${FAKE_SRUN_CALLS}"
[ -n "${SLURM_JOB_NUM_NODES:-}" ] || { echo "srun: not inside a job allocation" >&2; exit 1; }
while [[ "$1" == --* ]]; do shift; done
nodes=${SLURM_JOB_NUM_NODES}
pids=()
for ((node = 0; node < nodes; node++)); do
  SLURM_PROCID=${node} SLURM_NTASKS=${nodes} SLURM_NODEID=${node} SLURM_LOCALID=0 \\
    SLURM_STEP_NUM_NODES=${nodes} SLURM_STEP_NODELIST="node[1-${nodes}]" "$@" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "${pid}" || status=$?; done
exit ${status}
"""


def fake_slurm_env(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IXUSR)
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "FAKE_SBATCH_CALLS": str(tmp_path / "calls"),
        "FAKE_SRUN_CALLS": str(tmp_path / "srun_calls"),
    }


def test_slurm_writes_an_array_script_and_collects_logs(tmp_path):
    env = fake_slurm_env(tmp_path)
    args = [RUN_SLURM, "--gpu", "2", "--mem", "8G", "--time", "1:00:00", "--partition", "gpu", "--num_threads", "4",
            "--max_jobs_run", "2", "--sbatch_opts", "--account=speech", "JOB=1:3", "exp/log/t.JOB.log",
            "bash", "-c", "echo task JOB"]  # fmt: skip
    result = run(args, tmp_path, env)
    assert result.returncode == 0, result.stderr
    script = (tmp_path / "exp" / "log" / "q" / "t_JOB.sh").read_text()
    for line in ("#SBATCH --array=1-3%2", "#SBATCH --gres=gpu:2", "#SBATCH --mem=8G", "#SBATCH --time=1:00:00",
                 "#SBATCH --partition=gpu", "#SBATCH --cpus-per-task=4", "#SBATCH --job-name=t_JOB"):  # fmt: skip
        assert line in script.splitlines()
    assert "run-one" in script and "SLURM_ARRAY_TASK_ID" in script
    calls = (tmp_path / "calls").read_text()
    assert calls.startswith("--wait --account=speech ")
    for job in (1, 2, 3):
        log = (tmp_path / "exp" / "log" / f"t.{job}.log").read_text()
        assert f"task {job}" in log and "# Ended (code 0)" in log


def test_slurm_failure_is_reported_with_its_log(tmp_path):
    env = fake_slurm_env(tmp_path)
    script = "echo slurm task JOB; [ JOB -ne 3 ] || exit 4"
    result = run([RUN_SLURM, "JOB=1:3", "log/x.JOB.log", "bash", "-c", script], tmp_path, env)
    assert result.returncode == 1
    assert "job 3 (code 4)" in result.stderr and "slurm task 3" in result.stderr


def test_slurm_task_that_never_ran_is_a_failure(tmp_path):
    env = fake_slurm_env(tmp_path)
    # A stale log from an earlier run must not count: the runner removes it before submitting.
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "y.1.log").write_text("# Ended (code 0) at earlier\n")
    (tmp_path / "bin" / "sbatch").write_text("#!/usr/bin/env bash\nexit 1\n")  # the scheduler rejects the job
    result = run([RUN_SLURM, "JOB=1:2", "log/y.JOB.log", "true"], tmp_path, env)
    assert result.returncode == 1
    assert "2 of 2 job(s) failed" in result.stderr and "the job wrote no log" in result.stderr


def test_cmd_sh_backends(tmp_path):
    for backend, runner in (("local", "utils/run_local.py"), ("slurm", "utils/run_slurm.py")):
        result = subprocess.run(
            ["bash", "-c", '. ./cmd.sh && echo "${train_cmd}|${decode_cmd}|${cuda_cmd}"'],
            cwd=ROOT, capture_output=True, text=True, env={**os.environ, "cmd_backend": backend},
        )  # fmt: skip
        assert result.returncode == 0
        assert all(part.startswith(runner) for part in result.stdout.strip().split("|"))
    bad = subprocess.run(["bash", "-c", ". ./cmd.sh"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "cmd_backend": "sge"})  # fmt: skip
    assert bad.returncode == 2 and "local or slurm" in bad.stderr


# Stands in for the trainer on every "node": parses the command line with ESPnet's GAN-TTS parser
# and decides the distributed set-up with ESPnet's own functions, as GANTTSTask.main does before
# it spawns one process per GPU (rank = ngpu * node_rank + local_rank).
FAKE_TRAINER = """
import json, os, sys
from pathlib import Path
from espnet2.tasks.gan_tts import GANTTSTask
from espnet2.train.distributed_utils import get_node_rank, get_num_nodes, resolve_distributed_mode

args = GANTTSTask.get_parser().parse_args()
resolve_distributed_mode(args)
node_rank = get_node_rank(args.dist_rank, args.dist_launcher)
Path(args.output_dir, f"node{node_rank}.json").write_text(json.dumps(dict(
    distributed=args.distributed, multiprocessing_distributed=args.multiprocessing_distributed,
    num_nodes=get_num_nodes(args.dist_world_size, args.dist_launcher), ngpu=args.ngpu,
    init_method=args.dist_init_method, backend=args.dist_backend,
    threads=os.environ["OMP_NUM_THREADS"], argv=sys.argv[1:],
)))
"""

# A lighter stand-in (no ESPnet import): records its command line on each node.
ARGV_TRAINER = """
import json, os, sys
from pathlib import Path
output_dir = sys.argv[sys.argv.index("--output_dir") + 1]
Path(output_dir, f"node{os.environ['SLURM_NODEID']}.json").write_text(json.dumps(sys.argv[1:]))
"""


def fake_training_inputs(tmp_path: Path) -> list[str]:
    """Stats, token list and dump dirs as local/train.sh checks them, and its positional args."""
    (tmp_path / "stats").mkdir()
    (tmp_path / "stats" / ".done").write_text("stats\n")
    (tmp_path / "tokens.txt").write_text("<blank>\na\n<sos/eos>\n")
    (tmp_path / "fake_trainer.py").write_text(FAKE_TRAINER)
    (tmp_path / "argv_trainer.py").write_text(ARGV_TRAINER)
    return ["dump/train", "dump/val", "stats", "exp/tts_multi"]


def test_multi_node_training_is_one_slurm_job_over_the_nodes(tmp_path):
    env = {**fake_slurm_env(tmp_path), "PYTHONPATH": str(tmp_path)}
    positional = fake_training_inputs(tmp_path)
    exp = tmp_path / "exp" / "tts_multi"
    exp.mkdir(parents=True)
    (exp / "train.log").write_text("log of the interrupted run\n")
    cmd = f"{RUN_SLURM} --partition gpu --mem 32G --num_threads 8"
    result = subprocess.run(
        ["bash", str(ROOT / "local" / "train.sh"), "--ngpu", "3", "--num_nodes", "2", "--cmd", cmd,
         "--train_config", str(ROOT / "conf" / "train_mini.yaml"), "--token_list", "tokens.txt",
         "--train_module", "fake_trainer", "--threads", "2", *positional],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # One sbatch job (not an array) spanning 2 nodes, one task per node, 3 GPUs on each.
    assert len((tmp_path / "calls").read_text().splitlines()) == 1
    script = (exp / "q" / "tts_multi.sh").read_text().splitlines()
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --gres=gpu:3",
                 "#SBATCH --job-name=tts_multi", "#SBATCH --partition=gpu", "#SBATCH --cpus-per-task=8"):  # fmt: skip
        assert line in script
    assert not any(line.startswith("#SBATCH --array") for line in script)
    # srun started the trainer once per node; ESPnet's functions see 2 nodes of 3 GPUs.
    assert (tmp_path / "srun_calls").read_text().startswith("--export=ALL python3 -m fake_trainer ")
    nodes = [json.loads((exp / f"node{rank}.json").read_text()) for rank in range(2)]
    for node in nodes:
        assert node["distributed"] and node["multiprocessing_distributed"]
        assert node["num_nodes"] == 2 and node["ngpu"] == 3 and node["backend"] == "nccl"
        assert node["threads"] == "2"
        assert node["init_method"].startswith(f"file://{exp}/.dist_init_")
        assert "--dist_launcher" in node["argv"] and node["argv"][node["argv"].index("--dist_launcher") + 1] == "slurm"
    assert len({node["init_method"] for node in nodes}) == 1  # one rendezvous for all nodes
    # The job's log is the training log; the previous one is kept, as ESPnet's launcher keeps it.
    assert "# Ended (code 0)" in (exp / "train.log").read_text()
    assert (exp / "train.1.log").read_text() == "log of the interrupted run\n"
    assert (exp / ".done").is_file()
    assert "srun --export=ALL python3 -m fake_trainer" in (exp / "command.sh").read_text()


def test_multi_node_training_on_cpu_uses_gloo_and_the_local_runner_refuses(tmp_path):
    env = {**fake_slurm_env(tmp_path), "PYTHONPATH": str(tmp_path)}
    positional = fake_training_inputs(tmp_path)
    common = ["--num_nodes", "2", "--train_config", str(ROOT / "conf" / "train_mini.yaml"),
              "--token_list", "tokens.txt", "--train_module", "argv_trainer"]  # fmt: skip
    train = ["bash", str(ROOT / "local" / "train.sh")]
    local = subprocess.run([*train, "--cmd", str(RUN_LOCAL), *common, *positional],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert local.returncode == 1
    assert "the local backend runs on one node: --num_nodes must be 1" in local.stderr
    cpu = subprocess.run([*train, "--cmd", str(RUN_SLURM), *common, *positional],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert cpu.returncode == 0, cpu.stdout + cpu.stderr
    script = (tmp_path / "exp" / "tts_multi" / "q" / "tts_multi.sh").read_text().splitlines()
    assert "#SBATCH --nodes=2" in script and not any("--gres" in line for line in script)
    for rank in range(2):
        argv = json.loads((tmp_path / "exp" / "tts_multi" / f"node{rank}.json").read_text())
        # ESPnet's launcher does the same on CPU: NCCL, the default backend, needs GPUs.
        options = dict(zip(argv, argv[1:]))
        assert options["--ngpu"] == "0" and options["--dist_backend"] == "gloo"
        assert options["--dist_launcher"] == "slurm"
