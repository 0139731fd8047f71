#!/usr/bin/env python3
"""Speaker ids for a multi-speaker model: ``spk2sid`` from the training set, ``utt2sid`` per set.

The ids are ESPnet's (egs2/TEMPLATE/tts1/tts.sh with ``--use_sid true``): ``TRAIN_DIR/spk2sid``
holds ``<unk> 0`` and then the speakers of ``TRAIN_DIR/utt2spk`` in byte order (LC_ALL=C),
numbered from 1; id 0 stays reserved for an unknown speaker, as ESPnet reserves it. Every dump
dir given (the training set too) gets ``utt2sid``, ``<utt> <sid>`` in ``utt2spk``'s order, which
ESPnet's data loader reads as ``<dir>/utt2sid,sids,text_int``. A model trained on these ids needs
``tts_conf.generator_params.spks`` of at least the number of speakers + 1: with
``--train_config`` that is checked.

Everything is checked before anything is written, and an error is one line naming the file and
line: an utterance whose speaker has no id (a speaker of val or test that the training set lacks:
the model would have no embedding trained for it), or too small a ``spks``. Each file is written
under a temporary name and renamed, so it is whole or unchanged.

Usage: local/make_speaker_ids.py [--train_config conf/train.yaml] TRAIN_DIR [DIR ...]
  e.g. local/make_speaker_ids.py --train_config conf/train.yaml dump/raw/train dump/raw/val dump/raw/test
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from espnet2_vits_ext.recipe.atomic_output import OutputError, writing
from espnet2_vits_ext.recipe.kaldi_table import KaldiTableError, read_table_entries

UNKNOWN = "<unk>"  # ESPnet's name for id 0


class SpeakerIdError(Exception):
    """The speakers cannot be given ids; ``str()`` names the file (and line) at fault."""


def speaker_ids(train_utt2spk: Path) -> Dict[str, int]:
    """``{speaker: sid}``: ``<unk>`` 0, then the training set's speakers in byte order from 1."""
    speakers = {entry.value for entry in read_table_entries(train_utt2spk).values()}
    if not speakers:
        raise SpeakerIdError(f"{train_utt2spk}: no utterances")
    ordered = sorted(speakers, key=str.encode)
    return {UNKNOWN: 0, **{speaker: sid for sid, speaker in enumerate(ordered, start=1)}}


def utterance_ids(utt2spk: Path, spk2sid: Dict[str, int], spk2sid_path: Path) -> List[str]:
    """The lines of ``utt2sid`` for one set; raise :class:`SpeakerIdError` for a speaker without an id."""
    lines = []
    for utt, entry in read_table_entries(utt2spk).items():
        if entry.value not in spk2sid or entry.value == UNKNOWN:
            raise SpeakerIdError(
                f"{utt2spk}:{entry.line}: speaker {entry.value} of {utt} is not in {spk2sid_path}: "
                "the training set has no utterance of this speaker, so the model would learn no voice for it"
            )
        lines.append(f"{utt} {spk2sid[entry.value]}")
    return lines


def check_capacity(train_config: Path, num_ids: int) -> None:
    """Refuse a config whose speaker table (``spks``) is too small for ``num_ids`` ids (0 included)."""
    config = yaml.safe_load(train_config.read_text(encoding="utf-8")) or {}
    spks = ((config.get("tts_conf") or {}).get("generator_params") or {}).get("spks")
    if spks is None or spks < num_ids:
        raise SpeakerIdError(
            f"{train_config}: tts_conf.generator_params.spks is {spks}, but the training set's "
            f"{num_ids - 1} speakers need ids 0..{num_ids - 1} (0 is {UNKNOWN}): set spks to at least {num_ids}"
        )


def write_lines(path: Path, lines: List[str]) -> None:
    """Write ``lines`` to ``path`` through a temporary name: the file is whole or unchanged."""
    partial = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    with writing(path):
        try:
            partial.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)


def make(train_dir: Path, dirs: List[Path], train_config: Optional[Path]) -> int:
    """Check, then write ``train_dir/spk2sid`` and ``<dir>/utt2sid`` for each of ``dirs``; return the speaker count."""
    spk2sid = speaker_ids(train_dir / "utt2spk")
    if train_config is not None:
        check_capacity(train_config, len(spk2sid))
    spk2sid_path = train_dir / "spk2sid"
    tables = {d: utterance_ids(d / "utt2spk", spk2sid, spk2sid_path) for d in dirs}
    write_lines(spk2sid_path, [f"{speaker} {sid}" for speaker, sid in spk2sid.items()])
    for d, lines in tables.items():
        write_lines(d / "utt2sid", lines)
    return len(spk2sid) - 1


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("train_dir", type=Path, help="the training set's dump dir (gets spk2sid and utt2sid)")
    parser.add_argument("dirs", type=Path, nargs="*", help="other dump dirs (each gets utt2sid)")
    parser.add_argument("--train_config", type=Path, default=None, help="check that its spks covers the ids")
    args = parser.parse_args(argv)
    dirs = [args.train_dir] + [d for d in args.dirs if d != args.train_dir]
    try:
        count = make(args.train_dir, dirs, args.train_config)
    except (SpeakerIdError, KaldiTableError) as error:
        print(f"make_speaker_ids.py: {error}", file=sys.stderr)
        return 1
    except OutputError as error:
        print(f"make_speaker_ids.py: {error}; free space or fix the dump directory, then rerun", file=sys.stderr)
        return 1
    print(f"{count} speakers: {args.train_dir / 'spk2sid'}; utt2sid in {' '.join(str(d) for d in dirs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
