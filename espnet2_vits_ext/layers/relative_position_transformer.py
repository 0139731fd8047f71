"""The original VITS text encoder's Transformer: windowed relative positions, post-norm.

Kim, Kong & Son (2021) encode phonemes with a Transformer whose self-attention adds
learned relative-position embeddings (Shaw et al., 2018) for offsets within a window
(4 tokens either side) to the keys and to the values; positions further apart get no
positional term. Each block is post-norm::

    x = LayerNorm(x + Attention(x))
    x = LayerNorm(x + FeedForward(x))       # conv k -> ReLU -> conv k, masked

Piper's voices are trained with this encoder (kernel 3 in the feed-forward). ESPnet's
VITS uses Conformer blocks instead (:mod:`espnet2_vits_ext.layers.conformer`);
:class:`~espnet2_vits_ext.vits.text_encoder.TextEncoder` picks one by its
``encoder_type``. Both take and return channel-last tensors (B, T_text, C).
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from espnet2_vits_ext.acceleration import packed_feed_forward
from espnet2_vits_ext.acceleration.packed_conv import PackedPlanCache

# A large negative score rather than -inf: a fully padded row then stays finite (the
# original implementation uses the same value, so padded positions match it too).
MASKED_SCORE = -1e4


def relative_index_tables(length: int, window: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Index tables between absolute key positions and windowed relative offsets.

    Args:
        length: Tokens T.
        window: Offsets -window..window have embeddings (2 * window + 1 of them).
        device: Where to build the tables.

    Returns:
        Tensor: (T, T) long; entry (i, j) is the offset slot ``j - i + window`` of the
            pair, or ``2 * window + 1`` (a zero column) when ``|j - i| > window``.
        Tensor: (T, 2 * window + 1) long; entry (i, r) is the key position
            ``i + r - window``, or ``T`` (a zero column) when outside the sequence.
    """
    positions = torch.arange(length, device=device)
    offsets = positions[None, :] - positions[:, None]  # (T, T): j - i
    outside = offsets.abs() > window
    to_slot = torch.where(outside, torch.full_like(offsets, 2 * window + 1), offsets + window)
    slots = torch.arange(-window, window + 1, device=device)
    keys = positions[:, None] + slots[None, :]  # (T, 2w+1)
    to_key = torch.where((keys < 0) | (keys >= length), torch.full_like(keys, length), keys)
    return to_slot, to_key


