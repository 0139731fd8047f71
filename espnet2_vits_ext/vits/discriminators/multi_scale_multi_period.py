"""The VITS "Discriminator" box (Fig. 1a, Sec. 2.3): HiFi-GAN's multi-period and
multi-scale discriminators, alone or together.

VITS uses HiFi-GAN's multi-period discriminator; ESPnet's VITS recipe adds one scale
discriminator (``hifigan_multi_scale_multi_period_discriminator`` with ``scales: 1``).
Each ``forward`` returns one list per sub-discriminator holding every layer's output
(the last is the score), the format the adversarial and feature-matching losses take.

Constructor arguments and ``state_dict`` keys (``discriminators.<i>``, ``msd``/``mpd``) are
those of ESPnet's ``espnet2.gan_tts.hifigan`` classes; the default parameter dicts are
ESPnet's, kept in :mod:`.espnet_defaults`. :data:`AVAILABLE_DISCRIMINATORS`
maps ESPnet's ``discriminator_type`` names to our classes.
"""

import copy
from typing import Any, Dict, List

import torch

from espnet2_vits_ext.vits.espnet_defaults import (
    HIFIGAN_PERIOD_DISCRIMINATOR_PARAMS,
    HIFIGAN_SCALE_DISCRIMINATOR_PARAMS,
    HIFIGAN_SCALE_DOWNSAMPLE_POOLING_PARAMS,
)
from espnet2_vits_ext.vits.discriminators.period import HiFiGANPeriodDiscriminator
from espnet2_vits_ext.vits.discriminators.scale import HiFiGANScaleDiscriminator


class HiFiGANMultiPeriodDiscriminator(torch.nn.Module):
    """Period discriminators, one per period (ESPnet-compatible)."""

    def __init__(
        self,
        periods: List[int] = [2, 3, 5, 7, 11],
        discriminator_params: Dict[str, Any] = HIFIGAN_PERIOD_DISCRIMINATOR_PARAMS,
    ):
        """One period discriminator per entry of ``periods``, each with the same arguments.

        Args:
            periods (List[int]): One period discriminator per period.
            discriminator_params (Dict[str, Any]): :class:`HiFiGANPeriodDiscriminator`
                arguments; ``period`` is overwritten.

        """
        super().__init__()
        self.discriminators = torch.nn.ModuleList()
        for period in periods:
            params = copy.deepcopy(discriminator_params)
            params["period"] = period
            self.discriminators.append(HiFiGANPeriodDiscriminator(**params))

    def forward(self, x: torch.Tensor) -> List[List[torch.Tensor]]:
        """Run one period discriminator per period on the same waveform.

        Args:
            x (Tensor): Waveform (B, 1, T).

        Returns:
            List[List[Tensor]]: Per discriminator, every layer's output.

        """
        return [d(x) for d in self.discriminators]


class HiFiGANMultiScaleDiscriminator(torch.nn.Module):
    """Scale discriminators on successively pooled waveforms (ESPnet-compatible)."""

    def __init__(
        self,
        scales: int = 3,
        downsample_pooling: str = "AvgPool1d",
        downsample_pooling_params: Dict[str, Any] = HIFIGAN_SCALE_DOWNSAMPLE_POOLING_PARAMS,
        discriminator_params: Dict[str, Any] = HIFIGAN_SCALE_DISCRIMINATOR_PARAMS,
        follow_official_norm: bool = False,
    ):
        """``scales`` scale discriminators, the k-th reading the waveform pooled k times.

        Args:
            scales (int): Number of scale discriminators.
            downsample_pooling (str): Pooling module name in ``torch.nn``.
            downsample_pooling_params (Dict[str, Any]): Its parameters.
            discriminator_params (Dict[str, Any]): :class:`HiFiGANScaleDiscriminator`
                arguments.
            follow_official_norm (bool): As the official HiFi-GAN: spectral norm in the
                first discriminator, weight norm in the others.

        """
        super().__init__()
        self.discriminators = torch.nn.ModuleList()
        for i in range(scales):
            params = copy.deepcopy(discriminator_params)
            if follow_official_norm:
                params["use_weight_norm"] = i != 0
                params["use_spectral_norm"] = i == 0
            self.discriminators.append(HiFiGANScaleDiscriminator(**params))
        self.pooling = None
        if scales > 1:
            self.pooling = getattr(torch.nn, downsample_pooling)(**downsample_pooling_params)

    def forward(self, x: torch.Tensor) -> List[List[torch.Tensor]]:
        """Run the scale discriminators on the waveform, each on a further pooled copy.

        Args:
            x (Tensor): Waveform (B, 1, T).

        Returns:
            List[List[Tensor]]: Per discriminator, every layer's output.

        """
        outs = []
        last = len(self.discriminators) - 1
        for i, d in enumerate(self.discriminators):
            outs.append(d(x))
            if self.pooling is not None and i < last:  # nothing reads the last pooling
                x = self.pooling(x)
        return outs


