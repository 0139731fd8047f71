"""The shared Kaldi table reader: values, line numbers, and every kind of bad line named by file:line."""

from pathlib import Path

import pytest

from espnet2_vits_ext.recipe.kaldi_table import KaldiTableError, read_table, read_table_entries


def write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "text"
    path.write_bytes(content)
    return path


def test_values_keep_inner_spaces_and_line_numbers(tmp_path):
    path = write(tmp_path, b"utt1 Hello  there, world.\n\nutt2\tsecond\r\n")
    entries = read_table_entries(path)
    assert list(entries) == ["utt1", "utt2"]
    assert entries["utt1"].value == "Hello  there, world." and entries["utt1"].line == 1
    assert entries["utt2"].value == "second" and entries["utt2"].line == 3
    assert read_table(path) == {"utt1": "Hello  there, world.", "utt2": "second"}


@pytest.mark.parametrize(
    "content, message",
    [
        (b"a 1\nb\n", r"text:2: expected '<key> <value>'"),
        (b"a 1\na 2\n", r"text:2: duplicate key a \(first on line 1\)"),
        (b"a 1\nb \xff\n", r"text:2: not UTF-8"),
    ],
)
def test_first_bad_line_raises_naming_file_and_line(tmp_path, content, message):
    with pytest.raises(KaldiTableError, match=message):
        read_table(write(tmp_path, content))


def test_empty_values_only_when_allowed(tmp_path):
    path = write(tmp_path, b"a\nb text\n")
    assert read_table(path, allow_empty_value=True) == {"a": "", "b": "text"}


def test_problems_are_collected_and_lines_skipped(tmp_path):
    path = write(tmp_path, b"b 1\na 2\nb 3\nc\n")
    problems = []
    entries = read_table_entries(path, require_sorted=True, problems=problems)
    assert {key: entry.value for key, entry in entries.items()} == {"b": "1", "a": "2"}
    assert [(p.kind, p.line, p.key) for p in problems] == [
        ("unsorted", 2, "a"),
        ("duplicate", 3, "b"),
        ("malformed", 4, "c"),
    ]
    assert all(str(p).startswith(f"{path}:{p.line}: ") for p in problems)


def test_missing_file(tmp_path):
    with pytest.raises(KaldiTableError, match=r"wav.scp: missing"):
        read_table(tmp_path / "wav.scp")
    problems = []
    assert read_table_entries(tmp_path / "wav.scp", problems=problems) == {}
    assert [p.kind for p in problems] == ["missing"]


def test_a_table_inside_another_file_is_named_by_the_caller():
    entries = read_table_entries("voice.zip:exp/spk2sid", data=b"<unk> 0\nMINI01 1\n")
    assert {key: entry.value for key, entry in entries.items()} == {"<unk>": "0", "MINI01": "1"}
    with pytest.raises(KaldiTableError, match=r"^voice.zip:exp/spk2sid:2: duplicate key a"):
        read_table_entries("voice.zip:exp/spk2sid", data=b"a 0\na 1\n")
