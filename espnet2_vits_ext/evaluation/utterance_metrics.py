"""All metrics of one (reference, synthesis) pair, their averages, and metrics.json/metrics.tsv."""

import csv
import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
from typeguard import typechecked

from espnet2_vits_ext.evaluation.acoustic_features import AnalysisConfig, extract_world_features
from espnet2_vits_ext.evaluation.duration import compare_durations
from espnet2_vits_ext.evaluation.dtw import align_frames
from espnet2_vits_ext.evaluation.intelligibility import WordErrors, count_word_errors, pooled_rate
from espnet2_vits_ext.evaluation.mel_cepstral_distortion import mel_cepstral_distortion_db
from espnet2_vits_ext.evaluation.pitch import log_f0_rmse_cents, voicing_error_rate


@dataclass(frozen=True)
class UtteranceMetrics:
    """Metrics of one utterance; ratios are synthesized over reference.

    Attributes:
        utt_id: The utterance key.
        mcd_db: Mel-cepstral distortion after DTW, dB.
        log_f0_rmse_cents: Log-F0 RMSE on pairs voiced in both, cents (NaN if none).
        vuv_error_rate: Fraction of aligned pairs with different voicing decisions.
        duration_ratio: Whole-file duration ratio.
        speech_duration_ratio: Duration ratio after trimming leading/trailing silence.
        reference_seconds: Length of the natural recording.
        synthesized_seconds: Length of the synthesis.
        aligned_frames: Length of the DTW path.
        voiced_pairs: Aligned pairs voiced in both signals (the log-F0 RMSE's support).
        text_words: Words of the normalised input text (the WER's denominator); the WER
            fields are None when the WER is not computed (``--wer false``).
        synthesized_word_errors: Word errors of what the recognizer heard in the synthesis.
        recording_word_errors: The same for the natural recording.
        synthesized_transcript: What the recognizer heard in the synthesis (normalised).
        recording_transcript: What it heard in the recording.
    """

    utt_id: str
    mcd_db: float
    log_f0_rmse_cents: float
    vuv_error_rate: float
    duration_ratio: float
    speech_duration_ratio: float
    reference_seconds: float
    synthesized_seconds: float
    aligned_frames: int
    voiced_pairs: int
    text_words: Optional[int] = None
    synthesized_word_errors: Optional[int] = None
    recording_word_errors: Optional[int] = None
    synthesized_transcript: Optional[str] = None
    recording_transcript: Optional[str] = None

    @property
    def synthesized_wer(self) -> Optional[float]:
        """Word error rate of the synthesis (NaN for an empty text), None without WER."""
        return None if self.text_words is None else WordErrors(self.synthesized_word_errors, self.text_words).rate

    @property
    def recording_wer(self) -> Optional[float]:
        """Word error rate of the recording, as :attr:`synthesized_wer`."""
        return None if self.text_words is None else WordErrors(self.recording_word_errors, self.text_words).rate


ALL_FIELDS = tuple(field.name for field in dataclasses.fields(UtteranceMetrics))
# The word-error fields come last; without them (--wer false) the columns are the older ones.
WER_FIELDS = ALL_FIELDS[ALL_FIELDS.index("text_words"):]
METRIC_FIELDS = ALL_FIELDS[: ALL_FIELDS.index("text_words")]
_FIELD_TYPES = {"utt_id": str, "synthesized_transcript": str, "recording_transcript": str}
_FIELD_TYPES.update({name: int for name in ("aligned_frames", "voiced_pairs", "text_words",
                                            "synthesized_word_errors", "recording_word_errors")})
# The quality metrics that are averaged over utterances (the rest are bookkeeping).
AVERAGED_FIELDS = (
    "mcd_db",
    "log_f0_rmse_cents",
    "vuv_error_rate",
    "duration_ratio",
    "speech_duration_ratio",
)


