"""The static HTML listening report: one self-contained folder that opens in any browser.

Layout of ``<output_dir>/report/``::

    index.html                     metric tables, training curves, one section per utterance
    audio/reference/<id>.<ext>     copies of the natural recordings
    audio/synthesized/<id>.wav     copies of the syntheses
    figures/training_curves.png
    figures/spectrograms/<id>.png  ground truth | synthesized, shared colour scale
    figures/alignments/<id>.png    the monotonic alignment (from durations, or ESPnet's att_ws)

Every link is relative and nothing is loaded from the network, so the folder can be copied or
zipped and opened anywhere. A small inline script checks that every player and image loads
and says so at the top of the page.
"""

import datetime
import html
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Union
from urllib.parse import quote

import numpy as np
from typeguard import typechecked

from espnet2_vits_ext.evaluation.alignment_plot import plot_alignment
from espnet2_vits_ext.evaluation.report_assets import MEDIA_CHECK_SCRIPT, STYLE
from espnet2_vits_ext.evaluation.data_files import load_mono_wave
from espnet2_vits_ext.evaluation.spectrogram import plot_spectrogram_pair
from espnet2_vits_ext.evaluation.training_curves import TrainingCurves, plot_training_curves
from espnet2_vits_ext.evaluation.utterance_metrics import UtteranceMetrics, summarize_by_speaker

REPORT_DIRNAME = "report"

# (field, column title, format, one-line meaning) for the tables.
_METRIC_COLUMNS = (
    ("mcd_db", "MCD (dB)", "{:.2f}",
     "mel-cepstral distortion after DTW; spectral envelope distance, lower is better"),
    ("log_f0_rmse_cents", "log-F0 RMSE (cents)", "{:.1f}",
     "pitch error on frames voiced in both; 100 cents = 1 semitone, lower is better"),
    ("vuv_error_rate", "V/UV error", "{:.1%}",
     "share of aligned frames voiced in one signal but not the other, lower is better"),
    ("duration_ratio", "duration ratio", "{:.3f}",
     "synthesized / ground-truth file length; 1 is ideal"),
    ("speech_duration_ratio", "speech duration ratio", "{:.3f}",
     "the same after trimming leading/trailing silence; above 1 = slower speech"),
    ("synthesized_wer", "WER synthesized", "{:.3f}",
     "word error rate of the synthesis by an offline recognizer (PocketSphinx); over a set, "
     "all word errors / all words of the texts; lower is better"),
    ("recording_wer", "WER recording", "{:.3f}",
     "the same recognizer on the natural recording: the WER a perfect voice would get"),
)
_WER_NAMES = ("synthesized_wer", "recording_wer")


def _shown_columns(summary: Dict[str, Union[int, float, None]]) -> tuple:
    # The WER columns only when the WER was computed (its keys are in the summary).
    return tuple(column for column in _METRIC_COLUMNS if column[0] not in _WER_NAMES or column[0] in summary)


@dataclass(frozen=True)
class ReportUtterance:
    """What the report shows for one utterance.

    Attributes:
        utt_id: The key; also the file name of its copies.
        text: The input text.
        reference_wav: The natural recording.
        synthesized_wav: The synthesis.
        durations: Frames per input token (T_text,), drawn as the alignment; or None.
        attention_image: ESPnet's ``att_ws/<key>.png``, copied when there are no durations.
    """

    utt_id: str
    text: str
    reference_wav: Path
    synthesized_wav: Path
    durations: Optional[np.ndarray] = None
    attention_image: Optional[Path] = None


