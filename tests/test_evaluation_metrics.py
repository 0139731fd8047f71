"""Objective metrics (MCD, log-F0 RMSE, V/UV error, duration ratios) on cases with known answers."""

import dataclasses
import itertools
import json
import math

import numpy as np
import pytest
from helpers.synthetic_speech import SAMPLING_RATE, VOWELS, vowel_sequence, white_noise

from espnet2_vits_ext.evaluation.acoustic_features import AnalysisConfig
from espnet2_vits_ext.evaluation.alignment_plot import alignment_matrix
from espnet2_vits_ext.evaluation.dtw import align_frames
from espnet2_vits_ext.evaluation.duration import compare_durations, speech_seconds
from espnet2_vits_ext.evaluation.mel_cepstral_distortion import frame_distortions_db
from espnet2_vits_ext.evaluation.pitch import log_f0_rmse_cents, voicing_error_rate
from espnet2_vits_ext.evaluation.utterance_metrics import (
    METRIC_FIELDS,
    UtteranceMetrics,
    evaluate_pair,
    read_metrics_tsv,
    speakers_of,
    summarize,
    summarize_by_speaker,
    with_word_errors,
    write_metrics,
)

HOLDS = (0.3, 0.3, 0.4)
CONFIG = AnalysisConfig()


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    return vowel_sequence(HOLDS)


def score(reference: np.ndarray, synthesized: np.ndarray) -> UtteranceMetrics:
    return evaluate_pair("utt", reference, synthesized, SAMPLING_RATE, CONFIG)


def test_identical_signals_score_zero(reference):
    metrics = score(reference, reference.copy())
    assert metrics.mcd_db == 0.0
    assert metrics.log_f0_rmse_cents == 0.0
    assert metrics.vuv_error_rate == 0.0
    assert metrics.duration_ratio == 1.0 and metrics.speech_duration_ratio == 1.0
    # Identical inputs align on the diagonal.
    assert metrics.aligned_frames == 1 + len(reference) * 1000 // (SAMPLING_RATE * 5)


def test_semitone_shift_gives_100_cents(reference):
    shifted = vowel_sequence(HOLDS, f0_scale=2 ** (1 / 12))
    metrics = score(reference, shifted)
    # 100 cents = one semitone = ln(2) / 12 in natural-log units.
    assert metrics.log_f0_rmse_cents == pytest.approx(100.0, abs=3.0)
    assert metrics.log_f0_rmse_cents * math.log(2) / 1200 == pytest.approx(math.log(2) / 12, rel=0.03)
    assert metrics.vuv_error_rate < 0.02
    assert metrics.voiced_pairs > 0.95 * metrics.aligned_frames


def test_voiced_against_unvoiced_gives_full_vuv_error(reference):
    metrics = score(reference, white_noise(1.0))
    assert metrics.vuv_error_rate > 0.95
    assert math.isnan(metrics.log_f0_rmse_cents) and metrics.voiced_pairs == 0


def test_time_stretched_copy_has_the_stretch_ratio_and_near_zero_mcd(reference):
    stretched = vowel_sequence([1.5 * hold for hold in HOLDS])
    metrics = score(reference, stretched)
    assert metrics.duration_ratio == pytest.approx(1.5, abs=1e-9)
    assert metrics.speech_duration_ratio == pytest.approx(1.5, abs=0.02)
    assert metrics.synthesized_seconds == pytest.approx(1.5)
    # Different vowels, same length: the scale of a real difference.
    other_vowels = score(reference, vowel_sequence(HOLDS, vowels=VOWELS[::-1]))
    assert metrics.mcd_db < 0.5
    assert metrics.mcd_db < 0.1 * other_vowels.mcd_db
    assert metrics.log_f0_rmse_cents < 5.0 and metrics.vuv_error_rate < 0.02


def padded(speech: np.ndarray, lead_seconds: float, trail_seconds: float) -> np.ndarray:
    """``speech`` between stretches of a -60 dB noise floor (room tone, not digital zeros)."""
    rng = np.random.default_rng(0)
    floor = [3e-4 * rng.standard_normal(round(s * SAMPLING_RATE)) for s in (lead_seconds, trail_seconds)]
    return np.concatenate([floor[0], speech, floor[1]])


