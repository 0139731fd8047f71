#!/usr/bin/env python3
"""Download the VCTK 0.92 archive (resumable, SHA-256 verified) and extract it atomically.

VCTK 0.92 (CSTR, University of Edinburgh; CC BY 4.0): 110 English speakers, about 400 sentences
each, 48 kHz FLAC recorded with two microphones (``wav48_silence_trimmed/<speaker>/<id>_mic{1,2}.flac``),
transcripts in ``txt/<speaker>/<id>.txt`` (speaker p315 has none). The archive (about 11 GB) is a
zip whose root holds these folders. Fetching and unpacking are local/download_archive.py's: the
archive ends up as ``<download_dir>/VCTK-Corpus-0.92.zip``, the corpus as
``<download_dir>/VCTK-Corpus-0.92`` with a ``.done`` marker holding the archive's checksum. A
dropped connection resumes; a wrong checksum removes the download and is one error line; a failed
write names the file, keeps a partial download and removes a partial extraction.

Usage: local/download_vctk.py [--url URL] [--sha256 HEX] [--retries N] DOWNLOAD_DIR
"""

from __future__ import annotations

import argparse
import logging
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from atomic_output import OutputError  # noqa: E402
from download_archive import DownloadError, download, unpack  # noqa: E402

DEFAULT_URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip"
# The checksum torchaudio's VCTK_092 dataset verifies the same archive with.
DEFAULT_SHA256 = "f96258be9fdc2cbff6559541aae7ea4f59df3fcaf5cf963aae5ca647357e359c"
CORPUS_NAME = "VCTK-Corpus-0.92"
REQUIRED = ("txt", "wav48_silence_trimmed")

log = logging.getLogger("download_vctk")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("download_dir", type=Path, help="where the archive and the corpus go")
    parser.add_argument("--url", default=DEFAULT_URL, help="address of VCTK-Corpus-0.92.zip")
    parser.add_argument("--sha256", default=DEFAULT_SHA256, help="expected SHA-256 of the archive")
    parser.add_argument("--retries", type=int, default=5, help="resume this many times after a dropped connection")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before giving up a connection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    name = Path(urllib.parse.urlparse(args.url).path).name or f"{CORPUS_NAME}.zip"
    try:
        archive = download(args.url, args.sha256, args.download_dir / name, args.retries, args.timeout)
        corpus = unpack(archive, args.download_dir / CORPUS_NAME, args.sha256, None, REQUIRED)
    except DownloadError as error:
        log.error("%s (--vctk_url, --vctk_sha256)", error)
        return 1
    except OutputError as error:
        log.error("%s; free space or fix the download directory, then rerun to continue", error)
        return 1
    print(corpus)
    return 0


if __name__ == "__main__":
    sys.exit(main())