def _format(value: Union[float, int, None], template: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return template.format(value)


def _link(relative_path: str) -> str:
    return html.escape(quote(relative_path), quote=True)


def _check_utt_id(utt_id: str) -> None:
    # The key becomes a file name inside the report.
    if not utt_id or "/" in utt_id or "\\" in utt_id or utt_id.startswith("."):
        raise ValueError(f"utterance id {utt_id!r} cannot be used as a file name in the report")


def _summary_table(
    summary: Dict[str, Union[int, float, None]], speaker_summaries: Dict[str, Dict[str, Union[int, float, None]]]
) -> str:
    """Means (the WER: pooled) over all utterances, then one column per speaker if several."""
    columns = [summary] + list(speaker_summaries.values())
    speaker_heads = "".join(
        f"<th>speaker {html.escape(speaker)} ({part['num_utterances']})</th>"
        for speaker, part in speaker_summaries.items()
    )
    rows = [
        f"<tr><td class='name'>{title}</td>"
        + "".join(f"<td>{_format(part.get(name), template)}</td>" for part in columns)
        + f"<td class='meaning'>{html.escape(meaning)}</td></tr>"
        for name, title, template, meaning in _shown_columns(summary)
    ]
    return (
        "<table id='summary'><tr><th class='name'>metric</th><th>mean over "
        f"{summary['num_utterances']} utterances</th>{speaker_heads}<th class='name'>meaning</th></tr>"
        + "".join(rows) + "</table>"
    )


def _utterance_table(
    metrics: Sequence[UtteranceMetrics], shown_ids: Set[str], columns: tuple, speakers: Dict[str, str]
) -> str:
    header = "".join(f"<th>{title}</th>" for _, title, _, _ in columns)
    rows = []
    for m in metrics:
        cells = "".join(f"<td>{_format(getattr(m, name), template)}</td>" for name, _, template, _ in columns)
        name = html.escape(m.utt_id)
        if m.utt_id in shown_ids:
            name = f"<a href='#{_link(f'utt-{m.utt_id}')}'>{name}</a>"
        speaker = f"<td class='name'>{html.escape(speakers[m.utt_id])}</td>" if speakers else ""
        rows.append(
            f"<tr><td class='name'>{name}</td>{speaker}{cells}"
            f"<td>{m.reference_seconds:.2f}</td><td>{m.synthesized_seconds:.2f}</td></tr>"
        )
    speaker_head = "<th class='name'>speaker</th>" if speakers else ""
    return (
        f"<table id='utterance-metrics'><tr><th class='name'>utterance</th>{speaker_head}{header}"
        "<th>ground truth (s)</th><th>synthesized (s)</th></tr>" + "".join(rows) + "</table>"
    )


def _copy(source: Path, destination: Path) -> None:
    if not source.is_file():
        raise FileNotFoundError(f"{source}: file not found")
    shutil.copyfile(source, destination)


def _heard_lines(metrics: Optional[UtteranceMetrics]) -> str:
    """What the recognizer heard in each signal, when the WER was computed."""
    if metrics is None or metrics.text_words is None:
        return ""
    return "".join(
        f"<p class='heard'>heard in the {what}: <q>{html.escape(transcript)}</q></p>"
        for what, transcript in (("synthesis", metrics.synthesized_transcript),
                                 ("recording", metrics.recording_transcript))
    )


def _utterance_section(
    item: ReportUtterance, metrics: Optional[UtteranceMetrics], report_dir: Path, columns: tuple
) -> str:
    _check_utt_id(item.utt_id)
    reference_copy = f"audio/reference/{item.utt_id}{item.reference_wav.suffix}"
    synthesized_copy = f"audio/synthesized/{item.utt_id}{item.synthesized_wav.suffix}"
    _copy(item.reference_wav, report_dir / reference_copy)
    _copy(item.synthesized_wav, report_dir / synthesized_copy)

    reference_wave, reference_rate = load_mono_wave(item.reference_wav)
    synthesized_wave, synthesized_rate = load_mono_wave(item.synthesized_wav)
    if reference_rate != synthesized_rate:
        raise ValueError(
            f"{item.utt_id}: ground truth at {reference_rate} Hz, synthesis at {synthesized_rate} Hz"
        )
    spectrogram = f"figures/spectrograms/{item.utt_id}.png"
    plot_spectrogram_pair(
        reference_wave, synthesized_wave, reference_rate, report_dir / spectrogram
    )
    figures = [
        f"<img src='{_link(spectrogram)}' alt='spectrograms of {html.escape(item.utt_id)}'>"
    ]
    alignment = f"figures/alignments/{item.utt_id}.png"
    if item.durations is not None:
        plot_alignment(item.durations, report_dir / alignment, title="alignment (durations)")
    elif item.attention_image is not None:
        _copy(item.attention_image, report_dir / alignment)
    else:
        alignment = None
    if alignment is not None:
        figures.append(
            f"<img src='{_link(alignment)}' alt='alignment of {html.escape(item.utt_id)}'>"
        )

    summary_line = ""
    if metrics is not None:
        summary_line = "<p class='meta'>" + " &middot; ".join(
            f"{title} {_format(getattr(metrics, name), template)}"
            for name, title, template, _ in columns
        ) + "</p>"
    return f"""
<section class="utterance" id="{html.escape(f'utt-{item.utt_id}', quote=True)}">
  <h3>{html.escape(item.utt_id)}</h3>
  <p class="text">{html.escape(item.text)}</p>
  {_heard_lines(metrics)}
  <div class="players">
    <figure><figcaption>ground truth</figcaption>
      <audio controls preload="metadata" src="{_link(reference_copy)}"></audio></figure>
    <figure><figcaption>synthesized</figcaption>
      <audio controls preload="metadata" src="{_link(synthesized_copy)}"></audio></figure>
  </div>
  {summary_line}
  <div class="figures">{''.join(figures)}</div>
</section>"""


@typechecked
def remove_partial_reports(output_dir: Path) -> None:
    """Remove the hidden folders of reports whose building failed or was killed."""
    for partial in output_dir.glob(f".{REPORT_DIRNAME}.tmp.*"):
        shutil.rmtree(partial, ignore_errors=True)


def _curves_html(training_curves: Optional[TrainingCurves], building: Path) -> str:
    if training_curves is None:
        return "<p class='meta'>No training log or TensorBoard events were given or found.</p>"
    plot_training_curves(training_curves, building / "figures/training_curves.png")
    return (
        "<img class='curves' src='figures/training_curves.png' alt='training curves'>"
        f"<p class='meta'>from <code>{html.escape(training_curves.source)}</code></p>"
    )


def _utterances_html(
    utterances: Sequence[ReportUtterance], metrics: Sequence[UtteranceMetrics], building: Path,
    columns: tuple, speakers: Dict[str, List[str]],
) -> str:
    """The utterance sections: under one heading, or under one heading per speaker (in the
    order of ``speakers``) when there are several."""
    metrics_by_id = {m.utt_id: m for m in metrics}
    shown_note = ""
    if len(utterances) < len(metrics):
        shown_note = f"<p class='meta'>The first {len(utterances)} of {len(metrics)} scored utterances.</p>"
    groups = {"": list(utterances)}
    if speakers:
        by_id = {item.utt_id: item for item in utterances}
        groups = {speaker: [by_id[key] for key in keys if key in by_id] for speaker, keys in speakers.items()}
    parts = []
    for speaker, items in groups.items():
        if not items:
            continue
        heading = "Utterances" if not speaker else f"Speaker {html.escape(speaker)}: {len(items)} utterance(s)"
        anchor = f" id='{_link(f'speaker-{speaker}')}'" if speaker else ""
        parts.append(f"<h2{anchor}>{heading}</h2>\n{shown_note if not parts else ''}")
        parts += [_utterance_section(item, metrics_by_id.get(item.utt_id), building, columns) for item in items]
    return "\n".join(parts)


def _page(title: str, command: str, parts: Dict[str, str]) -> str:
    """The whole page around its ``summary``, ``curves``, ``table`` and ``utterances`` parts."""
    generated = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">Generated {generated}{f" by <code>{html.escape(command)}</code>" if command else ""}</p>
<p id="media-status" class="status">Checking that every audio file loads&hellip;</p>
<h2>Summary</h2>
{parts["summary"]}
<h2>Training curves</h2>
{parts["curves"]}
<h2>Per-utterance metrics</h2>
{parts["table"]}
{parts["utterances"]}
<script>{MEDIA_CHECK_SCRIPT}</script>
</body>
</html>
"""


def _install(building: Path, output_dir: Path) -> Path:
    """Rename the built folder into place (an earlier report goes only once it is done)."""
    final = output_dir / REPORT_DIRNAME
    if final.exists():
        retired = output_dir / f".{REPORT_DIRNAME}.old.{os.getpid()}"
        os.replace(final, retired)
        os.replace(building, final)
        shutil.rmtree(retired)
    else:
        os.replace(building, final)
    return final / "index.html"


def write_listening_report(
    output_dir: Union[str, Path],
    utterances: Sequence[ReportUtterance],
    metrics: Sequence[UtteranceMetrics],
    summary: Dict[str, Union[int, float, None]],
    training_curves: Optional[TrainingCurves] = None,
    title: str = "Listening report",
    command: str = "",
    speakers: Optional[Dict[str, List[str]]] = None,
) -> Path:
    """Build ``<output_dir>/report/`` (replacing an earlier one only once the new one is done).

    Args:
        output_dir: The evaluation folder, e.g. ``exp/<tts_exp>/eval_test``.
        utterances: What to show, in page order.
        metrics: Per-utterance metrics, all of them in the table (matched to utterances by id;
            an utterance without a section has no link).
        summary: Averages from :func:`~espnet2_vits_ext.evaluation.utterance_metrics.summarize`.
        training_curves: Loss curves to plot, or None.
        title: Page title.
        command: The command line that made the report, shown under the title.
        speakers: Speaker -> utterance ids, for a test set of several speakers
            (:func:`~espnet2_vits_ext.evaluation.utterance_metrics.speakers_of`): the summary
            gets a column per speaker, the utterances a heading per speaker. None or {}: one.

    Returns:
        Path of ``index.html``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_partial_reports(output_dir)
    building = output_dir / f".{REPORT_DIRNAME}.tmp.{os.getpid()}"
    for sub in ("audio/reference", "audio/synthesized", "figures/spectrograms", "figures/alignments"):
        (building / sub).mkdir(parents=True)
    speakers = speakers or {}
    utt2spk = {key: speaker for speaker, keys in speakers.items() for key in keys}
    columns = _shown_columns(summary)
    shown_ids = {item.utt_id for item in utterances}
    page = _page(title, command, dict(
        summary=_summary_table(summary, summarize_by_speaker(metrics, speakers)),
        curves=_curves_html(training_curves, building),
        table=_utterance_table(metrics, shown_ids, columns, utt2spk),
        utterances=_utterances_html(utterances, metrics, building, columns, speakers),
    ))
    (building / "index.html").write_text(page, encoding="utf-8")
    return _install(building, output_dir)
