"""CPU synthesis plan of the flow's inverse (``z = f^-1(z_p)``) on prepacked oneDNN convolutions.

After the decoder, the flow is the largest part of synthesis on a small voice (on Piper's
joe-medium: 0.14 s of 0.59 s in fp32), and almost all of it is the WaveNets' dilated
convolutions, 192 -> 384 channels with kernel 5, each paying a layout reorder per call on
the plain path (and in bfloat16 a weight reorder too). This plan runs the same maths on
:mod:`espnet2_vits_ext.acceleration.packed_conv` kernels, for inference (autograd off, CPU)
on unpadded input (batch 1, as synthesis is; a padded batch takes the plain modules):

* each WaveNet layer's gate conv is packed as two half convs with the gate's activations
  fused into them (``tanh`` into the first half, ``sigmoid`` into the second); a speaker
  embedding's term is constant over time, so it goes into their biases;
* the layer's 1x1 output conv is packed as two, residual and skip, each accumulating into
  its sum in place (the last layer's residual part, never read, is not computed);
* the WaveNet's skip scale ``sqrt(1 / layers)`` is folded into the projection's weight.

A sentence of a new length would make oneDNN build kernels for its width (~10 ms on joe), so
the latent is zero-padded to a width on the grid of
:func:`~espnet2_vits_ext.acceleration.packed_conv.grid_width`, and the WaveNets' signal past
the end is zeroed again after each conv that writes it (what the signal's own zero padding
gives the kernel-5 convs to read). The weights are plain for a grid width met once, then
packed for it, shared with the widths they pack alike for
(:meth:`~espnet2_vits_ext.acceleration.packed_conv.PackedPlanCache.plan_for_width`).

In float32 the result matches the plain path to rounding (~1e-6). In bfloat16 the WaveNets
run in bfloat16 (accumulating in float32) while the latent itself stays float32, as under
the plain path's autocast.
"""

import math
from typing import List, NamedTuple, Optional

import torch

from espnet2_vits_ext.acceleration.packed_conv import (
    CHANNELS_LAST, PackedConv, conv, conv_add, grid_width, pack_conv1d, plan_dtype, runs_natively,
    zero_padded,
)
from espnet2_vits_ext.layers.conv_norm import effective_weight


class _GatedLayer(NamedTuple):
    """One WaveNet layer, packed."""

    tanh_half: PackedConv  # gate conv, first half of its outputs
    sigmoid_half: PackedConv  # gate conv, second half
    global_conv: Optional[torch.nn.Module]  # conv1x1_glo: the speaker's term of the gate
    residual: Optional[PackedConv]  # 1x1 output conv, residual part (None in the last layer)
    skip: PackedConv  # 1x1 output conv, skip part


class _CouplingPlan(NamedTuple):
    """One coupling layer, packed."""

    input: PackedConv  # 1x1, half of the latent -> hidden
    layers: List[_GatedLayer]
    projection: PackedConv  # 1x1, skip sum -> the shift (and log-scale)


def applies(flow, x: torch.Tensor, x_mask: torch.Tensor, g: Optional[torch.Tensor]) -> bool:
    """Whether :func:`inverse` can run this call: inference on CPU, in a precision oneDNN runs
    natively, on frames that are all valid (no padding) with at most one speaker embedding."""
    return (
        not torch.is_grad_enabled()
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and runs_natively(plan_dtype(flow.inference_precision))
        and (g is None or g.size(0) == 1)
        and bool(x_mask.min() == 1)
    )


def _pack_gated_layer(layer, dtype: torch.dtype, frames: Optional[int], last: bool) -> _GatedLayer:
    gate_weight, gate_bias = effective_weight(layer.conv), layer.conv.bias
    half = gate_weight.size(0) // 2
    padding, dilation = layer.conv.padding[0], layer.conv.dilation[0]
    out_weight, out_bias = effective_weight(layer.conv1x1_out), layer.conv1x1_out.bias

    def part(weight, bias, rows, pad=0, dil=1):
        return pack_conv1d(weight[rows], None if bias is None else bias[rows], dtype, pad, dil, frames)

    residual_rows = slice(0, layer.residual_channels)
    skip_rows = slice(layer.residual_channels, None)
    return _GatedLayer(
        tanh_half=part(gate_weight, gate_bias, slice(0, half), padding, dilation),
        sigmoid_half=part(gate_weight, gate_bias, slice(half, None), padding, dilation),
        global_conv=layer.conv1x1_glo,
        residual=None if last else part(out_weight, out_bias, residual_rows),
        skip=part(out_weight, out_bias, skip_rows),
    )


