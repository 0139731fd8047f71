"""A full disk or an unwritable output directory in stages 1, 2, 5 and 7 (stages 3-4 and training
have their own tests): each stage stops with one line naming the file and the OS error, writes no
``.done``, leaves nothing half-written in place, and a rerun without the fault finishes.

A full disk is simulated by a file size limit (``RLIMIT_FSIZE``): writes past it fail with EFBIG
("File too large") as they fail with ENOSPC on a full disk. ``chmod`` cannot make a directory
unwritable to root, who runs the tests; a file where the output directory goes does.
"""

import io
import shutil
import sys
import tarfile
from pathlib import Path

import pytest

from helpers.file_server import Server, sha
from helpers.full_disk import assert_clear_failure, hidden, run

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / "local"


# ----- stage 1: download and extraction -----


def compressible_archive() -> bytes:
    """A tar.bz2 of LJSpeech-1.1/ whose wav (512 KB of zeros) is far larger than the archive."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tar:
        for name, data in [
            ("LJSpeech-1.1/metadata.csv", b"LJ001-0001|Hello.|Hello.\n"),
            ("LJSpeech-1.1/wavs/LJ001-0001.wav", bytes(512 * 1024)),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_stage1_download_and_extraction_full_disk(tmp_path):
    archive = compressible_archive()
    assert len(archive) > 100
    downloads = tmp_path / "downloads"
    with Server(archive) as server:
        command = [sys.executable, LOCAL / "download_ljspeech.py", "--url", server.url, "--sha256", sha(archive)]
        command.append(downloads)

        # The disk fills during the download: fatal at once (one request, no retries), the partial
        # download stays to resume from, and nothing takes the archive's name.
        result = run(command, tmp_path, limit=100)
        assert_clear_failure(result, "LJSpeech-1.1.tar.bz2.part", "File too large")
        assert len(server.requests) == 1
        assert sorted(p.name for p in downloads.iterdir()) == ["LJSpeech-1.1.tar.bz2.part"]

        # A killed extraction left its temporary directory behind.
        stale = downloads / ".LJSpeech-1.1.extracting.999999"
        (stale / "LJSpeech-1.1").mkdir(parents=True)

        # Room for the archive but not for the extracted wav: the download resumes and is verified,
        # the extraction stops naming the wav, and no corpus, marker or temporary directory remains.
        result = run(command, tmp_path, limit=64 * 1024)
        assert_clear_failure(result, "wavs/LJ001-0001.wav", "File too large")
        assert server.requests[1][1] == "bytes=100-"
        assert sorted(p.name for p in downloads.iterdir()) == ["LJSpeech-1.1.tar.bz2", "LJSpeech-1.1.tar.bz2.sha256"]

        # The download directory is a file: unwritable.
        blocked = tmp_path / "blocked"
        blocked.write_text("not a directory\n")
        result = run(command[:-1] + [blocked / "downloads"], tmp_path)
        assert_clear_failure(result, "blocked/downloads", "Not a directory")

        count = len(server.requests)
        result = run(command, tmp_path)
        assert result.returncode == 0, result.stderr
        assert len(server.requests) == count  # the verified archive was not fetched again
    corpus = downloads / "LJSpeech-1.1"
    assert (corpus / "wavs" / "LJ001-0001.wav").stat().st_size == 512 * 1024
    assert (corpus / ".done").read_text().strip() == sha(archive)
    assert hidden(downloads) == []


# ----- stage 1: the mini corpus -----


def test_stage1_mini_corpus_full_disk(tmp_path):
    out = tmp_path / "downloads" / "mini"
    stale = out.with_name(".mini.tmp.999999")  # left by a killed run
    (stale / "wavs").mkdir(parents=True)
    command = [sys.executable, LOCAL / "make_mini_corpus.py", "--num_utts", "90", out]

    result = run(command, tmp_path, limit=20_000)  # less than one clip
    assert_clear_failure(result, "/wavs/MINI-0001.wav", "File too large")
    assert list(out.parent.iterdir()) == []  # no corpus, no .done, no temporary directory

    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr
    assert len((out / "metadata.csv").read_text().splitlines()) == 90
    assert (out / ".done").is_file()
    assert [p.name for p in out.parent.iterdir()] == ["mini"]


# ----- stage 2: data directories -----


def write_ljspeech_layout(root: Path, ids: list) -> Path:
    corpus = root / "corpus"
    (corpus / "wavs").mkdir(parents=True)
    (corpus / "metadata.csv").write_text("".join(f"{i}|Text {i}.|Text {i}.\n" for i in ids))
    for utt_id in ids:
        (corpus / "wavs" / f"{utt_id}.wav").write_bytes(b"RIFF")
    split = corpus / "split"
    split.mkdir()
    for name, part in (("train", ids[:-2]), ("val", ids[-2:-1]), ("test", ids[-1:])):
        (split / f"{name}.ids").write_text("".join(i + "\n" for i in part))
    return corpus


def test_stage2_data_dirs_full_disk(tmp_path):
    corpus = write_ljspeech_layout(tmp_path, [f"LJ001-{i:04d}" for i in range(1, 7)])
    data = tmp_path / "data"
    command = [sys.executable, LOCAL / "prepare_data.py", corpus, corpus / "split", data]
    data.mkdir()
    (data / ".train.tmp.999999").mkdir()  # left by a killed run

    result = run(command, tmp_path, limit=100)  # below the training set's wav.scp
    assert_clear_failure(result, "/wav.scp", "File too large")
    assert list(data.iterdir()) == []  # no set, no temporary directory

    data.rmdir()
    data.write_text("a file where the data directory goes\n")
    result = run(command, tmp_path)
    assert_clear_failure(result, "data", "File exists")
    data.unlink()

    result = run(command, tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in data.iterdir()) == ["test", "train", "val"]
    assert len((data / "train" / "wav.scp").read_text().splitlines()) == 4


# ----- stages 5 and 7: the shell stages (ESPnet's programs run as jobs; minutes on 2 busy cores) -----


@pytest.fixture(scope="module")
def tiny_dumps(tmp_path_factory):
    """Dump dirs train/ and val/ of the tiny corpus, its config and token list, and a root to run in."""
    from helpers.tiny_training import write_tiny_config, write_tiny_corpus

    root = tmp_path_factory.mktemp("shell_stages")
    corpus = write_tiny_corpus(root / "corpus", utterances=4)
    for name, prefix in (("train", ""), ("val", "valid_")):
        dump = root / "dump" / name
        dump.mkdir(parents=True)
        for key, filename in (("wav_scp", "wav.scp"), ("text", "text")):
            (dump / filename).write_text(corpus[prefix + key].read_text())
    config = write_tiny_config(root / "train.yaml", max_epoch=1, num_iters_per_epoch=1)
    return root, config, corpus


RUNNER = ROOT / "utils" / "run_local.py"


@pytest.mark.slow
def test_stage5_collect_stats_full_disk(tiny_dumps):
    root, config, corpus = tiny_dumps
    command = [
        "bash", LOCAL / "collect_stats.sh", "--nj", "1", "--cmd", RUNNER, "--train_config", config,
        "--token_list", corpus["tokens"], "--token_type", "char", "dump/train", "dump/val",
    ]  # fmt: skip

    # The experiment directory is a file: unwritable, found before any job starts.
    (root / "blocked").write_text("not a directory\n")
    result = run(command + ["blocked/stats"], root)
    assert_clear_failure(result, "blocked/stats.tmp/logdir", "Not a directory")

    # The disk fills while the job writes its statistics (and its log, and the runner's end line).
    stats = root / "exp" / "stats"
    result = run(command + [stats], root, limit=2000)
    assert_clear_failure(result, f"{stats}.tmp", "File too large")
    assert not stats.exists()

    result = run(command + [stats], root)
    assert result.returncode == 0, result.stderr
    assert (stats / ".done").is_file() and (stats / "train" / "feats_stats.npz").stat().st_size > 0
    assert sorted(p.name for p in stats.parent.iterdir()) == ["stats"]


@pytest.fixture(scope="module")
def tiny_model(tiny_dumps):
    """A tiny FastVITS trained for one iteration: its experiment directory and model file."""
    from helpers.tiny_training import train_args
    from espnet2_vits_ext.bin.gan_tts_train import main

    root, config, corpus = tiny_dumps
    exp = root / "exp" / "tts_tiny"
    main(train_args(corpus, config, exp))
    model = exp / "latest.pth"
    assert model.exists()
    return exp, model


@pytest.mark.slow
def test_stage7_synthesis_and_packing_full_disk(tiny_dumps, tiny_model):
    import numpy as np

    root, _, _ = tiny_dumps
    exp, model = tiny_model
    synthesize = ["bash", LOCAL / "synthesize.sh", "--nj", "1", "--cmd", RUNNER, exp, model, "dump/val"]

    # The decoding directory is a file: unwritable, found before any job starts.
    blocked = exp / "decode_blocked"
    blocked.write_text("not a directory\n")
    result = run(synthesize + [blocked / "val"], root)
    assert_clear_failure(result, "decode_blocked/val.tmp/log", "Not a directory")

    out = exp / "decode" / "val"
    result = run(synthesize + [out], root)
    assert result.returncode == 0, result.stderr
    assert len((out / "wav" / "wav.scp").read_text().splitlines()) == 2 and (out / ".done").is_file()

    # Packing: the disk fills while ESPnet writes the zip.
    stats = root / "exp" / "stats_for_packing"
    (stats / "train").mkdir(parents=True)
    np.savez(stats / "train" / "feats_stats.npz", count=np.array(1), sum=np.zeros(33), sum_square=np.ones(33))
    packed = exp / "packed" / "tts_tiny.zip"
    (packed.parent / ".tts_tiny.zip.tmp.999999").mkdir(parents=True)  # left by a killed run
    pack = ["bash", LOCAL / "pack_model.sh", exp, model, stats, packed]
    result = run(pack, root, limit=64 * 1024)
    assert_clear_failure(result, "tts_tiny.zip", "File too large")
    assert sorted(p.name for p in packed.parent.iterdir()) == ["command.sh"]  # no zip, marker or temporary

    try:
        result = run(pack, root)
        assert result.returncode == 0, result.stderr
        assert packed.is_file() and (packed.parent / ".tts_tiny.zip.done").is_file()
    finally:
        # check_packed_model.py unpacked the zip into espnet_model_zoo's cache (in the environment).
        from espnet_model_zoo.downloader import ModelDownloader, str_to_hash

        shutil.rmtree(ModelDownloader().cachedir / str_to_hash(packed.absolute()), ignore_errors=True)
