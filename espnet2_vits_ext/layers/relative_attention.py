"""Positional encodings and multi-head self-attention of the text encoder's Conformer.

Part of the "Text Encoder" box of the VITS paper (Figure 1): the paper's text encoder is
a Transformer encoder with relative positional representations; ESPnet's VITS (and so
ours) uses Conformer blocks whose self-attention takes relative positions the
Transformer-XL way (Dai et al. 2019, Sec. 3.3): content term ``(q + u) k^T`` plus
position term ``(q + v) p^T``. Four positional encodings are supported with ESPnet's
names and numerics: ``abs_pos`` and ``scaled_abs_pos`` (added to the input; plain
attention ``selfattn``), ``rel_pos`` (with ``rel_selfattn``) and ``legacy_rel_pos``
(with ``legacy_rel_selfattn``, the pre-2021 ESPnet variant kept for old checkpoints).

The relative shift that aligns the ``2T - 1`` relative positions with the ``T`` keys is
a zero-copy strided view of the position scores (ESPnet pads, concatenates and reshapes);
scores are accumulated in place. None of these modules keeps its positional table in the
``state_dict`` (ESPnet does not either): the tables are non-persistent buffers.
"""

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

# ESPnet builds every sinusoid table for this many positions up front; the legacy
# relative encoding's values depend on it, so it is part of the numerics, not a detail.
MAX_LEN = 5000


def _inverse_frequencies(d_model: int) -> torch.Tensor:
    return torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32)
        * -(math.log(10000.0) / d_model)
    )


def _sinusoids(positions: torch.Tensor, d_model: int) -> torch.Tensor:
    """Table ``(len(positions), d_model)``: sin on even, cos on odd channels."""
    angles = positions.unsqueeze(1) * _inverse_frequencies(d_model)
    table = torch.zeros(positions.numel(), d_model)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles)
    return table


class _SinusoidTable(nn.Module):
    """Holds a ``(1, L, d_model)`` sinusoid table as a non-persistent buffer, grown on demand."""

    def __init__(self, d_model: int, dropout_rate: float):
        super().__init__()
        self.d_model = d_model
        self.xscale = math.sqrt(d_model)
        self.dropout = nn.Dropout(p=dropout_rate)

    def _table(self, length: int) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def _init_table(self, max_len: int) -> None:
        self.register_buffer("pe", self._table(max_len), persistent=False)

    def _table_for(self, x: torch.Tensor, needed: int) -> torch.Tensor:
        """The table (in x's dtype and device), rebuilt for ``x.size(1)`` if it is short."""
        if self.pe.size(1) < needed:
            self.pe = self._table(x.size(1)).to(self.pe.device)
        return self.pe.to(dtype=x.dtype, device=x.device)


class PositionalEncoding(_SinusoidTable):
    """Absolute sinusoidal encoding: ``abs_pos`` (``x * sqrt(d) + pe``) or
    ``scaled_abs_pos`` (``x + alpha * pe`` with a learned scalar ``alpha``)."""

    def __init__(self, d_model: int, dropout_rate: float, max_len: int = MAX_LEN, scaled: bool = False):
        super().__init__(d_model, dropout_rate)
        self.scaled = scaled
        if scaled:
            self.alpha = nn.Parameter(torch.tensor(1.0))
        self._init_table(max_len)

    def _table(self, length: int) -> torch.Tensor:
        return _sinusoids(torch.arange(0, length, dtype=torch.float32), self.d_model).unsqueeze(0)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, None]:
        """Add the encoding to ``x`` ``(B, T, d)``; there is no separate position input."""
        pe = self._table_for(x, x.size(1))[:, : x.size(1)]
        if self.scaled:
            x = x + self.alpha * pe
        else:
            x = x * self.xscale + pe
        return self.dropout(x), None


