"""Output directories that are whole or absent, and write failures told in one line.

Shared by the Python scripts of stages 1-2 (the shell stages use ``utils/recipe_lib.sh``).
An output directory is built in a hidden sibling ``.<name>.<kind>.<pid>`` and renamed into
place when complete. A failed write (disk full, no permission, a file where a directory
should be) becomes an :class:`OutputError` whose message names the file and the OS error;
the sibling is removed, so nothing half-written is left. A run killed outright leaves its
sibling behind: the next run removes it by its name's pattern (it cannot know the old pid).

Usage (from a stage script in local/)::

    with building(out_dir) as tmp:
        with writing(tmp / "text"):
            (tmp / "text").write_text(...)
        replace_directory(tmp, out_dir)
"""

from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


class OutputError(Exception):
    """Writing an output failed; ``str()`` is the message for the user: the file and the OS error."""

    def __init__(self, path: Path, error: OSError):
        self.path = Path(error.filename) if error.filename else path
        self.reason = error.strerror or str(error)
        super().__init__(f"cannot write {self.path}: {self.reason}")


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` raised in the block into an :class:`OutputError` naming ``path``.

    Python names the file only in errors of ``open`` and the like; a full disk is reported by
    ``write`` or ``close`` without it, hence the path the block writes.
    """
    try:
        yield
    except OSError as error:
        raise OutputError(path, error) from error


def remove_stale(final: Path) -> None:
    """Remove the siblings ``.<name>.<kind>.<pid>`` of ``final`` that earlier runs left."""
    prefix = f".{final.name}."
    try:
        siblings = list(final.parent.iterdir())
    except OSError:  # no parent yet (nothing to remove), or not a directory (building reports it)
        return
    for sibling in siblings:
        if sibling.name.startswith(prefix) and sibling.name.rsplit(".", 1)[-1].isdigit():
            shutil.rmtree(sibling, ignore_errors=True)


@contextmanager
def building(final: Path, kind: str = "tmp") -> Iterator[Path]:
    """A new hidden sibling of ``final`` to build it in; removed when the block ends.

    The block moves its result into place with :func:`replace_directory`; whatever is left when
    the block ends, by an error or normally, is removed, and so are stale siblings beforehand.
    """
    remove_stale(final)
    tmp = final.with_name(f".{final.name}.{kind}.{os.getpid()}")
    with writing(tmp):
        tmp.mkdir(parents=True)
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_directory(new: Path, final: Path) -> None:
    """Rename directory ``new`` to ``final``; a ``final`` already there is set aside, then removed."""
    with writing(final):
        if final.exists():
            # Renaming over a non-empty directory is not allowed: rename the old one away first.
            old = final.with_name(f".{final.name}.old.{os.getpid()}")
            os.replace(final, old)
            os.replace(new, final)
            shutil.rmtree(old)
        else:
            os.replace(new, final)
