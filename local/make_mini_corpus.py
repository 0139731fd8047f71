#!/usr/bin/env python3
"""Generate the built-in mini corpus: English sentences spoken by espeak-ng, in LJSpeech layout.

Sentences come from ``espnet2_vits_ext/recipe/mini_sentences.py`` (written ones with numbers, abbreviations and
punctuation, then template ones from a seeded generator). Each normalized sentence is
synthesized with the espeak-ng library of the PyPI package ``espeakng-loader`` through ctypes,
with one voice and fixed parameters, so the corpus is the same on every run. Output::

    OUT_DIR/metadata.csv        MINI-0001|text|normalized text   (LJSpeech's three fields)
    OUT_DIR/wavs/MINI-0001.wav  22,050 Hz, 16-bit, mono (espeak-ng's own rate)
    OUT_DIR/{train,val,test}.ids  the split: every 10th utterance is test, 16 are val

With ``--voices a,b,c`` the corpus has several speakers, one espeak-ng voice each: the sentences
go round the voices, ids are ``MINI<kk>_<nnnn>`` and speaker ``MINI<kk>`` (``speakers.txt`` names
each one's voice), ``utt2spk`` says who speaks what, and the split is per speaker (every
speaker's 10th utterance is test, its 7th, 22nd, ... val).

The directory appears atomically (built under a temporary name, then renamed), with a
``.done`` marker that records the options it was made with. A failed write (disk full,
unwritable OUT_DIR) is one error line naming the file and the OS error and leaves nothing
behind; temporary directories of a killed run go on the next run.

Usage: local/make_mini_corpus.py [--num_utts N] [--voice en-us | --voices V1,V2,...] [--rate WPM] OUT_DIR
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import sys
import wave
from pathlib import Path

from espnet2_vits_ext.recipe.atomic_output import OutputError, building, replace_directory, writing
from espnet2_vits_ext.recipe.mini_sentences import sentences

SAMPLE_RATE = 22050
# espeak-ng's speak_lib.h
AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_INITIALIZE_DONT_EXIT = 0x8000
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE, ESPEAK_VOLUME, ESPEAK_PITCH, ESPEAK_RANGE = 1, 2, 3, 4
EE_OK = 0
SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

log = logging.getLogger("make_mini_corpus")


class Espeak:
    """espeak-ng in synchronous mode: :meth:`synthesize` returns a sentence's 16-bit samples."""

    def __init__(self, voice: str, rate: int, pitch: int):
        try:
            import espeakng_loader
        except ImportError:
            raise SystemExit("make_mini_corpus.py needs espeakng-loader: pip install espeakng-loader==0.2.4") from None
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,  # text
            ctypes.c_size_t,  # size in bytes, with the terminating NUL
            ctypes.c_uint,  # position
            ctypes.c_int,  # position type
            ctypes.c_uint,  # end position (0: none)
            ctypes.c_uint,  # flags
            ctypes.POINTER(ctypes.c_uint),  # unique identifier (may be NULL)
            ctypes.c_void_p,  # user data
        ]
        data_path = espeakng_loader.get_data_path().encode()
        rate_hz = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, ESPEAK_INITIALIZE_DONT_EXIT)
        if rate_hz != SAMPLE_RATE:
            raise RuntimeError(f"espeak-ng initialisation gave sample rate {rate_hz}, expected {SAMPLE_RATE}")
        self._chunks: list[bytes] = []
        # Kept on self: the library calls it back, so it must outlive every synthesis.
        self._callback = SYNTH_CALLBACK(self._collect)
        self.lib.espeak_SetSynthCallback(self._callback)
        self.use_voice(voice)
        for parameter, value in ((ESPEAK_RATE, rate), (ESPEAK_PITCH, pitch), (ESPEAK_RANGE, 50), (ESPEAK_VOLUME, 100)):
            if self.lib.espeak_SetParameter(parameter, value, 0) != EE_OK:
                raise RuntimeError(f"espeak-ng refused parameter {parameter} = {value}")

    def use_voice(self, voice: str) -> None:
        """Speak with ``voice`` from now on (the rate and pitch stay)."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != EE_OK:
            raise RuntimeError(f"espeak-ng has no voice {voice!r}")

    def _collect(self, samples, count, _events) -> int:
        if count > 0:
            self._chunks.append(ctypes.string_at(samples, count * 2))
        return 0  # 0: go on synthesizing

    def synthesize(self, text: str) -> bytes:
        """16-bit little-endian mono samples at 22,050 Hz for ``text``."""
        self._chunks = []
        encoded = text.encode("utf-8") + b"\0"
        buffer = ctypes.create_string_buffer(encoded, len(encoded))
        status = self.lib.espeak_Synth(buffer, len(encoded), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
        if status != EE_OK:
            raise RuntimeError(f"espeak-ng failed (status {status}) on {text!r}")
        audio = b"".join(self._chunks)
        if not audio:
            raise RuntimeError(f"espeak-ng produced no audio for {text!r}")
        return audio


def split_of(index: int) -> str:
    """The subset of the utterance numbered ``index`` (from 1): every 10th test, i = 7 (mod 15) val."""
    if index % 10 == 0:
        return "test"
    if index % 15 == 7:
        return "val"
    return "train"


def speaker_of(index: int, voices: list[str]) -> tuple[str, str, int]:
    """``(speaker, utterance id, the speaker's own count)`` of sentence ``index`` (from 1).

    One voice: speaker MINI, ids MINI-0001... Several: the sentences go round the voices, speaker
    k is MINI<kk> with ids MINI<kk>_0001..., so speakers read different sentences (as in VCTK).
    """
    if len(voices) == 1:
        return "MINI", f"MINI-{index:04d}", index
    number = (index - 1) // len(voices) + 1
    speaker = f"MINI{(index - 1) % len(voices) + 1:02d}"
    return speaker, f"{speaker}_{number:04d}", number


def make_corpus(out_dir: Path, num_utts: int, voices: list[str], rate: int, pitch: int) -> None:
    settings = dict(num_utts=num_utts, voice=",".join(voices), rate=rate, pitch=pitch, sample_rate=SAMPLE_RATE)
    done = out_dir / ".done"
    if done.is_file() and json.loads(done.read_text()) == settings:
        log.info("%s is already there (%s)", out_dir, settings)
        return
    espeak = Espeak(voices[0], rate, pitch)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    metadata, utt2spk = [], []
    total_samples = 0
    with building(out_dir) as tmp:
        with writing(tmp / "wavs"):
            (tmp / "wavs").mkdir()
        for index, (text, normalized) in enumerate(sentences(num_utts), start=1):
            speaker, utt_id, number = speaker_of(index, voices)
            espeak.use_voice(voices[(index - 1) % len(voices)])
            audio = espeak.synthesize(normalized)
            total_samples += len(audio) // 2
            path = tmp / "wavs" / f"{utt_id}.wav"
            with writing(path), wave.open(str(path), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(SAMPLE_RATE)
                wav.writeframes(audio)
            metadata.append(f"{utt_id}|{text}|{normalized}\n")
            utt2spk.append(f"{utt_id} {speaker}\n")
            # Each speaker's own count: every speaker has its share of val and test.
            splits[split_of(number)].append(utt_id)
        contents = {f"{name}.ids": "".join(i + "\n" for i in ids) for name, ids in splits.items()}
        contents["metadata.csv"] = "".join(metadata)
        if len(voices) > 1:
            contents["utt2spk"] = "".join(sorted(utt2spk))
            contents["speakers.txt"] = "".join(f"MINI{k:02d} {v}\n" for k, v in enumerate(voices, start=1))
        contents[".done"] = json.dumps(settings) + "\n"  # last: the corpus is complete
        for name, content in contents.items():
            with writing(tmp / name):
                (tmp / name).write_text(content, encoding="utf-8", newline="\n")
        # An earlier run with other settings made the corpus there: replaced.
        replace_directory(tmp, out_dir)
    log.info(
        "wrote %d utterances (%.1f minutes; train %d, val %d, test %d) to %s",
        num_utts,
        total_samples / SAMPLE_RATE / 60,
        *(len(splits[k]) for k in ("train", "val", "test")),
        out_dir,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="corpus directory to create")
    parser.add_argument("--num_utts", type=int, default=240, help="number of sentences (at least 90)")
    parser.add_argument("--voice", default="en-us", help="espeak-ng voice")
    parser.add_argument("--voices", default="", help="several espeak-ng voices, comma-separated: a multi-speaker "
                        "corpus, one speaker per voice (replaces --voice)")
    parser.add_argument("--rate", type=int, default=165, help="speaking rate in words per minute")
    parser.add_argument("--pitch", type=int, default=50, help="base pitch, 0-100")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    try:
        voices = [v for v in args.voices.split(",") if v] or [args.voice]
        make_corpus(args.out_dir, args.num_utts, voices, args.rate, args.pitch)
    except OutputError as error:
        log.error("%s; nothing was left half-written: free space or fix the output directory, then rerun", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
