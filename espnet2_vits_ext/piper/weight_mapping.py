"""Piper's parameter names and layouts -> the ``fast_vits`` generator's ``state_dict``.

Most tensors only change name (``dec.ups.0`` -> ``decoder.upsamples.0.1``). Where the two
implementations of one function keep their weights differently, the tensor is rewritten
so that the function stays the same:

* attention projections are 1x1 convolutions in Piper and linear layers here: the
  kernel axis is dropped;
* the flows' WaveNet: ours scales the skip sum by ``sqrt(1 / layers)`` (ESPnet's choice)
  where Piper does not, so the skip rows are multiplied by ``sqrt(layers)``; Piper's last
  layer has only skip outputs, ours has residual rows too (unused): they are zero;
* the decoder's output convolution has no bias in Piper: ours is zero;
* the duration predictor's first affine flow comes as ``logs`` recovered from the graph;
* a multi-speaker voice's flows condition all WaveNet layers with one conv; ours has one
  bias-free conv per layer: the weight is split by layer, the bias joins the layer's conv.

What an exported voice lacks stays as initialised and is listed by
:data:`SYNTHESIS_ONLY_PREFIXES`: the posterior encoder and the duration predictor's
posterior (both used only in training) and its first spline flow, which synthesis skips.
"""

import math
import re
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch

# Homes an exported voice cannot fill: training-only parts of the generator.
SYNTHESIS_ONLY_PREFIXES = (
    "posterior_encoder.",
    "duration_predictor.post_",
    "duration_predictor.flows.1.",
)

_Rule = Tuple[re.Pattern, str, Callable[[np.ndarray], np.ndarray]]


def _same(array: np.ndarray) -> np.ndarray:
    return array


def _drop_kernel_axis(array: np.ndarray) -> np.ndarray:
    return array[..., 0] if array.ndim == 3 else array


