"""The VITS generator: Figure 1 of Kim, Kong & Son (2021) wired together.

Training (Figure 1a): the text encoder gives a prior per token; the posterior encoder
samples ``z`` from the linear spectrogram; the flow maps ``z`` to ``z_p``; monotonic
alignment search assigns frames to tokens; the stochastic duration predictor learns
those durations; the decoder turns a random window of ``z`` into a waveform.
Inference (Figure 1b): sampled durations expand the prior over time, a sample of it goes
back through the flow, and the decoder turns all of ``z`` into the waveform.

Constructor arguments, the meaning of ``forward``/``inference`` arguments and the
``state_dict`` keys are those of ESPnet's ``espnet2.gan_tts.vits.VITSGenerator``; the
outputs are named tuples instead of positional ones.
"""

import math
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from espnet2_vits_ext.acceleration.packed_conv import grid_width
from espnet2_vits_ext.vits.duration_predictor import StochasticDurationPredictor
from espnet2_vits_ext.vits.decoder import HiFiGANGenerator
from espnet2_vits_ext.layers.masking import non_pad_mask
from espnet2_vits_ext.vits.monotonic_alignment import (
    alignment_log_likelihood,
    durations_to_path,
    expand_to_frames,
    search_durations,
)
from espnet2_vits_ext.vits.posterior_encoder import PosteriorEncoder
from espnet2_vits_ext.vits.flow import ResidualAffineCouplingBlock
from espnet2_vits_ext.vits.generator_outputs import GeneratorOutput, InferenceOutput, SynthesisLatent
from espnet2_vits_ext.vits.global_conditioning import add_global_embeddings, global_condition
from espnet2_vits_ext.layers.segments import random_segment_starts, slice_segments
from espnet2_vits_ext.vits.text_encoder import TextEncoder


