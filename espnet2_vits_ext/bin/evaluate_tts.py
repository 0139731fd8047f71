#!/usr/bin/env python3
"""Score synthesized test utterances against the recordings and write a listening report.

Reads the natural recordings (``wav.scp``) and the syntheses ESPnet's ``tts_inference`` wrote
(``<decode_dir>/wav/<key>.wav``), and writes to ``--output_dir``:

* ``metrics.tsv`` and ``metrics.json``: per utterance MCD (dB), log-F0 RMSE (cents), V/UV error
  rate, duration ratios, and (``--wer true``, the default; needs ``--text``) what an offline
  recognizer heard in the synthesis and in the recording with their word errors; the averages
  and corpus WERs (also logged as one summary line), and the same per speaker when
  ``--utt2spk`` names several;
* ``report/index.html``: a self-contained listening report (players, spectrograms,
  alignments, training curves); ``--report false`` skips it.

For parallel scoring (``local/evaluate.sh --nj N``), each job runs with ``--report false`` on a
piece of ``wav.scp``, and a last run merges their ``metrics.tsv`` with ``--metrics_from`` and
writes the report.

Usage: python -m espnet2_vits_ext.bin.evaluate_tts --ref_wav_scp dump/raw/test/wav.scp --gen_wav_dir exp/<tts_exp>/decode_<...>/test/wav --output_dir exp/<tts_exp>/eval_test [--text dump/raw/test/text] [--wer false] [--utt2spk dump/raw/test/utt2spk] [--durations <decode>/test/durations/durations] [--train_log_dir exp/<tts_exp>]
"""

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from espnet2.utils.types import int_or_none, str2bool

from espnet2_vits_ext.evaluation.acoustic_features import F0_METHODS, AnalysisConfig
from espnet2_vits_ext.evaluation.data_files import (
    load_mono_wave,
    read_durations,
    read_kaldi_map,
    read_wav_scp,
)
from espnet2_vits_ext.evaluation.report import ReportUtterance, remove_partial_reports, write_listening_report
from espnet2_vits_ext.evaluation.training_curves import load_training_curves
from espnet2_vits_ext.evaluation.intelligibility import transcribe
from espnet2_vits_ext.evaluation.utterance_metrics import (
    UtteranceMetrics,
    evaluate_pair,
    format_summary,
    has_word_errors,
    read_metrics_tsv,
    speakers_of,
    summarize_by_speaker,
    with_word_errors,
    write_metrics,
)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    inputs = parser.add_argument_group("inputs")
    inputs.add_argument("--ref_wav_scp", type=Path, required=True,
                        help="natural recordings, Kaldi wav.scp (its keys are the utterances scored)")
    inputs.add_argument("--gen_wav_dir", type=Path, required=True,
                        help="syntheses, <key>.wav each (tts_inference's <decode_dir>/wav)")
    inputs.add_argument("--output_dir", type=Path, required=True,
                        help="where metrics.{tsv,json} and report/ go")
    inputs.add_argument("--text", type=Path, default=None,
                        help="Kaldi text file with the input sentences, shown in the report")
    inputs.add_argument("--utt2spk", type=Path, default=None,
                        help="Kaldi utt2spk; with several speakers, metrics and report per speaker")
    inputs.add_argument("--durations", type=Path, default=None,
                        help="tts_inference's durations/durations, drawn as alignments")
    inputs.add_argument("--att_ws_dir", type=Path, default=None,
                        help="tts_inference's att_ws/ images, used where no durations are given")
    inputs.add_argument("--train_log_dir", type=Path, default=None,
                        help="the training run (exp/<tts_exp>) whose tensorboard/ or train.log "
                             "gives the training curves")

    analysis = parser.add_argument_group("analysis")
    defaults = AnalysisConfig()
    analysis.add_argument("--f0_method", choices=F0_METHODS, default=defaults.f0_method,
                          help="WORLD F0 estimator (dio is ~20x faster, less accurate)")
    analysis.add_argument("--f0_floor", type=float, default=defaults.f0_floor_hz, help="Hz")
    analysis.add_argument("--f0_ceil", type=float, default=defaults.f0_ceil_hz, help="Hz")
    analysis.add_argument("--frame_period", type=float, default=defaults.frame_period_ms,
                          help="analysis hop, ms")
    analysis.add_argument("--mcep_order", type=int, default=defaults.mcep_order,
                          help="mel-cepstrum order M (c_1..c_M enter the MCD)")

    mode = parser.add_argument_group("mode")
    mode.add_argument("--report", type=str2bool, default=True,
                      help="write the HTML listening report (false: metrics only)")
    mode.add_argument("--wer", type=str2bool, default=True,
                      help="word error rate of the syntheses and of the recordings against --text, "
                           "by PocketSphinx (offline)")
    mode.add_argument("--report_utterances", type=int_or_none, default=None,
                      help="show only the first N utterances of wav.scp in the report (the "
                           "metrics cover all); none: all of them")
    mode.add_argument("--metrics_from", type=Path, nargs="+", default=None,
                      help="read per-utterance rows from these metrics.tsv (parallel jobs) "
                           "instead of computing them")
    mode.add_argument("--title", default=None,
                      help="report title (default: 'Listening report: <output_dir>')")
    return parser


