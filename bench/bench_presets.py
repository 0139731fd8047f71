"""Piper's four decoder presets: size, synthesis cost and CPU speed, so that a user picks one knowingly.

The presets are the recipe configs ``conf/tuning/train_piper_{x_low,low,medium,high}.yaml``
(``tts: fast_vits``; see docs/piper.md). Each model is built with random weights (seed 0,
vocabulary 256 as Piper's voices): speed and cost depend on the shapes, not on the values.
Per preset:

- parameters of the generator, of the parts synthesis runs (without the posterior encoder
  and the duration predictor's training-only flows, as an exported Piper voice), and of the
  decoder alone;
- GFLOP per second of audio, counted by ``torch.utils.flop_counter.FlopCounterMode`` on one
  second of speech: the text encoder and the duration predictor on 40 ids (Piper's rate for
  joe's speech, pads included), the flow and the decoder on ``sampling_rate / 256`` frames
  (grad mode on, so the counter sees the plain convolutions, not the oneDNN plan);
- RTF (synthesis seconds / audio seconds) in fp32 and, on a CPU with native bfloat16, bf16
  (``inference_precision``), on ``--tokens`` ids with given durations (``--frames_per_token``
  on average, fixed seed): the text encoder, the flow and the decoder, the duration
  predictor skipped (under 1% of the FLOPs) so that every preset decodes the same frames.
  Repeats interleaved over all presets and precisions in this process, medians after warm-up.

Prints one JSON object. Usage: python bench/bench_presets.py [--threads 2] [--repeats 5] [--warmup 2]
"""

import argparse
import json

import torch
from torch.utils.flop_counter import FlopCounterMode

from common import REPO, interleaved_timing, load_tts_conf, make_input, precisions_here

PRESET_NAMES = ("x_low", "low", "medium", "high")
VOCAB_SIZE = 256  # Piper's symbol table
LINEAR_BINS = 513  # n_fft 1024: the posterior encoder's input (built, unused in synthesis)
IDS_PER_SECOND = 40


def build_preset(name: str):
    """``(FastVITS in eval mode, sampling rate)`` of ``conf/tuning/train_piper_<name>.yaml``."""
    from espnet2_vits_ext.vits.fast_vits import FastVITS

    tts_conf = load_tts_conf(REPO / "conf" / "tuning" / f"train_piper_{name}.yaml")
    torch.manual_seed(0)
    return FastVITS(idim=VOCAB_SIZE, odim=LINEAR_BINS, **tts_conf).eval(), tts_conf["sampling_rate"]


def parameter_counts(generator) -> dict:
    """Millions of parameters: the whole generator, what synthesis runs, the decoder."""
    from espnet2_vits_ext.piper.weight_mapping import SYNTHESIS_ONLY_PREFIXES

    named = dict(generator.named_parameters())
    synthesis = [p for n, p in named.items() if not n.startswith(SYNTHESIS_ONLY_PREFIXES)]
    return dict(
        generator_m=sum(p.numel() for p in named.values()) / 1e6,
        synthesis_m=sum(p.numel() for p in synthesis) / 1e6,
        decoder_m=sum(p.numel() for p in generator.decoder.parameters()) / 1e6,
    )


def gflop_per_audio_second(generator, sampling_rate: int) -> dict:
    """GFLOP of one second of speech, all synthesis boxes and the decoder alone."""
    frames, hidden = round(sampling_rate / 256), generator.decoder.input_conv.in_channels
    ids = torch.randint(1, VOCAB_SIZE, (1, IDS_PER_SECOND), generator=torch.Generator().manual_seed(1))
    latent = torch.randn(1, hidden, frames, generator=torch.Generator().manual_seed(2))
    total, decoder = FlopCounterMode(display=False), FlopCounterMode(display=False)
    with total:
        hidden_text, _, _, text_mask = generator.text_encoder(ids, torch.tensor([IDS_PER_SECOND]))
        generator.duration_predictor(hidden_text, text_mask, inverse=True, noise_scale=0.8)
        generator.decoder(generator.flow(latent, torch.ones(1, 1, frames), inverse=True))
    with decoder:
        generator.decoder(latent)
    return dict(gflop_per_audio_s=total.get_total_flops() / 1e9,
                decoder_gflop_per_audio_s=decoder.get_total_flops() / 1e9)


def synthesizer(model, precision: str, text: torch.Tensor, durations: torch.Tensor):
    def synthesize() -> torch.Tensor:
        model.set_inference_precision(precision)
        torch.manual_seed(3)
        with torch.inference_mode():
            return model.inference(text, durations=durations)["wav"]

    return synthesize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--frames_per_token", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    text, durations = make_input(args.tokens, args.frames_per_token)
    result = dict(threads=args.threads, tokens=args.tokens, frames=int(durations.sum()), presets={})
    steps = {}
    for name in PRESET_NAMES:
        model, sampling_rate = build_preset(name)
        figures = dict(sampling_rate=sampling_rate, audio_s=int(durations.sum()) * 256 / sampling_rate,
                       **parameter_counts(model.generator), **gflop_per_audio_second(model.generator, sampling_rate))
        result["presets"][name] = figures
        for precision in precisions_here():
            steps[f"{name}-{precision}"] = synthesizer(model, precision, text, durations)
    for step, timing in interleaved_timing(steps, args.repeats, args.warmup).items():
        name, precision = step.split("-")
        figures = result["presets"][name]
        figures.setdefault("rtf", {})[precision] = timing["median_s"] / figures["audio_s"]
        figures.setdefault("seconds", {})[precision] = timing
    print(json.dumps(result))


if __name__ == "__main__":
    main()
