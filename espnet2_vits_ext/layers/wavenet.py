"""Non-causal WaveNet stack: the body of the posterior encoder and of each coupling layer.

In the VITS paper (Figure 1) this is the network inside the "Posterior Encoder" box and
inside each affine coupling layer of the "Flow" box: a stack of dilated, non-causal
convolutions with gated tanh-sigmoid units, residual and skip connections, and optional
global conditioning (a speaker embedding). Constructor arguments and parameter names are
those of ESPnet's ``espnet2/gan_tts/wavenet`` (``conv_layers.N.conv``, ``conv1x1_out``,
``conv1x1_glo``, ...), with the same weight normalisation (``weight_g``/``weight_v``).
Conditioning is added to the whole gate input at once, and the skip sum is accumulated
in place.
"""

import math
from typing import Optional

import torch
from torch import nn

from espnet2_vits_ext.layers.conv_norm import apply_weight_norm, remove_weight_norm
from espnet2_vits_ext.layers.wavenet_residual_block import Conv1d1x1, ResidualBlock


class WaveNet(nn.Module):
    """A stack of gated dilated layers whose skip outputs are summed (ESPnet's WaveNet layout).

    Args:
        in_channels (int): Channels of ``x`` when a 1x1 input conv is used (``use_first_conv``).
        out_channels (int): Channels of the result when the output convs are used (``use_last_conv``).
        kernel_size (int): Kernel size of every dilated conv (odd).
        layers (int): How many gated layers.
        stacks (int): Dilation cycles: within each, layer ``j`` has dilation ``base_dilation ** j``.
        base_dilation (int): See ``stacks``.
        residual_channels (int): Width of the residual path between layers.
        aux_channels (int): Width of the local conditioning ``c`` (<= 0: none).
        gate_channels (int): Width of each dilated conv's output, split in two for the gate.
        skip_channels (int): Width of each layer's skip output (and of their sum).
        global_channels (int): Width of the global conditioning ``g`` (<= 0: none).
        dropout_rate (float): Dropout on each layer's input (0: none).
        bias (bool): Give the convolutions biases.
        use_weight_norm (bool): Weight-normalise every convolution.
        use_first_conv (bool): Map ``x`` from ``in_channels`` with a 1x1 conv first.
        use_last_conv (bool): End with ReLU, 1x1 conv, ReLU, 1x1 conv to ``out_channels``.
        scale_residual (bool): Multiply each residual sum by sqrt(0.5).
        scale_skip_connect (bool): Multiply the skip sum by sqrt(1 / layers).

    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        kernel_size: int = 3,
        layers: int = 30,
        stacks: int = 3,
        base_dilation: int = 2,
        residual_channels: int = 64,
        aux_channels: int = -1,
        gate_channels: int = 128,
        skip_channels: int = 64,
        global_channels: int = -1,
        dropout_rate: float = 0.0,
        bias: bool = True,
        use_weight_norm: bool = True,
        use_first_conv: bool = False,
        use_last_conv: bool = False,
        scale_residual: bool = False,
        scale_skip_connect: bool = False,
    ):
        super().__init__()
        if layers % stacks != 0:
            raise ValueError(f"layers ({layers}) must be a multiple of stacks ({stacks})")
        self.layers = layers
        self.stacks = stacks
        self.kernel_size = kernel_size
        self.base_dilation = base_dilation
        self.use_first_conv = use_first_conv
        self.use_last_conv = use_last_conv
        self.scale_skip_connect = scale_skip_connect
        layers_per_stack = layers // stacks

        if use_first_conv:
            self.first_conv = Conv1d1x1(in_channels, residual_channels, bias=True)
        self.conv_layers = nn.ModuleList(
            ResidualBlock(
                kernel_size=kernel_size,
                residual_channels=residual_channels,
                gate_channels=gate_channels,
                skip_channels=skip_channels,
                aux_channels=aux_channels,
                global_channels=global_channels,
                dilation=base_dilation ** (layer % layers_per_stack),
                dropout_rate=dropout_rate,
                bias=bias,
                scale_residual=scale_residual,
            )
            for layer in range(layers)
        )
        if use_last_conv:
            self.last_conv = nn.Sequential(
                nn.ReLU(inplace=True),
                Conv1d1x1(skip_channels, skip_channels, bias=True),
                nn.ReLU(inplace=True),
                Conv1d1x1(skip_channels, out_channels, bias=True),
            )
        if use_weight_norm:
            self.apply_weight_norm()

    def forward(
        self,
        x: torch.Tensor,
        x_mask: Optional[torch.Tensor] = None,
        c: Optional[torch.Tensor] = None,
        g: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Run every layer and return the sum of their skip outputs.

        Args:
            x (Tensor): Features (B, in_channels, T) with ``use_first_conv``, else
                (B, residual_channels, T).
            x_mask (Optional[Tensor]): 1 on valid frames, 0 on padding (B, 1, T).
            c (Optional[Tensor]): Per-frame conditioning (B, aux_channels, T).
            g (Optional[Tensor]): Per-utterance conditioning, e.g. a speaker (B, global_channels, 1).

        Returns:
            Tensor: Output (B, out_channels, T) if use_last_conv else (B, skip_channels, T).

        """
        if self.use_first_conv:
            x = self.first_conv(x)
        skips = None
        for i, layer in enumerate(self.conv_layers):
            x, s = layer(x, x_mask=x_mask, c=c, g=g)
            if skips is None:
                skips = s
            elif i == 1:
                skips = skips + s  # a fresh tensor we own: later sums go in place
            else:
                skips.add_(s)
        x = skips
        if self.scale_skip_connect:
            x = x * math.sqrt(1.0 / len(self.conv_layers))
        if self.use_last_conv:
            x = self.last_conv(x)
        return x

    def remove_weight_norm(self):
        """Fold weight norm back into plain ``weight`` parameters (keys change accordingly)."""
        remove_weight_norm(self)

    def apply_weight_norm(self):
        """Apply weight normalization (the ``weight_g``/``weight_v`` API) to all conv layers."""
        apply_weight_norm(self, (nn.Conv1d,))

    @staticmethod
    def _get_receptive_field_size(layers: int, stacks: int, kernel_size: int, base_dilation: int) -> int:
        layers_per_cycle = layers // stacks
        dilations = [base_dilation ** (i % layers_per_cycle) for i in range(layers)]
        return (kernel_size - 1) * sum(dilations) + 1

    @property
    def receptive_field_size(self) -> int:
        """How many input samples one output sample sees: ``(kernel_size - 1) * sum(dilations) + 1``."""
        return self._get_receptive_field_size(self.layers, self.stacks, self.kernel_size, self.base_dilation)


