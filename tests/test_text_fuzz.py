"""Property tests of the text frontend and the sentence splitter (hypothesis, bounded to seconds).

Any Unicode string gives tokens or a :class:`TextFrontendError`, never another exception or a
hang; accepted text gives exactly the tokens of ESPnet's own cleaner + g2p; ordinary English (the
words, numbers, money, abbreviations and punctuation of news and books) is never refused; the
splitter keeps every word, in order, in pieces no longer than asked.
"""

import faulthandler

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from espnet2.text.cleaner import TextCleaner
from espnet2.text.phoneme_tokenizer import PhonemeTokenizer
from espnet2_vits_ext.text.frontend import TextFrontend, TextFrontendError
from espnet2_vits_ext.text.sentence_split import split_sentences

FUZZ = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

WORDS = ["Mr.", "Dr.", "St.", "the", "cat", "1963", "3rd", "$4.20", "£5", "50%", "co.", "J.", "naïve", "U.S.",
         "well-known", "&", "(", ")", ";", ":", ",", ".", "!", "?", "\"", "'", "--", "…", "—", "\n", "½"]

frontend = TextFrontend()
espnet_cleaner = TextCleaner("tacotron")
espnet_tokenizer = PhonemeTokenizer(g2p_type="espeak_ng_english_us_vits")


@pytest.fixture(autouse=True)
def no_hang():
    """A hang inside espeak-ng (C code, deaf to Python signals) ends the run with a traceback."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


def check_tokens(text: str) -> None:
    try:
        tokens = frontend.text_to_tokens(text)
    except TextFrontendError as error:
        assert str(error)  # a message, not a bare exception
        return
    assert tokens and all(isinstance(t, str) and (len(t) == 1 or t == "<space>") for t in tokens)
    assert not any(t.isspace() for t in tokens)
    assert tokens == espnet_tokenizer.text2tokens(espnet_cleaner(text))


@FUZZ
@given(st.text(max_size=200))
def test_any_unicode_gives_tokens_or_a_clear_error(text):
    check_tokens(text)


@FUZZ
@given(st.lists(st.sampled_from(WORDS) | st.text(alphabet="abcXYZ0123456789.,'-", max_size=8), max_size=30))
def test_english_like_text_matches_espnet(words):
    check_tokens(" ".join(words))


# What a person expects to be spoken: every piece below is in LJSpeech's texts or in any newspaper.
ORDINARY_WORDS = ["the", "President", "said", "Oswald", "naïve", "café", "rock'n'roll", "well-known", "it's",
                  "Mr.", "Mrs.", "Dr.", "St.", "U.S.", "1963", "22", "3rd", "21st", "$4.20", "£5", "50%", "10:30",
                  "1,000", "J.", "O'Neill", "Hello", "x-ray", "A"]
ORDINARY_PUNCTUATION = ["", ",", ".", ";", ":", "!", "?", " --", " —", "…"]
ordinary_word = st.tuples(st.sampled_from(["", "(", "\"", "'"]), st.sampled_from(ORDINARY_WORDS),
                          st.sampled_from(ORDINARY_PUNCTUATION)).map("".join)


@FUZZ
@given(st.lists(ordinary_word, min_size=1, max_size=25))
def test_ordinary_english_is_always_spoken(words):
    text = " ".join(words)
    try:
        tokens = frontend.text_to_tokens(text)
    except TextFrontendError as error:
        pytest.fail(f"the frontend refused ordinary English {text!r}: {error}")
    assert tokens == espnet_tokenizer.text2tokens(espnet_cleaner(text))


@pytest.mark.parametrize("text", [
    "Printing, in the only sense with which we are at present concerned, differs from most if not from all the arts.",
    "On November 22, 1963, at 12:30 p.m., Mr. Kennedy's car passed the Texas School Book Depository.",
    "It cost $4.20 -- or £5 at the 3rd shop; about 50% more (so they said).",
    "\"Don't,\" she whispered... \"It's the naïve café owner!\"",
])
def test_sentences_from_books_are_spoken(text):
    assert frontend.text_to_tokens(text)


@FUZZ
@given(st.text(max_size=400), st.integers(min_value=1, max_value=120))
def test_split_keeps_every_word_within_the_limit(text, max_chars):
    pieces = split_sentences(text, max_chars)
    assert all(0 < len(p) <= max_chars and p == p.strip() for p in pieces)
    assert "".join("".join(p.split()) for p in pieces) == "".join(text.split())
    if all(len(w) <= max_chars for w in text.split()):
        assert " ".join(pieces) == " ".join(text.split())


@FUZZ
@given(st.lists(st.sampled_from(["Hello there.", "Mr. Smith came.", "Was it J. Doe?", "Yes!"]), min_size=1, max_size=12))
def test_split_cuts_at_sentence_ends(sentences):
    text = " ".join(sentences)
    for piece in split_sentences(text, max_chars=40):
        assert piece.endswith((".", "?", "!"))
        assert not piece.startswith(("Smith", "Doe"))  # "Mr." and "J." keep their word
