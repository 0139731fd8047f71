"""Stage 3 (``local/dump_audio.sh``): good clips dumped at the model's rate, bad ones listed.

Each test builds a small Kaldi data dir of generated clips (good, resampled, corrupt,
truncated, silent, below the target rate, too short, too long, missing), runs the script as
the recipe does, and checks the dump with ESPnet's own ``sound`` reader.
"""

import resource
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from espnet2.fileio.sound_scp import SoundScpReader

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "local" / "dump_audio.sh"
FS = 22050


def tone(seconds: float, rate: int, frequency: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * frequency * t)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


def make_corpus(root: Path):
    """A data dir whose wav.scp mixes good and bad clips; returns (data dir, bad clips by utt)."""
    wavs = root / "corpus"
    wavs.mkdir()
    clips = {}

    def add(utt, samples, rate, subtype="PCM_16"):
        path = wavs / f"{utt}.wav"
        sf.write(path, samples, rate, subtype=subtype)
        clips[utt] = path

    add("good_22k", tone(1.0, FS), FS)
    add("good_44k", tone(1.0, 44100), 44100)
    add("good_loud_float", tone(1.0, FS, amplitude=1.5), FS, subtype="FLOAT")
    add("good_stereo", np.stack([tone(1.0, FS), tone(1.0, FS)], axis=1), FS)
    add("low_rate", tone(1.0, 16000), 16000)
    add("silent", np.zeros(FS), FS)
    add("too_short", tone(0.1, FS), FS)
    add("too_long", tone(3.0, FS), FS)
    add("truncated", tone(1.0, FS), FS)
    whole = clips["truncated"].read_bytes()
    clips["truncated"].write_bytes(whole[: len(whole) // 2])
    corrupt = wavs / "corrupt.wav"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    clips["corrupt"] = corrupt
    clips["missing"] = wavs / "missing.wav"

    data = root / "data" / "train"
    data.mkdir(parents=True)
    utts = sorted(clips)
    (data / "wav.scp").write_text("".join(f"{u} {clips[u]}\n" for u in utts))
    (data / "text").write_text("".join(f"{u} Text of {u}.\n" for u in utts))
    (data / "utt2spk").write_text("".join(f"{u} spk1\n" for u in utts))
    bad = {
        "low_rate": "low-rate",
        "silent": "silent",
        "too_short": "too-short",
        "too_long": "too-long",
        "truncated": "truncated",
        "corrupt": "unreadable",
        "missing": "missing",
    }
    line_of = {u: n for n, u in enumerate(utts, start=1)}
    return data, bad, line_of


def dump(cwd: Path, *args: str, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), "--nj", "2", "--max_duration", "2", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        preexec_fn=preexec_fn,
        timeout=120,
    )


def read_kaldi(path: Path) -> dict:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


def test_good_clips_dumped_bad_ones_listed_and_rerun_skips(tmp_path, monkeypatch):
    data, bad, line_of = make_corpus(tmp_path)
    result = dump(tmp_path, "data/train", "dump/raw/train")
    assert result.returncode == 0, result.stderr
    total = len(bad) + 4
    assert f"excluded {len(bad)} of {total} clips" in result.stdout
    assert "see dump/raw/train/excluded.txt" in result.stdout

    out = tmp_path / "dump" / "raw" / "train"
    assert (out / ".done").is_file()
    good = {"good_22k", "good_44k", "good_loud_float", "good_stereo"}
    for name in ("wav.scp", "text", "utt2spk", "utt2num_samples"):
        assert set(read_kaldi(out / name)) == good, name
    assert read_kaldi(out / "spk2utt") == {"spk1": " ".join(sorted(good))}

    # Every excluded clip is listed with its reason, the wav.scp line and the source file.
    excluded = [line.split("\t") for line in (out / "excluded.txt").read_text().splitlines()[1:]]
    assert {row[0]: row[1] for row in excluded} == bad
    for utt, reason, detail, where in excluded:
        assert where.startswith(f"data/train/wav.scp:{line_of[utt]}: "), where
        assert where.endswith(f"{utt}.wav")

    # ESPnet's sound reader reads the dump: the target rate, samples in [-1, 1], the lengths
    # utt2num_samples gives, and the tone still at 440 Hz after resampling.
    num_samples = {u: int(n) for u, n in read_kaldi(out / "utt2num_samples").items()}
    monkeypatch.chdir(tmp_path)  # wav.scp paths are relative to the recipe directory
    reader = SoundScpReader(str(out / "wav.scp"), dtype="float32")
    for utt in good:
        rate, samples = reader[utt]
        assert rate == FS
        assert samples.ndim == 1 and len(samples) == num_samples[utt]
        assert np.max(np.abs(samples)) <= 1.0
        assert abs(dominant_frequency(samples, rate) - 440.0) < 2.0
    assert abs(num_samples["good_44k"] - FS) <= 1
    assert np.max(np.abs(reader["good_loud_float"][1])) > 0.99  # scaled to full scale, not clipped
    assert not list(out.parent.glob(".train.tmp")) and not list(out.rglob("*.part"))

    # Rerun: nothing rewritten.
    stamp = (out / "wav" / "good_22k.wav").stat().st_mtime_ns
    again = dump(tmp_path, "data/train", "dump/raw/train")
    assert again.returncode == 0, again.stderr
    assert "skipping" in again.stdout
    assert (out / "wav" / "good_22k.wav").stat().st_mtime_ns == stamp

    # Changed options dump again: upsampling allowed keeps the 16 kHz clip.
    upsampled = dump(tmp_path, "--allow_upsample", "true", "data/train", "dump/raw/train")
    assert upsampled.returncode == 0, upsampled.stderr
    assert "low_rate" in read_kaldi(out / "wav.scp")
    assert "resampled from 16000 Hz" in upsampled.stdout


def test_unwritable_output_fails_clearly_without_done(tmp_path):
    make_corpus(tmp_path)
    (tmp_path / "dump").write_text("a file where the dump directory should be\n")
    result = dump(tmp_path, "data/train", "dump/raw/train")
    assert result.returncode != 0
    assert "cannot write to dump/raw" in result.stderr
    assert not (tmp_path / "dump").is_dir()


@pytest.mark.parametrize("runner", ["xargs", "job runner"])
def test_write_failure_mid_dump_leaves_nothing(tmp_path, runner):
    """A full disk, simulated by a file size limit below one clip (writes fail with EFBIG)."""
    make_corpus(tmp_path)

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    cmd = ["--cmd", f"python3 {REPO / 'utils' / 'run_local.py'}"] if runner == "job runner" else []
    result = dump(tmp_path, *cmd, "data/train", "dump/raw/train", preexec_fn=limit_file_size)
    assert result.returncode != 0
    assert "cannot write" in result.stderr and "File too large" in result.stderr
    assert "nothing was written to dump/raw/train" in result.stderr
    raw = tmp_path / "dump" / "raw"
    assert sorted(p.name for p in raw.iterdir()) == []  # no dump, no .done, no temporary dir
