"""Monotonic alignment search: brute force, ESPnet's ``maximum_path``, invariants, errors."""

import itertools
import math
import warnings

import numpy as np
import pytest
import torch

from espnet2_vits_ext.vits.monotonic_alignment import (
    alignment_log_likelihood,
    durations_to_path,
    expand_to_frames,
    maximum_path,
    search_durations,
)

with warnings.catch_warnings():
    # ESPnet warns that its Cython build is missing and uses its numba version.
    warnings.simplefilter("ignore")
    from espnet2.gan_tts.vits.monotonic_align import maximum_path as espnet_maximum_path


def _masks(text_lengths, feats_lengths, max_text, max_feats):
    text_mask = torch.arange(max_text)[None] < text_lengths[:, None]
    feats_mask = torch.arange(max_feats)[None] < feats_lengths[:, None]
    return text_mask, feats_mask


def _espnet_path(scores, text_lengths, feats_lengths):
    text_mask, feats_mask = _masks(
        text_lengths, feats_lengths, scores.size(2), scores.size(1)
    )
    attention_mask = (feats_mask[:, :, None] & text_mask[:, None, :]).float()
    return espnet_maximum_path(scores.clone(), attention_mask)


def _our_path(scores, text_lengths, feats_lengths):
    durations = search_durations(scores, text_lengths, feats_lengths)
    text_mask, feats_mask = _masks(
        text_lengths, feats_lengths, scores.size(2), scores.size(1)
    )
    return durations_to_path(durations, text_mask, feats_mask), durations


def _brute_force_best(scores: np.ndarray):
    """Best total score and its durations over all monotonic surjective paths."""
    frames, tokens = scores.shape
    best_score, best_durations = -math.inf, None
    # A path is a choice of the frames where tokens 1..tokens-1 start.
    for starts in itertools.combinations(range(1, frames), tokens - 1):
        bounds = (0,) + starts + (frames,)
        total = sum(
            scores[bounds[i] : bounds[i + 1], i].sum(dtype=np.float64)
            for i in range(tokens)
        )
        if total > best_score:
            best_score = total
            best_durations = [bounds[i + 1] - bounds[i] for i in range(tokens)]
    return best_score, best_durations


@pytest.mark.parametrize("frames", range(1, 9))
def test_every_length_combination_matches_brute_force(frames):
    generator = torch.Generator().manual_seed(frames)
    for tokens in range(1, frames + 1):
        scores = torch.randn(1, frames, tokens, generator=generator)
        durations = search_durations(
            scores, torch.tensor([tokens]), torch.tensor([frames])
        )
        _, expected = _brute_force_best(scores[0].double().numpy())
        assert durations[0].tolist() == expected, (frames, tokens)


def test_padded_batch_matches_espnet_and_brute_force():
    generator = torch.Generator().manual_seed(0)
    # (tokens, frames): T_text == T_feats, one token, one frame, the full matrix.
    lengths = [(7, 7), (1, 9), (1, 1), (3, 11), (5, 12), (2, 2), (6, 10)]
    text_lengths = torch.tensor([t for t, _ in lengths])
    feats_lengths = torch.tensor([f for _, f in lengths])
    scores = torch.randn(len(lengths), 12, 7, generator=generator) * 2 - 1
    original = scores.clone()
    path, durations = _our_path(scores, text_lengths, feats_lengths)
    assert torch.equal(scores, original), "the search must not modify its input"
    assert torch.equal(path, _espnet_path(scores, text_lengths, feats_lengths))
    for index, (tokens, frames) in enumerate(lengths):
        _, expected = _brute_force_best(scores[index, :frames, :tokens].double().numpy())
        assert durations[index, :tokens].tolist() == expected
        assert durations[index, tokens:].eq(0).all()


def test_espnet_interface_gives_espnet_paths():
    generator = torch.Generator().manual_seed(5)
    scores = torch.randn(3, 20, 8, generator=generator).double()
    text_lengths, feats_lengths = torch.tensor([8, 3, 6]), torch.tensor([20, 3, 11])
    text_mask, feats_mask = _masks(text_lengths, feats_lengths, 8, 20)
    attention_mask = (feats_mask[:, :, None] & text_mask[:, None, :]).double()
    path = maximum_path(scores, attention_mask)
    assert path.dtype == torch.float64
    assert torch.equal(path, espnet_maximum_path(scores, attention_mask))


