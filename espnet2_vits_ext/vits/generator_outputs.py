"""Named outputs of the VITS generator (:mod:`espnet2_vits_ext.vits.generator`).

Shapes use B (batch), H (hidden channels), T_text (tokens), T_feats (spectrogram frames)
and T_wav (samples).
"""

from typing import NamedTuple, Optional

import torch


class GeneratorOutput(NamedTuple):
    """What one training step of the generator produces (H = hidden channels)."""

    waveform: torch.Tensor  # decoded window (B, 1, segment_size * upsample_factor)
    duration_nll: torch.Tensor  # duration loss per utterance / number of tokens (B,)
    durations: torch.Tensor  # frames per token from the alignment search (B, T_text)
    segment_starts: torch.Tensor  # first frame of each decoded window (B,)
    text_mask: torch.Tensor  # (B, 1, T_text)
    feats_mask: torch.Tensor  # (B, 1, T_feats)
    posterior_latent: torch.Tensor  # z (B, H, T_feats)
    flow_latent: torch.Tensor  # z_p = flow(z) (B, H, T_feats)
    prior_means: torch.Tensor  # text prior means expanded to frames (B, H, T_feats)
    prior_log_stds: torch.Tensor  # ... and log standard deviations (B, H, T_feats)
    posterior_means: torch.Tensor  # (B, H, T_feats)
    posterior_log_stds: torch.Tensor  # (B, H, T_feats)


class InferenceOutput(NamedTuple):
    """What synthesis produces."""

    waveform: torch.Tensor  # (B, T_wav)
    attention: torch.Tensor  # hard alignment path (B, T_feats, T_text)
    durations: torch.Tensor  # frames per token (B, T_text)


class SynthesisLatent(NamedTuple):
    """What the decoder turns into speech at synthesis (Figure 1b, before the decoder)."""

    latent: torch.Tensor  # z, masked and cut to max_len (B, H, T_feats)
    condition: Optional[torch.Tensor]  # global condition g (B, global_channels, 1), or None
    attention: torch.Tensor  # hard alignment path (B, T_feats, T_text)
    durations: torch.Tensor  # frames per token (B, T_text)
