"""Residual affine coupling flow of VITS.

This is the "Flow" box of the VITS paper (Figure 1): an invertible map ``f`` between the
posterior latent ``z`` and ``z_p = f(z)`` whose density the text-conditioned prior
evaluates (training: forward direction; inference: ``z = f^-1(z_p)``). It alternates
residual affine coupling layers (half of the channels go through a WaveNet that predicts
a shift, and a log-scale unless ``use_only_mean``, for the other half) with channel flips.
Constructor arguments and weights are those of ESPnet's ``ResidualAffineCouplingBlock``
(flips included as parameter-free entries, so coupling layers keep the keys
``flows.0``, ``flows.2``, ...).
"""

from typing import Optional, Tuple, Union

import torch
from torch import nn

from espnet2_vits_ext.layers.wavenet import vits_wavenet


class FlipFlow(nn.Module):
    """Reverse the channel order (its own inverse; log-determinant 0)."""

    def forward(
        self, x: torch.Tensor, *args, inverse: bool = False, **kwargs
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Flip ``x`` (B, C, T); forward also returns a zero log-determinant (B,)."""
        x = torch.flip(x, [1])
        if inverse:
            return x
        return x, x.new_zeros(x.size(0))


class ResidualAffineCouplingLayer(nn.Module):
    """Residual affine coupling layer.

    Args:
        in_channels (int): Number of input channels (even).
        hidden_channels (int): Number of hidden channels.
        kernel_size (int): Kernel size for WaveNet.
        base_dilation (int): Base dilation factor for WaveNet.
        layers (int): Number of layers of WaveNet.
        stacks (int): Number of stacks of WaveNet.
        global_channels (int): Number of global channels.
        dropout_rate (float): Dropout rate.
        use_weight_norm (bool): Whether to use weight normalization in WaveNet.
        bias (bool): Whether to use bias paramters in WaveNet.
        use_only_mean (bool): Whether to estimate only mean.

    """

    def __init__(
        self,
        in_channels: int = 192,
        hidden_channels: int = 192,
        kernel_size: int = 5,
        base_dilation: int = 1,
        layers: int = 5,
        stacks: int = 1,
        global_channels: int = -1,
        dropout_rate: float = 0.0,
        use_weight_norm: bool = True,
        bias: bool = True,
        use_only_mean: bool = True,
    ):
        if in_channels % 2 != 0:
            raise ValueError(f"in_channels should be divisible by 2, got {in_channels}")
        super().__init__()
        self.half_channels = in_channels // 2
        self.use_only_mean = use_only_mean
        self.input_conv = nn.Conv1d(self.half_channels, hidden_channels, 1)
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
        out = self.half_channels if use_only_mean else self.half_channels * 2
        self.proj = nn.Conv1d(hidden_channels, out, 1)
        # Zero-initialised: every coupling layer starts as the identity.
        self.proj.weight.data.zero_()
        self.proj.bias.data.zero_()

    def forward(
        self,
        x: torch.Tensor,
        x_mask: torch.Tensor,
        g: Optional[torch.Tensor] = None,
        inverse: bool = False,
    ) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
        """Transform ``x`` (B, in_channels, T).

        Returns:
            Tensor: Output tensor (B, in_channels, T).
            Tensor: Log-determinant tensor for NLL (B,), forward direction only.

        """
        xa, xb = x.split(self.half_channels, dim=1)
        h = self.input_conv(xa) * x_mask
        h = self.encoder(h, x_mask, g=g)
        stats = self.proj(h) * x_mask
        if self.use_only_mean:
            # log-scale 0: a pure shift, exp(0) == 1 and a zero log-determinant.
            m, logs = stats, None
            xb = m + xb * x_mask if not inverse else (xb - m) * x_mask
        else:
            m, logs = stats.split(self.half_channels, dim=1)
            if not inverse:
                xb = m + xb * torch.exp(logs) * x_mask
            else:
                xb = (xb - m) * torch.exp(-logs) * x_mask
        x = torch.cat([xa, xb], 1)
        if inverse:
            return x
        logdet = x.new_zeros(x.size(0)) if logs is None else torch.sum(logs, [1, 2])
        return x, logdet


class ResidualAffineCouplingBlock(nn.Module):
    """Residual affine coupling block: the flow ``f`` of VITS.

    Args:
        in_channels (int): Number of input channels.
        hidden_channels (int): Number of hidden channels.
        flows (int): Number of coupling layers (each followed by a flip).
        kernel_size (int): Kernel size for WaveNet.
        base_dilation (int): Base dilation factor for WaveNet.
        layers (int): Number of layers of WaveNet.
        global_channels (int): Number of global channels.
        dropout_rate (float): Dropout rate.
        use_weight_norm (bool): Whether to use weight normalization in WaveNet.
        bias (bool): Whether to use bias paramters in WaveNet.
        use_only_mean (bool): Whether to estimate only mean.

    """

    def __init__(
        self,
        in_channels: int = 192,
        hidden_channels: int = 192,
        flows: int = 4,
        kernel_size: int = 5,
        base_dilation: int = 1,
        layers: int = 4,
        global_channels: int = -1,
        dropout_rate: float = 0.0,
        use_weight_norm: bool = True,
        bias: bool = True,
        use_only_mean: bool = True,
    ):
        super().__init__()
        self.flows = nn.ModuleList()
        for _ in range(flows):
            self.flows.append(
                ResidualAffineCouplingLayer(
                    in_channels=in_channels,
                    hidden_channels=hidden_channels,
                    kernel_size=kernel_size,
                    base_dilation=base_dilation,
                    layers=layers,
                    stacks=1,
                    global_channels=global_channels,
                    dropout_rate=dropout_rate,
                    use_weight_norm=use_weight_norm,
                    bias=bias,
                    use_only_mean=use_only_mean,
                )
            )
            self.flows.append(FlipFlow())

    def forward(
        self,
        x: torch.Tensor,
        x_mask: torch.Tensor,
        g: Optional[torch.Tensor] = None,
        inverse: bool = False,
    ) -> torch.Tensor:
        """Map ``z`` to ``z_p`` (``inverse=False``) or ``z_p`` to ``z`` (``inverse=True``).

        Args:
            x (Tensor): Input tensor (B, in_channels, T).
            x_mask (Tensor): Mask tensor (B, 1, T).
            g (Optional[Tensor]): Global conditioning tensor (B, global_channels, 1).
            inverse (bool): Whether to inverse the flow.

        Returns:
            Tensor: Output tensor (B, in_channels, T).

        """
        if not inverse:
            for flow in self.flows:
                x, _ = flow(x, x_mask, g=g, inverse=False)
        else:
            for flow in reversed(self.flows):
                x = flow(x, x_mask, g=g, inverse=True)
        return x
