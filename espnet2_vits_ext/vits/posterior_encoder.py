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
    """q(z | x_lin): a 1x1 conv, a WaveNet and a 1x1 projection to a mean and log-std per frame.

    Args:
        in_channels (int): Linear spectrogram bins.
        out_channels (int): Size of the latent ``z`` (the generator's hidden channels).
        hidden_channels (int): Width of the WaveNet.
        kernel_size (int): The WaveNet's dilated kernel size.
        layers (int): WaveNet layers.
        stacks (int): Dilation cycles over those layers.
        base_dilation (int): Dilations grow as powers of this within a cycle.
        global_channels (int): Width of the speaker embedding ``g`` (<= 0: none).
        dropout_rate (float): Dropout inside the WaveNet.
        bias (bool): Give the WaveNet's convolutions biases.
        use_weight_norm (bool): Weight-normalise the WaveNet's convolutions.

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
            x (Tensor): Linear spectrograms (B, in_channels, T_feats).
            x_lengths (Tensor): Frames per utterance (B,).
            g (Optional[Tensor]): Speaker embedding (B, global_channels, 1).

        Returns:
            Tensor: A sample ``z = mean + exp(log_std) * noise`` (B, out_channels, T_feats).
            Tensor: Posterior means (B, out_channels, T_feats).
            Tensor: Posterior log standard deviations (B, out_channels, T_feats).
            Tensor: 1 on valid frames, 0 on padding (B, 1, T_feats).

        """
        x_mask = non_pad_mask(x_lengths, x.size(2)).unsqueeze(1).to(dtype=x.dtype)
        h = self.input_conv(x) * x_mask
        h = self.encoder(h, x_mask, g=g)
        stats = self.proj(h) * x_mask
        m, logs = stats.split(stats.size(1) // 2, dim=1)
        # Same draw as ESPnet's under the same RNG state: one randn_like of m's shape.
        z = (m + torch.randn_like(m) * torch.exp(logs)) * x_mask
        return z, m, logs, x_mask
