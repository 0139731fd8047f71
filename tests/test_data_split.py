"""Stage 2: Kaldi data directories with the VITS split, and errors that name file and line.

The split test builds a corpus of 13,100 tiny clips in LJSpeech layout from the id lists the
recipe ships (``local/ljspeech_split``), so it does not need the real corpus.
"""

import importlib.util
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPLIT_DIR = ROOT / "local" / "ljspeech_split"


def load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


prepare_data = load("prepare_data", ROOT / "local" / "prepare_data.py")
validate_data_dir = load("validate_data_dir", ROOT / "utils" / "validate_data_dir.py")


def tiny_wav(num_samples: int = 8) -> bytes:
    """A valid 16-bit mono 22,050 Hz RIFF file of ``num_samples`` zero samples."""
    data = b"\0\0" * num_samples
    fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def make_corpus(root: Path, ids: list[str]) -> Path:
    corpus = root / "LJSpeech-1.1"
    (corpus / "wavs").mkdir(parents=True)
    wav = tiny_wav()
    lines = []
    for number, utt_id in enumerate(ids):
        (corpus / "wavs" / f"{utt_id}.wav").write_bytes(wav)
        lines.append(f"{utt_id}|Text {number}, Mr. No.{number}|Text {number}, mister number {number}\n")
    (corpus / "metadata.csv").write_text("".join(lines), encoding="utf-8")
    return corpus


def read_ids(path: Path) -> list[str]:
    return path.read_text().split()


@pytest.fixture(scope="module")
def full_corpus(tmp_path_factory) -> Path:
    ids = sorted(sum((read_ids(SPLIT_DIR / f"{name}.ids") for name in ("train", "val", "test")), []))
    return make_corpus(tmp_path_factory.mktemp("ljspeech"), ids)


def test_shipped_split_is_the_vits_split():
    sets = {name: read_ids(SPLIT_DIR / f"{name}.ids") for name in ("train", "val", "test")}
    assert {name: len(ids) for name, ids in sets.items()} == {"train": 12500, "val": 100, "test": 500}
    union = set().union(*sets.values())
    assert len(union) == 13100
    expected = {f"LJ{chapter:03d}" for chapter in range(1, 51)}
    assert {utt_id[:5] for utt_id in union} == expected


def test_split_gives_12500_100_500_sorted_valid_dirs(tmp_path, full_corpus):
    out = tmp_path / "data"
    assert prepare_data.main([str(full_corpus), str(SPLIT_DIR), str(out)]) == 0
    for name, count in (("train", 12500), ("val", 100), ("test", 500)):
        data_dir = out / name
        assert validate_data_dir.validate(data_dir) == []
        keys = [line.split(" ", 1)[0] for line in (data_dir / "wav.scp").read_text().splitlines()]
        assert keys == read_ids(SPLIT_DIR / f"{name}.ids")  # the shipped lists are sorted, byte order
        assert len(keys) == count
        first_wav = (data_dir / "wav.scp").read_text().splitlines()[0].split(" ", 1)[1]
        assert Path(first_wav).is_absolute() and Path(first_wav).parent == (full_corpus / "wavs").resolve()
        spk2utt = (data_dir / "spk2utt").read_text().split()
        assert spk2utt[0] == "LJ" and spk2utt[1:] == keys
    # text is the normalized (third) field, whole.
    first = read_ids(SPLIT_DIR / "train.ids")[0]
    number = sorted(sum((read_ids(SPLIT_DIR / f"{n}.ids") for n in ("train", "val", "test")), [])).index(first)
    assert (out / "train" / "text").read_text().splitlines()[0] == f"{first} Text {number}, mister number {number}"
    assert sorted(p.name for p in out.iterdir()) == ["test", "train", "val"]  # no temporary left


def small_case(tmp_path: Path, ids=("LJ001-0001", "LJ001-0002", "LJ001-0003", "LJ001-0004")):
    corpus = make_corpus(tmp_path, list(ids))
    split = tmp_path / "split"
    split.mkdir()
    (split / "train.ids").write_text(f"{ids[0]}\n{ids[1]}\n")
    (split / "val.ids").write_text(f"{ids[2]}\n")
    (split / "test.ids").write_text(f"{ids[3]}\n")
    return corpus, split


