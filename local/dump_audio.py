#!/usr/bin/env python3
"""Worker of local/dump_audio.sh: check, resample and write the clips of a wav.scp.

``job``: job J of N takes the J-th contiguous block of lines of ``wav.scp`` and, for each
clip, reads it (a file, or the output of a Kaldi-style ``command |``), checks it, resamples
it to ``--fs`` and writes ``<work>/wav/<utt>.wav`` (16-bit PCM, samples in [-1, 1]).
A bad clip is never fatal: it goes to ``excluded.J`` with the reason, ``wav.scp:line`` and
its source. Failing to write the output is fatal (disk full, no permission): the job
removes its half-written file and exits 1, so no ``.done`` marker follows.

``merge``: gathers the jobs' lists into a Kaldi data dir (``wav.scp``, ``text``,
``utt2spk``, ``spk2utt``, ``utt2num_samples``, ``excluded.txt``) and prints the summary.

Checks, in order (reason keywords in ``excluded.txt``):
  malformed / duplicate / bad-id     the wav.scp line itself
  missing / unreadable / truncated   the file (a WAV whose data chunk is cut short is caught
                                     by comparing its header with the file size; libsndfile
                                     would silently read the shorter clip)
  empty / non-finite                 no samples; NaN or Inf in a float file
  low-rate                           sample rate below --fs: upsampling cannot restore the
                                     missing high band, so the model would learn muffled
                                     speech. Kept (resampled) only with --allow_upsample true.
                                     Clips above --fs are resampled (soxr, high quality).
  too-short / too-long               duration outside [--min_duration, --max_duration]
  silent                             peak below --silence_db dBFS
Clips with several channels are averaged to mono; clips whose peak exceeds 1 (float files,
resampling overshoot) are scaled to peak 1 rather than clipped. Both are counted.

Usage: dump_audio.py job --wav_scp data/train/wav.scp --work dump/raw/.train.tmp --out_dir dump/raw/train --job 1 --nj 4 [--fs 22050 ...]
       dump_audio.py merge --data_dir data/train --work dump/raw/.train.tmp --nj 4 --summary_path dump/raw/train/excluded.txt
"""

import argparse
import io
import json
import math
import os
import struct
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

import numpy as np
import soundfile as sf

from espnet2_vits_ext.recipe.kaldi_table import KaldiTableError, TableProblem, read_table, read_table_entries


class ClipRejected(Exception):
    """A clip that is not dumped; ``reason`` is one keyword, ``detail`` the explanation."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class ScpLine(NamedTuple):
    line_number: int  # 1-based, as editors show it
    utt_id: str
    source: str  # a path, or a command ending in "|"


class RejectedLine(NamedTuple):
    utt_id: str  # "-" where the line has none
    reason: str  # malformed or duplicate
    detail: str
    line_number: int
    text: str


def read_scp(path: str) -> Tuple[List[ScpLine], List[RejectedLine]]:
    """Entries of a wav.scp, and the lines that give no clip: no source after the id, an id
    already seen (the first one is kept), not UTF-8. Those clips are excluded, not fatal."""
    problems: List[TableProblem] = []
    entries = read_table_entries(path, problems=problems)
    rejected = []
    for problem in problems:
        if problem.kind == "missing":
            raise KaldiTableError(problem.message)
        if problem.kind == "duplicate":
            detail = f"utterance id already at line {entries[problem.key].line}"
        else:
            detail = "no audio source after the utterance id" if problem.kind == "malformed" else "not UTF-8"
        reason = "duplicate" if problem.kind == "duplicate" else "malformed"
        rejected.append(RejectedLine(problem.key or "-", reason, detail, problem.line, problem.text))
    return [ScpLine(entry.line, utt_id, entry.value) for utt_id, entry in entries.items()], rejected


def wav_truncation(path: str) -> Optional[str]:
    """Why the RIFF/WAVE file ``path`` is cut short, or None if it is whole (or not a WAV).

    Walks the chunks up to ``data`` and compares its declared size with the bytes left.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        position = 12
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return f"no data chunk before the end of the file ({size} bytes)"
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            position += 8
            if chunk_id == b"data":
                available = size - position
                # 0xFFFFFFFF and 0 mark streamed WAVs whose size was never filled in.
                if chunk_size not in (0, 0xFFFFFFFF) and available < chunk_size:
                    return f"header declares {chunk_size} bytes of audio, the file holds {available}"
                return None
            position += chunk_size + (chunk_size & 1)
            f.seek(position)


