"""Piper's phonemization, as ESPnet g2p types ``piper_espeak_<voice>`` (e.g. ``piper_espeak_en-us``).

A Piper voice was trained on espeak-ng IPA produced clause by clause: each clause's
phonemes (language-switch flags such as ``(fr)`` removed) get the clause's punctuation
back (``. , ? ! : ;``), followed by a space after ``, : ;``; the string is decomposed
(NFD) into code points, one symbol each. Its ids are then ``^``, ``_``, and each symbol
followed by ``_``, then ``$`` (``_`` is the padding symbol interleaved by Piper).

We run espeak-ng through phonemizer's wrapper of the library (the one the
``espeakng-loader`` package ships, see :func:`~espnet2_vits_ext.text.frontend.ensure_espeak_environment`),
one clause per ``espeak_TextToPhonemes`` call, and read the clause's punctuation from
the text the call consumed (Piper's own espeak-ng build reports it instead). Piper
synthesizes each sentence on its own; ``Text2Speech`` speaks one token sequence, so the
sentences of a text are joined by a space inside one ``^ ... $``.

Tokens: a space is ``<space>`` (ESPnet's token lists cannot hold a bare space).
"""

import ctypes
import re
import unicodedata
from typing import List, Tuple

G2P_PREFIX = "piper_espeak_"
BOS, EOS, PAD, SPACE_TOKEN = "^", "$", "_", "<space>"
CLAUSE_PUNCTUATION = ".,?!:;"
SENTENCE_ENDS = ".?!"
# espeak-ng text mode (UTF-8 input) and phoneme mode (IPA, no separators), as Piper calls it.
_UTF8_TEXT = 1
_IPA_PHONEMES = 0x02
_LANGUAGE_FLAG = re.compile(r"\([^)]+\)")


def _clause_punctuation(consumed: str, is_last: bool) -> str:
    """The punctuation that ended a clause, from the text espeak-ng consumed for it.

    Args:
        consumed: The text of the clause; unless it is the last one, espeak-ng has also
            read the next clause's first character, which is dropped.
        is_last: Whether the clause ends the text.

    Returns:
        str: One of :data:`CLAUSE_PUNCTUATION`, or ``""`` (also for an ellipsis, which
            ends a clause without punctuation in Piper).
    """
    text = consumed if is_last else consumed[:-1]
    tail = re.search(rf"[{re.escape(CLAUSE_PUNCTUATION)}]+(?=[\s\"')\]]*$)", text)
    if not tail or tail.group(0).startswith(".."):
        return ""
    return tail.group(0)[0]


class PiperEspeak:
    """Text -> Piper's phoneme symbols with espeak-ng's ``voice`` (e.g. ``en-us``)."""

    def __init__(self, voice: str):
        from espnet2_vits_ext.text.frontend import ensure_espeak_environment

        ensure_espeak_environment()
        from phonemizer.backend.espeak.wrapper import EspeakWrapper

        self.voice = voice
        self._wrapper = EspeakWrapper()
        self._wrapper.set_voice(voice)

    def clauses(self, text: str) -> List[Tuple[str, str]]:
        """Each clause's IPA and its punctuation (``""`` when none).

        Args:
            text: Raw text.

        Returns:
            List[Tuple[str, str]]: e.g. ``[("həlˈoʊ", ","), ("wˈɜːld", ".")]``.
        """
        data = text.encode("utf-8")
        buffer = ctypes.create_string_buffer(data)
        start_address = ctypes.addressof(buffer)
        pointer = ctypes.pointer(ctypes.c_char_p(start_address))
        position = ctypes.cast(pointer, ctypes.POINTER(ctypes.c_void_p))
        clauses = []
        consumed_until = 0
        while position.contents.value is not None:
            phonemes = self._wrapper._espeak.text_to_phonemes(pointer, _UTF8_TEXT, _IPA_PHONEMES)
            end = len(data) if position.contents.value is None else position.contents.value - start_address
            consumed = data[consumed_until:end].decode("utf-8", errors="ignore")
            consumed_until = end
            clauses.append((_LANGUAGE_FLAG.sub("", (phonemes or b"").decode("utf-8")), _clause_punctuation(consumed, position.contents.value is None)))
        return clauses

    def sentences(self, text: str) -> List[List[str]]:
        """Piper's symbols, grouped by sentence.

        Args:
            text: Raw text.

        Returns:
            List[List[str]]: one list of symbols (code points; ``" "`` between words) per sentence.
        """
        sentences: List[List[str]] = []
        current: List[str] = []
        for phonemes, punctuation in self.clauses(text):
            clause = phonemes + punctuation + (" " if punctuation in (",", ":", ";") and punctuation else "")
            current.extend(unicodedata.normalize("NFD", clause))
            if punctuation and punctuation in SENTENCE_ENDS:
                sentences.append(current)
                current = []
        if current:
            sentences.append(current)
        return sentences

    def __call__(self, text: str) -> List[str]:
        """ESPnet g2p: the token sequence of one utterance, ``^ _ s1 _ s2 _ ... _ $``.

        Args:
            text: Raw text.

        Returns:
            List[str]: tokens, a space as ``<space>``.
        """
        symbols: List[str] = []
        for sentence in self.sentences(text):
            if symbols and symbols[-1] != " ":
                symbols.append(" ")
            symbols.extend(sentence)
        while symbols and symbols[-1] == " ":
            symbols.pop()
        tokens = [BOS, PAD]
        for symbol in symbols:
            tokens.extend((SPACE_TOKEN if symbol == " " else symbol, PAD))
        tokens.append(EOS)
        return tokens


def register_g2p(phoneme_tokenizer_module) -> None:
    """Teach ESPnet's ``PhonemeTokenizer`` the ``piper_espeak_<voice>`` g2p types.

    ``PhonemeTokenizer`` picks its g2p from a fixed list of names; for ours it is built
    without one and then given :class:`PiperEspeak`. The name is also added to
    ``g2p_choices`` so that ESPnet's ``--g2p`` option accepts it (for the voices Piper
    ships in English; any ``piper_espeak_<voice>`` works from a config).

    Args:
        phoneme_tokenizer_module: ``espnet2.text.phoneme_tokenizer``, just imported.
    """
    tokenizer_class = phoneme_tokenizer_module.PhonemeTokenizer
    original_init = tokenizer_class.__init__
    if getattr(original_init, "_piper_g2p", False):
        return

    def init(self, g2p_type=None, *args, **kwargs):
        if isinstance(g2p_type, str) and g2p_type.startswith(G2P_PREFIX):
            original_init(self, None, *args, **kwargs)
            self.g2p_type = g2p_type
            self.g2p = PiperEspeak(g2p_type[len(G2P_PREFIX):])
        else:
            original_init(self, g2p_type, *args, **kwargs)

    init._piper_g2p = True
    tokenizer_class.__init__ = init
    for voice in ("en-us", "en-gb", "en-gb-x-rp"):
        if G2P_PREFIX + voice not in phoneme_tokenizer_module.g2p_choices:
            phoneme_tokenizer_module.g2p_choices.append(G2P_PREFIX + voice)
