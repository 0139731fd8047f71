"""HiFi-GAN multi-receptive-field residual block (inside the VITS decoder box, Fig. 1a).

VITS's decoder is the HiFi-GAN V1 generator; after each transposed convolution it runs
several of these blocks in parallel (kernel sizes 3, 7, 11) and averages them: the
"multi-receptive field fusion" (MRF) of HiFi-GAN. One block is, per dilation ``d``::

    x = x + conv_k(act(conv_{k,d}(act(x))))      # second conv only with use_additional_convs

Parameters are laid out as ESPnet's ``espnet2.gan_tts.hifigan.residual_block.ResidualBlock``
(``convs1.<i>.1``, ``convs2.<i>.1``; index 0 of each pair is the activation), so the state
dicts match. The decoder does not call this module's ``forward``: it runs the same maths
through :meth:`ResidualBlock.run`, a functional loop on weights it folds once (see
:mod:`espnet2_vits_ext.acceleration.weight_norm_folding`); ``forward`` here is the plain
module-by-module path.
"""

from typing import Any, Dict, Iterator, List, NamedTuple, Optional

import torch
import torch.nn.functional as F

from espnet2_vits_ext.layers.conv_norm import leaky_slope, make_activation


class DilatedLayerSpec(NamedTuple):
    """Static shape of one residual step: ``x + conv2(act(conv1(act(x))))``."""

    dilation: int
    padding1: int  # of the dilated conv
    padding2: int  # of the additional (dilation 1) conv
    has_conv2: bool


class ResidualBlock(torch.nn.Module):
    """One MRF residual block; same constructor arguments and keys as ESPnet's."""

    def __init__(
        self,
        kernel_size: int = 3,
        channels: int = 512,
        dilations: List[int] = [1, 3, 5],
        bias: bool = True,
        use_additional_convs: bool = True,
        nonlinear_activation: str = "LeakyReLU",
        nonlinear_activation_params: Dict[str, Any] = {"negative_slope": 0.1},
    ):
        """Build the convs of one residual step per dilation.

        Args:
            kernel_size (int): Kernel size of the convolutions (odd).
            channels (int): Channels in and out.
            dilations (List[int]): One residual step per dilation.
            bias (bool): Whether the convolutions have biases.
            use_additional_convs (bool): Whether each step has a second conv.
            nonlinear_activation (str): Name of the activation in ``torch.nn``.
            nonlinear_activation_params (Dict[str, Any]): Its parameters.

        """
        super().__init__()
        assert kernel_size % 2 == 1, "Kernel size must be odd number."
        self.use_additional_convs = use_additional_convs
        self.convs1 = torch.nn.ModuleList()
        if use_additional_convs:
            self.convs2 = torch.nn.ModuleList()
        act = (nonlinear_activation, nonlinear_activation_params)
        specs = []
        for dilation in dilations:
            # Creation order (convs1[i], then convs2[i]) matches ESPnet's, so a seeded
            # build draws the same initial weights.
            pad1 = (kernel_size - 1) // 2 * dilation
            self.convs1.append(
                torch.nn.Sequential(
                    make_activation(*act),
                    torch.nn.Conv1d(channels, channels, kernel_size, 1, dilation=dilation, bias=bias, padding=pad1),
                )
            )
            pad2 = (kernel_size - 1) // 2
            if use_additional_convs:
                self.convs2.append(
                    torch.nn.Sequential(
                        make_activation(*act),
                        torch.nn.Conv1d(channels, channels, kernel_size, 1, dilation=1, bias=bias, padding=pad2),
                    )
                )
            specs.append(DilatedLayerSpec(dilation, pad1, pad2, use_additional_convs))
        self._specs = tuple(specs)
        self._slope = leaky_slope(nonlinear_activation, nonlinear_activation_params)

    def conv_modules(self) -> List[torch.nn.Module]:
        """Conv layers in the order the functional path consumes weights."""
        mods = []
        for i in range(len(self._specs)):
            mods.append(self.convs1[i][1])
            if self.use_additional_convs:
                mods.append(self.convs2[i][1])
        return mods

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply every residual step, module by module (the reference form of :meth:`run`).

        Args:
            x (Tensor): Features (B, channels, T).

        Returns:
            Tensor: Features after all steps (B, channels, T).

        """
        for i in range(len(self._specs)):
            h = self.convs1[i](x)
            if self.use_additional_convs:
                h = self.convs2[i](h)
            x = h + x
        return x

    def run(self, x: torch.Tensor, first_act: Optional[torch.Tensor], weights: Iterator) -> torch.Tensor:
        """Functional forward on precomputed ``(weight, bias)`` pairs (the decoder's path).

        Args:
            x (Tensor): Block input (B, C, T); left unmodified.
            first_act (Optional[Tensor]): ``act(x)`` when the caller already has it (the
                parallel blocks of one MRF stage share it).
            weights (Iterator): ``(weight, bias)`` pairs in :meth:`conv_modules` order.

        Returns:
            Tensor: A freshly allocated output (the caller may modify it in place).

        In-place operations only touch freshly computed conv outputs, which autograd does
        not keep (a conv saves its input and weight), so this is also the training path.
        """
        slope = self._slope
        inplace = slope is not None and slope > 0
        y = x
        for i, spec in enumerate(self._specs):
            if i == 0 and first_act is not None:
                h = first_act
            elif slope is not None:
                h = F.leaky_relu(y, slope)
            else:
                h = self.convs1[i][0](y)
            w, b = next(weights)
            h = F.conv1d(h, w, b, 1, spec.padding1, spec.dilation)
            if spec.has_conv2:
                h = F.leaky_relu(h, slope, inplace) if slope is not None else self.convs2[i][0](h)
                w, b = next(weights)
                h = F.conv1d(h, w, b, 1, spec.padding2)
            y = h.add_(y)
        if y is x:  # a block without steps is the identity: hand back a copy
            y = x.clone()
        return y

    def activation(self, x: torch.Tensor) -> torch.Tensor:
        """The block's activation, out of place (what ``convs1[0][0]`` computes)."""
        if self._slope is not None:
            return F.leaky_relu(x, self._slope)
        return self.convs1[0][0](x)

