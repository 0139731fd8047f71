"""The job runners behind cmd.sh: utils/run_local.py and utils/run_slurm.py (with a fake sbatch)."""

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
# A stand-in for Slurm's sbatch --wait: runs each array task of the script, in order.
echo "$@" >> "${FAKE_SBATCH_CALLS}"
script=${@: -1}
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


def fake_slurm_env(tmp_path: Path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(FAKE_SBATCH)
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SBATCH_CALLS": str(tmp_path / "calls")}


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