class RelativePositionSelfAttention(nn.Module):
    """Multi-head self-attention with windowed relative key and value embeddings.

    The embeddings ``emb_rel_k`` / ``emb_rel_v`` have shape (1, 2 * window + 1, head_dim):
    one table shared by all heads.

    Args:
        channels: Model width C.
        heads: Attention heads (C must divide by it).
        window: Relative offsets with an embedding on each side.
        dropout_rate: Dropout on the attention probabilities.
    """

    def __init__(self, channels: int, heads: int, window: int = 4, dropout_rate: float = 0.0):
        super().__init__()
        if channels % heads != 0:
            raise ValueError(f"attention width {channels} does not divide into {heads} heads")
        self.heads = heads
        self.head_dim = channels // heads
        self.window = window
        self.query = nn.Linear(channels, channels)
        self.key = nn.Linear(channels, channels)
        self.value = nn.Linear(channels, channels)
        self.output = nn.Linear(channels, channels)
        scale = self.head_dim**-0.5
        self.emb_rel_k = nn.Parameter(torch.randn(1, 2 * window + 1, self.head_dim) * scale)
        self.emb_rel_v = nn.Parameter(torch.randn(1, 2 * window + 1, self.head_dim) * scale)
        self.dropout = nn.Dropout(dropout_rate)
        nn.init.xavier_uniform_(self.query.weight)
        nn.init.xavier_uniform_(self.key.weight)
        nn.init.xavier_uniform_(self.value.weight)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.heads, self.head_dim).transpose(1, 2)  # (B, H, T, D)

    def forward(self, x: torch.Tensor, masked_pairs: Optional[torch.Tensor]) -> torch.Tensor:
        """Attend over the sequence.

        Args:
            x: Input (B, T, C).
            masked_pairs: (B, 1, T, T) bool, True where query or key is padding; None when
                nothing is.

        Returns:
            Tensor: (B, T, C).
        """
        batch, length, channels = x.shape
        query = self._split_heads(self.query(x)) / math.sqrt(self.head_dim)
        key = self._split_heads(self.key(x))
        value = self._split_heads(self.value(x))

        scores = torch.matmul(query, key.transpose(-2, -1))  # (B, H, T, T)
        # (B, H, T, D) @ (D, 2w+1) -> (B, H, T, 2w+1): query i against offsets -w..w.
        relative_scores = torch.matmul(query, self.emb_rel_k[0].transpose(0, 1))
        scores = self._add_offset_terms(scores, relative_scores)
        if masked_pairs is not None:
            scores = scores.masked_fill(masked_pairs, MASKED_SCORE)
        probabilities = self.dropout(torch.softmax(scores, dim=-1))

        attended = torch.matmul(probabilities, value)  # (B, H, T, D)
        attended = attended + torch.matmul(self._offset_probabilities(probabilities), self.emb_rel_v[0])
        attended = attended.transpose(1, 2).reshape(batch, length, channels)
        return self.output(attended)

    def _add_offset_terms(self, scores: torch.Tensor, relative_scores: torch.Tensor) -> torch.Tensor:
        """``scores`` (B, H, T, T) plus ``relative_scores`` (B, H, T, 2w+1) at the key of each
        offset: entry (i, r) goes to key ``i + r - w``; offsets past the sequence are dropped."""
        length, window = scores.size(-1), self.window
        if torch.jit.is_tracing():  # ONNX export: gathers (the graph has no diagonal views)
            to_slot, _ = relative_index_tables(length, window, scores.device)
            relative_scores = F.pad(relative_scores, (0, 1))  # the zero slot for far pairs
            return scores + relative_scores.gather(-1, to_slot.expand(*scores.shape))
        # In place on the 2w+1 diagonals: no (T, T) temporaries.
        for slot, offset, queries in self._diagonals(length):
            scores.diagonal(offset, -2, -1).add_(relative_scores[..., queries, slot])
        return scores

    def _offset_probabilities(self, probabilities: torch.Tensor) -> torch.Tensor:
        """(B, H, T, 2w+1): the probability of query i at key ``i + r - w`` (0 outside the
        sequence), from ``probabilities`` (B, H, T, T)."""
        length, window = probabilities.size(-1), self.window
        if torch.jit.is_tracing():
            _, to_key = relative_index_tables(length, window, probabilities.device)
            padded = F.pad(probabilities, (0, 1))  # the zero column for keys outside
            return padded.gather(-1, to_key.expand(*probabilities.shape[:-1], 2 * window + 1))
        slots = probabilities.new_zeros(*probabilities.shape[:-1], 2 * window + 1)
        for slot, offset, queries in self._diagonals(length):
            slots[..., queries, slot] = probabilities.diagonal(offset, -2, -1)
        return slots

    def _diagonals(self, length: int):
        """``(slot, offset, queries)`` of each offset -w..w that fits in ``length`` tokens:
        its slot in the embedding table, and the queries whose key ``i + offset`` exists (the
        order of the elements of the (T, T) matrix's diagonal at that offset)."""
        for slot, offset in enumerate(range(-self.window, self.window + 1)):
            if abs(offset) < length:
                yield slot, offset, slice(max(0, -offset), length - max(0, offset))


