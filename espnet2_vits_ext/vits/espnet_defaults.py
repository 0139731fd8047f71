"""Default arguments of ESPnet's VITS (``espnet2.gan_tts.vits.VITS``), for FastVITS, and of
ESPnet's HiFi-GAN discriminators, for ours (the one place these values are written).

The ``DEFAULT_*`` dicts equal the ``tts_conf`` of ESPnet's
``egs2/ljspeech/tts1/conf/tuning/train_vits.yaml`` (22.05 kHz, hop 256, 513 linear bins).
:class:`~espnet2_vits_ext.vits.fast_vits.FastVITS` uses them as its signature's defaults,
as ESPnet does, so that ``--print_config`` of ``tts: fast_vits`` shows what ``tts: vits``
shows. Nothing mutates them: the model and the discriminators work on copies.
"""

from typing import Any, Dict

DEFAULT_GENERATOR_PARAMS: Dict[str, Any] = {
    "hidden_channels": 192,
    "spks": None,
    "langs": None,
    "spk_embed_dim": None,
    "global_channels": -1,
    "segment_size": 32,
    "text_encoder_attention_heads": 2,
    "text_encoder_ffn_expand": 4,
    "text_encoder_blocks": 6,
    "text_encoder_positionwise_layer_type": "conv1d",
    "text_encoder_positionwise_conv_kernel_size": 1,
    "text_encoder_positional_encoding_layer_type": "rel_pos",
    "text_encoder_self_attention_layer_type": "rel_selfattn",
    "text_encoder_activation_type": "swish",
    "text_encoder_normalize_before": True,
    "text_encoder_dropout_rate": 0.1,
    "text_encoder_positional_dropout_rate": 0.0,
    "text_encoder_attention_dropout_rate": 0.0,
    "text_encoder_conformer_kernel_size": 7,
    "use_macaron_style_in_text_encoder": True,
    "use_conformer_conv_in_text_encoder": True,
    "decoder_kernel_size": 7,
    "decoder_channels": 512,
    "decoder_upsample_scales": [8, 8, 2, 2],
    "decoder_upsample_kernel_sizes": [16, 16, 4, 4],
    "decoder_resblock_kernel_sizes": [3, 7, 11],
    "decoder_resblock_dilations": [[1, 3, 5], [1, 3, 5], [1, 3, 5]],
    "use_weight_norm_in_decoder": True,
    "posterior_encoder_kernel_size": 5,
    "posterior_encoder_layers": 16,
    "posterior_encoder_stacks": 1,
    "posterior_encoder_base_dilation": 1,
    "posterior_encoder_dropout_rate": 0.0,
    "use_weight_norm_in_posterior_encoder": True,
    "flow_flows": 4,
    "flow_kernel_size": 5,
    "flow_base_dilation": 1,
    "flow_layers": 4,
    "flow_dropout_rate": 0.0,
    "use_weight_norm_in_flow": True,
    "use_only_mean_in_flow": True,
    "stochastic_duration_predictor_kernel_size": 3,
    "stochastic_duration_predictor_dropout_rate": 0.5,
    "stochastic_duration_predictor_flows": 4,
    "stochastic_duration_predictor_dds_conv_layers": 3,
}
# The defaults of ESPnet's HiFi-GAN discriminators (``espnet2.gan_tts.hifigan``): the
# signature defaults of our classes in :mod:`.discriminators` and the parts of VITS's
# discriminator_params below.
HIFIGAN_SCALE_DOWNSAMPLE_POOLING_PARAMS: Dict[str, Any] = {"kernel_size": 4, "stride": 2, "padding": 2}
HIFIGAN_SCALE_DISCRIMINATOR_PARAMS: Dict[str, Any] = {
    "in_channels": 1,
    "out_channels": 1,
    "kernel_sizes": [15, 41, 5, 3],
    "channels": 128,
    "max_downsample_channels": 1024,
    "max_groups": 16,
    "bias": True,
    "downsample_scales": [2, 2, 4, 4, 1],
    "nonlinear_activation": "LeakyReLU",
    "nonlinear_activation_params": {"negative_slope": 0.1},
}
HIFIGAN_PERIOD_DISCRIMINATOR_PARAMS: Dict[str, Any] = {
    "in_channels": 1,
    "out_channels": 1,
    "kernel_sizes": [5, 3],
    "channels": 32,
    "downsample_scales": [3, 3, 3, 3, 1],
    "max_downsample_channels": 1024,
    "bias": True,
    "nonlinear_activation": "LeakyReLU",
    "nonlinear_activation_params": {"negative_slope": 0.1},
    "use_weight_norm": True,
    "use_spectral_norm": False,
}
DEFAULT_DISCRIMINATOR_PARAMS: Dict[str, Any] = {
    "scales": 1,
    "scale_downsample_pooling": "AvgPool1d",
    "scale_downsample_pooling_params": HIFIGAN_SCALE_DOWNSAMPLE_POOLING_PARAMS,
    # VITS spells out the scale discriminator's norm, which HiFi-GAN leaves to the class default.
    "scale_discriminator_params": {
        **HIFIGAN_SCALE_DISCRIMINATOR_PARAMS,
        "use_weight_norm": True,
        "use_spectral_norm": False,
    },
    "follow_official_norm": False,
    "periods": [2, 3, 5, 7, 11],
    "period_discriminator_params": HIFIGAN_PERIOD_DISCRIMINATOR_PARAMS,
}
DEFAULT_ADVERSARIAL_LOSS_PARAMS: Dict[str, Any] = {
    "average_by_discriminators": False,
    "loss_type": "mse",
}
DEFAULT_FEAT_MATCH_LOSS_PARAMS: Dict[str, Any] = {
    "average_by_discriminators": False,
    "average_by_layers": False,
    "include_final_outputs": True,
}
DEFAULT_MEL_LOSS_PARAMS: Dict[str, Any] = {
    "fs": 22050,
    "n_fft": 1024,
    "hop_length": 256,
    "win_length": None,
    "window": "hann",
    "n_mels": 80,
    "fmin": 0,
    "fmax": None,
    "log_base": None,
}
