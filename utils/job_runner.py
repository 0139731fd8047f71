#!/usr/bin/env python3
"""Job runners with Kaldi's ``run.pl``/``slurm.pl`` interface: the ``local`` and ``slurm`` backends.

``cmd.sh`` points ``${train_cmd}``, ``${decode_cmd}`` and ``${cuda_cmd}`` at ``utils/run_local.py``
or ``utils/run_slurm.py``; both take the same arguments::

    run_local.py [options] [JOB=1:N] LOG COMMAND [ARG ...]

With ``JOB=1:N`` the command runs N times; in LOG and in every ARG the word ``JOB`` (any name
given before ``=``) is replaced by the job number (``exp/x/log/stats.JOB.log`` ->
``exp/x/log/stats.3.log``; only whole words, so ``JOBS`` stays). Each job writes one log: a
first line with the command, its output, and a last line ``# Ended (code C) at ...``. The
command is run as given, without a shell: write ``bash -c "a | b"`` for a pipeline.
The runner exits 0 when every job exited 0; otherwise it names the failed jobs and prints the
end of the first failed job's log, and exits 1.

Options (``--name value`` or ``--name=value``; the local backend ignores the resource ones)::

    --gpu N           GPUs per job (slurm: --gres=gpu:N)
    --num_threads N   CPU cores per job (slurm: --cpus-per-task)
    --mem SIZE        memory per job, e.g. 8G (slurm: --mem)
    --time LIMIT      wall-clock limit, e.g. 2-00:00:00 (slurm: --time)
    --partition NAME  slurm partition
    --num_nodes N     nodes per job (slurm only; ESPnet's launcher asks for it)
    --name NAME       job name (slurm: --job-name; default: the log file's stem)
    --max_jobs_run N  at most N jobs at the same time (slurm: --array=1-N%M)
    --sbatch_opts STR extra sbatch options, split like a shell would

Slurm: the runner writes ``<log dir>/q/<name>.sh`` (an sbatch array script that calls this
file's ``run-one`` for task ``$SLURM_ARRAY_TASK_ID``) and ``<name>.json`` (the job template),
then runs ``sbatch --wait`` and reads the jobs' logs.

Usage: utils/run_local.py [options] [JOB=1:N] LOG COMMAND [ARG ...]
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import datetime
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

JOB_RANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+):(\d+)$")
LOG_TAIL_LINES = 200
ENDED_LINE = re.compile(r"^# Ended \(code (-?\d+)\)")

OPTIONS = {
    "gpu": int,
    "num_threads": int,
    "mem": str,
    "time": str,
    "partition": str,
    "num_nodes": int,
    "name": str,
    "max_jobs_run": int,
    "sbatch_opts": str,
}


class UsageError(Exception):
    """A malformed command line of the runner itself."""


@dataclasses.dataclass
class JobSpec:
    """What to run: the command and log templates and the job range."""

    command: list[str]
    log: str
    job_var: str | None = None
    first: int = 1
    last: int = 1
    options: dict = dataclasses.field(default_factory=dict)

    def job_ids(self) -> list[int | None]:
        if self.job_var is None:
            return [None]
        return list(range(self.first, self.last + 1))

    def substitute(self, text: str, job_id: int | None) -> str:
        """``text`` with the job variable (a whole word) replaced by ``job_id``."""
        if self.job_var is None or job_id is None:
            return text
        return re.sub(rf"(?<![A-Za-z0-9_]){re.escape(self.job_var)}(?![A-Za-z0-9_])", str(job_id), text)

    def log_of(self, job_id: int | None) -> Path:
        return Path(self.substitute(self.log, job_id))

    def command_of(self, job_id: int | None) -> list[str]:
        return [self.substitute(arg, job_id) for arg in self.command]


def parse_args(argv: list[str], program: str) -> JobSpec:
    """Parse ``[options] [JOB=a:b] LOG COMMAND...`` into a :class:`JobSpec`."""
    options: dict = {}
    i = 0
    while i < len(argv) and argv[i].startswith("--"):
        name, has_value, value = argv[i][2:].partition("=")
        name = name.replace("-", "_")
        if name not in OPTIONS:
            raise UsageError(f"unknown option --{name}; known: {', '.join('--' + o for o in OPTIONS)}")
        if not has_value:
            if i + 1 >= len(argv):
                raise UsageError(f"option --{name} needs a value")
            value = argv[i + 1]
            i += 1
        try:
            options[name] = OPTIONS[name](value)
        except ValueError:
            raise UsageError(f"option --{name} takes an integer, not {value!r}") from None
        i += 1
    spec_args = argv[i:]
    job_var, first, last = None, 1, 1
    if spec_args and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", spec_args[0]):
        match = JOB_RANGE.match(spec_args[0])
        if match is None:
            raise UsageError(f"bad job range {spec_args[0]!r}: expected NAME=FIRST:LAST, e.g. JOB=1:4")
        job_var, first, last = match.group(1), int(match.group(2)), int(match.group(3))
        if first < 1 or last < first:
            raise UsageError(f"bad job range {spec_args[0]!r}: need 1 <= FIRST <= LAST")
        spec_args = spec_args[1:]
    if len(spec_args) < 2:
        raise UsageError(f"usage: {program} [options] [JOB=1:N] LOG COMMAND [ARG ...]")
    if options.get("max_jobs_run", 1) < 1:
        raise UsageError("--max_jobs_run must be at least 1")
    return JobSpec(command=spec_args[1:], log=spec_args[0], job_var=job_var, first=first, last=last, options=options)


def _now() -> str:
    return datetime.datetime.now().strftime("%a %b %d %H:%M:%S %Z %Y").replace("  ", " ")


class _Children:
    """Running child processes, so that a signal to the runner stops them too."""

    def __init__(self):
        self._lock = threading.Lock()
        self._processes: set[subprocess.Popen] = set()
        self.stopping = False

    def add(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._processes.add(process)

    def discard(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._processes.discard(process)

    def terminate_all(self) -> None:
        with self._lock:
            self.stopping = True
            for process in self._processes:
                if process.poll() is None:
                    process.terminate()


_CHILDREN = _Children()


def run_one(spec: JobSpec, job_id: int | None) -> int:
    """Run one job with its output in its log; return its exit code (127: not found)."""
    log = spec.log_of(job_id)
    log.parent.mkdir(parents=True, exist_ok=True)
    command = spec.command_of(job_id)
    start = time.monotonic()
    with log.open("w", encoding="utf-8") as stream:
        stream.write(f"# {shlex.join(command)}\n# Started at {_now()}\n#\n")
        stream.flush()
        if _CHILDREN.stopping:
            code = -int(signal.SIGTERM)
        else:
            try:
                process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=stream, stderr=subprocess.STDOUT)
            except OSError as error:
                stream.write(f"cannot run {command[0]!r}: {error}\n")
                code = 127
            else:
                _CHILDREN.add(process)
                try:
                    code = process.wait()
                finally:
                    _CHILDREN.discard(process)
        elapsed = int(round(time.monotonic() - start))
        stream.write(
            f"# Accounting: time={elapsed} threads={spec.options.get('num_threads', 1)}\n"
            f"# Ended (code {code}) at {_now()}, elapsed time {elapsed} seconds\n"
        )
    return code


def exit_code_in_log(log: Path) -> int | None:
    """The exit code recorded on a job log's ``# Ended`` line, or None without one."""
    if not log.is_file():
        return None
    with log.open(encoding="utf-8", errors="replace") as stream:
        lines = stream.read().splitlines()
    for line in reversed(lines[-5:]):
        match = ENDED_LINE.match(line)
        if match:
            return int(match.group(1))
    return None