def test_ties_are_broken_as_espnet():
    # Integer scores make many paths equally good; the chosen one must still agree.
    generator = torch.Generator().manual_seed(1)
    scores = torch.randint(-2, 1, (6, 40, 15), generator=generator).float()
    text_lengths = torch.tensor([15, 1, 14, 9, 15, 3])
    feats_lengths = torch.tensor([40, 40, 14, 30, 15, 3])
    path, _ = _our_path(scores, text_lengths, feats_lengths)
    assert torch.equal(path, _espnet_path(scores, text_lengths, feats_lengths))


def test_larger_random_batch_matches_espnet():
    generator = torch.Generator().manual_seed(2)
    feats_lengths = torch.randint(60, 201, (8,), generator=generator)
    text_lengths = torch.minimum(
        torch.randint(10, 61, (8,), generator=generator), feats_lengths
    )
    scores = torch.randn(8, 200, 60, generator=generator) * 5 - 20
    path, durations = _our_path(scores, text_lengths, feats_lengths)
    assert torch.equal(path, _espnet_path(scores, text_lengths, feats_lengths))
    # Path invariants: one token per real frame, rows of the path sum to durations.
    text_mask, feats_mask = _masks(text_lengths, feats_lengths, 60, 200)
    assert torch.equal(path.sum(2), feats_mask.float())
    assert torch.equal(path.sum(1), durations.float())
    assert torch.equal(durations.sum(1), feats_lengths)
    assert (durations[text_mask] >= 1).all()
    # Monotonic: the token of each frame never decreases.
    frame_tokens = path.argmax(2)
    for index in range(8):
        steps = frame_tokens[index, : feats_lengths[index]].diff()
        assert ((steps == 0) | (steps == 1)).all()


def test_more_tokens_than_frames_is_a_clear_error():
    scores = torch.zeros(3, 5, 6)
    with pytest.raises(ValueError, match=r"batch index 1: 6 text tokens but only 4"):
        search_durations(scores, torch.tensor([2, 6, 3]), torch.tensor([5, 4, 5]))
    with pytest.raises(ValueError, match=r"batch index 2: no text tokens"):
        search_durations(scores, torch.tensor([2, 3, 0]), torch.tensor([5, 4, 5]))
    with pytest.raises(ValueError, match=r"batch index 0: .*exceed the score matrix"):
        search_durations(scores, torch.tensor([2, 3, 3]), torch.tensor([9, 4, 5]))


def test_log_likelihood_is_the_gaussian_log_density():
    generator = torch.Generator().manual_seed(3)
    latent = torch.randn(2, 4, 9, generator=generator)
    means = torch.randn(2, 4, 5, generator=generator)
    log_stds = torch.randn(2, 4, 5, generator=generator) * 0.3
    normal = torch.distributions.Normal(means[:, :, None, :], log_stds.exp()[:, :, None, :])
    expected = normal.log_prob(latent[:, :, :, None]).sum(1)  # (B, T_feats, T_text)
    torch.testing.assert_close(
        alignment_log_likelihood(latent, means, log_stds), expected, rtol=1e-5, atol=1e-4
    )
    # Half-precision autocast must not reach the scores.
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        scores = alignment_log_likelihood(latent.bfloat16(), means, log_stds)
    assert scores.dtype == torch.float32


def test_durations_to_path_matches_espnet_generate_path():
    from espnet2.gan_tts.vits.generator import VITSGenerator

    # Rounded-up predicted durations are floats; padding tokens have duration 0.
    durations = torch.tensor([[1.0, 3.0, 2.0, 0.0], [2.0, 2.0, 1.0, 4.0]])
    text_mask = torch.tensor([[True, True, True, False], [True] * 4])
    feats_mask = torch.arange(9)[None] < durations.sum(1)[:, None]
    attention_mask = (feats_mask[:, None, :, None] & text_mask[:, None, None, :]).float()
    expected = VITSGenerator._generate_path(None, durations[:, None], attention_mask)
    assert torch.equal(durations_to_path(durations, text_mask, feats_mask), expected[:, 0])


def test_expand_to_frames_equals_path_matmul():
    generator = torch.Generator().manual_seed(4)
    durations = torch.tensor([[2, 1, 3, 0], [1, 1, 1, 1]])
    feats_lengths = durations.sum(1)
    text_mask, feats_mask = _masks(torch.tensor([3, 4]), feats_lengths, 4, 7)
    values = torch.randn(2, 5, 4, generator=generator)
    path = durations_to_path(durations, text_mask, feats_mask)  # (B, T_feats, T_text)
    expected = torch.matmul(path, values.transpose(1, 2)).transpose(1, 2)
    assert torch.equal(expand_to_frames(values, durations, 7), expected)
