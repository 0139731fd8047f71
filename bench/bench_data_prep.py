"""Data preparation throughput (recipe stages 3-4) in clips per second per core.

Builds a Kaldi data dir (wav.scp, text, utt2spk) from an LJSpeech-layout folder
(``metadata.csv`` + ``wavs/``), each clip listed ``--copies`` times under distinct ids so
that start-up costs do not dominate, then times ``local/dump_audio.sh`` (stage 3: check,
resample, dump) and ``local/prepare_text.sh`` (stage 4: clean, phonemise, filter, token
list) with ``--nj`` jobs, in a temporary directory. Reports clips/s/core two ways:
``clips / wall seconds / nj`` and ``clips / CPU seconds`` of the child processes (less
sensitive to other load on the machine). Prints one JSON object per stage.

Usage: python bench/bench_data_prep.py --corpus /path/to/ljspeech [--copies 4] [--nj 1]
"""

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from common import REPO


def write_data_dir(corpus: Path, copies: int, data_dir: Path) -> int:
    """wav.scp, text and utt2spk of the corpus's clips, ``copies`` times; returns clips."""
    data_dir.mkdir(parents=True)
    rows = []
    with open(corpus / "metadata.csv", encoding="utf-8") as stream:
        for line in stream:
            utt_id, _raw, normalized = line.rstrip("\n").split("|")
            for copy in range(copies):
                rows.append((f"{utt_id}-{copy}", corpus / "wavs" / f"{utt_id}.wav", normalized))
    rows.sort()
    (data_dir / "wav.scp").write_text("".join(f"{u} {w}\n" for u, w, _ in rows))
    (data_dir / "text").write_text("".join(f"{u} {t}\n" for u, _, t in rows))
    (data_dir / "utt2spk").write_text("".join(f"{u} LJ\n" for u, _, _ in rows))
    return len(rows)


def timed(command, cwd: Path) -> dict:
    """Wall and children's CPU seconds of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True, env=dict(os.environ))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return dict(wall_s=wall, cpu_s=cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", required=True, type=Path)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--nj", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_data_prep_") as tmp:
        work = Path(tmp)
        clips = write_data_dir(args.corpus.resolve(), args.copies, work / "data" / "train")
        stages = dict(
            dump_audio=[str(REPO / "local" / "dump_audio.sh"), "--nj", str(args.nj),
                        "--logdir", str(work / "log"), "data/train", "dump/raw/train"],
            prepare_text=[str(REPO / "local" / "prepare_text.sh"), "--nj", str(args.nj),
                          "dump/raw/train", "dump/token_list/tokens.txt"],
        )
        for stage, command in stages.items():
            figures = timed(command, work)
            print(json.dumps(dict(
                stage=stage, clips=clips, nj=args.nj, **figures,
                clips_per_s_per_core_wall=clips / figures["wall_s"] / args.nj,
                clips_per_cpu_s=clips / figures["cpu_s"],
            )))


if __name__ == "__main__":
    main()
