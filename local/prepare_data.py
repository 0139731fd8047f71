#!/usr/bin/env python3
"""Make Kaldi-style data directories from a corpus in LJSpeech layout and a train/val/test split.

Reads ``CORPUS_DIR/metadata.csv`` (``id|text|normalized text``, UTF-8, no quoting) and
``SPLIT_DIR/{train,val,test}.ids``, and writes ``OUT_DIR/<set>/`` with ``wav.scp``
(absolute paths to ``CORPUS_DIR/wavs/<id>.wav``, or those of ``CORPUS_DIR/wav.scp`` where the
corpus has one), ``text`` (the normalized text, which is what is spoken), ``utt2spk`` and
``spk2utt`` (one speaker, ``--speaker``, or those of ``CORPUS_DIR/utt2spk`` for a multi-speaker
corpus), sorted in byte order (LC_ALL=C).

Checks, each error naming file and line, all errors listed before failing: every metadata line
has three fields, an id and a non-empty normalized text; ids are unique; every id has its wav
(non-empty); the split files hold well-formed, disjoint ids; and the split covers exactly the
ids of the corpus (missing and extra ids are listed). Nothing is written unless all checks
pass; each set's directory is built under a temporary name and renamed into place. A failed
write (disk full, unwritable OUT_DIR) is reported in one line naming the file and the OS error,
leaving no half-written set; temporary directories of a killed run go on the next run.

Usage: local/prepare_data.py [--speaker LJ] CORPUS_DIR SPLIT_DIR OUT_DIR
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from espnet2_vits_ext.recipe.atomic_output import OutputError, building, replace_directory, writing
from espnet2_vits_ext.recipe.kaldi_table import TableProblem, read_table_entries

SETS = ("train", "val", "test")
UTT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
MAX_ERRORS_SHOWN = 20


class DataError(Exception):
    """The corpus or the split is malformed; the message lists every problem found."""


def read_metadata(path: Path, errors: list[str]) -> dict[str, tuple[str, int]]:
    """``{id: (normalized text, line number)}`` from an LJSpeech ``metadata.csv``."""
    entries: dict[str, tuple[str, int]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        errors.append(f"{path}:{line}: not UTF-8 ({error.reason})")
        return entries
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{number}"
        if not line.strip():
            errors.append(f"{where}: empty line")
            continue
        fields = line.split("|")
        if len(fields) != 3:
            errors.append(f"{where}: expected 3 fields 'id|text|normalized text', found {len(fields)}: {line[:80]!r}")
            continue
        utt_id, _, normalized = (field.strip() for field in fields)
        if not UTT_ID.match(utt_id):
            errors.append(f"{where}: bad utterance id {utt_id!r} (letters, digits, '-' and '_' only)")
            continue
        normalized = " ".join(normalized.split())
        if not normalized:
            errors.append(f"{where}: empty normalized text for {utt_id}")
            continue
        if utt_id in entries:
            errors.append(f"{where}: duplicate id {utt_id} (first on line {entries[utt_id][1]})")
            continue
        entries[utt_id] = (normalized, number)
    return entries


def read_split(split_dir: Path, errors: list[str]) -> dict[str, list[str]]:
    """``{set: [ids]}`` from ``split_dir/<set>.ids``, checking each id and that sets are disjoint."""
    splits: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for name in SETS:
        path = split_dir / f"{name}.ids"
        if not path.is_file():
            errors.append(f"{path}: missing split file")
            continue
        ids = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            utt_id = line.strip()
            if not UTT_ID.match(utt_id):
                errors.append(f"{path}:{number}: bad utterance id {line!r}")
                continue
            if utt_id in seen:
                errors.append(f"{path}:{number}: {utt_id} is already in {seen[utt_id]}")
                continue
            seen[utt_id] = f"{path.name} line {number}"
            ids.append(utt_id)
        if not ids:
            errors.append(f"{path}: no utterance ids")
        splits[name] = ids
    return splits


def read_corpus_table(path: Path, errors: list[str]) -> dict[str, str] | None:
    """``{id: value}`` of an optional two-column table of the corpus (``wav.scp``, ``utt2spk``); None if absent."""
    if not path.is_file():
        return None
    problems: list[TableProblem] = []
    table = {key: entry.value for key, entry in read_table_entries(path, problems=problems).items()}
    errors += [str(problem) for problem in problems]
    return table


def audio_and_speakers(corpus_dir: Path, speaker: str, errors: list[str]) -> tuple[dict[str, Path], dict[str, str]]:
    """Where each utterance's audio is and who speaks it.

    A corpus in LJSpeech layout has ``wavs/<id>.wav`` and one speaker (``speaker``); a multi-speaker
    corpus (VCTK's index, the multi-voice mini corpus) adds ``wav.scp`` (id, audio path) and
    ``utt2spk`` (id, speaker) beside ``metadata.csv``.
    """
    metadata = read_metadata(corpus_dir / "metadata.csv", [])
    wav_table = read_corpus_table(corpus_dir / "wav.scp", errors)
    speaker_table = read_corpus_table(corpus_dir / "utt2spk", errors)
    audio: dict[str, Path] = {}
    speakers: dict[str, str] = {}
    for utt_id, (_, number) in metadata.items():
        where = f"{corpus_dir / 'metadata.csv'}:{number}: {utt_id}"
        if wav_table is None:
            audio[utt_id] = corpus_dir.resolve() / "wavs" / f"{utt_id}.wav"
        elif utt_id in wav_table:
            audio[utt_id] = (corpus_dir / wav_table[utt_id]).resolve()
        else:
            errors.append(f"{where}: not in {corpus_dir / 'wav.scp'}")
        if speaker_table is None:
            speakers[utt_id] = speaker
        elif utt_id in speaker_table:
            speakers[utt_id] = speaker_table[utt_id]
        else:
            errors.append(f"{where}: not in {corpus_dir / 'utt2spk'}")
    return audio, speakers


def check(corpus_dir: Path, split_dir: Path) -> tuple[dict[str, tuple[str, int]], dict[str, list[str]]]:
    """Read and check the corpus and the split; raise :class:`DataError` listing every problem."""
    errors: list[str] = []
    metadata_path = corpus_dir / "metadata.csv"
    if not metadata_path.is_file():
        raise DataError(f"{metadata_path}: not found (is {corpus_dir} an LJSpeech-layout corpus?)")
    metadata = read_metadata(metadata_path, errors)
    audio, _ = audio_and_speakers(corpus_dir, "", errors)
    for utt_id, wav in audio.items():
        number = metadata[utt_id][1]
        if not wav.is_file():
            errors.append(f"{metadata_path}:{number}: {utt_id}: missing wav {wav}")
        elif wav.stat().st_size == 0:
            errors.append(f"{metadata_path}:{number}: {utt_id}: empty wav {wav}")
    splits = read_split(split_dir, errors)
    in_split = {utt_id for ids in splits.values() for utt_id in ids}
    if len(splits) == len(SETS):
        missing = sorted(in_split - metadata.keys())
        extra = sorted(metadata.keys() - in_split)
        if missing:
            errors.append(
                f"{metadata_path}: {len(missing)} id(s) of the split in {split_dir} are not in the corpus: "
                + " ".join(missing[:10])
                + (" ..." if len(missing) > 10 else "")
            )
        if extra:
            errors.append(
                f"{metadata_path}: {len(extra)} id(s) of the corpus are in no split file of {split_dir}: "
                + " ".join(extra[:10])
                + (" ..." if len(extra) > 10 else "")
            )
    if errors:
        shown = errors[:MAX_ERRORS_SHOWN]
        more = f"\n... and {len(errors) - len(shown)} more" if len(errors) > len(shown) else ""
        raise DataError(f"{len(errors)} problem(s) in the corpus or the split:\n" + "\n".join(shown) + more)
    return metadata, splits


def write_set(out_dir: Path, name: str, ids: list[str], metadata: dict, audio: dict, speakers: dict) -> None:
    """Write ``out_dir/name`` atomically: build it in a hidden sibling, then rename it into place."""
    ids = sorted(ids, key=lambda s: s.encode())  # LC_ALL=C order
    by_speaker: dict[str, list[str]] = {}
    for utt_id in ids:
        by_speaker.setdefault(speakers[utt_id], []).append(utt_id)
    files = {
        "wav.scp": [f"{i} {audio[i]}" for i in ids],
        "text": [f"{i} {metadata[i][0]}" for i in ids],
        "utt2spk": [f"{i} {speakers[i]}" for i in ids],
        "spk2utt": [f"{spk} {' '.join(utts)}" for spk, utts in sorted(by_speaker.items(), key=lambda k: k[0].encode())],
    }
    final = out_dir / name
    with building(final) as tmp:
        for filename, lines in files.items():
            with writing(tmp / filename):
                (tmp / filename).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        replace_directory(tmp, final)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus_dir", type=Path, help="directory with metadata.csv and wavs/")
    parser.add_argument("split_dir", type=Path, help="directory with train.ids, val.ids, test.ids")
    parser.add_argument("out_dir", type=Path, help="where <set>/ data directories go (e.g. data)")
    parser.add_argument("--speaker", default="LJ", help="speaker id of every utterance (a prefix of the ids), "
                        "unless the corpus has its own utt2spk")
    args = parser.parse_args(argv)
    try:
        metadata, splits = check(args.corpus_dir, args.split_dir)
    except DataError as error:
        print(f"prepare_data.py: {error}", file=sys.stderr)
        return 1
    audio, speakers = audio_and_speakers(args.corpus_dir, args.speaker, [])
    bad_prefix = [i for ids in splits.values() for i in ids if not i.startswith(speakers[i])]
    if bad_prefix:
        # Kaldi's sorting convention: speaker ids prefix utterance ids, so utt2spk and spk2utt sort alike.
        print(f"prepare_data.py: speaker id {speakers[bad_prefix[0]]!r} is not a prefix of {bad_prefix[0]}", file=sys.stderr)
        return 1
    try:
        with writing(args.out_dir):
            args.out_dir.mkdir(parents=True, exist_ok=True)
        for name in SETS:
            write_set(args.out_dir, name, splits[name], metadata, audio, speakers)
    except OutputError as error:
        # Each set is whole (new or old); the data dirs' .done marker is written only after success.
        print(f"prepare_data.py: {error}; free space or fix the output directory, then rerun", file=sys.stderr)
        return 1
    print(" ".join(f"{name}={len(splits[name])}" for name in SETS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
