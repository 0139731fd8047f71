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
from espnet2_vits_ext.evaluation.data_files import load_mono_wave
from espnet2_vits_ext.evaluation.spectrogram import plot_spectrogram_pair
from espnet2_vits_ext.evaluation.training_curves import TrainingCurves, plot_training_curves
from espnet2_vits_ext.evaluation.utterance_metrics import UtteranceMetrics

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
)


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


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; padding: 0 1rem; color: #1d1d1f; background: #fafafa; }
h1 { margin-bottom: 0.2rem; }
.meta { color: #555; font-size: 0.9rem; }
code { font-size: 0.85rem; background: #eee; padding: 0.1rem 0.3rem; border-radius: 3px; }
.status { padding: 0.5rem 0.8rem; border-radius: 4px; background: #eee; }
.status.good { background: #e3f4e1; }
.status.bad { background: #fbe1e1; font-weight: bold; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f0f0f0; }
td.name, th.name, td.meaning { text-align: left; }
td.name { white-space: nowrap; }
td.meaning { color: #555; }
section.utterance { background: #fff; border: 1px solid #ddd; border-radius: 6px;
                    padding: 0.6rem 1rem 1rem; margin: 1rem 0; }
section.utterance h3 { margin: 0.2rem 0; }
.text { font-style: italic; margin: 0.3rem 0 0.6rem; }
.players { display: flex; gap: 2rem; flex-wrap: wrap; }
.players figure { margin: 0; }
.players figcaption { font-size: 0.85rem; color: #555; }
.figures { display: flex; gap: 0.5rem; flex-wrap: wrap; align-items: flex-start; margin-top: 0.5rem; }
.figures img { max-width: 100%; border: 1px solid #eee; }
img.curves { max-width: 100%; }
"""

# Checks every <audio> and <img> after loading and reports the outcome at the top of the page;
# each element also gets data-media-state (ok / error / pending) and audio data-duration.
_MEDIA_CHECK_SCRIPT = """
(function () {
  const status = document.getElementById("media-status");
  const audios = Array.from(document.querySelectorAll("audio"));
  const images = Array.from(document.querySelectorAll("img"));
  function update() {
    let ready = 0;
    const failed = [];
    for (const audio of audios) {
      let state = "pending";
      if (audio.error) state = "error";
      else if (audio.readyState >= 1 && audio.duration > 0) state = "ok";
      audio.dataset.mediaState = state;
      audio.dataset.duration = isFinite(audio.duration) ? audio.duration.toFixed(3) : "";
      if (state === "ok") ready += 1;
      if (state === "error") failed.push(audio.getAttribute("src"));
    }
    for (const image of images) {
      let state = "pending";
      if (image.complete) state = image.naturalWidth > 0 ? "ok" : "error";
      image.dataset.mediaState = state;
      if (state === "error") failed.push(image.getAttribute("src"));
    }
    status.dataset.audioTotal = audios.length;
    status.dataset.audioReady = ready;
    status.dataset.failed = failed.length;
    if (failed.length > 0) {
      status.className = "status bad";
      status.textContent = failed.length + " file(s) failed to load: " + failed.join(", ");
    } else {
      status.className = ready === audios.length ? "status good" : "status";
      status.textContent = ready + " of " + audios.length + " audio files ready to play.";
    }
  }
  for (const audio of audios) {
    audio.addEventListener("loadedmetadata", update);
    audio.addEventListener("error", update);
  }
  for (const image of images) {
    image.addEventListener("load", update);
    image.addEventListener("error", update);
  }
  window.addEventListener("load", update);
  update();
})();
"""


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


def _summary_table(summary: Dict[str, Union[int, float, None]]) -> str:
    rows = [
        f"<tr><td class='name'>{title}</td><td>{_format(summary.get(name), template)}</td>"
        f"<td class='meaning'>{html.escape(meaning)}</td></tr>"
        for name, title, template, meaning in _METRIC_COLUMNS
    ]
    return (
        "<table id='summary'><tr><th class='name'>metric</th><th>mean over "
        f"{summary['num_utterances']} utterances</th><th class='name'>meaning</th></tr>"
        + "".join(rows) + "</table>"
    )


def _utterance_table(metrics: Sequence[UtteranceMetrics], shown_ids: Set[str]) -> str:
    header = "".join(f"<th>{title}</th>" for _, title, _, _ in _METRIC_COLUMNS)
    rows = []
    for m in metrics:
        cells = "".join(
            f"<td>{_format(getattr(m, name), template)}</td>"
            for name, _, template, _ in _METRIC_COLUMNS
        )
        name = html.escape(m.utt_id)
        if m.utt_id in shown_ids:
            name = f"<a href='#{_link(f'utt-{m.utt_id}')}'>{name}</a>"
        rows.append(
            f"<tr><td class='name'>{name}</td>{cells}"
            f"<td>{m.reference_seconds:.2f}</td><td>{m.synthesized_seconds:.2f}</td></tr>"
        )
    return (
        f"<table id='utterance-metrics'><tr><th class='name'>utterance</th>{header}"
        "<th>ground truth (s)</th><th>synthesized (s)</th></tr>" + "".join(rows) + "</table>"
    )


def _copy(source: Path, destination: Path) -> None:
    if not source.is_file():
        raise FileNotFoundError(f"{source}: file not found")
    shutil.copyfile(source, destination)


def _utterance_section(
    item: ReportUtterance, metrics: Optional[UtteranceMetrics], report_dir: Path
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
            for name, title, template, _ in _METRIC_COLUMNS
        ) + "</p>"
    return f"""
<section class="utterance" id="{html.escape(f'utt-{item.utt_id}', quote=True)}">
  <h3>{html.escape(item.utt_id)}</h3>
  <p class="text">{html.escape(item.text)}</p>
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


def write_listening_report(
    output_dir: Union[str, Path],
    utterances: Sequence[ReportUtterance],
    metrics: Sequence[UtteranceMetrics],
    summary: Dict[str, Union[int, float, None]],
    training_curves: Optional[TrainingCurves] = None,
    title: str = "Listening report",
    command: str = "",
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

    Returns:
        Path of ``index.html``.
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_partial_reports(output_dir)
    building = output_dir / f".{REPORT_DIRNAME}.tmp.{os.getpid()}"
    for sub in ("audio/reference", "audio/synthesized", "figures/spectrograms", "figures/alignments"):
        (building / sub).mkdir(parents=True)

    if training_curves is not None:
        plot_training_curves(training_curves, building / "figures/training_curves.png")
        curves_html = (
            "<img class='curves' src='figures/training_curves.png' alt='training curves'>"
            f"<p class='meta'>from <code>{html.escape(training_curves.source)}</code></p>"
        )
    else:
        curves_html = "<p class='meta'>No training log or TensorBoard events were given or found.</p>"

    metrics_by_id = {m.utt_id: m for m in metrics}
    shown_ids = {item.utt_id for item in utterances}
    sections: List[str] = [
        _utterance_section(item, metrics_by_id.get(item.utt_id), building) for item in utterances
    ]
    shown_note = ""
    if len(utterances) < len(metrics):
        shown_note = (
            f"<p class='meta'>The first {len(utterances)} of {len(metrics)} scored utterances.</p>"
        )
    generated = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">Generated {generated}{f" by <code>{html.escape(command)}</code>" if command else ""}</p>
<p id="media-status" class="status">Checking that every audio file loads&hellip;</p>
<h2>Summary</h2>
{_summary_table(summary)}
<h2>Training curves</h2>
{curves_html}
<h2>Per-utterance metrics</h2>
{_utterance_table(metrics, shown_ids)}
<h2>Utterances</h2>
{shown_note}
{''.join(sections)}
<script>{_MEDIA_CHECK_SCRIPT}</script>
</body>
</html>
"""
    (building / "index.html").write_text(page, encoding="utf-8")

    final = output_dir / REPORT_DIRNAME
    if final.exists():
        retired = output_dir / f".{REPORT_DIRNAME}.old.{os.getpid()}"
        os.replace(final, retired)
        os.replace(building, final)
        shutil.rmtree(retired)
    else:
        os.replace(building, final)
    return final / "index.html"
