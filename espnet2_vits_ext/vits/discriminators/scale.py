"""HiFi-GAN scale discriminator: one sub-discriminator of the VITS "Discriminator" box.

A stack of 1-D convolutions over the raw waveform (grouped, strided in the middle), as in
MelGAN/HiFi-GAN's multi-scale discriminator; every layer's output is returned (the last
is the score map, all feed the feature-matching loss). ESPnet's VITS uses one of these
(``scales: 1``) next to the period discriminators.

Constructor arguments and ``state_dict`` keys (``layers.<i>.0``, last ``layers.<n>``) are
those of ESPnet's ``espnet2.gan_tts.hifigan.HiFiGANScaleDiscriminator``, including its
load-time fix for checkpoints whose norm was configured but never applied (ESPnet PRs
5240/5249): such a checkpoint has plain ``weight`` keys, and loading it removes the norm
from this module so that the keys fit.
"""

import logging
from typing import Any, Dict, List

import torch

from espnet2_vits_ext.layers.conv_norm import (
    apply_spectral_norm,
    apply_weight_norm,
    drop_keys,
    has_plain_weights,
    make_activation,
    remove_spectral_norm,
    remove_weight_norm,
)

_NORM_MISMATCH = (
    "It seems %s norm is not applied in the pretrained model but the current model uses it."
    " To keep the compatibility, we remove the norm from the current model. This may cause"
    " unexpected behavior due to the parameter mismatch in finetuning. To avoid this issue,"
    " set discriminator_params.follow_official_norm and"
    " discriminator_params.scale_discriminator_params.use_{weight,spectral}_norm to false."
)


class HiFiGANScaleDiscriminator(torch.nn.Module):
    """HiFi-GAN scale discriminator (ESPnet-compatible)."""

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        kernel_sizes: List[int] = [15, 41, 5, 3],
        channels: int = 128,
        max_downsample_channels: int = 1024,
        max_groups: int = 16,
        bias: int = True,
        downsample_scales: List[int] = [2, 2, 4, 4, 1],
        nonlinear_activation: str = "LeakyReLU",
        nonlinear_activation_params: Dict[str, Any] = {"negative_slope": 0.1},
        use_weight_norm: bool = True,
        use_spectral_norm: bool = False,
    ):
        """Build the 1-D conv stack of one scale.

        Args:
            in_channels (int): Input channels.
            out_channels (int): Output channels.
            kernel_sizes (List[int]): Four odd kernel sizes: first conv, downsampling
                convs, and the two output convs.
            channels (int): Channels of the first conv.
            max_downsample_channels (int): Channel cap of the downsampling convs.
            max_groups (int): Group cap of the downsampling convs (groups: 4, 16, ...).
            bias (bool): Whether the convs have biases.
            downsample_scales (List[int]): Stride of each downsampling conv.
            nonlinear_activation (str): Activation name in ``torch.nn``.
            nonlinear_activation_params (Dict[str, Any]): Its parameters.
            use_weight_norm (bool): Whether to weight-normalise every conv.
            use_spectral_norm (bool): Whether to spectral-normalise every conv.

        """
        super().__init__()
        assert len(kernel_sizes) == 4
        for ks in kernel_sizes:
            assert ks % 2 == 1

        def conv_act(in_chs, out_chs, kernel, stride=1, groups=1):
            return torch.nn.Sequential(
                torch.nn.Conv1d(
                    in_chs, out_chs, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=bias
                ),
                make_activation(nonlinear_activation, nonlinear_activation_params, inplace=True),
            )

        self.layers = torch.nn.ModuleList([conv_act(in_channels, channels, kernel_sizes[0])])
        in_chs = out_chs = channels
        groups = 4
        for scale in downsample_scales:
            self.layers.append(conv_act(in_chs, out_chs, kernel_sizes[1], scale, groups))
            in_chs = out_chs
            out_chs = min(in_chs * 2, max_downsample_channels)
            groups = min(groups * 4, max_groups)
        out_chs = min(in_chs * 2, max_downsample_channels)
        self.layers.append(conv_act(in_chs, out_chs, kernel_sizes[2]))
        self.layers.append(
            torch.nn.Conv1d(
                out_chs, out_channels, kernel_sizes[3], 1, padding=(kernel_sizes[3] - 1) // 2, bias=bias
            )
        )

        if use_weight_norm and use_spectral_norm:
            raise ValueError("Either use use_weight_norm or use_spectral_norm.")
        self.use_weight_norm = use_weight_norm
        if use_weight_norm:
            self.apply_weight_norm()
        self.use_spectral_norm = use_spectral_norm
        if use_spectral_norm:
            self.apply_spectral_norm()
        self._register_load_state_dict_pre_hook(self._load_state_dict_pre_hook)

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Score the waveform with strided, grouped 1-D convs.

        Args:
            x (Tensor): Waveform (B, in_channels, T).

        Returns:
            List[Tensor]: Every layer's output, the score last (feature matching uses all).

        """
        outs = []
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        return outs

    def apply_weight_norm(self):
        """Apply weight normalisation to every conv layer."""
        apply_weight_norm(self, (torch.nn.Conv1d,))

    def apply_spectral_norm(self):
        """Apply spectral normalisation to every conv layer."""
        apply_spectral_norm(self, (torch.nn.Conv1d,))

    def remove_weight_norm(self):
        """Remove weight normalisation from every layer."""
        remove_weight_norm(self)

    def remove_spectral_norm(self):
        """Remove spectral normalisation from every layer."""
        remove_spectral_norm(self)

    def _load_state_dict_pre_hook(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        """Drop the norm when the checkpoint was saved without it (see module docstring)."""
        if not has_plain_weights(state_dict, prefix):
            return
        if self.use_weight_norm:
            logging.warning(_NORM_MISMATCH, "weight")
            self.remove_weight_norm()
            self.use_weight_norm = False
            drop_keys(state_dict, prefix, ("weight_g", "weight_v"))
        if self.use_spectral_norm:
            logging.warning(_NORM_MISMATCH, "spectral")
            self.remove_spectral_norm()
            self.use_spectral_norm = False
            drop_keys(state_dict, prefix, ("weight_u", "weight_v", "weight_orig"))
