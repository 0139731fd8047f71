"""Text frontend and stage 4 (``local/prepare_text.sh``).

References are ESPnet's own: ``TextCleaner("tacotron")``, ``PhonemeTokenizer`` with
``espeak_ng_english_us_vits`` (what the preprocessor runs at training and ``Text2Speech`` at
inference) and ``espnet2.bin.tokenize_text`` for the token list.
"""

import subprocess
from pathlib import Path

import pytest

from espnet2.bin.tokenize_text import tokenize as espnet_tokenize_text
from espnet2.text.cleaner import TextCleaner
from espnet2.text.phoneme_tokenizer import PhonemeTokenizer
from espnet2_vits_ext.text.frontend import NLTK_INSTALL_HINT, TextFrontend, TextFrontendError, read_token_list

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "local" / "prepare_text.sh"

SENTENCES = [
    "Printing, in the only sense with which we are at present concerned, differs from most arts.",
    "Mr. and Mrs. Smith paid $3.50 for 2 tickets on the 3rd of May, 1963!",
    "Dr. Jones (the elder) said: \"Wait -- it's 10:45; we're late?\"",
    "Café naïve façade & co. Ltd.",
]


@pytest.fixture(scope="module")
def frontend():
    return TextFrontend()


@pytest.mark.parametrize(
    "text, cleaned",
    [
        ("I have 3 cats and 21 dogs.", "I HAVE THREE CATS AND TWENTY ONE DOGS."),
        ("In 1990, on the 3rd day", "IN NINETEEN NINETY, ON THE THIRD DAY"),
        ("It cost $5.50, or 0.5 pounds", "IT COST FIVE DOLLARS, FIFTY CENTS, OR ZERO POINT FIVE POUNDS"),
        ("Dr. Smith met Mr. Lee at St. Paul.", "DOCTOR SMITH MET MISTER LEE AT SAINT PAUL."),
        ("Salt & pepper; well-known: [yes] \"ok\"", "SALT AND PEPPER, WELL KNOWN, YES OK"),
        ("Café   déjà\tvu", "CAFE DEJA VU"),
    ],
)
def test_cleaning_spells_out_numbers_abbreviations_and_symbols(frontend, text, cleaned):
    assert frontend.clean(text) == cleaned
    assert TextCleaner("tacotron")(text) == cleaned  # the same as ESPnet's preprocessor


def test_phonemes_match_espnet_espeak_ng_english_us_vits(frontend):
    cleaner = TextCleaner("tacotron")
    espnet = PhonemeTokenizer(g2p_type="espeak_ng_english_us_vits")
    for sentence in SENTENCES:
        expected = espnet.text2tokens(cleaner(sentence))
        tokens = frontend.text_to_tokens(sentence)
        assert tokens == expected
        assert "<space>" in tokens and "ˈ" in tokens  # word separators and stress marks kept
    assert frontend.text_to_tokens("Hi, you.")[-1] == "."  # punctuation kept as a token


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty after cleaning"),
        (" \t\n ", "empty after cleaning"),
        ("🙂🙂", "empty after cleaning"),
        ("...!?", "no letters"),
        ("a {b} c", "'{' (U+007B), '}' (U+007D)"),
        ("nul\x00byte", "'\\x00' (U+0000)"),
        ("9" * 80, "too large to spell out"),
    ],
)
def test_unpronounceable_text_is_a_clear_error(frontend, text, message):
    with pytest.raises(TextFrontendError) as error:
        frontend.text_to_tokens(text)
    assert message in str(error.value)


@pytest.mark.parametrize("g2p", ["g2p_en", "g2p_en_no_space"])
def test_g2p_en_without_nltk_data_names_the_install_command(monkeypatch, tmp_path, g2p):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])  # an NLTK data dir with nothing in it
    with pytest.raises(TextFrontendError) as error:
        TextFrontend(g2p=g2p)
    assert NLTK_INSTALL_HINT in str(error.value)
    assert "cmudict" in str(error.value)


def make_dump_dir(root: Path, name: str, utterances: dict) -> Path:
    """A finished stage-3 dump dir: ``utterances`` maps utt id -> (text line, num_samples)."""
    out = root / "dump" / "raw" / name
    out.mkdir(parents=True)
    ids = sorted(utterances)
    (out / "wav.scp").write_text("".join(f"{u} dump/raw/{name}/wav/{u}.wav\n" for u in ids))
    with open(out / "text", "wb") as f:
        for u in ids:
            text = utterances[u][0]
            f.write(f"{u} ".encode() + (text if isinstance(text, bytes) else text.encode()) + b"\n")
    (out / "utt2spk").write_text("".join(f"{u} spk1\n" for u in ids))
    (out / "spk2utt").write_text("spk1 " + " ".join(ids) + "\n")
    (out / "utt2num_samples").write_text("".join(f"{u} {utterances[u][1]}\n" for u in ids))
    (out / ".done").write_text("stage 3\n")
    return out


def prepare(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), "--nj", "1", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def kaldi_ids(path: Path) -> list:
    return [line.split()[0] for line in path.read_text(errors="replace").splitlines()]


