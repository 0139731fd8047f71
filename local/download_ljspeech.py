#!/usr/bin/env python3
"""Download the LJSpeech 1.1 archive (resumable, SHA-256 verified) and extract it atomically.

The download (resumable with HTTP Range requests, renamed into place only when its SHA-256
matches) and the atomic extraction are local/download_archive.py's, shared with the other corpora:
the archive ends up as ``<download_dir>/<name>``, the corpus as ``<download_dir>/LJSpeech-1.1``
with a ``.done`` marker holding the archive's checksum. A failed write is one line naming the
file; a partial download is kept to resume from, a partial extraction is removed.

Usage: local/download_ljspeech.py [--url URL] [--sha256 HEX] [--retries N] DOWNLOAD_DIR
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

DEFAULT_URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
DEFAULT_SHA256 = "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"
CORPUS_NAME = "LJSpeech-1.1"

log = logging.getLogger("download_ljspeech")


def extract(archive: Path, download_dir: Path, sha256: str) -> Path:
    """Extract ``archive`` (which holds ``LJSpeech-1.1/``) into ``download_dir`` atomically.

    Returns:
        The corpus directory ``download_dir/LJSpeech-1.1``.
    """
    return unpack(archive, download_dir / CORPUS_NAME, sha256, CORPUS_NAME, ("metadata.csv", "wavs"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("download_dir", type=Path, help="where the archive and the corpus go")
    parser.add_argument("--url", default=DEFAULT_URL, help="address of LJSpeech-1.1.tar.bz2")
    parser.add_argument("--sha256", default=DEFAULT_SHA256, help="expected SHA-256 of the archive")
    parser.add_argument("--retries", type=int, default=5, help="resume this many times after a dropped connection")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before giving up a connection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    name = Path(urllib.parse.urlparse(args.url).path).name or f"{CORPUS_NAME}.tar.bz2"
    try:
        archive = download(args.url, args.sha256, args.download_dir / name, args.retries, args.timeout)
        corpus = extract(archive, args.download_dir, args.sha256)
    except DownloadError as error:
        log.error("%s", error)
        return 1
    except OutputError as error:
        # The partial download stays (as <archive>.part) to resume from; a partial extraction does not.
        log.error("%s; free space or fix the download directory, then rerun to continue", error)
        return 1
    print(corpus)
    return 0


if __name__ == "__main__":
    sys.exit(main())
