"""Text frontend: cleaning, grapheme-to-phoneme conversion and validation.

The model never sees our tokens directly: ESPnet's preprocessor re-runs the cleaner and
the g2p on the raw ``text`` file at training time, and ``Text2Speech`` does so at
inference (config keys ``token_type: phn``, ``cleaner: tacotron``,
``g2p: espeak_ng_english_us_vits``). So this module reproduces ESPnet's pipeline exactly
(the tests compare it with ESPnet's ``PhonemeTokenizer``) and adds what ESPnet lacks:
checks that turn text it would crash on, or silently mangle, into a
:class:`TextFrontendError` that says what is wrong.

Pipeline, for ``g2p="espeak_ng_english_us_vits"``:

1. clean: ESPnet's ``tacotron`` cleaner (``espnet_tts_frontend``): Unicode to ASCII,
   numbers spelled out ("1990" -> "nineteen ninety"), abbreviations expanded
   ("Dr." -> "doctor"), ``;:`` to commas, ``-`` to a space, ``&`` to "and", brackets and
   double quotes removed, upper case, whitespace collapsed;
2. check: the cleaned text has a letter and only characters in :data:`SPEAKABLE`
   (control characters, braces and the like reach espeak-ng raw: it truncates at NUL and
   passes ``{}`` through as "phonemes");
3. phonemize with espeak-ng (en-us, stress marks, punctuation kept), one token per
   character of its output, a space becoming ``<space>``.
"""

import logging
import os
from typing import List, Optional

from typeguard import typechecked

G2P_TYPES = ("espeak_ng_english_us_vits", "g2p_en", "g2p_en_no_space")
CLEANER_TYPES = ("tacotron", "none")

LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Punctuation that the phonemizer keeps as tokens, and symbols espeak-ng reads as words
# ("%" -> "percent", "$" -> "dollar"): everything the tacotron cleaner can leave that the
# g2p handles. Anything else after cleaning is rejected.
SPEAKABLE = LETTERS | frozenset(" '.,!?") | frozenset("$%#@+=/*")

NLTK_INSTALL_HINT = (
    "python -c \"import nltk; nltk.download('averaged_perceptron_tagger_eng'); "
    "nltk.download('cmudict')\""
)
_NLTK_RESOURCES = ("taggers/averaged_perceptron_tagger_eng", "corpora/cmudict")


class TextFrontendError(ValueError):
    """Text the frontend cannot turn into tokens; the message says why."""


def ensure_espeak_environment() -> None:
    """Point phonemizer at the espeak-ng library of the ``espeakng-loader`` package.

    ``path.sh`` exports these variables; this covers a Python session that did not source
    it (the synthesis CLI, a notebook). Variables already set are left alone.
    """
    if os.environ.get("PHONEMIZER_ESPEAK_LIBRARY"):
        return
    try:
        import espeakng_loader
    except ImportError as error:
        raise TextFrontendError(
            "espeak-ng not found: set PHONEMIZER_ESPEAK_LIBRARY or run `pip install espeakng-loader`"
        ) from error
    os.environ["PHONEMIZER_ESPEAK_LIBRARY"] = espeakng_loader.get_library_path()
    os.environ.setdefault("ESPEAK_DATA_PATH", espeakng_loader.get_data_path())


def _describe(characters) -> str:
    return ", ".join(f"{c!r} (U+{ord(c):04X})" for c in sorted(set(characters)))


class EspeakEnglishUsVits:
    """espeak-ng g2p configured as ESPnet's ``espeak_ng_english_us_vits`` (the VITS paper's).

    en-us voice, stress marks, punctuation preserved, words separated by one space and
    phones by nothing, output stripped; then each character is a token and a space is
    ``<space>``.
    """

    def __init__(self):
        ensure_espeak_environment()
        from phonemizer.backend import EspeakBackend
        from phonemizer.separator import Separator

        quiet = logging.getLogger("phonemizer")
        quiet.setLevel(logging.ERROR)
        self._backend = EspeakBackend(
            language="en-us", preserve_punctuation=True, with_stress=True, logger=quiet
        )
        self._separator = Separator(word=" ", syllable=None, phone="")

    def __call__(self, text: str) -> List[str]:
        phonemes = self._backend.phonemize([text], separator=self._separator, strip=True, njobs=1)[0]
        return ["<space>" if c == " " else c for c in phonemes]


