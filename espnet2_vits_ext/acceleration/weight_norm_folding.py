"""How the HiFi-GAN decoder box (:mod:`espnet2_vits_ext.vits.decoder`) is computed fast.

The decoder does ~97% of the work of synthesis. Its ``forward`` does not run its ~110
layers module by module: it hands the box to :func:`forward` here, which computes the
same function with plain functional calls (``F.conv1d``, ``F.conv_transpose1d``,
``F.leaky_relu``) on effective weights taken once per call, with

* weight norm folded: the effective weight ``g * v / ||v||`` of every conv is computed
  once. With autograd off (``torch.no_grad``/``inference_mode``) the folded list is kept
  on the decoder, outside its ``state_dict`` (cast to the autocast dtype when autocast is
  on), and rebuilt when any parameter changes (its storage or version counter), so
  loading weights, ``.to()`` or an optimiser step never leave it stale;
* the activation of a stage's input computed once for all of its parallel blocks;
* the MRF mean (1 / number of blocks) folded into the next conv's weights, which is exact
  because a LeakyReLU is positively homogeneous (``act(s * x) = s * act(x)`` for s > 0);
* in-place activations and residual sums on freshly computed conv outputs, which autograd
  does not save, so training runs this same code with less memory.

On CPU with autograd off the decoder goes one step further, to
:mod:`espnet2_vits_ext.acceleration.packed_decoder` (the same folded weights prepacked
for oneDNN).
"""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from espnet2_vits_ext.acceleration.packed_conv import parameter_key
from espnet2_vits_ext.layers.conv_norm import effective_weight, leaky_slope

OUTPUT_SLOPE = 0.01  # the output LeakyReLU has torch's default slope, as in HiFi-GAN

# Per-object attributes of the fast paths; never part of the state_dict or of a copy.
_CACHES = ("_folded", "_layer_memo", "_packed_plans")


def attach(decoder: torch.nn.Module, activation: str, activation_params: dict) -> None:
    """Give a freshly built decoder the (empty) state the fast paths keep.

    Args:
        decoder: The ``HiFiGANGenerator`` being constructed.
        activation: Name of its stage activation in ``torch.nn``.
        activation_params: The activation's arguments.
    """
    # A LeakyReLU (any slope) is what lets the MRF mean fold into the next conv.
    decoder._slope = leaky_slope(activation, activation_params)
    for name in _CACHES:
        setattr(decoder, name, None)
    # "bf16" makes the packed CPU plan bfloat16 (FastVITS.set_inference_precision sets it).
    decoder.inference_precision = "fp32"


def invalidate(decoder: torch.nn.Module) -> None:
    """Drop the folded weights (after the parametrisation of the convs changed)."""
    decoder._folded = None


def without_caches(state: dict) -> dict:
    """A copy of a decoder's ``__dict__`` for pickling/deepcopy, its caches emptied.

    Copies rebuild the caches on demand (packed oneDNN weights cannot be copied anyway).
    """
    state = state.copy()
    for name in _CACHES:
        state[name] = None
    return state


def _layer_order(decoder) -> List[Tuple[torch.nn.Module, float]]:
    """``(conv, scale)`` in the order :func:`forward` consumes weights (memoised).

    ``scale`` is the MRF mean folded into the conv that follows the blocks. Keyed by
    ``id(decoder)``: a copy sharing the decoder's ``__dict__`` (a DataParallel replica)
    holds other modules and builds its own list.
    """
    memo = decoder._layer_memo
    if memo is not None and memo[0] == id(decoder):
        return memo[1]
    mean = 1.0 / decoder.num_blocks
    layers = [(decoder.input_conv, 1.0)]
    if decoder.global_channels > 0:
        layers.append((decoder.global_conv, 1.0))
    blocks_per_stage = decoder.num_blocks
    for stage in range(decoder.num_upsamples):
        foldable = stage > 0 and decoder._slope is not None
        layers.append((decoder.upsamples[stage][1], mean if foldable else 1.0))
        for block in decoder.blocks[stage * blocks_per_stage:(stage + 1) * blocks_per_stage]:
            layers.extend((conv, 1.0) for conv in block.conv_modules())
    layers.append((decoder.output_conv[1], mean))
    decoder._layer_memo = (id(decoder), layers)
    return layers


