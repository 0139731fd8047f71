"""Padding masks shared by the encoders of VITS.

A small helper, not a box of the VITS paper (Figure 1): the text encoder, the posterior
encoder and the flow all work on padded batches and multiply their outputs by a
``(B, 1, T)`` mask of valid frames. ESPnet builds that mask from ``max(lengths)`` (a
host-device synchronisation); we take ``T`` from the padded tensor instead, which is
the same whenever ESPnet's own shapes agree.
"""

from typing import Optional

import torch


def non_pad_mask(lengths: torch.Tensor, max_len: Optional[int] = None) -> torch.Tensor:
    """Boolean mask ``(B, max_len)``: True on the first ``lengths[b]`` positions of row b.

    Args:
        lengths (Tensor): Lengths ``(B,)`` (any integer dtype, on any device).
        max_len (Optional[int]): Padded length; ``max(lengths)`` when omitted.

    """
    if max_len is None:
        max_len = int(lengths.max())
    positions = torch.arange(max_len, device=lengths.device)
    return positions.unsqueeze(0) < lengths.unsqueeze(1)
