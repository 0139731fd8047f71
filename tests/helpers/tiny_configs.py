"""Tiny configurations that build in milliseconds on CPU, for every test that needs a model.

``tiny_tts_conf()`` holds ``tts_conf`` keys of ESPnet's VITS (the same names our model
takes) for a model small enough to train a few steps in a test; full-size parity tests
use the model's defaults, which are ESPnet's LJSpeech ``train_vits.yaml`` values.
"""

import copy
from typing import Optional

TINY_VOCAB = 12
TINY_AUX_CHANNELS = 33  # n_fft 64 -> 33 linear-spectrogram bins

TINY_GENERATOR_PARAMS = dict(
    vocabs=TINY_VOCAB,
    aux_channels=TINY_AUX_CHANNELS,
    hidden_channels=16,
    spks=None,
    langs=None,
    spk_embed_dim=None,
    global_channels=-1,
    segment_size=4,
    text_encoder_attention_heads=2,
    text_encoder_ffn_expand=2,
    text_encoder_blocks=2,
    text_encoder_positionwise_layer_type="conv1d",
    text_encoder_positionwise_conv_kernel_size=3,
    text_encoder_positional_encoding_layer_type="rel_pos",
    text_encoder_self_attention_layer_type="rel_selfattn",
    text_encoder_activation_type="swish",
    text_encoder_normalize_before=True,
    text_encoder_dropout_rate=0.1,
    text_encoder_positional_dropout_rate=0.0,
    text_encoder_attention_dropout_rate=0.0,
    text_encoder_conformer_kernel_size=7,
    use_macaron_style_in_text_encoder=True,
    use_conformer_conv_in_text_encoder=True,
    decoder_kernel_size=7,
    decoder_channels=32,
    decoder_upsample_scales=[4, 4],
    decoder_upsample_kernel_sizes=[8, 8],
    decoder_resblock_kernel_sizes=[3, 5],
    decoder_resblock_dilations=[[1, 3], [1, 3]],
    use_weight_norm_in_decoder=True,
    posterior_encoder_kernel_size=5,
    posterior_encoder_layers=2,
    posterior_encoder_stacks=1,
    posterior_encoder_base_dilation=1,
    posterior_encoder_dropout_rate=0.0,
    use_weight_norm_in_posterior_encoder=True,
    flow_flows=2,
    flow_kernel_size=5,
    flow_base_dilation=1,
    flow_layers=2,
    flow_dropout_rate=0.0,
    use_weight_norm_in_flow=True,
    use_only_mean_in_flow=True,
    stochastic_duration_predictor_kernel_size=3,
    stochastic_duration_predictor_dropout_rate=0.5,
    stochastic_duration_predictor_flows=2,
    stochastic_duration_predictor_dds_conv_layers=2,
)

TINY_DISCRIMINATOR_PARAMS = dict(
    scales=1,
    scale_downsample_pooling="AvgPool1d",
    scale_downsample_pooling_params=dict(kernel_size=4, stride=2, padding=2),
    scale_discriminator_params=dict(
        in_channels=1,
        out_channels=1,
        kernel_sizes=[15, 41, 5, 3],
        channels=8,
        max_downsample_channels=32,
        max_groups=4,
        bias=True,
        downsample_scales=[2, 2],
        nonlinear_activation="LeakyReLU",
        nonlinear_activation_params=dict(negative_slope=0.1),
        use_weight_norm=True,
        use_spectral_norm=False,
    ),
    follow_official_norm=False,
    periods=[2, 3],
    period_discriminator_params=dict(
        in_channels=1,
        out_channels=1,
        kernel_sizes=[5, 3],
        channels=4,
        downsample_scales=[3, 1],
        max_downsample_channels=16,
        bias=True,
        nonlinear_activation="LeakyReLU",
        nonlinear_activation_params=dict(negative_slope=0.1),
        use_weight_norm=True,
        use_spectral_norm=False,
    ),
)

TINY_MEL_LOSS_PARAMS = dict(
    fs=16000,
    n_fft=64,
    hop_length=16,
    win_length=None,
    window="hann",
    n_mels=10,
    fmin=0,
    fmax=None,
    log_base=None,
)


def tiny_tts_conf() -> dict:
    """``tts_conf`` of a tiny model (hop 16 = product of the decoder's upsample scales)."""
    return dict(
        sampling_rate=16000,
        generator_type="vits_generator",
        generator_params=copy.deepcopy(TINY_GENERATOR_PARAMS),
        discriminator_type="hifigan_multi_scale_multi_period_discriminator",
        discriminator_params=copy.deepcopy(TINY_DISCRIMINATOR_PARAMS),
        mel_loss_params=copy.deepcopy(TINY_MEL_LOSS_PARAMS),
    )


TINY_GLOBAL_CHANNELS = 8  # width of the speaker / language conditioning vector


def tiny_conditioned_tts_conf(
    spks: Optional[int] = None, langs: Optional[int] = None, spk_embed_dim: Optional[int] = None
) -> dict:
    """Tiny ``tts_conf`` conditioned on speaker ids, language ids and/or speaker embeddings.

    ESPnet's generator sums the embeddings of whichever of the three are set into one
    global vector (``global_channels`` wide) that conditions every component.
    """
    conf = tiny_tts_conf()
    conf["generator_params"].update(
        spks=spks, langs=langs, spk_embed_dim=spk_embed_dim, global_channels=TINY_GLOBAL_CHANNELS
    )
    return conf
