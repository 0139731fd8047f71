"""The physical limit of CPU synthesis: work per second of audio over peak throughput.

Counts the floating-point operations of one synthesis (``FlopCounterMode``, on ESPnet's
VITS: the architecture's work, which ours shares; our fused oneDNN kernels are invisible
to the counter) and measures the machine's peak on ``--threads`` threads with large matrix
products in fp32 and bf16: ``torch.mm`` (MKL for fp32, oneDNN for bf16) and a 1x1
convolution over a long channels-last signal (a oneDNN GEMM). The better of the two is the
peak; the lowest reachable real-time factor of a precision is
``GFLOP per audio second / peak GFLOP/s``.

Usage: python bench/bench_limits.py [--threads 2] [--tokens 100]
"""

import argparse
import json

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from bench_synthesis import make_input
from common import build_models, interleaved_timing, load_tts_conf


def peak_gflops(dtype: torch.dtype, repeats: int = 7) -> dict:
    """GFLOP/s of a 2048^3 ``torch.mm`` and of a 1024->1024 1x1 conv over 8192 steps."""
    size = 2048
    left = torch.randn(size, size).to(dtype)
    right = torch.randn(size, size).to(dtype)
    channels, steps = 1024, 8192
    signal = torch.randn(1, channels, 1, steps).to(dtype).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(channels, channels, 1, 1).to(dtype).contiguous(memory_format=torch.channels_last)
    timing = interleaved_timing(
        dict(mm=lambda: torch.mm(left, right), conv=lambda: F.conv2d(signal, weight)),
        repeats=repeats, warmup=2,
    )
    # The fastest repeat: a peak is what the machine can do, not what it did on average.
    return dict(
        mm=2 * size**3 / timing["mm"]["min_s"] / 1e9,
        conv1x1=2 * channels**2 * steps / timing["conv"]["min_s"] / 1e9,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tts_conf = load_tts_conf()
    model = build_models(tts_conf, "espnet")
    text, durations = make_input(args.tokens, 7)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        wav = model.inference(text, durations=durations)["wav"]
    audio_seconds = len(wav) / tts_conf["sampling_rate"]
    total = counter.get_total_flops()
    # The decoder alone on a latent of the same length (its ``inference`` bypasses the
    # module hooks that would attribute the counts above).
    decoder_counter = FlopCounterMode(display=False)
    hop = model.generator.upsample_factor
    latent = torch.randn(1, model.generator.decoder.input_conv.in_channels, len(wav) // hop)
    with torch.inference_mode(), decoder_counter:
        model.generator.decoder(latent)
    decoder = decoder_counter.get_total_flops()
    gflop_per_audio_s = total / 1e9 / audio_seconds
    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        measured = peak_gflops(dtype)
        peaks[name] = dict(measured, best=max(measured.values()))
    print(json.dumps(dict(
        gflop_per_audio_s=gflop_per_audio_s,
        decoder_share=decoder / total,
        peak_gflops=peaks,
        min_rtf={name: gflop_per_audio_s / peak["best"] for name, peak in peaks.items()},
    )))


if __name__ == "__main__":
    main()
