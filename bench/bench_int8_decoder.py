"""Would an int8 (VNNI) decoder pay? Its kernels' speed against bf16, and its quality on joe.

Issue 14 lists an int8 decoder among the paths to 3x ESPnet's fp32. Two measurements decide it:

* Speed: oneDNN's int8 convolution (``torch.ops.onednn.qconv_pointwise``: unsigned 8-bit
  activations with one scale per tensor, signed 8-bit weights with one scale per output
  channel, int32 accumulation, bf16 output) against our prepacked bf16 convolution
  (:func:`espnet2_vits_ext.acceleration.packed_conv.conv`) on the LJSpeech decoder's stage
  shapes (``--threads`` threads, channels-last, one time chunk of a stage, the two interleaved), and a check that
  the kernel computes what :class:`Int8Emulation` computes (the quality study relies on it).
* Quality: the trained voice joe (``bench_piper_voice.imported_voice``), the 299-character
  sentence with the noise off. The decoder gets the fp32 latent every variant shares and runs
  in fp32 with its convolutions' inputs and weights rounded to int8 as the kernel would see
  them (:class:`Int8Emulation`), on the first stage, the first two, or all; the activation
  scale from the largest magnitude of each input, or from its 99.99th percentile (clipping the
  rest), or one scale per input channel from its largest magnitude: no kernel takes that, but a
  static per-channel scale can be folded into the weights (SmoothQuant's trick), and a dynamic
  one per call bounds how well any such calibration could do. MCD from ours fp32 (frame-paired, ``common.waveform_mcd_db``), beside bf16's.

Usage: python bench/bench_int8_decoder.py [--threads 2] [--voice_zip PATH]
Prints one JSON object.
"""

import argparse
import json
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from common import interleaved_timing, waveform_mcd_db

# (channels, kernel, samples): a time chunk of each stage of the LJSpeech decoder (2 MB of bf16).
STAGE_SHAPES = ((256, 7, 4096), (128, 7, 8192), (64, 11, 16384), (32, 11, 32768))
INT8_MAX = 127
UINT8_ZERO_POINT = 128  # activations change sign, so the unsigned code is centred
CALIBRATIONS = ("max", "p99.99", "channel_max")
SAMPLING_RATE = 22050  # joe-medium's


def weight_scales(weight: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """One int8 scale per output channel (``channel_dim`` of ``weight``), from its largest magnitude."""
    other_dims = [d for d in range(weight.dim()) if d != channel_dim]
    return weight.abs().amax(dim=other_dims) / INT8_MAX


def kernel_speed() -> list:
    """bf16 vs int8 GFLOP/s of one convolution per stage shape."""
    from espnet2_vits_ext.acceleration.packed_conv import conv, pack_conv1d

    rows = []
    for channels, kernel, samples in STAGE_SHAPES:
        padding = (kernel - 1) // 2
        weight = torch.randn(channels, channels, kernel) / (channels * kernel) ** 0.5
        bias = torch.randn(channels)
        signal = torch.randn(1, channels, 1, samples).contiguous(memory_format=torch.channels_last)
        bf16_conv = pack_conv1d(weight, bias, torch.bfloat16, padding, 1, samples)
        bf16_signal = signal.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)

        w_scales = weight_scales(weight, 0)
        int8_weight = torch.round(weight / w_scales[:, None, None]).to(torch.int8).unsqueeze(2)
        x_scale = signal.abs().max().item() / INT8_MAX
        packed = torch.ops.onednn.qconv_prepack(
            int8_weight, w_scales, x_scale, UINT8_ZERO_POINT, [1, 1], [0, padding], [1, 1], 1,
            [1, channels, 1, samples],
        )
        zero_points = torch.zeros(channels, dtype=torch.int64)

        codes = torch.round(signal / x_scale).add_(UINT8_ZERO_POINT).clamp_(0, 255)
        codes = codes.to(torch.uint8).contiguous(memory_format=torch.channels_last)

        def int8_conv(out_dtype=torch.bfloat16):
            return torch.ops.onednn.qconv_pointwise(
                codes, x_scale, UINT8_ZERO_POINT, packed, w_scales, zero_points, bias,
                [1, 1], [0, padding], [1, 1], 1, 1.0, 0, out_dtype, "none", [], None,
            )

        emulated = F.conv1d(
            (codes.float() - UINT8_ZERO_POINT).squeeze(2) * x_scale,
            int8_weight.squeeze(2).float() * w_scales[:, None, None], bias, padding=padding,
        )
        kernel_vs_emulation = ((int8_conv(torch.float32).squeeze(2) - emulated).norm() / emulated.norm()).item()
        flops = 2 * channels * channels * kernel * samples
        times = interleaved_timing(dict(bf16=lambda: conv(bf16_signal, bf16_conv), int8=int8_conv), 30, 3)
        bf16_s, int8_s = times["bf16"]["median_s"], times["int8"]["median_s"]
        rows.append(dict(
            channels=channels, kernel=kernel, samples=samples,
            bf16_gflops=flops / bf16_s / 1e9, int8_gflops=flops / int8_s / 1e9,
            int8_speedup=bf16_s / int8_s, int8_conv_ms=int8_s * 1e3,
            kernel_vs_emulation_rel=kernel_vs_emulation,
        ))
    return rows