def _fold(layers, dtype: Optional[torch.dtype]) -> List[Tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """Effective ``(weight, bias)`` of each ``(conv, scale)``, cast to ``dtype`` if given."""
    weights = []
    for conv, scale in layers:
        weight, bias = effective_weight(conv), conv.bias
        if scale != 1.0:
            weight = weight * scale
        if dtype is not None:
            weight, bias = weight.to(dtype), (None if bias is None else bias.to(dtype))
        weights.append((weight, bias))
    return weights


def folded_weights(decoder, x: torch.Tensor) -> List[Tuple[torch.Tensor, Optional[torch.Tensor]]]:
    """The decoder's effective ``(weight, bias)`` list; cached while autograd is off.

    Args:
        decoder: A ``HiFiGANGenerator``.
        x: The input of this call (its device selects the autocast state to fold for).

    Returns:
        List of ``(weight, bias)`` in :func:`_layer_order` order.
    """
    layers = _layer_order(decoder)
    if torch.is_grad_enabled():
        decoder._folded = None  # an optimiser step may follow: drop the stale copy
        return _fold(layers, None)
    device = x.device.type
    dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    parameters = parameter_key(conv for conv, _ in layers)
    if parameters is None:  # parameters made under inference_mode: nothing to key a cache on
        return _fold(layers, dtype)
    key = (dtype, parameters)
    if decoder._folded is None or decoder._folded[0] != key:
        decoder._folded = (key, _fold(layers, dtype))
    return decoder._folded[1]


def _stage_activation(decoder, x: torch.Tensor, stage: int) -> torch.Tensor:
    """The activation before upsampling ``stage``, in place on the LeakyReLU path."""
    if decoder._slope is None:
        return decoder.upsamples[stage][0](x)
    return F.leaky_relu(x, decoder._slope, decoder._slope > 0)


def forward(decoder, c: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The decoder's function on folded weights (any device, with or without autograd).

    Args:
        decoder: A ``HiFiGANGenerator``.
        c: Latent (B, in_channels, T_frames).
        g: Global conditioning (B, global_channels, 1) or None.

    Returns:
        Tensor: Waveform (B, out_channels, T_frames * upsample_factor).
    """
    weights = iter(folded_weights(decoder, c))
    weight, bias = next(weights)
    x = F.conv1d(c, weight, bias, 1, decoder._padding)
    if decoder.global_channels > 0:
        weight, bias = next(weights)
        if g is not None:
            x = x + F.conv1d(g, weight, bias)
    blocks_per_stage = decoder.num_blocks
    last_stage = decoder.num_upsamples - 1
    for stage, spec in enumerate(decoder._upsample_specs):
        x = _stage_activation(decoder, x, stage)
        weight, bias = next(weights)
        x = F.conv_transpose1d(x, weight, bias, spec.stride, spec.padding, spec.output_padding)
        blocks = decoder.blocks[stage * blocks_per_stage:(stage + 1) * blocks_per_stage]
        first_act = blocks[0].activation(x)  # the same for every parallel block
        fused = blocks[0].run(x, first_act, weights)
        for block in blocks[1:]:
            fused = fused.add_(block.run(x, first_act, weights))
        if stage < last_stage and decoder._slope is None and blocks_per_stage > 1:
            fused = fused.div_(blocks_per_stage)  # not foldable into another activation
        x = fused
    weight, bias = next(weights)
    x = F.leaky_relu(x, OUTPUT_SLOPE, True)
    x = F.conv1d(x, weight, bias, 1, decoder._padding)
    return x.tanh_()
