"""The invertible layers of the stochastic duration predictor.

VITS paper (Kim et al. 2021), Sec. 2.2.2 and Appendix B.3 (Figure 5a/5b): the duration
predictor's normalizing flow and its posterior flow are each an elementwise affine layer
followed by spline coupling layers (:class:`ConvFlow`) with channel flips in between; the
durations enter through a log transform (:class:`LogFlow`).

Constructor arguments and ``state_dict`` keys are those of the classes of the same names in
ESPnet's ``espnet2/gan_tts/vits/flow.py``.

Every flow here keeps the contract of :mod:`espnet2_vits_ext.layers.flip_flow` (whose
:class:`FlipFlow` sits between the coupling layers): ``(y, logdet)`` forward, ``(x, None)``
in reverse. Tensors are (B, channels, T) and masks (B, 1, T).
"""

import math
from typing import Optional

import torch

from espnet2_vits_ext.layers.dilated_depth_separable_conv import DilatedDepthSeparableConv
from espnet2_vits_ext.layers.flip_flow import FlowOutput
from espnet2_vits_ext.layers.rational_quadratic_spline import rational_quadratic_spline


class LogFlow(torch.nn.Module):
    """``y = log(x)`` on the valid frames; the inverse is ``exp``."""

    def forward(
        self,
        x: torch.Tensor,
        x_mask: torch.Tensor,
        g: Optional[torch.Tensor] = None,
        inverse: bool = False,
        eps: float = 1e-5,
    ) -> FlowOutput:
        """Take the log of durations (forward) or exponentiate log-durations (reverse).

        Args:
            x (Tensor): Durations (B, channels, T), positive on valid frames.
            x_mask (Tensor): 1 on valid frames, 0 on padding (B, 1, T).
            g (Optional[Tensor]): Unused (uniform flow signature).
            inverse (bool): Apply ``exp`` instead.
            eps (float): Floor of ``x`` before the log.

        Returns:
            Tensor: The mapped values (B, channels, T), zero at padded frames.
            Optional[Tensor]: ``logdet`` (B,) forward (``-sum(log x)``), None in reverse.

        """
        if inverse:
            return torch.exp(x) * x_mask, None
        y = torch.log(torch.clamp_min(x, eps)) * x_mask
        return y, -torch.sum(y, [1, 2])


class ElementwiseAffineFlow(torch.nn.Module):
    """``y = m + exp(logs) * x`` with a learned shift ``m`` and log-scale ``logs`` per channel."""

    def __init__(self, channels: int):
        """Start as the identity map (``m`` = ``logs`` = 0).

        Args:
            channels (int): Channels of ``x``, each with its own shift and log-scale.

        """
        super().__init__()
        self.channels = channels
        self.m = torch.nn.Parameter(torch.zeros(channels, 1))
        self.logs = torch.nn.Parameter(torch.zeros(channels, 1))

    def forward(
        self,
        x: torch.Tensor,
        x_mask: torch.Tensor,
        g: Optional[torch.Tensor] = None,
        inverse: bool = False,
    ) -> FlowOutput:
        """Scale and shift each channel (forward), or undo it (reverse).

        Args:
            x (Tensor): Values (B, channels, T).
            x_mask (Tensor): 1 on valid frames, 0 on padding (B, 1, T).
            g (Optional[Tensor]): Unused (uniform flow signature).
            inverse (bool): Apply the inverse map.

        Returns:
            Tensor: The mapped values (B, channels, T), zero at padded frames.
            Optional[Tensor]: ``logdet`` (B,) forward, None in reverse.

        """
        if inverse:
            return (x - self.m) * torch.exp(-self.logs) * x_mask, None
        y = (self.m + torch.exp(self.logs) * x) * x_mask
        return y, torch.sum(self.logs * x_mask, [1, 2])


class ConvFlow(torch.nn.Module):
    """Spline coupling layer: the second half of the channels goes through a rational-quadratic
    spline whose bins a DDSConv network computes from the first half and the condition ``g``."""

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size: int,
        layers: int,
        bins: int = 10,
        tail_bound: float = 5.0,
    ):
        """Build the coupling network; its projection starts at zero (the identity spline), as in VITS.

        Args:
            in_channels (int): Channels of ``x`` (even; the halves are coupled).
            hidden_channels (int): Width of the DDSConv network.
            kernel_size (int): Its depth-wise kernel size.
            layers (int): Its layers.
            bins (int): Spline bins per transformed value.
            tail_bound (float): The spline covers ``[-tail_bound, tail_bound]``; identity outside.

        """
        super().__init__()
        self.half_channels = in_channels // 2
        self.hidden_channels = hidden_channels
        self.bins = bins
        self.tail_bound = tail_bound

        self.input_conv = torch.nn.Conv1d(self.half_channels, hidden_channels, 1)
        self.dds_conv = DilatedDepthSeparableConv(hidden_channels, kernel_size, layers, dropout_rate=0.0)
        # Per transformed channel: bins widths, bins heights, bins - 1 interior slopes.
        self.proj = torch.nn.Conv1d(hidden_channels, self.half_channels * (bins * 3 - 1), 1)
        self.proj.weight.data.zero_()
        self.proj.bias.data.zero_()

    def forward(
        self,
        x: torch.Tensor,
        x_mask: torch.Tensor,
        g: Optional[torch.Tensor] = None,
        inverse: bool = False,
    ) -> FlowOutput:
        """Pass the second half of ``x`` through the spline set by the first half.

        Args:
            x (Tensor): Values (B, in_channels, T).
            x_mask (Tensor): 1 on valid frames, 0 on padding (B, 1, T).
            g (Optional[Tensor]): Condition added to the hidden features (B, hidden_channels, T).
            inverse (bool): Apply the inverse map.

        Returns:
            Tensor: The mapped values (B, in_channels, T), zero at padded frames.
            Optional[Tensor]: ``logdet`` (B,) forward, None in reverse.

        """
        x_cond, x_trans = x.split([self.half_channels, self.half_channels], dim=1)
        h = self.dds_conv(self.input_conv(x_cond), x_mask, g=g)
        h = self.proj(h) * x_mask  # (B, half * (3 bins - 1), T)
        batch, half, frames = x_cond.shape
        h = h.reshape(batch, half, -1, frames).permute(0, 1, 3, 2)  # (B, half, T, 3 bins - 1)

        # As in VITS: width and height logits are divided by sqrt(hidden) (a softmax
        # temperature that keeps the bins close to uniform early in training).
        temperature = math.sqrt(self.hidden_channels)
        y_trans, logabsdet = rational_quadratic_spline(
            x_trans,
            h[..., : self.bins] / temperature,
            h[..., self.bins : 2 * self.bins] / temperature,
            h[..., 2 * self.bins :],
            inverse=inverse,
            tail_bound=self.tail_bound,
        )
        y = torch.cat([x_cond, y_trans], dim=1) * x_mask
        if inverse:
            return y, None
        return y, torch.sum(logabsdet * x_mask, [1, 2])
