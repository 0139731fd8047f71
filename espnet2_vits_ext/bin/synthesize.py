"""Synthesize speech from text with a packed ESPnet TTS model (``tts: fast_vits`` or ``vits``).

Loads the model with ESPnet's ``Text2Speech.from_pretrained``, checks the text with our
frontend before synthesis (empty or unpronounceable text is a clear error, not a crash deep in
ESPnet), splits long text at sentence ends (:mod:`espnet2_vits_ext.text.sentence_split`),
synthesizes the pieces one at a time and joins them with a short pause.

``--stream`` decodes each piece chunk by chunk (:mod:`espnet2_vits_ext.inference.streaming`) and
writes every chunk as soon as it is made: the first audio of a long sentence comes after a
fraction of the whole synthesis (logged as "first audio after ... s"), and the joined audio is
the same as without ``--stream`` (to float rounding, below 16-bit resolution).

Output: a WAV file (16-bit PCM), written under a temporary name beside it and renamed when
complete (with ``--stream`` it grows chunk by chunk under that name), so the path never holds
half a file; or ``--output -``: raw 16-bit little-endian mono PCM at the model's rate on
standard output, flushed after every chunk, for a player reading a pipe, e.g.
``... --stream --output - | aplay -f S16_LE -r 22050 -c 1`` (the log goes to standard error).

``--speaker N`` picks speaker N of a multi-speaker voice (ESPnet's ``sids``).

A local ``.zip`` is unpacked into a temporary directory for each run: ESPnet's model zoo would
unpack it into its package directory, keyed by the zip's path, and keep using that copy after
the zip at the same path is repacked with a newer model.

Usage: python -m espnet2_vits_ext.bin.synthesize --model_tag exp/tts/packed.zip --text "Hello." --output out.wav
       [--stream] [--speaker N] [--precision bf16]
"""

import argparse
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterator, List, Optional

import numpy as np
import soundfile as sf
import torch

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


def speaker_ids(text2speech, speaker: Optional[int]) -> Optional[torch.Tensor]:
    """ESPnet's ``sids`` (1,) for ``--speaker``, checked against the voice's speakers."""
    speakers = getattr(text2speech.tts, "spks", None)  # None: one speaker, no speaker ids
    if speakers is None:
        if speaker is not None:
            raise SynthesisError(f"--speaker {speaker}: this voice has one speaker (no speaker ids); "
                                 "leave --speaker out")
        return None
    if speaker is None:
        raise SynthesisError(f"this voice has {speakers} speakers: choose one with --speaker N (0-{speakers - 1})")
    if not 0 <= speaker < speakers:
        raise SynthesisError(f"--speaker {speaker} is out of range: this voice has {speakers} speakers, "
                             f"ids 0-{speakers - 1}")
    return torch.tensor([speaker], dtype=torch.long)


def streamed_piece(text2speech, piece: str, sids: Optional[torch.Tensor]) -> Iterator[np.ndarray]:
    """Waveform chunks (T_chunk,) of one piece, as ``text2speech(piece, sids=sids)`` would
    make it whole: the same tokens, options and random draws."""
    from espnet2_vits_ext.inference.streaming import synthesize_streaming

    model = text2speech.model.tts
    if not hasattr(getattr(model, "generator", None), "decoder"):
        raise SynthesisError(f"--stream needs a VITS model (tts: fast_vits or vits), not {type(model).__name__}")
    tokens = torch.as_tensor(text2speech.preprocess_fn("<dummy>", dict(text=piece))["text"], dtype=torch.long)
    options = {key: value for key, value in text2speech.decode_conf.items() if key != "use_teacher_forcing"}
    if sids is not None:
        options["sids"] = sids
    for chunk in synthesize_streaming(model, tokens.to(text2speech.device), **options):
        yield chunk.float().cpu().numpy()


def synthesize(text2speech, pieces: List[str], pause_seconds: float, sids: Optional[torch.Tensor] = None,
               stream: bool = False) -> Iterator[np.ndarray]:
    """The audio of the pieces, in order, with ``pause_seconds`` of silence between them:
    each piece whole (T,), or with ``stream`` chunk by chunk."""
    pause = np.zeros(int(round(pause_seconds * text2speech.fs)), dtype=np.float32)
    for index, piece in enumerate(pieces, start=1):
        log.info("piece %d/%d: %s", index, len(pieces), piece)
        if index > 1:
            yield pause
        if stream:
            yield from streamed_piece(text2speech, piece, sids)
        else:
            yield text2speech(piece, sids=sids)["wav"].view(-1).float().cpu().numpy()


def to_pcm16(wave: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as 16-bit PCM, rounded as soundfile rounds when it writes PCM_16."""
    return np.round(np.clip(wave, -1.0, 1.0) * 32767.0).astype("<i2")


def write_audio(chunks: Iterator[np.ndarray], output: str, rate: int) -> int:
    """Write the chunks to ``output`` (a WAV file, atomically) or ``-`` (raw PCM to stdout),
    each chunk as it comes; log when the first audio went out. Returns the samples written."""
    started, samples = time.perf_counter(), 0

    def count(chunk: np.ndarray) -> None:
        nonlocal samples
        if samples == 0 and chunk.size:
            log.info("first audio after %.3f s", time.perf_counter() - started)
        samples += chunk.size

    if output == "-":
        for chunk in chunks:
            count(chunk)
            sys.stdout.buffer.write(to_pcm16(chunk).tobytes())
            sys.stdout.buffer.flush()
        return samples
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with sf.SoundFile(partial, "w", samplerate=rate, channels=1, subtype="PCM_16", format="WAV") as wav:
            for chunk in chunks:
                count(chunk)
                wav.write(to_pcm16(chunk))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return samples


def run(args) -> None:
    text = check_text(sys.stdin.read() if args.text == "-" else args.text)
    pieces = split_sentences(text, args.max_chars)
    ensure_espeak_environment()
    text2speech = load_text2speech(args.model_tag, args.device, args.noise_scale, args.noise_scale_dur, args.speed)
    if args.precision is not None:
        set_precision(text2speech, args.precision)
    sids = speaker_ids(text2speech, args.speaker)
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
    chunks = synthesize(text2speech, pieces, args.pause, sids, args.stream)
    samples = write_audio(chunks, args.output, text2speech.fs)
    where = "standard output (raw 16-bit PCM)" if args.output == "-" else args.output
    log.info("wrote %s: %.2f s at %d Hz from %d piece(s)", where, samples / text2speech.fs, text2speech.fs, len(pieces))


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_tag", required=True, help="packed model (.zip from espnet2.bin.pack) or a model zoo tag")
    parser.add_argument("--text", required=True, help="text to say; '-' reads it from standard input")
    parser.add_argument("--output", required=True,
                        help="output WAV file (16-bit PCM at the model's rate); '-': raw 16-bit PCM on standard output")
    parser.add_argument("--stream", action="store_true",
                        help="decode and write chunk by chunk: the first audio comes early (same audio)")
    parser.add_argument("--speaker", type=int, default=None, help="speaker id of a multi-speaker voice (0 .. speakers-1)")
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
