"""Read a Piper voice's architecture from its weight shapes and convolution attributes.

The result has the keys of :data:`espnet2_vits_ext.piper.presets.PRESETS`' generator
parameters plus those Piper never changes (flow and duration predictor sizes), so that
:func:`~espnet2_vits_ext.piper.presets.preset_of` can compare every one.
"""

import re
from typing import Any, Dict, List

import numpy as np


def _count(parameters: Dict[str, np.ndarray], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({match.group(1) for name in parameters if (match := regex.match(name))})


def _decoder_architecture(parameters: Dict[str, np.ndarray], attributes: Dict[str, Dict[str, List[int]]]):
    stages = _count(parameters, r"^dec\.ups\.(\d+)\.weight$")
    blocks = _count(parameters, r"^dec\.resblocks\.(\d+)\.")
    per_stage = blocks // stages if stages else 0
    resblock_type = "2" if "dec.resblocks.0.convs.0.weight" in parameters else "1"
    dilated = "convs" if resblock_type == "2" else "convs1"
    kernels, dilations = [], []
    for block in range(per_stage):
        steps = _count(parameters, rf"^dec\.resblocks\.{block}\.{dilated}\.(\d+)\.weight$")
        kernels.append(int(parameters[f"dec.resblocks.{block}.{dilated}.0.weight"].shape[-1]))
        dilations.append([
            int(attributes.get(f"dec.resblocks.{block}.{dilated}.{step}", {}).get("dilations", [1])[0])
            for step in range(steps)
        ])
    return {
        "decoder_kernel_size": int(parameters["dec.conv_pre.weight"].shape[-1]),
        "decoder_channels": int(parameters["dec.conv_pre.weight"].shape[0]),
        "decoder_upsample_scales": [
            int(attributes.get(f"dec.ups.{stage}", {}).get("strides", [0])[0]) for stage in range(stages)
        ],
        "decoder_upsample_kernel_sizes": [
            int(parameters[f"dec.ups.{stage}.weight"].shape[-1]) for stage in range(stages)
        ],
        "decoder_resblock_type": resblock_type,
        "decoder_resblock_kernel_sizes": kernels,
        "decoder_resblock_dilations": dilations,
    }


def read_architecture(parameters: Dict[str, np.ndarray], attributes: Dict[str, Dict[str, List[int]]]) -> Dict[str, Any]:
    """Generator parameters of a Piper voice.

    Args:
        parameters: Piper-named weights (:func:`~espnet2_vits_ext.piper.onnx_weights.piper_parameters`).
        attributes: Convolution strides and dilations by module path.

    Returns:
        Dict[str, Any]: e.g. ``{"hidden_channels": 192, "decoder_resblock_type": "2", ...}``.

    Raises:
        KeyError: a tensor every Piper voice has is missing (the caller names the file).
    """
    hidden = int(parameters["enc_p.proj.weight"].shape[1])
    head_dim = int(parameters["enc_p.encoder.attn_layers.0.emb_rel_k"].shape[-1])
    feed_forward = parameters["enc_p.encoder.ffn_layers.0.conv_1.weight"]
    return {
        "hidden_channels": hidden,
        "text_encoder_type": "vits_transformer",
        "text_encoder_attention_heads": hidden // head_dim,
        "text_encoder_ffn_expand": int(feed_forward.shape[0]) // hidden,
        "text_encoder_blocks": _count(parameters, r"^enc_p\.encoder\.attn_layers\.(\d+)\."),
        "text_encoder_positionwise_conv_kernel_size": int(feed_forward.shape[-1]),
        **_decoder_architecture(parameters, attributes),
        "flow_flows": _count(parameters, r"^flow\.flows\.(\d+)\.pre\.weight$"),
        "flow_layers": _count(parameters, r"^flow\.flows\.0\.enc\.in_layers\.(\d+)\.weight$"),
        "flow_kernel_size": int(parameters["flow.flows.0.enc.in_layers.0.weight"].shape[-1]),
        "stochastic_duration_predictor_kernel_size": int(parameters["dp.convs.convs_sep.0.weight"].shape[-1]),
        "stochastic_duration_predictor_dds_conv_layers": _count(parameters, r"^dp\.convs\.convs_sep\.(\d+)\.weight$"),
    }
