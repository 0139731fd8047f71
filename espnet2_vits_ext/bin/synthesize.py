"""Synthesize speech from text with a packed ESPnet TTS model (``tts: fast_vits`` or ``vits``).

Loads the model with ESPnet's ``Text2Speech.from_pretrained``, checks the text with our
frontend before synthesis (empty or unpronounceable text is a clear error, not a crash deep in
ESPnet), splits long text at sentence ends (:mod:`espnet2_vits_ext.text.sentence_split`),
synthesizes the pieces one at a time and joins them with a short pause.

A local ``.zip`` is unpacked into a temporary directory for each run: ESPnet's model zoo would
unpack it into its package directory, keyed by the zip's path, and keep using that copy after
the zip at the same path is repacked with a newer model.

Usage: python -m espnet2_vits_ext.bin.synthesize --model_tag exp/tts/packed.zip --text "Hello." --output out.wav
"""

import argparse
import logging
import sys
import tempfile
import warnings
from pathlib import Path
from typing import List, Optional

import numpy as np
import soundfile as sf

from espnet2_vits_ext.text.frontend import (
    CLEANER_TYPES,
    G2P_TYPES,
    TextFrontend,
    TextFrontendError,
    ensure_espeak_environment,
    unknown_tokens,
)
from espnet2_vits_ext.text.sentence_split import split_sentences

log = logging.getLogger("synthesize")


class SynthesisError(Exception):
    """A problem the user can fix (bad text, missing model); printed without a traceback."""


def check_text(text: str) -> str:
    if not text or not text.strip():
        raise SynthesisError("the text is empty: give --text \"...\" with something to say")
    return text


def load_text2speech(model_tag: str, device: str, noise_scale: float, noise_scale_dur: float, speed: float):
    """ESPnet's ``Text2Speech`` for a packed zip, a model directory's files, or a zoo tag."""
    from espnet2.bin.tts_inference import Text2Speech

    options = dict(
        device=device, noise_scale=noise_scale, noise_scale_dur=noise_scale_dur, speed_control_alpha=1.0 / speed
    )
    path = Path(model_tag)
    if path.suffix == ".zip" or path.exists():
        if not path.is_file():
            raise SynthesisError(f"model {model_tag} not found (expected the .zip written by espnet2.bin.pack)")
        from espnet_model_zoo.downloader import ModelDownloader

        with tempfile.TemporaryDirectory(prefix="synthesize_") as unpacked, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Expanding a local model")
            files = ModelDownloader(cachedir=unpacked).unpack_local_file(str(path))
            return Text2Speech.from_pretrained(model_tag=None, **files, **options)
    return Text2Speech.from_pretrained(model_tag=model_tag, **options)


def set_precision(text2speech, precision: str) -> None:
    """Choose the decoder's synthesis precision of a ``tts: fast_vits`` model (its
    ``inference_precision``); ESPnet's own VITS runs in float32 only."""
    model = text2speech.model.tts
    if not hasattr(model, "set_inference_precision"):
        if precision == "fp32":
            return
        raise SynthesisError(f"--precision {precision} needs a tts: fast_vits model, not {type(model).__name__}")
    try:
        model.set_inference_precision(precision)
    except ValueError as error:
        raise SynthesisError(str(error)) from error


def text_frontend_of(text2speech) -> Optional[TextFrontend]:
    """Our frontend configured as the model's preprocessor, if it is one we know."""
    args = text2speech.train_args
    g2p, cleaner = getattr(args, "g2p", None), getattr(args, "cleaner", None) or "none"
    if getattr(args, "token_type", None) != "phn" or g2p not in G2P_TYPES or cleaner not in CLEANER_TYPES:
        return None
    return TextFrontend(g2p=g2p, cleaner=cleaner)


def synthesize(text2speech, pieces: List[str], pause_seconds: float) -> np.ndarray:
    """The pieces' waveforms ``(T,)`` joined with ``pause_seconds`` of silence."""
    pause = np.zeros(int(round(pause_seconds * text2speech.fs)), dtype=np.float32)
    waves = []
    for index, piece in enumerate(pieces, start=1):
        log.info("piece %d/%d: %s", index, len(pieces), piece)
        wave = text2speech(piece)["wav"].view(-1).cpu().numpy().astype(np.float32)
        waves += [pause, wave] if waves else [wave]
    return np.concatenate(waves)


def run(args) -> Path:
    text = check_text(sys.stdin.read() if args.text == "-" else args.text)
    pieces = split_sentences(text, args.max_chars)
    ensure_espeak_environment()
    text2speech = load_text2speech(args.model_tag, args.device, args.noise_scale, args.noise_scale_dur, args.speed)
    if args.precision is not None:
        set_precision(text2speech, args.precision)
    frontend = text_frontend_of(text2speech)
    if frontend is not None:
        token_list = list(text2speech.train_args.token_list)
        for index, piece in enumerate(pieces, start=1):
            try:
                tokens = frontend.text_to_tokens(piece)
            except TextFrontendError as error:
                where = f" (piece {index} of {len(pieces)}: {piece[:60]!r})" if len(pieces) > 1 else ""
                raise SynthesisError(f"{error}{where}") from error
            missing = unknown_tokens(tokens, token_list)
            if missing:
                log.warning("piece %d: phonemes the model never saw (read as <unk>): %s", index, " ".join(missing))
    wave = synthesize(text2speech, pieces, args.pause)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    sf.write(output, np.clip(wave, -1.0, 1.0), text2speech.fs, subtype="PCM_16")
    log.info("wrote %s: %.2f s at %d Hz from %d piece(s)", output, len(wave) / text2speech.fs, text2speech.fs, len(pieces))
    return output


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_tag", required=True, help="packed model (.zip from espnet2.bin.pack) or a model zoo tag")
    parser.add_argument("--text", required=True, help="text to say; '-' reads it from standard input")
    parser.add_argument("--output", required=True, help="output WAV file (16-bit PCM at the model's rate)")
    parser.add_argument("--noise_scale", type=float, default=0.667, help="variance of the prior sample (0.667)")
    parser.add_argument("--noise_scale_dur", type=float, default=0.8, help="variance of the duration sample (0.8)")
    parser.add_argument("--speed", type=float, default=1.0, help="speaking rate, >1 faster (1.0)")
    parser.add_argument("--max_chars", type=int, default=300, help="longest piece of text synthesized at once (300)")
    parser.add_argument("--pause", type=float, default=0.3, help="silence between pieces, seconds (0.3)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cpu)")
    parser.add_argument(
        "--precision", choices=["fp32", "bf16"], default=None,
        help="decoder precision on CPU: bf16 is faster on CPUs with native bfloat16 (AVX512-BF16, AMX), "
        "a fraction of a dB MCD from fp32 (the model's inference_precision, fp32 unless set)",
    )
    return parser


def main(argv=None) -> int:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(name)s) %(levelname)s: %(message)s")
    if args.speed <= 0 or args.max_chars < 1 or args.pause < 0:
        print("synthesize: error: --speed must be > 0, --max_chars >= 1, --pause >= 0", file=sys.stderr)
        return 2
    try:
        run(args)
    except (SynthesisError, TextFrontendError) as error:
        print(f"synthesize: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