class VITSGenerator(torch.nn.Module):
    """Text encoder, posterior encoder, flow, duration predictor and decoder of VITS.

    The text encoder is a Conformer (as in ESPnet) unless ``text_encoder_type`` is
    ``"vits_transformer"``, the paper's relative-position Transformer (as in Piper);
    ``decoder_resblock_type`` ``"2"`` gives HiFi-GAN's residual blocks with one conv per
    dilation (Piper's smaller voices), ``"1"`` (ESPnet's) two. Argument prefixes say which
    box an argument configures; see ESPnet's ``VITSGenerator`` for each one.
    ``spks``/``langs`` > 1 add speaker/language id embeddings, ``spk_embed_dim`` > 0 a
    projection of given speaker embeddings (e.g. x-vectors); all three need
    ``global_channels`` > 0 and are summed into ``g``.
    """

    def __init__(
        self,
        vocabs: int,
        aux_channels: int = 513,
        hidden_channels: int = 192,
        spks: Optional[int] = None,
        langs: Optional[int] = None,
        spk_embed_dim: Optional[int] = None,
        global_channels: int = -1,
        segment_size: int = 32,
        text_encoder_attention_heads: int = 2,
        text_encoder_ffn_expand: int = 4,
        text_encoder_blocks: int = 6,
        text_encoder_positionwise_layer_type: str = "conv1d",
        text_encoder_positionwise_conv_kernel_size: int = 1,
        text_encoder_positional_encoding_layer_type: str = "rel_pos",
        text_encoder_self_attention_layer_type: str = "rel_selfattn",
        text_encoder_activation_type: str = "swish",
        text_encoder_normalize_before: bool = True,
        text_encoder_dropout_rate: float = 0.1,
        text_encoder_positional_dropout_rate: float = 0.0,
        text_encoder_attention_dropout_rate: float = 0.0,
        text_encoder_conformer_kernel_size: int = 7,
        use_macaron_style_in_text_encoder: bool = True,
        use_conformer_conv_in_text_encoder: bool = True,
        text_encoder_type: str = "conformer",
        decoder_kernel_size: int = 7,
        decoder_channels: int = 512,
        decoder_upsample_scales: Sequence[int] = (8, 8, 2, 2),
        decoder_upsample_kernel_sizes: Sequence[int] = (16, 16, 4, 4),
        decoder_resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
        decoder_resblock_dilations: Sequence[Sequence[int]] = ((1, 3, 5),) * 3,
        use_weight_norm_in_decoder: bool = True,
        decoder_resblock_type: str = "1",
        posterior_encoder_kernel_size: int = 5,
        posterior_encoder_layers: int = 16,
        posterior_encoder_stacks: int = 1,
        posterior_encoder_base_dilation: int = 1,
        posterior_encoder_dropout_rate: float = 0.0,
        use_weight_norm_in_posterior_encoder: bool = True,
        flow_flows: int = 4,
        flow_kernel_size: int = 5,
        flow_base_dilation: int = 1,
        flow_layers: int = 4,
        flow_dropout_rate: float = 0.0,
        use_weight_norm_in_flow: bool = True,
        use_only_mean_in_flow: bool = True,
        stochastic_duration_predictor_kernel_size: int = 3,
        stochastic_duration_predictor_dropout_rate: float = 0.5,
        stochastic_duration_predictor_flows: int = 4,
        stochastic_duration_predictor_dds_conv_layers: int = 3,
    ):
        super().__init__()
        self.segment_size = segment_size
        self.upsample_factor = math.prod(int(scale) for scale in decoder_upsample_scales)
        self.text_encoder = TextEncoder(
            vocabs=vocabs,
            attention_dim=hidden_channels,
            attention_heads=text_encoder_attention_heads,
            linear_units=hidden_channels * text_encoder_ffn_expand,
            blocks=text_encoder_blocks,
            positionwise_layer_type=text_encoder_positionwise_layer_type,
            positionwise_conv_kernel_size=text_encoder_positionwise_conv_kernel_size,
            positional_encoding_layer_type=text_encoder_positional_encoding_layer_type,
            self_attention_layer_type=text_encoder_self_attention_layer_type,
            activation_type=text_encoder_activation_type,
            normalize_before=text_encoder_normalize_before,
            dropout_rate=text_encoder_dropout_rate,
            positional_dropout_rate=text_encoder_positional_dropout_rate,
            attention_dropout_rate=text_encoder_attention_dropout_rate,
            conformer_kernel_size=text_encoder_conformer_kernel_size,
            use_macaron_style=use_macaron_style_in_text_encoder,
            use_conformer_conv=use_conformer_conv_in_text_encoder,
            encoder_type=text_encoder_type,
        )
        if decoder_resblock_type not in ("1", "2"):
            raise ValueError(f"decoder_resblock_type must be \"1\" or \"2\", got {decoder_resblock_type!r}")
        self.decoder = HiFiGANGenerator(
            in_channels=hidden_channels,
            out_channels=1,
            channels=decoder_channels,
            global_channels=global_channels,
            kernel_size=decoder_kernel_size,
            upsample_scales=list(decoder_upsample_scales),
            upsample_kernel_sizes=list(decoder_upsample_kernel_sizes),
            resblock_kernel_sizes=list(decoder_resblock_kernel_sizes),
            resblock_dilations=[list(d) for d in decoder_resblock_dilations],
            use_weight_norm=use_weight_norm_in_decoder,
            # HiFi-GAN's type "2" block is type "1" without the second conv of each step.
            use_additional_convs=decoder_resblock_type == "1",
        )
        self.posterior_encoder = PosteriorEncoder(
            in_channels=aux_channels,
            out_channels=hidden_channels,
            hidden_channels=hidden_channels,
            kernel_size=posterior_encoder_kernel_size,
            layers=posterior_encoder_layers,
            stacks=posterior_encoder_stacks,
            base_dilation=posterior_encoder_base_dilation,
            global_channels=global_channels,
            dropout_rate=posterior_encoder_dropout_rate,
            use_weight_norm=use_weight_norm_in_posterior_encoder,
        )
        self.flow = ResidualAffineCouplingBlock(
            in_channels=hidden_channels,
            hidden_channels=hidden_channels,
            flows=flow_flows,
            kernel_size=flow_kernel_size,
            base_dilation=flow_base_dilation,
            layers=flow_layers,
            global_channels=global_channels,
            dropout_rate=flow_dropout_rate,
            use_weight_norm=use_weight_norm_in_flow,
            use_only_mean=use_only_mean_in_flow,
        )
        self.duration_predictor = StochasticDurationPredictor(
            channels=hidden_channels,
            kernel_size=stochastic_duration_predictor_kernel_size,
            dropout_rate=stochastic_duration_predictor_dropout_rate,
            flows=stochastic_duration_predictor_flows,
            dds_conv_layers=stochastic_duration_predictor_dds_conv_layers,
            global_channels=global_channels,
        )
        # Made last, in ESPnet's order, so that a seeded build draws ESPnet's weights.
        add_global_embeddings(self, spks, spk_embed_dim, langs, global_channels)

    def forward(
        self,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        feats: torch.Tensor,
        feats_lengths: torch.Tensor,
        sids: Optional[torch.Tensor] = None,
        spembs: Optional[torch.Tensor] = None,
        lids: Optional[torch.Tensor] = None,
    ) -> GeneratorOutput:
        """One training pass (Figure 1a).

        Args:
            text: Token ids (B, T_text).
            text_lengths: Tokens per utterance (B,).
            feats: Linear spectrograms (B, aux_channels, T_feats).
            feats_lengths: Frames per utterance (B,).
            sids: Speaker ids (B,) or (B, 1), if ``spks`` is set.
            spembs: Speaker embeddings (B, spk_embed_dim), if ``spk_embed_dim`` is set.
            lids: Language ids (B,) or (B, 1), if ``langs`` is set.

        Returns:
            GeneratorOutput: see its fields for shapes.
        """
        hidden, token_means, token_log_stds, text_mask = self.text_encoder(text, text_lengths)
        g = global_condition(self, sids, spembs, lids)
        z, posterior_means, posterior_log_stds, feats_mask = self.posterior_encoder(
            feats, feats_lengths, g=g
        )
        z_p = self.flow(z, feats_mask, g=g)  # (B, H, T_feats)

        scores = alignment_log_likelihood(z_p, token_means, token_log_stds)
        durations = search_durations(scores, text_lengths, feats_lengths)  # (B, T_text)
        duration_nll = self.duration_predictor(
            hidden, text_mask, w=durations.unsqueeze(1).to(hidden.dtype), g=g
        )
        duration_nll = duration_nll / torch.sum(text_mask)

        feats_length = feats.size(2)
        prior_means = expand_to_frames(token_means, durations, feats_length)
        prior_log_stds = expand_to_frames(token_log_stds, durations, feats_length)

        # Drawn after the duration predictor's noise, in ESPnet's order.
        segment_starts = random_segment_starts(feats_lengths, self.segment_size, z.device)
        waveform = self.decoder(slice_segments(z, segment_starts, self.segment_size), g=g)
        return GeneratorOutput(
            waveform=waveform,
            duration_nll=duration_nll,
            durations=durations,
            segment_starts=segment_starts,
            text_mask=text_mask,
            feats_mask=feats_mask,
            posterior_latent=z,
            flow_latent=z_p,
            prior_means=prior_means,
            prior_log_stds=prior_log_stds,
            posterior_means=posterior_means,
            posterior_log_stds=posterior_log_stds,
        )

    def inference(
        self,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        feats: Optional[torch.Tensor] = None,
        feats_lengths: Optional[torch.Tensor] = None,
        sids: Optional[torch.Tensor] = None,
        spembs: Optional[torch.Tensor] = None,
        lids: Optional[torch.Tensor] = None,
        dur: Optional[torch.Tensor] = None,
        noise_scale: float = 0.667,
        noise_scale_dur: float = 0.8,
        alpha: float = 1.0,
        max_len: Optional[int] = None,
        use_teacher_forcing: bool = False,
    ) -> InferenceOutput:
        """Synthesis (Figure 1b), or reconstruction from ``feats`` with teacher forcing.

        Args:
            text: Token ids (B, T_text).
            text_lengths: Tokens per utterance (B,).
            feats: Linear spectrograms (B, aux_channels, T_feats), for teacher forcing.
            feats_lengths: Frames per utterance (B,), for teacher forcing.
            sids, spembs, lids: Speaker/language conditioning as in :meth:`forward`;
                ``spembs`` may also be one embedding (spk_embed_dim,).
            dur: Given frames per token (B, T_text) or (B, 1, T_text): skips the
                duration predictor.
            noise_scale: Standard deviation scale of the prior sample.
            noise_scale_dur: Noise scale of the duration predictor.
            alpha: Duration multiplier (> 1 speaks slower).
            max_len: Decode at most this many frames.
            use_teacher_forcing: Encode ``feats`` and decode them (alignment by search).

        Returns:
            InferenceOutput: waveform (B, T_wav), attention (B, T_feats, T_text),
                durations (B, T_text).
        """
        if use_teacher_forcing:
            if feats is None or feats_lengths is None:
                raise ValueError("VITSGenerator.inference: use_teacher_forcing needs feats")
            _, token_means, token_log_stds, text_mask = self.text_encoder(text, text_lengths)
            g = global_condition(self, sids, spembs, lids)
            return self._reconstruct(token_means, token_log_stds, text_mask, text_lengths, feats, feats_lengths, g)
        latent = self.synthesis_latent(
            text, text_lengths, sids, spembs, lids, dur, noise_scale, noise_scale_dur, alpha, max_len
        )
        waveform = self.decoder(latent.latent, g=latent.condition)
        return InferenceOutput(waveform[:, 0], latent.attention, latent.durations)

    def synthesis_latent(
        self,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        sids: Optional[torch.Tensor] = None,
        spembs: Optional[torch.Tensor] = None,
        lids: Optional[torch.Tensor] = None,
        dur: Optional[torch.Tensor] = None,
        noise_scale: float = 0.667,
        noise_scale_dur: float = 0.8,
        alpha: float = 1.0,
        max_len: Optional[int] = None,
    ) -> SynthesisLatent:
        """Synthesis up to the decoder: what :meth:`inference` decodes, for a caller that decodes
        it itself (streaming decodes it chunk by chunk). Arguments as :meth:`inference`.

        Returns:
            SynthesisLatent: latent (B, H, T_feats) and condition (B, global_channels, 1) or
                None, the path (B, T_feats, T_text) and durations (B, T_text).
        """
        hidden, token_means, token_log_stds, text_mask = self.text_encoder(text, text_lengths)
        g = global_condition(self, sids, spembs, lids)
        durations = self._durations(hidden, text_mask, g, dur, noise_scale_dur, alpha)
        # At least one frame, so that an all-zero prediction still decodes.
        feats_lengths = torch.clamp_min(durations.sum(1), 1).long()
        feats_mask = non_pad_mask(feats_lengths)  # (B, T_feats): a sync, needed for T_feats
        attention = durations_to_path(durations, text_mask[:, 0] > 0, feats_mask).to(token_means.dtype)
        # The prior of each frame is its token's: ``attention @ stats`` as a gather (the same
        # numbers: each row of the path is one-hot or zero).
        prior_means = expand_to_frames(token_means, durations, feats_mask.size(1))  # (B, H, T_feats)
        z_p = prior_means
        if noise_scale != 0:  # noise off draws nothing (the result is the same)
            prior_log_stds = expand_to_frames(token_log_stds, durations, feats_mask.size(1))
            # ESPnet draws into a transposed (B, T_feats, H) buffer (its prior is a transposed
            # matmul output); the same strides give the same noise from the same seed.
            batch, channels, frames = prior_means.shape
            noise = prior_means.new_empty(batch, frames, channels).transpose(1, 2).normal_()
            z_p = prior_means + noise * torch.exp(prior_log_stds) * noise_scale
        feats_mask = feats_mask.unsqueeze(1).to(z_p.dtype)  # (B, 1, T_feats)
        z = self.flow(z_p, feats_mask, g=g, inverse=True)
        return SynthesisLatent((z * feats_mask)[:, :, :max_len], g, attention, durations)

    def _durations(
        self,
        hidden: torch.Tensor,
        text_mask: torch.Tensor,
        g: Optional[torch.Tensor],
        dur: Optional[torch.Tensor],
        noise_scale_dur: float,
        alpha: float,
    ) -> torch.Tensor:
        """Frames per token (B, T_text): ``dur`` as given, else sampled from the duration predictor
        (``hidden`` (B, H, T_text), ``text_mask`` (B, 1, T_text)) and scaled by ``alpha``.

        Synthesis of one sentence on CPU runs the predictor on tokens zero-padded to the grid
        of :func:`~espnet2_vits_ext.acceleration.packed_conv.grid_width` (padding gets no
        frames), with ESPnet's noise draws for the real tokens: every new sentence length
        would otherwise build oneDNN kernels of its own (~5 ms on joe-medium)."""
        if dur is not None:
            return dur.reshape(hidden.size(0), -1)
        tokens, noise = hidden.size(2), None
        one_sentence_on_cpu = not torch.is_grad_enabled() and hidden.device.type == "cpu" and hidden.size(0) == 1
        width = grid_width(tokens) if one_sentence_on_cpu else tokens
        if width > tokens:
            noise = F.pad(torch.randn(1, 2, tokens), (0, width - tokens))  # as ESPnet draws it
            hidden, text_mask = F.pad(hidden, (0, width - tokens)), F.pad(text_mask, (0, width - tokens))
        log_durations = self.duration_predictor(
            hidden, text_mask, g=g, inverse=True, noise_scale=noise_scale_dur, noise=noise
        )
        return torch.ceil(torch.exp(log_durations[..., :tokens]) * text_mask[..., :tokens] * alpha)[:, 0]

    def _reconstruct(
        self,
        token_means: torch.Tensor,
        token_log_stds: torch.Tensor,
        text_mask: torch.Tensor,
        text_lengths: torch.Tensor,
        feats: torch.Tensor,
        feats_lengths: torch.Tensor,
        g: Optional[torch.Tensor],
    ) -> InferenceOutput:
        """Teacher forcing: encode ``feats``, align them to the text, decode all of ``z``.

        Args: the text prior per token (B, H, T_text) with its mask (B, 1, T_text) and
            lengths (B,), then as :meth:`inference` (``g``: (B, global_channels, 1)).

        Returns:
            InferenceOutput: waveform (B, T_wav), the searched path (B, T_feats, T_text)
                and its durations (B, T_text).
        """
        z, _, _, feats_mask = self.posterior_encoder(feats, feats_lengths, g=g)
        z_p = self.flow(z, feats_mask, g=g)
        scores = alignment_log_likelihood(z_p, token_means, token_log_stds)
        durations = search_durations(scores, text_lengths, feats_lengths)
        attention = durations_to_path(durations, text_mask[:, 0] > 0, feats_mask[:, 0] > 0)
        waveform = self.decoder(z * feats_mask, g=g)
        return InferenceOutput(waveform[:, 0], attention, durations.to(attention.dtype))
