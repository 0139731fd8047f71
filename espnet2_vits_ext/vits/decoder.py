"""HiFi-GAN decoder of VITS: the "Decoder" box of Fig. 1 of Kim, Kong & Son (2021).

It turns the latent ``z`` (B, hidden, T_frames) into a waveform (B, 1, T_frames * hop):
an input conv, then per upsampling stage a transposed conv followed by the multi-receptive
field fusion (the mean of parallel :class:`ResidualBlock` s), then an output conv and tanh.
With ``global_channels > 0`` a 1x1 conv adds the speaker/language embedding ``g``.

Constructor arguments, defaults and ``state_dict`` keys are those of ESPnet's
``espnet2.gan_tts.hifigan.HiFiGANGenerator`` as VITS builds it (``input_conv``,
``upsamples.<i>.1``, ``blocks.<k>.convs{1,2}.<d>.1``, ``output_conv.1``, ``global_conv``;
weight norm as ``weight_g``/``weight_v``), so checkpoints move both ways.

Speed (this decoder is ~97% of synthesis FLOPs). ``forward`` does not call the layers
one by one: it takes all effective weights at once and runs one functional loop
(``F.conv1d``/``F.conv_transpose1d``/``F.leaky_relu``), with

* weight norm folded: with autograd off (``torch.no_grad``/``inference_mode``) the folded
  ``g * v / ||v||`` weights are computed once and cached outside the ``state_dict``
  (cast to the autocast dtype if autocast is on); the cache is rebuilt when any parameter
  changes (its version counter or storage), so loading weights, ``.to()`` or optimiser
  steps never leave it stale. :meth:`fold_weight_norm` builds it ahead of time;
* the activation of each stage's input computed once for all parallel blocks;
* the 1/num_blocks mean of MRF folded into the next conv's weights (LeakyReLU is
  positively homogeneous);
* in-place activations and residual sums on fresh conv outputs (autograd-safe, so the
  training path is the same code and keeps less memory).

On CPU with autograd off, ``forward`` hands over to :mod:`espnet2_vits_ext.acceleration.packed_decoder` (the same
folded weights, prepacked for oneDNN, channels-last, fused activations and residual sums;
bfloat16 when ``inference_precision == "bf16"`` or under CPU bf16 autocast).
"""

from typing import Any, Dict, List, NamedTuple, Optional

import numpy as np
import torch
import torch.nn.functional as F

from espnet2_vits_ext.layers.conv_norm import (
    apply_weight_norm,
    effective_weight,
    leaky_slope,
    make_activation,
    remove_weight_norm,
)
from espnet2_vits_ext.acceleration import packed_decoder
from espnet2_vits_ext.layers.hifigan_residual_block import ResidualBlock

_OUTPUT_SLOPE = 0.01  # the output LeakyReLU uses torch's default slope, as HiFi-GAN does