def _missing_message(what: str, missing: Sequence[str], where: str) -> str:
    shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    return f"{len(missing)} utterance(s) of {what} have no {where}: {shown}"


def _synthesized_paths(keys: Sequence[str], gen_wav_dir: Path, ref_wav_scp: Path) -> Dict[str, Path]:
    paths = {key: gen_wav_dir / f"{key}.wav" for key in keys}
    missing = [key for key, path in paths.items() if not path.is_file()]
    if missing:
        raise FileNotFoundError(
            _missing_message(str(ref_wav_scp), missing, f"synthesis <key>.wav in {gen_wav_dir}")
            + " (did stage 7, synthesis, finish for this set?)"
        )
    return paths


def compute_metrics(
    reference_paths: Dict[str, Path],
    synthesized_paths: Dict[str, Path],
    config: AnalysisConfig,
    texts: Optional[Dict[str, str]] = None,
) -> List[UtteranceMetrics]:
    """Score every utterance, logging progress; with ``texts``, also the word errors of what
    the recognizer hears in the synthesis and in the recording."""
    metrics = []
    for index, (key, reference_path) in enumerate(reference_paths.items(), 1):
        reference_wave, reference_rate = load_mono_wave(reference_path)
        synthesized_wave, synthesized_rate = load_mono_wave(synthesized_paths[key])
        if reference_rate != synthesized_rate:
            raise ValueError(
                f"{key}: the recording {reference_path} is at {reference_rate} Hz but the synthesis "
                f"{synthesized_paths[key]} at {synthesized_rate} Hz; score at one rate "
                "(dump the test set at the model's sampling_rate)"
            )
        row = evaluate_pair(key, reference_wave, synthesized_wave, reference_rate, config)
        heard = ""
        if texts is not None:
            row = with_word_errors(row, texts[key], transcribe(synthesized_wave, synthesized_rate),
                                   transcribe(reference_wave, reference_rate))
            heard = f", heard {row.synthesized_transcript!r}"
        metrics.append(row)
        logging.info(
            f"[{index}/{len(reference_paths)}] {key}: MCD {row.mcd_db:.2f} dB, "
            f"log-F0 RMSE {row.log_f0_rmse_cents:.1f} cents, V/UV error {row.vuv_error_rate:.1%}{heard}"
        )
    return metrics


def _texts_for_wer(args, keys: Sequence[str]) -> Optional[Dict[str, str]]:
    if not args.wer:
        return None
    if args.text is None:
        raise ValueError("--wer true needs --text (the sentences the word errors are counted "
                         "against); pass --wer false to score without the WER")
    texts = read_kaldi_map(args.text, allow_empty_value=True)
    missing = [key for key in keys if key not in texts]
    if missing:
        raise ValueError(_missing_message(str(args.ref_wav_scp), missing, f"line in {args.text}"))
    return texts


def merge_metrics(tsv_paths: Sequence[Path], keys: Sequence[str]) -> List[UtteranceMetrics]:
    """Rows of the parallel jobs, in the order of ``keys``; every key exactly once."""
    rows: Dict[str, UtteranceMetrics] = {}
    for path in tsv_paths:
        for row in read_metrics_tsv(path):
            if row.utt_id in rows:
                raise ValueError(f"{path}: utterance {row.utt_id} was already scored in another file")
            rows[row.utt_id] = row
    missing = [key for key in keys if key not in rows]
    if missing:
        raise ValueError(_missing_message("the recordings", missing, "row in --metrics_from"))
    return [rows[key] for key in keys]


