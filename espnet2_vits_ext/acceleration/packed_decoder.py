"""CPU inference plan of the HiFi-GAN decoder: oneDNN kernels on prepacked weights.

The decoder is ~97% of the work of synthesis (54 GFLOP per second of audio). On CPU its
plain path (``F.conv1d`` on ``(B, C, T)`` tensors) pays, at every call of every one of its
~110 convolutions, a reorder of the activations into oneDNN's blocked layout and back and,
in bfloat16, a reorder of the weights; the activations and residual sums are extra passes
over long signals (up to 32 channels x 256 samples per frame). This plan, for inference
only (autograd off, CPU, LeakyReLU activations):

* keeps the signal as ``(B, C, 1, T)`` in channels-last layout and packs every folded
  weight once (:mod:`espnet2_vits_ext.acceleration.packed_conv`; rebuilt when the
  decoder's folded weights are: any parameter change);
* fuses what follows a convolution into it where the value before is not needed again:
  ``conv1 -> LeakyReLU`` of each residual step, ``conv2 + residual``, the input conv's
  LeakyReLU and the output conv's tanh;
* runs each upsampling stage in time chunks with a halo covering the stage's receptive
  field (:func:`_stage`), so that its temporaries stay in cache and the allocator reuses
  them, instead of every elementwise pass streaming (and page-faulting in) signals of tens
  of MB. Works for both HiFi-GAN residual block types (``"1"``: two convs per step,
  ``"2"``: one, as Piper's medium voices).

The maths is the decoder's (same folded weights, the MRF mean folded into the next conv);
in float32 it matches the plain path to rounding (~1e-7). In bfloat16 (``precision``
``"bf16"`` or CPU autocast) weights and activations are bfloat16 and accumulation is in
float32 inside oneDNN; the output is returned in float32.
"""

from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

from espnet2_vits_ext.acceleration import weight_norm_folding
from espnet2_vits_ext.acceleration.packed_conv import (
    CHANNELS_LAST, PackedConv, conv, conv_add, conv_transpose, pack_conv1d, plan_dtype,
    runs_natively,
)

# Bytes of one signal (channels x samples) in a time chunk of a stage: 2 MB, so that a chunk's
# handful of temporaries stay in cache (L3). Measured on joe-medium (AVX512-BF16 EPYC, 2
# threads): in fp32 (512K elements) 1.6x faster than unchunked, and below 64K elements the
# per-call overhead of ~100 small convolutions per chunk dominates; in bf16, 2 MB (1M elements)
# is 4% faster than 512K elements (same-process A/B, 24 rounds).
CHUNK_BYTES = 2 * 1024 * 1024


def applies(decoder, c: torch.Tensor) -> bool:
    """Whether :func:`forward` can run this call: inference on CPU with LeakyReLU, in a
    precision oneDNN runs natively (bf16 autocast on a CPU without bfloat16 units takes the
    plain modules, which emulate it)."""
    return (
        not torch.is_grad_enabled()
        and c.device.type == "cpu"
        and c.dtype == torch.float32
        and decoder._slope is not None
        and decoder._slope > 0
        and runs_natively(plan_dtype(decoder.inference_precision))
    )


