"""Conformer block and stack: the body of the text encoder.

This is the "Text Encoder" box of the VITS paper (Figure 1), less its embedding and
projection: the paper stacks Transformer encoder layers with relative positional
representations; ESPnet's VITS uses Conformer blocks instead (Gulati et al. 2020), and so
do we, with ESPnet's module names so that its weights load into ours. A block is
``[macaron FFN (x 1/2)] -> self-attention -> [convolution module] -> FFN (x 1/2 if
macaron) [-> final LayerNorm if convolution]``, each sub-layer residual with
pre-LayerNorm (``normalize_before=True``) or post-LayerNorm. The key-padding mask is built
once per forward, not once per block.
"""

from typing import Optional

import torch
from torch import nn

from espnet2_vits_ext.layers.feed_forward import ConvolutionModule, build_positionwise, get_activation
from espnet2_vits_ext.layers.relative_attention import build_positional_encoding, build_self_attention

# Which attention each positional encoding works with (ESPnet asserts the same pairs).
_ATTENTION_FOR_POSITIONS = {
    "abs_pos": ("selfattn",),
    "scaled_abs_pos": ("selfattn",),
    "rel_pos": ("rel_selfattn",),
    "legacy_rel_pos": ("legacy_rel_selfattn",),
}


def _layer_norm(size: int) -> nn.LayerNorm:
    return nn.LayerNorm(size, eps=1e-12)  # ESPnet's LayerNorm epsilon


class ConformerBlock(nn.Module):
    """One Conformer block (ESPnet's ``EncoderLayer`` without caching or stochastic depth).

    Args:
        size (int): Model dimension.
        self_attn (nn.Module): Self-attention module.
        feed_forward (nn.Module): Feed-forward module.
        feed_forward_macaron (Optional[nn.Module]): Macaron feed-forward module, or None.
        conv_module (Optional[nn.Module]): Convolution module, or None.
        dropout_rate (float): Dropout rate on each sub-layer's output.
        normalize_before (bool): Pre-LayerNorm (True) or post-LayerNorm (False).

    """

    def __init__(
        self,
        size: int,
        self_attn: nn.Module,
        feed_forward: nn.Module,
        feed_forward_macaron: Optional[nn.Module],
        conv_module: Optional[nn.Module],
        dropout_rate: float,
        normalize_before: bool = True,
    ):
        super().__init__()
        # Registration order is ESPnet's: it fixes the state_dict and parameter order.
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.feed_forward_macaron = feed_forward_macaron
        self.conv_module = conv_module
        self.norm_ff = _layer_norm(size)
        self.norm_mha = _layer_norm(size)
        if feed_forward_macaron is not None:
            self.norm_ff_macaron = _layer_norm(size)
        if conv_module is not None:
            self.norm_conv = _layer_norm(size)
            self.norm_final = _layer_norm(size)
        self.ff_scale = 0.5 if feed_forward_macaron is not None else 1.0
        self.dropout = nn.Dropout(dropout_rate)
        self.normalize_before = normalize_before

    def _residual(self, x: torch.Tensor, norm: nn.Module, fn, scale: float = 1.0) -> torch.Tensor:
        y = self.dropout(fn(norm(x) if self.normalize_before else x))
        x = x + y if scale == 1.0 else torch.add(x, y, alpha=scale)
        return x if self.normalize_before else norm(x)

    def forward(
        self,
        x: torch.Tensor,
        pos_emb: Optional[torch.Tensor],
        key_padding: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """``(B, T, size)`` -> ``(B, T, size)``; ``key_padding`` is bool ``(B, 1, 1, T)``."""
        if self.feed_forward_macaron is not None:
            x = self._residual(x, self.norm_ff_macaron, self.feed_forward_macaron, self.ff_scale)
        x = self._residual(x, self.norm_mha, lambda h: self.self_attn(h, pos_emb, key_padding))
        if self.conv_module is not None:
            x = self._residual(x, self.norm_conv, self.conv_module)
        x = self._residual(x, self.norm_ff, self.feed_forward, self.ff_scale)
        if self.conv_module is not None:
            x = self.norm_final(x)
        return x


class Conformer(nn.Module):
    """Stack of Conformer blocks on already-embedded input (ESPnet's conformer ``Encoder``
    with ``input_layer=None``), keeping its ``embed.0`` / ``encoders.N`` / ``after_norm`` keys.

    Args: as ESPnet's ``Encoder`` (the subset that VITS's text encoder passes).
    """

    def __init__(
        self,
        attention_dim: int = 256,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        normalize_before: bool = True,
        positionwise_layer_type: str = "linear",
        positionwise_conv_kernel_size: int = 1,
        macaron_style: bool = False,
        pos_enc_layer_type: str = "abs_pos",
        selfattention_layer_type: str = "selfattn",
        activation_type: str = "swish",
        use_cnn_module: bool = False,
        cnn_module_kernel: int = 31,
    ):
        super().__init__()
        allowed = _ATTENTION_FOR_POSITIONS.get(pos_enc_layer_type)
        if allowed is None:
            raise ValueError(f"unknown positional encoding layer type: {pos_enc_layer_type}")
        if selfattention_layer_type not in allowed:
            raise ValueError(
                f"positional encoding {pos_enc_layer_type!r} needs self-attention "
                f"{' or '.join(map(repr, allowed))}, got {selfattention_layer_type!r}"
            )
        activation = get_activation(activation_type)

        def positionwise() -> nn.Module:
            return build_positionwise(
                positionwise_layer_type,
                attention_dim,
                linear_units,
                positionwise_conv_kernel_size,
                dropout_rate,
                activation,
            )

        # A one-element list so that the keys read ``embed.0.*`` as in ESPnet.
        self.embed = nn.ModuleList(
            [build_positional_encoding(pos_enc_layer_type, attention_dim, positional_dropout_rate)]
        )
        self.normalize_before = normalize_before
        self.encoders = nn.ModuleList(
            ConformerBlock(
                attention_dim,
                build_self_attention(
                    selfattention_layer_type, attention_heads, attention_dim, attention_dropout_rate
                ),
                positionwise(),
                positionwise() if macaron_style else None,
                ConvolutionModule(attention_dim, cnn_module_kernel, activation) if use_cnn_module else None,
                dropout_rate,
                normalize_before,
            )
            for _ in range(num_blocks)
        )
        if normalize_before:
            self.after_norm = _layer_norm(attention_dim)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Encode ``x`` ``(B, T, attention_dim)``; ``mask`` ``(B, 1, T)`` is nonzero on valid frames."""
        x, pos_emb = self.embed[0](x)
        key_padding = None if mask is None else (mask == 0).unsqueeze(1)  # (B, 1, 1, T)
        # ESPnet's block stack (MultiSequential) draws one layer-drop number per block at
        # every call, even with layer drop off and in eval mode; drawing them too keeps a
        # seeded run's later random numbers (dropout, noise, segments) equal to ESPnet's.
        torch.empty(len(self.encoders)).uniform_()
        for block in self.encoders:
            x = block(x, pos_emb, key_padding)
        if self.normalize_before:
            x = self.after_norm(x)
        return x
