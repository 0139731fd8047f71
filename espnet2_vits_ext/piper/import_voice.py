"""Import a Piper voice as an ordinary packed ESPnet model (``tts: fast_vits``).

``VOICE.onnx`` + ``VOICE.onnx.json`` -> ``OUT.zip`` (``espnet2.bin.pack tts`` layout:
the training config, the model file and the voice's ``.onnx.json``), which
``Text2Speech.from_pretrained(model_tag=OUT.zip)`` loads and speaks with Piper's
phonemization (``g2p: piper_espeak_<voice>``).

An exported voice holds only what synthesis runs: the posterior encoder, the duration
predictor's posterior and the discriminators are initialised at random, and the config
says so under ``piper_import``. The zip synthesizes; it is not a training checkpoint.
"""

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Dict, List, NamedTuple

import torch
import yaml

from espnet2_vits_ext.piper.architecture import read_architecture
from espnet2_vits_ext.piper.errors import PiperVoiceError
from espnet2_vits_ext.piper.onnx_weights import convolution_attributes, load_onnx, piper_parameters
from espnet2_vits_ext.piper.presets import HOP_LENGTH, preset, preset_of
from espnet2_vits_ext.piper.voice_config import VoiceConfig, config_path_of, read_voice_config, token_list
from espnet2_vits_ext.piper.weight_mapping import SYNTHESIS_ONLY_PREFIXES, load_into_generator, to_generator_weights
from espnet2_vits_ext.text.piper_phonemes import G2P_PREFIX

SYNTHESIS_ONLY_NOTE = (
    "Imported from a Piper voice, for synthesis only: the exported voice has no posterior "
    "encoder, duration-predictor posterior or discriminator, so these are initialised, not trained."
)


class ImportedVoice(NamedTuple):
    """What :func:`import_voice` wrote."""

    zip_path: Path
    preset: str
    config: VoiceConfig
    parameters: int


def _espnet_args(config: VoiceConfig, preset_name: str, tokens: List[str], work_dir: Path):
    """ESPnet's training arguments of the imported model (what ``config.yaml`` holds)."""
    from espnet2.tasks.gan_tts import GANTTSTask

    (work_dir / "tokens.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    args = GANTTSTask.get_parser().parse_args([
        "--token_list", str(work_dir / "tokens.txt"), "--token_type", "phn", "--cleaner", "none",
        "--g2p", "espeak_ng_english_us_vits", "--tts", "fast_vits", "--feats_extract", "linear_spectrogram",
        "--output_dir", str(work_dir),
    ])
    # Set after parsing: --g2p lists only the voices registered by name (any works from a config).
    args.g2p = G2P_PREFIX + config.espeak_voice
    args.feats_extract_conf = dict(n_fft=1024, hop_length=HOP_LENGTH, win_length=None)
    values = preset(preset_name)
    args.tts_conf = dict(
        sampling_rate=config.sample_rate,
        generator_params=values["generator_params"],
        mel_loss_params=dict(fs=config.sample_rate, n_fft=1024, hop_length=HOP_LENGTH, n_mels=80),
    )
    args.piper_import = dict(
        source=config.path.name[: -len(".json")],
        preset=preset_name,
        synthesis_only=True,
        note=SYNTHESIS_ONLY_NOTE,
        untrained=list(SYNTHESIS_ONLY_PREFIXES) + ["discriminator."],
        inference=dict(noise_scale=config.noise_scale, noise_scale_dur=config.noise_w,
                       speed_control_alpha=config.length_scale),
        speaker_id_map=config.speaker_id_map,
    )
    return args