def vits_wavenet(
    hidden_channels: int,
    kernel_size: int,
    layers: int,
    stacks: int,
    base_dilation: int,
    global_channels: int,
    dropout_rate: float,
    bias: bool,
    use_weight_norm: bool,
) -> WaveNet:
    """The WaveNet of VITS's posterior encoder and coupling layers, as ESPnet builds both.

    ``hidden_channels`` wide throughout (residual and skip; the gate twice as wide), with
    no first or last conv (the owner has its own 1x1 input and projection convs), no local
    conditioning, unscaled residuals and the skip sum scaled by ``sqrt(1 / layers)``.
    It maps (B, hidden_channels, T) to (B, hidden_channels, T).
    """
    return WaveNet(
        in_channels=-1,
        out_channels=-1,
        kernel_size=kernel_size,
        layers=layers,
        stacks=stacks,
        base_dilation=base_dilation,
        residual_channels=hidden_channels,
        aux_channels=-1,
        gate_channels=hidden_channels * 2,
        skip_channels=hidden_channels,
        global_channels=global_channels,
        dropout_rate=dropout_rate,
        bias=bias,
        use_weight_norm=use_weight_norm,
        use_first_conv=False,
        use_last_conv=False,
        scale_residual=False,
        scale_skip_connect=True,
    )
