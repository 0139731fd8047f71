"""Streaming synthesis: the waveform of one utterance, chunk by chunk, as the decoder makes it.

The text encoder, the duration predictor and the flow run once over the whole utterance (they
are cheap next to the decoder, and the flow's WaveNet sees the whole latent as in whole-sentence
synthesis); only the decoder, about 97% of the work, is split. The latent ``z`` (B, C, T_frames)
is decoded in windows of consecutive frames, each widened on both sides by the decoder's
receptive-field margin (:func:`decoder_margin_frames`); the samples those margins produce are cut
away, so every sample kept was computed from the same latent frames as in a whole-sentence decode.
The joined chunks therefore equal the whole-sentence waveform up to floating-point summation order
(a convolution over a shorter signal may be blocked differently by oneDNN): about 1e-6 in fp32.

The first window is short (the first audio comes early), later ones grow to ``max_frames``
(fewer windows, so fewer margins decoded twice).
"""

import math
from typing import Iterator, List, Optional

import torch

__all__ = ["decoder_margin_frames", "chunk_bounds", "decode_in_chunks", "synthesize_streaming"]


def _conv_halo(conv: torch.nn.Conv1d) -> int:
    """Samples on each side of an output sample that a 1-D conv reads (at its input rate)."""
    return conv.dilation[0] * (conv.kernel_size[0] - 1) // 2


def decoder_margin_frames(decoder) -> int:
    """Latent frames on each side of a frame that can change its output samples.

    An upper bound from the decoder's geometry: the input conv's half-kernel, then per
    upsampling stage the transposed conv's reach (``ceil(kernel / stride)`` input frames) and
    the widest of the stage's parallel residual blocks (the sum of the half-kernels of its
    convs, which run one after another), then the output conv's half-kernel; each converted
    to latent frames at its stage's sample rate.

    Args:
        decoder: A ``HiFiGANGenerator`` (``input_conv``, ``upsamples[i][1]``, ``blocks``,
            ``output_conv[1]``).

    Returns:
        int: The margin in latent frames.
    """
    halo_frames = float(_conv_halo(decoder.input_conv))
    rate = 1  # samples per latent frame at the current stage
    blocks_per_stage = len(decoder.blocks) // len(decoder.upsamples)
    for stage, upsample in enumerate(decoder.upsamples):
        transposed = upsample[1]
        stride, kernel = transposed.stride[0], transposed.kernel_size[0]
        halo_frames += math.ceil(kernel / stride) / rate
        rate *= stride
        blocks = decoder.blocks[stage * blocks_per_stage:(stage + 1) * blocks_per_stage]
        widest = max(
            sum(_conv_halo(module) for module in block.modules() if isinstance(module, torch.nn.Conv1d))
            for block in blocks
        )
        halo_frames += widest / rate
    halo_frames += _conv_halo(decoder.output_conv[1]) / rate
    return math.ceil(halo_frames)


def chunk_bounds(frames: int, first_frames: int, max_frames: int) -> List[tuple]:
    """``(start, end)`` latent frames of each chunk: ``first_frames``, then doubling up to
    ``max_frames``, covering ``0 .. frames`` without gaps."""
    if first_frames < 1 or max_frames < first_frames:
        raise ValueError(f"chunk sizes: need 1 <= first_frames ({first_frames}) <= max_frames ({max_frames})")
    bounds, start, size = [], 0, first_frames
    while start < frames:
        end = min(frames, start + size)
        bounds.append((start, end))
        start, size = end, min(max_frames, 2 * size)
    return bounds


def decode_in_chunks(
    decoder,
    z: torch.Tensor,
    g: Optional[torch.Tensor] = None,
    first_frames: int = 16,
    max_frames: int = 256,
    margin: Optional[int] = None,
) -> Iterator[torch.Tensor]:
    """Decode ``z`` window by window, yielding each window's own samples.

    Args:
        decoder: A ``HiFiGANGenerator``.
        z: Latent (B, C, T_frames), already masked.
        g: Global conditioning (B, global_channels, 1) or None.
        first_frames: Frames of the first chunk (its audio: ``first_frames * hop`` samples).
        max_frames: Largest chunk, frames.
        margin: Receptive-field margin in frames (default: :func:`decoder_margin_frames`).

    Yields:
        Tensor: Waveform chunk (B, T_chunk * hop); joined they are (B, T_frames * hop).
    """
    hop = decoder.upsample_factor
    margin = decoder_margin_frames(decoder) if margin is None else margin
    frames = z.size(2)
    for start, end in chunk_bounds(frames, first_frames, max_frames):
        left, right = max(0, start - margin), min(frames, end + margin)
        waveform = decoder(z[:, :, left:right], g=g)  # (B, 1, (right - left) * hop)
        yield waveform[:, 0, (start - left) * hop:(end - left) * hop]


def synthesize_streaming(
    model,
    text: torch.Tensor,
    first_frames: int = 16,
    max_frames: int = 256,
    **inference_options,
) -> Iterator[torch.Tensor]:
    """Synthesise one utterance with a ``FastVITS`` model, yielding waveform chunks.

    Joined, the chunks equal ``model.inference(text, **inference_options)["wav"]`` drawn with
    the same random state (to float rounding, see the module docstring).

    Args:
        model: A ``FastVITS`` (``model.generator.decoder`` is its HiFi-GAN decoder).
        text: Token ids (T_text,).
        first_frames: Latent frames of the first chunk.
        max_frames: Largest chunk, latent frames.
        **inference_options: As ``FastVITS.inference`` (``sids``, ``spembs``, ``lids``,
            ``durations``, ``noise_scale``, ``noise_scale_dur``, ``alpha``, ``max_len``).

    Yields:
        Tensor: Waveform chunk (T_chunk,).
    """
    if inference_options.pop("use_teacher_forcing", False):
        raise ValueError("synthesize_streaming: teacher forcing is not a streaming use")
    decoder = model.generator.decoder
    with torch.inference_mode():
        latent = model.synthesis_latent(text, **inference_options)
        for chunk in decode_in_chunks(decoder, latent.latent, latent.condition, first_frames, max_frames):
            yield chunk[0]
