"""The "Decoder" box of Fig. 1 of Kim, Kong & Son (2021): a HiFi-GAN V1 generator.

It maps the latent ``z`` (B, hidden, T_frames) to a waveform (B, 1, T_frames * hop), where
hop is the product of ``upsample_scales``::

    x = input_conv(z) [+ global_conv(g)]
    for each stage i:                       # len(upsample_scales) stages
        x = upsamples[i](x)                 # LeakyReLU, then a transposed conv (x scale_i)
        x = mean_k blocks[i, k](x)          # multi-receptive field fusion (MRF)
    waveform = tanh(output_conv(LeakyReLU(x)))

The channels halve at every stage. The MRF runs one :class:`ResidualBlock` per entry of
``resblock_kernel_sizes`` in parallel (kernel sizes 3, 7, 11 in the paper) and averages
them. With ``global_channels > 0`` a 1x1 conv adds the speaker/language embedding ``g``.

Constructor arguments, defaults and ``state_dict`` keys are ESPnet's
``espnet2.gan_tts.hifigan.HiFiGANGenerator`` as VITS builds it (``input_conv``,
``upsamples.<i>.1``, ``blocks.<k>.convs{1,2}.<d>.1``, ``output_conv.1``, ``global_conv``;
weight norm as ``weight_g``/``weight_v``), so checkpoints move both ways.

How the box is computed fast (folded weight norm, a functional loop, the MRF mean folded
into the next conv; oneDNN plans on CPU) is in :mod:`espnet2_vits_ext.acceleration`; the
result is this box's function.
"""

from typing import Any, Dict, List, NamedTuple, Optional

import numpy as np
import torch

from espnet2_vits_ext.acceleration import packed_decoder, weight_norm_folding
from espnet2_vits_ext.layers.conv_norm import apply_weight_norm, make_activation, remove_weight_norm
from espnet2_vits_ext.layers.hifigan_residual_block import ResidualBlock


class _UpsampleSpec(NamedTuple):
    """Geometry of one transposed conv (its kernel is twice the stride)."""

    stride: int
    padding: int
    output_padding: int


