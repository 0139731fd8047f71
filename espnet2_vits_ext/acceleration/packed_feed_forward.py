"""CPU synthesis of the text encoders' convolutional feed-forward on prepacked oneDNN weights.

Both text encoders (the paper's Transformer and ESPnet's Conformer) have a feed-forward
``conv k -> ReLU -> conv k`` over tokens held channel-last, ``(B, T, C)``. On the plain path
each conv transposes its input to ``(B, C, T)``, and oneDNN reorders it again; yet a
``(B, T, C)`` tensor already is, in memory, the ``(B, C, 1, T)`` channels-last layout that the
packed kernels of :mod:`espnet2_vits_ext.acceleration.packed_conv` read and write. So here
both convs run on it as it is, with the ReLU fused into the first: on joe-medium's encoder
(635 tokens, 192 -> 768 -> 192, kernel 3; AVX512-BF16 EPYC, 2 threads) 10.0 -> 5.9 ms a block.
Sentence lengths change from call to call: the tokens are zero-padded to the width grid of
:func:`~espnet2_vits_ext.acceleration.packed_conv.grid_width` (the first conv's output zeroed
again there), so that oneDNN's kernels are reused; the weights are plain for a grid width
met once, then packed for it, shared with the widths they pack alike for
(:meth:`~espnet2_vits_ext.acceleration.packed_conv.PackedPlanCache.plan_for_width`).

Float32 only, and so not under autocast: the text encoder sets the durations, which must
not move with the precision of the decoder.
"""

from typing import Optional

import torch
from torch import nn

from espnet2_vits_ext.acceleration.packed_conv import (
    PackedPlanCache, conv, grid_width, pack_conv1d, runs_natively, zero_padded,
)


def applies(first: nn.Conv1d, x: torch.Tensor) -> bool:
    """Whether :func:`forward` can run: inference on CPU in float32, outside autocast, with
    an odd kernel (same padding on both sides)."""
    return (
        not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.is_autocast_enabled("cpu")
        and first.kernel_size[0] % 2 == 1
        and first.groups == 1
        and runs_natively(torch.float32)
    )


def forward(owner: PackedPlanCache, first: nn.Conv1d, second: nn.Conv1d, x: torch.Tensor,
            mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``second(relu(first(x)))`` over time, on oneDNN weights cached on ``owner`` (plain the
    first time a padded width comes, then packed for it).

    Args:
        owner: The feed-forward module that holds ``first`` and ``second``.
        first, second: Its convs (C -> hidden -> C), odd kernels, "same" padding.
        x: Tokens (B, T, C), contiguous.
        mask: (B, 1, T), 1 on tokens: applied to each conv's input and to the output (the
            paper's feed-forward); None for none (ESPnet's, or nothing padded).

    Returns:
        Tensor: (B, T, C).
    """
    tokens = x.size(1)
    width = grid_width(tokens)

    def build(steps: Optional[int]):
        return [pack_conv1d(c.weight, c.bias, torch.float32, c.kernel_size[0] // 2, 1, steps) for c in (first, second)]

    packed_first, packed_second = owner.plan_for_width(torch.float32, width, build)
    signal = x.unsqueeze(2).permute(0, 3, 2, 1)  # (B, C, 1, T), channels-last: the same memory
    frame_mask = None if mask is None else mask.unsqueeze(2)  # (B, 1, 1, T)
    if frame_mask is not None:
        signal = signal * frame_mask
    h = conv(zero_padded(signal, width) if width > tokens else signal, packed_first, "relu")
    if frame_mask is not None:
        h[..., :tokens].mul_(frame_mask)
    if width > tokens:
        h[..., tokens:] = 0  # what the second conv reads past the end
    y = conv(h, packed_second)[..., :tokens]
    if frame_mask is not None:
        y = y * frame_mask
    return y.permute(0, 3, 2, 1).squeeze(2).contiguous()  # (B, T, C)
