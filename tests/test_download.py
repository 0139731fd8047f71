"""Stage 1's download: resumable with HTTP Range, SHA-256 verified, atomic; atomic extraction.

A local HTTP server on 127.0.0.1 serves a small LJSpeech-layout archive, and can drop the
connection part-way, ignore Range requests, or serve different bytes.
"""

import importlib.util
import io
import random
import tarfile
from pathlib import Path

import pytest

from helpers.file_server import Server, sha

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("download_ljspeech", ROOT / "local" / "download_ljspeech.py")
download_ljspeech = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(download_ljspeech)
from espnet2_vits_ext.recipe import download_archive  # noqa: E402


def make_archive() -> bytes:
    """A tar.bz2 holding LJSpeech-1.1/metadata.csv and one file in wavs/ (random, incompressible)."""
    payload = random.Random(0).randbytes(256 * 1024)  # incompressible: the archive is > 256 KB
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tar:
        for name, data in [
            ("LJSpeech-1.1/metadata.csv", b"LJ001-0001|Hello.|Hello.\n"),
            ("LJSpeech-1.1/wavs/LJ001-0001.wav", payload),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def archive() -> bytes:
    return make_archive()


def test_download_and_extract(tmp_path, archive):
    with Server(archive) as server:
        assert download_ljspeech.main(["--url", server.url, "--sha256", sha(archive), str(tmp_path)]) == 0
    assert (tmp_path / "LJSpeech-1.1.tar.bz2").read_bytes() == archive
    corpus = tmp_path / "LJSpeech-1.1"
    assert (corpus / "metadata.csv").read_text() == "LJ001-0001|Hello.|Hello.\n"
    assert (corpus / "wavs" / "LJ001-0001.wav").stat().st_size == 256 * 1024
    assert (corpus / ".done").read_text().strip() == sha(archive)
    # Nothing half-done is left beside the results.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "LJSpeech-1.1",
        "LJSpeech-1.1.tar.bz2",
        "LJSpeech-1.1.tar.bz2.sha256",
    ]


def test_second_run_skips_the_network(tmp_path, archive):
    with Server(archive) as server:
        assert download_ljspeech.main(["--url", server.url, "--sha256", sha(archive), str(tmp_path)]) == 0
        count = len(server.requests)
        assert download_ljspeech.main(["--url", server.url, "--sha256", sha(archive), str(tmp_path)]) == 0
        assert len(server.requests) == count


def test_resumes_after_dropped_connection(tmp_path, archive):
    with Server(archive) as server:
        server.drop_first_after = 100_000
        target = tmp_path / "LJSpeech-1.1.tar.bz2"
        download_archive.download(server.url, sha(archive), target, retries=2, timeout=10)
    assert target.read_bytes() == archive
    assert server.requests[0][1] is None
    # The second request asks only for what the first did not deliver.
    assert server.requests[1][1] == "bytes=100000-"
    assert len(server.requests) == 2


def test_resumes_a_part_file_left_by_a_killed_run(tmp_path, archive):
    target = tmp_path / "LJSpeech-1.1.tar.bz2"
    (tmp_path / "LJSpeech-1.1.tar.bz2.part").write_bytes(archive[:5000])
    with Server(archive) as server:
        download_archive.download(server.url, sha(archive), target)
    assert target.read_bytes() == archive
    assert server.requests == [("/LJSpeech-1.1.tar.bz2", "bytes=5000-")]


def test_server_ignoring_range_restarts_cleanly(tmp_path, archive):
    target = tmp_path / "LJSpeech-1.1.tar.bz2"
    (tmp_path / "LJSpeech-1.1.tar.bz2.part").write_bytes(b"x" * 5000)  # garbage must not stay in front
    with Server(archive) as server:
        server.honour_range = False
        download_archive.download(server.url, sha(archive), target)
    assert target.read_bytes() == archive


def test_complete_part_file_is_verified_not_refetched(tmp_path, archive):
    target = tmp_path / "LJSpeech-1.1.tar.bz2"
    (tmp_path / "LJSpeech-1.1.tar.bz2.part").write_bytes(archive)
    with Server(archive) as server:
        download_archive.download(server.url, sha(archive), target)
    assert target.read_bytes() == archive
    assert server.requests == [("/LJSpeech-1.1.tar.bz2", f"bytes={len(archive)}-")]


def test_checksum_mismatch_is_an_error_that_keeps_nothing(tmp_path, archive, caplog):
    wrong = "0" * 64
    with Server(archive) as server:
        assert download_ljspeech.main(["--url", server.url, "--sha256", wrong, str(tmp_path)]) == 1
    assert "checksum mismatch" in caplog.text and wrong in caplog.text and sha(archive) in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_corrupt_archive_in_place_is_rechecked(tmp_path, archive):
    # A file at the final name without a verification marker (say, copied there by hand) is
    # checked, not trusted; a wrong one is an error and is removed.
    target = tmp_path / "LJSpeech-1.1.tar.bz2"
    target.write_bytes(archive[:-10] + b"0123456789")
    with Server(archive) as server:
        server.honour_range = True
        with pytest.raises(download_archive.DownloadError, match="checksum mismatch"):
            download_archive.download(server.url, sha(archive), target)
    assert not target.exists() and not (tmp_path / "LJSpeech-1.1.tar.bz2.part").exists()


def test_http_error_is_reported(tmp_path, archive):
    with Server(archive) as server:
        with pytest.raises(download_archive.DownloadError, match="HTTP 404"):
            download_archive.download(server.url.replace(".tar.bz2", ".zip"), sha(archive), tmp_path / "x.zip")


def test_extract_refuses_an_archive_without_the_corpus(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tar:
        info = tarfile.TarInfo("something/else.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    archive = tmp_path / "x.tar.bz2"
    archive.write_bytes(buffer.getvalue())
    with pytest.raises(download_archive.DownloadError, match="metadata.csv"):
        download_ljspeech.extract(archive, tmp_path, sha(buffer.getvalue()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.tar.bz2"]
