"""Split long text into pieces the model can synthesize one at a time.

VITS synthesizes a whole input at once: memory and the risk of a wandering alignment grow with
its length, and it was trained on single sentences of LJSpeech (at most about 190 characters).
:func:`split_sentences` cuts raw text (before cleaning, so that ESPnet's cleaner still sees
what the user wrote) at sentence ends, keeps abbreviations and initials ("Mr. Smith",
"J. F. Kennedy") together, and packs consecutive sentences into pieces of at most
``max_chars`` characters. A sentence longer than that is cut at clause punctuation
(``,;:``), then between words, and a single word longer than that between characters.

Guarantees (tested with hypothesis): no piece is empty or longer than ``max_chars``, and the
pieces joined by single spaces give the input with its whitespace collapsed, except inside a
word longer than ``max_chars``.
"""

import re
from typing import List

# Words after which a period does not end a sentence (the tacotron cleaner expands these).
ABBREVIATIONS = frozenset(
    "mr mrs ms dr drs st co jr sr maj gen rev lt hon sgt capt esq ltd col ft prof vs etc no "
    "jan feb mar apr jun jul aug sep sept oct nov dec e.g i.e u.s".split()
)

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*$")
_CLAUSE_END = re.compile(r"[,;:]$")


def _ends_sentence(word: str) -> bool:
    if not _SENTENCE_END.search(word):
        return False
    core = word.rstrip("\"')]")
    if core.endswith(".") and not core.endswith(".."):
        stem = core[:-1].lower()
        if stem in ABBREVIATIONS or (len(stem) == 1 and stem.isalpha()):
            return False  # "Mr." or the initial in "J. Smith"
    return True


def _split_words(words: List[str], max_chars: int) -> List[str]:
    """Pack ``words`` into pieces of at most ``max_chars``, preferring cuts after ``,;:``."""
    pieces, current = [], []

    def length(ws):
        return sum(len(w) for w in ws) + max(len(ws) - 1, 0)

    for word in words:
        while len(word) > max_chars:  # one over-long "word": cut between characters
            if current:
                pieces.append(" ".join(current))
                current = []
            pieces.append(word[:max_chars])
            word = word[max_chars:]
        if current and length(current + [word]) > max_chars:
            # Cut at the last clause end that leaves at least half a piece, else before this word.
            clause_ends = [
                i + 1 for i, w in enumerate(current) if _CLAUSE_END.search(w) and length(current[: i + 1]) >= max_chars // 2
            ]
            cut = clause_ends[-1] if clause_ends else len(current)
            pieces.append(" ".join(current[:cut]))
            current = current[cut:]
            if current and length(current + [word]) > max_chars:
                pieces.append(" ".join(current))
                current = []
        current.append(word)
    if current:
        pieces.append(" ".join(current))
    return pieces


def split_sentences(text: str, max_chars: int = 300) -> List[str]:
    """Pieces of ``text`` of at most ``max_chars`` characters, cut at sentence ends first.

    Args:
        text: raw text; any whitespace (newlines included) separates words.
        max_chars: the longest piece, at least 1.

    Returns:
        The pieces in order; an empty list for text with nothing but whitespace.
    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, not {max_chars}")
    sentences, current = [], []
    for word in text.split():
        current.append(word)
        if _ends_sentence(word):
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)

    pieces: List[str] = []
    for sentence in sentences:
        for part in _split_words(sentence, max_chars):
            if pieces and len(pieces[-1]) + 1 + len(part) <= max_chars and _ends_sentence(pieces[-1].split()[-1]):
                pieces[-1] += " " + part  # pack short sentences together
            else:
                pieces.append(part)
    return pieces
