"""Piper's four model sizes as ``fast_vits`` generator parameters, and which one a voice is.

Piper trains one architecture (the original VITS with the stochastic duration predictor)
in four sizes. ``medium`` is its default; ``low`` is ``medium`` at 16 kHz; ``x_low`` has
96 hidden channels (384 in the feed-forward) at 16 kHz; ``high`` has ESPnet's HiFi-GAN V1
decoder (512 channels, residual blocks of type "1"). Values from Piper's training CLI
(``--quality``) and its ``VitsModel`` defaults. ``conf/tuning/train_piper_<name>.yaml``
hold the same values as full ESPnet configs (a test keeps them equal).
"""

import copy
from typing import Any, Dict

# Keys that differ from ESPnet's VITS defaults (espnet_defaults.DEFAULT_GENERATOR_PARAMS).
_MEDIUM: Dict[str, Any] = {
    "hidden_channels": 192,
    "text_encoder_type": "vits_transformer",
    "text_encoder_attention_heads": 2,
    "text_encoder_ffn_expand": 4,
    "text_encoder_blocks": 6,
    "text_encoder_positionwise_conv_kernel_size": 3,
    "text_encoder_dropout_rate": 0.1,
    "decoder_kernel_size": 7,
    "decoder_channels": 256,
    "decoder_upsample_scales": [8, 8, 4],
    "decoder_upsample_kernel_sizes": [16, 16, 8],
    "decoder_resblock_type": "2",
    "decoder_resblock_kernel_sizes": [3, 5, 7],
    "decoder_resblock_dilations": [[1, 2], [2, 6], [3, 12]],
}
_HIGH_DECODER: Dict[str, Any] = {
    "decoder_channels": 512,
    "decoder_upsample_scales": [8, 8, 2, 2],
    "decoder_upsample_kernel_sizes": [16, 16, 4, 4],
    "decoder_resblock_type": "1",
    "decoder_resblock_kernel_sizes": [3, 7, 11],
    "decoder_resblock_dilations": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
}
PRESETS: Dict[str, Dict[str, Any]] = {
    "x_low": {"sampling_rate": 16000, "generator_params": {**_MEDIUM, "hidden_channels": 96}},
    "low": {"sampling_rate": 16000, "generator_params": dict(_MEDIUM)},
    "medium": {"sampling_rate": 22050, "generator_params": dict(_MEDIUM)},
    "high": {"sampling_rate": 22050, "generator_params": {**_MEDIUM, **_HIGH_DECODER}},
}
# Piper gives a multi-speaker voice a 512-wide speaker embedding unless told otherwise.
PIPER_SPEAKER_CHANNELS = 512
HOP_LENGTH = 256  # every preset: 1024-point FFT, hop 256, as Piper's audio settings


def preset(name: str) -> Dict[str, Any]:
    """A copy of one preset: ``{"sampling_rate": int, "generator_params": dict}``."""
    if name not in PRESETS:
        raise KeyError(f"no Piper preset {name!r}; presets: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def _expected(name: str, key: str) -> Any:
    from espnet2_vits_ext.vits.espnet_defaults import DEFAULT_GENERATOR_PARAMS

    return PRESETS[name]["generator_params"].get(key, DEFAULT_GENERATOR_PARAMS.get(key))


def preset_of(architecture: Dict[str, Any], sampling_rate: int):
    """The preset whose architecture and sample rate a voice has, or None.

    Args:
        architecture: Generator parameters read from the voice's shapes; each key is
            compared with the preset's value or, where the preset keeps it, ESPnet's default.
        sampling_rate: The voice's sample rate: it tells ``low`` from ``medium`` (one
            architecture); a voice at another rate takes the first preset it fits.

    Returns:
        Optional[str]: e.g. ``"medium"``.
    """
    fits = [
        name for name in PRESETS
        if all(_expected(name, key) == value for key, value in architecture.items())
    ]
    same_rate = [name for name in fits if PRESETS[name]["sampling_rate"] == sampling_rate]
    return (same_rate or fits or [None])[0]
