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


METRIC_FIELDS = tuple(field.name for field in dataclasses.fields(UtteranceMetrics))
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
def summarize(metrics: Sequence[UtteranceMetrics]) -> Dict[str, Union[int, float, None]]:
    """Average each quality metric over utterances, ignoring NaN (e.g. an all-unvoiced pair).

    Returns:
        ``num_utterances``, then ``<metric>`` -> mean (None if no utterance has a value).
    """
    summary: Dict[str, Union[int, float, None]] = {"num_utterances": len(metrics)}
    for name in AVERAGED_FIELDS:
        values = np.array([getattr(m, name) for m in metrics], dtype=np.float64)
        finite = values[np.isfinite(values)]
        summary[name] = float(finite.mean()) if finite.size else None
    return summary


def format_summary(summary: Dict[str, Union[int, float, None]]) -> str:
    """One log line: ``MCD 6.21 dB | log-F0 RMSE 48.0 cents | V/UV error 9.1% | ...``."""

    def value(name: str, template: str) -> str:
        return "n/a" if summary[name] is None else template.format(summary[name])

    return (
        f"MCD {value('mcd_db', '{:.2f}')} dB | "
        f"log-F0 RMSE {value('log_f0_rmse_cents', '{:.1f}')} cents | "
        f"V/UV error {value('vuv_error_rate', '{:.1%}')} | "
        f"duration ratio {value('duration_ratio', '{:.3f}')} | "
        f"speech duration ratio {value('speech_duration_ratio', '{:.3f}')} | "
        f"{summary['num_utterances']} utterances"
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


@typechecked
def write_metrics(
    metrics: Sequence[UtteranceMetrics],
    output_dir: Union[str, Path],
    config: Optional[AnalysisConfig] = None,
) -> Dict[str, Union[int, float, None]]:
    """Write ``metrics.tsv`` (one row per utterance) and ``metrics.json`` (settings, averages,
    rows); each file is written to a temporary name and renamed into place.

    Returns:
        The averages (see :func:`summarize`).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(metrics)
    rows = ["\t".join(METRIC_FIELDS)]
    for m in metrics:
        rows.append("\t".join(_format_cell(getattr(m, name)) for name in METRIC_FIELDS))
    _replace_atomically(output_dir / "metrics.tsv", "\n".join(rows) + "\n")
    document = {
        "analysis": dataclasses.asdict(config) if config is not None else None,
        "summary": summary,
        "utterances": [
            {name: _json_number(getattr(m, name)) for name in METRIC_FIELDS} for m in metrics
        ],
    }
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
        ValueError: If the header differs from the expected columns, naming the file.
    """
    types = {field.name: field.type for field in dataclasses.fields(UtteranceMetrics)}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        if tuple(reader.fieldnames or ()) != METRIC_FIELDS:
            raise ValueError(
                f"{path}: columns {reader.fieldnames} differ from the expected {list(METRIC_FIELDS)}"
            )
        return [
            UtteranceMetrics(**{name: types[name](row[name]) for name in METRIC_FIELDS})
            for row in reader
        ]