@pytest.mark.parametrize("slowdown", [1.0, 1.2])
def test_speech_duration_ratio_ignores_leading_and_trailing_silence(reference, slowdown):
    # 1 s of speech with 1.2 s of silence around it, against the same speech (or 1.2x slower)
    # with 0.3 s: the files differ, the speaking rate does not (or by exactly the slowdown).
    padded_reference = padded(reference, 0.5, 0.7)
    synthesized = padded(vowel_sequence([slowdown * hold for hold in HOLDS]), 0.15, 0.15)
    durations = compare_durations(padded_reference, synthesized, SAMPLING_RATE)
    assert durations.reference_seconds == pytest.approx(2.2)
    assert durations.synthesized_seconds == pytest.approx(slowdown + 0.3)
    assert durations.duration_ratio == pytest.approx((slowdown + 0.3) / 2.2)
    assert durations.speech_duration_ratio == pytest.approx(slowdown, abs=0.01)
    # Trimming keeps at most half a 20 ms frame of silence at each edge.
    assert speech_seconds(padded_reference, SAMPLING_RATE) == pytest.approx(1.0, abs=0.021)
    assert speech_seconds(synthesized, SAMPLING_RATE) == pytest.approx(slowdown, abs=0.021)


def test_speech_of_an_all_silent_reference_has_no_ratio():
    silence = np.zeros(SAMPLING_RATE)
    assert math.isnan(compare_durations(silence, vowel_sequence(HOLDS), SAMPLING_RATE).speech_duration_ratio)


def test_mcd_ignores_loudness(reference):
    assert score(reference, 0.5 * reference).mcd_db < 0.05


def test_mcd_formula_on_hand_made_cepstra():
    reference = np.zeros((2, 4))
    synthesized = np.zeros((2, 4))
    synthesized[0, 0] = 5.0  # c_0 (energy) is left out
    synthesized[1, 1:3] = [3.0, 4.0]  # Euclidean distance 5
    expected = 10 / math.log(10) * math.sqrt(2) * np.array([0.0, 5.0])
    np.testing.assert_allclose(frame_distortions_db(reference, synthesized), expected)


def test_pitch_metrics_on_hand_made_contours():
    reference = np.array([100.0, 100.0, 0.0, 0.0, 200.0])
    synthesized = np.array([200.0, 100.0, 0.0, 120.0, 0.0])
    identity = np.arange(5)
    rmse, pairs = log_f0_rmse_cents(reference, synthesized, identity, identity)
    # Voiced in both: frames 0 (one octave = 1200 cents) and 1 (0 cents).
    assert pairs == 2 and rmse == pytest.approx(math.sqrt((1200.0**2 + 0.0) / 2))
    assert voicing_error_rate(reference, synthesized, identity, identity) == pytest.approx(2 / 5)