def report_failures(spec: JobSpec, codes: dict, program: str) -> int:
    """Print which jobs failed and the end of the first failed log; return the runner's exit code."""
    failed = [job for job, code in codes.items() if code != 0]
    if not failed:
        return 0
    total = len(codes)
    described = ", ".join(
        f"{'job ' + str(job) if job is not None else 'the job'} "
        f"({'no exit status in log' if codes[job] is None else 'code ' + str(codes[job])})"
        for job in failed[:10]
    )
    first_log = spec.log_of(failed[0])
    sys.stderr.write(f"{program}: {len(failed)} of {total} job(s) failed: {described}\n")
    sys.stderr.write(f"{program}: failed command: {shlex.join(spec.command_of(failed[0]))}\n")
    if first_log.is_file():
        lines = first_log.read_text(encoding="utf-8", errors="replace").splitlines()
        shown = lines[-LOG_TAIL_LINES:]
        sys.stderr.write(
            f"{program}: ----- {first_log} (last {len(shown)} of {len(lines)} lines) -----\n" + "\n".join(shown) + "\n"
        )
        sys.stderr.write(f"{program}: ----- end of {first_log} -----\n")
    else:
        sys.stderr.write(f"{program}: the job wrote no log ({first_log}); see the scheduler's output\n")
    return 1