class _UpsampleSpec(NamedTuple):
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
        """Initialize the decoder.

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

        # Fast path: a LeakyReLU (any slope) lets the MRF mean fold into the next conv.
        self._slope = leaky_slope(*act)
        self._folded = None  # (key, weights) of the no-grad path; never in the state_dict
        self._layer_memo = None
        # CPU inference runs on oneDNN plans of the folded weights (see packed_decoder);
        # "bf16" makes that plan bfloat16 (FastVITS's inference_precision sets it).
        self.inference_precision = "fp32"
        self._packed_plans = None
        if use_weight_norm:
            self.apply_weight_norm()
        self.reset_parameters()

    # ------------------------------------------------------------------ weights
    def _layers(self):
        """``(conv, scale)`` in the order ``forward`` consumes weights (memoised per object).

        Keyed by ``id(self)``: a copy that shares our ``__dict__`` (a DataParallel replica)
        holds other modules and rebuilds its own list.
        """
        memo = self._layer_memo
        if memo is not None and memo[0] == id(self):
            return memo[1]
        mean = 1.0 / self.num_blocks
        layers = [(self.input_conv, 1.0)]
        if self.global_channels > 0:
            layers.append((self.global_conv, 1.0))
        nb = self.num_blocks
        for i in range(self.num_upsamples):
            layers.append((self.upsamples[i][1], mean if i > 0 and self._slope is not None else 1.0))
            for k in range(i * nb, (i + 1) * nb):
                layers.extend((m, 1.0) for m in self.blocks[k].conv_modules())
        layers.append((self.output_conv[1], mean))
        self._layer_memo = (id(self), layers)
        return layers

    @staticmethod
    def _compute(layers, dtype: Optional[torch.dtype]):
        weights = []
        for conv, scale in layers:
            w, b = effective_weight(conv), conv.bias
            if scale != 1.0:
                w = w * scale
            if dtype is not None:
                w, b = w.to(dtype), (None if b is None else b.to(dtype))
            weights.append((w, b))
        return weights

    def _weights(self, x: torch.Tensor):
        """Effective ``(weight, bias)`` list; cached while autograd is off."""
        layers = self._layers()
        if torch.is_grad_enabled():
            self._folded = None  # an optimiser step may follow: drop the stale copy
            return self._compute(layers, None)
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
        try:
            params = [p for m, _ in layers for p in m._parameters.values() if p is not None]
            key = (dtype, [(p.data_ptr(), p._version) for p in params])
        except RuntimeError:  # parameters made under inference_mode have no version counter
            return self._compute(layers, dtype)
        if self._folded is None or self._folded[0] != key:
            self._folded = (key, self._compute(layers, dtype))
        return self._folded[1]

    def fold_weight_norm(self, device_type: Optional[str] = None) -> "HiFiGANGenerator":
        """Build the folded inference weights now (else the first no-grad call does).

        The ``state_dict`` is untouched: the folded copy is a plain attribute, rebuilt
        whenever a parameter changes. ``device_type`` (default: the parameters') only
        selects whose autocast state, and so which weight dtype, to fold for.
        """
        device = self.input_conv.bias.device
        probe = torch.empty(0, device=device if device_type in (None, device.type) else device_type)
        with torch.no_grad():
            self._weights(probe)
        return self

    def __getstate__(self):
        state = self.__dict__.copy()
        # copies rebuild these on demand (packed oneDNN weights cannot be copied anyway)
        state["_folded"] = state["_layer_memo"] = state["_packed_plans"] = None
        return state

    # ------------------------------------------------------------------ forward
    def _act(self, x: torch.Tensor, module: torch.nn.Module) -> torch.Tensor:
        """Stage activation on a fresh tensor (in place on the fast path)."""
        if self._slope is None:
            return module(x)
        return F.leaky_relu(x, self._slope, self._slope > 0)

    def forward(self, c: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Calculate forward propagation.

        Args:
            c (Tensor): Input tensor (B, in_channels, T).
            g (Optional[Tensor]): Global conditioning tensor (B, global_channels, 1).

        Returns:
            Tensor: Output tensor (B, out_channels, T * upsample_factor).

        """
        if packed_decoder.applies(self, c):
            return packed_decoder.forward(self, c, g)
        weights = iter(self._weights(c))
        w, b = next(weights)
        x = F.conv1d(c, w, b, 1, self._padding)
        if self.global_channels > 0:
            w, b = next(weights)
            if g is not None:
                x = x + F.conv1d(g, w, b)
        elif g is not None:
            raise ValueError("g was given but the decoder has no global_conv (global_channels <= 0)")

        nb = self.num_blocks
        last = self.num_upsamples - 1
        for i, spec in enumerate(self._upsample_specs):
            x = self._act(x, self.upsamples[i][0])
            w, b = next(weights)
            x = F.conv_transpose1d(x, w, b, spec.stride, spec.padding, spec.output_padding)
            first_block = self.blocks[i * nb]
            first_act = first_block.activation(x)
            cs = first_block.run(x, first_act, weights)
            for k in range(i * nb + 1, (i + 1) * nb):
                cs = cs.add_(self.blocks[k].run(x, first_act, weights))
            if i < last and self._slope is None and nb > 1:
                cs = cs.div_(nb)  # mean not foldable into a non-homogeneous activation
            x = cs
        w, b = next(weights)
        x = F.leaky_relu(x, _OUTPUT_SLOPE, True)
        x = F.conv1d(x, w, b, 1, self._padding)
        return x.tanh_()

    def inference(self, c: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Perform inference.

        Args:
            c (Tensor): Input tensor (T, in_channels).
            g (Optional[Tensor]): Global conditioning tensor (global_channels, 1).

        Returns:
            Tensor: Output tensor (T * upsample_factor, out_channels).

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
        self._folded = None

    def remove_weight_norm(self):
        """Remove weight normalisation from all layers (keys become ``weight``)."""
        remove_weight_norm(self)
        self._folded = None

    def apply_weight_norm(self):
        """Apply weight normalisation to all conv layers."""
        apply_weight_norm(self, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))
        self._folded = None
