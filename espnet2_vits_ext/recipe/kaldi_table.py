"""The one reader of Kaldi tables: ``<key> <value>`` text files such as ``wav.scp``, ``text``,
``utt2spk``, ``spk2utt``, ``utt2num_samples`` and ``spk2sid``.

A table line is a key, whitespace, and the rest of the line as its value. Blank lines are
ignored. Every problem (a line with no value, a key seen before, a line that is not UTF-8, keys
out of ``LC_ALL=C`` order when order is asked for) names the file and line. A caller that wants
every problem at once (``utils/validate_data_dir.py``) passes a list to collect them; everyone
else gets a :class:`KaldiTableError` at the first one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Union


class KaldiTableError(ValueError):
    """A table that cannot be read as asked; ``str()`` names the file and line."""


@dataclass(frozen=True)
class TableProblem:
    """A line that could not be taken (or a missing file): ``str()`` is the message for the user."""

    message: str  # "<file>:<line>: what is wrong"
    kind: str  # missing, not-utf8, malformed, duplicate or unsorted
    line: Optional[int] = None  # from 1; None for the file as a whole
    text: str = ""  # the line as read
    key: str = ""  # the line's key, where it has one

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class TableEntry:
    """One line of a table: the value and the line number (from 1) it was read from."""

    value: str
    line: int


def read_table_entries(
    path: Union[str, Path],
    allow_empty_value: bool = False,
    require_sorted: bool = False,
    problems: Optional[List[TableProblem]] = None,
    data: Optional[bytes] = None,
) -> Dict[str, TableEntry]:
    """Read ``path`` into ``{key: TableEntry}`` in file order.

    Args:
        path: The table file (with ``data``: only the name messages give it, e.g. ``model.zip:spk2sid``).
        allow_empty_value: Accept a line with a key only (an empty transcript).
        require_sorted: Report keys that are not in byte order (Kaldi sorts with ``LC_ALL=C``).
        problems: If given, each problem is appended to it and the offending line skipped;
            if ``None``, the first problem raises.
        data: The table's bytes, for a table that is not a file of its own (a member of a zip).

    Raises:
        KaldiTableError: The file is missing or has a bad line (only when ``problems`` is None).
    """
    path = Path(path)

    def report(message: str, kind: str, line: Optional[int] = None, text: str = "", key: str = "") -> None:
        if problems is None:
            raise KaldiTableError(message)
        problems.append(TableProblem(message, kind, line, text, key))

    entries: Dict[str, TableEntry] = {}
    if data is None and not path.is_file():
        report(f"{path}: missing", "missing")
        return entries
    previous: Optional[bytes] = None
    with open(path, "rb") if data is None else io.BytesIO(data) as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                report(f"{path}:{number}: not UTF-8 ({error.reason} at byte {error.start})", "not-utf8", number)
                continue
            fields = line.split(maxsplit=1)
            if not fields:
                continue
            key, value = fields[0], fields[1].strip() if len(fields) > 1 else ""
            if not value and not allow_empty_value:
                report(f"{path}:{number}: expected '<key> <value>', got {line[:80]!r}", "malformed", number, line, key)
                continue
            if key in entries:
                report(f"{path}:{number}: duplicate key {key} (first on line {entries[key].line})", "duplicate", number, line, key)
                continue
            if require_sorted and previous is not None and key.encode() < previous:
                report(f"{path}:{number}: {key} comes after {previous.decode()}: not sorted (LC_ALL=C sort)", "unsorted", number, line, key)
            previous = key.encode()
            entries[key] = TableEntry(value, number)
    return entries


def read_table(path: Union[str, Path], allow_empty_value: bool = False) -> Dict[str, str]:
    """``{key: value}`` of a table, in file order; the first bad line raises :class:`KaldiTableError`."""
    return {key: entry.value for key, entry in read_table_entries(path, allow_empty_value).items()}