def _build_model(onnx_path: Path, config: VoiceConfig, work_dir: Path):
    """Build the fast_vits model of the voice's preset and load the voice's weights into it."""
    from espnet2.tasks.gan_tts import GANTTSTask

    onnx_model = load_onnx(onnx_path)
    parameters = piper_parameters(onnx_model, onnx_path)
    try:
        architecture = read_architecture(parameters, convolution_attributes(onnx_model))
    except KeyError as error:
        raise PiperVoiceError(f"{onnx_path}: not a Piper VITS voice (no tensor {error})") from None
    preset_name = preset_of(architecture, config.sample_rate)
    if preset_name is None:
        shown = ", ".join(f"{key}={value}" for key, value in architecture.items())
        raise PiperVoiceError(f"{onnx_path}: its shapes fit no Piper preset (x_low, low, medium, high): {shown}")
    speakers = parameters["emb_g.weight"].shape if "emb_g.weight" in parameters else (1, -1)
    if speakers[0] != config.num_speakers:
        raise PiperVoiceError(f"{config.path}: num_speakers {config.num_speakers} but the voice embeds {speakers[0]}")
    tokens = token_list(config)
    embedding_rows = parameters["enc_p.emb.weight"].shape[0]
    if len(tokens) != embedding_rows:
        raise PiperVoiceError(f"{config.path}: num_symbols {len(tokens)} but the voice embeds {embedding_rows} ids")
    args = _espnet_args(config, preset_name, tokens, work_dir)
    if config.num_speakers > 1:  # speaker ids as ESPnet's sids; Piper's embedding width
        args.tts_conf["generator_params"].update(spks=config.num_speakers, global_channels=int(speakers[1]))
    torch.manual_seed(0)  # the untrained parts: the same zip from the same voice
    model = GANTTSTask.build_model(args)
    generator = model.tts.generator
    weights, unmapped = to_generator_weights(parameters, architecture["flow_layers"], architecture["hidden_channels"])
    homeless, unfilled = load_into_generator(generator, weights)
    problems = [f"tensors with no home: {', '.join(unmapped + homeless)}"] if unmapped or homeless else []
    problems += [f"homes with no tensor: {', '.join(unfilled)}"] if unfilled else []
    if problems:
        raise PiperVoiceError(f"{onnx_path}: {'; '.join(problems)}")
    with torch.no_grad():  # an unknown symbol reads as one more pad (Piper drops it)
        embedding = generator.text_encoder.emb.weight
        embedding[tokens.index("<unk>")] = embedding[config.phoneme_id_map["_"][0]]
    return model, args, preset_name


def import_voice(onnx_path: Path, zip_path: Path) -> ImportedVoice:
    """Import ``onnx_path`` (with its ``.onnx.json``) into the packed model ``zip_path``.

    The zip is written under a temporary name in its folder and renamed when complete.

    Raises:
        PiperVoiceError: one line naming the file and what is wrong with it.
    """
    from espnet2.bin.pack import pack

    onnx_path, zip_path = Path(onnx_path), Path(zip_path)
    if not onnx_path.is_file():
        raise PiperVoiceError(f"{onnx_path}: no such file")
    config = read_voice_config(config_path_of(onnx_path))
    if zip_path.suffix != ".zip":
        raise PiperVoiceError(f"{zip_path}: the packed model must end in .zip")
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    # Packed names are relative to the working directory (espnet2.bin.pack's rule): the
    # files are written under exp/<voice>/ of a temporary folder beside the zip.
    build_dir = zip_path.parent / f".{zip_path.name}.tmp.{os.getpid()}"
    work_dir = build_dir / "exp" / onnx_path.stem
    work_dir.mkdir(parents=True)
    try:
        model, args, preset_name = _build_model(onnx_path, config, work_dir)
        args.output_dir = str(Path("exp") / onnx_path.stem)
        args.token_list = list(args.token_list)
        torch.save(model.state_dict(), work_dir / "model.pth")
        with open(work_dir / "config.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(_plain(vars(args)), f, allow_unicode=True)
        shutil.copyfile(config.path, work_dir / config.path.name)
        packed = Path("exp") / onnx_path.stem
        with contextlib.chdir(build_dir):
            pack(files=dict(model_file=str(packed / "model.pth")),
                 yaml_files=dict(train_config=str(packed / "config.yaml")),
                 option=[str(packed / config.path.name)], outpath=zip_path.name)
        os.replace(build_dir / zip_path.name, zip_path)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    parameters = sum(p.numel() for p in model.tts.generator.parameters())
    logging.info("imported %s (Piper %s preset) into %s", onnx_path, preset_name, zip_path)
    logging.info("%s", SYNTHESIS_ONLY_NOTE)
    return ImportedVoice(zip_path, preset_name, config, parameters)


def _plain(value: Any) -> Any:
    """Arguments as YAML-safe values (paths and tuples as ESPnet's trainer writes them)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value
