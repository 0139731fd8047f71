#!/usr/bin/env python3
"""Worker of local/prepare_text.sh: phonemize dump dirs, filter them, write the token list.

For each dump dir (the first one is the training set):

1. keep the files stage 3 wrote in ``<dir>/unfiltered/`` (copied once; every run reads them,
   so a rerun with other options starts from the same data);
2. turn each line of ``text`` into tokens exactly as ESPnet's preprocessor will at training
   (:class:`espnet2_vits_ext.text.frontend.TextFrontend`), in ``--nj`` processes;
3. exclude utterances whose text cannot be pronounced (empty, unsupported characters, not
   UTF-8) and those with more tokens than spectrogram frames (``num_samples // hop``: the
   monotonic alignment needs at least one frame per token), each listed in
   ``<dir>/excluded_text.txt`` with the reason and ``file:line``;
4. rewrite ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, ``utt2num_samples`` without them
   (each file through a temporary name).

Then the token list, in ESPnet's format (``tts.sh``: ``<blank>``, ``<unk>``, the training
set's tokens by decreasing count, ties in order of first appearance, ``<sos/eos>`` last).
Tokens of the other sets missing from it are reported (ESPnet reads them as ``<unk>``).

Usage: prepare_text.py --token_list dump/token_list/phn/tokens.txt [--g2p ...] [--cleaner tacotron] [--nj 4] [--hop_length 256] dump/raw/train [dump/raw/val ...]
"""

import argparse
import multiprocessing
import os
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

from espnet2_vits_ext.recipe.kaldi_table import read_table
from espnet2_vits_ext.text.frontend import CLEANER_TYPES, G2P_TYPES, TextFrontend, TextFrontendError

DATA_FILES = ("wav.scp", "text", "utt2spk", "spk2utt", "utt2num_samples")
UNFILTERED = "unfiltered"


class Utterance(NamedTuple):
    utt_id: str
    line_number: int
    text: Optional[str]  # None: the line is not UTF-8


class Tokenized(NamedTuple):
    tokens: Optional[List[str]]
    error: Optional[str]


def keep_unfiltered(dump_dir: Path) -> Path:
    """``<dump_dir>/unfiltered``, created once from the files stage 3 wrote."""
    unfiltered = dump_dir / UNFILTERED
    if unfiltered.is_dir():
        return unfiltered
    for name in ("wav.scp", "text", "utt2spk", "utt2num_samples"):
        if not (dump_dir / name).is_file():
            raise SystemExit(f"prepare_text.py: {dump_dir / name} not found: run stage 3 (local/dump_audio.sh) first")
    partial = dump_dir / f".{UNFILTERED}.tmp"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        partial.mkdir()
        for name in DATA_FILES:
            if (dump_dir / name).is_file():
                shutil.copy2(dump_dir / name, partial / name)
        os.replace(partial, unfiltered)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return unfiltered


def read_text(path: Path) -> List[Utterance]:
    utterances = []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\n")
            except UnicodeDecodeError:
                utt_id = raw.split(maxsplit=1)[0].decode("utf-8", errors="replace") if raw.strip() else "-"
                utterances.append(Utterance(utt_id, number, None))
                continue
            fields = line.split(maxsplit=1)
            if fields:
                utterances.append(Utterance(fields[0], number, fields[1] if len(fields) > 1 else ""))
    return utterances


_frontend: Optional[TextFrontend] = None


def _start_worker(g2p: str, cleaner: str) -> None:
    global _frontend
    _frontend = TextFrontend(g2p=g2p, cleaner=cleaner)


def _tokenize(text: Optional[str]) -> Tokenized:
    if text is None:
        return Tokenized(None, "bad-text: the line is not valid UTF-8")
    try:
        return Tokenized(_frontend.text_to_tokens(text), None)
    except TextFrontendError as error:
        return Tokenized(None, f"bad-text: {error}")