@typechecked
def evaluate_pair(
    utt_id: str,
    reference_wave: np.ndarray,
    synthesized_wave: np.ndarray,
    sampling_rate: int,
    config: AnalysisConfig,
) -> UtteranceMetrics:
    """Analyse both signals, align them with DTW on mel-cepstra, and compute every metric.

    Args:
        utt_id: The utterance key.
        reference_wave: Natural recording, shape (T_ref_wav,).
        synthesized_wave: Synthesis at the same sampling rate, shape (T_gen_wav,).
        sampling_rate: Samples per second.
        config: Analysis settings shared by both signals.
    """
    reference = extract_world_features(reference_wave, sampling_rate, config)
    synthesized = extract_world_features(synthesized_wave, sampling_rate, config)
    # Align on c_1..c_M: the pairing should follow spectral shape, not loudness.
    reference_index, synthesized_index = align_frames(
        reference.mel_cepstrum[:, 1:], synthesized.mel_cepstrum[:, 1:]
    )
    path = (reference_index, synthesized_index)
    rmse, voiced_pairs = log_f0_rmse_cents(reference.f0_hz, synthesized.f0_hz, *path)
    durations = compare_durations(reference_wave, synthesized_wave, sampling_rate)
    return UtteranceMetrics(
        utt_id=utt_id,
        mcd_db=mel_cepstral_distortion_db(
            reference.mel_cepstrum, synthesized.mel_cepstrum, *path
        ),
        log_f0_rmse_cents=rmse,
        vuv_error_rate=voicing_error_rate(reference.f0_hz, synthesized.f0_hz, *path),
        duration_ratio=durations.duration_ratio,
        speech_duration_ratio=durations.speech_duration_ratio,
        reference_seconds=durations.reference_seconds,
        synthesized_seconds=durations.synthesized_seconds,
        aligned_frames=len(reference_index),
        voiced_pairs=voiced_pairs,
    )


@typechecked
def with_word_errors(
    metrics: UtteranceMetrics, text: str, synthesized_transcript: str, recording_transcript: str
) -> UtteranceMetrics:
    """``metrics`` with the word errors of both transcripts against the input ``text``."""
    synthesized = count_word_errors(text, synthesized_transcript)
    recording = count_word_errors(text, recording_transcript)
    return dataclasses.replace(
        metrics,
        text_words=synthesized.reference_words,
        synthesized_word_errors=synthesized.errors,
        recording_word_errors=recording.errors,
        synthesized_transcript=synthesized_transcript,
        recording_transcript=recording_transcript,
    )


def has_word_errors(metrics: Sequence[UtteranceMetrics]) -> bool:
    """Whether the rows carry the WER fields (all of them do, or none)."""
    return any(m.text_words is not None for m in metrics)


@typechecked
def summarize(metrics: Sequence[UtteranceMetrics]) -> Dict[str, Union[int, float, None]]:
    """Average each quality metric over utterances, ignoring NaN (e.g. an all-unvoiced pair);
    with the WER fields, the corpus WER of the syntheses and of the recordings (all word errors
    over all words of the texts, not a mean of the utterances' rates).

    Returns:
        ``num_utterances``, then ``<metric>`` -> mean (None if no utterance has a value), then
        ``synthesized_wer`` and ``recording_wer`` when the rows have word errors.
    """
    summary: Dict[str, Union[int, float, None]] = {"num_utterances": len(metrics)}
    for name in AVERAGED_FIELDS:
        values = np.array([getattr(m, name) for m in metrics], dtype=np.float64)
        finite = values[np.isfinite(values)]
        summary[name] = float(finite.mean()) if finite.size else None
    if has_word_errors(metrics):
        for side in ("synthesized", "recording"):
            summary[f"{side}_wer"] = pooled_rate(
                [WordErrors(getattr(m, f"{side}_word_errors"), m.text_words) for m in metrics]
            )
    return summary


@typechecked
def speakers_of(metrics: Sequence[UtteranceMetrics], utt2spk: Optional[Dict[str, str]]) -> Dict[str, List[str]]:
    """Speaker -> utterance ids, in order of first appearance; {} for one speaker (or no utt2spk).

    Raises:
        ValueError: If ``utt2spk`` lacks an utterance, naming it.
    """
    if not utt2spk:
        return {}
    groups: Dict[str, List[str]] = {}
    for m in metrics:
        if m.utt_id not in utt2spk:
            raise ValueError(f"utt2spk has no speaker for utterance {m.utt_id}")
        groups.setdefault(utt2spk[m.utt_id], []).append(m.utt_id)
    return groups if len(groups) > 1 else {}


@typechecked
def summarize_by_speaker(
    metrics: Sequence[UtteranceMetrics], speakers: Dict[str, List[str]]
) -> Dict[str, Dict[str, Union[int, float, None]]]:
    """:func:`summarize` of each speaker's utterances (``speakers`` from :func:`speakers_of`)."""
    by_id = {m.utt_id: m for m in metrics}
    return {speaker: summarize([by_id[key] for key in keys]) for speaker, keys in speakers.items()}