class HiFiGANMultiScaleMultiPeriodDiscriminator(torch.nn.Module):
    """Multi-scale and multi-period discriminators together (ESPnet-compatible)."""

    def __init__(
        self,
        # the scale discriminators
        scales: int = 3,
        scale_downsample_pooling: str = "AvgPool1d",
        scale_downsample_pooling_params: Dict[str, Any] = HIFIGAN_SCALE_DOWNSAMPLE_POOLING_PARAMS,
        scale_discriminator_params: Dict[str, Any] = HIFIGAN_SCALE_DISCRIMINATOR_PARAMS,
        follow_official_norm: bool = True,
        # the period discriminators
        periods: List[int] = [2, 3, 5, 7, 11],
        period_discriminator_params: Dict[str, Any] = HIFIGAN_PERIOD_DISCRIMINATOR_PARAMS,
    ):
        """The scale discriminators and the period discriminators of HiFi-GAN, as VITS uses them.

        Args:
            scales (int): Number of scale discriminators.
            scale_downsample_pooling (str): Pooling module name in ``torch.nn``.
            scale_downsample_pooling_params (Dict[str, Any]): Its parameters.
            scale_discriminator_params (Dict[str, Any]): Scale discriminator arguments.
            follow_official_norm (bool): Spectral norm in the first scale discriminator,
                weight norm in the others.
            periods (List[int]): One period discriminator per period.
            period_discriminator_params (Dict[str, Any]): Period discriminator arguments.

        """
        super().__init__()
        self.msd = HiFiGANMultiScaleDiscriminator(
            scales=scales,
            downsample_pooling=scale_downsample_pooling,
            downsample_pooling_params=scale_downsample_pooling_params,
            discriminator_params=scale_discriminator_params,
            follow_official_norm=follow_official_norm,
        )
        self.mpd = HiFiGANMultiPeriodDiscriminator(
            periods=periods,
            discriminator_params=period_discriminator_params,
        )

    def forward(self, x: torch.Tensor) -> List[List[torch.Tensor]]:
        """Score a waveform with every scale and every period discriminator.

        Args:
            x (Tensor): Waveform (B, 1, T).

        Returns:
            List[List[Tensor]]: The scale discriminators' layer outputs, then the period ones'.

        """
        return self.msd(x) + self.mpd(x)


AVAILABLE_DISCRIMINATORS = {
    "hifigan_period_discriminator": HiFiGANPeriodDiscriminator,
    "hifigan_scale_discriminator": HiFiGANScaleDiscriminator,
    "hifigan_multi_period_discriminator": HiFiGANMultiPeriodDiscriminator,
    "hifigan_multi_scale_discriminator": HiFiGANMultiScaleDiscriminator,
    "hifigan_multi_scale_multi_period_discriminator": HiFiGANMultiScaleMultiPeriodDiscriminator,
}