def run_local(spec: JobSpec, program: str) -> int:
    """Run the jobs on this machine, ``--max_jobs_run`` at a time (default: all at once)."""
    if spec.options.get("num_nodes", 1) > 1:
        raise UsageError("the local backend runs on one node: --num_nodes must be 1 (use the slurm backend)")
    job_ids = spec.job_ids()
    workers = min(spec.options.get("max_jobs_run", len(job_ids)), len(job_ids))

    def stop(signum, _frame):
        _CHILDREN.terminate_all()
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {job: pool.submit(run_one, spec, job) for job in job_ids}
            codes = {job: future.result() for job, future in futures.items()}
    except KeyboardInterrupt:
        _CHILDREN.terminate_all()
        raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return report_failures(spec, codes, program)


def sbatch_script(spec: JobSpec, spec_file: Path, queue_dir: Path, name: str) -> str:
    """The sbatch script that runs each job of ``spec`` as one task of a job array."""
    options = spec.options
    lines = ["#!/usr/bin/env bash", f"#SBATCH --job-name={name}"]
    if spec.job_var is not None:
        array = f"{spec.first}-{spec.last}"
        if "max_jobs_run" in options:
            array += f"%{options['max_jobs_run']}"
        lines += [f"#SBATCH --array={array}", f"#SBATCH --output={queue_dir / name}.%a.out"]
    else:
        lines.append(f"#SBATCH --output={queue_dir / name}.out")
    lines.append(f"#SBATCH --cpus-per-task={options.get('num_threads', 1)}")
    if options.get("gpu", 0) > 0:
        lines.append(f"#SBATCH --gres=gpu:{options['gpu']}")
    if options.get("num_nodes", 1) > 1:
        lines += [f"#SBATCH --nodes={options['num_nodes']}", "#SBATCH --ntasks-per-node=1"]
    for key, flag in (("mem", "--mem"), ("time", "--time"), ("partition", "--partition")):
        if key in options:
            lines.append(f"#SBATCH {flag}={options[key]}")
    lines += [
        "set -euo pipefail",
        f"cd {shlex.quote(os.getcwd())}",
        # The task runs with the submitting shell's environment (sbatch exports it by default).
        f"exec {shlex.quote(sys.executable)} {shlex.quote(str(Path(__file__).resolve()))} "
        f"run-one {shlex.quote(str(spec_file))} \"${{SLURM_ARRAY_TASK_ID:-}}\"",
    ]
    return "\n".join(lines) + "\n"


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def run_slurm(spec: JobSpec, program: str) -> int:
    """Submit the jobs as one Slurm job array, wait for it, and check every job's log."""
    first_log = spec.log_of(spec.job_ids()[0])
    queue_dir = first_log.parent.absolute() / "q"
    queue_dir.mkdir(parents=True, exist_ok=True)
    name = spec.options.get("name") or re.sub(r"\W", "_", Path(spec.substitute(spec.log, None)).stem)
    spec_file = queue_dir / f"{name}.json"
    script_file = queue_dir / f"{name}.sh"
    _write_atomically(spec_file, json.dumps(dataclasses.asdict(spec), indent=1))
    _write_atomically(script_file, sbatch_script(spec, spec_file, queue_dir, name))
    for job in spec.job_ids():
        spec.log_of(job).unlink(missing_ok=True)  # a stale log must not pass for this run's
    submit = ["sbatch", "--wait", *shlex.split(spec.options.get("sbatch_opts", "")), str(script_file)]
    try:
        subprocess.run(submit, check=False, stdout=subprocess.DEVNULL)
    except FileNotFoundError:
        sys.stderr.write(f"{program}: sbatch not found: is this a Slurm login node? (script: {script_file})\n")
        return 1
    codes = {job: exit_code_in_log(spec.log_of(job)) for job in spec.job_ids()}
    return report_failures(spec, codes, program)


def main(backend: str, argv: list[str] | None = None) -> int:
    """Entry point of ``run_local.py`` (backend ``local``) and ``run_slurm.py`` (``slurm``)."""
    argv = sys.argv[1:] if argv is None else argv
    program = f"run_{backend}.py"
    try:
        spec = parse_args(argv, program)
        return run_local(spec, program) if backend == "local" else run_slurm(spec, program)
    except UsageError as error:
        sys.stderr.write(f"{program}: {error}\n")
        return 2


def run_one_main(argv: list[str]) -> int:
    """``job_runner.py run-one SPEC.json [JOB_ID]``: one task of a Slurm array."""
    spec = JobSpec(**json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    job_id = int(argv[1]) if len(argv) > 1 and argv[1] else None
    if spec.job_var is not None and job_id is None:
        sys.stderr.write("job_runner.py run-one: this job template needs a job number\n")
        return 2
    return run_one(spec, job_id)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "run-one":
        sys.exit(run_one_main(sys.argv[2:]))
    sys.stderr.write(__doc__.rsplit("Usage: ", 1)[1])
    sys.exit(2)