class HiFiGANGenerator(torch.nn.Module):
    """HiFi-GAN generator used as the VITS decoder (ESPnet-compatible)."""

    def __init__(
        self,
        in_channels: int = 80,
        out_channels: int = 1,
        channels: int = 512,
        global_channels: int = -1,
        kernel_size: int = 7,
        upsample_scales: List[int] = [8, 8, 2, 2],
        upsample_kernel_sizes: List[int] = [16, 16, 4, 4],
        resblock_kernel_sizes: List[int] = [3, 7, 11],
        resblock_dilations: List[List[int]] = [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
        use_additional_convs: bool = True,
        bias: bool = True,
        nonlinear_activation: str = "LeakyReLU",
        nonlinear_activation_params: Dict[str, Any] = {"negative_slope": 0.1},
        use_weight_norm: bool = True,
    ):
        """Build the input conv, the upsampling stages with their MRF blocks, and the output conv.

        Args:
            in_channels (int): Input (latent) channels.
            out_channels (int): Output channels (1 for a waveform).
            channels (int): Channels after the input conv; halved at every upsampling.
            global_channels (int): Global conditioning channels (<= 0: none).
            kernel_size (int): Kernel size of the input and output convs (odd).
            upsample_scales (List[int]): Upsampling factor of each stage.
            upsample_kernel_sizes (List[int]): Transposed-conv kernel sizes (2x scale).
            resblock_kernel_sizes (List[int]): Kernel size of each parallel block.
            resblock_dilations (List[List[int]]): Dilations of each parallel block.
            use_additional_convs (bool): Whether blocks have the second conv per step.
            bias (bool): Whether the residual-block convs have biases.
            nonlinear_activation (str): Activation name in ``torch.nn``.
            nonlinear_activation_params (Dict[str, Any]): Its parameters.
            use_weight_norm (bool): Whether to weight-normalise every conv.

        """
        super().__init__()
        assert kernel_size % 2 == 1, "Kernel size must be odd number."
        assert len(upsample_scales) == len(upsample_kernel_sizes)
        assert len(resblock_dilations) == len(resblock_kernel_sizes)
        assert len(upsample_scales) > 0 and len(resblock_kernel_sizes) > 0

        self.upsample_factor = int(np.prod(upsample_scales) * out_channels)
        self.num_upsamples = len(upsample_kernel_sizes)
        self.num_blocks = len(resblock_kernel_sizes)
        self.global_channels = global_channels
        act = (nonlinear_activation, nonlinear_activation_params)

        # Creation order is ESPnet's, so a seeded build draws the same initial weights.
        pad = (kernel_size - 1) // 2
        self._padding = pad
        self.input_conv = torch.nn.Conv1d(in_channels, channels, kernel_size, 1, padding=pad)
        self.upsamples = torch.nn.ModuleList()
        self.blocks = torch.nn.ModuleList()
        specs = []
        for i, (scale, up_kernel) in enumerate(zip(upsample_scales, upsample_kernel_sizes)):
            assert up_kernel == 2 * scale
            spec = _UpsampleSpec(scale, scale // 2 + scale % 2, scale % 2)
            specs.append(spec)
            ch_in, ch_out = channels // (2**i), channels // (2 ** (i + 1))
            self.upsamples.append(
                torch.nn.Sequential(
                    make_activation(*act),
                    torch.nn.ConvTranspose1d(
                        ch_in, ch_out, up_kernel, scale, padding=spec.padding, output_padding=spec.output_padding
                    ),
                )
            )
            for block_kernel, dilations in zip(resblock_kernel_sizes, resblock_dilations):
                self.blocks.append(
                    ResidualBlock(
                        kernel_size=block_kernel,
                        channels=ch_out,
                        dilations=dilations,
                        bias=bias,
                        use_additional_convs=use_additional_convs,
                        nonlinear_activation=nonlinear_activation,
                        nonlinear_activation_params=nonlinear_activation_params,
                    )
                )
        self._upsample_specs = tuple(specs)
        self.output_conv = torch.nn.Sequential(
            torch.nn.LeakyReLU(),
            torch.nn.Conv1d(ch_out, out_channels, kernel_size, 1, padding=pad),
            torch.nn.Tanh(),
        )
        if global_channels > 0:
            self.global_conv = torch.nn.Conv1d(global_channels, channels, 1)

        weight_norm_folding.attach(self, *act)
        if use_weight_norm:
            self.apply_weight_norm()
        self.reset_parameters()

    def fold_weight_norm(self, device_type: Optional[str] = None) -> "HiFiGANGenerator":
        """Fold weight norm into inference weights now (else the first no-grad call does).

        The ``state_dict`` is untouched: the folded copy is a plain attribute, rebuilt
        whenever a parameter changes. ``device_type`` (default: the parameters') only
        selects whose autocast state, and so which weight dtype, to fold for.
        """
        device = self.input_conv.bias.device
        probe = torch.empty(0, device=device if device_type in (None, device.type) else device_type)
        with torch.no_grad():
            weight_norm_folding.folded_weights(self, probe)
        return self

    def __getstate__(self):
        return weight_norm_folding.without_caches(self.__dict__)

    def forward(self, c: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Decode latent frames into a waveform (the box's function, see the module).

        Args:
            c (Tensor): Latent frames (B, in_channels, T_frames).
            g (Optional[Tensor]): Speaker/language embedding (B, global_channels, 1).

        Returns:
            Tensor: Waveform (B, out_channels, T_frames * upsample_factor).

        """
        if g is not None and self.global_channels <= 0:
            raise ValueError("g was given but the decoder has no global_conv (global_channels <= 0)")
        if packed_decoder.applies(self, c):
            return packed_decoder.forward(self, c, g)
        return weight_norm_folding.forward(self, c, g)

    def inference(self, c: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Decode one utterance given without a batch axis, frames first.

        Args:
            c (Tensor): Latent frames (T_frames, in_channels).
            g (Optional[Tensor]): Speaker/language embedding (global_channels, 1).

        Returns:
            Tensor: Waveform (T_frames * upsample_factor, out_channels).

        """
        if g is not None:
            g = g.unsqueeze(0)
        c = self.forward(c.transpose(1, 0).unsqueeze(0), g=g)
        return c.squeeze(0).transpose(1, 0)

    # ------------------------------------------------------------------ utilities
    def reset_parameters(self):
        """ESPnet's reset: ``normal_(0, 0.01)`` on every conv weight.

        Under weight norm the reset lands on the hook's computed ``weight`` attribute,
        which the next call recomputes from ``weight_g``/``weight_v``: as in ESPnet (and
        the official HiFi-GAN with weight norm) it only consumes random numbers. We draw
        the same numbers so that a seeded build matches ESPnet's parameter for parameter.
        """

        def _reset(m: torch.nn.Module):
            if isinstance(m, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                m.weight.data.normal_(0.0, 0.01)

        self.apply(_reset)
        weight_norm_folding.invalidate(self)

    def remove_weight_norm(self):
        """Remove weight normalisation from all layers (keys become ``weight``)."""
        remove_weight_norm(self)
        weight_norm_folding.invalidate(self)

    def apply_weight_norm(self):
        """Apply weight normalisation to all conv layers."""
        apply_weight_norm(self, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))
        weight_norm_folding.invalidate(self)