def format_summary(summary: Dict[str, Union[int, float, None]]) -> str:
    """One log line: ``MCD 6.21 dB | log-F0 RMSE 48.0 cents | V/UV error 9.1% | ...``."""

    def value(name: str, template: str) -> str:
        return "n/a" if summary[name] is None else template.format(summary[name])

    wer = ""
    if "synthesized_wer" in summary:
        wer = (f"WER {value('synthesized_wer', '{:.3f}')} (recordings "
               f"{value('recording_wer', '{:.3f}')}) | ")
    return (
        f"MCD {value('mcd_db', '{:.2f}')} dB | "
        f"log-F0 RMSE {value('log_f0_rmse_cents', '{:.1f}')} cents | "
        f"V/UV error {value('vuv_error_rate', '{:.1%}')} | "
        f"duration ratio {value('duration_ratio', '{:.3f}')} | "
        f"speech duration ratio {value('speech_duration_ratio', '{:.3f}')} | "
        f"{wer}{summary['num_utterances']} utterances"
    )


def _json_number(value: float) -> Optional[float]:
    # JSON has no NaN; null marks "no value" (e.g. no frame voiced in both signals).
    return None if isinstance(value, float) and math.isnan(value) else value


def _replace_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp.{os.getpid()}")
    try:
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    except OSError:  # a full disk, say: the earlier file stays, the partial one goes
        temporary.unlink(missing_ok=True)
        raise


def _columns(metrics: Sequence[UtteranceMetrics]) -> tuple:
    return METRIC_FIELDS + (WER_FIELDS if has_word_errors(metrics) else ())


def _json_row(m: UtteranceMetrics, columns: tuple) -> dict:
    row = {name: _json_number(getattr(m, name)) for name in columns}
    if m.text_words is not None:
        row.update(synthesized_wer=_json_number(m.synthesized_wer), recording_wer=_json_number(m.recording_wer))
    return row


@typechecked
def write_metrics(
    metrics: Sequence[UtteranceMetrics],
    output_dir: Union[str, Path],
    config: Optional[AnalysisConfig] = None,
    speakers: Optional[Dict[str, List[str]]] = None,
) -> Dict[str, Union[int, float, None]]:
    """Write ``metrics.tsv`` (one row per utterance) and ``metrics.json`` (settings, averages,
    per-speaker averages when ``speakers`` (from :func:`speakers_of`) names several, rows);
    each file is written to a temporary name and renamed into place.

    Returns:
        The averages (see :func:`summarize`).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(metrics)
    columns = _columns(metrics)
    rows = ["\t".join(columns)]
    for m in metrics:
        rows.append("\t".join(_format_cell(getattr(m, name)) for name in columns))
    _replace_atomically(output_dir / "metrics.tsv", "\n".join(rows) + "\n")
    document = {
        "analysis": dataclasses.asdict(config) if config is not None else None,
        "summary": summary,
    }
    if speakers:
        document["speakers"] = {
            speaker: {"utterances": keys, "summary": speaker_summary}
            for (speaker, keys), speaker_summary in zip(
                speakers.items(), summarize_by_speaker(metrics, speakers).values()
            )
        }
    document["utterances"] = [_json_row(m, columns) for m in metrics]
    _replace_atomically(output_dir / "metrics.json", json.dumps(document, indent=2) + "\n")
    return summary


def _format_cell(value: Union[str, int, float]) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.6g}"
    return str(value)


@typechecked
def read_metrics_tsv(path: Union[str, Path]) -> List[UtteranceMetrics]:
    """Read rows written by :func:`write_metrics` (used to merge parallel shards).

    Raises:
        ValueError: If the header differs from the expected columns (with or without the
            WER's), naming the file.
    """
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        columns = tuple(reader.fieldnames or ())
        if columns not in (METRIC_FIELDS, METRIC_FIELDS + WER_FIELDS):
            raise ValueError(
                f"{path}: columns {reader.fieldnames} differ from the expected {list(METRIC_FIELDS)} "
                f"(and, with the WER, {list(WER_FIELDS)})"
            )
        return [
            UtteranceMetrics(**{name: _FIELD_TYPES.get(name, float)(row[name]) for name in columns})
            for row in reader
        ]
