"""The channel flip between coupling layers, shared by both flows of VITS.

A coupling layer transforms one half of the channels conditioned on the other half; a
flip in between makes the next layer transform the half that was kept. Both the main
flow (:mod:`espnet2_vits_ext.vits.flow`) and the duration predictor's flows
(:mod:`espnet2_vits_ext.layers.duration_flows`) use it.

The contract of every flow layer in this package: ``flow(x, x_mask, g=None,
inverse=False)`` returns ``(y, logdet)`` forward, ``logdet`` (B,) being the log-determinant
of the Jacobian summed over valid frames, and ``(x, None)`` in reverse: the same arity both
ways. (ESPnet's layers return the tensor alone in reverse.)
"""

from typing import Optional, Tuple

import torch

FlowOutput = Tuple[torch.Tensor, Optional[torch.Tensor]]


class FlipFlow(torch.nn.Module):
    """Reverse the channel order; its own inverse, with a log-determinant of 0."""

    def forward(
        self,
        x: torch.Tensor,
        x_mask: Optional[torch.Tensor] = None,
        g: Optional[torch.Tensor] = None,
        inverse: bool = False,
    ) -> FlowOutput:
        """Flip ``x`` along its channels.

        Args:
            x (Tensor): Input (B, C, T).
            x_mask (Optional[Tensor]): Unused (a permutation keeps padding in place).
            g (Optional[Tensor]): Unused (the uniform flow signature).
            inverse (bool): Reverse direction (the same flip).

        Returns:
            Tensor: ``x`` with its channels reversed (B, C, T).
            Optional[Tensor]: Zeros (B,) forward, None in reverse.
        """
        y = torch.flip(x, [1])
        return (y, None) if inverse else (y, x.new_zeros(x.size(0)))
