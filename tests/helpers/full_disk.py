"""Running a stage under a file size limit, the test's stand-in for a full disk, and checking
that it failed cleanly: one line naming the file, no hidden leftovers."""

import resource
import signal
import subprocess
from pathlib import Path


def file_size_limit(limit: int):
    """A ``preexec_fn``: files cannot grow past ``limit`` bytes; the writer gets EFBIG.

    SIGXFSZ is ignored (Python ignores it, but shells and the tools they run would be killed by it),
    so every writer sees an error return, as with a full disk.
    """

    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def run(command, cwd: Path, limit: int = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run ``command`` in ``cwd``, with files limited to ``limit`` bytes if given."""
    return subprocess.run(
        [str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        preexec_fn=file_size_limit(limit) if limit is not None else None,
    )  # fmt: skip


def assert_clear_failure(result: subprocess.CompletedProcess, file_part: str, reason: str) -> None:
    """Non-zero exit and one line that names the file (``file_part`` of its path) and the OS error."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if "cannot write" in line and file_part in line]
    assert len(lines) == 1 and reason in lines[0], result.stderr


def hidden(directory: Path) -> list:
    """Names of the hidden entries (temporary directories, markers) of ``directory``."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))
