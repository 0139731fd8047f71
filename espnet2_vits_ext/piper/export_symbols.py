"""Piper's phoneme ids for a model trained on our token list: ``phoneme_id_map`` and its table.

Piper turns text into espeak-ng IPA codepoints (one "phoneme" per codepoint after NFD), then
into ids as ``^ _ p1 _ p2 _ ... pn _ $``, with pad ``_`` = 0, bos ``^`` = 1 and eos ``$`` = 2
fixed (its C++ runtime writes them without looking at the map). The voice's
``phoneme_id_map`` gives the id of every other codepoint.

A model trained with ESPnet's ``espeak_ng_english_us_vits`` g2p reads one token per
codepoint of phonemizer's espeak-ng output (the word separator " " is ``<space>``), with no
pads and no bos/eos; a codepoint outside its token list becomes ``<unk>``. So Piper ids map
to our tokens symbol by symbol, and the pads, bos and eos to nothing (dropped in the graph):
feeding them to a model that never saw them in training would change what it says. So
that a codepoint the token list lacks is read as ``<unk>`` as ESPnet reads it (Piper's
runtime would otherwise skip it with a warning), the map also covers the Unicode blocks
espeak-ng's IPA is written in, sending them to ``<unk>``.

A model trained on Piper's framing (an imported Piper voice: its token list holds ``_``,
``^`` and ``$``) keeps every id, mapped to its own tokens by symbol.
"""

from dataclasses import dataclass
from typing import Dict, List, Sequence

PAD, BOS, EOS = "_", "^", "$"
DROPPED = -1  # table entry of a Piper id the graph removes
SPACE_TOKENS = ("<space>", " ")

# Codepoints of espeak-ng's IPA output and of the punctuation Piper keeps: printable ASCII,
# Latin-1 letters and Latin Extended-A/B, IPA Extensions, spacing modifiers, combining
# diacritics, Greek (espeak writes β, θ, χ), phonetic extensions (ᵻ), Latin Extended-C (ⱱ)
# and the intonation arrows.
_IPA_BLOCKS = (
    (0x21, 0x7E), (0xC0, 0x24F), (0x250, 0x36F), (0x370, 0x3FF),
    (0x1D00, 0x1DBF), (0x2C60, 0x2C7F), (0x2191, 0x2191), (0x2193, 0x2193),
)


@dataclass(frozen=True)
class PiperSymbols:
    """Piper's view of a token list.

    Attributes:
        phoneme_id_map: Codepoint (or symbol) -> [Piper id], for the ``.onnx.json``.
        token_table: Piper id -> our token id, or ``DROPPED``: length ``num_symbols``.
        piper_framed: The model itself reads Piper's pads, bos and eos.
    """

    phoneme_id_map: Dict[str, List[int]]
    token_table: List[int]
    piper_framed: bool

    @property
    def num_symbols(self) -> int:
        return len(self.token_table)


def _symbol(token: str) -> str:
    """The Piper phoneme a token stands for (ESPnet writes the word separator as ``<space>``)."""
    return " " if token in SPACE_TOKENS else token


def _is_special(token: str) -> bool:
    """ESPnet's own markers (``<blank>``, ``<unk>``, ``<sos/eos>``): no codepoint of Piper's."""
    return token.startswith("<") and token.endswith(">") and token not in SPACE_TOKENS


def piper_symbols(token_list: Sequence[str]) -> PiperSymbols:
    """Piper ids for ``token_list`` (see the module for the two kinds of model).

    Args:
        token_list: Our tokens by id, as in the packed ``config.yaml``.

    Returns:
        PiperSymbols: our own ids where the token list is in Piper's order already (pad,
            bos, eos at 0, 1, 2); else ids 0, 1, 2 are pad, bos and eos, then the token
            list's symbols in its order, then (ESPnet tokens with ``<unk>`` only) the other
            codepoints of espeak-ng's IPA, read as ``<unk>``.
    """
    token_id = {token: index for index, token in enumerate(token_list)}
    piper_framed = all(symbol in token_id for symbol in (PAD, BOS, EOS))
    if piper_framed and [token_id[symbol] for symbol in (PAD, BOS, EOS)] == [0, 1, 2]:
        # Our ids are Piper's already (an imported voice): keep them, so that the export has
        # the original voice's phoneme_id_map.
        id_map = {_symbol(token): [index] for index, token in enumerate(token_list) if not _is_special(token)}
        return PiperSymbols(phoneme_id_map=id_map, token_table=list(range(len(token_list))), piper_framed=True)
    table: List[int] = []
    id_map: Dict[str, List[int]] = {}

    def add(symbol: str, our_id: int) -> None:
        id_map[symbol] = [len(table)]
        table.append(our_id)

    for symbol in (PAD, BOS, EOS):
        add(symbol, token_id[symbol] if piper_framed else DROPPED)
    for index, token in enumerate(token_list):
        symbol = _symbol(token)
        if not _is_special(token) and symbol not in id_map:
            add(symbol, index)
    unknown = token_id.get("<unk>")
    if not piper_framed and unknown is not None:
        for first, last in _IPA_BLOCKS:
            for codepoint in range(first, last + 1):
                if chr(codepoint) not in id_map:
                    add(chr(codepoint), unknown)
    return PiperSymbols(phoneme_id_map=id_map, token_table=table, piper_framed=piper_framed)


def piper_ids(phonemes: Sequence[str], symbols: PiperSymbols) -> List[int]:
    """Piper's id sequence of ``phonemes`` (``^ _ p1 _ ... pn _ $``), unknown ones skipped as
    Piper skips them: used to probe an exported graph as Piper's runtime will call it."""
    ids = [symbols.phoneme_id_map[BOS][0], symbols.phoneme_id_map[PAD][0]]
    for phoneme in phonemes:
        if phoneme in symbols.phoneme_id_map:
            ids += [symbols.phoneme_id_map[phoneme][0], symbols.phoneme_id_map[PAD][0]]
    return ids + [symbols.phoneme_id_map[EOS][0]]
