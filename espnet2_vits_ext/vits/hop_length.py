"""One hop length: the samples per spectrogram frame must agree everywhere a config says it.

A VITS config states the hop three times: the feature extractor's frame shift
(``feats_extract_conf.hop_length``: frames of the posterior encoder's input), the
decoder's upsampling (the product of ``generator_params.decoder_upsample_scales``:
samples it makes per latent frame) and the mel loss's frame shift
(``mel_loss_params.hop_length``). If they differ, training still runs but the decoded
windows are cut from the wrong place of the recording and the model learns noise, so
we refuse such a config with both numbers.

:func:`check_model_hops` is what ``FastVITS`` can check itself (it never sees the
feature extractor); :func:`check_hop_lengths` checks a whole training config (the
task's ``build_model`` and ``local/check_train_config.py`` before stage 4).
"""

import importlib
import inspect
import math
from typing import Any, Dict, Mapping, Optional

from espnet2_vits_ext.vits.generator import VITSGenerator
from espnet2_vits_ext.vits.losses.mel import MelSpectrogramLoss

# ``tts`` models whose ``tts_conf`` has VITS's generator_params / mel_loss_params.
VITS_MODELS = ("vits", "fast_vits")


def _default(cls, name: str) -> Any:
    """The default of constructor argument ``name`` of ``cls``."""
    return inspect.signature(cls).parameters[name].default


def decoder_hop(generator_params: Mapping[str, Any]) -> int:
    """Samples the decoder makes per latent frame: the product of its upsampling scales.

    Args:
        generator_params: ``tts_conf.generator_params`` (a missing key means the
            generator's default, as when the model is built).

    Returns:
        int: The product of ``decoder_upsample_scales``.
    """
    scales = generator_params.get("decoder_upsample_scales")
    if scales is None:
        scales = _default(VITSGenerator, "decoder_upsample_scales")
    return math.prod(int(scale) for scale in scales)


def mel_loss_hop(mel_loss_params: Mapping[str, Any]) -> int:
    """Frame shift of the mel loss, ``mel_loss_params.hop_length`` or its default."""
    hop = mel_loss_params.get("hop_length")
    return int(_default(MelSpectrogramLoss, "hop_length") if hop is None else hop)


def _mismatch(decoder: int, other_name: str, other: int, source: Optional[str]) -> str:
    where = f"{source}: " if source else ""
    return f"{where}decoder_upsample_scales multiply to {decoder} but {other_name} is {other}"


def check_model_hops(
    generator_params: Mapping[str, Any], mel_loss_params: Mapping[str, Any], source: Optional[str] = None
) -> None:
    """Refuse a decoder whose upsampling differs from the mel loss's hop.

    Args:
        generator_params: ``tts_conf.generator_params``.
        mel_loss_params: ``tts_conf.mel_loss_params``.
        source: Where the config came from, put in front of the message.

    Raises:
        ValueError: "decoder_upsample_scales multiply to 256 but
            mel_loss_params.hop_length is 300".
    """
    decoder, mel = decoder_hop(generator_params), mel_loss_hop(mel_loss_params)
    if decoder != mel:
        raise ValueError(_mismatch(decoder, "mel_loss_params.hop_length", mel, source))


# ESPnet's GAN-TTS feature extractors (``espnet2.tasks.gan_tts.feats_extractor_choices``) by
# the module that defines each. Importing only the one a config names takes ~3 s where the
# task module takes ~11 s, and the recipe checks every config before training
# (tests/test_hop_length.py holds this table to ESPnet's).
FEATS_EXTRACTORS = {
    "fbank": ("espnet2.tts.feats_extract.log_mel_fbank", "LogMelFbank"),
    "log_spectrogram": ("espnet2.tts.feats_extract.log_spectrogram", "LogSpectrogram"),
    "linear_spectrogram": ("espnet2.tts.feats_extract.linear_spectrogram", "LinearSpectrogram"),
}
DEFAULT_FEATS_EXTRACT = "linear_spectrogram"


def feats_extractor_class(name: str) -> type:
    """ESPnet's feature extractor class for a ``feats_extract`` name of :data:`FEATS_EXTRACTORS`."""
    module, cls = FEATS_EXTRACTORS[name]
    return getattr(importlib.import_module(module), cls)


def _feats_extract_hop(config: Mapping[str, Any]) -> Optional[int]:
    """The feature extractor's frame shift, or None when the config has no extractor."""
    name = config.get("feats_extract", DEFAULT_FEATS_EXTRACT)
    if name is None:
        return None
    if name not in FEATS_EXTRACTORS:
        raise ValueError(f"feats_extract must be one of {sorted(FEATS_EXTRACTORS)}, got {name!r}")
    hop = (config.get("feats_extract_conf") or {}).get("hop_length")
    if hop is None:
        hop = _default(feats_extractor_class(name), "hop_length")
    return int(hop)


def check_hop_lengths(config: Dict[str, Any], source: str) -> None:
    """Refuse a training config whose three hop lengths do not all agree.

    Configs of other ``tts`` models than VITS pass unchecked.

    Args:
        config: The training config as ``gan_tts_train`` reads it (``feats_extract``,
            ``feats_extract_conf``, ``tts``, ``tts_conf``), e.g. a loaded YAML file.
        source: The config's file name, put in front of the message.

    Raises:
        ValueError: One line naming ``source`` and the two numbers that differ.
    """
    if config.get("tts") not in VITS_MODELS:
        return
    tts_conf = config.get("tts_conf") or {}
    generator_params = tts_conf.get("generator_params") or {}
    check_model_hops(generator_params, tts_conf.get("mel_loss_params") or {}, source)
    feats_hop = _feats_extract_hop(config)
    decoder = decoder_hop(generator_params)
    if feats_hop is not None and feats_hop != decoder:
        raise ValueError(_mismatch(decoder, "feats_extract_conf.hop_length", feats_hop, source))