def test_prepare_text_filters_and_writes_espnet_token_list(tmp_path, frontend):
    hop = 256
    train = {
        f"utt{i}": (sentence, 22050 * 5) for i, sentence in enumerate(SENTENCES)
    }
    long_text = SENTENCES[0]
    too_many = len(frontend.text_to_tokens(long_text))
    train["utt_too_many_tokens"] = (long_text, hop * (too_many - 1))  # one frame short
    train["utt_just_enough"] = (long_text, hop * too_many)
    train["utt_empty"] = ("", 22050)
    train["utt_braces"] = ("see {this}", 22050)
    train["utt_latin1"] = (b"caf\xe9", 22050)
    val = {"v1": ("Hello there.", 22050), "v2": ("...", 22050)}
    train_dir = make_dump_dir(tmp_path, "train", train)
    val_dir = make_dump_dir(tmp_path, "val", val)
    token_list = "dump/token_list/espeak_ng_english_us_vits/tokens.txt"

    result = prepare(tmp_path, "--hop_length", str(hop), "dump/raw/train", "dump/raw/val", token_list)
    assert result.returncode == 0, result.stderr
    assert "dump/raw/train: excluded 4 of 9 utterances" in result.stdout
    assert "dump/raw/val: excluded 1 of 2 utterances" in result.stdout

    # Exclusions: reason and the line of the text file they came from.
    lines = {u: n for n, u in enumerate(sorted(train), start=1)}
    rows = [line.split("\t") for line in (train_dir / "excluded_text.txt").read_text().splitlines()[1:]]
    reasons = {utt: reason.split(":")[0] for utt, reason, _ in rows}
    assert reasons == {
        "utt_too_many_tokens": "too-many-tokens",
        "utt_empty": "bad-text",
        "utt_braces": "bad-text",
        "utt_latin1": "bad-text",
    }
    for utt, reason, where in rows:
        assert where == f"dump/raw/train/unfiltered/text:{lines[utt]}"
    assert f"{too_many} tokens > {too_many - 1} frames" in dict((r[0], r[1]) for r in rows)["utt_too_many_tokens"]

    kept = sorted([f"utt{i}" for i in range(len(SENTENCES))] + ["utt_just_enough"])
    for name in ("wav.scp", "text", "utt2spk", "utt2num_samples"):
        assert kaldi_ids(train_dir / name) == kept, name
    assert (train_dir / "spk2utt").read_text() == "spk1 " + " ".join(kept) + "\n"
    assert kaldi_ids(train_dir / "unfiltered" / "text") == sorted(train)  # stage 3's files kept
    assert kaldi_ids(val_dir / "text") == ["v1"]

    # The token list is what ESPnet's tokenize_text writes for the kept training text.
    expected = tmp_path / "espnet_tokens.txt"
    espnet_tokenize_text(
        input=str(train_dir / "text"), output=str(expected), field="2-", delimiter=None, token_type="phn",
        space_symbol="<space>", non_linguistic_symbols=None, bpemodel=None, log_level="ERROR",
        write_vocabulary=True, vocabulary_size=0, remove_non_linguistic_symbols=False, cutoff=0,
        add_symbol=["<blank>:0", "<unk>:1", "<sos/eos>:-1"], cleaner="tacotron",
        g2p="espeak_ng_english_us_vits", add_nonsplit_symbol=[],
    )
    tokens = read_token_list(str(tmp_path / token_list))
    assert tokens == expected.read_text().splitlines()
    assert tokens[:2] == ["<blank>", "<unk>"] and tokens[-1] == "<sos/eos>" and "<space>" in tokens

    # Rerun: skipped. Another hop: redone from the unfiltered files (hop 1 keeps the long one).
    again = prepare(tmp_path, "--hop_length", str(hop), "dump/raw/train", "dump/raw/val", token_list)
    assert again.returncode == 0 and "skipping" in again.stdout
    redo = prepare(tmp_path, "--hop_length", "1", "dump/raw/train", "dump/raw/val", token_list)
    assert redo.returncode == 0, redo.stderr
    assert "utt_too_many_tokens" in kaldi_ids(train_dir / "text")


def test_prepare_text_requires_finished_dump(tmp_path):
    (tmp_path / "dump" / "raw" / "train").mkdir(parents=True)
    result = prepare(tmp_path, "dump/raw/train", "dump/token_list/phn/tokens.txt")
    assert result.returncode != 0
    assert "run stage 3" in result.stderr
    assert not (tmp_path / "dump" / "token_list" / "phn" / ".done").exists()


def test_write_failure_is_clear_and_leaves_no_done(tmp_path):
    """A full disk, simulated by a file size limit the unfiltered copy of ``text`` exceeds."""
    import resource

    train_dir = make_dump_dir(tmp_path, "train", {f"utt{i}": (s, 22050 * 5) for i, s in enumerate(SENTENCES)})
    original = (train_dir / "text").read_bytes()

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))

    result = subprocess.run(
        ["bash", str(SCRIPT), "dump/raw/train", "dump/token_list/phn/tokens.txt"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, preexec_fn=limit_file_size,
    )
    assert result.returncode != 0
    assert "File too large" in result.stderr and "tokens.txt is not complete" in result.stderr
    assert not (tmp_path / "dump" / "token_list" / "phn" / ".done").exists()
    assert sorted(p.name for p in train_dir.glob(".*")) == [".done"]  # no temporary copies left
    assert (train_dir / "text").read_bytes() == original
