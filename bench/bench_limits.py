"""The physical limit of CPU synthesis: work per second of audio over peak throughput.

Counts the floating-point operations of one synthesis and of one training step (both GAN
turns, forward and backward, at bench_train_step's batch) with ``FlopCounterMode``, on
ESPnet's VITS (the architecture's work, which ours shares; our fused oneDNN kernels are
invisible to the counter) and measures the machine's peak on ``--threads`` threads with large matrix
products in fp32 and, where the CPU has native bfloat16, bf16: ``torch.mm`` (MKL for fp32, oneDNN for bf16) and oneDNN
convolutions (a 1x1 one, i.e. a GEMM, and the decoder's dominant shapes) over long
channels-last signals. The best of them is the peak; the lowest reachable real-time factor
of a precision is
``GFLOP per audio second / peak GFLOP/s``.

Usage: python bench/bench_limits.py [--threads 2] [--tokens 100] [--batch_size 4]
"""

import argparse
import json
from typing import Callable, Dict, Tuple

import torch
from torch.utils.flop_counter import FlopCounterMode

from common import build_models, interleaved_timing, load_tts_conf, make_input, precisions_here


# (channels, kernel, steps): a 1x1 conv (a plain matrix product) and the decoder's
# dominant shapes, as 2-D channels-last convolutions (oneDNN's fastest layout).
CONV_SHAPES = ((1024, 1, 8192), (256, 7, 12800), (128, 7, 48000), (64, 11, 96000))
DTYPES = dict(fp32=torch.float32, bf16=torch.bfloat16)


def peak_steps(dtype: torch.dtype) -> Dict[str, Tuple[Callable[[], object], int]]:
    """``name -> (call, FLOPs)``: a 2048^3 ``torch.mm`` and oneDNN convolutions of
    :data:`CONV_SHAPES`, for timing (also interleaved with other work, see bench_synthesis)."""
    size = 2048
    left = torch.randn(size, size).to(dtype)
    right = torch.randn(size, size).to(dtype)
    steps = dict(mm=(lambda: torch.mm(left, right), 2 * size**3))
    for channels, kernel, length in CONV_SHAPES:
        signal = torch.randn(1, channels, 1, length).to(dtype).contiguous(memory_format=torch.channels_last)
        # Prepacked once, as our decoder's weights are (F.conv2d would reorder a bf16
        # weight at every call, which costs as much as a small convolution).
        padding = [0, kernel // 2]
        weight = torch.ops.mkldnn._reorder_convolution_weight(
            torch.randn(channels, channels, 1, kernel).to(dtype), padding, [1, 1], [1, 1], 1,
            [1, channels, 1, length],
        )
        steps[f"conv_{channels}ch_k{kernel}"] = (
            lambda s=signal, w=weight, p=padding: torch.ops.mkldnn._convolution_pointwise(
                s, w, None, p, [1, 1], [1, 1], 1, "none", [], ""
            ),
            2 * channels**2 * kernel * length,
        )
    return steps


def gflops_of(timing: Dict[str, dict], steps: Dict[str, tuple]) -> Dict[str, float]:
    """GFLOP/s of each step's fastest repeat (a peak is what the machine can do, not what
    it did on average) and their ``best``."""
    rates = {name: flops / timing[name]["min_s"] / 1e9 for name, (_, flops) in steps.items()}
    return dict(rates, best=max(rates.values()))


def peak_gflops(dtype: torch.dtype, repeats: int = 7) -> Dict[str, float]:
    steps = peak_steps(dtype)
    timing = interleaved_timing({name: call for name, (call, _) in steps.items()}, repeats, warmup=2)
    return gflops_of(timing, steps)


def training_step_flops(model, batch_size: int) -> int:
    """FLOPs of bench_train_step's step: discriminator turn, then generator turn, each
    forward and backward (the optimizer updates are a few FLOPs per weight: left out)."""
    from bench_train_step import make_batch

    batch = make_batch(batch_size, "cpu")
    model.train()
    torch.manual_seed(4)
    counter = FlopCounterMode(display=False)
    with counter:
        for forward_generator in (False, True):
            model(**batch, forward_generator=forward_generator)["loss"].backward()
    model.zero_grad(set_to_none=True)
    model.eval()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=4)
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
    train_step_gflop = training_step_flops(model, args.batch_size) / 1e9
    peaks = {}
    for name in precisions_here():
        peaks[name] = peak_gflops(DTYPES[name])
    print(json.dumps(dict(
        gflop_per_audio_s=gflop_per_audio_s,
        decoder_share=decoder / total,
        peak_gflops=peaks,
        min_rtf={name: gflop_per_audio_s / peak["best"] for name, peak in peaks.items()},
        train_step_gflop=train_step_gflop,
        train_batch_size=args.batch_size,
    )))


if __name__ == "__main__":
    main()
