"""Monotonic alignment search (VITS paper, Section 2.2.1 and Algorithm 1 of Glow-TTS).

VITS aligns text tokens to spectrogram frames by the monotonic, surjective path that
maximises the log-likelihood of the flow output ``z_p`` under the per-token prior
``N(prior_means, exp(prior_log_stds))``. Everything about that alignment lives here,
once, for training and for teacher-forced inference:

* :func:`alignment_log_likelihood` scores every (frame, token) pair, ``(B, T_feats, T_text)``;
* :func:`search_durations` runs the dynamic program (numba, parallel over the batch) and
  returns how many frames each token gets, ``(B, T_text)`` (:func:`maximum_path` wraps
  it in ESPnet's interface);
* :func:`frame_tokens` gives the token of every frame, :func:`durations_to_path` the
  hard attention matrix, and
  :func:`expand_to_frames` repeats per-token values along time without building it.

A path gives every frame exactly one token, every token at least one frame, and never
goes back in the text, so it is fully described by its durations: the search sends
only ``(B, T_text)`` integers back to the model's device, not a ``(B, T_feats, T_text)``
matrix.
"""

import math

import numba
import numpy as np
import torch


@numba.njit(cache=True, nogil=True)
def _search_one(scores, text_length, feats_length, durations):
    """Fill ``durations[:text_length]`` with the best path through ``scores``.

    ``scores`` is ``(T_feats, T_text)`` float32; only ``[:feats_length, :text_length]``
    is read. Frame ``y`` can only be on tokens ``x`` with ``x <= y`` (each earlier token
    needs a frame) and ``text_length - x <= feats_length - y`` (each later token needs
    one): the band computed below. Two rows of accumulated scores suffice; the
    backtrack only needs, per cell, whether the best way in came from the previous
    token (``moved``), which is one byte instead of a float.
    """
    previous = np.empty(text_length, dtype=np.float32)
    current = np.empty(text_length, dtype=np.float32)
    moved = np.empty((feats_length, text_length), dtype=np.uint8)
    current[0] = scores[0, 0]
    moved[0, 0] = 0
    for y in range(1, feats_length):
        previous, current = current, previous
        first = max(0, text_length - feats_length + y)
        last = min(text_length - 1, y)
        # Token 0 can only have been reached by staying on token 0.
        if first == 0:
            current[0] = scores[y, 0] + previous[0]
            moved[y, 0] = 0
        # Inner cells: stay on x, or come from x - 1; ties stay (as ESPnet and the
        # original VITS do), so paths agree exactly with theirs. Branch-free, so
        # LLVM vectorises it.
        for x in range(max(first, 1), min(last, y - 1) + 1):
            stay = previous[x]
            advance = previous[x - 1]
            came_from_previous_token = stay < advance
            current[x] = scores[y, x] + (advance if came_from_previous_token else stay)
            moved[y, x] = came_from_previous_token
        # Token y at frame y: every earlier frame had its own token, so it moved.
        if last == y:
            current[y] = scores[y, y] + previous[y - 1]
            moved[y, y] = 1
    # The maximum itself is not needed, only where it came from.
    token = text_length - 1
    for y in range(feats_length - 1, -1, -1):
        durations[token] += 1
        if moved[y, token]:
            token -= 1


@numba.njit(cache=True, parallel=True)
def _search_batch(scores, text_lengths, feats_lengths, durations):
    """Run :func:`_search_one` on each utterance, utterances in parallel threads."""
    for index in numba.prange(scores.shape[0]):
        _search_one(
            scores[index], text_lengths[index], feats_lengths[index], durations[index]
        )


