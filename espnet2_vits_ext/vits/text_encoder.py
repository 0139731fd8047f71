"""Text encoder of VITS.

This is the "Text Encoder" box of the VITS paper (Figure 1) together with the
"Projection" above it: phoneme embeddings go through a stack of Conformer blocks (the
paper uses a relative-position Transformer; ESPnet's VITS, whose configuration keys and
weights we keep, uses Conformer blocks with relative-position self-attention) and a 1x1
projection to the mean ``m_p`` and log-scale ``logs_p`` of the prior ``p(z | c)`` that the
monotonic alignment search matches to the flow's output.

``encoder_type="vits_transformer"`` takes the paper's encoder instead (the original VITS
and Piper's: :mod:`espnet2_vits_ext.layers.relative_position_transformer`); it uses
``attention_dim``, ``attention_heads``, ``linear_units``, ``blocks``,
``positionwise_conv_kernel_size`` and ``dropout_rate``, and ignores the Conformer's keys.
"""

import math
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from espnet2_vits_ext.layers.conformer import Conformer
from espnet2_vits_ext.layers.masking import non_pad_mask
from espnet2_vits_ext.layers.relative_position_transformer import RelativePositionTransformer

ENCODER_TYPES = ("conformer", "vits_transformer")


class TextEncoder(nn.Module):
    """Token embedding, a Conformer, and a 1x1 projection to the prior's mean and log-std
    (constructor arguments and weights as ESPnet's).

    Args:
        vocabs (int): How many token ids there are.
        attention_dim (int): Width of the embedding and of every Conformer block (H).
        attention_heads (int): Heads of each self-attention.
        linear_units (int): Inner width of each feed-forward module.
        blocks (int): How many Conformer blocks.
        positionwise_layer_type (str): Feed-forward kind: linear, conv1d or conv1d-linear.
        positionwise_conv_kernel_size (int): Its kernel size for the conv kinds.
        positional_encoding_layer_type (str): How positions enter: abs_pos,
            scaled_abs_pos, rel_pos or legacy_rel_pos.
        self_attention_layer_type (str): The matching attention: selfattn, rel_selfattn
            or legacy_rel_selfattn.
        activation_type (str): Nonlinearity: swish, relu, tanh, hardtanh or selu.
        normalize_before (bool): LayerNorm at the start of each sub-layer (else at its end).
        use_macaron_style (bool): Two half-step feed-forward modules around attention.
        use_conformer_conv (bool): Add the Conformer's convolution module to each block.
        conformer_kernel_size (int): Its depth-wise kernel size.
        dropout_rate (float): Dropout after sub-layers.
        positional_dropout_rate (float): Dropout on the position-encoded input.
        attention_dropout_rate (float): Dropout on attention weights.
        encoder_type (str): ``"conformer"`` (ESPnet's) or ``"vits_transformer"`` (the
            paper's and Piper's, see the module docstring).

    """

    def __init__(
        self,
        vocabs: int,
        attention_dim: int = 192,
        attention_heads: int = 2,
        linear_units: int = 768,
        blocks: int = 6,
        positionwise_layer_type: str = "conv1d",
        positionwise_conv_kernel_size: int = 3,
        positional_encoding_layer_type: str = "rel_pos",
        self_attention_layer_type: str = "rel_selfattn",
        activation_type: str = "swish",
        normalize_before: bool = True,
        use_macaron_style: bool = False,
        use_conformer_conv: bool = False,
        conformer_kernel_size: int = 7,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.0,
        attention_dropout_rate: float = 0.0,
        encoder_type: str = "conformer",
    ):
        super().__init__()
        if encoder_type not in ENCODER_TYPES:
            raise ValueError(f"text encoder type must be one of {ENCODER_TYPES}, got {encoder_type!r}")
        self.attention_dim = attention_dim
        self.emb = nn.Embedding(vocabs, attention_dim)
        nn.init.normal_(self.emb.weight, 0.0, attention_dim**-0.5)
        if encoder_type == "vits_transformer":
            self.encoder = RelativePositionTransformer(
                attention_dim=attention_dim,
                attention_heads=attention_heads,
                linear_units=linear_units,
                num_blocks=blocks,
                kernel_size=positionwise_conv_kernel_size,
                dropout_rate=dropout_rate,
            )
        else:
            self.encoder = Conformer(
                attention_dim=attention_dim,
                attention_heads=attention_heads,
                linear_units=linear_units,
                num_blocks=blocks,
                dropout_rate=dropout_rate,
                positional_dropout_rate=positional_dropout_rate,
                attention_dropout_rate=attention_dropout_rate,
                normalize_before=normalize_before,
                positionwise_layer_type=positionwise_layer_type,
                positionwise_conv_kernel_size=positionwise_conv_kernel_size,
                macaron_style=use_macaron_style,
                pos_enc_layer_type=positional_encoding_layer_type,
                selfattention_layer_type=self_attention_layer_type,
                activation_type=activation_type,
                use_cnn_module=use_conformer_conv,
                cnn_module_kernel=conformer_kernel_size,
            )
        self.proj = nn.Conv1d(attention_dim, attention_dim * 2, 1)

    def forward(
        self, x: torch.Tensor, x_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode a padded batch of token ids.

        Args:
            x (Tensor): Token ids (B, T_text).
            x_lengths (Tensor): Tokens per utterance (B,).

        Returns:
            Tensor: Hidden features the duration predictor reads (B, attention_dim, T_text).
            Tensor: Prior means per token (B, attention_dim, T_text).
            Tensor: Prior log standard deviations per token (B, attention_dim, T_text).
            Tensor: 1 on real tokens, 0 on padding (B, 1, T_text).

        """
        h = self.emb(x) * math.sqrt(self.attention_dim)
        x_mask = non_pad_mask(x_lengths, x.size(1)).unsqueeze(1).to(h.dtype)
        h = self.encoder(h, x_mask)  # (B, T_text, attention_dim)
        # The 1x1 projection as a matrix product on the channel-last output.
        stats = F.linear(h, self.proj.weight.squeeze(-1), self.proj.bias).transpose(1, 2) * x_mask
        m, logs = stats.split(stats.size(1) // 2, dim=1)
        return h.transpose(1, 2), m, logs, x_mask
