"""Fetch a corpus archive (resumable, SHA-256 verified) and unpack it atomically: the shared part
of the corpus downloaders (``local/download_ljspeech.py``, ``local/download_vctk.py``).

The archive is fetched into ``<target>.part``. An interrupted download (a dropped connection, or a
killed process) resumes from the bytes already there with an HTTP Range request; a server that
ignores Range makes it start over. Only a file whose SHA-256 matches is renamed to ``<target>``,
so a partial or corrupt file is never taken for the archive; a mismatch is an error that removes
the bad download. Unpacking (tar of any compression, or zip) goes to a temporary directory renamed
into place when complete, with a ``.done`` marker holding the archive's checksum. A failed write
(disk full, unwritable directory) stops at once with one line naming the file and the OS error: a
partial unpacking is removed, a partial download is kept to resume from; a rerun continues.

Not a stage script of its own: the downloaders import it.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Callable, Optional, Sequence

from espnet2_vits_ext.recipe.atomic_output import OutputError, building, replace_directory, writing

CHUNK_BYTES = 1 << 20

log = logging.getLogger("download")


class DownloadError(RuntimeError):
    """The archive could not be fetched, or it is not the expected one."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_once(url: str, part: Path, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its size); raise on a dropped connection."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "espnet2-vits-ext recipe"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:
            # Nothing left to send from offset `have`: the part file is complete (or too long);
            # the checksum decides.
            log.info("server has no bytes after %d: the download looks complete", have)
            return
        raise
    with response:
        if have and response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            if not content_range.startswith(f"bytes {have}-"):
                raise DownloadError(f"asked for bytes {have}- of {url}, got Content-Range {content_range!r}")
            mode = "ab"
            log.info("resuming %s at byte %d", part.name, have)
        else:
            if have:
                log.info("server ignored the Range request: downloading %s from the start", part.name)
            mode = "wb"
            have = 0
        expected = response.headers.get("Content-Length")
        expected = int(expected) if expected is not None else None
        received = 0
        last_report = time.monotonic()
        # Only the writes are wrapped: an OSError of response.read is a dropped connection (retried),
        # one of the file is an OutputError (fatal: retrying cannot free the disk).
        with writing(part):
            stream = part.open(mode)
        try:
            while True:
                chunk = response.read(CHUNK_BYTES)
                if not chunk:
                    break
                with writing(part):
                    stream.write(chunk)
                received += len(chunk)
                if time.monotonic() - last_report > 30:
                    log.info("%s: %.0f MB", part.name, (have + received) / 1e6)
                    last_report = time.monotonic()
        finally:
            with writing(part):
                stream.close()
        if expected is not None and received < expected:
            raise http.client.IncompleteRead(b"", expected - received)


