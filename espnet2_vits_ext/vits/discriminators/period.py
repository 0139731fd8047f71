"""HiFi-GAN period discriminator: one sub-discriminator of the VITS "Discriminator" box.

VITS (Fig. 1a, Sec. 2.3) trains its decoder adversarially against HiFi-GAN's
multi-period discriminator; this is one of its members. The waveform (B, C, T) is
reflect-padded to a multiple of ``period`` and folded into (B, C, T / period, period),
so that ``(k, 1)`` convolutions see samples that lie ``period`` apart. Every layer's
output is returned: the last one is the real/fake score, all of them feed the
feature-matching loss.

Constructor arguments and ``state_dict`` keys (``convs.<i>.0``, ``output_conv``) are
those of ESPnet's ``espnet2.gan_tts.hifigan.HiFiGANPeriodDiscriminator``.
"""

import logging
from typing import Any, Dict, List

import torch
import torch.nn.functional as F

from espnet2_vits_ext.layers.conv_norm import apply_spectral_norm, apply_weight_norm, make_activation


class HiFiGANPeriodDiscriminator(torch.nn.Module):
    """HiFi-GAN period discriminator (ESPnet-compatible)."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        period: int = 3,
        kernel_sizes: List[int] = [5, 3],
        channels: int = 32,
        downsample_scales: List[int] = [3, 3, 3, 3, 1],
        max_downsample_channels: int = 1024,
        bias: bool = True,
        nonlinear_activation: str = "LeakyReLU",
        nonlinear_activation_params: Dict[str, Any] = {"negative_slope": 0.1},
        use_weight_norm: bool = True,
        use_spectral_norm: bool = False,
    ):
        """Build the 2-D conv stack of one period.

        Args:
            in_channels (int): Input channels.
            out_channels (int): Output channels.
            period (int): Period (width of the folded 2-D input).
            kernel_sizes (List[int]): Kernel size of the strided convs and of the
                output conv (whose kernel is ``kernel_sizes[1] - 1``), both odd.
            channels (int): Channels of the first conv; x4 per layer up to the max.
            downsample_scales (List[int]): Stride of each conv along time.
            max_downsample_channels (int): Channel cap.
            bias (bool): Kept for compatibility: as in ESPnet, every conv has a bias.
            nonlinear_activation (str): Activation name in ``torch.nn``.
            nonlinear_activation_params (Dict[str, Any]): Its parameters.
            use_weight_norm (bool): Whether to weight-normalise every conv.
            use_spectral_norm (bool): Whether to spectral-normalise every conv.

        """
        super().__init__()
        assert len(kernel_sizes) == 2
        assert kernel_sizes[0] % 2 == 1, "Kernel size must be odd number."
        assert kernel_sizes[1] % 2 == 1, "Kernel size must be odd number."
        self.period = period
        self.convs = torch.nn.ModuleList()
        in_chs, out_chs = in_channels, channels
        for scale in downsample_scales:
            self.convs.append(
                torch.nn.Sequential(
                    torch.nn.Conv2d(
                        in_chs,
                        out_chs,
                        (kernel_sizes[0], 1),
                        (scale, 1),
                        padding=((kernel_sizes[0] - 1) // 2, 0),
                    ),
                    # in place: it overwrites the fresh conv output it is given
                    make_activation(nonlinear_activation, nonlinear_activation_params, inplace=True),
                )
            )
            in_chs = out_chs
            out_chs = min(out_chs * 4, max_downsample_channels)
        # As in ESPnet (and the official HiFi-GAN), the output conv takes the channel
        # count one step past the last conv's: equal once the cap is reached.
        self.output_conv = torch.nn.Conv2d(
            out_chs, out_channels, (kernel_sizes[1] - 1, 1), 1, padding=((kernel_sizes[1] - 1) // 2, 0)
        )
        if use_weight_norm and use_spectral_norm:
            raise ValueError("Either use use_weight_norm or use_spectral_norm.")
        if use_weight_norm:
            self.apply_weight_norm()
        if use_spectral_norm:
            self.apply_spectral_norm()

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Fold the waveform into rows of ``period`` samples and score it with 2-D convs.

        Args:
            x (Tensor): Waveform (B, in_channels, T); reflect-padded to a multiple of the period.

        Returns:
            List[Tensor]: Output of every layer; the last is the flattened score (B, -1).

        """
        b, c, t = x.shape
        if t % self.period != 0:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), "reflect")
            t += n_pad
        x = x.view(b, c, t // self.period, self.period)
        outs = []
        for layer in self.convs:
            x = layer(x)
            outs.append(x)
        outs.append(torch.flatten(self.output_conv(x), 1, -1))
        return outs

    def apply_weight_norm(self):
        """Apply weight normalisation to every conv layer."""
        apply_weight_norm(self, (torch.nn.Conv2d,))
        logging.debug("Weight norm is applied to %s.", type(self).__name__)

    def apply_spectral_norm(self):
        """Apply spectral normalisation to every conv layer."""
        apply_spectral_norm(self, (torch.nn.Conv2d,))
        logging.debug("Spectral norm is applied to %s.", type(self).__name__)