def _pack_coupling(coupling, dtype: torch.dtype, frames: Optional[int]) -> _CouplingPlan:
    """Pack one coupling layer for inputs ``frames`` long (None: plain weights); its WaveNet has
    the layout ``vits_wavenet`` builds (no first or last conv, no local conditioning,
    unscaled residuals)."""
    wavenet = coupling.encoder
    skip_scale = math.sqrt(1.0 / len(wavenet.conv_layers)) if wavenet.scale_skip_connect else 1.0
    last = len(wavenet.conv_layers) - 1
    return _CouplingPlan(
        input=pack_conv1d(coupling.input_conv.weight, coupling.input_conv.bias, dtype, 0, 1, frames),
        layers=[_pack_gated_layer(layer, dtype, frames, i == last) for i, layer in enumerate(wavenet.conv_layers)],
        projection=pack_conv1d(coupling.proj.weight * skip_scale, coupling.proj.bias, dtype, 0, 1, frames),
    )


def inverse(flow, z_p: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The flow's inverse on the packed plan (call only where :func:`applies`).

    Args:
        flow: A ``ResidualAffineCouplingBlock`` of :mod:`espnet2_vits_ext.vits.flow`.
        z_p: Prior sample (1, C, T_feats), float32, every frame valid.
        g: Speaker embedding (1, global_channels, 1) or None.

    Returns:
        Tensor: ``z`` (1, C, T_feats), float32.
    """
    dtype = plan_dtype(flow.inference_precision)
    frames = z_p.size(2)
    width = grid_width(frames)
    couplings = [layer for layer in flow.flows if hasattr(layer, "encoder")]
    plans = flow.plan_for_width(dtype, width, lambda steps: [_pack_coupling(layer, dtype, steps) for layer in couplings])
    plans = iter(reversed(plans))
    x = zero_padded(z_p.unsqueeze(2), width)  # (1, C, 1, width)
    with torch.autocast("cpu", enabled=False):
        for layer in reversed(flow.flows):
            if hasattr(layer, "encoder"):
                x = _coupling_inverse(layer, next(plans), x, g, frames)
            else:  # a channel flip
                x = x.flip(1)
    return x[:, :, 0, :frames].contiguous()


def _coupling_inverse(coupling, plan: _CouplingPlan, x: torch.Tensor, g: Optional[torch.Tensor],
                      frames: int) -> torch.Tensor:
    """Undo one coupling layer on ``x`` (1, C, 1, T): ``x_b = (x_b - m) * exp(-logs)``.

    Steps from ``frames`` on are padding: the hidden signal is zeroed there after each conv
    that writes it, as it is read across time (kernel 5); the rest is read by 1x1 convs
    only, so what it holds there stays there."""

    def cut(signal: torch.Tensor) -> torch.Tensor:
        if frames < signal.size(3):
            signal[:, :, :, frames:] = 0
        return signal

    half = coupling.half_channels
    x_a, x_b = x[:, :half], x[:, half:]
    dtype = plan.input.weight.dtype
    h = cut(conv(x_a.to(dtype).contiguous(memory_format=CHANNELS_LAST), plan.input))
    skips = None
    for layer in plan.layers:
        tanh_half, sigmoid_half = layer.tanh_half, layer.sigmoid_half
        if g is not None and layer.global_conv is not None:
            term = layer.global_conv(g).reshape(-1).to(dtype)  # (2 * hidden,): the same at every frame
            tanh_half = tanh_half._replace(bias=_plus(tanh_half.bias, term[: term.numel() // 2]))
            sigmoid_half = sigmoid_half._replace(bias=_plus(sigmoid_half.bias, term[term.numel() // 2:]))
        acts = conv(h, tanh_half, "tanh").mul_(conv(h, sigmoid_half, "sigmoid"))
        if layer.residual is not None:
            h = cut(conv_add(acts, h, layer.residual, in_place=True))
        skips = conv(acts, layer.skip) if skips is None else conv_add(acts, skips, layer.skip, in_place=True)
    stats = conv(skips, plan.projection).float()
    if coupling.use_only_mean:
        x_b = x_b - stats
    else:
        m, logs = stats.split(half, dim=1)
        x_b = (x_b - m) * torch.exp(-logs)
    return torch.cat([x_a, x_b], 1).contiguous(memory_format=CHANNELS_LAST)


def _plus(bias: Optional[torch.Tensor], term: torch.Tensor) -> torch.Tensor:
    return term if bias is None else bias + term