def run_expecting_error(capsys, corpus: Path, split: Path, out: Path) -> str:
    assert prepare_data.main([str(corpus), str(split), str(out)]) == 1
    assert not out.exists()  # nothing is written when a check fails
    return capsys.readouterr().err


def test_wrong_field_count_names_file_and_line(tmp_path, capsys):
    corpus, split = small_case(tmp_path)
    metadata = corpus / "metadata.csv"
    lines = metadata.read_text().splitlines()
    lines[2] = "LJ001-0003|only two fields"
    metadata.write_text("\n".join(lines) + "\n")
    err = run_expecting_error(capsys, corpus, split, tmp_path / "data")
    assert f"{metadata}:3: expected 3 fields" in err and "found 2" in err


def test_empty_text_names_file_and_line(tmp_path, capsys):
    corpus, split = small_case(tmp_path)
    metadata = corpus / "metadata.csv"
    lines = metadata.read_text().splitlines()
    lines[1] = "LJ001-0002|Some text.|   "
    metadata.write_text("\n".join(lines) + "\n")
    err = run_expecting_error(capsys, corpus, split, tmp_path / "data")
    assert f"{metadata}:2: empty normalized text for LJ001-0002" in err


def test_missing_wav_names_file_and_line(tmp_path, capsys):
    corpus, split = small_case(tmp_path)
    (corpus / "wavs" / "LJ001-0004.wav").unlink()
    err = run_expecting_error(capsys, corpus, split, tmp_path / "data")
    assert f"{corpus / 'metadata.csv'}:4: LJ001-0004: missing wav" in err


def test_all_problems_are_listed_together(tmp_path, capsys):
    corpus, split = small_case(tmp_path)
    metadata = corpus / "metadata.csv"
    lines = metadata.read_text().splitlines()
    lines[0] = "LJ001-0001|a|b|c"
    lines.append("LJ001-0002|duplicate|duplicate")
    metadata.write_text("\n".join(lines) + "\n")
    (corpus / "wavs" / "LJ001-0003.wav").write_bytes(b"")
    err = run_expecting_error(capsys, corpus, split, tmp_path / "data")
    assert f"{metadata}:1: expected 3 fields" in err
    assert f"{metadata}:5: duplicate id LJ001-0002 (first on line 2)" in err
    assert f"{metadata}:3: LJ001-0003: empty wav" in err


def test_corpus_must_have_exactly_the_split_ids(tmp_path, capsys):
    corpus, split = small_case(tmp_path)
    (split / "test.ids").write_text("LJ001-0009\n")  # LJ001-0004 now in no split, LJ001-0009 not in corpus
    err = run_expecting_error(capsys, corpus, split, tmp_path / "data")
    assert "1 id(s) of the split" in err and "LJ001-0009" in err
    assert "1 id(s) of the corpus are in no split file" in err and "LJ001-0004" in err


def test_overlapping_split_files_name_file_and_line(tmp_path, capsys):
    corpus, split = small_case(tmp_path)
    (split / "val.ids").write_text("LJ001-0003\nLJ001-0001\n")
    err = run_expecting_error(capsys, corpus, split, tmp_path / "data")
    assert f"{split / 'val.ids'}:2: LJ001-0001 is already in train.ids line 1" in err


def test_rerun_replaces_directories_in_place(tmp_path):
    corpus, split = small_case(tmp_path)
    out = tmp_path / "data"
    assert prepare_data.main([str(corpus), str(split), str(out)]) == 0
    first = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert prepare_data.main([str(corpus), str(split), str(out)]) == 0
    second = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert first == second


def test_validate_data_dir_reports_unsorted_and_mismatched(tmp_path):
    corpus, split = small_case(tmp_path)
    out = tmp_path / "data"
    assert prepare_data.main([str(corpus), str(split), str(out)]) == 0
    train = out / "train"
    lines = (train / "text").read_text().splitlines()
    (train / "text").write_text("\n".join(reversed(lines)) + "\n")
    (train / "utt2spk").write_text("LJ001-0001 LJ\n")
    result = subprocess.run(
        [sys.executable, str(ROOT / "utils" / "validate_data_dir.py"), str(train)],
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    )
    assert result.returncode == 1
    assert f"{train / 'text'}:2: LJ001-0001 comes after LJ001-0002: not sorted" in result.stderr
    assert f"{train / 'wav.scp'}: LJ001-0002 is not in utt2spk" in result.stderr
    assert "spk2utt: does not match utt2spk" in result.stderr