def download(url: str, sha256: str, target: Path, retries: int = 5, timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``target`` unless it is already there with checksum ``sha256``.

    Args:
        url: http(s) address of the archive.
        sha256: its expected SHA-256 (hex).
        target: where the verified archive ends up.
        retries: how many dropped connections to resume from before giving up.
        timeout: seconds without data before a connection counts as dropped.

    Returns:
        ``target``.
    """
    sha256 = sha256.lower()
    with writing(target.parent):
        target.parent.mkdir(parents=True, exist_ok=True)
    verified_marker = target.with_name(target.name + ".sha256")
    if target.exists() and verified_marker.exists() and verified_marker.read_text().strip() == sha256:
        log.info("%s already downloaded and verified", target)
        return target
    part = target.with_name(target.name + ".part")
    if target.exists():
        # A previous run completed the rename but not the marker: check it again from scratch.
        with writing(part):
            os.replace(target, part)
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, timeout)
            break
        except (OSError, http.client.HTTPException) as error:
            if isinstance(error, urllib.error.HTTPError) and error.code < 500:
                raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}") from None
            if attempt == retries:
                raise DownloadError(
                    f"download of {url} failed after {retries + 1} attempts ({error!r}); "
                    f"run again to resume from the {part.stat().st_size if part.exists() else 0} bytes in {part}"
                ) from None
            wait = min(2**attempt, 30)
            log.warning("connection dropped (%r); resuming in %d s (attempt %d of %d)", error, wait, attempt + 2, retries + 1)
            time.sleep(wait)
    actual = sha256_of(part)
    if actual != sha256:
        size = part.stat().st_size
        part.unlink()
        raise DownloadError(
            f"checksum mismatch for {url}: expected SHA-256 {sha256}, got {actual} ({size} bytes); "
            f"the bad download was removed. Check the archive's URL and SHA-256 options."
        )
    with writing(verified_marker):
        os.replace(part, target)
        tmp_marker = verified_marker.with_name(verified_marker.name + ".tmp")
        tmp_marker.write_text(sha256 + "\n")
        os.replace(tmp_marker, verified_marker)
    log.info("downloaded %s (SHA-256 verified)", target)
    return target


def _unpack_members(archive: Path, into: Path) -> None:
    """Unpack ``archive`` (tar or zip) into ``into`` member by member, to name the file a full disk stops at."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            for member in zipped.infolist():
                # zipfile drops absolute prefixes and ".." itself; the target must stay inside `into`.
                with writing(into / member.filename):
                    zipped.extract(member, into)
        return
    with tarfile.open(archive) as tar:
        # The "data" filter refuses absolute paths, "..", and links out of the directory.
        for member in tar:
            with writing(into / member.name):
                tar.extract(member, into, filter="data")


def unpack(archive: Path, corpus: Path, sha256: str, inner: Optional[str], required: Sequence[str]) -> Path:
    """Unpack ``archive`` to the directory ``corpus`` atomically, unless a marked unpacking is there.

    Args:
        archive: the verified archive (tar of any compression, or zip).
        corpus: the corpus directory to create (replaced if an older, unmarked one is there).
        sha256: the archive's checksum, recorded in ``corpus/.done``.
        inner: the archive's top directory that becomes ``corpus``; None: the archive's root.
        required: paths inside the corpus that must exist (else :class:`DownloadError`).

    Returns:
        ``corpus``.
    """
    done = corpus / ".done"
    if done.exists() and done.read_text().strip() == sha256.lower():
        log.info("%s already extracted", corpus)
        return corpus
    with building(corpus, kind="extracting") as tmp:
        log.info("extracting %s (minutes for a full corpus)", archive)
        _unpack_members(archive, tmp)
        extracted = tmp / inner if inner else tmp
        missing = [name for name in required if not (extracted / name).exists()]
        if missing:
            where = f"{inner}/" if inner else ""
            raise DownloadError(f"{archive} does not hold " + " and ".join(where + name for name in missing))
        with writing(extracted / ".done"):
            (extracted / ".done").write_text(sha256.lower() + "\n")
        # An older, unmarked extraction is replaced (it is ours, inside the download directory).
        replace_directory(extracted, corpus)
    return corpus


def download_main(
    argv: Optional[Sequence[str]],
    description: str,
    default_url: str,
    default_sha256: str,
    fallback_name: str,
    place: Callable[[Path, Path, str], Path],
) -> int:
    """The command line every corpus downloader shares: fetch the archive, then ``place`` it.

    Args:
        argv: Command-line arguments (None: ``sys.argv[1:]``).
        description: The downloader's one-line summary, for ``--help``.
        default_url, default_sha256: The corpus's archive and its checksum.
        fallback_name: Archive file name when the URL's path has none.
        place: ``place(archive, download_dir, sha256)`` unpacks and returns the corpus directory.

    Returns:
        The exit status: 0 (the corpus directory printed on stdout) or 1 (one error line logged).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("download_dir", type=Path, help="where the archive and the corpus go")
    parser.add_argument("--url", default=default_url, help="address of the archive")
    parser.add_argument("--sha256", default=default_sha256, help="expected SHA-256 of the archive")
    parser.add_argument("--retries", type=int, default=5, help="resume this many times after a dropped connection")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds without data before giving up a connection")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    name = Path(urllib.parse.urlparse(args.url).path).name or fallback_name
    try:
        archive = download(args.url, args.sha256, args.download_dir / name, args.retries, args.timeout)
        corpus = place(archive, args.download_dir, args.sha256)
    except DownloadError as error:
        log.error("%s", error)
        return 1
    except OutputError as error:
        # The partial download stays (as <archive>.part) to resume from; a partial extraction does not.
        log.error("%s; free space or fix the download directory, then rerun to continue", error)
        return 1
    print(corpus)
    return 0