_PARAMETER = r"(weight|bias)"
_RULES: List[_Rule] = [
    (r"enc_p\.emb\.weight", r"text_encoder.emb.weight", _same),
    (rf"enc_p\.encoder\.attn_layers\.(\d+)\.conv_q\.{_PARAMETER}", r"text_encoder.encoder.attention_layers.\1.query.\2", _drop_kernel_axis),
    (rf"enc_p\.encoder\.attn_layers\.(\d+)\.conv_k\.{_PARAMETER}", r"text_encoder.encoder.attention_layers.\1.key.\2", _drop_kernel_axis),
    (rf"enc_p\.encoder\.attn_layers\.(\d+)\.conv_v\.{_PARAMETER}", r"text_encoder.encoder.attention_layers.\1.value.\2", _drop_kernel_axis),
    (rf"enc_p\.encoder\.attn_layers\.(\d+)\.conv_o\.{_PARAMETER}", r"text_encoder.encoder.attention_layers.\1.output.\2", _drop_kernel_axis),
    (r"enc_p\.encoder\.attn_layers\.(\d+)\.(emb_rel_[kv])", r"text_encoder.encoder.attention_layers.\1.\2", _same),
    (r"enc_p\.encoder\.norm_layers_1\.(\d+)\.gamma", r"text_encoder.encoder.attention_norms.\1.weight", _same),
    (r"enc_p\.encoder\.norm_layers_1\.(\d+)\.beta", r"text_encoder.encoder.attention_norms.\1.bias", _same),
    (r"enc_p\.encoder\.norm_layers_2\.(\d+)\.gamma", r"text_encoder.encoder.feed_forward_norms.\1.weight", _same),
    (r"enc_p\.encoder\.norm_layers_2\.(\d+)\.beta", r"text_encoder.encoder.feed_forward_norms.\1.bias", _same),
    (rf"enc_p\.encoder\.ffn_layers\.(\d+)\.(conv_[12])\.{_PARAMETER}", r"text_encoder.encoder.feed_forward_layers.\1.\2.\3", _same),
    (rf"enc_p\.proj\.{_PARAMETER}", r"text_encoder.proj.\1", _same),
    (rf"dec\.conv_pre\.{_PARAMETER}", r"decoder.input_conv.\1", _same),
    (rf"dec\.ups\.(\d+)\.{_PARAMETER}", r"decoder.upsamples.\1.1.\2", _same),
    (rf"dec\.resblocks\.(\d+)\.convs\.(\d+)\.{_PARAMETER}", r"decoder.blocks.\1.convs1.\2.1.\3", _same),
    (rf"dec\.resblocks\.(\d+)\.(convs[12])\.(\d+)\.{_PARAMETER}", r"decoder.blocks.\1.\2.\3.1.\4", _same),
    (r"dec\.conv_post\.weight", r"decoder.output_conv.1.weight", _same),
    (rf"dec\.cond\.{_PARAMETER}", r"decoder.global_conv.\1", _same),
    (rf"flow\.flows\.(\d+)\.pre\.{_PARAMETER}", r"flow.flows.\1.input_conv.\2", _same),
    (rf"flow\.flows\.(\d+)\.post\.{_PARAMETER}", r"flow.flows.\1.proj.\2", _same),
    (rf"flow\.flows\.(\d+)\.enc\.in_layers\.(\d+)\.{_PARAMETER}", r"flow.flows.\1.encoder.conv_layers.\2.conv.\3", _same),
    (rf"dp\.(pre|proj)\.{_PARAMETER}", r"duration_predictor.\1.\2", _same),
    (rf"dp\.cond\.{_PARAMETER}", r"duration_predictor.global_conv.\1", _same),
    (r"dp\.flows\.0\.(m|logs)", r"duration_predictor.flows.0.\1", _same),
    (rf"dp\.flows\.(\d+)\.pre\.{_PARAMETER}", r"duration_predictor.flows.\1.input_conv.\2", _same),
    (rf"dp\.flows\.(\d+)\.proj\.{_PARAMETER}", r"duration_predictor.flows.\1.proj.\2", _same),
    (r"emb_g\.weight", r"global_emb.weight", _same),
]
# The dilated depth-separable convs: Piper's four lists -> the slots of our Sequential.
for _piper_list, _slot in (("convs_sep", "0"), ("convs_1x1", "5"), ("norms_1", "2"), ("norms_2", "7")):
    _leaf = r"(weight|bias)" if _piper_list.startswith("convs") else r"(gamma|beta)"
    _RULES.append((rf"dp\.convs\.{_piper_list}\.(\d+)\.{_leaf}", rf"duration_predictor.dds.convs.\1.{_slot}.\2", _same))
    _RULES.append((rf"dp\.flows\.(\d+)\.convs\.{_piper_list}\.(\d+)\.{_leaf}",
                   rf"duration_predictor.flows.\1.dds_conv.convs.\2.{_slot}.\3", _same))
_COMPILED = [(re.compile(f"^{pattern}$"), target, transform) for pattern, target, transform in _RULES]
_SKIP_LAYER = re.compile(r"^flow\.flows\.(\d+)\.enc\.res_skip_layers\.(\d+)\.(weight|bias)$")
_NORM_LEAF = {"gamma": "weight", "beta": "bias"}


def _skip_layer(match: re.Match, array: np.ndarray, layers: int, hidden: int) -> Tuple[str, np.ndarray]:
    """Piper's residual/skip 1x1 conv of a flow's WaveNet layer -> our ``conv1x1_out``."""
    flow, layer, leaf = match.groups()
    array = array.copy()
    if int(layer) == layers - 1:  # skip rows only: prepend zero (unused) residual rows
        array = np.concatenate([np.zeros_like(array), array], axis=0)
    array[hidden:] *= math.sqrt(layers)  # undo our sqrt(1 / layers) on the skip sum
    return f"flow.flows.{flow}.encoder.conv_layers.{layer}.conv1x1_out.{leaf}", array


_COND_LAYER = re.compile(r"^flow\.flows\.(\d+)\.enc\.cond_layer\.(weight|bias)$")


