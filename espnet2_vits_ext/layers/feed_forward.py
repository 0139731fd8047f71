"""Feed-forward and convolution modules of the text encoder's Conformer blocks.

Part of the "Text Encoder" box of the VITS paper (Figure 1). The paper's Transformer
layers have a convolutional feed-forward network; ESPnet's Conformer blocks (and so ours)
have a position-wise feed-forward module of one of three kinds (``linear``, ``conv1d``,
``conv1d-linear``), optionally a second one before the attention (macaron style), and
optionally the Conformer convolution module (pointwise conv + GLU, depthwise conv,
BatchNorm, activation, pointwise conv). All work on ``(B, T, C)`` tensors and keep ESPnet's
parameter names. Kernel-size-1 convolutions run as matrix products on the channel-last
input (the same weights, no transposes).
"""

import torch
import torch.nn.functional as F
from torch import nn

from espnet2_vits_ext.acceleration import packed_feed_forward
from espnet2_vits_ext.acceleration.packed_conv import PackedPlanCache

# ESPnet's ``get_activation`` names. ESPnet's Swish is x * sigmoid(x), i.e. SiLU.
_ACTIVATIONS = {
    "hardtanh": nn.Hardtanh,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "selu": nn.SELU,
    "swish": nn.SiLU,
}


def get_activation(name: str) -> nn.Module:
    """Activation module by ESPnet's name (hardtanh, tanh, relu, selu, swish)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"unknown activation type: {name} (choose from {sorted(_ACTIVATIONS)})") from None


def _conv_time(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """Apply a Conv1d over time to a channel-last ``(B, T, C)`` tensor."""
    if conv.kernel_size[0] == 1 and conv.groups == 1:
        return F.linear(x, conv.weight.squeeze(-1), conv.bias)
    return conv(x.transpose(1, 2)).transpose(1, 2)


class PositionwiseFeedForward(nn.Module):
    """``linear``: Linear -> activation -> dropout -> Linear."""

    def __init__(self, idim: int, hidden_units: int, dropout_rate: float, activation: nn.Module):
        super().__init__()
        self.w_1 = nn.Linear(idim, hidden_units)
        self.w_2 = nn.Linear(hidden_units, idim)
        self.dropout = nn.Dropout(dropout_rate)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(self.activation(self.w_1(x))))


class MultiLayeredConv1d(PackedPlanCache, nn.Module):
    """``conv1d``: Conv1d -> ReLU -> dropout -> Conv1d ("same" padding), as in FastSpeech.

    The activation is always ReLU here, whatever ``activation_type`` says (as in ESPnet).
    Synthesis on CPU runs on prepacked weights
    (:mod:`espnet2_vits_ext.acceleration.packed_feed_forward`).
    """

    def __init__(self, in_chans: int, hidden_chans: int, kernel_size: int, dropout_rate: float):
        super().__init__()
        padding = (kernel_size - 1) // 2
        self.w_1 = nn.Conv1d(in_chans, hidden_chans, kernel_size, padding=padding)
        self.w_2 = nn.Conv1d(hidden_chans, in_chans, kernel_size, padding=padding)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if packed_feed_forward.applies(self.w_1, x):
            return packed_feed_forward.forward(self, self.w_1, self.w_2, x.contiguous())
        if self.w_1.kernel_size[0] == 1 and not (self.training and self.dropout.p > 0):
            return _conv_time(self.w_2, torch.relu(_conv_time(self.w_1, x)))
        # Stay channel-first between the two convolutions. With dropout on, this is also
        # the path for kernel size 1: dropout's mask follows the memory layout, which must
        # be ESPnet's (channel-first) for a seeded training step to draw the same mask.
        h = self.dropout(torch.relu(self.w_1(x.transpose(1, 2))))
        return self.w_2(h).transpose(1, 2)


class Conv1dLinear(nn.Module):
    """``conv1d-linear``: Conv1d -> ReLU -> dropout -> Linear."""

    def __init__(self, in_chans: int, hidden_chans: int, kernel_size: int, dropout_rate: float):
        super().__init__()
        self.w_1 = nn.Conv1d(in_chans, hidden_chans, kernel_size, padding=(kernel_size - 1) // 2)
        self.w_2 = nn.Linear(hidden_chans, in_chans)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(torch.relu(_conv_time(self.w_1, x))))


def build_positionwise(
    layer_type: str,
    attention_dim: int,
    linear_units: int,
    kernel_size: int,
    dropout_rate: float,
    activation: nn.Module,
) -> nn.Module:
    """Feed-forward module by ESPnet's ``positionwise_layer_type`` name."""
    if layer_type == "linear":
        return PositionwiseFeedForward(attention_dim, linear_units, dropout_rate, activation)
    if layer_type == "conv1d":
        return MultiLayeredConv1d(attention_dim, linear_units, kernel_size, dropout_rate)
    if layer_type == "conv1d-linear":
        return Conv1dLinear(attention_dim, linear_units, kernel_size, dropout_rate)
    raise ValueError(f"unknown positionwise layer type: {layer_type} (linear, conv1d or conv1d-linear)")


class ConvolutionModule(nn.Module):
    """Conformer convolution module: pointwise conv + GLU, depthwise conv, BatchNorm,
    activation, pointwise conv. Padded frames are not masked (as in ESPnet).

    Args:
        channels (int): Channels in and out.
        kernel_size (int): Depthwise kernel size (odd).
        activation (nn.Module): Activation after the BatchNorm.
        bias (bool): Whether the convolutions have biases.

    """

    def __init__(self, channels: int, kernel_size: int, activation: nn.Module, bias: bool = True):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"conformer kernel size must be odd, got {kernel_size}")
        self.pointwise_conv1 = nn.Conv1d(channels, 2 * channels, 1, bias=bias)
        self.depthwise_conv = nn.Conv1d(
            channels, channels, kernel_size, padding=(kernel_size - 1) // 2, groups=channels, bias=bias
        )
        self.norm = nn.BatchNorm1d(channels)
        self.pointwise_conv2 = nn.Conv1d(channels, channels, 1, bias=bias)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, C)`` -> ``(B, T, C)``."""
        x = F.glu(_conv_time(self.pointwise_conv1, x), dim=-1)
        x = self.activation(self.norm(self.depthwise_conv(x.transpose(1, 2))))
        if self.training:
            # The block's dropout draws its mask in memory order: hand back ESPnet's
            # channel-first layout, so that a seeded training step draws the same mask.
            return self.pointwise_conv2(x).transpose(1, 2)
        return _conv_time(self.pointwise_conv2, x.transpose(1, 2))
