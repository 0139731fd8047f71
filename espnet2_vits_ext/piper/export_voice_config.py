"""The ``.onnx.json`` of an exported voice: what Piper's runtime reads beside the graph.

Keys and meanings are those of Piper's voice configs (e.g. ``en_US-joe-medium.onnx.json``):
``audio.sample_rate``, ``espeak.voice`` (the espeak-ng voice Piper phonemizes with),
``inference`` (default noise_scale, length_scale, noise_w), ``phoneme_type`` ``espeak``,
``phoneme_map``, ``phoneme_id_map``, ``num_symbols``, ``num_speakers``, ``speaker_id_map``,
``piper_version`` (the config format) and ``language``.
"""

from pathlib import Path
from typing import Any, Dict, Optional

from espnet2_vits_ext.piper.export_symbols import PiperSymbols

# espeak-ng voice of each g2p whose tokens are espeak-ng IPA codepoints (see export_symbols).
ESPEAK_VOICES = {"espeak_ng_english_us_vits": "en-us"}
# Synthesis defaults of ESPnet's Text2Speech for VITS (also Piper's): noise_scale,
# length_scale (Text2Speech's speed_control_alpha), noise_w (noise_scale_dur).
DEFAULT_INFERENCE = {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8}
PIPER_CONFIG_VERSION = "1.0.0"


class PiperExportError(ValueError):
    """A model that cannot become a Piper voice; the message names the file and the reason."""


def _espeak_voice(config: Dict[str, Any], symbols: PiperSymbols, zip_path: Path, given: Optional[str],
                  original: Dict[str, Any]) -> str:
    """The espeak-ng voice for the model's tokens, or an error saying why there is none."""
    if given:
        return given
    if original.get("espeak", {}).get("voice"):
        return original["espeak"]["voice"]
    g2p = config.get("g2p")
    if g2p in ESPEAK_VOICES:
        return ESPEAK_VOICES[g2p]
    if symbols.piper_framed:
        raise PiperExportError(f"{zip_path}: g2p {g2p!r} names no espeak-ng voice: give --espeak_voice (e.g. en-us)")
    raise PiperExportError(
        f"{zip_path}: g2p {g2p!r}: its tokens are not espeak-ng IPA codepoints, so Piper cannot phonemize "
        f"for this model (supported: {', '.join(ESPEAK_VOICES)})"
    )


def _language(espeak_voice: str) -> Dict[str, str]:
    """Piper's language block from an espeak-ng voice name: ``en-us`` -> ``en_US``."""
    family, _, region = espeak_voice.partition("-")
    code = f"{family}_{region.upper()}" if region else family
    return {"code": code, "family": family, "region": region.upper()}


def _speaker_id_map(speakers: Optional[int], spk2sid: Optional[Dict[str, int]]) -> Dict[str, int]:
    """Speaker names -> ids: the packed ``spk2sid`` if any, else the ids' own numbers."""
    if not speakers:
        return {}
    if spk2sid:
        return dict(spk2sid)
    return {str(index): index for index in range(speakers)}


def voice_config(
    config: Dict[str, Any],
    symbols: PiperSymbols,
    sample_rate: int,
    speakers: Optional[int],
    zip_path: Path,
    espeak_voice: Optional[str] = None,
    spk2sid: Optional[Dict[str, int]] = None,
    original: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Piper's voice config of an exported model.

    Args:
        config: The packed training config (``token_list``, ``g2p``).
        symbols: Piper's ids of its token list.
        sample_rate: Output sample rate in Hz.
        speakers: Number of speaker ids (``spks``), None for one speaker.
        zip_path: The packed model, named in errors.
        espeak_voice: espeak-ng voice to use instead of the g2p's.
        spk2sid: Speaker names -> ids, where the model was packed with them.
        original: The ``.onnx.json`` of the Piper voice the model was imported from, packed
            in its zip: its espeak voice, inference scales, language, speaker names and
            dataset are kept.

    Returns:
        Dict[str, Any]: the ``.onnx.json`` content.

    Raises:
        PiperExportError: A g2p Piper's phonemizer does not stand in for.
    """
    original = original or {}
    voice = _espeak_voice(config, symbols, zip_path, espeak_voice, original)
    audio = {**original.get("audio", {}), "sample_rate": int(sample_rate)}
    return {
        "audio": audio,
        "espeak": {"voice": voice},
        "language": original.get("language") or _language(voice),
        "inference": {**DEFAULT_INFERENCE, **original.get("inference", {})},
        "phoneme_type": "espeak",
        "phoneme_map": {},
        "phoneme_id_map": symbols.phoneme_id_map,
        "num_symbols": symbols.num_symbols,
        "num_speakers": int(speakers or 1),
        "speaker_id_map": original.get("speaker_id_map") or _speaker_id_map(speakers, spk2sid),
        "piper_version": PIPER_CONFIG_VERSION,
        "dataset": original.get("dataset") or zip_path.name.removesuffix(".zip"),
    }