class RelPositionalEncoding(_SinusoidTable):
    """Relative sinusoidal encoding: returns ``(x * sqrt(d), pos_emb)``.

    ``rel_pos``: ``pos_emb`` is ``(1, 2T - 1, d)`` for relative positions ``T-1 .. -(T-1)``.
    ``legacy_rel_pos`` (``legacy=True``): ``pos_emb`` is ``(1, T, d)``, the first ``T`` rows of
    a table of positions counted down from ``max_len - 1`` (ESPnet's old encoding).
    """

    def __init__(self, d_model: int, dropout_rate: float, max_len: int = MAX_LEN, legacy: bool = False):
        super().__init__(d_model, dropout_rate)
        self.legacy = legacy
        self._init_table(max_len)

    def _table(self, length: int) -> torch.Tensor:
        if self.legacy:
            positions = torch.arange(length - 1, -1, -1.0, dtype=torch.float32)
            return _sinusoids(positions, self.d_model).unsqueeze(0)
        # Positive offsets in descending order, then the negative ones (-1 .. -(L-1)),
        # each computed exactly as ESPnet does (sin(-p * w) rather than -sin(p * w)).
        positions = torch.arange(0, length, dtype=torch.float32)
        positive = _sinusoids(positions, self.d_model).flip(0)
        negative = _sinusoids(-1 * positions, self.d_model)[1:]
        return torch.cat([positive, negative], dim=0).unsqueeze(0)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Scale ``x`` ``(B, T, d)`` and return the matching positional embeddings."""
        length = x.size(1)
        if self.legacy:
            pos_emb = self._table_for(x, length)[:, :length]
        else:
            pe = self._table_for(x, 2 * length - 1)
            center = pe.size(1) // 2  # row of relative position 0
            pos_emb = pe[:, center - length + 1 : center + length]
        return self.dropout(x * self.xscale), self.dropout(pos_emb)


def build_positional_encoding(layer_type: str, d_model: int, dropout_rate: float) -> nn.Module:
    """Positional encoding by ESPnet's ``pos_enc_layer_type`` name."""
    if layer_type == "abs_pos":
        return PositionalEncoding(d_model, dropout_rate)
    if layer_type == "scaled_abs_pos":
        return PositionalEncoding(d_model, dropout_rate, scaled=True)
    if layer_type == "rel_pos":
        return RelPositionalEncoding(d_model, dropout_rate)
    if layer_type == "legacy_rel_pos":
        return RelPositionalEncoding(d_model, dropout_rate, legacy=True)
    raise ValueError(f"unknown positional encoding layer type: {layer_type}")


def rel_shift(scores: torch.Tensor) -> torch.Tensor:
    """Align position scores ``(B, H, T, 2T-1)`` to keys: ``out[..., i, j] = scores[..., i, T-1-i+j]``.

    Column ``k`` of the input belongs to relative position ``T-1-k``; query ``i`` and key
    ``j`` are ``i - j`` apart. The result is a strided view (no copy) of the input.
    """
    scores = scores.contiguous()
    batch, heads, length, _ = scores.shape
    s_batch, s_head, s_row, _ = scores.stride()
    return scores.as_strided(
        (batch, heads, length, length),
        (s_batch, s_head, s_row - 1, 1),
        scores.storage_offset() + length - 1,
    )


def legacy_rel_shift(scores: torch.Tensor) -> torch.Tensor:
    """ESPnet's old shift of square position scores ``(B, H, T, T)``, reproduced as is.

    Entries above the first superdiagonal come from the next query's row (the known quirk
    of the legacy encoding); the legacy attention is kept only for old checkpoints.
    """
    batch, heads, rows, cols = scores.shape
    padded = F.pad(scores, (1, 0)).view(batch, heads, cols + 1, rows)
    return padded[:, :, 1:].view(batch, heads, rows, cols)