class ConvFeedForward(PackedPlanCache, nn.Module):
    """Two same-padded convolutions over time with a ReLU between, masked before each.

    Synthesis on CPU runs on prepacked weights
    (:mod:`espnet2_vits_ext.acceleration.packed_feed_forward`).

    Args:
        channels: Model width C.
        hidden_channels: Width between the convolutions.
        kernel_size: Kernel of both convolutions (3 in Piper, 1 makes it position-wise).
        dropout_rate: Dropout after the ReLU.
    """

    def __init__(self, channels: int, hidden_channels: int, kernel_size: int, dropout_rate: float):
        super().__init__()
        # An even kernel pads one more on the right, as the original does.
        self.padding = ((kernel_size - 1) // 2, kernel_size // 2)
        self.conv_1 = nn.Conv1d(channels, hidden_channels, kernel_size)
        self.conv_2 = nn.Conv1d(hidden_channels, channels, kernel_size)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Apply the block.

        Args:
            x: Input (B, T, C).
            mask: (B, 1, T), 1 on tokens.

        Returns:
            Tensor: (B, T, C), zero on padding.
        """
        if packed_feed_forward.applies(self.conv_1, x):
            return packed_feed_forward.forward(self, self.conv_1, self.conv_2, x.contiguous(), mask)
        x = x.transpose(1, 2)
        h = self.dropout(torch.relu(self._same_conv(self.conv_1, x * mask)))
        return (self._same_conv(self.conv_2, h * mask) * mask).transpose(1, 2)

    def _same_conv(self, conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        left, right = self.padding
        if left == right:  # odd kernel: the conv pads itself, without a padded copy
            return F.conv1d(x, conv.weight, conv.bias, padding=left)
        return conv(F.pad(x, self.padding))


class RelativePositionTransformer(nn.Module):
    """Stack of post-norm blocks: relative-position self-attention, then conv feed-forward.

    Args:
        attention_dim: Model width C.
        attention_heads: Attention heads.
        linear_units: Feed-forward hidden width.
        num_blocks: Blocks.
        kernel_size: Feed-forward kernel.
        dropout_rate: Dropout after each sub-block, on attention probabilities and in the
            feed-forward (one rate, as in the original).
        window: Relative-position window on each side.
    """

    def __init__(
        self,
        attention_dim: int = 192,
        attention_heads: int = 2,
        linear_units: int = 768,
        num_blocks: int = 6,
        kernel_size: int = 3,
        dropout_rate: float = 0.1,
        window: int = 4,
    ):
        super().__init__()
        self.attention_layers = nn.ModuleList()
        self.attention_norms = nn.ModuleList()
        self.feed_forward_layers = nn.ModuleList()
        self.feed_forward_norms = nn.ModuleList()
        for _ in range(num_blocks):
            self.attention_layers.append(
                RelativePositionSelfAttention(attention_dim, attention_heads, window, dropout_rate)
            )
            self.attention_norms.append(nn.LayerNorm(attention_dim))
            self.feed_forward_layers.append(
                ConvFeedForward(attention_dim, linear_units, kernel_size, dropout_rate)
            )
            self.feed_forward_norms.append(nn.LayerNorm(attention_dim))
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encode a padded batch.

        Args:
            x: Embedded tokens (B, T_text, C).
            mask: (B, 1, T_text), 1 on tokens.

        Returns:
            Tensor: (B, T_text, C), zero on padding.
        """
        time_mask = mask.transpose(1, 2)  # (B, T, 1)
        masked_pairs = None  # a single sentence (synthesis) has no padding to mask
        if torch.jit.is_tracing() or x.size(0) > 1 or not bool(mask.all()):  # (an exported graph masks)
            masked_pairs = (mask.unsqueeze(2) * mask.unsqueeze(-1)) == 0  # (B, 1, T, T)
        x = x * time_mask
        blocks = zip(self.attention_layers, self.attention_norms, self.feed_forward_layers, self.feed_forward_norms)
        for attention, attention_norm, feed_forward, feed_forward_norm in blocks:
            x = attention_norm(x + self.dropout(attention(x, masked_pairs)))
            y = feed_forward(x, mask)
            x = feed_forward_norm(x + self.dropout(y))
        return x * time_mask