@torch.no_grad()
def alignment_log_likelihood(
    latent: torch.Tensor, prior_means: torch.Tensor, prior_log_stds: torch.Tensor
) -> torch.Tensor:
    """Log-likelihood of every frame's latent under every token's prior.

    Computed in float32 with autocast disabled: half-precision scores would make the
    search's comparisons of long sums meaningless.

    Args:
        latent: Flow output ``z_p`` (B, H, T_feats).
        prior_means: Text encoder means (B, H, T_text).
        prior_log_stds: Text encoder log standard deviations (B, H, T_text).

    Returns:
        Tensor: ``sum_h log N(latent[b, h, t]; mean[b, h, i], std[b, h, i])``
            (B, T_feats, T_text); no gradient.
    """
    with torch.autocast(device_type=latent.device.type, enabled=False):
        z = latent.float()
        means = prior_means.float()
        log_stds = prior_log_stds.float()
        # log N(z; m, s) = -log(2 pi)/2 - log s - z^2/(2 s^2) + z m/s^2 - m^2/(2 s^2):
        # the two terms that mix frames and tokens become batched matmuls over H.
        inverse_variances = torch.exp(-2 * log_stds)  # (B, H, T_text)
        normaliser = torch.sum(
            -0.5 * math.log(2 * math.pi) - log_stds, dim=1, keepdim=True
        )  # (B, 1, T_text)
        # (B, T_feats, H) @ (B, H, T_text) -> (B, T_feats, T_text)
        latent_square = torch.matmul(-0.5 * (z**2).transpose(1, 2), inverse_variances)
        # (B, T_feats, H) @ (B, H, T_text) -> (B, T_feats, T_text)
        latent_mean = torch.matmul(z.transpose(1, 2), means * inverse_variances)
        mean_square = torch.sum(
            -0.5 * (means**2) * inverse_variances, dim=1, keepdim=True
        )  # (B, 1, T_text)
        return normaliser + latent_square + latent_mean + mean_square


def search_durations(
    log_likelihood: torch.Tensor,
    text_lengths: torch.Tensor,
    feats_lengths: torch.Tensor,
) -> torch.Tensor:
    """Monotonic alignment search: the most likely number of frames per token.

    Args:
        log_likelihood: Scores (B, T_feats, T_text), e.g. from
            :func:`alignment_log_likelihood`; not modified.
        text_lengths: Number of tokens per utterance (B,).
        feats_lengths: Number of frames per utterance (B,).

    Returns:
        Tensor: Durations (B, T_text), int64 on the device of ``log_likelihood``; zero
            for padding tokens; row ``b`` sums to ``feats_lengths[b]``.

    Raises:
        ValueError: If an utterance has no tokens, more tokens than frames, or lengths
            larger than the score matrix; the message names the batch indices.
    """
    if log_likelihood.dim() != 3:
        raise ValueError(
            "search_durations: log_likelihood must be (B, T_feats, T_text), "
            f"got shape {tuple(log_likelihood.shape)}"
        )
    batch_size, max_feats, max_text = log_likelihood.shape
    # The search runs on the host; this transfer is the one sync it needs.
    scores = log_likelihood.detach().to("cpu", torch.float32).contiguous().numpy()
    tokens = text_lengths.detach().to("cpu", torch.int64).reshape(-1).numpy()
    frames = feats_lengths.detach().to("cpu", torch.int64).reshape(-1).numpy()
    if tokens.shape[0] != batch_size or frames.shape[0] != batch_size:
        raise ValueError(
            f"search_durations: {batch_size} score matrices but {tokens.shape[0]} "
            f"text lengths and {frames.shape[0]} feature lengths"
        )
    _check_lengths(tokens, frames, max_text, max_feats)
    durations = np.zeros((batch_size, max_text), dtype=np.int64)
    _search_batch(scores, tokens, frames, durations)
    return torch.from_numpy(durations).to(log_likelihood.device)


def maximum_path(
    log_likelihood: torch.Tensor, attention_mask: torch.Tensor
) -> torch.Tensor:
    """ESPnet's ``maximum_path`` interface: the best path as a dense matrix.

    For callers written against ``espnet2.gan_tts.vits.monotonic_align``; the model
    itself uses :func:`search_durations`, which skips building the matrix.

    Args:
        log_likelihood: Scores (B, T_feats, T_text).
        attention_mask: 1 on real (frame, token) pairs (B, T_feats, T_text).

    Returns:
        Tensor: Path (B, T_feats, T_text) in the dtype and on the device of the scores.
    """
    text_mask = attention_mask[:, 0, :] > 0  # (B, T_text)
    feats_mask = attention_mask[:, :, 0] > 0  # (B, T_feats)
    durations = search_durations(log_likelihood, text_mask.sum(1), feats_mask.sum(1))
    return durations_to_path(durations, text_mask, feats_mask).to(log_likelihood.dtype)


