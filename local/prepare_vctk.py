#!/usr/bin/env python3
"""Index VCTK 0.92 in the recipe's corpus layout, with a speaker-balanced train/val/test split.

Reads ``VCTK_DIR/txt/<speaker>/<id>.txt`` and ``VCTK_DIR/wav48_silence_trimmed/<speaker>/<id>_<mic>.flac``
and writes, beside the corpus (never inside it), ``OUT_DIR/``:

    metadata.csv        p225_001|Please call Stella.|Please call Stella.   (LJSpeech's three fields)
    wav.scp             p225_001 /abs/path/VCTK-Corpus-0.92/wav48_silence_trimmed/p225/p225_001_mic1.flac
    utt2spk             p225_001 p225
    {train,val,test}.ids  the split

The split is speaker-balanced: every speaker (109 have transcripts) gives its last
``--test_per_speaker`` utterances in id order to test and the ``--val_per_speaker`` before them to
val; the rest is train. VCTK's ids 001-024 are the texts every speaker reads (the rainbow passage,
the elicitation paragraph), its later ids newspaper sentences chosen per speaker, so the held-out
utterances are sentences the model has not heard from that speaker. An utterance without audio
for ``--mic`` is skipped and counted. The index appears atomically (built under a temporary name);
a failed write is one error line naming the file.

Usage: local/prepare_vctk.py [--mic mic1] [--val_per_speaker 2] [--test_per_speaker 5] VCTK_DIR OUT_DIR
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from espnet2_vits_ext.recipe.atomic_output import OutputError, building, replace_directory, writing

log = logging.getLogger("prepare_vctk")


def read_utterances(vctk_dir: Path, mic: str) -> tuple[dict[str, list[tuple[str, str, Path]]], int]:
    """``{speaker: [(id, text, audio)]}`` in id order, and the number skipped for want of audio."""
    by_speaker: dict[str, list[tuple[str, str, Path]]] = {}
    skipped = 0
    audio_root = (vctk_dir / "wav48_silence_trimmed").resolve()
    for text_file in sorted((vctk_dir / "txt").glob("*/*.txt")):
        speaker, utt_id = text_file.parent.name, text_file.stem
        text = " ".join(text_file.read_text(encoding="utf-8", errors="replace").split())
        audio = audio_root / speaker / f"{utt_id}_{mic}.flac"
        if not text or not audio.is_file():
            skipped += 1
            continue
        by_speaker.setdefault(speaker, []).append((utt_id, text, audio))
    return by_speaker, skipped


def split(utterances: list, val: int, test: int) -> dict[str, list]:
    """One speaker's utterances (id order) into train, val (``val`` before the last ``test``) and test."""
    if len(utterances) <= val + test:
        raise ValueError(f"{len(utterances)} utterances, fewer than val {val} + test {test} + 1 train")
    return {
        "train": utterances[: len(utterances) - val - test],
        "val": utterances[len(utterances) - val - test : len(utterances) - test],
        "test": utterances[len(utterances) - test :],
    }


def write_index(out_dir: Path, by_speaker: dict, val: int, test: int) -> dict[str, int]:
    """Write the index files atomically; return the number of utterances per set."""
    sets: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    metadata, wav_scp, utt2spk = [], [], []
    for speaker, utterances in sorted(by_speaker.items()):
        try:
            parts = split(utterances, val, test)
        except ValueError as error:
            raise ValueError(f"speaker {speaker} has {error}") from None
        for name, part in parts.items():
            sets[name] += [utt_id for utt_id, _, _ in part]
        for utt_id, text, audio in utterances:
            metadata.append(f"{utt_id}|{text}|{text}\n")
            wav_scp.append(f"{utt_id} {audio}\n")
            utt2spk.append(f"{utt_id} {speaker}\n")
    contents = {"metadata.csv": metadata, "wav.scp": wav_scp, "utt2spk": utt2spk}
    contents.update({f"{name}.ids": [i + "\n" for i in ids] for name, ids in sets.items()})
    with building(out_dir) as tmp:
        for name, lines in contents.items():
            with writing(tmp / name):
                (tmp / name).write_text("".join(lines), encoding="utf-8", newline="\n")
        replace_directory(tmp, out_dir)
    return {name: len(ids) for name, ids in sets.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vctk_dir", type=Path, help="the extracted VCTK-Corpus-0.92")
    parser.add_argument("out_dir", type=Path, help="index directory to create")
    parser.add_argument("--mic", default="mic1", choices=("mic1", "mic2"), help="which microphone's recordings")
    parser.add_argument("--val_per_speaker", type=int, default=2, help="val utterances per speaker")
    parser.add_argument("--test_per_speaker", type=int, default=5, help="test utterances per speaker")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    if not (args.vctk_dir / "txt").is_dir() or not (args.vctk_dir / "wav48_silence_trimmed").is_dir():
        log.error("%s has no txt/ and wav48_silence_trimmed/: give the extracted VCTK-Corpus-0.92", args.vctk_dir)
        return 1
    by_speaker, skipped = read_utterances(args.vctk_dir, args.mic)
    try:
        counts = write_index(args.out_dir, by_speaker, args.val_per_speaker, args.test_per_speaker)
    except ValueError as error:
        log.error("%s: %s", args.vctk_dir, error)
        return 1
    except OutputError as error:
        log.error("%s; nothing was left half-written: free space or fix the output directory, then rerun", error)
        return 1
    log.info("%d speakers; train %d, val %d, test %d; %d skipped (no text or no %s audio)",
             len(by_speaker), counts["train"], counts["val"], counts["test"], skipped, args.mic)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