class DecoderPlan:
    """Packed convolutions of one decoder for one dtype, in the decoder's weight order.

    Each stage's convolutions are packed for the width of a whole time chunk with its halos
    (:func:`_chunking`), which is what they see in all but a sentence's last chunk: oneDNN
    lays a packed weight out for one input width, and another layout costs a reorder in every
    call (see :func:`espnet2_vits_ext.acceleration.packed_conv.pack_conv1d`).
    """

    def __init__(self, decoder, folded: list, dtype: torch.dtype, frames: int):
        """Pack ``folded`` (the decoder's ``(weight, bias)`` list); ``frames``, the latent
        length of this call, sizes the input conv (the one conv that sees the whole latent)."""
        self.dtype = dtype
        self.source = folded  # the folded list this plan was built from (identity = key)
        nb = decoder.num_blocks
        # Receptive-field radius of each stage's MRF (the deepest block's), in samples.
        self.radii = [
            max(sum(layer.padding1 + (layer.padding2 if layer.has_conv2 else 0) for layer in block._specs)
                for block in decoder.blocks[i * nb:(i + 1) * nb])
            for i in range(decoder.num_upsamples)
        ]
        element_size = torch.empty((), dtype=dtype).element_size()
        weights = iter(folded)
        self.input = pack_conv1d(*next(weights), dtype, decoder._padding, 1, frames)
        self.global_weights = next(weights) if decoder.global_channels > 0 else None
        self.upsamples: List[PackedConv] = []
        self.blocks: List[List[Tuple[PackedConv, Optional[PackedConv]]]] = []
        for i, spec in enumerate(decoder._upsample_specs):
            chunk, halo = _chunking(decoder, self.radii, i, element_size)
            window = chunk + 2 * halo
            self.upsamples.append(
                pack_conv1d(*next(weights), dtype, spec.padding, 1, window, (spec.stride, spec.output_padding))
            )
            steps = window * spec.stride
            for k in range(i * nb, (i + 1) * nb):
                steps_of_block = []
                for layer in decoder.blocks[k]._specs:
                    conv1 = pack_conv1d(*next(weights), dtype, layer.padding1, layer.dilation, steps)
                    conv2 = pack_conv1d(*next(weights), dtype, layer.padding2, 1, steps) if layer.has_conv2 else None
                    steps_of_block.append((conv1, conv2))
                self.blocks.append(steps_of_block)
        # The output conv stays fp32 in a bf16 plan: rounding the waveform (and its conv's input)
        # to bf16's 8-bit mantissa cost 1 dB of the 2.3 dB MCD bf16 had on a trained voice.
        self.output = pack_conv1d(*next(weights), torch.float32, decoder._padding, 1, steps)


