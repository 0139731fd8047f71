"""Posterior encoder of VITS.

This is the "Posterior Encoder" box of the VITS paper (Figure 1), used in training only:
it reads the linear spectrogram of the target speech and gives the posterior
``q(z | x_lin)``: a 1x1 input convolution, a non-causal WaveNet stack (optionally
conditioned on a speaker embedding ``g``), and a 1x1 projection to the mean ``m_q`` and
log-scale ``logs_q``; ``z`` is sampled from it by reparameterisation and goes both to the
flow (towards the prior) and, sliced, to the HiFi-GAN decoder. Constructor arguments and
weights are those of ESPnet's ``PosteriorEncoder``.
"""

from typing import Optional, Tuple

import torch
from torch import nn

from espnet2_vits_ext.layers.masking import non_pad_mask
from espnet2_vits_ext.layers.wavenet import vits_wavenet
from espnet2_vits_ext.layers.wavenet_residual_block import Conv1d


class PosteriorEncoder(nn.Module):
    """Posterior encoder module in VITS.

    Args:
        in_channels (int): Number of input channels (linear spectrogram bins).
        out_channels (int): Number of output channels (latent dimension).
        hidden_channels (int): Number of hidden channels.
        kernel_size (int): Kernel size in WaveNet.
        layers (int): Number of layers of WaveNet.
        stacks (int): Number of repeat stacking of WaveNet.
        base_dilation (int): Base dilation factor.
        global_channels (int): Number of global conditioning channels.
        dropout_rate (float): Dropout rate.
        bias (bool): Whether to use bias parameters in conv.
        use_weight_norm (bool): Whether to apply weight norm.

    """

    def __init__(
        self,
        in_channels: int = 513,
        out_channels: int = 192,
        hidden_channels: int = 192,
        kernel_size: int = 5,
        layers: int = 16,
        stacks: int = 1,
        base_dilation: int = 1,
        global_channels: int = -1,
        dropout_rate: float = 0.0,
        bias: bool = True,
        use_weight_norm: bool = True,
    ):
        super().__init__()
        self.input_conv = Conv1d(in_channels, hidden_channels, 1)
        self.encoder = vits_wavenet(
            hidden_channels=hidden_channels,
            kernel_size=kernel_size,
            layers=layers,
            stacks=stacks,
            base_dilation=base_dilation,
            global_channels=global_channels,
            dropout_rate=dropout_rate,
            bias=bias,
            use_weight_norm=use_weight_norm,
        )
        self.proj = Conv1d(hidden_channels, out_channels * 2, 1)

    def forward(
        self, x: torch.Tensor, x_lengths: torch.Tensor, g: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode a padded batch of spectrograms and sample ``z``.

        Args:
            x (Tensor): Input tensor (B, in_channels, T_feats).
            x_lengths (Tensor): Length tensor (B,).
            g (Optional[Tensor]): Global conditioning tensor (B, global_channels, 1).

        Returns:
            Tensor: Sampled latent ``z`` (B, out_channels, T_feats).
            Tensor: Projected mean tensor (B, out_channels, T_feats).
            Tensor: Projected scale tensor (B, out_channels, T_feats).
            Tensor: Mask tensor for input tensor (B, 1, T_feats).

        """
        x_mask = non_pad_mask(x_lengths, x.size(2)).unsqueeze(1).to(dtype=x.dtype)
        h = self.input_conv(x) * x_mask
        h = self.encoder(h, x_mask, g=g)
        stats = self.proj(h) * x_mask
        m, logs = stats.split(stats.size(1) // 2, dim=1)
        # Same draw as ESPnet's under the same RNG state: one randn_like of m's shape.
        z = (m + torch.randn_like(m) * torch.exp(logs)) * x_mask
        return z, m, logs, x_mask
