"""Checkpoint files that survive kills, full disks and bit rot.

ESPnet writes ``checkpoint.pth`` once per epoch with a plain ``torch.save``: a job killed
during that write leaves a truncated file, and nothing records where inside an epoch
training was. Here a checkpoint is the same dict ESPnet writes (``model``, ``reporter``,
``optimizers``, ``schedulers``, ``scaler``) plus :data:`RESUME_KEY`, holding the
:class:`Position` inside the epoch, the random number generator states and the partial
statistics of the epoch. It is written by :func:`atomic_torch_save`:

1. ``torch.save`` into a temporary file in the same directory, hashing the bytes as they go;
2. ``fsync`` the file, ``rename`` it over the final name, ``fsync`` the directory;
3. write the SHA-256 *sidecar* ``<name>.sha256`` the same way (``sha256sum -c`` format).

A checkpoint counts as complete only when its sidecar exists and matches its bytes, so a
kill at any moment leaves either the new checkpoint complete or the previous ones as they
were. :class:`CheckpointStore` keeps the newest ``keep`` complete checkpoints under
``<output_dir>/checkpoints/`` and deletes older ones only after a new one is complete.
:func:`choose_resume_checkpoint` picks the most advanced loadable checkpoint, naming each
damaged one it passes over.
"""

import errno
import hashlib
import logging
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import torch

from espnet2_vits_ext.train.errors import CheckpointWriteError, NothingToResumeError

RESUME_KEY = "resume_state"  # our entry in the checkpoint dict, next to ESPnet's keys
SIDECAR_SUFFIX = ".sha256"
STORE_DIRNAME = "checkpoints"
ESPNET_CHECKPOINT = "checkpoint.pth"
_TEMP_MARK = ".tmp-"
_NAME_PATTERN = re.compile(r"^ep(\d+)\.it(\d+)\.pth$")
_CHUNK = 1 << 22


class Position(NamedTuple):
    """Where training stands: the next iteration is ``iteration + 1`` of ``epoch``.

    ``(e + 1, 0)`` is the end of epoch ``e``; ``(e, n)`` with ``n`` the epoch's length is
    its training part done and its validation not yet. Tuples order by progress.
    """

    epoch: int
    iteration: int

    def __str__(self) -> str:
        if self == (1, 0):
            return "start of training"
        if self.iteration == 0:
            return f"end of epoch {self.epoch - 1}"
        return f"epoch {self.epoch}, iteration {self.iteration}"


class _HashingWriter:
    """File object for ``torch.save``: hashes what it writes, keeps the ``OSError``.

    ``torch.save`` turns an ``OSError`` raised by ``write`` into an uninformative
    ``RuntimeError`` ("unexpected pos ..."); keeping the original lets us name its cause.
    """

    def __init__(self, raw):
        self._raw = raw
        self.digest = hashlib.sha256()
        self.error: Optional[OSError] = None

    def write(self, data) -> int:
        try:
            written = self._raw.write(data)
        except OSError as error:
            self.error = error
            raise
        self.digest.update(data)
        return written

    def flush(self) -> None:
        self._raw.flush()


def fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (a no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except (IsADirectoryError, PermissionError):
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_failure_message(path: Path, error: BaseException) -> str:
    directory = path.parent
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    try:
        free = shutil.disk_usage(directory).free / 2**30
        space = f" ({free:.2f} GiB free there)"
    except OSError:
        space = ""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        advice = "free disk space (or raise the quota)"
    elif isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        advice = "make the directory writable"
    else:
        advice = "fix the cause"
    return (
        f"Cannot write {path}: {reason}{space}. Nothing was left half-written and "
        f"the existing checkpoints in {directory} are intact. To continue: {advice}, "
        f"then rerun the same command with --resume true."
    )


def _remove_quietly(path: Path) -> None:
    """Remove ``path`` if it is there (its directory may be missing or not a directory)."""
    try:
        path.unlink()
    except (FileNotFoundError, NotADirectoryError):
        pass


def _atomic_write(path: Path, write) -> str:
    """Write ``path`` through ``write(file_object)`` atomically; return the SHA-256 hex."""
    path = Path(path)
    temp = path.with_name(f".{path.name}{_TEMP_MARK}{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temp, "wb") as raw:
            writer = _HashingWriter(raw)
            try:
                write(writer)
            except RuntimeError as error:
                if writer.error is not None:
                    raise writer.error from error
                raise
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp, path)
        fsync_directory(path.parent)
    except OSError as error:
        _remove_quietly(temp)
        raise CheckpointWriteError(_write_failure_message(path, error)) from error
    return writer.digest.hexdigest()


def atomic_torch_save(obj: Any, path: Path, sidecar: bool = True) -> Path:
    """``torch.save(obj, path)`` that never leaves a partial file under ``path``.

    With ``sidecar``, ``<path>.sha256`` is written afterwards: until it exists the
    checkpoint does not count as complete (see :func:`verify_checkpoint`).
    Raises :class:`CheckpointWriteError` (naming the path and the cause) on I/O errors.
    """
    path = Path(path)
    digest = _atomic_write(path, lambda f: torch.save(obj, f))
    if sidecar:
        line = f"{digest}  {path.name}\n".encode()
        _atomic_write(sidecar_path(path), lambda f: f.write(line))
    return path


def sidecar_path(path: Path) -> Path:
    return Path(str(path) + SIDECAR_SUFFIX)


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checkpoint(path: Path) -> Optional[str]:
    """``None`` if ``path`` matches its sidecar, else why not (for a log message)."""
    sidecar = sidecar_path(path)
    if not sidecar.exists():
        return f"its checksum file {sidecar.name} is missing (the write was interrupted)"
    try:
        expected = sidecar.read_text().split()[0]
        actual = sha256_of_file(path)
    except (OSError, IndexError) as error:
        return f"it cannot be read ({error})"
    if actual != expected:
        return (
            f"its SHA-256 {actual[:12]}... does not match {sidecar.name} "
            f"({expected[:12]}...): the file is truncated or corrupt"
        )
    return None


def capture_rng_state() -> Dict[str, Any]:
    """States of every generator training draws from: torch (CPU, CUDA), numpy, python."""
    state = dict(
        torch=torch.get_rng_state(),
        numpy=np.random.get_state(),
        python=random.getstate(),
        cuda=None,
    )
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Optional[Dict[str, Any]]) -> None:
    """Undo :func:`capture_rng_state`; ``None`` (nothing was captured) leaves all as is."""
    if state is None:
        return
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def position_of(states: Dict[str, Any]) -> Position:
    """Position of a loaded checkpoint; ESPnet's own ones are at the end of an epoch."""
    resume_state = states.get(RESUME_KEY)
    if resume_state is not None:
        return Position(*resume_state["position"])
    return Position(states["reporter"]["epoch"] + 1, 0)


