"""Piper's own runtime (the ``piper`` CLI of piper-tts) and our torch synthesis, side by side.

``piper_speaks`` runs the CLI as a user does (``echo text | piper -m voice.onnx -f out.wav``)
with the noise off, on raw phonemes (a ``[[ ... ]]`` block, which Piper does not phonemize) or
on text. ``torch_speaks`` is our synthesis of the same phonemes through ESPnet's ``Text2Speech``
with the noise off, scaled as Piper scales its output: with both, a test compares the exported
graph with the model it came from, token for token.

Piper writes 16-bit samples as ``int16(x * 32767)`` (truncation) and soundfile reads them back
as ``s / 32768``: :data:`PCM_TOLERANCE` is one step of each, plus one for float32 rounding
(onnxruntime against torch, ~1e-6).
"""

import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import soundfile as sf

PIPER = Path(sys.executable).with_name("piper")
PCM_TOLERANCE = 3 / 32768


def piper_speaks(voice: Path, out_wav: Path, phonemes: Optional[Sequence[str]] = None, text: Optional[str] = None,
                 normalize: bool = True, options: Sequence[str] = ()) -> np.ndarray:
    """The ``piper`` CLI's waveform of raw ``phonemes`` (or of ``text``) with the noise off.

    Args:
        voice: The ``.onnx`` (its ``.onnx.json`` beside it).
        out_wav: Where the CLI writes its wav.
        phonemes: Piper phonemes (codepoints, " " between words), given as a raw block.
        text: Text for Piper to phonemize instead.
        normalize: Piper's default peak normalisation; False passes ``--no-normalize``.
        options: More CLI options, e.g. ``--speaker 2``, ``--length-scale 1.5``.

    Returns:
        ndarray: Samples (T_wav,) in [-1, 1].
    """
    line = f"[[{''.join(phonemes)}]]" if phonemes is not None else text
    command = [str(PIPER), "-m", str(voice), "-f", str(out_wav), "--noise-scale", "0", "--noise-w-scale", "0"]
    command += ([] if normalize else ["--no-normalize"]) + list(options)
    subprocess.run(command, input=line + "\n", text=True, check=True, capture_output=True)
    wave, _ = sf.read(out_wav, dtype="float32")
    return wave


def text2speech_of_zip(zip_path: Path, unpacked: str, **options):
    """ESPnet's ``Text2Speech`` of a packed zip, unpacked into ``unpacked`` (not the zoo's cache)."""
    from espnet_model_zoo.downloader import ModelDownloader

    from espnet2.bin.tts_inference import Text2Speech

    files = ModelDownloader(cachedir=unpacked).unpack_local_file(str(zip_path))
    return Text2Speech(train_config=files["train_config"], model_file=files["model_file"], device="cpu", **options)


def torch_speaks(tts, phonemes: Sequence[str], normalize: bool = True, **options) -> np.ndarray:
    """``tts`` (a Text2Speech built with the noise off) on ``phonemes``, scaled as Piper's output.

    Args:
        tts: ESPnet's ``Text2Speech`` of a model trained on ESPnet's tokens.
        phonemes: Codepoints, " " between words (ESPnet's ``<space>``); others -> ``<unk>``.
        normalize: Peak-normalise as Piper does by default; else clip to [-1, 1] as it does.
        options: Passed to the call, e.g. ``sids``.

    Returns:
        ndarray: Samples (T_wav,).
    """
    token_id = {token: index for index, token in enumerate(tts.train_args.token_list)}
    ids = np.array([token_id.get("<space>" if p == " " else p, token_id["<unk>"]) for p in phonemes])
    wave = tts(ids, **options)["wav"].numpy()
    return wave / np.abs(wave).max() if normalize else np.clip(wave, -1.0, 1.0)


def espnet_phonemes(tts, text: str) -> list:
    """ESPnet's phonemes of ``text`` (its cleaner and g2p), " " for ``<space>``."""
    tokens = tts.preprocess_fn.tokenizer.text2tokens(tts.preprocess_fn.text_cleaner(text))
    return [" " if token == "<space>" else token for token in tokens]
