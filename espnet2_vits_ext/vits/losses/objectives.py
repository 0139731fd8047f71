"""The two turns of VITS's adversarial training: their shared setup and what each minimises.

The generator turn minimises Eq. 8 of the paper (mel reconstruction, KL, duration,
adversarial and feature-matching terms, each weighted by its ``lambda_*``); the
discriminator turn minimises the least-squares GAN loss on real and generated windows.
Both read the loss modules and weights of a :class:`espnet2_vits_ext.vits.fast_vits.FastVITS`.
"""

from typing import Dict, Optional, Tuple

import torch

from espnet2_vits_ext.layers.segments import slice_segments
from espnet2_vits_ext.vits.generator_outputs import GeneratorOutput


def generator_outputs_and_real_windows(
    model,
    text: torch.Tensor,
    text_lengths: torch.Tensor,
    feats: torch.Tensor,
    feats_lengths: torch.Tensor,
    speech: torch.Tensor,
    sids: Optional[torch.Tensor],
    spembs: Optional[torch.Tensor],
    lids: Optional[torch.Tensor],
) -> Tuple[GeneratorOutput, torch.Tensor]:
    """Shared setup of both turns: the generator's outputs and the matching real windows.

    The outputs of the generator turn are kept for the discriminator turn of the same
    batch when ``model.cache_generator_outputs`` is set (ESPnet's trainer runs the two
    turns on one batch, and so does ESPnet's VITS).

    Args:
        model: The ``FastVITS`` being trained.
        text: Token ids (B, T_text); text_lengths: (B,).
        feats: Linear spectrograms (B, T_feats, aux_channels); feats_lengths: (B,).
        speech: Recorded waveforms (B, T_wav).
        sids, spembs, lids: Speaker/language conditioning, or None.

    Returns:
        GeneratorOutput, Tensor: the outputs and the recorded windows under the decoded
            ones (B, 1, segment_size * hop).
    """
    if model.cache_generator_outputs and model._cache is not None:
        outputs, model._cache = model._cache, None
    else:
        outputs = model.generator(
            text=text,
            text_lengths=text_lengths,
            feats=feats.transpose(1, 2),
            feats_lengths=feats_lengths,
            sids=sids,
            spembs=spembs,
            lids=lids,
        )
        if model.cache_generator_outputs and model.training:
            model._cache = outputs
    hop = model.generator.upsample_factor
    real_windows = slice_segments(
        speech.unsqueeze(1), outputs.segment_starts * hop, model.generator.segment_size * hop
    )
    return outputs, real_windows


def generator_objective(
    model, outputs: GeneratorOutput, real_windows: torch.Tensor
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """The generator's loss: mel + KL + duration + adversarial + feature matching (Eq. 8).

    Args:
        model: The ``FastVITS`` being trained (its loss modules and ``lambda_*``).
        outputs: The generator's outputs for the batch.
        real_windows: Recorded windows (B, 1, segment_size * hop).

    Returns:
        Tensor, Dict[str, Tensor]: the weighted sum (scalar) and each weighted term,
            detached, under ESPnet's stats names.
    """
    fake_scores = model.discriminator(outputs.waveform)
    with torch.no_grad():
        # Only the features of real speech; no discriminator gradient in this turn.
        real_scores = model.discriminator(real_windows)
    # The loss modules cast their inputs to float32 themselves; the region keeps
    # the weighting and the sum out of autocast as well.
    with torch.autocast(device_type=real_windows.device.type, enabled=False):
        mel_loss = model.mel_loss(outputs.waveform, real_windows)
        kl_loss = model.kl_loss(
            outputs.flow_latent,
            outputs.posterior_log_stds,
            outputs.prior_means,
            outputs.prior_log_stds,
            outputs.feats_mask,
        )
        duration_loss = torch.sum(outputs.duration_nll.float())
        adversarial_loss = model.generator_adv_loss(fake_scores)
        feature_match_loss = model.feat_match_loss(fake_scores, real_scores)
        mel_loss = mel_loss * model.lambda_mel
        kl_loss = kl_loss * model.lambda_kl
        duration_loss = duration_loss * model.lambda_dur
        adversarial_loss = adversarial_loss * model.lambda_adv
        feature_match_loss = feature_match_loss * model.lambda_feat_match
        loss = mel_loss + kl_loss + duration_loss + adversarial_loss + feature_match_loss
    stats = dict(
        generator_loss=loss.detach(),
        generator_mel_loss=mel_loss.detach(),
        generator_kl_loss=kl_loss.detach(),
        generator_dur_loss=duration_loss.detach(),
        generator_adv_loss=adversarial_loss.detach(),
        generator_feat_match_loss=feature_match_loss.detach(),
    )
    if model.plot_pred_mos:
        with torch.no_grad():
            stats["generator_predicted_mos"] = model.predictor(
                outputs.waveform.squeeze(1), model.fs
            ).mean()
    return loss, stats

def discriminator_objective(
    model, outputs: GeneratorOutput, real_windows: torch.Tensor
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """The discriminator's least-squares GAN loss on real and generated windows.

    Args:
        model: The ``FastVITS`` being trained.
        outputs: The generator's outputs for the batch (its waveform is detached here).
        real_windows: Recorded windows (B, 1, segment_size * hop).

    Returns:
        Tensor, Dict[str, Tensor]: real + fake loss (scalar) and the two parts, detached.
    """
    fake_scores = model.discriminator(outputs.waveform.detach())
    real_scores = model.discriminator(real_windows)
    with torch.autocast(device_type=real_windows.device.type, enabled=False):
        real_loss, fake_loss = model.discriminator_adv_loss(fake_scores, real_scores)
        loss = real_loss + fake_loss
    stats = dict(
        discriminator_loss=loss.detach(),
        discriminator_real_loss=real_loss.detach(),
        discriminator_fake_loss=fake_loss.detach(),
    )
    return loss, stats
