"""Monotonic alignment search alone: ours vs ESPnet's ``maximum_path``, same inputs.

Sizes batch x frames x tokens; padded batches whose lengths go down to 60% of the maximum.
Ours is timed twice: ``search_durations`` (what our model calls: durations, no path
matrix) and ``maximum_path`` (ESPnet's interface: the dense path). Both include the copy to
the host and back that the training step pays (a no-op on CPU; with ``--device cuda`` the
scores start on the GPU and the result goes back to it). ESPnet's installed wheel has no
compiled Cython extension, so its ``maximum_path`` runs its numba fallback, as a user's does.
Prints one JSON object per size.

Usage: python bench/bench_alignment.py [--device cpu] [--threads 2] [--repeats 20] [--warmup 3]
"""

import argparse
import json
import warnings

import torch

from common import interleaved_timing

SIZES = [(4, 800, 150), (64, 870, 380)]


def make_inputs(batch: int, frames: int, tokens: int, device: str):
    """Scores (B, T_feats, T_text), lengths (B,) and ESPnet's mask (B, T_feats, T_text)."""
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(batch, frames, tokens, generator=generator)
    text_lengths = torch.linspace(tokens, int(0.6 * tokens), batch).long()
    feats_lengths = torch.linspace(frames, int(0.6 * frames), batch).long()
    mask = (torch.arange(frames)[None, :, None] < feats_lengths[:, None, None]) & (
        torch.arange(tokens)[None, None, :] < text_lengths[:, None, None]
    )
    return (scores.to(device), text_lengths.to(device), feats_lengths.to(device),
            mask.float().to(device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Cython version is not available"
        from espnet2.gan_tts.vits.monotonic_align import maximum_path as espnet_maximum_path

    from espnet2_vits_ext.vits.monotonic_alignment import maximum_path, search_durations

    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    for batch, frames, tokens in SIZES:
        scores, text_lengths, feats_lengths, mask = make_inputs(batch, frames, tokens, args.device)
        steps = dict(
            espnet_maximum_path=lambda: (espnet_maximum_path(scores, mask), sync()),
            ours_search_durations=lambda: (search_durations(scores, text_lengths, feats_lengths), sync()),
            ours_maximum_path=lambda: (maximum_path(scores, mask), sync()),
        )
        timing = interleaved_timing(steps, args.repeats, args.warmup)
        same = bool(torch.equal(maximum_path(scores, mask), espnet_maximum_path(scores, mask)))
        espnet_s = timing["espnet_maximum_path"]["median_s"]
        print(json.dumps(dict(
            size=f"{batch}x{frames}x{tokens}",
            device=args.device,
            **{f"{name}_ms": 1e3 * figures["median_s"] for name, figures in timing.items()},
            speedup_search_durations=espnet_s / timing["ours_search_durations"]["median_s"],
            speedup_maximum_path=espnet_s / timing["ours_maximum_path"]["median_s"],
            same_paths=same,
        )))


if __name__ == "__main__":
    main()
