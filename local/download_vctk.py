#!/usr/bin/env python3
"""Download the VCTK 0.92 archive (resumable, SHA-256 verified) and extract it atomically.

VCTK 0.92 (CSTR, University of Edinburgh; CC BY 4.0): 110 English speakers, about 400 sentences
each, 48 kHz FLAC recorded with two microphones (``wav48_silence_trimmed/<speaker>/<id>_mic{1,2}.flac``),
transcripts in ``txt/<speaker>/<id>.txt`` (speaker p315 has none). The archive (about 11 GB) is a
zip whose root holds these folders. Fetching and unpacking are espnet2_vits_ext/recipe/download_archive.py's: the
archive ends up as ``<download_dir>/VCTK-Corpus-0.92.zip``, the corpus as
``<download_dir>/VCTK-Corpus-0.92`` with a ``.done`` marker holding the archive's checksum. A
dropped connection resumes; a wrong checksum removes the download and is one error line; a failed
write names the file, keeps a partial download and removes a partial extraction.

Usage: local/download_vctk.py [--url URL] [--sha256 HEX] [--retries N] DOWNLOAD_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from espnet2_vits_ext.recipe.download_archive import download_main, unpack

DEFAULT_URL = "https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip"
# The checksum torchaudio's VCTK_092 dataset verifies the same archive with.
DEFAULT_SHA256 = "f96258be9fdc2cbff6559541aae7ea4f59df3fcaf5cf963aae5ca647357e359c"
CORPUS_NAME = "VCTK-Corpus-0.92"
REQUIRED = ("txt", "wav48_silence_trimmed")


def extract(archive: Path, download_dir: Path, sha256: str) -> Path:
    """Unpack ``archive`` (whose root holds the corpus folders) into ``download_dir/VCTK-Corpus-0.92``.

    Returns:
        The corpus directory.
    """
    return unpack(archive, download_dir / CORPUS_NAME, sha256, None, REQUIRED)


def main(argv: list[str] | None = None) -> int:
    return download_main(argv, __doc__.split("\n\n")[0], DEFAULT_URL, DEFAULT_SHA256, f"{CORPUS_NAME}.zip", extract)


if __name__ == "__main__":
    sys.exit(main())
