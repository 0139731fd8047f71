"""Residual affine coupling flow of VITS.

This is the "Flow" box of the VITS paper (Figure 1): an invertible map ``f`` between the
posterior latent ``z`` and ``z_p = f(z)`` whose density the text-conditioned prior
evaluates (training: forward direction; inference: ``z = f^-1(z_p)``). It alternates
residual affine coupling layers (half of the channels go through a WaveNet that predicts
a shift, and a log-scale unless ``use_only_mean``, for the other half) with channel flips.
Constructor arguments and weights are those of ESPnet's ``ResidualAffineCouplingBlock``
(flips included as parameter-free entries, so coupling layers keep the keys
``flows.0``, ``flows.2``, ...). Its layers keep the flow contract of
:mod:`espnet2_vits_ext.layers.flip_flow` (``(y, logdet)`` forward, ``(x, None)`` in
reverse); the block itself returns the tensor alone both ways, as ESPnet's does.
"""

from typing import Optional

import torch
from torch import nn

from espnet2_vits_ext.acceleration import packed_flow
from espnet2_vits_ext.acceleration.packed_conv import PackedPlanCache
from espnet2_vits_ext.layers.flip_flow import FlipFlow, FlowOutput
from espnet2_vits_ext.layers.wavenet import vits_wavenet


class ResidualAffineCouplingLayer(nn.Module):
    """One coupling layer: the first half of the channels sets a shift (and scale) of the second.

    Args:
        in_channels (int): Channels of ``x``; even, split into two halves.
        hidden_channels (int): Width of the WaveNet that reads the first half.
        kernel_size (int): The WaveNet's dilated kernel size.
        base_dilation (int): The WaveNet's dilation grows as powers of this.
        layers (int): WaveNet layers.
        stacks (int): Dilation cycles over those layers.
        global_channels (int): Width of the speaker embedding ``g`` (<= 0: none).
        dropout_rate (float): Dropout inside the WaveNet.
        use_weight_norm (bool): Weight-normalise the WaveNet's convolutions.
        bias (bool): Give the WaveNet's convolutions biases.
        use_only_mean (bool): Predict a shift only (volume-preserving, as in the paper),
            not also a log-scale.

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
    ) -> FlowOutput:
        """Shift (and scale) the second half of ``x``, or undo it with ``inverse``.

        Args:
            x (Tensor): Latent (B, in_channels, T).
            x_mask (Tensor): 1 on valid frames (B, 1, T).
            g (Optional[Tensor]): Speaker embedding (B, global_channels, 1).
            inverse (bool): Undo the transform.

        Returns:
            Tensor: The transformed latent (B, in_channels, T), first half unchanged.
            Optional[Tensor]: Forward, the log-determinant summed over valid frames
                (B,); in reverse, None.

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
            return x, None
        logdet = x.new_zeros(x.size(0)) if logs is None else torch.sum(logs, [1, 2])
        return x, logdet


class ResidualAffineCouplingBlock(PackedPlanCache, nn.Module):
    """The flow ``f`` of VITS: coupling layers, each followed by a channel flip.

    Args:
        in_channels (int): Channels of the latent (the generator's hidden channels).
        hidden_channels (int): Width of each coupling layer's WaveNet.
        flows (int): How many coupling layers (each followed by a flip).
        kernel_size (int): The WaveNets' dilated kernel size.
        base_dilation (int): Their dilation grows as powers of this.
        layers (int): Layers of each WaveNet (one dilation cycle).
        global_channels (int): Width of the speaker embedding ``g`` (<= 0: none).
        dropout_rate (float): Dropout inside the WaveNets.
        use_weight_norm (bool): Weight-normalise the WaveNets' convolutions.
        bias (bool): Give the WaveNets' convolutions biases.
        use_only_mean (bool): Shift-only coupling layers (volume-preserving).

    Synthesis on CPU runs on prepacked weights (:mod:`espnet2_vits_ext.acceleration.packed_flow`).
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
        # "bf16": synthesis (inverse, autograd off, CPU) in bfloat16; set by
        # FastVITS.set_inference_precision together with the decoder's. The decoder casts
        # z to bfloat16 anyway, so this adds an error of the same size (~0.4% relative).
        self.inference_precision = "fp32"

    def forward(
        self,
        x: torch.Tensor,
        x_mask: torch.Tensor,
        g: Optional[torch.Tensor] = None,
        inverse: bool = False,
    ) -> torch.Tensor:
        """Map ``z`` to ``z_p`` (training), or ``z_p`` back to ``z`` with ``inverse`` (synthesis).

        Args:
            x (Tensor): ``z`` or, with ``inverse``, ``z_p`` (B, in_channels, T_feats).
            x_mask (Tensor): 1 on valid frames (B, 1, T_feats).
            g (Optional[Tensor]): Speaker embedding (B, global_channels, 1).
            inverse (bool): Run the layers backwards, each inverted.

        Returns:
            Tensor: ``z_p`` or, with ``inverse``, ``z`` (B, in_channels, T_feats). The
                log-determinants are dropped, as ESPnet drops them (zero for the
                paper's shift-only layers).

        """
        if inverse and packed_flow.applies(self, x, x_mask, g):
            return packed_flow.inverse(self, x, g)
        if inverse and self.inference_precision == "bf16" and x.device.type == "cpu" and not torch.is_grad_enabled():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return self._run(x, x_mask, g, inverse).float()
        return self._run(x, x_mask, g, inverse)

    def _run(self, x: torch.Tensor, x_mask: torch.Tensor, g: Optional[torch.Tensor], inverse: bool) -> torch.Tensor:
        """The layers in order (backwards and inverted with ``inverse``)."""
        layers = reversed(self.flows) if inverse else self.flows
        for flow in layers:
            x, _ = flow(x, x_mask, g=g, inverse=inverse)
        return x