def _split_speaker_conditioning(weights: Dict[str, torch.Tensor], conditioning: Dict[str, np.ndarray], layers: int):
    """A flow WaveNet's one speaker conv (all layers' gates) -> one per layer (ours).

    Ours has no bias there; the bias slice is added to the layer's dilated conv bias,
    which is summed into the same gate input.
    """
    for name, array in conditioning.items():
        flow, leaf = _COND_LAYER.match(name).groups()
        for layer, part in enumerate(np.split(array, layers, axis=0)):
            prefix = f"flow.flows.{flow}.encoder.conv_layers.{layer}"
            if leaf == "weight":
                weights[f"{prefix}.conv1x1_glo.weight"] = torch.from_numpy(np.array(part))
            else:
                weights[f"{prefix}.conv.bias"] = weights[f"{prefix}.conv.bias"] + torch.from_numpy(part)


def to_generator_weights(parameters: Dict[str, np.ndarray], flow_layers: int, hidden: int):
    """Rename and rewrite Piper's parameters into plain generator weights.

    Args:
        parameters: Piper-named weights.
        flow_layers: WaveNet layers per flow coupling (to spot the last one).
        hidden: Hidden channels (where residual rows end and skip rows begin).

    Returns:
        Dict[str, Tensor]: generator names with plain ``weight``/``bias`` (before weight norm).
        List[str]: Piper names no rule maps.
    """
    weights: Dict[str, torch.Tensor] = {}
    unmapped = []
    conditioning = {name: array for name, array in parameters.items() if _COND_LAYER.match(name)}
    for name, array in parameters.items():
        if name in conditioning:
            continue
        skip = _SKIP_LAYER.match(name)
        if skip:
            target, array = _skip_layer(skip, array, flow_layers, hidden)
            weights[target] = torch.from_numpy(np.array(array))
            continue
        for pattern, replacement, transform in _COMPILED:
            if pattern.match(name):
                target = pattern.sub(replacement, name)
                leaf = target.rsplit(".", 1)
                if leaf[1] in _NORM_LEAF:
                    target = f"{leaf[0]}.{_NORM_LEAF[leaf[1]]}"
                weights[target] = torch.from_numpy(np.array(transform(array)))
                break
        else:
            unmapped.append(name)
    _split_speaker_conditioning(weights, conditioning, flow_layers)
    if "decoder.output_conv.1.weight" in weights:
        weights.setdefault("decoder.output_conv.1.bias", torch.zeros(1))
    return weights, unmapped


def _weight_norm_pair(weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(weight_g, weight_v)`` with ``weight_g * weight_v / |weight_v| == weight`` per output row.

    A zero row gets direction ones and magnitude zero (a zero ``weight_v`` would divide by zero).
    """
    norms = weight.flatten(1).norm(dim=1).reshape(-1, *([1] * (weight.dim() - 1)))
    direction = torch.where(norms > 0, weight, torch.ones_like(weight))
    return norms, direction


def load_into_generator(generator: torch.nn.Module, weights: Dict[str, torch.Tensor]):
    """Copy plain weights into a generator whose convs may be weight-normalised.

    Args:
        generator: A freshly built ``VITSGenerator``.
        weights: Output of :func:`to_generator_weights`.

    Returns:
        List[str]: weights with no home of their name and shape (``name (shape)``).
        List[str]: homes left without a tensor, outside :data:`SYNTHESIS_ONLY_PREFIXES`.
    """
    state = generator.state_dict()
    filled = set()
    homeless = []
    for name, tensor in weights.items():
        stem = name[: -len("weight")]
        if name.endswith("weight") and f"{stem}weight_g" in state and f"{stem}weight_v" in state:
            pairs = dict(zip((f"{stem}weight_g", f"{stem}weight_v"), _weight_norm_pair(tensor)))
        else:
            pairs = {name: tensor}
        if any(key not in state or state[key].shape != value.shape for key, value in pairs.items()):
            homeless.append(f"{name} {tuple(tensor.shape)}")
            continue
        for key, value in pairs.items():
            state[key].copy_(value.to(state[key].dtype))
            filled.add(key)
    unfilled = [
        key for key in state
        if key not in filled and not key.startswith(SYNTHESIS_ONLY_PREFIXES) and not key.endswith("num_batches_tracked")
    ]
    generator.load_state_dict(state)
    return homeless, unfilled
