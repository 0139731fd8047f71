"""``tts: fast_vits``: our VITS as an ESPnet2 GAN-TTS model, a drop-in for ``tts: vits``.

The constructor takes exactly the arguments of ESPnet's ``espnet2.gan_tts.vits.VITS``
(so any ESPnet VITS ``tts_conf`` works unchanged), the ``state_dict`` has the same keys
(ESPnet's checkpoints load into ours and ours into ESPnet's), and ``forward`` /
``inference`` keep ESPnet's contract: ``forward(..., forward_generator=...)`` returns
``dict(loss, stats, weight, optim_idx)`` (0: generator turn, 1: discriminator turn) and
``inference`` returns ``dict(wav, att_w, duration)``.

Differences that do not change results: losses and the spectrograms they compare run
in float32 even under fp16/bf16 autocast (ESPnet disables only CUDA autocast there);
``stats`` hold detached tensors rather than ``.item()`` values, so the training step
itself does not wait for the GPU (ESPnet's reporter converts them when it logs).
"""

import copy
from typing import Any, Dict, Optional, Tuple

import torch
from typeguard import typechecked

from espnet2.gan_tts.abs_gan_tts import AbsGANTTS
from espnet2.torch_utils.device_funcs import force_gatherable
from espnet2_vits_ext.vits.losses.adversarial import (
    DiscriminatorAdversarialLoss,
    FeatureMatchLoss,
    GeneratorAdversarialLoss,
)
from espnet2_vits_ext.vits.espnet_defaults import (
    DEFAULT_ADVERSARIAL_LOSS_PARAMS,
    DEFAULT_DISCRIMINATOR_PARAMS,
    DEFAULT_FEAT_MATCH_LOSS_PARAMS,
    DEFAULT_GENERATOR_PARAMS,
    DEFAULT_MEL_LOSS_PARAMS,
)
from espnet2_vits_ext.vits.discriminators.multi_scale_multi_period import AVAILABLE_DISCRIMINATORS
from espnet2_vits_ext.vits.generator import VITSGenerator
from espnet2_vits_ext.vits.generator_outputs import GeneratorOutput, SynthesisLatent
from espnet2_vits_ext.vits.hop_length import check_model_hops
from espnet2_vits_ext.vits.losses.kl import KLDivergenceLoss
from espnet2_vits_ext.vits.losses.objectives import (
    discriminator_objective,
    generator_objective,
    generator_outputs_and_real_windows,
)
from espnet2_vits_ext.acceleration import packed_conv
from espnet2_vits_ext.vits.losses.mel import MelSpectrogramLoss

GENERATORS = {"vits_generator": VITSGenerator}
DISCRIMINATORS = AVAILABLE_DISCRIMINATORS