def _score(args, config: AnalysisConfig, reference_paths: Dict[str, Path],
           synthesized_paths: Dict[str, Path]) -> List[UtteranceMetrics]:
    """Rows computed here, or merged from the parallel jobs' ``--metrics_from``."""
    keys = list(reference_paths)
    if not args.metrics_from:
        logging.info(f"scoring {len(keys)} utterances ({config}{', and the WER' if args.wer else ''})")
        return compute_metrics(reference_paths, synthesized_paths, config, _texts_for_wer(args, keys))
    metrics = merge_metrics(args.metrics_from, keys)
    if args.wer and not has_word_errors(metrics):
        raise ValueError(f"{args.metrics_from[0]}: no WER columns (its job ran with --wer false); "
                         "score the jobs with --wer true, or merge with --wer false")
    return metrics


def _log_summaries(summary: dict, speaker_summaries: dict) -> None:
    for speaker, speaker_summary in speaker_summaries.items():
        logging.info(f"speaker {speaker} summary: {format_summary(speaker_summary)}")
    logging.info(f"summary: {format_summary(summary)}")


def _report_utterances(args, reference_paths, synthesized_paths) -> List[ReportUtterance]:
    texts = read_kaldi_map(args.text, allow_empty_value=True) if args.text else {}
    durations = read_durations(args.durations) if args.durations else {}
    utterances = []
    for key in list(reference_paths)[: args.report_utterances]:
        attention_image = None
        if args.att_ws_dir is not None and (args.att_ws_dir / f"{key}.png").is_file():
            attention_image = args.att_ws_dir / f"{key}.png"
        utterances.append(
            ReportUtterance(
                utt_id=key,
                text=texts.get(key, ""),
                reference_wav=reference_paths[key],
                synthesized_wav=synthesized_paths[key],
                durations=durations.get(key),
                attention_image=attention_image,
            )
        )
    return utterances


def _training_curves(args):
    if args.train_log_dir is None:
        return None
    curves = load_training_curves(args.train_log_dir)
    if curves is None:
        logging.warning(
            f"no losses in {args.train_log_dir}/tensorboard or {args.train_log_dir}/train.log: "
            "the report has no training curves"
        )
    return curves


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s",
    )
    command = shlex.join(
        ["python", "-m", "espnet2_vits_ext.bin.evaluate_tts"]
        + list(sys.argv[1:] if argv is None else argv)
    )
    config = AnalysisConfig(
        frame_period_ms=args.frame_period,
        f0_method=args.f0_method,
        f0_floor_hz=args.f0_floor,
        f0_ceil_hz=args.f0_ceil,
        mcep_order=args.mcep_order,
    )
    reference_paths = read_wav_scp(args.ref_wav_scp)
    if not reference_paths:
        raise ValueError(f"{args.ref_wav_scp} lists no utterances")
    synthesized_paths = _synthesized_paths(list(reference_paths), args.gen_wav_dir, args.ref_wav_scp)
    metrics = _score(args, config, reference_paths, synthesized_paths)
    utt2spk = read_kaldi_map(args.utt2spk) if args.utt2spk else {}
    speakers = speakers_of(metrics, utt2spk)
    summary = write_metrics(metrics, args.output_dir, config, speakers)
    logging.info(f"wrote {args.output_dir / 'metrics.tsv'} and {args.output_dir / 'metrics.json'}")
    _log_summaries(summary, summarize_by_speaker(metrics, speakers))
    if not args.report:
        return
    try:
        index = write_listening_report(
            args.output_dir,
            _report_utterances(args, reference_paths, synthesized_paths),
            metrics,
            summary,
            training_curves=_training_curves(args),
            title=args.title or f"Listening report: {args.output_dir}",
            command=command,
            speakers=speakers,
        )
    except OSError:  # a full disk, say: no half-built report folder stays behind
        remove_partial_reports(args.output_dir)
        raise
    logging.info(f"listening report: {index} (open it in a browser)")


if __name__ == "__main__":
    main()