class ParallelTokenizer:
    """Tokenizes in this process for small inputs, else in a pool of ``nj`` processes.

    Each process builds its own espeak-ng instance (the C library is not shared safely); the
    pool starts on first need and serves every dump dir.
    """

    MIN_PER_PROCESS = 200  # below this, starting processes costs more than it saves

    def __init__(self, g2p: str, cleaner: str, nj: int):
        self._g2p, self._cleaner, self._nj = g2p, cleaner, nj
        self._pool = None
        _start_worker(g2p, cleaner)  # fails here, before any work, if the g2p is missing

    def __call__(self, texts: List[Optional[str]]) -> List[Tokenized]:
        if self._nj <= 1 or len(texts) < self.MIN_PER_PROCESS * 2:
            return [_tokenize(text) for text in texts]
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = context.Pool(self._nj, initializer=_start_worker, initargs=(self._g2p, self._cleaner))
        return self._pool.map(_tokenize, texts, chunksize=max(1, len(texts) // (8 * self._nj)))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()


def write_atomically(path: Path, lines: List[str]) -> None:
    """Write ``lines`` through a temporary name, so ``path`` is whole or unchanged."""
    partial = path.with_name(f".{path.name}.tmp")
    try:
        with open(partial, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.writelines(line + "\n" for line in lines)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class SetResult(NamedTuple):
    kept: List[Tuple[str, List[str]]]  # (utt id, tokens), in text order
    excluded: List[Tuple[str, str, str]]  # (utt id, reason with detail, file:line)


def process_set(dump_dir: Path, tokenize: ParallelTokenizer, args) -> SetResult:
    unfiltered = keep_unfiltered(dump_dir)
    utterances = read_text(unfiltered / "text")
    num_samples = {u: int(n) for u, n in read_table(unfiltered / "utt2num_samples").items()}
    results = tokenize([u.text for u in utterances])
    kept, excluded, seen = [], [], set()
    for utterance, result in zip(utterances, results):
        where = f"{unfiltered / 'text'}:{utterance.line_number}"
        frames = num_samples.get(utterance.utt_id)
        if utterance.utt_id in seen:
            reason = "duplicate: utterance id already seen"
        elif result.error:
            reason = result.error
        elif frames is None:
            reason = "no-audio: not in utt2num_samples"
        elif len(result.tokens) > frames // args.hop_length:
            reason = (
                f"too-many-tokens: {len(result.tokens)} tokens > {frames // args.hop_length} frames "
                f"({frames} samples / hop {args.hop_length}); the alignment needs a frame per token"
            )
        else:
            seen.add(utterance.utt_id)
            kept.append((utterance.utt_id, result.tokens))
            continue
        seen.add(utterance.utt_id)
        excluded.append((utterance.utt_id, reason, where))
    return SetResult(kept, excluded)


def write_filtered(dump_dir: Path, kept_ids: set) -> None:
    """Rewrite the data files of ``dump_dir`` from ``unfiltered/`` with ``kept_ids`` only."""
    unfiltered = dump_dir / UNFILTERED
    utt2spk = {}
    for name in ("wav.scp", "text", "utt2spk", "utt2num_samples"):
        lines, seen = [], set()
        with open(unfiltered / name, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split(maxsplit=1)
                if fields and fields[0] in kept_ids and fields[0] not in seen:
                    seen.add(fields[0])
                    lines.append(line.rstrip("\n"))
        if name == "utt2spk":
            utt2spk = dict(line.split(maxsplit=1) for line in lines)
        write_atomically(dump_dir / name, lines)
    by_speaker: Dict[str, List[str]] = {}
    for utt_id, speaker in sorted(utt2spk.items()):
        by_speaker.setdefault(speaker, []).append(utt_id)
    write_atomically(dump_dir / "spk2utt", [f"{s} {' '.join(us)}" for s, us in sorted(by_speaker.items())])


def token_list(kept: List[Tuple[str, List[str]]]) -> List[str]:
    """ESPnet's format: <blank>, <unk>, tokens by decreasing count (ties: first seen), <sos/eos>."""
    counts = Counter()
    for _, tokens in kept:
        counts.update(tokens)  # Counter keeps first-insertion order, which sorted() preserves on ties
    ordered = [t for t, _ in sorted(counts.items(), key=lambda item: -item[1])]
    return ["<blank>", "<unk>"] + ordered + ["<sos/eos>"]


def hop_from_config(path: str) -> int:
    import yaml

    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    hop = (config.get("feats_extract_conf") or {}).get("hop_length")
    if not isinstance(hop, int) or hop <= 0:
        raise SystemExit(f"prepare_text.py: {path} has no positive feats_extract_conf.hop_length")
    return hop


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dump_dirs", nargs="+", help="dump dirs of stage 3; the first one makes the token list")
    parser.add_argument("--token_list", required=True)
    parser.add_argument("--g2p", choices=G2P_TYPES, default="espeak_ng_english_us_vits")
    parser.add_argument("--cleaner", choices=CLEANER_TYPES, default="tacotron")
    parser.add_argument("--nj", type=int, default=4)
    parser.add_argument("--hop_length", type=int, default=256)
    parser.add_argument("--train_config", default=None, help="take --hop_length from feats_extract_conf")
    args = parser.parse_args(argv)
    if args.train_config:
        args.hop_length = hop_from_config(args.train_config)
    if args.hop_length <= 0:
        raise SystemExit(f"prepare_text.py: --hop_length must be positive, not {args.hop_length}")
    try:
        tokenize = ParallelTokenizer(args.g2p, args.cleaner, args.nj)
    except TextFrontendError as error:
        print(f"prepare_text.py: {error}", file=sys.stderr)
        return 1
    try:
        return prepare(args, tokenize)
    finally:
        tokenize.close()


def prepare(args, tokenize: ParallelTokenizer) -> int:
    tokens_of_train: Optional[List[str]] = None
    for index, name in enumerate(args.dump_dirs):
        dump_dir = Path(name)
        result = process_set(dump_dir, tokenize, args)
        total = len(result.kept) + len(result.excluded)
        if not result.kept:
            print(f"prepare_text.py: no usable utterance in {dump_dir}: see {dump_dir / 'excluded_text.txt'}", file=sys.stderr)
        header = "# utt_id\treason\tfile:line"
        write_atomically(dump_dir / "excluded_text.txt", [header] + ["\t".join(e) for e in result.excluded])
        write_filtered(dump_dir, {utt_id for utt_id, _ in result.kept})
        reasons = Counter(reason.split(":")[0] for _, reason, _ in result.excluded)
        detail = f" ({', '.join(f'{r}: {c}' for r, c in sorted(reasons.items()))})" if reasons else ""
        print(f"{dump_dir}: excluded {len(result.excluded)} of {total} utterances{detail}: see {dump_dir / 'excluded_text.txt'}")
        if not result.kept:
            return 1
        if index == 0:
            tokens_of_train = token_list(result.kept)
            path = Path(args.token_list)
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(path, tokens_of_train)
            print(f"{path}: {len(tokens_of_train)} tokens from {len(result.kept)} utterances of {dump_dir}")
        else:
            known = set(tokens_of_train)
            unknown = Counter(t for _, tokens in result.kept for t in tokens if t not in known)
            if unknown:
                listed = ", ".join(f"{t!r} ({c})" for t, c in unknown.most_common(10))
                print(f"  note: tokens not in the token list (read as <unk>): {listed}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except OSError as error:
        print(f"prepare_text.py: {error}", file=sys.stderr)
        sys.exit(1)
