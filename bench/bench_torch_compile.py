"""Would ``torch.compile`` beat our packed decoder? The LJSpeech decoder both ways, fp32 and bf16.

Issue 14 lists ``torch.compile`` among the paths to try. Inductor on CPU, with ``freezing``
and ``cpp.weight_prepack`` on (it then folds the weights as constants, prepacks them for
oneDNN and fuses the elementwise work around the convolutions: the nearest it comes to what
:mod:`espnet2_vits_ext.acceleration.packed_decoder` does by hand), compiles the plain decoder
function (:func:`espnet2_vits_ext.acceleration.weight_norm_folding.forward`: ``F.conv1d`` on the
folded weights) for one latent length; bf16 by CPU autocast around the compiled call. Against:
our packed decoder (``inference_precision`` fp32 / bf16) and the same plain function eager.
All three interleaved in one process; also the compile time and the compiled output's
largest difference from the packed one.

The decoder is ours built from ``conf/train.yaml`` (the LJSpeech configuration, random weights
seeded as in bench_synthesis: speed depends on the shapes only); the latent is
``--frames`` frames (743: bench_synthesis's 8.63 s sentence).

Usage: python bench/bench_torch_compile.py [--threads 2] [--frames 743] [--repeats 6] [--warmup 2]
Prints one JSON object.
"""

import argparse
import json
import time

import torch

from common import build_models, interleaved_timing, load_tts_conf, precisions_here

SAMPLING_RATE = 22050


def main() -> None:
    import torch._inductor.config as inductor_config

    from espnet2_vits_ext.acceleration import packed_decoder, weight_norm_folding

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=743)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    inductor_config.freezing = True
    inductor_config.cpp.weight_prepack = True

    decoder = build_models(load_tts_conf(), "ours").generator.decoder
    decoder.requires_grad_(False)
    latent = torch.randn(1, decoder.input_conv.in_channels, args.frames, generator=torch.Generator().manual_seed(0))
    hop = 1
    for spec in decoder._upsample_specs:
        hop *= spec.stride
    result = dict(threads=args.threads, frames=args.frames,
                  audio_s=args.frames * hop / SAMPLING_RATE)

    class PlainDecoder(torch.nn.Module):
        """The decoder's plain function as a module, for ``torch.compile``."""

        def forward(self, c: torch.Tensor) -> torch.Tensor:
            return weight_norm_folding.forward(decoder, c)

    with torch.no_grad():
        for precision in precisions_here():
            bf16 = precision == "bf16"
            start = time.perf_counter()
            compiled = torch.compile(PlainDecoder().eval(), dynamic=False)

            def run_compiled(compiled=compiled, bf16=bf16):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    return compiled(latent).float()

            def run_plain(bf16=bf16):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    return weight_norm_folding.forward(decoder, latent).float()

            def run_packed(precision=precision):
                decoder.inference_precision = precision
                return packed_decoder.forward(decoder, latent)

            compiled_waveform = run_compiled()
            compile_s = time.perf_counter() - start
            largest_difference = (compiled_waveform - run_packed()).abs().max().item()
            times = interleaved_timing(dict(compiled=run_compiled, packed=run_packed, plain=run_plain),
                                       args.repeats, args.warmup)
            result[precision] = dict(
                compile_s=compile_s, max_abs_diff_compiled_vs_packed=largest_difference,
                rtf={name: t["median_s"] / result["audio_s"] for name, t in times.items()},
                seconds=times,
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
