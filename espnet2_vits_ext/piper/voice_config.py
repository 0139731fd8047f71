"""A Piper voice's ``.onnx.json``: what the importer takes from it, checked.

Fields read: ``audio.sample_rate``, ``phoneme_type`` (only ``espeak``),
``espeak.voice``, ``phoneme_id_map`` (symbol -> ids), ``num_symbols``, ``num_speakers``,
``speaker_id_map`` and ``inference`` (``noise_scale``, ``length_scale``, ``noise_w``).
"""

import json
from pathlib import Path
from typing import Dict, List, NamedTuple

from espnet2_vits_ext.piper.errors import PiperVoiceError


class VoiceConfig(NamedTuple):
    """The parts of a Piper voice config the import uses."""

    path: Path
    sample_rate: int
    espeak_voice: str
    phoneme_id_map: Dict[str, List[int]]
    num_symbols: int
    num_speakers: int
    speaker_id_map: Dict[str, int]
    noise_scale: float
    length_scale: float
    noise_w: float


def config_path_of(onnx_path: Path) -> Path:
    """Piper keeps a voice's config beside it: ``VOICE.onnx`` -> ``VOICE.onnx.json``."""
    return onnx_path.with_name(onnx_path.name + ".json")


def read_voice_config(path: Path) -> VoiceConfig:
    """Read and check a ``.onnx.json``.

    Raises:
        PiperVoiceError: missing file, not JSON, a missing field or an unsupported phoneme type.
    """
    if not path.is_file():
        raise PiperVoiceError(f"{path}: no such file (a Piper voice needs its .onnx.json beside the .onnx)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        phoneme_type = data.get("phoneme_type", "espeak")
        if phoneme_type != "espeak":
            raise PiperVoiceError(f"{path}: phoneme_type {phoneme_type!r} is not supported (only 'espeak')")
        inference = data.get("inference", {})
        id_map = {symbol: [int(i) for i in ids] for symbol, ids in data["phoneme_id_map"].items()}
        return VoiceConfig(
            path=path,
            sample_rate=int(data["audio"]["sample_rate"]),
            espeak_voice=str(data["espeak"]["voice"]),
            phoneme_id_map=id_map,
            num_symbols=int(data.get("num_symbols", 1 + max(max(ids) for ids in id_map.values()))),
            num_speakers=int(data.get("num_speakers", 1)),
            speaker_id_map={str(k): int(v) for k, v in data.get("speaker_id_map", {}).items()},
            noise_scale=float(inference.get("noise_scale", 0.667)),
            length_scale=float(inference.get("length_scale", 1.0)),
            noise_w=float(inference.get("noise_w", 0.8)),
        )
    except json.JSONDecodeError as error:
        raise PiperVoiceError(f"{path}:{error.lineno}: not JSON ({error.msg})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        if isinstance(error, PiperVoiceError):
            raise
        raise PiperVoiceError(f"{path}: not a Piper voice config (bad or missing field {error})") from None


def token_list(config: VoiceConfig) -> List[str]:
    """ESPnet's token list of the voice: the symbol of Piper id ``i`` at line ``i``.

    A space is ``<space>``; ids without a symbol get ``<unused_<i>>`` and the first of them
    is ``<unk>`` (ESPnet's converter needs one; Piper drops unknown symbols instead).

    Raises:
        PiperVoiceError: a symbol with several ids, an id with several symbols, or no free id for ``<unk>``.
    """
    tokens: List[str] = [""] * config.num_symbols
    for symbol, ids in config.phoneme_id_map.items():
        if len(ids) != 1 or not 0 <= ids[0] < config.num_symbols or tokens[ids[0]]:
            raise PiperVoiceError(
                f"{config.path}: phoneme_id_map entry {symbol!r}: {ids} is not one free id below num_symbols"
            )
        tokens[ids[0]] = "<space>" if symbol == " " else symbol
    free = [i for i, token in enumerate(tokens) if not token]
    if not free:
        raise PiperVoiceError(f"{config.path}: every id has a symbol: no id is left for <unk>")
    for i in free:
        tokens[i] = f"<unused_{i}>"
    tokens[free[0]] = "<unk>"
    return tokens
