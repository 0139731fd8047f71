"""Streaming synthesis (espnet2_vits_ext.inference.streaming): chunks joined = whole sentence.

References are computed here: the whole-sentence waveform of the same model, seed and options,
and the decoder's reach measured by perturbing one latent frame. Timing is not tested (the
first-audio latency is in bench/).
"""

import pytest
import torch

from helpers.tiny_configs import TINY_AUX_CHANNELS, TINY_VOCAB, tiny_conditioned_tts_conf, tiny_tts_conf

from espnet2_vits_ext.inference.streaming import (
    chunk_bounds,
    decode_in_chunks,
    decoder_margin_frames,
    synthesize_streaming,
)
from espnet2_vits_ext.vits.fast_vits import FastVITS

# fp32: the kept samples see the same latent frames as in the whole decode; only the summation
# order of a convolution over a shorter signal may differ (a few float32 ulps of values <= 1).
FP32_TOLERANCE = 1e-5


def tiny_model(conf=None) -> FastVITS:
    torch.manual_seed(0)
    return FastVITS(idim=TINY_VOCAB, odim=TINY_AUX_CHANNELS, **(conf or tiny_tts_conf())).eval()


def whole_and_streamed(model, text, first_frames, max_frames, **options):
    torch.manual_seed(7)
    with torch.inference_mode():
        whole = model.inference(text, **options)["wav"]
    torch.manual_seed(7)
    chunks = list(synthesize_streaming(model, text, first_frames, max_frames, **options))
    return whole, chunks


@pytest.mark.parametrize("first_frames,max_frames", [(1, 1), (3, 8), (5, 40), (1000, 1000)])
def test_joined_chunks_equal_the_whole_sentence(first_frames, max_frames):
    model = tiny_model()
    text = torch.randint(1, TINY_VOCAB - 1, (40,), generator=torch.Generator().manual_seed(1))
    whole, chunks = whole_and_streamed(model, text, first_frames, max_frames)
    hop = model.generator.decoder.upsample_factor
    assert chunks[0].numel() == min(first_frames * hop, whole.numel())
    joined = torch.cat(chunks)
    assert joined.shape == whole.shape
    assert (joined - whole).abs().max().item() < FP32_TOLERANCE


def test_speaker_conditioning_and_given_durations_stream_alike():
    model = tiny_model(tiny_conditioned_tts_conf(spks=3))
    text = torch.randint(1, TINY_VOCAB - 1, (12,), generator=torch.Generator().manual_seed(2))
    durations = torch.full((12,), 4.0)
    options = dict(sids=torch.tensor([2]), durations=durations, noise_scale=0.5)
    whole, chunks = whole_and_streamed(model, text, 4, 8, **options)
    assert whole.numel() == 12 * 4 * model.generator.decoder.upsample_factor
    assert (torch.cat(chunks) - whole).abs().max().item() < FP32_TOLERANCE
    # Another speaker changes the audio: the condition reached the streamed decoder.
    torch.manual_seed(7)
    other = torch.cat(list(synthesize_streaming(model, text, 4, 8, **dict(options, sids=torch.tensor([0])))))
    assert (other - whole).abs().max().item() > 1e-3


def test_margin_bounds_the_decoders_measured_reach():
    decoder = tiny_model().generator.decoder
    margin = decoder_margin_frames(decoder)
    hop = decoder.upsample_factor
    frames, middle = 4 * margin + 1, 2 * margin
    with torch.inference_mode():
        latent = torch.randn(1, decoder.input_conv.in_channels, frames, generator=torch.Generator().manual_seed(3))
        moved = latent.clone()
        moved[:, :, middle] += 2.0
        changed = torch.nonzero((decoder(moved) - decoder(latent))[0, 0].abs() > 0).flatten()
    first_frame, last_frame = changed.min().item() // hop, changed.max().item() // hop
    assert middle - margin <= first_frame and last_frame <= middle + margin
    # The bound is not loose by more than a few frames (else streaming decodes much twice).
    assert middle - first_frame >= margin - 4


def test_too_small_a_margin_leaves_a_seam():
    decoder = tiny_model().generator.decoder
    latent = torch.randn(1, decoder.input_conv.in_channels, 30, generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        whole = decoder(latent)[0]
        cut = torch.cat(list(decode_in_chunks(decoder, latent, None, 5, 5, margin=0)), 1)[0]
    assert (cut - whole).abs().max().item() > 100 * FP32_TOLERANCE


def test_chunk_bounds_cover_the_frames_and_grow():
    bounds = chunk_bounds(100, 3, 20)
    assert bounds[0] == (0, 3) and bounds[-1][1] == 100
    assert all(end == next_start for (_, end), (next_start, _) in zip(bounds, bounds[1:]))
    assert [end - start for start, end in bounds[:5]] == [3, 6, 12, 20, 20]
    with pytest.raises(ValueError, match="first_frames"):
        chunk_bounds(10, 8, 4)