def brute_force_dtw_cost(cost: np.ndarray) -> float:
    """Minimum path cost over every monotonic path with steps (1,0), (0,1), (1,1)."""
    rows, cols = cost.shape
    best = {}
    for i, j in itertools.product(range(rows), range(cols)):
        previous = [best[p] for p in ((i - 1, j), (i, j - 1), (i - 1, j - 1)) if p in best]
        best[(i, j)] = cost[i, j] + (min(previous) if previous else 0.0)
    return best[(rows - 1, cols - 1)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dtw_finds_the_cheapest_monotonic_path(seed):
    rng = np.random.default_rng(seed)
    reference, synthesized = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    reference_index, synthesized_index = align_frames(reference, synthesized)
    assert (reference_index[0], synthesized_index[0]) == (0, 0)
    assert (reference_index[-1], synthesized_index[-1]) == (6, 4)
    steps = np.stack([np.diff(reference_index), np.diff(synthesized_index)], axis=1)
    assert set(map(tuple, steps)) <= {(1, 0), (0, 1), (1, 1)}
    cost = np.linalg.norm(reference[:, None] - synthesized[None], axis=-1)
    path_cost = cost[reference_index, synthesized_index].sum()
    assert path_cost == pytest.approx(brute_force_dtw_cost(cost))


def test_metrics_files_round_trip_and_average_without_nan(tmp_path):
    rows = [
        UtteranceMetrics("a", 5.0, 40.0, 0.1, 1.1, 1.2, 2.0, 2.2, 400, 300),
        UtteranceMetrics("b", 7.0, float("nan"), 0.3, 0.9, 1.0, 3.0, 2.7, 600, 0),
    ]
    summary = write_metrics(rows, tmp_path, CONFIG)
    assert summary["num_utterances"] == 2
    assert summary["mcd_db"] == pytest.approx(6.0)
    assert summary["log_f0_rmse_cents"] == pytest.approx(40.0)  # the NaN row has no voiced pair
    read_back = read_metrics_tsv(tmp_path / "metrics.tsv")
    assert [r.utt_id for r in read_back] == ["a", "b"]
    assert read_back[0] == rows[0] and math.isnan(read_back[1].log_f0_rmse_cents)
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["summary"] == summarize(rows)
    assert document["utterances"][1]["log_f0_rmse_cents"] is None  # JSON has no NaN
    assert document["analysis"]["f0_method"] == CONFIG.f0_method


def test_metrics_tsv_with_other_columns_is_rejected(tmp_path):
    (tmp_path / "metrics.tsv").write_text("utt_id\tmcd\na\t1.0\n")
    with pytest.raises(ValueError, match="columns"):
        read_metrics_tsv(tmp_path / "metrics.tsv")


def wer_rows() -> list:
    """Three rows with word errors: texts of 4, 2 and 6 words."""
    base = [UtteranceMetrics(key, mcd, 40.0, 0.1, 1.0, 1.0, 2.0, 2.0, 400, 300)
            for key, mcd in (("a", 4.0), ("b", 6.0), ("c", 8.0))]
    heard = {  # (text, heard in the synthesis, heard in the recording)
        "a": ("It's a fine day.", "it's a fine day", "its a fine day"),  # 0 and 1 errors
        "b": ("Hello, world!", "", "hello world"),  # 2 deletions; 0
        "c": ("one two three four five six", "one two three for five six seven", "one two three four five six"),
    }
    return [with_word_errors(row, *heard[row.utt_id]) for row in base]


def test_corpus_wer_pools_the_utterances_word_errors():
    rows = wer_rows()
    assert [(r.text_words, r.synthesized_word_errors, r.recording_word_errors) for r in rows] == [
        (4, 0, 1), (2, 2, 0), (6, 2, 0)
    ]
    assert rows[1].synthesized_wer == 1.0 and rows[0].recording_wer == 0.25
    summary = summarize(rows)
    # (0 + 2 + 2) / (4 + 2 + 6), not the mean of 0, 1 and 1/3.
    assert summary["synthesized_wer"] == pytest.approx(4 / 12)
    assert summary["recording_wer"] == pytest.approx(1 / 12)
    assert "synthesized_wer" not in summarize([dataclasses.replace(rows[0], text_words=None)])


def test_metrics_files_with_word_errors_round_trip(tmp_path):
    rows = wer_rows()
    summary = write_metrics(rows, tmp_path, CONFIG)
    header = (tmp_path / "metrics.tsv").read_text().splitlines()[0].split("\t")
    assert header[: len(METRIC_FIELDS)] == list(METRIC_FIELDS)
    assert header[len(METRIC_FIELDS):] == ["text_words", "synthesized_word_errors", "recording_word_errors",
                                           "synthesized_transcript", "recording_transcript"]
    assert read_metrics_tsv(tmp_path / "metrics.tsv") == rows  # the empty transcript too
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["summary"] == summary and "speakers" not in document
    assert document["utterances"][2]["synthesized_wer"] == pytest.approx(2 / 6)
    assert document["utterances"][2]["synthesized_transcript"] == "one two three for five six seven"


def test_several_speakers_get_their_own_summaries(tmp_path):
    rows = wer_rows()
    assert speakers_of(rows, None) == {} and speakers_of(rows, {"a": "x", "b": "x", "c": "x"}) == {}
    speakers = speakers_of(rows, {"a": "x", "b": "y", "c": "x"})
    assert speakers == {"x": ["a", "c"], "y": ["b"]}
    by_speaker = summarize_by_speaker(rows, speakers)
    assert by_speaker["x"]["mcd_db"] == pytest.approx(6.0) and by_speaker["y"]["mcd_db"] == 6.0
    assert by_speaker["x"]["synthesized_wer"] == pytest.approx(2 / 10)
    write_metrics(rows, tmp_path, CONFIG, speakers)
    document = json.loads((tmp_path / "metrics.json").read_text())
    assert document["speakers"]["x"] == {"utterances": ["a", "c"], "summary": by_speaker["x"]}
    with pytest.raises(ValueError, match="no speaker for utterance c"):
        speakers_of(rows, {"a": "x", "b": "y"})


def test_the_plotted_alignment_is_the_models_monotonic_path():
    durations = np.array([2, 0, 3, 1])
    path = alignment_matrix(durations)
    assert path.shape == (6, 4)
    np.testing.assert_array_equal(path.sum(axis=1), np.ones(6))
    np.testing.assert_array_equal(path.sum(axis=0), durations)
    assert np.all(np.diff(path.argmax(axis=1)) >= 0)


def test_analysis_config_rejects_bad_values():
    with pytest.raises(ValueError, match="f0_method"):
        AnalysisConfig(f0_method="crepe")
    with pytest.raises(ValueError, match="f0_floor_hz < f0_ceil_hz"):
        AnalysisConfig(f0_floor_hz=500.0, f0_ceil_hz=100.0)