class MultiHeadedAttention(nn.Module):
    """Multi-head scaled dot-product self-attention (``selfattn``).

    Args:
        n_head (int): Number of heads.
        n_feat (int): Number of features (divisible by ``n_head``).
        dropout_rate (float): Dropout rate on the attention weights.

    """

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float):
        super().__init__()
        if n_feat % n_head != 0:
            raise ValueError(f"attention dim {n_feat} is not divisible by {n_head} heads")
        self.d_k = n_feat // n_head
        self.h = n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k = nn.Linear(n_feat, n_feat)
        self.linear_v = nn.Linear(n_feat, n_feat)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.dropout = nn.Dropout(p=dropout_rate)

    def _scores(self, q: torch.Tensor, k: torch.Tensor, pos_emb: Optional[torch.Tensor]) -> torch.Tensor:
        """Unnormalised scores ``(B, H, T, T)`` from q ``(B, T, H, d_k)``, k ``(B, H, T, d_k)``."""
        return torch.matmul(q.transpose(1, 2), k.transpose(-2, -1)).div_(math.sqrt(self.d_k))

    def forward(
        self,
        x: torch.Tensor,
        pos_emb: Optional[torch.Tensor],
        key_padding: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """Attend ``x`` ``(B, T, n_feat)`` to itself.

        Args:
            x (Tensor): Input ``(B, T, n_feat)``.
            pos_emb (Optional[Tensor]): Positional embeddings (relative attention only).
            key_padding (Optional[Tensor]): Bool ``(B, 1, 1, T)``, True on padded keys.

        Returns:
            Tensor: Output ``(B, T, n_feat)``.

        """
        batch, length, _ = x.shape
        q = self.linear_q(x).view(batch, length, self.h, self.d_k)
        k = self.linear_k(x).view(batch, length, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(batch, length, self.h, self.d_k).transpose(1, 2)
        scores = self._scores(q, k, pos_emb)
        if key_padding is not None:
            # A finite minimum, as ESPnet: exp() of it underflows to exactly 0.
            scores = scores.masked_fill_(key_padding, torch.finfo(scores.dtype).min)
        weights = self.dropout(torch.softmax(scores, dim=-1))
        out = torch.matmul(weights, v).transpose(1, 2).reshape(batch, length, self.h * self.d_k)
        return self.linear_out(out)


class RelPositionMultiHeadedAttention(MultiHeadedAttention):
    """Self-attention with Transformer-XL relative positions (``rel_selfattn``, or
    ``legacy_rel_selfattn`` with ``legacy=True``).

    Args:
        n_head (int): Number of heads.
        n_feat (int): Number of features.
        dropout_rate (float): Dropout rate on the attention weights.
        legacy (bool): Use ESPnet's old square position scores and shift.

    """

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float, legacy: bool = False):
        super().__init__(n_head, n_feat, dropout_rate)
        self.legacy = legacy
        self.linear_pos = nn.Linear(n_feat, n_feat, bias=False)
        # Biases u and v of Transformer-XL (Sec. 3.3): content and position terms.
        self.pos_bias_u = nn.Parameter(torch.empty(self.h, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(self.h, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    def _scores(self, q: torch.Tensor, k: torch.Tensor, pos_emb: Optional[torch.Tensor]) -> torch.Tensor:
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h, self.d_k).transpose(1, 2)
        content = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
        position = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1))
        position = legacy_rel_shift(position) if self.legacy else rel_shift(position)
        return content.add_(position).div_(math.sqrt(self.d_k))


def build_self_attention(
    layer_type: str, n_head: int, n_feat: int, dropout_rate: float
) -> MultiHeadedAttention:
    """Self-attention by ESPnet's ``selfattention_layer_type`` name."""
    if layer_type == "selfattn":
        return MultiHeadedAttention(n_head, n_feat, dropout_rate)
    if layer_type == "rel_selfattn":
        return RelPositionMultiHeadedAttention(n_head, n_feat, dropout_rate)
    if layer_type == "legacy_rel_selfattn":
        return RelPositionMultiHeadedAttention(n_head, n_feat, dropout_rate, legacy=True)
    raise ValueError(f"unknown self-attention layer type: {layer_type}")