def _chunking(decoder, radii: List[int], stage: int, element_size: int) -> Tuple[int, int]:
    """``(chunk, halo)`` of ``stage``, in its input samples: a chunk's output signal holds
    :data:`CHUNK_BYTES`, and the halo covers the transposed conv's reach (two input samples)
    and the receptive field of the blocks (and after the last stage, of the output conv)."""
    stride = decoder._upsample_specs[stage].stride
    last = stage == decoder.num_upsamples - 1
    radius = radii[stage] + (decoder._padding if last else 0)
    halo = 2 + -(-radius // stride)
    channels = decoder.upsamples[stage][1].out_channels
    return max(1, CHUNK_BYTES // (element_size * channels * stride)), halo


def _plan(decoder, c: torch.Tensor, dtype: torch.dtype) -> DecoderPlan:
    """The decoder's cached plan for ``dtype``, rebuilt when its folded weights are."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        folded = weight_norm_folding.folded_weights(decoder, c)  # a new list when weights change
    plans = decoder._packed_plans
    if plans is None:
        plans = decoder._packed_plans = {}
    plan = plans.get(dtype)
    if plan is None or plan.source is not folded:
        plan = plans[dtype] = DecoderPlan(decoder, folded, dtype, c.size(2))
    return plan


def forward(decoder, c: torch.Tensor, g: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The decoder's ``forward`` on the packed plan (call only where :func:`applies`).

    Args:
        decoder: A ``HiFiGANGenerator`` of :mod:`espnet2_vits_ext.vits.decoder`.
        c: Latent (B, in_channels, T_frames), float32.
        g: Global conditioning (B, global_channels, 1) or None.

    Returns:
        Tensor: Waveform (B, out_channels, T_frames * upsample_factor), float32.
    """
    dtype = plan_dtype(decoder.inference_precision)
    plan = _plan(decoder, c, dtype)
    with torch.autocast("cpu", enabled=False):
        x = _input_stage(decoder, plan, c.to(dtype), None if g is None else g.to(dtype))
        for stage in range(len(plan.upsamples)):
            x = _stage(decoder, plan, stage, x)
        return x.squeeze(2).float()


def _input_stage(decoder, plan: DecoderPlan, c: torch.Tensor, g: Optional[torch.Tensor]) -> torch.Tensor:
    """``act(input_conv(c) [+ global_conv(g)])`` as (B, C, 1, T_frames), channels-last (the
    layout every kernel below keeps; a 1-D conv is a 2-D conv of height 1)."""
    slope = decoder._slope
    x = c.unsqueeze(2).contiguous(memory_format=CHANNELS_LAST)
    if g is None:
        return conv(x, plan.input, "leaky_relu", [slope])  # the first upsampling's act
    x = conv(x, plan.input)
    if plan.global_weights is not None:
        weight, bias = plan.global_weights
        x = x + F.conv1d(g, weight, bias).unsqueeze(2)  # (B, C, 1, 1)
    return F.leaky_relu_(x.contiguous(memory_format=CHANNELS_LAST), slope)


def _stage(decoder, plan: DecoderPlan, stage: int, x: torch.Tensor) -> torch.Tensor:
    """One upsampling stage on its activated input ``x`` (B, C, 1, T), in time chunks.

    The stage (transposed conv, then the MRF blocks, then the next activation; after the
    last stage also the output conv and tanh) runs chunk by chunk so that its temporaries
    (five or so signals as long as the chunk) stay in cache instead of streaming tensors of
    tens of MB through memory for every elementwise pass. Every chunk is computed with
    ``halo`` extra input samples each side, which covers the receptive field of the
    transposed conv (two input samples) and of the blocks: the chunk's core is then exactly
    what the whole signal gives, and at the signal's ends zero padding is the whole
    signal's own.

    Returns:
        Tensor: The next stage's activated input (B, C / 2, 1, T * stride), or after the
        last stage the waveform (B, out_channels, 1, T * upsample_factor).
    """
    stride = decoder._upsample_specs[stage].stride
    last = stage == len(plan.upsamples) - 1
    chunk, halo = _chunking(decoder, plan.radii, stage, x.element_size())
    batch, _, _, steps = x.shape
    out_channels = decoder.output_conv[1].out_channels if last else decoder.upsamples[stage][1].out_channels
    out_dtype = torch.float32 if last else x.dtype  # the waveform is fp32 (see DecoderPlan.output)
    out = torch.empty((batch, out_channels, 1, steps * stride), dtype=out_dtype, memory_format=CHANNELS_LAST)
    for start in range(0, steps, chunk):
        end = min(steps, start + chunk)
        low, high = max(0, start - halo), min(steps, end + halo)
        y = _stage_chunk(decoder, plan, stage, x[:, :, :, low:high], last)
        core = y[:, :, :, (start - low) * stride:(end - low) * stride]
        out[:, :, :, start * stride:end * stride].copy_(core)
    return out


def _stage_chunk(decoder, plan: DecoderPlan, stage: int, x: torch.Tensor, last: bool) -> torch.Tensor:
    """Transposed conv, MRF blocks and what follows them, on one chunk (B, C, 1, T_chunk)."""
    slope = decoder._slope
    x = conv_transpose(x, plan.upsamples[stage])
    nb = decoder.num_blocks
    first_act = F.leaky_relu(x, slope)  # shared by the parallel blocks
    fused = None  # the MRF sum (its 1/nb mean is folded into the next conv)
    for k, steps in enumerate(plan.blocks[stage * nb:(stage + 1) * nb]):
        y = x
        for index, (conv1, conv2) in enumerate(steps):
            h = first_act if index == 0 else F.leaky_relu(y, slope)
            if conv2 is not None:
                h = conv(h, conv1, "leaky_relu", [slope])
            # y is ours to overwrite after the first step (before, it is x, which the
            # last block may overwrite too: no other block reads it after its first step).
            y = conv_add(h, y, conv1 if conv2 is None else conv2, in_place=index > 0 or k == nb - 1)
        if y is x and k < nb - 1:  # a block without steps is the identity
            y = x.clone()
        fused = y if fused is None else fused.add_(y)
    if not last:
        return F.leaky_relu_(fused, slope)  # the next upsampling's act
    # The output LeakyReLU has torch's default slope (HiFi-GAN's), not the blocks'.
    return conv(F.leaky_relu_(fused, decoder.output_conv[0].negative_slope).float(), plan.output, "tanh")