def read_clip(source: str, timeout: float) -> Tuple[np.ndarray, int]:
    """Samples ``(T, C)`` as float64 and the rate of a wav.scp source; ClipRejected if bad."""
    if source.endswith("|"):
        command = source[:-1].strip()
        try:
            result = subprocess.run(["bash", "-c", command], capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise ClipRejected("unreadable", f"command timed out after {timeout:.0f} s") from error
        if result.returncode != 0:
            message = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
            raise ClipRejected("unreadable", f"command exited {result.returncode}: {message[0]}")
        handle = io.BytesIO(result.stdout)
    else:
        if not os.path.isfile(source):
            raise ClipRejected("missing", "no such file")
        try:
            truncated = wav_truncation(source)
        except OSError as error:
            raise ClipRejected("unreadable", error.strerror or str(error)) from error
        if truncated:
            raise ClipRejected("truncated", truncated)
        handle = source
    try:
        samples, rate = sf.read(handle, dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as error:
        raise ClipRejected("unreadable", str(error).strip() or type(error).__name__) from error
    return samples, rate


class DumpOptions(NamedTuple):
    fs: int
    min_duration: float
    max_duration: float
    silence_db: float
    allow_upsample: bool
    command_timeout: float


def prepare_clip(samples: np.ndarray, rate: int, options: DumpOptions, notes: Counter) -> np.ndarray:
    """Mono samples ``(T,)`` at ``options.fs`` within [-1, 1]; ClipRejected if unusable."""
    if samples.shape[0] == 0:
        raise ClipRejected("empty", "no samples")
    if not np.all(np.isfinite(samples)):
        raise ClipRejected("non-finite", "NaN or Inf samples")
    if samples.shape[1] > 1:
        notes[f"downmixed {samples.shape[1]} channels to mono"] += 1
    mono = samples.mean(axis=1)
    if rate < options.fs and not options.allow_upsample:
        raise ClipRejected(
            "low-rate",
            f"{rate} Hz < {options.fs} Hz: upsampling cannot restore content above {rate // 2} Hz "
            "(--allow_upsample true keeps it)",
        )
    duration = mono.shape[0] / rate
    if duration < options.min_duration:
        raise ClipRejected("too-short", f"{duration:.2f} s < --min_duration {options.min_duration} s")
    if duration > options.max_duration:
        raise ClipRejected("too-long", f"{duration:.2f} s > --max_duration {options.max_duration} s")
    peak = float(np.max(np.abs(mono)))
    peak_db = 20 * math.log10(peak) if peak > 0 else -math.inf
    if peak_db < options.silence_db:
        raise ClipRejected("silent", f"peak {peak_db:.1f} dBFS < --silence_db {options.silence_db} dBFS")
    if rate != options.fs:
        import soxr

        mono = soxr.resample(mono, rate, options.fs, quality="HQ")
        notes[f"resampled from {rate} Hz"] += 1
    peak = float(np.max(np.abs(mono)))
    if peak > 1.0:
        mono = mono / peak
        notes["scaled down to peak 1 (was above full scale)"] += 1
    return mono


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """Write 16-bit PCM through a temporary name, so ``path`` is whole or absent."""
    # Encode in memory first: writing through Python's file API reports a full disk as
    # OSError(ENOSPC) with the path, where libsndfile would say "System error".
    encoded = io.BytesIO()
    sf.write(encoded, samples, rate, subtype="PCM_16", format="WAV")
    partial = path.with_name(path.name + ".part")
    try:
        with open(partial, "wb") as f:
            f.write(encoded.getbuffer())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def run_job(args) -> int:
    options = DumpOptions(
        args.fs, args.min_duration, args.max_duration, args.silence_db, args.allow_upsample, args.command_timeout
    )
    entries, rejected = read_scp(args.wav_scp)
    work = Path(args.work)
    first = (args.job - 1) * len(entries) // args.nj
    last = args.job * len(entries) // args.nj

    kept, excluded, notes = [], [], Counter()
    if args.job == 1:
        excluded += [tuple(line) for line in rejected]
    wav_dir = work / "wav"
    progress = work / f"progress.{args.job}"
    last_report = 0.0
    for index, entry in enumerate(entries[first:last], start=1):
        try:
            if "/" in entry.utt_id or entry.utt_id.startswith("."):
                raise ClipRejected("bad-id", "utterance id cannot be a file name")
            samples, rate = read_clip(entry.source, options.command_timeout)
            mono = prepare_clip(samples, rate, options, notes)
        except ClipRejected as rejected:
            excluded.append((entry.utt_id, rejected.reason, rejected.detail, entry.line_number, entry.source))
            continue
        target = wav_dir / f"{entry.utt_id}.wav"
        try:
            write_wav(target, mono, options.fs)
        except OSError as error:
            print(
                f"dump_audio.py: cannot write {target}: {error.strerror or error} "
                f"(clip {entry.utt_id}, {args.wav_scp}:{entry.line_number}); "
                "free disk space or choose a writable dump directory",
                file=sys.stderr,
            )
            return 1
        kept.append((entry.utt_id, f"{args.out_dir}/wav/{entry.utt_id}.wav", mono.shape[0]))
        if time.monotonic() - last_report > 1.0 or index == last - first:
            progress.write_text(str(index))
            last_report = time.monotonic()
    progress.write_text(str(last - first))

    with open(work / f"kept.{args.job}", "w", encoding="utf-8") as f:
        for utt_id, path, num_samples in kept:
            f.write(f"{utt_id}\t{path}\t{num_samples}\n")
    with open(work / f"excluded.{args.job}", "w", encoding="utf-8") as f:
        for utt_id, reason, detail, number, source in excluded:
            f.write(json.dumps(dict(utt=utt_id, reason=reason, detail=detail, line=number, source=source)) + "\n")
    (work / f"notes.{args.job}.json").write_text(json.dumps(notes))
    print(f"job {args.job}/{args.nj}: lines {first + 1}-{last}: kept {len(kept)}, excluded {len(excluded)}")
    return 0


def write_lines(path: Path, lines: List[str]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


def run_merge(args) -> int:
    data_dir, work = Path(args.data_dir), Path(args.work)
    texts = read_table(data_dir / "text", allow_empty_value=True)
    speakers = read_table(data_dir / "utt2spk")
    wav_scp = data_dir / "wav.scp"
    kept, excluded, notes = [], [], Counter()
    for job in range(1, args.nj + 1):
        with open(work / f"kept.{job}", encoding="utf-8") as f:
            kept += [line.rstrip("\n").split("\t") for line in f]
        with open(work / f"excluded.{job}", encoding="utf-8") as f:
            excluded += [json.loads(line) for line in f]
        notes.update(json.loads((work / f"notes.{job}.json").read_text()))

    final = []
    for utt_id, path, num_samples in kept:
        missing = [name for name, table in (("text", texts), ("utt2spk", speakers)) if utt_id not in table]
        if missing:
            excluded.append(
                dict(utt=utt_id, reason="no-text", detail=f"not in {' or '.join(missing)}", line=None, source=path)
            )
            (work / "wav" / f"{utt_id}.wav").unlink()
            continue
        final.append((utt_id, path, num_samples))
    final.sort()
    write_lines(work / "wav.scp", [f"{u} {p}" for u, p, _ in final])
    write_lines(work / "utt2num_samples", [f"{u} {n}" for u, _, n in final])
    write_lines(work / "text", [f"{u} {texts[u]}" for u, _, _ in final])
    write_lines(work / "utt2spk", [f"{u} {speakers[u]}" for u, _, _ in final])
    by_speaker: Dict[str, List[str]] = {}
    for u, _, _ in final:
        by_speaker.setdefault(speakers[u], []).append(u)
    write_lines(work / "spk2utt", [f"{s} {' '.join(us)}" for s, us in sorted(by_speaker.items())])

    excluded.sort(key=lambda e: (e["line"] is None, e["line"] or 0, e["utt"]))
    lines = ["# utt_id\treason\tdetail\tsource (wav.scp line: entry)"]
    for e in excluded:
        where = f"{wav_scp}:{e['line']}" if e["line"] is not None else str(wav_scp)
        lines.append(f"{e['utt']}\t{e['reason']}\t{e['detail']}\t{where}: {e['source']}")
    write_lines(work / "excluded.txt", lines)

    total = len(final) + len(excluded)
    reasons = Counter(e["reason"] for e in excluded)
    print(f"kept {len(final)} of {total} clips at {args.fs} Hz")
    for note, count in sorted(notes.items()):
        print(f"  {count} clip(s) {note}")
    detail = f" ({', '.join(f'{r}: {c}' for r, c in sorted(reasons.items()))})" if excluded else ""
    print(f"excluded {len(excluded)} of {total} clips{detail}: see {args.summary_path}")
    if not final:
        print(f"dump_audio.py: no usable clip in {wav_scp}: see {work / 'excluded.txt'}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    job = commands.add_parser("job", help="dump one block of wav.scp")
    job.add_argument("--wav_scp", required=True)
    job.add_argument("--work", required=True, help="working directory (the temporary dump dir)")
    job.add_argument("--out_dir", required=True, help="final dump dir, as wav.scp will name it")
    job.add_argument("--job", type=int, required=True)
    job.add_argument("--nj", type=int, required=True)
    job.add_argument("--fs", type=int, default=22050)
    job.add_argument("--min_duration", type=float, default=0.5)
    job.add_argument("--max_duration", type=float, default=20.0)
    job.add_argument("--silence_db", type=float, default=-60.0)
    job.add_argument("--allow_upsample", choices=("true", "false"), default="false")
    job.add_argument("--command_timeout", type=float, default=60.0)
    merge = commands.add_parser("merge", help="merge the jobs' lists into a data dir")
    merge.add_argument("--data_dir", required=True)
    merge.add_argument("--work", required=True)
    merge.add_argument("--nj", type=int, required=True)
    merge.add_argument("--fs", type=int, default=22050)
    merge.add_argument("--summary_path", required=True, help="where excluded.txt will be, for the summary")
    args = parser.parse_args(argv)
    try:
        if args.command == "job":
            args.allow_upsample = args.allow_upsample == "true"
            return run_job(args)
        return run_merge(args)
    except KaldiTableError as error:
        print(f"dump_audio.py {args.command}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        # Writing the lists failed (disk full, permissions): a clear line, no traceback.
        print(f"dump_audio.py {args.command}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