class CheckpointStore:
    """Rotating complete checkpoints ``ep<E>.it<N>.pth`` (+ sidecars) in one directory."""

    def __init__(self, directory: Path, keep: int = 2):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.directory = Path(directory)
        self.keep = keep

    def path_for(self, position: Position) -> Path:
        return self.directory / f"ep{position.epoch:04d}.it{position.iteration:07d}.pth"

    def _named(self) -> List[Tuple[Position, Path]]:
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.iterdir():
            match = _NAME_PATTERN.match(path.name)
            if match:
                found.append((Position(int(match[1]), int(match[2])), path))
        return sorted(found, reverse=True)

    def complete(self) -> List[Tuple[Position, Path]]:
        """Checkpoints whose sidecar exists, newest first (not yet checksum-verified)."""
        return [(pos, path) for pos, path in self._named() if sidecar_path(path).exists()]

    def leftovers(self) -> List[Path]:
        """Temporary files and checkpoints without a sidecar: traces of interrupted writes."""
        if not self.directory.is_dir():
            return []
        temps = [p for p in self.directory.iterdir() if _TEMP_MARK in p.name]
        unsealed = [p for _, p in self._named() if not sidecar_path(p).exists()]
        return sorted(temps + unsealed)

    def remove_leftovers(self) -> None:
        for path in self.leftovers():
            logging.warning(f"Removing {path}, left by an interrupted checkpoint write")
            _remove_quietly(path)

    def remove_all(self) -> None:
        for _, path in self._named():
            _remove_quietly(sidecar_path(path))
            _remove_quietly(path)
        self.remove_leftovers()

    def save(self, states: Dict[str, Any], position: Position) -> Path:
        """Write a checkpoint atomically, then drop complete ones beyond ``keep``."""
        path = atomic_torch_save(states, self.path_for(position))
        for _, old in self.complete()[self.keep :]:
            _remove_quietly(sidecar_path(old))
            _remove_quietly(old)
        return path


@dataclass
class ResumeChoice:
    """The checkpoint to resume from and where it stands."""

    path: Path
    position: Position


def inspect_espnet_checkpoint(path: Path) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """``checkpoint.pth`` loaded memory-mapped (cheap), or why it cannot be loaded.

    Drop the result soon: ESPnet truncates and rewrites this file in place at the end of
    each epoch, which would invalidate the mapped pages.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=False, mmap=True), None
    except (RuntimeError, OSError, EOFError, KeyError, ValueError, TypeError) as error:
        return None, f"it cannot be loaded ({type(error).__name__}: {error})"


def _traces_of_earlier_run(output_dir: Path, store: CheckpointStore) -> List[Path]:
    traces = [p for p in output_dir.glob("*epoch.pth")]
    traces += [p for p in (output_dir / ESPNET_CHECKPOINT,) if p.exists()]
    traces += [p for _, p in store._named()]
    return sorted(traces)


def choose_resume_checkpoint(output_dir: Path, store: CheckpointStore) -> Optional[ResumeChoice]:
    """The most advanced good checkpoint of ``output_dir``; ``None`` for a fresh directory.

    Candidates are the store's complete checkpoints (verified against their sidecars) and
    ESPnet's ``checkpoint.pth`` (verified by loading it). Each damaged one is named in a
    warning. Raises :class:`NothingToResumeError` when the directory holds checkpoints or
    epoch models of an earlier run but none of them can be resumed from: starting over
    there would silently throw that run away.
    """
    output_dir = Path(output_dir)
    candidates: List[Tuple[Position, int, Path]] = []
    for position, path in store.complete():
        problem = verify_checkpoint(path)
        if problem is None:
            # ours rank above ESPnet's at equal position: they also hold the RNG states
            candidates.append((position, 1, path))
            break
        logging.error(f"Checkpoint {path} is not used: {problem}. Trying an older one.")
    espnet_path = output_dir / ESPNET_CHECKPOINT
    if espnet_path.exists():
        states, problem = inspect_espnet_checkpoint(espnet_path)
        if problem is None:
            candidates.append((position_of(states), 0, espnet_path))
            del states
        else:
            logging.error(f"Checkpoint {espnet_path} is not used: {problem}.")
    if candidates:
        position, _, path = max(candidates)
        return ResumeChoice(path=path, position=position)
    traces = _traces_of_earlier_run(output_dir, store)
    if traces:
        listed = ", ".join(str(p) for p in traces[:6]) + (" ..." if len(traces) > 6 else "")
        raise NothingToResumeError(
            f"--resume true, but no checkpoint in {output_dir} can be resumed from, while "
            f"it holds files of an earlier run: {listed}. Not starting over silently. "
            f"To start over, pass --resume false or another --output_dir; to start from "
            f"the weights of an epoch model, also pass --init_param <that file>."
        )
    return None