class FastVITS(AbsGANTTS):
    """VITS (generator + discriminator + losses), ESPnet's ``VITS`` contract."""

    @typechecked
    def __init__(
        self,
        idim: int,
        odim: int,
        sampling_rate: int = 22050,
        generator_type: str = "vits_generator",
        generator_params: Dict[str, Any] = DEFAULT_GENERATOR_PARAMS,
        discriminator_type: str = "hifigan_multi_scale_multi_period_discriminator",
        discriminator_params: Dict[str, Any] = DEFAULT_DISCRIMINATOR_PARAMS,
        generator_adv_loss_params: Dict[str, Any] = DEFAULT_ADVERSARIAL_LOSS_PARAMS,
        discriminator_adv_loss_params: Dict[str, Any] = DEFAULT_ADVERSARIAL_LOSS_PARAMS,
        feat_match_loss_params: Dict[str, Any] = DEFAULT_FEAT_MATCH_LOSS_PARAMS,
        mel_loss_params: Dict[str, Any] = DEFAULT_MEL_LOSS_PARAMS,
        lambda_adv: float = 1.0,
        lambda_mel: float = 45.0,
        lambda_feat_match: float = 2.0,
        lambda_dur: float = 1.0,
        lambda_kl: float = 1.0,
        cache_generator_outputs: bool = True,
        plot_pred_mos: bool = False,
        mos_pred_tool: str = "utmos",
        inference_precision: str = "fp32",
    ):
        """Build the model.

        Args:
            idim: Vocabulary size (the generator's ``vocabs``).
            odim: Linear spectrogram bins (the generator's ``aux_channels``); the model
                outputs a waveform, ESPnet calls the input feature size ``odim``.
            sampling_rate: Stored as ``fs`` for writing waveforms; not used in training.
            generator_type: Only ``"vits_generator"``.
            generator_params: :class:`VITSGenerator` arguments (without vocabs/aux_channels).
            discriminator_type: One of :data:`DISCRIMINATORS`.
            discriminator_params: Its arguments.
            generator_adv_loss_params: Generator adversarial loss arguments.
            discriminator_adv_loss_params: Discriminator adversarial loss arguments.
            feat_match_loss_params: Feature matching loss arguments.
            mel_loss_params: Mel spectrogram L1 loss arguments; its ``hop_length`` must be
                the product of ``generator_params.decoder_upsample_scales``.
            lambda_adv, lambda_mel, lambda_feat_match, lambda_dur, lambda_kl: Weights of
                the generator's loss terms.
            cache_generator_outputs: Reuse the generator turn's outputs in the following
                discriminator turn (ESPnet's trainer runs both on the same batch).
            plot_pred_mos: Report UTMOS of the generated windows (downloads the predictor).
            mos_pred_tool: Only ``"utmos"``.
            inference_precision: Our addition (not an ESPnet VITS argument): precision of
                the decoder (~97% of the work) in CPU synthesis, ``"fp32"`` or ``"bf16"``
                (bfloat16 weights and activations, float32 accumulation; needs a CPU with
                AVX512-BF16 or AMX). Training is unaffected. See
                :meth:`set_inference_precision`.

        Raises:
            ValueError: The decoder's upsampling product differs from the mel loss's hop
                (see :mod:`espnet2_vits_ext.vits.hop_length`), or an unknown type.
        """
        super().__init__()
        if generator_type not in GENERATORS:
            raise ValueError(
                f"FastVITS: generator_type must be one of {sorted(GENERATORS)}, "
                f"got {generator_type!r}"
            )
        if discriminator_type not in DISCRIMINATORS:
            raise ValueError(
                f"FastVITS: discriminator_type must be one of {sorted(DISCRIMINATORS)}, "
                f"got {discriminator_type!r}"
            )
        check_model_hops(generator_params, mel_loss_params)
        # idim and odim come from the data (token list, feature extractor), as in ESPnet.
        generator_params = dict(copy.deepcopy(generator_params), vocabs=idim, aux_channels=odim)
        self.generator = GENERATORS[generator_type](**generator_params)
        self.discriminator = DISCRIMINATORS[discriminator_type](
            **copy.deepcopy(discriminator_params)
        )
        self.generator_adv_loss = GeneratorAdversarialLoss(
            **copy.deepcopy(generator_adv_loss_params)
        )
        self.discriminator_adv_loss = DiscriminatorAdversarialLoss(
            **copy.deepcopy(discriminator_adv_loss_params)
        )
        self.feat_match_loss = FeatureMatchLoss(**copy.deepcopy(feat_match_loss_params))
        self.mel_loss = MelSpectrogramLoss(**copy.deepcopy(mel_loss_params))
        self.kl_loss = KLDivergenceLoss()

        self.lambda_adv = lambda_adv
        self.lambda_mel = lambda_mel
        self.lambda_kl = lambda_kl
        self.lambda_feat_match = lambda_feat_match
        self.lambda_dur = lambda_dur

        self.set_inference_precision(inference_precision)
        self.cache_generator_outputs = cache_generator_outputs
        self._cache: Optional[GeneratorOutput] = None
        self.fs = sampling_rate
        # Read by ESPnet's Text2Speech to know which inputs synthesis needs.
        self.spks = self.generator.spks
        self.langs = self.generator.langs
        self.spk_embed_dim = self.generator.spk_embed_dim

        self.plot_pred_mos = plot_pred_mos
        if plot_pred_mos:
            if mos_pred_tool != "utmos":
                raise ValueError(f"FastVITS: mos_pred_tool must be 'utmos', got {mos_pred_tool!r}")
            # UTMOS22 (https://arxiv.org/abs/2204.02152), as ESPnet loads it.
            self.predictor = torch.hub.load("tarepan/SpeechMOS:v1.2.0", "utmos22_strong")

    def set_inference_precision(self, precision: str) -> None:
        """Choose the decoder's CPU synthesis precision, ``"fp32"`` or ``"bf16"``.

        ``"bf16"`` is 1.5-2x faster on CPUs with native bfloat16 (the waveform differs
        from fp32 by a fraction of a dB of mel-cepstral distortion, see bench/RESULTS.md);
        it applies to inference under ``torch.no_grad``/``inference_mode`` on CPU.

        Raises:
            ValueError: For another precision, or ``"bf16"`` on a CPU without native
                bfloat16 (emulated, it would be slower than fp32).
        """
        packed_conv.check_precision(precision)
        self.generator.decoder.inference_precision = precision
        self.generator.flow.inference_precision = precision  # the flow's synthesis too

    @property
    def require_raw_speech(self) -> bool:
        """The discriminators and the mel loss need the recorded waveform."""
        return True

    @property
    def require_vocoder(self) -> bool:
        """VITS outputs a waveform itself."""
        return False

    def forward(
        self,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        feats: torch.Tensor,
        feats_lengths: torch.Tensor,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        sids: Optional[torch.Tensor] = None,
        spembs: Optional[torch.Tensor] = None,
        lids: Optional[torch.Tensor] = None,
        forward_generator: bool = True,
    ) -> Dict[str, Any]:
        """Loss of the generator turn or of the discriminator turn.

        Args:
            text: Token ids (B, T_text).
            text_lengths: Tokens per utterance (B,).
            feats: Linear spectrograms (B, T_feats, aux_channels).
            feats_lengths: Frames per utterance (B,).
            speech: Waveforms (B, T_wav).
            speech_lengths: Samples per utterance (B,).
            sids: Speaker ids (B,) or (B, 1).
            spembs: Speaker embeddings (B, spk_embed_dim).
            lids: Language ids (B,) or (B, 1).
            forward_generator: Generator turn (True) or discriminator turn (False).

        Returns:
            Dict[str, Any]: ``loss`` (scalar), ``stats`` (detached scalars), ``weight``
                (batch size), ``optim_idx`` (0 generator, 1 discriminator).
        """
        outputs, real_windows = generator_outputs_and_real_windows(
            self, text, text_lengths, feats, feats_lengths, speech, sids, spembs, lids
        )
        if forward_generator:
            loss, stats = generator_objective(self, outputs, real_windows)
        else:
            loss, stats = discriminator_objective(self, outputs, real_windows)
        loss, stats, weight = force_gatherable((loss, stats, text.size(0)), loss.device)
        return {
            "loss": loss,
            "stats": stats,
            "weight": weight,
            "optim_idx": 0 if forward_generator else 1,
        }

    def inference(
        self,
        text: torch.Tensor,
        feats: Optional[torch.Tensor] = None,
        sids: Optional[torch.Tensor] = None,
        spembs: Optional[torch.Tensor] = None,
        lids: Optional[torch.Tensor] = None,
        durations: Optional[torch.Tensor] = None,
        noise_scale: float = 0.667,
        noise_scale_dur: float = 0.8,
        alpha: float = 1.0,
        max_len: Optional[int] = None,
        use_teacher_forcing: bool = False,
    ) -> Dict[str, torch.Tensor]:
        """Synthesise one utterance.

        Args:
            text: Token ids (T_text,).
            feats: Linear spectrogram (T_feats, aux_channels), for teacher forcing.
            sids: Speaker id (1,).
            spembs: Speaker embedding (spk_embed_dim,).
            lids: Language id (1,).
            durations: Given frames per token (T_text,): skips the duration predictor.
            noise_scale: Scale of the prior sample's noise (0: its mean).
            noise_scale_dur: Scale of the duration predictor's noise.
            alpha: Duration multiplier (> 1 speaks slower).
            max_len: Decode at most this many frames.
            use_teacher_forcing: Reconstruct ``feats`` (alignment by search).

        Returns:
            Dict[str, Tensor]: ``wav`` (T_wav,), ``att_w`` (T_feats, T_text),
                ``duration`` (T_text,).
        """
        if text.numel() == 0:
            raise ValueError("FastVITS.inference: empty text (no tokens to synthesise)")
        if use_teacher_forcing and feats is None:
            raise ValueError("FastVITS.inference: use_teacher_forcing needs feats")
        text = text.view(1, -1)
        if use_teacher_forcing:
            feats = feats.unsqueeze(0).transpose(1, 2)  # (1, aux_channels, T_feats)
        output = self.generator.inference(
            text=text,
            text_lengths=_length_of(text),
            feats=feats if use_teacher_forcing else None,
            feats_lengths=_length_of(feats) if use_teacher_forcing else None,
            **_batch_of_one(sids, spembs, lids, durations),
            noise_scale=noise_scale,
            noise_scale_dur=noise_scale_dur,
            alpha=alpha,
            max_len=max_len,
            use_teacher_forcing=use_teacher_forcing,
        )
        return dict(
            wav=output.waveform.view(-1),
            att_w=output.attention[0],
            duration=output.durations[0],
        )

    def synthesis_latent(
        self,
        text: torch.Tensor,
        sids: Optional[torch.Tensor] = None,
        spembs: Optional[torch.Tensor] = None,
        lids: Optional[torch.Tensor] = None,
        durations: Optional[torch.Tensor] = None,
        noise_scale: float = 0.667,
        noise_scale_dur: float = 0.8,
        alpha: float = 1.0,
        max_len: Optional[int] = None,
    ) -> SynthesisLatent:
        """What :meth:`inference` would decode for one utterance (same arguments, same random
        draws): the latent (1, H, T_feats) and condition, for decoding it in chunks."""
        if text.numel() == 0:
            raise ValueError("FastVITS.synthesis_latent: empty text (no tokens to synthesise)")
        text = text.view(1, -1)
        return self.generator.synthesis_latent(
            text,
            _length_of(text),
            **_batch_of_one(sids, spembs, lids, durations),
            noise_scale=noise_scale,
            noise_scale_dur=noise_scale_dur,
            alpha=alpha,
            max_len=max_len,
        )


def _batch_of_one(sids, spembs, lids, durations) -> Dict[str, Optional[torch.Tensor]]:
    """The conditioning and durations of one utterance as the generator's batch of one."""
    return dict(
        sids=None if sids is None else sids.view(1),
        spembs=None if spembs is None else spembs.view(1, -1),
        lids=None if lids is None else lids.view(1),
        dur=None if durations is None else durations.view(1, -1),
    )


def _length_of(batch: torch.Tensor) -> torch.Tensor:
    """The length (1,) of a batch of one sequence, time last: (1, T) or (1, C, T)."""
    return torch.tensor([batch.size(-1)], dtype=torch.long, device=batch.device)
