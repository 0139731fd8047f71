#!/usr/bin/env python3
"""Download the LJSpeech 1.1 archive (resumable, SHA-256 verified) and extract it atomically.

The download (resumable with HTTP Range requests, renamed into place only when its SHA-256
matches) and the atomic extraction are espnet2_vits_ext/recipe/download_archive.py's, shared with the other corpora:
the archive ends up as ``<download_dir>/<name>``, the corpus as ``<download_dir>/LJSpeech-1.1``
with a ``.done`` marker holding the archive's checksum. A failed write is one line naming the
file; a partial download is kept to resume from, a partial extraction is removed.

Usage: local/download_ljspeech.py [--url URL] [--sha256 HEX] [--retries N] DOWNLOAD_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from espnet2_vits_ext.recipe.download_archive import download_main, unpack

DEFAULT_URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"
DEFAULT_SHA256 = "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"
CORPUS_NAME = "LJSpeech-1.1"

def extract(archive: Path, download_dir: Path, sha256: str) -> Path:
    """Extract ``archive`` (which holds ``LJSpeech-1.1/``) into ``download_dir`` atomically.

    Returns:
        The corpus directory ``download_dir/LJSpeech-1.1``.
    """
    return unpack(archive, download_dir / CORPUS_NAME, sha256, CORPUS_NAME, ("metadata.csv", "wavs"))


def main(argv: list[str] | None = None) -> int:
    return download_main(argv, __doc__.split("\n\n")[0], DEFAULT_URL, DEFAULT_SHA256, f"{CORPUS_NAME}.tar.bz2", extract)


if __name__ == "__main__":
    sys.exit(main())