class Int8Emulation(TorchFunctionMode):
    """Round the inputs and weights of the decoder's convolutions to int8 codes, as the kernel
    sees them, on the first ``stages`` upsampling stages: their transposed convs and their
    blocks' convs, told apart by input channels (``stage_channels``: each stage's input
    channels, then the last stage's output channels; the output conv is left out). Activation scale
    (``calibration``): ``"max"``, the largest magnitude of each input (B, C, T); ``"p99.99"``, its
    99.99th percentile (values beyond it saturate); ``"channel_max"``, each input channel's
    largest magnitude (C scales)."""

    def __init__(self, stage_channels: Sequence[int], stages: int, calibration: str):
        super().__init__()
        self.transposed_inputs = set(stage_channels[:stages])
        self.block_inputs = set(stage_channels[1:stages + 1])
        self.calibration = calibration

    def _activation(self, x: torch.Tensor) -> torch.Tensor:
        magnitude = x.abs()
        if self.calibration == "max":
            top = magnitude.max()
        elif self.calibration == "channel_max":
            top = magnitude.amax(dim=(0, 2), keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
        else:  # torch.quantile takes at most 16M values: a strided sample of them
            sample = magnitude.flatten()[:: max(1, magnitude.numel() // 4_000_000)]
            top = torch.quantile(sample, 0.9999)
        scale = top / INT8_MAX
        return torch.round(x / scale).clamp_(-INT8_MAX, INT8_MAX).mul_(scale)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        transposed = func is F.conv_transpose1d
        if func is F.conv1d:
            selected = args[0].size(1) in self.block_inputs and args[1].size(0) > 1  # not the output conv
        else:
            selected = transposed and args[0].size(1) in self.transposed_inputs
        if selected:
            x, weight = args[0], args[1]
            channel_dim = 1 if transposed else 0
            shape = [1] * weight.dim()
            shape[channel_dim] = -1
            scales = weight_scales(weight, channel_dim).view(shape)
            weight = torch.round(weight / scales).mul_(scales)
            args = (self._activation(x), weight) + tuple(args[2:])
        return func(*args, **kwargs)


def quality(voice_zip: Path) -> dict:
    """MCD from ours fp32 on joe: bf16, and int8 on growing sets of decoder stages."""
    from bench_piper_voice import imported_voice, phoneme_ids
    from espnet2_vits_ext.acceleration import weight_norm_folding

    model = imported_voice(voice_zip)
    decoder = model.generator.decoder
    text = torch.tensor(phoneme_ids())
    latents = []
    hook = decoder.register_forward_pre_hook(lambda module, args: latents.append(args[0].clone()))
    waveforms = {}
    with torch.inference_mode():
        for precision in ("fp32", "bf16"):
            model.set_inference_precision(precision)
            waveforms[precision] = model.inference(text, noise_scale=0.0, noise_scale_dur=0.0)["wav"].float().numpy()
    hook.remove()
    model.set_inference_precision("fp32")
    latent = latents[0]
    stage_channels = [stage[1].in_channels for stage in decoder.upsamples] + [decoder.upsamples[-1][1].out_channels]
    stage_sets = dict(first_stage=1, first_two_stages=2, all_stages=len(decoder.upsamples))
    result = dict(audio_s=len(waveforms["fp32"]) / SAMPLING_RATE,
                  mcd_db=dict(bf16=waveform_mcd_db(waveforms["fp32"], waveforms["bf16"], SAMPLING_RATE)))
    with torch.inference_mode():
        # The plain decoder function (F.conv1d on folded weights), where the mode can see every conv.
        plain = weight_norm_folding.forward(decoder, latent).reshape(-1).numpy()
        result["mcd_db"]["fp32_plain_path"] = waveform_mcd_db(waveforms["fp32"], plain, SAMPLING_RATE)
        for name, stages in stage_sets.items():
            for calibration in CALIBRATIONS:
                with Int8Emulation(stage_channels, stages, calibration):
                    waveform = weight_norm_folding.forward(decoder, latent).reshape(-1).numpy()
                result["mcd_db"][f"int8_{name}_{calibration}"] = waveform_mcd_db(waveforms["fp32"], waveform, SAMPLING_RATE)
    return result


def main() -> None:
    from bench_piper_voice import DEFAULT_ZIP

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--voice_zip", type=Path, default=DEFAULT_ZIP)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(json.dumps(dict(threads=args.threads, kernels=kernel_speed(), quality=quality(args.voice_zip))))


if __name__ == "__main__":
    main()
