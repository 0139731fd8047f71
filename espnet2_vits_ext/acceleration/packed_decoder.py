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
  ``"2"``: one, as Piper's medium voices);
* pads the latent and the chunk that holds a stage's end to widths on a coarse grid
  (:func:`padded_width`), so that a new sentence length reuses oneDNN's kernels instead of
  compiling ~40 of its own.

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
    CHANNELS_LAST, PackedConv, PlansByLayout, conv, conv_add, conv_transpose, grid_width, pack_conv1d,
    plan_dtype, runs_natively, zero_padded,
)

# Bytes of one signal (channels x samples) in a time chunk of a stage: 2 MB, so that a chunk's
# handful of temporaries stay in cache (L3). Measured on joe-medium (AVX512-BF16 EPYC, 2
# threads): in fp32 (512K elements) 1.6x faster than unchunked, and below 64K elements the
# per-call overhead of ~100 small convolutions per chunk dominates; in bf16, 2 MB (1M elements)
# is 4% faster than 512K elements (same-process A/B, 24 rounds).
CHUNK_BYTES = 2 * 1024 * 1024

# oneDNN compiles a kernel for every input width a convolution meets (about 1 ms each), and a
# sentence's length gives the chunk that holds its end, and the input conv, widths of their
# own: ~40 new kernels, 25-40 ms, at every new length on joe-medium. So those are zero-padded
# to a width on a coarse grid, and each conv's output beyond the valid samples is zeroed
# again (the whole signal's own zero padding), so that their kernels are built once per
# grid width, not per sentence. The grid step is 1/WIDTH_STEPS of the stage's chunk window
# or 1/8 of the width, whichever is larger: at most ~WIDTH_STEPS widths a stage below the
# window, and at most 1/8 of a short signal computed on padding.
WIDTH_STEPS = 16


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
    call (see :func:`espnet2_vits_ext.acceleration.packed_conv.pack_conv1d`). The padded end
    chunks run on these packs too: for the decoder's stage shapes no grid width was slower on
    them than on packs of its own (measured in bf16 on joe-medium; the flow's shapes do differ).
    The input conv sees the whole latent, so it is packed per padded latent width that
    comes twice, widths that pack alike sharing one pack (:meth:`input_conv`).
    """

    def __init__(self, decoder, folded: list, dtype: torch.dtype):
        """Pack ``folded`` (the decoder's ``(weight, bias)`` list)."""
        self.dtype = dtype
        self.source = folded  # the folded list this plan was built from (identity = key)
        self._padding = decoder._padding
        nb = decoder.num_blocks
        # Receptive-field radius of each stage's MRF (the deepest block's), in samples.
        self.radii = [
            max(sum(layer.padding1 + (layer.padding2 if layer.has_conv2 else 0) for layer in block._specs)
                for block in decoder.blocks[i * nb:(i + 1) * nb])
            for i in range(decoder.num_upsamples)
        ]
        element_size = torch.empty((), dtype=dtype).element_size()
        weights = iter(folded)
        self._input_weights = next(weights)
        self._input_packs = PlansByLayout()
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

    def input_conv(self, width: int) -> PackedConv:
        """The input conv for latents ``width`` frames long (a padded width): plain the first
        time, then packed for it, shared with the widths it packs alike for."""
        return self._input_packs.plan(
            width, lambda steps: pack_conv1d(*self._input_weights, self.dtype, self._padding, 1, steps)
        )


def padded_width(width: int, window: int) -> int:
    """``width`` on the grid of :func:`grid_width` with a step of at least ``window /
    WIDTH_STEPS`` (``window``: the stage's chunk plus both halos)."""
    return grid_width(width, -(-window // WIDTH_STEPS))


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
        plan = plans[dtype] = DecoderPlan(decoder, folded, dtype)
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
    layout every kernel below keeps; a 1-D conv is a 2-D conv of height 1).

    The latent is zero-padded to a :func:`padded_width` (what the conv's own padding reads
    there anyway) and the frames past its end are cut from the result, a view."""
    slope = decoder._slope
    frames = c.size(2)
    chunk, halo = _chunking(decoder, plan.radii, 0, c.element_size())
    width = padded_width(frames, chunk + 2 * halo)
    x = zero_padded(c.unsqueeze(2), width)
    packed = plan.input_conv(width)
    if g is None:
        return conv(x, packed, "leaky_relu", [slope])[..., :frames]  # the first upsampling's act
    x = conv(x, packed)[..., :frames]
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
    signal's own. The chunk that holds the signal's end is zero-padded to a
    :func:`padded_width`, its tail zeroed after every conv (:func:`_stage_chunk`).

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
        piece, valid = x[:, :, :, low:high], None
        width = padded_width(high - low, chunk + 2 * halo)
        if high == steps and width > high - low:
            valid = (high - low) * stride
            piece = zero_padded(piece, width)
        y = _stage_chunk(decoder, plan, stage, piece, last, valid)
        core = y[:, :, :, (start - low) * stride:(end - low) * stride]
        out[:, :, :, start * stride:end * stride].copy_(core)
    return out


def _stage_chunk(decoder, plan: DecoderPlan, stage: int, x: torch.Tensor, last: bool,
                 valid: Optional[int] = None) -> torch.Tensor:
    """Transposed conv, MRF blocks and what follows them, on one chunk (B, C, 1, T_chunk).

    ``valid``: for a zero-padded chunk, the output samples before the padding; every conv's
    output is zeroed from there on, so that the next conv reads zeros past the signal's end
    as it would on the unpadded signal. None: nothing padded."""
    slope = decoder._slope

    def cut(t: torch.Tensor) -> torch.Tensor:
        if valid is not None:
            t[:, :, :, valid:] = 0
        return t

    x = cut(conv_transpose(x, plan.upsamples[stage]))
    nb = decoder.num_blocks
    first_act = F.leaky_relu(x, slope)  # shared by the parallel blocks
    fused = None  # the MRF sum (its 1/nb mean is folded into the next conv)
    for k, steps in enumerate(plan.blocks[stage * nb:(stage + 1) * nb]):
        y = x
        for index, (conv1, conv2) in enumerate(steps):
            h = first_act if index == 0 else F.leaky_relu(y, slope)
            if conv2 is not None:
                h = cut(conv(h, conv1, "leaky_relu", [slope]))
            # y is ours to overwrite after the first step (before, it is x, which the
            # last block may overwrite too: no other block reads it after its first step).
            y = cut(conv_add(h, y, conv1 if conv2 is None else conv2, in_place=index > 0 or k == nb - 1))
        if y is x and k < nb - 1:  # a block without steps is the identity
            y = x.clone()
        fused = y if fused is None else fused.add_(y)
    if not last:
        return F.leaky_relu_(fused, slope)  # the next upsampling's act
    # The output LeakyReLU has torch's default slope (HiFi-GAN's), not the blocks'.
    return conv(F.leaky_relu_(fused, decoder.output_conv[0].negative_slope).float(), plan.output, "tanh")