def _check_lengths(
    tokens: np.ndarray, frames: np.ndarray, max_text: int, max_feats: int
) -> None:
    """Raise ``ValueError`` naming every utterance that cannot be aligned."""
    problems = []
    for index in np.flatnonzero(tokens > frames):
        problems.append(
            f"batch index {index}: {tokens[index]} text tokens but only "
            f"{frames[index]} feature frames (each token needs at least one frame)"
        )
    for index in np.flatnonzero(tokens < 1):
        problems.append(f"batch index {index}: no text tokens")
    for index in np.flatnonzero((tokens > max_text) | (frames > max_feats)):
        problems.append(
            f"batch index {index}: lengths ({tokens[index]} tokens, {frames[index]} "
            f"frames) exceed the score matrix ({max_text} tokens, {max_feats} frames)"
        )
    if problems:
        raise ValueError(
            "monotonic alignment search cannot align: " + "; ".join(problems)
        )


def frame_tokens(durations: torch.Tensor, feats_length: int) -> torch.Tensor:
    """Which token each frame belongs to.

    Args:
        durations: Frames per token (B, T_text), integer or float (rounded-up
            predictions); token ``i`` covers frames ``[sum(d[:i]), sum(d[:i+1]))``.
        feats_length: Number of frames T_feats.

    Returns:
        Tensor: Token index per frame (B, T_feats), int64; ``T_text`` for frames past
            the last token.
    """
    token_ends = torch.cumsum(durations, dim=1).contiguous()  # (B, T_text)
    frames = torch.arange(feats_length, device=durations.device, dtype=token_ends.dtype)
    # The token of frame t is the number of tokens that end at or before t.
    return torch.searchsorted(
        token_ends, frames.expand(durations.size(0), feats_length).contiguous(), right=True
    )


def durations_to_path(
    durations: torch.Tensor, text_mask: torch.Tensor, feats_mask: torch.Tensor
) -> torch.Tensor:
    """Hard attention matrix of a monotonic path.

    Args:
        durations: Frames per token (B, T_text), see :func:`frame_tokens`.
        text_mask: True for real tokens (B, T_text).
        feats_mask: True for real frames (B, T_feats).

    Returns:
        Tensor: Path (B, T_feats, T_text), 1.0 where frame ``t`` belongs to token ``i``,
            in the floating dtype of ``durations`` (float32 for integer durations).
    """
    dtype = durations.dtype if durations.is_floating_point() else torch.float32
    batch_size, max_text = durations.shape
    tokens = frame_tokens(durations, feats_mask.size(1))  # (B, T_feats)
    index = tokens.clamp(max=max_text - 1)
    on_path = (tokens < max_text) & feats_mask & torch.gather(text_mask, 1, index)
    # One write per frame into zeros, instead of comparisons over the whole matrix.
    path = torch.zeros(
        batch_size, feats_mask.size(1), max_text, dtype=dtype, device=durations.device
    )
    return path.scatter_(2, index.unsqueeze(2), on_path.unsqueeze(2).to(dtype))


def expand_to_frames(
    token_values: torch.Tensor, durations: torch.Tensor, feats_length: int
) -> torch.Tensor:
    """Repeat each token's values over its frames: ``path @ values`` as a gather.

    Args:
        token_values: Per-token values (B, C, T_text).
        durations: Integer frames per token (B, T_text), zero for padding tokens.
        feats_length: Number of frames T_feats of the output.

    Returns:
        Tensor: Per-frame values (B, C, T_feats); zero on frames past the last token.
    """
    batch_size, channels, max_text = token_values.shape
    tokens = frame_tokens(durations, feats_length)  # (B, T_feats)
    assigned = (tokens < max_text).unsqueeze(1)  # (B, 1, T_feats)
    index = tokens.clamp(max=max_text - 1).unsqueeze(1)
    gathered = torch.gather(token_values, 2, index.expand(batch_size, channels, feats_length))
    return gathered * assigned.to(gathered.dtype)