class G2pEn:
    """ESPnet's ``g2p_en`` g2p: CMUdict + neural fallback, ARPAbet tokens, a space token
    between words (``g2p_en_no_space``: without it).

    g2p_en needs two NLTK data packages that it downloads on first import; offline (or
    behind the import hook of this package) they are missing, which we report with the
    command that installs them instead of NLTK's long ``LookupError``.
    """

    def __init__(self, no_space: bool = False):
        self.no_space = no_space
        import nltk

        missing = []
        for resource in _NLTK_RESOURCES:
            try:
                nltk.data.find(resource)
            except LookupError:
                missing.append(resource)
        if missing:
            raise TextFrontendError(
                f"g2p_en needs NLTK data that is not installed ({', '.join(missing)}). "
                f"Install it with:\n  {NLTK_INSTALL_HINT}\n"
                "or use --g2p espeak_ng_english_us_vits (needs no extra data)."
            )
        from g2p_en import G2p

        self._g2p = G2p()

    def __call__(self, text: str) -> List[str]:
        tokens = list(self._g2p(text))
        return [t for t in tokens if t != " "] if self.no_space else tokens


def build_g2p(g2p: str):
    """The g2p callable ``text -> tokens`` named ``g2p`` (one of :data:`G2P_TYPES`)."""
    if g2p == "espeak_ng_english_us_vits":
        return EspeakEnglishUsVits()
    if g2p in ("g2p_en", "g2p_en_no_space"):
        return G2pEn(no_space=g2p == "g2p_en_no_space")
    raise TextFrontendError(f"unknown g2p {g2p!r}: choose one of {', '.join(G2P_TYPES)}")


def clean_text(text: str, cleaner: str = "tacotron") -> str:
    """Clean ``text`` as ESPnet's ``TextCleaner(cleaner)`` does (``none``: unchanged)."""
    if cleaner == "none":
        return text
    if cleaner != "tacotron":
        raise TextFrontendError(f"unknown cleaner {cleaner!r}: choose one of {', '.join(CLEANER_TYPES)}")
    import inflect
    from tacotron_cleaner.cleaners import custom_english_cleaners

    try:
        return custom_english_cleaners(text)
    except inflect.NumOutOfRangeError as error:
        raise TextFrontendError(
            f"a number in the text is too large to spell out (input {text[:80]!r}); write it in words"
        ) from error


def check_cleaned_text(cleaned: str, original: str) -> None:
    """Raise :class:`TextFrontendError` unless ``cleaned`` is speakable text."""
    if not cleaned.strip():
        raise TextFrontendError(f"text is empty after cleaning (input {original[:80]!r})")
    unsupported = set(cleaned) - SPEAKABLE
    if unsupported:
        raise TextFrontendError(
            f"text contains characters the frontend cannot pronounce: {_describe(unsupported)} "
            f"(cleaned text {cleaned[:80]!r}); remove or spell them out"
        )
    if not LETTERS & set(cleaned):
        raise TextFrontendError(f"text has no letters, nothing to pronounce (input {original[:80]!r})")


class TextFrontend:
    """Raw text to phoneme tokens, the way ESPnet's preprocessor does it, with checks.

    Examples:
        >>> frontend = TextFrontend()
        >>> frontend.clean("Dr. Smith paid $5.")
        'DOCTOR SMITH PAID FIVE DOLLARS.'
        >>> frontend.text_to_tokens("Hi.")
        ['h', 'ˈ', 'a', 'ɪ', '.']
    """

    @typechecked
    def __init__(self, g2p: str = "espeak_ng_english_us_vits", cleaner: str = "tacotron"):
        if cleaner not in CLEANER_TYPES:
            raise TextFrontendError(f"unknown cleaner {cleaner!r}: choose one of {', '.join(CLEANER_TYPES)}")
        self.g2p_type = g2p
        self.cleaner = cleaner
        self._g2p = build_g2p(g2p)

    def clean(self, text: str) -> str:
        return clean_text(text, self.cleaner)

    def text_to_tokens(self, text: str) -> List[str]:
        """Tokens of ``text``; :class:`TextFrontendError` if it has nothing to say."""
        cleaned = self.clean(text)
        check_cleaned_text(cleaned, text)
        tokens = self._g2p(cleaned)
        if not tokens:
            raise TextFrontendError(f"the g2p produced no phonemes for {cleaned[:80]!r}")
        return tokens


def read_token_list(path: str) -> List[str]:
    """Tokens of an ESPnet token list, one a line; checks its ``<blank>``/``<unk>`` frame."""
    with open(path, encoding="utf-8") as f:
        tokens = [line.rstrip("\n") for line in f]
    if len(tokens) < 3 or tokens[0] != "<blank>" or tokens[1] != "<unk>" or tokens[-1] != "<sos/eos>":
        raise TextFrontendError(
            f"{path}: not an ESPnet token list (want <blank>, <unk>, tokens..., <sos/eos>)"
        )
    return tokens


def unknown_tokens(tokens: List[str], token_list: List[str]) -> Optional[List[str]]:
    """Tokens of ``tokens`` missing from ``token_list`` (ESPnet maps them to ``<unk>``)."""
    known = set(token_list)
    missing = sorted({t for t in tokens if t not in known})
    return missing or None
