#!/usr/bin/env python3
"""Score synthesized test utterances against the recordings and write a listening report.

Reads the natural recordings (``wav.scp``) and the syntheses ESPnet's ``tts_inference`` wrote
(``<decode_dir>/wav/<key>.wav``), and writes to ``--output_dir``:

* ``metrics.tsv`` and ``metrics.json``: per utterance MCD (dB), log-F0 RMSE (cents), V/UV error
  rate, duration ratios, and their averages (also logged as one summary line);
* ``report/index.html``: a self-contained listening report (players, spectrograms,
  alignments, training curves); ``--report false`` skips it.

For parallel scoring (``local/evaluate.sh --nj N``), each job runs with ``--report false`` on a
piece of ``wav.scp``, and a last run merges their ``metrics.tsv`` with ``--metrics_from`` and
writes the report.

Usage: python -m espnet2_vits_ext.bin.evaluate_tts --ref_wav_scp dump/raw/test/wav.scp --gen_wav_dir exp/<tts_exp>/decode_<...>/test/wav --output_dir exp/<tts_exp>/eval_test [--text dump/raw/test/text] [--durations <decode>/test/durations/durations] [--train_log_dir exp/<tts_exp>]
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
from espnet2_vits_ext.evaluation.utterance_metrics import (
    UtteranceMetrics,
    evaluate_pair,
    format_summary,
    read_metrics_tsv,
    summarize,
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
    reference_paths: Dict[str, Path], synthesized_paths: Dict[str, Path], config: AnalysisConfig
) -> List[UtteranceMetrics]:
    """Score every utterance, logging progress."""
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
        metrics.append(evaluate_pair(key, reference_wave, synthesized_wave, reference_rate, config))
        logging.info(
            f"[{index}/{len(reference_paths)}] {key}: MCD {metrics[-1].mcd_db:.2f} dB, "
            f"log-F0 RMSE {metrics[-1].log_f0_rmse_cents:.1f} cents, "
            f"V/UV error {metrics[-1].vuv_error_rate:.1%}"
        )
    return metrics


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

    if args.metrics_from:
        metrics = merge_metrics(args.metrics_from, list(reference_paths))
    else:
        logging.info(f"scoring {len(reference_paths)} utterances ({config})")
        metrics = compute_metrics(reference_paths, synthesized_paths, config)
    summary = write_metrics(metrics, args.output_dir, config)
    logging.info(f"wrote {args.output_dir / 'metrics.tsv'} and {args.output_dir / 'metrics.json'}")
    logging.info(f"summary: {format_summary(summary)}")
    if not args.report:
        return

    texts = read_kaldi_map(args.text, allow_empty_value=True) if args.text else {}
    durations = read_durations(args.durations) if args.durations else {}
    utterances = []
    shown_keys = list(reference_paths)[: args.report_utterances]
    for key in shown_keys:
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
    curves = None
    if args.train_log_dir is not None:
        curves = load_training_curves(args.train_log_dir)
        if curves is None:
            logging.warning(
                f"no losses in {args.train_log_dir}/tensorboard or {args.train_log_dir}/train.log: "
                "the report has no training curves"
            )
    try:
        index = write_listening_report(
            args.output_dir,
            utterances,
            metrics,
            summary,
            training_curves=curves,
            title=args.title or f"Listening report: {args.output_dir}",
            command=command,
        )
    except OSError:  # a full disk, say: no half-built report folder stays behind
        remove_partial_reports(args.output_dir)
        raise
    logging.info(f"listening report: {index} (open it in a browser)")


if __name__ == "__main__":
    main()
