"""CPU synthesis: real-time factor (RTF) and peak memory, ours vs ESPnet's VITS.

A sentence of ``--tokens`` phoneme tokens with given durations (drawn with a fixed seed,
``--frames_per_token`` frames on average: LJSpeech averages about 7 frames per espeak-ng
token), noise at the recipe's default scales from the same seed, so every variant does
the same work. Variants: ``espnet-fp32``, ``espnet-bf16`` (CPU autocast around ESPnet's
synthesis, for reference), ``ours-fp32``, ``ours-bf16`` (our ``inference_precision:
bf16``: the decoder in bfloat16, the rest in float32); the bf16 ones only on a CPU with
native bfloat16 (AVX512-BF16 or AMX).

Timing mode (default): all variants in this process, repeats interleaved; prints one JSON
object with each variant's RTF, the speed-ups over ESPnet fp32, the largest difference
between ours and ESPnet's fp32 waveforms, and the mel-cepstral distortion of each bf16
waveform against its fp32 one, and the machine's matmul peak measured in the same
interleaved rounds (see bench_limits). Memory mode (``--memory VARIANT``): that variant alone;
prints the resident memory of the model and the peak during synthesis.

Usage: python bench/bench_synthesis.py [--threads 2] [--repeats 5] [--warmup 2] [--tokens 100]
       python bench/bench_synthesis.py --memory ours-bf16
"""

import argparse
import json

import torch

from bench_limits import DTYPES, gflops_of, peak_steps
from common import (
    build_models,
    interleaved_timing,
    load_tts_conf,
    make_input,
    precisions_here,
    reset_peak_rss,
    rss_mib,
    waveform_mcd_db,
)

VARIANTS = ("espnet-fp32", "espnet-bf16", "ours-fp32", "ours-bf16")
# On a CPU without native bfloat16 only the fp32 variants are measured.
VARIANTS_HERE = tuple(variant for variant in VARIANTS if variant.split("-")[1] in precisions_here())


def synthesizer(model, variant: str, text: torch.Tensor, durations: torch.Tensor):
    """A call that synthesises the sentence with ``model`` as ``variant`` says."""
    owner, precision = variant.split("-")
    use_autocast = owner == "espnet" and precision == "bf16"

    def synthesize() -> torch.Tensor:
        if owner == "ours":
            model.set_inference_precision(precision)
        torch.manual_seed(2)
        with torch.inference_mode(), torch.autocast(
            "cpu", dtype=torch.bfloat16, enabled=use_autocast
        ):
            return model.inference(text, durations=durations)["wav"].float()

    return synthesize


def measure_memory(args, tts_conf: dict) -> dict:
    model = build_models(tts_conf, args.memory.split("-")[0])
    text, durations = make_input(args.tokens, args.frames_per_token)
    synthesize = synthesizer(model, args.memory, text, durations)
    model_mib = rss_mib("VmRSS")
    reset_peak_rss()
    for _ in range(2):  # the first call also builds caches (folded weights)
        wav = synthesize()
    return dict(
        variant=args.memory,
        audio_s=len(wav) / tts_conf["sampling_rate"],
        model_rss_mib=model_mib,
        peak_rss_mib=rss_mib("VmHWM"),
    )


def measure_time(args, tts_conf: dict) -> dict:
    espnet_model, ours = build_models(tts_conf, "both")
    models = dict(espnet=espnet_model, ours=ours)
    text, durations = make_input(args.tokens, args.frames_per_token)
    steps = {
        variant: synthesizer(models[variant.split("-")[0]], variant, text, durations)
        for variant in args.variants
    }
    # The machine's peak, measured in the same rounds: the distance from the limit is then
    # a ratio of figures taken under the same load.
    peak_work = {precision: peak_steps(DTYPES[precision]) for precision in precisions_here()}
    peak_calls = {f"peak-{precision}-{name}": call for precision, work in peak_work.items()
                  for name, (call, _) in work.items()}
    timing = interleaved_timing({**steps, **peak_calls}, args.repeats, args.warmup)
    peaks = {
        precision: gflops_of({name: timing.pop(f"peak-{precision}-{name}") for name in work}, work)
        for precision, work in peak_work.items()
    }
    waves = {variant: step().numpy() for variant, step in steps.items()}
    sampling_rate = tts_conf["sampling_rate"]
    audio_seconds = len(next(iter(waves.values()))) / sampling_rate
    result = dict(threads=args.threads, tokens=args.tokens, audio_s=audio_seconds, peak_gflops=peaks)
    for variant, figures in timing.items():
        result[variant] = dict(rtf=figures["median_s"] / audio_seconds, **figures)
    if "espnet-fp32" in timing:
        base = timing["espnet-fp32"]["median_s"]
        result["speedup_over_espnet_fp32"] = {
            variant: base / figures["median_s"] for variant, figures in timing.items()
        }
    if {"espnet-fp32", "ours-fp32"} <= set(waves):
        result["max_abs_diff_ours_vs_espnet_fp32"] = float(
            abs(waves["ours-fp32"] - waves["espnet-fp32"]).max()
        )
    for owner in ("espnet", "ours"):
        if {f"{owner}-fp32", f"{owner}-bf16"} <= set(waves):
            result[f"mcd_db_{owner}_bf16_vs_fp32"] = waveform_mcd_db(
                waves[f"{owner}-fp32"], waves[f"{owner}-bf16"], sampling_rate
            )
    # What a different noise sample alone changes (fp32): the scale for the MCD above.
    if "ours-fp32" in steps:
        with torch.inference_mode():
            ours.set_inference_precision("fp32")
            torch.manual_seed(3)
            other_noise = ours.inference(text, durations=durations)["wav"].numpy()
        result["mcd_db_ours_fp32_other_noise_seed"] = waveform_mcd_db(
            waves["ours-fp32"], other_noise, sampling_rate
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--frames_per_token", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS_HERE, default=list(VARIANTS_HERE))
    parser.add_argument("--memory", choices=VARIANTS_HERE, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tts_conf = load_tts_conf()
    if args.memory:
        result = measure_memory(args, tts_conf)
    else:
        result = measure_time(args, tts_conf)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
