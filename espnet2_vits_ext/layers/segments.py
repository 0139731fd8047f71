"""Random training windows: the decoder sees only a short slice of each latent sequence.

VITS trains the HiFi-GAN decoder on ``segment_size`` frames per utterance (Section 2.5
of the paper) and compares them with the matching ``segment_size * hop`` samples of the
recorded speech. ESPnet draws the start frames with ``torch.rand`` on the CPU generator;
we draw the same numbers, so a seeded run picks the same windows as ESPnet's VITS on
any device, and slice with one ``gather`` instead of a Python loop over the batch
(which, on a GPU, synchronises once per utterance).
"""

import torch


def random_segment_starts(
    lengths: torch.Tensor, segment_size: int, device: torch.device
) -> torch.Tensor:
    """Start frames drawn uniformly in ``[0, max(lengths - segment_size, 0)]``.

    Args:
        lengths: Valid frames per utterance (B,).
        segment_size: Window length in frames.
        device: Where the starts are needed.

    Returns:
        Tensor: Start frames (B,), int64 on ``device``.
    """
    uniform = torch.rand(lengths.size(0))  # CPU generator, as ESPnet
    if device.type == "cuda":
        # From pinned memory the copy is asynchronous: no stream synchronisation.
        uniform = uniform.pin_memory().to(device, non_blocking=True)
    else:
        uniform = uniform.to(device)
    latest_starts = (lengths.to(device) - segment_size).clamp(min=0)
    return (uniform * latest_starts).long()


def slice_segments(
    x: torch.Tensor, starts: torch.Tensor, segment_size: int
) -> torch.Tensor:
    """Windows ``x[b, :, starts[b] : starts[b] + segment_size]`` as one tensor.

    Positions past the end of ``x`` read as zeros (an utterance shorter than one
    window), where ESPnet's slicing would fail on a shape mismatch.

    Args:
        x: Sequences (B, C, T).
        starts: Start positions (B,).
        segment_size: Window length.

    Returns:
        Tensor: Windows (B, C, segment_size).
    """
    batch_size, channels, length = x.shape
    positions = starts.to(x.device).unsqueeze(1) + torch.arange(
        segment_size, device=x.device
    )  # (B, segment_size)
    inside = (positions < length).unsqueeze(1)  # (B, 1, segment_size)
    index = positions.clamp(max=length - 1).unsqueeze(1)
    windows = torch.gather(x, 2, index.expand(batch_size, channels, segment_size))
    return windows * inside.to(windows.dtype)
