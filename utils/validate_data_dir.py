#!/usr/bin/env python3
"""Check a Kaldi-style data directory (our validate_data_dir.sh): run.sh calls it after each data stage.

Checks ``wav.scp``, ``text``, ``utt2spk`` and ``spk2utt``: each exists and is non-empty; each
line is ``key value`` with a non-empty value; keys are unique and sorted in byte order
(LC_ALL=C); the first three have the same utterances; ``spk2utt`` is ``utt2spk`` inverted; every
file named in ``wav.scp`` exists (unless ``--no_wav_check``). Errors name file and line; all are
listed; the exit status is 1 when there is any.

Usage: utils/validate_data_dir.py [--no_wav_check] DATA_DIR [DATA_DIR ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from espnet2_vits_ext.recipe.kaldi_table import TableProblem, read_table_entries

FILES = ("wav.scp", "text", "utt2spk", "spk2utt")
MAX_ERRORS_SHOWN = 20


def read_table(path: Path, errors: list[str]) -> dict[str, str]:
    """``{key: value}`` of one file of the data dir; malformed, duplicate or unsorted lines go to ``errors``."""
    problems: list[TableProblem] = []
    table = {key: entry.value for key, entry in read_table_entries(path, require_sorted=True, problems=problems).items()}
    errors += [str(problem) for problem in problems]
    if not table and path.is_file():
        errors.append(f"{path}: empty")
    return table


def validate(data_dir: Path, check_wavs: bool = True) -> list[str]:
    """Every problem found in ``data_dir``, each naming its file (and line)."""
    errors: list[str] = []
    tables = {name: read_table(data_dir / name, errors) for name in FILES}
    utts = set(tables["wav.scp"])
    for name in ("text", "utt2spk"):
        for key in sorted(utts ^ set(tables[name]))[:5]:
            where = "wav.scp" if key in utts else name
            other = name if key in utts else "wav.scp"
            errors.append(f"{data_dir / where}: {key} is not in {other}")
    inverted: dict[str, list[str]] = {}
    for utt, spk in tables["utt2spk"].items():
        inverted.setdefault(spk, []).append(utt)
    spk2utt = {spk: sorted(value.split()) for spk, value in tables["spk2utt"].items()}
    if tables["utt2spk"] and spk2utt != {spk: sorted(u) for spk, u in inverted.items()}:
        errors.append(f"{data_dir / 'spk2utt'}: does not match utt2spk (remake it from utt2spk)")
    if check_wavs:
        missing = [path for path in tables["wav.scp"].values() if not Path(path).is_file()]
        if missing:
            errors.append(f"{data_dir / 'wav.scp'}: {len(missing)} audio file(s) not found, e.g. {missing[0]}")
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dirs", type=Path, nargs="+")
    parser.add_argument("--no_wav_check", action="store_true", help="do not check that audio files exist")
    args = parser.parse_args(argv)
    status = 0
    for data_dir in args.data_dirs:
        errors = validate(data_dir, check_wavs=not args.no_wav_check)
        if errors:
            status = 1
            shown = errors[:MAX_ERRORS_SHOWN]
            print(f"validate_data_dir.py: {data_dir}: {len(errors)} problem(s):", file=sys.stderr)
            print("\n".join(shown), file=sys.stderr)
            if len(errors) > len(shown):
                print(f"... and {len(errors) - len(shown)} more", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
