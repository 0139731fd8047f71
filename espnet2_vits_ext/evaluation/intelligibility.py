"""Intelligibility: word error rate of speech as an offline recognizer hears it.

The recognizer is CMU PocketSphinx 5 with the US English acoustic model, language model and
dictionary that ship inside its wheel, so nothing is downloaded and every run hears the same.
It takes 16 kHz mono 16-bit samples; other rates are resampled with soxr (as
``local/dump_audio.py`` does).

The word error rate is (substitutions + deletions + insertions) / reference words, counted by
jiwer. A corpus's WER sums the errors and the reference words over all its utterances (what
``jiwer.wer`` does on lists), so long utterances weigh more than short ones; it is not the
mean of the utterances' rates.

Text normalisation (the reference text and the recognizer's output alike): lower case; every
character that is not a letter, a digit or a word-inner apostrophe becomes a space (so
"picture-books" is two words, "it's" stays one). Numbers are left as written: the recognizer
only ever outputs words, so a reference should spell them out, as LJSpeech's normalized
transcription and the recipe's ``dump/raw/<set>/text`` (prepare_data.py takes that column) do.

How good a judge it is (this machine, measured for the Piper bridge): WER 0.20 on 12 real
LJSpeech recordings, 0.32 on Piper's own synthesis of the same texts with the trained voice
joe, but 0.81 on the mini corpus's espeak-ng recordings: its acoustic model was trained on human
speech and hears espeak-ng's formant synthesis poorly. Compare a voice's WER with the same
recognizer's WER on the recordings of the same texts, side by side (stage 8 gives both); a voice
trained on the mini corpus is judged by MCD, not by WER.
"""

import re
from dataclasses import dataclass
from typing import Optional, Sequence

import jiwer
import numpy as np
from typeguard import typechecked

RECOGNIZER_RATE = 16000
_NOT_WORD = re.compile(r"[^\w']|_")
_EDGE_APOSTROPHES = re.compile(r"(?<!\w)'+|'+(?!\w)")


@typechecked
def normalize_transcript(text: str) -> str:
    """Words of ``text`` as the WER compares them: lower case, punctuation removed, one space
    between words; numbers left as written (see the module docstring)."""
    words = _NOT_WORD.sub(" ", text.lower())
    return " ".join(_EDGE_APOSTROPHES.sub(" ", words).split())


def to_recognizer_input(waveform: np.ndarray, sampling_rate: int) -> bytes:
    """Samples (T_wav,) in [-1, 1] at ``sampling_rate`` as 16 kHz int16 little-endian bytes."""
    if waveform.ndim != 1:
        raise ValueError(f"expected a mono waveform (T_wav,), got shape {waveform.shape}")
    samples = np.asarray(waveform, dtype=np.float64)
    if sampling_rate != RECOGNIZER_RATE:
        import soxr

        samples = soxr.resample(samples, sampling_rate, RECOGNIZER_RATE, quality="HQ")
    # Resampling may overshoot full scale by a little: clip rather than wrap around.
    return np.round(np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


class Recognizer:
    """PocketSphinx with its packaged en-us model.

    Each utterance gets a fresh decoder: a reused one carries its cepstral-mean estimate from
    one utterance to the next, so a transcript would depend on what was heard before it (and
    on how stage 8 splits the test set between jobs). Loading costs about 0.4 s; decoding about
    a quarter of the audio's duration on one core of this machine.
    """

    def __init__(self):
        from pocketsphinx import Config

        # The default Config finds the packaged en-us model; FATAL keeps its log off stderr.
        self._config = Config(loglevel="FATAL", samprate=RECOGNIZER_RATE)

    @typechecked
    def transcribe(self, waveform: np.ndarray, sampling_rate: int) -> str:
        """The words heard in ``waveform`` (T_wav,), normalised; "" when none are."""
        from pocketsphinx import Decoder

        decoder = Decoder(self._config)
        decoder.start_utt()
        decoder.process_raw(to_recognizer_input(waveform, sampling_rate), full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return normalize_transcript(hypothesis.hypstr) if hypothesis is not None else ""


_default_recognizer: Optional[Recognizer] = None


@typechecked
def transcribe(waveform: np.ndarray, fs: int) -> str:
    """What the offline recognizer hears in ``waveform`` (T_wav,) at ``fs`` Hz, normalised.

    The first call reads the recognizer's configuration; later calls reuse it.
    """
    global _default_recognizer
    if _default_recognizer is None:
        _default_recognizer = Recognizer()
    return _default_recognizer.transcribe(waveform, fs)


@dataclass(frozen=True)
class WordErrors:
    """Word errors of one hypothesis against its reference text.

    Attributes:
        errors: Substitutions + deletions + insertions.
        reference_words: Words in the normalised reference.
    """

    errors: int
    reference_words: int

    @property
    def rate(self) -> float:
        """errors / reference_words; NaN for an empty reference."""
        return self.errors / self.reference_words if self.reference_words else float("nan")


@typechecked
def count_word_errors(reference: str, hypothesis: str) -> WordErrors:
    """jiwer's alignment of one normalised pair (both texts normalised here first)."""
    reference, hypothesis = normalize_transcript(reference), normalize_transcript(hypothesis)
    if not reference:  # nothing to align against: every heard word is an insertion
        return WordErrors(errors=len(hypothesis.split()), reference_words=0)
    alignment = jiwer.process_words(reference, hypothesis)
    errors = alignment.substitutions + alignment.deletions + alignment.insertions
    return WordErrors(errors=errors, reference_words=len(reference.split()))


@typechecked
def corpus_word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """WER of a corpus: all errors over all reference words (jiwer on the lists).

    Raises:
        ValueError: If the lists differ in length or the references hold no word at all.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    references = [normalize_transcript(text) for text in references]
    if not any(references):
        raise ValueError("the references hold no word: the WER is undefined")
    return float(jiwer.wer(references, [normalize_transcript(text) for text in hypotheses]))


def pooled_rate(counts: Sequence[WordErrors]) -> Optional[float]:
    """The corpus WER of utterances already counted (equal to :func:`corpus_word_error_rate` on
    their texts); None if they hold no reference word."""
    words = sum(count.reference_words for count in counts)
    return sum(count.errors for count in counts) / words if words else None
