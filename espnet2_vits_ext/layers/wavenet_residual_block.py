"""One layer of the non-causal WaveNet (:mod:`espnet2_vits_ext.layers.wavenet`).

A dilated convolution, plus optional local and global conditioning added to its whole
output, goes through a gated unit ``tanh(a) * sigmoid(b)``; one 1x1 convolution then
gives the residual part (added back to the input) and the skip part. Parameter names
(``conv``, ``conv1x1_aux``, ``conv1x1_glo``, ``conv1x1_out``) are ESPnet's.
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class Conv1d(nn.Conv1d):
    """Conv1d with Kaiming-normal weights and zero bias (ESPnet's WaveNet initialisation)."""

    def reset_parameters(self):
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        if self.bias is not None:
            nn.init.constant_(self.bias, 0.0)


class Conv1d1x1(Conv1d):
    """1x1 Conv1d with the WaveNet initialisation."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool):
        super().__init__(in_channels, out_channels, kernel_size=1, padding=0, dilation=1, bias=bias)


class ResidualBlock(nn.Module):
    """One WaveNet layer: dilated conv -> (+ conditioning) -> tanh * sigmoid -> 1x1 conv
    split into a residual part and a skip part.

    Args:
        kernel_size (int): Kernel size of the dilated convolution (odd).
        residual_channels (int): Number of channels of the residual path.
        gate_channels (int): Number of channels of the gate (even).
        skip_channels (int): Number of channels of the skip output.
        aux_channels (int): Number of local conditioning channels (<= 0: none).
        global_channels (int): Number of global conditioning channels (<= 0: none).
        dropout_rate (float): Dropout probability on the input.
        dilation (int): Dilation of the gated conv.
        bias (bool): Whether the convolutions have biases.
        scale_residual (bool): Whether to scale the residual output by sqrt(0.5).

    """

    def __init__(
        self,
        kernel_size: int = 3,
        residual_channels: int = 64,
        gate_channels: int = 128,
        skip_channels: int = 64,
        aux_channels: int = 80,
        global_channels: int = -1,
        dropout_rate: float = 0.0,
        dilation: int = 1,
        bias: bool = True,
        scale_residual: bool = False,
    ):
        super().__init__()
        if (kernel_size - 1) % 2 != 0:
            raise ValueError(f"WaveNet kernel size must be odd, got {kernel_size}")
        if gate_channels % 2 != 0:
            raise ValueError(f"gate_channels must be even, got {gate_channels}")
        self.dropout_rate = dropout_rate
        self.residual_channels = residual_channels
        self.skip_channels = skip_channels
        self.scale_residual = scale_residual
        self.conv = Conv1d(
            residual_channels,
            gate_channels,
            kernel_size,
            padding=(kernel_size - 1) // 2 * dilation,
            dilation=dilation,
            bias=bias,
        )
        self.conv1x1_aux = Conv1d1x1(aux_channels, gate_channels, bias=False) if aux_channels > 0 else None
        self.conv1x1_glo = Conv1d1x1(global_channels, gate_channels, bias=False) if global_channels > 0 else None
        # One 1x1 conv for the residual and the skip outputs together.
        self.conv1x1_out = Conv1d1x1(gate_channels // 2, residual_channels + skip_channels, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        x_mask: Optional[torch.Tensor] = None,
        c: Optional[torch.Tensor] = None,
        g: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Compute one layer.

        Args:
            x (Tensor): Residual-path features (B, residual_channels, T).
            x_mask (Optional[Tensor]): 1 on valid frames, 0 on padding (B, 1, T).
            c (Optional[Tensor]): Per-frame conditioning (B, aux_channels, T).
            g (Optional[Tensor]): Per-utterance conditioning (B, global_channels, 1).

        Returns:
            Tensor: ``x`` plus this layer's residual part (B, residual_channels, T).
            Tensor: This layer's skip part (B, skip_channels, T).

        """
        residual = x
        if self.dropout_rate > 0.0 and self.training:
            x = F.dropout(x, p=self.dropout_rate, training=True)
        h = self.conv(x)
        if c is not None:
            h = h + self.conv1x1_aux(c)
        if g is not None:
            h = h + self.conv1x1_glo(g)  # (B, gate, 1) broadcast over time
        half = h.size(1) // 2
        h = torch.tanh(h[:, :half]) * torch.sigmoid(h[:, half:])
        h = self.conv1x1_out(h)
        if x_mask is not None:
            h = h * x_mask
        x, s = h.split([self.residual_channels, self.skip_channels], dim=1)
        x = x + residual
        if self.scale_residual:
            x = x * math.sqrt(0.5)
        return x, s
